//! `vellum relay`: a relay for devices that cannot reach each other
//! directly (`vellum_replicator::net::relay`). It runs until SIGINT or
//! SIGTERM; stdout gets its addresses first, then one line per reservation
//! and relayed connection (peer ids only: it knows nothing else).

use std::time::Duration;

use anyhow::{Context, Result};
use vellum_journal::entropy::OsEntropy;
use vellum_replicator::net::relay::{Relay, RelayConfig, RelayEvent};

use crate::cli::print_line;
use crate::error::user;
use crate::settings;

pub fn run(
    listen: &[String],
    external: &[String],
    circuit_minutes: u64,
    circuit_mib: u64,
    json: bool,
) -> Result<u8> {
    let addrs = |list: &[String]| {
        list.iter()
            .map(|a| settings::listen_addr(a).map_err(user))
            .collect::<Result<Vec<_>>>()
    };
    if circuit_minutes == 0 || circuit_mib == 0 {
        return Err(user(
            "--circuit-minutes and --circuit-mib must be at least 1",
        ));
    }
    let cfg = RelayConfig {
        listen: addrs(listen)?,
        external: addrs(external)?,
        circuit_duration: Duration::from_secs(circuit_minutes.saturating_mul(60)),
        circuit_bytes: circuit_mib.saturating_mul(1 << 20),
    };
    let seed = crate::home::relay_seed(&mut OsEntropy)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the relay's runtime")?;
    runtime.block_on(async move {
        let relay = Relay::start(cfg, seed).map_err(|e| {
            user(format!(
                "{e}; pick another with --listen, e.g. /ip4/0.0.0.0/tcp/4102"
            ))
        })?;
        let line = move |ev: RelayEvent| {
            let (kind, text) = match &ev {
                RelayEvent::Address(a) => ("address", a.to_string()),
                RelayEvent::Reserved { peer } => ("reserved", peer.to_string()),
                RelayEvent::Circuit { from, to } => ("circuit", format!("{from} -> {to}")),
            };
            if json {
                print_line(&serde_json::json!({ "event": kind, "value": text }).to_string());
            } else {
                print_line(&format!("{kind} {text}"));
            }
        };
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("watching for SIGTERM")?;
        tokio::select! {
            () = relay.run(line) => {}
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        Ok::<_, anyhow::Error>(())
    })?;
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(0)
}
