//! Events for subscribers (DESIGN §8): after each job of the vault's
//! thread, what changed, with provenance, so the plugin can tell sync
//! writes from user edits and refresh its views without polling.
//!
//! Each event is a JSON-RPC notification, `{"jsonrpc": "2.0", "method":
//! "event", "params": Event}`, sent on the connections that called
//! `subscribe`.

use std::collections::BTreeSet;

use anyhow::Result;
use serde::Serialize;
use vellum_journal::{OpMeta, VersionVector};

use crate::commands::{self, Status};
use crate::conflicts::{self, ConflictEntry};
use crate::history::{self, LogEntry};
use crate::quarantine::{self, Held};
use crate::vault::Vault;

/// Ops listed in one `ops` event at most; `more` counts the rest (a big
/// import), which the log has.
pub const OPS_PER_EVENT_MAX: usize = 256;

#[derive(Serialize, Clone, Debug, ts_rs::TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// Ops that joined the journal: recorded here (`local`) or admitted
    /// from another device (`remote`), in replay order.
    Ops { ops: Vec<OpEvent>, more: u64 },
    /// The status changed.
    Status { status: Status },
    /// The open conflicts changed: all of them now.
    Conflicts { conflicts: Vec<ConflictEntry> },
    /// The held batches changed: all of them now.
    Quarantine { held: Vec<Held> },
    /// This subscriber fell behind and missed `missed` events: read the
    /// state again.
    Lagged { missed: u64 },
    /// A device is pairing through this one's invite (DESIGN §7).
    Pairing {
        stage: PairStage,
        /// The joining device's id (hex).
        device: String,
        /// The name it gave.
        name: String,
        /// The six digits both devices show, once it proved the secret.
        sas: Option<String>,
        /// Why it was turned away.
        reason: Option<String>,
    },
}

/// Where a pairing stands.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum PairStage {
    /// It proved the invite's secret and waits for approval
    /// (`invite.approve`), unless the invite was pre-approved.
    Request,
    /// It is a member now.
    Joined,
    /// The person said no.
    Declined,
    /// It failed the check (a wrong secret).
    Refused,
}

/// One op that joined the journal.
#[derive(Serialize, Clone, Debug, ts_rs::TS)]
pub struct OpEvent {
    /// The op as `vellum log` lists it.
    pub op: LogEntry,
    pub provenance: Provenance,
}

/// Where an op came from.
#[derive(Serialize, Clone, Debug, PartialEq, Eq, ts_rs::TS)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum Provenance {
    /// Written by this device: a save the daemon recorded, or a command.
    Local,
    /// Written by another device (hex ids).
    Remote { device: String, op: String },
}

/// What subscribers last heard, so only changes are sent.
pub struct Watch {
    admitted: VersionVector,
    status: Option<Status>,
    conflicts: Option<Vec<ConflictEntry>>,
    held: Option<Vec<Held>>,
}

impl Watch {
    pub fn new(v: &Vault) -> Watch {
        Watch {
            admitted: v.journal.admitted().clone(),
            status: None,
            conflicts: None,
            held: None,
        }
    }

    /// The events since the last call (or since `new`); with `listening`
    /// false, only what is needed to stay current is read.
    pub fn changes(&mut self, v: &mut Vault, listening: bool) -> Result<Vec<Event>> {
        let mut out = Vec::new();
        let admitted = v.journal.admitted().clone();
        if admitted != self.admitted {
            if listening {
                out.extend(ops_event(v, &self.admitted, &admitted)?);
            }
            self.admitted = admitted;
        }
        if !listening {
            // Nobody hears; the next subscriber starts from fresh values.
            self.status = None;
            self.conflicts = None;
            self.held = None;
            return Ok(out);
        }
        let status = commands::status(v)?;
        if self.status.as_ref() != Some(&status) {
            let conflicts_moved = self
                .status
                .as_ref()
                .is_none_or(|s| s.conflicts != status.conflicts || s.head != status.head);
            self.status = Some(status.clone());
            out.push(Event::Status { status });
            if conflicts_moved {
                let now = conflicts::list(v)?;
                if self.conflicts.as_ref() != Some(&now) {
                    self.conflicts = Some(now.clone());
                    out.push(Event::Conflicts { conflicts: now });
                }
            }
        }
        let held = quarantine::list(v)?;
        if self.held.as_ref() != Some(&held) {
            self.held = Some(held.clone());
            out.push(Event::Quarantine { held });
        }
        Ok(out)
    }
}

/// The ops in `after` but not in `before`, in replay order.
fn ops_event(
    v: &mut Vault,
    before: &VersionVector,
    after: &VersionVector,
) -> Result<Option<Event>> {
    let me = v.device();
    let mut metas: Vec<OpMeta> = Vec::new();
    let authors: BTreeSet<_> = after.authors().copied().collect();
    for author in authors {
        let from = before.seq(&author) + 1;
        for seq in from..=after.seq(&author) {
            metas.extend(v.journal.chain_at(&author, seq)?);
        }
    }
    if metas.is_empty() {
        return Ok(None);
    }
    metas.sort_by_key(OpMeta::order_key);
    let more = metas.len().saturating_sub(OPS_PER_EVENT_MAX) as u64;
    metas.truncate(OPS_PER_EVENT_MAX);
    let head = v.head()?;
    let mut ops = Vec::with_capacity(metas.len());
    for m in metas {
        let d = history::describe(v, &head, &m.order_key(), m.seq)?;
        let provenance = if m.author == me {
            Provenance::Local
        } else {
            Provenance::Remote {
                device: m.author.to_hex(),
                op: m.id.to_hex(),
            }
        };
        ops.push(OpEvent {
            op: d.entry,
            provenance,
        });
    }
    Ok(Some(Event::Ops { ops, more }))
}

impl Event {
    /// The event as a JSON-RPC notification line.
    pub fn notification(&self) -> Vec<u8> {
        let mut b = serde_json::to_vec(&serde_json::json!({
            "jsonrpc": "2.0",
            "method": "event",
            "params": self,
        }))
        .expect("an event serialises");
        b.push(b'\n');
        b
    }
}
