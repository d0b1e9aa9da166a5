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
}

fn main() -> ExitCode {
    let args = Args::parse();
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
        let out = vellum_simulations::run(*seed, printer);
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
