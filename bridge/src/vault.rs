//! An open vault: the directory, its lock, its keys and its journal.

use std::collections::BTreeMap;
use std::fs::{self, File, TryLockError};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use vellum_journal::Write;
use vellum_journal::control::Role;
use vellum_journal::entropy::{Entropy, OsEntropy};
use vellum_journal::path::VELLUM_DIR;
use vellum_journal::payload::{Action, MERGE_VERSION, Payload};
use vellum_journal::replay::VaultState;
use vellum_journal::store::{Batch, Durability, FjallStore, Ks, Store};
use vellum_journal::{ContentHash, DeviceId, Journal, OpId, VaultId};
use vellum_snapshots::{Head, TimeMachine};

use crate::error::user;
use crate::home::{self, DeviceKeys};
use crate::ignore_rules::Rules;

/// The vault-wide ignore rules a new vault starts with (gitignore syntax).
pub const DEFAULT_IGNORES: &[&str] = &[
    "/.vellum/",
    "/.obsidian/workspace*.json",
    "/.obsidian/plugins/vellum-sync/",
    "/.git/",
    "/.trash/",
    "*.tmp",
    "*.swp",
    "~*",
    ".#*",
    ".DS_Store",
    "Thumbs.db",
];

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What a stat of a file says, for telling whether it may have changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub ino: u64,
}

impl Stat {
    pub fn of(m: &std::fs::Metadata) -> Stat {
        use std::os::unix::fs::MetadataExt;
        let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
        Stat {
            size: m.len(),
            mtime_ns: ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: ns(m.ctime(), m.ctime_nsec()),
            ino: m.ino(),
        }
    }
}

/// A file modified this close before it was recorded may be modified
/// again within the same timestamp tick, unseen by a stat: such records
/// are "racy" and their files are hashed again by the next scan (as git
/// does with its index).
const RACY_WINDOW_NS: i64 = 2_000_000_000;

pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// What Vellum last wrote or read at a path: the scanner's baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskRec {
    pub hash: ContentHash,
    pub stat: Stat,
    /// When the record was made.
    pub recorded_ns: i64,
    /// For a sync write (Vellum wrote the file for other devices' ops): the
    /// content the file had before, as Vellum knew it. An editor holding
    /// that older buffer may save it back over the sync write moments
    /// later; the scanner then merges instead of reverting (DESIGN §8).
    pub replaced: Option<ContentHash>,
}

impl DiskRec {
    /// Whether a file with this stat is, without reading it, the recorded
    /// content: same size, times and inode (a rename onto the path changes
    /// the inode and ctime), and not racy.
    pub fn unchanged(&self, stat: &Stat) -> bool {
        self.stat == *stat && self.stat.mtime_ns.saturating_add(RACY_WINDOW_NS) < self.recorded_ns
    }

    pub fn to_bytes(self) -> Vec<u8> {
        let mut b = self.hash.0.to_vec();
        for v in [
            self.stat.size as i64,
            self.stat.mtime_ns,
            self.stat.ctime_ns,
            self.stat.ino as i64,
            self.recorded_ns,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        if let Some(r) = self.replaced {
            b.extend_from_slice(&r.0);
        }
        b
    }

    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let replaced = match b.len() {
            72 => None,
            104 => Some(ContentHash::from_slice(&b[72..]).expect("32")),
            _ => return None,
        };
        let n = |i: usize| i64::from_le_bytes(b[32 + 8 * i..40 + 8 * i].try_into().expect("8"));
        Some(DiskRec {
            hash: ContentHash::from_slice(&b[..32]).expect("32"),
            stat: Stat {
                size: n(0) as u64,
                mtime_ns: n(1),
                ctime_ns: n(2),
                ino: n(3) as u64,
            },
            recorded_ns: n(4),
            replaced,
        })
    }
}

pub struct Vault {
    pub root: PathBuf,
    pub journal: Journal<FjallStore>,
    pub keys: DeviceKeys,
    /// Where this instance's keys live under `$VELLUM_HOME`.
    instance: String,
    /// Set when the journal holds less of this device's own chain than
    /// this machine wrote: no op may be written until it is caught up.
    pub stale: Option<Stale>,
    /// Set when this folder is a copy of the vault folder these keys were
    /// made for: before it writes, it becomes a device of its own.
    copy_of: Option<PathBuf>,
    /// The head state, loaded once and kept current by `append`.
    head: Head,
    /// The ignore rules compiled for the last globs asked for, while they
    /// hold. Behind a lock so the disk writer, which has the vault shared,
    /// can use it too.
    rules: Mutex<Option<(Vec<String>, Arc<Rules>)>>,
    /// The network as a syncing daemon sees it; `None` outside one.
    pub net: Option<crate::peers::NetView>,
    // Held for the vault's lifetime: the journal has a single writer.
    _lock: File,
}

/// The folder `root` was copied from, if its keys belong to another vault
/// folder that still holds the same instance. A moved vault (the old
/// folder is gone or holds another vault) just records its new place.
fn copied_from(root: &Path, instance: &str) -> Result<Option<PathBuf>> {
    let here = fs::canonicalize(root)?;
    match home::read_root(instance)? {
        Some(r) if r == here => Ok(None),
        Some(r) => {
            // The same folder under another path (a bind mount) is not a copy.
            let holds_instance = fs::read_to_string(r.join(VELLUM_DIR).join("instance"))
                .is_ok_and(|s| s.trim() == instance);
            if holds_instance && !same_dir(&r.join(VELLUM_DIR), &here.join(VELLUM_DIR)) {
                Ok(Some(r))
            } else {
                home::write_root(instance, &here)?;
                Ok(None)
            }
        }
        None => {
            home::write_root(instance, &here)?;
            Ok(None)
        }
    }
}

/// A journal behind this device's own chain (see [`Vault::stale`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, ts_rs::TS)]
pub struct Stale {
    /// This device's ops the journal holds.
    pub held: u64,
    /// This device's ops this machine has written.
    pub wrote: u64,
}

/// The vault's lock is held by another process: a user error (wait, or
/// stop the other process), which callers that can wait recognise.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Busy(pub String);

/// Whether `e` says another process holds the vault.
pub fn is_busy(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<Busy>().is_some())
}

pub(crate) fn lock(dot: &Path) -> Result<File> {
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dot.join("lock"))
        .with_context(|| format!("opening {}", dot.join("lock").display()))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(TryLockError::WouldBlock) => Err(Busy(format!(
            "another vellum process is using this vault ({} is locked); wait for it or stop it",
            dot.join("lock").display()
        ))
        .into()),
        Err(TryLockError::Error(e)) => Err(e).context("locking the vault"),
    }
}

/// Refuses to make `root` a vault if it is a file, already a vault, or
/// inside one (vaults cannot nest).
pub fn check_new_root(root: &Path) -> Result<()> {
    if root.exists() && !root.is_dir() {
        return Err(user(format!("{} is not a directory", root.display())));
    }
    if root.join(VELLUM_DIR).exists() {
        return Err(user(format!(
            "{} is already a vault (it has .vellum/)",
            root.display()
        )));
    }
    let abs = if root.is_absolute() {
        root.to_path_buf()
    } else {
        std::env::current_dir()?.join(root)
    };
    // The nearest existing ancestor, resolved, so a folder not yet created
    // is checked too.
    if let Some(outer) = abs
        .ancestors()
        .find_map(|a| a.canonicalize().ok())
        .and_then(|c| {
            c.ancestors()
                .find(|d| d.join(VELLUM_DIR).is_dir())
                .map(Path::to_path_buf)
        })
    {
        return Err(user(format!(
            "{} is inside the vault {}; vaults cannot nest",
            root.display(),
            outer.display()
        )));
    }
    Ok(())
}

/// Whether `a` and `b` are one folder (the same device and inode), even
/// under two paths (a symlink, a bind mount).
pub(crate) fn same_dir(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// Finds the vault root: `--vault DIR` exactly, else the nearest ancestor
/// of the current directory holding `.vellum/`.
/// Points the vault folder at `root` to a new instance (its keys under
/// `$VELLUM_HOME`), replacing `.vellum/instance` atomically, and records
/// the folder as that instance's.
fn switch_instance(root: &Path, instance: &str) -> Result<()> {
    let dot = root.join(VELLUM_DIR);
    let tmp = dot.join("instance.tmp");
    fs::write(&tmp, format!("{instance}\n")).context("writing .vellum/instance")?;
    fs::rename(&tmp, dot.join("instance")).context("writing .vellum/instance")?;
    home::write_root(instance, &fs::canonicalize(root)?)
}

pub fn find_root(vault: Option<&Path>) -> Result<PathBuf> {
    match vault {
        Some(v) => {
            if !v.join(VELLUM_DIR).is_dir() {
                return Err(user(format!(
                    "not a vault: no .vellum/ in {}; run 'vellum init --vault {}'",
                    v.display(),
                    v.display()
                )));
            }
            Ok(v.to_path_buf())
        }
        None => {
            let cwd = std::env::current_dir().context("reading the current directory")?;
            cwd.ancestors()
                .find(|d| d.join(VELLUM_DIR).is_dir())
                .map(Path::to_path_buf)
                .ok_or_else(|| {
                    user(format!(
                        "no vault here (no .vellum/ found upward from {}); run 'vellum init'",
                        cwd.display()
                    ))
                })
        }
    }
}

impl Vault {
    /// Makes `root` a new vault: keys, genesis, device info and ignore rules.
    pub fn init(root: &Path, device_name: &str) -> Result<Vault> {
        check_new_root(root)?;
        let dot = root.join(VELLUM_DIR);
        fs::create_dir_all(&dot).with_context(|| format!("creating {}", dot.display()))?;
        let lock = lock(&dot)?;
        let mut entropy = OsEntropy;
        let instance = vellum_journal::id::hex(&entropy.array::<16>());
        let keys = home::create(&instance, &mut entropy)?;
        let store = FjallStore::open(&dot.join("journal"))?;
        let vault_id = VaultId(entropy.array());
        let now = now_ms();
        let journal = Journal::create(
            store,
            vault_id,
            &keys.signing,
            keys.keyring.clone(),
            &mut entropy,
            now,
            MERGE_VERSION,
        )?;
        // The instance file is written last: a vault without it is an
        // interrupted init, and `init` can be run again after removing it.
        let mut v = Vault {
            root: root.to_path_buf(),
            journal,
            keys,
            instance: instance.clone(),
            stale: None,
            copy_of: None,
            head: Head::default(),
            rules: Mutex::new(None),
            net: None,
            _lock: lock,
        };
        home::write_root(&instance, &fs::canonicalize(root)?)?;
        v.append(
            vec![
                Payload::new(Action::DeviceInfo {
                    name: device_name.to_string(),
                }),
                Payload::new(Action::VaultConfig {
                    ignore: DEFAULT_IGNORES.iter().map(|s| s.to_string()).collect(),
                    merge_version: MERGE_VERSION,
                }),
            ],
            Batch::new(),
        )?;
        fs::write(dot.join("instance"), format!("{instance}\n"))
            .context("writing .vellum/instance")?;
        Ok(v)
    }

    pub fn open(vault: Option<&Path>) -> Result<Vault> {
        let root = find_root(vault)?;
        let dot = root.join(VELLUM_DIR);
        let lock = lock(&dot)?;
        let instance = fs::read_to_string(dot.join("instance"))
            .map_err(|_| {
                user(format!(
                    "{} has no .vellum/instance: its init was interrupted; remove .vellum/ and run 'vellum init' again",
                    root.display()
                ))
            })?
            .trim()
            .to_string();
        let keys = home::load(&instance)?;
        let store = FjallStore::open(&dot.join("journal"))
            .with_context(|| format!("opening the journal in {}", dot.display()))?;
        let journal = Journal::open(store, keys.keyring.clone())?;
        let copy_of = copied_from(&root, &instance)?;
        let mut v = Vault {
            root,
            journal,
            keys,
            instance,
            stale: None,
            copy_of,
            head: Head::default(),
            rules: Mutex::new(None),
            net: None,
            _lock: lock,
        };
        v.catch_up()?;
        // A copy's journal is compared with the original's chain mark only
        // after it has become a device of its own.
        if v.copy_of.is_none() {
            v.check_own_chain()?;
        }
        Ok(v)
    }

    /// A vault over an already created journal (a clone's), holding its
    /// lock.
    pub(crate) fn assemble(
        root: &Path,
        journal: Journal<FjallStore>,
        keys: DeviceKeys,
        instance: &str,
        lock: File,
    ) -> Vault {
        Vault {
            root: root.to_path_buf(),
            journal,
            keys,
            instance: instance.to_string(),
            stale: None,
            copy_of: None,
            head: Head::default(),
            rules: Mutex::new(None),
            net: None,
            _lock: lock,
        }
    }

    /// This vault's instance id: its keys' folder under `$VELLUM_HOME`.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    pub fn device(&self) -> DeviceId {
        vellum_journal::keys::device_id(&self.keys.signing)
    }

    /// The replayed head state (a copy).
    pub fn head(&mut self) -> Result<VaultState> {
        Ok(self.head.state(&self.journal)?.clone())
    }

    /// Loads the head state into memory, if it is not there yet.
    pub fn load_head(&mut self) -> Result<()> {
        self.head.state(&self.journal)?;
        Ok(())
    }

    /// The head state in memory: call [`Vault::load_head`] (or anything
    /// that replays) first.
    pub fn head_state(&self) -> &VaultState {
        self.head
            .loaded()
            .expect("the head is loaded before it is read in place")
    }

    /// The vault-wide ignore rules of the head's config, compiled once per
    /// config rather than once per scan.
    pub fn rules(&mut self) -> Result<Arc<Rules>> {
        self.load_head()?;
        self.rules_for(&self.head_state().ignore)
    }

    /// The ignore rules for `ignore` (a state's config), compiled once per
    /// config.
    pub fn rules_for(&self, ignore: &[String]) -> Result<Arc<Rules>> {
        // Nothing panics while the lock is held; a poisoned one still
        // holds a whole value.
        let mut cached = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((globs, rules)) = &*cached
            && globs == ignore
        {
            return Ok(rules.clone());
        }
        let rules = Arc::new(Rules::new(&self.root, ignore)?);
        *cached = Some((ignore.to_vec(), rules.clone()));
        Ok(rules)
    }

    /// Applies admitted ops not yet in the head state.
    pub fn catch_up(&mut self) -> Result<vellum_snapshots::CatchUp> {
        Ok(TimeMachine::catch_up_cached(
            &self.journal,
            vellum_journal::limits::CHECKPOINT_INTERVAL_OPS,
            &mut self.head,
        )?)
    }

    /// Appends local ops and `extra` writes in one durable commit, then
    /// brings the head state up to date.
    pub fn append(&mut self, payloads: Vec<Payload>, extra: Batch) -> Result<Vec<OpId>> {
        let ids = if payloads.is_empty() {
            self.journal.store().commit(extra, Durability::Durable)?;
            Vec::new()
        } else {
            self.writable()?;
            let ids = self.journal.append_with(
                &self.keys.signing,
                payloads,
                &mut OsEntropy,
                now_ms(),
                Durability::Durable,
                extra,
            )?;
            self.mark_own_chain(false)?;
            ids
        };
        self.catch_up()?;
        Ok(ids)
    }

    /// Writes membership changes signed by this device (DESIGN §7).
    pub fn write_control(&mut self, writes: Vec<Write>) -> Result<Vec<OpId>> {
        self.writable()?;
        let ids = self
            .journal
            .write(&self.keys.signing, writes, &mut OsEntropy, now_ms())?;
        self.mark_own_chain(false)?;
        self.catch_up()?;
        Ok(ids)
    }

    /// Seals vault keys to members that lack them (DESIGN §7: a full
    /// member that sees a member missing a seal writes KeyShare): a member
    /// added while another device rotated the key, say. Returns the ops
    /// written; none when nothing is missing or this device may not share.
    pub fn share_missing_keys(&mut self) -> Result<Vec<OpId>> {
        if self.stale.is_some() || self.journal.missing_seals()?.is_empty() {
            return Ok(Vec::new());
        }
        self.writable()?;
        let ids = self
            .journal
            .share_missing_keys(&self.keys.signing, &mut OsEntropy, now_ms())?;
        if !ids.is_empty() {
            self.mark_own_chain(false)?;
            self.catch_up()?;
            tracing::info!(
                ops = ids.len(),
                "shared the vault key with members that lacked it"
            );
        }
        Ok(ids)
    }

    // ---- own chain and identity (DESIGN §3, own forks) ----------------

    /// Compares the journal's copy of this device's chain with the chain
    /// mark under `$VELLUM_HOME`. A journal behind the mark was restored
    /// from an older copy: writing now would fork the chain, so the vault
    /// is stale and its identity is marked for retirement.
    pub(crate) fn check_own_chain(&mut self) -> Result<()> {
        let device = self.device();
        let held_seq = self.journal.admitted().seq(&device);
        let Some(mut mark) = home::read_mark(&self.instance)?.filter(|m| m.device == device) else {
            return Ok(());
        };
        // Behind if the newest own op this machine knows of is not here.
        let behind = mark.seq > 0 && !self.journal.holds(&mark.head)?;
        if behind {
            self.stale = Some(Stale {
                held: held_seq,
                wrote: mark.seq,
            });
            if !mark.retire {
                mark.retire = true;
                home::write_mark(&self.instance, &mark, true)?;
            }
        } else {
            self.stale = None;
        }
        Ok(())
    }

    /// Records ops of this device's own chain that arrived from elsewhere
    /// (import, later sync) but were not in this journal: DESIGN §3 says
    /// the identity retires at once. The mark rises to the highest of them,
    /// so the vault stays stale until the whole chain is here.
    pub fn own_ops_arrived(&mut self, highest: (u64, OpId)) -> Result<()> {
        let device = self.device();
        let mut mark = home::read_mark(&self.instance)?
            .filter(|m| m.device == device)
            .unwrap_or(home::ChainMark {
                device,
                seq: 0,
                head: OpId::ZERO,
                retire: false,
            });
        if highest.0 > mark.seq {
            (mark.seq, mark.head) = highest;
        }
        mark.retire = true;
        home::write_mark(&self.instance, &mark, true)?;
        self.check_own_chain()
    }

    /// Whether this device's identity is to be retired before it writes.
    pub fn retiring(&self) -> Result<bool> {
        let device = self.device();
        Ok(home::read_mark(&self.instance)?.is_some_and(|m| m.device == device && m.retire))
    }

    /// Notes this device's chain head in the mark.
    fn mark_own_chain(&mut self, retire: bool) -> Result<()> {
        let device = self.device();
        if let Some(e) = self.journal.admitted().get(&device) {
            home::write_mark(
                &self.instance,
                &home::ChainMark {
                    device,
                    seq: e.seq,
                    head: e.head,
                    retire,
                },
                retire,
            )?;
        }
        Ok(())
    }

    /// Refuses to write while stale; retires the identity first when that
    /// is due (see [`Vault::renew_identity`]).
    pub(crate) fn writable(&mut self) -> Result<()> {
        if self.copy_of.is_some() {
            self.become_new_device()?;
        }
        if let Some(s) = &self.stale {
            return Err(user(format!(
                "this vault's journal is older than this device: it holds this device's ops up to {} but the device wrote {} (was .vellum/ restored from an old copy?); import an export from another device ('vellum import FILE') to recover; nothing was written",
                s.held, s.wrote
            )));
        }
        if self.retiring()? {
            self.renew_identity()?;
        }
        Ok(())
    }

    /// Makes this folder, a copy of another vault folder with the same keys,
    /// a device of its own (DESIGN §12: a copied device gets a new
    /// identity): new keys under a new instance, added as a full member by
    /// the key the copy came with, whose chain this may fork; the new
    /// identity's first op vouches for that (see [`Vault::renew_identity`]).
    /// The original keeps its keys and, on seeing this op, renews its own.
    fn become_new_device(&mut self) -> Result<()> {
        let Some(original) = self.copy_of.take() else {
            return Ok(());
        };
        let mut entropy = OsEntropy;
        let instance = vellum_journal::id::hex(&entropy.array::<16>());
        let vault_key = self
            .keys
            .keyring
            .get(&OpId::ZERO)
            .ok_or_else(|| anyhow::anyhow!("the vault key is missing"))?
            .clone();
        let keys = home::create_with(&instance, &vault_key, &mut entropy)?;
        let new_id = vellum_journal::keys::device_id(&keys.signing);
        let head = self.head()?;
        let old_name = head
            .device_names
            .get(&self.device())
            .cloned()
            .unwrap_or_else(|| "device".to_string());
        let name = format!("{old_name} (copy)");
        self.journal.write(
            &self.keys.signing,
            vec![Write::Add {
                device: new_id,
                role: Role::Full,
                name: name.clone(),
            }],
            &mut entropy,
            now_ms(),
        )?;
        self.catch_up()?;
        switch_instance(&self.root, &instance)?;
        self.journal.add_identity(&keys.signing)?;
        self.keys = keys;
        self.instance = instance;
        tracing::info!(
            original = %original.display(),
            device = %new_id.short(),
            "this folder is a copy of another vault folder: it is now a device of its own"
        );
        self.append(
            vec![Payload::new(Action::DeviceInfo { name })],
            Batch::new(),
        )?;
        Ok(())
    }

    /// Adds a recovery identity (DESIGN §7, `key export`): a member that
    /// may change membership and is sealed every key from now on, but
    /// writes no notes. Returns the ops written (a KeyRotate may come
    /// first).
    pub fn add_recovery(&mut self, id: DeviceId, name: &str) -> Result<Vec<OpId>> {
        self.writable()?;
        let ids = self.journal.write(
            &self.keys.signing,
            vec![Write::Add {
                device: id,
                role: Role::Recovery,
                name: name.to_string(),
            }],
            &mut OsEntropy,
            now_ms(),
        )?;
        self.mark_own_chain(false)?;
        self.catch_up()?;
        Ok(ids)
    }

    /// Makes `root`, a vault folder whose device keys are lost (restored
    /// from a backup onto a new machine, say), a device again with a key
    /// export (DESIGN §7, `key import`): a new identity under a new
    /// instance, added as a full member by the export's recovery identity.
    /// Nothing in the folder is changed but `.vellum/instance` and the
    /// journal, which gains that add and the new device's name.
    pub fn recover(
        root: &Path,
        export: &vellum_journal::keyfile::KeyExport,
        name: &str,
    ) -> Result<Vault> {
        let dot = root.join(VELLUM_DIR);
        if !dot.join("journal").is_dir() {
            return Err(user(format!(
                "{} holds no vault journal (.vellum/journal): a key export recovers a vault folder whose keys were lost; to add a new device, use 'vellum invite' and 'vellum join'",
                root.display()
            )));
        }
        let old_instance = fs::read_to_string(dot.join("instance"))
            .ok()
            .map(|s| s.trim().to_string());
        if let Some(i) = &old_instance
            && !i.is_empty()
            && home::has_keys(i)?
        {
            return Err(user(
                "this vault folder's device keys are on this machine: it works as it is ('vellum status'); a key import is for a folder whose keys were lost",
            ));
        }
        let lock = lock(&dot)?;
        let recovery = vellum_journal::keys::SigningKey::from_bytes(&export.recovery);
        let rid = vellum_journal::keys::device_id(&recovery);
        let keyring =
            vellum_journal::keys::Keyring::new(export.genesis.clone()).with_identity(&recovery);
        let store = FjallStore::open(&dot.join("journal"))
            .with_context(|| format!("opening the journal in {}", dot.display()))?;
        let mut journal = Journal::open(store, keyring)?;
        if journal.vault() != export.vault {
            return Err(user(format!(
                "this key export is for another vault ({}); this folder holds vault {}",
                export.vault.to_hex(),
                journal.vault().to_hex()
            )));
        }
        let members = journal.members(journal.admitted())?;
        if members.active(&rid).is_none() {
            return Err(user(
                "this folder's journal does not know the export's recovery key: the folder is older than the export, or the key was removed from the vault; nothing was changed",
            ));
        }
        let mut entropy = OsEntropy;
        let instance = vellum_journal::id::hex(&entropy.array::<16>());
        let keys = home::create_with(&instance, &export.genesis, &mut entropy)?;
        let new_id = vellum_journal::keys::device_id(&keys.signing);
        // Peers refuse the new key until they hold its add, which only this
        // folder has: the node carries the sync under the recovery key till
        // then.
        home::write_carrier(&instance, &export.recovery)?;
        journal.write(
            &recovery,
            vec![Write::Add {
                device: new_id,
                role: Role::Full,
                name: name.to_string(),
            }],
            &mut entropy,
            now_ms(),
        )?;
        journal.add_identity(&keys.signing)?;
        switch_instance(root, &instance)?;
        let mut v = Vault::assemble(root, journal, keys, &instance, lock);
        v.catch_up()?;
        v.append(
            vec![Payload::new(Action::DeviceInfo {
                name: name.to_string(),
            })],
            Batch::new(),
        )?;
        tracing::info!(device = %new_id.short(), "recovered the vault with a key export");
        Ok(v)
    }

    /// Retires this device's identity (DESIGN §3, own forks): its last op
    /// adds a new key as a full member, and from then on the device signs
    /// with the new key. What is on disk and not yet in the journal is then
    /// recorded under the new identity by the next scan, so nothing is
    /// lost. Each step can be repeated after a crash.
    pub fn renew_identity(&mut self) -> Result<DeviceId> {
        if self.stale.is_some() {
            return Err(anyhow::anyhow!(
                "cannot renew the identity while the journal lacks this device's own ops"
            ));
        }
        let old = self.keys.signing.clone();
        let next = home::next_device_key(&self.instance, &mut OsEntropy)?;
        let next_id = vellum_journal::keys::device_id(&next);
        let head = self.head()?;
        let name = head
            .device_names
            .get(&self.device())
            .cloned()
            .unwrap_or_else(|| "this device".to_string());
        let new_name = name.clone();
        if !self.journal.is_member(&next_id)? {
            self.journal.write(
                &old,
                vec![Write::Add {
                    device: next_id,
                    role: Role::Full,
                    name: new_name,
                }],
                &mut OsEntropy,
                now_ms(),
            )?;
            self.catch_up()?;
        }
        home::switch_to_next_key(&self.instance, &old)?;
        self.journal.add_identity(&next)?;
        self.keys.keyring = self.keys.keyring.clone().with_identity(&next);
        self.keys.signing = next;
        // The new identity's first op names it, and builds on everything
        // here, the old identity's own branch included: if that branch is
        // a fork, this op is what makes it count (DESIGN §3).
        self.append(
            vec![Payload::new(Action::DeviceInfo { name })],
            Batch::new(),
        )?;
        tracing::info!(
            retired = %vellum_journal::keys::device_id(&old).short(),
            new = %next_id.short(),
            "this device has a new identity"
        );
        Ok(next_id)
    }

    /// What Vellum last wrote or read at vault path `p`, if anything.
    pub fn disk_record(&self, p: &str) -> Result<Option<DiskRec>> {
        Ok(self
            .journal
            .store()
            .get(Ks::Disk, p.as_bytes())?
            .and_then(|b| DiskRec::from_bytes(&b)))
    }

    /// The records at `paths` and under them (as folders).
    pub fn disk_records_under(&self, paths: &[String]) -> Result<BTreeMap<String, DiskRec>> {
        let mut out = BTreeMap::new();
        for p in paths {
            if let Some(r) = self.disk_record(p)? {
                out.insert(p.clone(), r);
            }
            let prefix = format!("{p}/");
            self.journal
                .store()
                .scan_prefix(Ks::Disk, prefix.as_bytes(), &mut |k, v| {
                    if let (Ok(p), Some(r)) = (std::str::from_utf8(k), DiskRec::from_bytes(v)) {
                        out.insert(p.to_string(), r);
                    }
                    ControlFlow::Continue(())
                })?;
        }
        Ok(out)
    }

    pub fn disk_records(&self) -> Result<BTreeMap<String, DiskRec>> {
        let mut out = BTreeMap::new();
        self.journal.store().scan(
            Ks::Disk,
            (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded),
            false,
            &mut |k, v| {
                if let (Ok(p), Some(r)) = (std::str::from_utf8(k), DiskRec::from_bytes(v)) {
                    out.insert(p.to_string(), r);
                }
                ControlFlow::Continue(())
            },
        )?;
        Ok(out)
    }

    pub fn vault_id(&self) -> VaultId {
        self.journal.vault()
    }

    /// Bytes of the journal proper: ops and chunks.
    pub fn journal_bytes(&self) -> Result<u64> {
        Ok(self.journal.op_bytes()?
            + vellum_journal::blob::stored_chunk_bytes(self.journal.store())?)
    }
}
