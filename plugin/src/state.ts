// What the plugin knows about its vault: the connection, the daemon's
// status, the open conflicts and the held batches, kept current from the
// daemon's events. Views read it and listen for changes. Pure.
import type { Connection } from "./client/daemon";
import { describeConnection } from "./client/daemon";
import type { ConflictEntry } from "./rpc/ConflictEntry";
import type { Event } from "./rpc/Event";
import type { Held } from "./rpc/Held";
import type { OpEvent } from "./rpc/OpEvent";
import type { Status } from "./rpc/Status";
import { count } from "./text";

export interface VaultState {
	connection: Connection;
	/** Null until the first status of the current connection. */
	status: Status | null;
	conflicts: ConflictEntry[];
	held: Held[];
}

export type Change =
	| { kind: "state" }
	/** Ops joined the journal (`more` beyond those listed). */
	| { kind: "ops"; ops: OpEvent[]; more: number }
	/** Events were missed: whatever a view shows may be stale. */
	| { kind: "lagged" }
	/** A device is pairing through this one's invite. */
	| { kind: "pairing"; pairing: PairingEvent };

export type PairingEvent = Extract<Event, { kind: "pairing" }>;

export class Store {
	private current: VaultState = { connection: { kind: "stopped" }, status: null, conflicts: [], held: [] };
	private readonly listeners = new Set<(change: Change) => void>();

	get state(): Readonly<VaultState> {
		return this.current;
	}

	/** Calls `listener` on every change; returns the function that stops it. */
	subscribe(listener: (change: Change) => void): () => void {
		this.listeners.add(listener);
		return () => this.listeners.delete(listener);
	}

	/** A new connection state: what the last connection said no longer holds. */
	setConnection(connection: Connection): void {
		this.update({ connection, status: null, conflicts: [], held: [] });
	}

	/**
	 * How many events have set each field. A full read that started before
	 * an event must not overwrite what the event said: see `updateIfUnchanged`.
	 */
	readonly eventCounts = { status: 0, conflicts: 0, held: 0 };

	/**
	 * Applies a full read begun when the event counts were `since`, leaving
	 * out each field an event set meanwhile. Events come after `subscribe`,
	 * which precedes every read, and each carries the whole current value:
	 * so the event's value is never older than what a later event will say,
	 * while the read may be older than the event.
	 */
	updateIfUnchanged(since: Readonly<Store["eventCounts"]>, read: Pick<VaultState, "status" | "conflicts" | "held">): void {
		const partial: Partial<VaultState> = {};
		if (this.eventCounts.status === since.status) partial.status = read.status;
		if (this.eventCounts.conflicts === since.conflicts) partial.conflicts = read.conflicts;
		if (this.eventCounts.held === since.held) partial.held = read.held;
		this.update(partial);
	}

	update(partial: Partial<VaultState>): void {
		this.current = { ...this.current, ...partial };
		this.emit({ kind: "state" });
	}

	/** Applies one daemon event. */
	apply(event: Event): void {
		switch (event.kind) {
			case "status":
				this.eventCounts.status++;
				this.update({ status: event.status });
				break;
			case "conflicts":
				this.eventCounts.conflicts++;
				this.update({ conflicts: event.conflicts });
				break;
			case "quarantine":
				this.eventCounts.held++;
				this.update({ held: event.held });
				break;
			case "ops":
				this.emit({ kind: "ops", ops: event.ops, more: event.more });
				break;
			case "lagged":
				this.emit({ kind: "lagged" });
				break;
			case "pairing":
				this.emit({ kind: "pairing", pairing: event });
				break;
		}
	}

	private emit(change: Change): void {
		for (const listener of this.listeners) listener(change);
	}
}

/** What the status bar shows. */
export interface StatusDisplay {
	/** One of the states of DESIGN §9, or a connection problem. */
	kind: "synced" | "syncing" | "offline" | "conflicts" | "quarantined" | "starting" | "problem";
	text: string;
	tooltip: string;
}

/**
 * The status bar's text for a state. What needs the user comes first: held
 * batches, then conflicts; then ops still on the way; then whether any
 * device is connected.
 */
export function describeState(state: VaultState): StatusDisplay {
	const c = state.connection;
	if (c.kind !== "ready") {
		if (c.kind === "starting") return { kind: "starting", text: "Vellum: starting…", tooltip: describeConnection(c) };
		const text = {
			retrying: "Vellum: daemon stopped",
			binary_missing: "Vellum: binary not found",
			not_initialised: "Vellum: not set up",
			version_mismatch: "Vellum: update needed",
			stopped: "Vellum: stopped",
		}[c.kind];
		return { kind: "problem", text, tooltip: problemTooltip(c) };
	}
	const s = state.status;
	if (s === null) return { kind: "starting", text: "Vellum: starting…", tooltip: "Reading the vault's status" };
	const details = [
		`${count(s.files, "file")}, ${count(s.ops, "op")} in the journal`,
		s.network === null
			? "Not syncing: the daemon runs offline"
			: `${count(s.network.connected, "device")} connected`,
		`Device ${s.device.slice(0, 12)}`,
	];
	if (s.stale !== null) {
		details.unshift(`This device's journal is behind its own history (${s.stale.held} of ${s.stale.wrote} ops); waiting for them`);
	}
	const tooltip = details.join("\n");
	if (s.quarantined > 0) {
		return { kind: "quarantined", text: `Vellum: ${count(s.quarantined, "change")} held`, tooltip: `Held back from the disk for review (quarantine)\n${tooltip}` };
	}
	if (s.conflicts > 0) {
		return { kind: "conflicts", text: `Vellum: ${count(s.conflicts, "conflict")}`, tooltip };
	}
	const waiting = s.pending + (s.network?.incoming_ops ?? 0);
	if (waiting > 0) {
		return { kind: "syncing", text: `Vellum: syncing ${waiting}`, tooltip };
	}
	if (s.network === null || s.network.connected === 0) {
		return { kind: "offline", text: "Vellum: offline", tooltip };
	}
	return { kind: "synced", text: "Vellum: synced", tooltip };
}

function problemTooltip(c: Connection): string {
	switch (c.kind) {
		case "binary_missing":
			return `Could not run '${c.binary}' (${c.message}). Install Vellum and run "Restart the sync daemon", or set the binary path in the plugin settings.`;
		case "not_initialised":
			return `${c.message}. To start, run "Set up this vault" (this device starts the vault) or "Join a vault with a code" from the command palette.`;
		case "version_mismatch":
			return `${describeConnection(c)}. Install the vellum binary that came with this plugin version.`;
		default:
			return describeConnection(c);
	}
}
