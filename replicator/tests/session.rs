//! The session state machine against real journals: two peers converge,
//! and each kind of bad input closes the session with a reason while the
//! journal keeps working (the bad-input list of issue 5).

use vellum_journal::entropy::SeededEntropy;
use vellum_journal::keys::{EpochKey, Keyring, SigningKey, device_id};
use vellum_journal::payload::{Action, Body, MERGE_VERSION, Payload};
use vellum_journal::store::{Durability, MemStore};
use vellum_journal::{DeviceId, Journal, OpId, VaultId, VersionVector};
use vellum_replicator::wire::PROTO;
use vellum_replicator::{Event, Message, Range, Session};

const T0: u64 = 1_800_000_000_000;

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn vault(key_id: u8, e: &mut SeededEntropy) -> Journal<MemStore> {
    Journal::create(
        MemStore::new(),
        VaultId([4; 16]),
        &key(key_id),
        Keyring::new(EpochKey([5; 32])),
        e,
        T0,
        MERGE_VERSION,
    )
    .unwrap()
}

/// Device 1's vault with device 2 added, and an empty replica of it for
/// device 2.
fn pair() -> (Journal<MemStore>, Journal<MemStore>, SeededEntropy) {
    let mut e = SeededEntropy::new(3);
    let mut a = vault(1, &mut e);
    a.write(
        &key(1),
        vec![vellum_journal::Write::Add {
            device: device_id(&key(2)),
            role: vellum_journal::control::Role::Full,
            name: "two".into(),
        }],
        &mut e,
        T0,
    )
    .map(|ids| ids[0])
    .unwrap();
    let b = a.empty_replica(MemStore::new()).unwrap();
    (a, b, e)
}

fn write(j: &mut Journal<MemStore>, who: u8, e: &mut SeededEntropy, path: &str) -> OpId {
    j.append(
        &key(who),
        vec![Payload::new(Action::Create {
            path: path.into(),
            mtime_ms: 0,
            body: Body::Text(format!("{path}\n")),
        })],
        e,
        T0 + 10,
        Durability::Durable,
    )
    .unwrap()[0]
}

type Side = (Journal<MemStore>, Session);

/// Delivers messages both ways until neither side has more to say.
fn pump(a: &mut Side, b: &mut Side) {
    for _ in 0..100 {
        let mut quiet = true;
        while let Some(m) = a.1.poll_transmit() {
            quiet = false;
            b.1.handle_message(&mut b.0, &m, T0 + 20).unwrap();
        }
        while let Some(m) = b.1.poll_transmit() {
            quiet = false;
            a.1.handle_message(&mut a.0, &m, T0 + 20).unwrap();
        }
        if quiet {
            return;
        }
    }
    panic!("the sessions never went quiet");
}

fn closed(s: &mut Session) -> Option<(String, bool)> {
    while let Some(e) = s.poll_event() {
        if let Event::Closed { reason, misbehaved } = e {
            return Some((reason, misbehaved));
        }
    }
    None
}

/// A session of device `me` that has seen a peer's Hello.
fn greeted(j: &mut Journal<MemStore>, me: u8) -> Session {
    let mut s = Session::new(j, device_id(&key(me)), T0);
    let hello = Message::Hello {
        proto: PROTO,
        vault: j.vault(),
        device: DeviceId([42; 32]),
        vv: VersionVector::new(),
    };
    s.handle_message(j, &hello.encode(), T0).unwrap();
    while s.poll_transmit().is_some() {}
    s
}

#[test]
fn two_peers_converge_and_new_ops_are_pushed() {
    let (mut a, b, mut e) = pair();
    for i in 0..30 {
        write(&mut a, 1, &mut e, &format!("n{i}.md"));
    }
    let sa = Session::new(&a, device_id(&key(1)), T0);
    let sb = Session::new(&b, device_id(&key(2)), T0);
    let (mut a, mut b) = ((a, sa), (b, sb));
    pump(&mut a, &mut b);
    assert_eq!(a.0.admitted(), b.0.admitted());
    // A new op on b is announced and fetched.
    let id = write(&mut b.0, 2, &mut e, "from-b.md");
    b.1.announce(&b.0, T0 + 30);
    pump(&mut a, &mut b);
    assert!(a.0.holds(&id).unwrap());
    assert!(closed(&mut a.1).is_none() && closed(&mut b.1).is_none());
}

#[test]
fn garbage_truncated_and_early_messages_close_the_session() {
    let (_, mut b, _) = pair();
    for bad in [vec![0xff; 40], vec![1, 2, 0, 0]] {
        let mut s = Session::new(&b, device_id(&key(2)), T0);
        s.handle_message(&mut b, &bad, T0).unwrap();
        let (why, misbehaved) = closed(&mut s).expect("closed");
        assert!(misbehaved, "{why}");
    }
    // A Have before any Hello.
    let mut s = Session::new(&b, device_id(&key(2)), T0);
    let have = Message::Have {
        vv: VersionVector::new(),
    };
    s.handle_message(&mut b, &have.encode(), T0).unwrap();
    assert!(closed(&mut s).unwrap().0.contains("before Hello"));
    // A Hello of another vault.
    let mut s = Session::new(&b, device_id(&key(2)), T0);
    let hello = Message::Hello {
        proto: PROTO,
        vault: VaultId([99; 16]),
        device: device_id(&key(1)),
        vv: VersionVector::new(),
    };
    s.handle_message(&mut b, &hello.encode(), T0).unwrap();
    assert!(closed(&mut s).unwrap().0.contains("another vault"));
}

#[test]
fn ops_beyond_credit_foreign_or_tampered_close_the_session() {
    let (mut a, mut b, mut e) = pair();
    let ops: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            let id = write(&mut a, 1, &mut e, &format!("x{i}.md"));
            a.load(&id).unwrap().unwrap().into_bytes()
        })
        .collect();
    // Unasked: no credit was granted.
    let mut s = greeted(&mut b, 2);
    let msg = Message::Ops { ops: ops.clone() };
    s.handle_message(&mut b, &msg.encode(), T0).unwrap();
    assert!(closed(&mut s).unwrap().0.contains("credit"));
    // A genesis of another vault history under the same vault id, signed
    // by a device that is no member here.
    let stranger = vault(9, &mut e);
    let bytes = stranger
        .load(&stranger.genesis())
        .unwrap()
        .unwrap()
        .into_bytes();
    let mut s = greeted(&mut b, 2);
    s.handle_message(&mut b, &Message::Ops { ops: vec![bytes] }.encode(), T0)
        .unwrap();
    let (why, misbehaved) = closed(&mut s).unwrap();
    assert!(misbehaved && why.contains("not admitted"), "{why}");
    // A tampered op.
    let mut bad = ops[0].clone();
    let n = bad.len();
    bad[n - 3] ^= 1;
    let mut s = greeted(&mut b, 2);
    s.handle_message(&mut b, &Message::Ops { ops: vec![bad] }.encode(), T0)
        .unwrap();
    assert!(closed(&mut s).unwrap().1);
    // The journal holds nothing of it and still works.
    assert_eq!(b.op_count(), 0);
    assert!(b.pending_count().unwrap() <= 1);
}

#[test]
fn wants_for_missing_ranges_and_replayed_messages() {
    let (mut a, b, mut e) = pair();
    let id = write(&mut a, 1, &mut e, "a.md");
    let mut sa = greeted(&mut a, 1);
    // A head this side does not hold: an empty answer, not an error.
    let want = Message::Want {
        credit: 1 << 20,
        ranges: vec![Range {
            author: device_id(&key(7)),
            from: 1,
            to: 3,
            head: OpId([1; 32]),
        }],
    };
    sa.handle_message(&mut a, &want.encode(), T0).unwrap();
    assert_eq!(
        Message::decode(&sa.poll_transmit().unwrap()).unwrap(),
        Message::Ops { ops: vec![] }
    );
    // A range past the head it names does not exist.
    let want = Message::Want {
        credit: 1 << 20,
        ranges: vec![Range {
            author: device_id(&key(1)),
            from: 40,
            to: 50,
            head: id,
        }],
    };
    sa.handle_message(&mut a, &want.encode(), T0).unwrap();
    assert!(closed(&mut sa).unwrap().0.contains("does not exist"));
    // Old messages replayed: a second copy of each changes nothing.
    let sa = Session::new(&a, device_id(&key(1)), T0);
    let sb = Session::new(&b, device_id(&key(2)), T0);
    let (mut a, mut b) = ((a, sa), (b, sb));
    let mut log = Vec::new();
    for _ in 0..20 {
        while let Some(m) = a.1.poll_transmit() {
            log.push(m.clone());
            b.1.handle_message(&mut b.0, &m, T0).unwrap();
        }
        while let Some(m) = b.1.poll_transmit() {
            a.1.handle_message(&mut a.0, &m, T0).unwrap();
        }
    }
    assert_eq!(a.0.admitted(), b.0.admitted());
    let ops = b.0.op_count();
    for m in log.iter().filter(|m| m[1] == 2) {
        b.1.handle_message(&mut b.0, m, T0).unwrap();
    }
    assert_eq!(b.0.op_count(), ops);
    assert!(closed(&mut b.1).is_none());
}

/// Every op of `from` that `to` lacks, admitted in order.
fn copy_all(from: &Journal<MemStore>, to: &mut Journal<MemStore>) {
    let mut ops = Vec::new();
    from.for_each_op_in_order(None, &mut |key, _, env| {
        if !to.holds(&key.id)? {
            ops.push(env.into_bytes());
        }
        Ok(std::ops::ControlFlow::Continue(()))
    })
    .unwrap();
    for v in to.admit_batch(ops, T0 + 100).unwrap() {
        v.unwrap();
    }
}

fn add(j: &mut Journal<MemStore>, by: u8, who: u8, e: &mut SeededEntropy) {
    j.write(
        &key(by),
        vec![vellum_journal::Write::Add {
            device: device_id(&key(who)),
            role: vellum_journal::control::Role::Full,
            name: format!("device {who}"),
        }],
        e,
        T0,
    )
    .unwrap();
}

#[test]
fn a_relay_passes_on_both_branches_of_a_fork_and_is_not_blamed() {
    let (mut a, b, mut e) = pair();
    add(&mut a, 1, 3, &mut e);
    // Device 3 and a restored copy of it both write their seq 1.
    let mut c = a.empty_replica(MemStore::new()).unwrap();
    copy_all(&a, &mut c);
    let mut c_copy = a.empty_replica(MemStore::new()).unwrap();
    copy_all(&a, &mut c_copy);
    let x = write(&mut c, 3, &mut e, "from-3.md");
    let y = write(&mut c_copy, 3, &mut e, "from-3-restored.md");
    copy_all(&c, &mut a);
    copy_all(&c_copy, &mut a);
    assert!(a.admitted().has_forks());
    // Device 2 hears of device 3 only through device 1: a relay.
    let sa = Session::new(&a, device_id(&key(1)), T0);
    let sb = Session::new(&b, device_id(&key(2)), T0);
    let (mut a, mut b) = ((a, sa), (b, sb));
    pump(&mut a, &mut b);
    assert!(b.0.holds(&x).unwrap() && b.0.holds(&y).unwrap());
    assert_eq!(a.0.admitted(), b.0.admitted());
    assert!(closed(&mut a.1).is_none() && closed(&mut b.1).is_none());
}

#[test]
fn an_op_written_after_its_authors_removal_closes_the_session() {
    let (mut a, mut b, mut e) = pair();
    add(&mut a, 1, 3, &mut e);
    let mut c = a.empty_replica(MemStore::new()).unwrap();
    copy_all(&a, &mut c);
    write(&mut c, 3, &mut e, "before.md");
    copy_all(&c, &mut a);
    a.write(
        &key(1),
        vec![vellum_journal::Write::Remove {
            device: device_id(&key(3)),
        }],
        &mut e,
        T0 + 20,
    )
    .unwrap();
    copy_all(&a, &mut b);
    copy_all(&a, &mut c);
    // Device 3's journal refuses to write; a peer forges what it would
    // have written, with the removal in its causal past.
    let after = c.append(
        &key(3),
        vec![Payload::new(Action::DeviceInfo { name: "x".into() })],
        &mut e,
        T0 + 30,
        Durability::Durable,
    );
    assert!(
        matches!(after, Err(vellum_journal::Error::Usage(_))),
        "{after:?}"
    );
    let me = device_id(&key(3));
    let header = c.header_on_heads(&me, c.genesis(), T0 + 30).unwrap();
    let forged = vellum_journal::envelope::Envelope::seal(
        vellum_journal::envelope::OpKind::Content,
        &header,
        &[],
        &Payload::new(Action::DeviceInfo { name: "x".into() }).encode(),
        &EpochKey([5; 32]),
        [9; 24],
        &key(3),
    )
    .unwrap();
    // The peer announces it, device 2 asks for it, and gets refused bytes.
    let mut vv = c.admitted().clone();
    vv.observe(me, header.seq, forged.id());
    let mut s = Session::new(&b, device_id(&key(2)), T0);
    let hello = Message::Hello {
        proto: PROTO,
        vault: b.vault(),
        device: me,
        vv,
    };
    s.handle_message(&mut b, &hello.encode(), T0 + 40).unwrap();
    let asked = std::iter::from_fn(|| s.poll_transmit())
        .filter_map(|m| Message::decode(&m).ok())
        .any(|m| matches!(m, Message::Want { .. }));
    assert!(asked, "device 2 did not ask for the announced op");
    let ops = Message::Ops {
        ops: vec![forged.bytes().to_vec()],
    };
    s.handle_message(&mut b, &ops.encode(), T0 + 40).unwrap();
    let (why, misbehaved) = closed(&mut s).expect("closed");
    assert!(misbehaved && why.contains("removed"), "{why}");
    assert!(!b.holds(&forged.id()).unwrap());
    // The journal goes on: device 1's next op still arrives.
    let id = write(&mut a, 1, &mut e, "later.md");
    copy_all(&a, &mut b);
    assert!(b.holds(&id).unwrap());
}

#[test]
fn a_log_larger_than_one_credit_crosses_the_wire_once() {
    let (mut a, b, mut e) = pair();
    // About 10 MiB of ops: three Wants' worth of credit.
    let line = "a line of a long note that takes some room\n".repeat(24);
    let mut i = 0;
    while a.op_bytes().unwrap() < 10 << 20 {
        let batch = (0..200)
            .map(|k| {
                Payload::new(Action::Create {
                    path: format!("n{}.md", i + k),
                    mtime_ms: 0,
                    body: Body::Text(format!("{}\n{line}", i + k)),
                })
            })
            .collect();
        a.append(&key(1), batch, &mut e, T0 + 10, Durability::Buffered)
            .unwrap();
        i += 200;
    }
    let sa = Session::new(&a, device_id(&key(1)), T0);
    let sb = Session::new(&b, device_id(&key(2)), T0);
    let (mut a, mut b) = ((a, sa), (b, sb));
    let mut wire = 0u64;
    for _ in 0..100 {
        let mut quiet = true;
        while let Some(m) = a.1.poll_transmit() {
            quiet = false;
            wire += m.len() as u64;
            b.1.handle_message(&mut b.0, &m, T0 + 20).unwrap();
        }
        while let Some(m) = b.1.poll_transmit() {
            quiet = false;
            a.1.handle_message(&mut a.0, &m, T0 + 20).unwrap();
        }
        if quiet {
            break;
        }
    }
    assert_eq!(a.0.admitted(), b.0.admitted());
    // Each op once, plus framing: never the start of the log again with
    // each Want.
    let ops = a.0.op_bytes().unwrap();
    assert!(
        wire < ops + ops / 50,
        "{wire} wire bytes for {ops} bytes of ops"
    );
}

/// Device 1 writes a binary file of `len` pseudo-random bytes; its bytes.
fn blob_op(j: &mut Journal<MemStore>, e: &mut SeededEntropy, path: &str, len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    vellum_journal::entropy::Entropy::fill(e, &mut bytes);
    let dedup = j.keys().dedup_key(&j.genesis()).unwrap();
    let blob = vellum_journal::blob::store_blob(j.store(), &bytes[..], &dedup, e).unwrap();
    j.append(
        &key(1),
        vec![Payload::new(Action::Create {
            path: path.into(),
            mtime_ms: 0,
            body: Body::Blob(blob),
        })],
        e,
        T0 + 10,
        Durability::Durable,
    )
    .unwrap();
    bytes
}

/// The blob of the live file at `path`, read back from `j`'s chunks.
fn read_file(j: &Journal<MemStore>, path: &str) -> Vec<u8> {
    vellum_snapshots::TimeMachine::catch_up(j).unwrap();
    let head = vellum_snapshots::TimeMachine::load_head(j).unwrap();
    let (id, f) = head.file_at(path).expect("the file is there");
    let Body::Blob(blob) =
        vellum_snapshots::contents::body_of(j, id, f.hash, j.admitted()).unwrap()
    else {
        panic!("{path} is not binary");
    };
    let mut out = Vec::new();
    vellum_journal::blob::read_blob(j.store(), &blob, &mut out).unwrap();
    out
}

#[test]
fn chunks_follow_the_ops_that_name_them_and_resume_where_they_stopped() {
    let (mut a, b, mut e) = pair();
    let small = blob_op(&mut a, &mut e, "small.bin", 300_000);
    let sa = Session::new(&a, device_id(&key(1)), T0);
    let sb = Session::new(&b, device_id(&key(2)), T0);
    let (mut a, mut b) = ((a, sa), (b, sb));
    pump(&mut a, &mut b);
    assert_eq!(a.0.admitted(), b.0.admitted());
    assert_eq!(read_file(&b.0, "small.bin"), small);

    // A 6 MB file; the connection breaks after the first chunks arrive.
    let big = blob_op(&mut a.0, &mut e, "big.bin", 6_000_000);
    a.1.announce(&a.0, T0 + 30);
    let mut chunk_messages = 0;
    'cut: for _ in 0..100 {
        while let Some(m) = a.1.poll_transmit() {
            let is_chunks = matches!(Message::decode(&m), Ok(Message::Chunks { .. }));
            b.1.handle_message(&mut b.0, &m, T0 + 40).unwrap();
            if is_chunks {
                chunk_messages += 1;
                if chunk_messages == 3 {
                    break 'cut;
                }
            }
        }
        while let Some(m) = b.1.poll_transmit() {
            a.1.handle_message(&mut a.0, &m, T0 + 40).unwrap();
        }
    }
    assert_eq!(chunk_messages, 3);
    // The op is in; the chunks that arrived are kept, the rest are owed.
    let stored = vellum_journal::blob::stored_chunk_bytes(b.0.store()).unwrap();
    assert!(stored > 300_000, "{stored}");
    assert_eq!(a.0.admitted(), b.0.admitted());
    assert!(!b.0.chunk_debt(1000).unwrap().is_empty());

    // A new connection sends only the chunks still missing.
    let sa = Session::new(&a.0, device_id(&key(1)), T0 + 50);
    let sb = Session::new(&b.0, device_id(&key(2)), T0 + 50);
    let (mut a, mut b) = ((a.0, sa), (b.0, sb));
    let mut chunk_bytes = 0u64;
    for _ in 0..200 {
        let mut quiet = true;
        while let Some(m) = a.1.poll_transmit() {
            quiet = false;
            if let Ok(Message::Chunks { chunks }) = Message::decode(&m) {
                chunk_bytes += chunks.iter().map(|(_, c)| c.len() as u64).sum::<u64>();
            }
            b.1.handle_message(&mut b.0, &m, T0 + 60).unwrap();
        }
        while let Some(m) = b.1.poll_transmit() {
            quiet = false;
            a.1.handle_message(&mut a.0, &m, T0 + 60).unwrap();
        }
        if quiet {
            break;
        }
    }
    assert!(b.0.chunk_debt(1000).unwrap().is_empty());
    assert_eq!(read_file(&b.0, "big.bin"), big);
    let total = vellum_journal::blob::stored_chunk_bytes(b.0.store()).unwrap();
    assert_eq!(
        chunk_bytes,
        total - stored,
        "chunks stored before the break were sent again"
    );
    assert!(closed(&mut a.1).is_none() && closed(&mut b.1).is_none());
}

#[test]
fn unasked_or_forged_chunks_close_the_session_and_a_lacking_peer_is_passed_over() {
    let (mut a, mut b, mut e) = pair();
    blob_op(&mut a, &mut e, "x.bin", 100_000);
    // Chunks nobody asked for.
    let mut s = greeted(&mut b, 2);
    let junk = Message::Chunks {
        chunks: vec![([7; 32], vec![1, 2, 3])],
    };
    s.handle_message(&mut b, &junk.encode(), T0).unwrap();
    assert!(closed(&mut s).unwrap().0.contains("not asked"));
    // The op arrives without its chunks: they are owed, and asked for.
    let op = {
        let head = a.admitted().get(&device_id(&key(1))).unwrap().head;
        a.load(&head).unwrap().unwrap()
    };
    copy_all(&a, &mut b);
    assert!(b.holds(&op.id()).unwrap());
    let owed = b.chunk_debt(1000).unwrap();
    assert!(!owed.is_empty());
    let asked = |b: &mut Journal<MemStore>| {
        // The peer's Hello is enough: what the journal owes is asked for.
        let mut s = Session::new(b, device_id(&key(2)), T0);
        let hello = Message::Hello {
            proto: PROTO,
            vault: b.vault(),
            device: DeviceId([42; 32]),
            vv: b.admitted().clone(),
        };
        s.handle_message(b, &hello.encode(), T0).unwrap();
        let ids = std::iter::from_fn(|| s.poll_transmit())
            .filter_map(|m| Message::decode(&m).ok())
            .find_map(|m| match m {
                Message::WantChunks { ids, .. } => Some(ids),
                _ => None,
            });
        (s, ids.expect("a WantChunks for the owed chunks"))
    };
    // A chunk that is not its id's.
    let (mut s, ids) = asked(&mut b);
    let forged = Message::Chunks {
        chunks: vec![(ids[0], vec![0; 100])],
    };
    s.handle_message(&mut b, &forged.encode(), T0).unwrap();
    let (why, misbehaved) = closed(&mut s).unwrap();
    assert!(misbehaved && why.contains("does not match"), "{why}");
    // A peer that lacks them says so: no blame, and it is not asked again.
    let (mut s, ids) = asked(&mut b);
    let lacking = Message::Chunks {
        chunks: ids.iter().map(|id| (*id, vec![])).collect(),
    };
    s.handle_message(&mut b, &lacking.encode(), T0).unwrap();
    assert!(closed(&mut s).is_none());
    assert!(
        std::iter::from_fn(|| s.poll_transmit())
            .filter_map(|m| Message::decode(&m).ok())
            .all(|m| !matches!(m, Message::WantChunks { .. }))
    );
    // The author has them.
    let sa = Session::new(&a, device_id(&key(1)), T0);
    let sb = Session::new(&b, device_id(&key(2)), T0);
    let (mut a, mut b) = ((a, sa), (b, sb));
    pump(&mut a, &mut b);
    assert!(b.0.chunk_debt(1000).unwrap().is_empty());
    assert_eq!(read_file(&b.0, "x.bin").len(), 100_000);
}

/// Device 1's vault with `who` added as a blind member, and that member's
/// replica: it holds no vault key, so it reads no op.
fn blind_member(a: &mut Journal<MemStore>, who: u8, e: &mut SeededEntropy) -> Journal<MemStore> {
    a.write(
        &key(1),
        vec![vellum_journal::Write::Add {
            device: device_id(&key(who)),
            role: vellum_journal::control::Role::Blind,
            name: format!("relay {who}"),
        }],
        e,
        T0,
    )
    .unwrap();
    a.empty_replica_keyed(MemStore::new(), Keyring::empty().with_identity(&key(who)))
        .unwrap()
}

/// Pumps two journals through fresh sessions until both are quiet.
fn sync(a: Journal<MemStore>, a_id: u8, b: Journal<MemStore>, b_id: u8) -> (Side, Side) {
    let sa = Session::new(&a, device_id(&key(a_id)), T0);
    let sb = Session::new(&b, device_id(&key(b_id)), T0);
    let (mut a, mut b) = ((a, sa), (b, sb));
    pump(&mut a, &mut b);
    assert!(closed(&mut a.1).is_none() && closed(&mut b.1).is_none());
    (a, b)
}

#[test]
fn blind_relays_learn_chunk_ids_from_readers_and_pass_chunks_on() {
    let (mut a, b, mut e) = pair();
    let relay = blind_member(&mut a, 3, &mut e);
    let far_relay = blind_member(&mut a, 4, &mut e);
    let bytes = blob_op(&mut a, &mut e, "photo.bin", 400_000);
    // The author's only contact is the first relay: it asks the author
    // which chunks the op names, and fetches them.
    let ((a, _), (relay, _)) = sync(a, 1, relay, 3);
    assert_eq!(relay.admitted(), a.admitted());
    assert!(relay.chunk_debt(1000).unwrap().is_empty());
    let held = vellum_journal::blob::stored_chunk_bytes(relay.store()).unwrap();
    assert!(held > 400_000, "the relay holds {held} bytes of chunks");
    // A second relay learns the ids from the first, which cannot read the
    // op either but was told.
    let ((relay, _), (far_relay, _)) = sync(relay, 3, far_relay, 4);
    assert_eq!(
        vellum_journal::blob::stored_chunk_bytes(far_relay.store()).unwrap(),
        held
    );
    // A reader that only ever meets the far relay gets the file whole.
    let ((_, _), (b, _)) = sync(far_relay, 4, b, 2);
    assert_eq!(read_file(&b, "photo.bin"), bytes);
    drop((a, relay));
}

#[test]
fn chunk_ids_for_ops_not_asked_about_close_the_session() {
    let (mut a, _, mut e) = pair();
    let mut relay = blind_member(&mut a, 3, &mut e);
    blob_op(&mut a, &mut e, "x.bin", 50_000);
    copy_all(&a, &mut relay);
    let mut s = greeted(&mut relay, 3);
    let told = Message::ChunkIds {
        entries: vec![(OpId([9; 32]), Some(vec![[1; 32]]))],
    };
    s.handle_message(&mut relay, &told.encode(), T0).unwrap();
    let (why, misbehaved) = closed(&mut s).unwrap();
    assert!(misbehaved && why.contains("not asked about"), "{why}");
    // Nothing was recorded: the relay still needs the op's ids, and owes
    // no chunk.
    assert!(relay.chunk_debt(10).unwrap().is_empty());
    let op = a.admitted().get(&device_id(&key(1))).unwrap().head;
    let needed = relay
        .ops_needing_chunk_ids(10, &Default::default())
        .unwrap();
    assert!(needed.contains(&op), "{needed:?}");
}

/// Moves every message `from` has queued to `to`, and returns them.
fn deliver(
    from: &mut Session,
    to: &mut Session,
    journal: &mut Journal<MemStore>,
    now: u64,
) -> Vec<Message> {
    let mut out = Vec::new();
    while let Some(m) = from.poll_transmit() {
        to.handle_message(journal, &m, now).unwrap();
        out.push(Message::decode(&m).unwrap());
    }
    out
}

fn wants(msgs: &[Message]) -> usize {
    msgs.iter()
        .filter(|m| matches!(m, Message::Want { .. }))
        .count()
}

/// Device 2 with two sessions (sharing claims) to two peers that hold
/// the same five new ops of device 1, both peers' Hellos delivered.
fn two_sessions_two_peers() -> (
    Journal<MemStore>,
    Journal<MemStore>,
    [Session; 2],
    [Session; 2],
) {
    let (mut a, mut b, mut e) = pair();
    for i in 0..5 {
        write(&mut a, 1, &mut e, &format!("n{i}.md"));
    }
    let claims = vellum_replicator::Claims::default();
    let me = device_id(&key(2));
    let mut mine = [
        Session::with_claims(&b, me, T0, claims.clone()),
        Session::with_claims(&b, me, T0, claims),
    ];
    let mut peers = [
        Session::new(&a, device_id(&key(1)), T0),
        Session::new(&a, device_id(&key(1)), T0),
    ];
    for (m, p) in mine.iter_mut().zip(peers.iter_mut()) {
        deliver(p, m, &mut b, T0);
    }
    (a, b, mine, peers)
}

#[test]
fn two_sessions_of_one_device_fetch_a_range_from_one_peer_only() {
    let (mut a, mut b, [mut s1, mut s2], [mut p1, mut p2]) = two_sessions_two_peers();
    let asked = [
        wants(&deliver(&mut s1, &mut p1, &mut a, T0)),
        wants(&deliver(&mut s2, &mut p2, &mut a, T0)),
    ];
    assert_eq!(
        asked,
        [1, 0],
        "the second session left the range to the first"
    );
    // The first peer answers; the ops are here, so the second session,
    // looking again, asks for nothing.
    deliver(&mut p1, &mut s1, &mut b, T0 + 10);
    assert_eq!(b.admitted(), a.admitted());
    s2.handle_timeout(&b, T0 + vellum_replicator::session::CLAIM_RETRY_MS);
    assert_eq!(wants(&deliver(&mut s2, &mut p2, &mut a, T0 + 1_000)), 0);
}

#[test]
fn a_claim_of_a_session_that_ended_is_fetched_by_another() {
    let (mut a, b, [mut s1, mut s2], [mut p1, mut p2]) = two_sessions_two_peers();
    assert_eq!(wants(&deliver(&mut s1, &mut p1, &mut a, T0)), 1);
    assert_eq!(wants(&deliver(&mut s2, &mut p2, &mut a, T0)), 0);
    // The first peer goes away before it answers.
    drop(s1);
    s2.handle_timeout(&b, T0 + vellum_replicator::session::CLAIM_RETRY_MS);
    assert_eq!(wants(&deliver(&mut s2, &mut p2, &mut a, T0 + 1_000)), 1);
}
