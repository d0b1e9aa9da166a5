// Pairing, the parts that are not drawing: formatting, and the contract of
// a join run (the Node side runs `vellum join`). Pure.

/** "123 456". */
export function formatSas(sas: string): string {
	return sas.length === 6 ? `${sas.slice(0, 3)} ${sas.slice(3)}` : sas;
}

/** "9:05" for a duration in ms (rounded up to the second). */
export function formatCountdown(ms: number): string {
	const s = Math.max(0, Math.ceil(ms / 1000));
	return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

/** What a join reports as it goes. */
export interface JoinEvents {
	/** A line of progress. */
	progress(line: string): void;
	/** Both devices computed these six digits: ask the person whether they match. */
	sas(digits: string): void;
	/** Done: this folder is a device of the vault. */
	joined(summary: string): void;
	failed(message: string): void;
}

export interface JoinRun {
	/** The person's answer about the digits. */
	confirm(match: boolean): void;
	cancel(): void;
}

export interface Joiner {
	join(code: string, events: JoinEvents): JoinRun;
}

const SAS_LINE = /^Both devices should show the digits (\d{3}) (\d{3})\.?$/;

/** The question `vellum join` asks after the digits; it ends without a newline, so the next line follows it. */
const SAS_QUESTION = /^Do they match the inviting device\? \[y\/N\]\s*/;

/** "1234-5678" for an 8-digit short code, as `vellum invite` prints it. */
export function formatShortCode(code: string): string {
	return /^\d{8}$/.test(code) ? `${code.slice(0, 4)}-${code.slice(4)}` : code;
}

/**
 * Reads one stderr line of `vellum join`: the digits it asks about, or a
 * progress line. (The CLI prompts on stderr; the prompt itself, which has
 * no newline, is not a line.)
 */
export function joinLine(line: string): { sas: string } | { progress: string } | null {
	const trimmed = line.replace(SAS_QUESTION, "").trim();
	if (trimmed === "") return null;
	const m = SAS_LINE.exec(trimmed);
	if (m !== null) return { sas: `${m[1]}${m[2]}` };
	return { progress: trimmed.replace(/^vellum: /, "") };
}
