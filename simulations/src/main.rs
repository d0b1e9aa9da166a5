//! `vellum-sim`: runs simulation seeds (see the library docs; `vellum sim`
//! is the same).

use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "vellum-sim")]
struct Cli {
    #[command(flatten)]
    args: vellum_simulations::cli::SimArgs,
}

fn main() -> ExitCode {
    vellum_simulations::cli::run(&Cli::parse().args)
}
