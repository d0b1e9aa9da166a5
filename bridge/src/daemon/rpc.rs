//! JSON-RPC 2.0, one request or response per line (DESIGN §8): the types,
//! and the methods the vault's thread answers.

use std::path::{Path, PathBuf};

use data_encoding::BASE64;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cli::Cli;
use crate::commands::{self, Io, VaultRef, Vaults};
use crate::settings::{self, Settings};
use crate::vault::{self, Vault};
use crate::{conflicts, error, history, quarantine, rewrite, vault_config};

/// The version of this JSON-RPC contract: its methods, their params and
/// results, and the events. It goes up by one with any change a client
/// built for the previous one could trip on (a method or field removed or
/// renamed, a meaning changed); adding a method or an optional field does
/// not need it. A client calls `hello` first and talks on only if it was
/// built for this number.
pub const RPC_PROTOCOL: u32 = 1;

/// Bytes one request line may take; a longer one is refused and its
/// connection closed.
pub const REQUEST_BYTES_MAX: usize = 1 << 20;

/// The JSON-RPC 2.0 error codes used here.
pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;

#[derive(Debug, Deserialize)]
pub struct Request {
    #[serde(default)]
    pub jsonrpc: Option<String>,
    /// Absent for a notification, which gets no answer.
    #[serde(default)]
    pub id: Option<Value>,
    pub method: String,
    #[serde(default)]
    pub params: Value,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, ts_rs::TS)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Response {
    pub jsonrpc: String,
    pub id: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RpcError>,
}

impl Response {
    pub fn ok(id: Value, result: Value) -> Response {
        Response {
            jsonrpc: "2.0".into(),
            id,
            result: Some(result),
            error: None,
        }
    }

    pub fn err(id: Value, code: i64, message: impl Into<String>) -> Response {
        Response {
            jsonrpc: "2.0".into(),
            id,
            result: None,
            error: Some(RpcError {
                code,
                message: message.into(),
            }),
        }
    }

    /// The response as one line, newline included.
    pub fn line(&self) -> Vec<u8> {
        let mut b = serde_json::to_vec(self).expect("a response always serialises");
        b.push(b'\n');
        b
    }
}

/// Parses one request line: the request, or the error response to send.
pub fn parse(line: &[u8]) -> Result<Request, Box<Response>> {
    let value: Value = serde_json::from_slice(line)
        .map_err(|e| Response::err(Value::Null, PARSE_ERROR, format!("not JSON: {e}")))?;
    let id = value.get("id").cloned().unwrap_or(Value::Null);
    let req: Request = serde_json::from_value(value).map_err(|e| {
        Response::err(
            id.clone(),
            INVALID_REQUEST,
            format!("not a JSON-RPC request: {e}"),
        )
    })?;
    if req.jsonrpc.as_deref() != Some("2.0") {
        return Err(Box::new(Response::err(
            id,
            INVALID_REQUEST,
            "not a JSON-RPC 2.0 request (\"jsonrpc\": \"2.0\" is missing)",
        )));
    }
    Ok(req)
}

/// What the `cli` method takes: a command line as the user typed it (after
/// the program name), and the directory it was typed in.
#[derive(Debug, Serialize, Deserialize, ts_rs::TS)]
pub struct CliParams {
    pub argv: Vec<String>,
    #[ts(type = "string")]
    pub cwd: PathBuf,
    /// Send standard output as it is written, in `cli.stdout`
    /// notifications (`{data: base64}`) before the answer, whose `stdout`
    /// is then empty: a large file never sits in memory whole.
    #[serde(default)]
    #[ts(optional)]
    pub stream: Option<bool>,
}

/// Where a streamed `cli` call's standard output goes: chunks to the
/// connection, which sends each as a notification.
pub type Stdout = tokio::sync::mpsc::Sender<Vec<u8>>;

/// Bytes of standard output sent per `cli.stdout` notification.
pub const STDOUT_CHUNK_BYTES: usize = 64 * 1024;

/// What the `cli` method answers: exactly what the command would have
/// printed and exited with.
#[derive(Debug, Serialize, Deserialize, ts_rs::TS)]
pub struct CliResult {
    pub code: u8,
    /// Standard output, base64: it may hold a file's bytes.
    pub stdout: String,
    pub stderr: String,
}

/// What `hello` answers: which contract this daemon speaks.
#[derive(Debug, Serialize, ts_rs::TS)]
pub struct Hello {
    /// The version of the contract (`RPC_PROTOCOL`): a client built for
    /// another must not go on.
    pub protocol: u32,
    /// The `vellum` version, for messages.
    pub version: String,
}

/// `vault.set`: this device's name and/or the vault-wide ignore globs; at
/// least one.
#[derive(Debug, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct VaultSet {
    /// Non-empty after trimming, at most 256 bytes, no control characters.
    #[ts(optional)]
    pub device_name: Option<String>,
    /// The whole new list, in gitignore syntax (at most 1000). Files the
    /// journal tracks that a new glob ignores are left as they are, on
    /// every disk and in history: nothing is deleted.
    #[ts(optional)]
    pub ignore: Option<Vec<String>>,
}

/// `log`: a page of the vault's history, newest first.
#[derive(Debug, Default, Deserialize, ts_rs::TS)]
#[serde(default, deny_unknown_fields)]
pub struct LogParams {
    /// Only ops on this path (or under this folder).
    #[ts(optional)]
    pub path: Option<String>,
    /// Only ops by this device (id prefix).
    #[ts(optional)]
    pub author: Option<String>,
    /// At most this many entries (default 50, at most 10,000)...
    #[ts(optional)]
    pub limit: Option<usize>,
    /// ...after skipping this many of the newest...
    #[ts(optional)]
    pub offset: Option<usize>,
    /// ...of those older than this op (an id from the log): the cursor
    /// for the next page, which costs one page however deep it is.
    #[ts(optional)]
    pub before: Option<String>,
}

/// `show`: a file as of a point.
#[derive(Debug, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct ShowParams {
    pub path: String,
    /// A point (DESIGN §5); default `head`.
    #[ts(optional)]
    pub at: Option<String>,
}

/// `diff`: what changed between two points.
#[derive(Debug, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct DiffParams {
    pub from: String,
    /// Default `head`.
    #[ts(optional)]
    pub to: Option<String>,
    /// Only this file or folder; the unified diff text comes with it.
    #[ts(optional)]
    pub path: Option<String>,
}

/// What `diff` answers.
#[derive(Debug, Serialize, ts_rs::TS)]
pub struct DiffResult {
    pub changes: Vec<history::DiffEntry>,
    /// The unified diff of the files under `path`, when it was given.
    pub text: Option<String>,
}

/// `checkout.preview`: the vault's files as of a point, nothing written.
#[derive(Debug, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct TreeParams {
    pub at: String,
    /// Only files under this folder.
    #[ts(optional)]
    pub path: Option<String>,
}

/// `restore`: one file as it was at a point.
#[derive(Debug, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct RestoreParams {
    pub path: String,
    pub at: String,
}

/// `rollback.preview` and `rollback.apply`.
#[derive(Debug, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct RollbackParams {
    pub to: String,
    /// Only files under this folder.
    #[ts(optional)]
    pub path: Option<String>,
    /// `apply` only: go ahead although the preview needs confirming
    /// (many files deleted or emptied).
    #[ts(optional)]
    pub yes: Option<bool>,
}

/// `conflict.sides`: the three texts of a file's open conflict.
#[derive(Debug, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct SidesParams {
    pub path: String,
    /// The conflict's op (an id prefix); default the newest.
    #[ts(optional)]
    pub op: Option<String>,
}

/// `resolve`: close a file's conflicts with one side, a point's version,
/// or a merged text.
#[derive(Debug, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct ResolveParams {
    pub path: String,
    /// `current`, `incoming`, or a point whose version to keep.
    #[ts(optional)]
    pub take: Option<String>,
    /// The content to keep, as text (exclusive with `take`).
    #[ts(optional)]
    pub text: Option<String>,
}

/// Largest unified diff text `diff` sends, in bytes.
pub const DIFF_TEXT_BYTES_MAX: usize = 8 << 20;

/// `key.export`: writes a key export (see `vellum key export`).
#[derive(Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct KeyExportParams {
    /// An absolute path, outside the vault, that does not exist yet.
    pub file: String,
    /// At least 12 characters.
    pub passphrase: String,
}

/// `invite.create`.
#[derive(Deserialize, Default, ts_rs::TS)]
#[serde(default, deny_unknown_fields)]
pub struct InviteParams {
    /// Approve the first joiner that proves the secret, without asking.
    pub yes: bool,
}

/// `invite.approve`: the answer for the device waiting for approval.
#[derive(Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct ApproveParams {
    /// Let the waiting joiner in (true) or turn it away (false).
    pub approve: bool,
}

/// `quarantine.accept` and `quarantine.reject`: which held batch.
#[derive(Debug, Default, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct QuarantineParams {
    /// The batch id, or a prefix of it.
    pub id: String,
}

/// Most log entries in one page.
pub const LOG_PAGE_MAX: usize = 10_000;

/// Answers one request with the vault this daemon holds.
pub fn handle(v: &mut Vault, req: Request, stdout: Option<Stdout>) -> Response {
    let id = req.id.clone().unwrap_or(Value::Null);
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dispatch(v, req, stdout)));
    match out {
        Ok(Ok(result)) => Response::ok(id, result),
        Ok(Err((code, message))) => Response::err(id, code, message),
        Err(_) => Response::err(
            id,
            INTERNAL_ERROR,
            "internal error (a bug; please report it)",
        ),
    }
}

fn dispatch(v: &mut Vault, req: Request, stdout: Option<Stdout>) -> Result<Value, (i64, String)> {
    match req.method.as_str() {
        "hello" => Ok(serde_json::to_value(Hello {
            protocol: RPC_PROTOCOL,
            version: env!("CARGO_PKG_VERSION").to_string(),
        })
        .expect("hello serialises")),
        "vault.get" => {
            let info = vault_config::info(v).map_err(user_or_internal)?;
            Ok(serde_json::to_value(info).expect("vault info serialises"))
        }
        "vault.set" => {
            let p: VaultSet = required(req.params, "vault.set takes {device_name?, ignore?}")?;
            let info = vault_config::set(v, p.device_name.as_deref(), p.ignore.as_deref())
                .map_err(user_or_internal)?;
            Ok(serde_json::to_value(info).expect("vault info serialises"))
        }
        "status" => {
            let s = commands::status(v).map_err(|e| (INTERNAL_ERROR, error::one_line(&e)))?;
            Ok(serde_json::to_value(s).expect("status serialises"))
        }
        "cli" => {
            let p: CliParams = serde_json::from_value(req.params)
                .map_err(|e| (INVALID_PARAMS, format!("cli takes {{argv, cwd}}: {e}")))?;
            let stdout = stdout.filter(|_| p.stream == Some(true));
            Ok(serde_json::to_value(run_cli(v, p, stdout)).expect("a result serialises"))
        }
        "log" => {
            let p: LogParams = params(req.params)?;
            let limit = p.limit.unwrap_or(50);
            if limit > LOG_PAGE_MAX {
                return Err((INVALID_PARAMS, format!("limit is at most {LOG_PAGE_MAX}")));
            }
            let offset = p.offset.unwrap_or(0);
            let page: Vec<_> = history::log(
                v,
                p.path.as_deref(),
                p.author.as_deref(),
                p.before.as_deref(),
                offset.saturating_add(limit),
            )
            .map_err(user_or_internal)?
            .into_iter()
            .skip(offset)
            .collect();
            Ok(serde_json::to_value(page).expect("entries serialise"))
        }
        "conflicts" => {
            let list = conflicts::list(v).map_err(user_or_internal)?;
            Ok(serde_json::to_value(list).expect("conflicts serialise"))
        }
        "settings.get" => {
            let s = settings::load(&v.root).map_err(user_or_internal)?;
            Ok(serde_json::to_value(s).expect("settings serialise"))
        }
        "settings.set" => {
            let s: Settings = params(req.params)?;
            settings::save(&v.root, &s).map_err(user_or_internal)?;
            super::set_log_level(&s);
            Ok(serde_json::to_value(s).expect("settings serialise"))
        }
        "show" => {
            let p: ShowParams = required(req.params, "show takes {path, at?}")?;
            let info = history::show(
                v,
                &p.path,
                p.at.as_deref().unwrap_or("head"),
                &mut std::io::sink(),
            )
            .map_err(user_or_internal)?;
            Ok(serde_json::to_value(info).expect("show info serialises"))
        }
        "diff" => {
            let p: DiffParams = required(req.params, "diff takes {from, to?, path?}")?;
            let to = p.to.as_deref().unwrap_or("head");
            let (changes, text) = match &p.path {
                Some(path) => {
                    let mut buf = Vec::new();
                    let changes = history::diff(v, &p.from, to, Some(path), Some(&mut buf))
                        .map_err(user_or_internal)?;
                    if buf.len() > DIFF_TEXT_BYTES_MAX {
                        return Err((
                            INVALID_PARAMS,
                            format!(
                                "the diff is over {} MiB; narrow the path",
                                DIFF_TEXT_BYTES_MAX >> 20
                            ),
                        ));
                    }
                    (changes, Some(String::from_utf8_lossy(&buf).into_owned()))
                }
                None => (
                    history::diff(v, &p.from, to, None, None).map_err(user_or_internal)?,
                    None,
                ),
            };
            Ok(serde_json::to_value(DiffResult { changes, text }).expect("a diff serialises"))
        }
        "checkout.preview" => {
            let p: TreeParams = required(req.params, "checkout.preview takes {at, path?}")?;
            let tree = history::tree(v, &p.at, p.path.as_deref()).map_err(user_or_internal)?;
            Ok(serde_json::to_value(tree).expect("a tree serialises"))
        }
        "restore" => {
            let p: RestoreParams = required(req.params, "restore takes {path, at}")?;
            let r = rewrite::restore(v, &p.path, &p.at).map_err(user_or_internal)?;
            Ok(serde_json::to_value(r).expect("a write report serialises"))
        }
        "rollback.preview" | "rollback.apply" => {
            let p: RollbackParams = required(req.params, "rollback takes {to, path?, yes?}")?;
            let dry_run = req.method == "rollback.preview";
            let out =
                rewrite::rollback(v, &p.to, p.path.as_deref(), dry_run, p.yes.unwrap_or(false))
                    .map_err(user_or_internal)?;
            Ok(match out {
                rewrite::RollbackOutcome::Preview(p) => serde_json::to_value(p),
                rewrite::RollbackOutcome::Done(r) => serde_json::to_value(r),
            }
            .expect("a rollback serialises"))
        }
        "conflict.sides" => {
            let p: SidesParams = required(req.params, "conflict.sides takes {path, op?}")?;
            let s = conflicts::sides(v, &p.path, p.op.as_deref()).map_err(user_or_internal)?;
            Ok(serde_json::to_value(s).expect("sides serialise"))
        }
        "resolve" => {
            let p: ResolveParams = required(req.params, "resolve takes {path, take? | text?}")?;
            let take = match (&p.take, p.text) {
                (Some(_), Some(_)) => {
                    return Err((
                        INVALID_PARAMS,
                        "resolve takes take or text, not both".into(),
                    ));
                }
                (None, Some(t)) => conflicts::Take::Bytes(t.into_bytes()),
                (Some(t), None) if t == "current" => conflicts::Take::Current,
                (Some(t), None) if t == "incoming" => conflicts::Take::Incoming,
                (Some(t), None) => conflicts::Take::At(t),
                (None, None) => return Err((INVALID_PARAMS, "resolve needs take or text".into())),
            };
            let r = conflicts::resolve_path(v, &p.path, take).map_err(user_or_internal)?;
            Ok(serde_json::to_value(r).expect("a write report serialises"))
        }
        "peers" => {
            let list = crate::peers::list(v).map_err(user_or_internal)?;
            Ok(serde_json::to_value(list).expect("peers serialise"))
        }
        "key.export" => {
            let p: KeyExportParams = serde_json::from_value(req.params)
                .map_err(|_| (INVALID_PARAMS, "key.export takes {file, passphrase}".into()))?;
            let path = std::path::Path::new(&p.file);
            if !path.is_absolute() {
                return Err((
                    INVALID_PARAMS,
                    "key.export needs an absolute file path".into(),
                ));
            }
            let r = crate::recovery::export(v, path, &p.passphrase).map_err(user_or_internal)?;
            Ok(serde_json::to_value(r).expect("an export report serialises"))
        }
        "quarantine.list" => {
            let list = quarantine::list(v).map_err(user_or_internal)?;
            Ok(serde_json::to_value(list).expect("held batches serialise"))
        }
        "quarantine.accept" | "quarantine.reject" => {
            let p: QuarantineParams = serde_json::from_value(req.params)
                .map_err(|e| (INVALID_PARAMS, format!("{} takes {{id}}: {e}", req.method)))?;
            let r = if req.method == "quarantine.accept" {
                quarantine::accept(v, &p.id)
            } else {
                quarantine::reject(v, &p.id)
            }
            .map_err(user_or_internal)?;
            Ok(serde_json::to_value(r).expect("a write report serialises"))
        }
        m => Err((METHOD_NOT_FOUND, format!("no method {m:?}"))),
    }
}

/// The error a method gives for a failed operation: bad params for what
/// the user can fix, internal for the rest. One line either way.
fn user_or_internal(e: anyhow::Error) -> (i64, String) {
    let code = if error::exit_code(&e) == 1 {
        INVALID_PARAMS
    } else {
        INTERNAL_ERROR
    };
    (code, error::one_line(&e))
}

/// A method's params, which it cannot do without: `usage` says what it
/// takes.
fn required<T: serde::de::DeserializeOwned>(p: Value, usage: &str) -> Result<T, (i64, String)> {
    serde_json::from_value(p).map_err(|e| (INVALID_PARAMS, format!("{usage}: {e}")))
}

/// A method's params: absent or null for all defaults.
fn params<T: serde::de::DeserializeOwned + Default>(p: Value) -> Result<T, (i64, String)> {
    if p.is_null() {
        return Ok(T::default());
    }
    serde_json::from_value(p).map_err(|e| (INVALID_PARAMS, format!("bad params: {e}")))
}

/// Runs a command line as the CLI would, with this daemon's vault.
fn run_cli(v: &mut Vault, p: CliParams, stream: Option<Stdout>) -> CliResult {
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let mut chunks = stream.map(|tx| Chunks {
        tx,
        buf: Vec::with_capacity(STDOUT_CHUNK_BYTES),
    });
    let argv = std::iter::once("vellum".to_string()).chain(p.argv);
    let code = match <Cli as clap::Parser>::try_parse_from(argv) {
        // `--help`, `--version` and usage errors print what clap prints.
        Err(e) => {
            let text = e.render().to_string();
            if e.use_stderr() {
                stderr.extend_from_slice(text.as_bytes());
            } else {
                stdout.extend_from_slice(text.as_bytes());
            }
            e.exit_code() as u8
        }
        Ok(mut cli) => {
            cli.absolutize(&p.cwd);
            let root = v.root.clone();
            let out: &mut dyn std::io::Write = match &mut chunks {
                Some(c) => c,
                None => &mut stdout,
            };
            let mut io = Io {
                out,
                err: &mut stderr,
            };
            let ran = commands::run(cli, &mut Lend { vault: v, root }, &mut io);
            let flushed = io.out.flush();
            match ran.and_then(|()| flushed.map_err(anyhow::Error::from)) {
                Ok(()) => 0,
                Err(e) => {
                    stderr
                        .extend_from_slice(format!("vellum: {}\n", error::one_line(&e)).as_bytes());
                    error::exit_code(&e) as u8
                }
            }
        }
    };
    CliResult {
        code,
        stdout: BASE64.encode(&stdout),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Standard output sent on as it is written, in chunks; the vault's thread
/// waits while the connection is behind, so memory stays bounded.
struct Chunks {
    tx: Stdout,
    buf: Vec<u8>,
}

impl std::io::Write for Chunks {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= STDOUT_CHUNK_BYTES {
            self.flush()?;
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(STDOUT_CHUNK_BYTES));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client hung up"))
    }
}

/// The daemon's vault for commands that name it; any other vault opened
/// as the CLI would.
struct Lend<'a> {
    vault: &'a mut Vault,
    root: PathBuf,
}

impl Vaults for Lend<'_> {
    fn open(&mut self, vault: Option<&Path>) -> anyhow::Result<VaultRef<'_>> {
        let Some(vault) = vault else {
            return Ok(VaultRef::Lent(self.vault));
        };
        let asked = vault::find_root(Some(vault))?;
        if vault::same_dir(&asked, &self.root) {
            Ok(VaultRef::Lent(self.vault))
        } else {
            Ok(VaultRef::Opened(Box::new(Vault::open(Some(&asked))?)))
        }
    }
}
