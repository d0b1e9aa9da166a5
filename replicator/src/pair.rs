//! Pairing (DESIGN §7): the invite code, the messages of `/vellum/pair/1`
//! and the transcript's proof and short authentication string (SAS).
//! Pure functions and byte layouts (docs/PROTOCOL.md §12); the daemon and
//! `vellum join` drive them over a libp2p stream.
//!
//! The exchange, joiner J to inviter I, on a stream the joiner opens:
//!
//! ```text
//! J → I  Hello     { vault, nonce_j, name }
//! I → J  Challenge { nonce_i }
//! J → I  Proof     { HMAC(secret, "vellum-pair-v1" ‖ transcript) }
//!        (I checks it; both show the SAS; a person approves on I)
//! I → J  Welcome   { genesis, genesis author, the Member add }
//!        then session messages, as on a sync stream
//! I → J  Refused   { reason }   instead, at any point
//! ```
//!
//! The transcript binds the vault, both peer ids (authenticated by the
//! Noise handshake) and both nonces: a relay in the middle is a different
//! peer id on each side, so each side shows a different SAS.
//!
//! With the 8-digit short code instead of the long one, the joiner finds
//! the inviter by mDNS and the two first run SPAKE2 on the digits, bound
//! to both peer ids; the key it gives both sides is the secret of the
//! exchange above, which then goes on as with a long code:
//!
//! ```text
//! J → I  PakeStart { SPAKE2 message A }
//! I → J  PakeReply { vault, SPAKE2 message B }
//!        (both: secret = the SPAKE2 key; then Hello … as above)
//! ```
//!
//! A wrong code gives the two sides different keys, so the joiner's proof
//! fails, and the invite (one try) is over. Someone on the LAN who does
//! not know the code gets one guess in 10^8 per invite.

use hmac::{KeyInit, Mac};
use spake2::{Ed25519Group, Identity, Password, Spake2};
use vellum_journal::{DeviceId, OpId, VaultId};

/// Bytes of an invite's secret (128 bits).
pub const SECRET_BYTES: usize = 16;
/// Addresses an invite code carries at most.
pub const CODE_ADDRS_MAX: usize = 8;
/// A joiner's device name is cut to this many bytes.
pub const NAME_BYTES_MAX: usize = 256;
/// Strings in pairing messages (names, reasons) are cut to this many bytes.
pub const STRING_BYTES_MAX: usize = 1024;
/// Digits of a short code.
pub const SHORT_CODE_DIGITS: usize = 8;
/// Bytes of a SPAKE2 message (Ed25519 group: a side byte and a point).
pub const PAKE_MSG_BYTES: usize = 33;
/// What every invite code starts with (then lowercase base32).
pub const CODE_PREFIX: &str = "vellum1";
const CODE_VERSION: u8 = 1;
const PAIR_VERSION: u8 = 1;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PairError {
    #[error("this is not a vellum invite code: {0}")]
    BadCode(String),
    #[error("a malformed pairing message: {0}")]
    BadMessage(String),
}

/// What a long invite code (and its QR code) holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invite {
    pub vault: VaultId,
    /// The inviting device: its id is its libp2p identity.
    pub inviter: DeviceId,
    pub secret: [u8; SECRET_BYTES],
    /// Where the inviter listens (libp2p multiaddrs, as bytes).
    pub addrs: Vec<Vec<u8>>,
}

impl Invite {
    /// `vellum1` then lowercase unpadded base32 of: version (1), vault
    /// (16), inviter (32), secret (16), address count (1), then each
    /// address as a length byte and its multiaddr bytes.
    pub fn encode(&self) -> String {
        let mut b = vec![CODE_VERSION];
        b.extend_from_slice(&self.vault.0);
        b.extend_from_slice(&self.inviter.0);
        b.extend_from_slice(&self.secret);
        let addrs: Vec<&Vec<u8>> = self
            .addrs
            .iter()
            .filter(|a| a.len() <= u8::MAX as usize)
            .take(CODE_ADDRS_MAX)
            .collect();
        b.push(addrs.len() as u8);
        for a in addrs {
            b.push(a.len() as u8);
            b.extend_from_slice(a);
        }
        format!(
            "{CODE_PREFIX}{}",
            data_encoding::BASE32_NOPAD.encode(&b).to_ascii_lowercase()
        )
    }

    /// Reads a code as `encode` writes it; spaces, dashes and case do not
    /// matter (codes get retyped and wrapped).
    pub fn decode(code: &str) -> Result<Invite, PairError> {
        let clean: String = code
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect::<String>()
            .to_ascii_lowercase();
        let body = clean
            .strip_prefix(CODE_PREFIX)
            .ok_or_else(|| PairError::BadCode(format!("it does not start with {CODE_PREFIX}")))?;
        let b = data_encoding::BASE32_NOPAD
            .decode(body.to_ascii_uppercase().as_bytes())
            .map_err(|_| PairError::BadCode("it is damaged (check for a typo)".into()))?;
        let mut r = Reader(&b);
        let version = r.u8()?;
        if version != CODE_VERSION {
            return Err(PairError::BadCode(format!(
                "it is of version {version}; this vellum reads version {CODE_VERSION}"
            )));
        }
        let vault = VaultId(r.array()?);
        let inviter = DeviceId(r.array()?);
        let secret = r.array()?;
        let n = r.u8()? as usize;
        let mut addrs = Vec::with_capacity(n);
        for _ in 0..n {
            let len = r.u8()? as usize;
            addrs.push(r.take(len)?.to_vec());
        }
        if !r.0.is_empty() {
            return Err(PairError::BadCode("it has bytes past its end".into()));
        }
        Ok(Invite {
            vault,
            inviter,
            secret,
            addrs,
        })
    }
}

/// A short code from 8 random bytes: 8 decimal digits (the bias of a
/// 64-bit value reduced mod 10^8 is below 10^-10).
pub fn short_code(random: [u8; 8]) -> String {
    format!("{:08}", u64::from_be_bytes(random) % 100_000_000)
}

/// The digits of a typed short code (spaces and dashes ignored), if it is
/// one.
pub fn parse_short_code(typed: &str) -> Option<String> {
    let digits: String = typed.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    (digits.len() == SHORT_CODE_DIGITS && digits.bytes().all(|b| b.is_ascii_digit()))
        .then_some(digits)
}

/// `Spake2::start_a_with_rng` or `start_b_with_rng`.
type SpakeStart<R> = fn(&Password, &Identity, &Identity, R) -> (Spake2<Ed25519Group>, Vec<u8>);

/// One side of SPAKE2 over a short code, bound to both peer ids (the ones
/// the Noise handshake authenticated).
pub struct Pake(Spake2<Ed25519Group>);

impl Pake {
    /// The joiner's side (SPAKE2's A) and its message.
    pub fn joiner(
        code: &str,
        joiner_peer: &[u8],
        inviter_peer: &[u8],
        rng: impl rand::CryptoRng,
    ) -> (Pake, [u8; PAKE_MSG_BYTES]) {
        Pake::start(
            Spake2::start_a_with_rng,
            code,
            joiner_peer,
            inviter_peer,
            rng,
        )
    }

    /// The inviter's side (SPAKE2's B) and its message.
    pub fn inviter(
        code: &str,
        joiner_peer: &[u8],
        inviter_peer: &[u8],
        rng: impl rand::CryptoRng,
    ) -> (Pake, [u8; PAKE_MSG_BYTES]) {
        Pake::start(
            Spake2::start_b_with_rng,
            code,
            joiner_peer,
            inviter_peer,
            rng,
        )
    }

    fn start<R: rand::CryptoRng>(
        side: SpakeStart<R>,
        code: &str,
        joiner_peer: &[u8],
        inviter_peer: &[u8],
        rng: R,
    ) -> (Pake, [u8; PAKE_MSG_BYTES]) {
        let (state, msg) = side(
            &Password::new(code.as_bytes()),
            &Identity::new(joiner_peer),
            &Identity::new(inviter_peer),
            rng,
        );
        (
            Pake(state),
            msg.try_into().expect("an Ed25519 SPAKE2 message"),
        )
    }

    /// The shared key, from the other side's message. Equal on both sides
    /// only if both used the same code (and saw the same peer ids).
    pub fn finish(self, theirs: &[u8; PAKE_MSG_BYTES]) -> Result<[u8; 32], PairError> {
        let key = self
            .0
            .finish(theirs)
            .map_err(|e| PairError::BadMessage(format!("SPAKE2: {e:?}")))?;
        key.try_into()
            .map_err(|_| PairError::BadMessage("SPAKE2 gave a key of another size".into()))
    }
}

/// The bytes both sides MAC: vault ‖ inviter peer id ‖ joiner peer id ‖
/// nonce_i ‖ nonce_j, each peer id length-prefixed (u8).
pub struct Transcript {
    bytes: Vec<u8>,
}

impl Transcript {
    pub fn new(
        vault: &VaultId,
        inviter_peer: &[u8],
        joiner_peer: &[u8],
        nonce_i: &[u8; 32],
        nonce_j: &[u8; 32],
    ) -> Transcript {
        let mut bytes = Vec::with_capacity(16 + 2 + inviter_peer.len() + joiner_peer.len() + 64);
        bytes.extend_from_slice(&vault.0);
        for p in [inviter_peer, joiner_peer] {
            bytes.push(p.len().min(u8::MAX as usize) as u8);
            bytes.extend_from_slice(&p[..p.len().min(u8::MAX as usize)]);
        }
        bytes.extend_from_slice(nonce_i);
        bytes.extend_from_slice(nonce_j);
        Transcript { bytes }
    }

    fn mac(&self, secret: &[u8], label: &[u8]) -> [u8; 32] {
        let mut m = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
        m.update(label);
        m.update(&self.bytes);
        m.finalize().into_bytes().into()
    }

    /// The joiner's proof that it holds the invite's secret.
    pub fn proof(&self, secret: &[u8]) -> [u8; 32] {
        self.mac(secret, b"vellum-pair-v1")
    }

    /// Whether `proof` is the right one, compared in constant time.
    pub fn check(&self, secret: &[u8], proof: &[u8; 32]) -> bool {
        let mut m = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
        m.update(b"vellum-pair-v1");
        m.update(&self.bytes);
        m.verify_slice(proof).is_ok()
    }

    /// Six digits both people compare before the inviter approves.
    pub fn sas(&self, secret: &[u8]) -> String {
        let m = self.mac(secret, b"vellum-sas-v1");
        let n = u32::from_be_bytes([m[0], m[1], m[2], m[3]]) % 1_000_000;
        format!("{n:06}")
    }
}

/// A message on `/vellum/pair/1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PairMsg {
    Hello {
        vault: VaultId,
        nonce: [u8; 32],
        name: String,
    },
    Challenge {
        nonce: [u8; 32],
    },
    Proof {
        mac: [u8; 32],
    },
    /// The proof holds; the inviter waits for a person's approval.
    Approving {
        sas: String,
    },
    Welcome {
        genesis: OpId,
        genesis_author: DeviceId,
        member_op: OpId,
    },
    Refused {
        reason: String,
    },
    /// Short code: the joiner's SPAKE2 message.
    PakeStart {
        msg: [u8; PAKE_MSG_BYTES],
    },
    /// Short code: the inviter's SPAKE2 message, and the vault it invites
    /// to (the joiner's Hello names it).
    PakeReply {
        vault: VaultId,
        msg: [u8; PAKE_MSG_BYTES],
    },
}

const T_HELLO: u8 = 1;
const T_CHALLENGE: u8 = 2;
const T_PROOF: u8 = 3;
const T_APPROVING: u8 = 4;
const T_WELCOME: u8 = 5;
const T_REFUSED: u8 = 6;
const T_PAKE_START: u8 = 7;
const T_PAKE_REPLY: u8 = 8;

impl PairMsg {
    /// A version byte, a type byte, then the fields; strings are a u16
    /// length (big-endian) and UTF-8.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![PAIR_VERSION];
        let string = |b: &mut Vec<u8>, s: &str| {
            let mut end = s.len().min(STRING_BYTES_MAX);
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            b.extend_from_slice(&(end as u16).to_be_bytes());
            b.extend_from_slice(&s.as_bytes()[..end]);
        };
        match self {
            PairMsg::Hello { vault, nonce, name } => {
                b.push(T_HELLO);
                b.extend_from_slice(&vault.0);
                b.extend_from_slice(nonce);
                string(&mut b, name);
            }
            PairMsg::Challenge { nonce } => {
                b.push(T_CHALLENGE);
                b.extend_from_slice(nonce);
            }
            PairMsg::Proof { mac } => {
                b.push(T_PROOF);
                b.extend_from_slice(mac);
            }
            PairMsg::Approving { sas } => {
                b.push(T_APPROVING);
                string(&mut b, sas);
            }
            PairMsg::Welcome {
                genesis,
                genesis_author,
                member_op,
            } => {
                b.push(T_WELCOME);
                b.extend_from_slice(&genesis.0);
                b.extend_from_slice(&genesis_author.0);
                b.extend_from_slice(&member_op.0);
            }
            PairMsg::Refused { reason } => {
                b.push(T_REFUSED);
                string(&mut b, reason);
            }
            PairMsg::PakeStart { msg } => {
                b.push(T_PAKE_START);
                b.extend_from_slice(msg);
            }
            PairMsg::PakeReply { vault, msg } => {
                b.push(T_PAKE_REPLY);
                b.extend_from_slice(&vault.0);
                b.extend_from_slice(msg);
            }
        }
        b
    }

    pub fn decode(bytes: &[u8]) -> Result<PairMsg, PairError> {
        let mut r = Reader(bytes);
        let version = r.u8().map_err(as_msg)?;
        if version != PAIR_VERSION {
            return Err(PairError::BadMessage(format!(
                "pairing version {version}, this vellum speaks {PAIR_VERSION}"
            )));
        }
        let msg = match r.u8().map_err(as_msg)? {
            T_HELLO => PairMsg::Hello {
                vault: VaultId(r.array().map_err(as_msg)?),
                nonce: r.array().map_err(as_msg)?,
                name: r.string()?,
            },
            T_CHALLENGE => PairMsg::Challenge {
                nonce: r.array().map_err(as_msg)?,
            },
            T_PROOF => PairMsg::Proof {
                mac: r.array().map_err(as_msg)?,
            },
            T_APPROVING => PairMsg::Approving { sas: r.string()? },
            T_WELCOME => PairMsg::Welcome {
                genesis: OpId(r.array().map_err(as_msg)?),
                genesis_author: DeviceId(r.array().map_err(as_msg)?),
                member_op: OpId(r.array().map_err(as_msg)?),
            },
            T_REFUSED => PairMsg::Refused {
                reason: r.string()?,
            },
            T_PAKE_START => PairMsg::PakeStart {
                msg: r.array().map_err(as_msg)?,
            },
            T_PAKE_REPLY => PairMsg::PakeReply {
                vault: VaultId(r.array().map_err(as_msg)?),
                msg: r.array().map_err(as_msg)?,
            },
            t => return Err(PairError::BadMessage(format!("unknown type {t}"))),
        };
        if !r.0.is_empty() {
            return Err(PairError::BadMessage("bytes past the end".into()));
        }
        Ok(msg)
    }
}

fn as_msg(e: PairError) -> PairError {
    match e {
        PairError::BadCode(_) => PairError::BadMessage("truncated".into()),
        e => e,
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PairError> {
        if self.0.len() < n {
            return Err(PairError::BadCode("it is too short".into()));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, PairError> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], PairError> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    fn string(&mut self) -> Result<String, PairError> {
        let len = u16::from_be_bytes(self.array().map_err(as_msg)?) as usize;
        let b = self.take(len).map_err(as_msg)?;
        String::from_utf8(b.to_vec())
            .map_err(|_| PairError::BadMessage("a string is not UTF-8".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite() -> Invite {
        Invite {
            vault: VaultId([7; 16]),
            inviter: DeviceId([9; 32]),
            secret: [3; 16],
            addrs: vec![vec![4, 127, 0, 0, 1, 6, 0x10, 0x05], vec![1, 2, 3]],
        }
    }

    #[test]
    fn short_codes_are_eight_digits_and_retyping_is_forgiven() {
        assert_eq!(short_code([0; 8]), "00000000");
        assert_eq!(short_code([0xff; 8]).len(), 8);
        assert_eq!(parse_short_code(" 1234-5678 ").as_deref(), Some("12345678"));
        assert_eq!(parse_short_code("1234 567"), None);
        assert_eq!(parse_short_code("1234567a"), None);
        assert_eq!(parse_short_code("123456789"), None);
    }

    fn rng(seed: u64) -> rand::rngs::StdRng {
        use rand::SeedableRng;
        rand::rngs::StdRng::seed_from_u64(seed)
    }

    #[test]
    fn the_same_short_code_gives_both_sides_one_key_and_another_code_does_not() {
        let (j, i) = (b"joiner peer".as_slice(), b"inviter peer".as_slice());
        let (a, ma) = Pake::joiner("12345678", j, i, rng(1));
        let (b, mb) = Pake::inviter("12345678", j, i, rng(2));
        assert_eq!(a.finish(&mb).unwrap(), b.finish(&ma).unwrap());
        // A wrong code, or a relay with its own peer id, gives other keys.
        let (a, ma) = Pake::joiner("12345679", j, i, rng(3));
        let (b, mb) = Pake::inviter("12345678", j, i, rng(4));
        assert_ne!(a.finish(&mb).unwrap(), b.finish(&ma).unwrap());
        let (a, ma) = Pake::joiner("12345678", j, b"relay", rng(5));
        let (b, mb) = Pake::inviter("12345678", j, i, rng(6));
        assert_ne!(a.finish(&mb).unwrap(), b.finish(&ma).unwrap());
        // Both sides as A (a message reflected back) is refused.
        let (a, _) = Pake::joiner("12345678", j, i, rng(7));
        let (_, ma2) = Pake::joiner("12345678", j, i, rng(8));
        assert!(a.finish(&ma2).is_err());
    }

    #[test]
    fn pake_messages_round_trip() {
        for m in [
            PairMsg::PakeStart { msg: [7; 33] },
            PairMsg::PakeReply {
                vault: VaultId([1; 16]),
                msg: [9; 33],
            },
        ] {
            assert_eq!(PairMsg::decode(&m.encode()).unwrap(), m);
            let mut cut = m.encode();
            cut.pop();
            assert!(PairMsg::decode(&cut).is_err());
        }
    }

    #[test]
    fn a_code_round_trips_through_retyping() {
        let code = invite().encode();
        assert!(code.starts_with("vellum1"));
        assert_eq!(Invite::decode(&code).unwrap(), invite());
        let retyped = format!(" {} ", code.to_uppercase().replace("VELLUM1", "VELLUM1-"));
        assert_eq!(Invite::decode(&retyped).unwrap(), invite());
    }

    #[test]
    fn damaged_codes_are_clear_errors() {
        let code = invite().encode();
        for bad in [
            "",
            "hello",
            &code[..code.len() - 7],
            &format!("{code}aaaa"),
            "vellum1!!!!",
        ] {
            assert!(
                matches!(Invite::decode(bad), Err(PairError::BadCode(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_proof_checks_and_a_relay_changes_the_sas() {
        let (secret, ni, nj) = ([5u8; 16], [1u8; 32], [2u8; 32]);
        let vault = VaultId([7; 16]);
        let t = Transcript::new(&vault, b"inviter", b"joiner", &ni, &nj);
        let proof = t.proof(&secret);
        assert!(t.check(&secret, &proof));
        assert!(!t.check(&[6u8; 16], &proof));
        let sas = t.sas(&secret);
        assert_eq!(sas.len(), 6);
        // A man in the middle talks to each side under its own peer id.
        let inviter_side = Transcript::new(&vault, b"inviter", b"mallory", &ni, &nj);
        let joiner_side = Transcript::new(&vault, b"mallory", b"joiner", &ni, &nj);
        assert_ne!(inviter_side.sas(&secret), sas);
        assert_ne!(joiner_side.sas(&secret), sas);
    }

    #[test]
    fn messages_round_trip_and_garbage_is_an_error() {
        let msgs = [
            PairMsg::Hello {
                vault: VaultId([1; 16]),
                nonce: [2; 32],
                name: "laptop ü".into(),
            },
            PairMsg::Challenge { nonce: [3; 32] },
            PairMsg::Proof { mac: [4; 32] },
            PairMsg::Approving {
                sas: "012345".into(),
            },
            PairMsg::Welcome {
                genesis: OpId([5; 32]),
                genesis_author: DeviceId([6; 32]),
                member_op: OpId([7; 32]),
            },
            PairMsg::Refused {
                reason: "expired".into(),
            },
        ];
        for m in msgs {
            assert_eq!(PairMsg::decode(&m.encode()).unwrap(), m);
            let b = m.encode();
            assert!(PairMsg::decode(&b[..b.len() - 1]).is_err());
        }
        assert!(PairMsg::decode(&[]).is_err());
        assert!(PairMsg::decode(&[1, 99]).is_err());
        assert!(PairMsg::decode(&[2, 1]).is_err());
    }
}
