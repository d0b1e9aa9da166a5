// `vellum status --json`: parsing its output and describing it in the status bar.
// Pure: no Obsidian API, no IO.
import type { Status } from "./rpc/Status";
import { firstLine, type RunResult } from "./run";

/** How often the status bar re-runs `vellum status`. */
export const STATUS_REFRESH_INTERVAL_MS = 30_000;

/** Shown until the first `vellum status` finishes. */
export const STATUS_TEXT_CHECKING = "Vellum: checking…";

/**
 * The `status` shape from the CLI output contract (DESIGN §8): the Rust
 * type exported by ts-rs, less the optional `stale` and `network` reports,
 * which the status bar does not show yet.
 */
export type VaultStatus = Omit<Status, "stale" | "network">;

const STRING_FIELDS = ["head", "device", "vault"] as const;
const COUNT_FIELDS = ["ops", "files", "conflicts", "pending", "quarantined", "journal_bytes"] as const;

export type ParseResult = { ok: true; status: VaultStatus } | { ok: false; error: string };

/**
 * Parses the stdout of `vellum status --json`. Every field must be present
 * with its contract type: strings for ids, non-negative integers for counts.
 * A count sent as a string is rejected rather than coerced, so a contract
 * break shows up here instead of as a wrong number. Unknown fields are
 * ignored so that newer binaries can add some.
 */
export function parseStatus(stdout: string): ParseResult {
	let value: unknown;
	try {
		value = JSON.parse(stdout);
	} catch {
		return { ok: false, error: "output is not JSON" };
	}
	if (typeof value !== "object" || value === null || Array.isArray(value)) {
		return { ok: false, error: "output is not a JSON object" };
	}
	const record = value as Record<string, unknown>;
	for (const field of STRING_FIELDS) {
		const fieldValue = record[field];
		if (typeof fieldValue !== "string") {
			return { ok: false, error: `field "${field}" must be a string, got ${describeType(fieldValue)}` };
		}
	}
	for (const field of COUNT_FIELDS) {
		const fieldValue = record[field];
		if (typeof fieldValue !== "number" || !Number.isSafeInteger(fieldValue) || fieldValue < 0) {
			return {
				ok: false,
				error: `field "${field}" must be a non-negative integer, got ${describeType(fieldValue)}`,
			};
		}
	}
	return {
		ok: true,
		status: {
			head: record.head as string,
			ops: record.ops as number,
			files: record.files as number,
			conflicts: record.conflicts as number,
			pending: record.pending as number,
			quarantined: record.quarantined as number,
			journal_bytes: record.journal_bytes as number,
			device: record.device as string,
			vault: record.vault as string,
		},
	};
}

function describeType(value: unknown): string {
	if (value === undefined) return "nothing";
	if (value === null) return "null";
	if (Array.isArray(value)) return "an array";
	if (typeof value === "number") {
		if (!Number.isFinite(value)) return "an out-of-range number";
		return Number.isInteger(value) ? `${value}` : "a fraction";
	}
	return `a ${typeof value}`;
}

/** What one status check found. */
export type StatusOutcome =
	| { kind: "ok"; status: VaultStatus }
	| { kind: "not_initialised"; message: string }
	| { kind: "binary_not_found"; binary: string }
	| { kind: "unsupported_vault" }
	| { kind: "failed"; message: string };

// The CLI reports a missing vault as "no vault here (no .vellum/ found …);
// run 'vellum init'" (DESIGN §8, user messages).
const NO_VAULT_PATTERN = /\bno vault\b|\bnot initiali[sz]ed\b/i;

/** Classifies one run of `vellum status --json` made with `binary`. */
export function outcomeFromRun(run: RunResult, binary: string): StatusOutcome {
	switch (run.kind) {
		case "spawn_failed":
			if (run.code === "ENOENT") {
				return { kind: "binary_not_found", binary };
			}
			return { kind: "failed", message: `could not run ${binary} (${run.code}): ${run.message}` };
		case "killed":
			return { kind: "failed", message: `${binary} status was stopped (${run.signal}); is the vault very large or the disk stuck?` };
		case "exited": {
			if (run.exitCode !== 0) {
				const message = firstLine(run.stderr);
				if (NO_VAULT_PATTERN.test(message)) {
					return { kind: "not_initialised", message };
				}
				const detail = message === "" ? "no message" : message;
				return { kind: "failed", message: `${binary} status exited with ${run.exitCode}: ${detail}` };
			}
			const parsed = parseStatus(run.stdout);
			if (!parsed.ok) {
				return { kind: "failed", message: `unexpected output from ${binary} status: ${parsed.error}` };
			}
			return { kind: "ok", status: parsed.status };
		}
	}
}

/** Status bar text, and the longer tooltip shown on hover. */
export interface StatusDisplay {
	text: string;
	tooltip: string;
}

export function describeOutcome(outcome: StatusOutcome): StatusDisplay {
	switch (outcome.kind) {
		case "ok": {
			const { status } = outcome;
			return {
				text: `Vellum: ${count(status.files, "file")}, ${count(status.conflicts, "conflict")}`,
				tooltip: [
					`Head ${status.head === "" ? "(empty journal)" : status.head}`,
					`${count(status.ops, "op")}, ${status.pending} pending, ${status.quarantined} quarantined`,
					`Device ${status.device}`,
				].join("\n"),
			};
		}
		case "not_initialised":
			return {
				text: "Vellum: not initialised",
				tooltip: outcome.message === "" ? "Run 'vellum init' in this vault." : outcome.message,
			};
		case "binary_not_found":
			return {
				text: "Vellum: binary not found",
				tooltip: `Could not find '${outcome.binary}'. Install Vellum, or set the binary path in the plugin settings.`,
			};
		case "unsupported_vault":
			return {
				text: "Vellum: unsupported vault",
				tooltip: "Vellum needs a vault stored in a folder on this computer.",
			};
		case "failed":
			return { text: "Vellum: error", tooltip: outcome.message };
	}
}

function count(n: number, noun: string): string {
	return `${n} ${noun}${n === 1 ? "" : "s"}`;
}
