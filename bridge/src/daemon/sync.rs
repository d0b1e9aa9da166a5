//! Live sync on the vault's thread: one [`Session`] per connected member,
//! fed by the libp2p node's events, and what admitted remote ops do to the
//! disk (DESIGN §6, §7, §8).
//!
//! The node (in `vellum_replicator::net`) moves bytes on the tokio
//! runtime; everything that touches the journal happens here, on the
//! thread that owns the vault, between its other jobs. Ops admitted by a
//! session are replayed and written to disk in one pass once the queue of
//! network messages runs dry (or [`APPLY_EVERY`] has passed), through the
//! same path as an import: quarantine screening, then the disk writer.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use anyhow::Result;
use vellum_journal::{DeviceId, VersionVector};
use vellum_replicator::net::{self, Handle, NetEvent, StreamKind};
use vellum_replicator::{Claims, Event, Message, Session, wire};

mod pairing;

use crate::daemon::events;
use crate::error;
use crate::peers::{self, NetView};
use crate::transfer;
use crate::vault::{Vault, now_ms};

/// Admitted remote ops wait at most this long for the disk, however busy
/// the stream is.
pub const APPLY_EVERY: Duration = Duration::from_millis(200);
/// How long a peer that broke the protocol is refused.
pub const MISBEHAVED_BACKOFF: Duration = Duration::from_secs(60);

/// Starts the libp2p node (again, after the device took a new identity).
pub struct Starter {
    pub runtime: tokio::runtime::Handle,
    pub cfg: net::Config,
    pub sink: std::sync::Arc<dyn Fn(NetEvent) + Send + std::marker::Sync>,
}

impl Starter {
    pub fn start(&self, seed: [u8; 32]) -> Result<Handle, net::NetError> {
        let _in_runtime = self.runtime.enter();
        let sink = self.sink.clone();
        net::start(self.cfg.clone(), seed, Box::new(move |ev| sink(ev)))
    }
}

struct Live {
    stream: u64,
    session: Session,
}

pub struct Sync {
    net: Handle,
    starter: Starter,
    /// The identity the node runs under.
    device: DeviceId,
    sessions: HashMap<DeviceId, Live>,
    /// Remote ops or chunks arrived and are not on disk yet: since when.
    unapplied: Option<Instant>,
    /// What the sessions were last told the journal holds.
    announced: VersionVector,
    /// The member set the node was last given.
    members: BTreeSet<DeviceId>,
    /// A device pairing with this one through the pending invite.
    joiner: Option<pairing::Joiner>,
    /// When the pending invite expires (ms), if one is pending: the tick
    /// checks this, not the file.
    invite_until: Option<u64>,
    /// What the sessions are fetching: one peer is asked for each range
    /// and chunk at a time.
    claims: Claims,
    /// Events for subscribers that only sync knows of (pairing).
    events: Vec<events::Event>,
}

impl Sync {
    /// Takes over a started node: tells it the members and where the
    /// address book and `dial` say they are.
    pub fn new(
        v: &mut Vault,
        net: Handle,
        starter: Starter,
        dial: Vec<(DeviceId, net::Multiaddr)>,
    ) -> Result<Sync> {
        v.net = Some(NetView {
            peer_id: net.local_peer_id().to_string(),
            ..NetView::default()
        });
        let device = net::device_of(&net.local_peer_id()).unwrap_or(v.device());
        let mut s = Sync {
            net,
            starter,
            device,
            sessions: HashMap::new(),
            unapplied: None,
            announced: v.journal.admitted().clone(),
            members: BTreeSet::new(),
            joiner: None,
            invite_until: None,
            claims: Claims::default(),
            events: Vec::new(),
        };
        // An invite from before a restart still stands, unless used or
        // expired.
        match crate::invite::load(v)? {
            Some(p) if !p.used && !p.expired(now_ms()) => {
                s.invite_until = Some(p.expires_ms);
                s.net.set_invite(true);
            }
            Some(_) => crate::invite::remove(v)?,
            None => {}
        }
        s.update_members(v)?;
        s.dial_known(v)?;
        for (d, a) in dial {
            s.net.dial(d, vec![a]);
        }
        Ok(s)
    }

    /// Dials every device of the address book at the addresses it holds.
    fn dial_known(&self, v: &Vault) -> Result<()> {
        for (d, rec) in peers::load_all(v)? {
            let addrs: Vec<net::Multiaddr> =
                rec.addrs.iter().filter_map(|a| a.parse().ok()).collect();
            if !addrs.is_empty() {
                self.net.dial(d, addrs);
            }
        }
        Ok(())
    }

    /// Whether admitted ops wait for the disk, and for how long at most
    /// before [`Sync::apply`] must run.
    pub fn due(&self) -> Option<Instant> {
        self.unapplied.map(|t| t + APPLY_EVERY)
    }

    pub fn handle(&mut self, v: &mut Vault, ev: NetEvent) {
        let now = now_ms();
        match ev {
            NetEvent::Listening { addr } => {
                let full = format!("{addr}/p2p/{}", self.net.local_peer_id());
                tracing::info!(addr = %full, "listening");
                let view = v.net.get_or_insert_default();
                if !view.listening.contains(&full) {
                    view.listening.push(full);
                }
            }
            NetEvent::Unlistened { addr } => {
                let full = format!("{addr}/p2p/{}", self.net.local_peer_id());
                if let Some(view) = v.net.as_mut() {
                    view.listening.retain(|a| *a != full);
                }
            }
            NetEvent::Connected { peer, addr } => {
                if !self.members.contains(&peer) {
                    if let Some(view) = v.net.as_mut() {
                        view.strangers.insert(peer, addr.to_string());
                    }
                    return;
                }
                tracing::info!(peer = %peer.short(), %addr, "connected");
                // The address book learns where a peer listens from what it
                // says (identify) and mDNS: an incoming connection's address
                // is a port of the moment.
                if let Some(view) = v.net.as_mut() {
                    view.connected.insert(peer, addr.to_string());
                }
            }
            NetEvent::Disconnected { peer } => {
                let member = v
                    .net
                    .as_mut()
                    .map(|view| {
                        view.strangers.remove(&peer);
                        view.connected.remove(&peer).is_some()
                    })
                    .unwrap_or(false);
                if member || self.members.contains(&peer) {
                    tracing::info!(peer = %peer.short(), "disconnected");
                    self.seen(v, peer, now);
                }
            }
            NetEvent::Refused { peer } => {
                tracing::info!(
                    peer = peer.map(|p| p.to_string()).unwrap_or_default(),
                    "refused a connection from a device that is not a member"
                );
            }
            NetEvent::Opened {
                peer,
                stream,
                kind: StreamKind::Pair,
            } => self.pair_opened(v, peer, stream),
            NetEvent::Opened {
                peer,
                stream,
                kind: StreamKind::Sync,
            } => {
                let session =
                    Session::with_claims(&v.journal, v.device(), now, self.claims.clone());
                self.sessions.insert(peer, Live { stream, session });
                self.drain(v, peer);
            }
            NetEvent::Frame {
                peer,
                stream,
                bytes,
                permit,
            } => {
                if self.is_pairing(stream) {
                    self.pair_frame(v, &bytes);
                    return;
                }
                let Some(live) = self.sessions.get_mut(&peer).filter(|l| l.stream == stream) else {
                    // From a stream that was replaced or closed.
                    return;
                };
                tracing::trace!(peer = %peer.short(), kind = wire::kind_of(&bytes), bytes = bytes.len(), "sync message in");
                if let Err(e) = live.session.handle_message(&mut v.journal, &bytes, now) {
                    // The journal's storage failed: nothing was admitted
                    // past what is durable; the session starts over.
                    tracing::warn!(peer = %peer.short(), "sync stopped by a storage error: {}", error::one_line(&e.into()));
                    self.net.close(peer, stream, Duration::ZERO);
                    self.sessions.remove(&peer);
                    return;
                }
                drop(permit);
                self.drain(v, peer);
            }
            NetEvent::Closed {
                peer,
                stream,
                error,
            } => {
                self.joiner_left(v, stream);
                if self.sessions.get(&peer).is_some_and(|l| l.stream == stream) {
                    self.end(v, peer);
                    match error {
                        Some(e) => tracing::debug!(peer = %peer.short(), "sync stream ended: {e}"),
                        None => tracing::debug!(peer = %peer.short(), "sync stream ended"),
                    }
                }
            }
            NetEvent::Discovered { peer, addrs } => {
                self.remember(v, peer, |r| {
                    for a in &addrs {
                        r.add_addr(a.to_string());
                    }
                });
            }
            // Devices of other vaults, or none, on the LAN.
            NetEvent::Nearby { .. } => {}
            NetEvent::Gossip { from, bytes } => {
                // A member not connected directly says what it holds: if
                // that is news, try to reach it (a session asks for the
                // rest).
                if self.sessions.contains_key(&from) {
                    return;
                }
                if let Ok(Message::Have { vv }) = Message::decode(&bytes)
                    && peers::ahead_by(&vv, v.journal.admitted()) > 0
                {
                    self.net.dial(from, Vec::new());
                }
            }
        }
    }

    /// Sends what a session queued and acts on its events.
    fn drain(&mut self, v: &mut Vault, peer: DeviceId) {
        let Some(live) = self.sessions.get_mut(&peer) else {
            return;
        };
        let stream = live.stream;
        let mut overloaded = false;
        while let Some(bytes) = live.session.poll_transmit() {
            tracing::trace!(peer = %peer.short(), kind = wire::kind_of(&bytes), bytes = bytes.len(), "sync message out");
            if let Err(e) = self.net.send(stream, bytes) {
                overloaded = e == net::SendError::Overloaded;
                break;
            }
        }
        let mut closed = None;
        while let Some(e) = live.session.poll_event() {
            match e {
                Event::Connected { .. } => {}
                Event::Admitted { .. } => {
                    self.unapplied.get_or_insert_with(Instant::now);
                }
                Event::Chunks { stored } => {
                    self.unapplied.get_or_insert_with(Instant::now);
                    if let Some(view) = v.net.as_mut() {
                        view.chunks_received += stored;
                    }
                }
                Event::Closed { reason, misbehaved } => closed = Some((reason, misbehaved)),
            }
        }
        let has = live.session.peer_holds();
        if let Some(view) = v.net.as_mut() {
            view.has.insert(peer, has);
        }
        if overloaded {
            closed = Some(("the peer does not read what it asked for".into(), true));
        }
        if let Some((reason, misbehaved)) = closed {
            if misbehaved {
                tracing::warn!(peer = %peer.short(), "disconnected a peer that broke the protocol: {reason}");
            } else {
                tracing::info!(peer = %peer.short(), "sync session ended: {reason}");
            }
            let backoff = if misbehaved {
                MISBEHAVED_BACKOFF
            } else {
                Duration::ZERO
            };
            self.end(v, peer);
            self.net.close(peer, stream, backoff);
        }
    }

    /// Forgets a peer's session, noting when it was last in touch and what
    /// it held.
    fn end(&mut self, v: &mut Vault, peer: DeviceId) {
        self.sessions.remove(&peer);
        self.seen(v, peer, now_ms());
    }

    fn seen(&self, v: &Vault, peer: DeviceId, now: u64) {
        let has = v.net.as_ref().and_then(|n| n.has.get(&peer)).cloned();
        self.remember(v, peer, |r| {
            r.last_seen_ms = Some(now);
            if let Some(h) = &has {
                r.has = Some(vellum_journal::id::hex(&h.to_bytes()));
            }
        });
    }

    fn remember(&self, v: &Vault, peer: DeviceId, change: impl FnOnce(&mut peers::PeerRecord)) {
        let saved = peers::load(v, &peer).and_then(|mut rec| {
            let before = rec.clone();
            change(&mut rec);
            if rec != before {
                peers::save(v, &peer, &rec)?;
            }
            Ok(())
        });
        if let Err(e) = saved {
            tracing::warn!("could not update the address book: {}", error::one_line(&e));
        }
    }

    /// Events for subscribers since the last call.
    pub fn take_events(&mut self) -> Vec<events::Event> {
        std::mem::take(&mut self.events)
    }

    /// Re-requests and anti-entropy for sessions that are due; invites
    /// that expired.
    pub fn tick(&mut self, v: &mut Vault) {
        self.expire_invite(v);
        if v.device() != self.device && self.peers_know_new_identity(v) {
            self.new_identity(v);
        }
        let now = now_ms();
        let due: Vec<DeviceId> = self
            .sessions
            .iter()
            .filter(|(_, l)| l.session.next_timeout().is_some_and(|t| t <= now))
            .map(|(d, _)| *d)
            .collect();
        for d in due {
            if let Some(l) = self.sessions.get_mut(&d) {
                l.session.handle_timeout(&v.journal, now);
            }
            self.drain(v, d);
        }
    }

    /// Replays what sessions admitted and brings the disk in line, through
    /// the import's path (quarantine, then the writer).
    pub fn apply(&mut self, v: &mut Vault) {
        if self.unapplied.take().is_none() {
            return;
        }
        let started = Instant::now();
        match transfer::settle_remote(v) {
            Ok(r) => {
                if !r.changed.is_empty() || r.quarantined > 0 {
                    tracing::info!(
                        files = r.changed.len(),
                        held = r.quarantined,
                        ms = format!("{:.1}", started.elapsed().as_secs_f64() * 1000.0),
                        "applied remote changes"
                    );
                }
            }
            Err(e) => {
                tracing::warn!(
                    "remote changes could not all be applied; the next scan retries the disk"
                );
                tracing::debug!("applying remote changes failed: {}", error::one_line(&e));
            }
        }
    }

    /// After any job: tells peers about new ops (eager push), and the node
    /// about a changed member set.
    pub fn after_job(&mut self, v: &mut Vault) {
        if v.device() != self.device && self.peers_know_new_identity(v) {
            self.new_identity(v);
        }
        if *v.journal.admitted() == self.announced {
            return;
        }
        self.announced = v.journal.admitted().clone();
        // The gate first: a peer told of a new member may dial in under its
        // key at once.
        if let Err(e) = self.update_members(v) {
            tracing::warn!("could not read the member set: {}", error::one_line(&e));
        }
        let now = now_ms();
        let peers: Vec<DeviceId> = self.sessions.keys().copied().collect();
        for p in peers {
            if let Some(l) = self.sessions.get_mut(&p) {
                l.session.announce(&v.journal, now);
            }
            self.drain(v, p);
        }
        self.net.publish(
            Message::Have {
                vv: self.announced.clone(),
            }
            .encode(),
        );
    }

    fn update_members(&mut self, v: &mut Vault) -> Result<()> {
        let me = v.device();
        let m = v.journal.members(v.journal.admitted())?;
        let now: BTreeSet<DeviceId> = m
            .roles
            .keys()
            .filter(|d| **d != me && **d != self.device && m.active(d).is_some())
            .copied()
            .collect();
        if now != self.members {
            // Sessions with devices no longer members end at once.
            for gone in self.members.difference(&now) {
                if let Some(l) = self.sessions.remove(gone) {
                    self.net.close(*gone, l.stream, Duration::ZERO);
                }
            }
            // A stranger that became a member (a joiner) counts as
            // connected now.
            if let Some(view) = v.net.as_mut() {
                for d in now.difference(&self.members) {
                    if let Some(addr) = view.strangers.remove(d) {
                        view.connected.insert(*d, addr);
                    }
                }
            }
            self.members = now.clone();
            self.net.set_members(now);
        }
        Ok(())
    }

    /// Whether a peer said it holds this device's new identity's first ops
    /// (its Member add by the old identity comes before them): only then
    /// can the node restart under the new key, since until a peer has that
    /// add its gate refuses the new key. Until then the old key carries the
    /// sync. What the peer said, not what was sent to it: ops sent but not
    /// yet read are lost when the node stops, and a restart on their
    /// strength would leave the device refused everywhere.
    fn peers_know_new_identity(&self, v: &Vault) -> bool {
        let new = v.device();
        self.sessions
            .values()
            .any(|l| l.session.peer_has().seq(&new) >= 1)
    }

    /// The device took a new identity (it was restored from an old copy):
    /// the node's key is its identity, so the node starts again under the
    /// new one, and every session with it.
    fn new_identity(&mut self, v: &mut Vault) {
        self.device = v.device();
        self.net.shutdown();
        self.sessions.clear();
        self.joiner = None;
        let listening = v
            .net
            .as_ref()
            .map(|n| n.listening.clone())
            .unwrap_or_default();
        match self.starter.start(v.keys.signing.to_bytes()) {
            Ok(net) => {
                tracing::info!("the network restarts under this device's new identity");
                if let Err(e) = crate::home::drop_carrier(v.instance()) {
                    tracing::warn!("{}", error::one_line(&e));
                }
                v.net = Some(NetView {
                    peer_id: net.local_peer_id().to_string(),
                    ..NetView::default()
                });
                self.net = net;
                self.members.clear();
                if let Err(e) = self.update_members(v) {
                    tracing::warn!("could not read the member set: {}", error::one_line(&e));
                }
                if let Err(e) = self.dial_known(v) {
                    tracing::warn!("could not read the address book: {}", error::one_line(&e));
                }
            }
            Err(e) => {
                // The old addresses stay listed until the restart works.
                if let Some(n) = v.net.as_mut() {
                    n.listening = listening;
                }
                tracing::warn!("the network could not restart under the new identity: {e}");
            }
        }
    }

    pub fn shutdown(&self) {
        self.net.shutdown();
    }
}
