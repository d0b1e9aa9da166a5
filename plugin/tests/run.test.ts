import { describe, expect, it } from "vitest";
import { firstLine, MESSAGE_CHARS_MAX, runResultFrom } from "../src/run";

describe("runResultFrom", () => {
	it("treats no error as exit 0", () => {
		expect(runResultFrom(null, "{}", "")).toEqual({ kind: "exited", exitCode: 0, stdout: "{}", stderr: "" });
	});

	it("keeps the exit code and output of a failed run", () => {
		const error = { message: "Command failed: vellum status", code: 1, killed: false, signal: null };
		expect(runResultFrom(error, "", "no vault here\n")).toEqual({
			kind: "exited",
			exitCode: 1,
			stdout: "",
			stderr: "no vault here\n",
		});
	});

	it("reports a missing binary as a spawn failure", () => {
		const error = { message: "spawn vellum ENOENT", code: "ENOENT" };
		expect(runResultFrom(error, "", "")).toEqual({ kind: "spawn_failed", code: "ENOENT", message: "spawn vellum ENOENT" });
	});

	it("reports a timeout as killed", () => {
		const error = { message: "Command failed", code: null, killed: true, signal: "SIGTERM" };
		expect(runResultFrom(error, "", "partial")).toEqual({ kind: "killed", signal: "SIGTERM", stderr: "partial" });
	});

	it("reports an error with neither code nor signal as a spawn failure", () => {
		expect(runResultFrom({ message: "odd\nsecond line" }, "", "")).toEqual({
			kind: "spawn_failed",
			code: "UNKNOWN",
			message: "odd",
		});
	});
});

describe("firstLine", () => {
	it.each([
		["", ""],
		["one line\n", "one line"],
		["\n\n  second is first  \r\nthird", "second is first"],
		["   \n\t\n", ""],
	])("firstLine(%j) is %j", (text, expected) => {
		expect(firstLine(text)).toBe(expected);
	});

	it("cuts long lines to the limit", () => {
		const line = firstLine("a".repeat(MESSAGE_CHARS_MAX * 2));
		expect(line).toHaveLength(MESSAGE_CHARS_MAX);
		expect(line.endsWith("…")).toBe(true);
	});
});
