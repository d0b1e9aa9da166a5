// Wires the plugin's lifecycle; the logic lives in the modules it imports.
import { Plugin } from "obsidian";
import { VellumSettingTab } from "./obsidian/SettingsTab";
import { StatusBar } from "./obsidian/StatusBar";
import { vaultBasePath } from "./obsidian/vault";
import { DEFAULT_SETTINGS, resolveBinary, settingsFromData, type VellumSettings } from "./settings";
import { STATUS_REFRESH_INTERVAL_MS } from "./status";

export default class VellumPlugin extends Plugin {
	// Plugin declares `settings?: unknown` (1.13+), which PluginSettingTab reads by default.
	override settings: VellumSettings = { ...DEFAULT_SETTINGS };
	private statusBar: StatusBar | null = null;

	override async onload(): Promise<void> {
		this.settings = settingsFromData(await this.loadData());

		const statusBar = new StatusBar(this.addStatusBarItem(), {
			binary: () => resolveBinary(this.settings.binaryPath),
			vaultPath: () => vaultBasePath(this.app),
		});
		this.statusBar = statusBar;

		this.addSettingTab(new VellumSettingTab(this.app, this, this));
		this.registerInterval(
			window.setInterval(() => {
				void statusBar.refresh();
			}, STATUS_REFRESH_INTERVAL_MS),
		);
		// Running a process during startup would slow Obsidian's launch.
		this.app.workspace.onLayoutReady(() => {
			void statusBar.refresh();
		});
	}

	override onunload(): void {
		// Obsidian removes the status bar item and clears the interval itself;
		// detaching stops a check still in flight from writing to the removed item.
		this.statusBar?.detach();
		this.statusBar = null;
	}

	async updateSettings(change: Partial<VellumSettings>): Promise<void> {
		this.settings = { ...this.settings, ...change };
		await this.saveData(this.settings);
		await this.statusBar?.refresh();
	}
}
