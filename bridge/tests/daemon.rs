//! `vellum serve` as a real process on a real filesystem: saves become ops,
//! other commands go through its socket, bad requests get errors and it
//! lives on, a second daemon is refused, and it stops cleanly.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::Env;

/// A running `vellum serve`, stopped (SIGTERM) and waited for on drop.
struct Daemon {
    child: Child,
    socket: PathBuf,
}

impl Daemon {
    fn start(env: &Env, extra: &[&str]) -> Daemon {
        let mut args = vec!["serve"];
        args.extend_from_slice(extra);
        let child = env
            .cmd(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vellum serve");
        let socket = env.vault.join(".vellum/daemon.sock");
        let d = Daemon { child, socket };
        d.wait_for_socket();
        d
    }

    fn wait_for_socket(&self) {
        let until = Instant::now() + Duration::from_secs(20);
        while UnixStream::connect(&self.socket).is_err() {
            assert!(Instant::now() < until, "the daemon never opened its socket");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Sends SIGTERM and waits (bounded) for the exit; its status and stderr.
    fn stop(mut self) -> (std::process::ExitStatus, String) {
        let st = Command::new("kill")
            .args(["-TERM", &self.pid()])
            .status()
            .unwrap();
        assert!(st.success());
        let status = wait_bounded(&mut self.child, Duration::from_secs(20));
        let mut err = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        std::mem::forget(self);
        (status, err)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_bounded(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let until = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        assert!(Instant::now() < until, "the daemon did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `check` every 50 ms until it holds, for at most 20 s.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn logged_paths(env: &Env) -> Vec<String> {
    env.json(&["log"])
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["path"].as_str().map(String::from))
        .collect()
}

/// One request line on a fresh connection; the answer.
fn call(socket: &PathBuf, request: &str) -> Value {
    let mut s = UnixStream::connect(socket).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    s.write_all(b"\n").unwrap();
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap()
}

#[test]
fn saves_become_ops_and_other_commands_go_through_the_daemon() {
    let env = Env::init();
    std::fs::write(env.vault.join("before.md"), "written before the daemon\n").unwrap();
    let d = Daemon::start(&env, &[]);
    // The startup scan records what changed while nothing ran.
    eventually("the startup scan", || {
        logged_paths(&env).contains(&"before.md".to_string())
    });
    // Obsidian saves in place; many editors write a temp file and rename it.
    std::fs::write(env.vault.join("daily.md"), "# Today\n- [ ] water plants\n").unwrap();
    let tmp = env.vault.join(".project.md.tmp");
    std::fs::write(&tmp, "# Project\nplan\n").unwrap();
    std::fs::rename(&tmp, env.vault.join("project.md")).unwrap();
    eventually("both saves in the log", || {
        let paths = logged_paths(&env);
        paths.contains(&"daily.md".to_string()) && paths.contains(&"project.md".to_string())
    });
    // The temp file was never recorded, and an edit lands too.
    assert!(!logged_paths(&env).iter().any(|p| p.ends_with(".tmp")));
    std::fs::write(env.vault.join("daily.md"), "# Today\n- [x] water plants\n").unwrap();
    eventually("the edit", || {
        env.ok(&["show", "daily.md"]) == b"# Today\n- [x] water plants\n"
    });
    // While the daemon holds the vault, commands give what they give
    // without it: status through the socket, and the same errors.
    let status = env.json(&["status"]);
    assert_eq!(status["files"], 3);
    let bad = env.run(&["show", "nope.md"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).starts_with("vellum: "));
    let (st, err) = d.stop();
    assert!(st.success(), "the daemon exited with {st}: {err}");
    assert!(!env.vault.join(".vellum/daemon.sock").exists());
    // The lock is free again: commands run on their own.
    assert_eq!(env.json(&["status"])["files"], 3);
}

#[test]
fn a_second_daemon_on_the_same_vault_is_refused() {
    let env = Env::init();
    let d = Daemon::start(&env, &[]);
    let second = env.run(&["serve"]);
    assert_eq!(second.status.code(), Some(1));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("another vellum process is using this vault"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    // The first one is unharmed.
    assert_eq!(
        env.json(&["status"])["ops"].as_u64().map(|n| n > 0),
        Some(true)
    );
    let (st, _) = d.stop();
    assert!(st.success());
}

#[test]
fn bad_requests_get_errors_and_the_daemon_lives_on() {
    let env = Env::init();
    let d = Daemon::start(&env, &[]);
    let s = &d.socket;
    let garbage = call(s, "this is not json");
    assert_eq!(garbage["error"]["code"], -32700);
    let not_rpc = call(s, r#"{"id": 4, "method": "status"}"#);
    assert_eq!(not_rpc["error"]["code"], -32600);
    assert_eq!(not_rpc["id"], 4);
    let unknown = call(s, r#"{"jsonrpc": "2.0", "id": 5, "method": "format_disk"}"#);
    assert_eq!(unknown["error"]["code"], -32601);
    assert_eq!(unknown["id"], 5);
    let bad_params = call(
        s,
        r#"{"jsonrpc": "2.0", "id": 6, "method": "cli", "params": [1]}"#,
    );
    assert_eq!(bad_params["error"]["code"], -32602);
    // A request over the limit is refused and its connection closed.
    let mut big = UnixStream::connect(s).unwrap();
    let huge = format!(
        r#"{{"jsonrpc": "2.0", "id": 7, "method": "status", "params": "{}"}}"#,
        "x".repeat(2 << 20)
    );
    // The daemon may close before reading it all.
    let _ = big.write_all(huge.as_bytes());
    let _ = big.write_all(b"\n");
    let mut answer = String::new();
    BufReader::new(&big).read_to_string(&mut answer).unwrap();
    let v: Value = serde_json::from_str(answer.trim()).unwrap();
    assert_eq!(v["error"]["code"], -32600);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("longer than")
    );
    // Several requests on one connection, a notification unanswered.
    let mut c = UnixStream::connect(s).unwrap();
    c.write_all(b"{\"jsonrpc\": \"2.0\", \"method\": \"status\"}\n{\"jsonrpc\": \"2.0\", \"id\": \"a\", \"method\": \"status\"}\n")
        .unwrap();
    let mut line = String::new();
    BufReader::new(&c).read_line(&mut line).unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["id"], "a");
    assert!(v["result"]["head"].as_str().unwrap().starts_with("vv:"));
    let (st, err) = d.stop();
    assert!(st.success(), "{err}");
}

#[test]
fn stdio_mode_answers_on_stdin_and_stops_at_its_end() {
    let env = Env::init();
    let mut d = Daemon::start(&env, &["--stdio"]);
    let mut stdin = d.child.stdin.take().unwrap();
    let request = json!({"jsonrpc": "2.0", "id": 1, "method": "status"});
    writeln!(stdin, "{request}").unwrap();
    let mut line = String::new();
    BufReader::new(d.child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["id"], 1);
    assert_eq!(v["result"]["files"], 0);
    drop(stdin);
    let st = wait_bounded(&mut d.child, Duration::from_secs(20));
    assert!(st.success(), "{st}");
    assert!(!env.vault.join(".vellum/daemon.sock").exists());
}
