// Open notes (DESIGN §9): a change from another device to a note open in
// an editor goes in through the editor's API, so the cursor stays where it
// was and the editor's next save does not write the old text back.
import { MarkdownView, type App } from "obsidian";
import { changesForEditor } from "../editorSync";
import type { Store } from "../state";

/** The origin of the editor edits this makes, so other plugins can tell them apart. */
export const SYNC_ORIGIN = "vellum-sync";

export class OpenNotes {
	constructor(
		private readonly app: App,
		private readonly store: Store,
		/** The note's text on disk now. */
		private readonly read: (path: string) => Promise<string>,
	) {}

	/** Starts following the store; returns the function that stops. */
	start(): () => void {
		return this.store.subscribe((change) => {
			if (change.kind !== "ops") return;
			const paths = new Set<string>();
			for (const { op, provenance } of change.ops) {
				if (provenance.source === "remote" && op.path !== null) paths.add(op.path);
			}
			if (paths.size > 0) void this.update(paths);
		});
	}

	/** Brings the disk's text into every open editor of `paths`. */
	async update(paths: ReadonlySet<string>): Promise<void> {
		for (const leaf of this.app.workspace.getLeavesOfType("markdown")) {
			const view = leaf.view;
			if (!(view instanceof MarkdownView) || view.file === null || !paths.has(view.file.path)) continue;
			await this.bringIn(view, view.file.path);
		}
	}

	private async bringIn(view: MarkdownView, path: string): Promise<void> {
		let theirs: string;
		try {
			theirs = await this.read(path);
		} catch {
			// Deleted or renamed meanwhile: Obsidian follows the file itself.
			return;
		}
		if (view.file?.path !== path) return;
		const editor = view.editor;
		// TextFileView.data is the text the view last loaded or saved.
		const base = view.data;
		const ours = editor.getValue();
		const changes = changesForEditor(base, ours, theirs);
		if (changes === null || changes.length === 0) {
			if (ours === theirs) view.data = theirs;
			return;
		}
		editor.transaction(
			{ changes: changes.map((c) => ({ from: editor.offsetToPos(c.from), to: editor.offsetToPos(c.to), text: c.text })) },
			SYNC_ORIGIN,
		);
		// Without typing of its own, the editor now holds what the disk holds.
		if (ours === base) view.data = theirs;
	}
}
