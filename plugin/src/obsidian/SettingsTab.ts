// The settings tab. Everything but the binary path belongs to the daemon:
// the device name and the ignore rules are ops in the vault's journal
// (vault-wide), the network and log settings are this device's
// `.vellum/config.toml`. Each change is sent, and what the daemon answers
// is what the tab shows.
import { Modal, Notice, PluginSettingTab, Setting, type App, type Plugin } from "obsidian";
import type { Vellum } from "../client/session";
import type { PeerEntry } from "../rpc/PeerEntry";
import type { Settings } from "../rpc/Settings";
import type { VaultInfo } from "../rpc/VaultInfo";
import { DEFAULT_BINARY, parseLines, retentionProblem, type VellumSettings } from "../settings";
import { errorMessage, shortId } from "../text";

/** What the settings tab needs from the plugin. */
export interface SettingsHost {
	readonly settings: Readonly<VellumSettings>;
	/** Stores a change to the plugin's own settings and applies it. */
	updateSettings(change: Partial<VellumSettings>): Promise<void>;
	/** The daemon connection, while there is one. */
	readonly vellum: Vellum | null;
	/** Restarts the daemon, so network settings apply. */
	restartDaemon(): void;
}

const LOG_LEVELS = ["error", "warn", "info", "debug", "trace"];

export class VellumSettingTab extends PluginSettingTab {
	/** Bumped per render: an answer for an older render is dropped. */
	private render = 0;

	constructor(
		app: App,
		plugin: Plugin,
		private readonly host: SettingsHost,
	) {
		super(app, plugin);
	}

	// The tab reads the daemon as it opens, which the declarative settings
	// of Obsidian 1.13 cannot express; display() renders it on every version.
	override getSettingDefinitions(): [] {
		return [];
	}

	override display(): void {
		void this.draw();
	}

	/** Renders the tab; resolves when the daemon's part is drawn. */
	async draw(): Promise<void> {
		const render = ++this.render;
		const { containerEl } = this;
		containerEl.empty();
		containerEl.addClass("vellum-settings");
		const daemonEl = containerEl.createDiv({ cls: "vellum-settings-daemon" });
		const localEl = containerEl.createDiv();
		this.drawBinary(localEl);

		const vellum = this.host.vellum;
		if (vellum === null || vellum.store.state.connection.kind !== "ready") {
			daemonEl.createDiv({ cls: "vellum-note", text: "Sync settings appear here once the Vellum daemon runs for this vault." });
			return;
		}
		daemonEl.createDiv({ cls: "vellum-note", text: "Loading…" });
		let vault: VaultInfo;
		let settings: Settings;
		let peers: PeerEntry[];
		try {
			[vault, settings, peers] = await Promise.all([vellum.call("vault.get"), vellum.call("settings.get"), vellum.call("peers")]);
		} catch (error) {
			if (render !== this.render) return;
			daemonEl.empty();
			daemonEl.createDiv({ cls: "vellum-error", text: `Could not read the settings: ${errorMessage(error)}` });
			return;
		}
		if (render !== this.render) return;
		daemonEl.empty();
		this.drawDevice(daemonEl, vellum, vault);
		this.drawPeers(daemonEl, vellum, peers, vault.device);
		this.drawNetwork(daemonEl, vellum, settings);
		this.drawIgnore(daemonEl, vellum, vault);
		this.drawLogs(daemonEl, vellum, settings);
	}

	private drawDevice(el: HTMLElement, vellum: Vellum, vault: VaultInfo): void {
		new Setting(el)
			.setName("Device name")
			.setDesc(`How this device (${shortId(vault.device)}) appears on the others.`)
			.addText((text) => {
				text.setValue(vault.device_name);
				text.inputEl.addClass("vellum-device-name");
				text.inputEl.addEventListener("change", () => {
					void this.save(vellum, () => vellum.call("vault.set", { device_name: text.getValue() }));
				});
			});
	}

	private drawPeers(el: HTMLElement, vellum: Vellum, peers: PeerEntry[], me: string): void {
		new Setting(el).setName("Devices").setHeading();
		const others = peers.filter((p) => p.device !== me);
		if (others.length === 0) {
			el.createDiv({ cls: "vellum-note", text: "No other device yet. Pair one with the command \"Pair a device\"." });
		}
		for (const peer of others) {
			const seen = peer.connected ? "connected" : peer.last_seen === null ? "never seen" : `last seen ${peer.last_seen}`;
			const behind = peer.behind_ops > 0 ? `, ${peer.behind_ops} ops behind` : "";
			new Setting(el)
				.setName(peer.name ?? shortId(peer.device))
				.setDesc(`${shortId(peer.device)} · ${peer.role} · ${seen}${behind}`)
				.addButton((b) =>
					b
						.setButtonText("Remove")
						// setWarning() is deprecated from 1.13, its successor new there.
						.then((button) => button.buttonEl.addClass("mod-warning"))
						.onClick(() => {
							new ConfirmModal(this.app, `Remove ${peer.name ?? shortId(peer.device)}?`, "It can no longer connect, and it cannot read anything written from now on. What it already has, it keeps.", "Remove", async () => {
								const r = await vellum.call("cli", { argv: ["member", "remove", peer.device], cwd: "/" });
								if (r.code !== 0) throw new Error(r.stderr.trim().replace(/^vellum: /, ""));
								new Notice(`Vellum: removed ${peer.name ?? shortId(peer.device)}`);
								await this.draw();
							}).open();
						}),
				);
		}
	}

	private drawNetwork(el: HTMLElement, vellum: Vellum, settings: Settings): void {
		new Setting(el).setName("Network").setHeading();
		el.createDiv({ cls: "vellum-note", text: "Network settings apply when the daemon restarts; changing one restarts it." });
		new Setting(el)
			.setName("Sync on the local network")
			.setDesc("Find this vault's other devices on the local network.")
			.addToggle((t) =>
				t.setValue(settings.mdns).onChange((mdns) => {
					void this.saveSettings(vellum, { ...settings, mdns }, true);
				}),
			);
		new Setting(el)
			.setName("Sync over the internet")
			.setDesc("Reach devices beyond the local network through relays, with hole punching. Off by default.")
			.addToggle((t) =>
				t.setValue(settings.internet).onChange((internet) => {
					void this.saveSettings(vellum, { ...settings, internet }, true);
				}),
			);
		new Setting(el)
			.setName("Relays")
			.setDesc("One address per line, each ending in /p2p/<peer id> (\"vellum relay\" prints them).")
			.addTextArea((t) => {
				t.setValue(settings.relays.join("\n"));
				t.inputEl.addClass("vellum-relays");
				t.inputEl.addEventListener("change", () => {
					void this.saveSettings(vellum, { ...settings, relays: parseLines(t.getValue()) }, true);
				});
			});
	}

	private drawIgnore(el: HTMLElement, vellum: Vellum, vault: VaultInfo): void {
		new Setting(el).setName("Ignored files").setHeading();
		new Setting(el)
			.setName("Ignore rules")
			.setDesc("Gitignore syntax, one rule per line; a leading / anchors a rule at the vault root. Shared by every device of the vault. A file already synced stays in the history when a rule starts to ignore it.")
			.addTextArea((t) => {
				t.setValue(vault.ignore.join("\n"));
				t.inputEl.addClass("vellum-ignore");
				t.inputEl.rows = Math.min(16, Math.max(4, vault.ignore.length + 1));
				t.inputEl.addEventListener("change", () => {
					void this.save(vellum, () => vellum.call("vault.set", { ignore: parseLines(t.getValue()) }));
				});
			});
	}

	private drawLogs(el: HTMLElement, vellum: Vellum, settings: Settings): void {
		new Setting(el).setName("Logs").setHeading();
		new Setting(el)
			.setName("Log level")
			.setDesc("What the daemon writes to .vellum/logs/. Note content never appears in logs.")
			.addDropdown((d) => {
				for (const level of LOG_LEVELS) d.addOption(level, level);
				d.setValue(settings.log.level).onChange((level) => {
					void this.saveSettings(vellum, { ...settings, log: { ...settings.log, level } }, false);
				});
			});
		new Setting(el)
			.setName("Keep logs for (days)")
			.addText((t) => {
				t.setValue(String(settings.log.retention_days));
				t.inputEl.addClass("vellum-retention");
				t.inputEl.addEventListener("change", () => {
					const days = Number(t.getValue().trim());
					const problem = retentionProblem(days);
					if (problem !== null) {
						new Notice(`Vellum: ${problem}`);
						t.setValue(String(settings.log.retention_days));
						return;
					}
					void this.saveSettings(vellum, { ...settings, log: { ...settings.log, retention_days: days } }, false);
				});
			});
	}

	private drawBinary(el: HTMLElement): void {
		new Setting(el).setName("This plugin").setHeading();
		new Setting(el)
			.setName("Binary path")
			.setDesc(`Full path to the Vellum program. Leave empty to use the one in the plugin folder, or '${DEFAULT_BINARY}' from the search path.`)
			.addText((text) => {
				text.setPlaceholder(DEFAULT_BINARY).setValue(this.host.settings.binaryPath);
				text.inputEl.addClass("vellum-binary");
				text.inputEl.addEventListener("change", () => {
					void this.host.updateSettings({ binaryPath: text.getValue() });
				});
			});
	}

	private async saveSettings(vellum: Vellum, settings: Settings, restart: boolean): Promise<void> {
		await this.save(vellum, () => vellum.call("settings.set", settings));
		if (restart) this.host.restartDaemon();
	}

	/** Sends a change; shows the daemon's refusal, and draws what it now holds either way. */
	private async save(vellum: Vellum, change: () => Promise<unknown>): Promise<void> {
		try {
			await change();
		} catch (error) {
			new Notice(`Vellum: ${errorMessage(error)}`);
		}
		if (vellum === this.host.vellum) await this.draw();
	}
}

/** Asks before something that cannot be taken back. */
export class ConfirmModal extends Modal {
	constructor(
		app: App,
		private readonly title: string,
		private readonly body: string,
		private readonly action: string,
		private readonly run: () => Promise<void>,
	) {
		super(app);
	}

	override onOpen(): void {
		this.setTitle(this.title);
		this.contentEl.createEl("p", { text: this.body });
		const buttons = this.contentEl.createDiv({ cls: "modal-button-container" });
		buttons.createEl("button", { text: "Cancel", cls: "vellum-cancel" }).addEventListener("click", () => this.close());
		const go = buttons.createEl("button", { text: this.action, cls: "vellum-confirm mod-warning" });
		go.addEventListener("click", () => {
			go.disabled = true;
			this.run()
				.then(() => this.close())
				.catch((error: unknown) => {
					new Notice(`Vellum: ${errorMessage(error)}`);
					go.disabled = false;
				});
		});
	}

	override onClose(): void {
		this.contentEl.empty();
	}
}
