//! The control fields of control ops (DESIGN §3, §7): membership and key
//! changes in cleartext, covered by the signature, so a peer that cannot
//! decrypt payloads (a blind member, a relay) can still check who may
//! write. Sealed keys sit in these fields too, readable only by their
//! recipient. Byte layouts in docs/PROTOCOL.md §1.5.

use crate::error::{Error, Result};
use crate::id::{DeviceId, OpId};
use crate::keys::SEAL_BYTES;

const MEMBER: u8 = 1;
const KEY_ROTATE: u8 = 2;
const KEY_SHARE: u8 = 3;

/// Nonce ‖ XChaCha20-Poly1305 of the previous epoch key under the new one.
pub const BACK_BYTES: usize = 24 + 32 + 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MemberAction {
    Add = 0,
    Remove = 1,
}

/// What a member may do (DESIGN §7). Full members read and write notes and
/// change membership; a blind member only stores and relays; the recovery
/// identity (from `key export`) changes membership and keys but writes no
/// notes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Full = 0,
    Blind = 1,
    Recovery = 2,
}

impl Role {
    /// Whether the role may write content ops.
    pub fn writes_notes(self) -> bool {
        self == Role::Full
    }

    /// Whether the role may add and remove members and rotate keys.
    pub fn manages(self) -> bool {
        matches!(self, Role::Full | Role::Recovery)
    }

    /// Whether the role holds the vault keys.
    pub fn reads(self) -> bool {
        matches!(self, Role::Full | Role::Recovery)
    }
}

/// `Member { add | remove, device, role, x25519 key, cutoff }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub action: MemberAction,
    pub device: DeviceId,
    pub role: Role,
    /// The device's X25519 public key, for sealing vault keys to it. It is
    /// the Montgomery form of the device's ed25519 key (`keys::x25519_public`).
    pub x25519: [u8; 32],
    /// For a removal: the removed device's last op that keeps its effect
    /// (zero: none of its ops in the remover's past). Zero for an add.
    pub cutoff: OpId,
    /// For an add of a full or recovery member: the key of the op's own
    /// `key_epoch`, sealed to the new member. Empty otherwise.
    pub seal: Vec<u8>,
}

/// One sealed key for one device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    pub device: DeviceId,
    pub seal: [u8; SEAL_BYTES],
}

/// `KeyRotate`: a new epoch, whose id is this op's id. Its key is sealed to
/// each recipient; `back` encrypts the op's own `key_epoch` key under the
/// new key, so whoever holds an epoch holds every epoch before it on its
/// chain. `check` commits to the new key, so a key shared later can be
/// verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRotate {
    pub check: [u8; 32],
    pub back: [u8; BACK_BYTES],
    pub sealed: Vec<Sealed>,
}

/// `KeyShare`: the key of an existing `epoch`, sealed to members that
/// lacked it (added concurrently with a rotation, for instance).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyShare {
    pub epoch: OpId,
    pub sealed: Vec<Sealed>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Control {
    Member(Member),
    KeyRotate(KeyRotate),
    KeyShare(KeyShare),
}

impl Control {
    /// A member joining with `role`; `seal` is the current epoch key sealed
    /// to it (empty for a blind member).
    pub fn add_member(device: DeviceId, role: Role, seal: Vec<u8>) -> Control {
        Control::Member(Member {
            action: MemberAction::Add,
            device,
            role,
            x25519: crate::keys::x25519_of(&device).unwrap_or([0; 32]),
            cutoff: OpId::ZERO,
            seal,
        })
    }

    /// A removal of `device`, whose ops after `cutoff` lose their effect.
    pub fn remove_member(device: DeviceId, role: Role, cutoff: OpId) -> Control {
        Control::Member(Member {
            action: MemberAction::Remove,
            device,
            role,
            x25519: crate::keys::x25519_of(&device).unwrap_or([0; 32]),
            cutoff,
            seal: Vec::new(),
        })
    }

    /// The keys sealed in these fields: (device, seal).
    pub fn seals(&self) -> Vec<(DeviceId, &[u8])> {
        match self {
            Control::Member(m) if !m.seal.is_empty() => vec![(m.device, &m.seal[..])],
            Control::Member(_) => Vec::new(),
            Control::KeyRotate(r) => r.sealed.iter().map(|s| (s.device, &s.seal[..])).collect(),
            Control::KeyShare(s) => s.sealed.iter().map(|s| (s.device, &s.seal[..])).collect(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        match self {
            Control::Member(m) => {
                b.push(MEMBER);
                b.push(m.action as u8);
                b.extend_from_slice(&m.device.0);
                b.push(m.role as u8);
                b.extend_from_slice(&m.x25519);
                b.extend_from_slice(&m.cutoff.0);
                b.extend_from_slice(&(m.seal.len() as u16).to_le_bytes());
                b.extend_from_slice(&m.seal);
            }
            Control::KeyRotate(r) => {
                b.push(KEY_ROTATE);
                b.extend_from_slice(&r.check);
                b.extend_from_slice(&r.back);
                encode_sealed(&mut b, &r.sealed);
            }
            Control::KeyShare(s) => {
                b.push(KEY_SHARE);
                b.extend_from_slice(&s.epoch.0);
                encode_sealed(&mut b, &s.sealed);
            }
        }
        b
    }

    /// Parses control fields. An unknown type, action or role needs a newer
    /// build; a wrong length is malformed.
    pub fn parse(b: &[u8]) -> Result<Control> {
        let mut r = Reader { b, at: 1 };
        let c = match b.first() {
            Some(&MEMBER) => {
                let action = match r.u8()? {
                    0 => MemberAction::Add,
                    1 => MemberAction::Remove,
                    a => return Err(Error::UpgradeRequired(format!("unknown member action {a}"))),
                };
                let device = DeviceId(r.array()?);
                let role = match r.u8()? {
                    0 => Role::Full,
                    1 => Role::Blind,
                    2 => Role::Recovery,
                    x => return Err(Error::UpgradeRequired(format!("unknown member role {x}"))),
                };
                let x25519 = r.array()?;
                let cutoff = OpId(r.array()?);
                let n = u16::from_le_bytes(r.array()?) as usize;
                let seal = r.take(n)?.to_vec();
                if !(seal.is_empty() || seal.len() == SEAL_BYTES) {
                    return Err(Error::Malformed(format!(
                        "a member's sealed key is {} bytes",
                        seal.len()
                    )));
                }
                Control::Member(Member {
                    action,
                    device,
                    role,
                    x25519,
                    cutoff,
                    seal,
                })
            }
            Some(&KEY_ROTATE) => Control::KeyRotate(KeyRotate {
                check: r.array()?,
                back: r.array()?,
                sealed: r.sealed()?,
            }),
            Some(&KEY_SHARE) => Control::KeyShare(KeyShare {
                epoch: OpId(r.array()?),
                sealed: r.sealed()?,
            }),
            Some(t) => {
                return Err(Error::UpgradeRequired(format!(
                    "unknown control op type {t}"
                )));
            }
            None => return Err(Error::Malformed("empty control fields".into())),
        };
        if r.at != b.len() {
            return Err(Error::Malformed(format!(
                "{} bytes after the control fields",
                b.len() - r.at
            )));
        }
        Ok(c)
    }
}

fn encode_sealed(b: &mut Vec<u8>, sealed: &[Sealed]) {
    b.extend_from_slice(&(sealed.len() as u16).to_le_bytes());
    for s in sealed {
        b.extend_from_slice(&s.device.0);
        b.extend_from_slice(&s.seal);
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.b.len());
        let end = end.ok_or_else(|| Error::Malformed("control fields are truncated".into()))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("length taken"))
    }

    fn sealed(&mut self) -> Result<Vec<Sealed>> {
        let n = u16::from_le_bytes(self.array()?) as usize;
        let mut out = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            let device = DeviceId(self.array()?);
            if out.iter().any(|s: &Sealed| s.device == device) {
                return Err(Error::Malformed(
                    "a key is sealed twice to one device".into(),
                ));
            }
            out.push(Sealed {
                device,
                seal: self.array()?,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<Control> {
        let d = DeviceId([7; 32]);
        vec![
            Control::add_member(d, Role::Full, vec![3; SEAL_BYTES]),
            Control::add_member(d, Role::Blind, vec![]),
            Control::remove_member(d, Role::Full, OpId([4; 32])),
            Control::KeyRotate(KeyRotate {
                check: [1; 32],
                back: [2; BACK_BYTES],
                sealed: vec![
                    Sealed {
                        device: d,
                        seal: [5; SEAL_BYTES],
                    },
                    Sealed {
                        device: DeviceId([8; 32]),
                        seal: [6; SEAL_BYTES],
                    },
                ],
            }),
            Control::KeyShare(KeyShare {
                epoch: OpId([9; 32]),
                sealed: vec![Sealed {
                    device: d,
                    seal: [5; SEAL_BYTES],
                }],
            }),
        ]
    }

    #[test]
    fn every_control_round_trips_byte_for_byte() {
        for c in all() {
            let b = c.encode();
            assert_eq!(Control::parse(&b).unwrap(), c);
            assert_eq!(Control::parse(&b).unwrap().encode(), b);
        }
        let member = Control::add_member(DeviceId([7; 32]), Role::Full, vec![]).encode();
        assert_eq!(member.len(), 1 + 1 + 32 + 1 + 32 + 32 + 2);
        assert_eq!(&member[..2], &[1, 0]);
    }

    #[test]
    fn unknown_short_and_long_fields_are_refused() {
        for c in all() {
            let b = c.encode();
            for cut in 0..b.len() {
                assert!(
                    matches!(Control::parse(&b[..cut]), Err(Error::Malformed(_))),
                    "{c:?} cut at {cut}"
                );
            }
            let mut long = b.clone();
            long.push(0);
            assert!(matches!(Control::parse(&long), Err(Error::Malformed(_))));
        }
        let b = Control::add_member(DeviceId([7; 32]), Role::Full, vec![]).encode();
        let mut t = b.clone();
        t[0] = 9;
        assert!(matches!(Control::parse(&t), Err(Error::UpgradeRequired(_))));
        let mut r = b.clone();
        r[34] = 9;
        assert!(matches!(Control::parse(&r), Err(Error::UpgradeRequired(_))));
    }
}
