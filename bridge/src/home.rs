//! Keys at rest, outside the vault: `$VELLUM_HOME/<instance id>/`, with
//! directories 0700 and key files 0600. Two devices of one vault on the
//! same machine therefore never share keys.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use vellum_journal::entropy::Entropy;
use vellum_journal::keys::{EpochKey, Keyring, SigningKey, device_id};
use vellum_journal::{DeviceId, OpId};

use crate::error::UserError;

const DEVICE_KEY: &str = "device.key";
const VAULT_KEY: &str = "vault.key";
/// A successor's key, written before it is announced (see [`renew`]).
const NEXT_DEVICE_KEY: &str = "device.next.key";
/// The recovery identity's seed after a `key import`, which the node runs
/// under until a peer holds the new device's add (see [`carrier`]).
const CARRIER_KEY: &str = "carrier.key";
/// The device's own chain as far as this machine has written it.
const CHAIN_MARK: &str = "chain";
/// The vault folder these keys belong to.
const ROOT: &str = "root";

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

/// Creates an instance's key folder (0700, under a 0700 `$VELLUM_HOME`);
/// it must not exist yet.
fn new_key_dir(instance: &str) -> Result<PathBuf> {
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
    Ok(dir)
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
    let dir = new_key_dir(instance)?;
    let mut seed = [0u8; 32];
    entropy.fill(&mut seed);
    write_secret(&dir.join(DEVICE_KEY), &seed)?;
    write_secret(&dir.join(VAULT_KEY), &vault_key.0)?;
    let signing = SigningKey::from_bytes(&seed);
    Ok(DeviceKeys {
        keyring: Keyring::new(vault_key.clone()).with_identity(&signing),
        signing,
    })
}

/// Creates the device key of a device joining over the network: it has no
/// vault key yet, and learns it from the seal its Member add carries
/// ([`write_vault_key`] stores it then).
pub fn create_joining(instance: &str, entropy: &mut dyn Entropy) -> Result<DeviceKeys> {
    let dir = new_key_dir(instance)?;
    let mut seed = [0u8; 32];
    entropy.fill(&mut seed);
    write_secret(&dir.join(DEVICE_KEY), &seed)?;
    let signing = SigningKey::from_bytes(&seed);
    Ok(DeviceKeys {
        keyring: Keyring::empty().with_identity(&signing),
        signing,
    })
}

/// Stores the vault's genesis key, once a joining device has learned it.
pub fn write_vault_key(instance: &str, key: &EpochKey) -> Result<()> {
    write_secret(&key_dir(instance)?.join(VAULT_KEY), &key.0)
}

/// Whether an instance's key folder is on this machine.
pub fn has_keys(instance: &str) -> Result<bool> {
    Ok(key_dir(instance)?.is_dir())
}

/// The vault's genesis key, as an instance stores it.
pub fn vault_key(instance: &str) -> Result<EpochKey> {
    Ok(EpochKey(read_secret(&key_dir(instance)?.join(VAULT_KEY))?))
}

/// Keeps the key a recovered device's node runs under until a peer knows
/// the new device: the recovery identity, which peers' gates admit.
pub fn write_carrier(instance: &str, seed: &[u8; 32]) -> Result<()> {
    let path = key_dir(instance)?.join(CARRIER_KEY);
    let _ = fs::remove_file(&path);
    write_secret(&path, seed)
}

/// The carrier key's seed, if the device still needs one.
pub fn carrier(instance: &str) -> Result<Option<[u8; 32]>> {
    let path = key_dir(instance)?.join(CARRIER_KEY);
    if !path.exists() {
        return Ok(None);
    }
    read_secret(&path).map(Some)
}

/// Forgets the carrier key: a peer admits the device under its own key.
pub fn drop_carrier(instance: &str) -> Result<()> {
    match fs::remove_file(key_dir(instance)?.join(CARRIER_KEY)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(anyhow::Error::new(e).context("removing the carrier key"))
        }
        _ => Ok(()),
    }
}

/// A private file of an instance, beside its keys (0600 when written by
/// [`write_private`]).
pub fn instance_file(instance: &str, name: &str) -> Result<PathBuf> {
    Ok(key_dir(instance)?.join(name))
}

/// Replaces a private file of an instance atomically, mode 0600.
pub fn write_private(instance: &str, name: &str, bytes: &[u8]) -> Result<()> {
    let dir = key_dir(instance)?;
    let tmp = dir.join(format!("{name}.tmp"));
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, dir.join(name)).with_context(|| format!("writing {}", dir.display()))?;
    File::open(&dir)?.sync_all()?;
    Ok(())
}

/// The identity `vellum relay` runs under: `$VELLUM_HOME/relay.key`,
/// made on first use. It must stay the same, since devices name the relay
/// by its peer id.
pub fn relay_seed(entropy: &mut dyn Entropy) -> Result<[u8; 32]> {
    let home = vellum_home()?;
    let path = home.join("relay.key");
    if path.exists() {
        return read_secret(&path);
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&home)
        .with_context(|| format!("creating {}", home.display()))?;
    let mut seed = [0u8; 32];
    entropy.fill(&mut seed);
    write_new_private(&path, &seed)?;
    Ok(seed)
}

/// Loads the keys of an instance.
pub fn load(instance: &str) -> Result<DeviceKeys> {
    let dir = key_dir(instance)?;
    if !dir.is_dir() {
        return Err(UserError::new(format!(
            "this vault's device keys are not in {} (was the vault copied here, or VELLUM_HOME changed?); with a key export of the vault, 'vellum key import FILE' makes this folder a device again",
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
    // A renewal interrupted between retiring the old key and installing
    // the new one: finish it.
    if !dir.join(DEVICE_KEY).exists() && dir.join(NEXT_DEVICE_KEY).exists() {
        fs::rename(dir.join(NEXT_DEVICE_KEY), dir.join(DEVICE_KEY))
            .with_context(|| format!("installing the new key in {}", dir.display()))?;
    }
    let seed = read_secret(&dir.join(DEVICE_KEY))?;
    let epoch = read_secret(&dir.join(VAULT_KEY))?;
    let signing = SigningKey::from_bytes(&seed);
    Ok(DeviceKeys {
        keyring: Keyring::new(EpochKey(epoch)).with_identity(&signing),
        signing,
    })
}

fn write_secret(path: &Path, bytes: &[u8; 32]) -> Result<()> {
    write_new_private(path, bytes)
}

/// Creates `path` with `bytes`, mode 0600, durably; never over an existing
/// file.
pub(crate) fn write_new_private(path: &Path, bytes: &[u8]) -> Result<()> {
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

/// How far this machine has written a device's chain: kept outside the
/// vault, so a `.vellum/` restored from an older copy is noticed before the
/// device writes a second op at a seq it already used (a fork of its own
/// chain, DESIGN §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainMark {
    pub device: DeviceId,
    pub seq: u64,
    pub head: OpId,
    /// The identity must be retired (its own ops were found elsewhere)
    /// before this device writes again.
    pub retire: bool,
}

const MARK_BYTES: usize = 32 + 8 + 32 + 1;

impl ChainMark {
    fn to_bytes(self) -> Vec<u8> {
        let mut b = Vec::with_capacity(MARK_BYTES);
        b.extend_from_slice(&self.device.0);
        b.extend_from_slice(&self.seq.to_le_bytes());
        b.extend_from_slice(&self.head.0);
        b.push(u8::from(self.retire));
        b
    }

    fn from_bytes(b: &[u8]) -> Option<ChainMark> {
        if b.len() != MARK_BYTES {
            return None;
        }
        Some(ChainMark {
            device: DeviceId::from_slice(&b[..32])?,
            seq: u64::from_le_bytes(b[32..40].try_into().ok()?),
            head: OpId::from_slice(&b[40..72])?,
            retire: b[72] != 0,
        })
    }
}

/// The chain mark of an instance, if one was written. A damaged mark is
/// reported and treated as absent: it only guards against forks.
pub fn read_mark(instance: &str) -> Result<Option<ChainMark>> {
    let path = key_dir(instance)?.join(CHAIN_MARK);
    match fs::read(&path) {
        Ok(b) => {
            let mark = ChainMark::from_bytes(&b);
            if mark.is_none() {
                tracing::warn!(path = %path.display(), "ignoring a damaged chain mark");
            }
            Ok(mark)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes the chain mark. A durable write replaces it atomically (temp
/// file, fsync, rename): for a mark that retires an identity. The mark
/// that follows each local op is overwritten in place, without fsync (a
/// rename over a file makes ext4 flush it, which cost a save more than the
/// journal's own fsync): a crash can leave it behind the journal, or torn
/// (then ignored as damaged), and either only narrows what it catches, a
/// `.vellum/` restored from a copy newer than the mark.
pub fn write_mark(instance: &str, mark: &ChainMark, durable: bool) -> Result<()> {
    let dir = key_dir(instance)?;
    let path = dir.join(CHAIN_MARK);
    if !durable {
        match fs::OpenOptions::new().write(true).open(&path) {
            Ok(mut f) => {
                // 73 bytes at offset 0: the file never changes length.
                f.write_all(&mark.to_bytes())
                    .with_context(|| format!("writing {}", path.display()))?;
                return Ok(());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("writing {}", path.display())),
        }
    }
    let tmp = dir.join(format!("{CHAIN_MARK}.tmp"));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(&mark.to_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The key the device will use after it retires its identity: created on
/// first call and durable before anything names it, so an interrupted
/// renewal resumes with the same key.
pub fn next_device_key(instance: &str, entropy: &mut dyn Entropy) -> Result<SigningKey> {
    let path = key_dir(instance)?.join(NEXT_DEVICE_KEY);
    if path.exists() {
        return Ok(SigningKey::from_bytes(&read_secret(&path)?));
    }
    let mut seed = [0u8; 32];
    entropy.fill(&mut seed);
    write_secret(&path, &seed)?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Makes the next key (from [`next_device_key`]) the device key. The old
/// key is kept as `device.retired-<id>.key`: it signed history, and keys
/// are never deleted.
pub fn switch_to_next_key(instance: &str, old: &SigningKey) -> Result<()> {
    let dir = key_dir(instance)?;
    let retired = dir.join(format!("device.retired-{}.key", device_id(old).short()));
    fs::rename(dir.join(DEVICE_KEY), &retired)
        .with_context(|| format!("retiring {}", dir.join(DEVICE_KEY).display()))?;
    fs::rename(dir.join(NEXT_DEVICE_KEY), dir.join(DEVICE_KEY))
        .with_context(|| format!("installing the new key in {}", dir.display()))?;
    File::open(&dir)?.sync_all()?;
    Ok(())
}

/// The vault folder an instance's keys were made for, if recorded.
pub fn read_root(instance: &str) -> Result<Option<PathBuf>> {
    match fs::read_to_string(key_dir(instance)?.join(ROOT)) {
        Ok(s) => Ok(Some(PathBuf::from(s.trim_end_matches('\n')))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).context("reading the vault folder of these keys"),
    }
}

/// Records the vault folder an instance's keys belong to.
pub fn write_root(instance: &str, root: &Path) -> Result<()> {
    let dir = key_dir(instance)?;
    let tmp = dir.join(format!("{ROOT}.tmp"));
    let text = root
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("the vault path {} is not UTF-8", root.display()))?;
    fs::write(&tmp, format!("{text}\n")).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, dir.join(ROOT)).with_context(|| format!("writing {}", tmp.display()))?;
    Ok(())
}
