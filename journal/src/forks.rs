//! What forks mean for replay (DESIGN §3).
//!
//! Two ops with the same (author, seq) fork the author's chain. Both are
//! kept. Within a set of ops, an op of a forked author at or after the
//! point where its branches part is *disputed*: it takes effect only if it
//! is in the causal past of an op by an author that has not forked in the
//! set. Such an op vouches for it: the branch a device saw and built on is
//! the branch that counts. The rest stays in history as evidence, with no
//! effect.
//!
//! This is a function of the set alone, so every replica with the same ops
//! replays the same effects, whatever order the branches arrived in.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::id::{DeviceId, OpId};
use crate::journal::Journal;
use crate::store::Store;
use crate::vv::VersionVector;

/// The forks within one set of ops, and the disputed ops that take effect.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Disputes {
    /// Authors forked within the set: the lowest seq where their branches
    /// in the set differ.
    pub forked: BTreeMap<DeviceId, u64>,
    /// Forked authors' ops in the causal past of an op by an author that
    /// has not forked (the set's ops of unforked authors vouch for them).
    pub vouched: VersionVector,
}

impl Disputes {
    /// No author forked within the set: every op may take effect.
    pub fn is_empty(&self) -> bool {
        self.forked.is_empty()
    }

    /// `forked` count u32 LE, then (author ‖ seq LE) each, then `vouched`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = (self.forked.len() as u32).to_le_bytes().to_vec();
        for (a, seq) in &self.forked {
            b.extend_from_slice(&a.0);
            b.extend_from_slice(&seq.to_le_bytes());
        }
        b.extend_from_slice(&self.vouched.to_bytes());
        b
    }

    pub fn from_bytes(b: &[u8]) -> Result<Disputes> {
        let bad = || Error::Corrupt("fork record does not decode".into());
        let n = u32::from_le_bytes(b.get(..4).ok_or_else(bad)?.try_into().expect("4 bytes"));
        let end = 4 + 40 * n as usize;
        let body = b.get(4..end).ok_or_else(bad)?;
        let forked = body
            .chunks_exact(40)
            .map(|c| {
                (
                    DeviceId::from_slice(&c[..32]).expect("32 bytes"),
                    u64::from_le_bytes(c[32..].try_into().expect("8 bytes")),
                )
            })
            .collect();
        Ok(Disputes {
            forked,
            vouched: VersionVector::from_bytes(&b[end..])?,
        })
    }
}

impl<S: Store> Journal<S> {
    /// The forks within the causally closed set `set`.
    pub fn disputes(&self, set: &VersionVector) -> Result<Disputes> {
        let mut d = Disputes::default();
        if !set.has_forks() {
            return Ok(d);
        }
        for author in set.authors() {
            let heads = set.heads(author);
            for (i, x) in heads.iter().enumerate() {
                for y in &heads[i + 1..] {
                    let split = self.split_seq(author, (x.seq, &x.head), (y.seq, &y.head))?;
                    let f = d.forked.entry(*author).or_insert(split);
                    *f = (*f).min(split);
                }
            }
        }
        for author in set.authors() {
            if d.forked.contains_key(author) {
                continue;
            }
            let top = set.get(author).expect("named authors have an entry");
            let mut past = self.causal_past(author, top.seq, &top.head)?;
            self.add_to(&mut past, author, top.seq, &top.head)?;
            for (a, e) in past.iter() {
                if d.forked.contains_key(a) {
                    self.add_to(&mut d.vouched, a, e.seq, &e.head)?;
                }
            }
        }
        Ok(d)
    }

    /// Whether op `id` of `author` at `seq` is disputed in the set of `d`
    /// and nothing vouches for it: it then has no effect.
    pub fn unvouched(&self, d: &Disputes, author: &DeviceId, seq: u64, id: &OpId) -> Result<bool> {
        match d.forked.get(author) {
            Some(f) if seq >= *f => Ok(!self.includes(&d.vouched, author, seq, id)?),
            _ => Ok(false),
        }
    }

    /// The lowest seq at which the branches ending at `a` and `b` differ.
    fn split_seq(&self, author: &DeviceId, a: (u64, &OpId), b: (u64, &OpId)) -> Result<u64> {
        let top = a.0.min(b.0);
        let differ = |s: u64| -> Result<bool> {
            Ok(self.ancestor(author, a.1, a.0, s)?.id != self.ancestor(author, b.1, b.0, s)?.id)
        };
        if !differ(top)? {
            // One branch continues the other: they part just above it.
            return Ok(top + 1);
        }
        let (mut lo, mut hi) = (1, top);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if differ(mid)? {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Ok(lo)
    }
}
