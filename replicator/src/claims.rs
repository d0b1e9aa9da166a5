//! What the sessions of one device are asking their peers for, so that two
//! sessions do not fetch the same ops or chunks from two peers at once
//! (a device back online, with several peers holding what it lacks).
//!
//! Each session claims what it puts in a Want or WantChunks; another
//! session of the same device skips what is claimed and looks again once
//! the claim is released (answered, or its session ended) or has gone
//! stale ([`crate::session::WANT_TIMEOUT_MS`] without an answer). A
//! session made with [`crate::Session::new`] has claims of its own, so it
//! asks for everything, as a lone session must.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use vellum_journal::{DeviceId, OpId};

use crate::session::WANT_TIMEOUT_MS;

/// What one device's sessions are fetching, shared between them.
#[derive(Clone, Default)]
pub struct Claims(Arc<Mutex<Inner>>);

#[derive(Default)]
struct Inner {
    next_owner: u64,
    /// A branch (author, head) being fetched: by whom, since when.
    ops: HashMap<(DeviceId, OpId), (u64, u64)>,
    /// A chunk being fetched.
    chunks: HashMap<[u8; 32], (u64, u64)>,
}

impl Claims {
    /// A number for a new session, to claim under.
    pub(crate) fn owner(&self) -> u64 {
        let mut c = self.lock();
        c.next_owner += 1;
        c.next_owner
    }

    /// Claims the branch for `owner` unless another session holds a fresh
    /// claim on it; whether `owner` may ask for it.
    pub(crate) fn ops(&self, owner: u64, author: DeviceId, head: OpId, now: u64) -> bool {
        take(&mut self.lock().ops, (author, head), owner, now)
    }

    /// The same for a chunk.
    pub(crate) fn chunk(&self, owner: u64, id: [u8; 32], now: u64) -> bool {
        take(&mut self.lock().chunks, id, owner, now)
    }

    /// Releases `owner`'s claims on branches (its Want was answered).
    pub(crate) fn release_ops(&self, owner: u64) {
        self.lock().ops.retain(|_, (o, _)| *o != owner);
    }

    /// Releases `owner`'s claims on these chunks (they arrived, or the
    /// peer said it lacks them).
    pub(crate) fn release_chunks(&self, owner: u64, ids: impl IntoIterator<Item = [u8; 32]>) {
        let mut c = self.lock();
        for id in ids {
            if c.chunks.get(&id).is_some_and(|(o, _)| *o == owner) {
                c.chunks.remove(&id);
            }
        }
    }

    /// Releases everything `owner` claimed (its session ended).
    pub(crate) fn release_all(&self, owner: u64) {
        let mut c = self.lock();
        c.ops.retain(|_, (o, _)| *o != owner);
        c.chunks.retain(|_, (o, _)| *o != owner);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding it leaves plain maps: still usable.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn take<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, (u64, u64)>,
    key: K,
    owner: u64,
    now: u64,
) -> bool {
    match map.get(&key) {
        Some((o, since)) if *o != owner && now < since + WANT_TIMEOUT_MS => false,
        _ => {
            map.insert(key, (owner, now));
            true
        }
    }
}
