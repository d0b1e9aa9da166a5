import { describe, expect, it } from "vitest";
import { applyChanges, changesForEditor, middleChange } from "../src/editorSync";
import { OpenNotes, SYNC_ORIGIN } from "../src/obsidian/OpenNotes";
import { Store } from "../src/state";
import type { OpEvent } from "../src/rpc/OpEvent";
import { createApp, Editor, MarkdownView, WorkspaceLeaf, type Workspace } from "./__mocks__/obsidian";

describe("middleChange", () => {
	it("keeps the common start and end", () => {
		expect(middleChange("one two three", "one 2 three")).toEqual({ from: 4, to: 7, text: "2" });
		expect(middleChange("same", "same")).toBeNull();
		expect(middleChange("", "new")).toEqual({ from: 0, to: 0, text: "new" });
	});

	it("never splits a surrogate pair", () => {
		const c = middleChange("a😀b", "a😃b")!;
		expect(c).toEqual({ from: 1, to: 3, text: "😃" });
	});
});

describe("changesForEditor", () => {
	const base = "# Day\n\nmorning: run\nnoon: eat\nevening: read\n";

	it("with no unsaved typing, makes the editor hold the synced text", () => {
		const theirs = base.replace("noon: eat", "noon: eat with Ana");
		const changes = changesForEditor(base, base, theirs)!;
		expect(applyChanges(base, changes)).toBe(theirs);
		expect(changes).toHaveLength(1);
	});

	it("keeps unsaved typing after the synced change", () => {
		const ours = base.replace("evening: read", "evening: read a book");
		const theirs = base.replace("morning: run", "morning: swim");
		expect(applyChanges(ours, changesForEditor(base, ours, theirs)!)).toBe(base.replace("morning: run", "morning: swim").replace("evening: read", "evening: read a book"));
	});

	it("keeps unsaved typing before the synced change", () => {
		const ours = base.replace("morning: run", "morning: run 5k");
		const theirs = base.replace("evening: read", "evening: cinema");
		expect(applyChanges(ours, changesForEditor(base, ours, theirs)!)).toBe(base.replace("morning: run", "morning: run 5k").replace("evening: read", "evening: cinema"));
	});

	it("leaves the editor alone when both changed the same place", () => {
		const ours = base.replace("noon: eat", "noon: nap");
		const theirs = base.replace("noon: eat", "noon: lunch");
		expect(changesForEditor(base, ours, theirs)).toBeNull();
	});

	it("does nothing when the editor already holds the text", () => {
		expect(changesForEditor(base, "x", "x")).toEqual([]);
	});
});

function remote(path: string): OpEvent {
	return {
		op: { id: "aaaaaaaaaaaa", author: "bbbbbbbbbbbb", seq: 1, lamport: 1, hlc: "1", time: "2026-11-27T00:00:00.000Z", kind: "edit", path, file: "f", summary: "" },
		provenance: { source: "remote", device: "bbbb", op: "aaaa" },
	};
}

describe("OpenNotes", () => {
	async function open(path: string, text: string): Promise<{ notes: OpenNotes; editor: Editor; store: Store; disk: Map<string, string> }> {
		const app = createApp();
		const leaf = new WorkspaceLeaf(app);
		const view = new MarkdownView(leaf as never, path, text);
		await leaf.open(view as never);
		(app.workspace as unknown as Workspace).leaves.push(leaf);
		const store = new Store();
		const disk = new Map<string, string>([[path, text]]);
		const notes = new OpenNotes(app, store, (p) => {
			const t = disk.get(p);
			return t === undefined ? Promise.reject(new Error("gone")) : Promise.resolve(t);
		});
		notes.start();
		await flush();
		return { notes, editor: view.editor as unknown as Editor, store, disk };
	}

	const flush = () => new Promise((r) => window.setTimeout(r, 0));

	it("applies a remote change through the editor, keeping the cursor on its text", async () => {
		const { editor, store, disk } = await open("day.md", "line one\nline two\nline three\n");
		editor.setCursor({ line: 2, ch: 5 });
		disk.set("day.md", "line ONE, edited elsewhere\nline two\nline three\n");
		store.apply({ kind: "ops", ops: [remote("day.md")], more: 0 });
		await flush();
		expect(editor.getValue()).toBe(disk.get("day.md"));
		expect(editor.getCursor()).toEqual({ line: 2, ch: 5 });
		expect(editor.origins).toEqual([SYNC_ORIGIN]);
	});

	it("ignores local ops and notes that are not open", async () => {
		const { editor, store, disk } = await open("day.md", "a\n");
		disk.set("day.md", "b\n");
		store.apply({ kind: "ops", ops: [{ ...remote("day.md"), provenance: { source: "local" } }, remote("other.md")], more: 0 });
		await flush();
		expect(editor.getValue()).toBe("a\n");
		expect(editor.origins).toEqual([]);
	});

	it("merges around unsaved typing elsewhere in the note", async () => {
		const { editor, store, disk } = await open("day.md", "one\ntwo\nthree\n");
		editor.transaction({ changes: [{ from: { line: 2, ch: 5 }, to: { line: 2, ch: 5 }, text: "!" }] });
		disk.set("day.md", "ONE\ntwo\nthree\n");
		store.apply({ kind: "ops", ops: [remote("day.md")], more: 0 });
		await flush();
		expect(editor.getValue()).toBe("ONE\ntwo\nthree!\n");
	});

	it("leaves the editor alone where the typing and the remote change meet", async () => {
		const { editor, store, disk } = await open("day.md", "one\ntwo\n");
		editor.transaction({ changes: [{ from: { line: 0, ch: 3 }, to: { line: 0, ch: 3 }, text: " and a half" }] });
		disk.set("day.md", "one!\ntwo\n");
		store.apply({ kind: "ops", ops: [remote("day.md")], more: 0 });
		await flush();
		expect(editor.getValue()).toBe("one and a half\ntwo\n");
	});

	it("takes the text a local save recorded as the next base", async () => {
		const { editor, store, disk } = await open("day.md", "one\n");
		// The editor saves "one two", the daemon records it...
		editor.setValue("one two\n");
		disk.set("day.md", "one two\n");
		store.apply({ kind: "ops", ops: [{ ...remote("day.md"), provenance: { source: "local" } }], more: 0 });
		await flush();
		// ...then another device appends a line.
		disk.set("day.md", "one two\nthree\n");
		store.apply({ kind: "ops", ops: [remote("day.md")], more: 0 });
		await flush();
		expect(editor.getValue()).toBe("one two\nthree\n");
	});
});
