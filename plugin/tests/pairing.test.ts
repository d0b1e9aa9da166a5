import { describe, expect, it } from "vitest";
import { formatCountdown, formatSas, formatShortCode, joinLine, joinSummary } from "../src/pairing";

describe("joinLine", () => {
	it("finds the digits `vellum join` asks about", () => {
		expect(joinLine("Both devices should show the digits 926 199.")).toEqual({ sas: "926199" });
	});

	it("drops the question that ends without a newline from the line after it", () => {
		expect(joinLine("Do they match the inviting device? [y/N] waiting for the inviting device to approve…")).toEqual({
			progress: "waiting for the inviting device to approve…",
		});
		expect(joinLine("Do they match the inviting device? [y/N] ")).toBeNull();
	});

	it("passes other lines on as progress, without the program's prefix", () => {
		expect(joinLine("vellum: the invite has expired; ask for a new one")).toEqual({ progress: "the invite has expired; ask for a new one" });
		expect(joinLine("   ")).toBeNull();
	});
});

describe("formatting", () => {
	it("groups digits as the CLI does", () => {
		expect(formatSas("926199")).toBe("926 199");
		expect(formatShortCode("53032595")).toBe("5303-2595");
		expect(formatShortCode("5303-2595")).toBe("5303-2595");
	});

	it("counts down in minutes and seconds, rounding up", () => {
		expect(formatCountdown(600_000)).toBe("10:00");
		expect(formatCountdown(65_001)).toBe("1:06");
		expect(formatCountdown(-5)).toBe("0:00");
	});
});

describe("joinSummary", () => {
	// Obsidian's settings folder, wherever the person put it.
	const dir = ".settings";
	const report = (aside: string[]) => JSON.stringify({ vault: "0123456789abcdef", files: 12, ops: 40, merged: 2, aside });

	it("says what arrived", () => {
		expect(joinSummary(report([]), dir)).toBe("12 files, 40 ops of vault 0123456789ab");
	});

	it("names this folder's files kept beside the vault's, and asks for a reload when settings were among them", () => {
		const s = joinSummary(report([`${dir}/app (conflict 3f2a).json`, "att/photo (conflict 3f2a).png"]), dir);
		expect(s).toContain(`This folder's versions of 2 files differed and are kept beside the vault's: ${dir}/app (conflict 3f2a).json, att/photo (conflict 3f2a).png`);
		expect(s).toContain("reload Obsidian");
		const one = joinSummary(report(["att/photo (conflict 3f2a).png"]), dir);
		expect(one).toContain("This folder's version of one file differed and is kept beside the vault's: att/photo (conflict 3f2a).png");
		expect(one).not.toContain("reload");
		expect(joinSummary(report([`${dir}x/app (conflict 3f2a).json`]), dir)).not.toContain("reload");
	});

	it("still says something for output that is not a report", () => {
		expect(joinSummary("not json", dir)).toBe("this folder is now a device of the vault");
		expect(joinSummary(JSON.stringify({ vault: "ab", files: 1, ops: 2, aside: [3, null] }), dir)).toBe("1 files, 2 ops of vault ab");
	});
});
