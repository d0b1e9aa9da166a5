//! Keys at rest, outside the vault: `$VELLUM_HOME/<instance id>/`, with
//! directories 0700 and key files 0600. Two devices of one vault on the
//! same machine therefore never share keys.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use vellum_journal::entropy::Entropy;
use vellum_journal::keys::{EpochKey, Keyring, SigningKey};

use crate::error::UserError;

const DEVICE_KEY: &str = "device.key";
const VAULT_KEY: &str = "vault.key";

/// `$VELLUM_HOME`, else `$XDG_DATA_HOME/vellum`, else `~/.local/share/vellum`.
pub fn vellum_home() -> Result<PathBuf> {
    if let Some(h) = std::env::var_os("VELLUM_HOME").filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(h));
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(x).join("vellum"));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            UserError::new(
                "neither VELLUM_HOME nor HOME is set; set VELLUM_HOME to a private directory",
            )
        })?;
    Ok(PathBuf::from(home).join(".local/share/vellum"))
}

pub struct DeviceKeys {
    pub signing: SigningKey,
    pub keyring: Keyring,
}

fn key_dir(instance: &str) -> Result<PathBuf> {
    Ok(vellum_home()?.join(instance))
}

/// Creates fresh keys for a new instance of a new vault.
pub fn create(instance: &str, entropy: &mut dyn Entropy) -> Result<DeviceKeys> {
    let mut epoch = [0u8; 32];
    entropy.fill(&mut epoch);
    create_with(instance, &EpochKey(epoch), entropy)
}

/// Creates keys for a new device of an existing vault: a fresh device key,
/// and a copy of the vault key.
pub fn create_with(
    instance: &str,
    vault_key: &EpochKey,
    entropy: &mut dyn Entropy,
) -> Result<DeviceKeys> {
    let dir = key_dir(instance)?;
    let home = dir.parent().expect("instance dir has a parent");
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(home)
        .with_context(|| format!("creating {}", home.display()))?;
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("creating key directory {}", dir.display()))?;
    let mut seed = [0u8; 32];
    entropy.fill(&mut seed);
    write_secret(&dir.join(DEVICE_KEY), &seed)?;
    write_secret(&dir.join(VAULT_KEY), &vault_key.0)?;
    Ok(DeviceKeys {
        signing: SigningKey::from_bytes(&seed),
        keyring: Keyring::new(vault_key.clone()),
    })
}

/// Loads the keys of an instance.
pub fn load(instance: &str) -> Result<DeviceKeys> {
    let dir = key_dir(instance)?;
    if !dir.is_dir() {
        return Err(UserError::new(format!(
            "this vault's device keys are not in {} (was the vault copied here, or VELLUM_HOME changed?)",
            dir.display()
        ))
        .into());
    }
    let mode = fs::metadata(&dir)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "key directory {} is readable by others (mode {mode:o}); run 'chmod 700' on it",
            dir.display()
        );
    }
    let seed = read_secret(&dir.join(DEVICE_KEY))?;
    let epoch = read_secret(&dir.join(VAULT_KEY))?;
    Ok(DeviceKeys {
        signing: SigningKey::from_bytes(&seed),
        keyring: Keyring::new(EpochKey(epoch)),
    })
}

fn write_secret(path: &Path, bytes: &[u8; 32]) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

fn read_secret(path: &Path) -> Result<[u8; 32]> {
    let b = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    b.try_into()
        .map_err(|_| anyhow::anyhow!("{} is damaged (expected 32 bytes)", path.display()))
}
