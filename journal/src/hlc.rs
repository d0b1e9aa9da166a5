//! Hybrid logical clock values: wall milliseconds in the high 48 bits, a
//! logical counter in the low 16.

pub const LOGICAL_BITS: u32 = 16;

/// The hlc of a new op: `max(wall_ms << 16, 1 + max causal hlc)`.
pub fn next(wall_ms: u64, max_causal_hlc: u64) -> u64 {
    (wall_ms << LOGICAL_BITS).max(max_causal_hlc.saturating_add(1))
}

pub fn wall_ms(hlc: u64) -> u64 {
    hlc >> LOGICAL_BITS
}

/// The largest hlc at or before wall time `ms`, for time points.
pub fn ceiling_of_ms(ms: u64) -> u64 {
    (ms << LOGICAL_BITS) | ((1 << LOGICAL_BITS) - 1)
}
