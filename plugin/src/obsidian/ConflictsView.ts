// The conflicts view: every open conflict, and for the one picked its base,
// current and incoming sides next to each other, labelled by device and
// time. The user keeps one side or edits a merge; each choice is a
// Resolve, so every side stays in the history.
import { ItemView, Notice, type WorkspaceLeaf } from "obsidian";
import type { Vellum } from "../client/session";
import { formatTime } from "../history";
import { deviceLabel } from "../names";
import type { ConflictEntry } from "../rpc/ConflictEntry";
import type { ConflictSides } from "../rpc/ConflictSides";
import type { ResolveParams } from "../rpc/ResolveParams";
import type { SideText } from "../rpc/SideText";
import { count, errorMessage, shortId } from "../text";

export const VIEW_TYPE_CONFLICTS = "vellum-conflicts";

/** What each conflict kind means, for the list (names from `vellum conflicts`). */
export const CONFLICT_KINDS: Record<string, string> = {
	overlap: "Edited on two devices in the same place; the file kept the current text",
	binary: "Replaced on two devices; the later version won",
	edited_after_delete: "Deleted on one device while edited on another; the file stayed",
	created_twice: "Created at this path on two devices; the file holds both",
	concurrent_resolves: "Resolved differently on two devices; the file kept the first",
	concurrent_renames: "Renamed on two devices; the later name won",
	bad_base: "A change whose base is not a version of this file had no effect",
};

/** Who wrote the current side, and when: the newest op on the file other than the incoming one. */
interface CurrentLabel {
	device: string;
	time: string;
}

export class ConflictsView extends ItemView {
	private unsubscribe: (() => void) | null = null;
	private selected: string | null = null;
	/** Bumped per detail request: an answer for an older pick is dropped. */
	private request = 0;
	private listEl!: HTMLElement;
	private detailEl!: HTMLElement;

	constructor(
		leaf: WorkspaceLeaf,
		private readonly vellum: Vellum,
	) {
		super(leaf);
	}

	getViewType(): string {
		return VIEW_TYPE_CONFLICTS;
	}

	getDisplayText(): string {
		return "Conflicts";
	}

	override getIcon(): string {
		return "git-merge";
	}

	protected override async onOpen(): Promise<void> {
		const root = this.contentEl;
		root.empty();
		root.addClass("vellum-conflicts");
		this.listEl = root.createDiv({ cls: "vellum-conflict-list" });
		this.detailEl = root.createDiv({ cls: "vellum-conflict-detail" });
		this.unsubscribe = this.vellum.store.subscribe((change) => {
			if (change.kind === "state") this.renderList();
		});
		this.renderList();
		if (this.selected !== null) await this.show(this.selected);
	}

	protected override onClose(): Promise<void> {
		this.unsubscribe?.();
		this.unsubscribe = null;
		return Promise.resolve();
	}

	/** Shows the conflict of `path`. */
	async show(path: string): Promise<void> {
		this.selected = path;
		this.renderList();
		const request = ++this.request;
		let sides: ConflictSides;
		let current: CurrentLabel | null;
		try {
			sides = await this.vellum.call("conflict.sides", { path });
			current = await this.currentLabel(path, sides.op);
		} catch (error) {
			if (request !== this.request) return;
			this.detailEl.empty();
			this.detailEl.createDiv({ cls: "vellum-error", text: `Could not read the conflict: ${errorMessage(error)}` });
			return;
		}
		if (request !== this.request) return;
		this.renderSides(sides, current);
	}

	private renderList(): void {
		const conflicts = this.vellum.store.state.conflicts;
		this.listEl.empty();
		this.listEl.createEl("h4", { text: conflicts.length === 0 ? "No open conflicts" : `${count(conflicts.length, "open conflict")}` });
		// One row per file: a file with several conflicts is resolved at once.
		const byPath = new Map<string, ConflictEntry[]>();
		for (const c of conflicts) byPath.set(c.path, [...(byPath.get(c.path) ?? []), c]);
		for (const [path, entries] of byPath) {
			const row = this.listEl.createDiv({ cls: "vellum-conflict-row", attr: { "data-path": path } });
			row.toggleClass("is-selected", path === this.selected);
			row.createDiv({ cls: "vellum-conflict-path", text: path });
			for (const e of entries) {
				row.createDiv({ cls: "vellum-note", text: CONFLICT_KINDS[e.kind] ?? e.kind });
			}
			row.addEventListener("click", () => void this.show(path));
		}
		if (this.selected !== null && !byPath.has(this.selected)) {
			// Resolved (here or on another device).
			this.selected = null;
			this.detailEl.empty();
		}
	}

	private async currentLabel(path: string, incomingOp: string): Promise<CurrentLabel | null> {
		const entries = await this.vellum.call("log", { path, limit: 20 });
		const current = entries.find((e) => !incomingOp.startsWith(e.id));
		return current === undefined ? null : { device: current.author, time: current.time };
	}

	private renderSides(sides: ConflictSides, current: CurrentLabel | null): void {
		const d = this.detailEl;
		d.empty();
		d.createEl("h4", { text: sides.path });
		d.createDiv({ cls: "vellum-note", text: CONFLICT_KINDS[sides.kind] ?? sides.kind });
		const columns = d.createDiv({ cls: "vellum-sides" });
		const names = this.vellum.names;
		const incomingWho = sides.incoming_device_name === null ? shortId(sides.incoming_device) : `${sides.incoming_device_name} (${shortId(sides.incoming_device)})`;
		this.side(columns, "base", "Base", "the version both sides started from", sides.base);
		this.side(columns, "current", "Current", current === null ? "this vault now" : `${deviceLabel(names, current.device)}, ${formatTime(current.time)}`, sides.current);
		this.side(columns, "incoming", "Incoming", `${incomingWho}, ${formatTime(sides.incoming_time)}`, sides.incoming);

		const actions = d.createDiv({ cls: "vellum-conflict-actions" });
		actions.createEl("button", { text: "Keep current", cls: "vellum-take-current" }).addEventListener("click", () => void this.resolve(sides.path, { path: sides.path, take: "current" }, "kept the current version"));
		actions.createEl("button", { text: "Take incoming", cls: "vellum-take-incoming" }).addEventListener("click", () => void this.resolve(sides.path, { path: sides.path, take: "incoming" }, "took the incoming version"));

		if (sides.current.text !== null && sides.incoming.text !== null) {
			d.createEl("h5", { text: "Or edit the merge" });
			const editor = d.createEl("textarea", { cls: "vellum-merge" });
			editor.value = sides.current.text;
			editor.rows = Math.min(30, Math.max(8, sides.current.text.split("\n").length + 1));
			d.createDiv({ cls: "vellum-conflict-actions" })
				.createEl("button", { text: "Save merge", cls: "vellum-save-merge mod-cta" })
				.addEventListener("click", () => void this.resolve(sides.path, { path: sides.path, text: editor.value }, "saved the merge"));
		}
	}

	private side(parent: HTMLElement, key: string, title: string, label: string, side: SideText): void {
		const col = parent.createDiv({ cls: `vellum-side vellum-side-${key}` });
		col.createDiv({ cls: "vellum-side-title", text: title });
		col.createDiv({ cls: "vellum-side-label", text: label });
		col.createEl("pre", { cls: "vellum-side-text", text: side.text ?? `(binary, ${count(side.size, "byte")})` });
	}

	private async resolve(path: string, params: ResolveParams, what: string): Promise<void> {
		try {
			await this.vellum.call("resolve", params);
			new Notice(`Vellum: ${path}: ${what}`);
		} catch (error) {
			new Notice(`Vellum: could not resolve ${path}: ${errorMessage(error)}`);
		}
	}
}
