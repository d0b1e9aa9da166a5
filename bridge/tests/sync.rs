//! Live sync between real `vellum serve` processes over real libp2p
//! connections on loopback (mDNS off): edits flow both ways and land on
//! disk byte for byte, concurrent edits merge, a mass delete from a peer
//! is held, and strangers are refused.

use std::time::Duration;

use serde_json::Value;

mod common;
use common::daemon::{Daemon, eventually};
use common::{Env, tree};

/// The first address a syncing daemon listens on, with its peer id.
fn address(env: &Env) -> String {
    let mut addr = String::new();
    eventually("the daemon to listen", || {
        let s = env.json(&["status"]);
        match s["network"]["listening"].get(0).and_then(Value::as_str) {
            Some(a) => {
                addr = a.to_string();
                true
            }
            None => false,
        }
    });
    addr
}

/// Starts syncing daemons for `envs`, each told the first one's address.
fn serve_all(envs: &[&Env]) -> Vec<Daemon> {
    let first = Daemon::start_net(envs[0], &[]);
    let addr = address(envs[0]);
    let mut out = vec![first];
    for e in &envs[1..] {
        out.push(Daemon::start_net(e, &["--peer", &addr]));
    }
    out
}

fn connected(env: &Env) -> u64 {
    env.json(&["status"])["network"]["connected"]
        .as_u64()
        .unwrap_or(0)
}

/// Waits until every vault holds the same files, byte for byte, as the
/// first, and the first holds `expect` (path → content).
fn converge(envs: &[&Env], expect: &[(&str, &[u8])]) {
    eventually("the vaults to converge", || {
        let t0 = tree(&envs[0].vault);
        expect
            .iter()
            .all(|(p, c)| t0.get(*p).map(Vec::as_slice) == Some(*c))
            && envs[1..].iter().all(|e| tree(&e.vault) == t0)
    });
}

fn heads(envs: &[&Env]) -> Vec<String> {
    envs.iter().map(|e| e.head()).collect()
}

#[test]
fn two_daemons_sync_saves_both_ways_within_moments() {
    let a = Env::init();
    a.write("note.md", "# Note\nfirst line\n");
    a.write("img/pic.png", [0u8, 1, 2, 3, 255, 254]);
    a.scan();
    let b = a.clone_to("b");
    let _d = serve_all(&[&a, &b]);
    eventually("the two to connect", || {
        connected(&a) == 1 && connected(&b) == 1
    });

    a.write("note.md", "# Note\nfirst line\nfrom a\n");
    converge(&[&a, &b], &[("note.md", b"# Note\nfirst line\nfrom a\n")]);
    b.write("new.md", "written on b\n");
    converge(&[&a, &b], &[("new.md", b"written on b\n")]);
    b.write("img/pic.png", [9u8; 70_000]);
    converge(&[&a, &b], &[("img/pic.png", &[9u8; 70_000])]);
    std::fs::remove_file(a.vault.join("new.md")).unwrap();
    eventually("the delete to reach b", || !b.vault.join("new.md").exists());

    // Both journals hold the same ops, so history is the same on both.
    eventually("the heads to agree", || {
        let h = heads(&[&a, &b]);
        h[0] == h[1]
    });
    let log_a = a.json(&["log"]);
    let log_b = b.json(&["log"]);
    assert_eq!(log_a, log_b);

    let peers = a.json(&["peers"]);
    assert_eq!(peers.as_array().unwrap().len(), 1, "{peers}");
    assert_eq!(peers[0]["connected"], true);
    assert_eq!(peers[0]["behind_ops"], 0);
}

#[test]
fn concurrent_edits_made_apart_merge_when_the_devices_meet() {
    let a = Env::init();
    a.write("plan.md", "one\ntwo\nthree\n");
    a.scan();
    let b = a.clone_to("b");
    let c = a.clone_to("c");
    // Apart: each changes its own line, and all three add a file of the
    // same name.
    a.write("plan.md", "one by a\ntwo\nthree\n");
    b.write("plan.md", "one\ntwo by b\nthree\n");
    c.write("plan.md", "one\ntwo\nthree by c\n");
    for (e, who) in [(&a, "a"), (&b, "b"), (&c, "c")] {
        e.write("same.md", format!("from {who}\n"));
        e.scan();
    }
    let _d = serve_all(&[&a, &b, &c]);
    converge(
        &[&a, &b, &c],
        &[("plan.md", b"one by a\ntwo by b\nthree by c\n")],
    );
    // Same-path creates keep every side's lines: nothing is lost.
    let same = String::from_utf8(a.read("same.md")).unwrap();
    for who in ["a", "b", "c"] {
        assert!(same.contains(&format!("from {who}")), "{same}");
    }
    eventually("the heads to agree", || {
        let h = heads(&[&a, &b, &c]);
        h[0] == h[1] && h[1] == h[2]
    });
}

#[test]
fn a_mass_delete_from_a_peer_is_held_and_the_files_stay() {
    let a = Env::init();
    for i in 0..30 {
        a.write(&format!("notes/n{i}.md"), format!("note {i}\n"));
    }
    a.scan();
    let b = a.clone_to("b");
    let _d = serve_all(&[&a, &b]);
    eventually("the two to connect", || connected(&b) == 1);
    // While b's daemon runs, a loses most of its notes at once.
    for i in 0..25 {
        std::fs::remove_file(a.vault.join(format!("notes/n{i}.md"))).unwrap();
    }
    eventually("b to hold the deletes", || {
        b.json(&["status"])["quarantined"].as_u64() == Some(25)
    });
    // The ops are in b's journal; the files are still on its disk.
    assert_eq!(b.head(), a.head());
    for i in 0..30 {
        assert!(b.vault.join(format!("notes/n{i}.md")).exists(), "n{i}");
    }
    // Rejecting writes the files back as new ops, which reach a too.
    let held = b.json(&["quarantine", "list"]);
    let id = held[0]["id"].as_str().unwrap().to_string();
    b.ok(&["quarantine", "reject", &id]);
    eventually("a to get its notes back", || {
        (0..30).all(|i| a.vault.join(format!("notes/n{i}.md")).exists())
    });
    assert_eq!(a.read("notes/n3.md"), b"note 3\n");
}

#[test]
fn a_device_of_another_vault_is_refused_before_any_data() {
    let a = Env::init();
    a.write("secret.md", "only for members\n");
    a.scan();
    let stranger = a.sibling("stranger");
    std::fs::create_dir_all(&stranger.vault).unwrap();
    stranger.ok(&["init", "--name", "stranger"]);
    let ops_before = stranger.json(&["status"])["ops"].clone();
    let da = Daemon::start_net(&a, &[]);
    let addr = address(&a);
    let _ds = Daemon::start_net(&stranger, &["--peer", &addr]);
    eventually("a to refuse the stranger", || {
        da.stderr
            .lock()
            .unwrap()
            .contains("refused a connection from a device that is not a member")
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(!stranger.vault.join("secret.md").exists());
    assert_eq!(connected(&a), 0);
    assert_eq!(stranger.json(&["status"])["ops"], ops_before);
}

#[test]
fn a_listen_address_in_use_is_one_clear_error() {
    let a = Env::init();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let listen = format!("/ip4/127.0.0.1/tcp/{port}");
    let out = a.run(&["serve", "--no-mdns", "--listen", &listen]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("cannot listen on"), "{err}");
    assert!(err.contains("--listen"), "{err}");
    // Nothing was left running: the vault is free for the next command.
    a.ok(&["status"]);
}

#[test]
fn a_bad_peer_address_is_a_user_error() {
    let a = Env::init();
    let err = a.fails(&["serve", "--no-mdns", "--peer", "/ip4/127.0.0.1/tcp/1"]);
    assert!(err.contains("/p2p/"), "{err}");
    let err = a.fails(&["serve", "--no-mdns", "--listen", "not an address"]);
    assert!(err.contains("not a libp2p address"), "{err}");
}

#[test]
fn a_device_that_was_offline_neither_resurrects_nor_loses_files() {
    let a = Env::init();
    for n in ["keep", "gone1", "gone2", "edited"] {
        a.write(&format!("{n}.md"), format!("{n}\n"));
    }
    a.scan();
    let b = a.clone_to("b");
    let da = Daemon::start_net(&a, &[]);
    let addr = address(&a);
    let db = Daemon::start_net(&b, &["--peer", &addr]);
    eventually("the two to connect", || connected(&a) == 1);
    // B goes offline; meanwhile A deletes two notes and edits one, and B
    // (offline) edits another and writes a new one.
    let _ = db.stop();
    std::fs::remove_file(a.vault.join("gone1.md")).unwrap();
    std::fs::remove_file(a.vault.join("gone2.md")).unwrap();
    a.write("edited.md", "edited\nby a while b was away\n");
    eventually("a to record it", || {
        a.json(&["log", "--limit", "5"])
            .as_array()
            .is_some_and(|l| l.iter().filter(|e| e["kind"] == "delete").count() == 2)
    });
    b.write("keep.md", "keep\nand b's offline line\n");
    b.write("new-on-b.md", "new\n");
    // B comes back: its startup scan records its own changes, then sync.
    let _db = Daemon::start_net(&b, &["--peer", &addr]);
    converge(
        &[&a, &b],
        &[
            ("keep.md", b"keep\nand b's offline line\n"),
            ("edited.md", b"edited\nby a while b was away\n"),
            ("new-on-b.md", b"new\n"),
        ],
    );
    for e in [&a, &b] {
        assert!(!e.vault.join("gone1.md").exists());
        assert!(!e.vault.join("gone2.md").exists());
    }
    assert_eq!(b.json(&["status"])["quarantined"], 0);
    drop(da);
}

fn chunks_received(env: &Env) -> u64 {
    env.json(&["status"])["network"]["chunks_received"]
        .as_u64()
        .unwrap_or(0)
}

/// Incompressible bytes that do not repeat (so no chunk dedups).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[test]
fn a_daemon_killed_mid_transfer_resumes_without_fetching_stored_chunks_again() {
    const SIZE: usize = 200 << 20;
    let a = Env::init();
    a.write("note.md", "a note\n");
    a.scan();
    let b = a.clone_to("b");
    let _da = Daemon::start_net(&a, &[]);
    let addr = address(&a);
    let db = Daemon::start_net(&b, &["--peer", &addr]);
    eventually("the two to connect", || connected(&b) == 1);
    // The attachment lands in A's vault at once (a rename), as a save would.
    let big = noise(SIZE, 42);
    let staging = a.tmp.path().join("big.bin");
    std::fs::write(&staging, &big).unwrap();
    std::fs::rename(&staging, a.vault.join("big.bin")).unwrap();
    // Let B take about a third of it, then kill it without warning.
    let mut before = 0;
    common::daemon::eventually_within("B to be partway", Duration::from_secs(120), || {
        before = chunks_received(&b);
        before >= 1000
    });
    drop(db);
    assert!(
        !b.vault.join("big.bin").exists(),
        "B finished before the kill"
    );
    let _db = Daemon::start_net(&b, &["--peer", &addr]);
    common::daemon::eventually_within("B to hold the attachment", Duration::from_secs(180), || {
        std::fs::metadata(b.vault.join("big.bin")).is_ok_and(|m| m.len() == SIZE as u64)
    });
    assert!(std::fs::read(b.vault.join("big.bin")).unwrap() == big);
    let after = chunks_received(&b);
    // Every chunk of the vault, as an export counts them.
    let export = a.tmp.path().join("all.vx");
    let total = a.json(&["export", export.to_str().unwrap()])["chunks"]
        .as_u64()
        .unwrap();
    eprintln!("{total} chunks: {before} or more before the kill, {after} after the restart");
    // One WantChunks may have been in flight at the kill: at most 64
    // chunks (4 MiB of credit at the 64 KiB average) come twice.
    assert!(
        after + before <= total + 64,
        "fetched again: {before} before, {after} after, of {total}"
    );
}

#[test]
fn a_device_restored_from_an_old_copy_takes_a_new_identity_and_loses_nothing() {
    let a = Env::init();
    a.write("a.md", "from a\n");
    a.scan();
    let b = a.clone_to("b");
    let _da = Daemon::start_net(&a, &[]);
    let addr = address(&a);
    // A backup of B's folder, made while B is stopped.
    let backup = a.tmp.path().join("b-backup");
    let copied = std::process::Command::new("cp")
        .args(["-a", b.vault.to_str().unwrap(), backup.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(copied.success());
    // B works on and syncs; then its folder is restored from the backup.
    let db = Daemon::start_net(&b, &["--peer", &addr]);
    b.write("after-backup.md", "written after the backup\n");
    eventually("A to have B's note", || {
        a.vault.join("after-backup.md").exists()
    });
    let old_id = b.json(&["status"])["device"].as_str().unwrap().to_string();
    let _ = db.stop();
    std::fs::remove_dir_all(&b.vault).unwrap();
    std::fs::rename(&backup, &b.vault).unwrap();
    // Back from the backup, B gets its own newer ops from A, then goes on
    // under a new identity; nothing written anywhere is lost.
    let _db = Daemon::start_net(&b, &["--peer", &addr]);
    eventually("B to take a new identity", || {
        let s = b.json(&["status"]);
        s["stale"].is_null() && s["device"].as_str() != Some(old_id.as_str())
    });
    assert_eq!(b.read("after-backup.md"), b"written after the backup\n");
    b.write("new-identity.md", "written by the new identity\n");
    converge(
        &[&a, &b],
        &[("new-identity.md", b"written by the new identity\n")],
    );
    eventually("A to see B under its new id", || {
        let peers = a.json(&["peers"]);
        let new_id = b.json(&["status"])["device"].as_str().unwrap().to_string();
        peers
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["device"] == new_id.as_str() && p["connected"] == true)
    });
}

#[test]
fn a_removed_device_can_no_longer_connect_nor_read_what_follows() {
    let a = Env::init();
    a.write("before.md", "everyone may read this\n");
    a.scan();
    let b = a.clone_to("b");
    let c = a.clone_to("c");
    let _da = Daemon::start_net(&a, &[]);
    let addr = address(&a);
    let _db = Daemon::start_net(&b, &["--peer", &addr]);
    let _dc = Daemon::start_net(&c, &["--peer", &addr]);
    eventually("all to connect", || connected(&a) == 2);
    let c_id = c.json(&["status"])["device"].as_str().unwrap().to_string();
    // Names are not unique (both clones are "… (clone)"): by id prefix.
    let removed = a.json(&["member", "remove", &c_id[..10]]);
    assert_eq!(removed["device"], c_id.as_str());
    assert!(!removed["ops"].as_array().unwrap().is_empty(), "{removed}");
    eventually("c to be cut off", || connected(&a) == 1);
    a.write("after.md", "not for the removed device\n");
    eventually("b to get the new note", || {
        b.vault.join("after.md").exists()
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(!c.vault.join("after.md").exists());
    assert_eq!(connected(&c), 0);
    // Even holding the ops, it cannot open them: they are sealed under a
    // key it was never given. Its replay waits; the file never appears.
    let export = a.export("all.vx");
    let _ = c.run(&["import", export.to_str().unwrap()]);
    assert!(!c.vault.join("after.md").exists());
    let err = c.fails(&["show", "after.md"]);
    assert!(!err.is_empty());
    // Removing it again, or this device, is a clear error.
    let err = a.fails(&["member", "remove", &c_id[..10]]);
    assert!(err.contains("no member"), "{err}");
    let me = a.json(&["status"])["device"].as_str().unwrap().to_string();
    let err = a.fails(&["member", "remove", &me[..10]]);
    assert!(err.contains("this device"), "{err}");
}

#[test]
fn two_daemons_sync_over_quic_alone() {
    let a = Env::init();
    let b = a.clone_to("b");
    let quic = "/ip4/127.0.0.1/udp/0/quic-v1";
    let _da = Daemon::serve(&a, &["--no-mdns", "--listen", quic], Some("info"));
    let addr = address(&a);
    assert!(addr.contains("/quic-v1/"), "{addr}");
    let _db = Daemon::serve(
        &b,
        &["--no-mdns", "--listen", quic, "--peer", &addr],
        Some("info"),
    );
    a.write("over-quic.md", "carried by QUIC\n");
    converge(&[&a, &b], &[("over-quic.md", b"carried by QUIC\n")]);
}

#[test]
fn a_member_sending_garbage_is_cut_off_and_the_daemon_goes_on() {
    use vellum_replicator::net::{NetEvent, StreamKind};
    let a = Env::init();
    let b = a.clone_to("b");
    let c = a.clone_to("c");
    let da = Daemon::start_net(&a, &[]);
    let addr = address(&a);
    let status = a.json(&["status"]);
    let vault = vellum_journal::VaultId::from_hex(status["vault"].as_str().unwrap()).unwrap();
    let a_id = vellum_journal::DeviceId::from_hex(status["device"].as_str().unwrap()).unwrap();
    // B's own key, driven by hand: a member whose messages are garbage.
    let instance = std::fs::read_to_string(b.vault.join(".vellum/instance")).unwrap();
    let seed: [u8; 32] = std::fs::read(b.home.join(instance.trim()).join("device.key"))
        .unwrap()
        .try_into()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let closed = rt.block_on(async {
        let (node, mut rx) = common::hand_node(vault, seed);
        node.set_members([a_id].into());
        node.dial(a_id, vec![addr.parse().unwrap()]);
        let until = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut stream = None;
        loop {
            let ev = tokio::time::timeout_at(until, rx.recv()).await;
            match ev {
                Ok(Some(NetEvent::Opened {
                    stream: s,
                    kind: StreamKind::Sync,
                    ..
                })) => {
                    stream = Some(s);
                    node.send(s, b"\x01\x63 not a message".to_vec()).unwrap();
                }
                Ok(Some(NetEvent::Closed { stream: s, .. })) if Some(s) == stream => break true,
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break false,
            }
        }
    });
    assert!(closed, "A never closed the stream");
    eventually("A to log the misbehaviour", || {
        da.stderr
            .lock()
            .unwrap()
            .contains("disconnected a peer that broke the protocol")
    });
    // A serves on: another member syncs with it as before.
    let _dc = Daemon::start_net(&c, &["--peer", &addr]);
    a.write("after.md", "still syncing\n");
    eventually("c to get the note", || c.vault.join("after.md").exists());
    drop(rt);
}

#[test]
fn a_member_added_while_another_rotated_the_key_is_given_it() {
    let a = Env::init();
    a.write("start.md", "start\n");
    a.scan();
    let d = a.clone_to("d");
    let b = a.clone_to("b");
    // Apart: A adds C, while B removes D, which rotates the key: B seals
    // the new key to the members it knows, and C is not one of them.
    let c = a.clone_to("c");
    let d_id = d.json(&["status"])["device"].as_str().unwrap().to_string();
    b.ok(&["member", "remove", &d_id[..10]]);
    b.write("secret-after-rotation.md", "sealed under the new key\n");
    b.scan();
    let _da = Daemon::start_net(&a, &[]);
    let addr = address(&a);
    let _db = Daemon::start_net(&b, &["--peer", &addr]);
    let _dc = Daemon::start_net(&c, &["--peer", &addr]);
    // A (or B) sees C lacks the new key and shares it; C can read on.
    eventually("c to read what b wrote after the rotation", || {
        c.vault.join("secret-after-rotation.md").exists()
    });
    assert_eq!(
        c.read("secret-after-rotation.md"),
        b"sealed under the new key\n"
    );
    assert!(!d.vault.join("secret-after-rotation.md").exists());
}
