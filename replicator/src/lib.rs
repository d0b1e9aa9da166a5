//! vellum-replicator: the sync protocol of DESIGN §6.
//!
//! - [`wire`]: the messages and their byte layout (docs/PROTOCOL.md §10).
//! - [`session`]: one peer session as a sans-IO state machine: no IO, no
//!   clock and no randomness of its own. The simulator drives it in
//!   simulated time; the libp2p driver over real streams.
//! - [`claims`]: what one device's sessions are fetching, so that two do
//!   not fetch the same from two peers.
//! - [`pair`]: invite codes and the pairing exchange's messages and proofs.
//! - [`net`] (feature `net`): the libp2p driver.

pub mod claims;
#[cfg(feature = "net")]
pub mod net;
pub mod pair;
pub mod session;
pub mod wire;

pub use claims::Claims;
pub use session::{Event, Session};
pub use wire::{Message, Range, WireError};
