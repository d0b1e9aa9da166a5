//! The simulator's command line, shared by `vellum-sim` and `vellum sim`.

use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use crate::{Outcome, Scenario};

use clap::Args;

/// Devices of one vault syncing through the real protocol core over a
/// simulated, faulty network.
#[derive(Args, Debug, Clone)]
pub struct SimArgs {
    /// Run seeds `first..first+N`.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    first: u64,
    /// Run this one seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Print one line per event (with `--seed`).
    #[arg(long)]
    trace: bool,
    /// Stop at the first failing seed (for `scripts/mutants`).
    #[arg(long)]
    until_failure: bool,
    /// Checkpoint every N ops (production: 1,024); small values make late
    /// ops rewind across checkpoints all the time.
    #[arg(long, default_value_t = crate::CHECKPOINT_OPS_DEFAULT)]
    checkpoint_ops: u64,
    /// Threads running seeds (default: one per core; `--trace` uses one).
    #[arg(long)]
    jobs: Option<usize>,
    /// Run the default scenario of DESIGN §10 alone (three replicas, 200
    /// ops, one partition, one crash), without swarm faults: what the
    /// seeds/s budget is measured on.
    #[arg(long)]
    no_swarm: bool,
    /// Print the deliberate bugs a `mutants` build can switch on, and exit.
    #[arg(long)]
    list_mutants: bool,
}

/// Prints one line to stdout. A reader that went away (`| head`) only
/// stops the printing: the run goes on and its exit code still tells.
fn say(line: std::fmt::Arguments) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// Runs one seed; a panic in the code under test fails the seed, not the
/// sweep.
fn run_seed(scenario: Scenario, seed: u64, checkpoint_ops: u64, trace: bool) -> Outcome {
    let printer: Option<crate::Printer> = if trace {
        Some(Box::new(|l: &str| say(format_args!("{l}"))))
    } else {
        None
    };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        crate::run_scenario(scenario, seed, checkpoint_ops, printer)
    }))
    .unwrap_or_else(|p| {
        let what = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        Outcome {
            seed,
            ops: 0,
            conflicts: 0,
            trace_hash: [0; 32],
            failure: Some(format!("panicked: {what}")),
        }
    })
}

/// Runs the seeds `args` names; prints the summary line (and failures
/// with their repro commands), and fails if any seed failed.
pub fn run(args: &SimArgs) -> ExitCode {
    if args.list_mutants {
        for (name, what) in vellum_journal::mutants::ALL {
            say(format_args!("{name}\t{what}"));
        }
        return ExitCode::SUCCESS;
    }
    let seeds: Vec<u64> = match args.seed {
        Some(s) => vec![s],
        None => (args.first..args.first + args.seeds).collect(),
    };
    let scenario = if args.no_swarm {
        Scenario::Default
    } else {
        Scenario::Swarm
    };
    let start = Instant::now();
    // Seeds are independent and each is deterministic, so they run on
    // several threads; a trace needs one.
    let jobs = if args.trace {
        1
    } else {
        args.jobs.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }
    .max(1);
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let outcomes: Mutex<Vec<Outcome>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(seed) = seeds.get(i).copied() else {
                        break;
                    };
                    let out = run_seed(scenario, seed, args.checkpoint_ops.max(1), args.trace);
                    if let Some(f) = &out.failure {
                        // At once, so a long sweep shows its failures as
                        // they come.
                        eprintln!("seed {seed} failed: {f}");
                        let mut every = match args.checkpoint_ops {
                            crate::CHECKPOINT_OPS_DEFAULT => String::new(),
                            n => format!(" --checkpoint-ops {n}"),
                        };
                        if args.no_swarm {
                            every.push_str(" --no-swarm");
                        }
                        eprintln!("  repro: vellum-sim --seed {seed}{every} --trace");
                        if args.until_failure {
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                    outcomes.lock().expect("outcomes").push(out);
                }
            });
        }
    });
    let mut outcomes = outcomes.into_inner().expect("outcomes");
    outcomes.sort_by_key(|o| o.seed);
    let (mut failed, mut ops, mut conflicts) = (0u64, 0u64, 0u64);
    let ran = outcomes.len() as u64;
    for out in &outcomes {
        ops += out.ops;
        conflicts += out.conflicts;
        if out.failure.is_some() {
            failed += 1;
        }
        if args.trace {
            say(format_args!("trace {}", crate::hex(&out.trace_hash)));
        }
    }
    if args.until_failure
        && let Some(first) = outcomes.iter().find(|o| o.failure.is_some())
    {
        say(format_args!("caught at seed {}", first.seed));
    }
    let secs = start.elapsed().as_secs_f64();
    say(format_args!(
        "sim: {ran} seeds, {failed} failed, {:.1} seeds/s, {ops} ops, {conflicts} conflicts",
        ran as f64 / secs.max(1e-9)
    ));
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
