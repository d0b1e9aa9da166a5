import { describe, expect, it } from "vitest";
import { formatCountdown, formatSas, formatShortCode, joinLine } from "../src/pairing";

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
