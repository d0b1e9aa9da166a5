//! Quarantine (DESIGN §8): a batch of changes that would delete, empty,
//! revert or re-create many files is held back from the disk until the
//! user accepts or rejects it.
//!
//! Batches come from two places:
//! - **Ops from another device** (import now; live sync later): one
//!   author's ops, within 10 s of hlc, that delete or empty more files than
//!   the threshold. Replay includes them, as it includes every admitted op;
//!   only the disk keeps the files. `accept` lets the disk follow the head;
//!   `reject` writes ops that bring the files back, so every device sees
//!   the decision.
//! - **A scan** that finds many files reverted to an older version of
//!   themselves, or re-created with a deleted file's content: what a vault
//!   folder restored from an old copy looks like. Nothing is recorded for
//!   those paths, nor for the files the same scan finds gone, so no other
//!   device sees the revert. `accept` records them; `reject` puts the head
//!   back on the disk, dropping only bytes that history holds.
//!
//! While a batch is held, the scanner skips its paths and the disk writer
//! leaves them alone. Nothing here destroys bytes history lacks: a held
//! file the user changed meanwhile is recorded, whatever the decision.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::ControlFlow;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use vellum_journal::payload::{Action, Cause, Payload};
use vellum_journal::replay::{FileState, VaultState};
use vellum_journal::store::{Batch, Durability, Ks, Store};
use vellum_journal::{ContentHash, DeviceId, FileId, OpId, OrderKey, hlc};
use vellum_snapshots::contents::body_of;

use crate::error::user;
use crate::history::time_string;
use crate::materialise::settle;
use crate::rewrite::{WriteReport, content_op};
use crate::scan::{self, ScanOpts, Scope};
use crate::vault::{Vault, now_ms};

/// A batch that deletes or empties (or, for a scan, reverts or re-creates)
/// more than this many files is held...
pub const FILES_MAX: usize = 20;
/// ...as is one that touches more than this share of the files, in
/// percent...
pub const SHARE_PCT: usize = 10;
/// ...when that is at least this many files.
pub const SHARE_MIN_FILES: usize = 5;
/// One author's ops at most this far apart in hlc wall time form a batch.
pub const BATCH_WINDOW_MS: u64 = 10_000;

/// Whether `n` files deleted, emptied, reverted or re-created out of
/// `live_files` is enough to hold the change for review.
pub fn over_threshold(n: usize, live_files: usize) -> bool {
    n > FILES_MAX || (n >= SHARE_MIN_FILES && n * 100 > live_files * SHARE_PCT)
}

/// Where a held batch came from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Ops written by another device.
    Remote,
    /// Changes a scan of this vault found on disk.
    Scan,
}

/// What a held batch does to one file.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Delete,
    Empty,
    /// The disk holds an older version of the file.
    Revert,
    /// The disk holds a deleted file's content at its old path.
    Recreate,
}

/// One file of a held batch.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, ts_rs::TS)]
pub struct HeldFile {
    pub path: String,
    /// The file's id (hex); absent for a path a scan found re-created.
    pub file: Option<String>,
    pub change: Change,
    /// What the disk holds at `path` while the batch is held (hex content
    /// hash): the content from before the batch (remote), or what the scan
    /// found (scan; absent for a file it found gone).
    pub disk: Option<String>,
}

/// A batch held back from the disk (`vellum quarantine list`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, ts_rs::TS)]
pub struct Held {
    /// 12 hex digits; `accept` and `reject` take a prefix of it.
    pub id: String,
    pub source: Source,
    /// The device whose ops these are (remote batches; hex).
    pub author: Option<String>,
    /// That device's name, if it gave one.
    #[serde(default)]
    pub author_name: Option<String>,
    /// The batch's ops (remote batches; hex ids, oldest first).
    pub ops: Vec<String>,
    /// When the batch's first op was written, or when the scan ran
    /// (RFC 3339).
    pub time: String,
    pub files: Vec<HeldFile>,
}

impl Held {
    pub fn paths(&self) -> Vec<String> {
        self.files.iter().map(|f| f.path.clone()).collect()
    }

    fn save(&self, batch: &mut Batch) {
        let value = serde_json::to_vec(self).expect("a held batch serialises");
        batch.put(Ks::Quarantine, self.id.as_bytes().to_vec(), value);
    }
}

/// The paths and files every held batch keeps from the disk.
#[derive(Default, Debug)]
pub struct Hold {
    pub paths: BTreeSet<String>,
    pub files: BTreeSet<FileId>,
}

impl Hold {
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Whether the disk writer must leave file `id` at `path` alone.
    pub fn covers(&self, id: &FileId, path: &str) -> bool {
        !self.is_empty() && (self.files.contains(id) || self.paths.contains(path))
    }
}

/// Every held batch, oldest first.
pub fn list(v: &Vault) -> Result<Vec<Held>> {
    let mut out: Vec<Held> = Vec::new();
    let mut bad = None;
    v.journal
        .store()
        .scan_prefix(Ks::Quarantine, &[], &mut |k, val| {
            match serde_json::from_slice(val) {
                Ok(h) => out.push(h),
                Err(e) => {
                    bad = Some(format!(
                        "the quarantine record {} is damaged: {e}",
                        String::from_utf8_lossy(k)
                    ));
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        })?;
    if let Some(b) = bad {
        anyhow::bail!(b);
    }
    out.sort_by(|a, b| a.time.cmp(&b.time).then(a.id.cmp(&b.id)));
    Ok(out)
}

/// What every held batch keeps from the disk, but `except` (a batch being
/// accepted or rejected).
pub fn hold_except(v: &Vault, except: Option<&str>) -> Result<Hold> {
    let mut hold = Hold::default();
    for h in list(v)? {
        if except == Some(h.id.as_str()) {
            continue;
        }
        for f in h.files {
            hold.files
                .extend(f.file.as_deref().and_then(FileId::from_hex));
            hold.paths.insert(f.path);
        }
    }
    Ok(hold)
}

pub fn hold(v: &Vault) -> Result<Hold> {
    hold_except(v, None)
}

/// How many files the held batches keep from the disk (`status`).
pub fn held_files(v: &Vault) -> Result<u64> {
    Ok(hold(v)?.paths.len() as u64)
}

/// The held batch whose id starts with `prefix`.
pub fn find(v: &Vault, prefix: &str) -> Result<Held> {
    let prefix = prefix.to_ascii_lowercase();
    let mut hits: Vec<Held> = list(v)?
        .into_iter()
        .filter(|h| h.id.starts_with(&prefix))
        .collect();
    match hits.len() {
        0 => Err(user(format!(
            "no held batch {prefix}; 'vellum quarantine list' shows them"
        ))),
        1 => Ok(hits.remove(0)),
        _ => Err(user(format!(
            "{prefix} names more than one held batch: {}; give more digits",
            hits.iter()
                .map(|h| h.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Holds what ops from other devices did between `old` and `new` (the
/// head before and after they were applied) when a batch of them deletes
/// or empties too many files; `changed` are the files whose state changed.
/// Returns the batches it held, already stored. Call it before the disk
/// is brought in line with `new`.
pub fn screen(
    v: &Vault,
    old: &VaultState,
    new: &VaultState,
    changed: &BTreeSet<FileId>,
) -> Result<Vec<Held>> {
    let me = v.device();
    let already = hold(v)?;
    // Per author: (hlc, op, file, change, old path, old hash).
    type Hit = (u64, OpId, FileId, Change, String, ContentHash);
    let mut hits: BTreeMap<DeviceId, Vec<Hit>> = BTreeMap::new();
    let mut authors: HashMap<OpId, (DeviceId, u64)> = HashMap::new();
    for id in changed {
        let Some(o) = old.files.get(id).filter(|f| f.exists) else {
            continue;
        };
        let Some(n) = new.files.get(id) else { continue };
        let change = if !n.exists {
            Change::Delete
        } else if n.size == 0 && o.size > 0 {
            Change::Empty
        } else {
            continue;
        };
        if already.covers(id, &o.path) {
            continue;
        }
        let (author, hlc_value) = match authors.get(&n.last_op) {
            Some(a) => *a,
            None => {
                let Some(m) = v.journal.op_meta(&n.last_op)? else {
                    continue;
                };
                authors.insert(n.last_op, (m.author, m.hlc));
                (m.author, m.hlc)
            }
        };
        if author == me {
            continue;
        }
        hits.entry(author).or_default().push((
            hlc_value,
            n.last_op,
            *id,
            change,
            o.path.clone(),
            o.hash,
        ));
    }
    let live_before = old.paths.len();
    let mut held = Vec::new();
    for (author, mut list) in hits {
        list.sort_by_key(|h| (h.0, h.1));
        let mut i = 0;
        while i < list.len() {
            // The ops within the window from list[i]...
            let start = hlc::wall_ms(list[i].0);
            let mut j = i;
            while j < list.len() && hlc::wall_ms(list[j].0) <= start + BATCH_WINDOW_MS {
                j += 1;
            }
            if !over_threshold(j - i, live_before) {
                i += 1;
                continue;
            }
            // ...and, once that is a batch, every op that follows within
            // the window of the one before it: a long burst is one batch.
            while j < list.len()
                && hlc::wall_ms(list[j].0) <= hlc::wall_ms(list[j - 1].0) + BATCH_WINDOW_MS
            {
                j += 1;
            }
            let name = new.device_names.get(&author).cloned();
            held.push(remote_batch(author, name, &list[i..j]));
            i = j;
        }
    }
    if !held.is_empty() {
        let mut batch = Batch::new();
        for h in &held {
            h.save(&mut batch);
            tracing::warn!(
                batch = %h.id,
                files = h.files.len(),
                "held a batch of changes from another device back from the disk; review it with 'vellum quarantine list'"
            );
        }
        v.journal.store().commit(batch, Durability::Durable)?;
    }
    Ok(held)
}

fn remote_batch(
    author: DeviceId,
    author_name: Option<String>,
    hits: &[(u64, OpId, FileId, Change, String, ContentHash)],
) -> Held {
    let mut ops: Vec<OpId> = Vec::new();
    for h in hits {
        if !ops.contains(&h.1) {
            ops.push(h.1);
        }
    }
    Held {
        id: ops[0].to_hex()[..12].to_string(),
        source: Source::Remote,
        author: Some(author.to_hex()),
        author_name,
        ops: ops.iter().map(OpId::to_hex).collect(),
        time: time_string(hits[0].0),
        files: hits
            .iter()
            .map(|(_, _, file, change, path, hash)| HeldFile {
                path: path.clone(),
                file: Some(file.to_hex()),
                change: *change,
                disk: Some(hash.to_hex()),
            })
            .collect(),
    }
}

/// A scan's held batch: `files` are what it would have recorded.
pub(crate) fn scan_batch(files: Vec<HeldFile>, now_ns: i64) -> Held {
    let mut h = blake3::Hasher::new();
    h.update(b"vellum-quarantine-scan");
    h.update(&now_ns.to_le_bytes());
    for f in &files {
        h.update(f.path.as_bytes());
        h.update(&[0]);
    }
    let time = jiff::Timestamp::from_nanosecond(i128::from(now_ns))
        .map(|t| t.to_string())
        .unwrap_or_default();
    Held {
        id: h.finalize().to_hex()[..12].to_string(),
        source: Source::Scan,
        author: None,
        author_name: None,
        ops: Vec::new(),
        time,
        files,
    }
}

/// Stores a scan's held batch with the scan's other writes.
pub(crate) fn save_into(h: &Held, batch: &mut Batch) {
    h.save(batch);
}

/// Every content `file` has had: what its Creates, Edits, Replaces and
/// Resolves left it holding.
pub(crate) fn versions_of(v: &Vault, file: FileId) -> Result<HashSet<ContentHash>> {
    let mut keys = Vec::new();
    v.journal
        .store()
        .scan_prefix(Ks::FileOps, &file.0, &mut |k, _| {
            keys.extend(OrderKey::from_bytes(&k[32..]));
            ControlFlow::Continue(())
        })?;
    let mut out = HashSet::new();
    for key in keys {
        let env = v.journal.load_at(&key)?;
        // An op this device cannot read yet says nothing about contents.
        let Ok(p) = v.journal.load_payload(&env) else {
            continue;
        };
        match p.action {
            Action::Create { body, .. }
            | Action::Replace { body, .. }
            | Action::Resolve { body, .. } => {
                out.insert(body.hash());
            }
            Action::Edit { result, .. } => {
                out.insert(result);
            }
            _ => {}
        }
    }
    Ok(out)
}

/// `vellum quarantine accept`: lets the batch reach the disk. A remote
/// batch's files are removed or emptied as the head says (after recording
/// any change the user made to them meanwhile); a scan's changes are
/// recorded as ops.
pub fn accept(v: &mut Vault, prefix: &str) -> Result<WriteReport> {
    let h = find(v, prefix)?;
    let paths = h.paths();
    let opts = ScanOpts {
        screen: false,
        release: Some(&h.id),
    };
    let report = scan::scan_with(v, Scope::Paths(&paths), opts)?;
    let changed = match h.source {
        Source::Remote => {
            let items: Vec<_> = paths.iter().map(|p| (p.clone(), None)).collect();
            settle(v, &items, Some(&h.id))?
        }
        Source::Scan => Vec::new(),
    };
    release(v, &h.id)?;
    Ok(WriteReport {
        ops_recorded: report.ops_recorded,
        changed,
        head: v.journal.admitted().to_point_string(),
    })
}

/// `vellum quarantine reject`: undoes the batch. A remote batch gets
/// compensating ops that give each file back the content it had before
/// (unless it changed again since); a scan's paths get the head's content
/// back on disk where the disk still holds what the scan found (history
/// holds those bytes), and anything else there is recorded.
pub fn reject(v: &mut Vault, prefix: &str) -> Result<WriteReport> {
    let h = find(v, prefix)?;
    let paths = h.paths();
    let opts = || ScanOpts {
        screen: false,
        release: Some(&h.id),
    };
    let (ops_recorded, changed) = match h.source {
        Source::Remote => {
            // First whatever the user did to the held files meanwhile.
            let scanned = scan::scan_with(v, Scope::Paths(&paths), opts())?;
            let payloads = compensate(v, &h)?;
            let n = payloads.len() as u64;
            v.append(payloads, Batch::new())?;
            let items: Vec<_> = paths.iter().map(|p| (p.clone(), None)).collect();
            (scanned.ops_recorded + n, settle(v, &items, Some(&h.id))?)
        }
        Source::Scan => {
            let mut items = Vec::new();
            for f in &h.files {
                let now = crate::disk::hash_file(&v.root, &f.path)?;
                let disk = f.disk.as_deref().and_then(ContentHash::from_hex);
                // Only what the scan found may go; a file changed since is
                // the user's and is recorded below.
                if now == disk {
                    items.push((f.path.clone(), disk));
                }
            }
            let changed = settle(v, &items, Some(&h.id))?;
            let scanned = scan::scan_with(v, Scope::Paths(&paths), opts())?;
            (scanned.ops_recorded, changed)
        }
    };
    release(v, &h.id)?;
    Ok(WriteReport {
        ops_recorded,
        changed,
        head: v.journal.admitted().to_point_string(),
    })
}

/// The ops that give each file of remote batch `h` its content from before
/// the batch: a Create at its old path for a deleted file (unless another
/// file took that path since), an Edit or Replace for an emptied one
/// (unless it was filled again since).
fn compensate(v: &mut Vault, h: &Held) -> Result<Vec<Payload>> {
    let head = v.head()?;
    let cause = Cause::Reject {
        batch: h.ops.first().cloned().unwrap_or_default(),
    };
    let mut out = Vec::new();
    for f in &h.files {
        let (Some(id), Some(was)) = (
            f.file.as_deref().and_then(FileId::from_hex),
            f.disk.as_deref().and_then(ContentHash::from_hex),
        ) else {
            continue;
        };
        let mtime_ms = v
            .disk_record(&f.path)?
            .map_or(now_ms() as i64, |r| crate::scan::mtime_ms(r.stat.mtime_ns));
        let cur = head.files.get(&id);
        match cur {
            Some(c) if c.exists && c.hash == was => {}
            Some(c) if c.exists && f.change == Change::Empty && c.size == 0 => {
                let body = body_of(&v.journal, id, was, v.journal.admitted())?;
                let want = FileState {
                    hash: was,
                    size: body.size(),
                    mtime_ms,
                    ..c.clone()
                };
                out.push(content_op(v, id, c, &body, &want, &cause)?);
            }
            Some(c) if c.exists => {}
            _ if head.file_at(&f.path).is_some() => {}
            _ => {
                let body = body_of(&v.journal, id, was, v.journal.admitted())?;
                out.push(Payload {
                    action: Action::Create {
                        path: f.path.clone(),
                        mtime_ms,
                        body,
                    },
                    cause: Some(cause.clone()),
                });
            }
        }
    }
    Ok(out)
}

/// Forgets held batch `id`: its paths follow the head again.
fn release(v: &Vault, id: &str) -> Result<()> {
    let mut batch = Batch::new();
    batch.delete(Ks::Quarantine, id.as_bytes().to_vec());
    v.journal.store().commit(batch, Durability::Durable)?;
    Ok(())
}
