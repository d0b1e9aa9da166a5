//! Pairing with real processes over loopback (DESIGN §7): `vellum invite`
//! on a device whose daemon syncs, `vellum join CODE` on a new folder,
//! then live sync; and every way an invite is refused.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use vellum_replicator::pair::Invite;

mod common;
use common::daemon::{Daemon, eventually, eventually_explained};
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

/// The long code on a line `vellum invite` printed.
fn code_in(line: &str) -> Option<String> {
    line.split_whitespace()
        .find(|w| w.starts_with("vellum1"))
        .map(str::to_string)
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
    eventually_explained("the three to converge", || {
        let files = |e: &Env| -> Vec<String> {
            tree(&e.vault)
                .iter()
                .map(|(p, c)| format!("{p}:{}", c.len()))
                .collect()
        };
        let t = tree(&a.vault);
        let done = t.contains_key("b.md")
            && t.contains_key("c.md")
            && t["note.md"] == b"# Note\nfrom a\nand more from a\n"
            && tree(&b.vault) == t
            && tree(&c.vault) == t;
        match done {
            true => Ok(()),
            false => Err(format!(
                "a {:?}, b {:?}, c {:?}",
                files(&a),
                files(&b),
                files(&c)
            )),
        }
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
    let (mut invite, code) = invite_asking(&a);
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
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("secret is wrong"), "{err}");
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
    a.write(".obsidian/app.json", "{\n  \"spellcheck\": true\n}\n");
    a.write("board.canvas", "{\"nodes\":[\n{\"id\":\"a\"}\n]}\n");
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
    // JSON that differs: Obsidian's settings of a freshly made vault, and
    // a canvas. Their lines joined would not parse.
    std::fs::create_dir_all(b.vault.join(".obsidian")).unwrap();
    let b_app = "{\n  \"spellcheck\": false\n}\n";
    std::fs::write(b.vault.join(".obsidian/app.json"), b_app).unwrap();
    let b_canvas = "{\"nodes\":[\n{\"id\":\"b\"}\n]}\n";
    std::fs::write(b.vault.join("board.canvas"), b_canvas).unwrap();
    let code = invite_yes(&a);
    let out = b.run(&[
        "join", &code, "--merge", "--yes", "--name", "copy", "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut aside: Vec<String> = report["aside"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect();
    aside.sort();
    assert_eq!(aside.len(), 3, "{aside:?}");
    // Each JSON file: the vault's in place, this folder's kept beside it,
    // both still JSON.
    for (path, mine) in [(".obsidian/app.json", b_app), ("board.canvas", b_canvas)] {
        assert_eq!(b.read(path), a.read(path), "{path}");
        let stem = path.rsplit_once('.').unwrap().0;
        let kept = aside
            .iter()
            .find(|n| n.starts_with(&format!("{stem} (conflict")))
            .unwrap_or_else(|| panic!("{path} kept aside: {aside:?}"));
        assert_eq!(b.read(kept), mine.as_bytes(), "{kept}");
        for bytes in [b.read(path), b.read(kept)] {
            serde_json::from_slice::<serde_json::Value>(&bytes).expect("still JSON");
        }
    }
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
    assert!(report["aside"].to_string().contains(&aside[0]));
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

/// What the device in the middle saw: the digits the inviter computed, and
/// the digits the joiner computed (which the middle can work out too).
struct Middle {
    inviter_sas: Option<String>,
    joiner_sas: Option<String>,
}

/// A device in the middle of a pairing: it holds the invite's secret (it
/// handed the joiner a code naming itself instead of the inviter), answers
/// the joiner as an inviter and the inviter as a joiner, and relays. With
/// `forward_digits`, it passes the inviter's `Approving` on as is;
/// otherwise it sends the joiner the digits the joiner expects.
fn run_middle(code: &str, forward_digits: bool) -> (String, std::thread::JoinHandle<Middle>) {
    use vellum_replicator::net::{self, NetEvent, StreamKind};
    use vellum_replicator::pair::{PairMsg, Transcript};
    let real = Invite::decode(code).unwrap();
    let seed: [u8; 32] = rand::random();
    let me = vellum_journal::keys::device_id(&vellum_journal::keys::SigningKey::from_bytes(&seed));
    let (code_tx, code_rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let (node, mut rx) = common::hand_node(real.vault, seed);
            node.set_invite(true);
            let inviter_addrs = real
                .addrs
                .iter()
                .filter_map(|a| net::Multiaddr::try_from(a.clone()).ok())
                .collect();
            node.dial(real.inviter, inviter_addrs);
            node.open_pair(real.inviter);
            let inviter_peer = net::peer_id(&real.inviter).unwrap().to_bytes();
            let my_peer = net::peer_id(&me).unwrap().to_bytes();
            let mut seen = Middle {
                inviter_sas: None,
                joiner_sas: None,
            };
            let (mut to_inviter, mut to_joiner) = (None, None);
            let mut waiting: Vec<Vec<u8>> = Vec::new();
            let (mut joiner_peer, mut nonce_i, mut nonce_j) = (Vec::new(), [0u8; 32], [0u8; 32]);
            let until = tokio::time::Instant::now() + Duration::from_secs(30);
            while let Ok(Some(ev)) = tokio::time::timeout_at(until, rx.recv()).await {
                match ev {
                    NetEvent::Listening { addr } => {
                        let forged = Invite {
                            vault: real.vault,
                            inviter: me,
                            secret: real.secret,
                            addrs: vec![addr.to_vec()],
                        };
                        let _ = code_tx.send(forged.encode());
                    }
                    NetEvent::Opened {
                        peer,
                        stream,
                        kind: StreamKind::Pair,
                    } if peer == real.inviter => {
                        to_inviter = Some(stream);
                        for m in waiting.drain(..) {
                            let _ = node.send(stream, m);
                        }
                    }
                    NetEvent::Opened {
                        peer,
                        stream,
                        kind: StreamKind::Pair,
                    } => {
                        joiner_peer = net::peer_id(&peer).unwrap().to_bytes();
                        to_joiner = Some(stream);
                    }
                    NetEvent::Frame { stream, bytes, .. } if Some(stream) == to_joiner => {
                        let relay = match PairMsg::decode(&bytes).unwrap() {
                            PairMsg::Hello { nonce, .. } => {
                                nonce_j = nonce;
                                bytes
                            }
                            // The joiner's proof names this device as the
                            // inviter: the real inviter needs one naming
                            // this device as the joiner.
                            PairMsg::Proof { .. } => PairMsg::Proof {
                                mac: Transcript::new(
                                    &real.vault,
                                    &inviter_peer,
                                    &my_peer,
                                    &nonce_i,
                                    &nonce_j,
                                )
                                .proof(&real.secret),
                            }
                            .encode(),
                            _ => bytes,
                        };
                        match to_inviter {
                            Some(s) => {
                                let _ = node.send(s, relay);
                            }
                            None => waiting.push(relay),
                        }
                    }
                    NetEvent::Frame { stream, bytes, .. } if Some(stream) == to_inviter => {
                        let relay = match PairMsg::decode(&bytes).unwrap() {
                            PairMsg::Challenge { nonce } => {
                                nonce_i = nonce;
                                bytes
                            }
                            PairMsg::Approving { sas } => {
                                let theirs = Transcript::new(
                                    &real.vault,
                                    &my_peer,
                                    &joiner_peer,
                                    &nonce_i,
                                    &nonce_j,
                                )
                                .sas(&real.secret);
                                seen.inviter_sas = Some(sas);
                                seen.joiner_sas = Some(theirs.clone());
                                if forward_digits {
                                    bytes
                                } else {
                                    PairMsg::Approving { sas: theirs }.encode()
                                }
                            }
                            _ => bytes,
                        };
                        if let Some(s) = to_joiner {
                            let _ = node.send(s, relay);
                        }
                    }
                    NetEvent::Closed { stream, .. }
                        if Some(stream) == to_joiner || Some(stream) == to_inviter =>
                    {
                        break;
                    }
                    _ => {}
                }
            }
            node.shutdown();
            seen
        })
    });
    let forged = code_rx.recv_timeout(Duration::from_secs(20)).unwrap();
    (forged, thread)
}

/// `vellum invite` without `--yes`: the running process and its code.
fn invite_asking(a: &Env) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut invite = a
        .cmd(&["invite"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut r = std::io::BufReader::new(invite.stdout.take().unwrap());
    let mut line = String::new();
    let code = loop {
        line.clear();
        assert!(r.read_line(&mut line).unwrap() > 0, "no code printed");
        if let Some(code) = code_in(&line) {
            break code;
        }
    };
    // The rest (the QR code) is read as a terminal would.
    std::thread::spawn(move || std::io::copy(&mut r, &mut std::io::sink()));
    (invite, code)
}

/// Reads `child`'s stderr up to the line holding "digits", and returns the
/// six digits on it.
fn digits_shown(stderr: &mut impl std::io::BufRead) -> String {
    let mut line = String::new();
    let mut said = String::new();
    loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "no digits shown; it said: {said}"
        );
        said.push_str(&line);
        if let Some(at) = line.find("digits ") {
            return line[at + 7..]
                .chars()
                .filter(char::is_ascii_digit)
                .take(6)
                .collect();
        }
    }
}

#[test]
fn a_device_in_the_middle_makes_the_two_devices_show_different_digits() {
    let (a, _da) = inviter();
    let (mut invite, code) = invite_asking(&a);
    let (forged, middle) = run_middle(&code, false);
    let b = a.sibling("b");
    let mut joiner = b
        .cmd(&["join", &forged, "--yes", "--name", "joiner"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Each real process shows the digits of its own transcript: the
    // inviter's names the middle as the joiner, the joiner's names the
    // middle as the inviter. The people comparing them see them differ.
    let mut inviter_err = std::io::BufReader::new(invite.stderr.take().unwrap());
    let inviter_digits = digits_shown(&mut inviter_err);
    let mut joiner_err = std::io::BufReader::new(joiner.stderr.take().unwrap());
    let joiner_digits = digits_shown(&mut joiner_err);
    assert_eq!(inviter_digits.len(), 6);
    assert_eq!(joiner_digits.len(), 6);
    assert_ne!(inviter_digits, joiner_digits);
    // So the person at the inviter says no, and nobody joins.
    invite.stdin.as_mut().unwrap().write_all(b"n\n").unwrap();
    assert_eq!(invite.wait().unwrap().code(), Some(1));
    assert_eq!(joiner.wait().unwrap().code(), Some(1));
    let seen = middle.join().unwrap();
    assert_eq!(seen.inviter_sas.as_deref(), Some(inviter_digits.as_str()));
    assert_eq!(seen.joiner_sas.as_deref(), Some(joiner_digits.as_str()));
    assert!(!b.vault.join(".vellum").exists());
    assert_eq!(a.json(&["peers"]), Value::Array(vec![]));
}

#[test]
fn a_joiner_refuses_an_inviter_whose_digits_differ_from_its_own() {
    let (a, _da) = inviter();
    let (mut invite, code) = invite_asking(&a);
    // The middle passes the real inviter's digits on unchanged.
    let (forged, middle) = run_middle(&code, true);
    let b = a.sibling("b");
    let out = b.run(&["join", &forged, "--yes", "--name", "joiner"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("someone may be in between"), "{err}");
    let seen = middle.join().unwrap();
    assert_ne!(seen.inviter_sas, seen.joiner_sas);
    assert!(!b.vault.join(".vellum").exists());
    let _ = invite.kill();
    let _ = invite.wait();
    assert_eq!(a.json(&["peers"]), Value::Array(vec![]));
}
