// The history view's model: pages of the vault's log, grouped by device and
// time; the point each row stands for; and diff text cut to what a view can
// draw. Pure: the log comes from a loader.
import type { LogEntry } from "./rpc/LogEntry";
import type { LogParams } from "./rpc/LogParams";

/** Log entries fetched per page. */
export const PAGE_SIZE = 200;

/** Ops of one device closer than this in time share a group. */
export const GROUP_GAP_MS = 10 * 60_000;

/** Most diff lines drawn; the rest is summarised in a notice. */
export const DIFF_LINES_MAX = 2_000;

/** Longest diff line drawn, in characters. */
export const DIFF_LINE_CHARS_MAX = 1_000;

/**
 * The point a row stands for (DESIGN §5): its time, to the millisecond,
 * which means every op whose hlc is not later — the vault as the timeline
 * shows it at that row. Ops in the same millisecond share a point.
 */
export function pointOf(entry: LogEntry): string {
	return entry.time;
}

export interface TimelineGroup {
	/** The author's short id. */
	author: string;
	/** Newest first, like the log. */
	entries: LogEntry[];
}

/** Consecutive entries by one author, each within GROUP_GAP_MS of the one before. */
export function groupTimeline(entries: readonly LogEntry[]): TimelineGroup[] {
	const groups: TimelineGroup[] = [];
	let last: LogEntry | null = null;
	for (const entry of entries) {
		const group = groups.at(-1);
		if (group !== undefined && last !== null && last.author === entry.author && gapMs(last, entry) <= GROUP_GAP_MS) {
			group.entries.push(entry);
		} else {
			groups.push({ author: entry.author, entries: [entry] });
		}
		last = entry;
	}
	return groups;
}

function gapMs(a: LogEntry, b: LogEntry): number {
	return Math.abs(Date.parse(a.time) - Date.parse(b.time));
}

/** Compares hlc strings (decimal u64, beyond 2^53) as numbers. */
export function compareHlc(a: string, b: string): number {
	const x = BigInt(a);
	const y = BigInt(b);
	return x < y ? -1 : x > y ? 1 : 0;
}

export type LogLoader = (params: LogParams) => Promise<LogEntry[]>;

/** The entries loaded so far of a (possibly filtered) log, newest first. */
export class Timeline {
	entries: LogEntry[] = [];
	/** False once a page came back short: the oldest entry is loaded. */
	more = true;

	constructor(
		private readonly load: LogLoader,
		readonly filter: { path?: string } = {},
	) {}

	/** Loads the newest page afresh. */
	async reload(): Promise<void> {
		const page = await this.load({ ...this.filter, limit: PAGE_SIZE, offset: 0 });
		this.entries = page;
		this.more = page.length === PAGE_SIZE;
	}

	/** Loads the next older page: the ops before the oldest shown, one page of work however deep. */
	async loadMore(): Promise<void> {
		const oldest = this.entries.at(-1);
		if (!this.more || oldest === undefined) return;
		const page = await this.load({ ...this.filter, limit: PAGE_SIZE, before: oldest.id });
		const known = new Set(this.entries.map((e) => e.id));
		this.entries = this.entries.concat(page.filter((e) => !known.has(e.id)));
		this.more = page.length === PAGE_SIZE;
	}

	/**
	 * Adds ops that just joined the journal. They go on top when all are
	 * newer than what is shown; an op that sorts lower (one that arrived
	 * late from another device) means the loaded list is out of date, and
	 * this returns false so the caller reloads.
	 */
	addNew(ops: readonly LogEntry[]): boolean {
		const files = new Set(this.entries.map((e) => e.file).filter((f) => f !== null));
		const relevant = ops.filter((op) => this.matches(op, files));
		if (relevant.length === 0) return true;
		const top = this.entries[0];
		if (top !== undefined && relevant.some((op) => compareHlc(op.hlc, top.hlc) <= 0)) return false;
		const sorted = [...relevant].sort((a, b) => compareHlc(b.hlc, a.hlc) || (a.author < b.author ? 1 : -1));
		this.entries = sorted.concat(this.entries);
		return true;
	}

	/** Whether `op` belongs in this timeline; `files` are the file ids it shows. */
	private matches(op: LogEntry, files: ReadonlySet<string>): boolean {
		const path = this.filter.path;
		if (path === undefined) return true;
		// A rename names the file's new path; the file id ties its history together.
		return op.path === path || (op.path?.startsWith(`${path}/`) ?? false) || (op.file !== null && files.has(op.file));
	}
}

export interface DiffLine {
	kind: "add" | "del" | "hunk" | "meta" | "same";
	text: string;
}

export interface DrawnDiff {
	lines: DiffLine[];
	/** Lines left out (beyond DIFF_LINES_MAX). */
	omitted: number;
	total: number;
}

/** A unified diff as lines to draw, cut at DIFF_LINES_MAX lines of DIFF_LINE_CHARS_MAX characters. */
export function drawDiff(text: string, maxLines = DIFF_LINES_MAX): DrawnDiff {
	const lines: DiffLine[] = [];
	let total = 0;
	let start = 0;
	// Walk the text without splitting it whole: a diff of a few MiB would
	// otherwise make an array of every line only to draw the first few.
	while (start < text.length) {
		let end = text.indexOf("\n", start);
		if (end === -1) end = text.length;
		total++;
		if (lines.length < maxLines) {
			const raw = text.slice(start, Math.min(end, start + DIFF_LINE_CHARS_MAX));
			const cut = end - start > DIFF_LINE_CHARS_MAX ? `${raw}…` : raw;
			lines.push({ kind: lineKind(raw), text: cut });
		}
		start = end + 1;
	}
	return { lines, omitted: Math.max(0, total - maxLines), total };
}

function lineKind(line: string): DiffLine["kind"] {
	if (line.startsWith("+++") || line.startsWith("---") || line.startsWith("diff ")) return "meta";
	if (line.startsWith("@@")) return "hunk";
	if (line.startsWith("+")) return "add";
	if (line.startsWith("-")) return "del";
	return "same";
}

/** "2026-11-27 01:42:50" in local time, for rows. */
export function formatTime(iso: string): string {
	const d = new Date(iso);
	if (Number.isNaN(d.getTime())) return iso;
	const p = (n: number) => String(n).padStart(2, "0");
	return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** A folder tree of paths, for the "files as of then" list. */
export interface TreeNode {
	name: string;
	/** The file's path, for a file; null for a folder. */
	path: string | null;
	children: TreeNode[];
}

export function buildTree(paths: readonly string[]): TreeNode[] {
	const root: TreeNode = { name: "", path: null, children: [] };
	for (const path of [...paths].sort()) {
		const parts = path.split("/");
		let node = root;
		parts.forEach((part, i) => {
			const isFile = i === parts.length - 1;
			let child = node.children.find((c) => c.name === part && (c.path === null) !== isFile);
			if (child === undefined) {
				child = { name: part, path: isFile ? path : null, children: [] };
				node.children.push(child);
			}
			node = child;
		});
	}
	const sort = (nodes: TreeNode[]): TreeNode[] => {
		nodes.sort((a, b) => (a.path === null) !== (b.path === null) ? (a.path === null ? -1 : 1) : a.name.localeCompare(b.name));
		for (const n of nodes) sort(n.children);
		return nodes;
	};
	return sort(root.children);
}
