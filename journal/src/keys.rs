//! Key material the journal uses. Where keys live on disk is the binary's
//! business (`$VELLUM_HOME`); the journal only takes them as values.

use std::collections::BTreeMap;

pub use ed25519_dalek::SigningKey;

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
/// §7). Its secret is derived from the signing seed with blake3's KDF, so
/// a device keeps one secret.
pub fn x25519_public(key: &SigningKey) -> [u8; 32] {
    let secret = x25519_dalek::StaticSecret::from(blake3::derive_key(
        "vellum device x25519 v1",
        &key.to_bytes(),
    ));
    x25519_dalek::PublicKey::from(&secret).to_bytes()
}

/// The vault's epoch keys, by epoch id. The genesis epoch's id is the
/// genesis OpId; the genesis op itself names it as zero.
#[derive(Clone, Default)]
pub struct Keyring {
    epochs: BTreeMap<OpId, EpochKey>,
    genesis: Option<OpId>,
}

impl Keyring {
    pub fn new(genesis_key: EpochKey) -> Self {
        let mut epochs = BTreeMap::new();
        epochs.insert(OpId::ZERO, genesis_key);
        Keyring {
            epochs,
            genesis: None,
        }
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

    /// The key new ops are sealed with, and its epoch id.
    pub fn current(&self) -> Option<(OpId, &EpochKey)> {
        let g = self.genesis?;
        Some((g, self.epochs.get(&g)?))
    }

    /// The dedup key of an epoch: chunk dedup ids are keyed blake3 under it.
    pub fn dedup_key(&self, epoch: &OpId) -> Option<[u8; 32]> {
        let k = self.epochs.get(epoch)?;
        Some(blake3::derive_key("vellum chunk dedup v1", &k.0))
    }
}
