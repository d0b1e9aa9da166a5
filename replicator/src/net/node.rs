//! The swarm task and the handle its owner drives it with.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures::{AsyncReadExt, StreamExt};
use libp2p::core::ConnectedPoint;
use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, dcutr, gossipsub, identify, kad, mdns, noise, ping,
    relay, tcp, yamux,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use vellum_journal::DeviceId;

use super::gate::Gate;
use super::{
    Config, IDENTIFY_PROTOCOL, KAD_PROTOCOL, NetError, NetEvent, PAIR_PROTOCOL, SYNC_PROTOCOL,
    StreamKind, frames, have_topic,
};

/// Frames of one stream handed to the owner and not yet handled: the
/// stream is not read further until one is (backpressure to the peer).
pub const STREAM_FRAMES_QUEUED: usize = 16;
/// Bytes queued to one stream before [`Handle::send`] refuses: a peer
/// that does not read is not allowed to fill this process's memory.
pub const STREAM_SEND_BYTES_MAX: usize = 32 * 1024 * 1024;
/// How often mDNS asks the LAN who is there.
const MDNS_QUERY_INTERVAL: Duration = Duration::from_secs(30);
/// Addresses kept per member.
const ADDRS_PER_PEER_MAX: usize = 16;
/// How often the node checks whom to dial and which streams to open.
const TICK: Duration = Duration::from_secs(2);
/// The first wait before dialling a member again; it doubles up to
/// [`REDIAL_MAX`].
const REDIAL_MIN: Duration = Duration::from_secs(2);
const REDIAL_MAX: Duration = Duration::from_secs(60);
/// A relay is dialled at most this often.
const RELAY_DIAL_EVERY: Duration = Duration::from_secs(10);
/// Wall time passing this much faster than monotonic time between two
/// ticks means the host slept: dial everyone again.
const RESUME_GAP: Duration = Duration::from_secs(10);

/// Keeps a received frame counted against its stream until dropped.
#[derive(Debug)]
pub struct Permit(#[allow(dead_code)] OwnedSemaphorePermit);

/// Why a message could not be queued.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SendError {
    #[error("the stream is closed")]
    Closed,
    #[error("the peer is not reading: over {STREAM_SEND_BYTES_MAX} bytes queued to it")]
    Overloaded,
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    gate: Gate,
    mdns: Toggle<mdns::tokio::Behaviour>,
    gossipsub: gossipsub::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    stream: libp2p_stream::Behaviour,
    // The internet setting: all three or none.
    relay: Toggle<relay::client::Behaviour>,
    dcutr: Toggle<dcutr::Behaviour>,
    kad: Toggle<kad::Behaviour<kad::store::MemoryStore>>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Behaviour {
    /// `relay` is the relay client when the internet setting is on.
    fn new(
        key: &libp2p::identity::Keypair,
        mdns_on: bool,
        relay: Option<relay::client::Behaviour>,
    ) -> Result<Behaviour, BoxError> {
        let local = key.public().to_peer_id();
        let internet = relay.is_some();
        let gossip = gossipsub::ConfigBuilder::default()
            .heartbeat_interval(Duration::from_secs(1))
            .validation_mode(gossipsub::ValidationMode::Strict)
            .max_transmit_size(crate::wire::MESSAGE_BYTES_MAX)
            .build()?;
        let mdns = if mdns_on {
            Some(mdns::tokio::Behaviour::new(
                mdns::Config {
                    // Ask the LAN every 30 s (libp2p's default is 5 min): a
                    // device back from a partition or a network change is
                    // found within that.
                    query_interval: MDNS_QUERY_INTERVAL,
                    ..mdns::Config::default()
                },
                local,
            )?)
        } else {
            None
        };
        Ok(Behaviour {
            gate: Gate::default(),
            mdns: mdns.into(),
            gossipsub: gossipsub::Behaviour::new(
                gossipsub::MessageAuthenticity::Signed(key.clone()),
                gossip,
            )?,
            identify: identify::Behaviour::new(
                identify::Config::new(IDENTIFY_PROTOCOL.into(), key.public())
                    .with_agent_version(format!("vellum/{}", env!("CARGO_PKG_VERSION")))
                    // A relayed address appears after the connection to the
                    // relay: peers hear of it at once, not at the next
                    // periodic exchange.
                    .with_push_listen_addr_updates(true),
            ),
            ping: ping::Behaviour::default(),
            stream: libp2p_stream::Behaviour::new(),
            relay: relay.into(),
            dcutr: internet.then(|| dcutr::Behaviour::new(local)).into(),
            kad: internet.then(|| kademlia(local)).into(),
        })
    }
}

/// A Kademlia node on Vellum's DHT, in server mode (devices answer each
/// other's lookups; a LAN device never has a confirmed public address, so
/// libp2p's automatic mode would leave it a client). It stores no records
/// from others: lookups of peers are all it is for.
pub(super) fn kademlia(local: PeerId) -> kad::Behaviour<kad::store::MemoryStore> {
    let mut cfg = kad::Config::new(StreamProtocol::new(KAD_PROTOCOL));
    cfg.set_record_filtering(kad::StoreInserts::FilterBoth);
    let mut kad = kad::Behaviour::with_config(local, kad::store::MemoryStore::new(local), cfg);
    kad.set_mode(Some(kad::Mode::Server));
    kad
}

/// A relay this node holds a reservation on (the internet setting).
struct Relay {
    /// Its addresses, without its `/p2p/<peer id>`: one relay may be
    /// known at several (one per network it is on).
    addrs: Vec<Multiaddr>,
    /// Configured: this node holds a reservation on it. Otherwise it is
    /// only named in a member's address (or an invite's), and dialled
    /// through when that address is.
    reserve: bool,
    /// The relayed listener, while one is open.
    listener: Option<ListenerId>,
    /// When to ask for a reservation next, and the wait after that.
    due: Instant,
    wait: Duration,
    /// When it was last dialled.
    dialled: Option<Instant>,
}

impl Relay {
    fn new(reserve: bool) -> Relay {
        Relay {
            addrs: Vec::new(),
            reserve,
            listener: None,
            due: Instant::now(),
            wait: REDIAL_MIN,
            dialled: None,
        }
    }
}

/// One open sync stream, as the handle sees it.
struct Outgoing {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    queued: Arc<AtomicUsize>,
}

type Streams = Arc<Mutex<HashMap<u64, Outgoing>>>;

enum Cmd {
    Members(BTreeSet<DeviceId>),
    Dial(DeviceId, Vec<Multiaddr>),
    Close(DeviceId, u64, Duration),
    Publish(Vec<u8>),
    Invite(bool),
    OpenPair(DeviceId),
    StreamReady(PeerId, libp2p::Stream, StreamKind),
    OpenFailed(PeerId, String),
    StreamEnded(u64, PeerId, Option<String>),
    Shutdown,
}

/// Drives a running node. Cheap to clone.
#[derive(Clone)]
pub struct Handle {
    cmd: mpsc::UnboundedSender<Cmd>,
    streams: Streams,
    local: PeerId,
}

impl Handle {
    /// This node's peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.local
    }

    /// The devices allowed to connect (and dialled): the vault's members,
    /// minus this device. Connections to anyone dropped are closed.
    pub fn set_members(&self, members: BTreeSet<DeviceId>) {
        let _ = self.cmd.send(Cmd::Members(members));
    }

    /// Addresses to try for a member (from config, an invite, or the
    /// address book); the node dials it if it is not connected.
    pub fn dial(&self, peer: DeviceId, addrs: Vec<Multiaddr>) {
        let _ = self.cmd.send(Cmd::Dial(peer, addrs));
    }

    /// Queues a message on a sync stream.
    pub fn send(&self, stream: u64, bytes: Vec<u8>) -> Result<(), SendError> {
        let streams = self.streams.lock().expect("streams lock");
        let out = streams.get(&stream).ok_or(SendError::Closed)?;
        let len = bytes.len();
        if out.queued.load(Ordering::Relaxed) + len > STREAM_SEND_BYTES_MAX {
            return Err(SendError::Overloaded);
        }
        out.queued.fetch_add(len, Ordering::Relaxed);
        out.tx.send(bytes).map_err(|_| SendError::Closed)
    }

    /// Ends a stream and disconnects its peer. With a `backoff`, the peer
    /// (it broke the protocol) is refused and not dialled for that long.
    pub fn close(&self, peer: DeviceId, stream: u64, backoff: Duration) {
        let _ = self.cmd.send(Cmd::Close(peer, stream, backoff));
    }

    /// Announces bytes (an encoded Have) on the vault's gossip topic.
    pub fn publish(&self, bytes: Vec<u8>) {
        let _ = self.cmd.send(Cmd::Publish(bytes));
    }

    /// Opens the gate to strangers (an invite is pending: they may connect
    /// and open a pairing stream) or closes it again.
    pub fn set_invite(&self, open: bool) {
        let _ = self.cmd.send(Cmd::Invite(open));
    }

    /// Opens a pairing stream to `peer` (dialled first with
    /// [`Handle::dial`]) once connected; it arrives as
    /// [`NetEvent::Opened`] with [`StreamKind::Pair`].
    pub fn open_pair(&self, peer: DeviceId) {
        let _ = self.cmd.send(Cmd::OpenPair(peer));
    }

    /// Stops the node: streams end, connections close.
    pub fn shutdown(&self) {
        let _ = self.cmd.send(Cmd::Shutdown);
    }
}

/// Starts a node on the current tokio runtime. Listeners are bound before
/// this returns, so a port in use is an error here; the addresses they
/// got (and later changes) arrive as [`NetEvent::Listening`].
pub fn start(
    cfg: Config,
    device_seed: [u8; 32],
    sink: Box<dyn Fn(NetEvent) + Send + Sync>,
) -> Result<Handle, NetError> {
    let key = libp2p::identity::Keypair::ed25519_from_bytes(device_seed)
        .map_err(|e| NetError::Setup(e.to_string()))?;
    let local = key.public().to_peer_id();
    let mdns_on = cfg.mdns;
    let setup = |e: &dyn std::fmt::Display| NetError::Setup(e.to_string());
    let transports = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| setup(&e))?
        .with_quic();
    let idle = |c: libp2p::swarm::Config| c.with_idle_connection_timeout(Duration::from_secs(60));
    let mut swarm = if cfg.internet.is_some() {
        transports
            .with_relay_client(noise::Config::new, yamux::Config::default)
            .map_err(|e| setup(&e))?
            .with_behaviour(|key, relay| Behaviour::new(key, mdns_on, Some(relay)))
            .map_err(|e| setup(&e))?
            .with_swarm_config(idle)
            .build()
    } else {
        transports
            .with_behaviour(|key| Behaviour::new(key, mdns_on, None))
            .map_err(|e| setup(&e))?
            .with_swarm_config(idle)
            .build()
    };

    let topic = gossipsub::IdentTopic::new(have_topic(&cfg.vault));
    swarm
        .behaviour_mut()
        .gossipsub
        .subscribe(&topic)
        .map_err(|e| NetError::Setup(e.to_string()))?;
    super::listen(&mut swarm, &cfg.listen, 0)?;

    let mut relays = HashMap::new();
    for addr in cfg.internet.iter().flat_map(|i| &i.relays) {
        let Some(peer) = super::last_peer(addr) else {
            return Err(NetError::Setup(format!(
                "the relay address {addr} does not end in /p2p/<peer id>"
            )));
        };
        // A relay may connect and be dialled, though it is no member. It
        // is the DHT's first contact too, once connected (identify tells
        // the DHT of it): told now, the DHT would dial it before this
        // node's listening ports are known (see `may_dial_relays`).
        swarm.behaviour_mut().gate.allow(peer);
        let bare = super::without_peer(addr);
        relays
            .entry(peer)
            .or_insert_with(|| Relay::new(true))
            .addrs
            .push(bare);
    }

    let mut control = swarm.behaviour().stream.new_control();
    let incoming_sync = control
        .accept(StreamProtocol::new(SYNC_PROTOCOL))
        .map_err(|e| NetError::Setup(e.to_string()))?;
    let incoming_pair = control
        .accept(StreamProtocol::new(PAIR_PROTOCOL))
        .map_err(|e| NetError::Setup(e.to_string()))?;
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let streams: Streams = Arc::default();
    let handle = Handle {
        cmd: cmd_tx.clone(),
        streams: streams.clone(),
        local,
    };
    // Inbound streams come back to the swarm task as commands, so every
    // change to the stream table happens in one place.
    for (incoming, kind) in [
        (incoming_sync, StreamKind::Sync),
        (incoming_pair, StreamKind::Pair),
    ] {
        let cmd = cmd_tx.clone();
        tokio::spawn(async move {
            let mut incoming = incoming;
            while let Some((peer, stream)) = incoming.next().await {
                if cmd.send(Cmd::StreamReady(peer, stream, kind)).is_err() {
                    break;
                }
            }
        });
    }
    let node = Node {
        swarm,
        topic,
        control,
        cmd: cmd_tx,
        streams,
        sink: Arc::from(sink),
        local,
        members: HashMap::new(),
        dialled: HashMap::new(),
        banned: HashMap::new(),
        addrs: HashMap::new(),
        redial: HashMap::new(),
        active: HashMap::new(),
        pairing: HashMap::new(),
        invite_open: false,
        opening: HashSet::new(),
        connected: HashSet::new(),
        internet: cfg.internet.is_some(),
        started: Instant::now(),
        routable: false,
        relays,
        conns: HashMap::new(),
    };
    tokio::spawn(node.run(cmd_rx));
    Ok(handle)
}

struct Node {
    swarm: Swarm<Behaviour>,
    topic: gossipsub::IdentTopic,
    control: libp2p_stream::Control,
    cmd: mpsc::UnboundedSender<Cmd>,
    streams: Streams,
    sink: Arc<dyn Fn(NetEvent) + Send + Sync>,
    local: PeerId,
    /// Members other than this device, by peer id.
    members: HashMap<PeerId, DeviceId>,
    /// Devices dialled on purpose that are not members (yet).
    dialled: HashMap<PeerId, DeviceId>,
    /// Peers refused until then (they broke the protocol).
    banned: HashMap<PeerId, Instant>,
    /// Where members were seen or said to be, newest last.
    addrs: HashMap<PeerId, Vec<Multiaddr>>,
    /// When to dial a member next, and the wait after that.
    redial: HashMap<PeerId, (Instant, Duration)>,
    /// The sync stream in use with each member.
    active: HashMap<PeerId, (u64, DeviceId)>,
    /// Pairing streams, by id.
    pairing: HashMap<u64, (PeerId, DeviceId)>,
    /// An invite is pending: pairing streams are accepted.
    invite_open: bool,
    /// Members a stream is being opened to.
    opening: HashSet<PeerId>,
    connected: HashSet<PeerId>,
    /// The internet setting is on.
    internet: bool,
    /// When the node started, and whether it listens on an address
    /// other than loopback yet.
    started: Instant,
    routable: bool,
    /// Relays in use (the internet setting), by peer id.
    relays: HashMap<PeerId, Relay>,
    /// Each connected device's connections, and whether each is relayed.
    conns: HashMap<PeerId, Vec<(ConnectionId, bool)>>,
}

/// Stream ids, unique in the process: a node started after another (a new
/// identity) never reuses an id whose events may still be queued.
static NEXT_STREAM: AtomicU64 = AtomicU64::new(1);

impl Node {
    async fn run(mut self, mut cmds: mpsc::UnboundedReceiver<Cmd>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = (Instant::now(), SystemTime::now());
        loop {
            tokio::select! {
                ev = self.swarm.select_next_some() => self.on_swarm(ev),
                cmd = cmds.recv() => match cmd {
                    Some(Cmd::Shutdown) | None => break,
                    Some(c) => self.on_cmd(c),
                },
                _ = tick.tick() => {
                    let (mono, wall) = (Instant::now(), SystemTime::now());
                    let slept = wall
                        .duration_since(last.1)
                        .unwrap_or_default()
                        .saturating_sub(mono - last.0);
                    if slept > RESUME_GAP {
                        tracing::info!("resumed after sleep; dialling members again");
                        self.redial_all_now();
                    }
                    last = (mono, wall);
                    self.maintain();
                }
            }
        }
        // Dropping the senders ends every writer; the connections close
        // with the swarm.
        self.streams.lock().expect("streams lock").clear();
    }

    fn emit(&self, ev: NetEvent) {
        (self.sink)(ev);
    }

    fn on_cmd(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Members(devices) => {
                let want: HashMap<PeerId, DeviceId> = devices
                    .into_iter()
                    .filter_map(|d| super::peer_id(&d).map(|p| (p, d)))
                    .filter(|(p, _)| *p != self.local)
                    .collect();
                let gone: Vec<PeerId> = self
                    .members
                    .keys()
                    .filter(|p| !want.contains_key(p))
                    .copied()
                    .collect();
                for p in gone {
                    if self.dialled.contains_key(&p) {
                        continue;
                    }
                    // Closes its connections too.
                    self.swarm.behaviour_mut().gate.deny(p);
                    self.addrs.remove(&p);
                    self.redial.remove(&p);
                }
                for p in want.keys() {
                    if !self.banned.contains_key(p) {
                        self.swarm.behaviour_mut().gate.allow(*p);
                    }
                }
                self.members = want;
                self.maintain();
            }
            Cmd::Dial(device, addrs) => {
                let Some(peer) = super::peer_id(&device) else {
                    return;
                };
                if peer == self.local {
                    return;
                }
                if !self.members.contains_key(&peer) && !addrs.is_empty() {
                    // Dialled on purpose (a `--peer`, an invite): allowed
                    // out, though it gets no sync stream unless a member.
                    self.dialled.insert(peer, device);
                    self.swarm.behaviour_mut().gate.allow(peer);
                }
                for a in addrs {
                    self.through(&a);
                    self.learn(peer, a);
                }
                self.redial.remove(&peer);
                self.maintain();
            }
            Cmd::Close(device, stream, backoff) => {
                let Some(peer) = super::peer_id(&device) else {
                    return;
                };
                self.drop_stream(stream);
                if !backoff.is_zero() {
                    self.banned.insert(peer, Instant::now() + backoff);
                    self.swarm.behaviour_mut().gate.deny(peer);
                    let _ = self.swarm.disconnect_peer_id(peer);
                }
            }
            Cmd::Publish(bytes) => {
                let topic = self.topic.clone();
                // Nobody subscribed yet, or the same Have twice: fine.
                if let Err(e) = self.swarm.behaviour_mut().gossipsub.publish(topic, bytes) {
                    tracing::trace!("gossip not published: {e}");
                }
            }
            Cmd::Invite(open) => {
                self.invite_open = open;
                self.swarm.behaviour_mut().gate.set_open(open);
                if !open {
                    // Strangers that came for the invite go with it; one
                    // still on a pairing stream goes when the stream ends,
                    // so that the last word (a refusal, say) reaches it.
                    let pairing: HashSet<PeerId> = self.pairing.values().map(|(p, _)| *p).collect();
                    let strangers: Vec<PeerId> = self
                        .swarm
                        .connected_peers()
                        .filter(|p| {
                            !self.swarm.behaviour().gate.is_allowed(p) && !pairing.contains(p)
                        })
                        .copied()
                        .collect();
                    for p in strangers {
                        self.swarm.behaviour_mut().gate.deny(p);
                    }
                }
            }
            Cmd::OpenPair(device) => {
                let Some(peer) = super::peer_id(&device) else {
                    return;
                };
                self.spawn_open(peer, StreamKind::Pair);
            }
            Cmd::StreamReady(peer, stream, StreamKind::Sync) => {
                self.opening.remove(&peer);
                let Some(device) = self.members.get(&peer).copied() else {
                    // Not (or no longer) a member: the stream just drops.
                    return;
                };
                self.adopt(peer, device, stream, StreamKind::Sync);
            }
            Cmd::StreamReady(peer, stream, StreamKind::Pair) => {
                let dialled = self.dialled.contains_key(&peer);
                let Some(device) = super::device_of(&peer).filter(|_| self.invite_open || dialled)
                else {
                    // No invite pending, and not ours: the stream drops.
                    return;
                };
                self.adopt(peer, device, stream, StreamKind::Pair);
            }
            Cmd::OpenFailed(peer, error) => {
                self.opening.remove(&peer);
                tracing::debug!(%peer, "could not open a sync stream: {error}");
            }
            Cmd::StreamEnded(id, peer, error) => {
                if let Some((_, device)) = self.pairing.remove(&id) {
                    self.emit(NetEvent::Closed {
                        peer: device,
                        stream: id,
                        error,
                    });
                    if !self.invite_open && !self.swarm.behaviour().gate.is_allowed(&peer) {
                        // A stranger whose pairing ended after the invite.
                        self.swarm.behaviour_mut().gate.deny(peer);
                    } else if self.connected.contains(&peer) {
                        // A joiner that stays connected gets a sync stream.
                        self.close_relayed(peer);
                        self.open_stream(peer);
                    }
                } else if self.active.get(&peer).is_some_and(|(a, _)| *a == id) {
                    let (_, device) = self.active.remove(&peer).expect("checked");
                    self.emit(NetEvent::Closed {
                        peer: device,
                        stream: id,
                        error,
                    });
                }
                self.streams.lock().expect("streams lock").remove(&id);
            }
            Cmd::Shutdown => {}
        }
    }

    /// Takes a new stream with `peer` into use; a sync stream replaces any
    /// older one.
    fn adopt(&mut self, peer: PeerId, device: DeviceId, stream: libp2p::Stream, kind: StreamKind) {
        if kind == StreamKind::Sync
            && let Some((old, _)) = self.active.remove(&peer)
        {
            self.drop_stream(old);
            self.emit(NetEvent::Closed {
                peer: device,
                stream: old,
                error: Some("replaced by a newer stream".into()),
            });
        }
        let id = NEXT_STREAM.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        self.streams.lock().expect("streams lock").insert(
            id,
            Outgoing {
                tx,
                queued: queued.clone(),
            },
        );
        match kind {
            StreamKind::Sync => {
                self.active.insert(peer, (id, device));
            }
            StreamKind::Pair => {
                self.pairing.insert(id, (peer, device));
            }
        }
        self.emit(NetEvent::Opened {
            peer: device,
            stream: id,
            kind,
        });
        tokio::spawn(pump(
            id,
            peer,
            device,
            stream,
            rx,
            queued,
            self.sink.clone(),
            self.cmd.clone(),
        ));
    }

    fn drop_stream(&mut self, id: u64) {
        // The writer ends when its sender drops, which closes the stream;
        // the reader then sees the end.
        self.streams.lock().expect("streams lock").remove(&id);
        self.active.retain(|_, (a, _)| *a != id);
        self.pairing.remove(&id);
    }

    fn learn(&mut self, peer: PeerId, addr: Multiaddr) {
        let addrs = self.addrs.entry(peer).or_default();
        addrs.retain(|a| *a != addr);
        addrs.push(addr);
        if addrs.len() > ADDRS_PER_PEER_MAX {
            addrs.remove(0);
        }
    }

    /// Connects to each relay without a reservation from us, then asks
    /// it for one, with a backoff; a reserved relay's listener stays until
    /// its connection ends. (Asking before the connection is up would race
    /// the relay client's own dial of the relay against ours.)
    fn reserve(&mut self, now: Instant) {
        if !self.may_dial_relays(now) {
            return;
        }
        let due: Vec<PeerId> = self
            .relays
            .iter()
            .filter(|(_, r)| r.reserve && r.listener.is_none() && r.due <= now)
            .map(|(p, _)| *p)
            .collect();
        for peer in due {
            let connected = self.swarm.is_connected(&peer);
            let r = self.relays.get_mut(&peer).expect("listed above");
            r.due = now + r.wait;
            r.wait = (r.wait * 2).min(REDIAL_MAX);
            if connected {
                // The reservation goes over the connection there is,
                // whichever of the relay's addresses is named.
                match self.swarm.listen_on(circuit(&r.addrs[0], peer)) {
                    Ok(id) => r.listener = Some(id),
                    Err(e) => tracing::debug!(relay = %peer, "cannot ask for a reservation: {e}"),
                }
            } else {
                self.dial_relay(peer, now);
            }
        }
    }

    /// Dials a relay: once over each transport it has an address for,
    /// since the relay's view of each connection is this node's candidate
    /// address for a hole punch, and a punch needs one on the transport
    /// the other side dials with.
    fn dial_relay(&mut self, peer: PeerId, now: Instant) {
        let Some(r) = self.relays.get_mut(&peer) else {
            return;
        };
        if r.dialled.is_some_and(|t| now < t + RELAY_DIAL_EVERY) {
            return;
        }
        r.dialled = Some(now);
        let (quic, other): (Vec<Multiaddr>, Vec<Multiaddr>) = r
            .addrs
            .iter()
            .cloned()
            .partition(|a| a.iter().any(|p| matches!(p, Protocol::QuicV1)));
        for addrs in [other, quic].into_iter().filter(|a| !a.is_empty()) {
            let opts = DialOpts::peer_id(peer)
                .addresses(addrs)
                .condition(PeerCondition::Always)
                .build();
            if let Err(e) = self.swarm.dial(opts) {
                tracing::debug!(relay = %peer, "relay not dialled: {e}");
            }
        }
    }

    /// A relayed address may be dialled (the internet setting is on): its
    /// relay may then connect, though it is no member.
    fn through(&mut self, addr: &Multiaddr) {
        if !self.internet {
            return;
        }
        let Some(relay) = super::relay_of(addr) else {
            return;
        };
        let Some(peer) = super::last_peer(&relay) else {
            return;
        };
        if peer == self.local || self.members.contains_key(&peer) {
            return;
        }
        let bare = super::without_peer(&relay);
        let r = self.relays.entry(peer).or_insert_with(|| Relay::new(false));
        if !r.addrs.contains(&bare) {
            r.addrs.push(bare);
            r.addrs.truncate(ADDRS_PER_PEER_MAX);
        }
        self.swarm.behaviour_mut().gate.allow(peer);
    }

    /// A TCP connection to a relay leaves from the listening port only
    /// once that port is known (libp2p's port reuse); only then does the
    /// relay observe the address a hole punch must aim at. So relays are
    /// dialled once there is a routable listen address, or after one tick
    /// on a node that listens on loopback only.
    fn may_dial_relays(&self, now: Instant) -> bool {
        self.routable || now >= self.started + TICK
    }

    /// Whether to use an address a member was seen or said to be at: a
    /// relayed one only with the internet setting on.
    fn usable(&self, a: &Multiaddr) -> bool {
        dialable(a) && (self.internet || !super::is_relayed(a))
    }

    fn redial_all_now(&mut self) {
        self.redial.clear();
        self.maintain();
    }

    /// Dials members that are due, re-admits peers whose ban ran out, and
    /// opens missing sync streams.
    fn maintain(&mut self) {
        let now = Instant::now();
        let expired: Vec<PeerId> = self
            .banned
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(p, _)| *p)
            .collect();
        for p in expired {
            self.banned.remove(&p);
            if self.members.contains_key(&p) || self.dialled.contains_key(&p) {
                self.swarm.behaviour_mut().gate.allow(p);
            }
        }
        self.reserve(now);
        let targets: Vec<PeerId> = self
            .members
            .keys()
            .chain(self.dialled.keys())
            .copied()
            .collect();
        for peer in targets {
            if self.banned.contains_key(&peer) {
                continue;
            }
            if self.connected.contains(&peer) {
                self.redial.remove(&peer);
                self.open_stream(peer);
                continue;
            }
            let known = self.addrs.get(&peer).cloned().unwrap_or_default();
            if known.is_empty() && self.relays.is_empty() {
                continue;
            }
            let (due, wait) = self.redial.get(&peer).copied().unwrap_or((now, REDIAL_MIN));
            if due > now {
                continue;
            }
            // Beyond the LAN, a member may also be behind one of our
            // relays (one circuit per relay), and the DHT may know where
            // it is now. A relay must be connected before a circuit
            // through it is dialled: the relay client dials a relay once
            // per circuit otherwise, and all but one of those dials fail.
            // The relays of its relayed addresses are among `self.relays`
            // already (`through`): one circuit per relay stands for them.
            let mut addrs: Vec<Multiaddr> = known
                .into_iter()
                .filter(|a| !super::is_relayed(a))
                .collect();
            let relays: Vec<PeerId> = self.relays.keys().copied().collect();
            for relay in relays {
                let r = &self.relays[&relay];
                if self.swarm.is_connected(&relay) {
                    addrs.push(circuit(&r.addrs[0], relay));
                } else if self.may_dial_relays(now) {
                    self.dial_relay(relay, now);
                }
            }
            if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut()
                && self.members.contains_key(&peer)
            {
                kad.get_closest_peers(peer);
            }
            if !addrs.is_empty() {
                let opts = DialOpts::peer_id(peer)
                    .addresses(addrs)
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .build();
                if let Err(e) = self.swarm.dial(opts) {
                    tracing::debug!(%peer, "dial not started: {e}");
                }
            }
            self.redial
                .insert(peer, (now + wait, (wait * 2).min(REDIAL_MAX)));
        }
    }

    /// The device whose peer id sorts first (as bytes) opens the one sync
    /// stream of a pair, so two devices never race to open two.
    fn open_stream(&mut self, peer: PeerId) {
        if !self.members.contains_key(&peer) {
            return;
        }
        let opens = self.local.to_bytes() < peer.to_bytes();
        // A pairing stream that went on as a session is this pair's sync
        // stream until it ends.
        let pairing = self.pairing.values().any(|(p, _)| *p == peer);
        if !opens || pairing || self.active.contains_key(&peer) || !self.opening.insert(peer) {
            return;
        }
        self.spawn_open(peer, StreamKind::Sync);
    }

    /// Opens a stream of `kind` to `peer` in the background; it comes back
    /// as a [`Cmd::StreamReady`] (or [`Cmd::OpenFailed`]).
    fn spawn_open(&self, peer: PeerId, kind: StreamKind) {
        let protocol = match kind {
            StreamKind::Sync => SYNC_PROTOCOL,
            StreamKind::Pair => PAIR_PROTOCOL,
        };
        let mut control = self.control.clone();
        let cmd = self.cmd.clone();
        tokio::spawn(async move {
            let result = control
                .open_stream(peer, StreamProtocol::new(protocol))
                .await;
            let _ = cmd.send(match result {
                Ok(s) => Cmd::StreamReady(peer, s, kind),
                Err(e) => Cmd::OpenFailed(peer, e.to_string()),
            });
        });
    }

    fn on_swarm(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        match ev {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::debug!(%address, "listening");
                if !super::is_relayed(&address) && !super::is_loopback(&address) {
                    self.routable = true;
                }
                let address = self.without_local_id(address);
                self.emit(NetEvent::Listening { addr: address });
                // A new address often means the network changed.
                self.redial_all_now();
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                let address = self.without_local_id(address);
                self.emit(NetEvent::Unlistened { addr: address });
                self.redial_all_now();
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => {
                if let Some((peer, r)) = self
                    .relays
                    .iter_mut()
                    .find(|(_, r)| r.listener == Some(listener_id))
                {
                    // The relay went away or refused: ask again later.
                    tracing::info!(relay = %peer, ?reason, "the relay reservation ended");
                    r.listener = None;
                }
            }
            SwarmEvent::ConnectionEstablished { peer_id, .. }
                if self.relays.contains_key(&peer_id) =>
            {
                tracing::debug!(relay = %peer_id, "connected to the relay");
                if let Some(r) = self.relays.get_mut(&peer_id)
                    && r.listener.is_none()
                {
                    r.due = Instant::now();
                }
                // Members not reached directly may be behind it.
                self.redial_all_now();
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                let upgraded = self.prefer_direct(peer_id, connection_id, endpoint.is_relayed());
                // Strangers get here only while an invite is pending.
                let Some(device) = self
                    .members
                    .get(&peer_id)
                    .or(self.dialled.get(&peer_id))
                    .copied()
                    .or_else(|| super::device_of(&peer_id))
                else {
                    return;
                };
                let addr = match endpoint {
                    ConnectedPoint::Dialer { address, .. } => address,
                    // A relayed connection's far end is only the peer id:
                    // the relayed address it came in on says more.
                    ConnectedPoint::Listener { local_addr, .. } if endpoint.is_relayed() => {
                        local_addr
                    }
                    ConnectedPoint::Listener { send_back_addr, .. } => send_back_addr,
                };
                // A direct connection that replaced a relayed one is news
                // too: the owner shows how each peer is reached.
                if self.connected.insert(peer_id) || upgraded {
                    self.emit(NetEvent::Connected { peer: device, addr });
                }
                self.redial.remove(&peer_id);
                self.open_stream(peer_id);
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                ..
            } if num_established > 0 => {
                if let Some(c) = self.conns.get_mut(&peer_id) {
                    c.retain(|(id, _)| *id != connection_id);
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, .. } if self.connected.remove(&peer_id) => {
                self.conns.remove(&peer_id);
                if let Some(device) = self
                    .members
                    .get(&peer_id)
                    .or(self.dialled.get(&peer_id))
                    .copied()
                    .or_else(|| super::device_of(&peer_id))
                {
                    self.emit(NetEvent::Disconnected { peer: device });
                }
            }
            SwarmEvent::IncomingConnectionError { peer_id, error, .. } => {
                if peer_id.is_some_and(|p| !self.members.contains_key(&p))
                    || matches!(error, libp2p::swarm::ListenError::Denied { .. })
                {
                    self.emit(NetEvent::Refused { peer: peer_id });
                } else {
                    tracing::debug!("an incoming connection failed: {error}");
                }
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(?peer_id, "dial failed: {error}");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                let mut by_peer: HashMap<PeerId, Vec<Multiaddr>> = HashMap::new();
                let mut strangers: HashMap<PeerId, Vec<Multiaddr>> = HashMap::new();
                for (p, a) in found {
                    if self.members.contains_key(&p) {
                        by_peer.entry(p).or_default().push(a);
                    } else if dialable(&a) {
                        strangers.entry(p).or_default().push(a);
                    }
                }
                for (p, addrs) in by_peer {
                    self.found(p, addrs);
                }
                for (p, addrs) in strangers {
                    // Only ed25519 identities can be vellum devices.
                    if let Some(device) = super::device_of(&p) {
                        self.emit(NetEvent::Nearby {
                            peer: device,
                            addrs,
                        });
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                let member = self.members.contains_key(&peer_id);
                if (member || self.relays.contains_key(&peer_id))
                    && info.protocols.contains(&StreamProtocol::new(KAD_PROTOCOL))
                    && let Some(kad) = self.swarm.behaviour_mut().kad.as_mut()
                {
                    for a in info.listen_addrs.iter().filter(|a| dialable(a)) {
                        kad.add_address(&peer_id, a.clone());
                    }
                }
                if member {
                    self.found(peer_id, info.listen_addrs);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(ev)) => self.on_kad(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Relay(ev)) => {
                if let relay::client::Event::ReservationReqAccepted { relay_peer_id, .. } = &ev
                    && let Some(r) = self.relays.get_mut(relay_peer_id)
                {
                    r.wait = REDIAL_MIN;
                }
                tracing::debug!("relay: {ev:?}");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Dcutr(dcutr::Event {
                remote_peer_id,
                result,
            })) => match result {
                Ok(_) => {
                    tracing::info!(peer = %remote_peer_id, "hole punched: a direct connection replaces the relayed one")
                }
                Err(e) => tracing::debug!(peer = %remote_peer_id, "no hole punch: {e}"),
            },
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                peer,
                connection,
                result: Err(e),
            })) => {
                // A connection that stopped answering (the network moved
                // or broke) is dropped, so the peer is dialled afresh
                // instead of waiting out TCP's own timeout.
                tracing::debug!(%peer, "ping failed: {e}; closing the connection");
                self.swarm.close_connection(connection);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                message,
                ..
            })) => {
                let from = message.source.and_then(|s| self.members.get(&s).copied());
                if let Some(from) = from {
                    self.emit(NetEvent::Gossip {
                        from,
                        bytes: message.data,
                    });
                }
            }
            _ => {}
        }
    }

    /// What the DHT says: where members are.
    fn on_kad(&mut self, ev: kad::Event) {
        let found: Vec<kad::PeerInfo> = match ev {
            kad::Event::OutboundQueryProgressed {
                result: kad::QueryResult::GetClosestPeers(r),
                ..
            } => match r {
                Ok(ok) => ok.peers,
                Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
            },
            kad::Event::RoutingUpdated {
                peer, addresses, ..
            } => vec![kad::PeerInfo {
                peer_id: peer,
                addrs: addresses.into_vec(),
            }],
            _ => return,
        };
        for p in found {
            if self.members.contains_key(&p.peer_id) && !p.addrs.is_empty() {
                tracing::debug!(peer = %p.peer_id, addrs = p.addrs.len(), "the DHT knows where a member is");
                self.found(p.peer_id, p.addrs);
            }
        }
    }

    /// A direct connection is kept over a relayed one. True when a new
    /// direct connection comes beside relayed ones.
    fn prefer_direct(&mut self, peer: PeerId, id: ConnectionId, relayed: bool) -> bool {
        let conns = self.conns.entry(peer).or_default();
        conns.push((id, relayed));
        let upgraded = !relayed && conns.iter().any(|(_, r)| *r);
        self.close_relayed(peer);
        upgraded
    }

    /// Closes `peer`'s relayed connections once a direct one is up (their
    /// streams end; the sync stream opens again on the direct one), but
    /// not while a pairing stream runs: it cannot start over, and it may
    /// be on a relayed connection. It goes when that stream ends.
    fn close_relayed(&mut self, peer: PeerId) {
        if self.pairing.values().any(|(p, _)| *p == peer) {
            return;
        }
        let Some(conns) = self.conns.get(&peer) else {
            return;
        };
        if !conns.iter().any(|(_, r)| !r) {
            return;
        }
        let close: Vec<ConnectionId> = conns.iter().filter(|(_, r)| *r).map(|(c, _)| *c).collect();
        for c in close {
            tracing::debug!(%peer, "closing a relayed connection: a direct one is up");
            self.swarm.close_connection(c);
        }
    }

    /// A listen address as the owner sees it: without this node's own
    /// `/p2p/` suffix, which a relayed address comes with.
    fn without_local_id(&self, addr: Multiaddr) -> Multiaddr {
        if super::last_peer(&addr) == Some(self.local) {
            super::without_peer(&addr)
        } else {
            addr
        }
    }

    /// A member is reachable at `addrs`: remember them, tell the owner
    /// (it keeps an address book), and dial if not connected.
    fn found(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        let Some(device) = self.members.get(&peer).copied() else {
            return;
        };
        let addrs: Vec<Multiaddr> = addrs.into_iter().filter(|a| self.usable(a)).collect();
        if addrs.is_empty() {
            return;
        }
        for a in &addrs {
            self.through(a);
            self.learn(peer, a.clone());
        }
        self.emit(NetEvent::Discovered {
            peer: device,
            addrs,
        });
        if !self.connected.contains(&peer) {
            self.redial.remove(&peer);
            self.maintain();
        }
    }
}

/// The address of `relay`'s circuits at `addr`.
fn circuit(addr: &Multiaddr, relay: PeerId) -> Multiaddr {
    addr.clone()
        .with(Protocol::P2p(relay))
        .with(Protocol::P2pCircuit)
}

/// Whether an announced address can be dialled at all (not a wildcard).
pub(super) fn dialable(a: &Multiaddr) -> bool {
    !a.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_unspecified(),
        Protocol::Ip6(ip) => ip.is_unspecified(),
        _ => false,
    })
}

/// Moves frames between one stream and the owner until either side ends.
#[allow(clippy::too_many_arguments)]
async fn pump(
    id: u64,
    peer: PeerId,
    device: DeviceId,
    stream: libp2p::Stream,
    mut outgoing: mpsc::UnboundedReceiver<Vec<u8>>,
    queued: Arc<AtomicUsize>,
    sink: Arc<dyn Fn(NetEvent) + Send + Sync>,
    cmd: mpsc::UnboundedSender<Cmd>,
) {
    let (mut r, mut w) = stream.split();
    let writer = async {
        while let Some(msg) = outgoing.recv().await {
            let len = msg.len();
            let sent = frames::write(&mut w, &msg).await;
            queued.fetch_sub(len, Ordering::Relaxed);
            sent?;
        }
        // The owner dropped the stream: end it cleanly.
        futures::AsyncWriteExt::close(&mut w).await?;
        Ok::<_, frames::FrameError>(())
    };
    let permits = Arc::new(Semaphore::new(STREAM_FRAMES_QUEUED));
    let reader = async {
        loop {
            let permit = permits
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            match frames::read(&mut r).await? {
                Some(bytes) => sink(NetEvent::Frame {
                    peer: device,
                    stream: id,
                    bytes,
                    permit: Permit(permit),
                }),
                None => return Ok::<_, frames::FrameError>(()),
            }
        }
    };
    // Whichever side ends first ends the stream.
    let error = tokio::select! {
        r = writer => r.err(),
        r = reader => r.err(),
    };
    let _ = cmd.send(Cmd::StreamEnded(id, peer, error.map(|e| e.to_string())));
}
