// The settings tab against a real daemon: each change goes to the daemon,
// lands where it belongs (the journal for vault-wide settings, config.toml
// for this device's), and the tab shows what the daemon then holds.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LogEntry } from "../src/rpc/LogEntry";
import { eventually, makeVault, openHarness, removeTree, screenshot, vellum, vellumJson, type Harness } from "./support";


let root: string;
let vault: string;
let h: Harness;

const config = () => readFileSync(join(vault, ".vellum", "config.toml"), "utf8");
const top = async () => (await vellumJson<LogEntry[]>(vault, "log", "--limit", "1"))[0]!;

async function openSettings(): Promise<void> {
	await h.page.evaluate(() => {
		document.querySelector(".vellum-settings")?.remove();
	});
	await h.call("openSettings");
}

/** Types into a field and leaves it, as a person does. */
async function change(selector: string, value: string): Promise<void> {
	const field = h.page.locator(selector);
	await field.fill(value);
	await field.dispatchEvent("change");
}

beforeAll(async () => {
	({ root, vault } = await makeVault({ "a.md": "a\n" }));
	// A second device, to list and remove.
	await vellum(vault, "clone", vault, join(root, "old tablet"), "--name", "old tablet");
	h = await openHarness(vault);
	await h.call("start");
	await openSettings();
});

afterAll(async () => {
	await h?.close();
	removeTree(root);
});

describe("settings tab", () => {
	it("renames this device with an op in the journal", async () => {
		expect(await h.page.locator(".vellum-device-name").inputValue()).toBe("e2e laptop");
		await change(".vellum-device-name", "studio laptop");
		const op = await eventually("the device_info op", async () => {
			const t = await top();
			return t.kind === "device_info" ? t : undefined;
		});
		expect(op.summary).toContain("studio laptop");
		await expect.poll(() => h.page.locator(".vellum-device-name").inputValue()).toBe("studio laptop");
	});

	it("changes the vault-wide ignore rules", async () => {
		const rules = await h.page.locator(".vellum-ignore").inputValue();
		expect(rules).toContain("/.vellum/");
		await change(".vellum-ignore", `${rules}\ndrafts/`);
		await eventually("the vault_config op", async () => ((await top()).kind === "vault_config" ? true : undefined));
		await expect.poll(() => h.page.locator(".vellum-ignore").inputValue()).toContain("drafts/");
	});

	it("refuses a bad ignore rule with a notice and keeps the rules", async () => {
		const before = await h.page.locator(".vellum-ignore").inputValue();
		const head = (await top()).id;
		await change(".vellum-ignore", `${before}\nnotes/{a`);
		await expect.poll(() => h.call("notices").then((n) => n.at(-1) ?? "")).toContain("notes/{a");
		expect((await top()).id).toBe(head);
		await expect.poll(() => h.page.locator(".vellum-ignore").inputValue()).toBe(before);
	});

	it("writes log level and retention to this device's config", async () => {
		await h.page.locator(".vellum-settings select").selectOption("debug");
		await eventually("level = debug", () => (config().includes('level = "debug"') ? true : undefined));
		await change(".vellum-retention", "30");
		await eventually("retention_days = 30", () => (config().includes("retention_days = 30") ? true : undefined));
		await change(".vellum-retention", "0");
		await expect.poll(() => h.call("notices").then((n) => n.at(-1) ?? "")).toContain("from 1 to 3650");
		expect(config()).toContain("retention_days = 30");
	});

	it("lists the other devices and removes one after asking", async () => {
		const row = h.page.locator(".vellum-settings .setting-item", { hasText: "old tablet" });
		await row.waitFor();
		expect(await row.textContent()).toContain("never seen");
		await row.locator("button", { hasText: "Remove" }).click();
		await h.page.locator(".modal-container .vellum-confirm").click();
		await eventually("old tablet removed", async () => {
			const peers = await vellumJson<{ name: string | null }[]>(vault, "peers");
			return peers.some((p) => p.name === "old tablet") ? undefined : true;
		});
		await h.page.locator(".vellum-settings .setting-item", { hasText: "old tablet" }).waitFor({ state: "detached" });
	});

	it("turns internet sync on, restarting the daemon, and refuses a bad relay address", async () => {
		const started = h.started();
		await h.page.locator(".vellum-settings .setting-item", { hasText: "Sync over the internet" }).locator("input[type=checkbox]").click();
		await eventually("internet = true", () => (config().includes("internet = true") ? true : undefined));
		await eventually("a restarted daemon", () => (h.started() > started ? true : undefined));
		await expect.poll(() => h.page.locator(".status-bar-item").textContent(), { timeout: 20_000 }).toBe("Vellum: offline");

		await openSettings();
		await change(".vellum-relays", "not an address");
		await expect.poll(() => h.call("notices").then((n) => n.at(-1) ?? "")).toContain("not an address");
		expect(config()).not.toContain("not an address");
		await screenshot(h.page, "settings");
	});
});
