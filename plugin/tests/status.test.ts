import { describe, expect, it } from "vitest";
import type { RunResult } from "../src/run";
import { describeOutcome, outcomeFromRun, parseStatus, type StatusOutcome, type VaultStatus } from "../src/status";

const STATUS: VaultStatus = {
	head: "b3a1f0c2",
	ops: 120,
	files: 42,
	conflicts: 2,
	pending: 3,
	quarantined: 0,
	journal_bytes: 98_304,
	device: "laptop",
	vault: "9f2c",
};

function json(fields: Record<string, unknown>): string {
	return JSON.stringify(fields);
}

function exited(exitCode: number, stdout: string, stderr = ""): RunResult {
	return { kind: "exited", exitCode, stdout, stderr };
}

describe("parseStatus", () => {
	it("parses the contract shape", () => {
		expect(parseStatus(json({ ...STATUS }))).toEqual({ ok: true, status: STATUS });
	});

	it("ignores fields it does not know", () => {
		expect(parseStatus(json({ ...STATUS, peers: 3 }))).toEqual({ ok: true, status: STATUS });
	});

	it("accepts an empty journal", () => {
		const empty = { ...STATUS, head: "", ops: 0, files: 0, conflicts: 0, journal_bytes: 0 };
		expect(parseStatus(json(empty))).toEqual({ ok: true, status: empty });
	});

	// check(input, expected error) for everything that must be rejected.
	it.each([
		["", "output is not JSON"],
		["{", "output is not JSON"],
		["{} trailing", "output is not JSON"],
		["null", "output is not a JSON object"],
		["[]", "output is not a JSON object"],
		['"status"', "output is not a JSON object"],
		["42", "output is not a JSON object"],
		[json({ ...STATUS, head: undefined }), 'field "head" must be a string, got nothing'],
		[json({ ...STATUS, device: 7 }), 'field "device" must be a string, got 7'],
		[json({ ...STATUS, vault: null }), 'field "vault" must be a string, got null'],
		[json({ ...STATUS, files: "42" }), 'field "files" must be a non-negative integer, got a string'],
		[json({ ...STATUS, conflicts: "0" }), 'field "conflicts" must be a non-negative integer, got a string'],
		[json({ ...STATUS, journal_bytes: "98304" }), 'field "journal_bytes" must be a non-negative integer, got a string'],
		[json({ ...STATUS, ops: -1 }), 'field "ops" must be a non-negative integer, got -1'],
		[json({ ...STATUS, pending: 1.5 }), 'field "pending" must be a non-negative integer, got a fraction'],
		[json({ ...STATUS, quarantined: true }), 'field "quarantined" must be a non-negative integer, got a boolean'],
		[json({ ...STATUS, files: [1] }), 'field "files" must be a non-negative integer, got an array'],
		[json({ ...STATUS, ops: undefined }), 'field "ops" must be a non-negative integer, got nothing'],
		['{"head":"a","device":"d","vault":"v","ops":1e400}', 'field "ops" must be a non-negative integer, got an out-of-range number'],
		[json({ ...STATUS, ops: 2 ** 53 }), `field "ops" must be a non-negative integer, got ${2 ** 53}`],
	])("rejects %s", (input, error) => {
		expect(parseStatus(input)).toEqual({ ok: false, error });
	});
});

describe("outcomeFromRun", () => {
	it("parses a successful run", () => {
		expect(outcomeFromRun(exited(0, json({ ...STATUS })), "vellum")).toEqual({ kind: "ok", status: STATUS });
	});

	it("reports a missing binary by name", () => {
		const run: RunResult = { kind: "spawn_failed", code: "ENOENT", message: "spawn /opt/vellum ENOENT" };
		expect(outcomeFromRun(run, "/opt/vellum")).toEqual({ kind: "binary_not_found", binary: "/opt/vellum" });
	});

	it("reports other spawn failures as errors", () => {
		const run: RunResult = { kind: "spawn_failed", code: "EACCES", message: "spawn /opt/vellum EACCES" };
		expect(outcomeFromRun(run, "/opt/vellum")).toEqual({
			kind: "failed",
			message: "could not run /opt/vellum (EACCES): spawn /opt/vellum EACCES",
		});
	});

	it.each([
		"no vault here (no .vellum/ found upward from /home/a/notes); run 'vellum init'",
		"error: No vault at /home/a/notes; run 'vellum init'",
		"vault not initialized",
	])("recognises a missing vault from stderr %j", (stderr) => {
		expect(outcomeFromRun(exited(1, "", `${stderr}\n`), "vellum")).toEqual({ kind: "not_initialised", message: stderr });
	});

	it("passes other CLI errors through with the exit code", () => {
		expect(outcomeFromRun(exited(2, "", "journal locked by pid 12; stop the other daemon\n"), "vellum")).toEqual({
			kind: "failed",
			message: "vellum status exited with 2: journal locked by pid 12; stop the other daemon",
		});
		expect(outcomeFromRun(exited(2, "", ""), "vellum")).toEqual({
			kind: "failed",
			message: "vellum status exited with 2: no message",
		});
	});

	it("does not trust stdout of a failed run", () => {
		expect(outcomeFromRun(exited(1, json({ ...STATUS }), "boom"), "vellum").kind).toBe("failed");
	});

	it("reports malformed output from a successful run", () => {
		expect(outcomeFromRun(exited(0, json({ ...STATUS, files: "42" })), "vellum")).toEqual({
			kind: "failed",
			message: 'unexpected output from vellum status: field "files" must be a non-negative integer, got a string',
		});
	});

	it("reports a killed run", () => {
		expect(outcomeFromRun({ kind: "killed", signal: "SIGTERM", stderr: "" }, "vellum")).toEqual({
			kind: "failed",
			message: "vellum status was stopped (SIGTERM); is the vault very large or the disk stuck?",
		});
	});
});

describe("describeOutcome", () => {
	it.each<[StatusOutcome, string]>([
		[{ kind: "ok", status: STATUS }, "Vellum: 42 files, 2 conflicts"],
		[{ kind: "ok", status: { ...STATUS, files: 1, conflicts: 1 } }, "Vellum: 1 file, 1 conflict"],
		[{ kind: "ok", status: { ...STATUS, files: 0, conflicts: 0 } }, "Vellum: 0 files, 0 conflicts"],
		[{ kind: "not_initialised", message: "no vault here" }, "Vellum: not initialised"],
		[{ kind: "binary_not_found", binary: "vellum" }, "Vellum: binary not found"],
		[{ kind: "unsupported_vault" }, "Vellum: unsupported vault"],
		[{ kind: "failed", message: "x" }, "Vellum: error"],
	])("%j shows %j", (outcome, text) => {
		expect(describeOutcome(outcome).text).toBe(text);
	});

	it("puts the details in the tooltip", () => {
		expect(describeOutcome({ kind: "ok", status: STATUS }).tooltip).toBe(
			"Head b3a1f0c2\n120 ops, 3 pending, 0 quarantined\nDevice laptop",
		);
		expect(describeOutcome({ kind: "ok", status: { ...STATUS, head: "", ops: 0 } }).tooltip).toBe(
			"Head (empty journal)\n0 ops, 3 pending, 0 quarantined\nDevice laptop",
		);
		expect(describeOutcome({ kind: "binary_not_found", binary: "/opt/v" }).tooltip).toBe(
			"Could not find '/opt/v'. Install Vellum, or set the binary path in the plugin settings.",
		);
		expect(describeOutcome({ kind: "not_initialised", message: "" }).tooltip).toBe("Run 'vellum init' in this vault.");
		expect(describeOutcome({ kind: "failed", message: "disk full" }).tooltip).toBe("disk full");
	});
});
