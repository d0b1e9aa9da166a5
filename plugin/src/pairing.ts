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

/**
 * What the JSON report `vellum join --json` prints says, for the person:
 * "12 files, 40 ops of vault …", then which of this folder's own files were
 * kept beside the vault's (an attachment, or JSON such as Obsidian's
 * settings in `configDir` that differed), and that settings take effect
 * after a reload.
 */
export function joinSummary(stdout: string, configDir: string): string {
	let r: { files?: unknown; ops?: unknown; vault?: unknown; aside?: unknown };
	try {
		r = JSON.parse(stdout) as typeof r;
	} catch {
		return "this folder is now a device of the vault";
	}
	let summary = `${String(r.files)} files, ${String(r.ops)} ops of vault ${String(r.vault).slice(0, 12)}`;
	const aside = Array.isArray(r.aside) ? r.aside.filter((n): n is string => typeof n === "string") : [];
	if (aside.length > 0) {
		const what =
			aside.length === 1
				? "This folder's version of one file differed and is"
				: `This folder's versions of ${aside.length} files differed and are`;
		summary += `. ${what} kept beside the vault's: ${aside.join(", ")}`;
	}
	if (aside.some((n) => n.startsWith(`${configDir}/`))) {
		summary += ". The vault's settings are now in place: reload Obsidian to use them.";
	}
	return summary;
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
