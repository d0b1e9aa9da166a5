//! Version vectors: per author, the highest admitted seq and its op; per
//! branch, once an author's chain has forked (DESIGN §3).
//!
//! A vector names a causally closed set of ops: every entry's head and
//! everything before it on its author's chain. An author has one entry,
//! or one per branch if its chain forked; no entry's head is an ancestor
//! of another's. Which ops a forked author's entry names depends on the
//! chain's shape, so questions about forked authors go through the
//! journal (`Journal::includes`, `Journal::add_to`, `Journal::count_ops`).
//!
//! The canonical text form is `vv:` followed by lowercase RFC 4648 base32
//! (no padding) of the entries sorted by (device, seq, head), each
//! `author[32] ‖ seq u64 LE ‖ head OpId[32]`.

use std::collections::BTreeMap;

use data_encoding::{Encoding, Specification};

use crate::error::{Error, Result};
use crate::id::{DeviceId, OpId};

const ENTRY_BYTES: usize = 32 + 8 + 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub seq: u64,
    pub head: OpId,
}

/// Per author, its entries sorted by (seq, head); never empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionVector(BTreeMap<DeviceId, Vec<Entry>>);

fn base32_lower() -> Encoding {
    let mut spec = Specification::new();
    spec.symbols.push_str("abcdefghijklmnopqrstuvwxyz234567");
    spec.encoding().expect("static base32 spec is valid")
}

impl VersionVector {
    pub fn new() -> Self {
        Self::default()
    }

    /// The author's entry with the highest seq (its only one unless its
    /// chain forked).
    pub fn get(&self, author: &DeviceId) -> Option<Entry> {
        self.0.get(author).and_then(|v| v.last()).copied()
    }

    /// Every entry of the author: one per branch.
    pub fn heads(&self, author: &DeviceId) -> &[Entry] {
        self.0.get(author).map_or(&[], |v| &v[..])
    }

    /// The author's highest seq.
    pub fn seq(&self, author: &DeviceId) -> u64 {
        self.get(author).map_or(0, |e| e.seq)
    }

    /// Makes `(seq, head)` the author's only entry.
    pub fn set(&mut self, author: DeviceId, seq: u64, head: OpId) {
        self.0.insert(author, vec![Entry { seq, head }]);
    }

    /// Raises the entry of an author whose chain has not forked if `seq`
    /// is newer. (For a forked author, see `Journal::add_to`.)
    pub fn observe(&mut self, author: DeviceId, seq: u64, head: OpId) {
        if seq > self.seq(&author) {
            self.set(author, seq, head);
        }
    }

    /// Adds an entry beside the author's others (a branch).
    pub fn add_head(&mut self, author: DeviceId, e: Entry) {
        let v = self.0.entry(author).or_default();
        if let Err(i) = v.binary_search(&e) {
            v.insert(i, e);
        }
    }

    /// Removes one entry.
    pub fn remove_head(&mut self, author: &DeviceId, e: &Entry) {
        if let Some(v) = self.0.get_mut(author) {
            v.retain(|x| x != e);
            if v.is_empty() {
                self.0.remove(author);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether some author has more than one entry.
    pub fn has_forks(&self) -> bool {
        self.0.values().any(|v| v.len() > 1)
    }

    /// Total ops named when no author has forked: the sum of seqs. (With
    /// forks, see `Journal::count_ops`.)
    pub fn op_count(&self) -> u64 {
        self.0.values().flatten().map(|e| e.seq).sum()
    }

    /// Every entry, by author.
    pub fn iter(&self) -> impl Iterator<Item = (&DeviceId, &Entry)> {
        self.0
            .iter()
            .flat_map(|(a, v)| v.iter().map(move |e| (a, e)))
    }

    /// The authors named.
    pub fn authors(&self) -> impl Iterator<Item = &DeviceId> {
        self.0.keys()
    }

    /// Whether every op in `self` is also in `other`, when neither names a
    /// forked author. (With forks, ask `Journal::includes` per entry.)
    pub fn le(&self, other: &VersionVector) -> bool {
        self.iter().all(|(a, e)| e.seq <= other.seq(a))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(self.0.len() * ENTRY_BYTES);
        for (author, e) in self.iter() {
            b.extend_from_slice(&author.0);
            b.extend_from_slice(&e.seq.to_le_bytes());
            b.extend_from_slice(&e.head.0);
        }
        b
    }

    pub fn from_bytes(b: &[u8]) -> Result<Self> {
        if !b.len().is_multiple_of(ENTRY_BYTES) {
            return Err(Error::Corrupt("version vector has a partial entry".into()));
        }
        let mut vv = VersionVector::new();
        let mut last: Option<(DeviceId, Entry)> = None;
        for chunk in b.chunks_exact(ENTRY_BYTES) {
            let author = DeviceId::from_slice(&chunk[..32]).expect("32 bytes");
            let seq = u64::from_le_bytes(chunk[32..40].try_into().expect("8 bytes"));
            let head = OpId::from_slice(&chunk[40..]).expect("32 bytes");
            let e = Entry { seq, head };
            if last.is_some_and(|l| l >= (author, e)) || seq == 0 {
                return Err(Error::Corrupt("version vector is not canonical".into()));
            }
            last = Some((author, e));
            vv.add_head(author, e);
        }
        Ok(vv)
    }

    /// The canonical `vv:…` string.
    pub fn to_point_string(&self) -> String {
        format!("vv:{}", base32_lower().encode(&self.to_bytes()))
    }

    /// Parses a `vv:…` string; only the canonical form is accepted, so equal
    /// sets always have equal strings.
    pub fn parse_point(s: &str) -> Result<Self> {
        let body = s
            .strip_prefix("vv:")
            .ok_or_else(|| Error::BadPoint(format!("'{s}' is not a vv: point")))?;
        let bytes = base32_lower()
            .decode(body.as_bytes())
            .map_err(|_| Error::BadPoint(format!("'{s}' is not valid base32")))?;
        Self::from_bytes(&bytes)
            .map_err(|_| Error::BadPoint(format!("'{s}' is not a canonical version vector")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_string_round_trips_and_is_canonical() {
        let mut vv = VersionVector::new();
        vv.set(DeviceId([2; 32]), 7, OpId([9; 32]));
        vv.set(DeviceId([1; 32]), 3, OpId([8; 32]));
        let s = vv.to_point_string();
        assert!(s.starts_with("vv:"));
        assert!(!s.contains('='));
        assert_eq!(s, s.to_lowercase());
        assert_eq!(VersionVector::parse_point(&s).unwrap(), vv);
        assert!(VersionVector::parse_point(&s.to_uppercase()).is_err());
        assert!(VersionVector::parse_point("vv:zz").is_err());
    }
}
