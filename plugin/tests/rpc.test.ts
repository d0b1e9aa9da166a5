import { describe, expect, it } from "vitest";
import { Disconnected, LineSplitter, RpcClient, RpcError } from "../src/client/rpc";
import type { Event } from "../src/rpc/Event";
import { FakeLink, ManualTimers, settle } from "./support/fakes";

function connected(): { link: FakeLink; client: RpcClient; timers: ManualTimers } {
	const link = new FakeLink();
	const timers = new ManualTimers();
	const client = new RpcClient(link, timers);
	link.listen(client.sink());
	return { link, client, timers };
}

describe("RpcClient", () => {
	it("sends JSON-RPC 2.0 requests with increasing ids and resolves with the result", async () => {
		const { link, client } = connected();
		const status = client.call("status");
		const log = client.call("log", { limit: 5 });
		expect(link.sent).toEqual([
			{ jsonrpc: "2.0", id: 1, method: "status" },
			{ jsonrpc: "2.0", id: 2, method: "log", params: { limit: 5 } },
		]);
		// Answers may come in any order; ids match them up.
		link.answer("log", []);
		link.answer("status", { files: 3 });
		await expect(log).resolves.toEqual([]);
		await expect(status).resolves.toEqual({ files: 3 });
	});

	it("rejects with the daemon's code and message", async () => {
		const { link, client } = connected();
		const call = client.call("restore", { path: "a.md", at: "zzz" });
		link.fail("restore", -32602, "unknown point \"zzz\"");
		const error = await call.catch((e: unknown) => e);
		expect(error).toBeInstanceOf(RpcError);
		expect(error).toMatchObject({ code: -32602, message: "unknown point \"zzz\"" });
	});

	it("times out a call the daemon never answers, and ignores a late answer", async () => {
		const { link, client, timers } = connected();
		const call = client.call("status", undefined, 5000);
		expect(timers.delays()).toEqual([5000]);
		timers.fire(5000);
		await expect(call).rejects.toThrow("did not answer status within 5 s");
		link.answer("status", {});
		await settle();
	});

	it("rejects every waiting call when the link closes, and later calls at once", async () => {
		const { link, client, timers } = connected();
		const a = client.call("status");
		const b = client.call("conflicts");
		link.end("the daemon exited with 2", { kind: "exited", code: 2, signal: null, message: "" });
		await expect(a).rejects.toBeInstanceOf(Disconnected);
		await expect(b).rejects.toThrow("the daemon exited with 2");
		expect(timers.pending.size).toBe(0);
		await expect(client.call("status")).rejects.toThrow("the daemon exited with 2");
		expect(client.closed).toBe(true);
	});

	it("passes event notifications to listeners and ignores other notifications", () => {
		const { link, client } = connected();
		const events: Event[] = [];
		client.onEvent((e) => events.push(e));
		link.event({ kind: "lagged", missed: 3 });
		link.sink?.line(JSON.stringify({ jsonrpc: "2.0", method: "cli.stdout", params: { data: "" } }));
		expect(events).toEqual([{ kind: "lagged", missed: 3 }]);
	});

	it("hangs up on a line that is not JSON", async () => {
		const { link, client } = connected();
		const call = client.call("status");
		link.sink?.line("thread 'main' panicked");
		await expect(call).rejects.toThrow("not JSON");
		expect(link.closedByClient).toBe(true);
	});
});

describe("LineSplitter", () => {
	it("joins chunks that split lines and drops carriage returns", () => {
		const s = new LineSplitter(100);
		expect(s.push('{"a":')).toEqual([]);
		expect(s.push('1}\r\n{"b"')).toEqual(['{"a":1}']);
		expect(s.push(":2}\n\n")).toEqual(['{"b":2}', ""]);
	});

	it("refuses a line over the limit", () => {
		const s = new LineSplitter(8);
		expect(() => s.push("123456789")).toThrow("over 8 characters");
		expect(s.push("ok\n")).toEqual(["ok"]);
	});
});
