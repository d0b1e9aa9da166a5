// The history view: the vault's timeline (or one file's), a time slider,
// the files as of any row, a file's text as of then, diffs, restore, and
// rolling the vault back with a preview.
import { ItemView, Notice, type WorkspaceLeaf } from "obsidian";
import type { Vellum } from "../client/session";
import { buildTree, drawDiff, formatTime, groupTimeline, pointOf, Timeline, type TreeNode } from "../history";
import type { LogEntry } from "../rpc/LogEntry";
import type { Change } from "../state";
import { count, errorMessage } from "../text";
import { deviceLabel } from "../names";
import { FileAtModal } from "./FileAtModal";
import { RollbackModal } from "./RollbackModal";

export const VIEW_TYPE_HISTORY = "vellum-history";

/** How long the slider rests before the tree follows it. */
const SLIDER_SETTLE_MS = 150;

type Mode = { kind: "vault" } | { kind: "file"; path: string };

export class HistoryView extends ItemView {
	private mode: Mode = { kind: "vault" };
	private timeline: Timeline;
	private selected: LogEntry | null = null;
	/** The row picked with "Compare with…": the next selection diffs against it. */
	private compareFrom: LogEntry | null = null;
	private unsubscribe: (() => void) | null = null;
	private sliderTimer: number | null = null;
	/** Bumped per detail request: an answer for an older selection is dropped. */
	private detailRequest = 0;
	/** Whether the daemon was connected at the last change: ops made while it was not were never heard of. */
	private wasReady = false;

	private headerEl!: HTMLElement;
	private sliderEl!: HTMLInputElement;
	private sliderLabelEl!: HTMLElement;
	private listEl!: HTMLElement;
	private moreEl!: HTMLButtonElement;
	private detailEl!: HTMLElement;

	constructor(
		leaf: WorkspaceLeaf,
		private readonly vellum: Vellum,
	) {
		super(leaf);
		this.timeline = this.newTimeline();
	}

	getViewType(): string {
		return VIEW_TYPE_HISTORY;
	}

	getDisplayText(): string {
		return this.mode.kind === "file" ? `History of ${this.mode.path}` : "Vault history";
	}

	override getIcon(): string {
		return "history";
	}

	/** Shows one file's history (the path as it is now). */
	async showFile(path: string): Promise<void> {
		this.mode = { kind: "file", path };
		await this.restart();
	}

	/** Shows the whole vault's timeline. */
	async showVault(): Promise<void> {
		this.mode = { kind: "vault" };
		await this.restart();
	}

	protected override async onOpen(): Promise<void> {
		const root = this.contentEl;
		root.empty();
		root.addClass("vellum-history");
		const bar = root.createDiv({ cls: "vellum-toolbar" });
		this.headerEl = bar.createEl("h4", { cls: "vellum-history-title" });
		const vaultButton = bar.createEl("button", { text: "Whole vault", cls: "vellum-show-vault" });
		vaultButton.addEventListener("click", () => void this.showVault());
		const refresh = bar.createEl("button", { text: "Refresh", cls: "vellum-refresh" });
		refresh.addEventListener("click", () => void this.restart());

		const slider = root.createDiv({ cls: "vellum-slider" });
		this.sliderEl = slider.createEl("input", { type: "range", cls: "vellum-slider-input", attr: { min: 0, max: 0, step: 1, "aria-label": "Point in time" } });
		this.sliderLabelEl = slider.createDiv({ cls: "vellum-slider-label" });
		this.sliderEl.addEventListener("input", () => this.slid());

		const body = root.createDiv({ cls: "vellum-history-body" });
		const left = body.createDiv({ cls: "vellum-timeline" });
		this.listEl = left.createDiv({ cls: "vellum-timeline-list" });
		this.moreEl = left.createEl("button", { text: "Load older", cls: "vellum-load-more" });
		this.moreEl.addEventListener("click", () => void this.loadMore());
		this.detailEl = body.createDiv({ cls: "vellum-detail" });

		this.wasReady = this.vellum.store.state.connection.kind === "ready";
		this.unsubscribe = this.vellum.store.subscribe((change) => this.changed(change));
		await this.restart();
	}

	protected override onClose(): Promise<void> {
		this.unsubscribe?.();
		this.unsubscribe = null;
		if (this.sliderTimer !== null) window.clearTimeout(this.sliderTimer);
		return Promise.resolve();
	}

	private newTimeline(): Timeline {
		const filter = this.mode.kind === "file" ? { path: this.mode.path } : {};
		return new Timeline((params) => this.vellum.call("log", params), filter);
	}

	private async restart(): Promise<void> {
		this.timeline = this.newTimeline();
		this.selected = null;
		this.compareFrom = null;
		this.headerEl.setText(this.getDisplayText());
		this.detailEl.empty();
		await this.reload();
	}

	private async reload(): Promise<void> {
		try {
			await this.timeline.reload();
		} catch (error) {
			this.showError(`Could not read the history: ${errorMessage(error)}`);
			return;
		}
		this.render();
	}

	private async loadMore(): Promise<void> {
		this.moreEl.disabled = true;
		try {
			await this.timeline.loadMore();
		} catch (error) {
			new Notice(`Vellum: could not read more history: ${errorMessage(error)}`);
		}
		this.render();
	}

	private changed(change: Change): void {
		if (change.kind === "ops") {
			if (!this.timeline.addNew(change.ops.map((o) => o.op)) || change.more > 0) {
				void this.reload();
			} else {
				this.render();
			}
		} else if (change.kind === "lagged") {
			void this.reload();
		} else {
			const ready = this.vellum.store.state.connection.kind === "ready";
			// Connected again: ops recorded meanwhile sent no event here.
			if (ready && !this.wasReady) void this.reload();
			this.wasReady = ready;
		}
	}

	private render(): void {
		const entries = this.timeline.entries;
		this.listEl.empty();
		if (entries.length === 0) {
			this.listEl.createDiv({ cls: "vellum-empty", text: this.mode.kind === "file" ? "No history for this file." : "No history yet." });
		}
		for (const group of groupTimeline(entries)) {
			const groupEl = this.listEl.createDiv({ cls: "vellum-group" });
			const first = group.entries.at(-1);
			const last = group.entries[0];
			const span = first !== undefined && last !== undefined && first !== last ? `${formatTime(first.time)} – ${formatTime(last.time)}` : formatTime(last?.time ?? "");
			groupEl.createDiv({ cls: "vellum-group-head", text: `${deviceLabel(this.vellum.names, group.author)} · ${span}` });
			for (const entry of group.entries) this.renderRow(groupEl, entry);
		}
		this.moreEl.toggle(this.timeline.more);
		this.moreEl.disabled = false;
		this.sliderEl.max = String(Math.max(0, entries.length - 1));
		this.syncSlider();
	}

	private renderRow(parent: HTMLElement, entry: LogEntry): void {
		const row = parent.createDiv({ cls: "vellum-row", attr: { "data-op": entry.id, "data-kind": entry.kind } });
		row.toggleClass("is-selected", this.selected?.id === entry.id);
		row.toggleClass("is-compare", this.compareFrom?.id === entry.id);
		row.createSpan({ cls: "vellum-row-time", text: formatTime(entry.time).slice(11) });
		row.createSpan({ cls: "vellum-row-kind", text: entry.kind.replace(/_/g, " ") });
		row.createSpan({ cls: "vellum-row-summary", text: entry.summary });
		row.setAttr("title", `${entry.id} by ${deviceLabel(this.vellum.names, entry.author)} at ${entry.time}`);
		row.addEventListener("click", () => void this.select(entry));
	}

	/** Slider position 0 is the oldest loaded row, the right end the newest. */
	private syncSlider(): void {
		const entries = this.timeline.entries;
		const index = this.selected === null ? 0 : Math.max(0, entries.findIndex((e) => e.id === this.selected?.id));
		this.sliderEl.value = String(entries.length - 1 - index);
		this.sliderLabelEl.setText(this.selected === null ? (entries[0] === undefined ? "" : `Now: ${formatTime(entries[0].time)}`) : `As of ${formatTime(this.selected.time)} — ${this.selected.summary}`);
	}

	private slid(): void {
		const entries = this.timeline.entries;
		const entry = entries[entries.length - 1 - Number(this.sliderEl.value)];
		if (entry === undefined) return;
		this.sliderLabelEl.setText(`As of ${formatTime(entry.time)} — ${entry.summary}`);
		if (this.sliderTimer !== null) window.clearTimeout(this.sliderTimer);
		this.sliderTimer = window.setTimeout(() => {
			this.sliderTimer = null;
			void this.select(entry);
		}, SLIDER_SETTLE_MS);
	}

	/** Makes `entry` the selected row and shows what it stands for. */
	async select(entry: LogEntry): Promise<void> {
		const from = this.compareFrom;
		this.selected = entry;
		this.compareFrom = null;
		for (const row of this.listEl.findAll(".vellum-row")) {
			row.toggleClass("is-selected", row.getAttr("data-op") === entry.id);
			row.removeClass("is-compare");
		}
		this.syncSlider();
		if (from !== null && this.mode.kind === "file") {
			await this.showDiff(this.mode.path, from, entry);
		} else if (this.mode.kind === "file") {
			await this.showFileAt(this.mode.path, entry);
		} else {
			await this.showTreeAt(entry);
		}
	}

	private async showTreeAt(entry: LogEntry): Promise<void> {
		const request = ++this.detailRequest;
		const point = pointOf(entry);
		let files: { path: string }[];
		try {
			files = (await this.vellum.call("checkout.preview", { at: point })).files;
		} catch (error) {
			if (request === this.detailRequest) this.showError(`Could not read the vault as of ${formatTime(entry.time)}: ${errorMessage(error)}`);
			return;
		}
		if (request !== this.detailRequest) return;
		const d = this.detailEl;
		d.empty();
		d.createEl("h5", { text: `Files as of ${formatTime(entry.time)}` });
		d.createDiv({ cls: "vellum-tree-count", text: count(files.length, "file") });
		this.actions(d, entry, null);
		const treeEl = d.createDiv({ cls: "vellum-tree", attr: { "data-at": point } });
		this.renderTree(treeEl, buildTree(files.map((f) => f.path)), point, entry);
	}

	private renderTree(parent: HTMLElement, nodes: TreeNode[], point: string, entry: LogEntry): void {
		const ul = parent.createEl("ul");
		for (const node of nodes) {
			const li = ul.createEl("li");
			if (node.path === null) {
				li.createSpan({ cls: "vellum-tree-folder", text: `${node.name}/` });
				this.renderTree(li, node.children, point, entry);
			} else {
				const path = node.path;
				const link = li.createEl("a", { cls: "vellum-tree-file", text: node.name, attr: { "data-path": path, href: "#" } });
				link.addEventListener("click", (e) => {
					e.preventDefault();
					new FileAtModal(this.app, this.vellum, path, point, formatTime(entry.time)).open();
				});
			}
		}
	}

	private async showFileAt(path: string, entry: LogEntry): Promise<void> {
		const request = ++this.detailRequest;
		const point = pointOf(entry);
		const d = this.detailEl;
		let text: string | null;
		let size: number;
		try {
			const info = await this.vellum.call("show", { path, at: point });
			text = info.text;
			size = info.size;
		} catch (error) {
			// Before the file existed, or after it was deleted.
			if (request !== this.detailRequest) return;
			d.empty();
			d.createEl("h5", { text: `${path} as of ${formatTime(entry.time)}` });
			d.createDiv({ cls: "vellum-note", text: errorMessage(error) });
			this.actions(d, entry, path);
			return;
		}
		if (request !== this.detailRequest) return;
		d.empty();
		d.createEl("h5", { text: `${path} as of ${formatTime(entry.time)}` });
		this.actions(d, entry, path);
		const pre = d.createEl("pre", { cls: "vellum-file-text", attr: { "data-path": path, "data-at": point } });
		pre.setText(text ?? `(binary file, ${count(size, "byte")})`);
	}

	private async showDiff(path: string, from: LogEntry, to: LogEntry): Promise<void> {
		const request = ++this.detailRequest;
		const [older, newer] = Date.parse(from.time) <= Date.parse(to.time) ? [from, to] : [to, from];
		await this.renderDiff(request, path, pointOf(older), pointOf(newer), `${path}: ${formatTime(older.time)} → ${formatTime(newer.time)}`);
	}

	private async renderDiff(request: number, path: string, from: string, to: string, title: string): Promise<void> {
		let text: string | null;
		try {
			text = (await this.vellum.call("diff", { from, to, path })).text;
		} catch (error) {
			if (request === this.detailRequest) this.showError(`Could not diff ${path}: ${errorMessage(error)}`);
			return;
		}
		if (request !== this.detailRequest) return;
		const d = this.detailEl;
		d.empty();
		d.createEl("h5", { text: title });
		const drawn = drawDiff(text ?? "");
		if (drawn.total === 0) {
			d.createDiv({ cls: "vellum-note", text: "No difference." });
			return;
		}
		if (drawn.omitted > 0) {
			const note = `This diff has ${drawn.total.toLocaleString()} lines; showing the first ${drawn.lines.length.toLocaleString()}. Use "vellum diff" for all of it.`;
			d.createDiv({ cls: "vellum-note vellum-diff-truncated", text: note });
			new Notice(`Vellum: diff truncated (${drawn.omitted.toLocaleString()} lines not shown)`);
		}
		const pre = d.createEl("pre", { cls: "vellum-diff", attr: { "data-from": from, "data-to": to } });
		for (const line of drawn.lines) pre.createDiv({ cls: `vellum-diff-${line.kind}`, text: line.text });
	}

	/** The buttons for a selected row. */
	private actions(parent: HTMLElement, entry: LogEntry, path: string | null): void {
		const bar = parent.createDiv({ cls: "vellum-actions" });
		const point = pointOf(entry);
		if (path !== null) {
			bar.createEl("button", { text: "Restore this version", cls: "vellum-restore mod-cta" }).addEventListener("click", () => void this.restore(path, entry));
			bar.createEl("button", { text: "Diff with current", cls: "vellum-diff-current" }).addEventListener("click", () => {
				void this.renderDiff(++this.detailRequest, path, point, "head", `${path}: ${formatTime(entry.time)} → now`);
			});
			bar.createEl("button", { text: "Compare with…", cls: "vellum-compare" }).addEventListener("click", () => {
				this.compareFrom = entry;
				for (const row of this.listEl.findAll(".vellum-row")) row.toggleClass("is-compare", row.getAttr("data-op") === entry.id);
				new Notice("Vellum: pick the other version in the list");
			});
		}
		bar.createEl("button", { text: "Roll vault back to here", cls: "vellum-rollback mod-warning" }).addEventListener("click", () => {
			new RollbackModal(this.app, this.vellum, point, formatTime(entry.time)).open();
		});
	}

	private async restore(path: string, entry: LogEntry): Promise<void> {
		try {
			const report = await this.vellum.call("restore", { path, at: pointOf(entry) });
			new Notice(report.ops_recorded === 0 ? `Vellum: ${path} already is that version` : `Vellum: restored ${path} as of ${formatTime(entry.time)}`);
		} catch (error) {
			new Notice(`Vellum: could not restore ${path}: ${errorMessage(error)}`);
		}
	}

	private showError(message: string): void {
		this.detailEl.empty();
		this.detailEl.createDiv({ cls: "vellum-error", text: message });
	}
}
