//! Vault-wide ignore rules, in gitignore syntax, from the replayed
//! `VaultConfig`. `.vellum/` is always ignored, whatever the rules say.

use std::path::Path;

use anyhow::Result;
use ignore::gitignore::{Gitignore, GitignoreBuilder};

pub struct Rules {
    matcher: Gitignore,
}

impl Rules {
    pub fn new(root: &Path, globs: &[String]) -> Result<Rules> {
        let mut b = GitignoreBuilder::new(root);
        b.add_line(None, "/.vellum/")?;
        for g in globs {
            // A bad rule in the shared config must not stop every device
            // from scanning: skip it with a warning.
            if let Err(e) = b.add_line(None, g) {
                tracing::warn!(rule = %g, error = %e, "ignoring an invalid ignore rule");
            }
        }
        Ok(Rules {
            matcher: b.build()?,
        })
    }

    /// Whether every one of `globs` compiles, as [`Rules::new`] would
    /// compile it without skipping any: for a config about to be written,
    /// which should hold no rule that every device then skips. The error
    /// names the first bad glob.
    pub fn check(globs: &[String]) -> std::result::Result<(), String> {
        let mut b = GitignoreBuilder::new("/");
        for g in globs {
            b.add_line(None, g)
                .map_err(|e| format!("the ignore glob {g:?} is not valid: {e}"))?;
        }
        b.build()
            .map(|_| ())
            .map_err(|e| format!("the ignore globs do not compile together: {e}"))
    }

    /// Whether the vault-relative `path` (or one of its folders) is ignored.
    pub fn ignored(&self, path: &str, is_dir: bool) -> bool {
        self.matcher
            .matched_path_or_any_parents(path, is_dir)
            .is_ignore()
    }
}

#[cfg(test)]
mod tests {
    use super::Rules;

    fn globs(g: &[&str]) -> Vec<String> {
        g.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn check_takes_what_new_compiles_and_names_the_first_glob_it_would_skip() {
        let defaults = globs(crate::vault::DEFAULT_IGNORES);
        assert_eq!(Rules::check(&defaults), Ok(()));
        let bad = globs(&["*.md", "notes/{a", "[z-a]"]);
        let e = Rules::check(&bad).unwrap_err();
        assert!(e.contains("\"notes/{a\""), "{e}");
        // The lenient build, which every device runs, skips it instead.
        let rules = Rules::new(std::path::Path::new("/v"), &bad).unwrap();
        assert!(rules.ignored("a.md", false));
    }
}
