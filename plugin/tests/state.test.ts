import { describe, expect, it } from "vitest";
import { describeState, Store, type VaultState } from "../src/state";
import type { Status } from "../src/rpc/Status";

const STATUS: Status = {
	head: "vv:abc",
	ops: 10,
	files: 42,
	conflicts: 0,
	pending: 0,
	quarantined: 0,
	journal_bytes: 4096,
	device: "2ff91365e3c2aaaa",
	vault: "v1",
	stale: null,
	network: { peer_id: "12D3", listening: [], connected: 1, incoming_ops: 0, chunks_received: 0 },
};

function ready(status: Partial<Status> | null): VaultState {
	return {
		connection: { kind: "ready", attached: false, version: "0.1.0" },
		status: status === null ? null : { ...STATUS, ...status },
		conflicts: [],
		held: [],
	};
}

describe("describeState", () => {
	it.each([
		["synced", {}, "Vellum: synced"],
		["syncing", { pending: 2, network: { ...STATUS.network!, incoming_ops: 3 } }, "Vellum: syncing 5"],
		["offline", { network: { ...STATUS.network!, connected: 0 } }, "Vellum: offline"],
		["offline", { network: null }, "Vellum: offline"],
		["conflicts", { conflicts: 1 }, "Vellum: 1 conflict"],
		["conflicts", { conflicts: 3, pending: 4 }, "Vellum: 3 conflicts"],
		["quarantined", { quarantined: 2, conflicts: 3 }, "Vellum: 2 changes held"],
	] as const)("%s: %j", (kind, status, text) => {
		expect(describeState(ready(status))).toMatchObject({ kind, text });
	});

	it("says why it is not connected", () => {
		const base = { status: null, conflicts: [], held: [] };
		expect(describeState({ ...base, connection: { kind: "binary_missing", binary: "/x/vellum", message: "ENOENT" } })).toMatchObject({
			kind: "problem",
			text: "Vellum: binary not found",
		});
		expect(describeState({ ...base, connection: { kind: "version_mismatch", daemon: 2, version: "2.0.0" } }).tooltip).toContain(
			"vellum 2.0.0 speaks protocol 2, this plugin 1",
		);
		expect(describeState({ ...base, connection: { kind: "retrying", reason: "exited with 2", inMs: 4000, failures: 3 } }).tooltip).toContain(
			"retrying in 4 s",
		);
		expect(describeState(ready(null)).kind).toBe("starting");
	});
});

describe("Store", () => {
	it("applies status, conflict and quarantine events and tells listeners", () => {
		const store = new Store();
		const changes: string[] = [];
		store.subscribe((c) => changes.push(c.kind));
		store.setConnection({ kind: "ready", attached: false, version: "1" });
		store.apply({ kind: "status", status: STATUS });
		store.apply({ kind: "conflicts", conflicts: [{ path: "a.md", file: "f", kind: "overlap", ops: [], base: "", current: "", incoming: "" }] });
		store.apply({ kind: "ops", ops: [], more: 0 });
		store.apply({ kind: "lagged", missed: 4 });
		expect(store.state.status).toEqual(STATUS);
		expect(store.state.conflicts).toHaveLength(1);
		expect(changes).toEqual(["state", "state", "state", "ops", "lagged"]);
	});

	it("forgets the last connection's state when the connection changes", () => {
		const store = new Store();
		store.apply({ kind: "status", status: STATUS });
		store.setConnection({ kind: "retrying", reason: "x", inMs: 1000, failures: 1 });
		expect(store.state.status).toBeNull();
	});

	it("stops telling a listener that unsubscribed", () => {
		const store = new Store();
		let calls = 0;
		const stop = store.subscribe(() => calls++);
		store.apply({ kind: "lagged", missed: 1 });
		stop();
		store.apply({ kind: "lagged", missed: 1 });
		expect(calls).toBe(1);
	});
});

describe("Store.updateIfUnchanged", () => {
	it("keeps what an event said over a full read that began before it", () => {
		const store = new Store();
		const since = { ...store.eventCounts };
		// The daemon held a batch while the read was on its way...
		store.apply({ kind: "status", status: { ...STATUS, quarantined: 25 } });
		// ...and the read, older, arrives last.
		store.updateIfUnchanged(since, { status: STATUS, conflicts: [], held: [] });
		expect(store.state.status?.quarantined).toBe(25);
	});

	it("takes the read for fields no event touched", () => {
		const store = new Store();
		const since = { ...store.eventCounts };
		store.apply({ kind: "conflicts", conflicts: [] });
		store.updateIfUnchanged(since, { status: STATUS, conflicts: [{ path: "stale.md", file: "f", kind: "overlap", ops: [], base: "", current: "", incoming: "" }], held: [] });
		expect(store.state.status).toEqual(STATUS);
		expect(store.state.conflicts).toEqual([]);
	});
});
