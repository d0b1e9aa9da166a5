import { PluginSettingTab, Setting, type App, type Plugin, type SettingDefinitionItem } from "obsidian";
import { DEFAULT_BINARY, type VellumSettings } from "../settings";

/** What the settings tab needs from the plugin. */
export interface SettingsHost {
	readonly settings: Readonly<VellumSettings>;
	/** Stores a change and applies it (re-checks the status). */
	updateSettings(change: Partial<VellumSettings>): Promise<void>;
}

const BINARY_PATH_NAME = "Binary path";
const BINARY_PATH_DESC = `Full path to the Vellum command line program. Leave empty to run '${DEFAULT_BINARY}' from the search path.`;

export class VellumSettingTab extends PluginSettingTab {
	constructor(
		app: App,
		plugin: Plugin,
		private readonly host: SettingsHost,
	) {
		super(app, plugin);
	}

	// Obsidian 1.13 and later render these definitions (and index them for
	// settings search); display() below is the fallback for older versions.
	override getSettingDefinitions(): SettingDefinitionItem[] {
		return [
			{
				name: BINARY_PATH_NAME,
				desc: BINARY_PATH_DESC,
				control: { type: "text", key: "binaryPath", placeholder: DEFAULT_BINARY },
			},
		];
	}

	override getControlValue(key: string): unknown {
		return key === "binaryPath" ? this.host.settings.binaryPath : undefined;
	}

	override async setControlValue(key: string, value: unknown): Promise<void> {
		if (key === "binaryPath" && typeof value === "string") {
			await this.host.updateSettings({ binaryPath: value });
		}
	}

	override display(): void {
		const { containerEl } = this;
		containerEl.empty();
		new Setting(containerEl)
			.setName(BINARY_PATH_NAME)
			.setDesc(BINARY_PATH_DESC)
			.addText((text) =>
				text
					.setPlaceholder(DEFAULT_BINARY)
					.setValue(this.host.settings.binaryPath)
					.onChange(async (value) => {
						await this.host.updateSettings({ binaryPath: value });
					}),
			);
	}
}
