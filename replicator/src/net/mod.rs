//! The libp2p driver (DESIGN §7): a swarm on the caller's tokio runtime
//! that carries [`crate::Session`] messages between members.
//!
//! The driver moves bytes; it never touches the journal. Sessions live
//! with the journal's single writer (the daemon's vault thread), which
//! gets every [`NetEvent`] through a sink and answers through [`Handle`].
//! That keeps the protocol core sans-IO and the swarm free of storage.
//!
//! - The device key is the libp2p identity: a device's [`DeviceId`] is
//!   its ed25519 public key, so its [`PeerId`] follows from it.
//! - TCP (Noise, Yamux) and QUIC, on OS-assigned ports unless told
//!   otherwise; mDNS (libp2p's, with a random instance name) when asked.
//! - Connections are gated to the member set the caller passes
//!   ([`Handle::set_members`]): libp2p's allow list refuses anyone else
//!   right after the handshake, before any protocol runs.
//! - One `/vellum/sync/1` stream per member, opened by the device whose id
//!   sorts first; messages are framed by [`frames`].
//! - A per-vault gossipsub topic carries Have announcements for members
//!   not directly connected.
//! - Known members are dialled again with a backoff, and at once when the
//!   host's addresses change or it resumes from sleep.
//! - Beyond the LAN, only when asked ([`Config::internet`]): a reservation
//!   on each configured relay (circuit relay v2), so members behind NAT can
//!   reach this device through it; DCUtR, which replaces a relayed
//!   connection by a direct one where the NATs allow a hole punch; and a
//!   Kademlia DHT (`/vellum/kad/1`, bootstrapped from the relays) that finds
//!   members' current addresses. The relay sees only Noise-encrypted bytes;
//!   what crosses it is sealed and signed like everything else.

pub mod frames;
mod gate;
mod node;
pub mod relay;

pub use libp2p::multiaddr::Protocol;
pub use libp2p::{Multiaddr, PeerId};
pub use node::{Handle, Permit, SendError, start};

use vellum_journal::{DeviceId, VaultId};

/// The protocol name of the sync stream.
pub const SYNC_PROTOCOL: &str = "/vellum/sync/1";
/// The protocol name of the pairing stream (an invite's joiner opens it).
pub const PAIR_PROTOCOL: &str = "/vellum/pair/1";
/// What identify announces as the protocol version.
pub const IDENTIFY_PROTOCOL: &str = "/vellum/id/1";
/// The Kademlia protocol: Vellum's own DHT, not IPFS's.
pub const KAD_PROTOCOL: &str = "/vellum/kad/1";

/// How the node runs.
#[derive(Clone, Debug)]
pub struct Config {
    pub vault: VaultId,
    /// Addresses to listen on; empty means every interface, IPv4 and
    /// IPv6, TCP and QUIC, on ports the OS picks.
    pub listen: Vec<Multiaddr>,
    /// Discover members on the LAN by mDNS (real multicast).
    pub mdns: bool,
    /// Reach members beyond the LAN; `None` (the default) keeps to
    /// direct connections.
    pub internet: Option<Internet>,
}

/// How a node reaches members beyond the LAN.
#[derive(Clone, Debug, Default)]
pub struct Internet {
    /// Relays to hold a reservation on and to bootstrap the DHT from, each
    /// ending in `/p2p/<peer id>` (`vellum relay` prints them).
    pub relays: Vec<Multiaddr>,
}

/// What the node tells its owner.
#[derive(Debug)]
pub enum NetEvent {
    /// A listener is up at `addr` (the real port, for port 0).
    Listening { addr: Multiaddr },
    /// A listen address went away (an interface went down).
    Unlistened { addr: Multiaddr },
    /// The first connection to a device is up: a member, one dialled on
    /// purpose, or (while an invite is pending) a stranger.
    Connected { peer: DeviceId, addr: Multiaddr },
    /// The last connection to a device closed.
    Disconnected { peer: DeviceId },
    /// Somebody who is not a member tried to connect, and was refused.
    Refused { peer: Option<PeerId> },
    /// A stream with `peer` opened. On a sync stream, start a session; a
    /// newer one with the same peer replaces an older one. A pairing
    /// stream comes from a joiner (while an invite is pending) or goes to
    /// an inviter ([`Handle::open_pair`]).
    Opened {
        peer: DeviceId,
        stream: u64,
        kind: StreamKind,
    },
    /// One message on a sync stream. The stream reads no further while
    /// [`node::STREAM_FRAMES_QUEUED`] of its frames are alive: drop the
    /// permit once the message is handled.
    Frame {
        peer: DeviceId,
        stream: u64,
        bytes: Vec<u8>,
        permit: Permit,
    },
    /// A sync stream ended; `error` says why, when it was not a clean end.
    Closed {
        peer: DeviceId,
        stream: u64,
        error: Option<String>,
    },
    /// Addresses where a member can be reached (mDNS, or what it told us).
    Discovered {
        peer: DeviceId,
        addrs: Vec<Multiaddr>,
    },
    /// A device that is not a member answered mDNS on the LAN (any libp2p
    /// node does): a joiner with a short code asks such devices whether
    /// they invite. Nobody is dialled for it.
    Nearby {
        peer: DeviceId,
        addrs: Vec<Multiaddr>,
    },
    /// A Have a member announced on the vault's gossip topic.
    Gossip { from: DeviceId, bytes: Vec<u8> },
}

/// What a stream carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamKind {
    /// Session messages between members (`/vellum/sync/1`).
    Sync,
    /// The pairing exchange (`/vellum/pair/1`), which may go on as a
    /// session once the joiner is a member.
    Pair,
}

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("cannot listen on {addr}: {error}")]
    Listen { addr: Multiaddr, error: String },
    #[error("cannot start the network: {0}")]
    Setup(String),
}

/// The libp2p peer id of a device.
pub fn peer_id(device: &DeviceId) -> Option<PeerId> {
    let pk = libp2p::identity::ed25519::PublicKey::try_from_bytes(&device.0).ok()?;
    Some(libp2p::identity::PublicKey::from(pk).to_peer_id())
}

/// Listens on `asked`, or, when that is empty, on every interface, IPv4
/// and IPv6, TCP and QUIC, at `port` (0: ports the OS picks). IPv6 may be
/// off on this host, so the defaults' IPv6 listeners are best effort; any
/// other failure is an error. Returns the listeners opened.
fn listen<B: libp2p::swarm::NetworkBehaviour>(
    swarm: &mut libp2p::Swarm<B>,
    asked: &[Multiaddr],
    port: u16,
) -> Result<Vec<(libp2p::core::transport::ListenerId, Multiaddr)>, NetError> {
    let addrs: Vec<Multiaddr> = if asked.is_empty() {
        [
            format!("/ip4/0.0.0.0/tcp/{port}"),
            format!("/ip4/0.0.0.0/udp/{port}/quic-v1"),
            format!("/ip6/::/tcp/{port}"),
            format!("/ip6/::/udp/{port}/quic-v1"),
        ]
        .iter()
        .map(|a| a.parse().expect("a valid multiaddr"))
        .collect()
    } else {
        asked.to_vec()
    };
    let mut opened = Vec::new();
    for addr in addrs {
        match swarm.listen_on(addr.clone()) {
            Ok(id) => opened.push((id, addr)),
            Err(e) if asked.is_empty() && matches!(addr.iter().next(), Some(Protocol::Ip6(_))) => {
                tracing::debug!(%addr, "not listening: {e}");
            }
            Err(e) => {
                return Err(NetError::Listen {
                    addr,
                    error: e.to_string(),
                });
            }
        }
    }
    if opened.is_empty() {
        return Err(NetError::Setup(
            "no address to listen on could be opened".into(),
        ));
    }
    Ok(opened)
}

/// Whether `addr` goes through a relay (`/p2p-circuit`).
pub fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::P2pCircuit))
}

/// Whether `addr` is on a loopback interface.
pub fn is_loopback(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_loopback(),
        Protocol::Ip6(ip) => ip.is_loopback(),
        _ => false,
    })
}

/// The peer id an address ends in (`/p2p/<peer id>`), if it does.
pub fn last_peer(addr: &Multiaddr) -> Option<PeerId> {
    match addr.iter().last()? {
        Protocol::P2p(p) => Some(p),
        _ => None,
    }
}

/// `addr` without the `/p2p/<peer id>` it ends in, if it does (a relayed
/// address keeps its relay's).
pub fn without_peer(addr: &Multiaddr) -> Multiaddr {
    let mut addr = addr.clone();
    if last_peer(&addr).is_some() {
        addr.pop();
    }
    addr
}

/// The relay a relayed address goes through: the part before
/// `/p2p-circuit`, when that names the relay's peer id.
pub fn relay_of(addr: &Multiaddr) -> Option<Multiaddr> {
    let relay: Multiaddr = addr
        .iter()
        .take_while(|p| !matches!(p, Protocol::P2pCircuit))
        .collect();
    (is_relayed(addr) && last_peer(&relay).is_some()).then_some(relay)
}

/// The device a peer id names, for an ed25519 peer id (the key is inlined
/// in it); `None` for any other kind.
pub fn device_of(peer: &PeerId) -> Option<DeviceId> {
    let mh = peer.as_ref();
    // 0x00: the identity multihash, which holds the key itself.
    if mh.code() != 0x00 {
        return None;
    }
    let pk = libp2p::identity::PublicKey::try_decode_protobuf(mh.digest()).ok()?;
    let ed = pk.try_into_ed25519().ok()?;
    Some(DeviceId(ed.to_bytes()))
}

/// The gossipsub topic a vault's Have announcements go to.
pub fn have_topic(vault: &VaultId) -> String {
    format!("/vellum/have/1/{}", vault.to_hex())
}
