// The plugin class against the obsidian shim, with execFile mocked.
import { execFile } from "child_process";
import { afterEach, beforeEach, describe, expect, it, vi, type Mock } from "vitest";
import VellumPlugin from "../src/main";
import type { ExecFileError } from "../src/run";
import {
	createApp,
	createManifest,
	FileSystemAdapter,
	OtherAdapter,
	settingsIn,
	settingTabsOf,
	setStoredData,
	statusBarItemsOf,
	storedDataOf,
	type FakeElement,
} from "./__mocks__/obsidian";

vi.mock("child_process", () => ({ execFile: vi.fn() }));

type ExecFileCallback = (error: ExecFileError | null, stdout: string, stderr: string) => void;
const execFileMock = execFile as unknown as Mock<
	(file: string, args: readonly string[], options: Record<string, unknown>, callback: ExecFileCallback) => void
>;

/** Makes every execFile call answer like this, asynchronously as the real one does. */
function answer(error: ExecFileError | null, stdout: string, stderr = ""): void {
	execFileMock.mockImplementation((_file, _args, _options, callback) => {
		queueMicrotask(() => callback(error, stdout, stderr));
	});
}

const STATUS = {
	head: "7f3e",
	ops: 10,
	files: 42,
	conflicts: 2,
	pending: 0,
	quarantined: 0,
	journal_bytes: 4096,
	device: "laptop",
	vault: "v1",
};

let intervals: { handler: () => void; ms: number }[] = [];
let clearIntervalMock: Mock<(id: number) => void>;

beforeEach(() => {
	intervals = [];
	clearIntervalMock = vi.fn<(id: number) => void>();
	// Tests run in Node: `window` holds just the timers the plugin uses, so
	// the test can fire the interval by hand.
	vi.stubGlobal("window", {
		setInterval: (handler: () => void, ms: number): number => intervals.push({ handler, ms }),
		clearInterval: clearIntervalMock,
	});
	execFileMock.mockReset();
});

afterEach(() => {
	vi.unstubAllGlobals();
});

function newPlugin(adapter: FileSystemAdapter | OtherAdapter = new FileSystemAdapter("/home/a/notes")): VellumPlugin {
	return new VellumPlugin(createApp(adapter), createManifest());
}

function onlyStatusBarItem(plugin: VellumPlugin): FakeElement {
	const items = statusBarItemsOf(plugin);
	expect(items).toHaveLength(1);
	return items[0] as FakeElement;
}

describe("VellumPlugin", () => {
	it("on load shows the vault's status from `vellum status --json`", async () => {
		answer(null, JSON.stringify(STATUS));
		const plugin = newPlugin();
		await plugin.onload();

		const item = onlyStatusBarItem(plugin);
		await vi.waitFor(() => expect(item.getText()).toBe("Vellum: 42 files, 2 conflicts"));
		expect(execFileMock).toHaveBeenCalledTimes(1);
		const [file, args, options] = execFileMock.mock.calls[0] ?? [];
		expect(file).toBe("vellum");
		expect(args).toEqual(["status", "--json", "--vault", "/home/a/notes"]);
		expect(options).toMatchObject({ timeout: 10_000, maxBuffer: 1024 * 1024 });
		expect(settingTabsOf(plugin)).toHaveLength(1);
	});

	it("uses the configured binary and says when it is missing", async () => {
		answer({ message: "spawn /opt/vellum/bin/vellum ENOENT", code: "ENOENT" }, "");
		const plugin = newPlugin();
		setStoredData(plugin, { binaryPath: "/opt/vellum/bin/vellum" });
		await plugin.onload();

		const item = onlyStatusBarItem(plugin);
		await vi.waitFor(() => expect(item.getText()).toBe("Vellum: binary not found"));
		expect(execFileMock.mock.calls[0]?.[0]).toBe("/opt/vellum/bin/vellum");
		expect(item.getAttr("aria-label")).toContain("/opt/vellum/bin/vellum");
	});

	it("says when the vault has no Vellum journal", async () => {
		answer(
			{ message: "Command failed", code: 1 },
			"",
			"no vault here (no .vellum/ found upward from /home/a/notes); run 'vellum init'\n",
		);
		const plugin = newPlugin();
		await plugin.onload();

		const item = onlyStatusBarItem(plugin);
		await vi.waitFor(() => expect(item.getText()).toBe("Vellum: not initialised"));
		expect(item.getAttr("aria-label")).toBe(
			"no vault here (no .vellum/ found upward from /home/a/notes); run 'vellum init'",
		);
	});

	it("runs nothing for a vault that is not a folder on disk", async () => {
		const plugin = newPlugin(new OtherAdapter());
		await plugin.onload();

		const item = onlyStatusBarItem(plugin);
		await vi.waitFor(() => expect(item.getText()).toBe("Vellum: unsupported vault"));
		expect(execFileMock).not.toHaveBeenCalled();
	});

	it("re-checks every 30 s until unloaded, then cleans up", async () => {
		answer(null, JSON.stringify(STATUS));
		const plugin = newPlugin();
		await plugin.onload();
		const item = onlyStatusBarItem(plugin);
		await vi.waitFor(() => expect(item.getText()).toBe("Vellum: 42 files, 2 conflicts"));

		expect(intervals).toHaveLength(1);
		const interval = intervals[0];
		expect(interval?.ms).toBe(30_000);
		answer(null, JSON.stringify({ ...STATUS, files: 43, conflicts: 0 }));
		interval?.handler();
		await vi.waitFor(() => expect(item.getText()).toBe("Vellum: 43 files, 0 conflicts"));
		expect(execFileMock).toHaveBeenCalledTimes(2);

		plugin.unload();
		expect(clearIntervalMock).toHaveBeenCalledWith(1);
		expect(item.removed).toBe(true);
	});

	it("saves a new binary path from the settings tab and re-checks with it", async () => {
		answer(null, JSON.stringify(STATUS));
		const plugin = newPlugin();
		await plugin.onload();
		const item = onlyStatusBarItem(plugin);
		await vi.waitFor(() => expect(item.getText()).toBe("Vellum: 42 files, 2 conflicts"));

		const tab = settingTabsOf(plugin)[0];
		if (tab === undefined) throw new Error("no settings tab");
		tab.display();
		const settings = settingsIn(tab.containerEl);
		expect(settings.map((setting) => setting.name)).toEqual(["Binary path"]);
		const text = settings[0]?.texts[0];
		expect(text?.placeholder).toBe("vellum");
		expect(text?.value).toBe("");

		answer({ message: "spawn /usr/local/bin/vellum ENOENT", code: "ENOENT" }, "");
		await text?.type("/usr/local/bin/vellum");
		expect(storedDataOf(plugin)).toEqual({ binaryPath: "/usr/local/bin/vellum" });
		expect(plugin.settings.binaryPath).toBe("/usr/local/bin/vellum");
		expect(execFileMock.mock.calls.at(-1)?.[0]).toBe("/usr/local/bin/vellum");
		expect(item.getText()).toBe("Vellum: binary not found");
	});

	it("offers the same setting declaratively for Obsidian 1.13+", async () => {
		answer(null, JSON.stringify(STATUS));
		const plugin = newPlugin();
		setStoredData(plugin, { binaryPath: "/bin/vellum" });
		await plugin.onload();
		const tab = settingTabsOf(plugin)[0];
		if (tab === undefined) throw new Error("no settings tab");

		const definitions = tab.getSettingDefinitions();
		expect(definitions).toHaveLength(1);
		expect(definitions[0]).toMatchObject({ name: "Binary path", control: { type: "text", key: "binaryPath" } });
		expect(tab.getControlValue("binaryPath")).toBe("/bin/vellum");
		expect(tab.getControlValue("other")).toBeUndefined();
		await tab.setControlValue("binaryPath", "/opt/vellum");
		expect(storedDataOf(plugin)).toEqual({ binaryPath: "/opt/vellum" });
	});
});
