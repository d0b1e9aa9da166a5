//! Deliberate bugs, so the simulator can show it catches them (issue 5).
//!
//! They exist only in builds with the `mutants` feature, and one is chosen
//! at run time with `VELLUM_MUTANT=<name>`; `scripts/mutants` runs each.
//! Without the feature, [`active`] is a constant `false` and every mutant
//! compiles away.

/// Every mutant, with the bug it plants.
pub const ALL: &[(&str, &str)] = &[
    ("skip_prev_check", "admit an op whose prev is missing"),
    ("apply_before_deps", "admit an op whose deps are missing"),
    (
        "skip_signature",
        "admit an op without checking its signature",
    ),
    (
        "reject_forks",
        "refuse a fork instead of keeping both branches",
    ),
    (
        "base_from_cache",
        "take a base from the content cache by hash without checking it",
    ),
    (
        "removal_local_view",
        "check an author's removal against the local view, not the op's causal past",
    ),
    (
        "seal_to_removed",
        "seal a new epoch key to every member ever added, removed ones too",
    ),
    (
        "relay_keeps_told_chunks_unowed",
        "a device that cannot read an op records the chunk ids a peer tells but never fetches them",
    ),
];

/// Whether mutant `name` is switched on.
#[cfg(feature = "mutants")]
pub fn active(name: &str) -> bool {
    static CHOSEN: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    CHOSEN
        .get_or_init(|| std::env::var("VELLUM_MUTANT").ok())
        .as_deref()
        == Some(name)
}

/// Whether mutant `name` is switched on: never, in this build.
#[cfg(not(feature = "mutants"))]
#[inline(always)]
pub fn active(_name: &str) -> bool {
    false
}
