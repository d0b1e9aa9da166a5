//! vellum-snapshots: the time machine.
//!
//! - [`machine`]: keeps the replayed head state in the store and catches
//!   it up as ops are admitted, rewinding to a checkpoint when a late op
//!   sorts before applied ones; computes the state at any point.
//! - [`checkpoint`]: full states every N ops, the validity rule of §5.
//! - [`contents`]: the content cache, with recompute by per-file replay
//!   when it misses.

pub mod checkpoint;
pub mod contents;
pub mod machine;

pub use machine::{CatchUp, Head, TimeMachine};
