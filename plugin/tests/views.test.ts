// The views against a pretend daemon, in happy-dom: what they ask for and
// how they follow the store. The e2e suite runs them against a real one.
import { beforeEach, describe, expect, it } from "vitest";
import type { Vellum } from "../src/client/session";
import type { MethodName, ParamsOf, ResultOf } from "../src/client/methods";
import { DeviceNames } from "../src/names";
import { HistoryView } from "../src/obsidian/HistoryView";
import { InviteModal } from "../src/obsidian/PairingModal";
import { RollbackModal } from "../src/obsidian/RollbackModal";
import type { LogEntry } from "../src/rpc/LogEntry";
import { Store } from "../src/state";
import { createApp, WorkspaceLeaf } from "./__mocks__/obsidian";
import { settle } from "./support/fakes";

/** A Vellum whose daemon answers from `answers`, recording every call. */
class FakeVellum implements Vellum {
	readonly store = new Store();
	readonly names = new DeviceNames();
	readonly calls: { method: string; params: unknown }[] = [];
	answers: Partial<{ [M in MethodName]: (params: ParamsOf<M>) => ResultOf<M> }> = {};

	call<M extends MethodName>(method: M, params?: ParamsOf<M>): Promise<ResultOf<M>> {
		this.calls.push({ method, params });
		const answer: unknown = this.answers[method];
		if (answer === undefined) return Promise.reject(new Error(`no answer for ${method}`));
		return Promise.resolve((answer as (p: ParamsOf<M> | undefined) => ResultOf<M>)(params));
	}

	methods(): string[] {
		return this.calls.map((c) => c.method);
	}
}

function entry(n: number): LogEntry {
	return { id: `op${String(n).padStart(10, "0")}`, author: "aaaaaaaaaaaa", seq: n, lamport: n, hlc: String(1000 + n), time: new Date(Date.UTC(2026, 10, 27, 1, n)).toISOString(), kind: "edit", path: "a.md", file: "f", summary: `edit ${n}` };
}

let vellum: FakeVellum;

beforeEach(() => {
	document.body.empty();
	vellum = new FakeVellum();
	vellum.store.setConnection({ kind: "ready", attached: false, version: "1" });
});

async function history(): Promise<HistoryView> {
	vellum.answers.log = () => [entry(3), entry(2), entry(1)];
	const leaf = new WorkspaceLeaf(createApp());
	const view = new HistoryView(leaf as never, vellum);
	await leaf.open(view);
	return view;
}

describe("HistoryView", () => {
	it("draws the newest page, one row per op, with its id", async () => {
		const view = await history();
		expect(Array.from(view.containerEl.querySelectorAll(".vellum-row")).map((r) => r.getAttribute("data-op"))).toEqual([entry(3).id, entry(2).id, entry(1).id]);
		expect(view.containerEl.querySelector<HTMLElement>(".vellum-load-more")?.isShown()).toBe(false);
	});

	it("puts a new op on top without asking the daemon again", async () => {
		const view = await history();
		const before = vellum.calls.length;
		vellum.store.apply({ kind: "ops", ops: [{ op: entry(4), provenance: { source: "local" } }], more: 0 });
		expect(vellum.calls.length).toBe(before);
		expect(view.containerEl.querySelector(".vellum-row")?.getAttribute("data-op")).toBe(entry(4).id);
	});

	it("reads the timeline again after the daemon comes back", async () => {
		await history();
		const logs = () => vellum.methods().filter((m) => m === "log").length;
		const before = logs();
		vellum.store.setConnection({ kind: "retrying", reason: "x", inMs: 1000, failures: 1 });
		vellum.store.setConnection({ kind: "starting" });
		expect(logs()).toBe(before);
		vellum.store.setConnection({ kind: "ready", attached: false, version: "1" });
		await settle();
		expect(logs()).toBe(before + 1);
	});

	it("shows the files as of a row's time when it is picked", async () => {
		const view = await history();
		vellum.answers["checkout.preview"] = (p) => ({ at: "vv:x", files: [{ path: `as-of-${p.at}.md`, file: "f", hash: "h", size: 1, mtime: "", kind: "text" }] });
		await view.select(entry(2));
		expect(vellum.calls.at(-1)).toEqual({ method: "checkout.preview", params: { at: entry(2).time } });
		expect(view.containerEl.querySelector(".vellum-tree-file")?.getAttribute("data-path")).toBe(`as-of-${entry(2).time}.md`);
	});
});

describe("RollbackModal", () => {
	it("asks only for the preview until confirmed, and cancelling writes nothing", async () => {
		vellum.answers["rollback.preview"] = () => ({ to: "vv:x", changes: [{ path: "b.md", action: "delete", from: null }], destructive: 1, needs_yes: false });
		const modal = new RollbackModal(createApp(), vellum, "2026-11-27T01:02:00.000Z", "then");
		modal.open();
		await settle();
		expect(modal.contentEl.querySelector("[data-path='b.md']")?.getAttribute("data-action")).toBe("delete");
		(modal.contentEl.querySelector(".vellum-cancel") as HTMLButtonElement).click();
		expect(vellum.methods()).toEqual(["rollback.preview"]);
		expect(document.body.querySelector(".vellum-rollback-modal")).toBeNull();
	});
});

describe("InviteModal", () => {
	const invite = { code: "vellum1abc", short_code: "12345678", expires_at: "2026-11-27T01:10:00.000Z", qr_svg: "<svg xmlns='http://www.w3.org/2000/svg'/>" };

	it("counts down to the expiry and says when it has passed", async () => {
		let now = Date.parse("2026-11-27T01:00:00.500Z");
		vellum.answers["invite.create"] = () => invite;
		const modal = new InviteModal(createApp(), vellum, () => now);
		modal.open();
		await settle();
		const countdown = () => modal.contentEl.querySelector(".vellum-countdown")?.textContent;
		expect(countdown()).toBe("Expires in 10:00");
		expect(modal.contentEl.querySelector(".vellum-short-code")?.textContent).toBe("1234-5678");
		now += 10 * 60_000;
		await new Promise((r) => window.setTimeout(r, 1100));
		expect(countdown()).toContain("expired");
		modal.close();
	});

	it("cancels the invite when closed before anyone joined, not after", async () => {
		vellum.answers["invite.create"] = () => invite;
		vellum.answers["invite.cancel"] = () => ({ cancelled: true });
		const open = new InviteModal(createApp(), vellum);
		open.open();
		await settle();
		open.close();
		expect(vellum.methods()).toEqual(["invite.create", "invite.cancel"]);

		const joined = new InviteModal(createApp(), vellum);
		joined.open();
		await settle();
		vellum.store.apply({ kind: "pairing", stage: "joined", device: "d".repeat(64), name: "phone", sas: "123456", reason: null });
		expect(joined.contentEl.querySelector(".vellum-joined")?.textContent).toContain("phone");
		joined.close();
		expect(vellum.methods()).toEqual(["invite.create", "invite.cancel", "invite.create"]);
	});
});
