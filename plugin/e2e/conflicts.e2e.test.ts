// The conflicts view against a real daemon: a conflict made the way users
// make them without a network (a second device from `vellum clone`, its
// edit carried over with `vellum export` / `vellum import`), then resolved
// from the view.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ConflictEntry } from "../src/rpc/ConflictEntry";
import { eventually, makeVault, openHarness, removeTree, screenshot, vellum, vellumJson, writeFile, type Harness } from "./support";


let root: string;
let vault: string;
let other: string;
let h: Harness;

const BASE = "# Plan\n\nmonday: write\ntuesday: read\nwednesday: rest\n";

/** Makes a conflict on `path`: this vault and the clone each change its third line. */
async function conflict(path: string, here: string, there: string): Promise<void> {
	const n = (await vellumJson<unknown[]>(vault, "log", "--path", path)).length;
	writeFile(vault, path, BASE.replace("monday: write", here));
	await eventually(`the edit of ${path} here`, async () => ((await vellumJson<unknown[]>(vault, "log", "--path", path)).length > n ? true : undefined));
	writeFile(other, path, BASE.replace("monday: write", there));
	await vellum(other, "scan");
	const file = join(root, `from-the-clone-${path}.vellum`);
	await vellum(other, "export", file);
	await vellum(vault, "import", file);
	await eventually(`the conflict on ${path}`, async () => ((await vellumJson<ConflictEntry[]>(vault, "conflicts")).some((c) => c.path === path) ? true : undefined));
}


beforeAll(async () => {
	({ root, vault } = await makeVault({ "plan.md": BASE, "merge-me.md": BASE }));
	other = join(root, "clone of the vault");
	await vellum(vault, "clone", vault, other);
	h = await openHarness(vault);
	await h.call("start");
});

afterAll(async () => {
	await h?.close();
	removeTree(root);
});

describe("conflicts view", () => {
	it("shows base, current and incoming side by side and takes the incoming side", async () => {
		await conflict("plan.md", "monday: sleep in", "monday: call the bank");
		await expect.poll(() => h.page.locator(".status-bar-item").textContent()).toBe("Vellum: 1 conflict");
		await h.call("openConflicts");
		await h.page.locator('.vellum-conflict-row[data-path="plan.md"]').click();
		const sides = h.page.locator(".vellum-sides");
		await sides.waitFor();
		expect(await sides.locator(".vellum-side-base .vellum-side-text").textContent()).toBe(BASE);
		// Which edit is "current" follows the ops' order, not which device is this one.
		const here = BASE.replace("monday: write", "monday: sleep in");
		const there = BASE.replace("monday: write", "monday: call the bank");
		const currentText = await sides.locator(".vellum-side-current .vellum-side-text").textContent();
		const incomingText = await sides.locator(".vellum-side-incoming .vellum-side-text").textContent();
		expect([currentText, incomingText].sort()).toEqual([here, there].sort());
		expect(readFileSync(join(vault, "plan.md"), "utf8")).toBe(currentText);
		// Labelled by device and time, with the names and ids the daemon gives.
		const peers = await vellumJson<{ device: string; name: string | null }[]>(vault, "peers");
		const me = (await vellumJson<{ device: string }>(vault, "status")).device;
		// `peers` lists the other devices; this one is "e2e laptop" (makeVault).
		const label = (device: string) => `${device === me ? "e2e laptop" : peers.find((p) => device.startsWith(p.device.slice(0, 12)))?.name} (${device.slice(0, 12)}), `;
		const clone = peers.find((p) => !me.startsWith(p.device.slice(0, 12)))!.device;
		const [currentBy, incomingBy] = incomingText === there ? [me, clone] : [clone, me];
		const when = /\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/;
		const incomingLabel = await sides.locator(".vellum-side-incoming .vellum-side-label").textContent();
		expect(incomingLabel?.slice(0, label(incomingBy).length)).toBe(label(incomingBy));
		expect(incomingLabel).toMatch(when);
		const currentLabel = await sides.locator(".vellum-side-current .vellum-side-label").textContent();
		expect(currentLabel?.slice(0, label(currentBy).length)).toBe(label(currentBy));
		expect(currentLabel).toMatch(when);
		await screenshot(h.page, "conflicts-sides");

		await h.page.locator(".vellum-take-incoming").click();
		await eventually("plan.md to hold the incoming side", () => (readFileSync(join(vault, "plan.md"), "utf8") === incomingText ? true : undefined));
		await h.page.locator('.vellum-conflict-row[data-path="plan.md"]').waitFor({ state: "detached" });
		expect(await vellumJson<ConflictEntry[]>(vault, "conflicts")).toEqual([]);
		// Both sides stay in the history.
		const log = await vellumJson<{ kind: string }[]>(vault, "log", "--path", "plan.md");
		expect(log[0]!.kind).toBe("resolve");
	});

	it("resolves with a merge the user edited", async () => {
		await conflict("merge-me.md", "monday: gym", "monday: swim");
		await h.call("openConflicts", "merge-me.md");
		const editor = h.page.locator(".vellum-merge").last();
		await editor.waitFor();
		const merged = BASE.replace("monday: write", "monday: gym, then swim");
		await editor.fill(merged);
		await screenshot(h.page, "conflicts-merge");
		await h.page.locator(".vellum-save-merge").last().click();
		await eventually("merge-me.md to hold the merge", () => (readFileSync(join(vault, "merge-me.md"), "utf8") === merged ? true : undefined));
		await expect.poll(() => h.page.locator(".status-bar-item").textContent()).not.toContain("conflict");
	});
});
