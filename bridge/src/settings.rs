//! This device's settings for a vault, in `.vellum/config.toml`. They are
//! local: vault-wide rules (ignore globs) live in the journal instead.
//!
//! ```toml
//! [log]
//! level = "info"        # error, warn, info, debug or trace
//! retention_days = 14   # daily files kept in .vellum/logs/
//! ```

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};
use vellum_journal::path::VELLUM_DIR;

use crate::error::user;

pub const FILE: &str = "config.toml";

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq, ts_rs::TS)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub log: LogSettings,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq, ts_rs::TS)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    pub level: String,
    pub retention_days: u32,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            level: "info".into(),
            retention_days: 14,
        }
    }
}

const LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace"];

pub fn path(root: &Path) -> PathBuf {
    root.join(VELLUM_DIR).join(FILE)
}

/// The vault's settings: defaults where the file or a field is missing; an
/// error naming the file for anything it cannot use.
pub fn load(root: &Path) -> Result<Settings> {
    let p = path(root);
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Settings::default()),
        Err(e) => return Err(user(format!("cannot read {}: {e}", p.display()))),
    };
    let s: Settings = toml::from_str(&text).map_err(|e| {
        user(format!(
            "{} is not valid: {}",
            p.display(),
            e.message().replace('\n', " ")
        ))
    })?;
    s.check()
        .map_err(|why| user(format!("{}: {why}", p.display())))?;
    Ok(s)
}

/// Writes `s` to the vault's `config.toml` (atomically), after checking it.
pub fn save(root: &Path, s: &Settings) -> Result<()> {
    s.check().map_err(user)?;
    let text = toml::to_string_pretty(s)?;
    let dot = root.join(VELLUM_DIR);
    let now_ms = crate::vault::now_ms() as i64;
    crate::disk::write_atomic(&dot, FILE, now_ms, &mut |f| {
        Ok(std::io::Write::write_all(f, text.as_bytes())?)
    })?;
    Ok(())
}

impl Settings {
    /// The `tracing` filter for the log level: this crate's level, quieter
    /// for the storage engine's own chatter.
    pub fn log_filter(&self) -> String {
        format!("{},fjall=warn,lsm_tree=warn", self.log.level)
    }

    fn check(&self) -> std::result::Result<(), String> {
        if !LEVELS.contains(&self.log.level.as_str()) {
            return Err(format!(
                "log.level is {:?}; it must be one of {}",
                self.log.level,
                LEVELS.join(", ")
            ));
        }
        if self.log.retention_days == 0 {
            return Err("log.retention_days must be at least 1".into());
        }
        Ok(())
    }
}
