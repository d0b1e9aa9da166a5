// Pairing from the plugin's modals against real processes: the inviting
// vault's daemon shows its codes, QR and countdown; the join modal runs a
// real `vellum join` for a second folder; both show the same six digits;
// the person approves; the new device holds the vault.
import { existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeVault, openHarness, removeTree, screenshot, writeFile, type Harness } from "./support";


const VAULT_SETTINGS = '{\n  "spellcheck": true,\n  "vimMode": true\n}\n';
const PHONE_SETTINGS = '{\n  "spellcheck": false\n}\n';

let root: string;
let vault: string;
let joining: string;
let h: Harness;


beforeAll(async () => {
	({ root, vault } = await makeVault({ "welcome.md": "hello from the laptop\n", ".obsidian/app.json": VAULT_SETTINGS }));
	joining = join(root, "phone vault ✓");
	mkdirSync(joining);
	// The phone's folder is a vault Obsidian just made: its own settings.
	writeFile(joining, ".obsidian/app.json", PHONE_SETTINGS);
	h = await openHarness(vault, undefined, joining);
	await h.call("start");
});

afterAll(async () => {
	await h?.close();
	removeTree(root);
});

describe("pairing", () => {
	it("invites with a long code, a QR code and a countdown, and lets a device join after the digits match", async () => {
		await h.call("openInvite");
		const invite = h.page.locator(".vellum-invite");
		const long = invite.locator(".vellum-long-code");
		await long.waitFor();
		const code = await long.inputValue();
		expect(code.length).toBeGreaterThan(40);
		// The QR is drawn from the daemon's SVG.
		await expect.poll(() => invite.locator(".vellum-qr").evaluate((img) => (img as HTMLImageElement).naturalWidth)).toBeGreaterThan(0);
		expect(await invite.locator(".vellum-countdown").textContent()).toMatch(/^Expires in (9|10):\d\d$/);
		await screenshot(h.page, "pairing-invite");

		await h.call("openJoin");
		const joinModal = h.page.locator(".vellum-join");
		await joinModal.locator(".vellum-join-code").fill(code);
		await joinModal.locator(".vellum-join-go").click();
		const joinerSas = joinModal.locator(".vellum-sas");
		await joinerSas.waitFor({ timeout: 30_000 });
		const digits = await joinerSas.textContent();
		expect(digits).toMatch(/^\d{3} \d{3}$/);
		await joinModal.locator(".vellum-sas-yes").click();

		// The inviting side names the joiner and shows the same digits.
		const request = invite.locator('.vellum-pair-request[data-stage="request"]');
		await request.waitFor({ timeout: 30_000 });
		expect(await request.textContent()).toContain("e2e phone");
		expect(await request.locator(".vellum-sas").textContent()).toBe(digits);
		await screenshot(h.page, "pairing-approve");
		// The join modal lies over the invite: click the button itself.
		await request.locator(".vellum-approve").evaluate((b) => (b as HTMLButtonElement).click());

		await invite.locator('.vellum-pair-request[data-stage="joined"]').waitFor({ timeout: 30_000 });
		await joinModal.locator(".vellum-joined").waitFor({ timeout: 60_000 });
		expect(existsSync(join(joining, ".vellum"))).toBe(true);
		expect(readFileSync(join(joining, "welcome.md"), "utf8")).toBe("hello from the laptop\n");
		// Obsidian's settings differed: the vault's are in place, the phone's
		// are kept beside them, both still JSON, and the person is told.
		expect(readFileSync(join(joining, ".obsidian", "app.json"), "utf8")).toBe(VAULT_SETTINGS);
		const kept = readdirSync(join(joining, ".obsidian")).filter((n) => n.startsWith("app (conflict "));
		expect(kept).toHaveLength(1);
		const phone = readFileSync(join(joining, ".obsidian", kept[0]!), "utf8");
		expect(phone).toBe(PHONE_SETTINGS);
		expect(JSON.parse(phone)).toEqual({ spellcheck: false });
		const joined = await joinModal.locator(".vellum-joined").textContent();
		expect(joined).toContain(`.obsidian/${kept[0]!}`);
		expect(joined).toContain("reload Obsidian");
		await screenshot(h.page, "pairing-joined");
	});
});
