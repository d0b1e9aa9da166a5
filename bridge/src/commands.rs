//! Every CLI command, run against vaults the caller provides: the CLI
//! opens them; the daemon (`vellum serve`) lends the one it holds, so a
//! command gives the same result with or without a daemon running. Output
//! goes to an [`Io`], which the CLI points at stdout and stderr and the
//! daemon at buffers it sends back over its socket.

use std::io::Write;
use std::ops::{Deref, DerefMut};
use std::path::Path;

use anyhow::Result;
use serde::Serialize;
use vellum_journal::path::VELLUM_DIR;
use vellum_snapshots::TimeMachine;

use crate::cli::{Cli, Command};
use crate::error::user;
use crate::vault::{self, Vault};
use crate::{clone, conflicts, history, quarantine, rewrite, scan, transfer, verify};

/// Where a command's output goes: `out` is its stdout (the `--json`
/// document, a file's bytes), `err` takes warnings, one line each.
pub struct Io<'a> {
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
}

impl Io<'_> {
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes)?;
        Ok(self.out.flush()?)
    }

    fn json<T: Serialize>(&mut self, v: &T) -> Result<()> {
        let mut s = serde_json::to_string_pretty(v)?;
        s.push('\n');
        self.write(s.as_bytes())
    }

    fn say(&mut self, line: impl AsRef<str>) -> Result<()> {
        self.write(format!("{}\n", line.as_ref()).as_bytes())
    }

    fn warn(&mut self, w: impl AsRef<str>) {
        // A warning that cannot be written is not worth failing the command.
        let _ = writeln!(self.err, "warning: {}", w.as_ref());
    }

    fn warn_all(&mut self, warnings: &[String]) {
        for w in warnings {
            self.warn(w);
        }
    }
}

/// A vault a command works on: opened for it, or lent by the daemon.
pub enum VaultRef<'a> {
    Opened(Box<Vault>),
    Lent(&'a mut Vault),
}

impl Deref for VaultRef<'_> {
    type Target = Vault;
    fn deref(&self) -> &Vault {
        match self {
            VaultRef::Opened(v) => v,
            VaultRef::Lent(v) => v,
        }
    }
}

impl DerefMut for VaultRef<'_> {
    fn deref_mut(&mut self) -> &mut Vault {
        match self {
            VaultRef::Opened(v) => v,
            VaultRef::Lent(v) => v,
        }
    }
}

/// How a command gets the vault it names (`--vault DIR`, or the nearest
/// one upward from the current directory for `None`).
pub trait Vaults {
    fn open(&mut self, vault: Option<&Path>) -> Result<VaultRef<'_>>;
}

/// Opens each vault asked for, taking its lock: the CLI without a daemon.
pub struct OpenEach;

impl Vaults for OpenEach {
    fn open(&mut self, vault: Option<&Path>) -> Result<VaultRef<'_>> {
        Ok(VaultRef::Opened(Box::new(Vault::open(vault)?)))
    }
}

/// `vellum status`, and the daemon's `status` method.
#[derive(Serialize, Clone, Debug, PartialEq, Eq, ts_rs::TS)]
pub struct Status {
    pub head: String,
    pub ops: u64,
    pub files: u64,
    pub conflicts: u64,
    pub pending: u64,
    pub quarantined: u64,
    pub journal_bytes: u64,
    pub device: String,
    pub vault: String,
    /// Set when the journal lacks some of this device's own ops (restored
    /// from an older copy): nothing can be written until they arrive.
    pub stale: Option<vault::Stale>,
    /// Set while a daemon syncs this vault: its addresses and peers.
    pub network: Option<crate::peers::NetStatus>,
}

pub fn default_device_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "device".into())
}

/// The vault's status (DESIGN §8).
pub fn status(v: &Vault) -> Result<Status> {
    Ok(Status {
        head: v.journal.admitted().to_point_string(),
        ops: v.journal.op_count(),
        files: TimeMachine::head_live_files(&v.journal)?,
        conflicts: TimeMachine::head_open_conflicts(&v.journal)?,
        pending: v.journal.pending_count()?,
        quarantined: quarantine::held_files(v)?,
        journal_bytes: v.journal_bytes()?,
        device: v.device().to_hex(),
        vault: v.vault_id().to_hex(),
        stale: v.stale,
        network: v.net.as_ref().map(|n| n.status(v.journal.admitted())),
    })
}

pub fn run(cli: Cli, vaults: &mut dyn Vaults, io: &mut Io<'_>) -> Result<()> {
    let g = cli.global;
    let json = g.json;
    match cli.command {
        // `main` runs the simulator before anything else.
        Command::Sim(_) => return Err(user("vellum sim runs on its own: start it directly")),
        Command::Serve { .. }
        | Command::Invite { .. }
        | Command::Join { .. }
        | Command::Key { .. }
        | Command::Relay { .. } => {
            return Err(user("this command runs on its own: start it directly"));
        }
        Command::Service { action } => {
            let r = match action {
                crate::cli::ServiceAction::Install => crate::service::install(g.vault.as_deref())?,
                crate::cli::ServiceAction::Uninstall => {
                    crate::service::uninstall(g.vault.as_deref())?
                }
            };
            if let Some(n) = &r.note {
                io.warn(n);
            }
            if json {
                io.json(&r)?;
            } else {
                let done = match (action, r.applied) {
                    (crate::cli::ServiceAction::Install, true) => "installed and started",
                    (crate::cli::ServiceAction::Install, false) => "installed",
                    (crate::cli::ServiceAction::Uninstall, _) => "removed",
                };
                io.say(format!("{} {done} ({})", r.unit, r.path))?;
            }
        }
        Command::Init { name } => {
            let root = match &g.vault {
                Some(v) => v.clone(),
                None => std::env::current_dir()?,
            };
            if root.file_name().is_some_and(|n| n == VELLUM_DIR) {
                return Err(user("cannot make a vault inside .vellum/"));
            }
            let mut v = Vault::init(&root, &name.unwrap_or_else(default_device_name))?;
            let report = scan::scan(&mut v)?;
            io.warn_all(&report.warnings);
            if json {
                io.json(&serde_json::json!({
                    "vault": v.vault_id().to_hex(),
                    "device": v.device().to_hex(),
                    "ops_recorded": report.ops_recorded,
                    "created": report.created,
                    "head": report.head,
                }))?;
            } else {
                io.say(format!(
                    "initialised vault {} in {} ({} files recorded)",
                    v.vault_id(),
                    root.display(),
                    report.created
                ))?;
            }
        }
        Command::Scan => {
            let mut v = vaults.open(g.vault.as_deref())?;
            let report = scan::scan(&mut v)?;
            io.warn_all(&report.warnings);
            if json {
                io.json(&report)?;
            } else {
                io.say(format!(
                    "{} ops: {} created, {} edited, {} deleted, {} renamed",
                    report.ops_recorded,
                    report.created,
                    report.edited,
                    report.deleted,
                    report.renamed
                ))?;
                if report.quarantined > 0 {
                    io.say(quarantine_note(report.quarantined))?;
                }
            }
        }
        Command::Status => {
            let v = vaults.open(g.vault.as_deref())?;
            let s = status(&v)?;
            if json {
                io.json(&s)?;
            } else {
                io.say(format!(
                    "vault {}\ndevice {}\nhead {}\n{} files, {} ops ({} pending), journal {} bytes",
                    s.vault,
                    &s.device[..12],
                    history::short_point(&s.head),
                    s.files,
                    s.ops,
                    s.pending,
                    s.journal_bytes
                ))?;
                if s.quarantined > 0 {
                    io.say(quarantine_note(s.quarantined))?;
                }
                if let Some(st) = s.stale {
                    io.say(format!(
                        "stale: the journal holds this device's ops up to {} of {}; import an export from another device to recover",
                        st.held, st.wrote
                    ))?;
                }
                match &s.network {
                    Some(n) => {
                        io.say(format!(
                            "syncing: {} peer(s) connected, {} op(s) to fetch",
                            n.connected, n.incoming_ops
                        ))?;
                        for a in &n.listening {
                            io.say(format!("listening on {a}"))?;
                        }
                    }
                    None => io.say("not syncing: no daemon runs for this vault (vellum serve)")?,
                }
            }
        }
        Command::Log {
            path,
            author,
            limit,
            before,
        } => {
            let mut v = vaults.open(g.vault.as_deref())?;
            let entries = history::log(
                &mut v,
                path.as_deref(),
                author.as_deref(),
                before.as_deref(),
                limit,
            )?;
            if json {
                io.json(&entries)?;
            } else {
                for e in &entries {
                    io.say(format!("{} {} {} {}", e.id, e.time, e.author, e.summary))?;
                }
            }
        }
        Command::Show {
            path,
            side: Some(side),
            op,
            ..
        } => {
            let mut v = vaults.open(g.vault.as_deref())?;
            let side = conflicts::Side::parse(&side)?;
            let mut buf = Vec::new();
            conflicts::show_side(&mut v, &path, side, op.as_deref(), &mut buf)?;
            io.write(&buf)?;
        }
        Command::Conflicts => {
            let mut v = vaults.open(g.vault.as_deref())?;
            let list = conflicts::list(&mut v)?;
            if json {
                io.json(&list)?;
            } else if list.is_empty() {
                io.say("no open conflicts")?;
            } else {
                for c in &list {
                    io.say(format!(
                        "{}  {} conflict from op {}  (base {}, current {}, incoming {})",
                        c.path,
                        c.kind,
                        c.ops
                            .iter()
                            .map(|o| conflicts::short(o))
                            .collect::<Vec<_>>()
                            .join(", "),
                        conflicts::short(&c.base),
                        conflicts::short(&c.current),
                        conflicts::short(&c.incoming)
                    ))?;
                }
            }
        }
        Command::Resolve { path, take, with } => {
            let mut v = vaults.open(g.vault.as_deref())?;
            let take = match (&take, &with) {
                (_, Some(f)) => conflicts::Take::File(f),
                (Some(t), None) if t == "current" => conflicts::Take::Current,
                (Some(t), None) if t == "incoming" => conflicts::Take::Incoming,
                (Some(t), None) => conflicts::Take::At(t),
                (None, None) => return Err(user("resolve needs --take or --with")),
            };
            let r = conflicts::resolve_path(&mut v, &path, take)?;
            if json {
                io.json(&r)?;
            } else {
                io.say(format!(
                    "resolved {path}; {} file(s) written",
                    r.changed.len()
                ))?;
            }
        }
        Command::Show { path, at, .. } => {
            let v = vaults.open(g.vault.as_deref())?;
            if json {
                let info = history::show(&v, &path, &at, &mut std::io::sink())?;
                io.json(&info)?;
            } else {
                // Streamed: a large attachment never sits in memory whole.
                history::show(&v, &path, &at, &mut *io.out)?;
                io.out.flush()?;
            }
        }
        Command::Clone { src, dest, name } => {
            let mut source = vaults.open(Some(&src))?;
            let name = name.unwrap_or_else(|| format!("{} (clone)", default_device_name()));
            let (_clone, r) = clone::clone(&mut source, &dest, &name)?;
            if json {
                io.json(&r)?;
            } else {
                io.say(format!(
                    "cloned {} into {}: {} files, {} ops; this device is {}",
                    src.display(),
                    dest.display(),
                    r.files,
                    r.ops,
                    &r.device[..16]
                ))?;
            }
        }
        Command::Export { since, file } => {
            let v = vaults.open(g.vault.as_deref())?;
            let r = transfer::export(&v, since.as_deref(), &file)?;
            if json {
                io.json(&r)?;
            } else {
                io.say(format!(
                    "exported {} ops and {} chunks ({} bytes) to {}",
                    r.ops, r.chunks, r.bytes, r.file
                ))?;
            }
        }
        Command::Import { file } => {
            let mut v = vaults.open(g.vault.as_deref())?;
            let r = transfer::import(&mut v, &file)?;
            for rej in &r.rejected {
                io.warn(format!("op {} rejected: {}", &rej.op[..12], rej.reason));
            }
            if json {
                io.json(&r)?;
            } else {
                io.say(format!(
                    "{} ops admitted, {} already here, {} waiting for missing ops, {} rejected; {} files changed",
                    r.ops_admitted,
                    r.duplicates,
                    r.ops_pending,
                    r.rejected.len(),
                    r.changed.len()
                ))?;
                for p in &r.changed {
                    io.say(format!("  {p}"))?;
                }
                if let Some(id) = &r.new_identity {
                    io.say(format!(
                        "this device's own ops came back from another copy: it now signs as {} (the old identity is retired)",
                        &id[..12]
                    ))?;
                }
                if let Some(st) = r.stale {
                    io.say(format!(
                        "the journal still lacks this device's ops {}..{}: the disk was not changed",
                        st.held + 1,
                        st.wrote
                    ))?;
                }
                if r.quarantined > 0 {
                    io.say(quarantine_note(r.quarantined))?;
                }
                for c in &r.new_conflicts {
                    io.say(format!(
                        "conflict in {} (op {}): see 'vellum conflicts'",
                        c.path,
                        &c.op[..12]
                    ))?;
                }
            }
        }
        Command::Checkout { at, dest } => {
            let v = vaults.open(g.vault.as_deref())?;
            let r = history::checkout(&v, &at, &dest)?;
            if json {
                io.json(&r)?;
            } else {
                io.say(format!(
                    "wrote {} files ({} bytes) to {}",
                    r.files,
                    r.bytes,
                    dest.display()
                ))?;
            }
        }
        Command::Diff { from, to, path } => {
            let v = vaults.open(g.vault.as_deref())?;
            if json {
                let rows = history::diff(&v, &from, &to, path.as_deref(), None)?;
                io.json(&rows)?;
            } else {
                let mut buf = Vec::new();
                history::diff(&v, &from, &to, path.as_deref(), Some(&mut buf))?;
                io.write(&buf)?;
            }
        }
        Command::Restore { path, at } => {
            let mut v = vaults.open(g.vault.as_deref())?;
            let r = rewrite::restore(&mut v, &path, &at)?;
            if json {
                io.json(&r)?;
            } else {
                io.say(format!("restored {path} ({} ops)", r.ops_recorded))?;
            }
        }
        Command::Rollback {
            to,
            path,
            dry_run,
            yes,
        } => {
            let mut v = vaults.open(g.vault.as_deref())?;
            match rewrite::rollback(&mut v, &to, path.as_deref(), dry_run, yes)? {
                rewrite::RollbackOutcome::Preview(p) => {
                    if json {
                        io.json(&p)?;
                    } else {
                        rewrite::print_preview(&p, io.out)?;
                    }
                }
                rewrite::RollbackOutcome::Done(r) => {
                    if json {
                        io.json(&r)?;
                    } else {
                        io.say(format!(
                            "rolled back: {} ops, {} paths changed",
                            r.ops_recorded,
                            r.changed.len()
                        ))?;
                    }
                }
            }
        }
        Command::Peers => {
            let mut v = vaults.open(g.vault.as_deref())?;
            let list = crate::peers::list(&mut v)?;
            if json {
                io.json(&list)?;
            } else if list.is_empty() {
                io.say("no other devices yet: add one with `vellum invite` or `vellum clone`")?;
            } else {
                for p in &list {
                    let name = p.name.as_deref().unwrap_or("(unnamed)");
                    if p.role == "recovery" && !p.connected && p.last_seen.is_none() {
                        io.say(format!(
                            "{}  {name}  recovery  (a key export, not a device)",
                            &p.device[..12]
                        ))?;
                        continue;
                    }
                    let state = if p.connected {
                        "connected".to_string()
                    } else {
                        match &p.last_seen {
                            Some(t) => format!("last seen {t}"),
                            None => "never seen".to_string(),
                        }
                    };
                    io.say(format!(
                        "{}  {name}  {}  {state}  {} op(s) behind",
                        &p.device[..12],
                        p.role,
                        p.behind_ops
                    ))?;
                }
            }
        }
        Command::Member {
            action: crate::cli::MemberAction::Remove { device },
        } => {
            let mut v = vaults.open(g.vault.as_deref())?;
            let r = crate::peers::remove(&mut v, &device)?;
            if json {
                io.json(&r)?;
            } else {
                io.say(format!(
                    "removed {} ({}); a new key now protects what is written from here on",
                    r.name.as_deref().unwrap_or("a device"),
                    &r.device[..12]
                ))?;
            }
        }
        Command::Quarantine { action } => {
            let mut v = vaults.open(g.vault.as_deref())?;
            match action {
                crate::cli::QuarantineAction::List => {
                    let list = quarantine::list(&v)?;
                    if json {
                        io.json(&list)?;
                    } else if list.is_empty() {
                        io.say("nothing is held")?;
                    } else {
                        for h in &list {
                            print_held(io, h)?;
                        }
                    }
                }
                crate::cli::QuarantineAction::Accept { id } => {
                    let r = quarantine::accept(&mut v, &id)?;
                    if json {
                        io.json(&r)?;
                    } else {
                        io.say(format!(
                            "accepted: {} ops recorded, {} paths changed on disk",
                            r.ops_recorded,
                            r.changed.len()
                        ))?;
                    }
                }
                crate::cli::QuarantineAction::Reject { id } => {
                    let r = quarantine::reject(&mut v, &id)?;
                    if json {
                        io.json(&r)?;
                    } else {
                        io.say(format!(
                            "rejected: {} ops recorded, {} paths changed on disk",
                            r.ops_recorded,
                            r.changed.len()
                        ))?;
                    }
                }
            }
        }
        Command::Verify => {
            let v = vaults.open(g.vault.as_deref())?;
            let r = verify::verify(&v)?;
            if json {
                io.json(&r)?;
            } else if r.ok {
                io.say(format!("ok: {} ops verified", r.ops))?;
            }
            if !r.ok {
                // A finding, not a malfunction: exit 1 like other refusals.
                return Err(user(format!(
                    "verify failed{}: {}",
                    r.first_bad
                        .as_deref()
                        .map(|b| format!(" at op {b}"))
                        .unwrap_or_default(),
                    r.reason.as_deref().unwrap_or("unknown")
                )));
            }
        }
    }
    Ok(())
}

fn quarantine_note(files: u64) -> String {
    format!(
        "{files} file(s) held back from the disk for review: see 'vellum quarantine list', then accept or reject"
    )
}

fn print_held(io: &mut Io<'_>, h: &quarantine::Held) -> Result<()> {
    let from = match (&h.source, &h.author) {
        (quarantine::Source::Remote, Some(a)) => match &h.author_name {
            Some(name) => format!(
                "{} op(s) from {name:?} ({})",
                h.ops.len(),
                conflicts::short(a)
            ),
            None => format!("{} op(s) from device {}", h.ops.len(), conflicts::short(a)),
        },
        _ => "a scan of this vault".to_string(),
    };
    io.say(format!(
        "{}  {} file(s), {from}, {}",
        h.id,
        h.files.len(),
        h.time
    ))?;
    for f in &h.files {
        let change = match f.change {
            quarantine::Change::Delete => "delete",
            quarantine::Change::Empty => "empty",
            quarantine::Change::Revert => "revert",
            quarantine::Change::Recreate => "recreate",
        };
        io.say(format!("  {change:<8} {}", f.path))?;
    }
    Ok(())
}
