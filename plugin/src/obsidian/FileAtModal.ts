// A file as it was at a point, read-only.
import { Modal, type App } from "obsidian";
import type { Vellum } from "../client/session";
import { count, errorMessage } from "../text";

/** Most characters of a file drawn; a longer one is cut with a note. */
export const FILE_CHARS_MAX = 1_000_000;

export class FileAtModal extends Modal {
	constructor(
		app: App,
		private readonly vellum: Vellum,
		private readonly path: string,
		private readonly point: string,
		private readonly label: string,
	) {
		super(app);
	}

	override async onOpen(): Promise<void> {
		this.modalEl.addClass("vellum-file-at");
		this.setTitle(`${this.path} as of ${this.label}`);
		const body = this.contentEl;
		body.createDiv({ cls: "vellum-note", text: "Read-only: this is how the file was then." });
		let text: string | null;
		let size: number;
		try {
			const info = await this.vellum.call("show", { path: this.path, at: this.point });
			text = info.text;
			size = info.size;
		} catch (error) {
			body.createDiv({ cls: "vellum-error", text: errorMessage(error) });
			return;
		}
		const pre = body.createEl("pre", { cls: "vellum-file-text", attr: { "data-path": this.path, "data-at": this.point } });
		if (text === null) {
			pre.setText(`(binary file, ${count(size, "byte")})`);
		} else if (text.length > FILE_CHARS_MAX) {
			pre.setText(text.slice(0, FILE_CHARS_MAX));
			body.createDiv({ cls: "vellum-note", text: `Showing the first ${FILE_CHARS_MAX.toLocaleString()} of ${text.length.toLocaleString()} characters.` });
		} else {
			pre.setText(text);
		}
	}

	override onClose(): void {
		this.contentEl.empty();
	}
}
