//! What the journal says of the vault and this device, as the plugin's
//! settings show it (DESIGN §9): this device's name (`DeviceInfo` ops) and
//! the vault-wide ignore globs (the head's `VaultConfig`). The daemon's
//! `vault.get` and `vault.set` read and write them.
//!
//! **What an ignore change does to files the journal tracks.** Nothing is
//! deleted, from any disk or from history:
//! - A glob that starts to ignore a tracked file stops Vellum from looking
//!   at the path, on every device once the config reaches it. The scanner
//!   does not read it and forgets only its record of what it last saw
//!   there; it records no delete (`scan.rs`). The disk writer neither
//!   writes nor removes ignored paths, whatever ops say of them
//!   (`materialise.rs`). So the file stays on each disk as it is, stays
//!   live in the journal with all its history, and edits to it stay local.
//! - Before the new globs are written, `set` scans, so the journal holds
//!   the last bytes of every file about to be ignored.
//! - A glob removed: the next full scan (`set` runs one at once) reads the
//!   paths it ignored. A file there the head lacks (new, or deleted on
//!   another device meanwhile) is recorded as a create; a tracked one is compared with the head's version, as a file
//!   found for the first time: the same bytes record nothing, others are
//!   recorded as an edit of the head's version. The disk's bytes win
//!   there, so a change another device made to the file while it was
//!   ignored here is undone by that edit; both versions stay in history.
//!   A tracked file the disk lacks is written back from the head
//!   (`materialise::note_ignore_change`).
//!
//! Not an ignore change: a file the user moves into an ignored folder
//! leaves the synced set, so the scanner records a delete at its old path
//! (the file stays where it was moved to, and in history).

use anyhow::Result;
use serde::Serialize;
use vellum_journal::payload::{Action, Payload};
use vellum_journal::store::Batch;
use vellum_replicator::pair::NAME_BYTES_MAX;

use crate::error::user;
use crate::ignore_rules::Rules;
use crate::scan;
use crate::vault::Vault;

/// Most ignore globs the vault's config may hold.
pub const IGNORE_GLOBS_MAX: usize = 1000;
/// Longest ignore glob, in bytes: the most globs of this size keep the
/// config op well under `OP_BYTES_MAX`.
pub const IGNORE_GLOB_BYTES_MAX: usize = 512;

/// What `vault.get` and `vault.set` answer.
#[derive(Debug, Serialize, ts_rs::TS)]
pub struct VaultInfo {
    /// This device's id, in hex.
    pub device: String,
    /// This device's name, as the other devices see it; empty when it has
    /// none.
    pub device_name: String,
    /// The vault-wide ignore globs, in gitignore syntax.
    pub ignore: Vec<String>,
}

pub fn info(v: &mut Vault) -> Result<VaultInfo> {
    v.load_head()?;
    let device = v.device();
    let head = v.head_state();
    Ok(VaultInfo {
        device: device.to_hex(),
        device_name: head.device_names.get(&device).cloned().unwrap_or_default(),
        ignore: head.ignore.clone(),
    })
}

/// Names this device `name` and/or sets the vault's ignore globs to
/// `ignore`, in one batch of ops; nothing is written for what is already
/// so. Bad input is a user error that says what to do, and nothing is
/// written then.
pub fn set(v: &mut Vault, name: Option<&str>, ignore: Option<&[String]>) -> Result<VaultInfo> {
    if name.is_none() && ignore.is_none() {
        return Err(user(
            "vault.set needs device_name or ignore (or both); nothing was changed",
        ));
    }
    let name = name.map(checked_name).transpose()?;
    if let Some(globs) = ignore {
        check_globs(v, globs)?;
    }
    if planned(v, name.as_deref(), ignore)?.is_empty() {
        return info(v);
    }
    // A stale journal refuses before anything is written, the scan
    // included. This may make a copied folder a device of its own, so
    // what to write is planned again, for the device that writes it.
    v.writable()?;
    let payloads = planned(v, name.as_deref(), ignore)?;
    let rules_change = payloads
        .iter()
        .any(|p| matches!(p.action, Action::VaultConfig { .. }));
    if rules_change {
        scan::scan(v)?;
    }
    v.append(payloads, Batch::new())?;
    if rules_change {
        scan::scan(v)?;
    }
    info(v)
}

/// The ops that make this device's name `name` and the vault's globs
/// `ignore`: none for what is already so.
fn planned(v: &mut Vault, name: Option<&str>, ignore: Option<&[String]>) -> Result<Vec<Payload>> {
    v.load_head()?;
    let device = v.device();
    let head = v.head_state();
    let mut payloads = Vec::new();
    if let Some(name) = name
        && head.device_names.get(&device).map(String::as_str) != Some(name)
    {
        payloads.push(Payload::new(Action::DeviceInfo {
            name: name.to_string(),
        }));
    }
    if let Some(ignore) = ignore
        && ignore != head.ignore.as_slice()
    {
        payloads.push(Payload::new(Action::VaultConfig {
            ignore: ignore.to_vec(),
            merge_version: head.merge_version,
        }));
    }
    Ok(payloads)
}

/// `name` trimmed, if it can name a device.
fn checked_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(user(
            "the device name is empty; give it a name the other devices will show",
        ));
    }
    if name.len() > NAME_BYTES_MAX {
        return Err(user(format!(
            "the device name is {} bytes long; shorten it to at most {NAME_BYTES_MAX}",
            name.len()
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(user(
            "the device name holds a control character (a tab or line break, say); remove it",
        ));
    }
    Ok(name.to_string())
}

fn check_globs(v: &Vault, globs: &[String]) -> Result<()> {
    if globs.len() > IGNORE_GLOBS_MAX {
        return Err(user(format!(
            "{} ignore globs are too many; use at most {IGNORE_GLOBS_MAX} (a folder's glob covers what is under it)",
            globs.len()
        )));
    }
    for g in globs {
        if g.trim().is_empty() {
            return Err(user("an ignore glob is empty; remove it"));
        }
        if g.contains(['\0', '\n', '\r']) {
            return Err(user(format!(
                "the ignore glob {g:?} holds a NUL or a line break; one glob is one line"
            )));
        }
        if g.len() > IGNORE_GLOB_BYTES_MAX {
            return Err(user(format!(
                "an ignore glob is {} bytes long; shorten it to at most {IGNORE_GLOB_BYTES_MAX}",
                g.len()
            )));
        }
        if g.starts_with('#') {
            return Err(user(format!(
                "the ignore glob {g:?} starts with #, which makes it a comment; write \\# for a name that starts with #"
            )));
        }
    }
    Rules::check(globs).map_err(|e| user(format!("{e}; fix or remove it")))?;
    // What every device compiles: it must take the globs too.
    Rules::new(&v.root, globs)
        .map_err(|e| user(format!("the ignore globs do not compile ({e:#}); fix them")))?;
    Ok(())
}
