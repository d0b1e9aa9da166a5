//! Pairing with real processes over loopback (DESIGN §7): `vellum invite`
//! on a device whose daemon syncs, `vellum join CODE` on a new folder,
//! then live sync; and every way an invite is refused.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use vellum_replicator::pair::Invite;

mod common;
use common::daemon::{Daemon, eventually};
use common::{Env, tree};

/// A fresh vault with a few files and a syncing daemon.
fn inviter() -> (Env, Daemon) {
    let a = Env::init();
    a.write("note.md", "# Note\nfrom a\n");
    a.write(
        "att/photo.bin",
        (0..200_000u32)
            .map(|i| (i * 7 % 251) as u8)
            .collect::<Vec<_>>(),
    );
    a.scan();
    let d = Daemon::start_net(&a, &[]);
    eventually("the daemon to listen", || {
        a.json(&["status"])["network"]["listening"]
            .as_array()
            .is_some_and(|l| !l.is_empty())
    });
    (a, d)
}

fn invite_yes(a: &Env) -> String {
    let info = a.json(&["invite", "--yes"]);
    for key in ["code", "expires_at", "qr_svg"] {
        assert!(info[key].is_string(), "{key} in {info}");
    }
    assert!(info["qr_svg"].as_str().unwrap().starts_with("<?xml"));
    info["code"].as_str().unwrap().to_string()
}

fn join(b: &Env, code: &str) -> std::process::Output {
    b.run(&["join", code, "--yes", "--name", "joiner"])
}

#[test]
fn three_devices_pair_by_code_and_stay_in_sync() {
    let (a, _da) = inviter();
    let b = a.sibling("b");
    let c = a.sibling("c");
    for other in [&b, &c] {
        let code = invite_yes(&a);
        let out = join(other, &code);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // It leaves with the vault: same files, same history.
        assert_eq!(tree(&other.vault), tree(&a.vault));
    }
    let _db = Daemon::start_net(&b, &[]);
    let _dc = Daemon::start_net(&c, &[]);
    // The joiners know where the inviter is; the inviter learns them.
    eventually("all three to connect", || {
        [&a, &b, &c]
            .iter()
            .all(|e| e.json(&["status"])["network"]["connected"].as_u64() >= Some(1))
    });
    a.write("note.md", "# Note\nfrom a\nand more from a\n");
    b.write("b.md", "from b\n");
    c.write("c.md", "from c\n");
    eventually("the three to converge", || {
        let t = tree(&a.vault);
        t.contains_key("b.md")
            && t.contains_key("c.md")
            && t["note.md"] == b"# Note\nfrom a\nand more from a\n"
            && tree(&b.vault) == t
            && tree(&c.vault) == t
    });
    eventually("the same history everywhere", || {
        let h = a.head();
        b.head() == h && c.head() == h
    });
    assert_eq!(a.json(&["log"]), b.json(&["log"]));
    assert_eq!(a.json(&["log"]), c.json(&["log"]));
    let peers = a.json(&["peers"]);
    let names: Vec<&str> = peers
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["joiner", "joiner"], "{peers}");
}

#[test]
fn the_inviter_is_asked_and_a_no_turns_the_joiner_away() {
    let (a, _da) = inviter();
    let mut invite = a
        .cmd(&["invite"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = String::new();
    eventually("the code", || {
        let mut line = String::new();
        use std::io::BufRead;
        let mut r = std::io::BufReader::new(invite.stdout.as_mut().unwrap());
        while r.read_line(&mut line).unwrap() > 0 {
            out.push_str(&line);
            if line.trim().starts_with("vellum1") {
                return true;
            }
            line.clear();
        }
        false
    });
    let code = out
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("vellum1"))
        .unwrap()
        .to_string();
    let b = a.sibling("b");
    let joiner = b
        .cmd(&["join", &code, "--yes", "--name", "stranger's laptop"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The inviter is asked (its prompt names the device and the digits),
    // and says no.
    std::thread::sleep(Duration::from_millis(300));
    invite.stdin.as_mut().unwrap().write_all(b"n\n").unwrap();
    let j = joiner.wait_with_output().unwrap();
    assert_eq!(j.status.code(), Some(1));
    let err = String::from_utf8_lossy(&j.stderr);
    assert!(err.contains("declined"), "{err}");
    let i = invite.wait_with_output().unwrap();
    let ierr = String::from_utf8_lossy(&i.stderr);
    assert_eq!(i.status.code(), Some(1), "{ierr}");
    assert!(ierr.contains("stranger's laptop"), "{ierr}");
    // Nothing of the attempt stays: the folder can be joined again.
    assert!(!b.vault.join(".vellum").exists());
    assert_eq!(a.json(&["peers"]), Value::Array(vec![]));
}

#[test]
fn with_no_daemon_running_invite_serves_until_the_device_joined() {
    let a = Env::init();
    a.write("n.md", "hosted\n");
    // The daemon `invite` starts takes the network settings from here.
    a.write(
        ".vellum/config.toml",
        "mdns = false\nlisten = [\"/ip4/127.0.0.1/tcp/0\"]\n",
    );
    let mut invite = a
        .cmd(&["invite", "--yes", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(invite.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let info: Value = serde_json::from_str(&line).unwrap();
    let b = a.sibling("b");
    let out = join(&b, info["code"].as_str().unwrap());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(b.read("n.md"), b"hosted\n");
    let st = invite.wait().unwrap();
    assert!(st.success());
}

#[test]
fn a_used_expired_or_wrong_invite_is_refused() {
    let (a, _da) = inviter();
    // Used: the second device with the same code is turned away.
    let code = invite_yes(&a);
    assert!(join(&a.sibling("b"), &code).status.success());
    let again = join(&a.sibling("c"), &code);
    assert_eq!(again.status.code(), Some(1));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("used up"), "{err}");

    // A wrong secret: refused, and the invite is dead for the right one.
    let code = invite_yes(&a);
    let mut forged = Invite::decode(&code).unwrap();
    forged.secret[0] ^= 1;
    let out = join(&a.sibling("d"), &forged.encode());
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("secret is wrong"));
    let late = join(&a.sibling("e"), &code);
    assert_eq!(late.status.code(), Some(1));

    // Expired: the invite's clock ran out (its state is kept on disk).
    let code = invite_yes(&a);
    let home = a.home.clone();
    let file = std::fs::read_dir(&home)
        .unwrap()
        .map(|e| e.unwrap().path().join("invite.json"))
        .find(|p| p.exists())
        .unwrap();
    let mut p: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    p["expires_ms"] = Value::from(1u64);
    std::fs::write(&file, serde_json::to_vec(&p).unwrap()).unwrap();
    let out = join(&a.sibling("f"), &code);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expired"));

    // Only b joined.
    assert_eq!(a.json(&["peers"]).as_array().unwrap().len(), 1);
}

#[test]
fn bad_codes_and_folders_are_one_line_errors() {
    let a = Env::init();
    let b = a.sibling("b");
    let err = b.fails(&["join", "hello"]);
    assert!(err.contains("not a vellum invite code"), "{err}");
    std::fs::create_dir_all(&b.vault).unwrap();
    std::fs::write(b.vault.join("mine.md"), "already here\n").unwrap();
    let code = Invite {
        vault: vellum_journal::VaultId([1; 16]),
        inviter: vellum_journal::DeviceId([2; 32]),
        secret: [3; 16],
        addrs: vec![],
    }
    .encode();
    let err = b.fails(&["join", &code]);
    assert!(err.contains("--merge"), "{err}");
    assert_eq!(
        std::fs::read(b.vault.join("mine.md")).unwrap(),
        b"already here\n"
    );
}

#[test]
fn join_with_merge_keeps_a_folder_that_holds_a_copy() {
    let (a, _da) = inviter();
    a.write("same.md", "identical on both\n");
    a.write("differs.md", "line one\nline two from a\n");
    a.scan();
    // B's folder holds an older copy: one file the same, one changed,
    // one only there.
    let b = a.sibling("b");
    std::fs::create_dir_all(&b.vault).unwrap();
    std::fs::write(b.vault.join("same.md"), "identical on both\n").unwrap();
    std::fs::write(b.vault.join("differs.md"), "line one\nline two from b\n").unwrap();
    std::fs::write(b.vault.join("only-b.md"), "only in b's copy\n").unwrap();
    std::fs::create_dir_all(b.vault.join("att")).unwrap();
    std::fs::write(b.vault.join("att/photo.bin"), [1u8, 2, 3]).unwrap();
    let code = invite_yes(&a);
    let out = b.run(&["join", &code, "--merge", "--yes", "--name", "copy"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Nothing was deleted, and nothing either side wrote is lost.
    assert_eq!(b.read("same.md"), b"identical on both\n");
    assert_eq!(b.read("only-b.md"), b"only in b's copy\n");
    assert_eq!(b.read("note.md"), a.read("note.md"));
    let differs = String::from_utf8(b.read("differs.md")).unwrap();
    assert!(
        differs.contains("from a") && differs.contains("from b"),
        "{differs}"
    );
    // An attachment that differs: the vault's in place, b's beside it.
    assert_eq!(b.read("att/photo.bin"), a.read("att/photo.bin"));
    let aside: Vec<_> = std::fs::read_dir(b.vault.join("att"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("(conflict"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(b.read(&format!("att/{}", aside[0])), [1u8, 2, 3]);
    // Both sides end up with the same files once they sync.
    let _db = Daemon::start_net(&b, &[]);
    eventually("a to get b's copy", || a.vault.join("only-b.md").exists());
    eventually("the two to agree", || tree(&a.vault) == tree(&b.vault));
}

#[test]
fn an_invite_needs_an_address_to_give() {
    // A daemon in a network namespace of its own whose only interface is
    // down: it serves the vault, but has no address for an invite.
    if !nix_root() {
        eprintln!("not root: a network namespace cannot be made here");
        return;
    }
    let a = Env::init();
    let mut cmd = std::process::Command::new("unshare");
    cmd.arg("-n")
        .arg(env!("CARGO_BIN_EXE_vellum"))
        .args(["serve", "--no-mdns", "--vault"])
        .arg(&a.vault)
        .env("VELLUM_HOME", &a.home);
    let d = Daemon::spawn(cmd, a.vault.join(".vellum/daemon.sock"));
    let err = a.fails(&["invite", "--yes"]);
    assert!(err.contains("no usable network interface"), "{err}");
    // It still serves everything else.
    a.write("n.md", "still recorded\n");
    eventually("the save to be recorded", || {
        a.json(&["status"])["files"].as_u64() == Some(1)
    });
    drop(d);
}

fn nix_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}
