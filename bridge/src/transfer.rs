//! Offline transfer: `vellum export [--since P] FILE` and `vellum import
//! FILE` (layout in docs/PROTOCOL.md §9).
//!
//! An export holds chunks, then ops in total order, then a blake3 of
//! everything before it, so a truncated or altered file is refused before
//! anything is applied. Import admits ops with the full admission rules
//! (ops whose deps are missing wait in the persisted pending buffer),
//! replays, and brings the disk in line like restore does.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::ops::{Bound, ControlFlow};
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;
use vellum_journal::blob;
use vellum_journal::envelope::Envelope;
use vellum_journal::limits::{CHUNK_BYTES_MAX, OP_BYTES_MAX};
use vellum_journal::payload::{Action, Body};
use vellum_journal::replay::VaultState;
use vellum_journal::store::{Ks, Store};
use vellum_journal::{
    Admission, DeviceId, Error as JournalError, FileId, OpId, VaultId, VersionVector,
};

use crate::error::user;
use crate::history::resolve;
use crate::materialise::{materialise, sync_disk};
use crate::vault::{Stale, Vault, now_ms};
use crate::{quarantine, scan};

/// The first bytes of an export file.
const MAGIC: &[u8; 14] = b"vellum-export\n";
const FORMAT: u8 = 1;
const TAG_END: u8 = 0;
const TAG_CHUNK: u8 = 1;
const TAG_OP: u8 = 2;
/// Ops admitted per durable commit.
const IMPORT_BATCH_OPS: usize = 1024;
/// Chunks stored per durable commit (at most ~64 MiB).
const IMPORT_BATCH_CHUNKS: usize = 256;

#[derive(Serialize, Debug)]
pub struct ExportReport {
    pub file: String,
    pub ops: u64,
    pub chunks: u64,
    pub bytes: u64,
}

/// Writes every op after `since` (all without it), and the chunks they
/// need, to `file`, which must not exist yet.
pub fn export(v: &Vault, since: Option<&str>, file: &Path) -> Result<ExportReport> {
    if file.exists() {
        return Err(user(format!(
            "{} already exists; export writes a new file",
            file.display()
        )));
    }
    let since = match since {
        Some(p) => resolve(v, p)?,
        None => VersionVector::new(),
    };
    let tmp = file.with_file_name(format!(
        ".{}.partial",
        file.file_name()
            .map_or("export".into(), |n| n.to_string_lossy().into_owned())
    ));
    let out = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut w = Writer::new(BufWriter::new(out));
    w.raw(MAGIC)?;
    w.raw(&[FORMAT])?;
    w.raw(&v.journal.vault().0)?;
    w.raw(&v.journal.genesis().0)?;

    // The ops to send, in total order, and the chunks their blobs name.
    let mut ops = Vec::new();
    let mut needed = BTreeSet::new();
    v.journal.for_each_op_in_order(None, &mut |key, seq, env| {
        if !v.journal.includes(&since, &key.author, seq, &key.id)? {
            if !since.is_empty() {
                let payload = v.journal.load_payload(&env)?;
                if let Action::Create { body, .. }
                | Action::Replace { body, .. }
                | Action::Resolve { body, .. } = payload.action
                    && let Body::Blob(b) = body
                {
                    needed.extend(b.chunks.iter().map(|c| c.id));
                }
            }
            ops.push(key);
        }
        Ok(ControlFlow::Continue(()))
    })?;
    let mut chunks = 0;
    let mut failed = None;
    v.journal.store().scan(
        Ks::Chunks,
        (Bound::Unbounded, Bound::Unbounded),
        false,
        &mut |k, stored| {
            if !since.is_empty() && !k.try_into().is_ok_and(|id: [u8; 32]| needed.contains(&id)) {
                return ControlFlow::Continue(());
            }
            let mut body = k.to_vec();
            body.extend_from_slice(stored);
            if let Err(e) = w.record(TAG_CHUNK, &body) {
                failed = Some(e);
                return ControlFlow::Break(());
            }
            chunks += 1;
            ControlFlow::Continue(())
        },
    )?;
    if let Some(e) = failed {
        return Err(e);
    }
    for key in &ops {
        let env = v.journal.load_at(key)?;
        w.record(TAG_OP, env.bytes())?;
    }
    let bytes = w.finish()?;
    fs::rename(&tmp, file).with_context(|| format!("writing {}", file.display()))?;
    Ok(ExportReport {
        file: file.display().to_string(),
        ops: ops.len() as u64,
        chunks,
        bytes,
    })
}

/// Writes records, hashing every byte for the end record.
struct Writer {
    out: BufWriter<File>,
    hash: blake3::Hasher,
    bytes: u64,
}

impl Writer {
    fn new(out: BufWriter<File>) -> Self {
        Writer {
            out,
            hash: blake3::Hasher::new(),
            bytes: 0,
        }
    }

    fn raw(&mut self, b: &[u8]) -> Result<()> {
        self.out.write_all(b)?;
        self.hash.update(b);
        self.bytes += b.len() as u64;
        Ok(())
    }

    fn record(&mut self, tag: u8, body: &[u8]) -> Result<()> {
        self.raw(&[tag])?;
        self.raw(&(body.len() as u32).to_le_bytes())?;
        self.raw(body)
    }

    fn finish(mut self) -> Result<u64> {
        let digest = *self.hash.finalize().as_bytes();
        self.out.write_all(&[TAG_END])?;
        self.out.write_all(&32u32.to_le_bytes())?;
        self.out.write_all(&digest)?;
        let f = self.out.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        Ok(self.bytes + 1 + 4 + 32)
    }
}

enum Record {
    Chunk([u8; 32], Vec<u8>),
    Op(Vec<u8>),
}

/// Reads an export's records, checking the layout as it goes; the last
/// call checks the end record's hash.
struct Reader<R: Read> {
    input: R,
    hash: blake3::Hasher,
    done: bool,
}

fn damaged(why: &str) -> anyhow::Error {
    user(format!("the export file is truncated or damaged ({why})"))
}

impl<R: Read> Reader<R> {
    /// Checks the header against this vault.
    fn open(mut input: R, vault: VaultId, genesis: OpId) -> Result<Self> {
        let mut head = [0u8; 14 + 1 + 16 + 32];
        input
            .read_exact(&mut head)
            .map_err(|_| user("not a vellum export file (too short)"))?;
        if &head[..14] != MAGIC {
            return Err(user("not a vellum export file"));
        }
        if head[14] != FORMAT {
            return Err(user(format!(
                "export format {} is newer than this vellum understands",
                head[14]
            )));
        }
        let from = VaultId(head[15..31].try_into().expect("16 bytes"));
        if from != vault || head[31..63] != genesis.0 {
            return Err(user(format!(
                "the export is from another vault ({from}); this vault is {vault}"
            )));
        }
        let mut hash = blake3::Hasher::new();
        hash.update(&head);
        Ok(Reader {
            input,
            hash,
            done: false,
        })
    }

    fn next(&mut self) -> Result<Option<Record>> {
        if self.done {
            return Ok(None);
        }
        let mut h = [0u8; 5];
        self.input
            .read_exact(&mut h)
            .map_err(|_| damaged("it ends before its end record"))?;
        let len = u32::from_le_bytes(h[1..5].try_into().expect("4 bytes")) as usize;
        let max = match h[0] {
            TAG_END => 32,
            TAG_CHUNK => 32 + CHUNK_BYTES_MAX,
            TAG_OP => OP_BYTES_MAX,
            t => return Err(damaged(&format!("unknown record type {t}"))),
        };
        if len > max || (h[0] != TAG_OP && len < 32) {
            return Err(damaged("a record has an impossible length"));
        }
        let mut body = vec![0u8; len];
        self.input
            .read_exact(&mut body)
            .map_err(|_| damaged("a record is cut short"))?;
        if h[0] == TAG_END {
            if body != self.hash.finalize().as_bytes() {
                return Err(damaged("its checksum does not match"));
            }
            let mut rest = [0u8; 1];
            if self.input.read(&mut rest)? != 0 {
                return Err(damaged("bytes follow its end record"));
            }
            self.done = true;
            return Ok(None);
        }
        self.hash.update(&h);
        self.hash.update(&body);
        Ok(Some(if h[0] == TAG_CHUNK {
            let id = body[..32].try_into().expect("length checked");
            Record::Chunk(id, body.split_off(32))
        } else {
            Record::Op(body)
        }))
    }
}

/// What `import` did. The JSON keeps the shape of DESIGN §8
/// (`ops_admitted`, `ops_pending`, `changed`, `conflicts_new`) and adds
/// detail.
#[derive(Serialize, Debug, Default)]
pub struct ImportReport {
    pub ops_admitted: u64,
    /// Already held: importing the same file twice changes nothing.
    pub duplicates: u64,
    /// Waiting for ops this device does not have yet (kept across runs).
    pub ops_pending: u64,
    pub rejected: Vec<Rejected>,
    pub chunks: u64,
    /// Ops that were admitted but changed nothing (with replay's reason in
    /// `vellum log`).
    pub no_effect: u64,
    /// Paths written or removed on disk, sorted.
    pub changed: Vec<String>,
    /// How many conflicts this import opened.
    pub conflicts_new: u64,
    /// The conflicts this import opened: path and the op.
    pub new_conflicts: Vec<NewConflict>,
    /// Set when the journal still lacks some of this device's own ops
    /// (it was restored from an older copy): nothing was written to disk.
    pub stale: Option<Stale>,
    /// This device's new id, when the import brought ops of its own chain
    /// that the journal lacked and the device took a new identity.
    pub new_identity: Option<String>,
    /// Files held back from the disk for review: a batch of the imported
    /// ops deletes or empties too many (`vellum quarantine list`).
    pub quarantined: u64,
    /// The held batches' ids.
    pub held: Vec<String>,
}

#[derive(Serialize, Debug)]
pub struct NewConflict {
    pub path: String,
    pub op: String,
}

#[derive(Serialize, Debug)]
pub struct Rejected {
    pub op: String,
    pub reason: String,
}

/// Imports an export file: checks it whole first, then scans (so changes
/// on disk are recorded before the disk is touched), stores chunks, admits
/// ops, replays and updates the disk.
///
/// An export holding ops of this device's own chain that this journal
/// lacks means the journal was restored from an older copy (DESIGN §3, own
/// forks). Then nothing is scanned before the ops are admitted, since a
/// scan would write ops at seqs the device already used. Once the whole
/// chain is here, the device retires its identity for a new one, and the
/// scan records under the new identity whatever on disk the journal does
/// not have, before the disk is brought in line.
pub fn import(v: &mut Vault, file: &Path) -> Result<ImportReport> {
    let (vault, genesis) = (v.journal.vault(), v.journal.genesis());
    let open = || -> Result<Reader<BufReader<File>>> {
        let f =
            File::open(file).map_err(|e| user(format!("cannot read {}: {e}", file.display())))?;
        Reader::open(BufReader::new(f), vault, genesis)
    };
    // Pass 1: the whole file is intact; and does it hold own ops?
    let mut r = open()?;
    let device = v.device();
    let mut own_missing: Option<(u64, OpId)> = None;
    while let Some(rec) = r.next()? {
        if let Record::Op(bytes) = rec
            && let Ok(env) = Envelope::parse(bytes)
            && env.header().author == device
            && !v.journal.holds(&env.id())?
            && own_missing.is_none_or(|(seq, _)| env.header().seq > seq)
        {
            own_missing = Some((env.header().seq, env.id()));
        }
    }
    if let Some(highest) = own_missing {
        v.own_ops_arrived(highest)?;
    }
    let recovering = v.stale.is_some() || v.retiring()?;
    if !recovering {
        scan::scan(v)?;
    }
    let old = v.head()?;
    let mut report = ImportReport::default();
    let mut r = open()?;
    let (mut chunks, mut ops) = (Vec::new(), Vec::new());
    while let Some(rec) = r.next()? {
        match rec {
            Record::Chunk(id, stored) => {
                chunks.push((id, stored));
                if chunks.len() == IMPORT_BATCH_CHUNKS {
                    report.chunks += store_chunks(v, std::mem::take(&mut chunks))?;
                }
            }
            Record::Op(bytes) => {
                // Chunks come first in a file: they are durable before any
                // op that names them is admitted.
                if !chunks.is_empty() {
                    report.chunks += store_chunks(v, std::mem::take(&mut chunks))?;
                }
                ops.push(bytes);
                if ops.len() == IMPORT_BATCH_OPS {
                    admit(v, std::mem::take(&mut ops), &mut report)?;
                }
            }
        }
    }
    report.chunks += store_chunks(v, chunks)?;
    admit(v, ops, &mut report)?;

    report.ops_pending = v.journal.pending_count()?;
    let caught = v.catch_up()?;
    report.no_effect = caught.no_effect;
    match to_disk(v, &old, recovering, &mut report)? {
        ToDisk::Stale(stale) => {
            report.stale = Some(stale);
            return Ok(report);
        }
        ToDisk::Done { changed, renewed } => {
            report.changed = changed;
            report.new_identity = renewed.map(|d| d.to_hex());
        }
    }
    let new = v.head()?;
    for (path, id, f) in new.live_files() {
        let before = old.files.get(id).map_or(&[][..], |o| &o.conflicts[..]);
        for c in f.conflicts.iter().filter(|c| !before.contains(c)) {
            report.conflicts_new += 1;
            report.new_conflicts.push(NewConflict {
                path: path.clone(),
                op: c.op.to_hex(),
            });
        }
    }
    Ok(report)
}

/// What [`settle_remote`] did.
#[derive(Debug, Default)]
pub struct Settled {
    /// Paths written or removed on disk, sorted.
    pub changed: Vec<String>,
    /// Files held back from the disk for review.
    pub quarantined: u64,
}

/// After a sync session admitted ops or stored chunks: replays them and
/// brings the disk in line, as an import does. Batches that delete or
/// empty too many files are held; a journal still short of this device's
/// own chain leaves the disk alone; once the chain is whole again, the
/// device takes a new identity first.
pub fn settle_remote(v: &mut Vault) -> Result<Settled> {
    let recovering = v.stale.is_some() || v.retiring()?;
    let old = v.head()?;
    v.catch_up()?;
    let mut report = ImportReport::default();
    let mut out = Settled::default();
    if let ToDisk::Done { changed, .. } = to_disk(v, &old, recovering, &mut report)? {
        out.changed = changed;
    }
    out.quarantined = report.quarantined;
    Ok(out)
}

/// What [`to_disk`] did.
enum ToDisk {
    /// The journal is still short of this device's own chain: the disk is
    /// left as it is until the rest arrives.
    Stale(Stale),
    /// The paths written or removed (sorted), and the new identity if the
    /// device took one.
    Done {
        changed: Vec<String>,
        renewed: Option<DeviceId>,
    },
}

/// Brings the disk in line after remote ops (an import's, a sync
/// session's) were admitted and replayed from `old`. A device recovering
/// its own chain takes a new identity first, once the chain is whole, and
/// scans, so that what only the disk had is recorded under it. Batches that
/// delete or empty too many files are held (`report` counts them).
fn to_disk(
    v: &mut Vault,
    old: &VaultState,
    recovering: bool,
    report: &mut ImportReport,
) -> Result<ToDisk> {
    if recovering {
        v.check_own_chain()?;
        if let Some(stale) = v.stale {
            return Ok(ToDisk::Stale(stale));
        }
        let renewed = v.renew_identity()?;
        scan::scan(v)?;
        let new = v.head()?;
        hold_mass_changes(v, old, &new, report)?;
        return Ok(ToDisk::Done {
            changed: sync_disk(v, &new)?,
            renewed: Some(renewed),
        });
    }
    v.share_missing_keys()?;
    let new = v.head()?;
    let files = hold_mass_changes(v, old, &new, report)?;
    let mut changed = materialise(v, old, &new, &files)?;
    // Chunks that arrived after their ops: files the writer could not write
    // before.
    changed.extend(crate::materialise::catch_up_disk(v)?);
    changed.sort();
    changed.dedup();
    Ok(ToDisk::Done {
        changed,
        renewed: None,
    })
}

/// Holds back batches of the imported ops that delete or empty too many
/// files (DESIGN §8); returns the files whose state changed.
fn hold_mass_changes(
    v: &Vault,
    old: &VaultState,
    new: &VaultState,
    report: &mut ImportReport,
) -> Result<BTreeSet<FileId>> {
    let files: BTreeSet<FileId> = old
        .files
        .keys()
        .chain(new.files.keys())
        .filter(|id| old.files.get(*id) != new.files.get(*id))
        .copied()
        .collect();
    for h in quarantine::screen(v, old, new, &files)? {
        report.quarantined += h.files.len() as u64;
        report.held.push(h.id);
    }
    Ok(files)
}

fn store_chunks(v: &Vault, chunks: Vec<([u8; 32], Vec<u8>)>) -> Result<u64> {
    blob::store_chunks(v.journal.store(), chunks).map_err(|e| damaged(&e.to_string()))
}

fn admit(v: &mut Vault, ops: Vec<Vec<u8>>, report: &mut ImportReport) -> Result<()> {
    let ids: Vec<OpId> = ops
        .iter()
        .map(|b| OpId(*blake3::hash(b).as_bytes()))
        .collect();
    for (id, verdict) in ids.iter().zip(v.journal.admit_batch(ops, now_ms())?) {
        match verdict {
            Ok(Admission::Admitted(_)) => report.ops_admitted += 1,
            Ok(Admission::Duplicate(_)) => report.duplicates += 1,
            // Counted once the import is done: some wait only for ops
            // later in the same file.
            Ok(Admission::Pending(..)) => {}
            Err(JournalError::Rejected { reason, .. }) => report.rejected.push(Rejected {
                op: id.to_hex(),
                reason,
            }),
            Err(e) => report.rejected.push(Rejected {
                op: id.to_hex(),
                reason: e.to_string(),
            }),
        }
    }
    Ok(())
}
