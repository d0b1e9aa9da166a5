// Open notes (DESIGN §9): a change from another device to a note open in
// an editor goes in through the editor's API, so the cursor stays where it
// was and the editor's next save does not write the old text back.
//
// The base of the merge is the text this class last saw on the disk for
// the note: when it was opened, and after each save the daemon recorded.
// It relies on nothing inside Obsidian's view (its in-memory `data` is not
// documented as the saved text). Where it knows no base, it leaves the
// editor to Obsidian.
import { MarkdownView, TFile, type App } from "obsidian";
import { changesForEditor } from "../editorSync";
import type { Store } from "../state";

/** The origin of the editor edits this makes, so other plugins can tell them apart. */
export const SYNC_ORIGIN = "vellum-sync";

export class OpenNotes {
	/** The disk's text of open notes, as last seen, by path. */
	private readonly onDisk = new Map<string, string>();

	constructor(
		private readonly app: App,
		private readonly store: Store,
		/** The note's text on disk now. */
		private readonly read: (path: string) => Promise<string>,
	) {}

	/** Starts following the store and the open notes; returns the function that stops. */
	start(): () => void {
		const stopStore = this.store.subscribe((change) => {
			if (change.kind !== "ops") return;
			const remote = new Set<string>();
			const local = new Set<string>();
			for (const { op, provenance } of change.ops) {
				if (op.path === null) continue;
				(provenance.source === "remote" ? remote : local).add(op.path);
			}
			void this.changed(remote, local);
		});
		const opened = this.app.workspace.on("file-open", (file) => {
			if (file instanceof TFile) void this.remember(file.path);
		});
		for (const view of this.views()) if (view.file !== null) void this.remember(view.file.path);
		return () => {
			stopStore();
			this.app.workspace.offref(opened);
		};
	}

	/** Ops joined the journal: bring remote ones into editors, note what local saves wrote. */
	async changed(remote: ReadonlySet<string>, local: ReadonlySet<string>): Promise<void> {
		for (const view of this.views()) {
			const path = view.file?.path;
			if (path === undefined) continue;
			if (remote.has(path)) await this.bringIn(view, path);
			else if (local.has(path)) await this.remember(path);
		}
	}

	private views(): MarkdownView[] {
		return this.app.workspace
			.getLeavesOfType("markdown")
			.map((leaf) => leaf.view)
			.filter((view): view is MarkdownView => view instanceof MarkdownView);
	}

	private async remember(path: string): Promise<void> {
		try {
			this.onDisk.set(path, await this.read(path));
		} catch {
			this.onDisk.delete(path);
		}
	}

	private async bringIn(view: MarkdownView, path: string): Promise<void> {
		const base = this.onDisk.get(path);
		let theirs: string;
		try {
			theirs = await this.read(path);
		} catch {
			// Deleted or renamed meanwhile: Obsidian follows the file itself.
			return;
		}
		this.onDisk.set(path, theirs);
		if (base === undefined || view.file?.path !== path) return;
		const editor = view.editor;
		const changes = changesForEditor(base, editor.getValue(), theirs);
		if (changes === null || changes.length === 0) return;
		editor.transaction(
			{ changes: changes.map((c) => ({ from: editor.offsetToPos(c.from), to: editor.offsetToPos(c.to), text: c.text })) },
			SYNC_ORIGIN,
		);
	}
}
