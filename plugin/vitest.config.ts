import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

export default defineConfig({
	resolve: {
		// The `obsidian` package ships types only; at run time tests get the shim.
		alias: [
			{
				find: /^obsidian$/,
				replacement: fileURLToPath(new URL("./tests/__mocks__/obsidian.ts", import.meta.url)),
			},
		],
	},
	test: {
		include: ["tests/**/*.test.ts"],
		environment: "happy-dom",
		unstubGlobals: true,
	},
});
