//! The signed op envelope, byte for byte as documented in docs/PROTOCOL.md.
//!
//! The envelope is the only canonical encoding of an op. It is parsed in
//! place and never re-encoded: what is stored and forwarded is exactly the
//! signed bytes, and the OpId is blake3 of those bytes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use chacha20poly1305::aead::{Aead, Payload as AeadPayload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::error::{Error, Result};
use crate::id::{DeviceId, OpId, VaultId};
use crate::limits::{DEPS_MAX, OP_BYTES_MAX};

/// The only envelope format this build reads; it also pins the payload's
/// rkyv layout (`payload.rs`).
pub const FORMAT_V1: u8 = 1;
/// Domain prefix of every op signature.
pub const SIGNATURE_DOMAIN: &[u8] = b"vellum-op-v1";
pub const NONCE_BYTES: usize = 24;
pub const SIG_BYTES: usize = 64;
const TAG_BYTES: usize = 16;
/// format, kind, vault, author, seq, prev, lamport, hlc, deps count.
const FIXED_HEADER_BYTES: usize = 1 + 1 + 16 + 32 + 8 + 32 + 8 + 8 + 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    Content = 0,
    Control = 1,
}

/// OpIds of envelopes whose signature verified. The OpId is blake3 of the
/// signed bytes, so an id stands for exactly the bytes that were checked:
/// one changed byte is another id and is verified afresh. With them, the
/// authors' public keys, decompressed once rather than for every op.
///
/// Each journal has one, so an op parked as pending is not verified again
/// when its deps arrive. Clones share their set: the simulator gives every
/// replica the same memo, so an op costs one verification per run rather
/// than one per replica.
#[derive(Clone, Default)]
pub struct SignatureMemo(Arc<Mutex<Verified>>);

#[derive(Default)]
struct Verified {
    ops: HashSet<OpId>,
    authors: HashMap<DeviceId, VerifyingKey>,
}

/// Ids a [`SignatureMemo`] keeps before it starts over.
const SIGNATURE_MEMO_MAX: usize = 1 << 16;
/// Authors' keys a [`SignatureMemo`] keeps before it starts over.
const AUTHOR_KEYS_MAX: usize = 1 << 12;

impl SignatureMemo {
    fn holds(&self, id: &OpId) -> bool {
        self.0.lock().expect("signature memo").ops.contains(id)
    }

    fn insert(&self, id: OpId) {
        let mut memo = self.0.lock().expect("signature memo");
        if memo.ops.len() >= SIGNATURE_MEMO_MAX {
            memo.ops.clear();
        }
        memo.ops.insert(id);
    }

    /// `author`'s public key, decompressed (once); `None` for bytes that
    /// are no point on the curve.
    fn author_key(&self, author: &DeviceId) -> Option<VerifyingKey> {
        let mut memo = self.0.lock().expect("signature memo");
        if let Some(k) = memo.authors.get(author) {
            return Some(*k);
        }
        let k = VerifyingKey::from_bytes(&author.0).ok()?;
        if memo.authors.len() >= AUTHOR_KEYS_MAX {
            memo.authors.clear();
        }
        memo.authors.insert(*author, k);
        Some(k)
    }
}

/// The cleartext header every peer, blind or full, can check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub vault: VaultId,
    pub author: DeviceId,
    pub seq: u64,
    pub prev: OpId,
    pub lamport: u64,
    pub hlc: u64,
    /// Sorted and unique.
    pub deps: Vec<OpId>,
    /// The genesis op (zero in the genesis op itself) or a KeyRotate.
    pub key_epoch: OpId,
}

/// A parsed envelope. It keeps the exact bytes it was parsed from.
#[derive(Clone, Debug)]
pub struct Envelope {
    bytes: Vec<u8>,
    id: OpId,
    /// Whether `id` was computed from `bytes` here rather than taken on
    /// trust from the store ([`Envelope::parse_stored`]).
    hashed: bool,
    kind: OpKind,
    header: Header,
    control: std::ops::Range<usize>,
    nonce: std::ops::Range<usize>,
    ciphertext: std::ops::Range<usize>,
}

/// A 32-byte XChaCha20-Poly1305 key of one key epoch.
#[derive(Clone, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
pub struct EpochKey(pub [u8; 32]);

impl Envelope {
    /// Builds, encrypts and signs a new op.
    pub fn seal(
        kind: OpKind,
        header: &Header,
        control: &[u8],
        payload: &[u8],
        key: &EpochKey,
        nonce: [u8; NONCE_BYTES],
        signer: &SigningKey,
    ) -> Result<Envelope> {
        if header.author.0 != signer.verifying_key().to_bytes() {
            return Err(Error::Malformed("author is not the signing key".into()));
        }
        if kind == OpKind::Content && !control.is_empty() {
            return Err(Error::Malformed(
                "content ops carry no control fields".into(),
            ));
        }
        let mut b = Vec::with_capacity(FIXED_HEADER_BYTES + payload.len() + 256);
        b.push(FORMAT_V1);
        b.push(kind as u8);
        b.extend_from_slice(&header.vault.0);
        b.extend_from_slice(&header.author.0);
        b.extend_from_slice(&header.seq.to_le_bytes());
        b.extend_from_slice(&header.prev.0);
        b.extend_from_slice(&header.lamport.to_le_bytes());
        b.extend_from_slice(&header.hlc.to_le_bytes());
        let deps_count = u16::try_from(header.deps.len())
            .ok()
            .filter(|n| (*n as usize) <= DEPS_MAX)
            .ok_or_else(|| Error::Malformed("too many deps".into()))?;
        b.extend_from_slice(&deps_count.to_le_bytes());
        for d in &header.deps {
            b.extend_from_slice(&d.0);
        }
        b.extend_from_slice(&header.key_epoch.0);
        if kind == OpKind::Control {
            b.extend_from_slice(&(control.len() as u32).to_le_bytes());
            b.extend_from_slice(control);
        }
        let aad_end = b.len();
        b.extend_from_slice(&nonce);
        let cipher = XChaCha20Poly1305::new(&key.0.into());
        let ct = cipher
            .encrypt(
                &XNonce::from(nonce),
                AeadPayload {
                    msg: payload,
                    aad: &b[..aad_end],
                },
            )
            .map_err(|_| Error::Malformed("encryption failed".into()))?;
        b.extend_from_slice(&(ct.len() as u32).to_le_bytes());
        b.extend_from_slice(&ct);
        let sig = signer.sign(&signed_message(&b));
        b.extend_from_slice(&sig.to_bytes());
        if b.len() > OP_BYTES_MAX {
            return Err(Error::Malformed(format!(
                "op is {} bytes, over the {OP_BYTES_MAX}-byte limit",
                b.len()
            )));
        }
        Envelope::parse(b)
    }

    /// Parses the layout and checks sizes and the format. It does not check
    /// the signature: see [`Envelope::verify_signature`].
    pub fn parse(bytes: Vec<u8>) -> Result<Envelope> {
        Envelope::parse_as(bytes, None)
    }

    /// Parses an op read back from this device's store under its id,
    /// without hashing it again. For replay: whatever replay reads (header
    /// and ciphertext) is authenticated by the AEAD tag, so a damaged
    /// stored op fails [`Envelope::open`]; `verify` re-hashes every op.
    pub fn parse_stored(bytes: Vec<u8>, id: OpId) -> Result<Envelope> {
        Envelope::parse_as(bytes, Some(id))
    }

    /// Parses an op whose bytes the caller found equal, byte for byte, to
    /// a copy that hashed to `id`: as good as hashing them again.
    pub(crate) fn parse_same_as_hashed(bytes: Vec<u8>, id: OpId) -> Result<Envelope> {
        let mut env = Envelope::parse_as(bytes, Some(id))?;
        env.hashed = true;
        Ok(env)
    }

    fn parse_as(bytes: Vec<u8>, id: Option<OpId>) -> Result<Envelope> {
        if bytes.len() > OP_BYTES_MAX {
            return Err(Error::Malformed(format!(
                "op is {} bytes, over the {OP_BYTES_MAX}-byte limit",
                bytes.len()
            )));
        }
        let mut r = Reader { b: &bytes, at: 0 };
        let format = r.u8()?;
        if format != FORMAT_V1 {
            return Err(Error::UpgradeRequired(format!(
                "op format {format} is newer than this build understands ({FORMAT_V1})"
            )));
        }
        let kind = match r.u8()? {
            0 => OpKind::Content,
            1 => OpKind::Control,
            k => return Err(Error::UpgradeRequired(format!("unknown op kind {k}"))),
        };
        let vault = VaultId(r.array()?);
        let author = DeviceId(r.array()?);
        let seq = r.u64()?;
        let prev = OpId(r.array()?);
        let lamport = r.u64()?;
        let hlc = r.u64()?;
        let deps_count = r.u16()? as usize;
        if deps_count > DEPS_MAX {
            return Err(Error::Malformed(format!(
                "{deps_count} deps, over {DEPS_MAX}"
            )));
        }
        let mut deps = Vec::with_capacity(deps_count);
        for _ in 0..deps_count {
            deps.push(OpId(r.array()?));
        }
        if deps.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::Malformed("deps are not sorted and unique".into()));
        }
        let key_epoch = OpId(r.array()?);
        let control = if kind == OpKind::Control {
            let n = r.u32()? as usize;
            r.take(n)?
        } else {
            r.at..r.at
        };
        let nonce = r.take(NONCE_BYTES)?;
        let ct_len = r.u32()? as usize;
        if ct_len < TAG_BYTES {
            return Err(Error::Malformed("ciphertext shorter than its tag".into()));
        }
        let ciphertext = r.take(ct_len)?;
        r.take(SIG_BYTES)?;
        if r.at != bytes.len() {
            return Err(Error::Malformed(
                "trailing bytes after the signature".into(),
            ));
        }
        let hashed = id.is_none();
        let id = id.unwrap_or_else(|| OpId(*blake3::hash(&bytes).as_bytes()));
        Ok(Envelope {
            id,
            hashed,
            kind,
            header: Header {
                vault,
                author,
                seq,
                prev,
                lamport,
                hlc,
                deps,
                key_epoch,
            },
            control,
            nonce,
            ciphertext,
            bytes,
        })
    }

    /// ed25519 `verify_strict` over the domain prefix and everything before
    /// the signature.
    pub fn verify_signature(&self) -> Result<()> {
        self.verify_signature_by(VerifyingKey::from_bytes(&self.header.author.0).ok())
    }

    fn verify_signature_by(&self, key: Option<VerifyingKey>) -> Result<()> {
        let bad = || Error::Rejected {
            op: self.id,
            reason: "bad signature".into(),
        };
        let key = key.ok_or_else(bad)?;
        let sig_at = self.bytes.len() - SIG_BYTES;
        let sig = Signature::from_slice(&self.bytes[sig_at..]).map_err(|_| bad())?;
        key.verify_strict(&signed_message(&self.bytes[..sig_at]), &sig)
            .map_err(|_| bad())
    }

    /// [`Envelope::verify_signature`], skipped for an envelope `memo`
    /// has seen verify. Only an id hashed from these very bytes is looked
    /// up or remembered.
    pub fn verify_signature_with(&self, memo: &SignatureMemo) -> Result<()> {
        if self.hashed && memo.holds(&self.id) {
            return Ok(());
        }
        self.verify_signature_by(memo.author_key(&self.header.author))?;
        if self.hashed {
            memo.insert(self.id);
        }
        Ok(())
    }

    /// Decrypts the payload. The AAD is everything before the nonce, so a
    /// header moved onto another ciphertext fails here.
    pub fn open(&self, key: &EpochKey) -> Result<Vec<u8>> {
        let cipher = XChaCha20Poly1305::new(&key.0.into());
        let nonce: [u8; NONCE_BYTES] = self.bytes[self.nonce.clone()]
            .try_into()
            .map_err(|_| Error::Malformed("nonce".into()))?;
        cipher
            .decrypt(
                &XNonce::from(nonce),
                AeadPayload {
                    msg: &self.bytes[self.ciphertext.clone()],
                    aad: &self.bytes[..self.nonce.start],
                },
            )
            .map_err(|_| Error::Corrupt(format!("op {} does not decrypt", self.id.short())))
    }

    /// Whether [`Envelope::id`] was hashed from these bytes, not taken on
    /// trust from the store.
    pub fn is_hashed(&self) -> bool {
        self.hashed
    }

    pub fn id(&self) -> OpId {
        self.id
    }
    pub fn kind(&self) -> OpKind {
        self.kind
    }
    pub fn header(&self) -> &Header {
        &self.header
    }
    pub fn control(&self) -> &[u8] {
        &self.bytes[self.control.clone()]
    }
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

fn signed_message(before_sig: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGNATURE_DOMAIN.len() + before_sig.len());
    m.extend_from_slice(SIGNATURE_DOMAIN);
    m.extend_from_slice(before_sig);
    m
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<std::ops::Range<usize>> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.b.len())
            .ok_or_else(|| Error::Malformed("op is truncated".into()))?;
        let r = self.at..end;
        self.at = end;
        Ok(r)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let r = self.take(N)?;
        Ok(self.b[r].try_into().expect("take returned N bytes"))
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(signer: &SigningKey) -> Header {
        Header {
            vault: VaultId([7; 16]),
            author: DeviceId(signer.verifying_key().to_bytes()),
            seq: 1,
            prev: OpId::ZERO,
            lamport: 1,
            hlc: 42 << 16,
            deps: vec![],
            key_epoch: OpId::ZERO,
        }
    }

    #[test]
    fn seal_parse_open_round_trip() {
        let signer = SigningKey::from_bytes(&[1; 32]);
        let key = EpochKey([2; 32]);
        let env = Envelope::seal(
            OpKind::Content,
            &header(&signer),
            &[],
            b"hello",
            &key,
            [3; 24],
            &signer,
        )
        .unwrap();
        let again = Envelope::parse(env.bytes().to_vec()).unwrap();
        assert_eq!(again.id(), env.id());
        assert_eq!(again.header(), &header(&signer));
        again.verify_signature().unwrap();
        assert_eq!(again.open(&key).unwrap(), b"hello");
        assert!(again.open(&EpochKey([9; 32])).is_err());
    }

    /// A content op with `payload`, sealed under a test key.
    fn sealed(payload: &[u8]) -> Envelope {
        let signer = SigningKey::from_bytes(&[1; 32]);
        Envelope::seal(
            OpKind::Content,
            &header(&signer),
            &[],
            payload,
            &EpochKey([2; 32]),
            [3; 24],
            &signer,
        )
        .unwrap()
    }

    #[test]
    fn every_flipped_byte_is_caught() {
        let env = sealed(b"payload");
        for i in 0..env.bytes().len() {
            let mut b = env.bytes().to_vec();
            b[i] ^= 0x01;
            let caught = match Envelope::parse(b) {
                Err(_) => true,
                Ok(e) => e.verify_signature().is_err(),
            };
            assert!(caught, "flip at byte {i} went unnoticed");
        }
    }

    #[test]
    fn a_memo_never_vouches_for_other_bytes() {
        let env = sealed(b"payload");
        let memo = SignatureMemo::default();
        let good = Envelope::parse(env.bytes().to_vec()).unwrap();
        good.verify_signature_with(&memo).unwrap();
        assert!(memo.holds(&good.id()));
        // The same header under a flipped signature byte: another id.
        let mut forged = env.bytes().to_vec();
        *forged.last_mut().unwrap() ^= 0x01;
        let parsed = Envelope::parse(forged.clone()).unwrap();
        assert!(parsed.verify_signature_with(&memo).is_err());
        // Claiming the good id without hashing is not taken on trust.
        let claimed = Envelope::parse_stored(forged, good.id()).unwrap();
        assert!(claimed.verify_signature_with(&memo).is_err());
        // A clone of the memo shares what it learnt.
        let other = memo.clone();
        assert!(other.holds(&good.id()));
    }
}
