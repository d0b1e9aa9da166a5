//! The `vellum` binary: the CLI over one vault, and its daemon.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use vellum_bridge::cli::{Cli, Command};
use vellum_bridge::commands::{self, Io, OpenEach};
use vellum_bridge::{daemon, error};

/// Stdout for command output: a closed pipe (`vellum log | head`) ends the
/// output quietly instead of failing the command.
struct Stdout(std::io::Stdout, bool);

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.1 {
            return Ok(buf.len());
        }
        match self.0.write(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.1 = true;
                Ok(buf.len())
            }
            r => r,
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.0.flush() {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            r => r,
        }
    }
}

/// Runs the command: through the vault's daemon when one holds it, else
/// here. Returns the exit code.
fn run(cli: Cli) -> anyhow::Result<u8> {
    if let Command::Serve {
        stdio,
        debounce_ms,
        net,
    } = &cli.command
    {
        daemon::serve(cli.global.vault.as_deref(), *stdio, *debounce_ms, net)?;
        return Ok(0);
    }
    if let Some(code) = daemon::client::forward(&cli)? {
        return Ok(code);
    }
    let mut out = Stdout(std::io::stdout(), false);
    let mut err = std::io::stderr();
    commands::run(
        cli,
        &mut OpenEach,
        &mut Io {
            out: &mut out,
            err: &mut err,
        },
    )?;
    Ok(0)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The simulator is a tool of its own: no vault, and its seeds catch
    // their own panics.
    if let Command::Sim(args) = &cli.command {
        return vellum_simulations::cli::run(args);
    }
    // A command says only what went wrong; the daemon sets up its own log.
    if !matches!(cli.command, Command::Serve { .. }) {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("VELLUM_LOG")
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
            )
            .with_target(false)
            .without_time()
            .init();
    }
    std::panic::set_hook(Box::new(|info| {
        if vellum_journal::replay::in_guarded_section() {
            return;
        }
        let msg = info.to_string().replace('\n', " ");
        eprintln!("vellum: internal error (a bug; please report it): {msg}");
    }));
    match std::panic::catch_unwind(|| run(cli)) {
        Ok(Ok(code)) => ExitCode::from(code),
        Ok(Err(e)) => {
            eprintln!("vellum: {}", error::one_line(&e));
            ExitCode::from(error::exit_code(&e) as u8)
        }
        Err(_) => ExitCode::from(2),
    }
}
