//! The internet setting with real processes on loopback (mDNS off): a
//! `vellum relay`, and daemons that hold reservations on it, pair through
//! it, reconnect through it when their direct addresses went stale, and
//! then move to a direct connection.
//!
//! Loopback cannot keep two devices from reaching each other directly;
//! `scripts/netns-partition-test` runs two devices that only the relay
//! can join.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

mod common;
use common::daemon::{Daemon, eventually, wait_bounded};
use common::{Env, tree};

/// A running `vellum relay`; its stdout lines are gathered as they come.
struct Relay {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Relay {
    fn start(env: &Env) -> Relay {
        let mut child = env
            .cmd(&["relay", "--listen", "/ip4/127.0.0.1/tcp/0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start vellum relay");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(l);
            }
        });
        Relay { child, lines }
    }

    /// The first address it printed.
    fn address(&self) -> String {
        let mut addr = String::new();
        eventually("the relay to print its address", || {
            let lines = self.lines.lock().unwrap();
            match lines.iter().find_map(|l| l.strip_prefix("address ")) {
                Some(a) => {
                    addr = a.to_string();
                    true
                }
                None => false,
            }
        });
        addr
    }

    fn printed(&self, prefix: &str, needle: &str) -> bool {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.starts_with(prefix) && l.contains(needle))
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        wait_bounded(&mut self.child, Duration::from_secs(10));
    }
}

fn status(env: &Env) -> Value {
    env.json(&["status"])
}

fn peer_id(env: &Env) -> String {
    status(env)["network"]["peer_id"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Whether the daemon listens through the relay (its reservation is up).
fn relayed_listen(env: &Env) -> bool {
    status(env)["network"]["listening"]
        .as_array()
        .is_some_and(|l| {
            l.iter()
                .any(|a| a.as_str().is_some_and(|a| a.contains("/p2p-circuit/")))
        })
}

fn connected(env: &Env) -> u64 {
    status(env)["network"]["connected"].as_u64().unwrap_or(0)
}

#[test]
fn with_a_relay_devices_pair_and_find_each_other_again_after_their_addresses_change() {
    let a = Env::init();
    a.write("note.md", "# Note\n");
    a.scan();
    let relay = Relay::start(&a.sibling("relay"));
    let r = relay.address();
    let serve = |env: &Env, relay: &[&str]| {
        let mut args = vec!["--relay"];
        args.extend_from_slice(relay);
        Daemon::start_net(env, if relay.is_empty() { &[] } else { &args })
    };

    let da = serve(&a, &[&r]);
    eventually("a's reservation on the relay", || relayed_listen(&a));
    let a_id = peer_id(&a);
    assert!(
        relay.printed("reserved ", &a_id),
        "the relay saw a's reservation"
    );

    // The invite carries the relayed address; the joiner keeps the relay.
    let invite = a.json(&["invite", "--yes"]);
    let code = invite["code"].as_str().unwrap();
    let decoded = vellum_replicator::pair::Invite::decode(code).unwrap();
    let circuit = decoded
        .addrs
        .iter()
        .filter_map(|b| vellum_replicator::net::Multiaddr::try_from(b.clone()).ok())
        .find(vellum_replicator::net::is_relayed)
        .expect("the code names a relayed address");
    assert!(
        circuit.to_string().starts_with(&r),
        "{circuit} goes through {r}"
    );
    let b = a.sibling("b");
    let joined = b.run(&["join", code, "--yes", "--name", "device-b"]);
    assert!(
        joined.status.success(),
        "{}",
        String::from_utf8_lossy(&joined.stderr)
    );
    let config = std::fs::read_to_string(b.vault.join(".vellum/config.toml")).unwrap();
    assert!(
        config.contains("internet = true") && config.contains(&r),
        "joining through a code with a relay turns internet on with that relay:\n{config}"
    );
    drop(da);

    // Both start again on new ports, so the addresses each has of the
    // other are stale. Each still finds the other: through the relay (b
    // has it from its config.toml), whose DHT also knows their new
    // direct addresses.
    let da = serve(&a, &[&r]);
    let db = serve(&b, &[]);
    eventually("a and b to reach each other again", || {
        connected(&a) == 1 && connected(&b) == 1
    });
    let b_id = peer_id(&b);
    eventually("b's reservation on the relay", || {
        relay.printed("reserved ", &b_id)
    });
    a.write("note.md", "# Note\nfrom a\n");
    b.write("b.md", "from b\n");
    eventually("edits to flow both ways", || {
        let (ta, tb) = (tree(&a.vault), tree(&b.vault));
        ta == tb && ta.get("b.md").map(Vec::as_slice) == Some(b"from b\n".as_slice())
    });
    assert_eq!(b.read("note.md"), b"# Note\nfrom a\n");
    // Where a direct connection is possible, it is the one kept.
    for env in [&a, &b] {
        eventually("a direct connection between them", || {
            let peers = env.json(&["peers"]);
            peers[0]["connected"] == true
                && peers[0]["addr"]
                    .as_str()
                    .is_some_and(|a| !a.contains("p2p-circuit"))
        });
    }
    drop((da, db));
}

#[test]
fn a_relay_address_without_its_peer_id_is_one_clear_error() {
    let a = Env::init();
    let out = a.run(&["serve", "--no-mdns", "--relay", "/ip4/127.0.0.1/tcp/4101"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("does not end in /p2p/<peer id>"), "{err}");
}

#[test]
fn a_relay_whose_port_is_taken_says_so() {
    let env = Env::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = env.run(&["relay", "--listen", &format!("/ip4/127.0.0.1/tcp/{port}")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cannot listen on"), "{err}");
}
