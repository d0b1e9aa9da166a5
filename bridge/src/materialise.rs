//! Bringing the disk in line with the head state after ops were written
//! (restore, rollback; import and sync later): removals first, then atomic
//! writes, then the materialised-state records, so a later scan sees
//! Vellum's own writes as known content, not as user edits. Files a
//! quarantined batch holds are left alone until it is accepted or rejected.
//!
//! Paths the state's vault-wide ignore rules match are left alone too:
//! never written, never removed, whatever the journal says of them. A file
//! the journal tracks and a new glob ignores thus stays on every disk as
//! it is, and keeps its history; once the glob is gone, the next full
//! scan records what the disk holds there and [`catch_up_disk`] writes
//! what it lacks (see `vault_config`).

use std::collections::BTreeSet;
use std::fs;
use std::sync::Arc;

use anyhow::Result;
use vellum_journal::payload::Body;
use vellum_journal::replay::{FileState, VaultState};
use vellum_journal::store::{Batch, Durability, Ks, Store};
use vellum_journal::{ContentHash, FileId};
use vellum_snapshots::contents::{body_of, write_body};

use crate::ignore_rules::Rules;
use crate::vault::{DiskRec, Stat, Vault, now_ns};
use crate::{disk, quarantine};

/// `Ks::Meta` key present while the disk is being brought in line with the
/// head, and left when some path could not be: a crash, a full disk, a
/// symlink in the way, or a file the user changed meanwhile. The next full
/// scan, or the next that records something, records what the user did
/// and then finishes the job ([`catch_up_disk`]).
const DISK_BEHIND: &[u8] = b"bridge_disk_behind";

/// `Ks::Meta` key: the ignore globs (JSON) the disk was last brought
/// wholly in line under. When the head's differ, a path may have stopped
/// being ignored while the disk lacks the head's file there, which no
/// pass wrote while it was ignored: [`note_ignore_change`] then marks the
/// disk behind.
const DISK_IGNORE: &[u8] = b"bridge_disk_ignore";

/// One pass of disk writes: the records to commit with them, the paths
/// written or removed, and how many could not be.
struct Pass<'a> {
    v: &'a Vault,
    /// The ignore rules of the state being written: matching paths are
    /// left alone.
    rules: Arc<Rules>,
    /// For a whole pass, the globs to note as the disk's once it is done.
    ignore: Option<&'a [String]>,
    batch: Batch,
    touched: BTreeSet<String>,
    behind: usize,
    first_error: Option<String>,
    /// The mark may go when this pass is done: it covers the whole vault,
    /// or no earlier pass left paths behind.
    may_clear: bool,
}

/// What a pass covers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// Some files: paths an earlier pass left behind stay behind.
    Some,
    /// Every path of the head and of the records.
    Whole,
}

impl<'a> Pass<'a> {
    /// A pass writing `state`, or some of its files.
    fn begin(v: &'a Vault, reach: Reach, state: &'a VaultState) -> Result<Pass<'a>> {
        let rules = v.rules_for(&state.ignore)?;
        let was_behind = disk_behind(v)?;
        if !was_behind {
            let mut mark = Batch::new();
            mark.put(Ks::Meta, DISK_BEHIND.to_vec(), Vec::new());
            v.journal.store().commit(mark, Durability::Durable)?;
        }
        Ok(Pass {
            v,
            rules,
            ignore: (reach == Reach::Whole).then_some(state.ignore.as_slice()),
            batch: Batch::new(),
            touched: BTreeSet::new(),
            behind: 0,
            first_error: None,
            may_clear: reach == Reach::Whole || !was_behind,
        })
    }

    /// Whether the disk at `p` holds what Vellum last wrote or read there,
    /// so it may be replaced: a file the user changed, created or deleted
    /// since the last scan is theirs until a scan records it (DESIGN §8:
    /// any local change is ingested before an overwrite).
    fn as_recorded(&self, p: &str, rec: Option<&DiskRec>) -> Result<bool> {
        match (fs::symlink_metadata(self.v.root.join(p)), rec) {
            (Err(e), rec) if e.kind() == std::io::ErrorKind::NotFound => Ok(rec.is_none()),
            (Err(e), _) => Err(e.into()),
            (Ok(_), None) => Ok(false),
            (Ok(m), Some(r)) if Stat::of(&m) == r.stat => Ok(true),
            (Ok(_), Some(r)) => Ok(disk::hash_file(&self.v.root, p)? == Some(r.hash)),
        }
    }

    fn fail(&mut self, p: &str, e: &anyhow::Error) {
        self.behind += 1;
        // The error names the path, which logs show only at debug level.
        tracing::warn!("a file could not be written; the next scan tries again");
        tracing::debug!("could not write {p}: {}", crate::error::one_line(e));
        if self.first_error.is_none() {
            self.first_error = Some(crate::error::one_line(e));
        }
    }

    fn skip(&mut self, p: &str) {
        self.behind += 1;
        tracing::debug!("{p} changed on disk since the last scan; written after the next one");
    }

    /// Whether `body` is an attachment whose chunks are still on their way
    /// from a peer: it is written once they arrive, not failed now.
    fn awaits_chunks(&self, body: &Body) -> Result<bool> {
        let Body::Blob(blob) = body else {
            return Ok(false);
        };
        for c in &blob.chunks {
            if self.v.journal.awaits_chunk(&c.id)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Writes live file `id` (state `f`) to its path.
    fn write(&mut self, id: FileId, f: &FileState) -> Result<()> {
        if self.rules.ignored(&f.path, false) {
            return Ok(());
        }
        let rec = self.v.disk_record(&f.path)?;
        match self.as_recorded(&f.path, rec.as_ref()) {
            Ok(true) => {}
            Ok(false) => {
                self.skip(&f.path);
                return Ok(());
            }
            Err(e) => {
                self.fail(&f.path, &e);
                return Ok(());
            }
        }
        let body = match body_of(&self.v.journal, id, f.hash, self.v.journal.admitted()) {
            Ok(b) => b,
            Err(e) => {
                self.fail(&f.path, &e.into());
                return Ok(());
            }
        };
        if self.awaits_chunks(&body)? {
            self.behind += 1;
            tracing::debug!("{} waits for its chunks", f.path);
            return Ok(());
        }
        match write_file(self.v, f, &body, rec.map(|r| r.hash), &mut self.batch) {
            Ok(()) => {
                self.touched.insert(f.path.clone());
            }
            Err(e) => self.fail(&f.path, &e),
        }
        Ok(())
    }

    /// Removes the file at `p`, unless it holds bytes no scan recorded.
    fn remove(&mut self, p: &str) -> Result<()> {
        // An ignored file is the user's alone: a delete in the journal
        // never reaches it.
        if self.rules.ignored(p, false) {
            return Ok(());
        }
        let rec = self.v.disk_record(p)?;
        let gone = fs::symlink_metadata(self.v.root.join(p))
            .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound);
        if !gone {
            match self.as_recorded(p, rec.as_ref()) {
                Ok(true) => {}
                Ok(false) => {
                    self.skip(p);
                    return Ok(());
                }
                Err(e) => {
                    self.fail(p, &e);
                    return Ok(());
                }
            }
            if let Err(e) = disk::remove_file(&self.v.root, p) {
                self.fail(p, &e);
                return Ok(());
            }
            self.touched.insert(p.to_string());
        }
        self.batch.delete(Ks::Disk, p.as_bytes().to_vec());
        Ok(())
    }

    /// Commits the records; the mark goes only if every path was done.
    fn finish(mut self) -> Result<Vec<String>> {
        if self.behind == 0 && self.may_clear {
            self.batch.delete(Ks::Meta, DISK_BEHIND.to_vec());
            if let Some(ignore) = self.ignore {
                self.batch
                    .put(Ks::Meta, DISK_IGNORE.to_vec(), ignore_bytes(ignore));
            }
        }
        self.v
            .journal
            .store()
            .commit(self.batch, Durability::Durable)?;
        if let Some(e) = self.first_error {
            anyhow::bail!(
                "{} file(s) could not be written to disk ({e}); the journal holds them, and the next scan writes them",
                self.behind
            );
        }
        Ok(self.touched.into_iter().collect())
    }
}

/// Writes what changed between `old` and `new` for `files`; returns the
/// paths touched, sorted.
pub fn materialise(
    v: &Vault,
    old: &VaultState,
    new: &VaultState,
    files: &BTreeSet<FileId>,
) -> Result<Vec<String>> {
    let mut pass = Pass::begin(v, Reach::Some, new)?;
    let hold = quarantine::hold(v)?;
    // Paths that will hold a file afterwards are never removed.
    let keep: BTreeSet<&String> = new.paths.keys().collect();
    for id in files {
        let Some(o) = old.files.get(id).filter(|f| f.exists) else {
            continue;
        };
        if hold.covers(id, &o.path) {
            continue;
        }
        let moved_or_gone = new
            .files
            .get(id)
            .is_none_or(|n| !n.exists || n.path != o.path);
        if moved_or_gone && !keep.contains(&o.path) {
            pass.remove(&o.path)?;
        }
    }
    for id in files {
        let Some(n) = new.files.get(id).filter(|f| f.exists) else {
            continue;
        };
        if hold.covers(id, &n.path) {
            continue;
        }
        let unchanged = old.files.get(id).is_some_and(|o| {
            o.exists && o.path == n.path && o.hash == n.hash && o.mtime_ms == n.mtime_ms
        });
        if unchanged {
            continue;
        }
        pass.write(*id, n)?;
    }
    pass.finish()
}

/// Writes the head's content of `paths` over what the disk holds there
/// (the scanner recorded it first): for a stale buffer saved over a sync
/// write, whose merge with the newer version the disk must now show.
pub fn rewrite(v: &mut Vault, paths: &[String]) -> Result<()> {
    if paths.is_empty() {
        return Ok(());
    }
    let head = v.head()?;
    let mut pass = Pass::begin(v, Reach::Some, &head)?;
    for p in paths {
        if let Some((id, f)) = head.file_at(p) {
            pass.write(id, f)?;
        }
    }
    pass.finish()?;
    Ok(())
}

/// Writes live file `id` (state `f`) to its path, and its record to
/// `batch`; `before` is the content recorded there.
fn write_file(
    v: &Vault,
    f: &FileState,
    body: &Body,
    before: Option<ContentHash>,
    batch: &mut Batch,
) -> Result<()> {
    let meta = disk::write_atomic(&v.root, &f.path, f.mtime_ms, &mut |out| {
        Ok(write_body(&v.journal, body, out)?)
    })?;
    let rec = DiskRec {
        hash: f.hash,
        stat: Stat::of(&meta),
        recorded_ns: now_ns(),
        replaced: before.filter(|b| *b != f.hash),
    };
    batch.put(Ks::Disk, f.path.as_bytes().to_vec(), rec.to_bytes());
    Ok(())
}

/// Writes every live file of `head` into the vault's folder, which holds
/// none of them yet (a join into an empty folder): no temp files and no
/// fsync per file, but one `syncfs` before the records commit, so the
/// folder is durable when this returns. Returns the paths written.
pub fn fill_fresh(v: &Vault, head: &VaultState) -> Result<Vec<String>> {
    let rules = v.rules_for(&head.ignore)?;
    let mut batch = Batch::new();
    let mut written = Vec::new();
    for (path, id, f) in head.live_files() {
        if rules.ignored(path, false) {
            continue;
        }
        let body = body_of(&v.journal, *id, f.hash, v.journal.admitted())?;
        let meta = disk::write_fresh(&v.root, path, f.mtime_ms, &mut |out| {
            Ok(write_body(&v.journal, &body, out)?)
        })?;
        let rec = DiskRec {
            hash: f.hash,
            stat: Stat::of(&meta),
            recorded_ns: now_ns(),
            replaced: None,
        };
        batch.put(Ks::Disk, path.as_bytes().to_vec(), rec.to_bytes());
        written.push(path.clone());
    }
    disk::sync_all(&v.root)?;
    v.journal.store().commit(batch, Durability::Durable)?;
    Ok(written)
}

/// Brings the disk in line with `new` from the materialised records rather
/// than from a previous state: for a journal whose records and head drifted
/// apart (one restored from an older copy), or a disk left behind the head
/// ([`DISK_BEHIND`]). Call it right after a scan, so the records describe
/// the disk. A path whose bytes are not the recorded ones is left alone.
pub fn sync_disk(v: &Vault, new: &VaultState) -> Result<Vec<String>> {
    let recs = v.disk_records()?;
    let hold = quarantine::hold(v)?;
    let mut pass = Pass::begin(v, Reach::Whole, new)?;
    for p in recs.keys() {
        if new.paths.contains_key(p) || hold.paths.contains(p) {
            continue;
        }
        pass.remove(p)?;
    }
    for (p, id, f) in new.live_files() {
        if recs.get(p).is_some_and(|r| r.hash == f.hash) || hold.covers(id, p) {
            continue;
        }
        pass.write(*id, f)?;
    }
    pass.finish()
}

/// Whether an earlier pass left the disk behind the head.
pub fn disk_behind(v: &Vault) -> Result<bool> {
    Ok(v.journal.store().get(Ks::Meta, DISK_BEHIND)?.is_some())
}

fn ignore_bytes(ignore: &[String]) -> Vec<u8> {
    serde_json::to_vec(ignore).expect("strings serialise")
}

/// Marks the disk behind `head` when its ignore globs are not those the
/// disk was last brought wholly in line under: a path that stopped being
/// ignored may lack the head's file, which no pass wrote while it was
/// ignored. Call it after a full scan, before [`catch_up_disk`]: the scan
/// has recorded what the disk holds at such paths, so the catch-up only
/// writes what is missing there, or what the disk holds as Vellum last
/// left it. A vault that never noted its globs notes them now.
pub fn note_ignore_change(v: &Vault, head: &VaultState) -> Result<()> {
    let now = ignore_bytes(&head.ignore);
    let mut batch = Batch::new();
    match v.journal.store().get(Ks::Meta, DISK_IGNORE)? {
        Some(seen) if seen == now => return Ok(()),
        Some(_) => batch.put(Ks::Meta, DISK_BEHIND.to_vec(), Vec::new()),
        None => batch.put(Ks::Meta, DISK_IGNORE.to_vec(), now),
    }
    v.journal.store().commit(batch, Durability::Durable)?;
    Ok(())
}

/// Finishes what an earlier pass could not write, if anything: call it
/// after a scan, which recorded what the user did meanwhile.
pub fn catch_up_disk(v: &mut Vault) -> Result<Vec<String>> {
    if !disk_behind(v)? {
        return Ok(Vec::new());
    }
    let head = v.head()?;
    sync_disk(v, &head)
}

/// Puts the head's content at each of `items`' paths on disk, for a held
/// batch being accepted or rejected (`release`, whose hold no longer
/// counts). What the disk holds there is dropped only if it is the
/// recorded content or the item's allowed hash: bytes history holds. Any
/// other content is left where it is (the next scan records it). Returns
/// the paths written or removed, sorted.
pub fn settle(
    v: &mut Vault,
    items: &[(String, Option<ContentHash>)],
    release: Option<&str>,
) -> Result<Vec<String>> {
    let head = v.head()?;
    let hold = quarantine::hold_except(v, release)?;
    let rules = v.rules_for(&head.ignore)?;
    let mut touched = BTreeSet::new();
    let mut batch = Batch::new();
    for (p, allowed) in items {
        if hold.paths.contains(p) || rules.ignored(p, false) {
            continue;
        }
        let rec = v.disk_record(p)?;
        let disk = disk::hash_file(&v.root, p)?;
        let droppable = |h: ContentHash| rec.is_some_and(|r| r.hash == h) || *allowed == Some(h);
        match head.file_at(p) {
            Some((id, f)) => {
                if hold.files.contains(&id) {
                    continue;
                }
                if disk == Some(f.hash) {
                    let meta = fs::symlink_metadata(v.root.join(p))?;
                    let rec = DiskRec {
                        hash: f.hash,
                        stat: Stat::of(&meta),
                        recorded_ns: now_ns(),
                        replaced: None,
                    };
                    batch.put(Ks::Disk, p.as_bytes().to_vec(), rec.to_bytes());
                } else if disk.is_none_or(droppable) {
                    let body = body_of(&v.journal, id, f.hash, v.journal.admitted())?;
                    write_file(v, f, &body, rec.map(|r| r.hash), &mut batch)?;
                    touched.insert(p.clone());
                } else {
                    tracing::warn!("a held file changed while it was being settled; left as it is");
                }
            }
            None => match disk {
                Some(h) if !droppable(h) => {
                    tracing::warn!("a held file changed while it was being settled; left as it is");
                }
                Some(_) => {
                    disk::remove_file(&v.root, p)?;
                    batch.delete(Ks::Disk, p.as_bytes().to_vec());
                    touched.insert(p.clone());
                }
                None => batch.delete(Ks::Disk, p.as_bytes().to_vec()),
            },
        }
    }
    v.journal.store().commit(batch, Durability::Durable)?;
    Ok(touched.into_iter().collect())
}
