//! Version vectors: per author, the highest admitted seq and its op.
//!
//! The canonical text form is `vv:` followed by lowercase RFC 4648 base32
//! (no padding) of the entries sorted by device, each
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

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionVector(BTreeMap<DeviceId, Entry>);

fn base32_lower() -> Encoding {
    let mut spec = Specification::new();
    spec.symbols.push_str("abcdefghijklmnopqrstuvwxyz234567");
    spec.encoding().expect("static base32 spec is valid")
}

impl VersionVector {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, author: &DeviceId) -> Option<Entry> {
        self.0.get(author).copied()
    }

    pub fn seq(&self, author: &DeviceId) -> u64 {
        self.0.get(author).map_or(0, |e| e.seq)
    }

    pub fn set(&mut self, author: DeviceId, seq: u64, head: OpId) {
        self.0.insert(author, Entry { seq, head });
    }

    /// Raises the entry for `author` if `seq` is newer.
    pub fn observe(&mut self, author: DeviceId, seq: u64, head: OpId) {
        if seq > self.seq(&author) {
            self.set(author, seq, head);
        }
    }

    pub fn contains(&self, author: &DeviceId, seq: u64) -> bool {
        seq <= self.seq(author)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Total ops named: the sum of seqs.
    pub fn op_count(&self) -> u64 {
        self.0.values().map(|e| e.seq).sum()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&DeviceId, &Entry)> {
        self.0.iter()
    }

    /// Whether every op in `self` is also in `other`.
    pub fn le(&self, other: &VersionVector) -> bool {
        self.0.iter().all(|(a, e)| e.seq <= other.seq(a))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(self.0.len() * ENTRY_BYTES);
        for (author, e) in &self.0 {
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
        let mut last: Option<DeviceId> = None;
        for chunk in b.chunks_exact(ENTRY_BYTES) {
            let author = DeviceId::from_slice(&chunk[..32]).expect("32 bytes");
            let seq = u64::from_le_bytes(chunk[32..40].try_into().expect("8 bytes"));
            let head = OpId::from_slice(&chunk[40..]).expect("32 bytes");
            if last.is_some_and(|l| l >= author) || seq == 0 {
                return Err(Error::Corrupt("version vector is not canonical".into()));
            }
            last = Some(author);
            vv.set(author, seq, head);
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
