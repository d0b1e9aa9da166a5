//! The control fields of control ops (DESIGN §3): membership in cleartext,
//! covered by the signature, so a peer that cannot decrypt payloads can
//! still check who may write. Layout in docs/PROTOCOL.md §1.5.
//!
//! This build admits one control op: adding a full member. Removal, blind
//! and recovery roles and key rotation arrive with the protocol issue; an
//! op using them stops admission with "upgrade required".

use crate::error::{Error, Result};
use crate::id::DeviceId;

/// The control type byte of a Member op.
const MEMBER: u8 = 1;
/// type u8 ‖ action u8 ‖ device[32] ‖ role u8 ‖ x25519[32] ‖ cutoff u64 LE.
const MEMBER_BYTES: usize = 1 + 1 + 32 + 1 + 32 + 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberAction {
    Add = 0,
    Remove = 1,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Full = 0,
    Blind = 1,
    Recovery = 2,
}

/// `Member { add | remove, device, role, x25519 key, cutoff }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub action: MemberAction,
    pub device: DeviceId,
    pub role: Role,
    /// The device's X25519 public key, for sealing vault keys to it.
    pub x25519: [u8; 32],
    /// For a removal: the hlc after which the device's ops have no effect.
    /// Zero for an add.
    pub cutoff: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Control {
    Member(Member),
}

impl Control {
    /// A full member joining.
    pub fn add_full_member(device: DeviceId, x25519: [u8; 32]) -> Control {
        Control::Member(Member {
            action: MemberAction::Add,
            device,
            role: Role::Full,
            x25519,
            cutoff: 0,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let Control::Member(m) = self;
        let mut b = Vec::with_capacity(MEMBER_BYTES);
        b.push(MEMBER);
        b.push(m.action as u8);
        b.extend_from_slice(&m.device.0);
        b.push(m.role as u8);
        b.extend_from_slice(&m.x25519);
        b.extend_from_slice(&m.cutoff.to_le_bytes());
        b
    }

    /// Parses control fields. An unknown type, action or role needs a newer
    /// build; a wrong length is malformed.
    pub fn parse(b: &[u8]) -> Result<Control> {
        match b.first() {
            Some(&MEMBER) => {}
            Some(t) => {
                return Err(Error::UpgradeRequired(format!(
                    "unknown control op type {t}"
                )));
            }
            None => return Err(Error::Malformed("empty control fields".into())),
        }
        if b.len() != MEMBER_BYTES {
            return Err(Error::Malformed(format!(
                "member fields are {} bytes, not {MEMBER_BYTES}",
                b.len()
            )));
        }
        let action = match b[1] {
            0 => MemberAction::Add,
            1 => MemberAction::Remove,
            a => return Err(Error::UpgradeRequired(format!("unknown member action {a}"))),
        };
        let role = match b[34] {
            0 => Role::Full,
            1 => Role::Blind,
            2 => Role::Recovery,
            r => return Err(Error::UpgradeRequired(format!("unknown member role {r}"))),
        };
        let device = DeviceId(b[2..34].try_into().expect("length checked"));
        let x25519 = b[35..67].try_into().expect("length checked");
        let cutoff = u64::from_le_bytes(b[67..75].try_into().expect("length checked"));
        Ok(Control::Member(Member {
            action,
            device,
            role,
            x25519,
            cutoff,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_round_trips_byte_for_byte() {
        let c = Control::add_full_member(DeviceId([7; 32]), [9; 32]);
        let b = c.encode();
        assert_eq!(b.len(), MEMBER_BYTES);
        assert_eq!(&b[..2], &[1, 0]);
        assert_eq!(b[34], 0);
        assert_eq!(Control::parse(&b).unwrap(), c);
    }

    #[test]
    fn unknown_and_short_fields_are_refused() {
        let b = Control::add_full_member(DeviceId([7; 32]), [9; 32]).encode();
        assert!(matches!(Control::parse(&b[..74]), Err(Error::Malformed(_))));
        assert!(matches!(Control::parse(&[]), Err(Error::Malformed(_))));
        let mut t = b.clone();
        t[0] = 2;
        assert!(matches!(Control::parse(&t), Err(Error::UpgradeRequired(_))));
        let mut r = b.clone();
        r[34] = 9;
        assert!(matches!(Control::parse(&r), Err(Error::UpgradeRequired(_))));
    }
}
