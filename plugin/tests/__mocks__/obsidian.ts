// A small run-time stand-in for the `obsidian` module, which ships types only.
// vitest.config.ts aliases `obsidian` to this file. Each class `implements` a
// Pick of the real class, so tsc checks the shim against the real API: if
// Obsidian changes a signature the plugin uses, the shim stops compiling.
import type * as obsidian from "obsidian";

type ElementApi = Pick<HTMLElement, "setText" | "getText" | "setAttr" | "getAttr" | "empty" | "remove">;

/** The few HTMLElement methods (Obsidian's DOM helpers) the plugin calls; no DOM needed. */
export class FakeElement implements ElementApi {
	text = "";
	removed = false;
	readonly attributes = new Map<string, string>();

	setText(val: string | DocumentFragment): void {
		this.text = typeof val === "string" ? val : (val.textContent ?? "");
	}

	getText(): string {
		return this.text;
	}

	setAttr(qualifiedName: string, value: string | number | boolean | null): void {
		if (value === null) {
			this.attributes.delete(qualifiedName);
		} else {
			this.attributes.set(qualifiedName, String(value));
		}
	}

	getAttr(qualifiedName: string): string | null {
		return this.attributes.get(qualifiedName) ?? null;
	}

	empty(): void {
		this.text = "";
		settingsByContainer.delete(this);
	}

	remove(): void {
		this.removed = true;
	}

	asHTMLElement(): HTMLElement {
		return this as unknown as HTMLElement;
	}
}

function fakeOf(el: HTMLElement): FakeElement {
	const fake: unknown = el;
	if (!(fake instanceof FakeElement)) {
		throw new Error("the obsidian shim only handles elements it created");
	}
	return fake;
}

export class FileSystemAdapter implements Pick<obsidian.FileSystemAdapter, "getBasePath" | "getName"> {
	constructor(private readonly basePath: string) {}

	getBasePath(): string {
		return this.basePath;
	}

	getName(): string {
		return this.basePath.split("/").pop() ?? "";
	}
}

/** An adapter that is not a FileSystemAdapter, like the mobile app's. */
export class OtherAdapter {
	getName(): string {
		return "other";
	}
}

/** An App with just `vault.adapter` and `workspace.onLayoutReady` (which runs its callback at once). */
export function createApp(adapter: FileSystemAdapter | OtherAdapter): obsidian.App {
	const app = {
		vault: { adapter },
		workspace: {
			onLayoutReady(callback: () => unknown): void {
				callback();
			},
		},
	};
	return app as unknown as obsidian.App;
}

export function createManifest(): obsidian.PluginManifest {
	return {
		id: "vellum-sync",
		name: "Vellum Sync",
		version: "0.1.0",
		minAppVersion: "1.5.0",
		description: "test",
		author: "test",
	};
}

type ComponentApi = Pick<obsidian.Component, "load" | "unload" | "onload" | "onunload" | "register" | "registerInterval">;

export class Component implements ComponentApi {
	private cleanups: (() => unknown)[] = [];

	load(): void {
		void this.onload();
	}

	onload(): void {}

	unload(): void {
		for (const cleanup of this.cleanups.splice(0)) {
			cleanup();
		}
		this.onunload();
	}

	onunload(): void {}

	register(cb: () => unknown): void {
		this.cleanups.push(cb);
	}

	registerInterval(id: number): number {
		this.register(() => window.clearInterval(id));
		return id;
	}
}

type PluginApi = Pick<
	obsidian.Plugin,
	"app" | "manifest" | "addStatusBarItem" | "addSettingTab" | "loadData" | "saveData"
>;

interface PluginState {
	statusBarItems: FakeElement[];
	settingTabs: PluginSettingTab[];
	/** What saveData last stored; loadData returns it. */
	data: unknown;
}

// Kept outside the instance so that the shim adds no members a plugin could
// come to rely on that the real Plugin lacks.
const pluginState = new WeakMap<Plugin, PluginState>();

export class Plugin extends Component implements PluginApi {
	constructor(
		public app: obsidian.App,
		public manifest: obsidian.PluginManifest,
	) {
		super();
		pluginState.set(this, { statusBarItems: [], settingTabs: [], data: null });
	}

	addStatusBarItem(): HTMLElement {
		const el = new FakeElement();
		stateOf(this).statusBarItems.push(el);
		// Obsidian removes a plugin's status bar items when it unloads.
		this.register(() => el.remove());
		return el.asHTMLElement();
	}

	addSettingTab(settingTab: obsidian.PluginSettingTab): void {
		const tab: unknown = settingTab;
		if (tab instanceof PluginSettingTab) {
			stateOf(this).settingTabs.push(tab);
		}
	}

	loadData(): Promise<unknown> {
		return Promise.resolve(structuredClone(stateOf(this).data));
	}

	saveData(data: unknown): Promise<void> {
		stateOf(this).data = structuredClone(data);
		return Promise.resolve();
	}
}

function stateOf(plugin: Plugin): PluginState {
	const state = pluginState.get(plugin);
	if (state === undefined) {
		throw new Error("not a shim Plugin");
	}
	return state;
}

/** The status bar items a plugin added, in order. */
export function statusBarItemsOf(plugin: object): FakeElement[] {
	return stateOf(plugin as Plugin).statusBarItems;
}

/** The plugin's data.json as last saved (or as set by setStoredData). */
export function storedDataOf(plugin: object): unknown {
	return stateOf(plugin as Plugin).data;
}

/** Sets what the plugin's next loadData() returns. */
export function setStoredData(plugin: object, data: unknown): void {
	stateOf(plugin as Plugin).data = structuredClone(data);
}

/** The setting tabs a plugin added, in order. */
export function settingTabsOf(plugin: object): PluginSettingTab[] {
	return stateOf(plugin as Plugin).settingTabs;
}

type SettingTabApi = Pick<
	obsidian.PluginSettingTab,
	"app" | "containerEl" | "display" | "hide" | "getSettingDefinitions" | "getControlValue" | "setControlValue"
>;

export class PluginSettingTab implements SettingTabApi {
	containerEl: HTMLElement = new FakeElement().asHTMLElement();

	constructor(
		public app: obsidian.App,
		public plugin: obsidian.Plugin,
	) {}

	/**
	 * Obsidian before 1.13 calls this to render the tab; tests call it to do
	 * the same. (Its own tag stops TypeScript inheriting the real method's
	 * deprecation, which is aimed at plugins, not at the app calling it.)
	 * @public
	 */
	display(): void {}

	hide(): void {}

	getSettingDefinitions(): obsidian.SettingDefinitionItem[] {
		return [];
	}

	getControlValue(_key: string): unknown {
		return undefined;
	}

	setControlValue(_key: string, _value: unknown): void | Promise<void> {}
}

const settingsByContainer = new WeakMap<FakeElement, Setting[]>();

/** The Settings created in a container since it was last emptied. */
export function settingsIn(containerEl: HTMLElement): Setting[] {
	return settingsByContainer.get(fakeOf(containerEl)) ?? [];
}

export class Setting implements Pick<obsidian.Setting, "setName" | "setDesc" | "addText"> {
	name = "";
	desc = "";
	readonly texts: TextComponent[] = [];

	constructor(containerEl: HTMLElement) {
		const container = fakeOf(containerEl);
		settingsByContainer.set(container, [...(settingsByContainer.get(container) ?? []), this]);
	}

	setName(name: string | DocumentFragment): obsidian.Setting {
		this.name = typeof name === "string" ? name : (name.textContent ?? "");
		return this.chain();
	}

	setDesc(desc: string | DocumentFragment): obsidian.Setting {
		this.desc = typeof desc === "string" ? desc : (desc.textContent ?? "");
		return this.chain();
	}

	addText(cb: (component: obsidian.TextComponent) => unknown): obsidian.Setting {
		const text = new TextComponent();
		this.texts.push(text);
		cb(text.chain());
		return this.chain();
	}

	// The real methods return the real class; the shim stands in for it.
	private chain(): obsidian.Setting {
		return this as unknown as obsidian.Setting;
	}
}

export class TextComponent implements Pick<obsidian.TextComponent, "getValue" | "setValue" | "setPlaceholder" | "onChange"> {
	value = "";
	placeholder = "";
	private changeHandler: ((value: string) => unknown) | null = null;

	getValue(): string {
		return this.value;
	}

	setValue(value: string): obsidian.TextComponent {
		this.value = value;
		return this.chain();
	}

	setPlaceholder(placeholder: string): obsidian.TextComponent {
		this.placeholder = placeholder;
		return this.chain();
	}

	onChange(callback: (value: string) => unknown): obsidian.TextComponent {
		this.changeHandler = callback;
		return this.chain();
	}

	/** This shim as the real type, for returning from chained calls. */
	chain(): obsidian.TextComponent {
		return this as unknown as obsidian.TextComponent;
	}

	/** Simulates the user typing `value`; resolves when the change handler has. */
	async type(value: string): Promise<void> {
		this.value = value;
		await this.changeHandler?.(value);
	}
}
