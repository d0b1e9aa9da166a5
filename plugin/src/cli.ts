// Runs the `vellum` binary. The only module that spawns processes.
import { execFile } from "child_process";
import { runResultFrom, type RunResult } from "./run";

/** How long one `vellum status` may take before it is killed. */
export const VELLUM_TIMEOUT_MS = 10_000;

/** Most bytes accepted on stdout or stderr; `status --json` is a few hundred. */
export const VELLUM_OUTPUT_BYTES_MAX = 1024 * 1024;

export function statusArgs(vaultPath: string): string[] {
	return ["status", "--json", "--vault", vaultPath];
}

/** Runs `binary args…` without a shell. Never rejects: failures come back as a RunResult. */
export function runVellum(binary: string, args: readonly string[]): Promise<RunResult> {
	return new Promise((resolve) => {
		try {
			execFile(
				binary,
				args,
				{
					encoding: "utf8",
					timeout: VELLUM_TIMEOUT_MS,
					maxBuffer: VELLUM_OUTPUT_BYTES_MAX,
					windowsHide: true,
				},
				(error, stdout, stderr) => {
					resolve(runResultFrom(error, stdout, stderr));
				},
			);
		} catch (error) {
			// execFile throws synchronously for invalid arguments (e.g. a NUL byte in the path).
			const message = error instanceof Error ? error.message : String(error);
			resolve({ kind: "spawn_failed", code: "EINVAL", message });
		}
	});
}
