//! The inviter's side of pairing (DESIGN §7), on the vault's thread: the
//! joiner proves the invite's secret, a person approves (or `--yes` did
//! beforehand), this device writes the joiner's Member add, and the
//! pairing stream goes on as a sync session, so the joiner leaves with
//! the keys, its membership and the vault.

use std::time::Duration;

use serde_json::{Value, json};
use vellum_journal::control::Role;
use vellum_journal::entropy::{Entropy, OsEntropy};
use vellum_journal::{DeviceId, Write};
use vellum_replicator::Session;
use vellum_replicator::net::peer_id;
use vellum_replicator::pair::{NAME_BYTES_MAX, PairMsg, Pake, Transcript};

use super::{Live, Sync};
use crate::daemon::events::{Event, PairStage};
use crate::daemon::rpc::{
    self, ApproveParams, INTERNAL_ERROR, INVALID_PARAMS, InviteParams, Request, Response,
};
use crate::error;
use crate::invite;
use crate::vault::{Vault, now_ms};

/// A joiner partway through pairing.
pub(super) struct Joiner {
    stream: u64,
    peer: DeviceId,
    nonce_i: [u8; 32],
    stage: Stage,
    /// With a short code, the SPAKE2 key: the secret of the rest of the
    /// exchange in place of the long code's.
    pake_key: Option<[u8; 32]>,
}

enum Stage {
    Hello,
    Proof { name: String, nonce_j: [u8; 32] },
    Approval { name: String, sas: String },
}

impl Sync {
    /// `invite.create`, `invite.approve` and `invite.cancel`.
    pub fn invite_rpc(&mut self, v: &mut Vault, req: Request) -> Response {
        let id = req.id.clone().unwrap_or(Value::Null);
        let out = match req.method.as_str() {
            "invite.create" => serde_json::from_value::<Option<InviteParams>>(req.params)
                .map_err(|e| (INVALID_PARAMS, format!("invite.create takes {{yes}}: {e}")))
                .and_then(|p| self.create_invite(v, p.unwrap_or_default().yes)),
            "invite.approve" => serde_json::from_value::<ApproveParams>(req.params)
                .map_err(|e| {
                    (
                        INVALID_PARAMS,
                        format!("invite.approve takes {{approve}}: {e}"),
                    )
                })
                .and_then(|p| self.decide(v, p.approve)),
            "invite.cancel" => {
                if let Some(j) = self.joiner.take() {
                    self.refuse(j.peer, j.stream, "the invite was cancelled");
                }
                self.end_invite(v, "the invite was cancelled");
                Ok(json!({"cancelled": true}))
            }
            _ => Err((rpc::METHOD_NOT_FOUND, format!("no method {}", req.method))),
        };
        match out {
            Ok(r) => Response::ok(id, r),
            Err((code, msg)) => Response::err(id, code, msg),
        }
    }

    fn create_invite(&mut self, v: &mut Vault, yes: bool) -> Result<Value, (i64, String)> {
        let addrs: Vec<vellum_replicator::net::Multiaddr> = v
            .net
            .as_ref()
            .map(|n| n.listening.iter().filter_map(|a| a.parse().ok()).collect())
            .unwrap_or_default();
        if addrs.is_empty() {
            return Err((
                INVALID_PARAMS,
                "this device listens on no address yet (no usable network interface?); try again in a moment".into(),
            ));
        }
        if let Some(j) = self.joiner.take() {
            self.refuse(j.peer, j.stream, "the invite was replaced by a new one");
        }
        let internal = |e: anyhow::Error| (INTERNAL_ERROR, error::one_line(&e));
        let p = invite::create(v, yes, now_ms()).map_err(internal)?;
        self.invite_until = Some(p.expires_ms);
        self.net.set_invite(true);
        let info = invite::info(v, &p, &addrs).map_err(internal)?;
        tracing::info!(preapproved = yes, "invite created");
        Ok(serde_json::to_value(info).expect("an invite serialises"))
    }

    /// The person's answer for the joiner waiting for approval.
    fn decide(&mut self, v: &mut Vault, approve: bool) -> Result<Value, (i64, String)> {
        match self.joiner.as_ref().map(|j| &j.stage) {
            Some(Stage::Approval { .. }) => {}
            _ => {
                return Err((
                    INVALID_PARAMS,
                    "no device is waiting for approval".to_string(),
                ));
            }
        }
        let joiner = self.joiner.take().expect("checked");
        let Stage::Approval { name, sas } = joiner.stage else {
            unreachable!("checked above")
        };
        if approve {
            self.admit_joiner(v, joiner.peer, joiner.stream, name, sas)
                .map_err(|e| (INTERNAL_ERROR, error::one_line(&e)))?;
            Ok(json!({"approved": true}))
        } else {
            self.refuse(joiner.peer, joiner.stream, "the inviting device declined");
            self.pair_event(PairStage::Declined, joiner.peer, &name, Some(sas), None);
            self.end_invite(v, "declined");
            Ok(json!({"approved": false}))
        }
    }

    /// A joiner opened a pairing stream: the first attempt consumes the
    /// invite, whatever comes of it.
    pub(super) fn pair_opened(&mut self, v: &mut Vault, peer: DeviceId, stream: u64) {
        let now = now_ms();
        let pending = match invite::load(v) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("could not read the invite: {}", error::one_line(&e));
                None
            }
        };
        match pending {
            None => self.refuse(peer, stream, "no invite is pending on that device"),
            Some(p) if p.expired(now) => {
                self.refuse(peer, stream, "the invite has expired; ask for a new one");
                self.end_invite(v, "expired");
            }
            Some(p) if p.used || self.joiner.is_some() => {
                tracing::warn!("a second attempt to use the invite: it is cancelled");
                self.refuse(
                    peer,
                    stream,
                    "the invite was already used; ask for a new one",
                );
                if let Some(j) = self.joiner.take() {
                    self.refuse(
                        j.peer,
                        j.stream,
                        "the invite was tried twice and is cancelled",
                    );
                }
                self.end_invite(v, "tried twice");
            }
            Some(mut p) => {
                p.used = true;
                if let Err(e) = invite::save(v, &p) {
                    tracing::warn!("could not record the invite's use: {}", error::one_line(&e));
                    self.refuse(
                        peer,
                        stream,
                        "the inviting device could not record the attempt",
                    );
                    return;
                }
                self.joiner = Some(Joiner {
                    stream,
                    peer,
                    nonce_i: OsEntropy.array(),
                    stage: Stage::Hello,
                    pake_key: None,
                });
            }
        }
    }

    /// Whether `stream` is the pairing stream of the joiner in progress.
    pub(super) fn is_pairing(&self, stream: u64) -> bool {
        self.joiner.as_ref().is_some_and(|j| j.stream == stream)
    }

    /// One message from the joiner.
    pub(super) fn pair_frame(&mut self, v: &mut Vault, bytes: &[u8]) {
        let Some(mut j) = self.joiner.take() else {
            return;
        };
        let msg = match PairMsg::decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                self.refuse(j.peer, j.stream, &e.to_string());
                self.end_invite(v, "garbage from the joiner");
                return;
            }
        };
        let Some(p) = invite::load(v).ok().flatten() else {
            self.refuse(j.peer, j.stream, "the invite is gone");
            return;
        };
        match (j.stage, msg) {
            (Stage::Hello, PairMsg::PakeStart { msg }) if j.pake_key.is_none() => {
                if p.short.is_empty() {
                    self.refuse(j.peer, j.stream, "this invite has no short code");
                    self.end_invite(v, "no short code");
                    return;
                }
                let local = self.net.local_peer_id().to_bytes();
                let remote = peer_id(&j.peer).map(|p| p.to_bytes()).unwrap_or_default();
                let (pake, reply) = Pake::inviter(&p.short, &remote, &local, rand::rng());
                match pake.finish(&msg) {
                    Ok(key) => {
                        self.send_pair(
                            j.stream,
                            &PairMsg::PakeReply {
                                vault: v.vault_id(),
                                msg: reply,
                            },
                        );
                        j.pake_key = Some(key);
                        j.stage = Stage::Hello;
                        self.joiner = Some(j);
                    }
                    Err(e) => {
                        self.refuse(j.peer, j.stream, &e.to_string());
                        self.end_invite(v, "a bad SPAKE2 message");
                    }
                }
            }
            (Stage::Hello, PairMsg::Hello { vault, nonce, name }) => {
                if vault != v.vault_id() {
                    self.refuse(j.peer, j.stream, "the code is for another vault");
                    self.end_invite(v, "another vault");
                    return;
                }
                let mut name = name;
                truncate(&mut name, NAME_BYTES_MAX);
                self.send_pair(j.stream, &PairMsg::Challenge { nonce: j.nonce_i });
                j.stage = Stage::Proof {
                    name,
                    nonce_j: nonce,
                };
                self.joiner = Some(j);
            }
            (Stage::Proof { name, nonce_j }, PairMsg::Proof { mac }) => {
                let local = self.net.local_peer_id().to_bytes();
                let remote = peer_id(&j.peer).map(|p| p.to_bytes()).unwrap_or_default();
                let t = Transcript::new(&v.vault_id(), &local, &remote, &j.nonce_i, &nonce_j);
                let secret = match &j.pake_key {
                    Some(k) => k.to_vec(),
                    None => p.secret().to_vec(),
                };
                if !t.check(&secret, &mac) {
                    let (reason, why) = match j.pake_key {
                        Some(_) => ("the code is wrong; the invite is over", "wrong code"),
                        None => ("the code's secret is wrong", "wrong secret"),
                    };
                    tracing::warn!(
                        peer = %j.peer.short(),
                        "a device tried the invite with a {why}; the invite is cancelled"
                    );
                    self.refuse(j.peer, j.stream, reason);
                    self.pair_event(PairStage::Refused, j.peer, &name, None, Some(why));
                    self.end_invite(v, why);
                    return;
                }
                let sas = t.sas(&secret);
                self.send_pair(j.stream, &PairMsg::Approving { sas: sas.clone() });
                self.pair_event(PairStage::Request, j.peer, &name, Some(sas.clone()), None);
                tracing::info!(peer = %j.peer.short(), "a device proved the invite's secret");
                if p.preapproved {
                    if let Err(e) = self.admit_joiner(v, j.peer, j.stream, name, sas) {
                        tracing::warn!("could not admit the joiner: {}", error::one_line(&e));
                    }
                } else {
                    j.stage = Stage::Approval { name, sas };
                    self.joiner = Some(j);
                }
            }
            (_, _) => {
                self.refuse(j.peer, j.stream, "an unexpected pairing message");
                self.end_invite(v, "unexpected message");
            }
        }
    }

    /// Writes the joiner's Member add (sealing the vault key to it), says
    /// welcome, and goes on syncing with it on the same stream.
    fn admit_joiner(
        &mut self,
        v: &mut Vault,
        peer: DeviceId,
        stream: u64,
        name: String,
        sas: String,
    ) -> anyhow::Result<()> {
        // Remote ops not on disk yet go there before the add moves the head.
        self.apply(v);
        let member_op = match v.write_control(vec![Write::Add {
            device: peer,
            role: Role::Full,
            name: name.clone(),
        }]) {
            Ok(ids) => ids[0],
            Err(e) => {
                self.refuse(peer, stream, "the inviting device could not add this one");
                self.end_invite(v, "the add failed");
                return Err(e);
            }
        };
        self.send_pair(
            stream,
            &PairMsg::Welcome {
                genesis: v.journal.genesis(),
                genesis_author: v.journal.genesis_author(),
                member_op,
            },
        );
        // The joiner is a member now: the node lets it stay before the
        // gate closes to strangers again.
        self.update_members(v)?;
        let session = Session::with_claims(&v.journal, v.device(), now_ms(), self.claims.clone());
        self.sessions.insert(peer, Live { stream, session });
        self.drain(v, peer);
        self.end_invite(v, "used");
        self.pair_event(PairStage::Joined, peer, &name, Some(sas), None);
        tracing::info!(peer = %peer.short(), "a new device joined the vault");
        Ok(())
    }

    /// Ends the pending invite: no more pairing, strangers sent away.
    pub(super) fn end_invite(&mut self, v: &Vault, why: &str) {
        if let Err(e) = invite::remove(v) {
            tracing::warn!("could not remove the invite: {}", error::one_line(&e));
        }
        self.invite_until = None;
        self.net.set_invite(false);
        tracing::debug!(why, "invite ended");
    }

    /// Expires an invite whose time is up, and a joiner still waiting.
    pub(super) fn expire_invite(&mut self, v: &Vault) {
        if self.invite_until.is_none_or(|t| now_ms() < t) {
            return;
        }
        if let Some(j) = self.joiner.take() {
            self.refuse(
                j.peer,
                j.stream,
                "the invite expired before it was approved",
            );
        }
        self.end_invite(v, "expired");
    }

    /// The joiner's stream closed before pairing finished.
    pub(super) fn joiner_left(&mut self, v: &Vault, stream: u64) {
        if self.is_pairing(stream) {
            self.joiner = None;
            self.end_invite(v, "the joiner left");
        }
    }

    fn refuse(&mut self, peer: DeviceId, stream: u64, reason: &str) {
        self.send_pair(
            stream,
            &PairMsg::Refused {
                reason: reason.to_string(),
            },
        );
        // The refusal goes out before the stream closes: the writer sends
        // what was queued first.
        self.net.close(peer, stream, Duration::ZERO);
    }

    fn send_pair(&self, stream: u64, msg: &PairMsg) {
        let _ = self.net.send(stream, msg.encode());
    }

    fn pair_event(
        &mut self,
        stage: PairStage,
        peer: DeviceId,
        name: &str,
        sas: Option<String>,
        reason: Option<&str>,
    ) {
        self.events.push(Event::Pairing {
            stage,
            device: peer.to_hex(),
            name: name.to_string(),
            sas,
            reason: reason.map(str::to_string),
        });
    }
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}
