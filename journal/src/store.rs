//! Storage behind one small ordered key-value trait, so the same journal,
//! replay and time machine run on fjall (on disk) or in memory (tests and
//! the simulator, with simulated crash loss).
//!
//! Keys and values are opaque bytes here; `journal.rs` and the snapshots
//! crate own the record layouts.

mod fjall_store;
mod mem_store;

use std::ops::{Bound, ControlFlow};

pub use fjall_store::FjallStore;
pub use mem_store::MemStore;

use crate::error::Result;

/// The keyspaces. Each is an ordered map of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ks {
    /// OpId → its order key: the index of ops by id.
    Ops,
    /// author ‖ seq (BE) → OpId ‖ lamport (LE) ‖ hlc (LE).
    Chain,
    /// lamport (BE) ‖ author ‖ OpId → seq (LE) ‖ envelope bytes, exactly as
    /// signed: the ops themselves, in total replay order.
    Order,
    /// author ‖ seq (BE) → version vector of the op's causal past, other
    /// authors only; written for ops that have deps, so any op's causal
    /// past is one reverse seek away.
    Causal,
    /// Ops waiting for a missing prev/dep or for their hlc: OpId → bytes.
    Pending,
    /// Admitted control ops: author ‖ seq (BE) ‖ OpId → lamport (LE) ‖
    /// key_epoch ‖ control fields. Small; loaded whole when the journal
    /// opens, for membership and keys.
    Control,
    /// chunk id → nonce ‖ ciphertext.
    Chunks,
    /// dedup id → chunk id ‖ chunk key, for this device's dedup.
    Dedup,
    /// Named values: head vv, counters, vault id, genesis, config.
    Meta,
    /// Replayed head state, one record per file (FileId → record).
    State,
    /// FileId ‖ order key → OpId: each file's ops in replay order.
    FileOps,
    /// order key ‖ FileId → empty: the `FileOps` rows of ops a replay
    /// routed to a file they do not name (a Create that became an alias,
    /// an op on an alias). A rewind drops those past its point, and the
    /// replay writes them again as it decides.
    Routed,
    /// order key → the recorded effect of replaying the op: keyed in
    /// replay order, so a replay's lookups are sequential.
    Effects,
    /// ContentHash → bytes: the content cache (evictable).
    Content,
    /// op count (BE) ‖ last order key → checkpoint header: small, so the
    /// search for a serving checkpoint never reads a state.
    CheckpointHeaders,
    /// op count (BE) ‖ last order key → checkpoint state.
    Checkpoints,
    /// path → what Vellum last wrote or read there (the materialised state).
    Disk,
    /// batch id → a batch of changes held back from the disk for review
    /// (the bridge's quarantine, DESIGN §8). Device-local, like `Disk`.
    Quarantine,
}

impl Ks {
    pub const ALL: [Ks; 18] = [
        Ks::Ops,
        Ks::Chain,
        Ks::Order,
        Ks::Causal,
        Ks::Pending,
        Ks::Control,
        Ks::Chunks,
        Ks::Dedup,
        Ks::Meta,
        Ks::State,
        Ks::FileOps,
        Ks::Routed,
        Ks::Effects,
        Ks::Content,
        Ks::CheckpointHeaders,
        Ks::Checkpoints,
        Ks::Disk,
        Ks::Quarantine,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Ks::Ops => "ops",
            Ks::Chain => "chain",
            Ks::Order => "order",
            Ks::Causal => "causal",
            Ks::Pending => "pending",
            Ks::Control => "control",
            Ks::Chunks => "chunks",
            Ks::Dedup => "dedup",
            Ks::Meta => "meta",
            Ks::State => "state",
            Ks::FileOps => "file_ops",
            Ks::Routed => "routed",
            Ks::Effects => "effects",
            Ks::Content => "content",
            Ks::CheckpointHeaders => "checkpoint_headers",
            Ks::Checkpoints => "checkpoints",
            Ks::Disk => "disk",
            Ks::Quarantine => "quarantine",
        }
    }
}

/// A visitor over key-value pairs; breaking stops the scan.
pub type Visit<'a> = dyn FnMut(&[u8], &[u8]) -> ControlFlow<()> + 'a;

/// A set of writes applied atomically by [`Store::commit`].
#[derive(Default, Debug)]
pub struct Batch {
    pub(crate) writes: Vec<(Ks, Vec<u8>, Option<Vec<u8>>)>,
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn put(&mut self, ks: Ks, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.writes.push((ks, key.into(), Some(value.into())));
    }
    pub fn delete(&mut self, ks: Ks, key: impl Into<Vec<u8>>) {
        self.writes.push((ks, key.into(), None));
    }
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }
    pub fn len(&self) -> usize {
        self.writes.len()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Handed to the OS; survives a process crash, not a power cut.
    Buffered,
    /// fsynced before `commit` returns.
    Durable,
}

pub trait Store: Send + Sync {
    fn get(&self, ks: Ks, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// The first `n` bytes of the value at `key` (all of it if shorter):
    /// a record's fixed-size head, without copying the rest.
    fn get_head(&self, ks: Ks, key: &[u8], n: usize) -> Result<Option<Vec<u8>>> {
        Ok(self.get(ks, key)?.map(|mut v| {
            v.truncate(n);
            v
        }))
    }

    /// Visits keys in `range` in order (or reverse order) until `f` breaks.
    fn scan(
        &self,
        ks: Ks,
        range: (Bound<&[u8]>, Bound<&[u8]>),
        reverse: bool,
        f: &mut Visit<'_>,
    ) -> Result<()>;

    /// Applies every write in `batch` atomically.
    fn commit(&self, batch: Batch, durability: Durability) -> Result<()>;

    /// Bytes the keyspace occupies on disk (approximate for fjall).
    fn size_bytes(&self, ks: Ks) -> Result<u64>;

    /// Visits every key starting with `prefix`.
    fn scan_prefix(&self, ks: Ks, prefix: &[u8], f: &mut Visit<'_>) -> Result<()> {
        match prefix_successor(prefix) {
            Some(end) => self.scan(
                ks,
                (Bound::Included(prefix), Bound::Excluded(&end)),
                false,
                f,
            ),
            None => self.scan(ks, (Bound::Included(prefix), Bound::Unbounded), false, f),
        }
    }

    /// How many keys the keyspace holds (a full scan: for small keyspaces
    /// and checks, not hot paths).
    fn count(&self, ks: Ks) -> Result<u64> {
        let mut n = 0;
        self.scan(
            ks,
            (Bound::Unbounded, Bound::Unbounded),
            false,
            &mut |_, _| {
                n += 1;
                ControlFlow::Continue(())
            },
        )?;
        Ok(n)
    }

    /// The last key-value pair in `range`, if any.
    fn last_in(
        &self,
        ks: Ks,
        range: (Bound<&[u8]>, Bound<&[u8]>),
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let mut out = None;
        self.scan(ks, range, true, &mut |k, v| {
            out = Some((k.to_vec(), v.to_vec()));
            ControlFlow::Break(())
        })?;
        Ok(out)
    }
}

/// The smallest key greater than every key starting with `prefix`.
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `get_head` gives the start of a value, or all of a shorter one, the
    /// same from either store.
    #[test]
    fn get_head_reads_the_start_of_a_value_in_both_stores() {
        let dir = tempfile::tempdir().unwrap();
        let stores: [Box<dyn Store>; 2] = [
            Box::new(MemStore::new()),
            Box::new(FjallStore::open(dir.path()).unwrap()),
        ];
        for s in &stores {
            let mut b = Batch::new();
            b.put(Ks::Order, b"k".to_vec(), b"0123456789".to_vec());
            s.commit(b, Durability::Durable).unwrap();
            assert_eq!(
                s.get_head(Ks::Order, b"k", 4).unwrap(),
                Some(b"0123".to_vec())
            );
            assert_eq!(
                s.get_head(Ks::Order, b"k", 64).unwrap(),
                Some(b"0123456789".to_vec())
            );
            assert_eq!(s.get_head(Ks::Order, b"absent", 4).unwrap(), None);
        }
    }
}
