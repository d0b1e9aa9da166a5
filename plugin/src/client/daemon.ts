// Keeps one connection to the vault's daemon: attach to a daemon already
// serving the vault (a systemd service, say), or start `vellum serve
// --stdio`; check the protocol with `hello`; subscribe to events; and when
// the connection ends, start again after a growing delay. Pure: processes
// and sockets come from a Launcher, time from Timers.
import type { Event } from "../rpc/Event";
import { errorMessage } from "../text";
import { RPC_PROTOCOL, type MethodName, type ParamsOf, type ResultOf } from "./methods";
import { METHOD_NOT_FOUND, RpcClient, RpcError, type Channel, type ChannelSink, type Timers } from "./rpc";

/** How a link to the daemon ended. */
export type LinkEnd =
	/** The process could not be started (code such as "ENOENT"). */
	| { kind: "spawn_failed"; code: string; message: string }
	/** The process exited; `message` is the last line it wrote to stderr. */
	| { kind: "exited"; code: number | null; signal: string | null; message: string }
	/** The socket or stream closed, or broke. */
	| { kind: "hung_up"; message: string };

export interface LinkSink extends ChannelSink {
	closed(reason: string, end?: LinkEnd): void;
}

/** A connection to a daemon that reports to a sink once one listens. */
export interface Link extends Channel {
	listen(sink: LinkSink): void;
	/** The daemon's process id, when this link started it. */
	readonly pid?: number | undefined;
}

export interface Launcher {
	/** A link to a daemon already serving the vault, or null when none is. */
	attach(): Promise<Link | null>;
	/** Starts a daemon for the vault; failures arrive at the sink. */
	spawn(): Link;
	/** The binary `spawn` runs, for messages. */
	binary(): string;
}

/** Where the connection stands. */
export type Connection =
	| { kind: "starting" }
	| { kind: "ready"; attached: boolean; version: string }
	/** Lost or failed; the next attempt is `inMs` away. */
	| { kind: "retrying"; reason: string; inMs: number; failures: number }
	/** The binary is not there: no retry until the binary path changes. */
	| { kind: "binary_missing"; binary: string; message: string }
	/** The vault folder has no `.vellum/`. */
	| { kind: "not_initialised"; message: string }
	/** The daemon speaks another protocol (null: too old to say). */
	| { kind: "version_mismatch"; daemon: number | null; version: string | null }
	| { kind: "stopped" };

/** The delay before attempt `failures + 1`: 1 s, doubling, at most 60 s. */
export function backoffMs(failures: number): number {
	if (failures <= 0) return 0;
	return Math.min(1000 * 2 ** (failures - 1), BACKOFF_MAX_MS);
}

export const BACKOFF_MAX_MS = 60_000;

/** A connection that lasted this long starts the backoff over when it ends. */
export const HEALTHY_MS = 60_000;

/** `hello` goes through the vault's thread, behind the daemon's startup scan. */
export const HELLO_TIMEOUT_MS = 120_000;

const NO_VAULT = /\bnot a vault\b|\bno vault here\b|\bnot initiali[sz]ed\b/i;
const LOCKED = /\banother vellum process is using this vault\b/i;
const NOT_RUNNABLE = new Set(["ENOENT", "EACCES", "ENOTDIR", "EISDIR", "EINVAL"]);

type Listener<T> = (value: T) => void;

export class Daemon {
	private state: Connection = { kind: "stopped" };
	private client: RpcClient | null = null;
	private failures = 0;
	private readySince = 0;
	private retryTimer: unknown = null;
	/** Bumped on every start and stop: a late callback of an older attempt is ignored. */
	private generation = 0;
	private readonly stateListeners: Listener<Connection>[] = [];
	private readonly eventListeners: Listener<Event>[] = [];
	private readonly readyListeners: Listener<RpcClient>[] = [];

	constructor(
		private readonly launcher: Launcher,
		private readonly timers: Timers,
		private readonly now: () => number,
	) {}

	get connection(): Connection {
		return this.state;
	}

	onState(listener: Listener<Connection>): void {
		this.stateListeners.push(listener);
	}

	/** Every event of the daemon, whichever connection brought it. */
	onEvent(listener: Listener<Event>): void {
		this.eventListeners.push(listener);
	}

	/** Each time a connection is ready (checked and subscribed). */
	onReady(listener: Listener<RpcClient>): void {
		this.readyListeners.push(listener);
	}

	/** Connects, unless already connected or connecting. */
	start(): void {
		if (this.state.kind === "starting" || this.state.kind === "ready") return;
		this.failures = 0;
		void this.connect();
	}

	/** Drops the connection and connects again at once (the binary path changed, or the user asked). */
	restart(): void {
		this.drop();
		this.failures = 0;
		void this.connect();
	}

	/** Hangs up for good; a daemon this plugin started stops when its stdin closes. */
	stop(): void {
		this.drop();
		this.setState({ kind: "stopped" });
	}

	/** Calls a method on the current connection; fails at once when there is none. */
	call<M extends MethodName>(method: M, params?: ParamsOf<M>, timeoutMs?: number): Promise<ResultOf<M>> {
		if (this.client === null || this.state.kind !== "ready") {
			return Promise.reject(new Error(`Vellum is not connected (${describeConnection(this.state)})`));
		}
		return this.client.call(method, params, timeoutMs);
	}

	private drop(): void {
		this.generation++;
		if (this.retryTimer !== null) {
			this.timers.clear(this.retryTimer);
			this.retryTimer = null;
		}
		const client = this.client;
		this.client = null;
		client?.close();
	}

	private async connect(): Promise<void> {
		const generation = ++this.generation;
		this.retryTimer = null;
		this.setState({ kind: "starting" });
		let link: Link | null;
		let attached = true;
		try {
			link = await this.launcher.attach();
		} catch {
			link = null;
		}
		if (generation !== this.generation) {
			link?.close();
			return;
		}
		if (link === null) {
			attached = false;
			link = this.launcher.spawn();
		}
		const client = new RpcClient(link, this.timers);
		this.client = client;
		const sink = client.sink();
		link.listen({
			line: (line) => sink.line(line),
			closed: (reason, end) => {
				sink.closed(reason);
				this.lost(generation, reason, end);
			},
		});
		client.onEvent((event) => {
			if (generation === this.generation) {
				for (const listener of this.eventListeners) listener(event);
			}
		});
		let version: string;
		try {
			const hello = await client.call("hello", undefined, HELLO_TIMEOUT_MS);
			if (generation !== this.generation) return;
			if (hello.protocol !== RPC_PROTOCOL) {
				this.mismatch(hello.protocol, hello.version);
				return;
			}
			version = hello.version;
			await client.call("subscribe");
		} catch (error) {
			if (generation !== this.generation) return;
			if (error instanceof RpcError && error.code === METHOD_NOT_FOUND) {
				this.mismatch(null, null);
				return;
			}
			// A closed link reports itself through `lost`; anything else
			// (a timeout) is a failure of this attempt.
			if (!client.closed) {
				client.close();
				this.lost(generation, errorMessage(error));
			}
			return;
		}
		if (generation !== this.generation) return;
		this.readySince = this.now();
		this.setState({ kind: "ready", attached, version });
		for (const listener of this.readyListeners) listener(client);
	}

	/** The daemon answered, in another protocol: hang up, and wait for a new binary. */
	private mismatch(daemon: number | null, version: string | null): void {
		this.drop();
		this.setState({ kind: "version_mismatch", daemon, version });
	}

	/** The link of attempt `generation` ended. */
	private lost(generation: number, reason: string, end?: LinkEnd): void {
		if (generation !== this.generation) return;
		this.generation++;
		this.client = null;
		if (end?.kind === "spawn_failed" && NOT_RUNNABLE.has(end.code)) {
			this.setState({ kind: "binary_missing", binary: this.launcher.binary(), message: end.message });
			return;
		}
		if (end?.kind === "exited" && NO_VAULT.test(end.message)) {
			this.setState({ kind: "not_initialised", message: end.message });
			return;
		}
		if (this.state.kind === "ready" && this.now() - this.readySince >= HEALTHY_MS) {
			this.failures = 0;
		}
		// Another process holds the vault (a daemon starting up, or a CLI
		// command): its socket appears in a moment, so the first retry is quick.
		const locked = end?.kind === "exited" && LOCKED.test(end.message);
		this.failures++;
		const inMs = locked && this.failures === 1 ? 500 : backoffMs(this.failures);
		this.setState({ kind: "retrying", reason, inMs, failures: this.failures });
		this.retryTimer = this.timers.set(() => void this.connect(), inMs);
	}

	private setState(state: Connection): void {
		this.state = state;
		for (const listener of this.stateListeners) listener(state);
	}
}

/** A short phrase for a connection state, for messages. */
export function describeConnection(c: Connection): string {
	switch (c.kind) {
		case "starting":
			return "starting the daemon";
		case "ready":
			return "connected";
		case "retrying":
			return `the daemon stopped (${c.reason}); retrying in ${Math.ceil(c.inMs / 1000)} s`;
		case "binary_missing":
			return `could not run '${c.binary}'`;
		case "not_initialised":
			return "this vault is not set up for Vellum";
		case "version_mismatch":
			return c.version === null
				? "the vellum binary is too old for this plugin"
				: `vellum ${c.version} speaks protocol ${c.daemon ?? "?"}, this plugin ${RPC_PROTOCOL}`;
		case "stopped":
			return "stopped";
	}
}
