//! What forks mean for replay (DESIGN §3).
//!
//! Two ops with the same (author, seq) fork the author's chain. Both are
//! kept. Within a set of ops, an op of a forked author at or after the
//! point where its branches part is *disputed*: it takes effect only if it
//! is in the causal past of an op by an author that has not forked in the
//! set. Such an op vouches for it: the branch a device saw and built on is
//! the branch that counts. The rest stays in history as evidence, with no
//! effect.
//!
//! Removals bar ops the same way (DESIGN §7). A removed device's ops after
//! a removal's cutoff have no effect, and neither do the ops of a device
//! whose every Member add was written by a device already past its own
//! cutoff. Removals themselves always count: concurrent mutual removals
//! both take effect.
//!
//! This is a function of the set alone, so every replica with the same ops
//! replays the same effects, whatever order the branches arrived in.

use std::collections::{BTreeMap, BTreeSet};

use crate::control::{Control, MemberAction};
use crate::error::{Error, Result};
use crate::id::{DeviceId, OpId};
use crate::journal::Journal;
use crate::membership::ControlOp;
use crate::store::Store;
use crate::vv::VersionVector;

/// The forks within one set of ops, and the disputed ops that take effect.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Disputes {
    /// Authors forked within the set: the lowest seq where their branches
    /// in the set differ.
    pub forked: BTreeMap<DeviceId, u64>,
    /// Forked authors' ops in the causal past of an op by an author that
    /// has not forked (the set's ops of unforked authors vouch for them).
    pub vouched: VersionVector,
    /// Removed devices, with each removal's cutoff: the device's op at
    /// (seq, id), or (0, zero) for none. Its ops keep their effect only up
    /// to every cutoff.
    pub cutoffs: BTreeMap<DeviceId, Vec<(u64, OpId)>>,
    /// Devices added only by ops that themselves have no effect.
    pub unseated: BTreeSet<DeviceId>,
}

/// Why an op of a set has no effect, whatever its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bar {
    /// On a forked chain's branch nothing vouches for.
    Unvouched,
    /// After its author's removal cutoff.
    Removed,
    /// By a device whose adds have no effect.
    Unseated,
}

impl Bar {
    pub fn reason(self) -> &'static str {
        match self {
            Bar::Unvouched => {
                "its device's chain forked, and no op of an unforked device builds on this branch"
            }
            Bar::Removed => "its device was removed, and this op is after the removal's cutoff",
            Bar::Unseated => "its device was added by a device already removed at the time",
        }
    }
}

impl Disputes {
    /// No author forked or was removed within the set: every op may take
    /// effect.
    pub fn is_empty(&self) -> bool {
        self.forked.is_empty() && self.cutoffs.is_empty() && self.unseated.is_empty()
    }

    /// The removals' part alone (cutoffs and unseated devices), encoded:
    /// what a checkpoint's state depends on besides its own ops.
    pub fn removal_bytes(&self) -> Vec<u8> {
        Disputes {
            forked: BTreeMap::new(),
            vouched: VersionVector::new(),
            cutoffs: self.cutoffs.clone(),
            unseated: self.unseated.clone(),
        }
        .to_bytes()
    }

    /// `forked` count u32 LE, then (author ‖ seq LE) each, then `vouched`
    /// length u32 LE and bytes, then `cutoffs` count u32 LE and (device ‖
    /// seq LE ‖ op) each, then `unseated` devices.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = (self.forked.len() as u32).to_le_bytes().to_vec();
        for (a, seq) in &self.forked {
            b.extend_from_slice(&a.0);
            b.extend_from_slice(&seq.to_le_bytes());
        }
        let vouched = self.vouched.to_bytes();
        b.extend_from_slice(&(vouched.len() as u32).to_le_bytes());
        b.extend_from_slice(&vouched);
        let cuts: Vec<_> = self
            .cutoffs
            .iter()
            .flat_map(|(d, cs)| cs.iter().map(move |c| (d, c)))
            .collect();
        b.extend_from_slice(&(cuts.len() as u32).to_le_bytes());
        for (d, (seq, id)) in cuts {
            b.extend_from_slice(&d.0);
            b.extend_from_slice(&seq.to_le_bytes());
            b.extend_from_slice(&id.0);
        }
        for d in &self.unseated {
            b.extend_from_slice(&d.0);
        }
        b
    }

    pub fn from_bytes(b: &[u8]) -> Result<Disputes> {
        let bad = || Error::Corrupt("fork record does not decode".into());
        let mut at = 0;
        let mut take = |n: usize| -> Result<&[u8]> {
            let s = b.get(at..at + n).ok_or_else(bad)?;
            at += n;
            Ok(s)
        };
        let u32_at = |s: &[u8]| u32::from_le_bytes(s.try_into().expect("4 bytes")) as usize;
        let mut d = Disputes::default();
        for _ in 0..u32_at(take(4)?) {
            let c = take(40)?;
            d.forked.insert(
                DeviceId::from_slice(&c[..32]).expect("32 bytes"),
                u64::from_le_bytes(c[32..].try_into().expect("8 bytes")),
            );
        }
        let n = u32_at(take(4)?);
        d.vouched = VersionVector::from_bytes(take(n)?)?;
        for _ in 0..u32_at(take(4)?) {
            let c = take(72)?;
            d.cutoffs
                .entry(DeviceId::from_slice(&c[..32]).expect("32 bytes"))
                .or_default()
                .push((
                    u64::from_le_bytes(c[32..40].try_into().expect("8 bytes")),
                    OpId::from_slice(&c[40..]).expect("32 bytes"),
                ));
        }
        let rest = &b[at..];
        if !rest.len().is_multiple_of(32) {
            return Err(bad());
        }
        d.unseated = rest
            .chunks_exact(32)
            .map(|c| DeviceId::from_slice(c).expect("32 bytes"))
            .collect();
        Ok(d)
    }
}

impl<S: Store> Journal<S> {
    /// The forks and removals within the causally closed set `set`.
    pub fn disputes(&self, set: &VersionVector) -> Result<Disputes> {
        let mut d = Disputes::default();
        self.forks_in(set, &mut d)?;
        self.removals_in(set, &mut d)?;
        Ok(d)
    }

    fn forks_in(&self, set: &VersionVector, d: &mut Disputes) -> Result<()> {
        if !set.has_forks() {
            return Ok(());
        }
        for author in set.authors() {
            let heads = set.heads(author);
            for (i, x) in heads.iter().enumerate() {
                for y in &heads[i + 1..] {
                    let split = self.split_seq(author, (x.seq, &x.head), (y.seq, &y.head))?;
                    let f = d.forked.entry(*author).or_insert(split);
                    *f = (*f).min(split);
                }
            }
        }
        for author in set.authors() {
            if d.forked.contains_key(author) {
                continue;
            }
            let top = set.get(author).expect("named authors have an entry");
            let mut past = self.causal_past(author, top.seq, &top.head)?;
            self.add_to(&mut past, author, top.seq, &top.head)?;
            for (a, e) in past.iter() {
                if d.forked.contains_key(a) {
                    self.add_to(&mut d.vouched, a, e.seq, &e.head)?;
                }
            }
        }
        Ok(())
    }

    /// Cutoffs of the removals in `set`, then the devices whose every add
    /// is barred (an add by such a device is barred too).
    fn removals_in(&self, set: &VersionVector, d: &mut Disputes) -> Result<()> {
        let in_set = |c: &ControlOp| self.includes(set, &c.author, c.seq, &c.id);
        let mut adds = Vec::new();
        for c in self.controls() {
            let Control::Member(m) = &c.control else {
                continue;
            };
            if !in_set(c)? {
                continue;
            }
            match m.action {
                MemberAction::Remove => {
                    let cut = if m.cutoff.is_zero() {
                        (0, OpId::ZERO)
                    } else {
                        let meta = self.op_meta(&m.cutoff)?.ok_or_else(|| {
                            Error::Corrupt(format!("cutoff {} is not held", m.cutoff.short()))
                        })?;
                        (meta.seq, meta.id)
                    };
                    d.cutoffs.entry(m.device).or_default().push(cut);
                }
                MemberAction::Add => adds.push((m.device, c)),
            }
        }
        if d.cutoffs.is_empty() {
            return Ok(());
        }
        for cs in d.cutoffs.values_mut() {
            cs.sort();
            cs.dedup();
        }
        // Seat devices in causal order: an add counts if its author is
        // seated and the add is within its author's cutoffs.
        adds.sort_by_key(|(_, c)| c.order_key());
        let mut seated: BTreeSet<DeviceId> = BTreeSet::from([self.genesis_author()]);
        for (device, c) in &adds {
            if seated.contains(&c.author) && !self.cut_off(d, &c.author, c.seq, &c.id)? {
                seated.insert(*device);
            }
        }
        d.unseated = adds
            .iter()
            .map(|(device, _)| *device)
            .filter(|device| !seated.contains(device))
            .collect();
        Ok(())
    }

    /// Whether `author`'s op at (`seq`, `id`) is past one of its cutoffs.
    fn cut_off(&self, d: &Disputes, author: &DeviceId, seq: u64, id: &OpId) -> Result<bool> {
        let Some(cuts) = d.cutoffs.get(author) else {
            return Ok(false);
        };
        // Whether the set forked the author, not the journal: a verdict is a
        // function of the set's disputes alone (`first_bar_change` relies on
        // it). For an op in the set the two agree: with one branch in the
        // set, the op below a cutoff is its ancestor.
        let forked = d.forked.contains_key(author);
        for (cseq, cid) in cuts {
            if seq > *cseq || (forked && self.ancestor(author, cid, *cseq, seq)?.id != *id) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The earliest admitted op, in replay order, that is barred
    /// differently under `old` and `new` (`None`: every op keeps its
    /// verdict). A state replayed with `old` up to an op sorting before it
    /// is what a replay with `new` gives there too: bars are the only way
    /// forks and removals reach replay.
    pub fn first_bar_change(
        &self,
        old: &Disputes,
        new: &Disputes,
    ) -> Result<Option<crate::order::OrderKey>> {
        if old == new {
            return Ok(None);
        }
        // A verdict on an author's op reads only that author's entries.
        let mut authors: BTreeMap<DeviceId, u64> = BTreeMap::new();
        let mut note = |a: &DeviceId, from: u64| {
            let e = authors.entry(*a).or_insert(from);
            *e = (*e).min(from);
        };
        for a in old.forked.keys().chain(new.forked.keys()) {
            if old.forked.get(a) != new.forked.get(a)
                || old.vouched.heads(a) != new.vouched.heads(a)
            {
                let f = [old.forked.get(a), new.forked.get(a)]
                    .into_iter()
                    .flatten()
                    .min()
                    .copied()
                    .unwrap_or(1);
                note(a, f);
            }
        }
        for a in old.cutoffs.keys().chain(new.cutoffs.keys()) {
            if old.cutoffs.get(a) != new.cutoffs.get(a) {
                note(a, 1);
            }
        }
        for a in old.unseated.symmetric_difference(&new.unseated) {
            note(a, 1);
        }
        let removals: BTreeSet<OpId> = self
            .controls()
            .iter()
            .filter(
                |c| matches!(&c.control, Control::Member(m) if m.action == MemberAction::Remove),
            )
            .map(|c| c.id)
            .collect();
        let mut first: Option<crate::order::OrderKey> = None;
        for (author, from) in authors {
            for m in self.author_ops_from(&author, from)? {
                let key = m.order_key();
                if first.is_some_and(|f| key >= f) {
                    continue;
                }
                let is_removal = removals.contains(&m.id);
                if self.barred(old, &author, m.seq, &m.id, is_removal)?
                    != self.barred(new, &author, m.seq, &m.id, is_removal)?
                {
                    first = Some(key);
                }
            }
        }
        Ok(first)
    }

    /// Why op `id` of `author` at `seq` has no effect in the set of `d`,
    /// if it is barred. A removal is never barred.
    pub fn barred(
        &self,
        d: &Disputes,
        author: &DeviceId,
        seq: u64,
        id: &OpId,
        is_removal: bool,
    ) -> Result<Option<Bar>> {
        if let Some(f) = d.forked.get(author)
            && seq >= *f
            && !self.includes(&d.vouched, author, seq, id)?
        {
            return Ok(Some(Bar::Unvouched));
        }
        if is_removal {
            return Ok(None);
        }
        if d.unseated.contains(author) {
            return Ok(Some(Bar::Unseated));
        }
        if self.cut_off(d, author, seq, id)? {
            return Ok(Some(Bar::Removed));
        }
        Ok(None)
    }

    /// The lowest seq at which the branches ending at `a` and `b` differ.
    fn split_seq(&self, author: &DeviceId, a: (u64, &OpId), b: (u64, &OpId)) -> Result<u64> {
        let top = a.0.min(b.0);
        let differ = |s: u64| -> Result<bool> {
            Ok(self.ancestor(author, a.1, a.0, s)?.id != self.ancestor(author, b.1, b.0, s)?.id)
        };
        if !differ(top)? {
            // One branch continues the other: they part just above it.
            return Ok(top + 1);
        }
        let (mut lo, mut hi) = (1, top);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if differ(mid)? {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Ok(lo)
    }
}
