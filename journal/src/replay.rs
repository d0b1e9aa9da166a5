//! One replay step: the pure function that applies an admitted op to the
//! vault state. Replay reads no clock, no disk and no arrival order; given
//! the same ops in the same total order it produces the same state.

use std::collections::{BTreeMap, HashMap};

use diff_match_patch_rs::{Compat, DiffMatchPatch, Ops};

use crate::control::{Control, MemberAction};
use crate::error::{Error, Result};
use crate::id::{ContentHash, DeviceId, FileId, OpId};
use crate::limits::{PATCH_EXACT_BYTES_MAX, PATCH_MAKE_WORK_MAX, PATCH_NEW_LINES_PCT_MAX};
use crate::merge;
use crate::order::OrderKey;
use crate::path;
use crate::payload::{Action, Body, MERGE_VERSION, Payload};
use crate::vv::VersionVector;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::PATCH_DIFF_TIMEOUT_MS;

    #[test]
    fn hostile_patches_are_bad_not_panics() {
        let h = ContentHash::of(b"x");
        for p in [
            "@@ -0 +1 @@\n+x\n",
            "@@ -1 +1 @@\n-a\n+%FF\n",
            "garbage",
            "@@ -1,1 +1,1 @@\n",
        ] {
            assert_eq!(apply_patch_strict("a", p, &h), None, "{p:?}");
        }
    }

    #[test]
    fn patches_round_trip_unicode() {
        let (a, b) = ("# 日記\nToday 🎉\n", "# 日記\nToday 👩‍👩‍👧‍👦 and more\n");
        let p = make_patch(a, b).unwrap();
        assert_eq!(
            apply_patch_strict(a, &p, &ContentHash::of(b.as_bytes())).as_deref(),
            Some(b)
        );
    }

    /// A note of `n` lines, `line(i)` each.
    fn note(n: usize, line: impl Fn(usize) -> String) -> String {
        (0..n).map(|i| format!("{}\n", line(i))).collect()
    }

    fn applies(old: &str, patch: &str, new: &str) -> bool {
        apply_patch_strict(old, patch, &ContentHash::of(new.as_bytes())).as_deref() == Some(new)
    }

    /// Regression: a rewrite of a 20,000-line note took 71 s in the
    /// char-level diff; it is a Replace, found without a diff.
    #[test]
    fn a_rewrite_of_a_large_note_is_left_to_a_replace() {
        let old = note(20_000, |i| format!("old line {i}"));
        let new = note(20_000, |i| format!("new line {i}"));
        assert_eq!(make_patch(&old, &new), None);
        assert_eq!(make_patch_within(&old, &new, Some(0)), None);
    }

    #[test]
    fn one_line_changed_in_a_large_note_is_a_small_patch() {
        let old = note(20_000, |i| format!("old line {i}"));
        let new = note(20_000, |i| {
            if i == 12_345 {
                "a line the user rewrote".into()
            } else {
                format!("old line {i}")
            }
        });
        // Also with a timeout already spent: only the diff's coarseness
        // could change, and one changed line is found before any bisection.
        for timeout in [None, Some(PATCH_DIFF_TIMEOUT_MS), Some(0)] {
            let p = make_patch_within(&old, &new, timeout).expect("a patch");
            assert!(p.len() < 200, "{timeout:?}: {} bytes", p.len());
            assert!(applies(&old, &p, &new), "{timeout:?}");
        }
    }

    /// `patch_make` copies the text once per diff: a save that ticks every
    /// fifth box of a 20,000-line list would take 7 s there, and its patch
    /// would not be smaller than the text anyway.
    #[test]
    fn many_scattered_edits_in_a_large_note_are_left_to_a_replace() {
        let old = note(20_000, |i| format!("- [ ] task number {i}"));
        let ticked = |every: usize| {
            note(20_000, |i| {
                let mark = if i % every == 0 { 'x' } else { ' ' };
                format!("- [{mark}] task number {i}")
            })
        };
        assert_eq!(make_patch(&old, &ticked(5)), None);
        let few = ticked(1000);
        let p = make_patch(&old, &few).expect("20 edits make a patch");
        assert!(applies(&old, &p, &few));
    }

    /// The timeout is a backstop for what the checks let through, such as
    /// a block pasted over part of a large note: once it runs out, the
    /// rest of the diff is coarse, and the patch still exact.
    #[test]
    fn a_diff_out_of_time_still_makes_an_exact_patch() {
        let old = note(20_000, |i| format!("old line {i}"));
        let new = note(20_000, |i| {
            if (8_000..14_000).contains(&i) {
                format!("pasted text {i}")
            } else {
                format!("old line {i}")
            }
        });
        assert!(new_lines_pct(&old, &new) <= PATCH_NEW_LINES_PCT_MAX);
        let p = make_patch_within(&old, &new, Some(0)).expect("a patch");
        assert!(applies(&old, &p, &new));
    }

    /// Texts up to `PATCH_EXACT_BYTES_MAX` together are diffed exactly,
    /// whatever timeout the caller gives: their patches are the ones
    /// PROTOCOL.md §8.3 specifies, on every machine.
    #[test]
    fn small_texts_ignore_the_timeout() {
        let old = note(300, |i| format!("old line {i}"));
        let new = note(300, |i| format!("new line {i}"));
        assert!(old.len() + new.len() <= PATCH_EXACT_BYTES_MAX);
        let exact = make_patch(&old, &new).expect("a patch");
        assert_eq!(make_patch_within(&old, &new, Some(0)), Some(exact));
    }

    #[test]
    fn new_lines_pct_counts_each_old_line_once() {
        assert_eq!(new_lines_pct("a\n", ""), 0);
        assert_eq!(new_lines_pct("", "a\n"), 100);
        assert_eq!(new_lines_pct("a\nb\n", "b\na\n"), 0);
        assert_eq!(new_lines_pct("a\n", "a\na\n"), 50);
        assert_eq!(new_lines_pct("x\n", "x\nyyyyyy\n"), 77);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub enum FileKind {
    Text,
    Blob,
}

#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct FileState {
    pub path: String,
    pub hash: ContentHash,
    pub kind: FileKind,
    pub size: u64,
    pub mtime_ms: i64,
    pub exists: bool,
    /// The last op that changed this file.
    pub last_op: OpId,
    /// Open conflicts, oldest first, until a Resolve names their op.
    pub conflicts: Vec<Conflict>,
    /// The last Rename that took effect on this file, so a concurrent one
    /// is recognised as a race.
    pub renamed_by: Option<OpId>,
}

/// What a conflict is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub enum ConflictKind {
    /// A text merge whose sides overlapped: the file kept current's text.
    Overlap,
    /// Concurrent replaces of a binary file: the later op's bytes won.
    Binary,
    /// A delete that had not seen every change to the file: the file
    /// stays (DESIGN §4). `op` is the delete.
    EditedAfterDelete,
    /// A concurrent Create at this file's path: `op` is that Create, whose
    /// file became an alias of this one, and the text is the union of both
    /// (base is the empty text).
    CreatedTwice,
    /// Two concurrent Resolves chose different content: the file kept the
    /// one earlier in total order (current); `op` is the other.
    Resolves,
    /// Concurrent renames: the later in total order named the file; `op`
    /// is the earlier one, whose path lost.
    Renames,
    /// An op whose base is not what its causal past gives this file: it
    /// had no effect (DESIGN §4).
    BadBase,
}

impl ConflictKind {
    /// The name used by the CLI and the JSON output.
    pub fn name(self) -> &'static str {
        match self {
            ConflictKind::Overlap => "overlap",
            ConflictKind::Binary => "binary",
            ConflictKind::EditedAfterDelete => "edited_after_delete",
            ConflictKind::CreatedTwice => "created_twice",
            ConflictKind::Resolves => "concurrent_resolves",
            ConflictKind::Renames => "concurrent_renames",
            ConflictKind::BadBase => "bad_base",
        }
    }
}

/// A conflict recorded by replay (DESIGN §4). The versions stay readable
/// by hash.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Conflict {
    pub kind: ConflictKind,
    /// The op merged in (theirs), or the delete.
    pub op: OpId,
    pub base: ContentHash,
    /// The file's text just before the op.
    pub current: ContentHash,
    /// What the op alone would have made of the base.
    pub theirs: ContentHash,
}

/// The replayed state of a vault at some set of ops.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct VaultState {
    /// Every file ever created, deleted ones included (`exists == false`).
    pub files: BTreeMap<FileId, FileState>,
    /// Live files by exact (NFC) path.
    pub paths: BTreeMap<String, FileId>,
    /// Per author, the highest applied op (with `ops`, the applied set).
    /// Per author, the seq and id of each branch's highest applied op
    /// (one branch unless its chain forked).
    pub applied: BTreeMap<DeviceId, Vec<(u64, OpId)>>,
    /// The order key of the last applied op.
    pub last: Option<OrderKey>,
    pub ops: u64,
    pub merge_version: u32,
    pub ignore: Vec<String>,
    pub device_names: BTreeMap<DeviceId, String>,
    /// Open conflicts over all live files.
    pub open_conflicts: u64,
    /// Files created concurrently at a path another file held: alias →
    /// the file that kept the path. Ops on an alias apply to that file.
    pub aliases: BTreeMap<FileId, FileId>,
}

impl VaultState {
    pub fn applied_vv(&self) -> VersionVector {
        let mut vv = VersionVector::new();
        for (a, heads) in &self.applied {
            for (seq, head) in heads {
                vv.add_head(
                    *a,
                    crate::vv::Entry {
                        seq: *seq,
                        head: *head,
                    },
                );
            }
        }
        vv
    }

    pub fn live_files(&self) -> impl Iterator<Item = (&String, &FileId, &FileState)> {
        self.paths.iter().map(|(p, id)| (p, id, &self.files[id]))
    }

    /// The file ops naming `file` apply to: `file` itself, or the file it
    /// became an alias of.
    pub fn route(&self, file: FileId) -> FileId {
        self.aliases.get(&file).copied().unwrap_or(file)
    }

    pub fn file_at(&self, path: &str) -> Option<(FileId, &FileState)> {
        let id = self.paths.get(path)?;
        Some((*id, &self.files[id]))
    }

    /// Puts `file` at `wanted`, or at a deterministic conflict name if the
    /// path is taken by another live file.
    fn place(&mut self, file: FileId, wanted: &str, author: &DeviceId) -> String {
        let mut path = wanted.to_string();
        let mut n = 1;
        while self.paths.get(&path).is_some_and(|other| *other != file) {
            path = path::conflict_name(wanted, &author.short()[..6], n);
            n += 1;
        }
        self.paths.insert(path.clone(), file);
        path
    }
}

/// An op as replay sees it: its place in the order and its payload.
#[derive(Clone, Debug)]
pub struct ReplayOp {
    pub key: OrderKey,
    pub seq: u64,
    /// The author's previous op (zero for seq 1).
    pub prev: OpId,
    pub hlc: u64,
    /// Shared with the journal's payload memo.
    pub payload: std::sync::Arc<Payload>,
    /// A control op's cleartext fields; `None` for a content op.
    pub control: Option<Control>,
    /// Why the op has no effect whatever its payload, if it has none: a
    /// forked branch nothing vouches for, or a removed device (`forks`).
    pub barred: Option<crate::forks::Bar>,
}

/// Where replay gets and puts file contents, by hash.
pub trait Contents {
    /// `file`'s text with `hash`, as the replay has it just before op `at`
    /// (or at the end, for `None`). Implementations may rebuild it from the
    /// file's own ops if their cache misses.
    fn text(&mut self, at: Option<&OrderKey>, file: FileId, hash: ContentHash) -> Result<String>;
    /// Records `file`'s new content.
    fn put(&mut self, file: FileId, hash: ContentHash, body: &Body) -> Result<()>;

    /// The text of `base`, the version `op` was made against when it is not
    /// the file's current text: what the replay of the op's causal past
    /// makes of `file` (DESIGN §4), or `None` if that does not hash to
    /// `base`. Never a version found by hash alone, in memory or cached:
    /// the answer must be the same in every replay on every replica.
    fn base_text(
        &mut self,
        op: &ReplayOp,
        file: FileId,
        base: ContentHash,
    ) -> Result<Option<String>>;

    /// Notes that op `key`, which names another file, applies to `file`
    /// (a Create that became an alias of it, or an op on such an alias), so
    /// a rebuild of `file` from its own ops includes it.
    fn routed(&mut self, _key: &OrderKey, _file: FileId) -> Result<()> {
        Ok(())
    }

    /// Whether op `other` is in the causal past of `op`.
    fn in_past(&mut self, op: &ReplayOp, other: OpId) -> Result<bool>;

    /// Whether every content op on `file` that sorts before `op`, in the
    /// set being replayed, is in `op`'s causal past: a delete takes effect
    /// only then. An op on one of `aliases` (files that became aliases of
    /// `file` in this replay) is an op on `file`.
    fn saw_every_change(&mut self, op: &ReplayOp, file: FileId, aliases: &[FileId])
    -> Result<bool>;

    /// What Edit (or text Replace) `op` does to `file`, whose text is now
    /// `current`: see [`change_text`]. An implementation that recorded the
    /// outcome when the op was first replayed (time travel) may answer from
    /// that record.
    fn edit(
        &mut self,
        op: &ReplayOp,
        file: FileId,
        base: ContentHash,
        current: ContentHash,
        change: &TextChange<'_>,
    ) -> Result<EditOutcome> {
        change_text(self, op, file, base, current, change)
    }
}

/// The new text an op proposes for a file, against its base.
#[derive(Clone, Copy, Debug)]
pub enum TextChange<'a> {
    /// An Edit: a patch that must turn the base into `result` exactly.
    Patch { patch: &'a str, result: ContentHash },
    /// A text Replace: the whole new text.
    Text(&'a str),
}

/// What an Edit or text Replace did to its file's text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EditOutcome {
    /// The base was the current text: the file now has the op's result.
    Applied,
    /// The file had changed since the base: the op's change was merged into
    /// it (DESIGN §4); `clean` is false when the sides overlapped.
    Merged {
        hash: ContentHash,
        size: u64,
        clean: bool,
    },
    /// The patch does not turn its base into its result.
    BadPatch,
    /// The base is no version this file ever had.
    UnknownBase,
}

impl EditOutcome {
    const APPLIED: u8 = 1;
    const BAD_PATCH: u8 = 2;
    const MERGED: u8 = 3;
    const UNKNOWN_BASE: u8 = 4;

    /// The bytes stored after the effect byte of an op's effect record
    /// (docs/PROTOCOL.md §6): one tag byte, and for a merge the resulting
    /// hash, a clean flag and the size.
    pub fn to_record(self) -> Vec<u8> {
        match self {
            EditOutcome::Applied => vec![Self::APPLIED],
            EditOutcome::BadPatch => vec![Self::BAD_PATCH],
            EditOutcome::UnknownBase => vec![Self::UNKNOWN_BASE],
            EditOutcome::Merged { hash, size, clean } => {
                let mut b = vec![Self::MERGED];
                b.extend_from_slice(&hash.0);
                b.push(u8::from(clean));
                b.extend_from_slice(&size.to_le_bytes());
                b
            }
        }
    }

    /// Reads [`EditOutcome::to_record`] bytes; `None` for none recorded.
    pub fn from_record(b: &[u8]) -> Option<EditOutcome> {
        match *b.first()? {
            Self::APPLIED => Some(EditOutcome::Applied),
            Self::BAD_PATCH => Some(EditOutcome::BadPatch),
            Self::UNKNOWN_BASE => Some(EditOutcome::UnknownBase),
            Self::MERGED if b.len() >= 42 => Some(EditOutcome::Merged {
                hash: ContentHash(b[1..33].try_into().ok()?),
                clean: b[33] != 0,
                size: u64::from_le_bytes(b[34..42].try_into().ok()?),
            }),
            _ => None,
        }
    }

    /// How many bytes of a record [`EditOutcome::to_record`] wrote.
    pub fn record_len(b: &[u8]) -> usize {
        match b.first() {
            Some(&Self::MERGED) => 42,
            _ => 1,
        }
    }
}

/// The text rules of DESIGN §4 for an Edit or text Replace of `file`, whose
/// text is `current`: on an unchanged base the change applies as it is;
/// otherwise it is merged into the current text, with the base looked up
/// by hash among the file's versions.
pub fn change_text(
    contents: &mut (impl Contents + ?Sized),
    op: &ReplayOp,
    file: FileId,
    base: ContentHash,
    current: ContentHash,
    change: &TextChange<'_>,
) -> Result<EditOutcome> {
    // The base is a version of the file the op names, which may be an
    // alias of `file`. When it is the current text, it is found there
    // whatever the op names: an alias has no text of its own.
    let named = op.payload.file().unwrap_or(file);
    let base_text = if base == current {
        contents.text(Some(&op.key), file, current)?
    } else {
        match contents.base_text(op, named, base)? {
            Some(t) => t,
            None => return Ok(EditOutcome::UnknownBase),
        }
    };
    let theirs = match change {
        TextChange::Patch { patch, result } => {
            match apply_patch_strict(&base_text, patch, result) {
                Some(t) => t,
                None => return Ok(EditOutcome::BadPatch),
            }
        }
        TextChange::Text(t) => (*t).to_string(),
    };
    if base == current {
        let hash = ContentHash::of(theirs.as_bytes());
        contents.put(file, hash, &Body::Text(theirs))?;
        return Ok(EditOutcome::Applied);
    }
    let current_text = contents.text(Some(&op.key), file, current)?;
    let merged = merge::merge(&base_text, &current_text, &theirs);
    let clean = merged.is_clean();
    let hash = ContentHash::of(merged.text.as_bytes());
    let size = merged.text.len() as u64;
    contents.put(file, hash, &Body::Text(merged.text))?;
    Ok(EditOutcome::Merged { hash, size, clean })
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Created {
        file: FileId,
        path: String,
    },
    Modified {
        file: FileId,
        path: String,
    },
    Deleted {
        file: FileId,
        path: String,
    },
    Renamed {
        file: FileId,
        from: String,
        to: String,
    },
    Config,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    Applied(Vec<Change>),
    /// The op stays admitted and in history, but changes nothing.
    NoEffect(String),
}

/// Applies one op. `Err` only for a missing key, an unknown merge version
/// or a storage fault: anything about the op itself is an [`Effect`].
pub fn apply(state: &mut VaultState, op: &ReplayOp, contents: &mut dyn Contents) -> Result<Effect> {
    if let Some(last) = state.last {
        debug_assert!(op.key > last, "replay out of order");
    }
    let effect = if let Some(bar) = op.barred {
        Effect::NoEffect(bar.reason().into())
    } else {
        apply_action(state, op, contents)?
    };
    let author = op.key.author;
    // The op extends the branch ending at its prev, or starts one.
    let heads = state.applied.entry(author).or_default();
    heads.retain(|(_, id)| *id != op.prev);
    heads.push((op.seq, op.key.id));
    heads.sort();
    state.last = Some(op.key);
    state.ops += 1;
    Ok(effect)
}

fn no_effect(why: impl Into<String>) -> Result<Effect> {
    Ok(Effect::NoEffect(why.into()))
}

fn apply_action(
    state: &mut VaultState,
    op: &ReplayOp,
    contents: &mut dyn Contents,
) -> Result<Effect> {
    let id = op.key.id;
    let author = op.key.author;
    // A Member add carries a Member payload, every other control op a
    // Control payload, and no content op either.
    let fits = match (&op.control, &op.payload.action) {
        (None, Action::Member { .. } | Action::Control) => false,
        (None, _) => true,
        (Some(Control::Member(m)), Action::Member { .. }) => m.action == MemberAction::Add,
        (Some(Control::Member(m)), Action::Control) => m.action == MemberAction::Remove,
        (Some(Control::KeyRotate(_) | Control::KeyShare(_)), Action::Control) => true,
        (Some(_), _) => false,
    };
    if !fits {
        return no_effect("payload does not match the op's kind");
    }
    if let Some(named) = op.payload.file()
        && state.route(named) != named
    {
        contents.routed(&op.key, state.route(named))?;
    }
    match &op.payload.action {
        Action::Genesis { merge_version } => {
            check_merge_version(*merge_version)?;
            state.merge_version = *merge_version;
            Ok(Effect::Applied(vec![Change::Config]))
        }
        Action::VaultConfig {
            ignore,
            merge_version,
        } => {
            check_merge_version(*merge_version)?;
            state.merge_version = *merge_version;
            state.ignore = ignore.clone();
            Ok(Effect::Applied(vec![Change::Config]))
        }
        Action::DeviceInfo { name } => {
            state.device_names.insert(author, name.clone());
            Ok(Effect::Applied(vec![]))
        }
        Action::Member { name } => {
            let Some(Control::Member(m)) = &op.control else {
                return no_effect("member payload without member fields");
            };
            state.device_names.insert(m.device, name.clone());
            Ok(Effect::Applied(vec![]))
        }
        // Membership and keys are read from the control fields of the whole
        // set (`membership`, `forks::Disputes`), not from replay order.
        Action::Control => Ok(Effect::Applied(vec![])),
        Action::Create {
            path: raw,
            mtime_ms,
            body,
        } => {
            let Ok(wanted) = path::normalize(raw) else {
                return no_effect(format!("invalid path {raw:?}"));
            };
            let hash = body.hash();
            contents.put(id, hash, body)?;
            // A text file created at the path of a text file this op had not
            // seen: the same note made on two devices (DESIGN §4).
            if let (Some(&other), Body::Text(text)) = (state.paths.get(&wanted), body)
                && state.files[&other].kind == FileKind::Text
                && !contents.in_past(op, other)?
            {
                return create_alias(state, contents, op, other, text, *mtime_ms);
            }
            let path = state.place(id, &wanted, &author);
            state.files.insert(
                id,
                FileState {
                    path: path.clone(),
                    hash,
                    kind: kind_of(body),
                    size: body.size(),
                    mtime_ms: *mtime_ms,
                    exists: true,
                    last_op: id,
                    conflicts: Vec::new(),
                    renamed_by: None,
                },
            );
            Ok(Effect::Applied(vec![Change::Created { file: id, path }]))
        }
        Action::Edit {
            file,
            base,
            patch,
            result,
            result_size,
            mtime_ms,
        } => {
            let file = &state.route(*file);
            let Some((current, kind, deleted_by)) = live_or_revivable(state, contents, op, file)?
            else {
                return no_effect("edit of a file that does not exist");
            };
            if kind == FileKind::Blob {
                return no_effect("text edit of a binary file");
            }
            let change = TextChange::Patch {
                patch,
                result: *result,
            };
            let edit = TextEdit {
                file: *file,
                base: *base,
                current,
                theirs: (*result, *result_size),
                mtime_ms: *mtime_ms,
            };
            if let Some(delete) = deleted_by {
                // Edited after a delete that did not see this edit's base:
                // the file comes back, and the delete is a conflict.
                let effect = change_file(state, contents, op, &edit, &change)?;
                if matches!(effect, Effect::Applied(_)) {
                    revive(state, *file, &author);
                    open_conflict(
                        state,
                        *file,
                        ConflictKind::EditedAfterDelete,
                        delete,
                        *base,
                        current,
                        *result,
                    );
                }
                return Ok(effect);
            }
            change_file(state, contents, op, &edit, &change)
        }
        Action::Replace {
            file,
            base,
            body,
            mtime_ms,
        } => {
            let file = state.route(*file);
            let Some(found) = live_or_revivable(state, contents, op, &file)? else {
                return no_effect("replace of a file that does not exist");
            };
            replace(state, contents, op, file, found, *base, body, *mtime_ms)
        }
        Action::Resolve {
            file,
            sides,
            base,
            body,
            mtime_ms,
        } => {
            let file = state.route(*file);
            let Some(found) = live_or_revivable(state, contents, op, &file)? else {
                return no_effect("resolve of a file that does not exist");
            };
            // A Resolve closes only the conflicts whose ops it names.
            let f = state.files.get_mut(&file).expect("known file");
            let open = f.conflicts.len();
            f.conflicts.retain(|c| !sides.contains(&c.op));
            let closed = open - f.conflicts.len();
            state.open_conflicts -= closed as u64;
            let current = found.0;
            // A side it names that is no longer open was closed by a Resolve
            // it had not seen. If they chose differently, the file keeps the
            // first choice and the conflict is open again, between the two.
            if closed < sides.len() && body.hash() != current {
                open_conflict(
                    state,
                    file,
                    ConflictKind::Resolves,
                    id,
                    *base,
                    current,
                    body.hash(),
                );
                return Ok(modified(state, file));
            }
            replace(state, contents, op, file, found, *base, body, *mtime_ms)
        }
        Action::Delete {
            file,
            base,
            mtime_ms,
        } => {
            let file = &state.route(*file);
            let Some(f) = live(state, file) else {
                return no_effect("delete of a file that does not exist");
            };
            let current = f.hash;
            let aliases: Vec<FileId> = state
                .aliases
                .iter()
                .filter(|(_, to)| *to == file)
                .map(|(from, _)| *from)
                .collect();
            if !contents.saw_every_change(op, *file, &aliases)? {
                // The file changed in ways this delete did not see: it stays.
                open_conflict(
                    state,
                    *file,
                    ConflictKind::EditedAfterDelete,
                    id,
                    *base,
                    current,
                    current,
                );
                return Ok(modified(state, *file));
            }
            if current != *base {
                open_conflict(
                    state,
                    *file,
                    ConflictKind::BadBase,
                    id,
                    *base,
                    current,
                    current,
                );
                return no_effect("bad base: not the file's content in the delete's causal past");
            }
            let f = state.files.get_mut(file).expect("live");
            // A deleted file's conflicts close with it; its versions stay in
            // history.
            state.open_conflicts -= f.conflicts.len() as u64;
            f.conflicts.clear();
            f.exists = false;
            f.mtime_ms = *mtime_ms;
            f.last_op = id;
            let path = f.path.clone();
            state.paths.remove(&path);
            Ok(Effect::Applied(vec![Change::Deleted { file: *file, path }]))
        }
        Action::Rename {
            file, to, mtime_ms, ..
        } => {
            let file = &state.route(*file);
            let Some(f) = live(state, file) else {
                return no_effect("rename of a file that does not exist");
            };
            let Ok(wanted) = path::normalize(to) else {
                return no_effect(format!("invalid path {to:?}"));
            };
            let from = f.path.clone();
            if from == wanted {
                return no_effect("rename to the same path");
            }
            // A rename this op had not seen: the later in total order (this
            // one) names the file, and the other is recorded.
            if let Some(other) = f.renamed_by
                && !contents.in_past(op, other)?
            {
                let h = f.hash;
                open_conflict(state, *file, ConflictKind::Renames, other, h, h, h);
            }
            state.paths.remove(&from);
            let to = state.place(*file, &wanted, &author);
            let f = state.files.get_mut(file).expect("live");
            f.renamed_by = Some(id);
            f.path = to.clone();
            f.mtime_ms = *mtime_ms;
            f.last_op = id;
            Ok(Effect::Applied(vec![Change::Renamed {
                file: *file,
                from,
                to,
            }]))
        }
    }
}

fn check_merge_version(v: u32) -> Result<()> {
    if v > MERGE_VERSION {
        return Err(Error::UpgradeRequired(format!(
            "the vault uses merge version {v}; this build has {MERGE_VERSION}"
        )));
    }
    Ok(())
}

fn live<'a>(state: &'a VaultState, file: &FileId) -> Option<&'a FileState> {
    state.files.get(file).filter(|f| f.exists)
}

/// A live file, or a deleted one whose delete is not in `op`'s causal past
/// (with that delete's id): an edit made without seeing the delete.
fn live_or_revivable(
    state: &VaultState,
    contents: &mut dyn Contents,
    op: &ReplayOp,
    file: &FileId,
) -> Result<Option<(ContentHash, FileKind, Option<OpId>)>> {
    match state.files.get(file) {
        Some(f) if f.exists => Ok(Some((f.hash, f.kind, None))),
        Some(f) if !contents.in_past(op, f.last_op)? => Ok(Some((f.hash, f.kind, Some(f.last_op)))),
        _ => Ok(None),
    }
}

/// Brings a deleted file back at its path (or a conflict name if taken).
fn revive(state: &mut VaultState, file: FileId, author: &DeviceId) {
    let wanted = state.files[&file].path.clone();
    let path = state.place(file, &wanted, author);
    let f = state.files.get_mut(&file).expect("known file");
    f.exists = true;
    f.path = path;
}

/// A Create at `survivor`'s path that had not seen it: the new file becomes
/// an alias of `survivor`, whose text becomes the union of both, earlier
/// lines first; a conflict is recorded when the union added lines.
fn create_alias(
    state: &mut VaultState,
    contents: &mut dyn Contents,
    op: &ReplayOp,
    survivor: FileId,
    text: &str,
    mtime_ms: i64,
) -> Result<Effect> {
    let id = op.key.id;
    state.aliases.insert(id, survivor);
    contents.routed(&op.key, survivor)?;
    let current = state.files[&survivor].hash;
    let current_text = contents.text(Some(&op.key), survivor, current)?;
    let union = merge::union(&current_text, text);
    if union == current_text {
        // The same lines created twice: nothing to review.
        return Ok(Effect::Applied(vec![]));
    }
    open_conflict(
        state,
        survivor,
        ConflictKind::CreatedTwice,
        id,
        ContentHash::of(b""),
        current,
        ContentHash::of(text.as_bytes()),
    );
    let hash = ContentHash::of(union.as_bytes());
    let size = union.len() as u64;
    contents.put(survivor, hash, &Body::Text(union))?;
    set_text(state, survivor, hash, size, mtime_ms, id)
}

/// A Replace or Resolve of `file` (found as `(current, kind, deleted_by)`
/// by [`live_or_revivable`]) with `body`, made against `base`.
#[allow(clippy::too_many_arguments)]
fn replace(
    state: &mut VaultState,
    contents: &mut dyn Contents,
    op: &ReplayOp,
    file: FileId,
    (current, kind, deleted_by): (ContentHash, FileKind, Option<OpId>),
    base: ContentHash,
    body: &Body,
    mtime_ms: i64,
) -> Result<Effect> {
    let id = op.key.id;
    if let Some(delete) = deleted_by {
        // Replaced after a delete it had not seen: the file comes back with
        // this content, and the delete is a conflict.
        revive(state, file, &op.key.author);
        open_conflict(
            state,
            file,
            ConflictKind::EditedAfterDelete,
            delete,
            base,
            current,
            body.hash(),
        );
        return set_body(state, contents, file, body, mtime_ms, id);
    }
    match (kind, body) {
        (FileKind::Text, Body::Text(text)) if current != base => {
            // A text rewrite merges like an edit whose side is its text.
            let edit = TextEdit {
                file,
                base,
                current,
                theirs: (ContentHash::of(text.as_bytes()), body.size()),
                mtime_ms,
            };
            change_file(state, contents, op, &edit, &TextChange::Text(text))
        }
        _ => {
            // Binary races: the later op wins on disk, and the file records
            // the conflict; both stay in history.
            if current != base {
                open_conflict(
                    state,
                    file,
                    ConflictKind::Binary,
                    id,
                    base,
                    current,
                    body.hash(),
                );
            }
            set_body(state, contents, file, body, mtime_ms, id)
        }
    }
}

/// The effect of an op that changed `file`'s record but not its content.
fn modified(state: &VaultState, file: FileId) -> Effect {
    Effect::Applied(vec![Change::Modified {
        file,
        path: state.files[&file].path.clone(),
    }])
}

fn kind_of(body: &Body) -> FileKind {
    match body {
        Body::Text(_) => FileKind::Text,
        Body::Blob(_) => FileKind::Blob,
    }
}

/// An Edit or text Replace of a text file, as [`change_file`] needs it.
struct TextEdit {
    file: FileId,
    base: ContentHash,
    /// The file's text hash before the op.
    current: ContentHash,
    /// The text the op alone makes of its base, and its size.
    theirs: (ContentHash, u64),
    mtime_ms: i64,
}

/// Applies an Edit or text Replace ([`Contents::edit`]): the op's text on
/// an unchanged base, a merge (with a conflict if it overlapped) on a
/// changed one, or no effect.
fn change_file(
    state: &mut VaultState,
    contents: &mut dyn Contents,
    op: &ReplayOp,
    e: &TextEdit,
    change: &TextChange<'_>,
) -> Result<Effect> {
    let (hash, size) = match contents.edit(op, e.file, e.base, e.current, change)? {
        EditOutcome::Applied => e.theirs,
        EditOutcome::Merged { hash, size, clean } => {
            if !clean {
                open_conflict(
                    state,
                    e.file,
                    ConflictKind::Overlap,
                    op.key.id,
                    e.base,
                    e.current,
                    e.theirs.0,
                );
            }
            (hash, size)
        }
        EditOutcome::BadPatch => return no_effect("patch does not turn its base into its result"),
        EditOutcome::UnknownBase => {
            open_conflict(
                state,
                e.file,
                ConflictKind::BadBase,
                op.key.id,
                e.base,
                e.current,
                e.theirs.0,
            );
            return no_effect("bad base: not the file's content in the op's causal past");
        }
    };
    set_text(state, e.file, hash, size, e.mtime_ms, op.key.id)
}

fn open_conflict(
    state: &mut VaultState,
    file: FileId,
    kind: ConflictKind,
    op: OpId,
    base: ContentHash,
    current: ContentHash,
    theirs: ContentHash,
) {
    state.open_conflicts += 1;
    let f = state.files.get_mut(&file).expect("checked live");
    f.conflicts.push(Conflict {
        kind,
        op,
        base,
        current,
        theirs,
    });
}

fn set_text(
    state: &mut VaultState,
    file: FileId,
    hash: ContentHash,
    size: u64,
    mtime_ms: i64,
    id: OpId,
) -> Result<Effect> {
    let f = state.files.get_mut(&file).expect("checked live");
    f.hash = hash;
    f.size = size;
    f.mtime_ms = mtime_ms;
    f.last_op = id;
    Ok(Effect::Applied(vec![Change::Modified {
        file,
        path: f.path.clone(),
    }]))
}

fn set_body(
    state: &mut VaultState,
    contents: &mut dyn Contents,
    file: FileId,
    body: &Body,
    mtime_ms: i64,
    id: OpId,
) -> Result<Effect> {
    let hash = body.hash();
    contents.put(file, hash, body)?;
    let f = state.files.get_mut(&file).expect("checked live");
    // Once binary, a file stays binary until it is deleted.
    if f.kind == FileKind::Text {
        f.kind = kind_of(body);
    }
    f.hash = hash;
    f.size = body.size();
    f.mtime_ms = mtime_ms;
    f.last_op = id;
    Ok(Effect::Applied(vec![Change::Modified {
        file,
        path: f.path.clone(),
    }]))
}

/// Applies a Compat-mode patch with no fuzz: every hunk must apply and the
/// outcome must hash to `result`, or there is no outcome.
pub fn apply_patch_strict(base: &str, patch: &str, result: &ContentHash) -> Option<String> {
    crate::patch::apply_strict(base, patch).filter(|out| ContentHash::of(out.as_bytes()) == *result)
}

thread_local! {
    static GUARDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is inside [`guarded`] code, whose panics are an
/// expected outcome: a panic hook should stay quiet about them.
pub fn in_guarded_section() -> bool {
    GUARDED.with(|g| g.get())
}

fn guarded<T>(f: impl FnOnce() -> T) -> Option<T> {
    let was = GUARDED.with(|g| g.replace(true));
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok();
    GUARDED.with(|g| g.set(was));
    out
}

/// The author's side: a Compat-mode patch from `old` to `new`, or `None`
/// when the author should write a Replace (the patch does not reproduce
/// `new` exactly, or making it would cost more than it could save).
/// Deterministic: no timeout. A caller that must stay responsive uses
/// [`make_patch_within`].
pub fn make_patch(old: &str, new: &str) -> Option<String> {
    make_patch_within(old, new, None)
}

/// [`make_patch`], with a diff timeout for texts over
/// [`PATCH_EXACT_BYTES_MAX`] together.
///
/// Small texts are diffed exactly, with no timeout, as PROTOCOL.md §8.3
/// says. Larger ones face two deterministic checks, because
/// diff-match-patch is quadratic twice over: its char-level diff of a
/// replaced block costs the block's length times the edit distance (a
/// rewrite of a 280 KB note took 71 s), and `patch_make` copies the whole
/// text once per diff. So:
/// - before any diff, a new text made mostly of lines the old one lacks
///   is a rewrite: a patch would carry most of it anyway, plus the
///   deleted text, so it is a Replace at once. Counting lines is linear,
///   where a line diff (what `similar` or dmp's line mode do first) is
///   itself quadratic on a rewrite: about 2 s for 20,000 lines;
/// - after the diff, one with more edits than [`PATCH_MAKE_WORK_MAX`]
///   allows for the texts' size is a Replace too, before `patch_make`:
///   a patch of that many hunks is rarely smaller than the text.
///
/// The timeout is the backstop for what the checks cannot see (a block
/// pasted over part of a large note): when it runs out, diff-match-patch
/// finishes with coarser (still exact) hunks. It is allowed here and
/// nowhere near replay: the patch is stored in the op and checked by
/// [`apply_patch_strict`], so how it was found never matters to another
/// device.
pub fn make_patch_within(old: &str, new: &str, diff_timeout_ms: Option<u32>) -> Option<String> {
    let exact = old.len() + new.len() <= PATCH_EXACT_BYTES_MAX;
    if !exact && new_lines_pct(old, new) > PATCH_NEW_LINES_PCT_MAX {
        return None;
    }
    let text = guarded(|| {
        let mut dmp = DiffMatchPatch::new();
        dmp.set_timeout(if exact { None } else { diff_timeout_ms });
        let diffs = dmp.diff_main::<Compat>(old, new).ok()?;
        let edits = diffs.iter().filter(|d| d.op() != Ops::Equal).count();
        if !exact && edits.saturating_mul(old.len() + new.len()) > PATCH_MAKE_WORK_MAX {
            return None;
        }
        let patches = dmp
            .patch_make(diff_match_patch_rs::PatchInput::new_text_diffs(old, &diffs))
            .ok()?;
        Some(dmp.patch_to_text(&patches))
    })??;
    apply_patch_strict(old, &text, &ContentHash::of(new.as_bytes()))?;
    Some(text)
}

/// The share of `new`'s bytes in lines that `old` lacks (each line of
/// `old` matching one line of `new` at most), in percent.
fn new_lines_pct(old: &str, new: &str) -> u64 {
    if new.is_empty() {
        return 0;
    }
    let mut counts: HashMap<&str, u32> = HashMap::new();
    for l in old.split_inclusive('\n') {
        *counts.entry(l).or_default() += 1;
    }
    let mut absent = 0u64;
    for l in new.split_inclusive('\n') {
        match counts.get_mut(l) {
            Some(c) if *c > 0 => *c -= 1,
            _ => absent += l.len() as u64,
        }
    }
    100 * absent / new.len() as u64
}
