// scripts/package-plugin: the zip a user unpacks into a vault's plugin
// folder, and the plugin finding the binary shipped in it.
import { execFile } from "node:child_process";
import { mkdirSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { Daemon } from "../src/client/daemon";
import { bundledBinary, nodeLauncher } from "../src/client/node";
import { eventually, makeVault, nodeTimers, PLUGIN_DIR, removeTree, VELLUM } from "./support";

const run = promisify(execFile);
const roots: string[] = [];

afterAll(() => {
	for (const r of roots) removeTree(r);
});

/** Unpacks `zip` into `dest` with each file's mode, as an unzip tool would. */
async function unzip(zip: string, dest: string): Promise<void> {
	await run("python3", [
		"-c",
		"import sys, zipfile, os\nz = zipfile.ZipFile(sys.argv[1])\nfor i in z.infolist():\n  p = z.extract(i, sys.argv[2])\n  os.chmod(p, (i.external_attr >> 16) & 0o777)",
		zip,
		dest,
	]);
}

describe("scripts/package-plugin", () => {
	it("packs manifest, main.js, styles.css and the binary, and the installed plugin runs its own binary", async () => {
		const { root, vault } = await makeVault({ "note.md": "packed\n" });
		roots.push(root);
		const out = join(root, "dist");
		const { stdout } = await run(resolve(PLUGIN_DIR, "../scripts/package-plugin"), ["--binary", VELLUM, "--out", out, "--no-build"], { encoding: "utf8" });
		const zip = stdout.trim().split("\n").at(-1)!;
		expect(zip).toMatch(/vellum-sync-\d+\.\d+\.\d+-linux-[a-z0-9_]+\.zip$/);

		const plugins = join(vault, ".obsidian", "plugins");
		mkdirSync(plugins, { recursive: true });
		await unzip(zip, plugins);
		const dir = join(plugins, "vellum-sync");
		const manifest = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")) as { id: string; isDesktopOnly: boolean };
		expect(manifest).toMatchObject({ id: "vellum-sync", isDesktopOnly: true });
		expect(readFileSync(join(dir, "main.js"), "utf8")).toBe(readFileSync(join(PLUGIN_DIR, "main.js"), "utf8"));
		expect(readFileSync(join(dir, "styles.css"), "utf8")).toBe(readFileSync(join(PLUGIN_DIR, "styles.css"), "utf8"));
		expect(statSync(join(dir, "vellum")).mode & 0o111).not.toBe(0);

		// With no binary path set, the plugin runs the one beside it.
		const binary = bundledBinary(vault, ".obsidian/plugins/vellum-sync");
		expect(binary).toBe(join(dir, "vellum"));
		const daemon = new Daemon(nodeLauncher(vault, () => binary!, nodeTimers), nodeTimers, Date.now);
		daemon.start();
		try {
			await eventually("the packed daemon", () => (daemon.connection.kind === "ready" ? true : undefined));
			// The plugin folder is ignored by default: the binary never syncs.
			const status = await daemon.call("status");
			expect(status.files).toBe(1);
		} finally {
			daemon.stop();
		}
	});
});
