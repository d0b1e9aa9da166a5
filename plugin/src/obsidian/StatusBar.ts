// The status bar item: the vault's state in a few words, details on hover,
// and a click opens the history view.
import type { Store } from "../state";
import { describeState } from "../state";

export class StatusBar {
	private readonly unsubscribe: () => void;

	constructor(
		private readonly el: HTMLElement,
		private readonly store: Store,
		onClick: () => void,
	) {
		el.addClass("vellum-status", "mod-clickable");
		el.addEventListener("click", onClick);
		this.unsubscribe = store.subscribe((change) => {
			if (change.kind === "state") this.render();
		});
		this.render();
	}

	render(): void {
		const display = describeState(this.store.state);
		this.el.setText(display.text);
		this.el.setAttr("aria-label", display.tooltip);
		this.el.setAttr("data-tooltip-position", "top");
		this.el.setAttr("data-state", display.kind);
	}

	detach(): void {
		this.unsubscribe();
	}
}
