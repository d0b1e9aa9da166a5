//! `vellum clone SRC DEST`: a new device of the same vault, offline.
//!
//! The source is scanned first, so the clone has what is on its disk. The
//! new device gets its own signing key and a copy of the vault key under
//! `$VELLUM_HOME`; the source writes a Member add naming it, so its ops
//! are admitted everywhere; then every chunk and op is copied (ops through
//! full admission, in total order) and the files are written to DEST.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;
use vellum_journal::Write;
use vellum_journal::blob;
use vellum_journal::control::Role;
use vellum_journal::entropy::{Entropy, OsEntropy};
use vellum_journal::keys::device_id;
use vellum_journal::replay::VaultState;
use vellum_journal::store::FjallStore;
use vellum_journal::{Admission, OpId};

use vellum_journal::path::VELLUM_DIR;

use crate::home;
use crate::materialise::materialise;
use crate::scan;
use crate::vault::{self, Vault, now_ms};

/// Ops admitted per durable commit while copying the journal.
const COPY_BATCH_OPS: usize = 1024;

#[derive(Serialize, Debug)]
pub struct CloneReport {
    /// The new device's id.
    pub device: String,
    /// The Member op the source wrote for it.
    pub member_op: String,
    pub ops: u64,
    pub files: usize,
}

/// Clones the vault at `src` into `dest`, a new or empty folder outside
/// any vault, as a new device called `name`.
pub fn clone(src: &mut Vault, dest: &Path, name: &str) -> Result<(Vault, CloneReport)> {
    crate::disk::require_new_or_empty(dest, "clone")?;
    vault::check_new_root(dest)?;
    let report = scan::scan(src)?;
    for w in &report.warnings {
        tracing::warn!("{w}");
    }

    let dot = dest.join(VELLUM_DIR);
    fs::create_dir_all(&dot).with_context(|| format!("creating {}", dot.display()))?;
    let lock = vault::lock(&dot)?;
    let mut entropy = OsEntropy;
    let instance = vellum_journal::id::hex(&entropy.array::<16>());
    let vault_key = src
        .keys
        .keyring
        .get(&OpId::ZERO)
        .ok_or_else(|| anyhow::anyhow!("the source vault's key is missing"))?
        .clone();
    let keys = home::create_with(&instance, &vault_key, &mut entropy)?;
    let device = device_id(&keys.signing);

    // The source admits the new device before anything is copied, so the
    // copy carries the add.
    let member_op = src.write_control(vec![Write::Add {
        device,
        role: Role::Full,
        name: name.to_string(),
    }])?[0];

    let store = FjallStore::open(&dot.join("journal"))
        .with_context(|| format!("creating the journal in {}", dot.display()))?;
    blob::copy_chunks(src.journal.store(), &store)?;
    let mut journal = src.journal.empty_replica(store)?;
    let mut ops = Vec::with_capacity(COPY_BATCH_OPS);
    let mut copy = |ops: Vec<Vec<u8>>| -> Result<()> {
        for verdict in journal.admit_batch(ops, now_ms())? {
            match verdict? {
                Admission::Admitted(_) | Admission::Duplicate(_) => {}
                Admission::Pending(id, why) => {
                    anyhow::bail!("op {} of the source did not admit: {why}", id.short())
                }
            }
        }
        Ok(())
    };
    let mut failed = None;
    src.journal.for_each_op_in_order(None, &mut |_, _, env| {
        ops.push(env.into_bytes());
        if ops.len() == COPY_BATCH_OPS
            && let Err(e) = copy(std::mem::take(&mut ops))
        {
            failed = Some(e);
            return Ok(std::ops::ControlFlow::Break(()));
        }
        Ok(std::ops::ControlFlow::Continue(()))
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    copy(ops)?;

    let mut v = Vault::assemble(dest, journal, keys, &instance, lock);
    v.catch_up()?;
    let head = v.head()?;
    let files = head.live_files().map(|(_, id, _)| *id).collect();
    let written = materialise(&v, &VaultState::default(), &head, &files)?;
    // The instance file is written last, as by init: without it the clone
    // is unfinished, and removing DEST/.vellum/ undoes it.
    home::write_root(&instance, &fs::canonicalize(dest)?)?;
    fs::write(dot.join("instance"), format!("{instance}\n")).context("writing .vellum/instance")?;
    let report = CloneReport {
        device: device.to_hex(),
        member_op: member_op.to_hex(),
        ops: v.journal.op_count(),
        files: written.len(),
    };
    Ok((v, report))
}
