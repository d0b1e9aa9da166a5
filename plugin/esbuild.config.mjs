// Bundles src/main.ts into the single main.js that Obsidian loads.
import { builtinModules } from "node:module";
import esbuild from "esbuild";

// Obsidian provides these at run time; bundling them would ship a second,
// broken copy. Node builtins are available because the plugin is desktop only.
const external = [
	"obsidian",
	"electron",
	"@codemirror/*",
	"@lezer/*",
	...builtinModules,
	...builtinModules.map((name) => `node:${name}`),
];

await esbuild.build({
	entryPoints: ["src/main.ts"],
	outfile: "main.js",
	bundle: true,
	format: "cjs",
	platform: "node",
	target: "es2022",
	external,
	logLevel: "info",
	sourcemap: false,
	treeShaking: true,
});
