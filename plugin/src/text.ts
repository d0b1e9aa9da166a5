// Small text helpers shared by the client and the views. Pure.

/** Longest one-line message kept from stderr or an error, in characters. */
export const MESSAGE_CHARS_MAX = 300;

/** The first non-blank line of `text`, trimmed and cut to MESSAGE_CHARS_MAX. */
export function firstLine(text: string): string {
	const line = text.split(/\r?\n/).find((candidate) => candidate.trim() !== "") ?? "";
	const trimmed = line.trim();
	return trimmed.length > MESSAGE_CHARS_MAX ? `${trimmed.slice(0, MESSAGE_CHARS_MAX - 1)}…` : trimmed;
}

/** "1 file", "2 files". */
export function count(n: number, noun: string, plural = `${noun}s`): string {
	return `${n} ${n === 1 ? noun : plural}`;
}

/** The first 12 hex digits of an id, as the CLI shows ids. */
export function shortId(id: string): string {
	return id.slice(0, 12);
}

/** The message of anything thrown. */
export function errorMessage(error: unknown): string {
	return error instanceof Error ? error.message : String(error);
}
