import { defineConfig, globalIgnores } from "eslint/config";
import obsidianmd from "eslint-plugin-obsidianmd";

export default defineConfig([
	globalIgnores(["main.js", "node_modules/", "test-results/"]),
	...obsidianmd.configs.recommended,
	{
		languageOptions: {
			parserOptions: {
				// Type-aware rules need the TS project; the .mjs config files are
				// outside tsconfig's include, so they use the default project.
				projectService: {
					allowDefaultProject: ["eslint.config.mjs", "esbuild.config.mjs"],
				},
				tsconfigRootDir: import.meta.dirname,
			},
		},
	},
	{
		// The end-to-end tests' Node side drives Chromium and processes from
		// Node, where there is no window to take timers from; and it lays out
		// vault folders as Obsidian does by default.
		files: ["e2e/**/*.ts"],
		rules: {
			"obsidianmd/prefer-window-timers": "off",
			"obsidianmd/hardcoded-config-path": "off",
		},
	},
	{
		// The shim implements Obsidian's API rather than using it: it has to
		// build elements and styles by hand, and provide the deprecated
		// members that the real classes still have.
		files: ["tests/__mocks__/obsidian.ts"],
		rules: {
			"obsidianmd/prefer-create-el": "off",
			"obsidianmd/no-static-styles-assignment": "off",
			"obsidianmd/no-global-this": "off",
			"obsidianmd/hardcoded-config-path": "off",
			"@typescript-eslint/no-deprecated": "off",
		},
	},
]);
