//! Tamper evidence and crash safety, on the real fjall journal.

mod common;

use std::ops::{Bound, ControlFlow};
use std::process::Stdio;
use std::time::Duration;

use common::Env;
use vellum_journal::VersionVector;
use vellum_journal::store::{Batch, Durability, FjallStore, Ks, Store};

/// The stored ops: (order key, seq ‖ envelope).
fn stored_ops(env: &Env) -> Vec<(Vec<u8>, Vec<u8>)> {
    let store = FjallStore::open(&env.vault.join(".vellum/journal")).unwrap();
    let mut ops = Vec::new();
    store
        .scan(
            Ks::Order,
            (Bound::Unbounded, Bound::Unbounded),
            false,
            &mut |k, v| {
                ops.push((k.to_vec(), v.to_vec()));
                ControlFlow::Continue(())
            },
        )
        .unwrap();
    ops
}

/// Flip one byte of one stored op: `verify` must fail and name that op.
#[test]
fn verify_names_a_tampered_op() {
    let env = Env::init();
    env.write("a.md", "alpha\n");
    env.write("b.bin", vec![7u8; 70_000]);
    env.scan();
    env.write("a.md", "alpha\nbeta\n");
    env.scan();
    assert!(env.json(&["verify"])["ok"].as_bool().unwrap());
    let ops = stored_ops(&env);
    // Every op, and positions spread over the header, ciphertext and signature.
    for (key, value) in &ops {
        // The record is seq (8 bytes) ‖ envelope: flip the seq too.
        for pos in [
            0,
            8,
            9,
            28,
            68,
            value.len() / 2,
            value.len() - 70,
            value.len() - 1,
        ] {
            let mut bad = value.clone();
            bad[pos] ^= 0x20;
            {
                let store = FjallStore::open(&env.vault.join(".vellum/journal")).unwrap();
                let mut b = Batch::new();
                b.put(Ks::Order, key.clone(), bad);
                store.commit(b, Durability::Durable).unwrap();
            }
            let out = env.run(&["verify", "--json"]);
            assert_eq!(out.status.code(), Some(1), "flip at {pos} went unnoticed");
            let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let short = &vellum_journal::id::hex(&key[40..])[..12];
            assert_eq!(report["first_bad"], short, "flip at {pos}: {report}");
            assert!(String::from_utf8_lossy(&out.stderr).contains(short));
            // Put the good bytes back for the next round.
            let store = FjallStore::open(&env.vault.join(".vellum/journal")).unwrap();
            let mut b = Batch::new();
            b.put(Ks::Order, key.clone(), value.clone());
            store.commit(b, Durability::Durable).unwrap();
        }
    }
    assert!(env.json(&["verify"])["ok"].as_bool().unwrap());
}

/// A damaged blob chunk is found by verify.
#[test]
fn verify_finds_a_damaged_chunk() {
    let env = Env::init();
    env.write(
        "big.bin",
        (0..200_000u32)
            .map(|i| (i * 7 % 251) as u8)
            .collect::<Vec<_>>(),
    );
    env.scan();
    {
        let store = FjallStore::open(&env.vault.join(".vellum/journal")).unwrap();
        let mut first = None;
        store
            .scan(
                Ks::Chunks,
                (Bound::Unbounded, Bound::Unbounded),
                false,
                &mut |k, v| {
                    first = Some((k.to_vec(), v.to_vec()));
                    ControlFlow::Break(())
                },
            )
            .unwrap();
        let (k, mut v) = first.unwrap();
        v[40] ^= 1;
        let mut b = Batch::new();
        b.put(Ks::Chunks, k, v);
        store.commit(b, Durability::Durable).unwrap();
    }
    let out = env.run(&["verify", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["reason"].as_str().unwrap().contains("chunk"),
        "{report}"
    );
}

/// kill -9 a long run of scans at random moments: after each kill the
/// vault reopens, verifies, and still holds every acknowledged op.
#[test]
fn kill_dash_nine_during_scans_loses_no_acknowledged_op() {
    let env = Env::init();
    let mut acknowledged: Vec<VersionVector> = Vec::new();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for round in 0..12 {
        // Enough changes that a scan takes a while, so kills land mid-way.
        for i in 0..300 {
            env.write(
                &format!("r{round}/n{i}.md"),
                format!("round {round} note {i}\n{}", "text ".repeat(50)),
            );
        }
        if round % 3 == 2 {
            // Let one scan finish: it is acknowledged.
            let head = env.scan()["head"].as_str().unwrap().to_string();
            acknowledged.push(VersionVector::parse_point(&head).unwrap());
            continue;
        }
        let mut child = env
            .cmd(&["scan"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(5 + next() % 120));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let report = env.json(&["verify"]);
        assert!(report["ok"].as_bool().unwrap(), "round {round}: {report}");
        let head = VersionVector::parse_point(&env.head()).unwrap();
        for a in &acknowledged {
            assert!(a.le(&head), "round {round}: an acknowledged op was lost");
        }
    }
    // Whatever was interrupted is picked up by the next scan.
    env.scan();
    assert_eq!(env.json(&["status"])["files"], 12 * 300);
    assert!(env.json(&["verify"])["ok"].as_bool().unwrap());
}

/// Cut bytes off the end of fjall's journal file: the vault reopens at the
/// last intact op and verifies.
#[test]
fn truncated_journal_reopens_to_the_last_durable_op() {
    let env = Env::init();
    for i in 0..5 {
        env.write(&format!("n{i}.md"), format!("note {i}\n"));
        env.scan();
    }
    let jnl_dir = env.vault.join(".vellum/journal");
    let mut journals: Vec<_> = std::fs::read_dir(&jnl_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jnl"))
        .collect();
    journals.sort();
    let last = journals.last().expect("a fjall journal file");
    let len = std::fs::metadata(last).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(last).unwrap();
    f.set_len(len - 40).unwrap();
    drop(f);
    let status = env.json(&["status"]);
    assert!(status["ops"].as_u64().unwrap() >= 3, "{status}");
    assert!(env.json(&["verify"])["ok"].as_bool().unwrap());
    // Whatever the cut lost is recorded again by the next scan.
    env.scan();
    assert_eq!(env.json(&["status"])["files"], 5);
}
