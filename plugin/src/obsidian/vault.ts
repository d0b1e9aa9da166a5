import { FileSystemAdapter, type App } from "obsidian";

/** The vault's folder on disk, or null when the vault is not stored in a folder (mobile). */
export function vaultBasePath(app: App): string | null {
	const adapter = app.vault.adapter;
	return adapter instanceof FileSystemAdapter ? adapter.getBasePath() : null;
}
