//! The key export file (DESIGN §7, `vellum key export`): a vault's genesis
//! key and a recovery identity, sealed under a passphrase by argon2id and
//! XChaCha20-Poly1305. Never the device key.
//!
//! The recovery identity is a member of the vault (role recovery), so every
//! later key rotation seals to it, and its Member add seals the epoch of the
//! moment, whose back-chain reaches every earlier one: the identity plus
//! the genesis key open the whole key chain, present and future.
//!
//! Byte layout (integers big-endian), see docs/PROTOCOL.md §13:
//!
//! ```text
//! magic "VLMKEY" ‖ version u8 (1) ‖ kdf u8 (1 = argon2id v0x13)
//! ‖ m_cost_kib u32 ‖ t_cost u32 ‖ p_cost u32 ‖ salt[16] ‖ nonce[24]
//! ‖ XChaCha20-Poly1305(key = argon2id(passphrase, salt), nonce,
//!     aad = every byte before it,
//!     vault[16] ‖ genesis key[32] ‖ recovery seed[32]) (80 + 16 bytes)
//! ```

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::entropy::Entropy;
use crate::envelope::EpochKey;
use crate::id::VaultId;

const MAGIC: &[u8; 6] = b"VLMKEY";
const VERSION: u8 = 1;
const KDF_ARGON2ID: u8 = 1;
const HEADER: usize = 6 + 1 + 1 + 12 + 16 + 24;
const PLAIN: usize = 16 + 32 + 32;
const TAG: usize = 16;
/// Every key file is exactly this long.
pub const FILE_BYTES: usize = HEADER + PLAIN + TAG;

/// The shortest passphrase accepted for an export: the file can be
/// attacked offline, so it must stand on its own length.
pub const MIN_PASSPHRASE_CHARS: usize = 12;

/// What a key file holds.
pub struct KeyExport {
    pub vault: VaultId,
    pub genesis: EpochKey,
    /// The recovery identity's ed25519 seed.
    pub recovery: Zeroizing<[u8; 32]>,
}

/// argon2id's cost: memory in KiB, passes, lanes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cost {
    pub m_kib: u32,
    pub t: u32,
    pub p: u32,
}

impl Cost {
    /// What exports are written with: 64 MiB, 3 passes, 1 lane (about
    /// 0.2 s on a laptop core; each guess costs an attacker as much).
    pub const DEFAULT: Cost = Cost {
        m_kib: 64 * 1024,
        t: 3,
        p: 1,
    };

    /// The most a file may ask for: a crafted file must not make an import
    /// take gigabytes or minutes.
    const MAX: Cost = Cost {
        m_kib: 1024 * 1024,
        t: 16,
        p: 8,
    };
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyFileError {
    #[error("not a vellum key export (a file written by 'vellum key export')")]
    NotAKeyFile,
    #[error("this key export is version {0}; this vellum reads version 1: upgrade vellum")]
    Version(u8),
    #[error(
        "this key export asks for key derivation settings out of bounds; it was not written by vellum"
    )]
    Cost,
    #[error("wrong passphrase, or the key export was altered")]
    WrongPassphrase,
    #[error(
        "the passphrase is too short: use at least {MIN_PASSPHRASE_CHARS} characters (several words are easiest)"
    )]
    ShortPassphrase,
}

/// Writes `export` sealed under `passphrase`.
pub fn seal(
    export: &KeyExport,
    passphrase: &str,
    cost: Cost,
    entropy: &mut dyn Entropy,
) -> Result<Vec<u8>, KeyFileError> {
    if passphrase.chars().count() < MIN_PASSPHRASE_CHARS {
        return Err(KeyFileError::ShortPassphrase);
    }
    let mut salt = [0u8; 16];
    entropy.fill(&mut salt);
    let mut nonce = [0u8; 24];
    entropy.fill(&mut nonce);
    let mut out = Vec::with_capacity(FILE_BYTES);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(KDF_ARGON2ID);
    out.extend_from_slice(&cost.m_kib.to_be_bytes());
    out.extend_from_slice(&cost.t.to_be_bytes());
    out.extend_from_slice(&cost.p.to_be_bytes());
    out.extend_from_slice(&salt);
    out.extend_from_slice(&nonce);
    let key = derive(passphrase, &salt, cost)?;
    let mut plain = Zeroizing::new([0u8; PLAIN]);
    plain[..16].copy_from_slice(&export.vault.0);
    plain[16..48].copy_from_slice(&export.genesis.0);
    plain[48..].copy_from_slice(&*export.recovery);
    let k: &[u8; 32] = &key;
    let sealed = XChaCha20Poly1305::new(k.into())
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: &plain[..],
                aad: &out,
            },
        )
        .map_err(|_| KeyFileError::Cost)?;
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Reads a key file with `passphrase`.
pub fn open(bytes: &[u8], passphrase: &str) -> Result<KeyExport, KeyFileError> {
    if bytes.len() < 8 || &bytes[..6] != MAGIC {
        return Err(KeyFileError::NotAKeyFile);
    }
    if bytes[6] != VERSION || bytes[7] != KDF_ARGON2ID {
        return Err(KeyFileError::Version(bytes[6]));
    }
    if bytes.len() != FILE_BYTES {
        return Err(KeyFileError::NotAKeyFile);
    }
    let u32_at =
        |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let cost = Cost {
        m_kib: u32_at(8),
        t: u32_at(12),
        p: u32_at(16),
    };
    if cost.m_kib > Cost::MAX.m_kib || cost.t > Cost::MAX.t || cost.p > Cost::MAX.p {
        return Err(KeyFileError::Cost);
    }
    let salt = &bytes[20..36];
    let nonce: [u8; 24] = bytes[36..HEADER]
        .try_into()
        .expect("24 bytes by the layout");
    let key = derive(passphrase, salt, cost)?;
    let k: &[u8; 32] = &key;
    let plain = Zeroizing::new(
        XChaCha20Poly1305::new(k.into())
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &bytes[HEADER..],
                    aad: &bytes[..HEADER],
                },
            )
            .map_err(|_| KeyFileError::WrongPassphrase)?,
    );
    let mut vault = [0u8; 16];
    vault.copy_from_slice(&plain[..16]);
    let mut genesis = [0u8; 32];
    genesis.copy_from_slice(&plain[16..48]);
    let mut recovery = Zeroizing::new([0u8; 32]);
    recovery.copy_from_slice(&plain[48..PLAIN]);
    Ok(KeyExport {
        vault: VaultId(vault),
        genesis: EpochKey(genesis),
        recovery,
    })
}

fn derive(passphrase: &str, salt: &[u8], cost: Cost) -> Result<Zeroizing<[u8; 32]>, KeyFileError> {
    let params = argon2::Params::new(cost.m_kib, cost.t, cost.p, Some(32))
        .map_err(|_| KeyFileError::Cost)?;
    let mut key = Zeroizing::new([0u8; 32]);
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), salt, &mut *key)
        .map_err(|_| KeyFileError::Cost)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SeededEntropy;

    /// Cheap settings: the layout and the checks are under test, not the
    /// cost.
    const CHEAP: Cost = Cost {
        m_kib: 64,
        t: 1,
        p: 1,
    };

    fn export() -> KeyExport {
        KeyExport {
            vault: VaultId([7; 16]),
            genesis: EpochKey([9; 32]),
            recovery: Zeroizing::new([5; 32]),
        }
    }

    #[test]
    fn a_key_file_opens_with_its_passphrase_only() {
        let bytes = seal(
            &export(),
            "correct horse battery",
            CHEAP,
            &mut SeededEntropy::new(1),
        )
        .unwrap();
        assert_eq!(bytes.len(), FILE_BYTES);
        assert_eq!(&bytes[..8], b"VLMKEY\x01\x01");
        let back = open(&bytes, "correct horse battery").unwrap();
        assert_eq!(back.vault, VaultId([7; 16]));
        assert_eq!(back.genesis.0, [9; 32]);
        assert_eq!(*back.recovery, [5; 32]);
        assert_eq!(
            open(&bytes, "correct horse battery!").err(),
            Some(KeyFileError::WrongPassphrase)
        );
    }

    #[test]
    fn every_altered_byte_is_refused() {
        let bytes = seal(
            &export(),
            "correct horse battery",
            CHEAP,
            &mut SeededEntropy::new(2),
        )
        .unwrap();
        // The cost fields change what is derived; the rest is sealed or
        // authenticated. No change opens.
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            assert!(open(&b, "correct horse battery").is_err(), "byte {i}");
        }
        assert_eq!(
            open(&bytes[..bytes.len() - 1], "x").err(),
            Some(KeyFileError::NotAKeyFile)
        );
        assert_eq!(open(b"hello", "x").err(), Some(KeyFileError::NotAKeyFile));
    }

    #[test]
    fn a_file_asking_for_too_much_memory_is_refused_before_deriving() {
        let mut bytes = seal(
            &export(),
            "correct horse battery",
            CHEAP,
            &mut SeededEntropy::new(3),
        )
        .unwrap();
        bytes[8..12].copy_from_slice(&(64u32 * 1024 * 1024).to_be_bytes());
        assert_eq!(
            open(&bytes, "correct horse battery").err(),
            Some(KeyFileError::Cost)
        );
        let mut newer = bytes.clone();
        newer[6] = 2;
        assert_eq!(open(&newer, "x").err(), Some(KeyFileError::Version(2)));
    }

    #[test]
    fn a_short_passphrase_is_refused() {
        assert_eq!(
            seal(&export(), "short", CHEAP, &mut SeededEntropy::new(4)).err(),
            Some(KeyFileError::ShortPassphrase)
        );
    }
}
