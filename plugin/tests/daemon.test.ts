import { describe, expect, it } from "vitest";
import { backoffMs, Daemon, type Connection } from "../src/client/daemon";
import { RPC_PROTOCOL } from "../src/client/methods";
import type { FakeLink } from "./support/fakes";
import { FakeLauncher, ManualTimers, settle } from "./support/fakes";

function setup(): { launcher: FakeLauncher; timers: ManualTimers; daemon: Daemon; states: Connection[]; clock: { now: number } } {
	const launcher = new FakeLauncher();
	const timers = new ManualTimers();
	const clock = { now: 1_000_000 };
	const daemon = new Daemon(launcher, timers, () => clock.now);
	const states: Connection[] = [];
	daemon.onState((s) => states.push(s));
	return { launcher, timers, daemon, states, clock };
}

/** Plays a daemon that says hello in this plugin's protocol and subscribes. */
async function handshake(link: FakeLink): Promise<void> {
	await settle();
	link.answer("hello", { protocol: RPC_PROTOCOL, version: "0.9.0" });
	await settle();
	link.answer("subscribe", { subscribed: true });
	await settle();
}

describe("backoffMs", () => {
	it("doubles from 1 s and stops at 60 s", () => {
		expect([1, 2, 3, 4, 5, 6, 7, 8, 20].map(backoffMs)).toEqual([1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]);
	});
});

describe("Daemon", () => {
	it("attaches to a running daemon before starting one", async () => {
		const { launcher, daemon, states } = setup();
		const { FakeLink } = await import("./support/fakes");
		const running = new FakeLink();
		launcher.attached.push(running);
		daemon.start();
		await handshake(running);
		expect(launcher.spawnCalls).toBe(0);
		expect(states.at(-1)).toEqual({ kind: "ready", attached: true, version: "0.9.0" });
		expect(running.sent.map((r) => r.method)).toEqual(["hello", "subscribe"]);
	});

	it("starts a daemon when none is running, and is ready after hello and subscribe", async () => {
		const { launcher, daemon, states } = setup();
		let readyCount = 0;
		daemon.onReady(() => readyCount++);
		daemon.start();
		await settle();
		expect(launcher.spawnCalls).toBe(1);
		const link = launcher.spawned[0]!;
		await handshake(link);
		expect(states.map((s) => s.kind)).toEqual(["starting", "ready"]);
		expect(readyCount).toBe(1);
		const status = daemon.call("status");
		link.answer("status", { files: 1 });
		await expect(status).resolves.toEqual({ files: 1 });
	});

	it("refuses a daemon of another protocol and does not retry", async () => {
		const { launcher, timers, daemon, states } = setup();
		daemon.start();
		await settle();
		const link = launcher.spawned[0]!;
		link.answer("hello", { protocol: RPC_PROTOCOL + 1, version: "9.0.0" });
		await settle();
		expect(states.at(-1)).toEqual({ kind: "version_mismatch", daemon: RPC_PROTOCOL + 1, version: "9.0.0" });
		expect(link.closedByClient).toBe(true);
		expect(timers.pending.size).toBe(0);
		await expect(daemon.call("status")).rejects.toThrow("speaks protocol");
	});

	it("takes a daemon without hello for one too old", async () => {
		const { launcher, daemon, states } = setup();
		daemon.start();
		await settle();
		launcher.spawned[0]!.fail("hello", -32601, "no method \"hello\"");
		await settle();
		expect(states.at(-1)).toEqual({ kind: "version_mismatch", daemon: null, version: null });
	});

	it("reports a missing binary and waits for a restart", async () => {
		const { launcher, timers, daemon, states } = setup();
		daemon.start();
		await settle();
		launcher.spawned[0]!.end("could not run /opt/vellum", { kind: "spawn_failed", code: "ENOENT", message: "spawn /opt/vellum ENOENT" });
		await settle();
		expect(states.at(-1)).toEqual({ kind: "binary_missing", binary: "/opt/vellum", message: "spawn /opt/vellum ENOENT" });
		expect(timers.pending.size).toBe(0);
		daemon.restart();
		await settle();
		expect(launcher.spawnCalls).toBe(2);
	});

	it("reports a folder that is not a vault", async () => {
		const { launcher, daemon, states } = setup();
		daemon.start();
		await settle();
		const message = "no vault here (no .vellum/ found upward from /v); run 'vellum init'";
		launcher.spawned[0]!.end(`the daemon exited with 1: ${message}`, { kind: "exited", code: 1, signal: null, message });
		await settle();
		expect(states.at(-1)).toEqual({ kind: "not_initialised", message });
	});

	it("restarts a daemon that crashed, backing off, and starts the backoff over after a healthy run", async () => {
		const { launcher, timers, daemon, states, clock } = setup();
		daemon.start();
		await settle();
		await handshake(launcher.spawned[0]!);
		const crash = (link: FakeLink) => link.end("the daemon was stopped by SIGKILL", { kind: "exited", code: null, signal: "SIGKILL", message: "" });

		crash(launcher.spawned[0]!);
		expect(states.at(-1)).toMatchObject({ kind: "retrying", inMs: 1000, failures: 1 });
		timers.fire(1000);
		await settle();
		// The new daemon dies before it says hello: the delay doubles.
		crash(launcher.spawned[1]!);
		await settle();
		expect(states.at(-1)).toMatchObject({ kind: "retrying", inMs: 2000, failures: 2 });
		timers.fire(2000);
		await settle();
		await handshake(launcher.spawned[2]!);
		expect(states.at(-1)?.kind).toBe("ready");

		clock.now += 61_000;
		crash(launcher.spawned[2]!);
		expect(states.at(-1)).toMatchObject({ kind: "retrying", inMs: 1000, failures: 1 });
	});

	it("retries quickly when another process holds the vault's lock", async () => {
		const { launcher, daemon, states } = setup();
		daemon.start();
		await settle();
		const message = "another vellum process is using this vault (/v/.vellum/lock is locked); wait for it or stop it";
		launcher.spawned[0]!.end("exited", { kind: "exited", code: 1, signal: null, message });
		expect(states.at(-1)).toMatchObject({ kind: "retrying", inMs: 500 });
	});

	it("forwards events of the current connection only", async () => {
		const { launcher, daemon } = setup();
		const kinds: string[] = [];
		daemon.onEvent((e) => kinds.push(e.kind));
		daemon.start();
		await settle();
		const first = launcher.spawned[0]!;
		await handshake(first);
		first.event({ kind: "lagged", missed: 1 });
		daemon.restart();
		await settle();
		first.event({ kind: "lagged", missed: 2 });
		expect(kinds).toEqual(["lagged"]);
		expect(first.closedByClient).toBe(true);
	});

	it("stops for good: no retry after the link ends", async () => {
		const { launcher, timers, daemon, states } = setup();
		daemon.start();
		await settle();
		await handshake(launcher.spawned[0]!);
		daemon.stop();
		launcher.spawned[0]!.end("closed", { kind: "exited", code: 0, signal: null, message: "" });
		expect(states.at(-1)).toEqual({ kind: "stopped" });
		expect(timers.pending.size).toBe(0);
	});
});
