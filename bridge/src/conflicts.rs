//! Open conflicts: `vellum conflicts`, `vellum show PATH --side …` and
//! `vellum resolve PATH --take …`.
//!
//! A conflict names the op merged in and three versions of the file by
//! hash: the op's base, the file's text just before it (current), and what
//! the op alone made (incoming). Each is read from the content cache or
//! rebuilt from the file's ops in the op set that defines it.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;
use vellum_journal::blob;
use vellum_journal::entropy::OsEntropy;
use vellum_journal::limits::TEXT_BYTES_MAX;
use vellum_journal::payload::{Action, Body, Payload};
use vellum_journal::replay::{Conflict, ConflictKind, FileKind, FileState};
use vellum_journal::store::{Ks, Store};
use vellum_journal::{ContentHash, Error, FileId, OpId, VersionVector};
use vellum_snapshots::contents::{content_in, find_version, write_body};

use crate::error::user;
use crate::history::{file_in, resolve, state_at, vault_path};
use crate::rewrite::{WriteReport, write};
use crate::scan;
use crate::vault::{Vault, now_ms};

#[derive(Serialize, Clone, Debug, PartialEq, Eq, ts_rs::TS)]
pub struct ConflictEntry {
    pub path: String,
    pub file: String,
    /// What happened ([`ConflictKind::name`]):
    /// - "overlap": text edited on both sides, the file kept current's;
    /// - "binary": replaced on both sides, the later op's bytes won;
    /// - "edited_after_delete": a delete that had not seen an edit, and
    ///   the file stayed;
    /// - "created_twice": created at one path on two devices; the file
    ///   holds the lines of both (base is empty);
    /// - "concurrent_resolves": two resolves chose differently, and the
    ///   file kept the first (current);
    /// - "concurrent_renames": renamed on two devices, and the later
    ///   rename named it; `op` is the other rename;
    /// - "bad_base": an op whose base is not a version of this file, which
    ///   had no effect.
    pub kind: &'static str,
    /// The ops the conflict is about: the op merged in (or the delete,
    /// create, resolve or rename named by `kind`).
    pub ops: Vec<String>,
    pub base: String,
    pub current: String,
    pub incoming: String,
}

/// Every open conflict at head, by path, oldest first per file.
pub fn list(v: &mut Vault) -> Result<Vec<ConflictEntry>> {
    let head = v.head()?;
    let mut out = Vec::new();
    for (path, id, f) in head.live_files() {
        for c in &f.conflicts {
            out.push(ConflictEntry {
                path: path.clone(),
                file: id.to_hex(),
                kind: c.kind.name(),
                ops: vec![c.op.to_hex()],
                base: c.base.to_hex(),
                current: c.current.to_hex(),
                incoming: c.theirs.to_hex(),
            });
        }
    }
    Ok(out)
}

/// Which version of a conflict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Base,
    Current,
    Incoming,
}

impl Side {
    pub fn parse(s: &str) -> Result<Side> {
        match s {
            "base" => Ok(Side::Base),
            "current" => Ok(Side::Current),
            "incoming" | "theirs" => Ok(Side::Incoming),
            _ => Err(user(format!(
                "unknown side {s:?}: use base, current or incoming"
            ))),
        }
    }
}

/// The conflict of `path` at head: the one whose op id starts with `op`,
/// or the newest.
fn conflict_of(
    v: &mut Vault,
    path_arg: &str,
    op: Option<&str>,
) -> Result<(String, FileId, FileState, Conflict)> {
    let p = vault_path(v, path_arg)?;
    let head = v.head()?;
    let (id, f) = file_in(&head, &p, "head")?;
    let c = match op {
        Some(prefix) => f
            .conflicts
            .iter()
            .find(|c| c.op.to_hex().starts_with(&prefix.to_ascii_lowercase())),
        None => f.conflicts.last(),
    };
    let Some(c) = c.cloned() else {
        return Err(user(format!(
            "{p} has no open conflict{}",
            match op {
                Some(o) => format!(" with op {o}"),
                None => String::new(),
            }
        )));
    };
    Ok((p, id, f.clone(), c))
}

/// The body of one side of a conflict.
fn side_body(v: &Vault, file: FileId, c: &Conflict, side: Side) -> Result<Body> {
    let hash = match side {
        Side::Base => c.base,
        Side::Current => c.current,
        Side::Incoming => c.theirs,
    };
    if let Some(b) = v.journal.store().get(Ks::Content, &hash.0)? {
        return Ok(Body::decode(&b)?);
    }
    if hash == ContentHash::of(b"") {
        return Ok(Body::Text(String::new()));
    }
    let meta = v
        .journal
        .op_meta(&c.op)?
        .ok_or_else(|| Error::Corrupt(format!("conflict op {} is missing", c.op.short())))?;
    let key = meta.order_key();
    let past = v.journal.causal_past(&meta.author, meta.seq, &meta.id)?;
    let body = match side {
        Side::Base => content_in(&v.journal, file, &past, Some(&key))?,
        Side::Current => content_in(&v.journal, file, v.journal.admitted(), Some(&key))?,
        Side::Incoming => {
            let mut with_op: VersionVector = past;
            v.journal
                .add_to(&mut with_op, &meta.author, meta.seq, &meta.id)?;
            // A concurrent Create's text is its own file's, in its own view.
            let own = match c.kind {
                ConflictKind::CreatedTwice => c.op,
                _ => file,
            };
            content_in(&v.journal, own, &with_op, None)?
        }
    };
    match body {
        Some(b) if b.hash() == hash => Ok(b),
        _ => Ok(find_version(&v.journal, file, hash)?),
    }
}

/// Writes one side of `path`'s conflict to `out`.
pub fn show_side(
    v: &mut Vault,
    path_arg: &str,
    side: Side,
    op: Option<&str>,
    out: &mut dyn Write,
) -> Result<()> {
    let (_, file, _, c) = conflict_of(v, path_arg, op)?;
    let body = side_body(v, file, &c, side)?;
    write_body(&v.journal, &body, out)?;
    Ok(())
}

/// What `resolve --take` keeps.
pub enum Take<'a> {
    Current,
    Incoming,
    /// The file as it was at this point (an op id or any point).
    At(&'a str),
    /// The bytes of this file.
    File(&'a Path),
    /// These bytes (a merge the user edited in the plugin).
    Bytes(Vec<u8>),
}

/// Writes a Resolve closing every open conflict of `path` (or the one of
/// `op`), with the chosen content, and updates the disk.
pub fn resolve_path(v: &mut Vault, path_arg: &str, take: Take<'_>) -> Result<WriteReport> {
    scan::scan(v)?;
    let (p, file, f, newest) = conflict_of(v, path_arg, None)?;
    let body = match take {
        Take::Current => {
            let head = v.head()?;
            vellum_snapshots::contents::body_of(
                &v.journal,
                file,
                head.files[&file].hash,
                v.journal.admitted(),
            )?
        }
        Take::Incoming => side_body(v, file, &newest, Side::Incoming)?,
        Take::At(point) => {
            let vv = resolve(v, point)?;
            let state = state_at(v, &vv)?;
            let Some(then) = state.files.get(&file).filter(|f| f.exists) else {
                return Err(user(format!("{p} did not exist at {point}")));
            };
            vellum_snapshots::contents::body_of(&v.journal, file, then.hash, &vv)?
        }
        Take::File(src) => body_from_file(v, src, f.kind)?,
        Take::Bytes(bytes) => body_from_bytes(v, bytes, f.kind)?,
    };
    let sides: Vec<OpId> = f.conflicts.iter().map(|c| c.op).collect();
    let resolve = Payload::new(Action::Resolve {
        file,
        sides,
        base: f.hash,
        body,
        mtime_ms: now_ms() as i64,
    });
    write(v, vec![resolve])
}

/// A file's bytes as the body of a file of `kind`: text when it is text
/// and stays text, else a blob (streamed into the chunk store).
fn body_from_file(v: &Vault, src: &Path, kind: FileKind) -> Result<Body> {
    let meta =
        std::fs::metadata(src).map_err(|e| user(format!("cannot read {}: {e}", src.display())))?;
    if kind == FileKind::Text && meta.len() <= TEXT_BYTES_MAX as u64 {
        let bytes = std::fs::read(src).with_context(|| format!("reading {}", src.display()))?;
        return body_from_bytes(v, bytes, kind);
    }
    let reader = std::fs::File::open(src).with_context(|| format!("reading {}", src.display()))?;
    store_blob(v, reader, meta.len())
}

/// Text inline for a text file that stays valid UTF-8 within the text
/// limit, else a blob (the kind is sticky: a binary file stays one).
fn body_from_bytes(v: &Vault, bytes: Vec<u8>, kind: FileKind) -> Result<Body> {
    if kind == FileKind::Text && bytes.len() <= TEXT_BYTES_MAX {
        match String::from_utf8(bytes) {
            Ok(t) => return Ok(Body::Text(t)),
            Err(e) => {
                let bytes = e.into_bytes();
                let size = bytes.len() as u64;
                return store_blob(v, std::io::Cursor::new(bytes), size);
            }
        }
    }
    let size = bytes.len() as u64;
    store_blob(v, std::io::Cursor::new(bytes), size)
}

fn store_blob(v: &Vault, reader: impl std::io::Read, size: u64) -> Result<Body> {
    let dedup = v
        .journal
        .write_epoch()?
        .and_then(|epoch| v.journal.keys().dedup_key(&epoch))
        .ok_or_else(|| anyhow::anyhow!("this device holds no vault key it may write with"))?;
    let b = blob::store_blob_of_size(v.journal.store(), reader, size, &dedup, &mut OsEntropy)?;
    Ok(Body::Blob(b))
}

/// The three sides of a file's open conflict, for a side-by-side view:
/// texts (null for a binary side), the incoming op and who wrote it.
#[derive(Serialize, Clone, Debug, ts_rs::TS)]
pub struct ConflictSides {
    pub path: String,
    pub kind: &'static str,
    /// The op whose change conflicted (hex).
    pub op: String,
    /// The device that wrote it (hex), its name if it gave one, and when
    /// (RFC 3339).
    pub incoming_device: String,
    pub incoming_device_name: Option<String>,
    pub incoming_time: String,
    pub base: SideText,
    pub current: SideText,
    pub incoming: SideText,
}

#[derive(Serialize, Clone, Debug, ts_rs::TS)]
pub struct SideText {
    pub hash: String,
    pub size: u64,
    /// The text; null when this side is binary.
    pub text: Option<String>,
}

/// The sides of `path`'s conflict of op `op` (an id prefix), or of its
/// newest one.
pub fn sides(v: &mut Vault, path_arg: &str, op: Option<&str>) -> Result<ConflictSides> {
    let (p, file, _, c) = conflict_of(v, path_arg, op)?;
    let side = |side| -> Result<SideText> {
        let body = side_body(v, file, &c, side)?;
        Ok(SideText {
            hash: body.hash().to_hex(),
            size: body.size(),
            text: match body {
                Body::Text(t) => Some(t),
                Body::Blob(_) => None,
            },
        })
    };
    let (base, current, incoming) = (
        side(Side::Base)?,
        side(Side::Current)?,
        side(Side::Incoming)?,
    );
    let meta = v
        .journal
        .op_meta(&c.op)?
        .ok_or_else(|| Error::Corrupt(format!("conflict op {} is missing", c.op.short())))?;
    Ok(ConflictSides {
        path: p,
        kind: c.kind.name(),
        op: c.op.to_hex(),
        incoming_device: meta.author.to_hex(),
        incoming_device_name: v.head_state().device_names.get(&meta.author).cloned(),
        incoming_time: crate::history::time_string(meta.hlc),
        base,
        current,
        incoming,
    })
}

pub fn short(h: &str) -> &str {
    &h[..12.min(h.len())]
}
