//! Model-based property tests of the journal and the time machine.
//!
//! A "user" edits a vault modelled as a map from path to bytes. Each batch
//! of edits is turned into payloads the way the scanner does (FileIds from
//! the replayed head, Edit when `make_patch` reproduces the new text, blobs
//! for binary and sticky-binary files), appended to a real journal and
//! caught up by the real time machine. The replayed state must always
//! equal the model.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{FileFailurePersistence, TestCaseError};
use vellum_journal::blob::store_blob;
use vellum_journal::entropy::{Entropy, SeededEntropy};
use vellum_journal::keys::{EpochKey, Keyring, SigningKey, device_id};
use vellum_journal::limits::{HLC_FUTURE_SKEW_MAX_MS, TEXT_BYTES_MAX};
use vellum_journal::path;
use vellum_journal::payload::{Action, Body, MERGE_VERSION, Payload};
use vellum_journal::point::Point;
use vellum_journal::replay::{FileKind, VaultState, make_patch};
use vellum_journal::store::{Batch, Durability, FjallStore, Ks, MemStore, Store};
use vellum_journal::{ContentHash, FileId, Journal, OpId, VaultId, VersionVector};
use vellum_snapshots::contents::{body_of, write_body};
use vellum_snapshots::{Head, TimeMachine};

// ---- fixtures ---------------------------------------------------------

const VAULT: VaultId = VaultId([7; 16]);
const EPOCH_KEY: [u8; 32] = [42; 32];
const SIGNER: [u8; 32] = [1; 32];
/// When true, binary files never hold valid UTF-8. Off: the properties
/// cover binary files whose bytes are also valid text, the case that once
/// broke edits (see `text_edit_whose_base_bytes_were_also_cached_as_a_blob`).
const AVOID_UTF8_BLOBS: bool = false;
/// The fake clock's start, in Unix ms.
const T0: u64 = 1_800_000_000_000;

fn signer() -> SigningKey {
    SigningKey::from_bytes(&SIGNER)
}

fn keyring() -> Keyring {
    Keyring::new(EpochKey(EPOCH_KEY))
}

/// Path alphabet: nested folders, names differing only by case, unicode,
/// and one NFD spelling that normalises onto another entry.
const PATHS: &[&str] = &[
    "a.md",
    "A.md",
    "notes/a.md",
    "Notes/A.md",
    "notes/b.md",
    "notes/deep/c.md",
    "日記/2026-11-25.md",
    "café.md",
    "cafe\u{301}.md",
    "🎉/🎂 party.md",
    "img/photo.png",
    ".obsidian/workspace.json",
    "x",
    "データ/図.canvas",
];

/// Text pieces: CJK, emoji (ZWJ sequences included), combining marks,
/// CRLF, and characters diff-match-patch escapes in its patch text.
const FRAGMENTS: &[&str] = &[
    "hello ",
    "world",
    "\n",
    "\r\n",
    "# 日記\n",
    "今日は",
    "🎉",
    "👩\u{200d}👩\u{200d}👧\u{200d}👦",
    "é",
    "e\u{301}",
    "- [ ] task\n",
    "%",
    "%25",
    "@@ -1 +1 @@",
    "\t",
    " ",
    "𝕏",
    "+",
    "-",
];

// ---- the model ----------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
struct ModelFile {
    bytes: Vec<u8>,
    /// Sticky: once binary, a file stays binary until deleted (DESIGN §3).
    binary: bool,
}

/// What the user wrote: NFC path → bytes.
type Model = BTreeMap<String, ModelFile>;

#[derive(Clone, Debug)]
enum Content {
    Text(String),
    /// `len` bytes of a seeded stream, led by 0xFF so they are never UTF-8.
    /// Few seeds, so equal prefixes share chunks (dedup).
    Binary {
        seed: u8,
        len: usize,
    },
}

impl Content {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Content::Text(t) => t.as_bytes().to_vec(),
            Content::Binary { seed, len } => {
                let mut v = vec![0; *len];
                SeededEntropy::new(0xb10b_0000 + u64::from(*seed)).fill(&mut v);
                v[0] = 0xFF;
                v
            }
        }
    }
}

/// A small insertion/deletion at a position (chars for text, bytes for
/// binary files).
#[derive(Clone, Debug)]
struct Splice {
    at: Index,
    del: usize,
    ins: String,
}

impl Splice {
    fn apply_text(&self, s: &str) -> String {
        let mut chars: Vec<char> = s.chars().collect();
        let at = self.at.index(chars.len() + 1);
        let del = self.del.min(chars.len() - at);
        chars.splice(at..at + del, self.ins.chars());
        chars.into_iter().collect()
    }

    fn apply_bytes(&self, b: &[u8]) -> Vec<u8> {
        let mut v = b.to_vec();
        let at = self.at.index(v.len() + 1);
        let del = self.del.min(v.len() - at);
        v.splice(at..at + del, self.ins.bytes());
        v
    }
}

/// A user action. Indices pick among whatever exists when the action is
/// interpreted, so any sequence is meaningful (and shrinks well).
#[derive(Clone, Debug)]
enum Act {
    Create {
        path: Index,
        content: Content,
    },
    Edit {
        pick: Index,
        splice: Splice,
    },
    Replace {
        pick: Index,
        content: Content,
    },
    Delete {
        pick: Index,
    },
    Rename {
        pick: Index,
        to: Index,
        edit: Option<Splice>,
    },
}

/// One scan's worth of actions, and how it is committed.
#[derive(Clone, Debug)]
struct Step {
    acts: Vec<Act>,
    /// Clock change before the step; negative values set the clock back
    /// (clamped to the allowed skew, see [`Rig::step`]).
    advance_ms: i64,
    durable: bool,
    /// Drop the whole content cache before this step.
    evict: bool,
}

#[derive(Clone, Debug)]
struct Run {
    seed: u64,
    checkpoint_interval: u64,
    steps: Vec<Step>,
}

// ---- strategies --------------------------------------------------------

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::collection::vec(prop::sample::select(FRAGMENTS), 0..10).prop_map(|v| v.concat()),
        1 => "(?s).{0,24}",
    ]
}

fn small_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::collection::vec(prop::sample::select(FRAGMENTS), 0..3).prop_map(|v| v.concat()),
        1 => "(?s).{0,4}",
    ]
}

fn content() -> impl Strategy<Value = Content> {
    prop_oneof![
        3 => text().prop_map(Content::Text),
        1 => (
            0..4u8,
            prop_oneof![6 => 1..400usize, 1 => 20_000..90_000usize],
        )
            .prop_map(|(seed, len)| Content::Binary { seed, len }),
    ]
}

fn splice() -> impl Strategy<Value = Splice> {
    (any::<Index>(), 0..6usize, small_text()).prop_map(|(at, del, ins)| Splice { at, del, ins })
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        3 => (any::<Index>(), content()).prop_map(|(path, content)| Act::Create { path, content }),
        4 => (any::<Index>(), splice()).prop_map(|(pick, splice)| Act::Edit { pick, splice }),
        1 => (any::<Index>(), content()).prop_map(|(pick, content)| Act::Replace { pick, content }),
        1 => any::<Index>().prop_map(|pick| Act::Delete { pick }),
        2 => (any::<Index>(), any::<Index>(), prop::option::of(splice()))
            .prop_map(|(pick, to, edit)| Act::Rename { pick, to, edit }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    (
        prop::collection::vec(act(), 0..6),
        prop_oneof![5 => 1..120_000i64, 1 => -700_000..0i64],
        any::<bool>(),
        prop::bool::weighted(0.08),
    )
        .prop_map(|(acts, advance_ms, durable, evict)| Step {
            acts,
            advance_ms,
            durable,
            evict,
        })
}

fn run(max_steps: usize) -> impl Strategy<Value = Run> {
    (
        any::<u64>(),
        1..8u64,
        prop::collection::vec(step(), 1..max_steps),
    )
        .prop_map(|(seed, checkpoint_interval, steps)| Run {
            seed,
            checkpoint_interval,
            steps,
        })
}

// ---- helpers -----------------------------------------------------------

trait OrFail<T> {
    fn or_fail(self) -> Result<T, TestCaseError>;
}

impl<T, E: std::fmt::Display> OrFail<T> for Result<T, E> {
    #[track_caller]
    fn or_fail(self) -> Result<T, TestCaseError> {
        let at = std::panic::Location::caller();
        self.map_err(|e| TestCaseError::fail(format!("{at}: {e}")))
    }
}

/// The first path of the alphabet, from `start` on, that no live file
/// holds: (raw spelling, NFC key).
fn free_path(model: &Model, start: Index) -> Option<(&'static str, String)> {
    let first = start.index(PATHS.len());
    (0..PATHS.len())
        .map(|i| PATHS[(first + i) % PATHS.len()])
        .map(|raw| (raw, path::normalize(raw).expect("alphabet paths are valid")))
        .find(|(_, key)| !model.contains_key(key))
}

/// A live path not yet touched in this batch (the scanner records at most
/// one change per file per scan, and a new file's id is not known yet).
fn pick_path(model: &Model, locked: &BTreeSet<String>, pick: Index) -> Option<String> {
    let free: Vec<&String> = model.keys().filter(|p| !locked.contains(*p)).collect();
    (!free.is_empty()).then(|| free[pick.index(free.len())].clone())
}

/// New bytes of a sticky-binary file (see [`AVOID_UTF8_BLOBS`]).
fn blob_bytes(mut bytes: Vec<u8>) -> Vec<u8> {
    if AVOID_UTF8_BLOBS && std::str::from_utf8(&bytes).is_ok() {
        bytes.insert(0, 0xFF);
    }
    bytes
}

fn evict_content<S: Store>(store: &S) -> Result<(), TestCaseError> {
    let mut batch = Batch::new();
    store
        .scan(
            Ks::Content,
            (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded),
            false,
            &mut |k, _| {
                batch.delete(Ks::Content, k.to_vec());
                std::ops::ControlFlow::Continue(())
            },
        )
        .or_fail()?;
    store.commit(batch, Durability::Buffered).or_fail()
}

/// The live files of `state` as bytes, read through the content cache (or
/// its recompute) and the chunk store. Also checks that each file's
/// recorded hash, size and kind agree with its bytes, and that the path
/// index and the file records agree.
fn live_files<S: Store>(journal: &Journal<S>, state: &VaultState) -> Result<Model, TestCaseError> {
    let existing = state.files.values().filter(|f| f.exists).count();
    prop_assert_eq!(existing, state.paths.len(), "live records vs path index");
    let mut out = Model::new();
    let at = state.applied_vv();
    for (p, id, f) in state.live_files() {
        prop_assert!(f.exists, "{p} is indexed but deleted");
        prop_assert_eq!(&f.path, p, "record path vs index path");
        let body = body_of(journal, *id, f.hash, &at).or_fail()?;
        // The cache is keyed by content, so the same bytes may come back
        // as the other body variant; only the bytes must agree.
        let mut bytes = Vec::new();
        write_body(journal, &body, &mut bytes).or_fail()?;
        prop_assert_eq!(ContentHash::of(&bytes), f.hash, "{}: hash of bytes", p);
        prop_assert_eq!(bytes.len() as u64, f.size, "{}: size", p);
        out.insert(
            p.clone(),
            ModelFile {
                bytes,
                binary: f.kind == FileKind::Blob,
            },
        );
    }
    Ok(out)
}

/// Compares replayed files with the model, with readable messages.
fn assert_same(got: &Model, want: &Model, what: &str) -> Result<(), TestCaseError> {
    let got_paths: Vec<&String> = got.keys().collect();
    let want_paths: Vec<&String> = want.keys().collect();
    prop_assert_eq!(got_paths, want_paths, "{}: live paths", what);
    for (p, w) in want {
        let g = &got[p];
        prop_assert!(
            g.bytes == w.bytes,
            "{what}: bytes of {p}: got {} bytes {:?}…, want {} bytes {:?}…",
            g.bytes.len(),
            String::from_utf8_lossy(&g.bytes[..g.bytes.len().min(60)]),
            w.bytes.len(),
            String::from_utf8_lossy(&w.bytes[..w.bytes.len().min(60)]),
        );
        prop_assert_eq!(g.binary, w.binary, "{}: kind of {} (binary?)", what, p);
    }
    Ok(())
}

fn assert_states_equal(
    got: &VaultState,
    want: &VaultState,
    what: &str,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(&got.paths, &want.paths, "{}: paths", what);
    prop_assert_eq!(&got.files, &want.files, "{}: files", what);
    prop_assert_eq!(&got.applied, &want.applied, "{}: applied", what);
    prop_assert_eq!(got.ops, want.ops, "{}: ops", what);
    prop_assert_eq!(got.last, want.last, "{}: last", what);
    prop_assert_eq!(got, want, "{}: whole state", what);
    Ok(())
}

// ---- the rig: a journal, a clock, and the scanner-like recorder ---------

struct Rig<S: Store> {
    journal: Journal<S>,
    signer: SigningKey,
    entropy: SeededEntropy,
    now_ms: u64,
    /// The latest wall time the clock has shown.
    high_ms: u64,
    /// The clock was ever set back.
    went_back: bool,
    checkpoint_interval: u64,
    model: Model,
    /// Every admitted op, in append order (genesis first).
    ops: Vec<OpId>,
    /// Catch-ups keep the head in memory, as a running process does.
    head: Option<Head>,
}

/// What one step did.
struct Outcome {
    ids: Vec<OpId>,
    /// `store_blob` ran, and its durable commit flushed everything before.
    stored_blob: bool,
}

impl<S: Store> Rig<S> {
    fn create(store: S, seed: u64, checkpoint_interval: u64) -> Result<Self, TestCaseError> {
        let signer = signer();
        let mut entropy = SeededEntropy::new(seed);
        let journal = Journal::create(
            store,
            VAULT,
            &signer,
            keyring(),
            &mut entropy,
            T0,
            MERGE_VERSION,
        )
        .or_fail()?;
        TimeMachine::catch_up_with(&journal, checkpoint_interval).or_fail()?;
        Ok(Rig {
            ops: vec![journal.genesis()],
            journal,
            signer,
            entropy,
            now_ms: T0,
            high_ms: T0,
            went_back: false,
            checkpoint_interval,
            model: Model::new(),
            head: None,
        })
    }

    /// The body the scanner would record for `bytes`.
    fn body(
        &mut self,
        bytes: &[u8],
        sticky_binary: bool,
        stored_blob: &mut bool,
    ) -> Result<Body, TestCaseError> {
        if !sticky_binary
            && bytes.len() <= TEXT_BYTES_MAX
            && let Ok(t) = std::str::from_utf8(bytes)
        {
            return Ok(Body::Text(t.to_string()));
        }
        let dedup_key = self
            .journal
            .write_epoch()
            .unwrap()
            .and_then(|epoch| self.journal.keys().dedup_key(&epoch))
            .expect("the vault key is present");
        let blob =
            store_blob(self.journal.store(), bytes, &dedup_key, &mut self.entropy).or_fail()?;
        prop_assert_eq!(blob.hash, ContentHash::of(bytes), "blob hash");
        *stored_blob = true;
        Ok(Body::Blob(blob))
    }

    /// A content change of `file` from `old` to `new`: an Edit when a
    /// patch reproduces the text, else a Replace (blob if sticky-binary).
    fn change(
        &mut self,
        file: FileId,
        kind: FileKind,
        old: &[u8],
        new: &[u8],
        allow_patch: bool,
        stored_blob: &mut bool,
    ) -> Result<Payload, TestCaseError> {
        let base = ContentHash::of(old);
        let mtime_ms = self.now_ms as i64;
        if allow_patch
            && kind == FileKind::Text
            && let Ok(new_text) = std::str::from_utf8(new)
        {
            let old_text = std::str::from_utf8(old)
                .map_err(|_| TestCaseError::fail("a text-kind file holds non-UTF-8 bytes"))?;
            if let Some(patch) = make_patch(old_text, new_text) {
                return Ok(Payload::new(Action::Edit {
                    file,
                    base,
                    patch,
                    result: ContentHash::of(new),
                    result_size: new.len() as u64,
                    mtime_ms,
                }));
            }
        }
        let body = self.body(new, kind == FileKind::Blob, stored_blob)?;
        Ok(Payload::new(Action::Replace {
            file,
            base,
            body,
            mtime_ms,
        }))
    }

    /// Interprets `acts` against the model and the replayed head, updating
    /// the model and returning the payloads, as one scan would.
    fn record(
        &mut self,
        acts: &[Act],
        stored_blob: &mut bool,
    ) -> Result<Vec<Payload>, TestCaseError> {
        let head = TimeMachine::load_head(&self.journal).or_fail()?;
        let mtime_ms = self.now_ms as i64;
        let mut locked = BTreeSet::new();
        let mut payloads = Vec::new();
        let file_at = |p: &str| -> Result<(FileId, FileKind), TestCaseError> {
            head.file_at(p)
                .map(|(id, f)| (id, f.kind))
                .ok_or_else(|| TestCaseError::fail(format!("{p} is in the model but not at head")))
        };
        for act in acts {
            match act {
                Act::Create { path, content } => {
                    let Some((raw, key)) = free_path(&self.model, *path) else {
                        continue;
                    };
                    let bytes = content.bytes();
                    let body = self.body(&bytes, false, stored_blob)?;
                    let binary = matches!(body, Body::Blob(_));
                    payloads.push(Payload::new(Action::Create {
                        path: raw.to_string(),
                        mtime_ms,
                        body,
                    }));
                    self.model.insert(key.clone(), ModelFile { bytes, binary });
                    locked.insert(key);
                }
                Act::Edit { pick, splice } => {
                    let Some(p) = pick_path(&self.model, &locked, *pick) else {
                        continue;
                    };
                    let (id, kind) = file_at(&p)?;
                    let old = self.model[&p].clone();
                    let new = match kind {
                        FileKind::Text => {
                            let t = std::str::from_utf8(&old.bytes).map_err(|_| {
                                TestCaseError::fail(format!("head calls binary {p} text"))
                            })?;
                            splice.apply_text(t).into_bytes()
                        }
                        FileKind::Blob => blob_bytes(splice.apply_bytes(&old.bytes)),
                    };
                    payloads.push(self.change(id, kind, &old.bytes, &new, true, stored_blob)?);
                    let binary = old.binary || std::str::from_utf8(&new).is_err();
                    self.model
                        .insert(p.clone(), ModelFile { bytes: new, binary });
                    locked.insert(p);
                }
                Act::Replace { pick, content } => {
                    let Some(p) = pick_path(&self.model, &locked, *pick) else {
                        continue;
                    };
                    let (id, kind) = file_at(&p)?;
                    let old = self.model[&p].clone();
                    let new = match kind {
                        FileKind::Text => content.bytes(),
                        FileKind::Blob => blob_bytes(content.bytes()),
                    };
                    payloads.push(self.change(id, kind, &old.bytes, &new, false, stored_blob)?);
                    let binary = old.binary || std::str::from_utf8(&new).is_err();
                    self.model
                        .insert(p.clone(), ModelFile { bytes: new, binary });
                    locked.insert(p);
                }
                Act::Delete { pick } => {
                    let Some(p) = pick_path(&self.model, &locked, *pick) else {
                        continue;
                    };
                    let (id, _) = file_at(&p)?;
                    let old = self.model.remove(&p).expect("picked from the model");
                    payloads.push(Payload::new(Action::Delete {
                        file: id,
                        base: ContentHash::of(&old.bytes),
                        mtime_ms,
                    }));
                }
                Act::Rename { pick, to, edit } => {
                    let Some(p) = pick_path(&self.model, &locked, *pick) else {
                        continue;
                    };
                    let Some((raw, key)) = free_path(&self.model, *to) else {
                        continue;
                    };
                    let (id, kind) = file_at(&p)?;
                    let old = self.model.remove(&p).expect("picked from the model");
                    payloads.push(Payload::new(Action::Rename {
                        file: id,
                        from: p.clone(),
                        to: raw.to_string(),
                        mtime_ms,
                    }));
                    let mut moved = old.clone();
                    if let Some(splice) = edit {
                        let new = match kind {
                            FileKind::Text => match std::str::from_utf8(&old.bytes) {
                                Ok(t) => splice.apply_text(t).into_bytes(),
                                Err(_) => {
                                    return Err(TestCaseError::fail(format!(
                                        "head calls binary {p} text"
                                    )));
                                }
                            },
                            FileKind::Blob => blob_bytes(splice.apply_bytes(&old.bytes)),
                        };
                        payloads.push(self.change(
                            id,
                            kind,
                            &old.bytes,
                            &new,
                            true,
                            stored_blob,
                        )?);
                        moved.binary = old.binary || std::str::from_utf8(&new).is_err();
                        moved.bytes = new;
                    }
                    self.model.insert(key.clone(), moved);
                    locked.insert(key);
                }
            }
        }
        Ok(payloads)
    }

    /// Runs one step: advance the clock, maybe evict the content cache,
    /// record, append, catch up.
    fn step(&mut self, step: &Step) -> Result<Outcome, TestCaseError> {
        // A clock set back by more than HLC_FUTURE_SKEW_MAX_MS stops local
        // appends (see `own_edit_after_the_clock_is_set_back_more_than_ten_minutes`):
        // stay within it.
        self.now_ms = self
            .now_ms
            .saturating_add_signed(step.advance_ms)
            .max(self.high_ms - HLC_FUTURE_SKEW_MAX_MS);
        self.high_ms = self.high_ms.max(self.now_ms);
        self.went_back |= step.advance_ms < 0;
        if step.evict {
            evict_content(self.journal.store())?;
        }
        let mut stored_blob = false;
        let payloads = self.record(&step.acts, &mut stored_blob)?;
        let durability = if step.durable {
            Durability::Durable
        } else {
            Durability::Buffered
        };
        let ids = if payloads.is_empty() {
            Vec::new()
        } else {
            let n = payloads.len();
            let ids = self
                .journal
                .append(
                    &self.signer,
                    payloads,
                    &mut self.entropy,
                    self.now_ms,
                    durability,
                )
                .or_fail()?;
            prop_assert_eq!(ids.len(), n, "one op id per payload");
            self.ops.extend(&ids);
            ids
        };
        let caught = self.catch_up()?;
        prop_assert_eq!(
            caught.applied,
            ids.len() as u64,
            "catch-up applies exactly the new ops"
        );
        prop_assert_eq!(caught.no_effect, 0, "every recorded op takes effect");
        prop_assert!(!caught.rewound, "one author's appends never rewind");
        Ok(Outcome { ids, stored_blob })
    }

    fn catch_up(&mut self) -> Result<vellum_snapshots::CatchUp, TestCaseError> {
        match &mut self.head {
            Some(head) => {
                TimeMachine::catch_up_cached(&self.journal, self.checkpoint_interval, head)
            }
            None => TimeMachine::catch_up_with(&self.journal, self.checkpoint_interval),
        }
        .or_fail()
    }

    /// The head state, checked against the model and the admitted set.
    fn check_head(&self, what: &str) -> Result<VaultState, TestCaseError> {
        let head = TimeMachine::load_head(&self.journal).or_fail()?;
        prop_assert_eq!(
            &head.applied_vv(),
            self.journal.admitted(),
            "{}: head lags admission",
            what
        );
        prop_assert_eq!(
            head.ops,
            self.journal.op_count(),
            "{}: applied op count",
            what
        );
        prop_assert_eq!(
            TimeMachine::head_live_files(&self.journal).or_fail()?,
            self.model.len() as u64,
            "{}: live file counter",
            what
        );
        let got = live_files(&self.journal, &head)?;
        assert_same(&got, &self.model, what)?;
        Ok(head)
    }

    fn check_from_scratch(&self, what: &str) -> Result<(), TestCaseError> {
        let head = TimeMachine::load_head(&self.journal).or_fail()?;
        let scratch = TimeMachine::replay_from_scratch(&self.journal).or_fail()?;
        assert_states_equal(&head, &scratch, what)
    }
}

/// A recorded point of the run: what was admitted, the model, the clock.
struct Record {
    vv: VersionVector,
    model: Model,
    now_ms: u64,
}

fn record_of<S: Store>(rig: &Rig<S>) -> Record {
    Record {
        vv: rig.journal.admitted().clone(),
        model: rig.model.clone(),
        now_ms: rig.now_ms,
    }
}

/// Every recorded point, resolved three ways and replayed, gives the model
/// of its step.
fn check_time_travel<S: Store>(
    rig: &Rig<S>,
    records: &[Record],
    what: &str,
) -> Result<(), TestCaseError> {
    let author = device_id(&rig.signer);
    for (i, r) in records.iter().enumerate() {
        let what = format!("{what}, point after step {i}");
        let state = TimeMachine::state_at(&rig.journal, &r.vv).or_fail()?;
        prop_assert_eq!(&state.applied_vv(), &r.vv, "{}: applied set", what);
        prop_assert_eq!(state.ops, r.vv.op_count(), "{}: op count", what);
        let got = live_files(&rig.journal, &state)?;
        assert_same(&got, &r.model, &what)?;

        let by_vv = Point::Vv(r.vv.clone()).resolve(&rig.journal).or_fail()?;
        prop_assert_eq!(&by_vv, &r.vv, "{}: Point::Vv", what);
        let head = r.vv.get(&author).expect("the author has ops").head;
        // Prefixes of every length, odd ones included (half a byte).
        let digits = 8 + (i * 7) % 57;
        let by_op = Point::Op(head.to_hex()[..digits].to_string())
            .resolve(&rig.journal)
            .or_fail()?;
        prop_assert_eq!(&by_op, &r.vv, "{}: Point::Op", what);
        let by_time = Point::Time(r.now_ms).resolve(&rig.journal);
        match expected_at_time(rig, r.now_ms)? {
            Some(want) => {
                let got = by_time.or_fail()?;
                prop_assert_eq!(&got, &want, "{}: Point::Time", what);
                // With a clock that only moves forward, that is this step's set.
                if !rig.went_back {
                    prop_assert_eq!(&got, &r.vv, "{}: Point::Time of a forward clock", what);
                }
            }
            None => prop_assert!(
                matches!(by_time, Err(vellum_journal::Error::BadPoint(_))),
                "{what}: a time before the first op: {by_time:?}"
            ),
        }
    }
    Ok(())
}

/// The model of a time point: the ops whose hlc (read from each op's own
/// header) is at or before the end of millisecond `ms`. With one author,
/// hlc rises along the chain, so they form a prefix of the op log.
fn expected_at_time<S: Store>(
    rig: &Rig<S>,
    ms: u64,
) -> Result<Option<VersionVector>, TestCaseError> {
    let ceiling = (ms << 16) | 0xFFFF;
    let mut vv = None;
    for (i, id) in rig.ops.iter().enumerate() {
        let env = rig.journal.load(id).or_fail()?.expect("admitted");
        if env.header().hlc > ceiling {
            break;
        }
        let mut v = VersionVector::new();
        v.set(device_id(&rig.signer), i as u64 + 1, *id);
        vv = Some(v);
    }
    Ok(vv)
}

// ---- properties ----------------------------------------------------------

/// `cases`, or `PROPTEST_CASES` from the environment for a deeper run.
fn config(cases: u32, max_shrink_iters: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        max_shrink_iters,
        // Integration tests have no lib.rs beside them: name the file.
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/properties.txt",
        ))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(32, 4096))]

    /// Protects the core contract: after every scan's worth of changes
    /// (creates of text and binary files, patch edits, replaces, deletes,
    /// renames with and without an edit, unicode and case-only paths, the
    /// content cache evicted now and then, checkpoints every few ops), the
    /// replayed head holds exactly the model's paths, bytes and kinds.
    #[test]
    fn head_matches_model_after_every_batch(run in run(40)) {
        let mut rig = Rig::create(MemStore::new(), run.seed, run.checkpoint_interval)?;
        rig.check_head("after genesis")?;
        for (i, step) in run.steps.iter().enumerate() {
            rig.step(step)?;
            rig.check_head(&format!("after step {i}"))?;
        }
    }

    /// Protects the invariant of DESIGN §4: the incrementally caught-up
    /// head (persisted per file, with checkpoints) equals a replay of the
    /// whole journal from nothing, during the run and at its end.
    #[test]
    fn incremental_replay_equals_replay_from_scratch(run in run(40)) {
        let mut rig = Rig::create(MemStore::new(), run.seed, run.checkpoint_interval)?;
        for (i, step) in run.steps.iter().enumerate() {
            rig.step(step)?;
            if i % 8 == 7 {
                rig.check_from_scratch(&format!("after step {i}"))?;
            }
        }
        rig.check_from_scratch("at the end")?;
        rig.check_head("at the end")?;
    }

    /// Protects the rewind path of DESIGN §4: when replay must restart
    /// before already-applied ops (as for a late op), catch-up rewinds to
    /// the newest checkpoint that serves the set and replays forward; the
    /// result equals the head before the rewind and a replay from scratch.
    #[test]
    fn rewind_to_a_checkpoint_replays_to_the_same_head(run in run(30), at in any::<Index>()) {
        rewind_replays_to_the_same_head(run, at, false)?;
    }

    /// The same with the head kept in memory (`Head`): the rewind starts
    /// from the newest recent state before the late op when that is newer
    /// than every serving checkpoint.
    #[test]
    fn rewind_to_a_recent_state_replays_to_the_same_head(run in run(30), at in any::<Index>()) {
        rewind_replays_to_the_same_head(run, at, true)?;
    }

    /// Protects time travel (DESIGN §5): the state at every earlier
    /// admitted set, served by checkpoints plus a short replay, has the
    /// files the user had then, also after the content cache is dropped;
    /// and `vv:`, op-id and time points resolve to that same set.
    #[test]
    fn every_recorded_point_replays_to_its_model_snapshot(run in run(40)) {
        let mut rig = Rig::create(MemStore::new(), run.seed, run.checkpoint_interval)?;
        let mut records = vec![record_of(&rig)];
        for step in &run.steps {
            rig.step(step)?;
            records.push(record_of(&rig));
        }
        check_time_travel(&rig, &records, "with the content cache")?;
        evict_content(rig.journal.store())?;
        check_time_travel(&rig, &records, "after evicting the content cache")?;
    }

    /// Protects determinism: the same actions with the same seed, key and
    /// clock give byte-identical ops (same ids) and identical states.
    #[test]
    fn same_inputs_give_the_same_journal_and_state(run in run(30)) {
        let mut a = Rig::create(MemStore::new(), run.seed, run.checkpoint_interval)?;
        let mut b = Rig::create(MemStore::new(), run.seed, run.checkpoint_interval)?;
        prop_assert_eq!(a.journal.genesis(), b.journal.genesis());
        for (i, step) in run.steps.iter().enumerate() {
            let ia = a.step(step)?.ids;
            let ib = b.step(step)?.ids;
            prop_assert_eq!(ia, ib, "op ids of step {}", i);
        }
        prop_assert_eq!(a.journal.admitted(), b.journal.admitted());
        prop_assert_eq!(a.journal.op_bytes().or_fail()?, b.journal.op_bytes().or_fail()?);
        let (ha, hb) = (
            TimeMachine::load_head(&a.journal).or_fail()?,
            TimeMachine::load_head(&b.journal).or_fail()?,
        );
        assert_states_equal(&ha, &hb, "two runs")?;
    }

    /// Protects crash safety: after a crash that drops every write not yet
    /// made durable, the reopened journal holds exactly the ops up to the
    /// last durable commit (a Durable append, or the durable chunk commit
    /// of `store_blob`, which flushes everything before it), catch-up
    /// brings the head to the model of that moment, and the vault keeps
    /// working: later steps append and replay as usual, and every point
    /// that survived the crash still replays to its model.
    #[test]
    fn crash_keeps_exactly_the_durable_prefix(run in run(30), crash_at in any::<Index>()) {
        let mut rig = Rig::create(MemStore::new(), run.seed, run.checkpoint_interval)?;
        let crash_at = crash_at.index(run.steps.len());
        // Genesis is committed durably.
        let mut durable = record_of(&rig);
        let mut records = vec![record_of(&rig)];
        for (i, step) in run.steps.iter().enumerate() {
            let before = record_of(&rig);
            let out = rig.step(step)?;
            records.push(record_of(&rig));
            if out.stored_blob {
                durable = before;
            }
            if step.durable && !out.ids.is_empty() {
                durable = record_of(&rig);
            }
            if i == crash_at {
                let store = rig.journal.into_store();
                store.crash();
                rig.journal = Journal::open(store, keyring()).or_fail()?;
                prop_assert_eq!(rig.journal.admitted(), &durable.vv, "admitted after the crash");
                prop_assert_eq!(rig.journal.op_count(), durable.vv.op_count());
                rig.model = durable.model.clone();
                let kept = durable.vv.op_count();
                rig.ops.truncate(kept as usize);
                records.retain(|r| r.vv.op_count() <= kept);
                let caught = TimeMachine::catch_up_with(&rig.journal, rig.checkpoint_interval).or_fail()?;
                prop_assert_eq!(caught.no_effect, 0);
                rig.check_head("right after the crash")?;
                rig.check_from_scratch("right after the crash")?;
            }
        }
        rig.check_head("at the end")?;
        rig.check_from_scratch("at the end")?;
        check_time_travel(&rig, &records, "after a crash")?;
    }
}

proptest! {
    #![proptest_config(config(16, 256))]

    /// Protects the on-disk store: the same model run on fjall, closed and
    /// reopened midway, keeps matching the model, and its head equals a
    /// replay from scratch.
    #[test]
    fn fjall_store_matches_model_across_reopen(run in run(24), reopen_at in any::<Index>()) {
        let dir = tempfile::TempDir::new().or_fail()?;
        let store = FjallStore::open(dir.path()).or_fail()?;
        let mut rig = Rig::create(store, run.seed, run.checkpoint_interval)?;
        let reopen_at = reopen_at.index(run.steps.len());
        for (i, step) in run.steps.iter().enumerate() {
            rig.step(step)?;
            rig.check_head(&format!("after step {i}"))?;
            if i == reopen_at {
                let admitted = rig.journal.admitted().clone();
                let head = TimeMachine::load_head(&rig.journal).or_fail()?;
                // Close the database before opening it again.
                let journal = rig.journal;
                drop(journal);
                rig.journal = Journal::open(FjallStore::open(dir.path()).or_fail()?, keyring()).or_fail()?;
                prop_assert_eq!(rig.journal.admitted(), &admitted, "admitted after reopening");
                let reopened = TimeMachine::load_head(&rig.journal).or_fail()?;
                assert_states_equal(&reopened, &head, "head after reopening")?;
                rig.check_head("after reopening")?;
            }
        }
        rig.check_from_scratch("at the end")?;
    }
}

// ---- regressions ---------------------------------------------------------

/// Appends `actions` as one durable batch and catches up.
/// A new in-memory journal, caught up, and its entropy source.
/// Forces a replay from a random op of a run and checks that the head comes
/// back the same, from disk checkpoints only or with the head in memory.
fn rewind_replays_to_the_same_head(
    run: Run,
    at: Index,
    keep_head: bool,
) -> Result<(), TestCaseError> {
    let mut rig = Rig::create(MemStore::new(), run.seed, run.checkpoint_interval)?;
    if keep_head {
        rig.head = Some(Head::default());
    }
    for step in &run.steps {
        rig.step(step)?;
    }
    let before = TimeMachine::load_head(&rig.journal).or_fail()?;
    let mut keys = Vec::new();
    rig.journal
        .for_each_in_order(None, &mut |k, _| {
            keys.push(k);
            Ok(std::ops::ControlFlow::Continue(()))
        })
        .or_fail()?;
    let from = keys[at.index(keys.len())];
    let mut batch = vellum_journal::store::Batch::new();
    rig.journal.mark_replayed(&mut batch, Some(&from));
    rig.journal
        .store()
        .commit(batch, Durability::Durable)
        .or_fail()?;
    let out = rig.catch_up()?;
    prop_assert!(out.rewound, "catch-up did not rewind");
    let after = TimeMachine::load_head(&rig.journal).or_fail()?;
    assert_states_equal(&after, &before, "head after a rewind")?;
    rig.check_from_scratch("after a rewind")?;
    rig.check_head("after a rewind")?;
    Ok(())
}

fn mem_journal(seed: u64) -> (Journal<MemStore>, SeededEntropy) {
    let mut e = SeededEntropy::new(seed);
    let j = Journal::create(
        MemStore::new(),
        VAULT,
        &signer(),
        keyring(),
        &mut e,
        T0,
        MERGE_VERSION,
    )
    .unwrap();
    TimeMachine::catch_up_with(&j, 1024).unwrap();
    (j, e)
}

fn append_and_catch_up(
    journal: &mut Journal<MemStore>,
    entropy: &mut SeededEntropy,
    now_ms: u64,
    actions: Vec<Action>,
) -> vellum_journal::Result<Vec<OpId>> {
    let payloads = actions.into_iter().map(Payload::new).collect();
    let ids = journal.append(&signer(), payloads, entropy, now_ms, Durability::Durable)?;
    TimeMachine::catch_up_with(journal, 1024)?;
    Ok(ids)
}

/// A text note and a sticky-binary file with the same bytes (here both
/// empty) share one content-cache entry, keyed by hash alone; whichever
/// was cached last wins. When the blob won, an Edit of the note finds a
/// blob as its base and catch-up fails ("content … is a blob, not text").
#[test]
fn text_edit_whose_base_bytes_were_also_cached_as_a_blob() {
    let (mut j, mut e) = mem_journal(1);
    let dedup = j.keys().dedup_key(&j.genesis()).unwrap();
    // An empty note, and a one-byte binary file.
    let one = store_blob(j.store(), &[0xFF][..], &dedup, &mut e).unwrap();
    let ids = append_and_catch_up(
        &mut j,
        &mut e,
        T0 + 1,
        vec![
            Action::Create {
                path: "note.md".into(),
                mtime_ms: 0,
                body: Body::Text(String::new()),
            },
            Action::Create {
                path: "img.png".into(),
                mtime_ms: 0,
                body: Body::Blob(one),
            },
        ],
    )
    .unwrap();
    // The binary file is truncated: it stays binary, so it is an empty blob.
    let empty = store_blob(j.store(), &[][..], &dedup, &mut e).unwrap();
    append_and_catch_up(
        &mut j,
        &mut e,
        T0 + 2,
        vec![Action::Replace {
            file: ids[1],
            base: ContentHash::of(&[0xFF]),
            body: Body::Blob(empty),
            mtime_ms: 0,
        }],
    )
    .unwrap();
    // The note gets its first line.
    let edited = append_and_catch_up(
        &mut j,
        &mut e,
        T0 + 3,
        vec![Action::Edit {
            file: ids[0],
            base: ContentHash::of(b""),
            patch: make_patch("", "hello\n").unwrap(),
            result: ContentHash::of(b"hello\n"),
            result_size: 6,
            mtime_ms: 0,
        }],
    );
    edited.expect("catching up an edit of the empty note");
    let head = TimeMachine::load_head(&j).unwrap();
    let (id, f) = head.file_at("note.md").unwrap();
    assert_eq!(
        body_of(&j, id, f.hash, j.admitted()).unwrap(),
        Body::Text("hello\n".into())
    );
}

/// The wall clock is set back by more than the allowed skew (a clock that
/// ran fast gets corrected). The local HLC is then more than 10 min ahead
/// of wall time, `append` gives the new op that HLC, and admission of the
/// device's own op makes it wait: every local edit fails, with an error
/// that calls the journal corrupt, until the wall clock catches up.
#[test]
fn own_edit_after_the_clock_is_set_back_more_than_ten_minutes() {
    let (mut j, mut e) = mem_journal(1);
    let note = |path: &str| Action::Create {
        path: path.into(),
        mtime_ms: 0,
        body: Body::Text("x".into()),
    };
    append_and_catch_up(&mut j, &mut e, T0 + 3_600_000, vec![note("a.md")]).unwrap();
    // NTP corrects the clock by an hour.
    let r = append_and_catch_up(&mut j, &mut e, T0 + 1_000, vec![note("b.md")]);
    let head = TimeMachine::load_head(&j).unwrap();
    assert!(
        r.is_ok() && head.file_at("b.md").is_some(),
        "recording after a clock correction: {r:?}"
    );
}

/// Replays of 4,096 ops or more read and open ops on a helper thread. Such
/// a replay from scratch gives the head; one that stops at a point gives
/// that point's contents; and a damaged op is reported as itself, not as
/// anything the helper read after it, whether this process holds its
/// payload or not.
#[test]
fn long_replays_on_a_helper_thread_match_the_serial_results() {
    let (mut j, mut e) = mem_journal(3);
    let creates = (0..20)
        .map(|i| Action::Create {
            path: format!("n{i}.md"),
            mtime_ms: 0,
            body: Body::Text(format!("# note {i}\n")),
        })
        .collect();
    let files = append_and_catch_up(&mut j, &mut e, T0 + 1, creates).unwrap();
    let mut texts: Vec<String> = (0..20).map(|i| format!("# note {i}\n")).collect();
    // 5,200 edits in batches of 20 (one per file), a point recorded after each.
    let mut points = Vec::new();
    for round in 0..260u64 {
        let edits = (0..20)
            .map(|i| {
                let new = format!("{}- line {round}, ünïcødé 日記 {i}\n", texts[i]);
                let action = Action::Edit {
                    file: files[i],
                    base: ContentHash::of(texts[i].as_bytes()),
                    patch: make_patch(&texts[i], &new).unwrap(),
                    result: ContentHash::of(new.as_bytes()),
                    result_size: new.len() as u64,
                    mtime_ms: 0,
                };
                texts[i] = new;
                action
            })
            .collect();
        append_and_catch_up(&mut j, &mut e, T0 + 2 + round, edits).unwrap();
        points.push((j.admitted().clone(), texts.clone()));
    }
    assert!(j.op_count() > 5_000);

    let head = TimeMachine::load_head(&j).unwrap();
    let scratch = TimeMachine::replay_from_scratch(&j).unwrap();
    assert_states_equal(&head, &scratch, "pipelined replay from scratch").unwrap();

    // A point 4,500 edits in: the replay stops there, with the helper ahead.
    let (vv, want) = &points[224];
    let (state, mut bodies) = TimeMachine::contents_at(&j, vv).unwrap();
    assert_eq!(state.ops, vv.op_count());
    for (i, text) in want.iter().enumerate() {
        let body = bodies.remove(&files[i]).expect("live file");
        assert_eq!(body, Body::Text(text.clone()), "n{i}.md at the point");
    }

    // Damage the ciphertext of an op in the middle: from-scratch replay
    // names that op.
    let mut target = None;
    j.for_each_op_in_order(None, &mut |key, seq, env| {
        if seq == 3_000 {
            target = Some((key, seq, env.bytes().to_vec()));
            return Ok(std::ops::ControlFlow::Break(()));
        }
        Ok(std::ops::ControlFlow::Continue(()))
    })
    .unwrap();
    let (key, seq, mut bytes) = target.unwrap();
    let at = bytes.len() - 64 - 20;
    bytes[at] ^= 0x40;
    let mut record = seq.to_le_bytes().to_vec();
    record.extend_from_slice(&bytes);
    let mut batch = Batch::new();
    batch.put(Ks::Order, key.to_bytes().to_vec(), record);
    j.store().commit(batch, Durability::Durable).unwrap();
    let names_it = |err: vellum_journal::Error, why: &str| {
        let err = err.to_string();
        assert!(err.contains(&key.id.short()) && err.contains(why), "{err}");
    };
    // The head's replay opened that op before the damage and keeps its
    // payload and bytes, so a replay in this process finds other bytes,
    // hashes them, and the hash names the op; so does reading it by order
    // key.
    names_it(
        TimeMachine::replay_from_scratch(&j).unwrap_err(),
        "does not hash to its id",
    );
    names_it(j.load_at(&key).unwrap_err(), "does not hash to its id");
    // A process that opens the journal afresh holds no payload: it reads
    // the op unhashed, and the AEAD tag names it.
    let fresh = Journal::open(j.store().snapshot(), j.keys().clone()).unwrap();
    names_it(
        TimeMachine::replay_from_scratch(&fresh).unwrap_err(),
        "does not decrypt",
    );
}
