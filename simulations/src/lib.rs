//! vellum-sim: devices of one vault editing concurrently and syncing through
//! the real protocol core over a simulated network (DESIGN §10).
//!
//! Everything real but the network and the clock: each replica has its own
//! journal (admission, replay, merge, real signatures and encryption) on an
//! in-memory store that knows what a crash loses, and one
//! [`vellum_replicator::Session`] per connected peer. One thread and one
//! seeded generator drive it all in simulated time, so a seed always gives
//! the same run, and the trace hash proves it.
//!
//! A swarm run ([`Scenario::Swarm`], the default) has a chaotic phase
//! (edits on every replica; lost, duplicated and delayed messages;
//! partitions; crashes that drop unflushed writes; restores from old
//! backups, which fork chains; a replica sending tampered ops; members
//! added, removed, and removing each other, and keys rotated, concurrently)
//! and a healing phase (every link up, no loss) that must end with every
//! replica holding the same ops, and every member the same state and bytes.
//! A removed replica must hold no key written after its removal.
//! [`Scenario::Default`] (`--no-swarm`) is DESIGN §10's default scenario
//! alone: three replicas, 200 ops, one partition and one crash.

pub mod cli;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use vellum_journal::control::{Control, MemberAction, Role};
use vellum_journal::entropy::{Entropy, SeededEntropy};
use vellum_journal::envelope::SignatureMemo;
use vellum_journal::keys::{EpochKey, Keyring, SigningKey, device_id};
use vellum_journal::payload::{Action, Body, MERGE_VERSION, Payload};
use vellum_journal::replay::{FileKind, VaultState, make_patch};
use vellum_journal::store::{Durability, MemStore};
use vellum_journal::{Admission, ContentHash, Journal, OpId, VaultId, Write};
use vellum_replicator::{Claims, Event, Session};
use vellum_snapshots::contents::body_of;
use vellum_snapshots::{Head, TimeMachine};

/// Wall time at the start of every run (simulated).
const T0: u64 = 1_800_000_000_000;
/// One step of simulated time.
const TICK_MS: u64 = 20;
/// Checkpoints every this many ops by default, as in production: a run
/// (a few hundred ops) then rewinds to the start for late ops.
/// `--checkpoint-ops 32` makes runs cross checkpoints all the time.
pub const CHECKPOINT_OPS_DEFAULT: u64 = vellum_journal::limits::CHECKPOINT_INTERVAL_OPS;
/// Longest the healing phase may take, in simulated time.
const HEAL_MAX_MS: u64 = 600_000;

/// A seeded generator over the journal's seeded entropy (blake3 XOF).
pub struct Rng(SeededEntropy);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(SeededEntropy::new(seed))
    }
    pub fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.0.fill(&mut b);
        u64::from_le_bytes(b)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.u64() % n
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// The faults of one run: drawn from its seed in a swarm run, fixed in the
/// default scenario.
#[derive(Clone, Debug)]
pub struct Faults {
    /// Replicas that are members from the start.
    pub replicas: usize,
    /// Whether one more replica syncs from the start, a member only once
    /// some replica adds it ([`Faults::join`]).
    pub spare: bool,
    pub loss: f64,
    pub duplicate: f64,
    pub delay_max_ms: u64,
    pub partitions: u32,
    pub crashes: u32,
    pub restores: u32,
    pub tampering: bool,
    /// Whether the spare replica is added as a member during the run.
    pub join: bool,
    /// Removals of one replica by another.
    pub removals: u32,
    /// Two replicas removing each other at the same moment.
    pub mutual_removal: bool,
    /// Key rotations with no removal.
    pub rotations: u32,
    /// One moment where three replicas add the spare, rotate the key and
    /// remove a member, none having seen the others' change.
    pub concurrent_changes: bool,
    /// Per replica, how far its clock is off (ms, may be negative).
    pub skew_ms: Vec<i64>,
    /// Whether the spare joins as a blind member (a relay that holds no
    /// key), not a full one: every third seed, so that no other draw moves.
    pub blind_spare: bool,
    /// Largest binary file written, in bytes.
    pub blob_max_bytes: u64,
}

/// What a run did and found.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub seed: u64,
    pub ops: u64,
    pub conflicts: u64,
    /// blake3 of the trace: equal for equal seeds.
    pub trace_hash: [u8; 32],
    pub failure: Option<String>,
}

struct Replica {
    journal: Journal<MemStore>,
    signer: SigningKey,
    keyring: Keyring,
    up: bool,
    /// A copy of its store from earlier in the run, to restore.
    backup: Option<MemStore>,
    /// Its replayed head in memory, as a running device keeps it; a crash
    /// or restore drops it.
    head: Head,
    /// What its sessions are fetching, shared between them as the daemon
    /// shares it.
    claims: Claims,
}

/// Where `--trace` lines go.
pub type Printer = Box<dyn FnMut(&str)>;

/// A message on its way: (delivery time, order, from, to, connection, bytes).
type InFlight = Reverse<(u64, u64, usize, usize, u64, Vec<u8>)>;

struct World {
    rng: Rng,
    entropy: SeededEntropy,
    now: u64,
    replicas: Vec<Replica>,
    /// Sessions by (replica, peer), with the connection they belong to.
    sessions: BTreeMap<(usize, usize), (u64, Session)>,
    /// Links cut until a time.
    cut: BTreeMap<(usize, usize), u64>,
    queue: BinaryHeap<InFlight>,
    /// Per connection and direction, when its last message arrives.
    last_delivery: BTreeMap<(usize, usize, u64), u64>,
    next_conn: u64,
    order: u64,
    faults: Faults,
    checkpoint_ops: u64,
    /// Ops sent tampered: none may ever be admitted.
    tampered: BTreeSet<OpId>,
    /// Replicas that sent something tampered: the only ones a peer may
    /// rightly call misbehaving.
    tamperers: BTreeSet<usize>,
    /// Honest replicas a peer disconnected as misbehaving.
    false_accusations: Vec<String>,
    /// One memo of verified signatures for every replica: each op's
    /// signature is checked once per run, by the first replica to admit
    /// it, instead of once per replica. Tampered bytes hash to another id,
    /// so they are always checked.
    signatures: SignatureMemo,
    trace: blake3::Hasher,
    printer: Option<Printer>,
}

fn pair(a: usize, b: usize) -> (usize, usize) {
    (a.min(b), a.max(b))
}

impl World {
    fn log(&mut self, line: String) {
        self.trace.update(line.as_bytes());
        self.trace.update(b"\n");
        if let Some(p) = &mut self.printer {
            p(&format!("t={:>7} {line}", self.now));
        }
    }

    fn wall(&self, r: usize) -> u64 {
        (T0 + self.now).saturating_add_signed(self.faults.skew_ms[r])
    }

    fn linked(&self, a: usize, b: usize) -> bool {
        self.replicas[a].up
            && self.replicas[b].up
            && self
                .cut
                .get(&pair(a, b))
                .is_none_or(|until| *until <= self.now)
    }

    /// Opens sessions on links that are up and have none; closes those on
    /// links that went down.
    fn connect(&mut self) {
        let n = self.replicas.len();
        for a in 0..n {
            for b in 0..n {
                if a >= b {
                    continue;
                }
                let up = self.linked(a, b);
                let has = self.sessions.contains_key(&(a, b));
                if up && !has {
                    let conn = self.next_conn;
                    self.next_conn += 1;
                    for (x, y) in [(a, b), (b, a)] {
                        let r = &self.replicas[x];
                        let s = Session::with_claims(
                            &r.journal,
                            device_id(&r.signer),
                            self.now,
                            r.claims.clone(),
                        );
                        self.sessions.insert((x, y), (conn, s));
                    }
                    self.log(format!("connect {a}-{b} #{conn}"));
                } else if !up && has {
                    self.sessions.remove(&(a, b));
                    self.sessions.remove(&(b, a));
                    self.log(format!("disconnect {a}-{b}"));
                }
            }
        }
    }

    /// Moves what sessions want to send onto the network. A session runs
    /// over a reliable, ordered stream, so messages on one connection
    /// arrive in order, after a delay; a lost message breaks the
    /// connection (both sessions end, and the peers connect again later),
    /// and a message may arrive twice (a peer replaying it).
    fn flush(&mut self, chaos: bool) {
        let keys: Vec<(usize, usize)> = self.sessions.keys().copied().collect();
        for (from, to) in keys {
            while let Some((conn, s)) = self.sessions.get_mut(&(from, to)) {
                let conn = *conn;
                let Some(bytes) = s.poll_transmit() else {
                    break;
                };
                if chaos && self.rng.chance(self.faults.loss / 10.0) {
                    self.sessions.remove(&(from, to));
                    self.sessions.remove(&(to, from));
                    self.cut.insert(pair(from, to), self.now + 500);
                    self.log(format!("connection {from}-{to} breaks"));
                    break;
                }
                let hello = bytes.get(1) == Some(&1);
                let twice = chaos && !hello && self.rng.chance(self.faults.duplicate);
                let delay = if chaos {
                    1 + self.rng.below(self.faults.delay_max_ms)
                } else {
                    1 + self.rng.below(10)
                };
                let last = self.last_delivery.entry((from, to, conn)).or_insert(0);
                let at = (self.now + delay).max(*last);
                *last = at;
                if twice {
                    self.order += 1;
                    self.queue
                        .push(Reverse((at, self.order, from, to, conn, bytes.clone())));
                }
                self.order += 1;
                self.queue
                    .push(Reverse((at, self.order, from, to, conn, bytes)));
            }
        }
    }

    fn deliver(&mut self) {
        while let Some(Reverse((at, _, _, _, _, _))) = self.queue.peek() {
            if *at > self.now {
                break;
            }
            let Reverse((_, _, from, to, conn, bytes)) = self.queue.pop().expect("peeked");
            let now = self.wall(to);
            let Some((c, s)) = self.sessions.get_mut(&(to, from)) else {
                continue;
            };
            if *c != conn {
                continue;
            }
            if self.printer.is_some() && std::env::var_os("VELLUM_SIM_MESSAGES").is_some() {
                let what = match vellum_replicator::Message::decode(&bytes) {
                    Ok(vellum_replicator::Message::Want { ranges, .. }) => format!(
                        "Want {}",
                        ranges
                            .iter()
                            .map(|r| format!(
                                "{}:{}-{}@{}",
                                r.author.short(),
                                r.from,
                                r.to,
                                r.head.short()
                            ))
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                    Ok(vellum_replicator::Message::Ops { ops }) => format!("Ops {}", ops.len()),
                    Ok(vellum_replicator::Message::Have { vv }) => format!(
                        "Have {}",
                        vv.iter()
                            .map(|(a, e)| format!("{}:{}@{}", a.short(), e.seq, e.head.short()))
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                    Ok(m) => format!("{m:?}").chars().take(60).collect(),
                    Err(e) => format!("undecodable: {e}"),
                };
                if let Some(p) = &mut self.printer {
                    p(&format!("t={:>7} msg {from}->{to}: {what}", self.now));
                }
            }
            let journal = &mut self.replicas[to].journal;
            if let Err(e) = s.handle_message(journal, &bytes, now) {
                panic!("storage error in the simulation: {e}");
            }
            self.events(to, from);
        }
    }

    fn events(&mut self, at: usize, peer: usize) {
        let mut replay = false;
        let mut closed = None;
        if let Some((_, s)) = self.sessions.get_mut(&(at, peer)) {
            while let Some(e) = s.poll_event() {
                match e {
                    Event::Admitted { .. } => replay = true,
                    Event::Closed { reason, misbehaved } => closed = Some((reason, misbehaved)),
                    Event::Connected { .. } | Event::Chunks { .. } => {}
                }
            }
        }
        if replay {
            self.replay(at);
        }
        if let Some((reason, misbehaved)) = closed.clone()
            && misbehaved
            && !self.tamperers.contains(&peer)
        {
            self.false_accusations
                .push(format!("{at} called honest {peer} misbehaving: {reason}"));
        }
        if let Some((reason, misbehaved)) = closed {
            self.log(format!(
                "{at} closes {peer}{}: {reason}",
                if misbehaved { " (misbehaved)" } else { "" }
            ));
            self.sessions.remove(&(at, peer));
            self.sessions.remove(&(peer, at));
            // A peer that broke the protocol is backed off.
            let until = self.now + if misbehaved { 5_000 } else { 1_000 };
            self.cut.insert(pair(at, peer), until);
        }
    }

    /// Catches the replica's head up, shares keys others lack, and tells
    /// its peers.
    fn replay(&mut self, r: usize) {
        let rep = &mut self.replicas[r];
        TimeMachine::catch_up_cached(&rep.journal, self.checkpoint_ops, &mut rep.head)
            .expect("replay");
        if self.replicas[r]
            .journal
            .missing_seals()
            .is_ok_and(|m| !m.is_empty())
        {
            self.share_keys(r);
            let rep = &mut self.replicas[r];
            TimeMachine::catch_up_cached(&rep.journal, self.checkpoint_ops, &mut rep.head)
                .expect("replay");
        }
        let now = self.wall(r);
        let peers = self.peers_of(r);
        for p in peers {
            if let Some((_, s)) = self.sessions.get_mut(&(r, p)) {
                s.announce(&self.replicas[r].journal, now);
            }
        }
    }

    fn timeouts(&mut self) {
        let keys: Vec<(usize, usize)> = self.sessions.keys().copied().collect();
        for (a, b) in keys {
            let now = self.wall(a);
            if let Some((_, s)) = self.sessions.get_mut(&(a, b))
                && s.next_timeout().is_some_and(|t| t <= now)
            {
                s.handle_timeout(&self.replicas[a].journal, now);
            }
        }
    }

    /// One edit on replica `r`, chosen by the generator; whether it wrote.
    fn edit(&mut self, r: usize) -> bool {
        let rep = &mut self.replicas[r];
        let head = rep.head.state(&rep.journal).expect("head").clone();
        let kind = self.rng.below(12);
        let line = format!("line {} by {r}", self.rng.below(1_000_000));
        let action = match kind {
            0..=4 => self.text_edit(r, &head, kind, &line),
            5 | 6 => match head.file_at("daily.md") {
                Some(_) => self.text_edit(r, &head, 0, &line),
                None => Some(Action::Create {
                    path: "daily.md".into(),
                    mtime_ms: 0,
                    body: Body::Text(format!("# Today\n- [ ] {line}\n")),
                }),
            },
            7 => self.pick_file(&head, FileKind::Text).map(|(file, path)| {
                let to = if let Some(rest) = path.strip_prefix("notes/") {
                    format!("archive/{rest}")
                } else {
                    format!("notes/{}", path.rsplit('/').next().unwrap_or(&path))
                };
                Action::Rename {
                    file,
                    from: path,
                    to,
                    mtime_ms: 0,
                }
            }),
            8 => self
                .pick_file(&head, FileKind::Text)
                .filter(|_| head.paths.len() > 3)
                .map(|(file, _)| Action::Delete {
                    file,
                    base: head.files[&file].hash,
                    mtime_ms: 0,
                }),
            9 | 10 => {
                // Real chunks, sealed and stored before the op, and sent
                // through WantChunks/Chunks: one to three of them.
                let len = 1 + self.rng.below(self.faults.blob_max_bytes) as usize;
                let mut bytes = vec![0u8; len];
                self.entropy.fill(&mut bytes);
                let j = &self.replicas[r].journal;
                let Some(dedup) = j
                    .write_epoch()
                    .expect("epoch")
                    .and_then(|e| j.keys().dedup_key(&e))
                else {
                    return false;
                };
                let blob = vellum_journal::blob::store_blob(
                    j.store(),
                    &bytes[..],
                    &dedup,
                    &mut self.entropy,
                )
                .expect("store a blob");
                let body = Body::Blob(blob);
                match head.file_at("img.bin") {
                    Some((file, f)) if f.kind == FileKind::Blob => Some(Action::Replace {
                        file,
                        base: f.hash,
                        body,
                        mtime_ms: 0,
                    }),
                    Some(_) => None,
                    None => Some(Action::Create {
                        path: "img.bin".into(),
                        mtime_ms: 0,
                        body,
                    }),
                }
            }
            _ => Some(Action::Create {
                path: format!("notes/n{}.md", self.rng.below(8)),
                mtime_ms: 0,
                body: Body::Text(format!("# new\n{line}\n")),
            }),
        };
        let Some(action) = action else {
            return false;
        };
        let now = self.wall(r);
        let rep = &mut self.replicas[r];
        let kind = Payload::new(action.clone()).kind_name();
        let ids = match rep.journal.append(
            &rep.signer,
            vec![Payload::new(action)],
            &mut self.entropy,
            now,
            Durability::Durable,
        ) {
            Ok(ids) => ids,
            // A replica not (or no longer) a member cannot write.
            Err(e) if refused(&e) => {
                self.log(format!("{r} cannot write: {e}"));
                return false;
            }
            Err(e) => panic!("local append: {e}"),
        };
        self.log(format!("{r} writes {kind} {}", ids[0].short()));
        self.replay(r);
        true
    }

    /// Replica `r` writes membership or key changes, if it may.
    fn write_control(&mut self, r: usize, writes: Vec<Write>, what: &str) {
        let now = self.wall(r);
        let rep = &mut self.replicas[r];
        match rep
            .journal
            .write(&rep.signer, writes, &mut self.entropy, now)
        {
            Ok(ids) => {
                let ids: Vec<String> = ids.iter().map(|i| i.short()).collect();
                self.log(format!("{r}: {what} {}", ids.join(" ")));
                self.replay(r);
            }
            Err(e) if refused(&e) => {
                self.log(format!("{r} cannot {what}: {e}"));
            }
            Err(e) => panic!("{r} {what}: {e}"),
        }
    }

    /// A membership fault: `kind` 0 adds the spare, 1 removes a victim,
    /// 2 has two victims remove each other, 3 rotates the key, 4 does 0, 3
    /// and 1 at once on different replicas.
    fn membership(&mut self, kind: u32) {
        if kind == 4 {
            let mut order = [0u32, 3, 1];
            for i in (1..order.len()).rev() {
                order.swap(i, self.rng.below(i as u64 + 1) as usize);
            }
            let mut used = BTreeSet::new();
            for k in order {
                self.membership_by(k, &mut used);
            }
            return;
        }
        self.membership_by(kind, &mut BTreeSet::new());
    }

    /// [`World::membership`] by an up replica not in `used`.
    fn membership_by(&mut self, kind: u32, used: &mut BTreeSet<usize>) {
        let n = self.replicas.len();
        let spare = n - 1;
        // Replicas 0 and 1 are never removed, so the vault keeps writers.
        // A victim is a member as replica 0 sees it.
        let members = self.replicas[0]
            .journal
            .members(self.replicas[0].journal.admitted())
            .expect("membership");
        let victims: Vec<usize> = (2..n)
            .filter(|v| {
                members
                    .active(&device_id(&self.replicas[*v].signer))
                    .is_some()
            })
            .collect();
        let up: Vec<usize> = (0..n)
            .filter(|r| self.replicas[*r].up && !used.contains(r))
            .collect();
        if up.is_empty() {
            return;
        }
        let by = self.rng.pick(&up);
        used.insert(by);
        match kind {
            0 => {
                let device = device_id(&self.replicas[spare].signer);
                self.write_control(
                    by,
                    vec![Write::Add {
                        device,
                        role: if self.faults.blind_spare {
                            Role::Blind
                        } else {
                            Role::Full
                        },
                        name: "spare".into(),
                    }],
                    &format!("add {spare}"),
                );
            }
            1 if victims.is_empty() => {}
            1 => {
                let v = self.rng.pick(&victims);
                if v != by {
                    let device = device_id(&self.replicas[v].signer);
                    self.write_control(by, vec![Write::Remove { device }], &format!("remove {v}"));
                }
            }
            2 if victims.is_empty() => {}
            2 => {
                let a = self.rng.pick(&victims);
                let b = self.rng.pick(&victims);
                if a != b {
                    for (x, y) in [(a, b), (b, a)] {
                        let device = device_id(&self.replicas[y].signer);
                        self.write_control(
                            x,
                            vec![Write::Remove { device }],
                            &format!("removes {y}"),
                        );
                    }
                }
            }
            _ => self.write_control(by, vec![Write::Rotate], "rotate the key"),
        }
    }

    /// After admitting ops: a member that sees another lack a key it holds
    /// shares it (DESIGN §7).
    fn share_keys(&mut self, r: usize) {
        let now = self.wall(r);
        let rep = &mut self.replicas[r];
        match rep
            .journal
            .share_missing_keys(&rep.signer, &mut self.entropy, now)
        {
            Ok(ids) if !ids.is_empty() => {
                let ids: Vec<String> = ids.iter().map(|i| i.short()).collect();
                self.log(format!("{r} shares keys {}", ids.join(" ")));
            }
            Ok(_) => {}
            Err(e) if refused(&e) => {
                self.log(format!("{r} cannot share keys: {e}"));
            }
            Err(e) => panic!("{r} shares keys: {e}"),
        }
    }

    /// An Edit of a text note: append a line (0–2), rewrite line 1 (3), or
    /// drop the last line (4).
    fn text_edit(&mut self, r: usize, head: &VaultState, kind: u64, line: &str) -> Option<Action> {
        let (file, _) = self.pick_file(head, FileKind::Text)?;
        let f = &head.files[&file];
        let j = &self.replicas[r].journal;
        let Ok(Body::Text(old)) = body_of(j, file, f.hash, j.admitted()) else {
            return None;
        };
        let mut lines: Vec<String> = old.lines().map(str::to_string).collect();
        match kind {
            0..=2 => lines.push(line.to_string()),
            3 if lines.len() > 1 => lines[1] = line.to_string(),
            4 if lines.len() > 1 => {
                lines.pop();
            }
            _ => lines.push(line.to_string()),
        }
        let new: String = lines.iter().map(|l| format!("{l}\n")).collect();
        if new == old {
            return None;
        }
        Some(Action::Edit {
            file,
            base: f.hash,
            patch: make_patch(&old, &new)?,
            result: ContentHash::of(new.as_bytes()),
            result_size: new.len() as u64,
            mtime_ms: 0,
        })
    }

    fn pick_file(
        &mut self,
        head: &VaultState,
        kind: FileKind,
    ) -> Option<(vellum_journal::FileId, String)> {
        let files: Vec<(vellum_journal::FileId, String)> = head
            .live_files()
            .filter(|(_, _, f)| f.kind == kind)
            .map(|(p, id, _)| (*id, p.clone()))
            .collect();
        if files.is_empty() {
            return None;
        }
        let i = self.rng.below(files.len() as u64) as usize;
        Some(files[i].clone())
    }

    /// A crash: the replica goes down, its unflushed writes are lost, and
    /// it comes back from what its store kept.
    fn crash(&mut self, r: usize) {
        let rep = &mut self.replicas[r];
        let journal = std::mem::replace(&mut rep.journal, empty_journal());
        let store = journal.into_store();
        store.crash();
        rep.journal = Journal::open(store, rep.keyring.clone())
            .expect("reopen after a crash")
            .with_signature_memo(self.signatures.clone());
        rep.head = Head::default();
        TimeMachine::catch_up_cached(&rep.journal, self.checkpoint_ops, &mut rep.head)
            .expect("replay after a crash");
        self.log(format!("{r} crashes and restarts"));
    }

    /// The replica's store comes back from its backup: it goes on with the
    /// same key, so its next op forks its chain.
    fn restore(&mut self, r: usize) {
        let rep = &mut self.replicas[r];
        let Some(backup) = &rep.backup else {
            return;
        };
        let store = backup.snapshot();
        rep.journal = Journal::open(store, rep.keyring.clone())
            .expect("open a backup")
            .with_signature_memo(self.signatures.clone());
        // A restore is a restart: its connections end, and what its peers
        // sent the journal it replaced is gone.
        self.sessions.retain(|(a, b), _| *a != r && *b != r);
        rep.head = Head::default();
        TimeMachine::catch_up_cached(&rep.journal, self.checkpoint_ops, &mut rep.head)
            .expect("replay a backup");
        self.log(format!("{r} is restored from its backup"));
    }

    /// Replica `r` sends a peer a tampered copy of one of its ops.
    fn tamper(&mut self, r: usize) {
        let peers = self.peers_of(r);
        if peers.is_empty() {
            return;
        }
        let to = self.rng.pick(&peers);
        let Some(head) = self.replicas[r]
            .journal
            .admitted()
            .get(&device_id(&self.replicas[r].signer))
        else {
            return;
        };
        let Ok(Some(env)) = self.replicas[r].journal.load(&head.head) else {
            return;
        };
        let mut bytes = env.into_bytes();
        let i = 40 + self.rng.below(bytes.len() as u64 - 40) as usize;
        bytes[i] ^= 0x01;
        self.tampered.insert(OpId(*blake3::hash(&bytes).as_bytes()));
        self.tamperers.insert(r);
        let conn = self.sessions[&(r, to)].0;
        let msg = vellum_replicator::Message::Ops { ops: vec![bytes] }.encode();
        self.order += 1;
        self.queue
            .push(Reverse((self.now + 1, self.order, r, to, conn, msg)));
        self.log(format!("{r} sends {to} a tampered op"));
    }

    /// A chunk some replica owes and another holds: what sync must still
    /// fetch.
    fn fetchable_debt(&self) -> Option<(usize, [u8; 32])> {
        for (i, r) in self.replicas.iter().enumerate() {
            for c in r.journal.chunk_debt(1000).unwrap_or_default() {
                if self
                    .replicas
                    .iter()
                    .any(|o| o.journal.chunk(&c).is_ok_and(|x| x.is_some()))
                {
                    return Some((i, c));
                }
            }
        }
        None
    }

    /// An op some replica cannot read and has not been told the chunk ids
    /// of, though another replica could tell them: what sync must still ask.
    fn fetchable_ids(&self) -> Option<(usize, OpId)> {
        for (i, r) in self.replicas.iter().enumerate() {
            let need = r
                .journal
                .ops_needing_chunk_ids(1000, &BTreeSet::new())
                .unwrap_or_default();
            for op in need {
                if self
                    .replicas
                    .iter()
                    .any(|o| o.journal.chunk_ids(&op).is_ok_and(|x| x.is_some()))
                {
                    return Some((i, op));
                }
            }
        }
        None
    }

    /// The replicas `r` has a session with.
    fn peers_of(&self, r: usize) -> Vec<usize> {
        self.sessions
            .keys()
            .filter(|(a, _)| *a == r)
            .map(|(_, b)| *b)
            .collect()
    }

    fn step(&mut self, chaos: bool) {
        self.now += TICK_MS;
        self.cut.retain(|_, until| *until > self.now);
        self.connect();
        self.deliver();
        self.timeouts();
        self.flush(chaos);
    }
}

/// A write the journal refused because of what the replica is (not a
/// member yet, removed, or its role): part of the scenario, not a failure.
fn refused(e: &vellum_journal::Error) -> bool {
    matches!(
        e,
        vellum_journal::Error::Usage(_) | vellum_journal::Error::Rejected { .. }
    )
}

fn empty_journal() -> Journal<MemStore> {
    let mut e = SeededEntropy::new(0);
    Journal::create(
        MemStore::new(),
        VaultId([0; 16]),
        &SigningKey::from_bytes(&[0; 32]),
        Keyring::new(EpochKey([0; 32])),
        &mut e,
        T0,
        MERGE_VERSION,
    )
    .expect("placeholder journal")
}

/// Runs seed `seed`; `printer` gets one line per event (`--trace`).
pub fn run(seed: u64, printer: Option<Printer>) -> Outcome {
    run_with(seed, CHECKPOINT_OPS_DEFAULT, printer)
}

/// Which faults a run may draw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Scenario {
    /// The default scenario with every swarm fault of DESIGN §10, each at
    /// a rate drawn from the seed: what sweeps and CI run to find bugs.
    #[default]
    Swarm,
    /// The default scenario of DESIGN §10 alone: three replicas, 200 ops
    /// of every kind, one partition and one crash, over links that keep
    /// order and lose nothing; what the seeds/s budget is measured on.
    Default,
}

impl Faults {
    /// A swarm run's faults: each drawn from the seed (swarm testing: a
    /// run with few faults finds bugs a run with all of them hides).
    fn drawn(rng: &mut Rng, seed: u64) -> Faults {
        let n = 3 + rng.below(2) as usize;
        Faults {
            replicas: n,
            spare: true,
            loss: rng.below(20) as f64 / 100.0,
            duplicate: rng.below(10) as f64 / 100.0,
            delay_max_ms: 5 + rng.below(400),
            partitions: 1 + rng.below(4) as u32,
            crashes: 1 + rng.below(3) as u32,
            restores: rng.below(2) as u32,
            tampering: rng.chance(0.5),
            join: rng.chance(0.6),
            removals: if rng.chance(0.5) {
                1 + rng.below(2) as u32
            } else {
                0
            },
            mutual_removal: rng.chance(0.3),
            rotations: if rng.chance(0.5) {
                1 + rng.below(2) as u32
            } else {
                0
            },
            concurrent_changes: rng.chance(0.4),
            skew_ms: (0..=n)
                .map(|_| rng.below(240_000) as i64 - 120_000)
                .collect(),
            blind_spare: seed % 3 == 2,
            blob_max_bytes: 3 * 64 * 1024,
        }
    }

    /// The default scenario's faults: one partition and one crash.
    fn default_scenario() -> Faults {
        let n = 3;
        Faults {
            replicas: n,
            spare: false,
            loss: 0.0,
            duplicate: 0.0,
            delay_max_ms: 20,
            partitions: 1,
            crashes: 1,
            restores: 0,
            tampering: false,
            join: false,
            removals: 0,
            mutual_removal: false,
            rotations: 0,
            concurrent_changes: false,
            skew_ms: vec![0; n],
            blind_spare: false,
            blob_max_bytes: 48 * 1024,
        }
    }
}

/// [`run`] with checkpoints every `checkpoint_ops` ops.
pub fn run_with(seed: u64, checkpoint_ops: u64, printer: Option<Printer>) -> Outcome {
    run_scenario(Scenario::Swarm, seed, checkpoint_ops, printer)
}

/// One run of `scenario` from `seed`.
pub fn run_scenario(
    scenario: Scenario,
    seed: u64,
    checkpoint_ops: u64,
    printer: Option<Printer>,
) -> Outcome {
    let mut rng = Rng::new(seed);
    let faults = match scenario {
        Scenario::Swarm => Faults::drawn(&mut rng, seed),
        Scenario::Default => Faults::default_scenario(),
    };
    let n = faults.replicas;
    let mut entropy = SeededEntropy::new(seed ^ 0x5eed);
    // Replica n, if any, is the spare: it syncs from the start, but is a
    // member only once some replica adds it.
    let signers: Vec<SigningKey> = (0..n + usize::from(faults.spare))
        .map(|_| {
            let mut k = [0u8; 32];
            entropy.fill(&mut k);
            SigningKey::from_bytes(&k)
        })
        .collect();
    let genesis_key = EpochKey([7; 32]);
    let keyring = |i: usize| {
        if i < n {
            Keyring::new(genesis_key.clone()).with_identity(&signers[i])
        } else {
            // The spare gets every key it holds through seals.
            Keyring::empty().with_identity(&signers[i])
        }
    };
    let signatures = SignatureMemo::default();
    let mut first = Journal::create(
        MemStore::new(),
        VaultId([9; 16]),
        &signers[0],
        keyring(0),
        &mut entropy,
        T0,
        MERGE_VERSION,
    )
    .expect("genesis")
    .with_signature_memo(signatures.clone());
    let adds = signers[1..n]
        .iter()
        .map(|s| Write::Add {
            device: device_id(s),
            role: Role::Full,
            name: "replica".into(),
        })
        .collect();
    first
        .write(&signers[0], adds, &mut entropy, T0)
        .expect("add members");
    let notes: Vec<Payload> = (0..4)
        .map(|i| {
            Payload::new(Action::Create {
                path: format!("notes/n{i}.md"),
                mtime_ms: 0,
                body: Body::Text(format!("# note {i}\nfirst line\n")),
            })
        })
        .collect();
    first
        .append(&signers[0], notes, &mut entropy, T0, Durability::Durable)
        .expect("first notes");
    TimeMachine::catch_up_with(&first, checkpoint_ops).expect("replay");
    let mut replicas = Vec::new();
    for (i, s) in signers.iter().enumerate() {
        let journal = if i == 0 {
            std::mem::replace(&mut first, empty_journal())
        } else {
            // Each other replica starts as a clone of replica 0's start.
            let mut j = replicas
                .first()
                .map(|r: &Replica| r.journal.empty_replica_keyed(MemStore::new(), keyring(i)))
                .expect("replica 0 first")
                .expect("empty replica")
                .with_signature_memo(signatures.clone());
            let mut ops = Vec::new();
            replicas[0]
                .journal
                .for_each_op_in_order(None, &mut |_, _, env| {
                    ops.push(env.into_bytes());
                    Ok(std::ops::ControlFlow::Continue(()))
                })
                .expect("first ops");
            for v in j.admit_batch(ops, T0).expect("admit genesis") {
                assert!(matches!(v, Ok(Admission::Admitted(_))), "{v:?}");
            }
            TimeMachine::catch_up_with(&j, checkpoint_ops).expect("replay");
            j
        };
        replicas.push(Replica {
            journal,
            signer: s.clone(),
            keyring: keyring(i),
            up: true,
            backup: None,
            head: Head::default(),
            claims: Claims::default(),
        });
    }
    let mut w = World {
        rng,
        entropy,
        now: 0,
        replicas,
        sessions: BTreeMap::new(),
        cut: BTreeMap::new(),
        queue: BinaryHeap::new(),
        last_delivery: BTreeMap::new(),
        next_conn: 0,
        order: 0,
        faults: faults.clone(),
        checkpoint_ops,
        tampered: BTreeSet::new(),
        tamperers: BTreeSet::new(),
        false_accusations: Vec::new(),
        signatures,
        trace: blake3::Hasher::new(),
        printer,
    };
    w.log(format!("seed {seed}: {n} replicas, {faults:?}"));

    // The chaotic phase: edits and faults while messages flow.
    let target_ops = match scenario {
        Scenario::Swarm => 200 + w.rng.below(100),
        Scenario::Default => 200,
    };
    let mut written = 0;
    let span = target_ops * 60;
    let fault_times: Vec<(u64, u32)> = (0..faults.partitions)
        .map(|_| (0, 0))
        .chain((0..faults.crashes).map(|_| (0, 1)))
        .chain((0..faults.restores).map(|_| (0, 2)))
        .chain((0..u32::from(faults.tampering)).map(|_| (0, 3)))
        .chain((0..u32::from(faults.join)).map(|_| (0, 4)))
        .chain((0..faults.removals).map(|_| (0, 5)))
        .chain((0..u32::from(faults.mutual_removal)).map(|_| (0, 6)))
        .chain((0..faults.rotations).map(|_| (0, 7)))
        .chain((0..u32::from(faults.concurrent_changes)).map(|_| (0, 8)))
        // The first partition and the first crash come in the first half,
        // so every run has both (DESIGN §10); the spare joins early, so it
        // may be removed later.
        .enumerate()
        .map(|(i, (_, k))| {
            let first = i == 0 || i == faults.partitions as usize;
            let within = match k {
                0 | 1 if first => span / 2,
                4 | 8 => span / 3,
                _ => span,
            };
            (w.rng.below(within), k)
        })
        .collect();
    let mut backups_at: Vec<u64> = (0..n).map(|_| w.rng.below(span / 2)).collect();
    let mut down_until: Vec<Option<u64>> = vec![None; n];
    let replicas = w.replicas.len();
    let mut crashed = 0;
    while written < target_ops {
        w.step(true);
        for (r, at) in backups_at.iter_mut().enumerate() {
            if *at <= w.now && *at != u64::MAX {
                let store = w.replicas[r].journal.store().snapshot();
                w.replicas[r].backup = Some(store);
                *at = u64::MAX;
                w.log(format!("{r} is backed up"));
            }
        }
        for (t, k) in &fault_times {
            if *t > w.now - TICK_MS && *t <= w.now {
                match k {
                    0 => {
                        let a = w.rng.below(n as u64) as usize;
                        let b = (a + 1 + w.rng.below(n as u64 - 1) as usize) % n;
                        let until = w.now + 2_000 + w.rng.below(20_000);
                        w.cut.insert(pair(a, b), until);
                        w.log(format!("partition {a}-{b} until {until}"));
                    }
                    1 => {
                        let up: Vec<usize> = (0..n).filter(|r| w.replicas[*r].up).collect();
                        if !up.is_empty() {
                            let r = w.rng.pick(&up);
                            w.crash(r);
                            w.replicas[r].up = false;
                            down_until[r] = Some(w.now + 1_000 + w.rng.below(10_000));
                            crashed += 1;
                        }
                    }
                    2 => {
                        let r = w.rng.below(n as u64) as usize;
                        w.restore(r);
                    }
                    3 => {
                        let r = w.rng.below(n as u64) as usize;
                        w.tamper(r);
                    }
                    k => w.membership(k - 4),
                }
            }
        }
        for (r, d) in down_until.iter_mut().enumerate() {
            if d.is_some_and(|t| t <= w.now) {
                *d = None;
                w.replicas[r].up = true;
                w.log(format!("{r} is back"));
            }
        }
        if w.rng.chance(0.4) {
            let r = w.rng.below(replicas as u64) as usize;
            if w.replicas[r].up && w.edit(r) {
                written += 1;
            }
        }
    }

    // The default scenario of DESIGN §10: at least one crash (the partition
    // always happens), and at least 200 ops.
    let scenario = if crashed == 0 {
        Some("no crash happened: the scenario is not the default one".to_string())
    } else {
        None
    };
    // Healing: everything up, no loss, until every replica holds the same
    // ops and has nothing more to say.
    w.log("healing".into());
    w.cut.clear();
    for r in &mut w.replicas {
        r.up = true;
    }
    let heal_start = w.now;
    let mut quiet_since = None;
    let mut failure = None;
    loop {
        w.step(false);
        // The same ops everywhere, and every chunk they name that some
        // replica holds fetched.
        let same = w
            .replicas
            .iter()
            .all(|r| r.journal.admitted() == w.replicas[0].journal.admitted())
            && w.fetchable_debt().is_none()
            && w.fetchable_ids().is_none();
        if same && w.queue.is_empty() {
            let since = *quiet_since.get_or_insert(w.now);
            if w.now - since > 1_000 {
                break;
            }
        } else {
            quiet_since = None;
        }
        if w.now - heal_start > HEAL_MAX_MS {
            let counts: Vec<String> = w
                .replicas
                .iter()
                .map(|r| {
                    format!(
                        "{} ops + {} pending, {} chunks owed, {} unread ops' chunk ids unknown",
                        r.journal.op_count(),
                        r.journal.pending_count().unwrap_or(0),
                        r.journal.chunk_debt(1000).map_or(0, |d| d.len()),
                        r.journal
                            .ops_needing_chunk_ids(1000, &BTreeSet::new())
                            .map_or(0, |d| d.len())
                    )
                })
                .collect();
            let vvs: Vec<String> = w
                .replicas
                .iter()
                .map(|r| {
                    r.journal
                        .admitted()
                        .iter()
                        .map(|(a, e)| format!("{}:{}", a.short(), e.seq))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect();
            failure = Some(format!(
                "the replicas did not converge within 600 s of healing ({}) [{}]",
                counts.join(", "),
                vvs.join(" | ")
            ));
            break;
        }
    }
    for rep in &mut w.replicas {
        TimeMachine::catch_up_cached(&rep.journal, checkpoint_ops, &mut rep.head).expect("replay");
    }
    let failure = failure.or(scenario).or_else(|| check(&w));
    let head = TimeMachine::load_head(&w.replicas[0].journal).expect("head");
    Outcome {
        seed,
        ops: w.replicas[0].journal.op_count(),
        conflicts: head.open_conflicts,
        trace_hash: *w.trace.finalize().as_bytes(),
        failure,
    }
}

/// What a blind member that relays `j0`'s ops lacks, if anything: every
/// op whose chunk ids some replica can tell must have been told, and every
/// chunk of every live binary file that some replica holds must be held.
fn relay_lacks(
    w: &World,
    j0: &Journal<MemStore>,
    head0: &VaultState,
    j: &Journal<MemStore>,
) -> Option<String> {
    if let Some((i, op)) = w.fetchable_ids()
        && std::ptr::eq(&w.replicas[i].journal, j)
    {
        return Some(format!("was never told the chunk ids of op {}", op.short()));
    }
    for (path, id, f) in head0.live_files() {
        let Ok(Body::Blob(blob)) = body_of(j0, *id, f.hash, j0.admitted()) else {
            continue;
        };
        for c in &blob.chunks {
            let somewhere = w
                .replicas
                .iter()
                .any(|o| o.journal.chunk(&c.id).is_ok_and(|x| x.is_some()));
            if somewhere && j.chunk(&c.id).is_ok_and(|x| x.is_none()) {
                return Some(format!("lacks chunk {} of {path}", hex(&c.id[..6])));
            }
        }
    }
    None
}

/// The invariants of DESIGN §10 after healing; the first broken one.
fn check(w: &World) -> Option<String> {
    if let Some(a) = w.false_accusations.first() {
        return Some(a.clone());
    }
    let j0 = &w.replicas[0].journal;
    let head0 = TimeMachine::load_head(j0).ok()?;
    let members = match j0.members(j0.admitted()) {
        Ok(m) => m,
        Err(e) => return Some(format!("replica 0: membership: {e}")),
    };
    if let Some((i, c)) = w.fetchable_debt() {
        return Some(format!(
            "replica {i} still owes chunk {}, which another replica holds",
            hex(&c[..6])
        ));
    }
    // A chunk nobody holds was lost with its author's newer ops when the
    // author came back from a backup; without a restore, none may be.
    if w.faults.restores == 0 {
        for (i, r) in w.replicas.iter().enumerate() {
            if let Some(c) = r.journal.chunk_debt(1).unwrap_or_default().first() {
                return Some(format!(
                    "replica {i} owes chunk {}, which no replica holds, and no replica was restored",
                    hex(&c[..6])
                ));
            }
        }
    }
    // Replicas that must have replayed everything: members not removed.
    let mut readers = Vec::new();
    for (i, r) in w.replicas.iter().enumerate() {
        let j = &r.journal;
        if j.admitted() != j0.admitted() {
            return Some(format!("replica {i} holds other ops than replica 0"));
        }
        for id in &w.tampered {
            if j.holds(id).unwrap_or(true) {
                return Some(format!("replica {i} admitted tampered op {}", id.short()));
            }
        }
        let me = device_id(&r.signer);
        if members.removed.contains_key(&me) {
            if let Some(e) = key_after_removal(j0, j, &me) {
                return Some(format!("removed replica {i} {e}"));
            }
            continue;
        }
        match members.active(&me) {
            None => continue,
            Some(role) if !role.reads() => {
                if let Some(e) = relay_lacks(w, j0, &head0, j) {
                    return Some(format!("blind replica {i} {e}"));
                }
                continue;
            }
            Some(_) => {}
        }
        readers.push(i);
        let head = match TimeMachine::load_head(j) {
            Ok(h) => h,
            Err(e) => return Some(format!("replica {i}: head: {e}")),
        };
        if !same_state(&head, &head0) {
            return Some(format!(
                "replica {i} replayed a different state than replica 0: {}",
                state_diff(&head, &head0)
            ));
        }
        match TimeMachine::replay_from_scratch(j) {
            Ok(s) if same_state(&s, &head) => {}
            Ok(s) => {
                return Some(format!(
                    "replica {i}: incremental replay differs from scratch: {}",
                    state_diff(&head, &s)
                ));
            }
            Err(e) => return Some(format!("replica {i}: replay from scratch: {e}")),
        }
        for (path, id, f) in head.live_files() {
            let body = match body_of(j, *id, f.hash, j.admitted()) {
                Ok(b) => b,
                Err(e) => return Some(format!("replica {i}: {path} cannot be read: {e}")),
            };
            let lost = |blob: &vellum_journal::payload::BlobRef| {
                blob.chunks.iter().any(|c| {
                    w.replicas
                        .iter()
                        .all(|o| o.journal.chunk(&c.id).is_ok_and(|x| x.is_none()))
                })
            };
            if let Body::Blob(blob) = body
                && !(w.faults.restores > 0 && lost(&blob))
                && let Err(e) =
                    vellum_journal::blob::read_blob(j.store(), &blob, &mut std::io::sink())
            {
                return Some(format!(
                    "replica {i}: the chunks of {path} cannot be read: {e}"
                ));
            }
        }
    }
    // Sampled points check out the same everywhere.
    let mut points = Vec::new();
    j0.for_each_in_order(None, &mut |k, _| {
        if points.len() < 400 {
            points.push(k.id);
        }
        Ok(std::ops::ControlFlow::Continue(()))
    })
    .ok()?;
    for id in points.iter().step_by(97) {
        let vv = j0.causal_vv(id).ok()?;
        let want = TimeMachine::state_at(j0, &vv).ok()?;
        for i in readers.iter().copied().filter(|i| *i != 0) {
            let r = &w.replicas[i];
            match TimeMachine::state_at(&r.journal, &vv) {
                Ok(s) if same_state(&s, &want) => {}
                Ok(s) => {
                    let scratch = TimeMachine::state_at_from_scratch(&r.journal, &vv).ok();
                    let wrong = match &scratch {
                        Some(x) if same_state(x, &s) => "replica 0's",
                        Some(x) if same_state(x, &want) => "this replica's",
                        _ => "both",
                    };
                    return Some(format!(
                        "replica {i}: the point of op {} differs ({wrong} is not what a replay from scratch gives): {}",
                        id.short(),
                        state_diff(&s, &want)
                    ));
                }
                Err(e) => return Some(format!("replica {i}: the point of op {}: {e}", id.short())),
            }
        }
    }
    None
}

/// Whether removed device `me`, replica `j`, holds the key of an epoch
/// made after its removal (`j0` is a replica with every key): what it
/// holds, if so. The ops sealed under such an epoch must stay unreadable
/// to it, as raw bytes.
fn key_after_removal(
    j0: &Journal<MemStore>,
    j: &Journal<MemStore>,
    me: &vellum_journal::DeviceId,
) -> Option<String> {
    let removals: Vec<_> = j0
        .controls()
        .iter()
        .filter(|c| matches!(&c.control, Control::Member(m) if m.action == MemberAction::Remove && m.device == *me))
        .collect();
    for c in j0.controls() {
        if !matches!(c.control, Control::KeyRotate(_)) {
            continue;
        }
        let past = j0.causal_past(&c.author, c.seq, &c.id).ok()?;
        let after = removals
            .iter()
            .any(|r| j0.includes(&past, &r.author, r.seq, &r.id).unwrap_or(false));
        if after && j.keys().get(&c.id).is_some() {
            return Some(format!(
                "holds the key of epoch {}, made after its removal",
                c.id.short()
            ));
        }
        if after {
            let mut sealed_under = None;
            j0.for_each_op_in_order(None, &mut |_, _, env| {
                if env.header().key_epoch == c.id {
                    sealed_under = Some(env);
                    return Ok(std::ops::ControlFlow::Break(()));
                }
                Ok(std::ops::ControlFlow::Continue(()))
            })
            .ok()?;
            if let Some(env) = sealed_under
                && j.load_payload(&env).is_ok()
            {
                return Some(format!(
                    "reads op {}, sealed after its removal",
                    env.id().short()
                ));
            }
        }
    }
    None
}

fn same_state(a: &VaultState, b: &VaultState) -> bool {
    a.applied_vv() == b.applied_vv()
        && a.files == b.files
        && a.paths == b.paths
        && a.open_conflicts == b.open_conflicts
        && a.aliases == b.aliases
}

/// Lowercase hex, for trace hashes.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The first difference between two states, for a failure message.
fn state_diff(a: &VaultState, b: &VaultState) -> String {
    if a.applied_vv() != b.applied_vv() {
        return "applied ops differ".into();
    }
    for (id, fa) in &a.files {
        match b.files.get(id) {
            None => return format!("file {} only in the first", id.short()),
            Some(fb) if fa != fb => return format!("file {}: {fa:?} vs {fb:?}", id.short()),
            _ => {}
        }
    }
    for id in b.files.keys() {
        if !a.files.contains_key(id) {
            return format!("file {} only in the second", id.short());
        }
    }
    if a.aliases != b.aliases {
        return format!("aliases {:?} vs {:?}", a.aliases, b.aliases);
    }
    format!(
        "open conflicts {} vs {}",
        a.open_conflicts, b.open_conflicts
    )
}
