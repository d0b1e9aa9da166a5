// A run-time stand-in for the `obsidian` module, which ships types only.
//
// It runs over a real DOM: happy-dom under vitest (vitest.config.ts aliases
// `obsidian` here) and Chromium in the end-to-end suite (e2e/ bundles this
// file for the harness page). Each class `implements` a Pick of the real
// class, so tsc checks the shim against the real API: if Obsidian changes a
// signature the plugin uses, the shim stops compiling.
import type * as obsidian from "obsidian";

// --- Obsidian's DOM helpers (it adds them to the DOM prototypes) ---------

type Info = DomElementInfo | string | undefined;

function applyInfo(el: HTMLElement, o: Info): void {
	if (o === undefined) return;
	const info: DomElementInfo = typeof o === "string" ? { text: o } : o;
	if (info.cls !== undefined) {
		const classes = Array.isArray(info.cls) ? info.cls : info.cls.split(" ");
		el.classList.add(...classes.filter((c) => c !== ""));
	}
	if (info.text !== undefined) el.setText(info.text);
	if (info.title !== undefined) el.title = info.title;
	if (info.attr !== undefined) {
		for (const [k, v] of Object.entries(info.attr)) el.setAttr(k, v);
	}
	if (info.value !== undefined && "value" in el) (el as HTMLInputElement).value = info.value;
	if (info.type !== undefined) el.setAttribute("type", info.type);
	if (info.placeholder !== undefined) el.setAttribute("placeholder", info.placeholder);
	if (info.href !== undefined) el.setAttribute("href", info.href);
}

function createIn<K extends keyof HTMLElementTagNameMap>(
	parent: Node | null,
	tag: K,
	o?: Info,
	callback?: (el: HTMLElementTagNameMap[K]) => void,
): HTMLElementTagNameMap[K] {
	const el = document.createElement(tag);
	applyInfo(el, o);
	const info = typeof o === "object" ? o : undefined;
	const target = info?.parent ?? parent;
	if (target !== null && target !== undefined) {
		if (info?.prepend === true) target.insertBefore(el, target.firstChild);
		else target.appendChild(el);
	}
	callback?.(el);
	return el;
}

/** Adds Obsidian's DOM helpers to the DOM prototypes; safe to call twice. */
export function installDomHelpers(): void {
	const node = Node.prototype as Node & Record<string, unknown>;
	if (typeof node.createEl === "function") return;
	const createEl: Node["createEl"] = function (this: Node, tag, o, callback) {
		return createIn(this, tag, o, callback);
	};
	const createDiv: Node["createDiv"] = function (this: Node, o, callback) {
		return createIn(this, "div", o, callback);
	};
	const createSpan: Node["createSpan"] = function (this: Node, o, callback) {
		return createIn(this, "span", o, callback);
	};
	Object.assign(Node.prototype, { createEl, createDiv, createSpan });
	const empty: Node["empty"] = function (this: Node) {
		while (this.firstChild !== null) this.removeChild(this.firstChild);
	};
	const detach: Node["detach"] = function (this: Node) {
		this.parentNode?.removeChild(this);
	};
	Object.assign(Node.prototype, { empty, detach });

	const el: Pick<
		Element,
		| "getText"
		| "setText"
		| "addClass"
		| "removeClass"
		| "toggleClass"
		| "hasClass"
		| "setAttr"
		| "getAttr"
		| "find"
		| "findAll"
	> = {
		getText(this: Element) {
			return this.textContent ?? "";
		},
		setText(this: Element, val) {
			if (typeof val === "string") this.textContent = val;
			else {
				this.textContent = "";
				this.appendChild(val);
			}
		},
		addClass(this: Element, ...classes) {
			this.classList.add(...classes);
		},
		removeClass(this: Element, ...classes) {
			this.classList.remove(...classes);
		},
		toggleClass(this: Element, classes, value) {
			for (const c of Array.isArray(classes) ? classes : [classes]) this.classList.toggle(c, value);
		},
		hasClass(this: Element, cls) {
			return this.classList.contains(cls);
		},
		setAttr(this: Element, name, value) {
			if (value === null) this.removeAttribute(name);
			else this.setAttribute(name, String(value));
		},
		getAttr(this: Element, name) {
			return this.getAttribute(name);
		},
		find(this: Element, selector) {
			return this.querySelector(selector);
		},
		findAll(this: Element, selector) {
			return Array.from(this.querySelectorAll<HTMLElement>(selector));
		},
	};
	Object.assign(Element.prototype, el);
	const html: Pick<HTMLElement, "show" | "hide" | "toggle" | "isShown" | "setCssProps"> = {
		show(this: HTMLElement) {
			this.style.display = "";
		},
		hide(this: HTMLElement) {
			this.style.display = "none";
		},
		toggle(this: HTMLElement, show) {
			this.style.display = show ? "" : "none";
		},
		isShown(this: HTMLElement) {
			return this.style.display !== "none";
		},
		setCssProps(this: HTMLElement, props) {
			for (const [k, v] of Object.entries(props)) this.style.setProperty(k, v);
		},
	};
	Object.assign(HTMLElement.prototype, html);
	const g = globalThis as Record<string, unknown>;
	g.createEl = <K extends keyof HTMLElementTagNameMap>(tag: K, o?: Info, cb?: (el: HTMLElementTagNameMap[K]) => void) =>
		createIn(null, tag, o, cb);
	g.createDiv = (o?: Info, cb?: (el: HTMLDivElement) => void) => createIn(null, "div", o, cb);
	g.createSpan = (o?: Info, cb?: (el: HTMLSpanElement) => void) => createIn(null, "span", o, cb);
	g.createFragment = (cb?: (el: DocumentFragment) => void) => {
		const f = document.createDocumentFragment();
		cb?.(f);
		return f;
	};
	g.activeDocument = document;
	g.activeWindow = window;
}

installDomHelpers();

// --- Notices ---------------------------------------------------------------

/** Every notice shown, oldest first, for tests to read. */
export const notices: string[] = [];

/** Where notices are drawn, so the end-to-end screenshots show them. */
function noticeContainer(): HTMLElement {
	let c = document.body.querySelector<HTMLElement>(".notice-container");
	if (c === null) c = document.body.createDiv({ cls: "notice-container" });
	return c;
}

export class Notice implements Pick<obsidian.Notice, "noticeEl" | "messageEl" | "containerEl" | "setMessage" | "hide"> {
	noticeEl: HTMLElement;
	messageEl: HTMLElement;
	containerEl: HTMLElement;

	constructor(message: string | DocumentFragment, _duration?: number) {
		this.containerEl = noticeContainer();
		this.noticeEl = this.containerEl.createDiv({ cls: "notice" });
		this.messageEl = this.noticeEl.createDiv({ cls: "notice-message" });
		this.setMessage(message);
	}

	setMessage(message: string | DocumentFragment): this {
		this.messageEl.setText(message);
		notices.push(this.messageEl.getText());
		return this;
	}

	hide(): void {
		this.noticeEl.detach();
	}
}

// --- Components --------------------------------------------------------------

type ComponentApi = Pick<
	obsidian.Component,
	"load" | "unload" | "onload" | "onunload" | "register" | "registerInterval" | "registerDomEvent" | "registerEvent"
>;

export class Component implements ComponentApi {
	private cleanups: (() => unknown)[] = [];

	load(): void {
		void this.onload();
	}

	onload(): void {}

	unload(): void {
		for (const cleanup of this.cleanups.splice(0).reverse()) {
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

	registerEvent(ref: obsidian.EventRef): void {
		const r = ref as unknown as ShimEventRef;
		this.register(() => r.events.offref(ref));
	}

	registerDomEvent(
		el: HTMLElement | Document | Window,
		type: string,
		callback: (this: HTMLElement, ev: Event) => unknown,
	): void {
		const listener = (ev: Event) => callback.call(el as HTMLElement, ev);
		el.addEventListener(type, listener);
		this.register(() => el.removeEventListener(type, listener));
	}
}

interface ShimEventRef {
	events: Events;
	name: string;
	callback: (...data: unknown[]) => unknown;
}

export class Events implements Pick<obsidian.Events, "on" | "off" | "offref" | "trigger"> {
	private refs: ShimEventRef[] = [];

	on(name: string, callback: (...data: unknown[]) => unknown): obsidian.EventRef {
		const ref: ShimEventRef = { events: this, name, callback };
		this.refs.push(ref);
		const eventRef: unknown = ref;
		return eventRef as obsidian.EventRef;
	}

	off(name: string, callback: (...data: unknown[]) => unknown): void {
		this.refs = this.refs.filter((r) => r.name !== name || r.callback !== callback);
	}

	offref(ref: obsidian.EventRef): void {
		this.refs = this.refs.filter((r) => (r as unknown) !== ref);
	}

	trigger(name: string, ...data: unknown[]): void {
		for (const r of this.refs.filter((x) => x.name === name)) r.callback(...data);
	}
}

// --- Vault, files, workspace -------------------------------------------------

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

export class TFile implements Pick<obsidian.TFile, "path" | "name" | "basename" | "extension"> {
	name: string;
	basename: string;
	extension: string;

	constructor(public path: string) {
		this.name = path.split("/").pop() ?? path;
		const dot = this.name.lastIndexOf(".");
		this.basename = dot > 0 ? this.name.slice(0, dot) : this.name;
		this.extension = dot > 0 ? this.name.slice(dot + 1) : "";
	}
}

/** A workspace with leaves that hold views, the active file, and layout-ready. */
export class Workspace extends Events implements Pick<obsidian.Workspace, "onLayoutReady" | "getActiveFile" | "getLeavesOfType" | "getActiveViewOfType" | "revealLeaf"> {
	activeFile: TFile | null = null;
	readonly leaves: WorkspaceLeaf[] = [];
	/** The view each leaf type gets (Plugin.registerView). */
	readonly viewCreators = new Map<string, (leaf: obsidian.WorkspaceLeaf) => obsidian.View>();
	activeView: unknown = null;

	constructor(private readonly app: () => obsidian.App) {
		super();
	}

	onLayoutReady(callback: () => unknown): void {
		callback();
	}

	getActiveFile(): obsidian.TFile | null {
		return this.activeFile as unknown as obsidian.TFile | null;
	}

	getLeavesOfType(viewType: string): obsidian.WorkspaceLeaf[] {
		return this.leaves.filter((l) => l.view?.getViewType() === viewType) as unknown as obsidian.WorkspaceLeaf[];
	}

	getActiveViewOfType<T extends obsidian.View>(type: obsidian.Constructor<T>): T | null {
		return this.activeView instanceof type ? this.activeView : null;
	}

	revealLeaf(_leaf: obsidian.WorkspaceLeaf): Promise<void> {
		return Promise.resolve();
	}

	/** A new leaf (Obsidian's getLeaf/getRightLeaf), attached to the page. */
	getRightLeaf(_split: boolean): obsidian.WorkspaceLeaf {
		const leaf = new WorkspaceLeaf(this.app());
		this.leaves.push(leaf);
		return leaf as unknown as obsidian.WorkspaceLeaf;
	}

	getLeaf(): obsidian.WorkspaceLeaf {
		return this.getRightLeaf(false);
	}
}

export class WorkspaceLeaf implements Pick<obsidian.WorkspaceLeaf, "setViewState" | "detach"> {
	view: obsidian.View | null = null;
	readonly el: HTMLElement;

	constructor(public app: obsidian.App) {
		this.el = document.body.createDiv({ cls: "workspace-leaf" });
	}

	/** Opens `view` in this leaf: Obsidian's order, containerEl in place, then onOpen. */
	async open(view: obsidian.View): Promise<void> {
		if (this.view !== null) await this.close();
		this.view = view;
		this.el.appendChild(view.containerEl);
		view.load();
		await (view as unknown as { onOpen(): Promise<void> }).onOpen();
	}

	async setViewState(state: obsidian.ViewState): Promise<void> {
		const create = (this.app.workspace as unknown as Workspace).viewCreators.get(state.type);
		if (create === undefined) throw new Error(`no view registered for ${state.type}`);
		await this.open(create(this as unknown as obsidian.WorkspaceLeaf));
	}

	private async close(): Promise<void> {
		const view = this.view;
		if (view === null) return;
		this.view = null;
		await (view as unknown as { onClose(): Promise<void> }).onClose();
		view.unload();
		view.containerEl.detach();
	}

	detach(): void {
		void this.close();
		this.el.detach();
	}
}

export interface ShimApp {
	vault: { adapter: FileSystemAdapter | OtherAdapter; getAbstractFileByPath(path: string): TFile | null };
	workspace: Workspace;
}

/** An App with a vault adapter and a workspace. */
export function createApp(adapter: FileSystemAdapter | OtherAdapter = new FileSystemAdapter("/vault")): obsidian.App {
	const app: ShimApp = {
		vault: {
			adapter,
			getAbstractFileByPath: (path: string) => new TFile(path),
		},
		workspace: new Workspace(() => app as unknown as obsidian.App),
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
		dir: ".obsidian/plugins/vellum-sync",
	};
}

// --- Views and modals --------------------------------------------------------

export abstract class View extends Component implements Pick<obsidian.View, "app" | "leaf" | "containerEl" | "icon" | "navigation"> {
	app: obsidian.App;
	icon = "";
	navigation = false;
	containerEl: HTMLElement;

	constructor(public leaf: obsidian.WorkspaceLeaf) {
		super();
		this.app = (leaf as unknown as WorkspaceLeaf).app;
		this.containerEl = createDiv({ cls: "view-container" });
	}

	protected onOpen(): Promise<void> {
		return Promise.resolve();
	}

	protected onClose(): Promise<void> {
		return Promise.resolve();
	}

	abstract getViewType(): string;
	abstract getDisplayText(): string;

	getIcon(): string {
		return this.icon;
	}
}

export abstract class ItemView extends View implements Pick<obsidian.ItemView, "contentEl" | "addAction"> {
	contentEl: HTMLElement;

	constructor(leaf: obsidian.WorkspaceLeaf) {
		super(leaf);
		const header = this.containerEl.createDiv({ cls: "view-header" });
		header.createDiv({ cls: "view-actions" });
		this.contentEl = this.containerEl.createDiv({ cls: "view-content" });
	}

	addAction(_icon: string, title: string, callback: (evt: MouseEvent) => unknown): HTMLElement {
		const actions = this.containerEl.querySelector(".view-actions") as HTMLElement;
		const el = actions.createEl("button", { cls: "clickable-icon view-action", text: title, attr: { "aria-label": title } });
		el.addEventListener("click", (e) => callback(e));
		return el;
	}
}

export class Modal implements Pick<obsidian.Modal, "app" | "containerEl" | "modalEl" | "titleEl" | "contentEl" | "open" | "close" | "onOpen" | "onClose"> {
	containerEl: HTMLElement;
	modalEl: HTMLElement;
	titleEl: HTMLElement;
	contentEl: HTMLElement;
	private opened = false;

	constructor(public app: obsidian.App) {
		this.containerEl = createDiv({ cls: "modal-container" });
		this.modalEl = this.containerEl.createDiv({ cls: "modal" });
		this.titleEl = this.modalEl.createDiv({ cls: "modal-title" });
		this.contentEl = this.modalEl.createDiv({ cls: "modal-content" });
	}

	open(): void {
		document.body.appendChild(this.containerEl);
		this.opened = true;
		void this.onOpen();
	}

	close(): void {
		if (!this.opened) return;
		this.opened = false;
		this.containerEl.detach();
		this.onClose();
	}

	onOpen(): Promise<void> | void {}

	onClose(): void {}

	setTitle(title: string): this {
		this.titleEl.setText(title);
		return this;
	}
}

// --- Plugin and settings -------------------------------------------------------

type PluginApi = Pick<
	obsidian.Plugin,
	"app" | "manifest" | "addStatusBarItem" | "addSettingTab" | "loadData" | "saveData" | "addCommand" | "registerView" | "addRibbonIcon"
>;

interface PluginState {
	statusBarItems: HTMLElement[];
	settingTabs: PluginSettingTab[];
	commands: obsidian.Command[];
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
		pluginState.set(this, { statusBarItems: [], settingTabs: [], commands: [], data: null });
	}

	addStatusBarItem(): HTMLElement {
		const el = document.body.createDiv({ cls: "status-bar-item" });
		stateOf(this).statusBarItems.push(el);
		// Obsidian removes a plugin's status bar items when it unloads.
		this.register(() => el.detach());
		return el;
	}

	addSettingTab(settingTab: obsidian.PluginSettingTab): void {
		const tab: unknown = settingTab;
		if (tab instanceof PluginSettingTab) {
			stateOf(this).settingTabs.push(tab);
		}
	}

	addCommand(command: obsidian.Command): obsidian.Command {
		stateOf(this).commands.push(command);
		return command;
	}

	addRibbonIcon(_icon: string, title: string, callback: (evt: MouseEvent) => unknown): HTMLElement {
		const el = document.body.createEl("button", { cls: "side-dock-ribbon-action", text: title });
		el.addEventListener("click", (e) => callback(e));
		this.register(() => el.detach());
		return el;
	}

	registerView(type: string, viewCreator: obsidian.ViewCreator): void {
		(this.app.workspace as unknown as Workspace).viewCreators.set(type, viewCreator);
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
export function statusBarItemsOf(plugin: object): HTMLElement[] {
	return stateOf(plugin as Plugin).statusBarItems;
}

/** The commands a plugin added, in order. */
export function commandsOf(plugin: object): obsidian.Command[] {
	return stateOf(plugin as Plugin).commands;
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

type SettingTabApi = Pick<obsidian.PluginSettingTab, "app" | "containerEl" | "display" | "hide" | "getSettingDefinitions">;

export class PluginSettingTab implements SettingTabApi {
	containerEl: HTMLElement = createDiv({ cls: "vertical-tab-content" });

	constructor(
		public app: obsidian.App,
		public plugin: obsidian.Plugin,
	) {}

	/**
	 * Obsidian calls this to render the tab when getSettingDefinitions()
	 * returns nothing; tests call it to do the same. (Its own tag stops
	 * TypeScript inheriting the real method's deprecation, which is aimed
	 * at plugins, not at the app calling it.)
	 * @public
	 */
	display(): void {}

	hide(): void {}

	getSettingDefinitions(): obsidian.SettingDefinitionItem[] {
		return [];
	}
}

type SettingApi = Pick<
	obsidian.Setting,
	"settingEl" | "nameEl" | "descEl" | "controlEl" | "setName" | "setDesc" | "setHeading" | "addText" | "addToggle" | "addButton" | "addDropdown" | "addTextArea" | "setDisabled"
>;

export class Setting implements SettingApi {
	settingEl: HTMLElement;
	nameEl: HTMLElement;
	descEl: HTMLElement;
	controlEl: HTMLElement;

	constructor(containerEl: HTMLElement) {
		this.settingEl = containerEl.createDiv({ cls: "setting-item" });
		const info = this.settingEl.createDiv({ cls: "setting-item-info" });
		this.nameEl = info.createDiv({ cls: "setting-item-name" });
		this.descEl = info.createDiv({ cls: "setting-item-description" });
		this.controlEl = this.settingEl.createDiv({ cls: "setting-item-control" });
	}

	setName(name: string | DocumentFragment): obsidian.Setting {
		this.nameEl.setText(name);
		return this.chain();
	}

	setDesc(desc: string | DocumentFragment): obsidian.Setting {
		this.descEl.setText(desc);
		return this.chain();
	}

	setHeading(): obsidian.Setting {
		this.settingEl.addClass("setting-item-heading");
		return this.chain();
	}

	setDisabled(disabled: boolean): obsidian.Setting {
		this.settingEl.toggleClass("is-disabled", disabled);
		for (const input of Array.from(this.controlEl.querySelectorAll("input, button, select, textarea"))) {
			(input as HTMLInputElement).disabled = disabled;
		}
		return this.chain();
	}

	addText(cb: (component: obsidian.TextComponent) => unknown): obsidian.Setting {
		cb(new TextComponent(this.controlEl) as unknown as obsidian.TextComponent);
		return this.chain();
	}

	addTextArea(cb: (component: obsidian.TextAreaComponent) => unknown): obsidian.Setting {
		cb(new TextAreaComponent(this.controlEl) as unknown as obsidian.TextAreaComponent);
		return this.chain();
	}

	addToggle(cb: (component: obsidian.ToggleComponent) => unknown): obsidian.Setting {
		cb(new ToggleComponent(this.controlEl) as unknown as obsidian.ToggleComponent);
		return this.chain();
	}

	addButton(cb: (component: obsidian.ButtonComponent) => unknown): obsidian.Setting {
		cb(new ButtonComponent(this.controlEl) as unknown as obsidian.ButtonComponent);
		return this.chain();
	}

	addDropdown(cb: (component: obsidian.DropdownComponent) => unknown): obsidian.Setting {
		cb(new DropdownComponent(this.controlEl) as unknown as obsidian.DropdownComponent);
		return this.chain();
	}

	// The real methods return the real class; the shim stands in for it.
	private chain(): obsidian.Setting {
		return this as unknown as obsidian.Setting;
	}
}

abstract class InputComponent<E extends HTMLInputElement | HTMLTextAreaElement> {
	private changeHandler: ((value: string) => unknown) | null = null;

	constructor(public inputEl: E) {
		inputEl.addEventListener("change", () => void this.changeHandler?.(inputEl.value));
	}

	getValue(): string {
		return this.inputEl.value;
	}

	setValue(value: string): this {
		this.inputEl.value = value;
		return this;
	}

	setPlaceholder(placeholder: string): this {
		this.inputEl.placeholder = placeholder;
		return this;
	}

	onChange(callback: (value: string) => unknown): this {
		this.changeHandler = callback;
		return this;
	}

	/** Simulates the user typing `value`; resolves when the change handler has. */
	async type(value: string): Promise<void> {
		this.inputEl.value = value;
		await this.changeHandler?.(value);
	}
}

export class TextComponent
	extends InputComponent<HTMLInputElement>
	implements Pick<obsidian.TextComponent, "inputEl" | "getValue">
{
	constructor(containerEl: HTMLElement) {
		super(containerEl.createEl("input", { type: "text" }));
	}
}

export class TextAreaComponent
	extends InputComponent<HTMLTextAreaElement>
	implements Pick<obsidian.TextAreaComponent, "inputEl" | "getValue">
{
	constructor(containerEl: HTMLElement) {
		super(containerEl.createEl("textarea"));
	}
}

export class ToggleComponent implements Pick<obsidian.ToggleComponent, "toggleEl" | "getValue"> {
	toggleEl: HTMLElement;
	private readonly input: HTMLInputElement;
	private changeHandler: ((value: boolean) => unknown) | null = null;

	constructor(containerEl: HTMLElement) {
		this.toggleEl = containerEl.createDiv({ cls: "checkbox-container" });
		this.input = this.toggleEl.createEl("input", { type: "checkbox" });
		this.input.addEventListener("change", () => void this.changeHandler?.(this.input.checked));
	}

	getValue(): boolean {
		return this.input.checked;
	}

	setValue(on: boolean): this {
		this.input.checked = on;
		this.toggleEl.toggleClass("is-enabled", on);
		return this;
	}

	setDisabled(disabled: boolean): this {
		this.input.disabled = disabled;
		return this;
	}

	onChange(callback: (value: boolean) => unknown): this {
		this.changeHandler = callback;
		return this;
	}

	/** Simulates a click; resolves when the change handler has. */
	async click(): Promise<void> {
		this.setValue(!this.input.checked);
		await this.changeHandler?.(this.input.checked);
	}
}

export class ButtonComponent implements Pick<obsidian.ButtonComponent, "buttonEl"> {
	buttonEl: HTMLButtonElement;

	constructor(containerEl: HTMLElement) {
		this.buttonEl = containerEl.createEl("button");
	}

	/** BaseComponent.then: runs `cb` with the component, for chaining. */
	then(cb: (component: this) => unknown): this {
		cb(this);
		return this;
	}

	setButtonText(name: string): this {
		this.buttonEl.setText(name);
		return this;
	}

	setCta(): this {
		this.buttonEl.addClass("mod-cta");
		return this;
	}

	setWarning(): this {
		this.buttonEl.addClass("mod-warning");
		return this;
	}

	setDisabled(disabled: boolean): this {
		this.buttonEl.disabled = disabled;
		return this;
	}

	onClick(callback: (evt: MouseEvent) => unknown): this {
		this.buttonEl.addEventListener("click", (e) => void callback(e));
		return this;
	}
}

export class DropdownComponent implements Pick<obsidian.DropdownComponent, "selectEl" | "getValue"> {
	selectEl: HTMLSelectElement;
	private changeHandler: ((value: string) => unknown) | null = null;

	constructor(containerEl: HTMLElement) {
		this.selectEl = containerEl.createEl("select", { cls: "dropdown" });
		this.selectEl.addEventListener("change", () => void this.changeHandler?.(this.selectEl.value));
	}

	addOption(value: string, display: string): this {
		this.selectEl.createEl("option", { text: display, value });
		return this;
	}

	getValue(): string {
		return this.selectEl.value;
	}

	setValue(value: string): this {
		this.selectEl.value = value;
		return this;
	}

	onChange(callback: (value: string) => unknown): this {
		this.changeHandler = callback;
		return this;
	}

	/** Simulates a choice; resolves when the change handler has. */
	async choose(value: string): Promise<void> {
		this.selectEl.value = value;
		await this.changeHandler?.(value);
	}
}

// --- Editors -------------------------------------------------------------------

type EditorApi = Pick<obsidian.Editor, "getValue" | "setValue" | "offsetToPos" | "posToOffset" | "transaction" | "getCursor" | "setCursor">;

/**
 * A text with a cursor. Edits map the cursor as CodeMirror maps a
 * selection: after an edit it moves by the length change, before it it
 * stays, inside a replaced range it goes to the range's end.
 */
export class Editor implements EditorApi {
	private cursor = 0;
	/** Every transaction's origin, oldest first. */
	readonly origins: (string | undefined)[] = [];

	constructor(private text = "") {}

	getValue(): string {
		return this.text;
	}

	setValue(content: string): void {
		this.text = content;
		this.cursor = 0;
	}

	offsetToPos(offset: number): obsidian.EditorPosition {
		const before = this.text.slice(0, offset).split("\n");
		return { line: before.length - 1, ch: before.at(-1)?.length ?? 0 };
	}

	posToOffset(pos: obsidian.EditorPosition): number {
		const lines = this.text.split("\n");
		let offset = 0;
		for (let i = 0; i < pos.line; i++) offset += (lines[i]?.length ?? 0) + 1;
		return offset + pos.ch;
	}

	getCursor(): obsidian.EditorPosition {
		return this.offsetToPos(this.cursor);
	}

	setCursor(pos: obsidian.EditorPosition | number): void {
		this.cursor = typeof pos === "number" ? this.posToOffset({ line: pos, ch: 0 }) : this.posToOffset(pos);
	}

	transaction(tx: obsidian.EditorTransaction, origin?: string): void {
		this.origins.push(origin);
		const changes = (tx.changes ?? []).map((c) => ({ from: this.posToOffset(c.from), to: this.posToOffset(c.to ?? c.from), text: c.text }));
		for (const c of changes.sort((a, b) => b.from - a.from)) {
			this.text = this.text.slice(0, c.from) + c.text + this.text.slice(c.to);
			if (this.cursor >= c.to) this.cursor += c.text.length - (c.to - c.from);
			else if (this.cursor > c.from) this.cursor = c.from + c.text.length;
		}
	}
}

export class MarkdownView extends ItemView implements Pick<obsidian.MarkdownView, "editor" | "file" | "data" | "getViewType"> {
	editor: obsidian.Editor;
	file: obsidian.TFile | null;
	/** What the view last loaded or saved. */
	data: string;

	constructor(leaf: obsidian.WorkspaceLeaf, path: string, text: string) {
		super(leaf);
		const editor: unknown = new Editor(text);
		this.editor = editor as obsidian.Editor;
		const file: unknown = new TFile(path);
		this.file = file as obsidian.TFile;
		this.data = text;
	}

	getViewType(): string {
		return "markdown";
	}

	getDisplayText(): string {
		return this.file?.basename ?? "";
	}
}
