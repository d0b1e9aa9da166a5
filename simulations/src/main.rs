//! `vellum-sim`: runs simulation seeds (see the library docs).

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;

/// Devices of one vault syncing through the real protocol core over a
/// simulated, faulty network.
#[derive(Parser)]
#[command(name = "vellum-sim")]
struct Args {
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
    #[arg(long, default_value_t = vellum_simulations::CHECKPOINT_OPS_DEFAULT)]
    checkpoint_ops: u64,
    /// Print the deliberate bugs a `mutants` build can switch on, and exit.
    #[arg(long)]
    list_mutants: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.list_mutants {
        for (name, what) in vellum_journal::mutants::ALL {
            println!("{name}\t{what}");
        }
        return ExitCode::SUCCESS;
    }
    let seeds: Vec<u64> = match args.seed {
        Some(s) => vec![s],
        None => (args.first..args.first + args.seeds).collect(),
    };
    let start = Instant::now();
    let (mut failed, mut ops, mut conflicts, mut ran) = (0u64, 0u64, 0u64, 0u64);
    for seed in &seeds {
        ran += 1;
        let printer: Option<vellum_simulations::Printer> = if args.trace {
            Some(Box::new(|l: &str| println!("{l}")))
        } else {
            None
        };
        // A panic in the code under test fails the seed, not the sweep.
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            vellum_simulations::run_with(*seed, args.checkpoint_ops.max(1), printer)
        }))
        .unwrap_or_else(|p| {
            let what = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            vellum_simulations::Outcome {
                seed: *seed,
                ops: 0,
                conflicts: 0,
                trace_hash: [0; 32],
                failure: Some(format!("panicked: {what}")),
            }
        });
        ops += out.ops;
        conflicts += out.conflicts;
        if let Some(f) = &out.failure {
            failed += 1;
            eprintln!("seed {seed} failed: {f}");
            eprintln!("  repro: vellum-sim --seed {seed} --trace");
            if args.until_failure {
                println!("caught at seed {seed}");
                break;
            }
        }
        if args.trace {
            println!("trace {}", vellum_simulations::hex(&out.trace_hash));
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "sim: {ran} seeds, {failed} failed, {:.1} seeds/s, {ops} ops, {conflicts} conflicts",
        ran as f64 / secs.max(1e-9)
    );
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
