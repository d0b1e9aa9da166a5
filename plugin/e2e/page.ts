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
import type { PageHarness } from "./support";

interface Bindings {
	/** Starts a daemon on the Node side; its link's number, or null when it could not. */
	__vellumConnect(): Promise<number | null>;
	__vellumSend(link: number, line: string): Promise<void>;
	__vellumHangUp(link: number): Promise<void>;
	/** Runs `vellum join` on the Node side, for the test's joining folder. */
	__vellumJoin(code: string): Promise<void>;
	__vellumJoinConfirm(match: boolean): Promise<void>;
	__vellumJoinCancel(): Promise<void>;
}

interface PageGlobals {
	require(id: string): unknown;
	module: { exports: Record<string, unknown> };
	exports: Record<string, unknown>;
	__vellumDeliver(link: number, line: string): void;
	__vellumClosed(link: number, reason: string, end: LinkEnd): void;
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

/** The sinks of the links the bridge made, by number: a daemon that is stopping still reports to its own. */
const sinks = new Map<number, LinkSink>();
w.__vellumDeliver = (link, line) => sinks.get(link)?.line(line);
w.__vellumClosed = (link, reason, end) => {
	sinks.get(link)?.closed(reason, end);
	sinks.delete(link);
};

/** A link whose far end is the Node bridge. */
class BridgeLink implements Link {
	private sending: Promise<void> = Promise.resolve();

	constructor(private readonly id: number) {}

	send(line: string): void {
		// In order: each binding call is its own round trip.
		// A daemon that stopped reports that through its sink; the lost line does not matter then.
		this.sending = this.sending.then(() => w.__vellumSend(this.id, line)).catch(() => {});
	}

	close(): void {
		void w.__vellumHangUp(this.id);
	}

	listen(sink: LinkSink): void {
		sinks.set(this.id, sink);
	}
}

const launcher: Launcher = {
	async attach() {
		const id = await w.__vellumConnect();
		return id === null ? null : new BridgeLink(id);
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

class Harness implements PageHarness {
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

	/** The settings tab, drawn into the page; resolves once the daemon's part is there. */
	async openSettings(): Promise<void> {
		const session = this.session;
		if (session === null) throw new Error("start() first");
		const plugin = new obsidian.Plugin(this.app, obsidian.createManifest());
		const settings = { binaryPath: "" };
		const host = {
			settings,
			vellum: session,
			updateSettings: (change: Partial<typeof settings>) => {
				Object.assign(settings, change);
				return Promise.resolve();
			},
			restartDaemon: () => session.daemon.restart(),
		};
		const tab = new (bundle().VellumSettingTab)(this.app, plugin as never, host);
		document.body.appendChild(tab.containerEl);
		await tab.draw();
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
