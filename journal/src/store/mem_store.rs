//! The in-memory store, for tests and the simulator. It knows what a crash
//! would lose: [`MemStore::crash`] undoes every write committed `Buffered`
//! since the last `Durable` commit.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex};

use super::{Batch, Durability, Ks, Store, Visit};
use crate::error::Result;

/// Keys and values are shared, so a scan's page, the undo log and a
/// snapshot copy pointers.
type Bytes = Arc<[u8]>;
type Map = BTreeMap<Bytes, Bytes>;

#[derive(Default)]
pub struct MemStore {
    // A std Mutex: the store is used from one thread at a time, and the lock
    // only makes `&self` writes possible, as with fjall.
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// One map per keyspace, at `Ks as usize`.
    live: [Map; Ks::ALL.len()],
    /// Previous values of everything written since the last durable
    /// commit, oldest first: replayed backwards, it restores what a crash
    /// would keep.
    undo: Vec<(Ks, Bytes, Option<Bytes>)>,
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Simulates a crash: every write not yet made durable is lost.
    pub fn crash(&self) {
        self.with(|i| {
            while let Some((ks, key, old)) = i.undo.pop() {
                let m = &mut i.live[ks as usize];
                match old {
                    Some(v) => m.insert(key, v),
                    None => m.remove(&key),
                };
            }
        });
    }

    /// A copy of everything the store holds now, as a backup of its folder
    /// would be: restoring it later rolls the store back to this moment.
    pub fn snapshot(&self) -> MemStore {
        let live = self.with(|i| i.live.clone());
        MemStore {
            inner: Mutex::new(Inner {
                live,
                undo: Vec::new(),
            }),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self.inner.lock().expect("mem store lock"))
    }
}

impl Store for MemStore {
    fn get(&self, ks: Ks, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.with(|i| i.live[ks as usize].get(key).map(|v| v.to_vec())))
    }

    fn get_head(&self, ks: Ks, key: &[u8], n: usize) -> Result<Option<Vec<u8>>> {
        Ok(self.with(|i| {
            i.live[ks as usize]
                .get(key)
                .map(|v| v[..n.min(v.len())].to_vec())
        }))
    }

    fn scan(
        &self,
        ks: Ks,
        range: (Bound<&[u8]>, Bound<&[u8]>),
        reverse: bool,
        f: &mut Visit<'_>,
    ) -> Result<()> {
        // Visit in pages, copying each out before calling `f`, so `f` may
        // call back into the store. Pages start small and double: most
        // scans stop after an entry or two.
        const FIRST_PAGE: usize = 4;
        const PAGE_MAX: usize = 256;
        let mut page_len = FIRST_PAGE;
        let mut lo: Bound<Bytes> = range.0.map(Arc::from);
        let mut hi: Bound<Bytes> = range.1.map(Arc::from);
        loop {
            let page: Vec<(Bytes, Bytes)> = self.with(|i| {
                let m = &i.live[ks as usize];
                let it =
                    m.range::<[u8], _>((lo.as_ref().map(|b| &b[..]), hi.as_ref().map(|b| &b[..])));
                let pick = |(k, v): (&Bytes, &Bytes)| (Arc::clone(k), Arc::clone(v));
                if reverse {
                    it.rev().take(page_len).map(pick).collect()
                } else {
                    it.take(page_len).map(pick).collect()
                }
            });
            let full = page.len() == page_len;
            for (k, v) in &page {
                if f(k, v).is_break() {
                    return Ok(());
                }
            }
            match page.last() {
                Some((k, _)) if full => {
                    if reverse {
                        hi = Bound::Excluded(Arc::clone(k));
                    } else {
                        lo = Bound::Excluded(Arc::clone(k));
                    }
                }
                _ => return Ok(()),
            }
            page_len = (page_len * 2).min(PAGE_MAX);
        }
    }

    fn commit(&self, batch: Batch, durability: Durability) -> Result<()> {
        self.with(|i| {
            for (ks, key, value) in batch.writes {
                let m = &mut i.live[ks as usize];
                let key: Bytes = key.into();
                let old = match value {
                    Some(v) => m.insert(Arc::clone(&key), v.into()),
                    None => m.remove(&key[..]),
                };
                if durability == Durability::Buffered {
                    i.undo.push((ks, key, old));
                }
            }
            if durability == Durability::Durable {
                // A durable commit flushes everything before it too, as an
                // fsync of fjall's journal does.
                i.undo.clear();
            }
        });
        Ok(())
    }

    fn size_bytes(&self, ks: Ks) -> Result<u64> {
        Ok(self.with(|i| {
            i.live[ks as usize]
                .iter()
                .map(|(k, v)| (k.len() + v.len()) as u64)
                .sum()
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::ops::ControlFlow;

    use super::*;

    #[test]
    fn each_keyspace_has_its_own_map() {
        for (i, ks) in Ks::ALL.iter().enumerate() {
            assert_eq!(*ks as usize, i, "{ks:?} is not at its index");
        }
        let s = MemStore::new();
        let mut b = Batch::new();
        for ks in Ks::ALL {
            b.put(ks, b"k".to_vec(), ks.name().as_bytes().to_vec());
        }
        s.commit(b, Durability::Durable).unwrap();
        for ks in Ks::ALL {
            assert_eq!(
                s.get(ks, b"k").unwrap(),
                Some(ks.name().as_bytes().to_vec())
            );
        }
    }

    #[test]
    fn crash_keeps_exactly_the_durable_writes() {
        let s = MemStore::new();
        let put = |k: &str, v: &str, d| {
            let mut b = Batch::new();
            b.put(Ks::Meta, k.as_bytes().to_vec(), v.as_bytes().to_vec());
            s.commit(b, d).unwrap();
        };
        put("a", "1", Durability::Durable);
        put("a", "2", Durability::Buffered);
        put("b", "1", Durability::Buffered);
        s.crash();
        assert_eq!(s.get(Ks::Meta, b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(s.get(Ks::Meta, b"b").unwrap(), None);
        put("b", "2", Durability::Buffered);
        put("c", "3", Durability::Durable);
        s.crash();
        assert_eq!(s.get(Ks::Meta, b"b").unwrap(), Some(b"2".to_vec()));
    }

    #[test]
    fn scan_pages_through_everything_in_both_directions() {
        let s = MemStore::new();
        let mut b = Batch::new();
        for i in 0u32..1000 {
            b.put(Ks::Order, i.to_be_bytes().to_vec(), vec![]);
        }
        s.commit(b, Durability::Durable).unwrap();
        for reverse in [false, true] {
            let mut seen = Vec::new();
            s.scan(
                Ks::Order,
                (Bound::Unbounded, Bound::Unbounded),
                reverse,
                &mut |k, _| {
                    seen.push(u32::from_be_bytes(k.try_into().unwrap()));
                    ControlFlow::Continue(())
                },
            )
            .unwrap();
            let mut want: Vec<u32> = (0..1000).collect();
            if reverse {
                want.reverse();
            }
            assert_eq!(seen, want);
        }
    }
}
