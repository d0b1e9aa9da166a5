// The daemon's two doors, in Node: a `vellum serve --stdio` child process,
// and the socket of a daemon already serving the vault. The only module
// that spawns processes or opens sockets.
import { execFile, spawn } from "child_process";
import { existsSync } from "fs";
import { createConnection } from "net";
import { join } from "path";
import { BUNDLED_BINARY } from "../settings";
import { joinLine, joinSummary, type JoinEvents, type JoinRun, type Joiner } from "../pairing";
import { firstLine } from "../text";
import type { Launcher, Link, LinkEnd, LinkSink } from "./daemon";
import { LineSplitter, realTimers, type Timers } from "./rpc";

/** Longest line accepted from the daemon: a diff may be 8 MiB of text, base64 grows it. */
export const LINE_CHARS_MAX = 64 * 1024 * 1024;

/** Stderr kept from a daemon, for the message when it stops. */
const STDERR_CHARS_KEPT = 8 * 1024;

/** How long a daemon may take to stop after its stdin closes, before SIGTERM. */
const STOP_GRACE_MS = 5_000;

/** The socket every daemon serves (DESIGN §8). */
export function socketPath(vaultPath: string): string {
	return join(vaultPath, ".vellum", "daemon.sock");
}

/** Holds what a link reports until its sink is known, then passes it on. */
class Relay {
	private sink: LinkSink | null = null;
	private readonly queued: string[] = [];
	private ended: { reason: string; end: LinkEnd } | null = null;

	listen(sink: LinkSink): void {
		this.sink = sink;
		for (const line of this.queued.splice(0)) sink.line(line);
		if (this.ended !== null) sink.closed(this.ended.reason, this.ended.end);
	}

	line(line: string): void {
		if (this.sink === null) this.queued.push(line);
		else this.sink.line(line);
	}

	close(reason: string, end: LinkEnd): void {
		if (this.ended !== null) return;
		this.ended = { reason, end };
		this.sink?.closed(reason, end);
	}
}

/** Starts `binary serve --stdio --vault vaultPath`. */
export function spawnDaemon(binary: string, vaultPath: string, timers: Timers = realTimers): Link {
	const relay = new Relay();
	let stderr = "";
	const splitter = new LineSplitter(LINE_CHARS_MAX);
	let child: ReturnType<typeof spawn>;
	try {
		child = spawn(binary, ["serve", "--stdio", "--vault", vaultPath], {
			stdio: ["pipe", "pipe", "pipe"],
			windowsHide: true,
		});
	} catch (error) {
		// spawn throws synchronously for invalid arguments (a NUL byte in the path).
		const message = error instanceof Error ? error.message : String(error);
		relay.close(message, { kind: "spawn_failed", code: "EINVAL", message });
		return {
			send() {
				throw new Error(message);
			},
			close() {},
			listen: (sink) => relay.listen(sink),
		};
	}
	child.stdout?.setEncoding("utf8");
	child.stderr?.setEncoding("utf8");
	child.stdout?.on("data", (chunk: string) => {
		try {
			for (const line of splitter.push(chunk)) relay.line(line);
		} catch (error) {
			child.kill("SIGTERM");
			const message = error instanceof Error ? error.message : String(error);
			relay.close(message, { kind: "hung_up", message });
		}
	});
	child.stderr?.on("data", (chunk: string) => {
		stderr = (stderr + chunk).slice(-STDERR_CHARS_KEPT);
	});
	// Writing to a daemon that just died raises EPIPE here; the exit says why.
	child.stdin?.on("error", () => {});
	child.on("error", (error: NodeJS.ErrnoException) => {
		const code = error.code ?? "UNKNOWN";
		relay.close(`could not run ${binary}: ${error.message}`, { kind: "spawn_failed", code, message: error.message });
	});
	child.on("close", (code: number | null, signal: NodeJS.Signals | null) => {
		const message = lastErrorLine(stderr);
		const how = signal !== null ? `was stopped by ${signal}` : `exited with ${code ?? "?"}`;
		relay.close(
			`the daemon ${how}${message === "" ? "" : `: ${message}`}`,
			{ kind: "exited", code, signal, message },
		);
	});
	let stopTimer: unknown = null;
	child.on("exit", () => {
		if (stopTimer !== null) timers.clear(stopTimer);
	});
	return {
		pid: child.pid,
		send(line) {
			if (child.stdin === null || child.stdin.destroyed) throw new Error("the daemon's input is closed");
			child.stdin.write(`${line}\n`);
		},
		close() {
			// The end of stdin stops `serve --stdio` cleanly; a daemon stuck
			// in a long job gets a signal after a grace period.
			child.stdin?.end();
			if (child.exitCode === null && child.signalCode === null && stopTimer === null) {
				stopTimer = timers.set(() => child.kill("SIGTERM"), STOP_GRACE_MS);
			}
		},
		listen: (sink) => relay.listen(sink),
	};
}

/** Connects to the daemon serving `vaultPath`, or null when none is listening. */
export function attachDaemon(vaultPath: string): Promise<Link | null> {
	const path = socketPath(vaultPath);
	if (!existsSync(path)) return Promise.resolve(null);
	return new Promise((resolve) => {
		const relay = new Relay();
		const splitter = new LineSplitter(LINE_CHARS_MAX);
		const socket = createConnection(path);
		let connected = false;
		socket.setEncoding("utf8");
		socket.on("connect", () => {
			connected = true;
			resolve({
				send(line) {
					socket.write(`${line}\n`);
				},
				close() {
					socket.end();
				},
				listen: (sink) => relay.listen(sink),
			});
		});
		socket.on("data", (chunk: string) => {
			try {
				for (const line of splitter.push(chunk)) relay.line(line);
			} catch (error) {
				socket.destroy();
				const message = error instanceof Error ? error.message : String(error);
				relay.close(message, { kind: "hung_up", message });
			}
		});
		socket.on("error", () => {
			// A socket left by a daemon that died: nobody listens.
			if (!connected) resolve(null);
		});
		socket.on("close", () => {
			relay.close("the daemon closed the connection", { kind: "hung_up", message: "" });
		});
	});
}

/** A launcher for the vault at `vaultPath`, running the binary `binary()` names. */
export function nodeLauncher(vaultPath: string, binary: () => string, timers: Timers = realTimers): Launcher {
	return {
		attach: () => attachDaemon(vaultPath),
		spawn: () => spawnDaemon(binary(), vaultPath, timers),
		binary,
	};
}

/** The last line of stderr that says something, without the `vellum: ` prefix. */
function lastErrorLine(stderr: string): string {
	const lines = stderr.split(/\r?\n/).filter((l) => l.trim() !== "");
	const last = lines.at(-1) ?? "";
	return firstLine(last.replace(/^vellum: /, ""));
}

/** The binary shipped in the plugin folder (`dir` is relative to the vault), if it is there. */
export function bundledBinary(vaultPath: string, dir: string | undefined): string | null {
	if (dir === undefined) return null;
	const path = join(vaultPath, dir, BUNDLED_BINARY);
	return existsSync(path) ? path : null;
}

/** Runs `binary init --vault vaultPath --name name`; resolves with null, or the error's message. */
export function initVault(binary: string, vaultPath: string, name: string): Promise<string | null> {
	return new Promise((resolve) => {
		try {
			execFile(binary, ["init", "--vault", vaultPath, "--name", name], { encoding: "utf8", timeout: 10 * 60_000, windowsHide: true }, (error, _stdout, stderr) => {
				if (error === null) resolve(null);
				else resolve(lastErrorLine(stderr) || error.message);
			});
		} catch (error) {
			resolve(error instanceof Error ? error.message : String(error));
		}
	});
}

/**
 * Joins with `binary join CODE --vault vaultPath --merge --json`: the vault
 * folder already holds Obsidian's config folder (and maybe notes), which
 * `--merge` keeps. The digits to confirm arrive on stderr; the answer goes
 * to stdin.
 */
/** Joins with `vellum join --merge`; `configDir` is Obsidian's settings folder in the vault. */
export function nodeJoiner(binary: string, vaultPath: string, name: string, configDir: string): Joiner {
	return {
		join(code: string, events: JoinEvents): JoinRun {
			let stderr = "";
			let pending = "";
			let finished = false;
			const child = spawn(binary, ["join", code, "--vault", vaultPath, "--name", name, "--merge", "--json"], {
				stdio: ["pipe", "pipe", "pipe"],
				windowsHide: true,
			});
			let stdout = "";
			child.stdout?.setEncoding("utf8");
			child.stderr?.setEncoding("utf8");
			child.stdout?.on("data", (chunk: string) => {
				stdout += chunk;
			});
			child.stderr?.on("data", (chunk: string) => {
				stderr = (stderr + chunk).slice(-STDERR_CHARS_KEPT);
				pending += chunk;
				const lines = pending.split("\n");
				pending = lines.pop() ?? "";
				for (const line of lines) {
					const read = joinLine(line);
					if (read === null) continue;
					if ("sas" in read) events.sas(read.sas);
					else events.progress(read.progress);
				}
			});
			child.stdin?.on("error", () => {});
			const finish = (fn: () => void) => {
				if (finished) return;
				finished = true;
				fn();
			};
			child.on("error", (error) => finish(() => events.failed(`could not run ${binary}: ${error.message}`)));
			child.on("close", (code) => {
				if (code === 0) {
					finish(() => events.joined(joinSummary(stdout, configDir)));
				} else {
					finish(() => events.failed(lastErrorLine(stderr) || `vellum join exited with ${code ?? "a signal"}`));
				}
			});
			return {
				confirm(match: boolean) {
					child.stdin?.write(match ? "y\n" : "n\n");
				},
				cancel() {
					if (!finished) child.kill("SIGTERM");
				},
			};
		},
	};
}

