//! The scanner: compares the disk with the materialised state (what
//! Vellum last wrote or read at each path) and records the differences as
//! ops. It never compares with the replayed head.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use vellum_journal::blob;
use vellum_journal::entropy::OsEntropy;
use vellum_journal::limits::{BLOB_BYTES_MAX, PATCH_DIFF_TIMEOUT_MS, TEXT_BYTES_MAX};
use vellum_journal::payload::{Action, Body, Payload};
use vellum_journal::replay::{FileKind, VaultState, make_patch_within};
use vellum_journal::store::{Batch, Ks};
use vellum_journal::{ContentHash, FileId};
use vellum_journal::{merge, path};
use vellum_snapshots::contents::body_of;

use crate::ignore_rules::Rules;
use crate::quarantine;
use crate::vault::{DiskRec, Stat, Vault, now_ns};

/// Content similarity at or above which a vanished file and a new one are
/// taken as a rename, in percent.
const RENAME_SIMILARITY_MIN_PCT: u64 = 50;
/// Most (vanished, new) pairs compared for a similarity rename per scan.
const RENAME_COMPARISONS_MAX: usize = 20_000;
/// Most bytes of text compared for similarity renames per scan (both sides
/// of every pair): a comparison hashes every line of both, so the count
/// alone would let 20,000 pairs of large notes hold the vault thread for
/// minutes. Past it, the remaining files are a delete and a create: no
/// bytes are lost, only the link between the two in history.
const RENAME_COMPARED_BYTES_MAX: u64 = 64 * 1024 * 1024;

#[derive(Debug, Default, serde::Serialize)]
pub struct ScanReport {
    pub ops_recorded: u64,
    pub created: u64,
    pub edited: u64,
    pub deleted: u64,
    pub renamed: u64,
    /// Files held back for review instead of recorded: the scan found many
    /// of them reverted to an older version or re-created (see
    /// `vellum quarantine list`).
    pub quarantined: u64,
    pub head: String,
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// How a scan treats quarantine.
#[derive(Clone, Copy, Debug)]
pub struct ScanOpts<'a> {
    /// Hold the scan's reverts, re-creates and deletes back for review
    /// when it finds too many files reverted or re-created.
    pub screen: bool,
    /// A held batch being accepted or rejected: its paths are scanned.
    pub release: Option<&'a str>,
}

impl Default for ScanOpts<'_> {
    fn default() -> Self {
        ScanOpts {
            screen: true,
            release: None,
        }
    }
}

/// What a walk of the vault found.
struct Walk {
    files: BTreeMap<String, Found>,
    /// Some folder or entry could not be read: files Vellum knew may still
    /// be there, unseen.
    incomplete: bool,
}

/// A file as found on disk.
struct Found {
    abs: PathBuf,
    stat: Stat,
}

/// A file's content as read for recording.
enum Read_ {
    Text(String),
    /// Not UTF-8, or too large for text: streamed again when stored.
    Binary,
}

struct Fresh {
    hash: ContentHash,
    /// The file's stat just before it was read.
    stat: Stat,
    content: Read_,
}

pub fn mtime_ms(mtime_ns: i64) -> i64 {
    mtime_ns.div_euclid(1_000_000)
}

/// What a scan compares: the whole vault, or some vault-relative paths
/// (files or folders, as the OS names them) and what lies under them.
pub enum Scope<'a> {
    All,
    Paths(&'a [String]),
}

/// Walks the vault: every regular file not ignored, by NFC path.
fn walk(root: &Path, rules: &Rules, warnings: &mut Vec<String>) -> Result<Walk> {
    let mut out = BTreeMap::new();
    let mut incomplete = false;
    walk_from(root, root, rules, warnings, &mut out, &mut incomplete);
    Ok(Walk {
        files: out,
        incomplete,
    })
}

/// Walks `paths` (relative to `root`), each a file or a folder; a path that
/// is not there (any more) is simply not found.
fn walk_paths(root: &Path, paths: &[String], rules: &Rules, warnings: &mut Vec<String>) -> Walk {
    let mut out = BTreeMap::new();
    let mut incomplete = false;
    for rel in paths {
        // The walker follows a symlink it starts from, so every component
        // is checked first: a link anywhere on the way is skipped, as a
        // full walk skips it.
        let mut start = root.to_path_buf();
        let mut through_link = None;
        for c in Path::new(rel).components() {
            start.push(c);
            match std::fs::symlink_metadata(&start) {
                Ok(m) if m.file_type().is_symlink() => {
                    through_link = Some(start.clone());
                    break;
                }
                _ => {}
            }
        }
        if let Some(link) = through_link {
            let shown = link
                .strip_prefix(root)
                .unwrap_or(&link)
                .display()
                .to_string();
            warnings.push(format!(
                "skipped symlink {shown}: Vellum does not follow links"
            ));
            continue;
        }
        match std::fs::symlink_metadata(&start) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            _ => walk_from(root, &start, rules, warnings, &mut out, &mut incomplete),
        }
    }
    Walk {
        files: out,
        incomplete,
    }
}

/// Adds every regular file not ignored at or under `start` to `out`.
fn walk_from(
    root: &Path,
    start: &Path,
    rules: &Rules,
    warnings: &mut Vec<String>,
    out: &mut BTreeMap<String, Found>,
    incomplete: &mut bool,
) {
    let root_owned = root.to_path_buf();
    let walker = ignore::WalkBuilder::new(start)
        .standard_filters(false)
        .hidden(false)
        .follow_links(false)
        .sort_by_file_name(|a, b| a.cmp(b))
        .filter_entry(move |e| {
            let Ok(rel) = e.path().strip_prefix(&root_owned) else {
                return true;
            };
            let Some(rel) = rel.to_str() else { return true };
            if rel.is_empty() {
                return true;
            }
            let is_dir = e.file_type().is_some_and(|t| t.is_dir());
            rel != ".vellum" || !is_dir
        })
        .build();
    for entry in walker {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                warnings.push(format!("skipped an unreadable entry: {e}"));
                *incomplete = true;
                continue;
            }
        };
        let Some(ft) = entry.file_type() else {
            continue;
        };
        let Ok(rel) = entry.path().strip_prefix(root) else {
            continue;
        };
        if rel.as_os_str().is_empty() {
            continue;
        }
        let Some(rel_str) = rel.to_str() else {
            warnings.push(format!("skipped {}: the name is not UTF-8", rel.display()));
            continue;
        };
        if rules.ignored(rel_str, ft.is_dir()) {
            continue;
        }
        if ft.is_symlink() {
            warnings.push(format!(
                "skipped symlink {rel_str}: Vellum does not follow links"
            ));
            continue;
        }
        if !ft.is_file() || rel_str.ends_with(crate::disk::TEMP_SUFFIX) {
            continue;
        }
        let mut p = match path::normalize(rel_str) {
            Ok(p) => p,
            Err(e) => {
                warnings.push(format!("skipped {rel_str}: {e}"));
                continue;
            }
        };
        if out.contains_key(&p) {
            // Two names on disk that differ only in Unicode normalisation
            // (Linux allows it) map to one vault path. Neither may be lost:
            // the later one in byte order gets a conflict name.
            let mut n = 1;
            let wanted = p.clone();
            while out.contains_key(&p) {
                p = path::conflict_name(&wanted, "nfd", n);
                n += 1;
            }
            warnings.push(format!(
                "{rel_str} has the same normalised name as another file; recorded as {p}"
            ));
        }
        let meta = match entry.metadata() {
            Ok(m) => m,
            Err(e) => {
                warnings.push(format!("skipped {rel_str}: {e}"));
                continue;
            }
        };
        out.insert(
            p,
            Found {
                abs: entry.path().to_path_buf(),
                stat: Stat::of(&meta),
            },
        );
    }
}

/// `paths` without those inside another of them (a folder covers what is
/// under it), so no file is walked twice.
fn outermost(paths: &[String]) -> Vec<String> {
    let mut sorted: Vec<&String> = paths.iter().collect();
    sorted.sort();
    sorted.dedup();
    let mut out: Vec<String> = Vec::new();
    for p in sorted {
        if out
            .last()
            .is_some_and(|q| p.starts_with(q.as_str()) && p.as_bytes().get(q.len()) == Some(&b'/'))
        {
            continue;
        }
        out.push(p.clone());
    }
    out
}

/// Reads a file for recording: text up to 1 MiB in memory, anything else
/// hashed by streaming.
fn read_fresh(f: &Found) -> std::io::Result<Fresh> {
    let mut file = File::open(&f.abs)?;
    let meta = file.metadata()?;
    let stat = Stat::of(&meta);
    if meta.len() <= TEXT_BYTES_MAX as u64 {
        let mut buf = Vec::with_capacity(meta.len() as usize);
        file.by_ref()
            .take(TEXT_BYTES_MAX as u64 + 1)
            .read_to_end(&mut buf)?;
        if buf.len() <= TEXT_BYTES_MAX {
            let hash = ContentHash::of(&buf);
            let content = match String::from_utf8(buf) {
                Ok(t) => Read_::Text(t),
                Err(_) => Read_::Binary,
            };
            return Ok(Fresh {
                hash,
                stat,
                content,
            });
        }
    }
    let mut file = File::open(&f.abs)?;
    let mut h = blake3::Hasher::new();
    std::io::copy(&mut file, &mut h)?;
    Ok(Fresh {
        hash: ContentHash(*h.finalize().as_bytes()),
        stat,
        content: Read_::Binary,
    })
}

/// Line-multiset similarity of two texts, in percent of their bytes.
fn similarity_pct(a: &str, b: &str) -> u64 {
    if a.is_empty() && b.is_empty() {
        return 100;
    }
    let mut counts: HashMap<&str, i64> = HashMap::new();
    for l in a.split_inclusive('\n') {
        *counts.entry(l).or_default() += 1;
    }
    let mut common = 0u64;
    for l in b.split_inclusive('\n') {
        if let Some(c) = counts.get_mut(l)
            && *c > 0
        {
            *c -= 1;
            common += l.len() as u64;
        }
    }
    200 * common / (a.len() + b.len()) as u64
}

/// Records every change in the vault since the last scan.
pub fn scan(v: &mut Vault) -> Result<ScanReport> {
    scan_in(v, Scope::All)
}

/// Records the changes at `scope`: the whole vault, or only some paths and
/// what is under them (where the watcher saw changes: a save then costs
/// what that file costs, not what the vault does).
pub fn scan_in(v: &mut Vault, scope: Scope<'_>) -> Result<ScanReport> {
    scan_with(v, scope, ScanOpts::default())
}

/// [`scan_in`], with a say on quarantine. Paths that held batches keep
/// from the disk are skipped, but those of `opts.release`.
pub fn scan_with(v: &mut Vault, scope: Scope<'_>, opts: ScanOpts<'_>) -> Result<ScanReport> {
    // The head is read in place: a copy of a 10k-file state costs more
    // than recording a save does.
    v.load_head()?;
    let whole = matches!(scope, Scope::All);
    let rules = v.rules()?;
    let (mut report, payloads, extra, rewrite) = plan(v, scope, opts, &rules)?;
    report.ops_recorded = payloads.len() as u64;
    v.append(payloads, extra)?;
    crate::materialise::rewrite(v, &rewrite)?;
    if whole {
        // Files the head has at paths that stopped being ignored reach
        // the disk in the catch-up below.
        crate::materialise::note_ignore_change(v, v.head_state())?;
    }
    if whole || report.ops_recorded > 0 {
        // Writes an earlier pass could not make (the user was changing
        // the file, say), now that what the user did is recorded.
        if let Err(e) = crate::materialise::catch_up_disk(v) {
            report.warnings.push(crate::error::one_line(&e));
        }
    }
    report.head = v.journal.admitted().to_point_string();
    // Warnings name paths, which logs show only at debug level.
    if !report.warnings.is_empty() {
        tracing::warn!(
            count = report.warnings.len(),
            "some files were skipped (unreadable, changing while read, or not allowed); they are tried again at the next scan"
        );
    }
    for w in &report.warnings {
        tracing::debug!("{w}");
    }
    if report.quarantined > 0 {
        tracing::warn!(
            files = report.quarantined,
            "a scan found many files reverted to older versions or re-created, and held them back for review ('vellum quarantine list')"
        );
    }
    Ok(report)
}

/// What a scan at `scope` records: the report so far, the ops, the disk
/// records to write with them, and the paths to write the head's text to.
type Plan = (ScanReport, Vec<Payload>, Batch, Vec<String>);

fn plan(v: &Vault, scope: Scope<'_>, opts: ScanOpts<'_>, rules: &Rules) -> Result<Plan> {
    let mut report = ScanReport::default();
    let scan_ns = now_ns();
    let head = v.head_state();
    let hold = quarantine::hold_except(v, opts.release)?;
    let (recs, walked) = match scope {
        Scope::All => (
            v.disk_records()?,
            walk(&v.root, rules, &mut report.warnings)?,
        ),
        Scope::Paths(paths) => {
            let paths = outermost(paths);
            let mut names = Vec::with_capacity(paths.len());
            for p in &paths {
                // Records are by NFC path; one that cannot be a vault path
                // holds no record.
                if let Ok(n) = path::normalize(p) {
                    names.push(n);
                }
            }
            (
                v.disk_records_under(&names)?,
                walk_paths(&v.root, &paths, rules, &mut report.warnings),
            )
        }
    };
    // Held paths are left as they are, on disk and in the records.
    let (mut found, mut recs) = (walked.files, recs);
    if !hold.is_empty() {
        found.retain(|p, _| !hold.paths.contains(p));
        recs.retain(|p, _| !hold.paths.contains(p));
    }
    let dedup_key = v
        .journal
        .write_epoch()?
        .and_then(|epoch| v.journal.keys().dedup_key(&epoch))
        .context("this device holds no vault key it may write with")?;

    let mut extra = Batch::new();
    let mut changed: BTreeMap<String, Fresh> = BTreeMap::new();
    for (p, f) in &found {
        let rec = recs.get(p);
        if rec.is_some_and(|r| r.unchanged(&f.stat)) {
            continue;
        }
        if f.stat.size > BLOB_BYTES_MAX {
            // Not even read: a scan every minute must not hash it again.
            report.warnings.push(format!(
                "skipped {p}: {} MiB is more than the {} MiB a file may have",
                f.stat.size >> 20,
                BLOB_BYTES_MAX >> 20
            ));
            continue;
        }
        let fresh = match read_fresh(f) {
            Ok(x) => x,
            Err(e) => {
                report
                    .warnings
                    .push(format!("could not read {p}: {e}; will retry next scan"));
                continue;
            }
        };
        // Without a record, the head's file at this path is what the disk
        // is compared with (a journal restored from an older copy lacks
        // records of files its missing ops wrote).
        let known = rec
            .map(|r| r.hash)
            .or_else(|| head.file_at(p).map(|(_, f)| f.hash));
        if known == Some(fresh.hash) {
            // Touched, not changed (or just not recorded yet): remember the
            // stat, record nothing.
            extra.put(
                Ks::Disk,
                p.as_bytes().to_vec(),
                rec_of(&fresh, scan_ns).to_bytes(),
            );
            continue;
        }
        changed.insert(p.clone(), fresh);
    }
    // Paths Vellum knew that are gone. Unreadable files were still found,
    // so they never count as gone; and when a folder could not be read, no
    // file counts as gone at all: a permission glitch must not become a
    // batch of deletes.
    let mut gone: BTreeMap<String, (FileId, DiskRec)> = BTreeMap::new();
    if walked.incomplete {
        report.warnings.push(
            "part of the vault could not be read: no deletions are recorded until it can".into(),
        );
    }
    let mut forget = Vec::new();
    for (p, r) in &recs {
        if found.contains_key(p) || walked.incomplete {
            continue;
        }
        forget.push(p.clone());
        // Not walked because a glob now ignores it, not gone: the file is
        // left as it is, on disk and in the journal, and only its record
        // goes. Should the glob go, the file is then compared with the
        // head's version, as one found for the first time.
        if rules.ignored(p, false) {
            continue;
        }
        if let Some((id, _)) = head.file_at(p) {
            gone.insert(p.clone(), (id, *r));
        }
    }
    let mut new_paths: BTreeSet<String> = changed
        .keys()
        .filter(|p| head.file_at(p).is_none())
        .cloned()
        .collect();

    if opts.screen
        && let Some(held) = screen(v, head, &recs, &gone, &changed, &new_paths, scan_ns)?
    {
        for f in &held.files {
            gone.remove(&f.path);
            changed.remove(&f.path);
            new_paths.remove(&f.path);
        }
        let held_paths: BTreeSet<&str> = held.files.iter().map(|f| f.path.as_str()).collect();
        forget.retain(|p| !held_paths.contains(p.as_str()));
        report.quarantined = held.files.len() as u64;
        quarantine::save_into(&held, &mut extra);
    }
    for p in forget {
        extra.delete(Ks::Disk, p.into_bytes());
    }

    // Renames: identical content first, then similar text.
    let mut renames: Vec<(String, String)> = Vec::new();
    for (old, (_, r)) in &gone {
        if let Some(new) = new_paths
            .iter()
            .find(|n| changed[*n].hash == r.hash)
            .cloned()
        {
            new_paths.remove(&new);
            renames.push((old.clone(), new));
        }
    }
    let paired: BTreeSet<String> = renames.iter().map(|(o, _)| o.clone()).collect();
    let mut candidates = Vec::new();
    let mut comparisons = 0;
    let mut compared_bytes = 0;
    'outer: for (old, (id, r)) in gone.iter().filter(|(o, _)| !paired.contains(*o)) {
        let old_kind = head.files.get(id).map(|f| f.kind);
        if old_kind != Some(FileKind::Text) {
            continue;
        }
        let mut old_text: Option<String> = None;
        for new in &new_paths {
            let Read_::Text(new_text) = &changed[new].content else {
                continue;
            };
            let (a, b) = (r.stat.size.max(1), (new_text.len() as u64).max(1));
            if a.min(b) * 2 < a.max(b) {
                continue;
            }
            comparisons += 1;
            compared_bytes += a + b;
            if comparisons > RENAME_COMPARISONS_MAX || compared_bytes > RENAME_COMPARED_BYTES_MAX {
                break 'outer;
            }
            if old_text.is_none() {
                old_text = match body_of(&v.journal, *id, r.hash, v.journal.admitted())? {
                    Body::Text(t) => Some(t),
                    Body::Blob(_) => None,
                };
            }
            let Some(ot) = &old_text else { continue 'outer };
            let pct = similarity_pct(ot, new_text);
            if pct >= RENAME_SIMILARITY_MIN_PCT {
                candidates.push((std::cmp::Reverse(pct), old.clone(), new.clone()));
            }
        }
    }
    candidates.sort();
    let mut used_old: BTreeSet<String> = paired;
    for (_, old, new) in candidates {
        if used_old.contains(&old) || !new_paths.contains(&new) {
            continue;
        }
        used_old.insert(old.clone());
        new_paths.remove(&new);
        renames.push((old, new));
    }

    let now = crate::vault::now_ms() as i64;
    let mut payloads = Vec::new();
    let mut rewrite = Vec::new();
    let mut entropy = OsEntropy;
    // Deletes first, so their paths are free for what follows.
    for (old, (id, r)) in &gone {
        if used_old.contains(old) {
            continue;
        }
        payloads.push(Payload::new(Action::Delete {
            file: *id,
            base: r.hash,
            mtime_ms: now,
        }));
        report.deleted += 1;
    }
    for (old, new) in &renames {
        let (id, r) = gone[old];
        let fresh = &changed[new];
        payloads.push(Payload::new(Action::Rename {
            file: id,
            from: old.clone(),
            to: new.clone(),
            mtime_ms: mtime_ms(fresh.stat.mtime_ns),
        }));
        report.renamed += 1;
        if fresh.hash != r.hash {
            let change = content_change(
                v,
                head,
                id,
                r.hash,
                new,
                fresh,
                &found[new],
                &dedup_key,
                &mut entropy,
            );
            match unsteady(change, &mut report.warnings)? {
                // Recorded at the next scan, against the renamed file.
                None => continue,
                Some(Some(op)) => {
                    payloads.push(op);
                    report.edited += 1;
                }
                Some(None) => {}
            }
        }
        extra.put(
            Ks::Disk,
            new.as_bytes().to_vec(),
            rec_of(fresh, scan_ns).to_bytes(),
        );
    }
    for (p, fresh) in &changed {
        if renames.iter().any(|(_, n)| n == p) {
            continue;
        }
        if new_paths.contains(p) {
            let body = body_for(v, fresh, &found[p], false, &dedup_key, &mut entropy);
            let Some(body) = unsteady(body, &mut report.warnings)? else {
                continue;
            };
            payloads.push(Payload::new(Action::Create {
                path: p.clone(),
                mtime_ms: mtime_ms(fresh.stat.mtime_ns),
                body,
            }));
            report.created += 1;
        } else {
            let (id, f) = head.file_at(p).expect("not new, so known");
            let rec = recs.get(p);
            let mut base = rec.map_or(f.hash, |r| r.hash);
            if let Some(r) = rec
                && let Some(older) = stale_buffer(v, id, r, fresh, scan_ns)?
            {
                // The merge keeps the newer work; the disk is then given
                // the merged text.
                base = older;
                rewrite.push(p.clone());
            }
            let change = content_change(
                v,
                head,
                id,
                base,
                p,
                fresh,
                &found[p],
                &dedup_key,
                &mut entropy,
            );
            match unsteady(change, &mut report.warnings)? {
                None => {
                    rewrite.retain(|r| r != p);
                    continue;
                }
                Some(Some(op)) => {
                    payloads.push(op);
                    report.edited += 1;
                }
                Some(None) => {}
            }
        }
        extra.put(
            Ks::Disk,
            p.as_bytes().to_vec(),
            rec_of(fresh, scan_ns).to_bytes(),
        );
    }
    Ok((report, payloads, extra, rewrite))
}

/// The batch a scan holds back instead of recording (DESIGN §8), if any:
/// when more files than the quarantine threshold are reverted to an older
/// version of themselves or re-created with a deleted file's content (a
/// vault folder restored from an old copy), those and the files the scan
/// found gone. Fewer changes than could ever reach the threshold are not
/// looked at, so an ordinary save costs nothing here.
#[allow(clippy::too_many_arguments)]
fn screen(
    v: &Vault,
    head: &VaultState,
    recs: &BTreeMap<String, DiskRec>,
    gone: &BTreeMap<String, (FileId, DiskRec)>,
    changed: &BTreeMap<String, Fresh>,
    new_paths: &BTreeSet<String>,
    scan_ns: i64,
) -> Result<Option<quarantine::Held>> {
    if gone.len() + changed.len() < quarantine::SHARE_MIN_FILES {
        return Ok(None);
    }
    let mut files = Vec::new();
    for (p, fresh) in changed {
        let Some(rec) = recs.get(p) else { continue };
        if new_paths.contains(p) {
            continue;
        }
        let Some((id, _)) = head.file_at(p) else {
            continue;
        };
        if fresh.hash != rec.hash && quarantine::versions_of(v, id)?.contains(&fresh.hash) {
            files.push(quarantine::HeldFile {
                path: p.clone(),
                file: Some(id.to_hex()),
                change: quarantine::Change::Revert,
                disk: Some(fresh.hash.to_hex()),
            });
        }
    }
    if !new_paths.is_empty() {
        let mut deleted: HashMap<&str, Vec<(FileId, ContentHash)>> = HashMap::new();
        for (id, f) in &head.files {
            if !f.exists {
                deleted
                    .entry(f.path.as_str())
                    .or_default()
                    .push((*id, f.hash));
            }
        }
        for p in new_paths {
            let hash = changed[p].hash;
            if let Some((id, _)) = deleted
                .get(p.as_str())
                .and_then(|ds| ds.iter().find(|(_, h)| *h == hash))
            {
                files.push(quarantine::HeldFile {
                    path: p.clone(),
                    file: Some(id.to_hex()),
                    change: quarantine::Change::Recreate,
                    disk: Some(hash.to_hex()),
                });
            }
        }
    }
    if !quarantine::over_threshold(files.len(), head.paths.len()) {
        return Ok(None);
    }
    for (p, (id, _)) in gone {
        files.push(quarantine::HeldFile {
            path: p.clone(),
            file: Some(id.to_hex()),
            change: quarantine::Change::Delete,
            disk: None,
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Some(quarantine::scan_batch(files, scan_ns)))
}

/// How long after a sync write a save is checked for being a stale buffer.
const SYNC_WRITE_WINDOW_NS: i64 = 10_000_000_000;

/// The older content that a save at a file is a stale buffer of, if it is
/// one (DESIGN §8): within [`SYNC_WRITE_WINDOW_NS`] of a sync write that
/// replaced `older` (`rec.replaced`), the disk holds `older` itself, or a
/// text nearer to it than to what the sync wrote: an editor saved the
/// buffer it had before the sync write, maybe with the user's edits. The
/// caller takes `older` as the base, so the merge keeps the newer work
/// instead of recording a revert.
fn stale_buffer(
    v: &Vault,
    file: FileId,
    rec: &DiskRec,
    fresh: &Fresh,
    now_ns: i64,
) -> Result<Option<ContentHash>> {
    let Some(older) = rec.replaced else {
        return Ok(None);
    };
    if now_ns.saturating_sub(rec.recorded_ns) > SYNC_WRITE_WINDOW_NS {
        return Ok(None);
    }
    if fresh.hash == older {
        return Ok(Some(older));
    }
    let Read_::Text(disk) = &fresh.content else {
        return Ok(None);
    };
    let text = |hash| -> Result<Option<String>> {
        Ok(
            match body_of(&v.journal, file, hash, v.journal.admitted())? {
                Body::Text(t) => Some(t),
                Body::Blob(_) => None,
            },
        )
    };
    let (Some(before), Some(synced)) = (text(older)?, text(rec.hash)?) else {
        return Ok(None);
    };
    Ok((similarity_pct(disk, &before) > similarity_pct(disk, &synced)).then_some(older))
}

fn rec_of(f: &Fresh, recorded_ns: i64) -> DiskRec {
    DiskRec {
        replaced: None,
        hash: f.hash,
        stat: f.stat,
        recorded_ns,
    }
}

/// A file the scan records nothing for (not even its stat), with the
/// warning why: it vanished or changed between being hashed and being
/// stored (the next scan reads it again), or it is too large to store.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Skip(String);

impl Skip {
    fn unsteady(shown: String) -> Skip {
        Skip(format!(
            "{shown} changed or vanished while it was being read; it is read again at the next scan"
        ))
    }
}

/// `Some(x)` for a result, `None` (with a warning) for a file to [`Skip`],
/// and any other error as it is.
fn unsteady<T>(r: Result<T>, warnings: &mut Vec<String>) -> Result<Option<T>> {
    match r {
        Ok(x) => Ok(Some(x)),
        Err(e) => match e.downcast_ref::<Skip>() {
            Some(u) => {
                warnings.push(u.to_string());
                Ok(None)
            }
            None => Err(e),
        },
    }
}

/// The body to record for fresh content: text inline, anything else (or
/// anything for a file that has been binary) as a blob.
fn body_for(
    v: &Vault,
    fresh: &Fresh,
    found: &Found,
    sticky_binary: bool,
    dedup_key: &[u8; 32],
    entropy: &mut OsEntropy,
) -> Result<Body> {
    match &fresh.content {
        Read_::Text(t) if !sticky_binary => Ok(Body::Text(t.clone())),
        _ => {
            let shown = || found.abs.display().to_string();
            let file = match File::open(&found.abs) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(Skip::unsteady(shown()).into());
                }
                Err(e) => return Err(e).with_context(|| format!("reading {}", shown())),
            };
            let size = fresh.stat.size;
            let blob =
                match blob::store_blob_of_size(v.journal.store(), file, size, dedup_key, entropy) {
                    Ok(b) => b,
                    Err(vellum_journal::Error::Usage(why)) => {
                        return Err(Skip(format!("skipped {}: {why}", shown())).into());
                    }
                    Err(e) => return Err(e.into()),
                };
            if blob.hash != fresh.hash {
                return Err(Skip::unsteady(shown()).into());
            }
            Ok(Body::Blob(blob))
        }
    }
}

/// The op recording `fresh` (the disk's bytes at `path`) as a change of
/// `file` from `base`, what Vellum last wrote or read there.
///
/// The op is made against the head's content, its causal past (DESIGN §4).
/// When the head moved on without the disk (a journal restored from an
/// older copy, then caught up), the change from `base` to the disk is
/// merged into the head's text, the disk's side kept where both changed
/// the same words: the disk holds what the user last saw and typed, and
/// the head's version stays in history. A binary file takes the disk's
/// bytes.
///
/// The op is an Edit when a patch reproduces the new text and is smaller
/// than it, else a Replace.
#[allow(clippy::too_many_arguments)]
fn content_change(
    v: &Vault,
    head: &VaultState,
    file: FileId,
    base: ContentHash,
    path: &str,
    fresh: &Fresh,
    found: &Found,
    dedup_key: &[u8; 32],
    entropy: &mut OsEntropy,
) -> Result<Option<Payload>> {
    let f = head.files.get(&file);
    let sticky_binary = f.is_some_and(|f| f.kind == FileKind::Blob);
    let head_hash = f.map_or(base, |f| f.hash);
    let mtime_ms = mtime_ms(fresh.stat.mtime_ns);
    let text = |hash| -> Result<Option<String>> {
        Ok(
            match body_of(&v.journal, file, hash, v.journal.admitted())? {
                Body::Text(t) => Some(t),
                Body::Blob(_) => None,
            },
        )
    };
    if let (false, Read_::Text(disk)) = (sticky_binary, &fresh.content)
        && let Some(old) = text(head_hash)?
    {
        let new = if base == head_hash {
            disk.clone()
        } else {
            match text(base)? {
                Some(recorded) => merge::merge(&recorded, disk, &old).text,
                None => disk.clone(),
            }
        };
        if new == old {
            return Ok(None);
        }
        let result = ContentHash::of(new.as_bytes());
        // The scan runs on the daemon's vault thread: a patch of a large
        // note is looked for within a time bound, a Replace otherwise.
        if let Some(patch) = make_patch_within(&old, &new, Some(PATCH_DIFF_TIMEOUT_MS))
            && patch.len() < new.len()
        {
            return Ok(Some(Payload::new(Action::Edit {
                file,
                base: head_hash,
                patch,
                result,
                result_size: new.len() as u64,
                mtime_ms,
            })));
        }
        if result != fresh.hash {
            return Ok(Some(Payload::new(Action::Replace {
                file,
                base: head_hash,
                body: Body::Text(new),
                mtime_ms,
            })));
        }
    }
    let _ = path;
    Ok(Some(Payload::new(Action::Replace {
        file,
        base: head_hash,
        body: body_for(v, fresh, found, sticky_binary, dedup_key, entropy)?,
        mtime_ms,
    })))
}
