// Test doubles for the client's seams: a link whose far end the test plays,
// and timers the test fires by hand.
import type { Launcher, Link, LinkEnd, LinkSink } from "../../src/client/daemon";
import type { Timers } from "../../src/client/rpc";

/** Timers that run only when the test says. */
export class ManualTimers implements Timers {
	private next = 1;
	readonly pending = new Map<number, { callback: () => void; ms: number }>();

	set(callback: () => void, ms: number): unknown {
		const id = this.next++;
		this.pending.set(id, { callback, ms });
		return id;
	}

	clear(handle: unknown): void {
		this.pending.delete(handle as number);
	}

	/** The delays of the timers waiting now, in the order they were set. */
	delays(): number[] {
		return [...this.pending.values()].map((t) => t.ms);
	}

	/** Fires every timer of exactly `ms` (or all, without it). */
	fire(ms?: number): void {
		for (const [id, t] of [...this.pending]) {
			if (ms === undefined || t.ms === ms) {
				this.pending.delete(id);
				t.callback();
			}
		}
	}
}

/** A link to a pretend daemon: the test reads what was sent and answers. */
export class FakeLink implements Link {
	readonly sent: Record<string, unknown>[] = [];
	sink: LinkSink | null = null;
	closedByClient = false;

	send(line: string): void {
		if (this.closedByClient) throw new Error("closed");
		this.sent.push(JSON.parse(line) as Record<string, unknown>);
	}

	close(): void {
		this.closedByClient = true;
	}

	listen(sink: LinkSink): void {
		this.sink = sink;
	}

	/** Answers the last request for `method` with `result`. */
	answer(method: string, result: unknown): void {
		const req = [...this.sent].reverse().find((r) => r.method === method);
		if (req === undefined) throw new Error(`no ${method} request was sent`);
		this.sink?.line(JSON.stringify({ jsonrpc: "2.0", id: req.id, result }));
	}

	fail(method: string, code: number, message: string): void {
		const req = [...this.sent].reverse().find((r) => r.method === method);
		if (req === undefined) throw new Error(`no ${method} request was sent`);
		this.sink?.line(JSON.stringify({ jsonrpc: "2.0", id: req.id, error: { code, message } }));
	}

	event(params: unknown): void {
		this.sink?.line(JSON.stringify({ jsonrpc: "2.0", method: "event", params }));
	}

	end(reason: string, end: LinkEnd): void {
		this.sink?.closed(reason, end);
	}
}

/** A launcher that hands out the links the test queued. */
export class FakeLauncher implements Launcher {
	readonly attached: (FakeLink | null)[] = [];
	readonly spawned: FakeLink[] = [];
	attachCalls = 0;
	spawnCalls = 0;

	attach(): Promise<Link | null> {
		this.attachCalls++;
		return Promise.resolve(this.attached.shift() ?? null);
	}

	spawn(): Link {
		this.spawnCalls++;
		const link = new FakeLink();
		this.spawned.push(link);
		return link;
	}

	binary(): string {
		return "/opt/vellum";
	}
}

/** Lets pending promise callbacks run. */
export async function settle(): Promise<void> {
	for (let i = 0; i < 10; i++) await Promise.resolve();
}
