//! One sync session with one peer, as a sans-IO state machine (DESIGN §6).
//!
//! The driver (the libp2p stream, or the simulator) feeds it bytes and the
//! time, and takes bytes to send and events out:
//! - [`Session::handle_message`] for each message from the peer;
//! - [`Session::handle_timeout`] when [`Session::next_timeout`] is due;
//! - [`Session::announce`] after the journal gained ops (local or not);
//! - [`Session::poll_transmit`] and [`Session::poll_event`] until `None`.
//!
//! The session reads no clock and does no IO: the journal is passed in by
//! the caller, and everything it sends comes from it, so nothing is sent
//! before it is durable. Every op received goes through the journal's full
//! admission.
//!
//! The exchange: each side says what it holds (Hello, then Have after each
//! change and every [`ANTI_ENTROPY_MS`]). A side missing ops asks for them
//! (Want, with the bytes it will take and its own version vector), and the
//! other sends them, per author in seq order, in batches of at most
//! [`BATCH_BYTES_MAX`]. An unanswered Want is asked again after
//! [`WANT_TIMEOUT_MS`]. Forks need no special case: a Want names a branch by
//! its head, and the server sends what the asker's vector lacks on it.

use std::collections::{BTreeSet, VecDeque};

use vellum_journal::limits::CHUNK_BYTES_MAX;
use vellum_journal::store::Store;
use vellum_journal::{
    Admission, DeviceId, Error as JournalError, Journal, OpId, VaultId, VersionVector,
};

use crate::claims::Claims;
use crate::wire::{
    BATCH_BYTES_MAX, Message, PROTO, Range, WANT_CHUNK_IDS_OPS_MAX, WANT_CHUNKS_MAX,
    WANT_RANGES_MAX,
};

/// A Have goes out at least this often, whatever happened.
pub const ANTI_ENTROPY_MS: u64 = 30_000;
/// A Want with no answer is sent again after this long.
pub const WANT_TIMEOUT_MS: u64 = 5_000;
/// Bytes of ops a Want accepts at once.
pub const WANT_CREDIT_BYTES: u32 = 4 * 1024 * 1024;
/// Chunk ids asked for at once: as many of the largest chunk as one
/// credit takes, so a WantChunks is always answered in full.
pub const WANT_CHUNK_IDS: usize = WANT_CREDIT_BYTES as usize / CHUNK_BYTES_MAX;
/// Unread ops whose chunk ids are asked for at once.
pub const WANT_CHUNK_IDS_OPS: usize = 1024;
const _: () = assert!(WANT_CHUNK_IDS_OPS <= WANT_CHUNK_IDS_OPS_MAX);
/// Messages waiting to be sent before the session stops queueing Haves.
pub const OUTBOX_MAX: usize = 64;
/// How soon a session that left something to another session's claim
/// looks again.
pub const CLAIM_RETRY_MS: u64 = 1_000;

/// What a session tells its driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The peer said who it is.
    Connected { peer: DeviceId },
    /// Ops from the peer were admitted: the driver replays.
    Admitted { ops: u64 },
    /// Chunks from the peer were stored: files that waited for them can
    /// be written now.
    Chunks { stored: u64 },
    /// The session is over: the peer broke the protocol (it should be
    /// disconnected and backed off), or said goodbye.
    Closed { reason: String, misbehaved: bool },
}

pub struct Session {
    vault: VaultId,
    local: DeviceId,
    peer: Option<DeviceId>,
    /// The peer's last Hello or Have.
    peer_has: VersionVector,
    /// Ops this session sent the peer, by branch: the stream is reliable
    /// and ordered, so the peer holds them (or they wait there for their
    /// causal past). Without this, a Want would be answered from the
    /// peer's last Hello or Have, and what was sent since sent again.
    sent: VersionVector,
    outbox: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
    /// When the last Want went out, while it is unanswered.
    want_sent: Option<u64>,
    /// Bytes the last Want allows the peer to send.
    granted: u64,
    /// Chunks of the journal's debt to ask this peer for.
    chunks_needed: BTreeSet<[u8; 32]>,
    /// Chunks asked for by the last WantChunks and not yet received.
    chunks_asked: BTreeSet<[u8; 32]>,
    /// Every chunk asked for in this session: a late answer to an earlier
    /// WantChunks (asked again after a timeout) is not misbehaviour.
    chunks_ever_asked: BTreeSet<[u8; 32]>,
    /// When the last WantChunks went out, while it is unanswered.
    chunks_want_sent: Option<u64>,
    /// Bytes the last WantChunks allows the peer to send.
    chunks_granted: u64,
    /// Chunks of the journal's debt (`Journal::chunk_debt`) this peer said
    /// it lacks: not asked of it again until its next Have.
    peer_lacks: BTreeSet<[u8; 32]>,
    /// Unread ops asked about by the last WantChunkIds, not yet answered.
    ids_asked: BTreeSet<OpId>,
    /// Every op asked about in this session (a late answer is fine).
    ids_ever_asked: BTreeSet<OpId>,
    /// When the last WantChunkIds went out, while it is unanswered.
    ids_want_sent: Option<u64>,
    /// Unread ops whose chunk ids this peer does not know either: not asked
    /// of it again until its next Have.
    ids_peer_lacks: BTreeSet<OpId>,
    /// What this side last told the peer it holds (its Hello, then each
    /// Have).
    told: VersionVector,
    /// What this device's sessions are fetching, and this one's name there.
    claims: Claims,
    owner: u64,
    /// When to ask again for what another session had claimed.
    claims_retry: Option<u64>,
    next_have: u64,
    closed: bool,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.claims.release_all(self.owner);
    }
}

impl Session {
    /// A session that opens with a Hello, the only one of its device (it
    /// asks its peer for everything it lacks).
    pub fn new<S: Store>(journal: &Journal<S>, local: DeviceId, now: u64) -> Session {
        Session::with_claims(journal, local, now, Claims::default())
    }

    /// A session among others of the same device, sharing `claims`: what
    /// one of them is fetching, the others do not ask their peers for.
    pub fn with_claims<S: Store>(
        journal: &Journal<S>,
        local: DeviceId,
        now: u64,
        claims: Claims,
    ) -> Session {
        let owner = claims.owner();
        let mut s = Session {
            vault: journal.vault(),
            local,
            peer: None,
            peer_has: VersionVector::new(),
            sent: VersionVector::new(),
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            want_sent: None,
            granted: 0,
            chunks_needed: BTreeSet::new(),
            chunks_asked: BTreeSet::new(),
            chunks_ever_asked: BTreeSet::new(),
            chunks_want_sent: None,
            chunks_granted: 0,
            peer_lacks: BTreeSet::new(),
            ids_asked: BTreeSet::new(),
            ids_ever_asked: BTreeSet::new(),
            ids_want_sent: None,
            ids_peer_lacks: BTreeSet::new(),
            told: journal.admitted().clone(),
            claims,
            owner,
            claims_retry: None,
            next_have: now + ANTI_ENTROPY_MS,
            closed: false,
        };
        s.send(Message::Hello {
            proto: PROTO,
            vault: s.vault,
            device: local,
            vv: journal.admitted().clone(),
        });
        s
    }

    pub fn peer(&self) -> Option<DeviceId> {
        self.peer
    }

    /// What the peer last said it holds (empty before its Hello).
    pub fn peer_has(&self) -> &VersionVector {
        &self.peer_has
    }

    /// What the peer holds as far as this session knows: what it said,
    /// raised by what was sent to it since (the stream is reliable), per
    /// author by seq. For progress figures; asking uses exact heads.
    pub fn peer_holds(&self) -> VersionVector {
        let mut vv = self.peer_has.clone();
        for (author, e) in self.sent.iter() {
            if e.seq > vv.seq(author) {
                vv.set(*author, e.seq, e.head);
            }
        }
        vv
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The next time [`Session::handle_timeout`] has something to do.
    pub fn next_timeout(&self) -> Option<u64> {
        if self.closed {
            return None;
        }
        let want = self.want_sent.map(|t| t + WANT_TIMEOUT_MS);
        let chunks = self.chunks_want_sent.map(|t| t + WANT_TIMEOUT_MS);
        let ids = self.ids_want_sent.map(|t| t + WANT_TIMEOUT_MS);
        Some(
            [want, chunks, ids, self.claims_retry]
                .into_iter()
                .flatten()
                .fold(self.next_have, u64::min),
        )
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.outbox.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The journal gained ops: tell the peer (eager push).
    pub fn announce<S: Store>(&mut self, journal: &Journal<S>, now: u64) {
        if self.closed || self.peer.is_none() || self.outbox.len() >= OUTBOX_MAX {
            return;
        }
        self.told = journal.admitted().clone();
        self.send(Message::Have {
            vv: self.told.clone(),
        });
        self.next_have = now + ANTI_ENTROPY_MS;
    }

    /// Anti-entropy and re-requests.
    pub fn handle_timeout<S: Store>(&mut self, journal: &Journal<S>, now: u64) {
        if self.closed {
            return;
        }
        if self.want_sent.is_some_and(|t| now >= t + WANT_TIMEOUT_MS) {
            self.want_sent = None;
            self.ask(journal, now);
        }
        if self.claims_retry.is_some_and(|t| now >= t) {
            // What another session claimed may have arrived, or its claim
            // gone stale.
            self.claims_retry = None;
            self.ask(journal, now);
        }
        if self
            .chunks_want_sent
            .is_some_and(|t| now >= t + WANT_TIMEOUT_MS)
        {
            // Ask again for what is still missing.
            self.chunks_want_sent = None;
            self.chunks_asked.clear();
            self.ask_chunks(now);
        }
        if self
            .ids_want_sent
            .is_some_and(|t| now >= t + WANT_TIMEOUT_MS)
        {
            self.ids_want_sent = None;
            self.ids_asked.clear();
            self.ask_chunk_ids(journal, now);
        }
        if now >= self.next_have {
            self.announce(journal, now);
            self.next_have = now + ANTI_ENTROPY_MS;
        }
    }

    /// One message from the peer. Errors in the journal's storage come
    /// back as `Err`; anything wrong with the message closes the session.
    pub fn handle_message<S: Store>(
        &mut self,
        journal: &mut Journal<S>,
        bytes: &[u8],
        now: u64,
    ) -> Result<(), JournalError> {
        if self.closed {
            return Ok(());
        }
        let msg = match Message::decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                self.misbehaved(format!("bad message: {e}"));
                return Ok(());
            }
        };
        match msg {
            Message::Hello {
                proto,
                vault,
                device,
                vv,
            } => {
                if self.peer.is_some() {
                    self.misbehaved("a second Hello".into());
                } else if vault != self.vault {
                    self.misbehaved(format!("the peer syncs another vault ({vault})"));
                } else if proto != PROTO {
                    self.close(format!(
                        "the peer speaks protocol {proto}, this one {PROTO}"
                    ));
                } else if device == self.local {
                    self.close("the peer has this device's own id".into());
                } else {
                    self.peer = Some(device);
                    self.events.push_back(Event::Connected { peer: device });
                    self.peer_has = vv;
                    // Ops admitted between this side's Hello and the peer's
                    // found no one to announce them to: tell it now, or it
                    // would wait for the next anti-entropy round.
                    if journal.admitted() != &self.told {
                        self.announce(journal, now);
                    }
                    self.ask(journal, now);
                }
            }
            _ if self.peer.is_none() => self.misbehaved("a message before Hello".into()),
            Message::Have { vv } => {
                self.peer_has = vv;
                // It may have fetched since it said it lacked a chunk, or
                // learned what an op names.
                self.peer_lacks.clear();
                self.ids_peer_lacks.clear();
                if self.want_sent.is_none() {
                    self.ask(journal, now);
                }
            }
            Message::Want { credit, ranges } => self.serve(journal, credit, &ranges)?,
            Message::Ops { ops } => self.receive(journal, ops, now)?,
            Message::WantChunks { credit, ids } => self.serve_chunks(journal, credit, &ids)?,
            Message::Chunks { chunks } => self.receive_chunks(journal, chunks, now)?,
            Message::WantChunkIds { ops } => self.serve_chunk_ids(journal, &ops)?,
            Message::ChunkIds { entries } => self.receive_chunk_ids(journal, entries, now)?,
            Message::Bye { reason } => {
                self.closed = true;
                self.events.push_back(Event::Closed {
                    reason: format!("the peer said goodbye: {reason}"),
                    misbehaved: false,
                });
            }
        }
        Ok(())
    }

    /// Asks for what the peer has and the journal lacks, unless a Want is
    /// out already.
    fn ask<S: Store>(&mut self, journal: &Journal<S>, now: u64) {
        self.ask_chunk_ids(journal, now);
        self.ask_debt(journal, now);
        if self.want_sent.is_some() {
            return;
        }
        let mine = journal.admitted();
        let mut ranges = Vec::new();
        for (author, e) in self.peer_has.iter() {
            // By id: a chain may have forked in a way this journal has not
            // seen, so a seq proves nothing.
            if journal.holds(&e.head).unwrap_or(true) {
                continue;
            }
            // Without a known fork, what follows this journal's own part of
            // the chain; with one, or where this journal is ahead on
            // another branch, the server finds where the branches part.
            if !self.claims.ops(self.owner, *author, e.head, now) {
                // Another session of this device is fetching it.
                self.claims_retry.get_or_insert(now + CLAIM_RETRY_MS);
                continue;
            }
            let from = if journal.forks().contains_key(author) || mine.seq(author) >= e.seq {
                1
            } else {
                mine.seq(author) + 1
            };
            ranges.push(Range {
                author: *author,
                from,
                to: e.seq,
                head: e.head,
            });
            if ranges.len() == WANT_RANGES_MAX {
                break;
            }
        }
        if ranges.is_empty() {
            return;
        }
        self.granted = u64::from(WANT_CREDIT_BYTES);
        self.want_sent = Some(now);
        self.send(Message::Want {
            credit: WANT_CREDIT_BYTES,
            ranges,
        });
    }

    /// Sends the ops of `ranges` the peer lacks, within `credit` bytes.
    fn serve<S: Store>(
        &mut self,
        journal: &Journal<S>,
        credit: u32,
        ranges: &[Range],
    ) -> Result<(), JournalError> {
        let mut budget = u64::from(credit);
        let mut batch: Vec<Vec<u8>> = Vec::new();
        let mut batch_bytes = 0;
        'ranges: for r in ranges {
            let Some(head) = journal.op_meta(&r.head)? else {
                // Not held here (yet): nothing to send.
                continue;
            };
            if head.author != r.author || head.seq < r.from {
                self.misbehaved("a Want for a range that does not exist".into());
                return Ok(());
            }
            let to = r.to.min(head.seq);
            for op in self.missing_on_branch(journal, &r.author, &head, r.from, to)? {
                let Some(env) = journal.load(&op.id)? else {
                    continue;
                };
                let len = env.bytes().len();
                if len as u64 > budget && !(batch.is_empty() && budget == u64::from(credit)) {
                    break 'ranges;
                }
                if batch_bytes + len > BATCH_BYTES_MAX && !batch.is_empty() {
                    self.send(Message::Ops {
                        ops: std::mem::take(&mut batch),
                    });
                    batch_bytes = 0;
                }
                budget = budget.saturating_sub(len as u64);
                batch_bytes += len;
                batch.push(env.into_bytes());
                // The op extends the branch ending at its prev, or starts one.
                let prev = self
                    .sent
                    .heads(&op.author)
                    .iter()
                    .find(|e| e.head == op.prev)
                    .copied();
                if let Some(e) = prev {
                    self.sent.remove_head(&op.author, &e);
                }
                self.sent.add_head(
                    op.author,
                    vellum_journal::vv::Entry {
                        seq: op.seq,
                        head: op.id,
                    },
                );
            }
        }
        // An empty batch still answers the Want.
        self.send(Message::Ops { ops: batch });
        Ok(())
    }

    /// The ops on the branch ending at `head`, from about `from` to `to`,
    /// that the peer's last known vector lacks, in seq order: lower than
    /// `from` where the peer lacks the op below it (a branch it has not
    /// seen), higher where it already has them.
    fn missing_on_branch<S: Store>(
        &self,
        journal: &Journal<S>,
        author: &DeviceId,
        head: &vellum_journal::OpMeta,
        from: u64,
        to: u64,
    ) -> Result<Vec<vellum_journal::OpMeta>, JournalError> {
        let forked = journal.forks().contains_key(author);
        // One op per slot on an unforked chain: a lookup, not a walk.
        let at = |seq: u64| -> Result<vellum_journal::OpMeta, JournalError> {
            if !forked && let Some(m) = journal.chain_at(author, seq)?.into_iter().next() {
                return Ok(m);
            }
            journal.ancestor(author, &head.id, head.seq, seq)
        };
        // Whether the peer's last vector proves it holds this op: one of
        // its entries is, or descends from, the op. An entry whose head
        // this journal does not hold proves nothing (it may be a branch
        // this journal has not seen).
        let has = |seq: u64, id: vellum_journal::OpId| -> Result<bool, JournalError> {
            let told = self.peer_has.heads(author).iter();
            for e in told.chain(self.sent.heads(author)) {
                if e.seq < seq {
                    continue;
                }
                if e.head == id {
                    return Ok(true);
                }
                if !journal.holds(&e.head)? {
                    continue;
                }
                if !forked || journal.ancestor(author, &e.head, e.seq, seq)?.id == id {
                    return Ok(true);
                }
            }
            Ok(false)
        };
        let mut start = from.max(1);
        while start > 1 && !has(start - 1, at(start - 1)?.id)? {
            start -= 1;
        }
        while start <= to && has(start, at(start)?.id)? {
            start += 1;
        }
        let mut out = Vec::new();
        for seq in start..=to {
            out.push(at(seq)?);
        }
        Ok(out)
    }

    /// Admits a batch from the peer.
    fn receive<S: Store>(
        &mut self,
        journal: &mut Journal<S>,
        ops: Vec<Vec<u8>>,
        now: u64,
    ) -> Result<(), JournalError> {
        let bytes: u64 = ops.iter().map(|o| o.len() as u64).sum();
        let one_op = ops.len() == 1;
        if bytes > self.granted && !one_op {
            self.misbehaved(format!(
                "the peer sent {bytes} bytes against a credit of {}",
                self.granted
            ));
            return Ok(());
        }
        self.granted = self.granted.saturating_sub(bytes);
        let before = journal.op_count();
        for verdict in journal.admit_batch(ops, now)? {
            match verdict {
                Ok(Admission::Admitted(_) | Admission::Duplicate(_) | Admission::Pending(..)) => {}
                Err(e @ JournalError::UpgradeRequired(_)) => {
                    self.close(format!("the peer sent an op this build cannot read: {e}"));
                    return Ok(());
                }
                Err(e) => {
                    self.misbehaved(format!("the peer sent an op that is not admitted: {e}"));
                    return Ok(());
                }
            }
        }
        // Pending ops whose deps came in this batch count too.
        let admitted = journal.op_count() - before;
        if admitted > 0 {
            self.events.push_back(Event::Admitted { ops: admitted });
        }
        // The Want is answered: ask for what is still missing.
        self.want_sent = None;
        self.claims.release_ops(self.owner);
        self.ask(journal, now);
        Ok(())
    }

    /// Asks this peer for chunks that admitted ops name and the store
    /// lacks (`Journal::chunk_debt`), but not for those it said it lacks.
    fn ask_debt<S: Store>(&mut self, journal: &Journal<S>, now: u64) {
        if self.chunks_want_sent.is_some() {
            return;
        }
        let Ok(debt) = journal.chunk_debt(WANT_CHUNK_IDS + self.peer_lacks.len()) else {
            return;
        };
        self.chunks_needed
            .extend(debt.into_iter().filter(|c| !self.peer_lacks.contains(c)));
        self.ask_chunks(now);
    }

    /// Asks for the chunks still needed, unless a WantChunks is out already.
    fn ask_chunks(&mut self, now: u64) {
        if self.chunks_want_sent.is_some() {
            return;
        }
        let mut ids: Vec<[u8; 32]> = Vec::new();
        for id in &self.chunks_needed {
            if ids.len() == WANT_CHUNK_IDS.min(WANT_CHUNKS_MAX) {
                break;
            }
            if self.claims.chunk(self.owner, *id, now) {
                ids.push(*id);
            } else {
                // Another session of this device is fetching it.
                self.claims_retry.get_or_insert(now + CLAIM_RETRY_MS);
            }
        }
        if ids.is_empty() {
            return;
        }
        self.chunks_asked = ids.iter().copied().collect();
        self.chunks_ever_asked.extend(ids.iter().copied());
        self.chunks_granted = u64::from(WANT_CREDIT_BYTES);
        self.chunks_want_sent = Some(now);
        self.send(Message::WantChunks {
            credit: WANT_CREDIT_BYTES,
            ids,
        });
    }

    /// Sends the chunks asked for, in `Chunks` messages of at most
    /// [`BATCH_BYTES_MAX`] (or one chunk), within `credit`. A chunk not
    /// held goes as an empty entry, so the asker knows.
    fn serve_chunks<S: Store>(
        &mut self,
        journal: &Journal<S>,
        credit: u32,
        ids: &[[u8; 32]],
    ) -> Result<(), JournalError> {
        let mut budget = u64::from(credit);
        let mut batch: Vec<([u8; 32], Vec<u8>)> = Vec::new();
        let mut batch_bytes = 0;
        for id in ids {
            let bytes = journal.chunk(id)?.unwrap_or_default();
            if bytes.len() as u64 > budget && budget < u64::from(credit) {
                break;
            }
            if batch_bytes + bytes.len() > BATCH_BYTES_MAX && !batch.is_empty() {
                self.send(Message::Chunks {
                    chunks: std::mem::take(&mut batch),
                });
                batch_bytes = 0;
            }
            budget = budget.saturating_sub(bytes.len() as u64);
            batch_bytes += bytes.len();
            batch.push((*id, bytes));
        }
        if !batch.is_empty() || ids.is_empty() {
            self.send(Message::Chunks { chunks: batch });
        }
        Ok(())
    }

    /// Stores chunks from the peer, each checked against its id, durably;
    /// then asks for more.
    fn receive_chunks<S: Store>(
        &mut self,
        journal: &mut Journal<S>,
        chunks: Vec<([u8; 32], Vec<u8>)>,
        now: u64,
    ) -> Result<(), JournalError> {
        // Only chunks of the last WantChunks count against its credit. One
        // asked earlier in the session (an answer that came late, or twice)
        // is stored if new; one never asked for is misbehaviour.
        let mut fresh = Vec::with_capacity(chunks.len());
        let mut late = Vec::new();
        for (id, c) in chunks {
            if self.chunks_asked.contains(&id) {
                fresh.push((id, c));
            } else if !self.chunks_ever_asked.contains(&id) {
                self.misbehaved("the peer sent a chunk that was not asked for".into());
                return Ok(());
            } else if !c.is_empty() {
                if *blake3::hash(&c).as_bytes() != id {
                    self.misbehaved("the peer sent a chunk that does not match its id".into());
                    return Ok(());
                }
                self.chunks_needed.remove(&id);
                late.push((id, c));
            }
        }
        if !late.is_empty() {
            self.events.push_back(Event::Chunks {
                stored: late.len() as u64,
            });
            let ids: Vec<[u8; 32]> = late.iter().map(|(id, _)| *id).collect();
            vellum_journal::blob::store_chunks(journal.store(), late)?;
            self.claims.release_chunks(self.owner, ids);
        }
        let chunks = fresh;
        let bytes: u64 = chunks.iter().map(|(_, c)| c.len() as u64).sum();
        if bytes > self.chunks_granted && chunks.len() > 1 {
            self.misbehaved(format!(
                "the peer sent {bytes} bytes of chunks against a credit of {}",
                self.chunks_granted
            ));
            return Ok(());
        }
        self.chunks_granted = self.chunks_granted.saturating_sub(bytes);
        let mut keep = Vec::with_capacity(chunks.len());
        let answered: Vec<[u8; 32]> = chunks.iter().map(|(id, _)| *id).collect();
        for (id, c) in chunks {
            if !self.chunks_asked.remove(&id) {
                self.misbehaved("the peer sent a chunk that was not asked for".into());
                return Ok(());
            }
            if c.is_empty() {
                // The peer does not hold it (a relay that cannot read the
                // op, or one still fetching it): another peer is asked.
                self.chunks_needed.remove(&id);
                self.peer_lacks.insert(id);
                continue;
            }
            if *blake3::hash(&c).as_bytes() != id {
                self.misbehaved("the peer sent a chunk that does not match its id".into());
                return Ok(());
            }
            self.chunks_needed.remove(&id);
            keep.push((id, c));
        }
        if !keep.is_empty() {
            self.events.push_back(Event::Chunks {
                stored: keep.len() as u64,
            });
        }
        vellum_journal::blob::store_chunks(journal.store(), keep)?;
        // Stored (or lacked by the peer): another session may ask for what
        // is still missing.
        self.claims.release_chunks(self.owner, answered);
        if !self.chunks_asked.is_empty() {
            return Ok(());
        }
        self.chunks_want_sent = None;
        if self.chunks_needed.is_empty() {
            self.ask_debt(journal, now);
        } else {
            self.ask_chunks(now);
        }
        Ok(())
    }

    /// Asks this peer what chunks the unread ops name (ops the journal
    /// holds but cannot open), unless a WantChunkIds is out already or it
    /// said it does not know.
    fn ask_chunk_ids<S: Store>(&mut self, journal: &Journal<S>, now: u64) {
        if self.ids_want_sent.is_some() {
            return;
        }
        let Ok(ops) = journal.ops_needing_chunk_ids(WANT_CHUNK_IDS_OPS, &self.ids_peer_lacks)
        else {
            return;
        };
        if ops.is_empty() {
            return;
        }
        self.ids_asked = ops.iter().copied().collect();
        self.ids_ever_asked.extend(ops.iter().copied());
        self.ids_want_sent = Some(now);
        self.send(Message::WantChunkIds { ops });
    }

    /// Tells the chunk ids of the ops asked about, as far as this journal
    /// knows them, in messages of at most [`BATCH_BYTES_MAX`] (or one op's).
    fn serve_chunk_ids<S: Store>(
        &mut self,
        journal: &Journal<S>,
        ops: &[OpId],
    ) -> Result<(), JournalError> {
        let mut entries = Vec::new();
        let mut bytes = 0;
        for op in ops {
            let ids = journal.chunk_ids(op)?;
            let len = 37 + ids.as_ref().map_or(0, |i| 32 * i.len());
            if bytes + len > BATCH_BYTES_MAX && !entries.is_empty() {
                self.send(Message::ChunkIds {
                    entries: std::mem::take(&mut entries),
                });
                bytes = 0;
            }
            bytes += len;
            entries.push((*op, ids));
        }
        if !entries.is_empty() || ops.is_empty() {
            self.send(Message::ChunkIds { entries });
        }
        Ok(())
    }

    /// Records the chunk ids the peer told (they become debt, asked for
    /// like any other), and notes the ops it does not know.
    fn receive_chunk_ids<S: Store>(
        &mut self,
        journal: &Journal<S>,
        entries: Vec<(OpId, Option<Vec<[u8; 32]>>)>,
        now: u64,
    ) -> Result<(), JournalError> {
        for (op, ids) in entries {
            if !self.ids_ever_asked.contains(&op) {
                self.misbehaved("the peer told the chunks of an op not asked about".into());
                return Ok(());
            }
            self.ids_asked.remove(&op);
            match ids {
                Some(ids) => journal.learn_chunk_ids(&op, &ids)?,
                None => {
                    self.ids_peer_lacks.insert(op);
                }
            }
        }
        if !self.ids_asked.is_empty() || self.ids_want_sent.is_none() {
            return Ok(());
        }
        self.ids_want_sent = None;
        self.ask_debt(journal, now);
        self.ask_chunk_ids(journal, now);
        Ok(())
    }

    fn send(&mut self, m: Message) {
        self.outbox.push_back(m.encode());
    }

    fn close(&mut self, reason: String) {
        self.send(Message::Bye {
            reason: reason.clone(),
        });
        self.closed = true;
        self.events.push_back(Event::Closed {
            reason,
            misbehaved: false,
        });
    }

    fn misbehaved(&mut self, reason: String) {
        self.send(Message::Bye {
            reason: reason.clone(),
        });
        self.closed = true;
        self.events.push_back(Event::Closed {
            reason,
            misbehaved: true,
        });
    }
}
