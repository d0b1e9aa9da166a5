//! Strict application of diff-match-patch patch text (Compat mode: offsets
//! and lengths in Unicode scalar values).
//!
//! Patches are made with diff-match-patch (`replay::make_patch`), whose
//! `patch_apply` matches hunks fuzzily. Replay must never do that: a hunk
//! applies only at exactly its recorded offset, over exactly its recorded
//! text, or the patch does not apply. Each hunk's first offset is in the
//! coordinates of the text with the earlier hunks already applied (that is
//! how `patch_make` numbers them), so hunks are applied in order.

/// One hunk: where it starts (in chars) and what it replaces with what.
#[derive(Debug, PartialEq, Eq)]
struct Hunk {
    start: usize,
    old: String,
    new: String,
}

/// Applies `patch` to `base`, or `None` if any hunk is malformed or does not
/// match the text exactly where it says.
pub fn apply_strict(base: &str, patch: &str) -> Option<String> {
    let hunks = parse(patch)?;
    match apply_forward(base, &hunks) {
        Forward::Done(out) => out,
        // A hunk's context reached back into the previous hunk's output:
        // apply on a char array instead, where that is simple.
        Forward::Overlap => apply_on_chars(base, hunks),
    }
}

enum Forward {
    Done(Option<String>),
    Overlap,
}

/// The common case, in one pass over `base` with no char array: each hunk
/// starts at or after the end of the previous one.
fn apply_forward(base: &str, hunks: &[Hunk]) -> Forward {
    let mut out = String::with_capacity(base.len() + 64);
    // `at` is a byte offset into `base`, `out_chars` the chars written. A
    // hunk's start counts chars of the output, since the earlier hunks are
    // already applied there.
    let mut at = 0;
    let mut out_chars = 0;
    for h in hunks {
        if h.start < out_chars {
            return Forward::Overlap;
        }
        let rest = &base[at..];
        let Some(skip_bytes) = byte_offset(rest, h.start - out_chars) else {
            return Forward::Done(None);
        };
        out.push_str(&rest[..skip_bytes]);
        at += skip_bytes;
        if !base[at..].starts_with(h.old.as_str()) {
            return Forward::Done(None);
        }
        at += h.old.len();
        out.push_str(&h.new);
        out_chars = h.start + h.new.chars().count();
    }
    out.push_str(&base[at..]);
    Forward::Done(Some(out))
}

/// The byte offset of char `n` of `s` (`s.len()` when `s` has exactly `n`
/// chars), or `None` past the end. An ASCII prefix is counted without
/// decoding, which is most of a typical note.
fn byte_offset(s: &str, n: usize) -> Option<usize> {
    let head = &s.as_bytes()[..n.min(s.len())];
    let ascii = if head.is_ascii() {
        head.len()
    } else {
        head.iter()
            .position(|c| !c.is_ascii())
            .unwrap_or(head.len())
    };
    if ascii == n {
        return Some(n);
    }
    // Every byte before `ascii` is a whole char, so it is a char boundary,
    // and `n - ascii` ≥ 1 chars remain to skip.
    s[ascii..]
        .char_indices()
        .nth(n - ascii - 1)
        .map(|(i, c)| ascii + i + c.len_utf8())
}

fn apply_on_chars(base: &str, hunks: Vec<Hunk>) -> Option<String> {
    let mut text: Vec<char> = base.chars().collect();
    for h in hunks {
        let old: Vec<char> = h.old.chars().collect();
        let end = h.start.checked_add(old.len())?;
        if end > text.len() || text[h.start..end] != old[..] {
            return None;
        }
        text.splice(h.start..end, h.new.chars());
    }
    Some(text.into_iter().collect())
}

fn parse(patch: &str) -> Option<Vec<Hunk>> {
    let mut hunks = Vec::new();
    let mut lines = patch.split('\n').peekable();
    while let Some(line) = lines.next() {
        if line.is_empty() {
            continue;
        }
        let (start, len1, len2) = header(line)?;
        let (mut old, mut new) = (String::new(), String::new());
        while let Some(body) = lines.peek() {
            if body.starts_with('@') {
                break;
            }
            let body = lines.next().expect("peeked");
            let Some(sign) = body.chars().next() else {
                continue;
            };
            let text = decode(&body[1..])?;
            match sign {
                ' ' => {
                    old.push_str(&text);
                    new.push_str(&text);
                }
                '-' => old.push_str(&text),
                '+' => new.push_str(&text),
                _ => return None,
            }
        }
        if old.chars().count() != len1 || new.chars().count() != len2 {
            return None;
        }
        hunks.push(Hunk { start, old, new });
    }
    Some(hunks)
}

/// `@@ -a,b +c,d @@` → (0-based start of the old range, old length, new
/// length). As diff-match-patch writes it: a length of 1 is omitted, and
/// with a length of 0 the number is the 0-based position itself.
fn header(line: &str) -> Option<(usize, usize, usize)> {
    let inner = line.strip_prefix("@@ -")?.strip_suffix(" @@")?;
    let (a, b) = inner.split_once(" +")?;
    let range = |s: &str| -> Option<(usize, usize)> {
        match s.split_once(',') {
            None => Some((s.parse::<usize>().ok()?.checked_sub(1)?, 1)),
            Some((n, "0")) => Some((n.parse().ok()?, 0)),
            Some((n, len)) => Some((n.parse::<usize>().ok()?.checked_sub(1)?, len.parse().ok()?)),
        }
    };
    let (start, len1) = range(a)?;
    let (_, len2) = range(b)?;
    Some((start, len1, len2))
}

/// Undoes diff-match-patch's URI-style escaping: `%XX` bytes, UTF-8.
fn decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_string());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        assert_eq!(header("@@ -1,3 +1,4 @@"), Some((0, 3, 4)));
        assert_eq!(header("@@ -5 +5 @@"), Some((4, 1, 1)));
        assert_eq!(header("@@ -7,0 +8,2 @@"), Some((7, 0, 2)));
        assert_eq!(header("@@ -0 +1 @@"), None);
        assert_eq!(header("@@ -x,1 +1 @@"), None);
    }

    #[test]
    fn byte_offsets() {
        let s = "ab\u{e9}c\u{1f389}";
        let want = [0, 1, 2, 4, 5, 9];
        for (n, w) in want.iter().enumerate() {
            assert_eq!(byte_offset(s, n), Some(*w), "char {n}");
        }
        assert_eq!(byte_offset(s, 6), None);
        assert_eq!(byte_offset("abc", 3), Some(3));
        assert_eq!(byte_offset("abc", 4), None);
        assert_eq!(byte_offset("", 0), Some(0));
    }

    #[test]
    fn applies_only_exactly() {
        // "a\nb\n" → "a\nB\n"
        let p = "@@ -1,4 +1,4 @@\n a%0A\n-b\n+B\n %0A\n";
        assert_eq!(apply_strict("a\nb\n", p).as_deref(), Some("a\nB\n"));
        assert_eq!(apply_strict("a\nc\n", p), None);
        assert_eq!(apply_strict("xa\nb\n", p), None);
        assert_eq!(apply_strict("a\n", p), None);
    }

    proptest::proptest! {
        /// Every patch diff-match-patch makes applies strictly and exactly.
        #[test]
        fn made_patches_apply_strictly(
            old in "(\\PC|\n|🎉|日|e\u{301}){0,300}",
            edits in proptest::collection::vec((0usize..400, 0usize..20, "(\\PC|\n|👩‍👩‍👧){0,12}"), 0..6),
        ) {
            let mut new: Vec<char> = old.chars().collect();
            for (at, del, ins) in edits {
                let at = at.min(new.len());
                let end = (at + del).min(new.len());
                new.splice(at..end, ins.chars());
            }
            let new: String = new.into_iter().collect();
            let patch = crate::replay::make_patch(&old, &new);
            proptest::prop_assert!(patch.is_some(), "no patch for {old:?} -> {new:?}");
            proptest::prop_assert_eq!(apply_strict(&old, &patch.unwrap()), Some(new));
        }
    }

    /// docs/PROTOCOL.md §8.4: the patch texts of merge version 1.
    #[test]
    fn golden_vectors() {
        for (base, new, text) in [
            ("a\nb\n", "a\nB\n", "@@ -1,4 +1,4 @@\n a%0A\n-b\n+B\n %0A\n"),
            ("a\n", "a\nb\n", "@@ -1,2 +1,4 @@\n a%0A\n+b%0A\n"),
            (
                "caf\u{e9}\n",
                "caf\u{e9}s\n",
                "@@ -1,5 +1,6 @@\n caf%C3%A9\n+s\n %0A\n",
            ),
        ] {
            assert_eq!(
                crate::replay::make_patch(base, new).as_deref(),
                Some(text),
                "{base:?} -> {new:?}"
            );
            assert_eq!(apply_strict(base, text).as_deref(), Some(new));
        }
    }

    #[test]
    fn rejects_malformed() {
        for p in [
            "@@ -1 +1 @@\n-a\n+%FF\n",
            "@@ -1,2 +1,1 @@\n-a\n",
            "garbage",
            "@@ -1 +1 @@\n?a\n",
            "@@ -1 +1 @@\n-%4\n",
        ] {
            assert_eq!(apply_strict("a", p), None, "{p:?}");
        }
    }
}
