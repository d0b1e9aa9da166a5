//! This device's settings for a vault, in `.vellum/config.toml`. They are
//! local: vault-wide rules (ignore globs) live in the journal instead.
//!
//! ```toml
//! mdns = true           # find this vault's devices on the LAN by mDNS
//! listen = []           # e.g. ["/ip4/0.0.0.0/tcp/4101"]; empty: OS-assigned ports
//! peers = []            # where to dial devices mDNS cannot find, e.g.
//!                       # ["/ip4/192.0.2.7/tcp/4101/p2p/12D3KooW..."]
//! internet = false      # reach devices beyond the LAN: relays, hole
//!                       # punching (DCUtR) and the DHT (Kademlia)
//! relays = []           # with internet: relays (`vellum relay`), e.g.
//!                       # ["/ip4/203.0.113.5/tcp/4101/p2p/12D3KooW..."]
//!
//! [log]
//! level = "info"        # error, warn, info, debug or trace
//! retention_days = 14   # daily files kept in .vellum/logs/
//! ```

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};
use vellum_journal::path::VELLUM_DIR;

use vellum_replicator::net::{Multiaddr, PeerId, Protocol};

use crate::error::user;

pub const FILE: &str = "config.toml";

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq, ts_rs::TS)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Find this vault's other devices on the LAN by mDNS.
    pub mdns: bool,
    /// libp2p addresses to listen on; empty: every interface, TCP and
    /// QUIC, on ports the OS picks.
    pub listen: Vec<String>,
    /// Addresses (ending in `/p2p/<peer id>`) of devices to dial even when
    /// mDNS does not find them.
    pub peers: Vec<String>,
    /// Reach devices beyond the LAN: through the relays, with hole
    /// punching (DCUtR), and finding them in a DHT (Kademlia). Off by
    /// default; network settings apply when `serve` next starts.
    pub internet: bool,
    /// With `internet`: relays (`vellum relay` prints their addresses),
    /// each ending in `/p2p/<peer id>`.
    pub relays: Vec<String>,
    pub log: LogSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            mdns: true,
            listen: Vec::new(),
            peers: Vec::new(),
            internet: false,
            relays: Vec::new(),
            log: LogSettings::default(),
        }
    }
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
        format!(
            "{},fjall=warn,lsm_tree=warn,libp2p_swarm=warn,libp2p_mdns=warn,libp2p_gossipsub=warn,libp2p_tcp=warn,libp2p_quic=warn,libp2p_kad=error,libp2p_relay=warn,libp2p_dcutr=warn",
            self.log.level
        )
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
        for a in &self.listen {
            listen_addr(a).map_err(|e| format!("listen: {e}"))?;
        }
        for a in &self.peers {
            peer_addr(a).map_err(|e| format!("peers: {e}"))?;
        }
        for a in &self.relays {
            relay_addr(a).map_err(|e| format!("relays: {e}"))?;
        }
        Ok(())
    }
}

/// A listen address, as `--listen` and `listen` take it.
pub fn listen_addr(a: &str) -> std::result::Result<Multiaddr, String> {
    a.parse::<Multiaddr>()
        .map_err(|e| format!("{a:?} is not a libp2p address ({e}); try /ip4/0.0.0.0/tcp/4101"))
}

/// A relay's address, as `--relay` and `relays` take it: like a device's,
/// it ends in `/p2p/<peer id>`, and it is not itself relayed.
pub fn relay_addr(a: &str) -> std::result::Result<Multiaddr, String> {
    let (_, addr) = peer_addr(a)?;
    if vellum_replicator::net::is_relayed(&addr) {
        return Err(format!(
            "{a:?} goes through a relay itself; give the relay's own address"
        ));
    }
    Ok(addr)
}

/// A device's address, as `--peer` and `peers` take it: it must end in
/// the device's `/p2p/<peer id>`.
pub fn peer_addr(a: &str) -> std::result::Result<(PeerId, Multiaddr), String> {
    let addr = a
        .parse::<Multiaddr>()
        .map_err(|e| format!("{a:?} is not a libp2p address ({e})"))?;
    match addr.iter().last() {
        Some(Protocol::P2p(peer)) => Ok((peer, addr)),
        _ => Err(format!(
            "{a:?} does not end in /p2p/<peer id>; `vellum status` on that device shows its full addresses"
        )),
    }
}
