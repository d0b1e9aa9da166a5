// Pairing a new device (DESIGN §7). Inviting: the short code, the long
// code, its QR code and the time left; then the joining device's name and
// the six digits both devices show, to approve or deny. Joining: the code
// from the other device, then the same six digits to confirm.
import { Modal, Notice, type App } from "obsidian";
import type { Vellum } from "../client/session";
import type { InviteInfo } from "../rpc/InviteInfo";
import type { PairingEvent } from "../state";
import { errorMessage, shortId } from "../text";
import { formatCountdown, formatSas, formatShortCode } from "../pairing";
import type { JoinRun, Joiner } from "../pairing";

export class InviteModal extends Modal {
	private invite: InviteInfo | null = null;
	private timer: number | null = null;
	private unsubscribe: (() => void) | null = null;
	/** Set once a device joined, or the invite ended: closing then cancels nothing. */
	private settled = false;
	private countdownEl!: HTMLElement;
	private requestEl!: HTMLElement;

	constructor(
		app: App,
		private readonly vellum: Vellum,
		private readonly now: () => number = Date.now,
	) {
		super(app);
	}

	override async onOpen(): Promise<void> {
		this.modalEl.addClass("vellum-invite");
		this.setTitle("Pair a device");
		const body = this.contentEl;
		const status = body.createDiv({ cls: "vellum-note", text: "Making an invite…" });
		try {
			this.invite = await this.vellum.call("invite.create", { yes: false });
		} catch (error) {
			status.setText(`Could not make an invite: ${errorMessage(error)}`);
			status.addClass("vellum-error");
			return;
		}
		status.detach();
		this.unsubscribe = this.vellum.store.subscribe((change) => {
			if (change.kind === "pairing") this.pairing(change.pairing);
		});
		this.draw(this.invite);
	}

	private draw(invite: InviteInfo): void {
		const body = this.contentEl;
		body.createEl("p", { text: "On the other device, join with one of these codes. Each works once." });
		const codes = body.createDiv({ cls: "vellum-codes" });
		const left = codes.createDiv({ cls: "vellum-code-texts" });
		if (invite.short_code !== null) {
			left.createDiv({ cls: "vellum-label", text: "On this network" });
			left.createDiv({ cls: "vellum-short-code", text: formatShortCode(invite.short_code) });
		}
		left.createDiv({ cls: "vellum-label", text: "Anywhere (long code)" });
		const long = left.createEl("textarea", { cls: "vellum-long-code", attr: { readonly: "true", rows: 4 } });
		long.value = invite.code;
		left.createEl("button", { text: "Copy long code", cls: "vellum-copy" }).addEventListener("click", () => {
			void navigator.clipboard.writeText(invite.code).then(() => new Notice("Vellum: long code copied"));
		});
		// The QR is an SVG document from the daemon; as an image it is drawn, never run.
		codes.createEl("img", {
			cls: "vellum-qr",
			attr: { alt: "QR code of the long code", src: `data:image/svg+xml;base64,${base64(invite.qr_svg)}` },
		});
		this.countdownEl = body.createDiv({ cls: "vellum-countdown" });
		this.requestEl = body.createDiv({ cls: "vellum-pair-request" });
		this.tick();
		this.timer = window.setInterval(() => this.tick(), 1000);
	}

	private tick(): void {
		if (this.invite === null || this.settled) return;
		const left = Date.parse(this.invite.expires_at) - this.now();
		if (left <= 0) {
			this.countdownEl.setText("This invite has expired. Close and make a new one.");
			this.countdownEl.addClass("vellum-error");
			this.stopTimer();
			return;
		}
		this.countdownEl.setText(`Expires in ${formatCountdown(left)}`);
	}

	private pairing(event: PairingEvent): void {
		const r = this.requestEl;
		r.empty();
		const who = `${event.name} (${shortId(event.device)})`;
		r.setAttr("data-stage", event.stage);
		switch (event.stage) {
			case "request": {
				r.createEl("p", { text: `${who} wants to join this vault.` });
				r.createEl("p", { text: "Check that the other device shows the same digits:" });
				r.createDiv({ cls: "vellum-sas", text: formatSas(event.sas ?? "") });
				const buttons = r.createDiv({ cls: "modal-button-container" });
				buttons.createEl("button", { text: "Deny", cls: "vellum-deny" }).addEventListener("click", () => void this.decide(false));
				buttons.createEl("button", { text: `Approve ${event.name}`, cls: "vellum-approve mod-cta" }).addEventListener("click", () => void this.decide(true));
				break;
			}
			case "joined":
				this.settled = true;
				this.stopTimer();
				r.createEl("p", { cls: "vellum-joined", text: `${who} joined. It is receiving the vault now.` });
				break;
			case "declined":
				this.settled = true;
				r.createEl("p", { text: `You turned ${who} away. The invite is used up.` });
				break;
			case "refused":
				this.settled = true;
				r.createEl("p", { cls: "vellum-error", text: `${who} gave a wrong code${event.reason === null ? "" : ` (${event.reason})`}. The invite is used up.` });
				break;
		}
	}

	private async decide(approve: boolean): Promise<void> {
		for (const b of this.requestEl.findAll("button")) (b as HTMLButtonElement).disabled = true;
		try {
			await this.vellum.call("invite.approve", { approve });
		} catch (error) {
			new Notice(`Vellum: ${errorMessage(error)}`);
		}
	}

	private stopTimer(): void {
		if (this.timer !== null) window.clearInterval(this.timer);
		this.timer = null;
	}

	override onClose(): void {
		this.stopTimer();
		this.unsubscribe?.();
		this.contentEl.empty();
		// An open invite should not outlive the window that shows it.
		if (!this.settled && this.invite !== null) void this.vellum.call("invite.cancel").catch(() => {});
	}
}

export class JoinModal extends Modal {
	private run: JoinRun | null = null;
	private stepEl!: HTMLElement;

	constructor(
		app: App,
		private readonly joiner: Joiner,
		private readonly onJoined: () => void,
	) {
		super(app);
	}

	override onOpen(): void {
		this.modalEl.addClass("vellum-join");
		this.setTitle("Join a vault");
		const body = this.contentEl;
		body.createEl("p", { text: "On a device that already syncs the vault, make an invite with the pairing command, and enter its code here. This folder becomes a new device of that vault; files already here are kept." });
		const input = body.createEl("input", { type: "text", cls: "vellum-join-code", attr: { placeholder: "1234-5678, or the long code", spellcheck: "false" } });
		const go = body.createDiv({ cls: "modal-button-container" }).createEl("button", { text: "Join", cls: "vellum-join-go mod-cta" });
		this.stepEl = body.createDiv({ cls: "vellum-join-step" });
		go.addEventListener("click", () => {
			const code = input.value.trim();
			if (code === "") return;
			go.disabled = true;
			input.disabled = true;
			this.start(code);
		});
	}

	private start(code: string): void {
		this.say("Looking for the inviting device…");
		this.run = this.joiner.join(code, {
			progress: (line) => this.say(line),
			sas: (digits) => this.askSas(digits),
			joined: (summary) => {
				this.stepEl.empty();
				this.stepEl.createEl("p", { cls: "vellum-joined", text: `Joined: ${summary}` });
				this.run = null;
				this.onJoined();
			},
			failed: (message) => {
				this.stepEl.empty();
				this.stepEl.createEl("p", { cls: "vellum-error", text: `Could not join: ${message}` });
				this.run = null;
			},
		});
	}

	private say(line: string): void {
		this.stepEl.empty();
		this.stepEl.createEl("p", { cls: "vellum-note", text: line });
	}

	private askSas(digits: string): void {
		const s = this.stepEl;
		s.empty();
		s.createEl("p", { text: "Does the inviting device show these digits?" });
		s.createDiv({ cls: "vellum-sas", text: formatSas(digits) });
		const buttons = s.createDiv({ cls: "modal-button-container" });
		buttons.createEl("button", { text: "They differ", cls: "vellum-sas-no" }).addEventListener("click", () => {
			this.run?.confirm(false);
			this.say("Stopped: the digits differ, so this was not your device.");
		});
		buttons.createEl("button", { text: "They match", cls: "vellum-sas-yes mod-cta" }).addEventListener("click", () => {
			this.run?.confirm(true);
			this.say("Waiting for the inviting device to approve, then fetching the vault…");
		});
	}

	override onClose(): void {
		// Closing mid-way stops the join; nothing was written to this folder's files.
		this.run?.cancel();
		this.contentEl.empty();
	}
}

function base64(text: string): string {
	const bytes = new TextEncoder().encode(text);
	let binary = "";
	for (const b of bytes) binary += String.fromCharCode(b);
	return btoa(binary);
}
