import { defineConfig, globalIgnores } from "eslint/config";
import obsidianmd from "eslint-plugin-obsidianmd";

export default defineConfig([
	globalIgnores(["main.js", "node_modules/"]),
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
]);
