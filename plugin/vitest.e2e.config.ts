import { defineConfig } from "vitest/config";

// The end-to-end suite: real `vellum` processes, and Chromium for the views.
export default defineConfig({
	test: {
		include: ["e2e/**/*.e2e.test.ts"],
		environment: "node",
		// One browser and one daemon at a time: the machine has two cores.
		fileParallelism: false,
		testTimeout: 90_000,
		hookTimeout: 60_000,
		// Views follow the daemon's events, which come when its jobs end.
		expect: { poll: { timeout: 15_000, interval: 100 } },
	},
});
