// Keeps one status bar item in step with `vellum status`.
import { runVellum, statusArgs } from "../cli";
import type { RunResult } from "../run";
import { describeOutcome, outcomeFromRun, STATUS_TEXT_CHECKING, type StatusOutcome } from "../status";

export interface StatusSource {
	/** The command to run, read on every refresh so a settings change applies at once. */
	binary(): string;
	/** The vault folder, or null when there is none. */
	vaultPath(): string | null;
}

export type Runner = (binary: string, args: readonly string[]) => Promise<RunResult>;

export class StatusBar {
	private running: Promise<void> | null = null;
	private wanted = false;
	private detached = false;

	constructor(
		private readonly el: HTMLElement,
		private readonly source: StatusSource,
		private readonly run: Runner = runVellum,
	) {
		this.show(STATUS_TEXT_CHECKING, "");
	}

	/**
	 * Runs `vellum status` and shows the result. At most one check runs at a
	 * time: a call during a check asks for one more check after it, so the
	 * last settings change is always reflected.
	 */
	refresh(): Promise<void> {
		if (this.detached) {
			return Promise.resolve();
		}
		this.wanted = true;
		if (this.running === null) {
			const running = this.drain().finally(() => {
				if (this.running === running) {
					this.running = null;
				}
				// A request that arrived after drain() last looked would otherwise be lost.
				if (this.wanted && !this.detached) {
					void this.refresh();
				}
			});
			this.running = running;
		}
		return this.running;
	}

	/** Stops updating the element; a check still running is discarded when it ends. */
	detach(): void {
		this.detached = true;
	}

	private async drain(): Promise<void> {
		while (this.wanted && !this.detached) {
			this.wanted = false;
			const outcome = await this.check();
			if (!this.detached) {
				const display = describeOutcome(outcome);
				this.show(display.text, display.tooltip);
			}
		}
	}

	private async check(): Promise<StatusOutcome> {
		const vaultPath = this.source.vaultPath();
		if (vaultPath === null) {
			return { kind: "unsupported_vault" };
		}
		const binary = this.source.binary();
		return outcomeFromRun(await this.run(binary, statusArgs(vaultPath)), binary);
	}

	private show(text: string, tooltip: string): void {
		this.el.setText(text);
		this.el.setAttr("aria-label", tooltip === "" ? null : tooltip);
		this.el.setAttr("data-tooltip-position", "top");
	}
}
