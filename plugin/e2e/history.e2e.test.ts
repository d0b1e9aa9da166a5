// The history view, built into main.js, in Chromium, against a real
// `vellum serve --stdio` on a real vault that the test changes on disk.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LogEntry } from "../src/rpc/LogEntry";
import type { Status } from "../src/rpc/Status";
import { eventually, makeVault, openHarness, removeTree, screenshot, vellumJson, writeFile, type Harness } from "./support";



let root: string;
let vault: string;
let h: Harness;

/** The daemon's log of `path` (or the vault), newest first. */
function log(path?: string): Promise<LogEntry[]> {
	return path === undefined ? vellumJson(vault, "log", "--limit", "1000") : vellumJson(vault, "log", "--path", path, "--limit", "1000");
}

/** Writes a note and waits until the daemon has recorded it as a new op. */
async function edit(path: string, text: string): Promise<LogEntry> {
	const before = (await log(path))[0]?.id;
	writeFile(vault, path, text);
	return eventually(`an op for ${path}`, async () => {
		const top = (await log(path))[0];
		return top !== undefined && top.id !== before ? top : undefined;
	});
}

function read(path: string): string | null {
	const full = join(vault, path);
	return existsSync(full) ? readFileSync(full, "utf8") : null;
}

beforeAll(async () => {
	({ root, vault } = await makeVault({ "a.md": "first\n", "notes/keep.md": "keep me\n" }));
	h = await openHarness(vault);
	await h.call("start");
});

afterAll(async () => {
	await h?.close();
	removeTree(root);
});

describe("history view", () => {
	it("shows the vault's state in the status bar", async () => {
		const status = h.page.locator(".status-bar-item");
		// One device, nobody to sync with.
		await expect.poll(() => status.textContent()).toBe("Vellum: offline");
		expect(await status.getAttribute("data-state")).toBe("offline");
	});

	it("adds an edit made on disk to the timeline", async () => {
		await h.call("openHistory");
		const op = await edit("a.md", "first\nsecond\n");
		await h.page.locator(`.vellum-row[data-op="${op.id}"]`).waitFor();
		expect(await h.page.locator(`.vellum-row[data-op="${op.id}"] .vellum-row-summary`).textContent()).toBe(op.summary);
		await screenshot(h.page, "history-timeline");
	});

	it("moves the time slider back and shows the files as of then", async () => {
		const created = await edit("b.md", "made later\n");
		await h.page.locator(`.vellum-row[data-op="${created.id}"]`).waitFor();
		// The row just before b.md was created: the slider's position counts from the oldest row.
		const rows = await h.page.locator(".vellum-row").evaluateAll((els) => els.map((e) => e.getAttribute("data-op")));
		const index = rows.indexOf(created.id) + 1;
		const before = (await log()).find((e) => e.id === rows[index]);
		expect(before).toBeDefined();
		await h.page.locator(".vellum-slider-input").fill(String(rows.length - 1 - index));
		const tree = h.page.locator(`.vellum-tree[data-at="${before!.time}"]`);
		await tree.waitFor();
		const paths = await tree.locator(".vellum-tree-file").evaluateAll((els) => els.map((e) => e.getAttribute("data-path")));
		expect(paths.sort()).toEqual(["a.md", "notes/keep.md"]);
		// The same point through the CLI gives the same files.
		const cli = await vellumJson<{ files: { path: string }[] }>(vault, "checkout", "--at", before!.time, join(root, "checkout"));
		expect(cli.files).toBe(2);
		await screenshot(h.page, "history-slider-tree");

		await tree.locator('.vellum-tree-file[data-path="a.md"]').click();
		const text = h.page.locator(".vellum-file-at .vellum-file-text");
		await expect.poll(() => text.textContent()).toBe(read("a.md"));
		await screenshot(h.page, "history-file-read-only");
		await h.page.evaluate(() => document.querySelector(".vellum-file-at")?.parentElement?.remove());
	});

	it("restores an older version of a note", async () => {
		const first = (await log("a.md")).at(-1)!;
		expect(first.kind).toBe("create");
		await h.call("openHistory", "a.md");
		await h.page.locator(`.vellum-row[data-op="${first.id}"]`).click();
		await expect.poll(() => h.page.locator(".vellum-detail .vellum-file-text").textContent()).toBe("first\n");
		await screenshot(h.page, "history-file-version");
		await h.page.locator(".vellum-restore").click();
		await eventually("a.md restored on disk", () => (read("a.md") === "first\n" ? true : undefined));
		const top = (await log("a.md"))[0]!;
		expect(top.id).not.toBe(first.id);
		// The restore is history too: the newer text is still there to go back to.
		expect((await log("a.md")).length).toBe(3);
		await h.page.locator(`.vellum-row[data-op="${top.id}"]`).waitFor();
	});

	it("previews a rollback; cancelling changes nothing, confirming rolls back", async () => {
		await h.call("openHistory");
		const bOp = (await log("b.md"))[0]!;
		const all = await log();
		const before = all[all.findIndex((e) => e.id === bOp.id) + 1]!;
		const headBefore = (await vellumJson<Status>(vault, "status")).head;

		const openPreview = async () => {
			await h.page.locator(`.vellum-row[data-op="${before.id}"]`).click();
			await h.page.locator(".vellum-detail .vellum-rollback").click();
			await h.page.locator(".vellum-rollback-modal .vellum-preview").waitFor();
		};
		await openPreview();
		const changes = await h.page.locator(".vellum-preview li").evaluateAll((els) => els.map((e) => [e.getAttribute("data-path"), e.getAttribute("data-action")]));
		expect(changes).toContainEqual(["b.md", "delete"]);
		await screenshot(h.page, "rollback-preview");
		await h.page.locator(".vellum-rollback-modal .vellum-cancel").click();
		expect(await h.page.locator(".vellum-rollback-modal").count()).toBe(0);
		expect(read("b.md")).toBe("made later\n");
		expect((await vellumJson<Status>(vault, "status")).head).toBe(headBefore);

		await openPreview();
		await h.page.locator(".vellum-rollback-modal .vellum-confirm").click();
		await eventually("b.md removed by the rollback", () => (read("b.md") === null ? true : undefined));
		expect(read("notes/keep.md")).toBe("keep me\n");
		expect((await vellumJson<Status>(vault, "status")).head).not.toBe(headBefore);
		await expect.poll(() => h.call("notices").then((all) => all.some((n) => n.startsWith("Vellum: rolled back")))).toBe(true);
		await screenshot(h.page, "rollback-done");
	});

	it("truncates a very large diff with a notice instead of drawing it all", async () => {
		const lines = (tag: string) => Array.from({ length: 20_000 }, (_, i) => `${tag} line ${i}`).join("\n") + "\n";
		const first = await edit("big.md", lines("old"));
		await edit("big.md", lines("new"));
		await h.call("openHistory", "big.md");
		await h.page.locator(`.vellum-row[data-op="${first.id}"]`).click();
		await h.page.locator(".vellum-detail .vellum-diff-current").click();
		await h.page.locator(".vellum-diff-truncated").waitFor();
		expect(await h.page.locator(".vellum-diff > div").count()).toBe(2_000);
		expect(await h.page.locator(".vellum-diff-truncated").textContent()).toContain("showing the first 2,000");
		await screenshot(h.page, "history-big-diff");
	});
});
