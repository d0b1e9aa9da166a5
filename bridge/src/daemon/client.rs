//! The CLI's side of the daemon: while `vellum serve` holds a vault, every
//! other command on it is sent to the daemon's socket as a `cli` request,
//! and prints and exits with exactly what the daemon ran.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use data_encoding::BASE64;
use vellum_journal::path::VELLUM_DIR;

use super::SOCKET;
use super::rpc::{CliParams, CliResult, Response};
use crate::cli::{Cli, Command};
use crate::vault;

/// The vault a command works on, if it works on one.
fn vault_of(cli: &Cli) -> Option<PathBuf> {
    match &cli.command {
        // These need no lock: they run here even while a daemon serves.
        Command::Init { .. }
        | Command::Sim(_)
        | Command::Serve { .. }
        | Command::Invite { .. }
        | Command::Join { .. }
        | Command::Service { .. } => None,
        Command::Clone { src, .. } => vault::find_root(Some(src)).ok(),
        _ => vault::find_root(cli.global.vault.as_deref()).ok(),
    }
}

/// Runs the command through the vault's daemon if one is serving it: its
/// exit code, or `None` when no daemon answers (the command runs here).
pub fn forward(cli: &Cli) -> Result<Option<u8>> {
    let Some(root) = vault_of(cli) else {
        return Ok(None);
    };
    let socket = root.join(VELLUM_DIR).join(SOCKET);
    let Some(stream) = connect(&root, &socket) else {
        return Ok(None);
    };
    let mut argv = Vec::new();
    for a in std::env::args_os().skip(1) {
        argv.push(
            a.into_string()
                .map_err(|a| anyhow!("an argument is not UTF-8: {}", a.to_string_lossy()))?,
        );
    }
    if cli.global.vault.is_none() {
        // The daemon runs elsewhere: name the vault this directory is in.
        argv.push("--vault".into());
        argv.push(root.to_string_lossy().into_owned());
    }
    let params = CliParams {
        argv,
        cwd: std::env::current_dir().context("reading the current directory")?,
        stream: Some(true),
    };
    let mut o = std::io::stdout().lock();
    // A reader that went away (`vellum show big.bin | head`) is no error.
    let mut piped = |bytes: &[u8]| -> Result<()> {
        match o.write_all(bytes).and_then(|()| o.flush()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            r => Ok(r?),
        }
    };
    let result = call_streaming(
        &stream,
        "cli",
        serde_json::to_value(params)?,
        &mut |chunk| piped(&chunk),
    )?;
    let out: CliResult = serde_json::from_value(result).context("the daemon's answer")?;
    let stdout = BASE64
        .decode(out.stdout.as_bytes())
        .context("the daemon's answer")?;
    piped(&stdout)?;
    eprint!("{}", out.stderr);
    Ok(Some(out.code))
}

/// How long a command waits for a daemon that holds the vault's lock but
/// has not opened its socket yet (it is starting).
const STARTING_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The daemon's socket, if a daemon serves the vault. No socket, or one
/// left by a daemon that is gone, while the lock is free: nobody serves it.
/// The lock held and no socket yet: a daemon is starting (or a command
/// runs), so wait a little for one or the other.
fn connect(root: &std::path::Path, socket: &std::path::Path) -> Option<UnixStream> {
    let until = std::time::Instant::now() + STARTING_WAIT;
    loop {
        if let Ok(s) = UnixStream::connect(socket) {
            return Some(s);
        }
        match vault::lock(&root.join(VELLUM_DIR)) {
            // Free (the lock goes again when the file drops): run here.
            Ok(_) => return None,
            Err(e) if vault::is_busy(&e) && std::time::Instant::now() < until => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(_) => return None,
        }
    }
}

/// Sends one request on `stream` and reads its answer: the result, or the
/// daemon's error as an error.
pub fn call(
    stream: &UnixStream,
    method: &str,
    params: serde_json::Value,
) -> Result<serde_json::Value> {
    call_streaming(stream, method, params, &mut |_| Ok(()))
}

/// [`call`], handing each `cli.stdout` notification's bytes that come
/// before the answer to `stdout`.
pub fn call_streaming(
    stream: &UnixStream,
    method: &str,
    params: serde_json::Value,
    stdout: &mut dyn FnMut(Vec<u8>) -> Result<()>,
) -> Result<serde_json::Value> {
    let request =
        serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let mut line = serde_json::to_vec(&request)?;
    line.push(b'\n');
    (&*stream)
        .write_all(&line)
        .context("sending to the vault's daemon")?;
    let mut r = BufReader::new(stream);
    loop {
        let mut answer = String::new();
        r.read_line(&mut answer)
            .context("reading the vault's daemon")?;
        if answer.is_empty() {
            return Err(anyhow!(
                "the vault's daemon closed the connection without answering; see its log"
            ));
        }
        let v: serde_json::Value =
            serde_json::from_str(&answer).context("the daemon's answer is not JSON")?;
        if v.get("method").and_then(|m| m.as_str()) == Some("cli.stdout") {
            let data = v["params"]["data"].as_str().unwrap_or_default();
            stdout(
                BASE64
                    .decode(data.as_bytes())
                    .context("the daemon's output is not base64")?,
            )?;
            continue;
        }
        let r: Response =
            serde_json::from_value(v).context("the daemon's answer is not JSON-RPC")?;
        return match (r.result, r.error) {
            (Some(v), None) => Ok(v),
            (_, Some(e)) => Err(anyhow!("the vault's daemon refused: {}", e.message)),
            (None, None) => Err(anyhow!(
                "the daemon's answer holds neither a result nor an error"
            )),
        };
    }
}
