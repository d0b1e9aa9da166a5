//! The vault's other devices as this one knows them: who they are (from
//! replay), where they were last reached and what they held (an address
//! book in `Ks::Meta`, kept by the daemon), and, while a daemon syncs,
//! whether they are connected now (`Vault::net`).

use std::collections::BTreeMap;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use vellum_journal::control::Role;
use vellum_journal::store::{Batch, Durability, Ks, Store};
use vellum_journal::{DeviceId, VersionVector};

use crate::vault::Vault;

/// `Ks::Meta` keys of the address book: this prefix, then the device id.
const PEER_PREFIX: &[u8] = b"net_peer/";
/// Addresses kept per device.
pub const ADDRS_KEPT: usize = 8;

/// What the address book keeps of one device.
#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq, Eq)]
pub struct PeerRecord {
    /// When a sync session with it last ended or made progress (ms).
    pub last_seen_ms: Option<u64>,
    /// Where it was reached or said it listens, newest last.
    pub addrs: Vec<String>,
    /// Its last version vector (hex of the bytes), for `behind_ops`.
    pub has: Option<String>,
}

impl PeerRecord {
    pub fn has(&self) -> Option<VersionVector> {
        let b = vellum_journal::id::unhex(self.has.as_deref()?)?;
        VersionVector::from_bytes(&b).ok()
    }

    pub fn add_addr(&mut self, addr: String) {
        self.addrs.retain(|a| *a != addr);
        self.addrs.push(addr);
        if self.addrs.len() > ADDRS_KEPT {
            self.addrs.remove(0);
        }
    }
}

fn key(d: &DeviceId) -> Vec<u8> {
    let mut k = PEER_PREFIX.to_vec();
    k.extend_from_slice(d.as_bytes());
    k
}

pub fn load(v: &Vault, d: &DeviceId) -> Result<PeerRecord> {
    Ok(v.journal
        .store()
        .get(Ks::Meta, &key(d))?
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default())
}

/// Every device in the address book.
pub fn load_all(v: &Vault) -> Result<BTreeMap<DeviceId, PeerRecord>> {
    let mut out = BTreeMap::new();
    v.journal
        .store()
        .scan_prefix(Ks::Meta, PEER_PREFIX, &mut |k, val| {
            if let (Some(d), Ok(rec)) = (
                DeviceId::from_slice(&k[PEER_PREFIX.len()..]),
                serde_json::from_slice::<PeerRecord>(val),
            ) {
                out.insert(d, rec);
            }
            std::ops::ControlFlow::Continue(())
        })?;
    Ok(out)
}

/// Writes a device's record. Not fsynced: the book is a cache, and a lost
/// update costs a dial that mDNS or the peer repairs.
pub fn save(v: &Vault, d: &DeviceId, rec: &PeerRecord) -> Result<()> {
    let mut b = Batch::default();
    b.put(
        Ks::Meta,
        key(d),
        serde_json::to_vec(rec).expect("a record serialises"),
    );
    v.journal.store().commit(b, Durability::Buffered)?;
    Ok(())
}

/// What a syncing daemon knows now; `None` in a vault opened by the CLI.
#[derive(Clone, Debug, Default)]
pub struct NetView {
    /// This device's libp2p peer id.
    pub peer_id: String,
    /// Full addresses (with `/p2p/<peer id>`) it listens on.
    pub listening: Vec<String>,
    /// Connected members, with the address of the connection.
    pub connected: BTreeMap<DeviceId, String>,
    /// Connected devices that are not members (a joiner, a `--peer` of
    /// another vault).
    pub strangers: BTreeMap<DeviceId, String>,
    /// What each peer with a session said it holds, most recently.
    pub has: BTreeMap<DeviceId, VersionVector>,
    /// Attachment chunks received from peers since the daemon started.
    pub chunks_received: u64,
}

/// The network part of `vellum status`, while a daemon syncs.
#[derive(Serialize, Clone, Debug, PartialEq, Eq, ts_rs::TS)]
pub struct NetStatus {
    /// This device's libp2p peer id.
    pub peer_id: String,
    /// The addresses other devices can dial (`--peer`, `peers` in
    /// config.toml).
    pub listening: Vec<String>,
    /// Members connected now.
    pub connected: u64,
    /// Ops connected peers hold that this device does not have yet.
    pub incoming_ops: u64,
    /// Attachment chunks received from peers since the daemon started.
    pub chunks_received: u64,
}

impl NetView {
    pub fn status(&self, mine: &VersionVector) -> NetStatus {
        NetStatus {
            peer_id: self.peer_id.clone(),
            listening: self.listening.clone(),
            connected: self.connected.len() as u64,
            incoming_ops: self
                .connected
                .keys()
                .filter_map(|d| self.has.get(d))
                .map(|has| ahead_by(has, mine))
                .sum(),
            chunks_received: self.chunks_received,
        }
    }
}

/// Ops `a` holds beyond `b`, counted per author by seq (a fork counts once).
pub fn ahead_by(a: &VersionVector, b: &VersionVector) -> u64 {
    a.iter()
        .map(|(author, e)| e.seq.saturating_sub(b.seq(author)))
        .sum()
}

/// One member in `vellum peers` (DESIGN §8).
#[derive(Serialize, Clone, Debug, PartialEq, Eq, ts_rs::TS)]
pub struct PeerEntry {
    /// The device id (hex).
    pub device: String,
    /// The name the device gave itself, if it said.
    pub name: Option<String>,
    /// full, blind or recovery.
    pub role: String,
    /// Connected to this device's daemon now.
    pub connected: bool,
    /// When it was last in sync with this device (RFC 3339), if ever.
    pub last_seen: Option<String>,
    /// Ops this device holds that the peer did not, when last heard from.
    pub behind_ops: u64,
    /// The address it was last reached at.
    pub addr: Option<String>,
}

/// The vault's members other than this device, connected ones first.
pub fn list(v: &mut Vault) -> Result<Vec<PeerEntry>> {
    let me = v.device();
    let mine = v.journal.admitted().clone();
    let members = v.journal.members(&mine)?;
    let names = v.head()?.device_names.clone();
    let book = load_all(v)?;
    let mut out = Vec::new();
    for (d, role) in &members.roles {
        if *d == me || members.removed.contains_key(d) {
            continue;
        }
        let rec = book.get(d).cloned().unwrap_or_default();
        let live = v.net.as_ref();
        let connected = live.and_then(|n| n.connected.get(d));
        let has = live
            .and_then(|n| n.has.get(d).cloned())
            .or_else(|| rec.has());
        out.push(PeerEntry {
            device: d.to_hex(),
            name: names.get(d).cloned(),
            role: role_name(*role).into(),
            connected: connected.is_some(),
            last_seen: rec.last_seen_ms.map(ms_string),
            behind_ops: has.map_or(ahead_by(&mine, &VersionVector::new()), |h| {
                ahead_by(&mine, &h)
            }),
            addr: connected.cloned().or_else(|| rec.addrs.last().cloned()),
        });
    }
    out.sort_by(|a, b| b.connected.cmp(&a.connected).then(a.device.cmp(&b.device)));
    Ok(out)
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Full => "full",
        Role::Blind => "blind",
        Role::Recovery => "recovery",
    }
}

fn ms_string(ms: u64) -> String {
    jiff::Timestamp::from_millisecond(ms as i64)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// What `vellum member remove` did.
#[derive(Serialize, Debug)]
pub struct Removed {
    pub device: String,
    pub name: Option<String>,
    /// The removal and the key rotation after it.
    pub ops: Vec<String>,
}

/// Removes a member (DESIGN §7): `who` is its name, or its id or a prefix
/// of it. The journal writes the removal and a new key epoch that the
/// removed device is not sealed; a syncing daemon's gate drops it at once.
pub fn remove(v: &mut Vault, who: &str) -> Result<Removed> {
    use crate::error::user;
    let me = v.device();
    let members = v.journal.members(v.journal.admitted())?;
    let names = v.head()?.device_names.clone();
    let want = who.to_ascii_lowercase();
    let found: Vec<DeviceId> = members
        .roles
        .keys()
        .filter(|d| members.active(d).is_some())
        .filter(|d| {
            d.to_hex().starts_with(&want)
                || names.get(*d).is_some_and(|n| n.eq_ignore_ascii_case(who))
        })
        .copied()
        .collect();
    let device = match found.as_slice() {
        [] => {
            return Err(user(format!(
                "no member of this vault is called or starts with {who:?}; `vellum peers` lists them"
            )));
        }
        [d] => *d,
        _ => {
            return Err(user(format!(
                "{} members match {who:?}; give more of the device id (`vellum peers`)",
                found.len()
            )));
        }
    };
    if device == me {
        return Err(user(
            "this is this device: remove it from another device of the vault",
        ));
    }
    let ops = v.write_control(vec![vellum_journal::Write::Remove { device }])?;
    Ok(Removed {
        device: device.to_hex(),
        name: names.get(&device).cloned(),
        ops: ops.iter().map(|o| o.to_hex()).collect(),
    })
}
