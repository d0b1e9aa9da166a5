//! Who may hold a connection with this node (DESIGN §7, gating): the
//! members, devices dialled on purpose, and, only while an invite is
//! pending, anyone (the joiner's id is not known before it proves the
//! invite's secret; until then it is offered nothing but the pairing
//! protocol). Checked right after the handshake, which authenticates the
//! peer id, before any protocol runs.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::task::{Context, Poll, Waker};

use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::swarm::{
    CloseConnection, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm, dummy,
};
use libp2p::{Multiaddr, PeerId};

/// The error a refused peer's connection carries.
#[derive(Debug, thiserror::Error)]
#[error("not a member of this vault")]
pub struct NotAMember;

#[derive(Default)]
pub struct Gate {
    allowed: HashSet<PeerId>,
    /// An invite is pending: strangers may connect (to pair, nothing else).
    open: bool,
    close: VecDeque<PeerId>,
    waker: Option<Waker>,
}

impl Gate {
    pub fn allow(&mut self, peer: PeerId) {
        self.allowed.insert(peer);
    }

    /// Refuses `peer` from now on and closes its connections.
    pub fn deny(&mut self, peer: PeerId) {
        self.allowed.remove(&peer);
        self.close.push_back(peer);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    pub fn is_allowed(&self, peer: &PeerId) -> bool {
        self.allowed.contains(peer)
    }

    /// Lets strangers connect (an invite is pending), or stops doing so.
    pub fn set_open(&mut self, open: bool) {
        self.open = open;
    }

    fn enforce(&self, peer: &PeerId) -> Result<(), ConnectionDenied> {
        if self.open || self.allowed.contains(peer) {
            Ok(())
        } else {
            Err(ConnectionDenied::new(NotAMember))
        }
    }
}

impl NetworkBehaviour for Gate {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.enforce(&peer)?;
        Ok(dummy::ConnectionHandler)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: Option<PeerId>,
        _: &[Multiaddr],
        _: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        if let Some(peer) = peer
            && !self.allowed.contains(&peer)
        {
            return Err(ConnectionDenied::new(NotAMember));
        }
        Ok(vec![])
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        // Dialled only by id, so only allowed peers get here.
        if self.allowed.contains(&peer) {
            Ok(dummy::ConnectionHandler)
        } else {
            Err(ConnectionDenied::new(NotAMember))
        }
    }

    fn on_swarm_event(&mut self, _: FromSwarm) {}

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Infallible, THandlerInEvent<Self>>> {
        if let Some(peer) = self.close.pop_front() {
            return Poll::Ready(ToSwarm::CloseConnection {
                peer_id: peer,
                connection: CloseConnection::All,
            });
        }
        self.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}
