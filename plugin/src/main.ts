// Wires the plugin's lifecycle; the logic lives in the modules it imports.
import { Notice, Plugin, TFile, type WorkspaceLeaf } from "obsidian";
import { Daemon, type Connection } from "./client/daemon";
import { hostname } from "os";
import { bundledBinary, initVault, nodeJoiner, nodeLauncher } from "./client/node";
import { realTimers } from "./client/rpc";
import { VaultSession } from "./client/session";
import { ConflictsView, VIEW_TYPE_CONFLICTS } from "./obsidian/ConflictsView";
import { HistoryView, VIEW_TYPE_HISTORY } from "./obsidian/HistoryView";
import { OpenNotes } from "./obsidian/OpenNotes";
import { InviteModal, JoinModal } from "./obsidian/PairingModal";
import { QuarantineModal } from "./obsidian/QuarantineModal";
import { VellumSettingTab } from "./obsidian/SettingsTab";
import { StatusBar } from "./obsidian/StatusBar";
import { vaultBasePath } from "./obsidian/vault";
import { DEFAULT_SETTINGS, resolveBinary, settingsFromData, type VellumSettings } from "./settings";
import { describeState } from "./state";

export default class VellumPlugin extends Plugin {
	// Plugin declares `settings?: unknown` (1.13+), which PluginSettingTab reads by default.
	override settings: VellumSettings = { ...DEFAULT_SETTINGS };
	session: VaultSession | null = null;
	private statusBar: StatusBar | null = null;
	private binary = "";

	override async onload(): Promise<void> {
		this.settings = settingsFromData(await this.loadData());
		const vaultPath = vaultBasePath(this.app);
		this.addSettingTab(new VellumSettingTab(this.app, this, this));
		if (vaultPath === null) {
			this.addStatusBarItem().setText("Vellum: unsupported vault");
			return;
		}
		this.binary = resolveBinary(this.settings.binaryPath, bundledBinary(vaultPath, this.manifest.dir));
		const daemon = new Daemon(nodeLauncher(vaultPath, () => this.binary), realTimers, Date.now);
		const session = new VaultSession(daemon);
		this.session = session;
		daemon.onState((c) => this.tell(c));

		this.statusBar = new StatusBar(this.addStatusBarItem(), session.store, () => void this.statusClicked());
		this.registerView(VIEW_TYPE_HISTORY, (leaf) => new HistoryView(leaf, session));
		this.registerView(VIEW_TYPE_CONFLICTS, (leaf) => new ConflictsView(leaf, session));
		this.addCommand({ id: "open-conflicts", name: "Open conflicts", callback: () => void this.openConflicts() });
		this.addCommand({ id: "pair-device", name: "Pair a device", callback: () => new InviteModal(this.app, session).open() });
		this.addCommand({
			id: "join-vault",
			name: "Join a vault with a code",
			checkCallback: (checking) => {
				if (daemon.connection.kind !== "not_initialised") return false;
				if (!checking) new JoinModal(this.app, nodeJoiner(this.binary, vaultPath, hostname(), this.app.vault.configDir), () => daemon.restart()).open();
				return true;
			},
		});
		this.addCommand({ id: "review-held", name: "Review changes held back", callback: () => new QuarantineModal(this.app, session).open() });
		this.register(new OpenNotes(this.app, session.store, (path) => this.app.vault.adapter.read(path)).start());
		let heldBefore = 0;
		this.register(
			session.store.subscribe((change) => {
				const held = session.store.state.held.length;
				if (change.kind === "state" && held > heldBefore) {
					new Notice(`Vellum held back ${held === 1 ? "a batch of changes" : `${held} batches of changes`} that would delete or empty many files. Click the status bar to review.`, 15_000);
				}
				heldBefore = held;
			}),
		);
		this.addCommand({ id: "open-history", name: "Open vault history", callback: () => void this.openHistory() });
		this.addCommand({
			id: "file-history",
			name: "Show history of the current note",
			checkCallback: (checking) => {
				const file = this.app.workspace.getActiveFile();
				if (file === null) return false;
				if (!checking) void this.openHistory(file.path);
				return true;
			},
		});
		this.addCommand({ id: "restart-daemon", name: "Restart the sync daemon", callback: () => daemon.restart() });
		this.addCommand({
			id: "set-up-vault",
			name: "Set up this vault",
			checkCallback: (checking) => {
				if (daemon.connection.kind !== "not_initialised") return false;
				if (!checking) void this.setUp(vaultPath);
				return true;
			},
		});
		this.registerEvent(
			this.app.workspace.on("file-menu", (menu, file) => {
				if (!(file instanceof TFile)) return;
				menu.addItem((item) =>
					item
						.setTitle("Vellum: file history")
						.setIcon("history")
						.onClick(() => void this.openHistory(file.path)),
				);
			}),
		);
		// Starting a process during startup would slow Obsidian's launch.
		this.app.workspace.onLayoutReady(() => daemon.start());
	}

	override onunload(): void {
		this.statusBar?.detach();
		this.statusBar = null;
		this.session?.daemon.stop();
		this.session = null;
	}

	get vellum(): VaultSession | null {
		return this.session;
	}

	restartDaemon(): void {
		this.session?.daemon.restart();
	}

	async updateSettings(change: Partial<VellumSettings>): Promise<void> {
		this.settings = { ...this.settings, ...change };
		await this.saveData(this.settings);
		const vaultPath = vaultBasePath(this.app);
		const binary = resolveBinary(this.settings.binaryPath, vaultPath === null ? null : bundledBinary(vaultPath, this.manifest.dir));
		if (binary !== this.binary) {
			this.binary = binary;
			this.session?.daemon.restart();
		}
	}

	/** The status bar leads to what needs the user: held changes, then conflicts, else the history. */
	private async statusClicked(): Promise<void> {
		const state = this.session?.store.state;
		if (state === undefined) return;
		if (state.held.length > 0 && this.session !== null) new QuarantineModal(this.app, this.session).open();
		else if (state.conflicts.length > 0) await this.openConflicts();
		else await this.openHistory();
	}

	async openConflicts(path?: string): Promise<void> {
		const { workspace } = this.app;
		let leaf: WorkspaceLeaf | null = workspace.getLeavesOfType(VIEW_TYPE_CONFLICTS)[0] ?? null;
		if (leaf === null) {
			leaf = workspace.getLeaf("tab");
			await leaf.setViewState({ type: VIEW_TYPE_CONFLICTS, active: true });
		}
		await workspace.revealLeaf(leaf);
		if (path !== undefined && leaf.view instanceof ConflictsView) await leaf.view.show(path);
	}

	/** Opens the history view (of one file, given its path), or brings it forward. */
	async openHistory(path?: string): Promise<void> {
		const { workspace } = this.app;
		let leaf: WorkspaceLeaf | null = workspace.getLeavesOfType(VIEW_TYPE_HISTORY)[0] ?? null;
		// A new view reads the vault's timeline as it opens.
		const opened = leaf === null;
		if (leaf === null) {
			leaf = workspace.getRightLeaf(false);
			if (leaf === null) return;
			await leaf.setViewState({ type: VIEW_TYPE_HISTORY, active: true });
		}
		await workspace.revealLeaf(leaf);
		const view = leaf.view;
		if (view instanceof HistoryView) {
			if (path !== undefined) await view.showFile(path);
			else if (!opened) await view.showVault();
		}
	}

	/** `vellum init` for this vault (its files are recorded as they are), then connect. */
	private async setUp(vaultPath: string): Promise<void> {
		new Notice("Vellum: setting up this vault…");
		const problem = await initVault(this.binary, vaultPath, hostname());
		if (problem !== null) {
			new Notice(`Vellum: could not set up this vault: ${problem}`, 15_000);
			return;
		}
		new Notice("Vellum: this vault is set up; its history starts now");
		this.session?.daemon.restart();
	}

	/** A notice for the connection problems the user has to act on; the status bar shows the rest. */
	private tell(c: Connection): void {
		if (c.kind === "binary_missing" || c.kind === "version_mismatch" || c.kind === "not_initialised") {
			const session = this.session;
			if (session === null) return;
			const display = describeState(session.store.state);
			new Notice(`${display.text}. ${display.tooltip}`, 15_000);
		}
	}
}

// The end-to-end harness mounts these from the built bundle.
export { Daemon } from "./client/daemon";
export { VaultSession } from "./client/session";
export { ConflictsView } from "./obsidian/ConflictsView";
export { HistoryView } from "./obsidian/HistoryView";
export { InviteModal, JoinModal } from "./obsidian/PairingModal";
export { QuarantineModal } from "./obsidian/QuarantineModal";
export { VellumSettingTab } from "./obsidian/SettingsTab";
export { StatusBar } from "./obsidian/StatusBar";
