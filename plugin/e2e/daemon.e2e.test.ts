// The plugin's daemon client against real `vellum` processes: it starts
// one, attaches to one already running, restarts one that crashed, and
// says clearly when the binary or the vault is missing.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Daemon, type Connection, type Launcher, type Link } from "../src/client/daemon";
import { nodeLauncher, socketPath } from "../src/client/node";
import { VaultSession } from "../src/client/session";
import { eventually, makeVault, nodeTimers, removeTree, VELLUM, vellumJson, writeFile } from "./support";

const cleanups: (() => void | Promise<void>)[] = [];

afterEach(async () => {
	for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function vaultForTest(files: Record<string, string> = { "a.md": "hello\n" }): Promise<string> {
	const { root, vault } = await makeVault(files);
	cleanups.push(() => removeTree(root));
	return vault;
}

/** A daemon client for `vault`; `links` records the daemons it started. */
function client(vault: string, binary = VELLUM): { daemon: Daemon; states: Connection[]; links: Link[] } {
	const inner = nodeLauncher(vault, () => binary, nodeTimers);
	const links: Link[] = [];
	const launcher: Launcher = {
		attach: () => inner.attach(),
		spawn: () => {
			const link = inner.spawn();
			links.push(link);
			return link;
		},
		binary: () => binary,
	};
	const daemon = new Daemon(launcher, nodeTimers, Date.now);
	const states: Connection[] = [];
	daemon.onState((s) => states.push(s));
	cleanups.push(() => daemon.stop());
	return { daemon, states, links };
}

function alive(pid: number | undefined): boolean {
	if (pid === undefined) return false;
	try {
		process.kill(pid, 0);
		return true;
	} catch {
		return false;
	}
}

describe("daemon client", () => {
	it("starts `vellum serve --stdio` in a vault whose path has spaces and unicode, and stops it on stop()", async () => {
		const vault = await vaultForTest();
		expect(vault).toMatch(/ .*ï/);
		const { daemon, states, links } = client(vault);
		daemon.start();
		await eventually("ready", () => (daemon.connection.kind === "ready" ? true : undefined));
		expect(states.at(-1)).toMatchObject({ kind: "ready", attached: false });
		const status = await daemon.call("status");
		expect(status.files).toBe(1);
		expect(existsSync(socketPath(vault))).toBe(true);

		const pid = links[0]!.pid;
		daemon.stop();
		await eventually("the daemon to exit", () => (alive(pid) ? undefined : true));
		expect(existsSync(socketPath(vault))).toBe(false);
	});

	it("restarts a daemon that crashed mid-session, and loses no edit made meanwhile", async () => {
		const vault = await vaultForTest();
		const { daemon, states, links } = client(vault);
		const session = new VaultSession(daemon);
		daemon.start();
		await eventually("ready", () => (daemon.connection.kind === "ready" ? true : undefined));

		process.kill(links[0]!.pid!, "SIGKILL");
		await eventually("the crash to be seen", () => (states.some((s) => s.kind === "retrying") ? true : undefined));
		writeFile(vault, "written-while-down.md", "kept\n");
		// The client starts a new daemon after its backoff, whose startup scan records the file.
		await eventually("a new daemon", () => (daemon.connection.kind === "ready" && links.length === 2 ? true : undefined));
		expect(states.map((s) => s.kind)).toEqual(["starting", "ready", "retrying", "starting", "ready"]);
		await eventually("the status after the restart", () => (session.store.state.status?.files === 2 ? true : undefined));
		const log = await vellumJson<{ path: string | null }[]>(vault, "log");
		expect(log.some((e) => e.path === "written-while-down.md")).toBe(true);
		expect(readFileSync(join(vault, "written-while-down.md"), "utf8")).toBe("kept\n");
	});

	it("attaches to a daemon that already serves the vault instead of starting one", async () => {
		const vault = await vaultForTest();
		const service: ChildProcess = spawn(VELLUM, ["serve", "--vault", vault], { stdio: "ignore" });
		cleanups.push(() => {
			service.kill("SIGTERM");
		});
		await eventually("the service's socket", () => (existsSync(socketPath(vault)) ? true : undefined));
		const { daemon, states, links } = client(vault);
		daemon.start();
		await eventually("ready", () => (daemon.connection.kind === "ready" ? true : undefined));
		expect(states.at(-1)).toMatchObject({ kind: "ready", attached: true });
		expect(links).toHaveLength(0);
		expect((await daemon.call("status")).files).toBe(1);
	});

	it("says the binary is missing, without retrying", async () => {
		const vault = await vaultForTest();
		const { daemon, states } = client(vault, join(tmpdir(), "no such dir", "vellum"));
		daemon.start();
		await eventually("binary_missing", () => (daemon.connection.kind === "binary_missing" ? true : undefined));
		expect(states.map((s) => s.kind)).toEqual(["starting", "binary_missing"]);
	});

	it("says the folder is not a vault", async () => {
		const dir = mkdtempSync(join(tmpdir(), "vellum not a vault "));
		cleanups.push(() => removeTree(dir));
		const { daemon } = client(dir);
		daemon.start();
		const state = await eventually("not_initialised", () => (daemon.connection.kind === "not_initialised" ? daemon.connection : undefined));
		expect(state.message).toContain("not a vault");
	});
});
