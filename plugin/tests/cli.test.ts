// Runs real processes: a stand-in `vellum` script, so the execFile wiring
// (arguments, exit codes, ENOENT) is checked against Node rather than a mock.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runVellum, statusArgs } from "../src/cli";
import { outcomeFromRun } from "../src/status";

let dir = "";
let fakeVellum = "";

// Answers `status --json --vault DIR` like the real CLI: the status of DIR if
// it has a .vellum/ folder, else a one-line error and exit 1.
const FAKE_VELLUM = `#!/usr/bin/env node
const fs = require("node:fs");
const args = process.argv.slice(2);
const vault = args[args.indexOf("--vault") + 1];
if (args[0] !== "status" || args[1] !== "--json" || !vault) {
	process.stderr.write("usage: vellum status --json --vault DIR\\n");
	process.exit(1);
}
if (!fs.existsSync(vault + "/.vellum")) {
	process.stderr.write("no vault here (no .vellum/ found upward from " + vault + "); run 'vellum init'\\n");
	process.exit(1);
}
process.stdout.write(JSON.stringify({
	head: "abc", ops: 5, files: 3, conflicts: 1, pending: 0, quarantined: 0,
	journal_bytes: 2048, device: "dev1", vault: vault,
}) + "\\n");
`;

beforeAll(() => {
	dir = mkdtempSync(join(tmpdir(), "vellum-plugin-test-"));
	fakeVellum = join(dir, "vellum");
	writeFileSync(fakeVellum, FAKE_VELLUM);
	chmodSync(fakeVellum, 0o755);
});

afterAll(() => {
	rmSync(dir, { recursive: true, force: true });
});

describe("runVellum", () => {
	it("passes the status arguments and reads a vault's status", async () => {
		const vault = mkdtempSync(join(dir, "vault-"));
		mkdirSync(join(vault, ".vellum"));
		const run = await runVellum(fakeVellum, statusArgs(vault));
		expect(run.kind).toBe("exited");
		expect(outcomeFromRun(run, fakeVellum)).toEqual({
			kind: "ok",
			status: {
				head: "abc",
				ops: 5,
				files: 3,
				conflicts: 1,
				pending: 0,
				quarantined: 0,
				journal_bytes: 2048,
				device: "dev1",
				vault,
			},
		});
	});

	it("reports a folder without .vellum/ as not initialised", async () => {
		const vault = mkdtempSync(join(dir, "plain-"));
		const run = await runVellum(fakeVellum, statusArgs(vault));
		expect(run).toMatchObject({ kind: "exited", exitCode: 1 });
		expect(outcomeFromRun(run, fakeVellum).kind).toBe("not_initialised");
	});

	it("reports a missing binary as ENOENT", async () => {
		const missing = join(dir, "no-such-vellum");
		const run = await runVellum(missing, statusArgs(dir));
		expect(run).toMatchObject({ kind: "spawn_failed", code: "ENOENT" });
		expect(outcomeFromRun(run, missing)).toEqual({ kind: "binary_not_found", binary: missing });
	});

	it("reports a path with a NUL byte as a spawn failure instead of throwing", async () => {
		const run = await runVellum("vel\0lum", statusArgs(dir));
		expect(run.kind).toBe("spawn_failed");
	});
});
