//! The `vellum` binary: the CLI over one vault.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use serde::Serialize;
use vellum_journal::path::VELLUM_DIR;
use vellum_snapshots::TimeMachine;

use vellum_bridge::cli::{Cli, Command};
use vellum_bridge::error::{self, user};
use vellum_bridge::vault::{self, Vault};
use vellum_bridge::{clone, conflicts, history, rewrite, scan, transfer, verify};

/// Writes to stdout, treating a closed pipe (`vellum log | head`) as done.
fn out(bytes: &[u8]) -> Result<()> {
    let mut o = std::io::stdout().lock();
    match o.write_all(bytes).and_then(|()| o.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

fn emit_json<T: Serialize>(v: &T) -> Result<()> {
    let mut s = serde_json::to_string_pretty(v)?;
    s.push('\n');
    out(s.as_bytes())
}

fn say(line: impl AsRef<str>) -> Result<()> {
    out(format!("{}\n", line.as_ref()).as_bytes())
}

#[derive(Serialize)]
struct Status {
    head: String,
    ops: u64,
    files: u64,
    conflicts: u64,
    pending: u64,
    quarantined: u64,
    journal_bytes: u64,
    device: String,
    vault: String,
    /// Set when the journal lacks some of this device's own ops (restored
    /// from an older copy): nothing can be written until they arrive.
    stale: Option<vault::Stale>,
}

fn default_device_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "device".into())
}

fn warn_all(warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}

fn run(cli: Cli) -> Result<()> {
    let g = cli.global;
    let json = g.json;
    match cli.command {
        // `main` runs the simulator before anything else.
        Command::Sim(_) => return Err(anyhow::anyhow!("vellum sim takes no vault")),
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
            warn_all(&report.warnings);
            if json {
                emit_json(&serde_json::json!({
                    "vault": v.vault_id().to_hex(),
                    "device": v.device().to_hex(),
                    "ops_recorded": report.ops_recorded,
                    "created": report.created,
                    "head": report.head,
                }))?;
            } else {
                say(format!(
                    "initialised vault {} in {} ({} files recorded)",
                    v.vault_id(),
                    root.display(),
                    report.created
                ))?;
            }
        }
        Command::Scan => {
            let mut v = Vault::open(g.vault.as_deref())?;
            let report = scan::scan(&mut v)?;
            warn_all(&report.warnings);
            if json {
                emit_json(&report)?;
            } else {
                say(format!(
                    "{} ops: {} created, {} edited, {} deleted, {} renamed",
                    report.ops_recorded,
                    report.created,
                    report.edited,
                    report.deleted,
                    report.renamed
                ))?;
            }
        }
        Command::Status => {
            let v = Vault::open(g.vault.as_deref())?;
            let s = Status {
                head: v.journal.admitted().to_point_string(),
                ops: v.journal.op_count(),
                files: TimeMachine::head_live_files(&v.journal)?,
                conflicts: TimeMachine::head_open_conflicts(&v.journal)?,
                pending: v.journal.pending_count()?,
                quarantined: 0,
                journal_bytes: v.journal_bytes()?,
                device: v.device().to_hex(),
                vault: v.vault_id().to_hex(),
                stale: v.stale,
            };
            if json {
                emit_json(&s)?;
            } else {
                say(format!(
                    "vault {}\ndevice {}\nhead {}\n{} files, {} ops ({} pending), journal {} bytes",
                    s.vault,
                    &s.device[..12],
                    history::short_point(&s.head),
                    s.files,
                    s.ops,
                    s.pending,
                    s.journal_bytes
                ))?;
                if let Some(st) = s.stale {
                    say(format!(
                        "stale: the journal holds this device's ops up to {} of {}; import an export from another device to recover",
                        st.held, st.wrote
                    ))?;
                }
            }
        }
        Command::Log {
            path,
            author,
            limit,
        } => {
            let mut v = Vault::open(g.vault.as_deref())?;
            let entries = history::log(&mut v, path.as_deref(), author.as_deref(), limit)?;
            if json {
                emit_json(&entries)?;
            } else {
                for e in &entries {
                    say(format!("{} {} {} {}", e.id, e.time, e.author, e.summary))?;
                }
            }
        }
        Command::Show {
            path,
            side: Some(side),
            op,
            ..
        } => {
            let mut v = Vault::open(g.vault.as_deref())?;
            let side = conflicts::Side::parse(&side)?;
            let mut buf = Vec::new();
            conflicts::show_side(&mut v, &path, side, op.as_deref(), &mut buf)?;
            out(&buf)?;
        }
        Command::Conflicts => {
            let mut v = Vault::open(g.vault.as_deref())?;
            let list = conflicts::list(&mut v)?;
            if json {
                emit_json(&list)?;
            } else if list.is_empty() {
                say("no open conflicts")?;
            } else {
                for c in &list {
                    say(format!(
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
            let mut v = Vault::open(g.vault.as_deref())?;
            let take = match (&take, &with) {
                (_, Some(f)) => conflicts::Take::File(f),
                (Some(t), None) if t == "current" => conflicts::Take::Current,
                (Some(t), None) if t == "incoming" => conflicts::Take::Incoming,
                (Some(t), None) => conflicts::Take::At(t),
                (None, None) => return Err(user("resolve needs --take or --with")),
            };
            let r = conflicts::resolve_path(&mut v, &path, take)?;
            if json {
                emit_json(&r)?;
            } else {
                say(format!(
                    "resolved {path}; {} file(s) written",
                    r.changed.len()
                ))?;
            }
        }
        Command::Show { path, at, .. } => {
            let v = Vault::open(g.vault.as_deref())?;
            if json {
                let info = history::show(&v, &path, &at, &mut std::io::sink())?;
                emit_json(&info)?;
            } else {
                let mut buf = Vec::new();
                history::show(&v, &path, &at, &mut buf)?;
                out(&buf)?;
            }
        }
        Command::Clone { src, dest, name } => {
            let mut source = Vault::open(Some(&src))?;
            let name = name.unwrap_or_else(|| format!("{} (clone)", default_device_name()));
            let (_clone, r) = clone::clone(&mut source, &dest, &name)?;
            if json {
                emit_json(&r)?;
            } else {
                say(format!(
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
            let v = Vault::open(g.vault.as_deref())?;
            let r = transfer::export(&v, since.as_deref(), &file)?;
            if json {
                emit_json(&r)?;
            } else {
                say(format!(
                    "exported {} ops and {} chunks ({} bytes) to {}",
                    r.ops, r.chunks, r.bytes, r.file
                ))?;
            }
        }
        Command::Import { file } => {
            let mut v = Vault::open(g.vault.as_deref())?;
            let r = transfer::import(&mut v, &file)?;
            for rej in &r.rejected {
                eprintln!("warning: op {} rejected: {}", &rej.op[..12], rej.reason);
            }
            if json {
                emit_json(&r)?;
            } else {
                say(format!(
                    "{} ops admitted, {} already here, {} waiting for missing ops, {} rejected; {} files changed",
                    r.ops_admitted,
                    r.duplicates,
                    r.ops_pending,
                    r.rejected.len(),
                    r.changed.len()
                ))?;
                for p in &r.changed {
                    say(format!("  {p}"))?;
                }
                if let Some(id) = &r.new_identity {
                    say(format!(
                        "this device's own ops came back from another copy: it now signs as {} (the old identity is retired)",
                        &id[..12]
                    ))?;
                }
                if let Some(st) = r.stale {
                    say(format!(
                        "the journal still lacks this device's ops {}..{}: the disk was not changed",
                        st.held + 1,
                        st.wrote
                    ))?;
                }
                for c in &r.new_conflicts {
                    say(format!(
                        "conflict in {} (op {}): see 'vellum conflicts'",
                        c.path,
                        &c.op[..12]
                    ))?;
                }
            }
        }
        Command::Checkout { at, dest } => {
            let v = Vault::open(g.vault.as_deref())?;
            let r = history::checkout(&v, &at, &dest)?;
            if json {
                emit_json(&r)?;
            } else {
                say(format!(
                    "wrote {} files ({} bytes) to {}",
                    r.files,
                    r.bytes,
                    dest.display()
                ))?;
            }
        }
        Command::Diff { from, to, path } => {
            let v = Vault::open(g.vault.as_deref())?;
            if json {
                let rows = history::diff(&v, &from, &to, path.as_deref(), None)?;
                emit_json(&rows)?;
            } else {
                let mut buf = Vec::new();
                history::diff(&v, &from, &to, path.as_deref(), Some(&mut buf))?;
                out(&buf)?;
            }
        }
        Command::Restore { path, at } => {
            let mut v = Vault::open(g.vault.as_deref())?;
            let r = rewrite::restore(&mut v, &path, &at)?;
            if json {
                emit_json(&r)?;
            } else {
                say(format!("restored {path} ({} ops)", r.ops_recorded))?;
            }
        }
        Command::Rollback {
            to,
            path,
            dry_run,
            yes,
        } => {
            let mut v = Vault::open(g.vault.as_deref())?;
            match rewrite::rollback(&mut v, &to, path.as_deref(), dry_run, yes)? {
                rewrite::RollbackOutcome::Preview(p) => {
                    if json {
                        emit_json(&p)?;
                    } else {
                        rewrite::print_preview(&p);
                    }
                }
                rewrite::RollbackOutcome::Done(r) => {
                    if json {
                        emit_json(&r)?;
                    } else {
                        say(format!(
                            "rolled back: {} ops, {} paths changed",
                            r.ops_recorded,
                            r.changed.len()
                        ))?;
                    }
                }
            }
        }
        Command::Verify => {
            let v = Vault::open(g.vault.as_deref())?;
            let r = verify::verify(&v)?;
            if json {
                emit_json(&r)?;
            } else if r.ok {
                say(format!("ok: {} ops verified", r.ops))?;
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The simulator is a tool of its own: no vault, and its seeds catch
    // their own panics.
    if let Command::Sim(args) = &cli.command {
        return vellum_simulations::cli::run(args);
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VELLUM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_target(false)
        .without_time()
        .init();
    std::panic::set_hook(Box::new(|info| {
        if vellum_journal::replay::in_guarded_section() {
            return;
        }
        let msg = info.to_string().replace('\n', " ");
        eprintln!("vellum: internal error (a bug; please report it): {msg}");
    }));
    match std::panic::catch_unwind(|| run(cli)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("vellum: {}", error::one_line(&e));
            ExitCode::from(error::exit_code(&e) as u8)
        }
        Err(_) => ExitCode::from(2),
    }
}
