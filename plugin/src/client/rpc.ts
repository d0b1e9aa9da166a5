// JSON-RPC 2.0 over lines (the daemon's framing, docs/PROTOCOL.md §11).
// Pure: the bytes come and go through a Channel, so the same client runs
// on a child process's stdio, on the daemon's socket, and in the browser
// harness of the end-to-end tests.
import type { Event } from "../rpc/Event";
import type { MethodName, ParamsOf, ResultOf } from "./methods";

/** A line-oriented connection to the daemon. */
export interface Channel {
	/** Sends one line (no newline). */
	send(line: string): void;
	/** Hangs up; `closed` then fires once. */
	close(): void;
}

/** What a Channel reports back to its client. */
export interface ChannelSink {
	line(line: string): void;
	closed(reason: string): void;
}

/** An error answer from the daemon: its code and one-line message. */
export class RpcError extends Error {
	constructor(
		readonly code: number,
		message: string,
	) {
		super(message);
		this.name = "RpcError";
	}
}

/** The connection ended before the answer came. */
export class Disconnected extends Error {
	constructor(reason: string) {
		super(reason);
		this.name = "Disconnected";
	}
}

export const METHOD_NOT_FOUND = -32601;
export const INVALID_PARAMS = -32602;

/** How long a call may wait for its answer unless it says otherwise. */
export const CALL_TIMEOUT_MS = 60_000;

/** Timers, from outside so that tests control time. */
export interface Timers {
	set(callback: () => void, ms: number): unknown;
	clear(handle: unknown): void;
}

export const realTimers: Timers = {
	set: (callback, ms) => window.setTimeout(callback, ms),
	clear: (handle) => window.clearTimeout(handle as number),
};

interface Pending {
	method: string;
	resolve(result: unknown): void;
	reject(error: Error): void;
	timer: unknown;
}

export class RpcClient {
	private nextId = 1;
	private readonly pending = new Map<number, Pending>();
	private readonly eventListeners: ((event: Event) => void)[] = [];
	private closedReason: string | null = null;

	constructor(
		private readonly channel: Channel,
		private readonly timers: Timers = realTimers,
	) {}

	/** The sink to hand the channel. */
	sink(): ChannelSink {
		return {
			line: (line) => this.receive(line),
			closed: (reason) => this.fail(reason),
		};
	}

	get closed(): boolean {
		return this.closedReason !== null;
	}

	call<M extends MethodName>(method: M, params?: ParamsOf<M>, timeoutMs = CALL_TIMEOUT_MS): Promise<ResultOf<M>> {
		if (this.closedReason !== null) {
			return Promise.reject(new Disconnected(this.closedReason));
		}
		const id = this.nextId++;
		const request: Record<string, unknown> = { jsonrpc: "2.0", id, method };
		if (params !== undefined) request.params = params;
		return new Promise<ResultOf<M>>((resolve, reject) => {
			const timer = this.timers.set(() => {
				if (this.pending.delete(id)) {
					reject(new Error(`the daemon did not answer ${method} within ${Math.round(timeoutMs / 1000)} s`));
				}
			}, timeoutMs);
			this.pending.set(id, { method, resolve: (r) => resolve(r as ResultOf<M>), reject, timer });
			try {
				this.channel.send(JSON.stringify(request));
			} catch (error) {
				this.pending.delete(id);
				this.timers.clear(timer);
				reject(new Disconnected(error instanceof Error ? error.message : String(error)));
			}
		});
	}

	/** Calls `listener` with every event notification (after `subscribe`). */
	onEvent(listener: (event: Event) => void): void {
		this.eventListeners.push(listener);
	}

	close(): void {
		this.channel.close();
		this.fail("closed");
	}

	private receive(line: string): void {
		if (line.trim() === "") return;
		let message: unknown;
		try {
			message = JSON.parse(line);
		} catch {
			// The daemon writes nothing but JSON lines; anything else is a
			// broken stream, and waiting for answers on it is pointless.
			this.channel.close();
			this.fail("the daemon sent a line that is not JSON");
			return;
		}
		if (typeof message !== "object" || message === null) return;
		const m = message as { id?: unknown; method?: unknown; params?: unknown; result?: unknown; error?: { code?: unknown; message?: unknown } };
		if (typeof m.method === "string") {
			if (m.method === "event" && typeof m.params === "object" && m.params !== null) {
				for (const listener of this.eventListeners) listener(m.params as Event);
			}
			return;
		}
		if (typeof m.id !== "number") return;
		const pending = this.pending.get(m.id);
		if (pending === undefined) return;
		this.pending.delete(m.id);
		this.timers.clear(pending.timer);
		if (m.error !== undefined) {
			const code = typeof m.error.code === "number" ? m.error.code : 0;
			const text = typeof m.error.message === "string" ? m.error.message : "unknown error";
			pending.reject(new RpcError(code, text));
		} else {
			pending.resolve(m.result);
		}
	}

	private fail(reason: string): void {
		if (this.closedReason !== null) return;
		this.closedReason = reason;
		for (const [id, pending] of this.pending) {
			this.pending.delete(id);
			this.timers.clear(pending.timer);
			pending.reject(new Disconnected(reason));
		}
	}
}

/**
 * Splits a byte stream's text into lines. Chunks may end mid-line; the
 * rest waits for the next chunk. A line longer than `maxChars` is refused:
 * the stream is broken, since nothing the daemon sends is that long.
 */
export class LineSplitter {
	private buffer = "";

	constructor(private readonly maxChars: number) {}

	/** The complete lines in `chunk` (with what came before); throws on an overlong line. */
	push(chunk: string): string[] {
		this.buffer += chunk;
		const parts = this.buffer.split("\n");
		this.buffer = parts.pop() ?? "";
		if (this.buffer.length > this.maxChars) {
			this.buffer = "";
			throw new Error(`the daemon sent a line over ${this.maxChars} characters`);
		}
		return parts.map((p) => (p.endsWith("\r") ? p.slice(0, -1) : p));
	}
}
