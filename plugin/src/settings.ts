// Plugin settings: the stored shape, its defaults, and how values are read.
// Pure: no Obsidian API, no IO.

/** The binary name looked up on PATH when no path is configured. */
export const DEFAULT_BINARY = "vellum";

/** Longest binary path accepted from stored data; longer values are ignored. */
export const BINARY_PATH_CHARS_MAX = 4096;

export interface VellumSettings {
	/** Path to the `vellum` executable; empty means "vellum" on PATH. */
	binaryPath: string;
}

export const DEFAULT_SETTINGS: Readonly<VellumSettings> = Object.freeze({
	binaryPath: "",
});

/** The binary's file name in the plugin folder (the packaged plugin ships one). */
export const BUNDLED_BINARY = "vellum";

/**
 * The command to run: the configured path; else the binary shipped in the
 * plugin folder, when `bundled` says it is there; else `vellum` on PATH.
 */
export function resolveBinary(binaryPath: string, bundled: string | null = null): string {
	const trimmed = binaryPath.trim();
	if (trimmed !== "") return trimmed;
	return bundled ?? DEFAULT_BINARY;
}

/**
 * Settings from whatever `Plugin.loadData()` returned. The stored file is
 * user-editable and may come from another plugin version, so every field is
 * checked and a bad one falls back to its default instead of failing the load.
 */
export function settingsFromData(data: unknown): VellumSettings {
	const settings: VellumSettings = { ...DEFAULT_SETTINGS };
	if (typeof data !== "object" || data === null || Array.isArray(data)) {
		return settings;
	}
	const binaryPath: unknown = (data as Record<string, unknown>).binaryPath;
	if (typeof binaryPath === "string" && binaryPath.length <= BINARY_PATH_CHARS_MAX) {
		settings.binaryPath = binaryPath;
	}
	return settings;
}

/** The non-blank lines of a multi-line setting, trimmed. */
export function parseLines(text: string): string[] {
	return text
		.split(/\r?\n/)
		.map((line) => line.trim())
		.filter((line) => line !== "");
}

/** Most days of logs the daemon may keep. */
export const RETENTION_DAYS_MAX = 3650;

/** Why a log retention value is refused, or null when it is fine. */
export function retentionProblem(days: number): string | null {
	if (!Number.isInteger(days) || days < 1 || days > RETENTION_DAYS_MAX) {
		return `log retention must be a whole number of days from 1 to ${RETENTION_DAYS_MAX}`;
	}
	return null;
}
