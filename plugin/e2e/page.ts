// The harness page's side of the end-to-end tests, bundled for Chromium.
//
// It provides what Obsidian provides: the `obsidian` module (the shim that
// the unit tests use, over Chromium's real DOM) and `require`, so that the
// plugin's built main.js loads as it does in Obsidian. The views come from
// that bundle; the daemon link goes through bindings the Node side exposes
// (bridge.ts) to a real `vellum serve --stdio`.
import * as obsidian from "../tests/__mocks__/obsidian";
import type { View, WorkspaceLeaf } from "obsidian";
import type * as Bundle from "../src/main";
import type { Launcher, Link, LinkEnd, LinkSink } from "../src/client/daemon";
import type { JoinEvents, Joiner } from "../src/pairing";

interface Bindings {
	/** Starts a daemon on the Node side; false when it could not. */
	__vellumConnect(): Promise<boolean>;
	__vellumSend(line: string): Promise<void>;
	__vellumHangUp(): Promise<void>;
	/** Runs `vellum join` on the Node side, for the test's joining folder. */
	__vellumJoin(code: string): Promise<void>;
	__vellumJoinConfirm(match: boolean): Promise<void>;
	__vellumJoinCancel(): Promise<void>;
}

interface PageGlobals {
	require(id: string): unknown;
	module: { exports: Record<string, unknown> };
	exports: Record<string, unknown>;
	__vellumDeliver(line: string): void;
	__vellumClosed(reason: string, end: LinkEnd): void;
	__vellumJoinEvent(kind: keyof JoinEvents, arg: string): void;
	harness: Harness;
}

const w = window as unknown as Window & Bindings & PageGlobals;

// Node builtins in the bundle are only touched when the plugin spawns a
// process, which the harness does through the bridge instead.
w.require = (id: string) => (id === "obsidian" ? obsidian : {});
w.module = { exports: {} };
w.exports = w.module.exports;

function bundle(): typeof Bundle {
	return w.module.exports as unknown as typeof Bundle;
}

/** A link whose far end is the Node bridge. */
class BridgeLink implements Link {
	private sink: LinkSink | null = null;
	private sending: Promise<void> = Promise.resolve();

	send(line: string): void {
		// In order: each binding call is its own round trip.
		this.sending = this.sending.then(() => w.__vellumSend(line));
	}

	close(): void {
		void w.__vellumHangUp();
	}

	listen(sink: LinkSink): void {
		this.sink = sink;
		w.__vellumDeliver = (line) => this.sink?.line(line);
		w.__vellumClosed = (reason, end) => this.sink?.closed(reason, end);
	}
}

const launcher: Launcher = {
	async attach() {
		return (await w.__vellumConnect()) ? new BridgeLink() : null;
	},
	spawn() {
		throw new Error("the harness connects through the bridge only");
	},
	binary: () => "vellum",
};

/** A joiner whose `vellum join` process runs on the Node side. */
const joiner: Joiner = {
	join(code, events) {
		w.__vellumJoinEvent = (kind, arg) => events[kind](arg);
		void w.__vellumJoin(code);
		return {
			confirm: (match) => void w.__vellumJoinConfirm(match),
			cancel: () => void w.__vellumJoinCancel(),
		};
	},
};

class Harness {
	readonly app = obsidian.createApp(new obsidian.FileSystemAdapter("/vault"));
	session: InstanceType<typeof Bundle.VaultSession> | null = null;
	history: InstanceType<typeof Bundle.HistoryView> | null = null;
	statusEl: HTMLElement | null = null;

	/** Connects to the daemon and shows the status bar; resolves once connected. */
	async start(): Promise<void> {
		const b = bundle();
		const daemon = new b.Daemon(launcher, { set: (cb, ms) => window.setTimeout(cb, ms), clear: (h) => window.clearTimeout(h as number) }, Date.now);
		this.session = new b.VaultSession(daemon);
		this.statusEl = document.body.createDiv({ cls: "status-bar-item" });
		new b.StatusBar(this.statusEl, this.session.store, () => void this.openHistory());
		const ready = new Promise<void>((resolve) => daemon.onReady(() => resolve()));
		daemon.start();
		await ready;
	}

	/** Opens the history view (of one file, given its path). */
	async openHistory(path?: string): Promise<void> {
		const session = this.session;
		if (session === null) throw new Error("start() first");
		if (this.history === null) {
			const leaf = new obsidian.WorkspaceLeaf(this.app);
			this.history = new (bundle().HistoryView)(leaf as unknown as WorkspaceLeaf, session);
			const view: unknown = this.history;
			await leaf.open(view as View);
		}
		if (path === undefined) await this.history.showVault();
		else await this.history.showFile(path);
	}

	async openConflicts(path?: string): Promise<void> {
		const session = this.session;
		if (session === null) throw new Error("start() first");
		const leaf = new obsidian.WorkspaceLeaf(this.app);
		const view = new (bundle().ConflictsView)(leaf as unknown as WorkspaceLeaf, session);
		const asView: unknown = view;
		await leaf.open(asView as View);
		if (path !== undefined) await view.show(path);
	}

	openInvite(): void {
		if (this.session === null) throw new Error("start() first");
		new (bundle().InviteModal)(this.app, this.session).open();
	}

	openJoin(): void {
		new (bundle().JoinModal)(this.app, joiner, () => {}).open();
	}

	openQuarantine(): void {
		if (this.session === null) throw new Error("start() first");
		new (bundle().QuarantineModal)(this.app, this.session).open();
	}

	notices(): string[] {
		return obsidian.notices;
	}
}

w.harness = new Harness();
