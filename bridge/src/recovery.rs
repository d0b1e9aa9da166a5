//! `vellum key export|import` (DESIGN §7): the vault's genesis key and a
//! new recovery identity, sealed under a passphrase (the layout is in
//! `vellum_journal::keyfile`), and the way back in for a vault folder whose
//! device keys were lost.
//!
//! The recovery identity is a member with the recovery role: every later
//! key rotation seals to it, so the export stays good for what is written
//! after it, and it may add the new device that an import creates. It never
//! writes notes. Each export is its own identity, removable on its own
//! (`vellum member remove "recovery key …"`) if the file leaks.

use std::fs;
use std::io::Write as _;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use vellum_journal::entropy::{Entropy, OsEntropy};
use vellum_journal::keyfile::{self, Cost, KeyExport};
use vellum_journal::keys::{SigningKey, device_id};
use vellum_journal::path::VELLUM_DIR;
use zeroize::Zeroizing;

use crate::cli::KeyAction;
use crate::daemon::SOCKET;
use crate::error::user;
use crate::home;
use crate::vault::{self, Vault};

/// What `key export` did.
#[derive(Debug, Serialize, Deserialize, Clone, ts_rs::TS)]
pub struct Exported {
    /// The file written.
    pub file: String,
    /// The recovery identity's device id (hex).
    pub recovery: String,
    /// Its member name, for `vellum member remove`.
    pub name: String,
    /// The ops that added it (a key rotation may come first).
    pub ops: Vec<String>,
}

/// What `key import` did.
#[derive(Debug, Serialize)]
pub struct Imported {
    /// This folder's new device id (hex).
    pub device: String,
    pub name: String,
    /// The other full members: the lost device among them, to remove once
    /// it is known to be gone for good.
    pub members: Vec<Member>,
    /// Files on disk that differed from the journal, recorded as this
    /// device's changes.
    pub recorded: u64,
}

#[derive(Debug, Serialize)]
pub struct Member {
    pub device: String,
    pub name: Option<String>,
}

/// Writes a key export of `v` to `file` (which must not exist, and not lie
/// inside the vault, where it would be synced to every device).
pub fn export(v: &mut Vault, file: &Path, passphrase: &str) -> Result<Exported> {
    let file = outside_the_vault(v, file)?;
    let seed = Zeroizing::new(OsEntropy.array::<32>());
    let id = device_id(&SigningKey::from_bytes(&seed));
    let sealed = keyfile::seal(
        &KeyExport {
            vault: v.journal.vault(),
            genesis: home::vault_key(v.instance())?,
            recovery: seed,
        },
        passphrase,
        Cost::DEFAULT,
        &mut OsEntropy,
    )
    .map_err(|e| user(e.to_string()))?;
    // Aside first, durable; then the member add; then in place. A failure
    // before the add leaves nothing behind; after it, an unused member.
    let tmp = aside(&file);
    home::write_new_private(&tmp, &sealed).map_err(|e| {
        user(format!(
            "could not write {}: {}",
            file.display(),
            crate::error::one_line(&e)
        ))
    })?;
    let name = format!(
        "recovery key {}",
        jiff::Zoned::now().strftime("%Y-%m-%d %H:%M")
    );
    let ops = match v.add_recovery(id, &name) {
        Ok(ops) => ops,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    if let Err(e) = fs::hard_link(&tmp, &file) {
        let _ = fs::remove_file(&tmp);
        return Err(user(format!(
            "could not write {}: {e}; the recovery key '{name}' was added meanwhile and is unused: remove it with 'vellum member remove \"{name}\"'",
            file.display()
        )));
    }
    let _ = fs::remove_file(&tmp);
    sync_dir(&file)?;
    tracing::info!(recovery = %id.short(), "wrote a key export");
    Ok(Exported {
        file: file.to_string_lossy().into_owned(),
        recovery: id.to_hex(),
        name,
        ops: ops.iter().map(|o| o.to_hex()).collect(),
    })
}

/// Makes the vault folder at `root` (or the one the current directory is
/// in) a device again with the key export in `file`.
pub fn import(
    root: Option<&Path>,
    file: &Path,
    passphrase: &str,
    name: Option<&str>,
) -> Result<Imported> {
    let root = vault::find_root(root)?;
    let export = read(file, passphrase)?;
    let name = name
        .map(str::to_string)
        .unwrap_or_else(crate::commands::default_device_name);
    let mut v = Vault::recover(&root, &export, &name)?;
    let me = v.device();
    // What is on disk and not in the journal (written after the backup the
    // folder came from, say) becomes this device's first changes.
    let r = crate::scan::scan(&mut v)?;
    let recorded = r.created + r.edited + r.deleted + r.renamed;
    let members = crate::peers::list(&mut v)?
        .into_iter()
        .filter(|p| p.role == "full")
        .map(|p| Member {
            device: p.device,
            name: p.name,
        })
        .collect();
    Ok(Imported {
        device: me.to_hex(),
        name,
        members,
        recorded,
    })
}

/// Opens a key file with a passphrase: the one-line errors a user can act
/// on.
pub fn read(file: &Path, passphrase: &str) -> Result<KeyExport> {
    let meta = fs::metadata(file).map_err(|e| user(format!("{}: {e}", file.display())))?;
    if !meta.is_file() || meta.len() != keyfile::FILE_BYTES as u64 {
        return Err(user(format!(
            "{} is not a vellum key export (a file written by 'vellum key export')",
            file.display()
        )));
    }
    let bytes = fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    keyfile::open(&bytes, passphrase).map_err(|e| user(e.to_string()))
}

/// `file` made absolute, checked to be new and outside the vault.
fn outside_the_vault(v: &Vault, file: &Path) -> Result<PathBuf> {
    let name = file
        .file_name()
        .ok_or_else(|| user(format!("{} is not a file name", file.display())))?;
    let parent = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::env::current_dir().context("reading the current directory")?,
    };
    let parent =
        fs::canonicalize(&parent).map_err(|e| user(format!("{}: {e}", parent.display())))?;
    let file = parent.join(name);
    if file.symlink_metadata().is_ok() {
        return Err(user(format!(
            "{} exists; a key export never overwrites a file: choose another name",
            file.display()
        )));
    }
    let root = fs::canonicalize(&v.root).context("resolving the vault folder")?;
    if parent.starts_with(&root) {
        return Err(user(format!(
            "{} is inside the vault, which would sync it to every device: write the key export outside it",
            file.display()
        )));
    }
    Ok(file)
}

fn aside(file: &Path) -> PathBuf {
    let name = file.file_name().unwrap_or_default().to_string_lossy();
    file.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

fn sync_dir(file: &Path) -> Result<()> {
    if let Some(dir) = file.parent() {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing {}", dir.display()))?;
    }
    Ok(())
}

/// `vellum key export|import`: asks for the passphrase, runs the action
/// (an export through the vault's daemon when one runs) and prints what
/// happened. Returns the exit code.
pub fn cli(action: &KeyAction, vault: Option<&Path>, json: bool) -> Result<u8> {
    match action {
        KeyAction::Export { file } => {
            let file = std::path::absolute(file).context("reading the current directory")?;
            let passphrase = passphrase(true)?;
            let root = vault::find_root(vault)?;
            let socket = root.join(VELLUM_DIR).join(SOCKET);
            let r = match UnixStream::connect(&socket) {
                Ok(stream) => {
                    let answer = crate::daemon::client::call(
                        &stream,
                        "key.export",
                        serde_json::json!({"file": file, "passphrase": &*passphrase}),
                    )?;
                    serde_json::from_value::<Exported>(answer).context("the daemon's answer")?
                }
                Err(_) => export(&mut Vault::open(Some(&root))?, &file, &passphrase)?,
            };
            if json {
                crate::cli::print_line(&serde_json::to_string(&r)?);
            } else {
                crate::cli::print_line(&format!(
                    "wrote {}\nKeep it apart from the vault and remember the passphrase: together they read every note, and recover this vault with 'vellum key import'.\nIt is the member '{}': if the file leaks, run 'vellum member remove \"{}\"'.",
                    r.file, r.name, r.name
                ));
            }
        }
        KeyAction::Import { file, name } => {
            let passphrase = passphrase(false)?;
            let r = import(vault, file, &passphrase, name.as_deref())?;
            if json {
                crate::cli::print_line(&serde_json::to_string(&r)?);
            } else {
                crate::cli::print_line(&format!(
                    "this folder is device {} ({}) of its vault again{}",
                    &r.device[..12],
                    r.name,
                    if r.recorded > 0 {
                        format!(
                            "; {} files on disk differed from the journal and were recorded",
                            r.recorded
                        )
                    } else {
                        String::new()
                    }
                ));
                if !r.members.is_empty() {
                    crate::cli::print_line(
                        "The vault's other devices (the one whose keys were lost is among them; remove it once it is gone for good with 'vellum member remove ID'):",
                    );
                    for m in &r.members {
                        crate::cli::print_line(&format!(
                            "  {}  {}",
                            &m.device[..12],
                            m.name.as_deref().unwrap_or("(unnamed)")
                        ));
                    }
                }
            }
        }
    }
    Ok(0)
}

/// The passphrase: typed without echo on a terminal (twice for an
/// export), else the first line of stdin (for scripts).
fn passphrase(confirm: bool) -> Result<Zeroizing<String>> {
    let stdin = std::io::stdin();
    if !rustix::termios::isatty(&stdin) {
        let mut line = Zeroizing::new(String::new());
        stdin
            .read_line(&mut line)
            .context("reading the passphrase from stdin")?;
        let p = Zeroizing::new(line.trim_end_matches(['\n', '\r']).to_string());
        if p.is_empty() {
            return Err(user("no passphrase: give it on the first line of stdin"));
        }
        return Ok(p);
    }
    let first = typed("Passphrase: ")?;
    if confirm {
        if first.chars().count() < keyfile::MIN_PASSPHRASE_CHARS {
            return Err(user(keyfile::KeyFileError::ShortPassphrase.to_string()));
        }
        let again = typed("The same passphrase again: ")?;
        if *again != *first {
            return Err(user("the two passphrases differ; nothing was written"));
        }
    }
    Ok(first)
}

/// Reads one line from the terminal with echo off, restoring it after.
fn typed(prompt: &str) -> Result<Zeroizing<String>> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let before = tcgetattr(&stdin).context("reading the terminal settings")?;
    let mut quiet = before.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    tcsetattr(&stdin, OptionalActions::Flush, &quiet).context("turning off the echo")?;
    let mut line = Zeroizing::new(String::new());
    let read = stdin.read_line(&mut line);
    let _ = tcsetattr(&stdin, OptionalActions::Flush, &before);
    eprintln!();
    read.context("reading the passphrase")?;
    Ok(Zeroizing::new(
        line.trim_end_matches(['\n', '\r']).to_string(),
    ))
}
