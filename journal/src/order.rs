//! The total replay order `(lamport, author, OpId)`: a linear extension of
//! causality, identical on every peer.

use crate::id::{DeviceId, OpId};

pub const ORDER_KEY_BYTES: usize = 8 + 32 + 32;

#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
pub struct OrderKey {
    pub lamport: u64,
    pub author: DeviceId,
    pub id: OpId,
}

impl OrderKey {
    /// Big-endian lamport first, so byte order is replay order.
    pub fn to_bytes(&self) -> [u8; ORDER_KEY_BYTES] {
        let mut b = [0; ORDER_KEY_BYTES];
        b[..8].copy_from_slice(&self.lamport.to_be_bytes());
        b[8..40].copy_from_slice(&self.author.0);
        b[40..].copy_from_slice(&self.id.0);
        b
    }

    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != ORDER_KEY_BYTES {
            return None;
        }
        Some(OrderKey {
            lamport: u64::from_be_bytes(b[..8].try_into().ok()?),
            author: DeviceId::from_slice(&b[8..40])?,
            id: OpId::from_slice(&b[40..])?,
        })
    }
}
