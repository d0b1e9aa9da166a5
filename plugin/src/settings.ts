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

/** The command to run for a configured binary path. */
export function resolveBinary(binaryPath: string): string {
	const trimmed = binaryPath.trim();
	return trimmed === "" ? DEFAULT_BINARY : trimmed;
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
