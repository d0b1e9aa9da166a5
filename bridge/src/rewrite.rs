//! Writing history forward to a past point: `restore` (one path) and
//! `rollback` (the vault or a folder). Both scan first so no unrecorded
//! bytes are lost, write new ops that make the head equal the point (so a
//! rollback can itself be undone), then update the disk.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use serde::Serialize;
use vellum_journal::limits::PATCH_DIFF_TIMEOUT_MS;
use vellum_journal::payload::{Action, Body, Cause, Payload};
use vellum_journal::replay::{FileKind, FileState, VaultState, make_patch_within};
use vellum_journal::store::Batch;
use vellum_journal::{ContentHash, FileId, VersionVector};
use vellum_snapshots::contents::body_of;

use crate::error::user;
use crate::history::{self, resolve, state_at, vault_path};
use crate::materialise::materialise;
use crate::scan;
use crate::vault::{Vault, now_ms};

/// What `restore`, `rollback`, `resolve` and `quarantine accept|reject`
/// did (DESIGN §8).
#[derive(Serialize, Debug, ts_rs::TS)]
pub struct WriteReport {
    pub ops_recorded: u64,
    pub changed: Vec<String>,
    pub head: String,
}

#[derive(Serialize, Clone, Debug, ts_rs::TS)]
pub struct PreviewEntry {
    pub path: String,
    pub action: String,
    pub from: Option<String>,
}

/// What a rollback would do, and whether it needs `--yes`.
#[derive(Serialize, Clone, Debug, ts_rs::TS)]
pub struct Preview {
    pub to: String,
    pub changes: Vec<PreviewEntry>,
    pub destructive: u64,
    pub needs_yes: bool,
}

/// A content change from `cur` to `want`'s body: an Edit when a patch
/// reproduces it, else a Replace.
pub(crate) fn content_op(
    v: &Vault,
    file: FileId,
    cur: &FileState,
    want_body: &Body,
    want: &FileState,
    cause: &Cause,
) -> Result<Payload> {
    let action = match (cur.kind, want_body) {
        (FileKind::Text, Body::Text(new)) => {
            match body_of(&v.journal, file, cur.hash, v.journal.admitted())? {
                Body::Text(old) => match make_patch_within(&old, new, Some(PATCH_DIFF_TIMEOUT_MS))
                    .filter(|p| p.len() < new.len())
                {
                    Some(patch) => Action::Edit {
                        file,
                        base: cur.hash,
                        patch,
                        result: want.hash,
                        result_size: want.size,
                        mtime_ms: want.mtime_ms,
                    },
                    None => replace(file, cur.hash, want_body, want.mtime_ms),
                },
                Body::Blob(_) => replace(file, cur.hash, want_body, want.mtime_ms),
            }
        }
        _ => replace(file, cur.hash, want_body, want.mtime_ms),
    };
    Ok(Payload {
        action,
        cause: Some(cause.clone()),
    })
}

fn replace(file: FileId, base: ContentHash, body: &Body, mtime_ms: i64) -> Action {
    Action::Replace {
        file,
        base,
        body: body.clone(),
        mtime_ms,
    }
}

fn with_cause(action: Action, cause: &Cause) -> Payload {
    Payload {
        action,
        cause: Some(cause.clone()),
    }
}

pub(crate) fn write(v: &mut Vault, payloads: Vec<Payload>) -> Result<WriteReport> {
    let old = v.head()?;
    let n = payloads.len() as u64;
    let ids = v.append(payloads, Batch::new())?;
    let new = v.head()?;
    let mut files: BTreeSet<FileId> = BTreeSet::new();
    for (id, f) in &new.files {
        if old.files.get(id) != Some(f) {
            files.insert(*id);
        }
    }
    debug_assert!(ids.len() as u64 == n);
    let changed = materialise(v, &old, &new, &files)?;
    Ok(WriteReport {
        ops_recorded: n,
        changed,
        head: v.journal.admitted().to_point_string(),
    })
}

pub fn restore(v: &mut Vault, path_arg: &str, point: &str) -> Result<WriteReport> {
    let p = vault_path(v, path_arg)?;
    let vv = resolve(v, point)?;
    scan::scan(v)?;
    let head = v.head()?;
    let target = state_at(v, &vv)?;
    let cause = Cause::Restore {
        point: vv.to_point_string(),
    };
    let payloads = match (target.file_at(&p), head.file_at(&p)) {
        (None, None) => {
            return Err(user(format!(
                "{p} exists neither at {point} nor now; nothing to restore"
            )));
        }
        (None, Some((id, h))) => vec![with_cause(
            Action::Delete {
                file: id,
                base: h.hash,
                mtime_ms: now_ms() as i64,
            },
            &cause,
        )],
        (Some((tid, t)), None) => {
            let body = body_of(&v.journal, tid, t.hash, &vv)?;
            vec![with_cause(
                Action::Create {
                    path: p.clone(),
                    mtime_ms: t.mtime_ms,
                    body,
                },
                &cause,
            )]
        }
        (Some((tid, t)), Some((hid, h))) => {
            if t.hash == h.hash {
                vec![]
            } else {
                let body = body_of(&v.journal, tid, t.hash, &vv)?;
                vec![content_op(v, hid, h, &body, t, &cause)?]
            }
        }
    };
    write(v, payloads)
}

/// The ops that turn `head` into `target` for files in scope, in an order
/// replay applies without collisions: deletes, renames (cycles broken
/// through a temporary name), content changes, creates.
fn plan(
    v: &Vault,
    head: &VaultState,
    target: &VaultState,
    target_vv: &VersionVector,
    in_scope: &dyn Fn(&str) -> bool,
    cause: &Cause,
) -> Result<(Vec<Payload>, Vec<PreviewEntry>, usize)> {
    let ids: BTreeSet<FileId> = head
        .paths
        .values()
        .chain(target.paths.values())
        .copied()
        .collect();
    let mut deletes = Vec::new();
    let mut renames: BTreeMap<FileId, (String, String)> = BTreeMap::new();
    let mut edits = Vec::new();
    let mut creates = Vec::new();
    let mut preview = Vec::new();
    let mut destructive = 0;
    let now = now_ms() as i64;
    for id in ids {
        let h = head.files.get(&id).filter(|f| f.exists);
        let t = target.files.get(&id).filter(|f| f.exists);
        if !(h.is_some_and(|f| in_scope(&f.path)) || t.is_some_and(|f| in_scope(&f.path))) {
            continue;
        }
        match (h, t) {
            (Some(h), None) => {
                deletes.push(with_cause(
                    Action::Delete {
                        file: id,
                        base: h.hash,
                        mtime_ms: now,
                    },
                    cause,
                ));
                preview.push(PreviewEntry {
                    path: h.path.clone(),
                    action: "delete".into(),
                    from: None,
                });
                destructive += 1;
            }
            (None, Some(t)) => {
                let body = body_of(&v.journal, id, t.hash, target_vv)?;
                creates.push(with_cause(
                    Action::Create {
                        path: t.path.clone(),
                        mtime_ms: t.mtime_ms,
                        body,
                    },
                    cause,
                ));
                preview.push(PreviewEntry {
                    path: t.path.clone(),
                    action: "create".into(),
                    from: None,
                });
            }
            (Some(h), Some(t)) => {
                if h.path != t.path {
                    renames.insert(id, (h.path.clone(), t.path.clone()));
                    preview.push(PreviewEntry {
                        path: t.path.clone(),
                        action: "rename".into(),
                        from: Some(h.path.clone()),
                    });
                }
                if h.hash != t.hash {
                    let body = body_of(&v.journal, id, t.hash, target_vv)?;
                    edits.push(content_op(v, id, h, &body, t, cause)?);
                    if t.size == 0 && h.size > 0 {
                        destructive += 1;
                    }
                    preview.push(PreviewEntry {
                        path: t.path.clone(),
                        action: "modify".into(),
                        from: None,
                    });
                }
            }
            (None, None) => {}
        }
    }
    // Order renames so each target is free when it is taken.
    let mut occupied: BTreeSet<String> = head.paths.keys().cloned().collect();
    for d in &deletes {
        if let Action::Delete { file, .. } = &d.action {
            occupied.remove(&head.files[file].path);
        }
    }
    let mut ordered = Vec::new();
    let mut pending: Vec<(FileId, String, String)> =
        renames.into_iter().map(|(id, (f, t))| (id, f, t)).collect();
    let mut tmp_n = 0;
    while !pending.is_empty() {
        if let Some(i) = pending.iter().position(|(_, _, to)| !occupied.contains(to)) {
            let (id, from, to) = pending.remove(i);
            occupied.remove(&from);
            occupied.insert(to.clone());
            ordered.push(with_cause(
                Action::Rename {
                    file: id,
                    from,
                    to,
                    mtime_ms: now,
                },
                cause,
            ));
        } else {
            // A cycle (a ↔ b): park one file on a free temporary name.
            let (id, from, to) = pending.remove(0);
            let tmp = loop {
                tmp_n += 1;
                let t = format!("{from}.vellum-rollback-{tmp_n}");
                if !occupied.contains(&t) {
                    break t;
                }
            };
            occupied.remove(&from);
            occupied.insert(tmp.clone());
            ordered.push(with_cause(
                Action::Rename {
                    file: id,
                    from,
                    to: tmp.clone(),
                    mtime_ms: now,
                },
                cause,
            ));
            pending.push((id, tmp, to));
        }
    }
    preview.sort_by(|a, b| a.path.cmp(&b.path));
    let mut payloads = deletes;
    payloads.extend(ordered);
    payloads.extend(edits);
    payloads.extend(creates);
    Ok((payloads, preview, destructive))
}

pub enum RollbackOutcome {
    Done(WriteReport),
    Preview(Preview),
}

pub fn rollback(
    v: &mut Vault,
    point: &str,
    prefix: Option<&str>,
    dry_run: bool,
    yes: bool,
) -> Result<RollbackOutcome> {
    let prefix = prefix.map(|p| vault_path(v, p)).transpose()?;
    let vv = resolve(v, point)?;
    if !dry_run {
        scan::scan(v)?;
    }
    let head = v.head()?;
    let target = state_at(v, &vv)?;
    let cause = Cause::Rollback {
        point: vv.to_point_string(),
    };
    let in_scope = |p: &str| {
        prefix
            .as_deref()
            .is_none_or(|pre| p == pre || p.starts_with(&format!("{pre}/")))
    };
    let (payloads, changes, destructive) = plan(v, &head, &target, &vv, &in_scope, &cause)?;
    // Over the quarantine threshold, a rollback needs --yes (DESIGN §5).
    let needs_yes = crate::quarantine::over_threshold(destructive, head.paths.len());
    let preview = Preview {
        to: vv.to_point_string(),
        changes,
        destructive: destructive as u64,
        needs_yes,
    };
    if dry_run {
        return Ok(RollbackOutcome::Preview(preview));
    }
    if needs_yes && !yes {
        return Err(user(format!(
            "this rollback would delete or empty {destructive} files; review it with --dry-run and rerun with --yes"
        )));
    }
    Ok(RollbackOutcome::Done(write(v, payloads)?))
}

pub fn print_preview(p: &Preview, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    for c in &p.changes {
        match &c.from {
            Some(f) => writeln!(out, "{:<7} {f} → {}", c.action, c.path)?,
            None => writeln!(out, "{:<7} {}", c.action, c.path)?,
        }
    }
    writeln!(
        out,
        "{} changes to reach {}",
        p.changes.len(),
        history::short_point(&p.to)
    )
}
