// The timeline pages through a longer history against a real daemon: the
// newest page first, then "Load older" by cursor until the first op.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PAGE_SIZE } from "../src/history";
import type { LogEntry } from "../src/rpc/LogEntry";
import { makeVault, openHarness, removeTree, vellumJson, type Harness } from "./support";


let root: string;
let vault: string;
let h: Harness;

beforeAll(async () => {
	// One create op per note, and the vault's own first ops.
	const notes = Object.fromEntries(Array.from({ length: PAGE_SIZE + 60 }, (_, i) => [`day/${String(i).padStart(3, "0")}.md`, `day ${i}\n`]));
	({ root, vault } = await makeVault(notes));
	h = await openHarness(vault);
	await h.call("start");
});

afterAll(async () => {
	await h?.close();
	removeTree(root);
});

describe("timeline paging", () => {
	it("shows the newest page, then the older ones on demand, in the daemon's order", async () => {
		const log = await vellumJson<LogEntry[]>(vault, "log", "--limit", "100000");
		expect(log.length).toBeGreaterThan(PAGE_SIZE);
		await h.call("openHistory");
		const rows = h.page.locator(".vellum-row");
		await expect.poll(() => rows.count()).toBe(PAGE_SIZE);
		await h.page.locator(".vellum-load-more").click();
		await expect.poll(() => rows.count()).toBe(log.length);
		const shown = await rows.evaluateAll((els) => els.map((e) => e.getAttribute("data-op")));
		expect(shown).toEqual(log.map((e) => e.id));
		// The oldest page came back short: there is nothing more to load.
		expect(await h.page.locator(".vellum-load-more").isVisible()).toBe(false);
	});
});
