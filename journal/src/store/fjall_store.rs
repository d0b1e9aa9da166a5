//! The on-disk store: one fjall database, one keyspace per [`Ks`].

use std::collections::HashMap;
use std::ops::{Bound, ControlFlow};
use std::path::Path;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use super::{Batch, Durability, Ks, Store, Visit};
use crate::error::Result;

/// fjall's block cache. Serving a peer's initial sync reads every op
/// once, which fills the cache to its cap, and the daemon keeps it: an
/// inviter that served one join of a 10k-note vault went from 43 MB to
/// 67 MB of RSS with 16 MiB, to 56 MB with 4 MiB (DESIGN §11's budget is
/// 64 MB). Reads here are mostly sequential (replay, a peer's initial
/// sync), which a cache does not speed up, and point lookups of recent
/// ops, whose blocks the OS page cache holds anyway.
const CACHE_BYTES: u64 = 4 * 1024 * 1024;

const MEMTABLE_BYTES_MAX: u64 = 2 * 1024 * 1024;
const JOURNALING_BYTES_MAX: u64 = 64 * 1024 * 1024;

pub struct FjallStore {
    db: Database,
    keyspaces: HashMap<Ks, Keyspace>,
}

impl FjallStore {
    /// Opens (or creates) the database at `dir`. Reopening after a crash
    /// recovers every write that reached the OS.
    pub fn open(dir: &Path) -> Result<Self> {
        // Opening replays fjall's write-ahead journal into memtables, so
        // both are kept small: memtables flush at 8 MiB, and once sealed
        // journals pass 64 MiB (fjall's minimum) they are flushed and freed.
        //
        // The write-ahead journal is not compressed: op envelopes are
        // ciphertext, and fjall's recovery re-compresses every compressed
        // entry to check its checksum, which made opening ~20% slower.
        let db = Database::builder(dir)
            .cache_size(CACHE_BYTES)
            .max_journaling_size(JOURNALING_BYTES_MAX)
            .journal_compression(fjall::CompressionType::None)
            .open()?;
        let mut keyspaces = HashMap::new();
        for ks in Ks::ALL {
            let options = || {
                let o = KeyspaceCreateOptions::default().max_memtable_size(MEMTABLE_BYTES_MAX);
                if ks == Ks::Chunks {
                    // Chunks (64 KiB of ciphertext each) go to blob files
                    // when their memtable is flushed, and compaction moves
                    // only pointers to them. Without this, compacting a
                    // large attachment's tables held tens of MiB of blocks
                    // (a 256 MiB file peaked at 106 MB of RSS; now 44 MB,
                    // as for 64 MiB). Ciphertext does not compress.
                    o.with_kv_separation(Some(
                        fjall::KvSeparationOptions::default()
                            .compression(fjall::CompressionType::None),
                    ))
                } else {
                    o
                }
            };
            keyspaces.insert(ks, db.keyspace(ks.name(), options)?);
        }
        Ok(FjallStore { db, keyspaces })
    }

    fn ks(&self, ks: Ks) -> &Keyspace {
        &self.keyspaces[&ks]
    }

    /// Forces every buffered write to disk.
    pub fn persist(&self) -> Result<()> {
        self.db.persist(PersistMode::SyncAll)?;
        Ok(())
    }
}

impl Store for FjallStore {
    fn get(&self, ks: Ks, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.ks(ks).get(key)?.map(|v| v.to_vec()))
    }

    fn get_head(&self, ks: Ks, key: &[u8], n: usize) -> Result<Option<Vec<u8>>> {
        Ok(self.ks(ks).get(key)?.map(|v| v[..n.min(v.len())].to_vec()))
    }

    fn scan(
        &self,
        ks: Ks,
        range: (Bound<&[u8]>, Bound<&[u8]>),
        reverse: bool,
        f: &mut Visit<'_>,
    ) -> Result<()> {
        let iter = self.ks(ks).range::<&[u8], _>(range);
        let mut visit = |guard: fjall::Guard| -> Result<ControlFlow<()>> {
            let (k, v) = guard.into_inner()?;
            Ok(f(&k, &v))
        };
        if reverse {
            for g in iter.rev() {
                if visit(g)?.is_break() {
                    break;
                }
            }
        } else {
            for g in iter {
                if visit(g)?.is_break() {
                    break;
                }
            }
        }
        Ok(())
    }

    fn commit(&self, batch: Batch, durability: Durability) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mode = match durability {
            Durability::Buffered => None,
            Durability::Durable => Some(PersistMode::SyncAll),
        };
        let mut b = self.db.batch().durability(mode);
        for (ks, key, value) in batch.writes {
            match value {
                Some(v) => b.insert(self.ks(ks), key, v),
                None => b.remove(self.ks(ks), key),
            }
        }
        b.commit()?;
        Ok(())
    }

    fn size_bytes(&self, ks: Ks) -> Result<u64> {
        Ok(self.ks(ks).disk_space())
    }
}
