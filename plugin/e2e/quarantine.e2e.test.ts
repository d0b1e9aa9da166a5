// Held changes against a real daemon: another device's batch that deletes
// most of the vault is kept off the disk; the modal lists it, and undoing
// it keeps every file.
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Held } from "../src/rpc/Held";
import { eventually, makeVault, openHarness, removeTree, screenshot, vellum, vellumJson, type Harness } from "./support";


let root: string;
let vault: string;
let h: Harness;
const FILES = 30;
const names = Array.from({ length: FILES }, (_, i) => `notes/n${i}.md`);

beforeAll(async () => {
	({ root, vault } = await makeVault(Object.fromEntries(names.map((n) => [n, `note ${n}\n`]))));
	const other = join(root, "clone");
	await vellum(vault, "clone", vault, other);
	// The other device loses 25 of the 30 notes (a sync tool gone wrong, a bad script)...
	for (const n of names.slice(0, 25)) rmSync(join(other, n));
	await vellum(other, "scan");
	await vellum(other, "export", join(root, "deletes.vellum"));
	h = await openHarness(vault);
	await h.call("start");
	// ...and this vault receives the batch.
	await vellum(vault, "import", join(root, "deletes.vellum"));
});

afterAll(async () => {
	await h?.close();
	removeTree(root);
});

describe("held changes", () => {
	it("keeps a mass delete off the disk, lists it, and undoes it", async () => {
		const held = await eventually("a held batch", async () => {
			const list = await vellumJson<Held[]>(vault, "quarantine", "list");
			return list.length > 0 ? list : undefined;
		});
		expect(held[0]!.files).toHaveLength(25);
		for (const n of names) expect(existsSync(join(vault, n))).toBe(true);
		await expect.poll(() => h.page.locator(".status-bar-item").textContent()).toBe("Vellum: 25 changes held");

		await h.call("openQuarantine");
		const batch = h.page.locator(`.vellum-batch[data-batch="${held[0]!.id}"]`);
		await batch.waitFor();
		expect(await batch.locator("li[data-change=delete]").count()).toBe(25);
		await screenshot(h.page, "quarantine");
		await batch.locator(".vellum-reject").click();

		await eventually("the batch undone", async () => ((await vellumJson<Held[]>(vault, "quarantine", "list")).length === 0 ? true : undefined));
		for (const n of names) expect(existsSync(join(vault, n))).toBe(true);
		await expect.poll(() => h.page.locator(".vellum-quarantine").textContent()).toContain("Nothing is held back.");
		await expect.poll(() => h.page.locator(".status-bar-item").textContent()).not.toContain("held");
	});
});
