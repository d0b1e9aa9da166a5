//! Key material the journal uses. Where keys live on disk is the binary's
//! business (`$VELLUM_HOME`); the journal only takes them as values.

use std::collections::BTreeMap;

pub use ed25519_dalek::SigningKey;

use chacha20poly1305::aead::Aead;
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};

use crate::control::BACK_BYTES;
use crate::entropy::Entropy;
use crate::envelope::Envelope;
pub use crate::envelope::EpochKey;
use crate::error::{Error, Result};
use crate::id::{DeviceId, OpId};
use crate::payload::Payload;

/// A device's signing identity.
pub fn device_id(key: &SigningKey) -> DeviceId {
    DeviceId(key.verifying_key().to_bytes())
}

/// The device's X25519 public key, for sealing vault keys to it (DESIGN
/// §7): the Montgomery form of its ed25519 key, so every member can seal to
/// every other, the genesis author included, from the device id alone.
pub fn x25519_public(key: &SigningKey) -> [u8; 32] {
    key.verifying_key().to_montgomery().to_bytes()
}

/// [`x25519_public`] from a device id; `None` if the id is not a valid
/// ed25519 key.
pub fn x25519_of(device: &DeviceId) -> Option<[u8; 32]> {
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&device.0).ok()?;
    Some(vk.to_montgomery().to_bytes())
}

/// Bytes of one sealed key: ephemeral X25519 public key ‖ XChaCha20-Poly1305
/// of the 32-byte key (48 bytes with its tag).
pub const SEAL_BYTES: usize = 32 + 32 + 16;

/// The symmetric key of a seal: both ends' public keys bind it to one
/// recipient and one ephemeral key, so a zero nonce is never reused.
fn seal_key(shared: &[u8; 32], ephemeral: &[u8; 32], recipient: &[u8; 32]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("vellum sealed key v1");
    h.update(shared);
    h.update(ephemeral);
    h.update(recipient);
    *h.finalize().as_bytes()
}

/// Seals `key` to `device`: X25519 with a fresh ephemeral key, then
/// XChaCha20-Poly1305 under a key derived from the shared secret.
pub fn seal_to(
    device: &DeviceId,
    key: &EpochKey,
    entropy: &mut dyn Entropy,
) -> Result<[u8; SEAL_BYTES]> {
    let recipient = x25519_of(device)
        .ok_or_else(|| Error::Keys(format!("device {} has no valid key", device.short())))?;
    let mut secret = [0; 32];
    entropy.fill(&mut secret);
    let ephemeral = x25519_dalek::StaticSecret::from(secret);
    let ephemeral_pub = x25519_dalek::PublicKey::from(&ephemeral).to_bytes();
    let shared = ephemeral.diffie_hellman(&x25519_dalek::PublicKey::from(recipient));
    let k = seal_key(shared.as_bytes(), &ephemeral_pub, &recipient);
    let ct = XChaCha20Poly1305::new(&k.into())
        .encrypt(&XNonce::default(), &key.0[..])
        .map_err(|_| Error::Keys("sealing a key failed".into()))?;
    let mut out = [0; SEAL_BYTES];
    out[..32].copy_from_slice(&ephemeral_pub);
    out[32..].copy_from_slice(&ct);
    Ok(out)
}

/// The key of a seal, if it was sealed to the holder of X25519 `secret`.
fn open_seal(secret: &[u8; 32], seal: &[u8]) -> Option<EpochKey> {
    if seal.len() != SEAL_BYTES {
        return None;
    }
    let me = x25519_dalek::StaticSecret::from(*secret);
    let my_pub = x25519_dalek::PublicKey::from(&me).to_bytes();
    let ephemeral: [u8; 32] = seal[..32].try_into().expect("32 bytes");
    let shared = me.diffie_hellman(&x25519_dalek::PublicKey::from(ephemeral));
    let k = seal_key(shared.as_bytes(), &ephemeral, &my_pub);
    let plain = XChaCha20Poly1305::new(&k.into())
        .decrypt(&XNonce::default(), &seal[32..])
        .ok()?;
    Some(EpochKey(plain.try_into().ok()?))
}

/// A commitment to an epoch key, carried by its KeyRotate: a key shared
/// later is checked against it.
pub fn key_check(key: &EpochKey) -> [u8; 32] {
    blake3::derive_key("vellum epoch key check v1", &key.0)
}

/// `back` of a KeyRotate: the previous epoch's key under the new one.
pub fn seal_back(
    new: &EpochKey,
    previous: &EpochKey,
    entropy: &mut dyn Entropy,
) -> Result<[u8; BACK_BYTES]> {
    let mut nonce = [0; 24];
    entropy.fill(&mut nonce);
    let ct = XChaCha20Poly1305::new(&new.0.into())
        .encrypt(&XNonce::from(nonce), &previous.0[..])
        .map_err(|_| Error::Keys("sealing the back-chain failed".into()))?;
    let mut out = [0; BACK_BYTES];
    out[..24].copy_from_slice(&nonce);
    out[24..].copy_from_slice(&ct);
    Ok(out)
}

/// The previous epoch's key from a KeyRotate's `back`, given the new key.
pub fn open_back(new: &EpochKey, back: &[u8; BACK_BYTES]) -> Option<EpochKey> {
    let nonce: [u8; 24] = back[..24].try_into().expect("24 bytes");
    let plain = XChaCha20Poly1305::new(&new.0.into())
        .decrypt(&XNonce::from(nonce), &back[24..])
        .ok()?;
    Some(EpochKey(plain.try_into().ok()?))
}

/// The vault's epoch keys, by epoch id. The genesis epoch's id is the
/// genesis OpId; the genesis op itself names it as zero.
#[derive(Clone, Default)]
pub struct Keyring {
    epochs: BTreeMap<OpId, EpochKey>,
    genesis: Option<OpId>,
    /// The identities whose sealed keys this keyring opens.
    identities: Vec<(DeviceId, X25519Secret)>,
}

/// A device's X25519 secret: its ed25519 signing scalar.
#[derive(Clone, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
struct X25519Secret([u8; 32]);

impl Keyring {
    pub fn new(genesis_key: EpochKey) -> Self {
        let mut epochs = BTreeMap::new();
        epochs.insert(OpId::ZERO, genesis_key);
        Keyring {
            epochs,
            genesis: None,
            identities: Vec::new(),
        }
    }

    /// A keyring with no epoch key yet: it learns keys sealed to
    /// `identity` as their ops are admitted.
    pub fn empty() -> Self {
        Keyring {
            epochs: BTreeMap::new(),
            genesis: None,
            identities: Vec::new(),
        }
    }

    /// Adds a device identity whose sealed keys this keyring opens.
    pub fn with_identity(mut self, key: &SigningKey) -> Self {
        let id = device_id(key);
        if !self.identities.iter().any(|(d, _)| *d == id) {
            self.identities
                .push((id, X25519Secret(key.to_scalar_bytes())));
        }
        self
    }

    /// Whether keys sealed to `device` open with this keyring.
    pub fn is_mine(&self, device: &DeviceId) -> bool {
        self.identities.iter().any(|(d, _)| d == device)
    }

    /// The key in a seal made for `device`, if `device` is one of this
    /// keyring's identities and the seal opens.
    pub fn open_sealed(&self, device: &DeviceId, seal: &[u8]) -> Option<EpochKey> {
        let (_, secret) = self.identities.iter().find(|(d, _)| d == device)?;
        open_seal(&secret.0, seal)
    }

    /// Records the key of `epoch`.
    pub fn insert(&mut self, epoch: OpId, key: EpochKey) {
        if Some(epoch) == self.genesis {
            self.epochs.insert(OpId::ZERO, key.clone());
        }
        self.epochs.insert(epoch, key);
    }

    /// Binds the genesis key to the genesis op's id once it is known.
    pub fn set_genesis(&mut self, genesis: OpId) {
        if let Some(k) = self.epochs.get(&OpId::ZERO).cloned() {
            self.epochs.insert(genesis, k);
        }
        self.genesis = Some(genesis);
    }

    pub fn get(&self, epoch: &OpId) -> Option<&EpochKey> {
        self.epochs.get(epoch)
    }

    /// Every epoch key held, by epoch id (the genesis epoch once, under its
    /// op's id once that is known).
    pub fn epochs(&self) -> impl Iterator<Item = (&OpId, &EpochKey)> {
        let bound = self.genesis.is_some();
        self.epochs
            .iter()
            .filter(move |(e, _)| !(bound && e.is_zero()))
    }

    /// Decrypts and decodes an op's payload with the key of its epoch.
    pub fn open_payload(&self, env: &Envelope) -> Result<Payload> {
        let key = self.get(&env.header().key_epoch).ok_or_else(|| {
            Error::Keys(format!(
                "no key for epoch {} of op {}",
                env.header().key_epoch.short(),
                env.id().short()
            ))
        })?;
        Payload::decode(&env.open(key)?)
    }

    /// The dedup key of an epoch: chunk dedup ids are keyed blake3 under it.
    pub fn dedup_key(&self, epoch: &OpId) -> Option<[u8; 32]> {
        let k = self.epochs.get(epoch)?;
        Some(blake3::derive_key("vellum chunk dedup v1", &k.0))
    }
}
