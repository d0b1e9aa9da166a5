//! The journal: admission of signed ops into the store, the local author's
//! appends, and reads of the admitted set (by id, by author, in total order).
//!
//! Every op, local or remote, enters through the same admission checks.
//! Local appends stage ops in memory and commit them in one batch: one
//! fsync for the whole group.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::{Bound, ControlFlow};
use std::sync::{Arc, Mutex};

use ed25519_dalek::SigningKey;

use crate::control::{Control, KeyRotate, MemberAction, Role, Sealed};
use crate::entropy::Entropy;
use crate::envelope::{Envelope, Header, NONCE_BYTES, OpKind, SignatureMemo};
use crate::error::{Error, Result};
use crate::hlc;
use crate::id::{DeviceId, OpId, VaultId};
use crate::keys::{EpochKey, Keyring, device_id, key_check, seal_back, seal_to};
use crate::limits::{HLC_FUTURE_SKEW_MAX_MS, PENDING_OPS_MAX};
use crate::membership::ControlOp;
use crate::order::OrderKey;
use crate::payload::{Action, Payload};
use crate::replay::ReplayOp;
use crate::store::{Batch, Durability, Ks, Store};
use crate::vv::VersionVector;

mod meta {
    pub const VAULT: &[u8] = b"vault";
    pub const GENESIS: &[u8] = b"genesis";
    pub const GENESIS_AUTHOR: &[u8] = b"genesis_author";
    pub const ADMITTED: &[u8] = b"admitted_vv";
    pub const OPS: &[u8] = b"admitted_ops";
    pub const OP_BYTES: &[u8] = b"admitted_op_bytes";
    pub const HLC: &[u8] = b"local_hlc";
    /// The author of this device's last own op, and the admitted set as of
    /// that op, to compute deps.
    pub const SEEN_AT_OWN: &[u8] = b"seen_at_own_op";
    /// Lowest order key admitted since the time machine last caught up.
    pub const REPLAY_FROM: &[u8] = b"replay_from";
    /// Forked authors: author ‖ lowest forked seq (LE), repeated.
    pub const FORKS: &[u8] = b"forks";
}

/// One local op to write ([`Journal::write`]).
#[derive(Clone, Debug)]
pub enum Write {
    /// A content op.
    Note(Payload),
    /// Adds `device` with `role`, sealing the current epoch key to it if
    /// the role reads; `name` is the payload.
    Add {
        device: DeviceId,
        role: Role,
        name: String,
    },
    /// Removes `device`, keeping the effect of its ops up to its newest in
    /// this journal; a KeyRotate follows.
    Remove { device: DeviceId },
    /// A new key epoch, sealed to every reading member.
    Rotate,
    /// Seals the key of `epoch` to `devices`.
    Share { epoch: OpId, devices: Vec<DeviceId> },
}

/// The header fields of an admitted op, as stored in the chain index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpMeta {
    pub id: OpId,
    pub author: DeviceId,
    pub seq: u64,
    /// The author's op at `seq - 1` (zero for seq 1).
    pub prev: OpId,
    pub lamport: u64,
    pub hlc: u64,
}

impl OpMeta {
    pub fn order_key(&self) -> OrderKey {
        OrderKey {
            lamport: self.lamport,
            author: self.author,
            id: self.id,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    Admitted(OpId),
    /// Already held: nothing changed.
    Duplicate(OpId),
    /// Waiting for a missing prev/dep or for its hlc; persisted.
    Pending(OpId, String),
}

pub struct Journal<S: Store> {
    store: S,
    vault: VaultId,
    genesis: OpId,
    genesis_author: DeviceId,
    keys: Keyring,
    admitted: VersionVector,
    ops: u64,
    /// Authors whose chain has forked, with the lowest seq held by two ops.
    forks: BTreeMap<DeviceId, u64>,
    /// Ancestors found by walking forked chains: (head, seq) → op.
    ancestors: Mutex<HashMap<(OpId, u64), OpId>>,
    /// Envelopes whose signature already verified.
    signatures: SignatureMemo,
    /// Payloads already decrypted and decoded.
    payloads: Mutex<PayloadMemo>,
    /// Every admitted control op, in admission order.
    pub(crate) controls: Vec<ControlOp>,
}

/// Entries kept in [`Journal`]'s ancestor memo before it starts over.
const ANCESTOR_MEMO_MAX: usize = 1 << 16;

/// Bytes [`PayloadMemo`] holds before it starts over, counting each op as
/// twice its sealed size: the sealed bytes, and the payload opened from
/// them, which is about as large.
const PAYLOAD_MEMO_BYTES: usize = 16 << 20;
/// A payload larger than this is opened each time, not kept.
const PAYLOAD_MEMO_ONE_MAX: usize = 256 << 10;

/// The payloads a journal has opened, by op id, with the sealed bytes each
/// was opened from. The head's replay rewinds for each late op and opens
/// the same few hundred ops again; with this it decrypts each once. Keys
/// are never taken back, so a payload opened once opens the same way again.
///
/// Like [`crate::envelope::SignatureMemo`], it serves only an envelope
/// whose id was hashed from its bytes: by admission, or on reading an op
/// back ([`Journal::load_at`], [`Journal::load_at_seq`], a replay from
/// scratch). Reading one back, bytes equal to those kept are as good as
/// hashed (the same bytes hash the same way), and comparing costs far less
/// than hashing; bytes that differ are hashed, so an op damaged on disk
/// fails its hash instead of being served what it held before. A replay
/// from scratch reads an op the memo does not hold unhashed and opens it,
/// relying on the AEAD tag. `vellum verify` opens every payload afresh.
/// The memo starts over when it holds [`PAYLOAD_MEMO_BYTES`].
#[derive(Default)]
struct PayloadMemo {
    opened: HashMap<OpId, (Arc<Payload>, Box<[u8]>)>,
    bytes: usize,
}

/// What [`PayloadMemo::compare`] found for an op read back.
enum Kept {
    /// Not held.
    None,
    /// Held, with these very bytes.
    Same,
    /// Held, with other bytes.
    Other,
}

impl PayloadMemo {
    fn get(&self, id: &OpId) -> Option<Arc<Payload>> {
        self.opened.get(id).map(|(p, _)| Arc::clone(p))
    }

    fn compare(&self, id: &OpId, sealed: &[u8]) -> Kept {
        match self.opened.get(id) {
            None => Kept::None,
            Some((_, kept)) if **kept == *sealed => Kept::Same,
            Some(_) => Kept::Other,
        }
    }

    /// Keeps `payload`, opened from `env`, which must have been hashed.
    fn keep(&mut self, env: &Envelope, payload: &Arc<Payload>) {
        debug_assert!(env.is_hashed());
        self.insert(env.id(), env.bytes(), payload);
    }

    fn insert(&mut self, id: OpId, sealed: &[u8], payload: &Arc<Payload>) {
        if sealed.len() > PAYLOAD_MEMO_ONE_MAX {
            return;
        }
        let cost = 2 * sealed.len();
        if self.bytes + cost > PAYLOAD_MEMO_BYTES {
            self.opened.clear();
            self.bytes = 0;
        }
        if self
            .opened
            .insert(id, (Arc::clone(payload), sealed.into()))
            .is_none()
        {
            self.bytes += cost;
        }
    }
}

/// Ops admitted earlier in the same uncommitted batch.
#[derive(Default)]
pub(crate) struct Staged {
    /// The journal's admitted set plus the staged ops.
    pub(crate) admitted: VersionVector,
    metas: HashMap<OpId, OpMeta>,
    chain: BTreeMap<(DeviceId, u64, OpId), OpId>,
    batch: Batch,
    replay_from: Option<OrderKey>,
    /// Causal records of staged ops with deps, by (author, seq, id).
    causal: BTreeMap<(DeviceId, u64, OpId), VersionVector>,
    /// The journal's forks plus those found in this batch.
    forks: BTreeMap<DeviceId, u64>,
    /// Control ops staged.
    pub(crate) controls: Vec<ControlOp>,
}

/// A visitor of stored ops in order: order key, seq, envelope bytes.
type OrderVisit<'a> = dyn FnMut(OrderKey, u64, &[u8]) -> Result<ControlFlow<()>> + 'a;

/// `Ks::Chain` and `Ks::Causal` key: author ‖ seq (BE) ‖ OpId. A slot
/// holds two ops only where the author's chain forked.
fn chain_key(author: &DeviceId, seq: u64, id: &OpId) -> Vec<u8> {
    let mut k = Vec::with_capacity(72);
    k.extend_from_slice(&author.0);
    k.extend_from_slice(&seq.to_be_bytes());
    k.extend_from_slice(&id.0);
    k
}

/// The first key of a slot (its lowest OpId).
fn slot_key(author: &DeviceId, seq: u64) -> Vec<u8> {
    chain_key(author, seq, &OpId::ZERO)
}

fn chain_value(m: &OpMeta) -> Vec<u8> {
    let mut v = Vec::with_capacity(48);
    v.extend_from_slice(&m.lamport.to_le_bytes());
    v.extend_from_slice(&m.hlc.to_le_bytes());
    v.extend_from_slice(&m.prev.0);
    v
}

/// The seq at the front of a `Ks::Order` record.
fn record_seq(record: &[u8], id: &OpId) -> Result<u64> {
    record
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| Error::Corrupt(format!("stored op {} is truncated", id.short())))
}

fn parse_chain(k: &[u8], v: &[u8]) -> Result<OpMeta> {
    if k.len() != 72 || v.len() != 48 {
        return Err(Error::Corrupt(
            "chain index record has the wrong size".into(),
        ));
    }
    Ok(OpMeta {
        author: DeviceId::from_slice(&k[..32]).expect("32 bytes"),
        seq: u64::from_be_bytes(k[32..40].try_into().expect("8 bytes")),
        id: OpId::from_slice(&k[40..]).expect("32 bytes"),
        lamport: u64::from_le_bytes(v[..8].try_into().expect("8 bytes")),
        hlc: u64::from_le_bytes(v[8..16].try_into().expect("8 bytes")),
        prev: OpId::from_slice(&v[16..]).expect("32 bytes"),
    })
}

fn forks_to_bytes(forks: &BTreeMap<DeviceId, u64>) -> Vec<u8> {
    let mut b = Vec::with_capacity(forks.len() * 40);
    for (a, seq) in forks {
        b.extend_from_slice(&a.0);
        b.extend_from_slice(&seq.to_le_bytes());
    }
    b
}

fn forks_from_bytes(b: &[u8]) -> Result<BTreeMap<DeviceId, u64>> {
    if !b.len().is_multiple_of(40) {
        return Err(Error::Corrupt("the fork record is damaged".into()));
    }
    Ok(b.chunks_exact(40)
        .map(|c| {
            (
                DeviceId::from_slice(&c[..32]).expect("32 bytes"),
                u64::from_le_bytes(c[32..].try_into().expect("8 bytes")),
            )
        })
        .collect())
}

fn u64_value(v: Option<Vec<u8>>) -> Result<u64> {
    match v {
        None => Ok(0),
        Some(b) => {
            Ok(u64::from_le_bytes(b.try_into().map_err(|_| {
                Error::Corrupt("counter has the wrong size".into())
            })?))
        }
    }
}

impl<S: Store> Journal<S> {
    /// Starts a new vault: writes and durably commits the genesis op.
    pub fn create(
        store: S,
        vault: VaultId,
        signer: &SigningKey,
        keys: Keyring,
        entropy: &mut dyn Entropy,
        now_ms: u64,
        merge_version: u32,
    ) -> Result<Self> {
        if store.get(Ks::Meta, meta::GENESIS)?.is_some() {
            return Err(Error::Usage("this journal already has a genesis op".into()));
        }
        let author = device_id(signer);
        let header = Header {
            vault,
            author,
            seq: 1,
            prev: OpId::ZERO,
            lamport: 1,
            hlc: hlc::next(now_ms, 0),
            deps: vec![],
            key_epoch: OpId::ZERO,
        };
        let payload = Payload::new(Action::Genesis { merge_version });
        let key = keys
            .get(&OpId::ZERO)
            .ok_or_else(|| Error::Keys("no genesis key".into()))?;
        let env = Envelope::seal(
            OpKind::Content,
            &header,
            &[],
            &payload.encode(),
            key,
            nonce(entropy),
            signer,
        )?;
        let genesis = env.id();
        let mut batch = Batch::new();
        batch.put(Ks::Meta, meta::VAULT, vault.0.to_vec());
        batch.put(Ks::Meta, meta::GENESIS, genesis.0.to_vec());
        batch.put(Ks::Meta, meta::GENESIS_AUTHOR, author.0.to_vec());
        store.commit(batch, Durability::Buffered)?;
        let mut keys = keys;
        keys.set_genesis(genesis);
        let mut j = Journal {
            store,
            vault,
            genesis,
            genesis_author: author,
            keys,
            admitted: VersionVector::new(),
            ops: 0,
            forks: BTreeMap::new(),
            ancestors: Mutex::new(HashMap::new()),
            signatures: SignatureMemo::default(),
            payloads: Mutex::default(),
            controls: Vec::new(),
        };
        let mut staged = j.staged(Batch::new());
        match j.check_and_stage(env, now_ms, &mut staged)? {
            Admission::Admitted(_) => {}
            other => return Err(Error::Corrupt(format!("genesis not admitted: {other:?}"))),
        }
        j.commit_staged(staged, Durability::Durable)?;
        Ok(j)
    }

    /// An empty journal of the same vault as `self`, on `store`, that
    /// admits only what `self` would: `verify` re-admits every op into one.
    /// It holds `self`'s keys.
    pub fn empty_replica<T: Store>(&self, store: T) -> Result<Journal<T>> {
        self.empty_replica_keyed(store, self.keys.clone())
    }

    /// Shares `memo` of verified signatures (see [`SignatureMemo`]) with
    /// whoever else holds it.
    pub fn with_signature_memo(mut self, memo: SignatureMemo) -> Self {
        self.signatures = memo;
        self
    }

    /// [`Journal::empty_replica`] for another device, holding `keys`.
    pub fn empty_replica_keyed<T: Store>(&self, store: T, keys: Keyring) -> Result<Journal<T>> {
        Journal::empty_of(store, self.vault, self.genesis, self.genesis_author, keys)
    }

    /// An empty journal of the vault whose genesis op is `genesis`, by
    /// `genesis_author`: a device joining over the network, which learns
    /// the vault's keys from the seals its Member add carries.
    pub fn empty_of(
        store: S,
        vault: VaultId,
        genesis: OpId,
        genesis_author: DeviceId,
        keys: Keyring,
    ) -> Result<Journal<S>> {
        if store.get(Ks::Meta, meta::GENESIS)?.is_some() {
            return Err(Error::Usage(
                "this journal already belongs to a vault".into(),
            ));
        }
        let mut batch = Batch::new();
        batch.put(Ks::Meta, meta::VAULT, vault.0.to_vec());
        batch.put(Ks::Meta, meta::GENESIS, genesis.0.to_vec());
        batch.put(Ks::Meta, meta::GENESIS_AUTHOR, genesis_author.0.to_vec());
        store.commit(batch, Durability::Durable)?;
        Journal::open(store, keys)
    }

    /// Opens an existing journal.
    pub fn open(store: S, keys: Keyring) -> Result<Self> {
        let corrupt = |what: &str| Error::Corrupt(format!("journal metadata lacks {what}"));
        let vault = store
            .get(Ks::Meta, meta::VAULT)?
            .and_then(|b| b.try_into().ok())
            .map(VaultId)
            .ok_or_else(|| corrupt("the vault id"))?;
        let genesis = store
            .get(Ks::Meta, meta::GENESIS)?
            .and_then(|b| OpId::from_slice(&b))
            .ok_or_else(|| corrupt("the genesis op"))?;
        let genesis_author = store
            .get(Ks::Meta, meta::GENESIS_AUTHOR)?
            .and_then(|b| DeviceId::from_slice(&b))
            .ok_or_else(|| corrupt("the genesis author"))?;
        let admitted = match store.get(Ks::Meta, meta::ADMITTED)? {
            Some(b) => VersionVector::from_bytes(&b)?,
            None => VersionVector::new(),
        };
        let ops = u64_value(store.get(Ks::Meta, meta::OPS)?)?;
        let forks = match store.get(Ks::Meta, meta::FORKS)? {
            Some(b) => forks_from_bytes(&b)?,
            None => BTreeMap::new(),
        };
        let mut keys = keys;
        keys.set_genesis(genesis);
        let controls = Self::load_controls(&store)?;
        let mut j = Journal {
            store,
            vault,
            genesis,
            genesis_author,
            keys,
            admitted,
            ops,
            forks,
            ancestors: Mutex::new(HashMap::new()),
            signatures: SignatureMemo::default(),
            payloads: Mutex::default(),
            controls,
        };
        j.learn_keys()?;
        Ok(j)
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Gives the store back, e.g. to reopen it after a simulated crash.
    pub fn into_store(self) -> S {
        self.store
    }
    pub fn vault(&self) -> VaultId {
        self.vault
    }
    pub fn genesis(&self) -> OpId {
        self.genesis
    }
    pub fn genesis_author(&self) -> DeviceId {
        self.genesis_author
    }
    pub fn keys(&self) -> &Keyring {
        &self.keys
    }
    pub(crate) fn keys_mut(&mut self) -> &mut Keyring {
        &mut self.keys
    }

    /// Lets the keyring open keys sealed to `key` (a device's new identity)
    /// and learns those already admitted.
    pub fn add_identity(&mut self, key: &SigningKey) -> Result<()> {
        self.keys = std::mem::take(&mut self.keys).with_identity(key);
        self.learn_keys()
    }

    /// The epoch the next local op would be written under, if this device
    /// holds one it may use ([`Journal::write`] rotates otherwise).
    pub fn write_epoch(&self) -> Result<Option<OpId>> {
        self.write_epoch_with(&self.staged_view())
    }
    /// The admitted set: one entry per author, one per branch for an
    /// author whose chain forked.
    pub fn admitted(&self) -> &VersionVector {
        &self.admitted
    }

    /// Authors whose chain has forked, with the lowest seq held by two ops.
    pub fn forks(&self) -> &BTreeMap<DeviceId, u64> {
        &self.forks
    }
    pub fn op_count(&self) -> u64 {
        self.ops
    }

    /// Total bytes of admitted envelopes.
    pub fn op_bytes(&self) -> Result<u64> {
        u64_value(self.store.get(Ks::Meta, meta::OP_BYTES)?)
    }

    pub fn pending_count(&self) -> Result<u64> {
        self.store.count(Ks::Pending)
    }

    /// Appends local ops, all in one batch with one commit.
    pub fn append(
        &mut self,
        signer: &SigningKey,
        payloads: Vec<Payload>,
        entropy: &mut dyn Entropy,
        now_ms: u64,
        durability: Durability,
    ) -> Result<Vec<OpId>> {
        self.append_with(signer, payloads, entropy, now_ms, durability, Batch::new())
    }

    /// [`Journal::append`], with `extra` writes committed atomically with
    /// the ops (the scanner's record of what it read, for instance).
    pub fn append_with(
        &mut self,
        signer: &SigningKey,
        payloads: Vec<Payload>,
        entropy: &mut dyn Entropy,
        now_ms: u64,
        durability: Durability,
        extra: Batch,
    ) -> Result<Vec<OpId>> {
        let ops = payloads.into_iter().map(Write::Note).collect();
        self.append_ops(signer, ops, entropy, now_ms, durability, extra)
    }

    /// Writes membership and key changes (durably), each with the ops it
    /// needs: a removal is followed by a KeyRotate.
    pub fn write(
        &mut self,
        signer: &SigningKey,
        writes: Vec<Write>,
        entropy: &mut dyn Entropy,
        now_ms: u64,
    ) -> Result<Vec<OpId>> {
        self.append_ops(
            signer,
            writes,
            entropy,
            now_ms,
            Durability::Durable,
            Batch::new(),
        )
    }

    /// Seals every epoch key some reading member lacks to it (DESIGN §7:
    /// a member added concurrently with a rotation, for instance). Writes
    /// nothing if no seal is missing or this device may not share keys.
    pub fn share_missing_keys(
        &mut self,
        signer: &SigningKey,
        entropy: &mut dyn Entropy,
        now_ms: u64,
    ) -> Result<Vec<OpId>> {
        let me = device_id(signer);
        let members = self.members(&self.admitted)?;
        if !members.active(&me).is_some_and(Role::manages) {
            return Ok(Vec::new());
        }
        let writes: Vec<Write> = self
            .missing_seals()?
            .into_iter()
            .map(|(epoch, devices)| Write::Share { epoch, devices })
            .collect();
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        self.write(signer, writes, entropy, now_ms)
    }

    /// Appends local ops in one batch. An op that needs a key epoch the
    /// removed devices do not hold, where this device has none, is preceded
    /// by a KeyRotate (DESIGN §7: "if there is none, it rotates first").
    /// Returns the ids of `writes`, not of the rotations added.
    fn append_ops(
        &mut self,
        signer: &SigningKey,
        writes: Vec<Write>,
        entropy: &mut dyn Entropy,
        now_ms: u64,
        durability: Durability,
        extra: Batch,
    ) -> Result<Vec<OpId>> {
        let author = device_id(signer);
        // What this author had seen at its last op. A device that changed
        // identity starts over: its new chain must depend on every head.
        let mut seen = match self.store.get(Ks::Meta, meta::SEEN_AT_OWN)? {
            Some(b) if b.len() >= 32 && b[..32] == author.0 => VersionVector::from_bytes(&b[32..])?,
            _ => VersionVector::new(),
        };
        let mut local_hlc = u64_value(self.store.get(Ks::Meta, meta::HLC)?)?;
        let mut staged = self.staged(extra);
        let members = self.members_with(&staged.admitted, &staged)?;
        if members.removed.contains_key(&author) {
            return Err(Error::Usage(
                "this device was removed from the vault: it can no longer write".into(),
            ));
        }
        let Some(role) = members.roles.get(&author).copied() else {
            return Err(Error::Usage(
                "this device is not a member of the vault (yet): it cannot write".into(),
            ));
        };
        for w in &writes {
            match w {
                Write::Note(_) if !role.writes_notes() => {
                    return Err(Error::Usage(format!(
                        "this device is a {role:?} member: it writes no notes"
                    )));
                }
                Write::Note(_) => {}
                _ if !role.manages() => {
                    return Err(Error::Usage(format!(
                        "this device is a {role:?} member: it cannot change membership or keys"
                    )));
                }
                Write::Add { device, .. } if members.removed.contains_key(device) => {
                    return Err(Error::Usage(format!(
                        "{} was removed from the vault: it may join again only as a new device",
                        device.short()
                    )));
                }
                _ => {}
            }
        }
        let mut ids = Vec::with_capacity(writes.len());
        let mut todo: std::collections::VecDeque<(Write, bool)> =
            writes.into_iter().map(|w| (w, true)).collect();
        // Set once a rotation was queued because no clean epoch was held.
        let mut rotated_for_clean = false;
        // Set once devices removed on another branch were removed again.
        let mut removed_again = false;
        while let Some((write, asked)) = todo.pop_front() {
            let clean = !matches!(write, Write::Remove { .. } | Write::Rotate);
            let epoch = if clean {
                self.write_epoch_with(&staged)?
            } else {
                self.newest_held_epoch_with(&staged)?
            };
            let Some(epoch) = epoch else {
                if clean && !rotated_for_clean {
                    todo.push_front((write, asked));
                    todo.push_front((Write::Rotate, false));
                    rotated_for_clean = true;
                    continue;
                }
                if clean && !removed_again {
                    // A removal on another branch of this device's own
                    // chain (it forked) can never be in the past of what it
                    // writes: deps name other authors' ops. Removing those
                    // devices again on this branch, then rotating, makes an
                    // epoch clean.
                    let missing = match self.newest_held_epoch_with(&staged)? {
                        Some(e) => self
                            .removed_outside_epoch_with(&e, &staged.admitted, &staged)?
                            .unwrap_or_default(),
                        None => Vec::new(),
                    };
                    if !missing.is_empty() {
                        removed_again = true;
                        todo.push_front((write, asked));
                        for device in missing.into_iter().rev() {
                            todo.push_front((Write::Remove { device }, false));
                        }
                        continue;
                    }
                }
                if clean {
                    // Bounded: otherwise a rotation that leaves no clean
                    // epoch would be followed by another, forever.
                    return Err(Error::Corrupt(
                        "a key rotation written to get a clean epoch left none".into(),
                    ));
                }
                return Err(Error::Keys("this device holds no key of this vault".into()));
            };
            if clean {
                rotated_for_clean = false;
            }
            let key = self.keys.get(&epoch).expect("a held epoch").clone();
            let mut new_key = None;
            let (control, payload) = match write {
                Write::Note(p) => (None, p),
                Write::Add { device, role, name } => {
                    let seal = if role.reads() {
                        seal_to(&device, &key, entropy)?.to_vec()
                    } else {
                        Vec::new()
                    };
                    (
                        Some(Control::add_member(device, role, seal)),
                        Payload::new(Action::Member { name }),
                    )
                }
                Write::Remove { device } => {
                    let role = self
                        .members_with(&staged.admitted, &staged)?
                        .roles
                        .get(&device)
                        .copied()
                        .ok_or_else(|| {
                            Error::Usage(format!("{} is not a member", device.short()))
                        })?;
                    let cutoff = staged
                        .admitted
                        .heads(&device)
                        .iter()
                        .max_by_key(|e| (e.seq, e.head))
                        .map_or(OpId::ZERO, |e| e.head);
                    // Every removal is followed by a KeyRotate.
                    todo.push_front((Write::Rotate, false));
                    (
                        Some(Control::remove_member(device, role, cutoff)),
                        Payload::new(Action::Control),
                    )
                }
                Write::Rotate => {
                    let fresh = EpochKey(entropy_array(entropy));
                    let members = self.members_with(&staged.admitted, &staged)?;
                    let mut sealed = Vec::new();
                    for d in members.readers() {
                        sealed.push(Sealed {
                            device: *d,
                            seal: seal_to(d, &fresh, entropy)?,
                        });
                    }
                    let rotate = KeyRotate {
                        check: key_check(&fresh),
                        back: seal_back(&fresh, &key, entropy)?,
                        sealed,
                    };
                    new_key = Some(fresh);
                    (
                        Some(Control::KeyRotate(rotate)),
                        Payload::new(Action::Control),
                    )
                }
                Write::Share {
                    epoch: shared,
                    devices,
                } => {
                    let k = self.keys.get(&shared).cloned().ok_or_else(|| {
                        Error::Keys(format!("no key for epoch {}", shared.short()))
                    })?;
                    let mut sealed = Vec::new();
                    for d in &devices {
                        sealed.push(Sealed {
                            device: *d,
                            seal: seal_to(d, &k, entropy)?,
                        });
                    }
                    (
                        Some(Control::KeyShare(crate::control::KeyShare {
                            epoch: shared,
                            sealed,
                        })),
                        Payload::new(Action::Control),
                    )
                }
            };
            let prev = staged.admitted.get(&author);
            let deps: Vec<OpId> = staged
                .admitted
                .iter()
                .filter(|(a, e)| **a != author && !seen.heads(a).contains(e))
                .map(|(_, e)| e.head)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let mut max_lamport = 0;
            let mut max_hlc = local_hlc;
            for id in prev.iter().map(|e| e.head).chain(deps.iter().copied()) {
                let m = self.meta_with(&id, &staged)?.ok_or_else(|| {
                    Error::Corrupt(format!("head op {} is not in the journal", id.short()))
                })?;
                max_lamport = max_lamport.max(m.lamport);
                max_hlc = max_hlc.max(m.hlc);
            }
            let header = Header {
                vault: self.vault,
                author,
                seq: prev.map_or(1, |e| e.seq + 1),
                prev: prev.map_or(OpId::ZERO, |e| e.head),
                lamport: max_lamport + 1,
                hlc: hlc::next(now_ms, max_hlc),
                deps,
                key_epoch: epoch,
            };
            local_hlc = header.hlc;
            let (kind, fields) = match &control {
                Some(c) => (OpKind::Control, c.encode()),
                None => (OpKind::Content, Vec::new()),
            };
            let plain = payload.encode();
            let env = Envelope::seal(kind, &header, &fields, &plain, &key, nonce(entropy), signer)?;
            // The payload just sealed is what opening the op would give:
            // admission and replay need not decrypt it again.
            self.payloads
                .lock()
                .expect("payload memo")
                .keep(&env, &Arc::new(payload));
            // Pair assertion: a local op passes the same admission as a
            // remote one, or it is never stored.
            match self.check_and_stage(env, now_ms, &mut staged)? {
                Admission::Admitted(id) => {
                    if asked {
                        ids.push(id);
                    }
                    if let Some(k) = new_key {
                        self.keys.insert(id, k);
                    }
                }
                other => {
                    return Err(Error::Corrupt(format!(
                        "own op was not admitted: {other:?}"
                    )));
                }
            }
            seen = staged.admitted.clone();
        }
        staged
            .batch
            .put(Ks::Meta, meta::HLC, local_hlc.to_le_bytes().to_vec());
        let mut seen_record = author.0.to_vec();
        seen_record.extend_from_slice(&seen.to_bytes());
        staged.batch.put(Ks::Meta, meta::SEEN_AT_OWN, seen_record);
        self.commit_staged(staged, durability)?;
        Ok(ids)
    }

    /// The header of `author`'s next op if it built on every admitted head
    /// (an unforked author's newest op as its prev), under `key_epoch`: for
    /// tools and tests that build ops by hand, past the checks a local
    /// append makes first. Admission still judges the op.
    pub fn header_on_heads(
        &self,
        author: &DeviceId,
        key_epoch: OpId,
        now_ms: u64,
    ) -> Result<Header> {
        let prev = self.admitted.get(author);
        let deps: Vec<OpId> = self
            .admitted
            .iter()
            .filter(|(a, _)| *a != author)
            .map(|(_, e)| e.head)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let (mut lamport, mut max_hlc) = (0, 0);
        for id in prev.iter().map(|e| e.head).chain(deps.iter().copied()) {
            let m = self.op_meta(&id)?.ok_or_else(|| {
                Error::Corrupt(format!("head op {} is not in the journal", id.short()))
            })?;
            lamport = lamport.max(m.lamport);
            max_hlc = max_hlc.max(m.hlc);
        }
        Ok(Header {
            vault: self.vault,
            author: *author,
            seq: prev.map_or(1, |e| e.seq + 1),
            prev: prev.map_or(OpId::ZERO, |e| e.head),
            lamport: lamport + 1,
            hlc: hlc::next(now_ms, max_hlc),
            deps,
            key_epoch,
        })
    }

    /// Admits one op from outside (import, a peer). Ops waiting on a missing
    /// prev/dep are persisted as pending and retried after each admission.
    pub fn admit(&mut self, bytes: Vec<u8>, now_ms: u64) -> Result<Admission> {
        let env = Envelope::parse(bytes)?;
        let mut staged = self.staged(Batch::new());
        let verdict = self.check_and_stage(env, now_ms, &mut staged)?;
        self.commit_staged(staged, Durability::Durable)?;
        if matches!(verdict, Admission::Admitted(_)) {
            self.retry_pending(now_ms)?;
        }
        Ok(verdict)
    }

    /// Admits ops from outside in one durable commit: for bulk transfers
    /// (clone, import), where ops come in an order that admits them.
    /// Rejected ops are returned with their error; then pending ops are
    /// retried.
    pub fn admit_batch(
        &mut self,
        ops: Vec<Vec<u8>>,
        now_ms: u64,
    ) -> Result<Vec<Result<Admission>>> {
        let mut staged = self.staged(Batch::new());
        let mut out = Vec::with_capacity(ops.len());
        for bytes in ops {
            // A rejected op stages nothing: every check precedes the writes.
            let verdict = Envelope::parse(bytes)
                .and_then(|env| self.check_and_stage(env, now_ms, &mut staged));
            if let Err(e @ (Error::Store(_) | Error::Io(_))) = verdict {
                return Err(e);
            }
            out.push(verdict);
        }
        self.commit_staged(staged, Durability::Durable)?;
        if out.iter().any(|v| matches!(v, Ok(Admission::Admitted(_)))) {
            self.retry_pending(now_ms)?;
        }
        Ok(out)
    }

    /// Retries every pending op until no more can be admitted.
    pub fn retry_pending(&mut self, now_ms: u64) -> Result<u64> {
        let mut total = 0;
        loop {
            let mut waiting = Vec::new();
            self.store.scan(
                Ks::Pending,
                (Bound::Unbounded, Bound::Unbounded),
                false,
                &mut |k, v| {
                    waiting.push((OpId::from_slice(k), v.to_vec()));
                    ControlFlow::Continue(())
                },
            )?;
            let mut progress = 0;
            for (id, bytes) in waiting {
                // An op whose prev or a dep is still missing would only wait
                // again: it is neither hashed nor checked until they come.
                let env = match id {
                    Some(id) => Envelope::parse_stored(bytes, id)?,
                    None => Envelope::parse(bytes)?,
                };
                if self.lacks_past(env.header())? {
                    continue;
                }
                let env = match env.is_hashed() {
                    true => env,
                    false => Envelope::parse(env.into_bytes())?,
                };
                let id = env.id();
                let mut staged = self.staged(Batch::new());
                match self.check_and_stage(env, now_ms, &mut staged) {
                    Ok(Admission::Pending(..)) => continue,
                    Ok(verdict) => {
                        progress += u64::from(matches!(verdict, Admission::Admitted(_)));
                    }
                    Err(e @ (Error::Store(_) | Error::Io(_))) => return Err(e),
                    Err(e) => {
                        // Its causal past arrived and it still fails: it
                        // will never be admitted, so it leaves the buffer.
                        tracing::warn!(op = %id.short(), error = %e, "dropping a pending op");
                        staged = self.staged(Batch::new());
                    }
                }
                staged.batch.delete(Ks::Pending, id.0.to_vec());
                self.commit_staged(staged, Durability::Durable)?;
            }
            total += progress;
            if progress == 0 {
                return Ok(total);
            }
        }
    }

    /// Whether the prev or a dep of an op with header `h` is not admitted.
    fn lacks_past(&self, h: &Header) -> Result<bool> {
        if !h.prev.is_zero() && !self.holds(&h.prev)? {
            return Ok(true);
        }
        for dep in &h.deps {
            if !self.holds(dep)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The committed state, for reads that share code with admission.
    pub(crate) fn staged_view(&self) -> Staged {
        self.staged(Batch::new())
    }

    fn staged(&self, batch: Batch) -> Staged {
        Staged {
            admitted: self.admitted.clone(),
            forks: self.forks.clone(),
            batch,
            ..Staged::default()
        }
    }

    pub(crate) fn meta_with(&self, id: &OpId, staged: &Staged) -> Result<Option<OpMeta>> {
        if let Some(m) = staged.metas.get(id) {
            return Ok(Some(*m));
        }
        self.op_meta(id)
    }

    /// The admission checks of DESIGN §3. `Err` means rejected.
    fn check_and_stage(
        &self,
        env: Envelope,
        now_ms: u64,
        staged: &mut Staged,
    ) -> Result<Admission> {
        let id = env.id();
        let h = env.header().clone();
        let reject = |reason: String| Err(Error::Rejected { op: id, reason });
        if h.vault != self.vault {
            return reject(format!("op is from another vault ({})", h.vault));
        }
        if staged.metas.contains_key(&id) || self.store.get(Ks::Ops, &id.0)?.is_some() {
            return Ok(Admission::Duplicate(id));
        }
        if !crate::mutants::active("skip_signature") {
            env.verify_signature_with(&self.signatures)?;
        }
        let control = match env.kind() {
            OpKind::Content => None,
            OpKind::Control => Some(Control::parse(env.control())?),
        };
        if h.seq == 0 {
            return reject("seq 0".into());
        }
        if (h.seq == 1) != h.prev.is_zero() {
            return reject("prev must be zero exactly for seq 1".into());
        }
        let pend = |why: String, staged: &mut Staged| -> Result<Admission> {
            staged
                .batch
                .put(Ks::Pending, id.0.to_vec(), env.bytes().to_vec());
            Ok(Admission::Pending(id, why))
        };
        // Causal predecessors first: missing ones make the op wait.
        let mut max_lamport = 0;
        let mut max_hlc = 0;
        if h.seq > 1 {
            match self.meta_with(&h.prev, staged)? {
                None if crate::mutants::active("skip_prev_check") => {}
                None => return pend(format!("waits for prev {}", h.prev.short()), staged),
                Some(p) if p.author != h.author || p.seq + 1 != h.seq => {
                    return reject("prev is not the author's previous op".into());
                }
                Some(p) => {
                    max_lamport = p.lamport;
                    max_hlc = p.hlc;
                }
            }
        }
        let mut dep_metas = Vec::with_capacity(h.deps.len());
        for dep in &h.deps {
            match self.meta_with(dep, staged)? {
                None if crate::mutants::active("apply_before_deps") => {}
                None => return pend(format!("waits for dep {}", dep.short()), staged),
                Some(d) if d.author == h.author => {
                    return reject("a dep names the author's own op".into());
                }
                Some(d) => {
                    max_lamport = max_lamport.max(d.lamport);
                    max_hlc = max_hlc.max(d.hlc);
                    dep_metas.push(d);
                }
            }
        }
        if h.lamport != max_lamport + 1 {
            return reject(format!(
                "lamport {} should be {}",
                h.lamport,
                max_lamport + 1
            ));
        }
        if h.hlc <= max_hlc {
            return reject("hlc does not advance past its causal past".into());
        }
        // Only an hlc the author took from its own clock can be skewed; one
        // forced by causality (1 + the causal past's) adds no new skew, and
        // refusing it would stall a device whose clock was set back.
        if hlc::wall_ms(h.hlc) > now_ms + HLC_FUTURE_SKEW_MAX_MS && h.hlc != max_hlc + 1 {
            return pend("hlc is more than 10 min ahead of this clock".into(), staged);
        }
        // The op's causal past, other authors only: its author's past
        // before it, and each dep with the dep's own past.
        let mut past = self.others_past_with(&h.author, h.seq - 1, &h.prev, staged)?;
        // A dep missing here is one a mutant let through.
        for d in dep_metas {
            let dep_past = self.others_past_with(&d.author, d.seq, &d.id, staged)?;
            for (a, e) in dep_past.iter() {
                self.add_with(&mut past, a, e.seq, &e.head, staged)?;
            }
            self.add_with(&mut past, &d.author, d.seq, &d.id, staged)?;
        }
        if let Some(why) = self.refuse_membership(&h, id, control.as_ref(), &past, staged)? {
            return reject(why);
        }
        // Same (author, seq), different bytes: a fork. Both are kept
        // (DESIGN §3); replay decides what a forked chain's ops do.
        let forked = self
            .slot_ids_with(&h.author, h.seq, staged)?
            .iter()
            .any(|other| *other != id);
        if self.ops + staged.metas.len() as u64 >= u64::MAX / 2 {
            return reject("journal is full".into());
        }
        let m = OpMeta {
            id,
            author: h.author,
            seq: h.seq,
            prev: h.prev,
            lamport: h.lamport,
            hlc: h.hlc,
        };
        if forked && crate::mutants::active("reject_forks") {
            return reject("fork".into());
        }
        if forked {
            tracing::warn!(author = %h.author.short(), seq = h.seq, "a device's chain has forked");
            let f = staged.forks.entry(h.author).or_insert(h.seq);
            *f = (*f).min(h.seq);
            staged
                .batch
                .put(Ks::Meta, meta::FORKS, forks_to_bytes(&staged.forks));
        }
        let key = m.order_key();
        if !h.deps.is_empty() {
            staged.batch.put(
                Ks::Causal,
                chain_key(&m.author, m.seq, &m.id),
                past.to_bytes(),
            );
            staged.causal.insert((m.author, m.seq, m.id), past);
        }
        if let Some(control) = control {
            let c = ControlOp {
                id,
                author: m.author,
                seq: m.seq,
                lamport: m.lamport,
                key_epoch: h.key_epoch,
                control,
            };
            staged.batch.put(
                Ks::Control,
                chain_key(&m.author, m.seq, &m.id),
                c.to_record(),
            );
            staged.controls.push(c);
        }
        // Chunks the op names that this store lacks are owed: peers are
        // asked for them (`chunk_debt`). An op this device cannot read yet
        // is looked at again once its key arrives.
        if env.kind() == OpKind::Content {
            if self.keys.get(&h.key_epoch).is_none() {
                crate::blob::note_unread(&mut staged.batch, &id);
            } else {
                for c in self.missing_chunks(&env)? {
                    crate::blob::note_debt(&mut staged.batch, &c);
                }
            }
        }
        staged
            .batch
            .put(Ks::Ops, id.0.to_vec(), key.to_bytes().to_vec());
        staged.batch.put(
            Ks::Chain,
            chain_key(&m.author, m.seq, &m.id),
            chain_value(&m),
        );
        // Ops are stored in replay order, so replay reads them sequentially.
        let mut record = Vec::with_capacity(8 + env.bytes().len());
        record.extend_from_slice(&m.seq.to_le_bytes());
        record.extend_from_slice(&env.into_bytes());
        staged.batch.put(Ks::Order, key.to_bytes().to_vec(), record);
        staged.replay_from = Some(staged.replay_from.map_or(key, |k| k.min(key)));
        staged.metas.insert(id, m);
        staged.chain.insert((m.author, m.seq, id), id);
        // The admitted set is causally closed and gains an op after its
        // prev: the op extends the entry ending at its prev, or it starts
        // a branch.
        let extends = staged
            .admitted
            .heads(&m.author)
            .iter()
            .find(|e| e.head == m.prev)
            .copied();
        if let Some(e) = extends {
            staged.admitted.remove_head(&m.author, &e);
        }
        staged.admitted.add_head(
            m.author,
            crate::vv::Entry {
                seq: m.seq,
                head: m.id,
            },
        );
        Ok(Admission::Admitted(id))
    }

    /// Other authors' part of the causal past of `author`'s op `id` at
    /// `seq` (staged ops included): the record of the newest op at or
    /// before it on its branch that had deps.
    fn others_past_with(
        &self,
        author: &DeviceId,
        seq: u64,
        id: &OpId,
        staged: &Staged,
    ) -> Result<VersionVector> {
        let fork = staged.forks.get(author).copied();
        let (mut seq, mut id) = (seq, *id);
        loop {
            if seq == 0 {
                return Ok(VersionVector::new());
            }
            if fork.is_none_or(|f| seq < f) {
                // One op per slot up to here: the newest record at or
                // before `seq`. Staged ops follow the stored ones.
                if let Some((_, v)) = staged
                    .causal
                    .range((*author, 0, OpId::ZERO)..(*author, seq + 1, OpId::ZERO))
                    .next_back()
                {
                    return Ok(v.clone());
                }
                let lo = slot_key(author, 1);
                let hi = slot_key(author, seq + 1);
                return match self
                    .store
                    .last_in(Ks::Causal, (Bound::Included(&lo), Bound::Excluded(&hi)))?
                {
                    Some((_, v)) => VersionVector::from_bytes(&v),
                    None => Ok(VersionVector::new()),
                };
            }
            // On a forked stretch: this op's own record, or its prev's.
            if let Some(v) = staged.causal.get(&(*author, seq, id)) {
                return Ok(v.clone());
            }
            if let Some(v) = self.store.get(Ks::Causal, &chain_key(author, seq, &id))? {
                return VersionVector::from_bytes(&v);
            }
            id = self.meta_at(author, seq, &id, staged)?.prev;
            seq -= 1;
        }
    }

    /// The chain record of `author`'s op `id` at `seq`.
    fn meta_at(&self, author: &DeviceId, seq: u64, id: &OpId, staged: &Staged) -> Result<OpMeta> {
        if let Some(m) = staged.metas.get(id) {
            return Ok(*m);
        }
        self.chain_meta(author, seq, id)
    }

    /// The chain record of admitted op `id`, `author`'s at `seq`.
    fn chain_meta(&self, author: &DeviceId, seq: u64, id: &OpId) -> Result<OpMeta> {
        match self.store.get(Ks::Chain, &chain_key(author, seq, id))? {
            Some(v) => parse_chain(&chain_key(author, seq, id), &v),
            None => Err(Error::Corrupt(format!(
                "chain of {} lacks op {} at {seq}",
                author.short(),
                id.short()
            ))),
        }
    }

    /// The ops at `author`'s slot `seq`, staged ones included.
    fn slot_ids_with(&self, author: &DeviceId, seq: u64, staged: &Staged) -> Result<Vec<OpId>> {
        let mut out: Vec<OpId> = staged
            .chain
            .range((*author, seq, OpId::ZERO)..(*author, seq + 1, OpId::ZERO))
            .map(|(_, id)| *id)
            .collect();
        self.store
            .scan_prefix(Ks::Chain, &slot_key(author, seq)[..40], &mut |k, _| {
                out.extend(OpId::from_slice(&k[40..]));
                ControlFlow::Continue(())
            })?;
        Ok(out)
    }

    /// The op at `seq` on the branch ending at `head` (at `head_seq`).
    fn ancestor_with(
        &self,
        author: &DeviceId,
        head: &OpId,
        head_seq: u64,
        seq: u64,
        staged: &Staged,
    ) -> Result<OpId> {
        if seq == head_seq {
            return Ok(*head);
        }
        let memo = |k: &(OpId, u64)| {
            self.ancestors
                .lock()
                .expect("ancestor memo")
                .get(k)
                .copied()
        };
        if let Some(found) = memo(&(*head, seq)) {
            return Ok(found);
        }
        let (mut at, mut id) = (head_seq, *head);
        while at > seq {
            id = self.meta_at(author, at, &id, staged)?.prev;
            at -= 1;
        }
        let mut m = self.ancestors.lock().expect("ancestor memo");
        if m.len() >= ANCESTOR_MEMO_MAX {
            m.clear();
        }
        m.insert((*head, seq), id);
        Ok(id)
    }

    /// Whether the set `vv` includes `author`'s op `id` at `seq`.
    pub(crate) fn includes_with(
        &self,
        vv: &VersionVector,
        author: &DeviceId,
        seq: u64,
        id: &OpId,
        staged: &Staged,
    ) -> Result<bool> {
        match staged.forks.get(author) {
            Some(f) if seq >= *f => {
                for e in vv.heads(author) {
                    if e.seq >= seq
                        && self.ancestor_with(author, &e.head, e.seq, seq, staged)? == *id
                    {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            _ => Ok(vv.seq(author) >= seq),
        }
    }

    /// Adds `author`'s op `id` at `seq`, with everything before it on its
    /// branch, to the causally closed set `vv`.
    pub(crate) fn add_with(
        &self,
        vv: &mut VersionVector,
        author: &DeviceId,
        seq: u64,
        id: &OpId,
        staged: &Staged,
    ) -> Result<()> {
        if !staged.forks.contains_key(author) {
            vv.observe(*author, seq, *id);
            return Ok(());
        }
        if self.includes_with(vv, author, seq, id, staged)? {
            return Ok(());
        }
        let heads: Vec<crate::vv::Entry> = vv.heads(author).to_vec();
        for e in heads {
            if e.seq <= seq && self.ancestor_with(author, id, seq, e.seq, staged)? == e.head {
                vv.remove_head(author, &e);
            }
        }
        vv.add_head(*author, crate::vv::Entry { seq, head: *id });
        Ok(())
    }

    /// Whether any admitted op adds `device` as a member (or it is the
    /// genesis author).
    pub fn is_member(&self, device: &DeviceId) -> Result<bool> {
        Ok(*device == self.genesis_author
            || self.controls.iter().any(|c| {
                matches!(&c.control, Control::Member(m)
                    if m.action == MemberAction::Add && m.device == *device)
            }))
    }

    fn commit_staged(&mut self, mut staged: Staged, durability: Durability) -> Result<()> {
        if staged.batch.is_empty() {
            return Ok(());
        }
        let admitted = staged.admitted.clone();
        let ops = self.ops + staged.metas.len() as u64;
        if !staged.metas.is_empty() {
            let added: u64 = staged
                .batch
                .writes
                .iter()
                .filter(|(ks, _, v)| *ks == Ks::Order && v.is_some())
                .map(|(_, _, v)| v.as_ref().map_or(0, |v| v.len().saturating_sub(8) as u64))
                .sum();
            let bytes = self.op_bytes()? + added;
            staged
                .batch
                .put(Ks::Meta, meta::ADMITTED, admitted.to_bytes());
            staged
                .batch
                .put(Ks::Meta, meta::OPS, ops.to_le_bytes().to_vec());
            staged
                .batch
                .put(Ks::Meta, meta::OP_BYTES, bytes.to_le_bytes().to_vec());
        }
        if let Some(from) = staged.replay_from {
            let low = match self.replay_from()? {
                Some(k) => k.min(from),
                None => from,
            };
            staged
                .batch
                .put(Ks::Meta, meta::REPLAY_FROM, low.to_bytes().to_vec());
        }
        let pending_new = staged
            .batch
            .writes
            .iter()
            .filter(|(ks, _, v)| *ks == Ks::Pending && v.is_some())
            .count();
        if pending_new > 0 && self.pending_count()? as usize + pending_new > PENDING_OPS_MAX {
            return Err(Error::Usage(format!(
                "the pending buffer is full ({PENDING_OPS_MAX} ops waiting for their causal past)"
            )));
        }
        self.store.commit(staged.batch, durability)?;
        self.admitted = admitted;
        self.ops = ops;
        self.forks = staged.forks;
        if !staged.controls.is_empty() {
            self.controls.extend(staged.controls);
            self.learn_keys()?;
        }
        Ok(())
    }

    /// The lowest order key admitted since [`Journal::mark_replayed`].
    pub fn replay_from(&self) -> Result<Option<OrderKey>> {
        Ok(self
            .store
            .get(Ks::Meta, meta::REPLAY_FROM)?
            .and_then(|b| OrderKey::from_bytes(&b)))
    }

    /// Adds to `batch` the mark that replay has caught up: `None` when
    /// everything admitted is applied, or the next op still to apply.
    pub fn mark_replayed(&self, batch: &mut Batch, next: Option<&OrderKey>) {
        match next {
            None => batch.delete(Ks::Meta, meta::REPLAY_FROM),
            Some(k) => batch.put(Ks::Meta, meta::REPLAY_FROM, k.to_bytes().to_vec()),
        }
    }

    // ---- reads -------------------------------------------------------

    /// Loads an admitted op and re-checks that its bytes hash to its id.
    pub fn load(&self, id: &OpId) -> Result<Option<Envelope>> {
        match self.order_key_of(id)? {
            Some(key) => self.load_at(&key).map(Some),
            None => Ok(None),
        }
    }

    /// Where admitted op `id` sorts, from the `Ks::Ops` index.
    fn order_key_of(&self, id: &OpId) -> Result<Option<OrderKey>> {
        let Some(key) = self.store.get(Ks::Ops, &id.0)? else {
            return Ok(None);
        };
        OrderKey::from_bytes(&key)
            .filter(|k| k.id == *id)
            .map(Some)
            .ok_or_else(|| Error::Corrupt(format!("op index entry of {} is damaged", id.short())))
    }

    /// Loads the admitted op at `key` in the total order, re-checking that
    /// its bytes hash to its id (or equal the bytes the payload memo kept
    /// for it, which did). Cheaper than [`Journal::load`] when the order
    /// key is known, and sequential when keys ascend.
    pub fn load_at(&self, key: &OrderKey) -> Result<Envelope> {
        Ok(self.load_at_seq(key)?.1)
    }

    /// The causal past of `author`'s op `id` at `seq`, the op itself
    /// excluded: the ops its replay base is computed from (DESIGN §4).
    pub fn causal_past(&self, author: &DeviceId, seq: u64, id: &OpId) -> Result<VersionVector> {
        self.full_past_with(author, seq, id, &self.staged_view())
    }

    /// [`Journal::causal_past`], staged ops included.
    pub(crate) fn full_past_with(
        &self,
        author: &DeviceId,
        seq: u64,
        id: &OpId,
        staged: &Staged,
    ) -> Result<VersionVector> {
        let mut vv = self.others_past_with(author, seq, id, staged)?;
        if seq > 1 {
            let prev = self.meta_at(author, seq, id, staged)?.prev;
            self.add_with(&mut vv, author, seq - 1, &prev, staged)?;
        }
        Ok(vv)
    }

    /// Whether the set `vv` includes `author`'s op `id` at `seq`.
    pub fn includes(
        &self,
        vv: &VersionVector,
        author: &DeviceId,
        seq: u64,
        id: &OpId,
    ) -> Result<bool> {
        if !self.forks.contains_key(author) {
            return Ok(vv.seq(author) >= seq);
        }
        self.includes_with(vv, author, seq, id, &self.staged(Batch::new()))
    }

    /// Adds an admitted op, and everything before it on its branch, to the
    /// causally closed set `vv`.
    pub fn add_to(
        &self,
        vv: &mut VersionVector,
        author: &DeviceId,
        seq: u64,
        id: &OpId,
    ) -> Result<()> {
        if !self.forks.contains_key(author) {
            vv.observe(*author, seq, *id);
            return Ok(());
        }
        self.add_with(vv, author, seq, id, &self.staged(Batch::new()))
    }

    /// How many ops the causally closed set `vv` names.
    pub fn count_ops(&self, vv: &VersionVector) -> Result<u64> {
        let mut n = 0;
        for author in vv.authors() {
            let heads = vv.heads(author);
            match self.forks.get(author) {
                Some(f) if heads.len() > 1 || heads.iter().any(|e| e.seq >= *f) => {
                    // The trunk once, then each branch's ops above it.
                    let staged = self.staged(Batch::new());
                    let mut above = HashSet::new();
                    for e in heads {
                        let (mut at, mut id) = (e.seq, e.head);
                        while at >= *f && above.insert(id) {
                            id = self.meta_at(author, at, &id, &staged)?.prev;
                            at -= 1;
                        }
                    }
                    let top = heads.iter().map(|e| e.seq).max().unwrap_or(0);
                    n += (*f - 1).min(top) + above.len() as u64;
                }
                _ => n += vv.seq(author),
            }
        }
        Ok(n)
    }

    /// The seq of the admitted op at `key`, from its order record alone
    /// (the op is neither parsed nor hashed).
    pub fn seq_at(&self, key: &OrderKey) -> Result<u64> {
        let id = key.id;
        let head = self
            .store
            .get_head(Ks::Order, &key.to_bytes(), 8)?
            .ok_or_else(|| Error::Corrupt(format!("op {} is indexed but missing", id.short())))?;
        record_seq(&head, &id)
    }

    /// [`Journal::load_at`], with the op's seq from its order record. A
    /// damaged record fails here, and the payload memo may serve the op.
    pub fn load_at_seq(&self, key: &OrderKey) -> Result<(u64, Envelope)> {
        let id = key.id;
        let mut record = self
            .store
            .get(Ks::Order, &key.to_bytes())?
            .ok_or_else(|| Error::Corrupt(format!("op {} is indexed but missing", id.short())))?;
        let seq = record_seq(&record, &id)?;
        record.drain(..8);
        Ok((seq, self.read_stored(id, record, true)?))
    }

    /// An op's payload, decrypted and decoded (once, if `env` was hashed:
    /// see [`PayloadMemo`]).
    pub fn load_payload(&self, env: &Envelope) -> Result<Payload> {
        self.shared_payload(env).map(Arc::unwrap_or_clone)
    }

    /// [`Journal::load_payload`], shared with the memo instead of copied.
    fn shared_payload(&self, env: &Envelope) -> Result<Arc<Payload>> {
        if !env.is_hashed() {
            return self.keys.open_payload(env).map(Arc::new);
        }
        let id = env.id();
        if let Some(p) = self.payloads.lock().expect("payload memo").get(&id) {
            return Ok(p);
        }
        let p = Arc::new(self.keys.open_payload(env)?);
        self.payloads.lock().expect("payload memo").keep(env, &p);
        Ok(p)
    }

    /// An admitted op ready for replay in a set whose forks are
    /// `disputes` ([`Journal::disputes`]): payload decrypted and decoded,
    /// control fields parsed.
    pub fn replay_op(
        &self,
        key: OrderKey,
        seq: u64,
        env: &Envelope,
        disputes: &crate::forks::Disputes,
    ) -> Result<ReplayOp> {
        let control = match env.kind() {
            OpKind::Content => None,
            OpKind::Control => Some(Control::parse(env.control())?),
        };
        Ok(ReplayOp {
            key,
            seq,
            prev: env.header().prev,
            hlc: env.header().hlc,
            payload: self.shared_payload(env)?,
            barred: self.barred(
                disputes,
                &key.author,
                seq,
                &key.id,
                matches!(&control, Some(Control::Member(m)) if m.action == MemberAction::Remove),
            )?,
            control,
        })
    }

    /// Whether op `id` is admitted (from the index alone: the op is not
    /// read).
    pub fn holds(&self, id: &OpId) -> Result<bool> {
        Ok(self.store.get(Ks::Ops, &id.0)?.is_some())
    }

    /// An admitted op's header fields, from the indexes written with it
    /// (the op itself is neither parsed nor hashed).
    pub fn op_meta(&self, id: &OpId) -> Result<Option<OpMeta>> {
        let Some(key) = self.order_key_of(id)? else {
            return Ok(None);
        };
        let seq = self.seq_at(&key)?;
        self.chain_meta(&key.author, seq, id).map(Some)
    }

    /// Every admitted op of `author` at `seq` or above, on every branch,
    /// by seq then id.
    pub(crate) fn author_ops_from(&self, author: &DeviceId, seq: u64) -> Result<Vec<OpMeta>> {
        let lo = slot_key(author, seq);
        let mut hi = author.0.to_vec();
        hi.extend_from_slice(&[0xff; 40]);
        let mut out = Vec::new();
        let mut err = None;
        self.store.scan(
            Ks::Chain,
            (
                std::ops::Bound::Included(&lo[..]),
                std::ops::Bound::Included(&hi[..]),
            ),
            false,
            &mut |k, v| match parse_chain(k, v) {
                Ok(m) => {
                    out.push(m);
                    ControlFlow::Continue(())
                }
                Err(e) => {
                    err = Some(e);
                    ControlFlow::Break(())
                }
            },
        )?;
        err.map_or(Ok(out), Err)
    }

    /// The ops at `author`'s `seq`: one, or more where its chain forked.
    pub fn chain_at(&self, author: &DeviceId, seq: u64) -> Result<Vec<OpMeta>> {
        let mut out = Vec::new();
        let mut err = None;
        self.store
            .scan_prefix(Ks::Chain, &slot_key(author, seq)[..40], &mut |k, v| {
                match parse_chain(k, v) {
                    Ok(m) => out.push(m),
                    Err(e) => {
                        err = Some(e);
                        return ControlFlow::Break(());
                    }
                }
                ControlFlow::Continue(())
            })?;
        err.map_or(Ok(out), Err)
    }

    /// The op at `seq` on the branch of `author`'s chain ending at `head`
    /// (itself at `head_seq`).
    pub fn ancestor(
        &self,
        author: &DeviceId,
        head: &OpId,
        head_seq: u64,
        seq: u64,
    ) -> Result<OpMeta> {
        let staged = self.staged(Batch::new());
        let id = self.ancestor_with(author, head, head_seq, seq, &staged)?;
        self.meta_at(author, seq, &id, &staged)
    }

    /// Visits admitted ops (order key and seq) in total order, starting
    /// after `after` (or at the beginning), until `f` breaks.
    pub fn for_each_in_order(
        &self,
        after: Option<&OrderKey>,
        f: &mut dyn FnMut(OrderKey, u64) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        self.scan_order(after, &mut |key, seq, _| f(key, seq))
    }

    /// Like [`Journal::for_each_in_order`], with each op's envelope read in
    /// the same sequential pass: unhashed ([`Envelope::parse_stored`])
    /// unless the payload memo holds it (see [`PayloadMemo`]).
    pub fn for_each_op_in_order(
        &self,
        after: Option<&OrderKey>,
        f: &mut dyn FnMut(OrderKey, u64, Envelope) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        self.scan_order(after, &mut |key, seq, bytes| {
            f(key, seq, self.read_stored(key.id, bytes.to_vec(), false)?)
        })
    }

    /// Parses op `id` read back from the store. Bytes the payload memo kept
    /// for it count as hashed; other bytes are hashed and must give `id`
    /// when the memo holds the op or `must_hash` asks for it, else they
    /// are parsed unhashed (opening the payload then authenticates them).
    fn read_stored(&self, id: OpId, bytes: Vec<u8>, must_hash: bool) -> Result<Envelope> {
        let corrupt = |e: Error| Error::Corrupt(format!("stored op {}: {e}", id.short()));
        let kept = self
            .payloads
            .lock()
            .expect("payload memo")
            .compare(&id, &bytes);
        let env = match kept {
            Kept::Same => return Envelope::parse_same_as_hashed(bytes, id).map_err(corrupt),
            Kept::None if !must_hash => return Envelope::parse_stored(bytes, id).map_err(corrupt),
            Kept::None | Kept::Other => Envelope::parse(bytes).map_err(corrupt)?,
        };
        if env.id() != id {
            return Err(Error::Corrupt(format!(
                "stored op {} does not hash to its id",
                id.short()
            )));
        }
        Ok(env)
    }

    /// The Order keyspace in order: key, seq and the stored envelope bytes.
    fn scan_order(&self, after: Option<&OrderKey>, f: &mut OrderVisit<'_>) -> Result<()> {
        let from = after.map(|k| k.to_bytes());
        let lo = match &from {
            Some(b) => Bound::Excluded(&b[..]),
            None => Bound::Unbounded,
        };
        let mut err = None;
        self.store
            .scan(Ks::Order, (lo, Bound::Unbounded), false, &mut |k, v| {
                let seq = v.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok());
                let (Some(key), Some(seq)) = (OrderKey::from_bytes(k), seq) else {
                    err = Some(Error::Corrupt("bad order index record".into()));
                    return ControlFlow::Break(());
                };
                match f(key, u64::from_le_bytes(seq), &v[8..]) {
                    Ok(flow) => flow,
                    Err(e) => {
                        err = Some(e);
                        ControlFlow::Break(())
                    }
                }
            })?;
        err.map_or(Ok(()), Err)
    }

    /// Up to `max` admitted ops (order key and seq), newest first, that sort
    /// before `before` (or from the newest): for paging backwards.
    pub fn page_rev(&self, before: Option<&OrderKey>, max: usize) -> Result<Vec<(OrderKey, u64)>> {
        let hi_bytes = before.map(|k| k.to_bytes());
        let hi = match &hi_bytes {
            Some(b) => Bound::Excluded(&b[..]),
            None => Bound::Unbounded,
        };
        let mut out = Vec::new();
        self.store
            .scan(Ks::Order, (Bound::Unbounded, hi), true, &mut |k, v| {
                let seq = v.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok());
                if let (Some(key), Some(seq)) = (OrderKey::from_bytes(k), seq) {
                    out.push((key, u64::from_le_bytes(seq)));
                }
                if out.len() >= max {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })?;
        Ok(out)
    }

    /// Admitted op ids starting with `prefix` (hex), at most `limit`.
    pub fn find_by_prefix(&self, prefix_hex: &str, limit: usize) -> Result<Vec<OpId>> {
        let even = &prefix_hex[..prefix_hex.len() & !1];
        let Some(bytes) = crate::id::unhex(even) else {
            return Ok(vec![]);
        };
        let mut out = Vec::new();
        self.store.scan_prefix(Ks::Ops, &bytes, &mut |k, _| {
            if let Some(id) = OpId::from_slice(k)
                && id.to_hex().starts_with(&prefix_hex.to_ascii_lowercase())
            {
                out.push(id);
                if out.len() >= limit {
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        })?;
        Ok(out)
    }

    /// The one admitted op whose id starts with `prefix` (hex): none, or
    /// several (listed, up to `AMBIGUOUS_SHOWN_MAX`), is a `BadPoint`.
    pub fn op_with_prefix(&self, prefix: &str) -> Result<OpId> {
        let found = self.find_by_prefix(prefix, crate::point::AMBIGUOUS_SHOWN_MAX)?;
        match found.as_slice() {
            [] => Err(Error::BadPoint(format!("no op with id {prefix}…"))),
            [one] => Ok(*one),
            many => {
                let list: Vec<String> = many.iter().map(|i| i.short()).collect();
                Err(Error::BadPoint(format!(
                    "op id {prefix} is ambiguous: {}; give more digits",
                    list.join(", ")
                )))
            }
        }
    }

    /// The version vector of an op's causal past, the op included.
    pub fn causal_vv(&self, id: &OpId) -> Result<VersionVector> {
        let m = self
            .op_meta(id)?
            .ok_or_else(|| Error::BadPoint(format!("op {} is not in the journal", id.short())))?;
        let mut vv = self.causal_past(&m.author, m.seq, &m.id)?;
        self.add_to(&mut vv, &m.author, m.seq, &m.id)?;
        Ok(vv)
    }

    /// Every admitted op with hlc ≤ `hlc_max`, as a version vector. Per
    /// branch the hlc rises with seq, so this is a binary search per head.
    pub fn vv_at_hlc(&self, hlc_max: u64) -> Result<VersionVector> {
        let mut vv = VersionVector::new();
        for (author, e) in self.admitted.iter() {
            let (mut lo, mut hi) = (0u64, e.seq);
            while lo < hi {
                let mid = lo + (hi - lo).div_ceil(2);
                let m = self.ancestor(author, &e.head, e.seq, mid)?;
                if m.hlc <= hlc_max {
                    lo = mid
                } else {
                    hi = mid - 1
                }
            }
            if lo > 0 {
                let m = self.ancestor(author, &e.head, e.seq, lo)?;
                self.add_to(&mut vv, author, lo, &m.id)?;
            }
        }
        Ok(vv)
    }

    /// Whether `vv` names only admitted ops, is causally closed, and is in
    /// canonical form (no entry below another of its author); the error
    /// says what is wrong.
    pub fn check_vv(&self, vv: &VersionVector) -> Result<()> {
        for (author, e) in vv.iter() {
            let m = self
                .op_meta(&e.head)?
                .filter(|m| m.author == *author)
                .ok_or_else(|| {
                    Error::BadPoint(format!(
                        "this device lacks op {} ({} of device {})",
                        e.head.short(),
                        e.seq,
                        author.short()
                    ))
                })?;
            if m.seq != e.seq {
                return Err(Error::BadPoint(format!(
                    "op {} of device {} is number {}, not {}",
                    e.head.short(),
                    author.short(),
                    m.seq,
                    e.seq
                )));
            }
            for other in vv.heads(author) {
                if other != e
                    && other.seq <= e.seq
                    && self.ancestor(author, &e.head, e.seq, other.seq)?.id == other.head
                {
                    return Err(Error::BadPoint(format!(
                        "the point names op {} of device {} and a later op on its branch",
                        other.seq,
                        author.short()
                    )));
                }
            }
            let past = self.causal_past(author, e.seq, &e.head)?;
            for (a, pe) in past.iter() {
                if !self.includes(vv, a, pe.seq, &pe.head)? {
                    return Err(Error::BadPoint(format!(
                        "the point is not causally closed: it needs op {} of device {}",
                        pe.seq,
                        a.short()
                    )));
                }
            }
        }
        Ok(())
    }
}

fn nonce(entropy: &mut dyn Entropy) -> [u8; NONCE_BYTES] {
    let mut n = [0; NONCE_BYTES];
    entropy.fill(&mut n);
    n
}

fn entropy_array(entropy: &mut dyn Entropy) -> [u8; 32] {
    let mut n = [0; 32];
    entropy.fill(&mut n);
    n
}

#[cfg(test)]
mod payload_memo_tests {
    use super::*;
    use crate::payload::{Action, Body};

    fn note(i: u8) -> Arc<Payload> {
        Arc::new(Payload::new(Action::Create {
            path: format!("n{i}.md"),
            mtime_ms: 0,
            body: Body::Text(format!("note {i}\n")),
        }))
    }

    #[test]
    fn keeps_what_it_opened_and_starts_over_when_full() {
        let mut memo = PayloadMemo::default();
        let sealed = |n: usize| vec![7u8; n];
        memo.insert(OpId([1; 32]), &sealed(1_000), &note(1));
        assert_eq!(memo.get(&OpId([1; 32])), Some(note(1)));
        assert_eq!(memo.get(&OpId([2; 32])), None);
        // The same op again does not count twice.
        memo.insert(OpId([1; 32]), &sealed(1_000), &note(1));
        assert_eq!(memo.bytes, 2_000);
        // An op too large to keep is opened each time.
        memo.insert(OpId([3; 32]), &sealed(PAYLOAD_MEMO_ONE_MAX + 1), &note(3));
        assert_eq!(memo.get(&OpId([3; 32])), None);
        // Filling it up starts it over with the newest op alone.
        let per = PAYLOAD_MEMO_ONE_MAX;
        let fits = (PAYLOAD_MEMO_BYTES - 2_000) / (2 * per);
        for i in 0..fits {
            let mut id = [9; 32];
            id[..8].copy_from_slice(&(i as u64).to_le_bytes());
            memo.insert(OpId(id), &sealed(per), &note(9));
        }
        assert_eq!(memo.opened.len(), fits + 1);
        memo.insert(OpId([4; 32]), &sealed(per), &note(4));
        assert_eq!(memo.opened.len(), 1);
        assert_eq!(memo.bytes, 2 * per);
        assert_eq!(memo.get(&OpId([4; 32])), Some(note(4)));
        assert_eq!(memo.get(&OpId([1; 32])), None);
    }

    #[test]
    fn vouches_only_for_the_very_bytes_it_kept() {
        let mut memo = PayloadMemo::default();
        let id = OpId([1; 32]);
        memo.insert(id, b"sealed op", &note(1));
        assert!(matches!(memo.compare(&id, b"sealed op"), Kept::Same));
        assert!(matches!(memo.compare(&id, b"sealed oq"), Kept::Other));
        assert!(matches!(memo.compare(&id, b"sealed o"), Kept::Other));
        assert!(matches!(
            memo.compare(&OpId([2; 32]), b"sealed op"),
            Kept::None
        ));
    }
}
