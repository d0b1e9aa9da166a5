//! Membership and key epochs (DESIGN §7), from the cleartext control fields
//! of admitted ops.
//!
//! Everything here is a function of a set of ops: admission asks it of an
//! op's causal past, replay of the set it replays. So every replica, blind
//! or full, decides the same whatever the arrival order.
//!
//! - A device is a member of a set if it is the genesis author or a Member
//!   add of it is in the set; its role is the strongest any add gives it.
//! - A Member remove in the set removes the device for good: an op whose
//!   causal past holds the removal is not admitted, and replay gives the
//!   device's ops after the removal's cutoff no effect (`forks::Disputes`).
//! - An epoch is the genesis op or a KeyRotate. It is *clean* in a set if
//!   every removal in the set is in its causal past: its key was never
//!   sealed to a removed device. Content is written only under a clean
//!   epoch, so a removed device cannot read what is written after it has
//!   been removed.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::{Bound, ControlFlow};

use crate::control::{Control, MemberAction, Role};
use crate::envelope::Header;
use crate::error::{Error, Result};
use crate::id::{DeviceId, OpId};
use crate::journal::{Journal, Staged};
use crate::keys::{EpochKey, key_check, open_back, x25519_of};
use crate::order::OrderKey;
use crate::store::{Ks, Store};
use crate::vv::VersionVector;

/// An admitted control op, as membership and keys need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlOp {
    pub id: OpId,
    pub author: DeviceId,
    pub seq: u64,
    pub lamport: u64,
    /// The epoch whose key seals the op's payload (and, for a Member add,
    /// the key sealed to the new member).
    pub key_epoch: OpId,
    pub control: Control,
}

impl ControlOp {
    pub fn order_key(&self) -> OrderKey {
        OrderKey {
            lamport: self.lamport,
            author: self.author,
            id: self.id,
        }
    }

    /// `Ks::Control` record: lamport (LE) ‖ key_epoch ‖ control fields.
    pub(crate) fn to_record(&self) -> Vec<u8> {
        let mut v = self.lamport.to_le_bytes().to_vec();
        v.extend_from_slice(&self.key_epoch.0);
        v.extend_from_slice(&self.control.encode());
        v
    }

    pub(crate) fn from_record(key: &[u8], v: &[u8]) -> Result<ControlOp> {
        let bad = || Error::Corrupt("a control index record is damaged".into());
        if key.len() != 72 || v.len() < 40 {
            return Err(bad());
        }
        Ok(ControlOp {
            author: DeviceId::from_slice(&key[..32]).ok_or_else(bad)?,
            seq: u64::from_be_bytes(key[32..40].try_into().expect("8 bytes")),
            id: OpId::from_slice(&key[40..]).ok_or_else(bad)?,
            lamport: u64::from_le_bytes(v[..8].try_into().expect("8 bytes")),
            key_epoch: OpId::from_slice(&v[8..40]).ok_or_else(bad)?,
            control: Control::parse(&v[40..])?,
        })
    }
}

/// Who belongs to a set of ops.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Members {
    /// Every device ever added (and the genesis author), with its role.
    pub roles: BTreeMap<DeviceId, Role>,
    /// Removed devices, with the cutoff of each removal of them.
    pub removed: BTreeMap<DeviceId, Vec<OpId>>,
}

impl Members {
    /// The role of a member that has not been removed.
    pub fn active(&self, device: &DeviceId) -> Option<Role> {
        if self.removed.contains_key(device) {
            return None;
        }
        self.roles.get(device).copied()
    }

    /// Members that hold the vault keys and have not been removed.
    pub fn readers(&self) -> impl Iterator<Item = &DeviceId> {
        let leak = crate::mutants::active("seal_to_removed");
        self.roles
            .iter()
            .filter(move |(d, r)| r.reads() && (leak || !self.removed.contains_key(*d)))
            .map(|(d, _)| d)
    }
}

/// The strongest of two roles a device was added with.
fn stronger(a: Role, b: Role) -> Role {
    let rank = |r: Role| match r {
        Role::Full => 2,
        Role::Recovery => 1,
        Role::Blind => 0,
    };
    if rank(b) > rank(a) { b } else { a }
}

impl<S: Store> Journal<S> {
    /// Loads the control index (at open).
    pub(crate) fn load_controls(store: &S) -> Result<Vec<ControlOp>> {
        let mut out = Vec::new();
        let mut failed = None;
        store.scan(
            Ks::Control,
            (Bound::Unbounded, Bound::Unbounded),
            false,
            &mut |k, v| match ControlOp::from_record(k, v) {
                Ok(c) => {
                    out.push(c);
                    ControlFlow::Continue(())
                }
                Err(e) => {
                    failed = Some(e);
                    ControlFlow::Break(())
                }
            },
        )?;
        match failed {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// Every admitted control op (staged ones included).
    pub(crate) fn controls_with<'a>(
        &'a self,
        staged: &'a Staged,
    ) -> impl Iterator<Item = &'a ControlOp> + 'a {
        self.controls.iter().chain(staged.controls.iter())
    }

    /// Membership and key checks of admission (DESIGN §3, §7), against
    /// the op's causal past: `others` is the part by other authors. Returns
    /// why the op is refused, if it is.
    pub(crate) fn refuse_membership(
        &self,
        h: &Header,
        id: OpId,
        control: Option<&Control>,
        others: &VersionVector,
        staged: &Staged,
    ) -> Result<Option<String>> {
        let refuse = |why: &str| Ok(Some(why.to_string()));
        if h.key_epoch.is_zero() {
            if id != self.genesis() || h.seq != 1 || !h.deps.is_empty() || control.is_some() {
                return refuse("a second genesis op");
            }
            return Ok(None);
        }
        let mut past = others.clone();
        if h.seq > 1 {
            self.add_with(&mut past, &h.author, h.seq - 1, &h.prev, staged)?;
        }
        let members = self.members_with(&past, staged)?;
        let removed_here = crate::mutants::active("removal_local_view")
            && self
                .members_with(&staged.admitted, staged)?
                .removed
                .contains_key(&h.author);
        if members.removed.contains_key(&h.author) || removed_here {
            return refuse("author was removed from this vault in the op's causal past");
        }
        let Some(role) = members.roles.get(&h.author).copied() else {
            return refuse("author is not a member of this vault in the op's causal past");
        };
        match control {
            None if !role.writes_notes() => {
                return Ok(Some(format!("a {role:?} member writes no notes")));
            }
            Some(_) if !role.manages() => {
                return Ok(Some(format!(
                    "a {role:?} member cannot change membership or keys"
                )));
            }
            _ => {}
        }
        let epochs = self.epochs_with(&past, staged)?;
        if !epochs.iter().any(|(_, e)| *e == h.key_epoch) {
            return refuse("key epoch is not in the op's causal past");
        }
        // A removal and the rotation after it may use an epoch the removed
        // device holds; everything else needs one it does not.
        let exempt = match control {
            Some(Control::KeyRotate(_)) => true,
            Some(Control::Member(m)) => m.action == MemberAction::Remove,
            _ => false,
        };
        if !exempt && !self.epoch_clean_with(&h.key_epoch, &past, staged)? {
            return refuse("key epoch was sealed to a device removed in the op's causal past");
        }
        let reader = |d: &DeviceId| {
            members.active(d).is_some_and(Role::reads)
                || (crate::mutants::active("seal_to_removed") && members.roles.contains_key(d))
        };
        match control {
            None => {}
            Some(Control::Member(m)) => {
                if m.device == h.author {
                    return refuse("a device cannot add or remove itself");
                }
                if Some(m.x25519) != x25519_of(&m.device) {
                    return refuse("a member's x25519 key is not its device key's");
                }
                match m.action {
                    MemberAction::Add => {
                        if members.removed.contains_key(&m.device) {
                            return refuse("a removed device cannot be added again");
                        }
                        if m.role.reads() == m.seal.is_empty() {
                            return refuse(
                                "an add seals the epoch key to a member that reads, and only to one",
                            );
                        }
                    }
                    MemberAction::Remove => {
                        if !members.roles.contains_key(&m.device) {
                            return refuse("removes a device that is not a member");
                        }
                        if !m.seal.is_empty() {
                            return refuse("a removal seals no key");
                        }
                        if !m.cutoff.is_zero() {
                            let ok = match self.meta_with(&m.cutoff, staged)? {
                                Some(c) => {
                                    c.author == m.device
                                        && self
                                            .includes_with(&past, &c.author, c.seq, &c.id, staged)?
                                }
                                None => false,
                            };
                            if !ok {
                                return refuse(
                                    "the cutoff is not an op of the removed device in the op's causal past",
                                );
                            }
                        }
                    }
                }
            }
            Some(Control::KeyRotate(r)) if r.sealed.iter().any(|s| !reader(&s.device)) => {
                return refuse("a key is sealed to a device that is not a reading member");
            }
            Some(Control::KeyRotate(_)) => {}
            Some(Control::KeyShare(share)) => {
                if !epochs.iter().any(|(_, e)| *e == share.epoch) {
                    return refuse("shares an epoch that is not in the op's causal past");
                }
                if share.sealed.iter().any(|s| !reader(&s.device)) {
                    return refuse("a key is sealed to a device that is not a reading member");
                }
            }
        }
        Ok(None)
    }

    /// Whether any admitted op removes a member.
    pub fn has_removals(&self) -> bool {
        self.controls
            .iter()
            .any(|c| matches!(&c.control, Control::Member(m) if m.action == MemberAction::Remove))
    }

    /// Every admitted control op.
    pub fn controls(&self) -> &[ControlOp] {
        &self.controls
    }

    fn holds_op(&self, set: &VersionVector, c: &ControlOp, staged: &Staged) -> Result<bool> {
        self.includes_with(set, &c.author, c.seq, &c.id, staged)
    }

    /// Membership as the causally closed set `set` sees it.
    pub(crate) fn members_with(&self, set: &VersionVector, staged: &Staged) -> Result<Members> {
        let mut m = Members::default();
        m.roles.insert(self.genesis_author(), Role::Full);
        for c in self.controls_with(staged) {
            let Control::Member(mem) = &c.control else {
                continue;
            };
            if !self.holds_op(set, c, staged)? {
                continue;
            }
            match mem.action {
                MemberAction::Add => {
                    let r = m.roles.entry(mem.device).or_insert(mem.role);
                    *r = stronger(*r, mem.role);
                }
                MemberAction::Remove => m.removed.entry(mem.device).or_default().push(mem.cutoff),
            }
        }
        Ok(m)
    }

    /// Membership as the admitted set `set` sees it.
    pub fn members(&self, set: &VersionVector) -> Result<Members> {
        self.members_with(set, &self.staged_view())
    }

    /// The key epochs in `set`: the genesis op and every KeyRotate.
    pub(crate) fn epochs_with(
        &self,
        set: &VersionVector,
        staged: &Staged,
    ) -> Result<Vec<(OrderKey, OpId)>> {
        let mut out = Vec::new();
        if set.seq(&self.genesis_author()) >= 1 {
            out.push((
                OrderKey {
                    lamport: 1,
                    author: self.genesis_author(),
                    id: self.genesis(),
                },
                self.genesis(),
            ));
        }
        for c in self.controls_with(staged) {
            if matches!(c.control, Control::KeyRotate(_)) && self.holds_op(set, c, staged)? {
                out.push((c.order_key(), c.id));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Whether `epoch` is clean in `set`: every removal in `set` is in the
    /// causal past of the epoch's op.
    pub(crate) fn epoch_clean_with(
        &self,
        epoch: &OpId,
        set: &VersionVector,
        staged: &Staged,
    ) -> Result<bool> {
        let removals = self.member_removes_in(set, staged)?;
        if removals.is_empty() {
            return Ok(true);
        }
        if *epoch == self.genesis() {
            return Ok(false);
        }
        Ok(self
            .removed_outside_epoch_with(epoch, set, staged)?
            .is_some_and(|d| d.is_empty()))
    }

    /// The Member removes of `set`.
    fn member_removes_in<'a>(
        &'a self,
        set: &VersionVector,
        staged: &'a Staged,
    ) -> Result<Vec<&'a ControlOp>> {
        let mut out = Vec::new();
        for c in self.controls_with(staged) {
            if let Control::Member(m) = &c.control
                && m.action == MemberAction::Remove
                && self.holds_op(set, c, staged)?
            {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// Devices removed in `set` none of whose removals is in the causal past
    /// of `epoch`'s op (`None`: `epoch` is not a control op). One removal of
    /// a device in that past is enough for the epoch to be clean: the key
    /// was then sealed to the members without it. (A device whose own chain
    /// forked may hold a removal on each branch, and the other branch's can
    /// never be in its past: deps name other authors' ops only.)
    pub(crate) fn removed_outside_epoch_with(
        &self,
        epoch: &OpId,
        set: &VersionVector,
        staged: &Staged,
    ) -> Result<Option<Vec<DeviceId>>> {
        let Some(e) = self.controls_with(staged).find(|c| c.id == *epoch) else {
            return Ok(None);
        };
        let past = self.full_past_with(&e.author, e.seq, &e.id, staged)?;
        let mut covered = BTreeSet::new();
        let mut removed = BTreeSet::new();
        for c in self.member_removes_in(set, staged)? {
            let Control::Member(m) = &c.control else {
                continue;
            };
            removed.insert(m.device);
            if self.holds_op(&past, c, staged)? {
                covered.insert(m.device);
            }
        }
        Ok(Some(removed.difference(&covered).copied().collect()))
    }

    /// The admitted set as this device's next op sees it: every other
    /// author's heads, and of its own chain only the branch it writes on
    /// (the highest head, which `append` takes as `prev`). Another branch
    /// of its own chain (it forked) can never be in that op's past.
    fn own_view(&self, staged: &Staged) -> VersionVector {
        let set = &staged.admitted;
        let mut view = set.clone();
        for author in set.authors().filter(|a| self.keys().is_mine(a)) {
            let keep = set.get(author);
            for e in set.heads(author) {
                if Some(*e) != keep {
                    view.remove_head(author, e);
                }
            }
        }
        view
    }

    /// The epoch a new local op is written under: the newest epoch in its
    /// past whose key this device holds and that is clean in the whole
    /// admitted set (a removal the device knows of counts, even on a branch
    /// of its own chain the op cannot see).
    pub(crate) fn write_epoch_with(&self, staged: &Staged) -> Result<Option<OpId>> {
        let view = self.own_view(staged);
        for (_, e) in self.epochs_with(&view, staged)?.into_iter().rev() {
            if self.keys().get(&e).is_some()
                && self.epoch_clean_with(&e, &staged.admitted, staged)?
            {
                return Ok(Some(e));
            }
        }
        Ok(None)
    }

    /// The newest epoch in a new local op's past whose key this device
    /// holds, clean or not: a KeyRotate chains back to it.
    pub(crate) fn newest_held_epoch_with(&self, staged: &Staged) -> Result<Option<OpId>> {
        Ok(self
            .epochs_with(&self.own_view(staged), staged)?
            .into_iter()
            .rev()
            .map(|(_, e)| e)
            .find(|e| self.keys().get(e).is_some()))
    }

    /// Learns every epoch key sealed to this device's identities, and every
    /// key reachable from those through KeyRotate back-chains. A key is
    /// kept only if it matches its epoch (a KeyRotate's check, or the
    /// genesis op for the genesis epoch).
    pub(crate) fn learn_keys(&mut self) -> Result<()> {
        loop {
            let mut found: Vec<(OpId, EpochKey)> = Vec::new();
            for c in &self.controls {
                for (device, seal) in c.control.seals() {
                    let epoch = match &c.control {
                        Control::Member(_) => c.key_epoch,
                        Control::KeyRotate(_) => c.id,
                        Control::KeyShare(s) => s.epoch,
                    };
                    if self.keys().get(&epoch).is_some() || !self.keys().is_mine(&device) {
                        continue;
                    }
                    if let Some(k) = self.keys().open_sealed(&device, seal)
                        && self.key_matches(&epoch, &k)?
                    {
                        found.push((epoch, k));
                    }
                }
                if let Control::KeyRotate(r) = &c.control
                    && self.keys().get(&c.key_epoch).is_none()
                    && let Some(new) = self.keys().get(&c.id)
                    && let Some(k) = open_back(new, &r.back)
                    && self.key_matches(&c.key_epoch, &k)?
                {
                    found.push((c.key_epoch, k));
                }
            }
            if found.is_empty() {
                return self.settle_unread();
            }
            for (e, k) in found {
                self.keys_mut().insert(e, k);
            }
        }
    }

    /// Whether `key` is the key of `epoch`.
    fn key_matches(&self, epoch: &OpId, key: &EpochKey) -> Result<bool> {
        if *epoch == self.genesis() {
            let Some(g) = self.load(&self.genesis())? else {
                return Ok(false);
            };
            return Ok(g.open(key).is_ok());
        }
        Ok(self.controls.iter().any(|c| {
            c.id == *epoch
                && matches!(&c.control, Control::KeyRotate(r) if r.check == key_check(key))
        }))
    }

    /// Epochs some active reader of the admitted set cannot reach: for each
    /// epoch this device holds, the readers that have no seal of it or of
    /// a later epoch chaining back to it. A KeyShare fixes that.
    pub fn missing_seals(&self) -> Result<BTreeMap<OpId, Vec<DeviceId>>> {
        let staged = self.staged_view();
        let set = self.admitted();
        let members = self.members_with(set, &staged)?;
        let epochs = self.epochs_with(set, &staged)?;
        // What each epoch's key opens through its back-chain.
        let back: BTreeMap<OpId, OpId> = self
            .controls
            .iter()
            .filter(|c| matches!(c.control, Control::KeyRotate(_)))
            .map(|c| (c.id, c.key_epoch))
            .collect();
        let mut out: BTreeMap<OpId, Vec<DeviceId>> = BTreeMap::new();
        for reader in members.readers() {
            let mut reach: BTreeSet<OpId> = BTreeSet::new();
            if *reader == self.genesis_author() {
                reach.insert(self.genesis());
            }
            for c in &self.controls {
                for (device, _) in c.control.seals() {
                    if device == *reader {
                        reach.insert(match &c.control {
                            Control::Member(_) => c.key_epoch,
                            Control::KeyRotate(_) => c.id,
                            Control::KeyShare(s) => s.epoch,
                        });
                    }
                }
            }
            let mut todo: Vec<OpId> = reach.iter().copied().collect();
            while let Some(e) = todo.pop() {
                if let Some(p) = back.get(&e)
                    && reach.insert(*p)
                {
                    todo.push(*p);
                }
            }
            for (_, e) in &epochs {
                if !reach.contains(e) && self.keys().get(e).is_some() {
                    out.entry(*e).or_default().push(*reader);
                }
            }
        }
        Ok(out)
    }
}
