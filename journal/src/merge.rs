//! The three-way text merge of merge version 1 (DESIGN §4).
//!
//! Inputs are the base an op was made against, the file's current text
//! (everything applied before the op in total order) and theirs (the op's
//! result). The merge works on lines first:
//!
//! - Each side's changes against the base are hunks (Myers diff, no time
//!   limit). Hunks of the two sides whose base ranges do not overlap merge
//!   cleanly, even when adjacent: only a shared base token, or an insertion
//!   strictly inside the other side's range, makes them overlap.
//! - Overlapping hunks that produce the same text collapse to one.
//! - Line insertions at the same point keep both: lines common to both
//!   once, the others current's first, then theirs' (theirs sorts later).
//! - Where both sides changed the same lines, each in as many lines, the
//!   lines are merged again word by word (UAX #29 word segments, each CJK
//!   character a word of its own) under the same rules; there, different
//!   insertions at one point are an overlap.
//! - Anything else that overlaps keeps current's text for the whole group
//!   of lines and is reported as a conflict; no conflict markers are ever
//!   written.
//!
//! A missing final newline is treated as a flag merged on its own, so
//! lines appended to a file without one still merge as lines. Line endings
//! are never rewritten: every token carries its own.

use std::ops::Range;

use similar::{Algorithm, DiffTag, capture_diff_slices};
use unicode_segmentation::UnicodeSegmentation;

/// The outcome of [`merge`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    pub text: String,
    /// Regions both sides changed differently, where current's text was
    /// kept. Empty for a clean merge.
    pub conflicts: Vec<Overlap>,
}

/// One real overlap: the region's text in the base, current and theirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlap {
    pub base: String,
    pub current: String,
    pub theirs: String,
}

impl Merged {
    pub fn is_clean(&self) -> bool {
        self.conflicts.is_empty()
    }
}

/// Merges `theirs` into `current`, both descended from `base`.
pub fn merge(base: &str, current: &str, theirs: &str) -> Merged {
    if current == theirs || theirs == base {
        return clean(current.to_string());
    }
    if current == base {
        return clean(theirs.to_string());
    }
    // The final newline, merged as a flag: then every input ends with one.
    let ends = |s: &str| s.is_empty() || s.ends_with('\n');
    let (b, c, t) = (ends(base), ends(current), ends(theirs));
    let final_newline = if c != b { c } else { t };
    let with_nl = |s: &str, has: bool| {
        if has { s.to_string() } else { format!("{s}\n") }
    };
    let (base, current, theirs) = (with_nl(base, b), with_nl(current, c), with_nl(theirs, t));
    let mut out = Merged {
        text: String::with_capacity(current.len().max(theirs.len())),
        conflicts: Vec::new(),
    };
    merge_tokens(
        &lines(&base),
        &lines(&current),
        &lines(&theirs),
        Level::Lines,
        &mut out,
    );
    if !final_newline && out.text.ends_with('\n') {
        out.text.pop();
    }
    out
}

/// The line union of two texts that share no base: lines common to both
/// once, in order, and each differing run from `first` before the one from
/// `second`. Used for concurrent creates of one path.
pub fn union(first: &str, second: &str) -> String {
    let ends = |s: &str| s.is_empty() || s.ends_with('\n');
    let final_newline = ends(first) || ends(second);
    let with_nl = |s: &str| {
        if ends(s) {
            s.to_string()
        } else {
            format!("{s}\n")
        }
    };
    let (a, b) = (with_nl(first), with_nl(second));
    let mut text = union_tokens(&lines(&a), &lines(&b));
    if !final_newline && text.ends_with('\n') {
        text.pop();
    }
    text
}

fn clean(text: String) -> Merged {
    Merged {
        text,
        conflicts: Vec::new(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Lines,
    Words,
}

/// Lines with their endings (`\n` or `\r\n`).
fn lines(s: &str) -> Vec<&str> {
    s.split_inclusive('\n').collect()
}

/// UAX #29 word segments (spaces and punctuation are segments too), with
/// every CJK character split out as a word of its own.
fn words(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for seg in s.split_word_bounds() {
        if !seg.chars().any(is_cjk) {
            out.push(seg);
            continue;
        }
        let mut from = 0;
        for (i, ch) in seg.char_indices() {
            if is_cjk(ch) {
                if from < i {
                    out.push(&seg[from..i]);
                }
                out.push(&seg[i..i + ch.len_utf8()]);
                from = i + ch.len_utf8();
            }
        }
        if from < seg.len() {
            out.push(&seg[from..]);
        }
    }
    out
}

/// Han ideographs, kana and CJK symbols: scripts written without spaces,
/// where one character is the unit of a disjoint edit.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3000..=0x303F      // CJK symbols and punctuation
        | 0x3040..=0x30FF    // Hiragana, Katakana
        | 0x31F0..=0x31FF    // Katakana phonetic extensions
        | 0x3400..=0x4DBF    // CJK unified ideographs extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xF900..=0xFAFF    // CJK compatibility ideographs
        | 0xFF65..=0xFF9F    // halfwidth Katakana
        | 0x20000..=0x3134F  // CJK unified ideographs extensions B–G
    )
}

/// One side's change: base tokens `base` become the side's tokens `side`.
#[derive(Clone, Debug)]
struct Hunk {
    base: Range<usize>,
    side: Range<usize>,
}

fn hunks(base: &[&str], side: &[&str]) -> Vec<Hunk> {
    let mut out: Vec<Hunk> = Vec::new();
    let mut open: Option<Hunk> = None;
    for op in capture_diff_slices(Algorithm::Myers, base, side) {
        let (tag, b, s) = op.as_tag_tuple();
        if tag == DiffTag::Equal {
            out.extend(open.take());
            continue;
        }
        open = Some(match open.take() {
            Some(h) => Hunk {
                base: h.base.start..b.end,
                side: h.side.start..s.end,
            },
            None => Hunk { base: b, side: s },
        });
    }
    out.extend(open);
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Current,
    Theirs,
}

/// Hunks of both sides that overlap, transitively; `range` is the union of
/// their base ranges.
struct Group {
    range: Range<usize>,
    members: Vec<(Side, Hunk)>,
}

impl Group {
    /// Whether `h` (starting at or after this group) overlaps it: it shares
    /// a base token, or inserts strictly inside, or both insert at one point.
    fn touches(&self, h: &Hunk) -> bool {
        if self.range.is_empty() {
            h.base.is_empty() && h.base.start == self.range.start
        } else {
            h.base.start < self.range.end
        }
    }

    fn has(&self, side: Side) -> bool {
        self.members.iter().any(|(s, _)| *s == side)
    }

    /// The group's region as `side` has it: base tokens, with that side's
    /// hunks in the group applied.
    fn region<'a>(&self, side: Side, base: &[&'a str], tokens: &[&'a str]) -> Vec<&'a str> {
        let mut out = Vec::new();
        let mut at = self.range.start;
        for (_, h) in self.members.iter().filter(|(s, _)| *s == side) {
            out.extend_from_slice(&base[at..h.base.start]);
            out.extend_from_slice(&tokens[h.side.clone()]);
            at = h.base.end;
        }
        out.extend_from_slice(&base[at..self.range.end]);
        out
    }
}

fn groups(current: Vec<Hunk>, theirs: Vec<Hunk>) -> Vec<Group> {
    let mut all: Vec<(Side, Hunk)> = current
        .into_iter()
        .map(|h| (Side::Current, h))
        .chain(theirs.into_iter().map(|h| (Side::Theirs, h)))
        .collect();
    // By start; at one start an insertion comes first (it goes before a
    // change starting there), and current before theirs.
    all.sort_by_key(|(side, h)| {
        (
            h.base.start,
            !h.base.is_empty(),
            h.base.end,
            *side == Side::Theirs,
        )
    });
    let mut out: Vec<Group> = Vec::new();
    for (side, h) in all {
        match out.last_mut() {
            Some(g) if g.touches(&h) => {
                g.range.end = g.range.end.max(h.base.end);
                g.members.push((side, h));
            }
            _ => out.push(Group {
                range: h.base.clone(),
                members: vec![(side, h)],
            }),
        }
    }
    out
}

fn merge_tokens(base: &[&str], current: &[&str], theirs: &[&str], level: Level, out: &mut Merged) {
    let mut at = 0;
    for g in groups(hunks(base, current), hunks(base, theirs)) {
        for t in &base[at..g.range.start] {
            out.text.push_str(t);
        }
        at = g.range.end;
        let cur = g.region(Side::Current, base, current);
        if !g.has(Side::Theirs) {
            cur.iter().for_each(|t| out.text.push_str(t));
            continue;
        }
        let their = g.region(Side::Theirs, base, theirs);
        if !g.has(Side::Current) || cur == their {
            their.iter().for_each(|t| out.text.push_str(t));
            continue;
        }
        if g.range.is_empty() && level == Level::Lines {
            // Both inserted lines at one point: keep both.
            out.text.push_str(&union_tokens(&cur, &their));
            continue;
        }
        let region = &base[g.range.clone()];
        // Lines changed on both sides in parallel (as many lines in each)
        // are merged word by word, line by line; the group is taken only
        // if every line merges cleanly.
        if level == Level::Lines && region.len() == cur.len() && region.len() == their.len() {
            let mut words_merged = Merged {
                text: String::new(),
                conflicts: Vec::new(),
            };
            for ((b, c), t) in region.iter().zip(&cur).zip(&their) {
                merge_tokens(
                    &words(b),
                    &words(c),
                    &words(t),
                    Level::Words,
                    &mut words_merged,
                );
            }
            if words_merged.is_clean() {
                out.text.push_str(&words_merged.text);
                continue;
            }
        }
        // A real overlap: the region keeps current's text.
        let current = cur.concat();
        out.text.push_str(&current);
        out.conflicts.push(Overlap {
            base: region.concat(),
            current,
            theirs: their.concat(),
        });
    }
    for t in &base[at..] {
        out.text.push_str(t);
    }
}

/// Tokens common to both once, in order; each differing run of `a` before
/// the one of `b`.
fn union_tokens(a: &[&str], b: &[&str]) -> String {
    let mut out = String::new();
    for op in capture_diff_slices(Algorithm::Myers, a, b) {
        let (tag, ra, rb) = op.as_tag_tuple();
        out.extend(a[ra].iter().copied());
        if tag != DiffTag::Equal {
            out.extend(b[rb].iter().copied());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The merge table: (case, base, current, theirs, merged, clean).
    /// docs/PROTOCOL.md lists the same cases as golden vectors.
    const TABLE: &[(&str, &str, &str, &str, &str, bool)] = &[
        (
            "disjoint lines",
            "a\nb\nc\nd\ne\n",
            "A\nb\nc\nd\ne\n",
            "a\nb\nc\nd\nE\n",
            "A\nb\nc\nd\nE\n",
            true,
        ),
        (
            "adjacent lines",
            "a\nb\nc\n",
            "a\nB\nc\n",
            "a\nb\nC\n",
            "a\nB\nC\n",
            true,
        ),
        (
            "same line, disjoint words",
            "the quick brown fox\n",
            "the slow brown fox\n",
            "the quick brown cat\n",
            "the slow brown cat\n",
            true,
        ),
        (
            "same words changed differently",
            "meet at noon\n",
            "meet at one\n",
            "meet at two\n",
            "meet at one\n",
            false,
        ),
        (
            "identical changes collapse",
            "a\nb\n",
            "a\nB\n",
            "a\nB\n",
            "a\nB\n",
            true,
        ),
        (
            "both append to the same note",
            "# Today\n- [ ] milk\n",
            "# Today\n- [ ] milk\n- [ ] eggs\n",
            "# Today\n- [ ] milk\n- [ ] bread\n",
            "# Today\n- [ ] milk\n- [ ] eggs\n- [ ] bread\n",
            true,
        ),
        (
            "both append, one line in common",
            "log\n",
            "log\nsame\nmine\n",
            "log\nsame\ntheirs\n",
            "log\nsame\nmine\ntheirs\n",
            true,
        ),
        (
            "append without a final newline",
            "a",
            "a\nb",
            "a\nc",
            "a\nb\nc",
            true,
        ),
        (
            "one side adds a final newline",
            "a\nb",
            "a\nb\n",
            "A\nb",
            "A\nb\n",
            true,
        ),
        ("empty base, both write", "", "x\n", "y\n", "x\ny\n", true),
        (
            "one side empties the file, other edits",
            "a\nb\n",
            "",
            "a\nB\n",
            "",
            false,
        ),
        (
            "CRLF kept",
            "a\r\nb\r\nc\r\n",
            "A\r\nb\r\nc\r\n",
            "a\r\nb\r\nC\r\n",
            "A\r\nb\r\nC\r\n",
            true,
        ),
        (
            "CRLF, same line, disjoint words",
            "one two three\r\n",
            "ONE two three\r\n",
            "one two THREE\r\n",
            "ONE two THREE\r\n",
            true,
        ),
        (
            "unicode and emoji words",
            "café 🎉 naïve\n",
            "café 🎂 naïve\n",
            "café 🎉 naïf\n",
            "café 🎂 naïf\n",
            true,
        ),
        (
            "CJK characters are words",
            "今日は晴れです\n",
            "今日は雨です\n",
            "今日は晴れでした\n",
            "今日は雨でした\n",
            true,
        ),
        (
            "different words inserted at one point overlap",
            "Tasks:\n",
            "Tasks: milk\n",
            "Tasks: eggs\n",
            "Tasks: milk\n",
            false,
        ),
        (
            "insertion inside a changed range refines to words",
            "alpha beta gamma\n",
            "alpha BETA gamma\n",
            "alpha beta gamma delta\n",
            "alpha BETA gamma delta\n",
            true,
        ),
        (
            "delete vs edit of one line",
            "keep\ndrop me\nkeep\n",
            "keep\nkeep\n",
            "keep\ndrop me now\nkeep\n",
            "keep\nkeep\n",
            false,
        ),
        (
            "two daily notes from one template",
            "# {{date}}\n## Tasks\n\n## Notes\n",
            "# {{date}}\n## Tasks\n- call mum\n\n## Notes\n",
            "# {{date}}\n## Tasks\n\n## Notes\nrainy day\n",
            "# {{date}}\n## Tasks\n- call mum\n\n## Notes\nrainy day\n",
            true,
        ),
        (
            "both rewrite one line sharing a word",
            "# note\nbase line\n",
            "# note\nline 1 by a\n",
            "# note\nline 7 by b\n",
            "# note\nline 1 by a\n",
            false,
        ),
        (
            "one line rewritten into two against one rewritten",
            "# note\nline 7 by b\nline 8\n",
            "# note\nline 1 by a\nline 2 by a\nline 8\n",
            "# note\nline 11 by b\nline 8\n",
            "# note\nline 1 by a\nline 2 by a\nline 8\n",
            false,
        ),
    ];

    #[test]
    fn merge_table() {
        for (case, base, current, theirs, want, clean) in TABLE {
            let got = merge(base, current, theirs);
            assert_eq!(got.text, *want, "{case}: text");
            assert_eq!(
                got.is_clean(),
                *clean,
                "{case}: clean ({:?})",
                got.conflicts
            );
        }
    }

    /// The union table (concurrent creates at one path): (case, first in
    /// total order, second, union).
    const UNION_TABLE: &[(&str, &str, &str, &str)] = &[
        (
            "two daily notes from one template",
            "# Thursday\n## Tasks\n- [ ] water the plants\n## Notes\n",
            "# Thursday\n## Tasks\n- [ ] call the bank\n## Notes\nrainy\n",
            "# Thursday\n## Tasks\n- [ ] water the plants\n- [ ] call the bank\n## Notes\nrainy\n",
        ),
        ("identical texts", "- milk\n", "- milk\n", "- milk\n"),
        ("one empty", "", "x\n", "x\n"),
        (
            "no final newline on one side",
            "a\nb",
            "a\nc\n",
            "a\nb\nc\n",
        ),
        ("neither has a final newline", "a", "b", "a\nb"),
        ("CRLF kept", "a\r\nb\r\n", "a\r\nc\r\n", "a\r\nb\r\nc\r\n"),
        (
            "unicode lines",
            "# 日記\n🎉 party\n",
            "# 日記\n☔ rain\n",
            "# 日記\n🎉 party\n☔ rain\n",
        ),
    ];

    #[test]
    fn union_table() {
        for (case, first, second, want) in UNION_TABLE {
            assert_eq!(union(first, second), *want, "{case}");
        }
    }

    /// The golden vectors in docs/PROTOCOL.md §8.5 are the tables above,
    /// and each gives its documented result.
    #[test]
    fn protocol_md_vectors_hold() {
        let doc = include_str!("../../docs/PROTOCOL.md");
        let rows: Vec<Vec<String>> = doc
            .lines()
            .filter(|l| l.starts_with("| M"))
            .map(|l| {
                l.split(" | ")
                    .map(|c| c.trim_matches(['|', ' ', '`']).to_string())
                    .collect()
            })
            .collect();
        assert_eq!(rows.len(), TABLE.len(), "one documented row per case");
        for (row, (case, ..)) in rows.iter().zip(TABLE) {
            let [_, name, base, current, theirs, merged, outcome] = &row[..] else {
                panic!("malformed row {row:?}");
            };
            assert_eq!(name, case);
            let got = merge(&literal(base), &literal(current), &literal(theirs));
            assert_eq!(got.text, literal(merged), "{case}");
            assert_eq!(got.is_clean(), outcome == "clean", "{case}");
        }
        let rows: Vec<Vec<String>> = doc
            .lines()
            .filter(|l| l.starts_with("| U"))
            .map(|l| {
                l.split(" | ")
                    .map(|c| c.trim_matches(['|', ' ', '`']).to_string())
                    .collect()
            })
            .collect();
        assert_eq!(rows.len(), UNION_TABLE.len(), "one documented row per case");
        for (row, (case, ..)) in rows.iter().zip(UNION_TABLE) {
            let [_, name, first, second, want] = &row[..] else {
                panic!("malformed row {row:?}");
            };
            assert_eq!(name, case);
            assert_eq!(
                union(&literal(first), &literal(second)),
                literal(want),
                "{case}"
            );
        }
    }

    /// A Rust string literal as the docs write them: `\n`, `\r`, `\"`,
    /// `\\` and `\u{…}` escapes.
    fn literal(s: &str) -> String {
        let s = s
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .expect("quoted");
        let mut out = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('u') => {
                    let hex: String = chars.by_ref().skip(1).take_while(|c| *c != '}').collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap());
                }
                Some(other) => out.push(other),
                None => panic!("dangling escape in {s:?}"),
            }
        }
        out
    }

    #[test]
    fn a_real_overlap_reports_its_three_texts() {
        let got = merge("meet at noon\n", "meet at one\n", "meet at two\n");
        assert_eq!(
            got.conflicts,
            vec![Overlap {
                base: "meet at noon\n".into(),
                current: "meet at one\n".into(),
                theirs: "meet at two\n".into(),
            }]
        );
    }

    #[test]
    fn union_keeps_common_lines_once() {
        assert_eq!(
            union("# Day\n- a\n- common\n", "# Day\n- b\n- common\n"),
            "# Day\n- a\n- b\n- common\n"
        );
        assert_eq!(union("x", "x"), "x");
        assert_eq!(union("", "y\n"), "y\n");
    }

    #[test]
    fn cjk_is_split_per_character_and_words_stay_whole() {
        assert_eq!(words("日記 hello"), vec!["日", "記", " ", "hello"]);
        assert_eq!(words("カタカナ"), vec!["カ", "タ", "カ", "ナ"]);
        assert_eq!(words("don't stop\r\n"), vec!["don't", " ", "stop", "\r\n"]);
    }

    /// Base lines are unique, and each side's new lines carry a marker
    /// found nowhere else, so each side's diff is exactly its edit.
    fn base_lines(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("line {i} of the base\n")).collect()
    }

    fn side_lines(tag: char, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("<{tag}{i}> new text\n")).collect()
    }

    fn splice(base: &[String], at: Range<usize>, new: &[String]) -> String {
        let mut v = base.to_vec();
        v.splice(at, new.iter().cloned());
        v.concat()
    }

    proptest::proptest! {
        /// Edits of line ranges that do not overlap (adjacent ones included)
        /// merge cleanly, into exactly both edits.
        #[test]
        fn disjoint_line_edits_merge_cleanly_into_both(
            n in 0usize..30,
            cuts in proptest::collection::vec(0usize..31, 4),
            new_a in 0usize..4,
            new_b in 0usize..4,
            swap in proptest::bool::ANY,
        ) {
            let mut c: Vec<usize> = cuts.iter().map(|x| x % (n + 1)).collect();
            c.sort();
            let (first, second) = (c[0]..c[1], c[2]..c[3]);
            let base = base_lines(n);
            let (la, lb) = (side_lines('a', new_a), side_lines('b', new_b));
            // A no-op edit is not an edit.
            proptest::prop_assume!(!(first.is_empty() && la.is_empty()));
            proptest::prop_assume!(!(second.is_empty() && lb.is_empty()));
            let (a, b) = (splice(&base, first.clone(), &la), splice(&base, second.clone(), &lb));
            let (current, theirs) = if swap { (b, a) } else { (a, b) };
            // Both edits; two insertions at one point put current's first.
            let mut both = base.clone();
            if first.is_empty() && first == second {
                let (x, y) = if swap { (&lb, &la) } else { (&la, &lb) };
                both.splice(first, x.iter().chain(y).cloned());
            } else {
                both.splice(second, lb.iter().cloned());
                both.splice(first, la.iter().cloned());
            }
            let got = merge(&base.concat(), &current, &theirs);
            proptest::prop_assert!(got.is_clean(), "{:?}", got.conflicts);
            proptest::prop_assert_eq!(got.text, both.concat());
        }

        /// Whatever the two sides do, a line only one side added appears at
        /// most once in the merge.
        #[test]
        fn no_line_added_by_one_side_is_duplicated(
            n in 0usize..20,
            cuts in proptest::collection::vec(0usize..21, 4),
            new_a in 0usize..5,
            new_b in 0usize..5,
        ) {
            let c: Vec<usize> = cuts.iter().map(|x| x % (n + 1)).collect();
            let a_range = c[0].min(c[1])..c[0].max(c[1]);
            let b_range = c[2].min(c[3])..c[2].max(c[3]);
            let base = base_lines(n);
            let current = splice(&base, a_range, &side_lines('a', new_a));
            let theirs = splice(&base, b_range, &side_lines('b', new_b));
            let got = merge(&base.concat(), &current, &theirs);
            for tag in ["<a", "<b"] {
                for i in 0..5 {
                    let marker = format!("{tag}{i}>");
                    proptest::prop_assert!(
                        got.text.matches(&marker).count() <= 1,
                        "{} twice in {:?}", marker, got.text
                    );
                }
            }
        }
    }
}
