// Held batches (quarantine, DESIGN §8): changes that would delete or empty
// many files at once are kept off the disk until the user looks. Accept
// writes them to the disk; reject writes ops that undo them. Either way
// every version stays in the history.
import { Modal, Notice, type App } from "obsidian";
import type { Vellum } from "../client/session";
import { formatTime } from "../history";
import type { Held } from "../rpc/Held";
import { count, errorMessage } from "../text";
import { FileAtModal } from "./FileAtModal";

/** Most files listed per batch; the rest are counted. */
const FILES_SHOWN_MAX = 200;

const CHANGE_TEXT: Record<string, string> = {
	delete: "would be deleted",
	empty: "would be emptied",
	revert: "would go back to an older version",
	recreate: "would come back",
};

export class QuarantineModal extends Modal {
	private unsubscribe: (() => void) | null = null;

	constructor(
		app: App,
		private readonly vellum: Vellum,
	) {
		super(app);
	}

	override onOpen(): void {
		this.modalEl.addClass("vellum-quarantine");
		this.setTitle("Changes held back");
		this.unsubscribe = this.vellum.store.subscribe((change) => {
			if (change.kind === "state") this.draw();
		});
		this.draw();
	}

	private draw(): void {
		const body = this.contentEl;
		body.empty();
		const held = this.vellum.store.state.held;
		if (held.length === 0) {
			body.createEl("p", { text: "Nothing is held back." });
			return;
		}
		body.createEl("p", {
			text: "These changes would delete, empty or revert many files at once, so they were kept off the disk. Your files are as they were. Apply a batch if it was meant, or undo it.",
		});
		for (const batch of held) this.drawBatch(body, batch);
	}

	private drawBatch(parent: HTMLElement, batch: Held): void {
		const el = parent.createDiv({ cls: "vellum-batch", attr: { "data-batch": batch.id } });
		const who = batch.source === "scan" ? "Found by a scan of this folder" : `From ${batch.author_name ?? batch.author ?? "another device"}`;
		el.createEl("h5", { text: `${who}, ${formatTime(batch.time)}: ${count(batch.files.length, "file")}` });
		const list = el.createEl("ul", { cls: "vellum-preview" });
		for (const file of batch.files.slice(0, FILES_SHOWN_MAX)) {
			const li = list.createEl("li", { attr: { "data-path": file.path, "data-change": file.change } });
			li.createSpan({ cls: `vellum-action vellum-action-${file.change}`, text: file.change });
			li.createSpan({ text: `${file.path} ${CHANGE_TEXT[file.change] ?? ""}` });
			if (file.change === "revert" || file.change === "empty") {
				const link = li.createEl("a", { cls: "vellum-preview-link", text: "Preview", attr: { href: "#" } });
				link.addEventListener("click", (e) => {
					e.preventDefault();
					new FileAtModal(this.app, this.vellum, file.path, "head", "if applied").open();
				});
			}
		}
		if (batch.files.length > FILES_SHOWN_MAX) list.createEl("li", { text: `… and ${batch.files.length - FILES_SHOWN_MAX} more` });
		const buttons = el.createDiv({ cls: "modal-button-container" });
		buttons.createEl("button", { text: "Undo these changes", cls: "vellum-reject" }).addEventListener("click", () => void this.decide(batch, false));
		buttons.createEl("button", { text: "Apply to disk", cls: "vellum-accept mod-warning" }).addEventListener("click", () => void this.decide(batch, true));
	}

	private async decide(batch: Held, accept: boolean): Promise<void> {
		for (const b of this.contentEl.findAll(`[data-batch="${batch.id}"] button`)) (b as HTMLButtonElement).disabled = true;
		try {
			const report = await this.vellum.call(accept ? "quarantine.accept" : "quarantine.reject", { id: batch.id });
			new Notice(`Vellum: ${accept ? "applied" : "undid"} ${count(report.changed.length, "file")}`);
		} catch (error) {
			new Notice(`Vellum: ${errorMessage(error)}`);
			this.draw();
		}
	}

	override onClose(): void {
		this.unsubscribe?.();
		this.contentEl.empty();
	}
}
