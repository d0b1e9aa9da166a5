//! Checkpoints: the full replayed state every N ops.
//!
//! A checkpoint records its applied version vector and the order key of
//! its last op. It serves a target set T only if its ops are a subset of T
//! and no op of T outside it sorts before its last op (DESIGN §5); then
//! the state at T is the checkpoint plus a replay of T's remaining ops.

use std::ops::{Bound, ControlFlow};

use rkyv::rancor;
use rkyv::util::AlignedVec;
use vellum_journal::control::{Control, MemberAction};
use vellum_journal::replay::VaultState;
use vellum_journal::store::{Batch, Ks, Store};
use vellum_journal::{Disputes, Error, Journal, OrderKey, Result, VersionVector};

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct Header {
    applied: Vec<u8>,
    last: OrderKey,
    ops: u64,
    /// `Disputes::removal_bytes` of the replay that wrote it: the head's,
    /// which may count removals outside the checkpoint's own ops.
    bars: Vec<u8>,
}

/// The key of a checkpoint's header and of its state, in their keyspaces.
fn key(ops: u64, last: &OrderKey) -> Vec<u8> {
    let mut k = ops.to_be_bytes().to_vec();
    k.extend_from_slice(&last.to_bytes());
    k
}

fn aligned(bytes: &[u8]) -> AlignedVec<16> {
    let mut a = AlignedVec::<16>::with_capacity(bytes.len());
    a.extend_from_slice(bytes);
    a
}

/// How many ops apart checkpoints are: at least the configured interval,
/// and more for big vaults, so a checkpoint (about 150 bytes per file) costs
/// at most ~300 bytes per op, less than the ops themselves.
pub fn interval_ops(live_files: usize, base: u64) -> u64 {
    base.max(live_files as u64 / 2)
}

/// Adds a checkpoint of `state` to `batch`, replayed with `disputes`.
pub fn write(state: &VaultState, disputes: &Disputes, batch: &mut Batch) {
    let Some(last) = state.last else { return };
    let header = Header {
        applied: state.applied_vv().to_bytes(),
        last,
        ops: state.ops,
        bars: disputes.removal_bytes(),
    };
    let h = rkyv::to_bytes::<rancor::Error>(&header).expect("in-memory serialisation");
    let s = rkyv::to_bytes::<rancor::Error>(state).expect("in-memory serialisation");
    batch.put(Ks::CheckpointHeaders, key(state.ops, &last), h.into_vec());
    batch.put(Ks::Checkpoints, key(state.ops, &last), s.into_vec());
}

/// The newest checkpoint that serves `target`, also requiring its last op
/// to sort before `before` when given (used when rewinding for late ops).
pub fn newest_serving<S: Store>(
    journal: &Journal<S>,
    target: &VersionVector,
    before: Option<&OrderKey>,
) -> Result<Option<VaultState>> {
    let bars = journal.disputes(target)?.removal_bytes();
    let mut found: Option<Vec<u8>> = None;
    let mut err = None;
    journal.store().scan(
        Ks::CheckpointHeaders,
        (Bound::Unbounded, Bound::Unbounded),
        true,
        &mut |k, v| match serves(journal, v, target, &bars, before) {
            Ok(true) => {
                found = Some(k.to_vec());
                ControlFlow::Break(())
            }
            Ok(false) => ControlFlow::Continue(()),
            Err(e) => {
                err = Some(e);
                ControlFlow::Break(())
            }
        },
    )?;
    if let Some(e) = err {
        return Err(e);
    }
    let Some(state_key) = found else {
        return Ok(None);
    };
    let bytes = journal
        .store()
        .get(Ks::Checkpoints, &state_key)?
        .ok_or_else(|| Error::Corrupt("checkpoint header without its state".into()))?;
    let state = rkyv::from_bytes::<VaultState, rancor::Error>(&aligned(&bytes))
        .map_err(|e| Error::Corrupt(format!("checkpoint does not decode: {e}")))?;
    Ok(Some(state))
}

fn serves<S: Store>(
    journal: &Journal<S>,
    header_bytes: &[u8],
    target: &VersionVector,
    bars: &[u8],
    before: Option<&OrderKey>,
) -> Result<bool> {
    // Zero-copy: the header is read in place, without deserialising.
    let buf = aligned(header_bytes);
    let header = rkyv::access::<ArchivedHeader, rancor::Error>(&buf)
        .map_err(|e| Error::Corrupt(format!("checkpoint header does not decode: {e}")))?;
    let last: OrderKey = rkyv::deserialize::<OrderKey, rancor::Error>(&header.last)
        .map_err(|e| Error::Corrupt(e.to_string()))?;
    if before.is_some_and(|b| last >= *b) {
        return Ok(false);
    }
    // Removals bar ops by the whole set they are in (DESIGN §7): the
    // checkpoint's state holds for the target only if both count the same.
    if header.bars.as_slice() != bars {
        return Ok(false);
    }
    // Where a chain forked, what a branch's ops do depends on the whole
    // set (DESIGN §3): replay from the start.
    if target.authors().any(|a| journal.forks().contains_key(a)) {
        return Ok(false);
    }
    let applied = VersionVector::from_bytes(&header.applied)?;
    if !applied.le(target) {
        return Ok(false);
    }
    // A removal bars its device's ops after the cutoff (DESIGN §7), ops the
    // checkpoint may have applied: one the checkpoint lacks rules it out.
    for c in journal.controls() {
        if let Control::Member(m) = &c.control
            && m.action == MemberAction::Remove
            && journal.includes(target, &c.author, c.seq, &c.id)?
            && !journal.includes(&applied, &c.author, c.seq, &c.id)?
        {
            return Ok(false);
        }
    }
    // Each author's first op in T beyond the checkpoint is its earliest
    // there (lamport rises along a chain): it must sort after `last`.
    for (author, e) in target.iter() {
        let have = applied.seq(author);
        if e.seq > have {
            let Some(first) = journal.chain_at(author, have + 1)?.into_iter().next() else {
                return Ok(false);
            };
            if first.order_key() < last {
                return Ok(false);
            }
        }
    }
    Ok(true)
}
