//! The in-memory store, for tests and the simulator. It keeps what a crash
//! would keep apart from what it would lose: [`MemStore::crash`] drops every
//! write that was committed `Buffered` and never made durable.

use std::collections::{BTreeMap, HashMap};
use std::ops::{Bound, ControlFlow};
use std::sync::Mutex;

use super::{Batch, Durability, Ks, Store};
use crate::error::Result;

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Default)]
pub struct MemStore {
    // A std Mutex: the store is used from one thread at a time, and the lock
    // only makes `&self` writes possible, as with fjall.
    inner: Mutex<Inner>,
}

#[derive(Default, Clone)]
struct Inner {
    /// What readers see.
    live: HashMap<Ks, Map>,
    /// What survives a crash.
    durable: HashMap<Ks, Map>,
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Simulates a crash: every write not yet made durable is lost.
    pub fn crash(&self) {
        let mut inner = self.inner.lock().expect("mem store lock");
        inner.live = inner.durable.clone();
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self.inner.lock().expect("mem store lock"))
    }
}

fn apply(map: &mut HashMap<Ks, Map>, batch: &Batch) {
    for (ks, key, value) in &batch.writes {
        let m = map.entry(*ks).or_default();
        match value {
            Some(v) => m.insert(key.clone(), v.clone()),
            None => m.remove(key),
        };
    }
}

impl Store for MemStore {
    fn get(&self, ks: Ks, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.with(|i| i.live.get(&ks).and_then(|m| m.get(key).cloned())))
    }

    fn scan(
        &self,
        ks: Ks,
        range: (Bound<&[u8]>, Bound<&[u8]>),
        reverse: bool,
        f: &mut dyn FnMut(&[u8], &[u8]) -> ControlFlow<()>,
    ) -> Result<()> {
        // Copy the range out first so `f` may call back into the store.
        let items: Vec<(Vec<u8>, Vec<u8>)> = self.with(|i| {
            let Some(m) = i.live.get(&ks) else {
                return Vec::new();
            };
            let owned = (range.0.map(<[u8]>::to_vec), range.1.map(<[u8]>::to_vec));
            let it = m
                .range::<Vec<u8>, _>(owned)
                .map(|(k, v)| (k.clone(), v.clone()));
            if reverse {
                it.rev().collect()
            } else {
                it.collect()
            }
        });
        for (k, v) in items {
            if f(&k, &v).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn commit(&self, batch: Batch, durability: Durability) -> Result<()> {
        self.with(|i| {
            apply(&mut i.live, &batch);
            if durability == Durability::Durable {
                // A durable commit flushes everything before it too, as an
                // fsync of fjall's journal does.
                i.durable = i.live.clone();
            }
        });
        Ok(())
    }

    fn size_bytes(&self, ks: Ks) -> Result<u64> {
        Ok(self.with(|i| {
            i.live.get(&ks).map_or(0, |m| {
                m.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum()
            })
        }))
    }
}
