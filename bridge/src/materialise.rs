//! Bringing the disk in line with the head state after ops were written
//! (restore, rollback; import and sync later): removals first, then atomic
//! writes, then the materialised-state records, so a later scan sees
//! Vellum's own writes as known content, not as user edits.

use std::collections::BTreeSet;
use std::fs;

use anyhow::Result;
use vellum_journal::FileId;
use vellum_journal::replay::VaultState;
use vellum_journal::store::{Batch, Durability, Ks, Store};
use vellum_snapshots::contents::{body_of, write_body};

use crate::disk;
use crate::vault::{DiskRec, Stat, Vault, now_ns};

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
    // Paths that will hold a file afterwards are never removed.
    let keep: BTreeSet<&String> = new.paths.keys().collect();
    for id in files {
        let Some(o) = old.files.get(id).filter(|f| f.exists) else {
            continue;
        };
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
        let unchanged = old.files.get(id).is_some_and(|o| {
            o.exists && o.path == n.path && o.hash == n.hash && o.mtime_ms == n.mtime_ms
        });
        if unchanged {
            continue;
        }
        let body = body_of(&v.journal, *id, n.hash, v.journal.admitted())?;
        disk::write_atomic(&v.root, &n.path, n.mtime_ms, &mut |f| {
            Ok(write_body(&v.journal, &body, f)?)
        })?;
        let meta = fs::symlink_metadata(v.root.join(&n.path))?;
        let rec = DiskRec {
            hash: n.hash,
            stat: Stat::of(&meta),
            recorded_ns: now_ns(),
        };
        batch.put(Ks::Disk, n.path.as_bytes().to_vec(), rec.to_bytes());
        touched.insert(n.path.clone());
    }
    v.journal.store().commit(batch, Durability::Durable)?;
    Ok(touched.into_iter().collect())
}
