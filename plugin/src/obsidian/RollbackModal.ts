// "Roll vault back to here": the files that would change, then confirm or
// cancel. Cancelling writes nothing; confirming writes ops that make the
// vault equal the point, so the present stays in history too.
import { Modal, Notice, type App } from "obsidian";
import type { Vellum } from "../client/session";
import type { Preview } from "../rpc/Preview";
import { count, errorMessage } from "../text";

/** Most preview rows drawn; the rest are counted. */
const PREVIEW_ROWS_MAX = 500;

export class RollbackModal extends Modal {
	private preview: Preview | null = null;
	private busy = false;

	constructor(
		app: App,
		private readonly vellum: Vellum,
		private readonly point: string,
		private readonly label: string,
		private readonly path?: string,
	) {
		super(app);
	}

	override async onOpen(): Promise<void> {
		this.modalEl.addClass("vellum-rollback-modal");
		this.setTitle(`Roll ${this.path ?? "the vault"} back to ${this.label}`);
		const body = this.contentEl;
		const status = body.createDiv({ cls: "vellum-note", text: "Working out what would change…" });
		try {
			this.preview = await this.vellum.call("rollback.preview", { to: this.point, ...(this.path === undefined ? {} : { path: this.path }) });
		} catch (error) {
			status.setText(`Could not preview the rollback: ${errorMessage(error)}`);
			status.addClass("vellum-error");
			return;
		}
		status.detach();
		this.draw(this.preview);
	}

	private draw(preview: Preview): void {
		const body = this.contentEl;
		if (preview.changes.length === 0) {
			body.createDiv({ cls: "vellum-note", text: "Nothing would change: the vault already matches that point." });
			body.createDiv({ cls: "modal-button-container" }).createEl("button", { text: "Close" }).addEventListener("click", () => this.close());
			return;
		}
		body.createDiv({
			cls: "vellum-note",
			text: `${count(preview.changes.length, "file")} would change. Every current version stays in the history, so this can be undone.`,
		});
		if (preview.destructive > 0) {
			body.createDiv({ cls: "vellum-warning", text: `${count(preview.destructive, "file")} would be deleted or emptied.` });
		}
		const list = body.createEl("ul", { cls: "vellum-preview" });
		for (const change of preview.changes.slice(0, PREVIEW_ROWS_MAX)) {
			const li = list.createEl("li", { attr: { "data-path": change.path, "data-action": change.action } });
			li.createSpan({ cls: `vellum-action vellum-action-${change.action}`, text: change.action });
			li.createSpan({ text: change.from === null ? change.path : `${change.from} → ${change.path}` });
		}
		if (preview.changes.length > PREVIEW_ROWS_MAX) {
			list.createEl("li", { text: `… and ${preview.changes.length - PREVIEW_ROWS_MAX} more` });
		}
		const buttons = body.createDiv({ cls: "modal-button-container" });
		const cancel = buttons.createEl("button", { text: "Cancel", cls: "vellum-cancel" });
		cancel.addEventListener("click", () => this.close());
		const confirm = buttons.createEl("button", { text: `Roll back ${count(preview.changes.length, "file")}`, cls: "vellum-confirm mod-warning" });
		confirm.addEventListener("click", () => void this.apply(confirm));
	}

	private async apply(button: HTMLButtonElement): Promise<void> {
		if (this.busy || this.preview === null) return;
		this.busy = true;
		button.disabled = true;
		try {
			// The person saw the preview, which is what `--yes` stands for.
			const report = await this.vellum.call("rollback.apply", {
				to: this.point,
				yes: this.preview.needs_yes,
				...(this.path === undefined ? {} : { path: this.path }),
			});
			new Notice(`Vellum: rolled back to ${this.label} (${count(report.changed.length, "file")} changed)`);
			this.close();
		} catch (error) {
			new Notice(`Vellum: could not roll back: ${errorMessage(error)}`);
			this.busy = false;
			button.disabled = false;
		}
	}

	override onClose(): void {
		this.contentEl.empty();
	}
}
