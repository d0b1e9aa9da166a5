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

    /// Whether the vault-relative `path` (or one of its folders) is ignored.
    pub fn ignored(&self, path: &str, is_dir: bool) -> bool {
        self.matcher
            .matched_path_or_any_parents(path, is_dir)
            .is_ignore()
    }
}
