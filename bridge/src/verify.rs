//! `vellum verify`: re-checks everything from the stored bytes. Every op
//! is re-admitted, in total order, into an empty in-memory replica (so
//! signatures, chains, lamport/hlc rules, keys and membership are checked
//! by the same code as admission); then replay from scratch must equal the
//! stored head, and every blob's chunks must be present and intact.

use std::ops::{Bound, ControlFlow};

use anyhow::Result;
use serde::Serialize;
use vellum_journal::payload::{Action, Body};
use vellum_journal::store::{Ks, MemStore, Store};
use vellum_journal::{Admission, OpId, OrderKey, blob};
use vellum_snapshots::TimeMachine;

use crate::vault::Vault;

#[derive(Serialize, Debug)]
pub struct VerifyReport {
    pub ops: u64,
    pub ok: bool,
    pub first_bad: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Admission's clock for re-checking: far enough ahead that no stored op
/// waits for its hlc (the skew rule was applied when it was admitted).
const VERIFY_NOW_MS: u64 = u64::MAX / 4;

pub fn verify(v: &Vault) -> Result<VerifyReport> {
    let store = v.journal.store();
    let mut ids: Vec<(Option<OrderKey>, Vec<u8>)> = Vec::new();
    store.scan(
        Ks::Order,
        (Bound::Unbounded, Bound::Unbounded),
        false,
        &mut |k, _| {
            ids.push((OrderKey::from_bytes(k), k.to_vec()));
            ControlFlow::Continue(())
        },
    )?;
    let mut report = VerifyReport {
        ops: 0,
        ok: true,
        first_bad: None,
        reason: None,
    };
    let fail = |report: &mut VerifyReport, id: String, reason: String| {
        report.ok = false;
        report.first_bad = Some(id);
        report.reason = Some(reason);
    };
    let mut replica = v.journal.empty_replica(MemStore::new())?;
    for (key, raw) in &ids {
        let Some(key) = key else {
            fail(
                &mut report,
                vellum_journal::id::hex(raw),
                "order index record is damaged".into(),
            );
            return Ok(report);
        };
        let id = key.id;
        let (seq, bytes) = match store.get(Ks::Order, raw)? {
            Some(r) if r.len() > 8 => (
                u64::from_le_bytes(r[..8].try_into().expect("8 bytes")),
                r[8..].to_vec(),
            ),
            _ => {
                fail(
                    &mut report,
                    id.short(),
                    "stored op is missing or truncated".into(),
                );
                return Ok(report);
            }
        };
        if store.get(Ks::Ops, &id.0)?.as_deref() != Some(&raw[..]) {
            fail(
                &mut report,
                id.short(),
                "the op's id index entry is missing or wrong".into(),
            );
            return Ok(report);
        }
        if OpId(*blake3::hash(&bytes).as_bytes()) != id {
            fail(
                &mut report,
                id.short(),
                "op bytes do not hash to its id (tampered or damaged)".into(),
            );
            return Ok(report);
        }
        match replica.admit(bytes, VERIFY_NOW_MS) {
            Ok(Admission::Admitted(_)) => {}
            Ok(other) => {
                fail(
                    &mut report,
                    id.short(),
                    format!("not admissible in order: {other:?}"),
                );
                return Ok(report);
            }
            Err(e) => {
                fail(&mut report, id.short(), e.to_string());
                return Ok(report);
            }
        }
        // Every blob an op names must be whole.
        let env = v.journal.load_at(key)?;
        if env.header().seq != seq {
            fail(
                &mut report,
                id.short(),
                "the order record's seq disagrees with the op".into(),
            );
            return Ok(report);
        }
        // Opened afresh, not from the journal's memo of opened payloads:
        // verify reads what is stored now.
        let payload = v.journal.keys().open_payload(&env)?;
        if let Action::Create {
            body: Body::Blob(b),
            ..
        }
        | Action::Replace {
            body: Body::Blob(b),
            ..
        }
        | Action::Resolve {
            body: Body::Blob(b),
            ..
        } = &payload.action
            && let Err(e) = blob::check_blob(store, b)
        {
            fail(&mut report, id.short(), e.to_string());
            return Ok(report);
        }
        report.ops += 1;
    }
    if replica.admitted() != v.journal.admitted() {
        report.ok = false;
        report.reason = Some("the stored version vector does not match the stored ops".into());
        return Ok(report);
    }
    let from_scratch = TimeMachine::replay_from_scratch(&v.journal)?;
    let stored = TimeMachine::load_head(&v.journal)?;
    if from_scratch.files != stored.files
        || from_scratch.paths != stored.paths
        || from_scratch.applied != stored.applied
    {
        report.ok = false;
        let differing = from_scratch
            .files
            .iter()
            .find(|(id, f)| stored.files.get(id) != Some(f))
            .map(|(_, f)| f.path.clone())
            .unwrap_or_default();
        report.reason = Some(format!(
            "replay from scratch differs from the stored state (first at {differing:?})"
        ));
    }
    Ok(report)
}
