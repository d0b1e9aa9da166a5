import { describe, expect, it, vi } from "vitest";
import type { RunResult } from "../src/run";
import { StatusBar } from "../src/obsidian/StatusBar";
import { FakeElement } from "./__mocks__/obsidian";

const STATUS_JSON = JSON.stringify({
	head: "h",
	ops: 1,
	files: 7,
	conflicts: 0,
	pending: 0,
	quarantined: 0,
	journal_bytes: 10,
	device: "d",
	vault: "v",
});

/** A runner whose runs finish only when the test says so. */
class ManualRunner {
	readonly calls: { binary: string; args: readonly string[]; finish: (result: RunResult) => void }[] = [];

	run = (binary: string, args: readonly string[]): Promise<RunResult> =>
		new Promise((resolve) => {
			this.calls.push({ binary, args, finish: resolve });
		});

	finish(index: number, result: RunResult): void {
		const call = this.calls[index];
		if (call === undefined) throw new Error(`no run ${index}`);
		call.finish(result);
	}
}

const ok: RunResult = { kind: "exited", exitCode: 0, stdout: STATUS_JSON, stderr: "" };

function setup(binary = (): string => "vellum", vaultPath = (): string | null => "/vault") {
	const el = new FakeElement();
	const runner = new ManualRunner();
	const bar = new StatusBar(el.asHTMLElement(), { binary, vaultPath }, runner.run);
	return { el, runner, bar };
}

describe("StatusBar", () => {
	it("shows 'checking' until the first run ends, then the status and a tooltip", async () => {
		const { el, runner, bar } = setup();
		expect(el.getText()).toBe("Vellum: checking…");
		const refreshed = bar.refresh();
		expect(runner.calls).toHaveLength(1);
		expect(runner.calls[0]?.args).toEqual(["status", "--json", "--vault", "/vault"]);
		runner.finish(0, ok);
		await refreshed;
		expect(el.getText()).toBe("Vellum: 7 files, 0 conflicts");
		expect(el.getAttr("aria-label")).toBe("Head h\n1 op, 0 pending, 0 quarantined\nDevice d");
	});

	it("runs once more after a busy check, with the latest binary", async () => {
		let binary = "vellum";
		const { el, runner, bar } = setup(() => binary);
		const first = bar.refresh();
		binary = "/opt/a/vellum";
		void bar.refresh();
		binary = "/opt/b/vellum";
		const third = bar.refresh();
		expect(third).toBe(first);
		expect(runner.calls).toHaveLength(1);

		runner.finish(0, ok);
		await vi.waitFor(() => expect(runner.calls).toHaveLength(2));
		// The two calls made while busy collapse into one re-run.
		expect(runner.calls.map((call) => call.binary)).toEqual(["vellum", "/opt/b/vellum"]);
		expect(el.getText()).toBe("Vellum: 7 files, 0 conflicts");
		runner.finish(1, { kind: "spawn_failed", code: "ENOENT", message: "" });
		await first;
		expect(el.getText()).toBe("Vellum: binary not found");
		expect(runner.calls).toHaveLength(2);
	});

	it("does not run anything for a vault without a folder", async () => {
		const { el, runner, bar } = setup(undefined, () => null);
		await bar.refresh();
		expect(runner.calls).toHaveLength(0);
		expect(el.getText()).toBe("Vellum: unsupported vault");
	});

	it("drops a result that arrives after detach", async () => {
		const { el, runner, bar } = setup();
		const refreshed = bar.refresh();
		bar.detach();
		runner.finish(0, ok);
		await refreshed;
		expect(el.getText()).toBe("Vellum: checking…");
		await bar.refresh();
		expect(runner.calls).toHaveLength(1);
	});
});
