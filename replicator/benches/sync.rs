//! What the protocol costs on the wire (issue 5): bytes and round trips
//! for an initial sync of a 10,000-op log, for catching up 10 ops between
//! peers that are otherwise in sync, and for an initial sync of the same
//! log to a blind relay (which also asks which chunks each op names).
//!
//! Two real journals (in memory) and two real sessions, run in lockstep: a
//! *flight* is everything one side sends in answer to what it last
//! received, and a round trip is two flights. Prints one JSON object.
//! Run: `cargo bench -p vellum-replicator --bench sync [-- OPS]`.

use std::time::Instant;

use vellum_journal::entropy::SeededEntropy;
use vellum_journal::keys::{EpochKey, Keyring, SigningKey, device_id};
use vellum_journal::payload::{Action, Body, MERGE_VERSION, Payload};
use vellum_journal::store::{Durability, MemStore};
use vellum_journal::{Journal, VaultId, Write};
use vellum_replicator::Session;

const T0: u64 = 1_800_000_000_000;

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

/// A note of about 1 KB, different for each `i`.
fn note(i: u64) -> Payload {
    let body: String = (0..16)
        .map(|l| format!("- line {l} of note {i}: some words to sync\n"))
        .collect();
    Payload::new(Action::Create {
        path: format!("notes/{}/n{i}.md", i % 100),
        mtime_ms: 0,
        body: Body::Text(body),
    })
}

struct Cost {
    flights: u64,
    bytes_a_to_b: u64,
    bytes_b_to_a: u64,
    messages: u64,
}

/// Runs both sessions in lockstep until neither has anything to say.
fn lockstep(a: &mut (Journal<MemStore>, Session), b: &mut (Journal<MemStore>, Session)) -> Cost {
    let mut cost = Cost {
        flights: 0,
        bytes_a_to_b: 0,
        bytes_b_to_a: 0,
        messages: 0,
    };
    let mut from_a = true;
    let mut quiet = 0;
    while quiet < 2 {
        let (src, dst) = if from_a {
            (&mut *a, &mut *b)
        } else {
            (&mut *b, &mut *a)
        };
        let mut sent = Vec::new();
        while let Some(m) = src.1.poll_transmit() {
            sent.push(m);
        }
        if sent.is_empty() {
            quiet += 1;
        } else {
            quiet = 0;
            cost.flights += 1;
            for m in sent {
                cost.messages += 1;
                if from_a {
                    cost.bytes_a_to_b += m.len() as u64;
                } else {
                    cost.bytes_b_to_a += m.len() as u64;
                }
                dst.1.handle_message(&mut dst.0, &m, T0 + 1_000).unwrap();
            }
        }
        from_a = !from_a;
        assert!(cost.flights < 100_000, "the sessions never went quiet");
    }
    cost
}

fn json(name: &str, ops: u64, op_bytes: u64, c: &Cost, secs: f64) -> String {
    format!(
        "\"{name}\": {{\"ops\": {ops}, \"op_bytes\": {op_bytes}, \"wire_bytes\": {}, \"wire_bytes_a_to_b\": {}, \"wire_bytes_b_to_a\": {}, \"messages\": {}, \"flights\": {}, \"round_trips\": {}, \"seconds\": {secs:.3}}}",
        c.bytes_a_to_b + c.bytes_b_to_a,
        c.bytes_a_to_b,
        c.bytes_b_to_a,
        c.messages,
        c.flights,
        c.flights.div_ceil(2),
    )
}

fn main() {
    let ops: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    let mut e = SeededEntropy::new(1);
    let mut a = Journal::create(
        MemStore::new(),
        VaultId([1; 16]),
        &key(1),
        Keyring::new(EpochKey([2; 32])).with_identity(&key(1)),
        &mut e,
        T0,
        MERGE_VERSION,
    )
    .unwrap();
    a.write(
        &key(1),
        vec![
            Write::Add {
                device: device_id(&key(2)),
                role: vellum_journal::control::Role::Full,
                name: "b".into(),
            },
            Write::Add {
                device: device_id(&key(3)),
                role: vellum_journal::control::Role::Blind,
                name: "relay".into(),
            },
        ],
        &mut e,
        T0,
    )
    .unwrap();
    let mut i = 0;
    while a.op_count() < ops {
        let n = (ops - a.op_count()).min(500);
        let batch = (0..n).map(|k| note(i + k)).collect();
        a.append(&key(1), batch, &mut e, T0, Durability::Buffered)
            .unwrap();
        i += n;
    }
    let b = a
        .empty_replica_keyed(
            MemStore::new(),
            Keyring::new(EpochKey([2; 32])).with_identity(&key(2)),
        )
        .unwrap();

    // Initial sync: b holds nothing but the vault's identity.
    let sa = Session::new(&a, device_id(&key(1)), T0);
    let sb = Session::new(&b, device_id(&key(2)), T0);
    let (mut a, mut b) = ((a, sa), (b, sb));
    let started = Instant::now();
    let initial = lockstep(&mut a, &mut b);
    let initial_secs = started.elapsed().as_secs_f64();
    assert_eq!(
        a.0.admitted(),
        b.0.admitted(),
        "initial sync did not converge"
    );
    let initial_ops = b.0.op_count();
    let initial_bytes = b.0.op_bytes().unwrap();

    // Catching up: 10 new ops on a, announced (eager push) to b.
    let before = a.0.op_bytes().unwrap();
    let batch = (0..10).map(|k| note(i + k)).collect();
    a.0.append(&key(1), batch, &mut e, T0 + 2_000, Durability::Buffered)
        .unwrap();
    let new_bytes = a.0.op_bytes().unwrap() - before;
    a.1.announce(&a.0, T0 + 2_000);
    let started = Instant::now();
    let catch_up = lockstep(&mut a, &mut b);
    let catch_up_secs = started.elapsed().as_secs_f64();
    assert_eq!(a.0.admitted(), b.0.admitted(), "catch-up did not converge");

    // Initial sync of everything to a blind relay, which holds no key.
    let c =
        a.0.empty_replica_keyed(MemStore::new(), Keyring::empty().with_identity(&key(3)))
            .unwrap();
    let sa = Session::new(&a.0, device_id(&key(1)), T0 + 3_000);
    let sc = Session::new(&c, device_id(&key(3)), T0 + 3_000);
    let (mut a, mut c) = ((a.0, sa), (c, sc));
    let started = Instant::now();
    let blind = lockstep(&mut a, &mut c);
    let blind_secs = started.elapsed().as_secs_f64();
    assert_eq!(a.0.admitted(), c.0.admitted(), "the relay did not converge");
    assert!(
        c.0.ops_needing_chunk_ids(1, &Default::default())
            .unwrap()
            .is_empty(),
        "the relay was not told every op's chunks"
    );

    println!(
        "{{{}, {}, {}}}",
        json(
            "initial_sync",
            initial_ops,
            initial_bytes,
            &initial,
            initial_secs
        ),
        json("catch_up_10", 10, new_bytes, &catch_up, catch_up_secs),
        json(
            "initial_sync_blind",
            c.0.op_count(),
            c.0.op_bytes().unwrap(),
            &blind,
            blind_secs
        ),
    );
}
