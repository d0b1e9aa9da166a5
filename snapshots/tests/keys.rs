//! Membership and keys in replay (DESIGN §7): removals with cutoffs,
//! concurrent mutual removals, roles, key rotation with a back-chain,
//! KeyShare, and replay that waits for a missing key. Devices are separate
//! journals with their own identities; keys reach them only sealed.

mod common;

use common::{Devices, T0, device, signer};
use vellum_journal::control::Role;
use vellum_journal::envelope::{Envelope, OpKind};
use vellum_journal::payload::{Action, Body, Payload};
use vellum_journal::store::{Durability, MemStore};
use vellum_journal::{Error, Journal, OpId, Write};
use vellum_snapshots::TimeMachine;

fn write(d: &mut Devices, at: usize, writes: Vec<Write>) -> Vec<OpId> {
    d.clock += 1;
    let ids = d.journals[at]
        .write(&signer(d.signers[at]), writes, &mut d.entropy, d.clock)
        .unwrap();
    TimeMachine::catch_up(&d.journals[at]).unwrap();
    ids
}

fn remove(d: &mut Devices, by: usize, who: usize) -> OpId {
    let device = device(d.signers[who]);
    write(d, by, vec![Write::Remove { device }])[0]
}

fn note(path: &str, text: &str) -> Action {
    Action::Create {
        path: path.into(),
        mtime_ms: 0,
        body: Body::Text(text.into()),
    }
}

fn try_append(d: &mut Devices, at: usize, action: Action) -> Result<Vec<OpId>, Error> {
    d.clock += 1;
    d.journals[at].append(
        &signer(d.signers[at]),
        vec![Payload::new(action)],
        &mut d.entropy,
        d.clock,
        Durability::Durable,
    )
}

fn envelope(j: &Journal<MemStore>, id: &OpId) -> Envelope {
    j.load(id).unwrap().expect("op is held")
}

#[test]
fn a_removed_device_cannot_read_what_is_written_after_its_removal() {
    let mut d = Devices::new(3, 1);
    d.create(0, "before.md", "everyone may read this\n");
    d.sync_all();
    remove(&mut d, 0, 2);
    let secret = d.create(0, "after.md", "device 2 must not read this\n");
    d.sync_all();

    // Device 2 holds the op, byte for byte, and nothing it holds opens it.
    let raw = envelope(&d.journals[0], &secret).bytes().to_vec();
    assert_eq!(envelope(&d.journals[2], &secret).bytes(), &raw[..]);
    let env = Envelope::parse(raw).unwrap();
    let epoch = env.header().key_epoch;
    assert_ne!(
        epoch,
        d.journals[0].genesis(),
        "the note is under a new epoch"
    );
    assert!(d.journals[2].keys().get(&epoch).is_none());
    for (_, key) in d.journals[2].keys().epochs() {
        assert!(env.open(key).is_err(), "a key of device 2 opens the note");
    }
    assert!(d.journals[2].load_payload(&env).is_err());
    // Devices still in the vault read it.
    assert!(d.journals[1].load_payload(&env).is_ok());
    assert_eq!(
        d.text_at(1, "after.md").as_deref(),
        Some("device 2 must not read this\n")
    );

    // What device 2 could read before, it still reads; its replay waits at
    // the first op it cannot open, and it can no longer write.
    let c = TimeMachine::catch_up(&d.journals[2]).unwrap();
    assert!(d.journals[2].keys().get(&d.journals[2].genesis()).is_some());
    assert!(d.head(2).file_at("before.md").is_some());
    assert!(d.head(2).file_at("after.md").is_none());
    let _ = c;
    match try_append(&mut d, 2, note("late.md", "x\n")) {
        Err(Error::Usage(why)) => assert!(why.contains("removed"), "{why}"),
        other => panic!("a removed device wrote: {other:?}"),
    }
}

#[test]
fn a_removed_devices_concurrent_ops_lose_their_effect_and_later_ones_are_refused() {
    let mut d = Devices::new(3, 2);
    let shared = d.create(0, "shared.md", "one\n");
    d.sync_all();
    // Device 2 writes before it learns of its removal: concurrent ops.
    d.edit(2, shared, "one\ntwo by the removed device\n");
    d.create(2, "mine.md", "made by 2\n");
    let removal = remove(&mut d, 1, 2);
    d.sync_all();
    for at in 0..3 {
        let j = &d.journals[at];
        assert!(j.holds(&removal).unwrap());
    }
    for at in 0..2 {
        assert_eq!(d.text_at(at, "shared.md").as_deref(), Some("one\n"), "{at}");
        assert!(d.head(at).file_at("mine.md").is_none(), "{at}");
        let (head, scratch) = (
            d.head(at),
            TimeMachine::replay_from_scratch(&d.journals[at]).unwrap(),
        );
        assert_eq!(common::comparable(&head), common::comparable(&scratch));
    }

    // An op whose causal past holds its author's removal is refused by
    // every replica (DESIGN §12: an op from a removed member after its
    // cutoff), built by hand since device 2's own journal will not sign it.
    let j2 = &d.journals[2];
    let header = j2
        .header_on_heads(&device(2), j2.genesis(), T0 + 1_000_000)
        .unwrap();
    let bytes = Envelope::seal(
        OpKind::Content,
        &header,
        &[],
        &Payload::new(note("after-removal.md", "x\n")).encode(),
        j2.keys().get(&j2.genesis()).unwrap(),
        [1; 24],
        &signer(2),
    )
    .unwrap()
    .bytes()
    .to_vec();
    for at in 0..2 {
        match d.journals[at].admit(bytes.clone(), T0 + 1_000_000) {
            Err(Error::Rejected { reason, .. }) => assert!(reason.contains("removed"), "{reason}"),
            other => panic!("{at} took an op written after its author's removal: {other:?}"),
        }
    }
}

#[test]
fn concurrent_mutual_removals_both_take_effect() {
    let mut d = Devices::new(4, 3);
    d.create(0, "a.md", "a\n");
    d.sync_all();
    remove(&mut d, 2, 3);
    remove(&mut d, 3, 2);
    // Each wrote on after removing the other, before hearing back.
    d.create(2, "by-2.md", "2\n");
    d.create(3, "by-3.md", "3\n");
    d.sync_all();
    for at in 0..2 {
        let j = &d.journals[at];
        let m = j.members(j.admitted()).unwrap();
        assert!(m.removed.contains_key(&device(2)) && m.removed.contains_key(&device(3)));
        assert!(d.head(at).file_at("by-2.md").is_none());
        assert!(d.head(at).file_at("by-3.md").is_none());
    }
    // The vault goes on under a key neither removed device holds.
    let after = d.create(0, "later.md", "later\n");
    d.sync_all();
    assert_eq!(d.text_at(1, "later.md").as_deref(), Some("later\n"));
    for gone in [2, 3] {
        let env = envelope(&d.journals[gone], &after);
        assert!(
            d.journals[gone].load_payload(&env).is_err(),
            "{gone} reads it"
        );
    }
}

#[test]
fn a_member_added_during_a_rotation_gets_the_new_key_by_keyshare() {
    let mut d = Devices::new(2, 4);
    d.create(0, "a.md", "a\n");
    d.sync_all();
    // Device 0 rotates while device 1 adds device 2: neither saw the other.
    write(&mut d, 0, vec![Write::Rotate]);
    let new = d.add_device(1, 2);
    d.create(0, "under-new-key.md", "new\n");
    d.sync_all();
    // Device 2 has the add's seal (the old epoch) but no seal of the
    // rotation: its replay waits, and says why.
    let j2 = &d.journals[new];
    assert!(j2.keys().get(&j2.genesis()).is_some(), "sealed in its add");
    let waits = TimeMachine::catch_up(j2).unwrap().waiting_for_key;
    let state = TimeMachine::load_head(j2).unwrap();
    assert!(
        waits.is_some() || state.applied_vv() != *j2.admitted(),
        "device 2 replayed ops it has no key for"
    );
    assert!(!d.journals[0].missing_seals().unwrap().is_empty());
    // A member that holds the key shares it; then device 2 catches up.
    d.clock += 1;
    let shared = d.journals[1]
        .share_missing_keys(&signer(1), &mut d.entropy, d.clock)
        .unwrap();
    assert!(!shared.is_empty(), "device 1 shared nothing");
    d.sync_all();
    assert!(d.journals[0].missing_seals().unwrap().is_empty());
    assert_eq!(d.text_at(new, "under-new-key.md").as_deref(), Some("new\n"));
    let (theirs, ours) = (d.head(new), d.head(0));
    assert_eq!(common::comparable(&theirs), common::comparable(&ours));
}

#[test]
fn a_new_member_reads_all_history_through_the_back_chain() {
    let mut d = Devices::new(2, 5);
    d.create(0, "old.md", "old\n");
    write(&mut d, 0, vec![Write::Rotate]);
    d.create(0, "mid.md", "mid\n");
    write(&mut d, 0, vec![Write::Rotate]);
    d.sync_all();
    // Added under the newest epoch only, it reads every earlier one.
    let new = d.add_device(0, 7);
    d.sync_all();
    assert_eq!(
        d.journals[new].keys().epochs().count(),
        3,
        "genesis and two rotations"
    );
    assert_eq!(d.text_at(new, "old.md").as_deref(), Some("old\n"));
    assert_eq!(d.text_at(new, "mid.md").as_deref(), Some("mid\n"));
}

#[test]
fn roles_limit_what_a_member_may_write() {
    let mut d = Devices::new(2, 6);
    // A blind member: no key, no notes, no membership changes.
    write(
        &mut d,
        0,
        vec![Write::Add {
            device: device(5),
            role: Role::Blind,
            name: "relay".into(),
        }],
    );
    let blind = d.journals.len();
    let j = d.journals[0]
        .empty_replica_keyed(
            MemStore::new(),
            vellum_journal::keys::Keyring::empty().with_identity(&signer(5)),
        )
        .unwrap();
    d.journals.push(j);
    d.signers.push(5);
    d.sync_all();
    assert_eq!(d.journals[blind].keys().epochs().count(), 0);
    for attempt in [try_append(&mut d, blind, note("blind.md", "x\n")), {
        d.clock += 1;
        d.journals[blind].write(
            &signer(5),
            vec![Write::Add {
                device: device(6),
                role: Role::Full,
                name: "x".into(),
            }],
            &mut d.entropy,
            d.clock,
        )
    }] {
        match attempt {
            Err(Error::Usage(why) | Error::Rejected { reason: why, .. } | Error::Keys(why)) => {
                assert!(why.contains("Blind") || why.contains("no key"), "{why}")
            }
            other => panic!("a blind member wrote: {other:?}"),
        }
    }
    // A recovery member manages membership but writes no notes.
    write(
        &mut d,
        0,
        vec![Write::Add {
            device: device(8),
            role: Role::Recovery,
            name: "recovery".into(),
        }],
    );
    let rec = d.journals.len();
    let j = d.journals[0]
        .empty_replica_keyed(
            MemStore::new(),
            vellum_journal::keys::Keyring::empty().with_identity(&signer(8)),
        )
        .unwrap();
    d.journals.push(j);
    d.signers.push(8);
    d.sync_all();
    match try_append(&mut d, rec, note("rec.md", "x\n")) {
        Err(Error::Usage(why)) => assert!(why.contains("Recovery"), "{why}"),
        other => panic!("a recovery member wrote a note: {other:?}"),
    }
    let added = write(
        &mut d,
        rec,
        vec![Write::Add {
            device: device(9),
            role: Role::Full,
            name: "restored".into(),
        }],
    );
    d.sync_all();
    assert!(d.journals[1].holds(&added[0]).unwrap());
    // A removed device cannot come back under the same identity.
    remove(&mut d, 0, 1);
    d.clock += 1;
    match d.journals[0].write(
        &signer(0),
        vec![Write::Add {
            device: device(1),
            role: Role::Full,
            name: "again".into(),
        }],
        &mut d.entropy,
        d.clock,
    ) {
        Err(Error::Corrupt(why)) | Err(Error::Usage(why)) => {
            assert!(why.contains("removed"), "{why}")
        }
        other => panic!("re-added a removed device: {other:?}"),
    }
}

#[test]
fn a_removal_bars_ops_in_sets_that_hold_it_and_only_there() {
    let mut d = Devices::new(3, 7);
    let f = d.create(0, "n.md", "a\n");
    d.sync_all();
    // Device 2 edits while device 0 removes it: concurrent.
    d.edit(2, f, "a\nb\n");
    let with_edit = d.journals[2].admitted().clone();
    remove(&mut d, 0, 2);
    d.sync_all();
    let b = vellum_journal::ContentHash::of(b"a\nb\n");
    let a = vellum_journal::ContentHash::of(b"a\n");
    for at in 0..2 {
        let j = &d.journals[at];
        let head = TimeMachine::load_head(j).unwrap();
        assert_eq!(head.files[&f].hash, a, "{at}: the edit counts at the head");
        let scratch = TimeMachine::replay_from_scratch(j).unwrap();
        assert_eq!(common::comparable(&head), common::comparable(&scratch));
        // The point before the removal arrived holds no removal: there the
        // edit has its effect.
        let then = TimeMachine::state_at(j, &with_edit).unwrap();
        assert_eq!(
            then.files[&f].hash, b,
            "{at}: the edit is lost at its own point"
        );
    }
}

/// Regression seed 200277: a device restored from a backup removes a
/// device again, then its lost ops (with the first removal) come back on
/// another branch of its own chain, which can never be in the past of what
/// it writes (deps name other authors' ops). One removal of the device in
/// an epoch's past makes the epoch clean, so it still writes; before, every
/// write rotated the key again, forever.
#[test]
fn a_device_whose_own_chain_forked_over_a_removal_still_writes() {
    let mut d = Devices::new(3, 9);
    let backup = d.backup(0);
    let first = remove(&mut d, 0, 2);
    d.sync(0, 1);
    d.restore(0, backup);
    let second = remove(&mut d, 0, 2);
    assert_ne!(
        first, second,
        "the restored device wrote again at the same seqs"
    );
    // Its lost ops come back: its own chain has two branches now.
    d.sync(1, 0);
    assert_two_branches(&d);
    try_append(&mut d, 0, note("after.md", "written on a forked chain\n"))
        .expect("a forked device still writes, under a clean epoch");
    readable_by_1_not_2(&mut d, "after.md", "written on a forked chain\n");
}

/// Regression seed 3442: as above, but only the lost branch removed the
/// device. To write under a clean epoch, the device removes it again on the
/// branch it writes on, then rotates the key.
#[test]
fn a_device_whose_lost_branch_removed_a_device_removes_it_again() {
    let mut d = Devices::new(3, 10);
    let backup = d.backup(0);
    remove(&mut d, 0, 2);
    d.sync(0, 1);
    d.restore(0, backup);
    // A longer branch than the lost one: the device goes on writing on it.
    for i in 0..3 {
        d.create(0, &format!("fork{i}.md"), "written after the restore\n");
    }
    d.sync(1, 0);
    assert_two_branches(&d);
    let removals_before = removals_of(&d.journals[0], device(d.signers[2]));
    try_append(&mut d, 0, note("after.md", "device 2 must not read this\n"))
        .expect("a forked device still writes, under a clean epoch");
    assert_eq!(
        removals_of(&d.journals[0], device(d.signers[2])),
        removals_before + 1,
        "it removed device 2 again on the branch it writes on"
    );
    readable_by_1_not_2(&mut d, "after.md", "device 2 must not read this\n");
}

/// Device 0's own chain has two branches, both heads.
fn assert_two_branches(d: &Devices) {
    assert_eq!(
        d.journals[0].admitted().heads(&device(d.signers[0])).len(),
        2,
        "both branches are heads"
    );
}

/// After device 0 wrote `path` on its forked chain: once device 1 vouches
/// for that chain with a newer op (DESIGN §3), device 1 reads `text`, and
/// device 2, removed, never holds the key it was written under.
fn readable_by_1_not_2(d: &mut Devices, path: &str, text: &str) {
    TimeMachine::catch_up(&d.journals[0]).unwrap();
    d.sync_all();
    d.create(1, "seen.md", "device 1 has seen the forked chain\n");
    d.sync_all();
    assert_eq!(d.text_at(1, path).as_deref(), Some(text));
    assert_eq!(d.text_at(2, path), None);
}

fn removals_of(j: &Journal<MemStore>, who: vellum_journal::DeviceId) -> usize {
    j.controls()
        .iter()
        .filter(|c| {
            matches!(&c.control, vellum_journal::control::Control::Member(m)
                if m.action == vellum_journal::control::MemberAction::Remove && m.device == who)
        })
        .count()
}
