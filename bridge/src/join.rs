//! `vellum join CODE --vault DIR`: this machine becomes a new device of
//! the vault that invited it (DESIGN §7).
//!
//! It makes a device key, dials the inviter at the code's addresses (or,
//! with an 8-digit code, finds it by mDNS and runs SPAKE2 on the digits
//! for the secret), proves the secret over `/vellum/pair/1`, shows the SAS,
//! and, once a person on the inviting device approved, receives a Welcome
//! and then the vault itself on the same stream, as a sync session. It exits
//! when it holds its own membership, the vault's keys and every op and
//! chunk the inviter had, with the files written. `vellum serve` then
//! keeps it in sync; the inviter's addresses are in its address book.

use std::fs;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use serde::Serialize;
use tokio::sync::mpsc;
use vellum_journal::entropy::{Entropy, OsEntropy};
use vellum_journal::path::VELLUM_DIR;
use vellum_journal::store::FjallStore;
use vellum_journal::{DeviceId, Journal, OpId, VaultId};
use vellum_replicator::net::{self, Multiaddr, NetEvent, StreamKind};
use vellum_replicator::pair::{Invite, PairMsg, Pake, Transcript, parse_short_code};
use vellum_replicator::{Event, Session};

use crate::error::user;
use crate::materialise::sync_disk;
use crate::peers;
use crate::vault::{self, Vault, now_ms};
use crate::{home, scan};

/// How long the inviter may take to answer at all (it is dialled, then
/// asked); a person's approval and the first sync have the invite's life.
pub const REACH_TIMEOUT: Duration = Duration::from_secs(30);
pub const PAIR_TIMEOUT: Duration = Duration::from_secs(15 * 60);

#[derive(Serialize, Debug)]
pub struct JoinReport {
    pub vault: String,
    /// This device's new id.
    pub device: String,
    /// The inviting device.
    pub inviter: String,
    /// The Member add the inviter wrote for this device.
    pub member_op: String,
    pub ops: u64,
    /// Files written to the folder.
    pub files: usize,
    /// With `--merge`: files that were already there, recorded as this
    /// device's (identical ones collapse into the vault's).
    pub merged: u64,
    /// With `--merge`: this folder's versions of files that differ from the
    /// vault's and cannot be joined line by line (attachments, JSON such as
    /// Obsidian's settings, canvases), kept under these conflict names
    /// beside the vault's.
    pub aside: Vec<String>,
}

/// What the person at the joining device is asked.
pub trait Prompt {
    /// The inviter proved nothing yet, but both sides computed `sas`: do
    /// the digits on the inviting device match?
    fn confirm_sas(&mut self, sas: &str) -> bool;
    /// Progress lines.
    fn say(&mut self, line: &str);
}

/// Joins the vault of `code` as a new device named `name`, in `dest` (new
/// or empty, or with `merge` a folder that holds a copy of the vault).
pub fn join(
    code: &str,
    dest: &Path,
    name: &str,
    merge: bool,
    prompt: &mut dyn Prompt,
) -> Result<(Vault, JoinReport)> {
    let target = match parse_short_code(code) {
        Some(digits) => Target::Short(digits),
        None => {
            let invite = Invite::decode(code).map_err(|e| {
                user(format!(
                    "{e} (nor an 8-digit code from `vellum invite` on this network)"
                ))
            })?;
            Target::Long(invite)
        }
    };
    if !merge {
        crate::disk::require_new_or_empty(dest, "join").map_err(|e| {
            user(format!(
                "{e}; to join with a folder that holds a copy of the vault, add --merge"
            ))
        })?;
    } else {
        fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    }
    vault::check_new_root(dest)?;
    if let Target::Long(invite) = &target
        && !invite
            .addrs
            .iter()
            .any(|b| Multiaddr::try_from(b.clone()).is_ok())
    {
        return Err(user("the code names no address of the inviting device"));
    }

    let dot = dest.join(VELLUM_DIR);
    fs::create_dir_all(&dot).with_context(|| format!("creating {}", dot.display()))?;
    let lock = vault::lock(&dot)?;
    let instance = vellum_journal::id::hex(&OsEntropy.array::<16>());
    let joined = join_into(&target, dest, &instance, lock, name, merge, prompt);
    if joined.is_err() {
        // Nothing of the attempt stays: the folder is as it was, and the
        // unused device key goes.
        let _ = fs::remove_dir_all(&dot);
        if let Ok(keys) = home::instance_file(&instance, "") {
            let _ = fs::remove_dir_all(keys);
        }
    }
    joined
}

#[allow(clippy::too_many_arguments)]
fn join_into(
    target: &Target,
    dest: &Path,
    instance: &str,
    lock: fs::File,
    name: &str,
    merge: bool,
    prompt: &mut dyn Prompt,
) -> Result<(Vault, JoinReport)> {
    let dot = dest.join(VELLUM_DIR);
    let keys = home::create_joining(instance, &mut OsEntropy)?;
    let device = vellum_journal::keys::device_id(&keys.signing);
    let store = FjallStore::open(&dot.join("journal"))
        .with_context(|| format!("creating the journal in {}", dot.display()))?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the network")?;
    let exchange = Exchange {
        target,
        device,
        name,
        seed: keys.signing.to_bytes(),
        keyring: keys.keyring.clone(),
    };
    let started = std::time::Instant::now();
    let (journal, member_op, reached) = runtime.block_on(exchange.run(store, prompt))?;
    runtime.shutdown_timeout(Duration::from_secs(1));
    prompt.say(&format!(
        "received {} ops in {:.1} s; writing the files…",
        journal.op_count(),
        started.elapsed().as_secs_f64()
    ));

    let genesis_key = journal
        .keys()
        .get(&journal.genesis())
        .cloned()
        .ok_or_else(|| anyhow!("the vault's key did not arrive with this device's membership"))?;
    home::write_vault_key(instance, &genesis_key)?;
    let keys = home::load(instance)?;
    let mut v = Vault::assemble(dest, journal, keys, instance, lock);
    v.catch_up()?;
    let mut rec = peers::PeerRecord::default();
    // The exchange reached the inviter, so its id is a valid key.
    if let Some(inviter) = net::peer_id(&reached.inviter) {
        for a in &reached.addrs {
            rec.add_addr(format!("{}/p2p/{inviter}", net::without_peer(a)));
        }
    }
    peers::save(&v, &reached.inviter, &rec)?;
    // An inviter reached through a relay is only reachable that way: this
    // device keeps using the relay.
    let relays = relays_in(&reached.addrs);
    if !relays.is_empty() {
        let mut s = crate::settings::load(dest)?;
        s.internet = true;
        for r in relays {
            if !s.relays.contains(&r) {
                s.relays.push(r);
            }
        }
        crate::settings::save(dest, &s)?;
        prompt.say(&format!(
            "the inviting device is reachable through a relay: internet sync is on ({})",
            crate::settings::path(dest).display()
        ));
    }
    home::write_root(instance, &fs::canonicalize(dest)?)?;
    let head = v.head()?;
    let mut merged = 0;
    let mut aside = Vec::new();
    let written = if merge {
        // What was in the folder is this device's: its differences from
        // the vault are put in place first, then recorded, so the vault's
        // files merge with them and nothing is dropped.
        aside = prepare_merge(&v, &head)?;
        let r = scan::scan(&mut v)?;
        merged = r.ops_recorded;
        let head = v.head()?;
        sync_disk(&v, &head)?
    } else {
        crate::materialise::fill_fresh(&v, &head)?
    };
    // The instance file is written last, as by init: without it the join
    // is unfinished, and removing DEST/.vellum/ undoes it.
    fs::write(dot.join("instance"), format!("{instance}\n")).context("writing .vellum/instance")?;
    let report = JoinReport {
        vault: v.vault_id().to_hex(),
        device: device.to_hex(),
        inviter: reached.inviter.to_hex(),
        member_op: member_op.to_hex(),
        ops: v.journal.op_count(),
        files: written.len(),
        merged,
        aside,
    };
    Ok((v, report))
}

/// The relays an invite's addresses go through.
fn relays_in(addrs: &[Multiaddr]) -> Vec<String> {
    let mut out: Vec<String> = addrs
        .iter()
        .filter_map(net::relay_of)
        .map(|r| r.to_string())
        .collect();
    out.dedup();
    out
}

/// Readies a folder that held a copy of the vault for `--merge`: at each
/// path both hold, a file identical to the vault's collapses into it; a
/// different note becomes the union of both texts' lines (as concurrent
/// creates of one path merge), written in place; any other difference is
/// kept beside the vault's under a conflict name, which is returned. That
/// includes JSON and canvases (Obsidian's settings in `.obsidian/`
/// among them), whose lines joined would no longer parse. The scan that
/// follows records these as this device's changes.
fn prepare_merge(v: &Vault, head: &vellum_journal::replay::VaultState) -> Result<Vec<String>> {
    use vellum_journal::payload::Body;
    let me = v.device().short();
    let mut aside = Vec::new();
    for (path, id, f) in head.live_files() {
        let local = dest_file(&v.root, path);
        let Ok(mine) = fs::read(&local) else {
            continue;
        };
        if vellum_journal::ContentHash::of(&mine) == f.hash {
            continue;
        }
        let theirs =
            vellum_snapshots::contents::body_of(&v.journal, *id, f.hash, v.journal.admitted())?;
        let text_of_mine = std::str::from_utf8(&mine).ok();
        match (&theirs, text_of_mine) {
            (Body::Text(t), Some(m))
                if mine.len() <= vellum_journal::limits::TEXT_BYTES_MAX && joins_by_lines(path) =>
            {
                let merged = vellum_journal::merge::union(t, m);
                fs::write(&local, merged)
                    .with_context(|| format!("merging {}", local.display()))?;
            }
            _ => {
                let mut n = 1;
                let name = loop {
                    let name = vellum_journal::path::conflict_name(path, &me, n);
                    if !dest_file(&v.root, &name).exists() && !head.paths.contains_key(&name) {
                        break name;
                    }
                    n += 1;
                };
                fs::rename(&local, dest_file(&v.root, &name))
                    .with_context(|| format!("keeping {} aside", local.display()))?;
                aside.push(name);
            }
        }
    }
    Ok(aside)
}

/// Whether a text at `path` stays well formed when two versions' lines are
/// joined: not for JSON (Obsidian's settings) or canvases (JSON too).
fn joins_by_lines(path: &str) -> bool {
    let ext = Path::new(path).extension().and_then(|e| e.to_str());
    !ext.is_some_and(|e| e.eq_ignore_ascii_case("json") || e.eq_ignore_ascii_case("canvas"))
}

fn dest_file(root: &Path, rel: &str) -> std::path::PathBuf {
    root.join(rel)
}

/// What the code given to `join` says.
enum Target {
    /// A long code: the inviter, its addresses and the secret.
    Long(Invite),
    /// A short code's digits: the inviter is found by mDNS, and the
    /// secret comes from SPAKE2 on the digits.
    Short(String),
}

/// The inviter, once reached and paired with.
struct Reached {
    vault: VaultId,
    inviter: DeviceId,
    addrs: Vec<Multiaddr>,
    /// The exchange's secret: the long code's, or the SPAKE2 key.
    secret: Vec<u8>,
}

struct Exchange<'a> {
    target: &'a Target,
    device: DeviceId,
    name: &'a str,
    seed: [u8; 32],
    keyring: vellum_journal::keys::Keyring,
}

impl Exchange<'_> {
    /// Pairs, then syncs on the pairing stream until this journal holds
    /// everything the inviter had when the session began.
    async fn run(
        self,
        store: FjallStore,
        prompt: &mut dyn Prompt,
    ) -> Result<(Journal<FjallStore>, OpId, Reached)> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let short = matches!(self.target, Target::Short(_));
        let node = net::start(
            net::Config {
                // A short code does not say which vault: the node's gossip
                // topic is unused while joining.
                vault: match self.target {
                    Target::Long(i) => i.vault,
                    Target::Short(_) => VaultId([0; 16]),
                },
                // Nobody dials a joiner: it dials out.
                listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("a valid address")],
                mdns: short,
                // An inviter behind a relay is dialled through it; this
                // node holds no reservation of its own.
                internet: match self.target {
                    Target::Long(i)
                        if i.addrs.iter().any(|b| {
                            Multiaddr::try_from(b.clone()).is_ok_and(|a| net::is_relayed(&a))
                        }) =>
                    {
                        Some(net::Internet::default())
                    }
                    _ => None,
                },
            },
            self.seed,
            Box::new(move |ev| {
                let _ = tx.send(ev);
            }),
        )
        .map_err(|e| anyhow!("{e}"))?;
        // The inviter as far as it is known: from a long code at once, from
        // a short one when the first device inviting on the LAN answers.
        let mut reached = match self.target {
            Target::Long(i) => {
                let addrs: Vec<Multiaddr> = i
                    .addrs
                    .iter()
                    .filter_map(|b| Multiaddr::try_from(b.clone()).ok())
                    .collect();
                node.dial(i.inviter, addrs.clone());
                prompt.say("reaching the inviting device…");
                Some(Reached {
                    vault: i.vault,
                    inviter: i.inviter,
                    addrs,
                    secret: i.secret.to_vec(),
                })
            }
            Target::Short(_) => {
                prompt.say("looking for the inviting device on this network…");
                None
            }
        };
        // Short code: devices found by mDNS, dialled; the first that lets
        // this stranger in has an invite open, and is asked.
        let mut found: std::collections::HashMap<DeviceId, Vec<Multiaddr>> = Default::default();
        let mut asked: Option<DeviceId> = None;
        let mut waiting: Vec<DeviceId> = Vec::new();
        let mut pake: Option<Pake> = None;

        let reach_by = tokio::time::Instant::now() + REACH_TIMEOUT;
        let give_up = tokio::time::Instant::now() + PAIR_TIMEOUT;
        let nonce_j: [u8; 32] = OsEntropy.array();
        let mut nonce_i = None;
        let mut stream = None;
        let mut connected = false;
        let mut store = Some(store);
        let mut joined: Option<(Journal<FjallStore>, Session, OpId)> = None;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let unreachable = |reached: &Option<Reached>| match reached {
            Some(r) if !short => user(format!(
                "could not reach the inviting device at {}; is `vellum serve` or `vellum invite` running there, and is the invite still valid?",
                r.addrs
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            _ => user(
                "no device on this network answered with an open invite: is `vellum invite` running on the same network (with mDNS on), and is the code still valid? Across networks, use the long code",
            ),
        };
        let hello = |r: &Reached| PairMsg::Hello {
            vault: r.vault,
            nonce: nonce_j,
            name: self.name.to_string(),
        };
        let result = loop {
            let deadline = if stream.is_none() { reach_by } else { give_up };
            let ev = tokio::select! {
                ev = rx.recv() => ev,
                _ = tick.tick() => {
                    if let Some((journal, session, _)) = joined.as_mut() {
                        let now = now_ms();
                        if session.next_timeout().is_some_and(|t| t <= now) {
                            session.handle_timeout(journal, now);
                            flush(&node, stream.unwrap_or_default(), session);
                        }
                    }
                    continue;
                }
                _ = tokio::time::sleep_until(deadline) => {
                    break Err(if stream.is_none() {
                        unreachable(&reached)
                    } else {
                        user("pairing took too long: the invite was not approved, or the vault did not arrive in time")
                    });
                }
            };
            let Some(ev) = ev else {
                break Err(anyhow!("the network stopped"));
            };
            let inviter = reached.as_ref().map(|r| r.inviter).or(asked);
            match ev {
                NetEvent::Nearby { peer, addrs } if short && asked.is_none() => {
                    if !found.contains_key(&peer) {
                        node.dial(peer, addrs.clone());
                    }
                    found.entry(peer).or_default().extend(addrs);
                }
                NetEvent::Connected { peer, .. } if short && reached.is_none() => {
                    // Let in as a stranger: an invite is open there. Only
                    // one device is asked at a time, since asking uses its
                    // invite up; the others wait their turn.
                    if !found.contains_key(&peer) || asked == Some(peer) {
                        continue;
                    }
                    if asked.is_none() {
                        asked = Some(peer);
                        connected = true;
                        node.open_pair(peer);
                    } else {
                        waiting.push(peer);
                    }
                }
                NetEvent::Disconnected { peer } if short && waiting.contains(&peer) => {
                    waiting.retain(|p| *p != peer);
                }
                NetEvent::Connected { peer, .. } if Some(peer) == inviter && stream.is_none() => {
                    connected = true;
                    node.open_pair(peer);
                }
                NetEvent::Disconnected { peer }
                    if Some(peer) == inviter && stream.is_none() && connected =>
                {
                    if short && reached.is_none() {
                        // Not inviting after all (its gate closed): ask the
                        // next one let in, or look on.
                        asked = waiting.pop();
                        connected = asked.is_some();
                        if let Some(next) = asked {
                            node.open_pair(next);
                        }
                        continue;
                    }
                    // Let in and sent away at once: the gate is closed.
                    break Err(user(
                        "the inviting device turned this one away: its invite is used up, expired or cancelled; ask for a new code",
                    ));
                }
                NetEvent::Opened {
                    peer,
                    stream: s,
                    kind: StreamKind::Pair,
                } if Some(peer) == inviter && stream.is_none() => {
                    stream = Some(s);
                    match (self.target, &reached) {
                        (_, Some(r)) => {
                            let _ = node.send(s, hello(r).encode());
                        }
                        // A long code knows its inviter from the start.
                        (Target::Long(_), None) => {}
                        (Target::Short(code), None) => {
                            let them = net::peer_id(&peer)
                                .map(|p| p.to_bytes())
                                .unwrap_or_default();
                            let (state, msg) = Pake::joiner(
                                code,
                                &node.local_peer_id().to_bytes(),
                                &them,
                                rand::rng(),
                            );
                            pake = Some(state);
                            prompt.say("found it; checking the code…");
                            let _ = node.send(s, PairMsg::PakeStart { msg }.encode());
                        }
                    }
                }
                NetEvent::Frame {
                    stream: s, bytes, ..
                } if Some(s) == stream => {
                    if let Some((journal, session, member_op)) = joined.as_mut() {
                        let now = now_ms();
                        session.handle_message(journal, &bytes, now)?;
                        flush(&node, s, session);
                        while let Some(e) = session.poll_event() {
                            if let Event::Closed { reason, .. } = e {
                                return Err(anyhow!(
                                    "the inviting device ended the sync: {reason}"
                                ));
                            }
                        }
                        if caught_up(journal, session, member_op)? {
                            break Ok(());
                        }
                        continue;
                    }
                    let msg = PairMsg::decode(&bytes).map_err(|e| anyhow!("{e}"))?;
                    if let PairMsg::PakeReply { vault, msg: theirs } = msg {
                        let (Some(state), Some(peer)) = (pake.take(), asked) else {
                            break Err(anyhow!("the inviting device sent an unexpected message"));
                        };
                        let key = state.finish(&theirs).map_err(|e| anyhow!("{e}"))?;
                        let r = Reached {
                            vault,
                            inviter: peer,
                            addrs: found.remove(&peer).unwrap_or_default(),
                            secret: key.to_vec(),
                        };
                        let _ = node.send(s, hello(&r).encode());
                        reached = Some(r);
                        continue;
                    }
                    let Some(r) = reached.as_ref() else {
                        break Err(anyhow!("the inviting device skipped a step"));
                    };
                    match self.paired(&node, s, r, msg, nonce_j, &mut nonce_i, prompt)? {
                        Step::Go => {}
                        Step::Welcome {
                            genesis,
                            genesis_author,
                            member_op,
                        } => {
                            let journal = Journal::empty_of(
                                store.take().expect("one welcome"),
                                r.vault,
                                genesis,
                                genesis_author,
                                self.keyring.clone(),
                            )?;
                            prompt.say("approved; receiving the vault…");
                            let mut session = Session::new(&journal, self.device, now_ms());
                            flush(&node, s, &mut session);
                            joined = Some((journal, session, member_op));
                        }
                        Step::Stop(e) => break Err(e),
                    }
                }
                NetEvent::Closed {
                    stream: s, error, ..
                } if Some(s) == stream => {
                    break Err(match error {
                        Some(e) => anyhow!("the inviting device closed the connection: {e}"),
                        None => user(
                            "the inviting device closed the connection (the invite may be used up, expired or cancelled)",
                        ),
                    });
                }
                _ => {}
            }
        };
        node.shutdown();
        result?;
        // The loop ends well only once caught up after a welcome, which
        // comes after pairing: both are there.
        let (Some((journal, _, member_op)), Some(reached)) = (joined, reached) else {
            return Err(anyhow!("the pairing ended before the vault arrived"));
        };
        Ok((journal, member_op, reached))
    }

    /// One pairing message after the secret is known (both codes):
    /// Challenge, Approving or Welcome.
    #[allow(clippy::too_many_arguments)]
    fn paired(
        &self,
        node: &net::Handle,
        s: u64,
        r: &Reached,
        msg: PairMsg,
        nonce_j: [u8; 32],
        nonce_i: &mut Option<[u8; 32]>,
        prompt: &mut dyn Prompt,
    ) -> Result<Step> {
        let transcript = |ni: &[u8; 32]| {
            let inviter = net::peer_id(&r.inviter)
                .map(|p| p.to_bytes())
                .unwrap_or_default();
            Transcript::new(
                &r.vault,
                &inviter,
                &node.local_peer_id().to_bytes(),
                ni,
                &nonce_j,
            )
        };
        Ok(match msg {
            PairMsg::Challenge { nonce } => {
                *nonce_i = Some(nonce);
                let proof = PairMsg::Proof {
                    mac: transcript(&nonce).proof(&r.secret),
                };
                let _ = node.send(s, proof.encode());
                Step::Go
            }
            PairMsg::Approving { sas } => {
                let Some(ni) = nonce_i.as_ref() else {
                    return Ok(Step::Stop(anyhow!("the inviting device skipped a step")));
                };
                // Computed here, not taken from the inviter.
                let mine = transcript(ni).sas(&r.secret);
                if mine != sas {
                    return Ok(Step::Stop(user(
                        "the inviting device shows other digits than this one: someone may be in between; nothing was joined",
                    )));
                }
                if !prompt.confirm_sas(&mine) {
                    return Ok(Step::Stop(user(
                        "not joined: the digits were not confirmed",
                    )));
                }
                prompt.say("waiting for the inviting device to approve…");
                Step::Go
            }
            PairMsg::Welcome {
                genesis,
                genesis_author,
                member_op,
            } => Step::Welcome {
                genesis,
                genesis_author,
                member_op,
            },
            PairMsg::Refused { reason } => {
                Step::Stop(user(format!("the inviting device refused: {reason}")))
            }
            PairMsg::Hello { .. }
            | PairMsg::Proof { .. }
            | PairMsg::PakeStart { .. }
            | PairMsg::PakeReply { .. } => {
                Step::Stop(anyhow!("the inviting device sent an unexpected message"))
            }
        })
    }
}

/// What the joiner does after a pairing message.
enum Step {
    Go,
    Welcome {
        genesis: OpId,
        genesis_author: DeviceId,
        member_op: OpId,
    },
    Stop(anyhow::Error),
}

fn flush(node: &net::Handle, stream: u64, session: &mut Session) {
    while let Some(b) = session.poll_transmit() {
        let _ = node.send(stream, b);
    }
}

/// Whether the joiner holds its membership, the vault's keys, and every op
/// and chunk the inviter said it had.
fn caught_up(journal: &Journal<FjallStore>, session: &Session, member_op: &OpId) -> Result<bool> {
    Ok(journal.holds(member_op)?
        && journal.keys().get(&journal.genesis()).is_some()
        && session.peer_has().le(journal.admitted())
        && journal.pending_count()? == 0
        && journal.chunk_debt(1)?.is_empty())
}
