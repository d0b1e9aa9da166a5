import { describe, expect, it } from "vitest";
import { buildTree, compareHlc, drawDiff, groupTimeline, PAGE_SIZE, pointOf, Timeline } from "../src/history";
import type { LogEntry } from "../src/rpc/LogEntry";
import type { LogParams } from "../src/rpc/LogParams";

function entry(n: number, author = "aaaaaaaaaaaa", minute = n, path: string | null = `n${n}.md`): LogEntry {
	return {
		id: `op${String(n).padStart(10, "0")}`,
		author,
		seq: n,
		lamport: n,
		hlc: String(117685863743684608n + BigInt(n) * 1000n),
		time: new Date(Date.UTC(2026, 10, 27, 1, minute)).toISOString(),
		kind: "edit",
		path,
		file: path === null ? null : `file${n}`,
		summary: `edit ${path ?? ""}`,
	};
}

/** A log of `n` entries, newest first, served in pages like the daemon does. */
function journal(n: number): { entries: LogEntry[]; calls: LogParams[]; load: (p: LogParams) => Promise<LogEntry[]> } {
	const entries = Array.from({ length: n }, (_, i) => entry(n - i));
	const calls: LogParams[] = [];
	return {
		entries,
		calls,
		load: (p) => {
			calls.push(p);
			const offset = p.before === undefined ? (p.offset ?? 0) : entries.findIndex((e) => e.id === p.before) + 1;
			return Promise.resolve(entries.slice(offset, offset + (p.limit ?? 50)));
		},
	};
}

describe("Timeline", () => {
	it("loads a page at a time until a page comes back short", async () => {
		const j = journal(PAGE_SIZE + 7);
		const t = new Timeline(j.load);
		await t.reload();
		expect(t.entries).toHaveLength(PAGE_SIZE);
		expect(t.more).toBe(true);
		await t.loadMore();
		expect(t.entries).toHaveLength(PAGE_SIZE + 7);
		expect(t.more).toBe(false);
		expect(t.entries.map((e) => e.seq)).toEqual(j.entries.map((e) => e.seq));
		// The next page is asked for by cursor: the oldest entry shown.
		expect(j.calls).toEqual([
			{ limit: PAGE_SIZE, offset: 0 },
			{ limit: PAGE_SIZE, before: j.entries[PAGE_SIZE - 1]!.id },
		]);
	});

	it("passes the path filter to every page", async () => {
		const j = journal(3);
		const t = new Timeline(j.load, { path: "notes/a.md" });
		await t.reload();
		expect(j.calls[0]).toEqual({ path: "notes/a.md", limit: PAGE_SIZE, offset: 0 });
	});

	it("puts newer ops on top, and asks for a reload when one sorts lower", async () => {
		const j = journal(3);
		const t = new Timeline(j.load);
		await t.reload();
		expect(t.addNew([entry(5), entry(4)])).toBe(true);
		expect(t.entries.map((e) => e.seq)).toEqual([5, 4, 3, 2, 1]);
		expect(t.addNew([entry(2)])).toBe(false);
	});

	it("in file mode takes only ops on that file", async () => {
		const t = new Timeline(() => Promise.resolve([entry(1, "a", 1, "a.md")]), { path: "a.md" });
		await t.reload();
		expect(t.addNew([entry(2, "a", 2, "b.md")])).toBe(true);
		expect(t.entries).toHaveLength(1);
		expect(t.addNew([entry(3, "a", 3, "a.md")])).toBe(true);
		expect(t.entries).toHaveLength(2);
	});
});

describe("groupTimeline", () => {
	it("groups consecutive ops of one device within ten minutes", () => {
		const groups = groupTimeline([entry(30, "b", 30), entry(25, "b", 25), entry(24, "a", 24), entry(23, "a", 23), entry(5, "a", 5)]);
		expect(groups.map((g) => [g.author, g.entries.map((e) => e.seq)])).toEqual([
			["b", [30, 25]],
			["a", [24, 23]],
			["a", [5]],
		]);
	});
});

describe("pointOf and compareHlc", () => {
	it("uses the row's time as its point", () => {
		expect(pointOf(entry(1))).toBe("2026-11-27T01:01:00.000Z");
	});

	it("compares hlc values past 2^53 exactly", () => {
		expect(compareHlc("117685863743684609", "117685863743684608")).toBe(1);
		expect(compareHlc("9", "10")).toBe(-1);
		expect(compareHlc("7", "7")).toBe(0);
	});
});

describe("drawDiff", () => {
	it("classifies lines", () => {
		const d = drawDiff("--- a/x\n+++ b/x\n@@ -1 +1 @@\n-old\n+new\n same");
		expect(d.lines.map((l) => l.kind)).toEqual(["meta", "meta", "hunk", "del", "add", "same"]);
		expect(d.omitted).toBe(0);
	});

	it("cuts a huge diff to the limit and counts the rest", () => {
		const text = Array.from({ length: 50_000 }, (_, i) => `+line ${i}`).join("\n");
		const d = drawDiff(text, 100);
		expect(d.lines).toHaveLength(100);
		expect(d.total).toBe(50_000);
		expect(d.omitted).toBe(49_900);
	});

	it("cuts a very long line", () => {
		const d = drawDiff(`+${"x".repeat(5000)}`);
		expect(d.lines[0]!.text.length).toBe(1001);
	});
});

describe("buildTree", () => {
	it("nests paths in folders, folders first", () => {
		const tree = buildTree(["b.md", "notes/z.md", "notes/sub/a.md", "a.md"]);
		expect(tree.map((n) => n.name)).toEqual(["notes", "a.md", "b.md"]);
		expect(tree[0]!.children.map((n) => [n.name, n.path])).toEqual([
			["sub", null],
			["z.md", "notes/z.md"],
		]);
	});
});
