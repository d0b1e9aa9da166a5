//! `vellum invite [--yes]`: registers a one-time invite with the vault's
//! daemon and prints its codes. With `--yes` and a daemon running, that is
//! all: the daemon approves the first device that proves the code. Without
//! `--yes`, it stays to ask for approval when a device proves the code,
//! showing that device's name and the digits both screens show. With no
//! daemon running, it serves the invite itself until the new device has
//! joined and fetched the vault.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use serde_json::{Value, json};
use vellum_journal::path::VELLUM_DIR;

use super::SOCKET;
use crate::cli::NetArgs;
use crate::error::user;
use crate::invite::{self, INVITE_TTL_MS};
use crate::vault;

/// How long a daemon started here may take to open its socket.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Line-delimited JSON-RPC over the daemon's socket, keeping the events
/// that arrive between answers.
struct Conn {
    w: UnixStream,
    r: BufReader<UnixStream>,
    next_id: u64,
    events: Vec<Value>,
}

impl Conn {
    fn new(s: UnixStream) -> Result<Conn> {
        Ok(Conn {
            r: BufReader::new(s.try_clone()?),
            w: s,
            next_id: 1,
            events: Vec::new(),
        })
    }

    fn line(&mut self, deadline: Option<Instant>) -> Result<Option<Value>> {
        let wait = deadline.map(|d| {
            d.saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1))
        });
        self.r.get_ref().set_read_timeout(wait)?;
        let mut s = String::new();
        match self.r.read_line(&mut s) {
            Ok(0) => Err(anyhow!("the vault's daemon stopped")),
            Ok(_) => Ok(Some(
                serde_json::from_str(&s).context("the daemon's answer")?,
            )),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// One request; the daemon's error is the user's (it says what to do).
    fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let mut req = serde_json::to_vec(
            &json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
        )?;
        req.push(b'\n');
        self.w
            .write_all(&req)
            .context("writing to the vault's daemon")?;
        loop {
            let Some(v) = self.line(None)? else { continue };
            if v.get("method").is_some() {
                self.events.push(v);
                continue;
            }
            if v["id"] != json!(id) {
                continue;
            }
            if let Some(e) = v.get("error") {
                return Err(user(
                    e["message"]
                        .as_str()
                        .unwrap_or("the daemon refused")
                        .to_string(),
                ));
            }
            return Ok(v["result"].clone());
        }
    }

    /// The next event's params, waiting until `deadline`.
    fn event(&mut self, deadline: Instant) -> Result<Option<Value>> {
        if !self.events.is_empty() {
            return Ok(Some(self.events.remove(0)["params"].clone()));
        }
        while Instant::now() < deadline {
            if let Some(v) = self.line(Some(deadline))?
                && v.get("method").and_then(Value::as_str) == Some("event")
            {
                return Ok(Some(v["params"].clone()));
            }
        }
        Ok(None)
    }
}

/// A daemon this command started for its invite.
struct Hosted {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl Drop for Hosted {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn run(vault: Option<&Path>, yes: bool, json: bool) -> Result<u8> {
    let root = vault::find_root(vault)?;
    let socket = root.join(VELLUM_DIR).join(SOCKET);
    let (stream, hosted) = match UnixStream::connect(&socket) {
        Ok(s) => (s, None),
        Err(_) => {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let r = root.clone();
            let thread = std::thread::spawn(move || {
                super::serve_until(Some(&r), false, 100, &NetArgs::default(), Some(rx))
            });
            let mut hosted = Hosted {
                stop: Some(tx),
                thread: Some(thread),
            };
            let until = Instant::now() + START_TIMEOUT;
            let stream = loop {
                if let Ok(s) = UnixStream::connect(&socket) {
                    break s;
                }
                if hosted.thread.as_ref().is_some_and(|t| t.is_finished()) {
                    let t = hosted.thread.take().expect("checked");
                    return match t.join() {
                        Ok(Err(e)) => Err(e),
                        _ => Err(anyhow!("serving the invite failed")),
                    };
                }
                if Instant::now() > until {
                    return Err(anyhow!("the vault could not be served for the invite"));
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            (stream, Some(hosted))
        }
    };
    let mut c = Conn::new(stream)?;
    let info = c.call("invite.create", json!({"yes": yes}))?;
    let code = info["code"].as_str().unwrap_or_default().to_string();
    if json {
        crate::cli::print_line(&serde_json::to_string(&info)?);
    } else {
        let short = match info["short_code"].as_str() {
            Some(s) if s.len() == 8 => format!(
                "On the same network, the code {}-{} (one try):\n  vellum join {}-{} --vault <folder>\n\nAnywhere, the long code or the QR code below:\n",
                &s[..4],
                &s[4..],
                &s[..4],
                &s[4..]
            ),
            _ => String::new(),
        };
        crate::cli::print_line(&format!(
            "Invite for one new device, valid until {}.\n\n{short}  vellum join {code} --vault <folder>\n\n{}",
            info["expires_at"].as_str().unwrap_or_default(),
            invite::qr_text(&code)?
        ));
    }
    if yes && hosted.is_none() {
        eprintln!("the daemon approves the first device that joins with this code");
        return Ok(0);
    }
    c.call("subscribe", Value::Null)?;
    if hosted.is_some() {
        eprintln!("serving the invite until the new device has joined…");
    }
    let deadline = Instant::now() + Duration::from_millis(INVITE_TTL_MS);
    let mut joined = None;
    loop {
        let Some(ev) = c.event(deadline)? else {
            return Err(user(match joined {
                None => "the invite expired unused",
                Some(_) => {
                    "the new device joined but did not finish fetching the vault; it catches up when both run `vellum serve`"
                }
            }));
        };
        match (ev["kind"].as_str(), ev["stage"].as_str()) {
            (Some("pairing"), Some("request")) if !yes => {
                let name = ev["name"].as_str().unwrap_or("?");
                let sas = ev["sas"].as_str().unwrap_or("?");
                let approve = ask(&format!(
                    "The device \"{name}\" proved the code. It should show the digits {} {}.\nApprove it? [y/N] ",
                    &sas[..3.min(sas.len())],
                    &sas[3.min(sas.len())..]
                ))?;
                c.call("invite.approve", json!({"approve": approve}))?;
            }
            (Some("pairing"), Some("joined")) => {
                let name = ev["name"].as_str().unwrap_or("?").to_string();
                eprintln!("\"{name}\" joined the vault");
                if hosted.is_none() {
                    return Ok(0);
                }
                joined = Some(name);
            }
            (Some("pairing"), Some(stage @ ("declined" | "refused"))) => {
                let why = ev["reason"].as_str().unwrap_or(stage);
                return Err(user(format!(
                    "no device joined: {why}; run `vellum invite` again for a new code"
                )));
            }
            // Serving the invite here: stop once the new device has the
            // vault and hung up.
            (Some("status"), _)
                if joined.is_some() && ev["status"]["network"]["connected"].as_u64() == Some(0) =>
            {
                return Ok(0);
            }
            _ => {}
        }
    }
}

/// Asks on the terminal; anything but y or yes is no.
fn ask(question: &str) -> Result<bool> {
    eprint!("{question}");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}
