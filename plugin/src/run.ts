// The result of running the `vellum` CLI once, as plain data.
// Pure: built from what child_process.execFile hands its callback.

/** Longest one-line message kept from stderr or an error, in characters. */
export const MESSAGE_CHARS_MAX = 300;

export type RunResult =
	/** The process ran and exited with a code (0 or not). */
	| { kind: "exited"; exitCode: number; stdout: string; stderr: string }
	/** The process could not be started, or its output overflowed (code such as "ENOENT"). */
	| { kind: "spawn_failed"; code: string; message: string }
	/** The process was killed by a signal, for example on timeout. */
	| { kind: "killed"; signal: string; stderr: string };

/** The shape of the error execFile passes its callback (a subset of Node's ExecFileException). */
export interface ExecFileError {
	message: string;
	code?: string | number | null;
	killed?: boolean;
	signal?: string | null;
}

/** Classifies the arguments of an execFile callback. */
export function runResultFrom(error: ExecFileError | null, stdout: string, stderr: string): RunResult {
	if (error === null) {
		return { kind: "exited", exitCode: 0, stdout, stderr };
	}
	// Node sets a numeric code for a non-zero exit and a string code
	// (ENOENT, EACCES, ERR_CHILD_PROCESS_STDIO_MAXBUFFER) when the process
	// could not run or was stopped by Node itself.
	if (typeof error.code === "number") {
		return { kind: "exited", exitCode: error.code, stdout, stderr };
	}
	if (typeof error.code === "string") {
		return { kind: "spawn_failed", code: error.code, message: firstLine(error.message) };
	}
	if (error.killed === true || (error.signal !== undefined && error.signal !== null)) {
		return { kind: "killed", signal: error.signal ?? "unknown", stderr };
	}
	return { kind: "spawn_failed", code: "UNKNOWN", message: firstLine(error.message) };
}

/** The first non-blank line of `text`, trimmed and cut to MESSAGE_CHARS_MAX. */
export function firstLine(text: string): string {
	const line = text.split(/\r?\n/).find((candidate) => candidate.trim() !== "") ?? "";
	const trimmed = line.trim();
	return trimmed.length > MESSAGE_CHARS_MAX ? `${trimmed.slice(0, MESSAGE_CHARS_MAX - 1)}…` : trimmed;
}
