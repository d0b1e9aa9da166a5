//! A relay for devices that cannot reach each other directly (`vellum
//! relay`, run on a host both can reach, such as a small VPS).
//!
//! It serves circuit relay v2 (devices hold a reservation on it and are
//! dialled through it), DCUtR's signalling rides on those circuits, and it
//! is a Kademlia server on [`KAD_PROTOCOL`] where devices look up each
//! other's current addresses. It holds no vault and no key but its own
//! identity: a circuit carries Noise-encrypted bytes between two devices,
//! and what they exchange inside is sealed and signed by the vault.

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, identify, kad, noise, ping, relay, tcp, yamux,
};

use super::{IDENTIFY_PROTOCOL, KAD_PROTOCOL, NetError};

/// How a relay runs.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// Addresses to listen on; empty: every interface, TCP and QUIC,
    /// on port 4101.
    pub listen: Vec<Multiaddr>,
    /// The addresses devices reach this relay at, when they are not its
    /// interfaces' (behind a port forward, say). Empty: the addresses it
    /// listens on.
    pub external: Vec<Multiaddr>,
    /// How long one relayed connection may last before it is cut (the
    /// devices then connect again).
    pub circuit_duration: Duration,
    /// How many bytes one relayed connection may carry each way.
    pub circuit_bytes: u64,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            listen: Vec::new(),
            external: Vec::new(),
            // libp2p's defaults (2 min, 128 KiB) suit a public relay that
            // only helps a hole punch; this one carries a vault's sync when
            // no punch succeeds, so its limits fit an initial sync.
            circuit_duration: Duration::from_secs(60 * 60),
            circuit_bytes: 1 << 30,
        }
    }
}

/// The port a relay listens on by default: a fixed one, since devices are
/// configured with its address.
pub const RELAY_PORT: u16 = 4101;

/// What a running relay tells its owner.
#[derive(Debug)]
pub enum RelayEvent {
    /// Devices can use this relay at `addr` (it ends in `/p2p/<peer id>`).
    Address(Multiaddr),
    /// A device took (or renewed) a reservation.
    Reserved { peer: PeerId },
    /// A relayed connection opened between two peers.
    Circuit { from: PeerId, to: PeerId },
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    relay: relay::Behaviour,
    kad: kad::Behaviour<kad::store::MemoryStore>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
}

/// Binds a relay's listeners under the identity `seed`; run it with
/// [`Relay::run`]. A port in use is an error here.
pub struct Relay {
    swarm: Swarm<Behaviour>,
    announce_listens: bool,
    /// Listeners on every interface: their loopback addresses are no use
    /// to devices elsewhere, so they are not announced.
    wildcard: HashSet<ListenerId>,
}

impl Relay {
    pub fn start(cfg: RelayConfig, seed: [u8; 32]) -> Result<Relay, NetError> {
        let key = libp2p::identity::Keypair::ed25519_from_bytes(seed)
            .map_err(|e| NetError::Setup(e.to_string()))?;
        let relay_cfg = relay::Config {
            max_circuit_duration: cfg.circuit_duration,
            max_circuit_bytes: cfg.circuit_bytes,
            ..relay::Config::default()
        };
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| NetError::Setup(e.to_string()))?
            .with_quic()
            .with_behaviour(|key| {
                let local = key.public().to_peer_id();
                Behaviour {
                    relay: relay::Behaviour::new(local, relay_cfg),
                    kad: super::node::kademlia(local),
                    identify: identify::Behaviour::new(
                        identify::Config::new(IDENTIFY_PROTOCOL.into(), key.public())
                            .with_agent_version(format!(
                                "vellum-relay/{}",
                                env!("CARGO_PKG_VERSION")
                            )),
                    ),
                    ping: ping::Behaviour::default(),
                }
            })
            .map_err(|e| NetError::Setup(e.to_string()))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build();
        // It serves whatever its addresses: no waiting for them to be
        // confirmed from outside.
        swarm
            .behaviour_mut()
            .relay
            .set_status(Some(relay::Status::Enable));
        let wildcard: HashSet<ListenerId> = super::listen(&mut swarm, &cfg.listen, RELAY_PORT)?
            .into_iter()
            .filter(|(_, addr)| !super::node::dialable(addr))
            .map(|(id, _)| id)
            .collect();
        for a in &cfg.external {
            swarm.add_external_address(a.clone());
        }
        Ok(Relay {
            swarm,
            announce_listens: cfg.external.is_empty(),
            wildcard,
        })
    }

    pub fn local_peer_id(&self) -> PeerId {
        *self.swarm.local_peer_id()
    }

    /// Serves until the future is dropped.
    pub async fn run(mut self, sink: impl Fn(RelayEvent)) {
        let local = self.local_peer_id();
        let with_id = |a: &Multiaddr| a.clone().with(Protocol::P2p(local));
        for a in self.swarm.external_addresses() {
            sink(RelayEvent::Address(with_id(a)));
        }
        loop {
            match self.swarm.select_next_some().await {
                // A reservation names the relay's external addresses; with
                // none given, every address it listens on is one.
                SwarmEvent::NewListenAddr {
                    listener_id,
                    address,
                } if self.announce_listens
                    && !(self.wildcard.contains(&listener_id) && super::is_loopback(&address)) =>
                {
                    self.swarm.add_external_address(address.clone());
                    sink(RelayEvent::Address(with_id(&address)));
                }
                SwarmEvent::ExpiredListenAddr { address, .. } if self.announce_listens => {
                    self.swarm.remove_external_address(&address);
                }
                // Devices are found by what they say they listen on (their
                // relayed addresses included), not by the port they happened
                // to connect from.
                SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                    peer_id,
                    info,
                    ..
                })) if info.protocols.contains(&StreamProtocol::new(KAD_PROTOCOL)) => {
                    for a in info.listen_addrs.into_iter().filter(super::node::dialable) {
                        self.swarm.behaviour_mut().kad.add_address(&peer_id, a);
                    }
                }
                SwarmEvent::Behaviour(BehaviourEvent::Relay(ev)) => match ev {
                    relay::Event::ReservationReqAccepted { src_peer_id, .. } => {
                        sink(RelayEvent::Reserved { peer: src_peer_id });
                    }
                    relay::Event::CircuitReqAccepted {
                        src_peer_id,
                        dst_peer_id,
                    } => sink(RelayEvent::Circuit {
                        from: src_peer_id,
                        to: dst_peer_id,
                    }),
                    other => tracing::debug!("relay: {other:?}"),
                },
                _ => {}
            }
        }
    }
}
