//! The simulator runs the real journal and protocol core: a few seeds pass,
//! every regression seed passes, and a seed always gives the same trace.

use vellum_simulations::{CHECKPOINT_OPS_DEFAULT, Outcome, Scenario, run, run_scenario, run_with};

/// Each regression seed, and whether it also runs with checkpoints every
/// 32 ops (`--checkpoint-ops 32` on its line).
fn regression_seeds() -> Vec<(u64, bool)> {
    include_str!("../regressions.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let seed = l
                .split_whitespace()
                .next()
                .and_then(|s| s.parse().ok())
                .expect("a seed first");
            (seed, l.contains("--checkpoint-ops 32"))
        })
        .collect()
}

#[test]
fn regression_seeds_pass() {
    let seeds = regression_seeds();
    assert!(!seeds.is_empty());
    for (seed, small_checkpoints) in seeds {
        let out = run(seed, None);
        assert!(out.failure.is_none(), "seed {seed}: {:?}", out.failure);
        if small_checkpoints {
            let out = run_with(seed, 32, None);
            assert!(
                out.failure.is_none(),
                "seed {seed} (checkpoints every 32 ops): {:?}",
                out.failure
            );
        }
    }
}

#[test]
fn fresh_seeds_pass() {
    for seed in 1000..1004 {
        let out = run(seed, None);
        assert!(out.failure.is_none(), "seed {seed}: {:?}", out.failure);
        assert!(out.ops >= 200, "seed {seed}: {} ops", out.ops);
    }
}

/// One run of `scenario` from `seed`, with its trace lines.
fn traced(scenario: Scenario, seed: u64) -> (Outcome, Vec<String>) {
    let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let sink = log.clone();
    let out = run_scenario(
        scenario,
        seed,
        CHECKPOINT_OPS_DEFAULT,
        Some(Box::new(move |l: &str| {
            sink.borrow_mut().push(l.to_string())
        })),
    );
    let lines = log.borrow().clone();
    (out, lines)
}

#[test]
fn a_seed_gives_the_same_trace_twice() {
    let lines = |seed| {
        let (out, lines) = traced(Scenario::Swarm, seed);
        (out.trace_hash, lines)
    };
    let (a, la) = lines(7);
    let (b, lb) = lines(7);
    assert_eq!(la, lb);
    assert_eq!(a, b);
    assert!(la.len() > 200, "a trace has a line per event");
    let (c, _) = lines(8);
    assert_ne!(a, c, "another seed, another run");
}

/// The default scenario of DESIGN §10 alone, as `--no-swarm` runs it and
/// the seeds/s budget measures it: three replicas, at least 200 ops of
/// every kind, one partition, one crash, and no swarm fault.
#[test]
fn the_default_scenario_has_what_design_names_and_nothing_else() {
    for seed in 0..3 {
        let (out, lines) = traced(Scenario::Default, seed);
        assert!(out.failure.is_none(), "seed {seed}: {:?}", out.failure);
        assert!(out.ops >= 200, "seed {seed}: {} ops", out.ops);
        assert!(lines[0].contains("3 replicas"), "{}", lines[0]);
        let count = |what: &str| lines.iter().filter(|l| l.contains(what)).count();
        assert_eq!(count(" partition "), 1, "seed {seed}: one partition");
        assert_eq!(count("crashes and restarts"), 1, "seed {seed}: one crash");
        for kind in ["create", "edit", "rename", "delete", "replace"] {
            assert!(
                count(&format!("writes {kind} ")) > 0,
                "seed {seed}: no {kind}"
            );
        }
        for swarm in [
            "tampered",
            "restored from its backup",
            "add ",
            "remove",
            "rotate",
            "breaks",
        ] {
            assert_eq!(count(swarm), 0, "seed {seed}: {swarm} is a swarm fault");
        }
    }
}
