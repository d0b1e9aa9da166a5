//! Bringing the disk in line with the head state after ops were written
//! (restore, rollback; import and sync later): removals first, then atomic
//! writes, then the materialised-state records, so a later scan sees
//! Vellum's own writes as known content, not as user edits. Files a
//! quarantined batch holds are left alone until it is accepted or rejected.

use std::collections::BTreeSet;
use std::fs;

use anyhow::Result;
use vellum_journal::replay::{FileState, VaultState};
use vellum_journal::store::{Batch, Durability, Ks, Store};
use vellum_journal::{ContentHash, FileId};
use vellum_snapshots::contents::{body_of, write_body};

use crate::vault::{DiskRec, Stat, Vault, now_ns};
use crate::{disk, quarantine};

/// Writes what changed between `old` and `new` for `files`; returns the
/// paths touched, sorted.
pub fn materialise(
    v: &Vault,
    old: &VaultState,
    new: &VaultState,
    files: &BTreeSet<FileId>,
) -> Result<Vec<String>> {
    let mut touched = BTreeSet::new();
    let mut batch = Batch::new();
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
            disk::remove_file(&v.root, &o.path)?;
            batch.delete(Ks::Disk, o.path.as_bytes().to_vec());
            touched.insert(o.path.clone());
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
        write_file(v, *id, n, &mut batch)?;
        touched.insert(n.path.clone());
    }
    v.journal.store().commit(batch, Durability::Durable)?;
    Ok(touched.into_iter().collect())
}

/// Writes the head's content of `paths` over what the disk holds there
/// (the scanner recorded it first): for a stale buffer saved over a sync
/// write, whose merge with the newer version the disk must now show.
pub fn rewrite(v: &mut Vault, paths: &[String]) -> Result<()> {
    if paths.is_empty() {
        return Ok(());
    }
    let head = v.head()?;
    let mut batch = Batch::new();
    for p in paths {
        if let Some((id, f)) = head.file_at(p) {
            write_file(v, id, f, &mut batch)?;
        }
    }
    v.journal.store().commit(batch, Durability::Durable)?;
    Ok(())
}

/// Writes live file `id` (state `f`) to its path, and its record to `batch`.
fn write_file(v: &Vault, id: FileId, f: &FileState, batch: &mut Batch) -> Result<()> {
    let body = body_of(&v.journal, id, f.hash, v.journal.admitted())?;
    let before = v
        .journal
        .store()
        .get(Ks::Disk, f.path.as_bytes())?
        .and_then(|b| DiskRec::from_bytes(&b))
        .map(|r| r.hash);
    disk::write_atomic(&v.root, &f.path, f.mtime_ms, &mut |out| {
        Ok(write_body(&v.journal, &body, out)?)
    })?;
    let meta = fs::symlink_metadata(v.root.join(&f.path))?;
    let rec = DiskRec {
        hash: f.hash,
        stat: Stat::of(&meta),
        recorded_ns: now_ns(),
        replaced: before.filter(|b| *b != f.hash),
    };
    batch.put(Ks::Disk, f.path.as_bytes().to_vec(), rec.to_bytes());
    Ok(())
}

/// Brings the disk in line with `new` from the materialised records rather
/// than from a previous state: for a journal whose records and head drifted
/// apart (one restored from an older copy). Call it right after a scan, so
/// the records describe the disk. A recorded path that `new` lacks is
/// removed only if its bytes are still the recorded ones.
pub fn sync_disk(v: &Vault, new: &VaultState) -> Result<Vec<String>> {
    let recs = v.disk_records()?;
    let hold = quarantine::hold(v)?;
    let mut touched = BTreeSet::new();
    let mut batch = Batch::new();
    for (p, r) in &recs {
        if new.paths.contains_key(p) || hold.paths.contains(p) {
            continue;
        }
        let on_disk = fs::read(v.root.join(p)).ok().map(|b| ContentHash::of(&b));
        if on_disk.is_none_or(|h| h == r.hash) {
            disk::remove_file(&v.root, p)?;
            batch.delete(Ks::Disk, p.as_bytes().to_vec());
            touched.insert(p.clone());
        }
    }
    for (p, id, f) in new.live_files() {
        if recs.get(p).is_some_and(|r| r.hash == f.hash) || hold.covers(id, p) {
            continue;
        }
        write_file(v, *id, f, &mut batch)?;
        touched.insert(p.clone());
    }
    v.journal.store().commit(batch, Durability::Durable)?;
    Ok(touched.into_iter().collect())
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
    let mut touched = BTreeSet::new();
    let mut batch = Batch::new();
    for (p, allowed) in items {
        if hold.paths.contains(p) {
            continue;
        }
        let rec = v
            .journal
            .store()
            .get(Ks::Disk, p.as_bytes())?
            .and_then(|b| DiskRec::from_bytes(&b));
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
                    write_file(v, id, f, &mut batch)?;
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
