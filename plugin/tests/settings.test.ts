import { describe, expect, it } from "vitest";
import { BINARY_PATH_CHARS_MAX, DEFAULT_SETTINGS, parseLines, resolveBinary, retentionProblem, settingsFromData } from "../src/settings";

describe("resolveBinary", () => {
	it.each([
		["", "vellum"],
		["   ", "vellum"],
		["/usr/local/bin/vellum", "/usr/local/bin/vellum"],
		["  /opt/vellum/bin/vellum \n", "/opt/vellum/bin/vellum"],
		["C:\\Program Files\\Vellum\\vellum.exe", "C:\\Program Files\\Vellum\\vellum.exe"],
	])("resolveBinary(%j) is %j", (setting, expected) => {
		expect(resolveBinary(setting)).toBe(expected);
	});

	it("prefers a configured path, then the plugin folder's binary, then PATH", () => {
		expect(resolveBinary("/usr/bin/vellum", "/v/plugins/vellum-sync/vellum")).toBe("/usr/bin/vellum");
		expect(resolveBinary("", "/v/plugins/vellum-sync/vellum")).toBe("/v/plugins/vellum-sync/vellum");
		expect(resolveBinary("", null)).toBe("vellum");
	});
});

describe("parseLines and retentionProblem", () => {
	it("keeps the non-blank lines, trimmed", () => {
		expect(parseLines("  /a/\r\n\n*.tmp  \n")).toEqual(["/a/", "*.tmp"]);
	});

	it.each([[0], [-1], [1.5], [Number.NaN], [3651]])("refuses %d days", (days) => {
		expect(retentionProblem(days)).toContain("from 1 to 3650");
	});

	it("takes 1 to 3650 days", () => {
		expect(retentionProblem(14)).toBeNull();
	});
});

describe("settingsFromData", () => {
	it.each([
		["nothing stored", null],
		["undefined", undefined],
		["a string", "binaryPath"],
		["an array", ["/bin/vellum"]],
		["an empty object", {}],
		["a number path", { binaryPath: 42 }],
		["a null path", { binaryPath: null }],
	])("falls back to the defaults for %s", (_label, data) => {
		expect(settingsFromData(data)).toEqual(DEFAULT_SETTINGS);
	});

	it("keeps a stored path and drops unknown fields", () => {
		expect(settingsFromData({ binaryPath: "/bin/vellum", legacy: true })).toEqual({ binaryPath: "/bin/vellum" });
	});

	it("rejects a path longer than the limit", () => {
		expect(settingsFromData({ binaryPath: "x".repeat(BINARY_PATH_CHARS_MAX) }).binaryPath).toHaveLength(
			BINARY_PATH_CHARS_MAX,
		);
		expect(settingsFromData({ binaryPath: "x".repeat(BINARY_PATH_CHARS_MAX + 1) })).toEqual(DEFAULT_SETTINGS);
	});

	it("returns a fresh object each time", () => {
		const settings = settingsFromData(null);
		settings.binaryPath = "/changed";
		expect(DEFAULT_SETTINGS.binaryPath).toBe("");
		expect(settingsFromData(null).binaryPath).toBe("");
	});
});
