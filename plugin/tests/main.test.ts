// The plugin class against the obsidian shim; the daemon is a fake link.
import { beforeEach, describe, expect, it, vi } from "vitest";
import { RPC_PROTOCOL } from "../src/client/methods";
import VellumPlugin from "../src/main";
import { HistoryView, VIEW_TYPE_HISTORY } from "../src/obsidian/HistoryView";
import { VellumSettingTab } from "../src/obsidian/SettingsTab";
import { commandsOf, createApp, createManifest, FileSystemAdapter, notices, OtherAdapter, settingTabsOf, setStoredData, statusBarItemsOf, storedDataOf, type Workspace } from "./__mocks__/obsidian";
import { FakeLink, settle } from "./support/fakes";

const links: FakeLink[] = [];
const binaries: string[] = [];

vi.mock("../src/client/node", () => ({
	bundledBinary: () => null,
	initVault: () => Promise.resolve(null),
	nodeLauncher: (_vault: string, binary: () => string) => ({
		attach: () => Promise.resolve(null),
		spawn: () => {
			binaries.push(binary());
			const link = new FakeLink();
			links.push(link);
			return link;
		},
		binary,
	}),
}));

const STATUS = {
	head: "vv:a",
	ops: 3,
	files: 2,
	conflicts: 0,
	pending: 0,
	quarantined: 0,
	journal_bytes: 100,
	device: "aaaaaaaaaaaaaaaa",
	vault: "v",
	stale: null,
	network: { peer_id: "p", listening: [], connected: 1, incoming_ops: 0, chunks_received: 0 },
};

/** Plays a daemon through hello, subscribe and the first reads. */
async function serve(link: FakeLink): Promise<void> {
	await settle();
	link.answer("hello", { protocol: RPC_PROTOCOL, version: "0.1.0" });
	await settle();
	link.answer("subscribe", { subscribed: true });
	await settle();
	link.answer("status", STATUS);
	link.answer("conflicts", []);
	link.answer("quarantine.list", []);
	link.answer("vault.get", { device: STATUS.device, device_name: "laptop", ignore: [] });
	link.answer("peers", []);
	await settle();
}

async function loaded(adapter: FileSystemAdapter | OtherAdapter = new FileSystemAdapter("/vaults/my vault")): Promise<VellumPlugin> {
	const plugin = new VellumPlugin(createApp(adapter), createManifest());
	await plugin.onload();
	return plugin;
}

beforeEach(() => {
	links.length = 0;
	binaries.length = 0;
	document.body.empty();
});

describe("VellumPlugin", () => {
	it("starts the daemon once the layout is ready and shows its state in the status bar", async () => {
		const plugin = await loaded();
		const [item] = statusBarItemsOf(plugin);
		expect(links).toHaveLength(1);
		expect(binaries).toEqual(["vellum"]);
		expect(item?.getText()).toBe("Vellum: starting…");
		await serve(links[0]!);
		expect(item?.getText()).toBe("Vellum: synced");
		links[0]!.event({ kind: "status", status: { ...STATUS, conflicts: 2 } });
		expect(item?.getText()).toBe("Vellum: 2 conflicts");
		expect(item?.getAttr("data-state")).toBe("conflicts");
	});

	it("registers the history view, its commands and the settings tab", async () => {
		const plugin = await loaded();
		expect(commandsOf(plugin).map((c) => c.id)).toEqual(["open-conflicts", "pair-device", "join-vault", "review-held", "open-history", "file-history", "restart-daemon", "set-up-vault"]);
		expect(settingTabsOf(plugin)[0]).toBeInstanceOf(VellumSettingTab);
		await serve(links[0]!);
		const opening = plugin.openHistory();
		await settle();
		links[0]!.answer("log", []);
		await opening;
		const workspace = plugin.app.workspace as unknown as Workspace;
		expect(workspace.getLeavesOfType(VIEW_TYPE_HISTORY)[0]?.view).toBeInstanceOf(HistoryView);
	});

	it("opens the history view when the status bar is clicked", async () => {
		const plugin = await loaded();
		await serve(links[0]!);
		statusBarItemsOf(plugin)[0]!.click();
		await settle();
		expect(links[0]!.sent.some((r) => r.method === "log")).toBe(true);
	});

	it("tells the user when the binary is missing", async () => {
		await loaded();
		links[0]!.end("could not run vellum", { kind: "spawn_failed", code: "ENOENT", message: "spawn vellum ENOENT" });
		expect(notices.at(-1)).toContain("Vellum: binary not found");
	});

	it("restarts the daemon with a new binary path, and stores it", async () => {
		const plugin = await loaded();
		await serve(links[0]!);
		await plugin.updateSettings({ binaryPath: "/opt/vellum/bin/vellum" });
		await settle();
		expect(links[0]!.closedByClient).toBe(true);
		expect(binaries).toEqual(["vellum", "/opt/vellum/bin/vellum"]);
		expect(storedDataOf(plugin)).toEqual({ binaryPath: "/opt/vellum/bin/vellum" });
	});

	it("reads a stored binary path on load", async () => {
		const plugin = new VellumPlugin(createApp(new FileSystemAdapter("/v")), createManifest());
		setStoredData(plugin, { binaryPath: "/usr/local/bin/vellum" });
		await plugin.onload();
		expect(binaries).toEqual(["/usr/local/bin/vellum"]);
	});

	it("does nothing but say so for a vault not stored in a folder", async () => {
		const plugin = await loaded(new OtherAdapter());
		expect(statusBarItemsOf(plugin)[0]?.getText()).toBe("Vellum: unsupported vault");
		expect(links).toHaveLength(0);
	});

	it("stops the daemon on unload", async () => {
		const plugin = await loaded();
		await serve(links[0]!);
		plugin.onunload();
		expect(links[0]!.closedByClient).toBe(true);
	});
});
