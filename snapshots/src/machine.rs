//! The time machine: the replayed head state, kept in the store and caught
//! up incrementally, and the state at any point.
//!
//! Head state lives in `Ks::State` (one record per file) plus a small head
//! record in `Ks::Meta`, so opening a vault never replays the journal.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::ControlFlow;
use std::sync::mpsc;

use rkyv::rancor;
use rkyv::util::AlignedVec;
use vellum_journal::limits::CHECKPOINT_INTERVAL_OPS;
use vellum_journal::payload::{Action, Body, Payload};
use vellum_journal::replay::{self, Change, Effect, FileState, ReplayOp, VaultState};
use vellum_journal::store::{Batch, Durability, Ks, Store};
use vellum_journal::{Disputes, Error, FileId, Journal, Result, VersionVector};

use crate::checkpoint;
use crate::contents::{Bodies, Cache, EFFECT_APPLIED, EFFECT_NO_EFFECT, OUTCOME_NONE};

const HEAD: &[u8] = b"head_state";
const HEAD_LIVE_FILES: &[u8] = b"head_live_files";
const HEAD_OPEN_CONFLICTS: &[u8] = b"head_open_conflicts";
const NEXT_CHECKPOINT: &[u8] = b"next_checkpoint_ops";
/// The applied op count and last op of the stored head: how a [`Head`] in
/// memory knows it is still the stored one.
const HEAD_MARK: &[u8] = b"head_mark";
/// The forks the head state was replayed with ([`Disputes`]).
const HEAD_DISPUTES: &[u8] = b"head_disputes";
/// A long catch-up commits its progress every this many ops.
const CATCH_UP_COMMIT_OPS: u64 = 8192;

/// What a catch-up did.
#[derive(Debug, Default)]
pub struct CatchUp {
    pub applied: u64,
    pub rewound: bool,
    /// Files whose head state changed.
    pub changed: BTreeSet<FileId>,
    pub no_effect: u64,
    /// Replay stopped at an op sealed under an epoch whose key this device
    /// does not hold yet (DESIGN §7: replay waits, never skips): why.
    pub waiting_for_key: Option<String>,
}

pub struct TimeMachine;

/// Recent head states kept in memory at least this many ops apart (more in
/// big vaults, where a copy costs more).
const RECENT_SPACING_OPS: u64 = 8;
/// How many recent head states are kept.
const RECENT_MAX: usize = 16;

/// The head state a long-running process keeps in memory between
/// catch-ups, so applying an op costs one op rather than a load of every
/// file's record, with a few recent states to rewind to.
///
/// A late op usually sorts just before the newest applied ops. Rewinding to
/// a recent state then replays a few ops, where the newest serving
/// checkpoint may be a thousand ops back. A recent state holds every op
/// that sorts up to its last op (every later rewind past it drops it), so
/// it serves unless a fork or removal has since changed what one of those
/// ops does (`Journal::first_bar_change`). Unlike a checkpoint, it serves
/// in a journal with forks, where every new op of an unforked device may
/// vouch for more of a forked chain.
///
/// Drop it whenever the store changes under it (a reopen after a crash, a
/// restore); a `head_mark` record catches a store that moved anyway.
#[derive(Default)]
pub struct Head {
    state: Option<VaultState>,
    /// Oldest first, with the disputes (forks and removals) each was
    /// replayed with; each one's last op sorts after the one before.
    recent: VecDeque<(VaultState, Disputes)>,
    next_recent: u64,
    /// File versions those states (and the head) name: after a rewind, the
    /// store's content cache (each file's newest version only) lacks most
    /// of them.
    bodies: Bodies,
}

impl Head {
    /// The state, if it is in memory.
    pub fn loaded(&self) -> Option<&VaultState> {
        self.state.as_ref()
    }

    /// The state, loaded from the store if not in memory yet.
    pub fn state<S: Store>(&mut self, journal: &Journal<S>) -> Result<&VaultState> {
        if self.state.is_none() {
            self.state = Some(TimeMachine::load_head(journal)?);
        }
        Ok(self.state.as_ref().expect("just loaded"))
    }

    /// Keeps a copy of `state`, replayed with `disputes`, if it is far
    /// enough past the last one kept.
    fn remember(&mut self, state: &VaultState, disputes: &Disputes) {
        if state.ops < self.next_recent {
            return;
        }
        if self.recent.len() == RECENT_MAX {
            self.recent.pop_front();
        }
        self.recent.push_back((state.clone(), disputes.clone()));
        self.next_recent = state.ops + RECENT_SPACING_OPS.max(state.paths.len() as u64 / 8);
    }

    /// The newest recent state that sorts before `from` and that a replay
    /// with `disputes` would also give, after forgetting those a rewind to
    /// `from` invalidates. A recent state holds every op that sorts up to
    /// its last (a later op sorting there rewinds past it and drops it), so
    /// it serves unless an op up to its last is barred differently now.
    fn before<S: Store>(
        &mut self,
        journal: &Journal<S>,
        from: &vellum_journal::OrderKey,
        disputes: &Disputes,
    ) -> Result<Option<VaultState>> {
        while self
            .recent
            .back()
            .is_some_and(|(s, _)| s.last.as_ref().is_none_or(|l| l >= from))
        {
            self.recent.pop_back();
        }
        self.next_recent = self.recent.back().map_or(0, |(s, _)| s.ops + 1);
        for (state, was) in self.recent.iter().rev() {
            let Some(last) = &state.last else {
                return Ok(None);
            };
            match journal.first_bar_change(was, disputes)? {
                Some(changed) if changed <= *last => continue,
                _ => return Ok(Some(state.clone())),
            }
        }
        Ok(None)
    }

    fn forget_recent(&mut self) {
        self.recent.clear();
        self.next_recent = 0;
    }
}

fn head_mark(state: &VaultState) -> Vec<u8> {
    let mut m = state.ops.to_le_bytes().to_vec();
    if let Some(last) = &state.last {
        m.extend_from_slice(&last.to_bytes());
    }
    m
}

/// Files that differ between `old` and `new`: what a rewind must rewrite.
fn rewritten(old: &VaultState, new: &VaultState) -> BTreeSet<FileId> {
    new.files
        .iter()
        .filter(|(id, f)| old.files.get(id) != Some(f))
        .map(|(id, _)| *id)
        .chain(
            old.files
                .keys()
                .filter(|id| !new.files.contains_key(id))
                .copied(),
        )
        .collect()
}

/// The file an op is about: a Create's own id, else its payload's file.
fn named_file(key: &vellum_journal::OrderKey, payload: &Payload) -> Option<FileId> {
    match &payload.action {
        Action::Create { .. } => Some(key.id),
        _ => payload.file(),
    }
}

fn aligned(bytes: &[u8]) -> AlignedVec<16> {
    let mut a = AlignedVec::<16>::with_capacity(bytes.len());
    a.extend_from_slice(bytes);
    a
}

fn u64_meta<S: Store>(store: &S, key: &[u8]) -> Result<u64> {
    Ok(store
        .get(Ks::Meta, key)?
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0))
}

impl TimeMachine {
    /// Live files at head, without loading the state.
    pub fn head_live_files<S: Store>(journal: &Journal<S>) -> Result<u64> {
        u64_meta(journal.store(), HEAD_LIVE_FILES)
    }

    /// Open conflicts in the head state, without loading it.
    pub fn head_open_conflicts<S: Store>(journal: &Journal<S>) -> Result<u64> {
        u64_meta(journal.store(), HEAD_OPEN_CONFLICTS)
    }

    /// The head state as last persisted (call [`TimeMachine::catch_up`]
    /// first to include newly admitted ops).
    pub fn load_head<S: Store>(journal: &Journal<S>) -> Result<VaultState> {
        let store = journal.store();
        let mut state = match store.get(Ks::Meta, HEAD)? {
            Some(b) => rkyv::from_bytes::<VaultState, rancor::Error>(&aligned(&b))
                .map_err(|e| Error::Corrupt(format!("head state does not decode: {e}")))?,
            None => return Ok(VaultState::default()),
        };
        let mut err = None;
        store.scan(
            Ks::State,
            (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded),
            false,
            &mut |k, v| {
                let decoded = FileId::from_slice(k).ok_or(()).and_then(|id| {
                    rkyv::from_bytes::<FileState, rancor::Error>(&aligned(v))
                        .map(|f| (id, f))
                        .map_err(|_| ())
                });
                match decoded {
                    Ok((id, f)) => {
                        if f.exists {
                            state.paths.insert(f.path.clone(), id);
                        }
                        state.files.insert(id, f);
                        ControlFlow::Continue(())
                    }
                    Err(()) => {
                        err = Some(Error::Corrupt("a head state record does not decode".into()));
                        ControlFlow::Break(())
                    }
                }
            },
        )?;
        err.map_or(Ok(state), Err)
    }

    fn put_head(state: &VaultState, changed: &BTreeSet<FileId>, batch: &mut Batch) {
        for id in changed {
            match state.files.get(id) {
                Some(f) => {
                    let b = rkyv::to_bytes::<rancor::Error>(f).expect("in-memory serialisation");
                    batch.put(Ks::State, id.0.to_vec(), b.into_vec());
                }
                // A rewind may find that a file was an alias all along.
                None => batch.delete(Ks::State, id.0.to_vec()),
            }
        }
        // Everything but the per-file maps, which live in `Ks::State`.
        let header = VaultState {
            files: BTreeMap::new(),
            paths: BTreeMap::new(),
            applied: state.applied.clone(),
            last: state.last,
            ops: state.ops,
            merge_version: state.merge_version,
            ignore: state.ignore.clone(),
            device_names: state.device_names.clone(),
            open_conflicts: state.open_conflicts,
            aliases: state.aliases.clone(),
        };
        let b = rkyv::to_bytes::<rancor::Error>(&header).expect("in-memory serialisation");
        batch.put(Ks::Meta, HEAD, b.into_vec());
        batch.put(Ks::Meta, HEAD_MARK, head_mark(state));
        batch.put(
            Ks::Meta,
            HEAD_LIVE_FILES,
            (state.paths.len() as u64).to_le_bytes().to_vec(),
        );
        batch.put(
            Ks::Meta,
            HEAD_OPEN_CONFLICTS,
            state.open_conflicts.to_le_bytes().to_vec(),
        );
    }

    /// Applies every admitted op not yet in the head state. A late op that
    /// sorts before applied ones rewinds to the newest checkpoint that
    /// serves the new set and replays forward from there.
    pub fn catch_up<S: Store>(journal: &Journal<S>) -> Result<CatchUp> {
        Self::catch_up_with(journal, CHECKPOINT_INTERVAL_OPS)
    }

    /// [`TimeMachine::catch_up`] with checkpoints at least every
    /// `checkpoint_interval_ops` ops (tests use small intervals).
    pub fn catch_up_with<S: Store>(
        journal: &Journal<S>,
        checkpoint_interval_ops: u64,
    ) -> Result<CatchUp> {
        Self::catch_up_cached(journal, checkpoint_interval_ops, &mut Head::default())
    }

    /// [`TimeMachine::catch_up_with`] over a [`Head`] the caller keeps in
    /// memory between calls.
    pub fn catch_up_cached<S: Store>(
        journal: &Journal<S>,
        checkpoint_interval_ops: u64,
        head: &mut Head,
    ) -> Result<CatchUp> {
        let out = Self::catch_up_head(journal, checkpoint_interval_ops, head);
        if out.is_err() {
            // What failed may have left the store's head behind memory's.
            *head = Head::default();
        }
        out
    }

    fn catch_up_head<S: Store>(
        journal: &Journal<S>,
        checkpoint_interval_ops: u64,
        head: &mut Head,
    ) -> Result<CatchUp> {
        let mut out = CatchUp::default();
        let Some(from) = journal.replay_from()? else {
            return Ok(out);
        };
        let stored = journal.store().get(Ks::Meta, HEAD_MARK)?;
        let mut state = match head.state.take() {
            Some(s) if stored.as_deref() == Some(&head_mark(&s)[..]) => s,
            kept => {
                if kept.is_some() {
                    tracing::warn!("the stored head moved under the one in memory: reloading it");
                }
                head.forget_recent();
                Self::load_head(journal)?
            }
        };
        let mut old = None;
        // Forks and removals decide which ops take effect, from the whole
        // set: an op whose verdict changed is replayed again, from a state
        // before it, like a late op.
        let disputes = journal.disputes(journal.admitted())?;
        let was = match journal.store().get(Ks::Meta, HEAD_DISPUTES)? {
            Some(b) => Disputes::from_bytes(&b)?,
            None => Disputes::default(),
        };
        let from = match journal.first_bar_change(&was, &disputes)? {
            Some(changed) if changed < from => {
                tracing::info!(op = %changed.id.short(), "a fork or removal changed which ops take effect");
                changed
            }
            _ => from,
        };
        if state.last.is_some_and(|last| from <= last) {
            out.rewound = true;
            old = Some(state.clone());
            let recent = head.before(journal, &from, &disputes)?;
            let stored = checkpoint::newest_serving(journal, journal.admitted(), Some(&from))?;
            state = match (recent, stored) {
                (Some(r), Some(c)) if c.ops > r.ops => c,
                (Some(r), _) => r,
                (None, c) => c.unwrap_or_default(),
            };
            tracing::debug!(ops = state.ops, "rewinding for a late op");
        }
        if out.rewound {
            crate::contents::drop_routings_after(journal, state.last.as_ref())?;
        }
        let mut next_checkpoint = u64_meta(journal.store(), NEXT_CHECKPOINT)?;
        if next_checkpoint == 0 || out.rewound {
            next_checkpoint =
                state.ops + checkpoint::interval_ops(state.paths.len(), checkpoint_interval_ops);
        }
        let mut keys = Vec::new();
        journal.for_each_in_order(state.last.as_ref(), &mut |k, seq| {
            keys.push((k, seq));
            Ok(ControlFlow::Continue(()))
        })?;
        let mut batch = Batch::new();
        let mut changed_since_commit = BTreeSet::new();
        let mut cache = Cache::new(journal, journal.admitted(), false)
            .recording_checks()
            .with_bodies(std::mem::take(&mut head.bodies));
        cache.starting_from(&state);
        for (i, (key, seq)) in keys.iter().enumerate() {
            let op = match journal.replay_op(*key, *seq, &journal.load_at(key)?, &disputes) {
                Ok(op) => op,
                Err(Error::Keys(why)) => {
                    // Nothing after this op may apply before it: stop here
                    // until the key arrives.
                    tracing::info!(op = %key.id.short(), why, "replay waits for a key");
                    out.waiting_for_key = Some(why);
                    cache.flush(&mut batch);
                    Self::put_head(&state, &changed_since_commit, &mut batch);
                    if let Some(old) = &old {
                        Self::put_head(&state, &rewritten(old, &state), &mut batch);
                    }
                    batch.put(Ks::Meta, HEAD_DISPUTES, disputes.to_bytes());
                    journal.mark_replayed(&mut batch, Some(key));
                    journal
                        .store()
                        .commit(std::mem::take(&mut batch), Durability::Buffered)?;
                    break;
                }
                Err(e) => return Err(e),
            };
            let named_file = named_file(key, &op.payload);
            if let Some(file) = named_file {
                cache.index(file, key);
            }
            let routed = named_file.map(|id| state.route(id));
            if let Some(f) = routed.and_then(|id| state.files.get(&id).map(|f| (id, f.hash))) {
                cache.replacing(f.0, f.1);
            }
            let effect = replay::apply(&mut state, &op, &mut cache)?;
            // The file's record is rewritten even for an op without effect,
            // which may still have recorded a conflict.
            if let Some(file) = named_file.map(|id| state.route(id))
                && state.files.contains_key(&file)
            {
                changed_since_commit.insert(file);
            }
            let outcome = match cache.checked.remove(&key.id) {
                Some(o) => o.to_record(),
                None => vec![OUTCOME_NONE],
            };
            let record = match &effect {
                Effect::Applied(changes) => {
                    for c in changes {
                        match c {
                            Change::Created { file, .. }
                            | Change::Modified { file, .. }
                            | Change::Deleted { file, .. }
                            | Change::Renamed { file, .. } => {
                                changed_since_commit.insert(*file);
                                out.changed.insert(*file);
                            }
                            Change::Config => {}
                        }
                    }
                    let mut r = vec![EFFECT_APPLIED];
                    r.extend_from_slice(&outcome);
                    r
                }
                Effect::NoEffect(why) => {
                    out.no_effect += 1;
                    tracing::debug!(op = %key.id.short(), why, "op has no effect");
                    let mut r = vec![EFFECT_NO_EFFECT];
                    r.extend_from_slice(&outcome);
                    r.extend_from_slice(why.as_bytes());
                    r
                }
            };
            batch.put(Ks::Effects, key.to_bytes().to_vec(), record);
            out.applied += 1;
            head.remember(&state, &disputes);
            if state.ops >= next_checkpoint {
                checkpoint::write(&state, &disputes, &mut batch);
                next_checkpoint = state.ops
                    + checkpoint::interval_ops(state.paths.len(), checkpoint_interval_ops);
            }
            let last = i + 1 == keys.len();
            if last || out.applied.is_multiple_of(CATCH_UP_COMMIT_OPS) {
                cache.flush(&mut batch);
                if let Some(old) = &old {
                    // A rewind may touch any file: rewrite every one that differs.
                    changed_since_commit.extend(rewritten(old, &state));
                }
                Self::put_head(&state, &changed_since_commit, &mut batch);
                changed_since_commit.clear();
                batch.put(
                    Ks::Meta,
                    NEXT_CHECKPOINT,
                    next_checkpoint.to_le_bytes().to_vec(),
                );
                batch.put(Ks::Meta, HEAD_DISPUTES, disputes.to_bytes());
                let next = keys.get(i + 1).map(|(k, _)| k);
                journal.mark_replayed(&mut batch, next);
                journal
                    .store()
                    .commit(std::mem::take(&mut batch), Durability::Buffered)?;
            }
        }
        if keys.is_empty() {
            journal.mark_replayed(&mut batch, None);
            journal.store().commit(batch, Durability::Buffered)?;
        }
        if let Some(old) = &old {
            out.changed.extend(
                state
                    .files
                    .iter()
                    .filter(|(id, f)| old.files.get(id) != Some(f))
                    .map(|(id, _)| *id),
            );
        }
        debug_assert!(
            out.waiting_for_key.is_some() || state.applied_vv() == *journal.admitted(),
            "head lags admission"
        );
        head.state = Some(state);
        head.bodies = cache.into_bodies();
        Ok(out)
    }

    /// The state at exactly the op set `target`, which must be causally
    /// closed and admitted (points resolve to such sets).
    pub fn state_at<S: Store>(journal: &Journal<S>, target: &VersionVector) -> Result<VaultState> {
        if target == journal.admitted() && journal.replay_from()?.is_none() {
            return Self::load_head(journal);
        }
        let mut state = checkpoint::newest_serving(journal, target, None)?.unwrap_or_default();
        // Recorded outcomes were computed with the head's forks and
        // removals; a point may bar other ops, and then see an op's text
        // differently. (Trusting them where the point's removals agree with
        // the head's was not enough: regression seed 200045.)
        let trust = journal.forks().is_empty() && !journal.has_removals();
        replay_into(journal, &mut state, target, trust)?;
        Ok(state)
    }

    /// The state at `target` replayed from nothing, trusting no recorded
    /// outcome or checkpoint: what [`TimeMachine::state_at`] must equal.
    pub fn state_at_from_scratch<S: Store>(
        journal: &Journal<S>,
        target: &VersionVector,
    ) -> Result<VaultState> {
        let mut state = VaultState::default();
        replay_into(journal, &mut state, target, false)?;
        Ok(state)
    }

    /// Replays the whole admitted set from nothing, checking every patch
    /// again. `verify` compares this with the stored head.
    pub fn replay_from_scratch<S: Store>(journal: &Journal<S>) -> Result<VaultState> {
        let mut state = VaultState::default();
        replay_into(journal, &mut state, journal.admitted(), false)?;
        Ok(state)
    }

    /// The state at `target` and every live file's content, from one
    /// forward replay: for a checkout of a point whose versions are mostly
    /// not cached, one sequential pass beats rebuilding file by file.
    pub fn contents_at<S: Store>(
        journal: &Journal<S>,
        target: &VersionVector,
    ) -> Result<(VaultState, HashMap<FileId, Body>)> {
        let mut state = VaultState::default();
        let mut cache = Cache::new(journal, target, false);
        replay_with(journal, &mut state, target, &mut cache)?;
        let mut bodies = HashMap::new();
        for (_, id, f) in state.live_files() {
            bodies.insert(*id, cache.take(*id, f.hash)?);
        }
        Ok((state, bodies))
    }
}

/// Replays the ops of `target` that sort after `state.last`.
fn replay_into<S: Store>(
    journal: &Journal<S>,
    state: &mut VaultState,
    target: &VersionVector,
    trust_effects: bool,
) -> Result<()> {
    replay_with(
        journal,
        state,
        target,
        &mut Cache::new(journal, target, trust_effects),
    )
}

fn replay_with<S: Store>(
    journal: &Journal<S>,
    state: &mut VaultState,
    target: &VersionVector,
    cache: &mut Cache<'_, S>,
) -> Result<()> {
    let want = journal.count_ops(target)?;
    cache.starting_from(state);
    if state.ops >= want {
        return Ok(());
    }
    if want - state.ops >= PIPELINE_OPS_MIN {
        replay_pipelined(journal, state, target, cache)?;
    } else {
        replay_serial(journal, state, target, cache)?;
    }
    if state.ops != want {
        return Err(Error::Corrupt(format!(
            "replay reached {} of {} ops of the point",
            state.ops, want
        )));
    }
    Ok(())
}

/// A replay at least this long reads and opens (decrypts and decodes) ops
/// on a helper thread while this one applies them, [`PIPELINE_CHUNK_OPS`]
/// at a time: reading and opening are about 40% of the work of a replay.
const PIPELINE_OPS_MIN: u64 = 4096;
const PIPELINE_CHUNK_OPS: usize = 1024;

fn replay_serial<S: Store>(
    journal: &Journal<S>,
    state: &mut VaultState,
    target: &VersionVector,
    cache: &mut Cache<'_, S>,
) -> Result<()> {
    let want = journal.count_ops(target)?;
    let disputes = journal.disputes(target)?;
    let start = state.last;
    journal.for_each_op_in_order(start.as_ref(), &mut |key, seq, env| {
        if !journal.includes(target, &key.author, seq, &key.id)? {
            return Ok(ControlFlow::Continue(()));
        }
        replay::apply(state, &journal.replay_op(key, seq, &env, &disputes)?, cache)?;
        Ok(if state.ops >= want {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        })
    })
}

/// [`replay_serial`] in two stages: a helper thread reads the ops in
/// order and opens them; this thread applies them. Chunks come back in the
/// order read, and an error travels in its op's place, so the first error
/// in order is the one returned. Once the point is reached, dropping the
/// receiver stops the helper.
fn replay_pipelined<S: Store>(
    journal: &Journal<S>,
    state: &mut VaultState,
    target: &VersionVector,
    cache: &mut Cache<'_, S>,
) -> Result<()> {
    let want = journal.count_ops(target)?;
    let disputes = journal.disputes(target)?;
    let disputes = &disputes;
    let start = state.last;
    // Every op of the target after `start` is applied: the helper reads
    // exactly that many, and no further.
    let mut unread = want - state.ops;
    std::thread::scope(|scope| {
        let (to_main, opened) = mpsc::sync_channel::<Vec<Result<ReplayOp>>>(4);
        scope.spawn(move || {
            let mut chunk = Vec::with_capacity(PIPELINE_CHUNK_OPS);
            let read = journal.for_each_op_in_order(start.as_ref(), &mut |key, seq, env| {
                if !journal.includes(target, &key.author, seq, &key.id)? {
                    return Ok(ControlFlow::Continue(()));
                }
                unread -= 1;
                chunk.push(journal.replay_op(key, seq, &env, disputes));
                if unread == 0 {
                    return Ok(ControlFlow::Break(()));
                }
                if chunk.len() == PIPELINE_CHUNK_OPS {
                    let full =
                        std::mem::replace(&mut chunk, Vec::with_capacity(PIPELINE_CHUNK_OPS));
                    if to_main.send(full).is_err() {
                        return Ok(ControlFlow::Break(()));
                    }
                }
                Ok(ControlFlow::Continue(()))
            });
            if let Err(e) = read {
                chunk.push(Err(e));
            }
            // The receiver is gone if the point was reached: nothing to say.
            let _ = to_main.send(chunk);
        });
        for ops in opened {
            for op in ops {
                replay::apply(state, &op?, cache)?;
                if state.ops >= want {
                    return Ok(());
                }
            }
        }
        Ok(())
    })
}
