//! Forks (DESIGN §3): a device whose journal was restored from an older
//! copy writes a second op at a seq it had used. Every replica keeps both
//! branches, and agrees on what each op does: a forked chain's ops take
//! effect where an op of an unforked device builds on them, whatever order
//! the branches arrive in.

use vellum_journal::replay::VaultState;
use vellum_snapshots::TimeMachine;

mod common;
use common::{Devices, comparable, device, sync_into};

const A: usize = 0;
const B: usize = 1;

/// Every replica holds every op; all must agree, with replay from scratch.
fn converge(d: &mut Devices) -> VaultState {
    d.sync_all();
    let head = d.head(0);
    for j in 0..d.journals.len() {
        assert_eq!(comparable(&d.head(j)), comparable(&head), "replica {j}");
        let scratch = TimeMachine::replay_from_scratch(&d.journals[j]).unwrap();
        assert_eq!(
            comparable(&scratch),
            comparable(&head),
            "replica {j} from scratch"
        );
    }
    head
}

#[test]
fn a_restored_copy_forks_the_chain_and_only_the_branch_others_built_on_counts() {
    let mut d = Devices::new(2, 21);
    let note = d.create(A, "note.md", "one\n");
    d.sync_all();
    let old = d.backup(A);
    // The device goes on; b builds on what it wrote.
    d.edit(A, note, "one\ntwo\n");
    d.sync(A, B);
    d.edit(B, note, "one\ntwo\nthree\n");
    // The restored copy writes at the same seqs: a fork.
    d.edit(old, note, "one\nrestored\n");
    let head = converge(&mut d);
    let a = device(A);
    assert!(d.journals[B].forks().contains_key(&a));
    assert_eq!(d.journals[B].admitted().heads(&a).len(), 2, "both branches");
    // b built on the first branch: it counts. Nothing built on the other.
    assert_eq!(d.text(B, note).unwrap(), "one\ntwo\nthree\n");
    // The point of the forked set round-trips and checks out.
    let vv = d.journals[B].admitted().clone();
    let parsed = vellum_journal::VersionVector::parse_point(&vv.to_point_string()).unwrap();
    d.journals[B].check_vv(&parsed).unwrap();
    assert_eq!(
        d.journals[B].count_ops(&vv).unwrap(),
        d.journals[B].op_count()
    );
    assert_eq!(head.ops, d.journals[B].op_count());
}

#[test]
fn a_new_identity_building_on_the_restored_branch_makes_it_count_too() {
    for b_first in [true, false] {
        let mut d = Devices::new(2, 22);
        let note = d.create(A, "note.md", "one\n");
        d.sync_all();
        let old = d.backup(A);
        d.edit(A, note, "one\ntwo\n");
        d.sync(A, B);
        d.edit(B, note, "one\ntwo\nthree\n");
        // The restored copy wrote a line before it learnt of the fork, then
        // retires its key: its last op adds a new identity, which goes on.
        d.edit(old, note, "zero\none\n");
        let renewed = d.add_device(old, 5);
        d.edit(renewed, note, "zero\none\nfour\n");
        if b_first {
            sync_into_pair(&mut d, B, renewed);
        } else {
            sync_into_pair(&mut d, renewed, B);
        }
        converge(&mut d);
        // Both branches count, merged: nothing anyone wrote is lost.
        assert_eq!(d.text(B, note).unwrap(), "zero\none\ntwo\nthree\nfour\n");
    }
}

fn sync_into_pair(d: &mut Devices, from: usize, to: usize) {
    let (a, b) = if from < to {
        let (x, y) = d.journals.split_at_mut(to);
        (&x[from], &mut y[0])
    } else {
        let (x, y) = d.journals.split_at_mut(from);
        (&y[0], &mut x[to])
    };
    sync_into(a, b);
}

/// A replica rewinds for a fork only as far as the first op whose verdict
/// changed: the ops before it keep their effect, and the head it reaches
/// is the one a replay from scratch gives.
#[test]
fn a_change_of_verdict_rewinds_to_the_first_op_it_touches() {
    let mut d = Devices::new(2, 24);
    let note = d.create(A, "note.md", "one\n");
    let other = d.create(B, "other.md", "b\n");
    d.sync_all();
    let old = d.backup(A);
    let x = d.edit(A, note, "one\ntwo\n").unwrap();
    let y = d.edit(old, note, "one\nrestored\n").unwrap();
    d.sync(A, B);
    d.sync(old, B);
    let j = &d.journals[B];
    assert!(j.forks().contains_key(&device(A)));
    // Nothing B wrote builds on either branch yet: both are barred.
    let before = j.disputes(j.admitted()).unwrap();
    assert_eq!(j.first_bar_change(&before, &before).unwrap(), None);
    // B's next op names both heads: both branches now count.
    d.edit(B, other, "b\nb2\n");
    let j = &d.journals[B];
    let after = j.disputes(j.admitted()).unwrap();
    let key = |id| j.op_meta(&id).unwrap().unwrap().order_key();
    let first = key(x).min(key(y));
    assert_eq!(j.first_bar_change(&before, &after).unwrap(), Some(first));
    assert_eq!(j.first_bar_change(&after, &before).unwrap(), Some(first));
    let head = converge(&mut d);
    assert_eq!(head.open_conflicts, 0);
}
