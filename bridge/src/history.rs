//! Reading history: log, show, checkout, diff, and resolving points.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;
use vellum_journal::control::Control;
use vellum_journal::payload::{Action, Body};
use vellum_journal::point::{OP_PREFIX_HEX_MIN, Point};
use vellum_journal::replay::{FileKind, VaultState};
use vellum_journal::store::{Ks, Store};
use vellum_journal::{FileId, OrderKey, VersionVector, hlc, path};
use vellum_snapshots::TimeMachine;
use vellum_snapshots::contents::{EFFECT_NO_EFFECT, body_of, write_body};

use crate::disk;
use crate::error::user;
use crate::ignore_rules::Rules;
use crate::vault::{Vault, now_ms};

pub fn resolve(v: &Vault, point: &str) -> Result<VersionVector> {
    let tz = jiff::tz::TimeZone::system();
    let p = Point::parse(point, now_ms(), &tz)?;
    Ok(p.resolve(&v.journal)?)
}

pub fn state_at(v: &Vault, vv: &VersionVector) -> Result<VaultState> {
    Ok(TimeMachine::state_at(&v.journal, vv)?)
}

/// A PATH argument as a vault path: absolute paths must lie in the vault;
/// relative ones are taken from the current folder when it is inside the
/// vault, else from the vault root.
pub fn vault_path(v: &Vault, arg: &str) -> Result<String> {
    let root = v.root.canonicalize().unwrap_or_else(|_| v.root.clone());
    let given = Path::new(arg);
    let rel: PathBuf = if given.is_absolute() {
        given
            .strip_prefix(&root)
            .or_else(|_| given.strip_prefix(&v.root))
            .map_err(|_| user(format!("{arg} is outside the vault {}", v.root.display())))?
            .to_path_buf()
    } else {
        match std::env::current_dir()
            .ok()
            .and_then(|c| c.canonicalize().ok())
        {
            Some(cwd) if cwd.starts_with(&root) => {
                cwd.strip_prefix(&root).expect("checked").join(given)
            }
            _ => given.to_path_buf(),
        }
    };
    let s = rel
        .to_str()
        .ok_or_else(|| user(format!("{arg} is not valid UTF-8")))?
        .trim_end_matches('/');
    if s.split('/').any(|c| c == "..") {
        return Err(user(format!("{arg} is outside the vault")));
    }
    path::normalize(s).map_err(|e| user(e.to_string()))
}

pub fn time_string(hlc_value: u64) -> String {
    let ms = hlc::wall_ms(hlc_value) as i64;
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// One row of `vellum log` (DESIGN §8). `hlc` is a string: it passes
/// 2^53, where JSON numbers stop being exact in JavaScript; `seq` and
/// `lamport` grow by one per op and stay numbers.
#[derive(Serialize, Clone, Debug, PartialEq, Eq, ts_rs::TS)]
pub struct LogEntry {
    pub id: String,
    pub author: String,
    pub seq: u64,
    pub lamport: u64,
    pub hlc: String,
    pub time: String,
    pub kind: String,
    pub path: Option<String>,
    pub file: Option<String>,
    pub summary: String,
}

impl LogEntry {
    fn new(
        key: &vellum_journal::OrderKey,
        seq: u64,
        hlc: u64,
        kind: &str,
        path: Option<String>,
        file: Option<vellum_journal::FileId>,
        summary: String,
    ) -> LogEntry {
        LogEntry {
            id: key.id.short(),
            author: key.author.short(),
            seq,
            lamport: key.lamport,
            hlc: hlc.to_string(),
            time: time_string(hlc),
            kind: kind.to_string(),
            path,
            file: file.map(|f| f.short()),
            summary,
        }
    }
}

/// Ops read from the journal per page while listing the log.
const LOG_PAGE_OPS: usize = 256;

/// The log, newest first: at most `limit` entries, only ops on
/// `path_filter` and by `author` when given, and only ops that sort before
/// op `older_than` when given. That op is a cursor: paging with it costs
/// one page however deep, where skipping entries would describe them all.
pub fn log(
    v: &mut Vault,
    path_filter: Option<&str>,
    author: Option<&str>,
    older_than: Option<&str>,
    limit: usize,
) -> Result<Vec<LogEntry>> {
    let head = v.head()?;
    let path_filter = path_filter.map(|p| vault_path(v, p)).transpose()?;
    let author = author.map(str::to_ascii_lowercase);
    let mut out = Vec::new();
    let mut page: Vec<(OrderKey, u64)> = Vec::new();
    let mut before: Option<OrderKey> = older_than.map(|p| order_key_of(v, p)).transpose()?;
    loop {
        if out.len() >= limit {
            break;
        }
        let Some((key, seq)) = page.pop() else {
            page = v.journal.page_rev(before.as_ref(), LOG_PAGE_OPS)?;
            if page.is_empty() {
                break;
            }
            before = page.last().map(|(k, _)| *k);
            page.reverse();
            continue;
        };
        if let Some(a) = &author
            && !key.author.to_hex().starts_with(a.as_str())
        {
            continue;
        }
        let d = describe(v, &head, &key, seq)?;
        if let Some(pf) = &path_filter {
            let under = |p: &str| p == pf || p.starts_with(&format!("{pf}/"));
            if !d.paths.iter().any(|p| under(p)) {
                continue;
            }
        }
        out.push(d.entry);
    }
    Ok(out)
}

/// Where the admitted op whose id starts with `prefix` sorts.
fn order_key_of(v: &Vault, prefix: &str) -> Result<OrderKey> {
    let hex = prefix.len() >= OP_PREFIX_HEX_MIN && prefix.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex {
        return Err(user(format!(
            "{prefix:?} is not an op id; give {OP_PREFIX_HEX_MIN} or more hex digits from `vellum log`"
        )));
    }
    let id = v.journal.op_with_prefix(&prefix.to_ascii_lowercase())?;
    let meta = v
        .journal
        .op_meta(&id)?
        .ok_or_else(|| user(format!("no op with id {prefix}…")))?;
    Ok(meta.order_key())
}

/// One op as `vellum log` shows it, and the paths it is about (where it
/// put its file, where the file is now, where a rename took it from), for
/// filtering by path.
pub struct Described {
    pub entry: LogEntry,
    pub paths: Vec<String>,
}

/// Describes admitted op `key` (at `seq` in its author's chain) against
/// the `head` state.
pub fn describe(v: &Vault, head: &VaultState, key: &OrderKey, seq: u64) -> Result<Described> {
    let env = v.journal.load_at(key)?;
    let payload = match v.journal.load_payload(&env) {
        Ok(p) => p,
        // Sealed under a key this device does not hold (yet, or since it
        // was removed): listed, unread.
        Err(vellum_journal::Error::Keys(_)) => {
            return Ok(Described {
                entry: LogEntry::new(
                    key,
                    seq,
                    env.header().hlc,
                    "sealed",
                    None,
                    None,
                    "sealed under a key this device does not hold".to_string(),
                ),
                paths: Vec::new(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let file = match &payload.action {
        Action::Create { .. } => Some(key.id),
        _ => payload.file(),
    };
    let current = file
        .and_then(|f| head.files.get(&head.route(f)))
        .map(|f| f.path.clone());
    let (op_path, mut summary) = match &payload.action {
        Action::Genesis { merge_version } => (
            None,
            format!("vault created (merge version {merge_version})"),
        ),
        Action::DeviceInfo { name } => (None, format!("device named {name:?}")),
        Action::Member { name } => match Control::parse(env.control()) {
            Ok(Control::Member(m)) => (
                None,
                format!(
                    "added device {} ({name:?}) as a {} member",
                    m.device.short(),
                    role_name(m.role)
                ),
            ),
            _ => (None, format!("member op for {name:?}")),
        },
        Action::Control => match Control::parse(env.control()) {
            Ok(Control::Member(m)) => (None, format!("removed device {}", m.device.short())),
            Ok(Control::KeyRotate(r)) => (
                None,
                format!("new vault key, sealed to {} devices", r.sealed.len()),
            ),
            Ok(Control::KeyShare(s)) => (
                None,
                format!(
                    "shared the key of {} with {} devices",
                    s.epoch.short(),
                    s.sealed.len()
                ),
            ),
            Err(_) => (None, "control op".to_string()),
        },
        Action::VaultConfig { ignore, .. } => (
            None,
            format!("vault config ({} ignore rules)", ignore.len()),
        ),
        Action::Create { path, body, .. } => (
            Some(path.clone()),
            format!("create {path} ({})", size_text(body.size())),
        ),
        Action::Edit { result_size, .. } => (
            current.clone(),
            format!(
                "edit {} ({})",
                current.as_deref().unwrap_or("?"),
                size_text(*result_size)
            ),
        ),
        Action::Replace { body, .. } => (
            current.clone(),
            format!(
                "replace {} ({})",
                current.as_deref().unwrap_or("?"),
                size_text(body.size())
            ),
        ),
        Action::Delete { .. } => (
            current.clone(),
            format!("delete {}", current.as_deref().unwrap_or("?")),
        ),
        Action::Rename { from, to, .. } => (Some(to.clone()), format!("rename {from} → {to}")),
        Action::Resolve { .. } => (
            current.clone(),
            format!("resolve {}", current.as_deref().unwrap_or("?")),
        ),
    };
    if let Some(c) = &payload.cause {
        use vellum_journal::payload::Cause;
        match c {
            Cause::Restore { .. } => summary.push_str(" [restore]"),
            Cause::Rollback { .. } => summary.push_str(" [rollback]"),
            Cause::Reject { .. } => summary.push_str(" [quarantine reject]"),
        }
    }
    if let Some(rec) = v.journal.store().get(Ks::Effects, &key.to_bytes())?
        && rec.first() == Some(&EFFECT_NO_EFFECT)
    {
        summary.push_str(&format!(
            " (no effect: {})",
            String::from_utf8_lossy(&rec[2..])
        ));
    }
    let renamed_from = match &payload.action {
        Action::Rename { from, .. } => Some(from.clone()),
        _ => None,
    };
    let entry = LogEntry::new(
        key,
        seq,
        env.header().hlc,
        payload.kind_name(),
        op_path.clone(),
        file,
        summary,
    );
    Ok(Described {
        entry,
        paths: op_path
            .into_iter()
            .chain(current)
            .chain(renamed_from)
            .collect(),
    })
}

fn role_name(role: vellum_journal::control::Role) -> &'static str {
    match role {
        vellum_journal::control::Role::Full => "full",
        vellum_journal::control::Role::Blind => "blind",
        vellum_journal::control::Role::Recovery => "recovery",
    }
}

fn size_text(bytes: u64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1024 * 1024 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
    }
}

/// The file at `path` in `state`, or a user error naming the point.
pub fn file_in<'a>(
    state: &'a VaultState,
    path: &str,
    point: &str,
) -> Result<(FileId, &'a vellum_journal::replay::FileState)> {
    state
        .file_at(path)
        .ok_or_else(|| user(format!("{path} did not exist at {point}")))
}

pub fn show(v: &Vault, path_arg: &str, point: &str, out: &mut dyn Write) -> Result<ShowInfo> {
    let p = vault_path(v, path_arg)?;
    let vv = resolve(v, point)?;
    let state = state_at(v, &vv)?;
    let (id, f) = file_in(&state, &p, point)?;
    let body = body_of(&v.journal, id, f.hash, &vv)?;
    let text = match &body {
        Body::Text(t) => Some(t.clone()),
        Body::Blob(_) => None,
    };
    write_body(&v.journal, &body, out)?;
    Ok(ShowInfo {
        info: FileInfo::of(&p, id, f),
        text,
    })
}

/// A file as of a point (`vellum show --json`, the `show` method).
#[derive(Serialize, Clone, Debug, ts_rs::TS)]
pub struct ShowInfo {
    #[serde(flatten)]
    #[ts(flatten)]
    pub info: FileInfo,
    /// The text; null for a binary file.
    pub text: Option<String>,
}

/// The vault's files as of a point (`checkout.preview`).
#[derive(Serialize, Clone, Debug, ts_rs::TS)]
pub struct Tree {
    /// The point, as a `vv:` string.
    pub at: String,
    pub files: Vec<FileInfo>,
}

/// A live file as of some point: where, which, what content, how big,
/// when it was last changed, text or binary.
#[derive(Serialize, Clone, Debug, ts_rs::TS)]
pub struct FileInfo {
    pub path: String,
    pub file: String,
    pub hash: String,
    pub size: u64,
    pub mtime: String,
    pub kind: String,
}

impl FileInfo {
    fn of(path: &str, id: FileId, f: &vellum_journal::replay::FileState) -> FileInfo {
        FileInfo {
            path: path.to_string(),
            file: id.short(),
            hash: f.hash.to_hex(),
            size: f.size,
            mtime: time_string((f.mtime_ms.max(0) as u64) << hlc::LOGICAL_BITS),
            kind: kind_name(f.kind).into(),
        }
    }
}

/// The files `checkout --at point` would write (those under `prefix`),
/// by path; nothing is written.
pub fn tree(v: &Vault, point: &str, prefix: Option<&str>) -> Result<Tree> {
    let prefix = prefix.map(|p| vault_path(v, p)).transpose()?;
    let vv = resolve(v, point)?;
    let state = state_at(v, &vv)?;
    let rules = Rules::new(&v.root, &state.ignore)?;
    let files = state
        .live_files()
        .filter(|(p, _, _)| !rules.ignored(p, false))
        .filter(|(p, _, _)| {
            prefix
                .as_deref()
                .is_none_or(|pre| p.as_str() == pre || p.starts_with(&format!("{pre}/")))
        })
        .map(|(p, id, f)| FileInfo::of(p, *id, f))
        .collect();
    Ok(Tree {
        at: vv.to_point_string(),
        files,
    })
}

fn kind_name(k: FileKind) -> &'static str {
    if k == FileKind::Text {
        "text"
    } else {
        "binary"
    }
}

#[derive(Serialize)]
pub struct CheckoutReport {
    pub at: String,
    pub files: u64,
    pub bytes: u64,
}

/// Above this many uncached versions, a checkout replays forward once
/// instead of rebuilding file by file.
const CHECKOUT_REBUILD_FILES_MAX: usize = 200;

pub fn checkout(v: &Vault, point: &str, dest: &Path) -> Result<CheckoutReport> {
    let vv = resolve(v, point)?;
    disk::require_new_or_empty(dest, "checkout")?;
    let root = v.root.canonicalize()?;
    let abs_dest = if dest.is_absolute() {
        dest.to_path_buf()
    } else {
        std::env::current_dir()?.join(dest)
    };
    let probe = abs_dest
        .ancestors()
        .find(|a| a.exists())
        .and_then(|a| a.canonicalize().ok());
    if probe.is_some_and(|p| p.starts_with(&root)) {
        return Err(user(format!(
            "{} is inside the vault; check out to a folder outside it",
            dest.display()
        )));
    }
    let mut state = state_at(v, &vv)?;
    // Versions not in the content cache are rebuilt from their files' ops;
    // when many are missing (an old point), one forward replay of the
    // whole journal to the point is faster than rebuilding each file.
    let uncached = state
        .live_files()
        .filter(|(_, _, f)| {
            v.journal
                .store()
                .get(Ks::Content, &f.hash.0)
                .map_or(true, |c| c.is_none())
        })
        .count();
    let mut bodies = HashMap::new();
    if uncached > CHECKOUT_REBUILD_FILES_MAX {
        (state, bodies) = TimeMachine::contents_at(&v.journal, &vv)?;
    }
    let rules = Rules::new(&v.root, &state.ignore)?;
    std::fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    let mut report = CheckoutReport {
        at: vv.to_point_string(),
        files: 0,
        bytes: 0,
    };
    for (p, id, f) in state.live_files() {
        if rules.ignored(p, false) {
            continue;
        }
        let body = match bodies.remove(id) {
            Some(b) => b,
            None => body_of(&v.journal, *id, f.hash, &vv)?,
        };
        disk::write_new(dest, p, f.mtime_ms, &mut |file| {
            Ok(write_body(&v.journal, &body, file)?)
        })?;
        report.files += 1;
        report.bytes += f.size;
    }
    Ok(report)
}

/// A file on one side of a diff, if it is live there.
type Side<'a> = Option<(FileId, &'a vellum_journal::replay::FileState)>;

/// One changed file of `vellum diff --json`.
#[derive(Serialize, Clone, Debug, PartialEq, Eq, ts_rs::TS)]
pub struct DiffEntry {
    pub path: String,
    pub change: String,
    pub old_path: Option<String>,
}

/// How long `diff` looks for the shortest line diff of one file, in ms.
/// Myers is quadratic on a rewrite (20,000 changed lines took 3.7 s) and
/// the daemon answers `diff` on its vault thread. Past the deadline the
/// rest of the file shows as removed and added lines: still a correct
/// diff, only a longer one. Display only: nothing recorded or replayed
/// reads it.
const DIFF_FILE_TIMEOUT_MS: u64 = 250;

pub fn diff(
    v: &Vault,
    from: &str,
    to: &str,
    path_arg: Option<&str>,
    out: Option<&mut dyn Write>,
) -> Result<Vec<DiffEntry>> {
    let (vv_a, vv_b) = (resolve(v, from)?, resolve(v, to)?);
    let a = state_at(v, &vv_a)?;
    let b = state_at(v, &vv_b)?;
    let filter = path_arg.map(|p| vault_path(v, p)).transpose()?;
    let under = |p: &str| {
        filter
            .as_deref()
            .is_none_or(|f| p == f || p.starts_with(&format!("{f}/")))
    };
    let ids: BTreeSet<FileId> = a.paths.values().chain(b.paths.values()).copied().collect();
    let mut rows: BTreeMap<String, (DiffEntry, Side<'_>, Side<'_>)> = BTreeMap::new();
    for id in ids {
        let fa = a.files.get(&id).filter(|f| f.exists);
        let fb = b.files.get(&id).filter(|f| f.exists);
        let entry = match (fa, fb) {
            (None, Some(nb)) => DiffEntry {
                path: nb.path.clone(),
                change: "added".into(),
                old_path: None,
            },
            (Some(na), None) => DiffEntry {
                path: na.path.clone(),
                change: "deleted".into(),
                old_path: None,
            },
            (Some(na), Some(nb)) if na.path != nb.path => DiffEntry {
                path: nb.path.clone(),
                change: if na.hash == nb.hash {
                    "renamed"
                } else {
                    "renamed_modified"
                }
                .into(),
                old_path: Some(na.path.clone()),
            },
            (Some(na), Some(nb)) if na.hash != nb.hash => DiffEntry {
                path: nb.path.clone(),
                change: "modified".into(),
                old_path: None,
            },
            _ => continue,
        };
        if !(under(&entry.path) || entry.old_path.as_deref().is_some_and(under)) {
            continue;
        }
        rows.insert(
            entry.path.clone(),
            (entry, fa.map(|f| (id, f)), fb.map(|f| (id, f))),
        );
    }
    if let Some(out) = out {
        for (entry, fa, fb) in rows.values() {
            let old = fa
                .map(|(id, f)| body_of(&v.journal, id, f.hash, &vv_a))
                .transpose()?;
            let new = fb
                .map(|(id, f)| body_of(&v.journal, id, f.hash, &vv_b))
                .transpose()?;
            let old_name = format!("a/{}", entry.old_path.as_deref().unwrap_or(&entry.path));
            let new_name = format!("b/{}", entry.path);
            match (&old, &new) {
                (Some(Body::Blob(_)), _) | (_, Some(Body::Blob(_))) => {
                    writeln!(out, "Binary files {old_name} and {new_name} differ")?;
                }
                _ => {
                    let ot = match &old {
                        Some(Body::Text(t)) => t.as_str(),
                        _ => "",
                    };
                    let nt = match &new {
                        Some(Body::Text(t)) => t.as_str(),
                        _ => "",
                    };
                    let (on, nn) = (
                        if old.is_some() {
                            old_name.clone()
                        } else {
                            "/dev/null".into()
                        },
                        if new.is_some() {
                            new_name.clone()
                        } else {
                            "/dev/null".into()
                        },
                    );
                    if ot == nt {
                        writeln!(out, "rename {old_name} → {new_name}")?;
                        continue;
                    }
                    let d = similar::TextDiff::configure()
                        .timeout(std::time::Duration::from_millis(DIFF_FILE_TIMEOUT_MS))
                        .diff_lines(ot, nt);
                    write!(
                        out,
                        "{}",
                        d.unified_diff().context_radius(3).header(&on, &nn)
                    )?;
                }
            }
        }
    }
    Ok(rows.into_values().map(|(e, _, _)| e).collect())
}

/// A vv: string shortened for humans.
pub fn short_point(vv: &str) -> String {
    if vv.len() > 24 {
        format!("{}…", &vv[..24])
    } else {
        vv.to_string()
    }
}
