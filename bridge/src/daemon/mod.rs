//! `vellum serve`: the per-vault daemon (DESIGN §8).
//!
//! One thread owns the vault, as the journal has a single writer: it scans
//! the disk when something changed and answers requests, one at a time.
//! Around it a small tokio runtime serves JSON-RPC on `.vellum/daemon.sock`
//! (and on stdin/stdout with `--stdio`), a notify watcher reports changes
//! after a debounce, a timer asks for a full comparison every minute (the
//! watcher can miss changes), and SIGINT, SIGTERM or the end of stdin stop
//! it: the running job finishes, the socket is removed, the lock released.

pub mod client;
pub mod events;
pub mod invite_cli;
pub mod rpc;
mod sync;
mod trim;
mod watch;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::{broadcast, oneshot};
use vellum_journal::path::VELLUM_DIR;

use crate::error;
use crate::scan;
use crate::settings::{self, Settings};
use crate::vault::{self, Vault};

/// The daemon's socket, in `.vellum/`.
pub const SOCKET: &str = "daemon.sock";
/// A full comparison of the disk with the journal this often, whatever
/// the watcher reported.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(60);
/// How long the daemon waits for a command that holds the vault's lock.
const LOCK_WAIT: Duration = Duration::from_secs(3);
/// How often sync sessions are checked for re-requests and anti-entropy.
const SYNC_TICK: Duration = Duration::from_secs(1);
/// Chunks of a streamed `cli` call's output queued for its connection.
const STDOUT_CHUNKS_QUEUED: usize = 8;
/// Events a subscriber may fall behind by before it is told it lagged.
const EVENTS_QUEUED_MAX: usize = 256;

/// Work for the vault's thread.
enum Job {
    /// Files may have changed: compare the disk with the journal, at these
    /// vault-relative paths (and under them), or everywhere for `None`.
    Scan {
        why: &'static str,
        paths: Option<Vec<String>>,
    },
    /// A JSON-RPC request, answered on `reply`; a streamed `cli` call's
    /// standard output goes to `stdout` as it is written.
    Call {
        request: rpc::Request,
        reply: oneshot::Sender<rpc::Response>,
        stdout: Option<rpc::Stdout>,
    },
    /// Start syncing with this node (once, after the vault opened).
    StartSync {
        net: vellum_replicator::net::Handle,
        /// Starts the node again, under a new identity.
        starter: sync::Starter,
        dial: Vec<(vellum_journal::DeviceId, vellum_replicator::net::Multiaddr)>,
    },
    /// Something happened on the network.
    Net(vellum_replicator::net::NetEvent),
    /// Time passed: sessions may have re-requests or anti-entropy due.
    Tick,
    Stop,
}

/// What the vault's thread tells `serve` once the vault is open.
struct Opened {
    root: PathBuf,
    vault: vellum_journal::VaultId,
    /// The libp2p identity's seed: the device key's, or the carrier's after
    /// a key import (`home::carrier`).
    seed: [u8; 32],
}

/// Runs the daemon for the vault at `vault` (or the one around the current
/// directory) until a signal or, with `stdio`, the end of stdin.
pub fn serve(
    vault: Option<&Path>,
    stdio: bool,
    debounce_ms: u64,
    net_args: &crate::cli::NetArgs,
) -> Result<()> {
    serve_until(vault, stdio, debounce_ms, net_args, None)
}

/// [`serve`], stopping also when `stop` fires (or its sender drops): for
/// `vellum invite`, which serves its invite itself when no daemon runs.
pub fn serve_until(
    vault: Option<&Path>,
    stdio: bool,
    debounce_ms: u64,
    net_args: &crate::cli::NetArgs,
    stop: Option<oneshot::Receiver<()>>,
) -> Result<()> {
    let asked = vault::find_root(vault)?;
    let settings = settings::load(&asked)?;
    let net_plan = net_plan(&settings, net_args)?;
    let _flush_logs_at_exit = logging(&asked, &settings)?;
    let (jobs, queue) = mpsc::channel::<Job>();
    let (ready_tx, ready) = mpsc::channel::<Result<Opened>>();
    let (bus, _) = broadcast::channel::<events::Event>(EVENTS_QUEUED_MAX);
    let asked = Some(asked);
    let vault_bus = bus.clone();
    let owner = std::thread::Builder::new()
        .name("vault".into())
        .spawn(move || own_vault(asked.as_deref(), &ready_tx, &queue, &vault_bus))
        .context("starting the vault's thread")?;
    // Opening takes the vault's lock: a second daemon stops here.
    let opened = match ready.recv() {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => {
            let _ = owner.join();
            return Err(e);
        }
        Err(_) => {
            let _ = owner.join();
            return Err(anyhow!(
                "the vault's thread stopped while opening the vault"
            ));
        }
    };
    let root = opened.root.clone();
    let dot = root.join(VELLUM_DIR);
    // Only this user may reach the socket inside.
    std::fs::set_permissions(&dot, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("restricting {}", dot.display()))?;

    let watcher = watch::start(&root, Duration::from_millis(debounce_ms), jobs.clone())?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the daemon's runtime")?;
    let syncing = match net_plan {
        Some(plan) => {
            let sink_jobs = jobs.clone();
            let starter = sync::Starter {
                runtime: runtime.handle().clone(),
                cfg: vellum_replicator::net::Config {
                    vault: opened.vault,
                    listen: plan.listen,
                    mdns: plan.mdns,
                    internet: plan.internet,
                },
                sink: std::sync::Arc::new(move |ev| {
                    let _ = sink_jobs.send(Job::Net(ev));
                }),
            };
            match starter.start(opened.seed) {
                Ok(net) => {
                    let _ = jobs.send(Job::StartSync {
                        net,
                        starter,
                        dial: plan.dial,
                    });
                    true
                }
                Err(e) => {
                    drop(watcher);
                    let _ = jobs.send(Job::Stop);
                    let _ = owner.join();
                    return Err(crate::error::user(format!(
                        "{e}; pick another with --listen, or run with --offline"
                    )));
                }
            }
        }
        None => false,
    };
    let socket = dot.join(SOCKET);
    let served = runtime.block_on(listen(&socket, stdio, syncing, stop, jobs.clone(), bus));
    drop(watcher);
    let _ = jobs.send(Job::Stop);
    let stopped = owner.join();
    let _ = std::fs::remove_file(&socket);
    runtime.shutdown_timeout(Duration::from_secs(1));
    served?;
    stopped.map_err(|_| anyhow!("the vault's thread failed"))?;
    tracing::info!("stopped");
    Ok(())
}

/// Changes the log level of a running daemon (`settings.set`).
static LOG_FILTER: std::sync::OnceLock<
    tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>,
> = std::sync::OnceLock::new();

/// Applies a new log level at once; retention applies from the next start.
pub(crate) fn set_log_level(s: &Settings) {
    if let Some(h) = LOG_FILTER.get() {
        let _ = h.reload(tracing_subscriber::EnvFilter::new(s.log_filter()));
    }
}

/// Logs to stderr and to daily files in `.vellum/logs/`, keeping
/// `retention_days` of them, at the settings' level (`VELLUM_LOG`
/// overrides both). What flushes the file at exit is returned.
fn logging(root: &Path, s: &Settings) -> Result<tracing_appender::non_blocking::WorkerGuard> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let dir = root.join(VELLUM_DIR).join("logs");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let appender = tracing_appender::rolling::RollingFileAppender::builder()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix("vellum")
        .filename_suffix("log")
        .max_log_files(s.log.retention_days as usize)
        .build(&dir)
        .with_context(|| format!("opening the log in {}", dir.display()))?;
    let (file, guard) = tracing_appender::non_blocking(appender);
    let filter = tracing_subscriber::EnvFilter::try_from_env("VELLUM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(s.log_filter()));
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let _ = LOG_FILTER.set(handle);
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(file)
                .with_ansi(false)
                .with_target(false),
        )
        .try_init();
    Ok(guard)
}

/// The vault's thread: opens the vault (telling `ready`), scans, then runs
/// jobs until told to stop. Scans asked for while one runs become one.
fn own_vault(
    vault: Option<&Path>,
    ready: &mpsc::Sender<Result<Opened>>,
    queue: &mpsc::Receiver<Job>,
    bus: &broadcast::Sender<events::Event>,
) {
    // A command run at the same moment (a `vellum status`) holds the lock
    // for a few milliseconds: wait for it, a little.
    let give_up = std::time::Instant::now() + LOCK_WAIT;
    let mut v = loop {
        match Vault::open(vault) {
            Ok(v) => break v,
            Err(e) if vault::is_busy(&e) && std::time::Instant::now() < give_up => {
                std::thread::sleep(Duration::from_millis(25));
            }
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        }
    };
    let _ = ready.send(Ok(Opened {
        root: v.root.clone(),
        vault: v.vault_id(),
        seed: match crate::home::carrier(v.instance()) {
            Ok(Some(carrier)) => carrier,
            _ => v.keys.signing.to_bytes(),
        },
    }));
    let mut watch = events::Watch::new(&v);
    scan_now(&mut v, "startup", None);
    publish(&mut v, &mut watch, bus);
    let mut sync: Option<sync::Sync> = None;
    let mut early = Vec::new();
    let mut next = None;
    let mut trim = trim::Trim::default();
    loop {
        let job = match next.take() {
            Some(j) => j,
            None => match queue.try_recv() {
                Ok(j) => j,
                Err(mpsc::TryRecvError::Disconnected) => break,
                Err(mpsc::TryRecvError::Empty) => {
                    // Nothing waits: remote ops admitted meanwhile reach
                    // the disk now.
                    if let Some(s) = sync.as_mut().filter(|s| s.due().is_some()) {
                        s.apply(&mut v);
                        s.after_job(&mut v);
                        publish(&mut v, &mut watch, bus);
                        continue;
                    }
                    trim.if_idle();
                    let got = match trim.wait() {
                        Some(w) => queue.recv_timeout(w),
                        None => queue
                            .recv()
                            .map_err(|_| mpsc::RecvTimeoutError::Disconnected),
                    };
                    match got {
                        Ok(j) => j,
                        Err(mpsc::RecvTimeoutError::Timeout) => continue,
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                }
            },
        };
        if !matches!(job, Job::Tick) {
            trim.worked();
        }
        // Remote ops admitted and not yet on disk go there before anything
        // else moves the head past them (a scan's own ops, a Member add):
        // the disk writer writes what changed between two heads, and would
        // never see them.
        if !matches!(job, Job::Net(_) | Job::Tick)
            && let Some(s) = sync.as_mut()
        {
            s.apply(&mut v);
        }
        match job {
            Job::Scan { why, mut paths } => {
                // Scans waiting in the queue join this one.
                while let Ok(j) = queue.try_recv() {
                    match j {
                        Job::Scan { paths: more, .. } => match (&mut paths, more) {
                            (Some(p), Some(m)) => p.extend(m),
                            _ => paths = None,
                        },
                        other => {
                            next = Some(other);
                            break;
                        }
                    }
                }
                scan_now(&mut v, why, paths.as_deref());
            }
            Job::Call { request, reply, .. } if request.method.starts_with("invite.") => {
                let answer = match sync.as_mut() {
                    Some(s) => s.invite_rpc(&mut v, request),
                    None => rpc::Response::err(
                        request.id.unwrap_or(serde_json::Value::Null),
                        rpc::INVALID_PARAMS,
                        "this daemon does not sync (--offline): invites need the network",
                    ),
                };
                let _ = reply.send(answer);
            }
            Job::Call {
                request,
                reply,
                stdout,
            } => {
                let _ = reply.send(rpc::handle(&mut v, request, stdout));
            }
            Job::StartSync { net, starter, dial } => {
                match sync::Sync::new(&mut v, net.clone(), starter, dial) {
                    Ok(mut s) => {
                        for ev in early.drain(..) {
                            s.handle(&mut v, ev);
                        }
                        sync = Some(s);
                    }
                    Err(e) => {
                        net.shutdown();
                        tracing::warn!("sync could not start: {}", error::one_line(&e));
                    }
                }
            }
            Job::Net(ev) => match sync.as_mut() {
                Some(s) => s.handle(&mut v, ev),
                // The node runs before this thread hears of it: its first
                // events (listeners) wait for the start.
                None => early.push(ev),
            },
            Job::Tick => {
                if let Some(s) = sync.as_mut() {
                    s.tick(&mut v);
                }
            }
            Job::Stop => break,
        }
        if let Some(s) = sync.as_mut() {
            if s.due().is_some_and(|d| d <= std::time::Instant::now()) {
                s.apply(&mut v);
            }
            s.after_job(&mut v);
            for e in s.take_events() {
                let _ = bus.send(e);
            }
        }
        publish(&mut v, &mut watch, bus);
    }
    if let Some(s) = sync {
        s.shutdown();
    }
}

/// How `serve` uses the network: `None` for `--offline`.
struct NetPlan {
    listen: Vec<vellum_replicator::net::Multiaddr>,
    mdns: bool,
    internet: Option<vellum_replicator::net::Internet>,
    dial: Vec<(vellum_journal::DeviceId, vellum_replicator::net::Multiaddr)>,
}

fn net_plan(s: &Settings, args: &crate::cli::NetArgs) -> Result<Option<NetPlan>> {
    if args.offline {
        return Ok(None);
    }
    let listen_from = if args.listen.is_empty() {
        &s.listen
    } else {
        &args.listen
    };
    let listen = listen_from
        .iter()
        .map(|a| settings::listen_addr(a).map_err(crate::error::user))
        .collect::<Result<Vec<_>>>()?;
    let mut dial = Vec::new();
    for a in s.peers.iter().chain(&args.peer) {
        let (peer, addr) = settings::peer_addr(a).map_err(crate::error::user)?;
        let device = vellum_replicator::net::device_of(&peer).ok_or_else(|| {
            crate::error::user(format!(
                "{a:?} does not name a vellum device (an ed25519 peer id)"
            ))
        })?;
        dial.push((device, addr));
    }
    let relays = s
        .relays
        .iter()
        .chain(&args.relay)
        .map(|a| settings::relay_addr(a).map_err(crate::error::user))
        .collect::<Result<Vec<_>>>()?;
    let internet = (s.internet || args.internet || !args.relay.is_empty()).then(|| {
        if relays.is_empty() {
            tracing::warn!(
                "internet is on but no relay is set (relays in config.toml, or --relay): \
                 only members' direct addresses and the DHT among them are used"
            );
        }
        vellum_replicator::net::Internet { relays }
    });
    Ok(Some(NetPlan {
        listen,
        mdns: s.mdns && !args.no_mdns,
        internet,
        dial,
    }))
}

/// Tells subscribers what the last job changed.
fn publish(v: &mut Vault, watch: &mut events::Watch, bus: &broadcast::Sender<events::Event>) {
    match watch.changes(v, bus.receiver_count() > 0) {
        Ok(evs) => {
            for e in evs {
                let _ = bus.send(e);
            }
        }
        Err(e) => {
            // The error may name a path: logs show those only at debug level.
            tracing::warn!("could not gather the events of a change; subscribers may miss it");
            tracing::debug!("gathering events failed: {}", error::one_line(&e));
        }
    }
}

fn scan_now(v: &mut Vault, why: &str, paths: Option<&[String]>) {
    let scope = match paths {
        Some(p) => scan::Scope::Paths(p),
        None => scan::Scope::All,
    };
    let started = std::time::Instant::now();
    match scan::scan_in(v, scope) {
        Ok(r) if r.ops_recorded > 0 => {
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            tracing::info!(
                why,
                ops = r.ops_recorded,
                ms = format!("{ms:.1}"),
                "recorded changes"
            );
        }
        Ok(_) => tracing::debug!(why, "nothing changed"),
        // Nothing is lost: the next scan compares again. The error may
        // name a path, which logs show only at debug level.
        Err(e) => {
            tracing::warn!(
                why,
                "a scan failed; the next change or reconciliation retries it"
            );
            tracing::debug!(why, "scan failed: {}", error::one_line(&e));
        }
    }
}

/// Serves the socket (and stdio) until a signal or the end of stdin.
async fn listen(
    socket: &Path,
    stdio: bool,
    syncing: bool,
    stop: Option<oneshot::Receiver<()>>,
    jobs: mpsc::Sender<Job>,
    bus: broadcast::Sender<events::Event>,
) -> Result<()> {
    // A socket left by a daemon that died: the lock, which this process
    // holds, says nobody serves it.
    let _ = std::fs::remove_file(socket);
    let listener =
        UnixListener::bind(socket).with_context(|| format!("listening on {}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {}", socket.display()))?;
    // The socket was made by this process: its owner is this user.
    let uid = std::fs::metadata(socket)?.uid();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut reconcile = tokio::time::interval(RECONCILE_EVERY);
    reconcile.tick().await;
    let mut sync_tick = tokio::time::interval(SYNC_TICK);
    sync_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stdin_done = {
        let (done_tx, done) = oneshot::channel::<()>();
        if stdio {
            let (jobs, bus) = (jobs.clone(), bus.clone());
            tokio::spawn(async move {
                converse(tokio::io::stdin(), tokio::io::stdout(), jobs, bus).await;
                let _ = done_tx.send(());
            });
        } else {
            std::mem::forget(done_tx);
        }
        done
    };
    tokio::pin!(stdin_done);
    let stop = async move {
        match stop {
            Some(rx) => {
                let _ = rx.await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::pin!(stop);
    tracing::info!("serving");
    tracing::debug!(socket = %socket.display(), "listening");
    loop {
        tokio::select! {
            conn = listener.accept() => {
                let Ok((stream, _)) = conn else { continue };
                match stream.peer_cred() {
                    Ok(c) if c.uid() == uid => {
                        let (r, w) = stream.into_split();
                        tokio::spawn(converse(r, w, jobs.clone(), bus.clone()));
                    }
                    // Another user: refused before reading anything.
                    _ => tracing::warn!("refused a connection from another user"),
                }
            }
            _ = reconcile.tick() => {
                let _ = jobs.send(Job::Scan {
                    why: "periodic reconciliation",
                    paths: None,
                });
            }
            _ = sync_tick.tick(), if syncing => {
                let _ = jobs.send(Job::Tick);
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = &mut stdin_done => break,
            _ = &mut stop => break,
        }
    }
    Ok(())
}

/// One client: requests in, answers out, a line each, until it hangs up.
/// A line that is not a request gets an error answer; one over the size
/// limit closes the connection, since where the next begins is unknown.
/// After `subscribe`, every event is sent too, as a notification.
async fn converse<R, W>(
    r: R,
    mut w: W,
    jobs: mpsc::Sender<Job>,
    bus: broadcast::Sender<events::Event>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut r = BufReader::new(r);
    let mut line = Vec::new();
    let mut events: Option<broadcast::Receiver<events::Event>> = None;
    loop {
        // An event may interrupt a line being read: `line` keeps what has
        // arrived, and reading goes on after the event is sent.
        let next = tokio::select! {
            got = read_line(&mut r, &mut line) => Incoming::Line(got),
            ev = next_event(&mut events) => Incoming::Event(ev),
        };
        let out = match next {
            Incoming::Event(ev) => Some(ev.notification()),
            Incoming::Line(Ok(false)) => break,
            Incoming::Line(Err(too_long)) => {
                let answer =
                    rpc::Response::err(serde_json::Value::Null, rpc::INVALID_REQUEST, too_long);
                let _ = w.write_all(&answer.line()).await;
                break;
            }
            Incoming::Line(Ok(true)) => {
                let answer = if line.iter().all(u8::is_ascii_whitespace) {
                    None
                } else {
                    match rpc::parse(&line) {
                        Err(answer) => Some(*answer),
                        Ok(request) if request.method == "subscribe" => {
                            events.get_or_insert_with(|| bus.subscribe());
                            request.id.map(|id| {
                                rpc::Response::ok(id, serde_json::json!({"subscribed": true}))
                            })
                        }
                        Ok(request) => {
                            let notification = request.id.is_none();
                            let streamed = request.method == "cli"
                                && request.params.get("stream")
                                    == Some(&serde_json::Value::Bool(true));
                            let (reply, mut answer) = oneshot::channel();
                            let (stdout, mut chunks) =
                                tokio::sync::mpsc::channel(STDOUT_CHUNKS_QUEUED);
                            let stdout = streamed.then_some(stdout);
                            if jobs
                                .send(Job::Call {
                                    request,
                                    reply,
                                    stdout,
                                })
                                .is_err()
                            {
                                break;
                            }
                            // Standard output first, as it comes; the
                            // answer after the last of it.
                            let answered = loop {
                                tokio::select! {
                                    biased;
                                    Some(chunk) = chunks.recv() => {
                                        if w.write_all(&stdout_notification(&chunk)).await.is_err() {
                                            // The vault's thread sees the
                                            // channel close and stops.
                                            break None;
                                        }
                                    }
                                    a = &mut answer => break Some(a),
                                }
                            };
                            match answered {
                                None => break,
                                Some(Ok(a)) if !notification => Some(a),
                                Some(Ok(_)) => None,
                                Some(Err(_)) => break,
                            }
                        }
                    }
                };
                line.clear();
                answer.map(|a| a.line())
            }
        };
        if let Some(bytes) = out
            && (w.write_all(&bytes).await.is_err() || w.flush().await.is_err())
        {
            break;
        }
    }
    let _ = w.shutdown().await;
}

/// A chunk of a streamed `cli` call's standard output, as a notification.
fn stdout_notification(chunk: &[u8]) -> Vec<u8> {
    let mut b = serde_json::to_vec(&serde_json::json!({
        "jsonrpc": "2.0",
        "method": "cli.stdout",
        "params": {"data": data_encoding::BASE64.encode(chunk)},
    }))
    .expect("a notification serialises");
    b.push(b'\n');
    b
}

enum Incoming {
    Line(Result<bool, String>),
    Event(events::Event),
}

/// The next event for a subscriber; never, for a connection that did not
/// subscribe.
async fn next_event(events: &mut Option<broadcast::Receiver<events::Event>>) -> events::Event {
    let Some(rx) = events else {
        return std::future::pending().await;
    };
    match rx.recv().await {
        Ok(e) => e,
        Err(broadcast::error::RecvError::Lagged(missed)) => events::Event::Lagged { missed },
        // The daemon is stopping.
        Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
    }
}

/// Reads one line (without its newline) into `line`: `Ok(false)` at the
/// end of input, `Err` when it exceeds [`rpc::REQUEST_BYTES_MAX`].
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    line: &mut Vec<u8>,
) -> Result<bool, String> {
    loop {
        let buf = match r.fill_buf().await {
            Ok(b) => b,
            Err(_) => return Ok(false),
        };
        if buf.is_empty() {
            return Ok(!line.is_empty());
        }
        let (take, end) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (i, true),
            None => (buf.len(), false),
        };
        if line.len() + take > rpc::REQUEST_BYTES_MAX {
            return Err(format!(
                "a request longer than {} bytes",
                rpc::REQUEST_BYTES_MAX
            ));
        }
        line.extend_from_slice(&buf[..take]);
        r.consume(take + usize::from(end));
        if end {
            return Ok(true);
        }
    }
}
