//! Vault-relative paths: validation, NFC normalisation and collision keys.

use unicode_normalization::UnicodeNormalization;

use crate::error::{Error, Result};
use crate::limits::PATH_BYTES_MAX;

/// The folder that holds the journal; nothing inside it is ever synced.
pub const VELLUM_DIR: &str = ".vellum";

/// Normalises `raw` to NFC and checks it is a valid vault path:
/// relative, `/`-separated, no empty, `.` or `..` components, no NUL, not
/// inside `.vellum/`, and at most `PATH_BYTES_MAX` bytes.
pub fn normalize(raw: &str) -> Result<String> {
    let path: String = raw.nfc().collect();
    let bad = |why: &str| Err(Error::BadPath(format!("invalid vault path '{raw}': {why}")));
    if path.is_empty() {
        return bad("empty");
    }
    if path.len() > PATH_BYTES_MAX {
        return bad("longer than 1024 bytes");
    }
    if path.contains('\0') {
        return bad("contains NUL");
    }
    if path.starts_with('/') {
        return bad("absolute");
    }
    for component in path.split('/') {
        match component {
            "" => return bad("empty component"),
            "." | ".." => return bad("'.' or '..' component"),
            _ => {}
        }
    }
    if path == VELLUM_DIR || path.starts_with(".vellum/") {
        return bad("inside .vellum/");
    }
    Ok(path)
}

/// Whether `path` is already a valid, normalised vault path.
pub fn is_valid(path: &str) -> bool {
    normalize(path).is_ok_and(|p| p == path)
}

/// The key under which two paths collide on a case-insensitive,
/// normalisation-insensitive filesystem (macOS, Windows): NFC, then
/// lowercased. Replay only suffixes exact (NFC) collisions; this key is for
/// materialising on such filesystems and for the scanner.
pub fn portable_key(path: &str) -> String {
    path.nfc().flat_map(char::to_lowercase).collect()
}

/// `notes/a.md` with `dev` → `notes/a (conflict dev).md`, and with `n > 1`
/// → `notes/a (conflict dev 2).md`.
pub fn conflict_name(path: &str, device_short: &str, n: u32) -> String {
    let (dir, name) = match path.rfind('/') {
        Some(i) => (&path[..=i], &path[i + 1..]),
        None => ("", path),
    };
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    let tag = if n > 1 {
        format!("{device_short} {n}")
    } else {
        device_short.to_string()
    };
    format!("{dir}{stem} (conflict {tag}){ext}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_paths_and_normalises() {
        assert_eq!(normalize("notes/a.md").unwrap(), "notes/a.md");
        // "é" as e + combining acute becomes the single NFC code point.
        assert_eq!(normalize("cafe\u{301}.md").unwrap(), "caf\u{e9}.md");
        assert!(is_valid("日記/2026-11-25.md"));
    }

    #[test]
    fn rejects_escapes_and_reserved() {
        for bad in [
            "",
            "/etc/passwd",
            "a/../b",
            "./a",
            "a//b",
            "a/",
            ".vellum",
            ".vellum/x",
            "a\0b",
        ] {
            assert!(normalize(bad).is_err(), "{bad:?} accepted");
        }
        assert!(normalize(&"x".repeat(1025)).is_err());
        assert!(normalize(".vellumish/a.md").is_ok());
    }

    #[test]
    fn portable_key_folds_case_and_normalisation() {
        assert_eq!(portable_key("Notes/A.md"), portable_key("notes/a.md"));
        assert_eq!(portable_key("Cafe\u{301}.md"), portable_key("caf\u{e9}.md"));
        assert_ne!(portable_key("a.md"), portable_key("b.md"));
    }

    #[test]
    fn conflict_names() {
        assert_eq!(conflict_name("n/a.md", "abc", 1), "n/a (conflict abc).md");
        assert_eq!(conflict_name("a", "abc", 2), "a (conflict abc 2)");
        assert_eq!(conflict_name(".env", "abc", 1), ".env (conflict abc)");
    }
}
