//! vellum-journal: the signed, encrypted, append-only op journal.
//!
//! - [`envelope`]: the op's byte layout, signature and encryption.
//! - [`journal`]: admission and local appends over a [`store::Store`].
//! - [`replay`]: the pure replay step.
//! - [`blob`]: binary files as encrypted, deduplicated chunks.
//! - [`point`]: parsing and resolving history points.
//!
//! This crate does no network IO and reads no clock: time and randomness
//! are arguments ([`entropy::Entropy`], `now_ms`). The one exception is a
//! diff timeout a caller gives [`replay::make_patch_within`], which bounds
//! an author's work and never touches replay.

pub mod blob;
pub mod control;
pub mod entropy;
pub mod envelope;
pub mod error;
pub mod forks;
pub mod hlc;
pub mod id;
pub mod journal;
pub mod keyfile;
pub mod keys;
pub mod limits;
pub mod membership;
pub mod merge;
pub mod mutants;
pub mod order;
pub mod patch;
pub mod path;
pub mod payload;
pub mod point;
pub mod replay;
pub mod store;
pub mod vv;

pub use error::{Error, Result};
pub use forks::Disputes;
pub use id::{ContentHash, DeviceId, FileId, OpId, VaultId};
pub use journal::{Admission, Journal, OpMeta, Write};
pub use order::OrderKey;
pub use vv::VersionVector;
