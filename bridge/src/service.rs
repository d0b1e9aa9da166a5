//! `vellum service install|uninstall`: a systemd user unit that runs
//! `vellum serve` for one vault, so it syncs without Obsidian open
//! (DESIGN §8). macOS (launchd) is documented in the README, not written.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use serde::Serialize;
use vellum_journal::path::VELLUM_DIR;

use crate::error::user;
use crate::vault;

#[derive(Debug, Serialize)]
pub struct ServiceReport {
    pub unit: String,
    pub path: String,
    /// Whether systemd took the change (enabled and started, or stopped
    /// and disabled); when not, `note` says what to run.
    pub applied: bool,
    pub note: Option<String>,
}

/// The unit's name: one per vault folder (two devices of one vault on
/// this machine are two folders, with two instance ids).
fn unit_name(root: &Path) -> Result<String> {
    let instance =
        std::fs::read_to_string(root.join(VELLUM_DIR).join("instance")).with_context(|| {
            format!(
                "reading {}",
                root.join(VELLUM_DIR).join("instance").display()
            )
        })?;
    let short: String = instance.trim().chars().take(12).collect();
    if short.is_empty() || !short.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(user(format!(
            "{} is damaged; run 'vellum status' to check the vault",
            root.join(VELLUM_DIR).join("instance").display()
        )));
    }
    Ok(format!("vellum-{short}.service"))
}

/// `$XDG_CONFIG_HOME/systemd/user`, or `~/.config/systemd/user`.
fn unit_dir() -> Result<PathBuf> {
    let config = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(c) => PathBuf::from(c),
        None => {
            let home = std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .ok_or_else(|| user("HOME is not set: cannot find ~/.config/systemd/user"))?;
            PathBuf::from(home).join(".config")
        }
    };
    Ok(config.join("systemd").join("user"))
}

/// One argument of an `ExecStart=` line, quoted as systemd reads it.
fn quote(arg: &str) -> String {
    let escaped = arg
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%")
        .replace('$', "$$");
    format!("\"{escaped}\"")
}

/// The unit file for the vault at `root`, run by the binary at `exe`.
pub fn unit_text(root: &Path, exe: &Path, vellum_home: Option<&str>) -> String {
    let root_s = root.to_string_lossy();
    let mut env = String::new();
    if let Some(h) = vellum_home {
        env = format!("Environment={}\n", quote(&format!("VELLUM_HOME={h}")));
    }
    format!(
        "[Unit]\n\
         Description=Vellum sync for the vault at {}\n\
         After=network-online.target\n\
         \n\
         [Service]\n\
         Type=simple\n\
         ExecStart={} serve --vault {}\n\
         {env}\
         Restart=on-failure\n\
         RestartSec=5\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n",
        root_s.replace('%', "%%"),
        quote(&exe.to_string_lossy()),
        quote(&root_s),
    )
}

/// Runs `systemctl --user ARGS`: `Ok(())`, or why it did not work.
fn systemctl(args: &[&str]) -> std::result::Result<(), String> {
    match Command::new("systemctl").arg("--user").args(args).output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim().replace('\n', " ")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err("systemctl is not installed".into())
        }
        Err(e) => Err(e.to_string()),
    }
}

pub fn install(vault: Option<&Path>) -> Result<ServiceReport> {
    let root = vault::find_root(vault)?
        .canonicalize()
        .context("resolving the vault folder")?;
    let unit = unit_name(&root)?;
    let dir = unit_dir()?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let exe = std::env::current_exe()
        .and_then(|e| e.canonicalize())
        .context("finding the vellum binary")?;
    let home = std::env::var("VELLUM_HOME").ok().filter(|h| !h.is_empty());
    let path = dir.join(&unit);
    let text = unit_text(&root, &exe, home.as_deref());
    let now_ms = crate::vault::now_ms() as i64;
    crate::disk::write_atomic(&dir, &unit, now_ms, &mut |f| {
        Ok(std::io::Write::write_all(f, text.as_bytes())?)
    })?;
    let applied =
        systemctl(&["daemon-reload"]).and_then(|()| systemctl(&["enable", "--now", &unit]));
    let note = applied.as_ref().err().map(|why| {
        format!("systemd did not start it ({why}); in your login session run: systemctl --user enable --now {unit}")
    });
    Ok(ServiceReport {
        unit,
        path: path.to_string_lossy().into_owned(),
        applied: applied.is_ok(),
        note,
    })
}

pub fn uninstall(vault: Option<&Path>) -> Result<ServiceReport> {
    let root = vault::find_root(vault)?
        .canonicalize()
        .context("resolving the vault folder")?;
    let unit = unit_name(&root)?;
    let path = unit_dir()?.join(&unit);
    if !path.exists() {
        return Err(user(format!(
            "no service for this vault ({} does not exist)",
            path.display()
        )));
    }
    // Stopped and disabled first, while systemd still knows the unit.
    let stopped = systemctl(&["disable", "--now", &unit]);
    std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    let applied = stopped.and_then(|()| systemctl(&["daemon-reload"]));
    let note = applied.as_ref().err().map(|why| {
        format!("removed the unit, but systemd did not take it ({why}); if it still runs: systemctl --user stop {unit}")
    });
    Ok(ServiceReport {
        unit,
        path: path.to_string_lossy().into_owned(),
        applied: applied.is_ok(),
        note,
    })
}
