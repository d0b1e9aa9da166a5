//! Membership at admission (DESIGN §3): the genesis author is the first full
//! member; another device may write once a Member add of it is in the
//! causal past of its op. Every replica decides the same, whatever the
//! arrival order.

use vellum_journal::entropy::SeededEntropy;
use vellum_journal::envelope::{Envelope, Header, OpKind};
use vellum_journal::keys::{EpochKey, Keyring, SigningKey, device_id};
use vellum_journal::payload::{Action, Body, MERGE_VERSION, Payload};
use vellum_journal::store::{Durability, MemStore};
use vellum_journal::{Admission, Error, Journal, OpId, VaultId};
use vellum_snapshots::TimeMachine;

const T0: u64 = 1_800_000_000_000;
const KEY: [u8; 32] = [42; 32];

fn signer(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn vault(e: &mut SeededEntropy) -> Journal<MemStore> {
    Journal::create(
        MemStore::new(),
        VaultId([7; 16]),
        &signer(1),
        Keyring::new(EpochKey(KEY)),
        e,
        T0,
        MERGE_VERSION,
    )
    .unwrap()
}

/// A replica holding every op of `from`, admitted in total order.
fn replica(from: &Journal<MemStore>) -> Journal<MemStore> {
    let mut to = from.empty_replica(MemStore::new()).unwrap();
    let mut ops = Vec::new();
    from.for_each_op_in_order(None, &mut |_, _, env| {
        ops.push(env.bytes().to_vec());
        Ok(std::ops::ControlFlow::Continue(()))
    })
    .unwrap();
    for v in to.admit_batch(ops, T0 + 10_000).unwrap() {
        assert!(matches!(v, Ok(Admission::Admitted(_))), "{v:?}");
    }
    to
}

fn note(path: &str) -> Payload {
    Payload::new(Action::Create {
        path: path.into(),
        mtime_ms: 0,
        body: Body::Text("hello\n".into()),
    })
}

fn add(j: &mut Journal<MemStore>, e: &mut SeededEntropy, by: u8, device: u8) -> OpId {
    j.write(
        &signer(by),
        vec![vellum_journal::Write::Add {
            device: device_id(&signer(device)),
            role: vellum_journal::control::Role::Full,
            name: format!("device {device}"),
        }],
        e,
        T0 + 1_000,
    )
    .map(|ids| ids[0])
    .unwrap()
}

/// An op of `by` built by hand: seq 1, with `deps`, so tests can leave an
/// add out of its causal past.
fn first_op(j: &Journal<MemStore>, by: u8, deps: Vec<OpId>, lamport: u64) -> Vec<u8> {
    let header = Header {
        vault: j.vault(),
        author: device_id(&signer(by)),
        seq: 1,
        prev: OpId::ZERO,
        lamport,
        hlc: (T0 + 5_000) << 16,
        deps,
        key_epoch: j.genesis(),
    };
    Envelope::seal(
        OpKind::Content,
        &header,
        &[],
        &note("x.md").encode(),
        &EpochKey(KEY),
        [3; 24],
        &signer(by),
    )
    .unwrap()
    .bytes()
    .to_vec()
}

/// Refused as a non-member: by admission (an op from outside), or before
/// signing (a local write).
fn rejected_as_non_member<T: std::fmt::Debug>(r: Result<T, Error>) {
    match r {
        Err(Error::Rejected { reason, .. } | Error::Usage(reason)) => {
            assert!(reason.contains("not a member"), "{reason}")
        }
        other => panic!("expected a membership rejection, got {other:?}"),
    }
}

#[test]
fn a_device_that_was_never_added_cannot_write() {
    let mut e = SeededEntropy::new(1);
    let mut a = vault(&mut e);
    let mut b = replica(&a);
    rejected_as_non_member(b.append(
        &signer(2),
        vec![note("b.md")],
        &mut e,
        T0 + 2_000,
        Durability::Durable,
    ));
    // Nor can it slip an op into the genesis author's journal.
    let op = first_op(&a, 2, vec![a.genesis()], 2);
    rejected_as_non_member(a.admit(op, T0 + 10_000));
    assert_eq!(a.op_count(), 1);
}

#[test]
fn an_added_device_writes_and_every_replica_admits_it() {
    let mut e = SeededEntropy::new(2);
    let mut a = vault(&mut e);
    add(&mut a, &mut e, 1, 2);
    let mut b = replica(&a);
    let ids = b
        .append(
            &signer(2),
            vec![note("b.md")],
            &mut e,
            T0 + 2_000,
            Durability::Durable,
        )
        .unwrap();
    // B's op names A's head, the add, as a dep; A admits it.
    let env = b.load(&ids[0]).unwrap().unwrap();
    assert_eq!(env.header().deps.len(), 1);
    assert!(matches!(
        a.admit(env.bytes().to_vec(), T0 + 10_000),
        Ok(Admission::Admitted(_))
    ));
    // Replay gives the same state on both, and names the new device.
    TimeMachine::catch_up(&a).unwrap();
    TimeMachine::catch_up(&b).unwrap();
    let (ha, hb) = (
        TimeMachine::load_head(&a).unwrap(),
        TimeMachine::load_head(&b).unwrap(),
    );
    assert_eq!(ha.applied_vv(), hb.applied_vv());
    assert!(ha.file_at("b.md").is_some() && hb.file_at("b.md").is_some());
    assert_eq!(
        ha.device_names
            .get(&device_id(&signer(2)))
            .map(String::as_str),
        Some("device 2")
    );
    let scratch = TimeMachine::replay_from_scratch(&a).unwrap();
    assert_eq!(scratch.applied_vv(), ha.applied_vv());
    assert_eq!(scratch.device_names, ha.device_names);
}

#[test]
fn an_add_outside_the_ops_causal_past_does_not_count() {
    let mut e = SeededEntropy::new(3);
    let mut a = vault(&mut e);
    add(&mut a, &mut e, 1, 2);
    // B's op depends on the genesis only: the add is not in its past.
    let op = first_op(&a, 2, vec![a.genesis()], 2);
    rejected_as_non_member(a.admit(op, T0 + 10_000));
}

#[test]
fn only_members_add_members() {
    let mut e = SeededEntropy::new(4);
    let a = vault(&mut e);
    let mut c = replica(&a);
    // Device 3 was never added, so its add of device 4 is refused.
    let r = c
        .write(
            &signer(3),
            vec![vellum_journal::Write::Add {
                device: device_id(&signer(4)),
                role: vellum_journal::control::Role::Full,
                name: "device 4".into(),
            }],
            &mut e,
            T0 + 1_000,
        )
        .map(|ids| ids[0]);
    rejected_as_non_member(r);
}

#[test]
fn a_new_members_op_waits_for_its_add_then_is_admitted() {
    let mut e = SeededEntropy::new(5);
    let mut a = vault(&mut e);
    let mut fresh = replica(&a);
    let add_id = add(&mut a, &mut e, 1, 2);
    let mut b = replica(&a);
    let ids = b
        .append(
            &signer(2),
            vec![note("b.md")],
            &mut e,
            T0 + 2_000,
            Durability::Durable,
        )
        .unwrap();
    // A replica that has not seen the add yet: B's op waits for it.
    let b_op = b.load(&ids[0]).unwrap().unwrap().bytes().to_vec();
    assert!(matches!(
        fresh.admit(b_op, T0 + 10_000),
        Ok(Admission::Pending(..))
    ));
    let add_op = a.load(&add_id).unwrap().unwrap().bytes().to_vec();
    assert!(matches!(
        fresh.admit(add_op, T0 + 10_000),
        Ok(Admission::Admitted(_))
    ));
    assert_eq!(fresh.pending_count().unwrap(), 0);
    assert_eq!(fresh.admitted(), b.admitted());
}
