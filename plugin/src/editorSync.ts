// Bringing a sync write into an open editor without disturbing the person
// typing in it (DESIGN §9, open notes). Pure: texts in, edits out.
//
// Three texts are involved: `base`, what the editor last loaded or saved;
// `ours`, what the editor holds now (base plus any typing not saved yet);
// and `theirs`, what the daemon just wrote to the disk. The editor gets the
// sync's change as an edit of its own, so its cursor and selection are
// mapped through it, and its next save writes the synced text back instead
// of the stale one.

/** Replace `from`..`to` (UTF-16 offsets) with `text`. */
export interface TextChange {
	from: number;
	to: number;
	text: string;
}

/** The one change that turns `a` into `b`, keeping their common start and end; null when equal. */
export function middleChange(a: string, b: string): TextChange | null {
	if (a === b) return null;
	const max = Math.min(a.length, b.length);
	let start = 0;
	while (start < max && a.charCodeAt(start) === b.charCodeAt(start)) start++;
	let end = 0;
	while (end < max - start && a.charCodeAt(a.length - 1 - end) === b.charCodeAt(b.length - 1 - end)) end++;
	// Never split a surrogate pair: back off to whole characters.
	if (start > 0 && isLowSurrogate(a.charCodeAt(start))) start--;
	if (end > 0 && isLowSurrogate(a.charCodeAt(a.length - end))) end--;
	return { from: start, to: a.length - end, text: b.slice(start, b.length - end) };
}

function isLowSurrogate(code: number): boolean {
	return code >= 0xdc00 && code <= 0xdfff;
}

/**
 * The edits that carry base→theirs into `ours`. With no unsaved typing,
 * that is theirs itself. With typing elsewhere in the note, the sync's
 * change moves past it. When both touch the same place, null: the editor
 * is left alone, and the daemon merges its next save against the version
 * it was typed over, so neither side is lost.
 */
export function changesForEditor(base: string, ours: string, theirs: string): TextChange[] | null {
	if (ours === theirs) return [];
	if (ours === base) {
		const change = middleChange(ours, theirs);
		return change === null ? [] : [change];
	}
	const sync = middleChange(base, theirs);
	const mine = middleChange(base, ours);
	if (sync === null) return [];
	if (mine === null) return [sync];
	if (sync.to < mine.from) return [sync];
	if (sync.from > mine.to) {
		const shift = mine.text.length - (mine.to - mine.from);
		return [{ from: sync.from + shift, to: sync.to + shift, text: sync.text }];
	}
	return null;
}

/** `text` with `changes` (in its offsets, not overlapping) applied. */
export function applyChanges(text: string, changes: readonly TextChange[]): string {
	let out = text;
	for (const c of [...changes].sort((a, b) => b.from - a.from)) out = out.slice(0, c.from) + c.text + out.slice(c.to);
	return out;
}
