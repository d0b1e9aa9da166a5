// The Node side of the end-to-end tests: a real vault made with the real
// `vellum` binary, Chromium driven by playwright-core, and the bridge that
// joins the harness page to a real `vellum serve --stdio`.
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import esbuild from "esbuild";
import { chromium, type Browser, type Page } from "playwright-core";
import type { Link } from "../src/client/daemon";
import type { Timers } from "../src/client/rpc";
import { nodeJoiner, spawnDaemon } from "../src/client/node";
import type { JoinEvents, JoinRun } from "../src/pairing";

const run = promisify(execFile);

/** Node's timers, for client code that runs here rather than in Obsidian. */
export const nodeTimers: Timers = { set: (cb, ms) => setTimeout(cb, ms), clear: (h) => clearTimeout(h as NodeJS.Timeout) };

export const PLUGIN_DIR = resolve(__dirname, "..");
export const RESULTS_DIR = join(PLUGIN_DIR, "test-results");

/** The `vellum` binary under test: $VELLUM_BIN, or the workspace's debug build. */
export const VELLUM = process.env.VELLUM_BIN ?? resolve(PLUGIN_DIR, "../target/debug/vellum");

/** Debian's Chromium (the tests never download a browser). */
export const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";

/** Runs `vellum args… --vault vault`; resolves with stdout, rejects with stderr's first line. */
export async function vellum(vault: string, ...args: string[]): Promise<string> {
	try {
		const { stdout } = await run(VELLUM, [...args, "--vault", vault], { encoding: "utf8", maxBuffer: 64 << 20 });
		return stdout;
	} catch (error) {
		const e = error as { stderr?: string; message: string };
		throw new Error(`vellum ${args.join(" ")}: ${(e.stderr ?? e.message).trim()}`);
	}
}

export async function vellumJson<T>(vault: string, ...args: string[]): Promise<T> {
	return JSON.parse(await vellum(vault, ...args, "--json")) as T;
}

/**
 * A new vault, in a folder whose path has spaces and non-ASCII letters (as
 * users' vaults do), with `files` recorded. mDNS is off: these tests must
 * not send multicast on the host's network.
 */
export async function makeVault(files: Record<string, string>, name = "e2e laptop"): Promise<{ root: string; vault: string }> {
	const root = mkdtempSync(join(tmpdir(), "vellum e2e "));
	const vault = join(root, "Vault naïve — ünïcode");
	mkdirSync(vault);
	for (const [path, text] of Object.entries(files)) writeFile(vault, path, text);
	await vellum(vault, "init", "--name", name);
	writeFileSync(join(vault, ".vellum", "config.toml"), "mdns = false\nlisten = [\"/ip4/127.0.0.1/tcp/0\"]\n");
	return { root, vault };
}

export function writeFile(vault: string, path: string, text: string): void {
	const full = join(vault, path);
	mkdirSync(join(full, ".."), { recursive: true });
	writeFileSync(full, text);
}

export function removeTree(root: string): void {
	rmSync(root, { recursive: true, force: true });
}

/** Polls `check` until it returns a value (not undefined), for at most `ms`. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined> | T | undefined, ms = 20_000): Promise<T> {
	const until = Date.now() + ms;
	let last: unknown = null;
	while (Date.now() < until) {
		try {
			const value = await check();
			if (value !== undefined) return value;
		} catch (error) {
			last = error;
		}
		await new Promise((r) => setTimeout(r, 100));
	}
	throw new Error(`timed out waiting for ${what}${last === null ? "" : ` (last error: ${last instanceof Error ? last.message : JSON.stringify(last)})`}`);
}

let pageBundle: string | null = null;

/** The harness page's script, bundled once per run. */
async function harnessScript(): Promise<string> {
	if (pageBundle === null) {
		const out = await esbuild.build({
			entryPoints: [join(PLUGIN_DIR, "e2e/page.ts")],
			bundle: true,
			format: "iife",
			platform: "browser",
			target: "es2022",
			write: false,
			logLevel: "silent",
		});
		pageBundle = out.outputFiles[0]!.text;
	}
	return pageBundle;
}

/** What the harness page offers the tests (e2e/page.ts). */
export interface PageHarness {
	/** Connects to the daemon through the bridge and shows the status bar. */
	start(): Promise<void>;
	openHistory(path?: string): Promise<void>;
	openConflicts(path?: string): Promise<void>;
	openInvite(): void;
	openJoin(): void;
	openQuarantine(): void;
	openSettings(): Promise<void>;
	/** Every notice shown so far, oldest first. */
	notices(): string[];
}

export interface Harness {
	browser: Browser;
	page: Page;
	/** Calls a method of the page's harness and waits for it. */
	call<K extends keyof PageHarness>(name: K, ...args: Parameters<PageHarness[K]>): Promise<Awaited<ReturnType<PageHarness[K]>>>;
	/** The daemon the page talks to now. */
	link(): Link | null;
	/** How many daemons the bridge started. */
	started(): number;
	close(): Promise<void>;
}

/**
 * Chromium with the harness page: the shim, then the plugin's built
 * main.js and styles.css, joined by the bridge to `vellum serve --stdio`
 * for `vault` (run with `binary`).
 */
export async function openHarness(vault: string, binary = VELLUM, joinFolder: string | null = null): Promise<Harness> {
	const browser = await chromium.launch({
		executablePath: CHROMIUM,
		args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
	});
	const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
	const pageErrors: string[] = [];
	page.on("pageerror", (e) => pageErrors.push(e.message));
	const links = new Map<number, Link>();
	let current: Link | null = null;
	let started = 0;
	// Lines reach the page in the order the daemons wrote them.
	let delivering: Promise<unknown> = Promise.resolve();
	type Page2 = { __vellumDeliver(id: number, l: string): void; __vellumClosed(id: number, r: unknown, e: unknown): void };
	await page.exposeBinding("__vellumConnect", () => {
		const link = spawnDaemon(binary, vault, nodeTimers);
		const id = ++started;
		links.set(id, link);
		current = link;
		link.listen({
			line: (line) => {
				delivering = delivering.then(() => page.evaluate(([i, l]) => (window as unknown as Page2).__vellumDeliver(i, l), [id, line] as const)).catch(() => {});
			},
			closed: (reason, end) => {
				links.delete(id);
				if (current === link) current = null;
				delivering = delivering.then(() => page.evaluate(([i, r, e]) => (window as unknown as Page2).__vellumClosed(i, r, e), [id, reason, end] as const)).catch(() => {});
			},
		});
		return id;
	});
	await page.exposeBinding("__vellumSend", (_source, id: number, line: string) => {
		links.get(id)?.send(line);
	});
	await page.exposeBinding("__vellumHangUp", (_source, id: number) => {
		links.get(id)?.close();
	});
	let joinRun: JoinRun | null = null;
	const joinEvent = (kind: keyof JoinEvents, arg: string) => {
		delivering = delivering
			.then(() => page.evaluate(([k, a]) => (window as unknown as { __vellumJoinEvent(k: string, a: string): void }).__vellumJoinEvent(k, a), [kind, arg] as const))
			.catch(() => {});
	};
	await page.exposeBinding("__vellumJoin", (_source, code: string) => {
		if (joinFolder === null) throw new Error("this harness has no folder to join with");
		joinRun = nodeJoiner(binary, joinFolder, "e2e phone", ".obsidian").join(code, {
			progress: (line) => joinEvent("progress", line),
			sas: (digits) => joinEvent("sas", digits),
			joined: (summary) => joinEvent("joined", summary),
			failed: (message) => joinEvent("failed", message),
		});
	});
	await page.exposeBinding("__vellumJoinConfirm", (_source, match: boolean) => joinRun?.confirm(match));
	await page.exposeBinding("__vellumJoinCancel", () => joinRun?.cancel());
	await page.setContent(`<!doctype html><html><head><meta charset="utf-8"><title>Vellum harness</title></head><body class="theme-light"></body></html>`);
	await page.addStyleTag({ content: OBSIDIAN_VARIABLES });
	await page.addStyleTag({ path: join(PLUGIN_DIR, "styles.css") });
	await page.addScriptTag({ content: await harnessScript() });
	await page.addScriptTag({ path: join(PLUGIN_DIR, "main.js") });
	return {
		browser,
		page,
		call: async (name, ...args) => {
			const result: unknown = await page.evaluate(
				([n, a]) => {
					const harness = (window as unknown as { harness: Record<string, (...x: unknown[]) => unknown> }).harness;
					return harness[n]!(...a);
				},
				[name, args] as const,
			);
			return result as never;
		},
		link: () => current,
		started: () => started,
		async close() {
			for (const link of links.values()) link.close();
			await browser.close();
			if (pageErrors.length > 0) throw new Error(`errors on the page: ${pageErrors.join("; ")}`);
		},
	};
}

export async function screenshot(page: Page, name: string): Promise<void> {
	mkdirSync(RESULTS_DIR, { recursive: true });
	await page.screenshot({ path: join(RESULTS_DIR, `${name}.png`), fullPage: true });
}

/** A few of Obsidian's theme variables, so the screenshots look like Obsidian's light theme. */
const OBSIDIAN_VARIABLES = `
body { font-family: system-ui, sans-serif; margin: 0; padding: 12px; background: #fff; color: #222;
  --text-muted: #5c5c5c; --text-faint: #999; --text-accent: #705dcf; --text-error: #e93147; --text-warning: #d97706;
  --background-secondary: #f6f6f6; --background-modifier-hover: rgba(0,0,0,0.05); --background-modifier-active-hover: rgba(112,93,207,0.15);
  --background-modifier-border: #e0e0e0; --interactive-accent: #705dcf; --color-green-rgb: 8, 185, 78; --color-red-rgb: 233, 49, 71;
  --size-4-1: 4px; --size-4-2: 8px; --size-4-3: 12px; --size-4-4: 16px; --radius-s: 4px;
  --font-ui-small: 13px; --font-ui-smaller: 12px; --font-monospace: ui-monospace, monospace; }
.status-bar-item { position: fixed; bottom: 0; right: 0; padding: 4px 12px; background: #f0f0f0; border-top-left-radius: 6px; font-size: 12px; }
.modal-container { position: fixed; inset: 0; background: rgba(0,0,0,0.35); display: flex; align-items: center; justify-content: center; }
.modal { background: #fff; padding: 20px; border-radius: 8px; width: 640px; max-height: 80vh; overflow: auto; }
.modal-title { font-weight: 600; font-size: 18px; margin-bottom: 12px; }
.modal-button-container { display: flex; gap: 8px; justify-content: flex-end; margin-top: 12px; }
.notice-container { position: fixed; top: 8px; right: 8px; display: flex; flex-direction: column; gap: 6px; }
.notice { background: #333; color: #fff; padding: 8px 12px; border-radius: 6px; font-size: 13px; max-width: 420px; }
button { font: inherit; padding: 4px 10px; border-radius: 4px; border: 1px solid #ccc; background: #fafafa; cursor: pointer; }
button.mod-cta { background: #705dcf; color: #fff; border-color: #705dcf; }
button.mod-warning { background: #e93147; color: #fff; border-color: #e93147; }
`;
