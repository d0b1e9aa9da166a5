//! The `vellum` binary: the CLI over one vault, and its daemon.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use vellum_bridge::cli::{Cli, Command};
use vellum_bridge::commands::{self, Io, OpenEach};
use vellum_bridge::{daemon, error, join};

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
    if let Command::Invite { yes } = &cli.command {
        return daemon::invite_cli::run(cli.global.vault.as_deref(), *yes, cli.global.json);
    }
    if let Command::Join {
        code,
        merge,
        yes,
        name,
    } = &cli.command
    {
        return join(&cli, code, *merge, *yes, name.as_deref());
    }
    if let Command::Relay {
        listen,
        external,
        circuit_minutes,
        circuit_mib,
    } = &cli.command
    {
        return vellum_bridge::relay::run(
            listen,
            external,
            *circuit_minutes,
            *circuit_mib,
            cli.global.json,
        );
    }
    if let Command::Key { action } = &cli.command {
        return vellum_bridge::recovery::cli(action, cli.global.vault.as_deref(), cli.global.json);
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

/// What `vellum join` asks on the terminal.
struct Terminal {
    yes: bool,
}

impl join::Prompt for Terminal {
    fn confirm_sas(&mut self, sas: &str) -> bool {
        let (a, b) = sas.split_at(3.min(sas.len()));
        eprintln!("Both devices should show the digits {a} {b}.");
        if self.yes {
            return true;
        }
        eprint!("Do they match the inviting device? [y/N] ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
    }

    fn say(&mut self, line: &str) {
        eprintln!("{line}");
    }
}

fn join(cli: &Cli, code: &str, merge: bool, yes: bool, name: Option<&str>) -> anyhow::Result<u8> {
    let dest = match &cli.global.vault {
        Some(d) => d.clone(),
        None => std::env::current_dir()?,
    };
    let name = name
        .map(str::to_string)
        .unwrap_or_else(commands::default_device_name);
    let (_, report) = join::join(code, &dest, &name, merge, &mut Terminal { yes })?;
    if cli.global.json {
        vellum_bridge::cli::print_line(&serde_json::to_string(&report)?);
    } else {
        vellum_bridge::cli::print_line(&format!(
            "joined vault {} as device {}: {} files, {} ops{}\nrun `vellum serve --vault {}` to stay in sync",
            report.vault,
            &report.device[..12],
            report.files,
            report.ops,
            if report.merged > 0 {
                format!(", {} of this folder's changes merged", report.merged)
            } else {
                String::new()
            },
            dest.display()
        ));
        for name in &report.aside {
            vellum_bridge::cli::print_line(&format!(
                "this folder's own version kept beside the vault's as {name}"
            ));
        }
    }
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
