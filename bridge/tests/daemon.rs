//! `vellum serve` as a real process on a real filesystem: saves become ops,
//! other commands go through its socket, bad requests get errors and it
//! lives on, a second daemon is refused, and it stops cleanly.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::Env;
use common::daemon::{Daemon, eventually, wait_bounded};

fn logged_paths(env: &Env) -> Vec<String> {
    env.json(&["log", "--limit", "100000"])
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
    let second = env.run(&["serve", "--offline"]);
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

/// Every file's text as the journal's head has it equals what is on disk.
fn head_matches_disk(env: &Env, files: &[(String, String)]) -> bool {
    files.iter().all(|(path, text)| {
        let out = env.run(&["show", path]);
        out.status.success() && out.stdout == text.as_bytes()
    })
}

#[test]
fn a_daemon_killed_mid_burst_loses_no_save_after_a_restart() {
    let env = Env::init();
    let mut d = Daemon::start(&env, &[]);
    let mut files = Vec::new();
    for i in 0..300 {
        let path = format!("burst/n{i:03}.md");
        let text = format!("# note {i}\nwritten in a burst\n");
        std::fs::create_dir_all(env.vault.join("burst")).unwrap();
        std::fs::write(env.vault.join(&path), &text).unwrap();
        files.push((path, text));
        if i == 150 {
            // SIGKILL: no clean shutdown, a stale socket left behind.
            d.child.kill().unwrap();
            d.child.wait().unwrap();
            break;
        }
    }
    for i in 151..300 {
        let path = format!("burst/n{i:03}.md");
        let text = format!("# note {i}\nwritten while nothing ran\n");
        std::fs::write(env.vault.join(&path), &text).unwrap();
        files.push((path, text));
    }
    drop(d);
    assert!(env.vault.join(".vellum/daemon.sock").exists());
    let d = Daemon::start(&env, &[]);
    eventually("every save recorded", || {
        env.json(&["status"])["files"] == files.len()
    });
    assert!(head_matches_disk(&env, &files));
    let (st, err) = d.stop();
    assert!(st.success(), "{err}");
}

#[test]
fn a_thousand_files_at_once_and_ignored_paths() {
    let env = Env::init();
    let d = Daemon::start(&env, &[]);
    let dir = env.vault.join("bulk");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..1000 {
        std::fs::write(dir.join(format!("f{i}.md")), format!("file {i}\n")).unwrap();
    }
    // Paths every device ignores (DESIGN §8), and one Obsidian file that
    // is synced.
    std::fs::create_dir_all(env.vault.join(".obsidian")).unwrap();
    std::fs::create_dir_all(env.vault.join(".trash")).unwrap();
    std::fs::write(env.vault.join(".obsidian/workspace.json"), "{}").unwrap();
    std::fs::write(env.vault.join(".obsidian/app.json"), "{\"a\": 1}").unwrap();
    std::fs::write(env.vault.join(".trash/old.md"), "gone\n").unwrap();
    std::fs::write(env.vault.join("bulk/.f1.md.swp"), "swap").unwrap();
    eventually("1,001 files recorded", || {
        env.json(&["status"])["files"] == 1001
    });
    let paths = logged_paths(&env);
    assert!(paths.contains(&".obsidian/app.json".to_string()));
    for ignored in [
        ".obsidian/workspace.json",
        ".trash/old.md",
        "bulk/.f1.md.swp",
    ] {
        assert!(
            !paths.contains(&ignored.to_string()),
            "{ignored} was recorded"
        );
    }
    // A folder of them moved at once is a move, not deletes and creates.
    std::fs::rename(&dir, env.vault.join("archive")).unwrap();
    eventually("the folder move", || {
        env.run(&["show", "archive/f999.md"]).stdout == b"file 999\n"
    });
    assert_eq!(env.json(&["status"])["files"], 1001);
    let renames = env
        .json(&["log", "--limit", "2000"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "rename")
        .count();
    assert_eq!(renames, 1000);
    let (st, err) = d.stop();
    assert!(st.success(), "{err}");
}

#[test]
fn two_writers_racing_on_one_file_leave_the_last_write_recorded() {
    let env = Env::init();
    let d = Daemon::start(&env, &[]);
    let path = env.vault.join("shared.md");
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let path = path.clone();
            std::thread::spawn(move || {
                for i in 0..100 {
                    std::fs::write(&path, format!("writer {w} line {i}\n")).unwrap();
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let last = std::fs::read_to_string(&path).unwrap();
    eventually("the last write", || {
        env.run(&["show", "shared.md"]).stdout == last.as_bytes()
    });
    let (st, err) = d.stop();
    assert!(st.success(), "{err}");
}

#[test]
fn the_log_goes_to_daily_files_at_the_configured_level_without_note_content() {
    let env = Env::init();
    std::fs::write(
        env.vault.join(".vellum/config.toml"),
        "[log]\nlevel = \"info\"\nretention_days = 3\n",
    )
    .unwrap();
    let d = Daemon::start(&env, &[]);
    std::fs::write(
        env.vault.join("secret-plans.md"),
        "the surprise party is on friday\n",
    )
    .unwrap();
    eventually("the save", || {
        logged_paths(&env).contains(&"secret-plans.md".to_string())
    });
    let (st, err) = d.stop();
    assert!(st.success(), "{err}");
    let logs: Vec<_> = std::fs::read_dir(env.vault.join(".vellum/logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(logs.len(), 1, "{logs:?}");
    let name = logs[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("vellum.") && name.ends_with(".log"),
        "{name}"
    );
    let log = std::fs::read_to_string(&logs[0]).unwrap();
    assert!(log.contains("recorded changes"), "{log}");
    assert!(log.contains("stopped"), "{log}");
    // No note content, and at info no paths.
    assert!(!log.contains("surprise party"), "{log}");
    assert!(!log.contains("secret-plans"), "{log}");
    assert!(!log.contains(&env.vault.display().to_string()), "{log}");
}

#[test]
fn a_config_it_cannot_use_stops_the_daemon_with_one_line() {
    let env = Env::init();
    std::fs::write(
        env.vault.join(".vellum/config.toml"),
        "[log]\nlevel = \"loud\"\n",
    )
    .unwrap();
    let out = env.run(&["serve", "--offline"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("config.toml: log.level is \"loud\""), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// One line-delimited JSON-RPC connection: the socket, or the daemon's
/// stdin and stdout.
struct Conn {
    w: Box<dyn Write>,
    r: BufReader<Box<dyn Read>>,
    next: u64,
}

impl Conn {
    fn socket(socket: &PathBuf) -> Conn {
        let s = UnixStream::connect(socket).unwrap();
        Conn {
            w: Box::new(s.try_clone().unwrap()),
            r: BufReader::new(Box::new(s)),
            next: 0,
        }
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        let (answer, notes) = self.call_noting(method, params);
        assert!(
            notes.is_empty(),
            "notifications before the answer: {notes:?}"
        );
        answer
    }

    /// A call, and the notifications that came before its answer.
    fn call_noting(&mut self, method: &str, params: Value) -> (Value, Vec<Value>) {
        self.next += 1;
        let req = json!({"jsonrpc": "2.0", "id": self.next, "method": method, "params": params});
        writeln!(self.w, "{req}").unwrap();
        self.w.flush().unwrap();
        let mut notes = Vec::new();
        loop {
            let mut line = String::new();
            self.r.read_line(&mut line).unwrap();
            let v: Value = serde_json::from_str(&line).unwrap();
            if v.get("id").is_none() {
                notes.push(v);
                continue;
            }
            assert_eq!(v["id"], self.next, "{v}");
            return (v, notes);
        }
    }
}

/// Every method, on one transport; `env`'s vault holds two notes with an
/// open conflict on one (made by importing a concurrent edit). Methods
/// that change the vault change nothing but on the `last` transport.
fn every_method(env: &Env, c: &mut Conn, last: bool) {
    // What a client asks first: which contract the daemon speaks.
    let hello = c.call("hello", Value::Null);
    assert_eq!(
        hello["result"],
        json!({"protocol": 1, "version": env!("CARGO_PKG_VERSION")}),
        "{hello}"
    );
    let status = c.call("status", Value::Null);
    assert_eq!(status["result"]["conflicts"], 1, "{status}");
    let vault = c.call("vault.get", Value::Null);
    assert_eq!(
        vault["result"]["device"], status["result"]["device"],
        "{vault}"
    );
    assert_eq!(vault["result"]["device_name"], "test-device");
    let page = c.call("log", json!({"limit": 2}));
    let newest: Vec<&str> = page["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(newest.len(), 2);
    let next = c.call("log", json!({"limit": 2, "offset": 1}));
    assert_eq!(next["result"][0]["id"], newest[1]);
    // The cursor: the page after an op is what the offset gives.
    let after = c.call("log", json!({"limit": 2, "before": newest[0]}));
    assert_eq!(after["result"], next["result"], "{after}");
    for bad in ["zz", "0000000000000000"] {
        let refused = c.call("log", json!({"before": bad}));
        assert_eq!(refused["error"]["code"], -32602, "{refused}");
        assert!(
            !refused["error"]["message"].as_str().unwrap().contains('\n'),
            "{refused}"
        );
    }
    let only = c.call("log", json!({"path": "b.md"}));
    assert!(
        only["result"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["path"] == "b.md")
    );
    let too_many = c.call("log", json!({"limit": 100_000}));
    assert_eq!(too_many["error"]["code"], -32602);
    let unknown_field = c.call("log", json!({"lmit": 2}));
    assert_eq!(unknown_field["error"]["code"], -32602);
    let conflicts = c.call("conflicts", Value::Null);
    let list = conflicts["result"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["path"], "a.md");
    assert_eq!(list[0]["kind"], "overlap");
    // The clone made above, never connected: this daemon is offline.
    let peers = c.call("peers", Value::Null);
    assert_eq!(peers["result"].as_array().unwrap().len(), 1, "{peers}");
    assert_eq!(peers["result"][0]["connected"], false);
    assert_eq!(peers["result"][0]["last_seen"], Value::Null);
    assert_eq!(
        c.call("status", Value::Null)["result"]["network"],
        Value::Null
    );
    let settings = c.call("settings.get", Value::Null);
    assert_eq!(
        settings["result"],
        json!({
            "mdns": true,
            "listen": [],
            "peers": [],
            "internet": false,
            "relays": [],
            "log": {"level": "info", "retention_days": 14}
        })
    );
    let set = c.call(
        "settings.set",
        json!({"log": {"level": "debug", "retention_days": 7}}),
    );
    assert_eq!(set["result"]["log"]["level"], "debug", "{set}");
    let text = std::fs::read_to_string(env.vault.join(".vellum/config.toml")).unwrap();
    assert!(
        text.contains("level = \"debug\"") && text.contains("retention_days = 7"),
        "{text}"
    );
    let bad = c.call("settings.set", json!({"log": {"level": "loud"}}));
    assert_eq!(bad["error"]["code"], -32602, "{bad}");
    // Put it back for the other transport.
    c.call(
        "settings.set",
        json!({
            "mdns": true,
            "listen": [],
            "peers": [],
            "log": {"level": "info", "retention_days": 14}
        }),
    );
    // Reading the past.
    let shown = c.call("show", json!({"path": "b.md"}));
    assert_eq!(shown["result"]["text"], "b\none\n", "{shown}");
    assert_eq!(shown["result"]["kind"], "text");
    let missing = c.call("show", json!({"path": "nope.md"}));
    assert_eq!(missing["error"]["code"], -32602, "{missing}");
    let no_path = c.call("show", Value::Null);
    assert_eq!(no_path["error"]["code"], -32602, "{no_path}");
    let history = c.call("log", json!({"path": "a.md"}));
    let first_a = history["result"].as_array().unwrap().last().unwrap()["id"].clone();
    let diff = c.call("diff", json!({"from": first_a, "path": "a.md"}));
    assert_eq!(diff["result"]["changes"][0]["path"], "a.md", "{diff}");
    assert_eq!(diff["result"]["changes"][0]["change"], "modified");
    let text = diff["result"]["text"].as_str().unwrap();
    // Which edit the file kept depends on the two devices' ids (the
    // later op in total order is the incoming side).
    assert!(
        text.contains("-two") && (text.contains("+2 from here") || text.contains("+TWO from")),
        "{text}"
    );
    let whole = c.call("diff", json!({"from": first_a}));
    assert_eq!(whole["result"]["text"], Value::Null);
    let tree = c.call("checkout.preview", json!({"at": first_a}));
    let files: Vec<&str> = tree["result"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    // The point is a.md's first op with its causal past: b.md came later.
    assert_eq!(files, ["a.md"], "{tree}");
    assert!(tree["result"]["at"].as_str().unwrap().starts_with("vv:"));
    let sides = c.call("conflict.sides", json!({"path": "a.md"}));
    let r = &sides["result"];
    assert_eq!(r["base"]["text"], "one\ntwo\nthree\n", "{sides}");
    let mut both = [
        r["current"]["text"].as_str().unwrap(),
        r["incoming"]["text"].as_str().unwrap(),
    ];
    both.sort();
    assert_eq!(
        both,
        [
            "one\n2 from here\nthree\n",
            "one\nTWO from the other\nthree\n"
        ]
    );
    assert_eq!(r["kind"], "overlap");
    assert_eq!(r["incoming_device"].as_str().unwrap().len(), 64);
    assert!(!r["incoming_device_name"].as_str().unwrap().is_empty());
    // Writing history forward: no change where the point is the head.
    let head = c.call("status", Value::Null)["result"]["head"].clone();
    let same = c.call("restore", json!({"path": "b.md", "at": head}));
    assert_eq!(same["result"]["ops_recorded"], 0, "{same}");
    let preview = c.call("rollback.preview", json!({"to": first_a}));
    assert!(preview["result"]["changes"].is_array(), "{preview}");
    assert_eq!(preview["result"]["needs_yes"], false);
    let rolled = c.call("rollback.apply", json!({"to": head}));
    assert_eq!(rolled["result"]["ops_recorded"], 0, "{rolled}");
    let both = c.call(
        "resolve",
        json!({"path": "a.md", "take": "current", "text": "x"}),
    );
    assert_eq!(both["error"]["code"], -32602, "{both}");
    if last {
        let merged = "one\ntwo, merged by hand\nthree\n";
        let done = c.call("resolve", json!({"path": "a.md", "text": merged}));
        assert_eq!(done["result"]["ops_recorded"], 1, "{done}");
        assert_eq!(
            std::fs::read_to_string(env.vault.join("a.md")).unwrap(),
            merged
        );
        assert_eq!(c.call("status", Value::Null)["result"]["conflicts"], 0);
        let back = c.call("restore", json!({"path": "a.md", "at": first_a}));
        assert_eq!(back["result"]["ops_recorded"], 1, "{back}");
        assert_eq!(
            std::fs::read_to_string(env.vault.join("a.md")).unwrap(),
            "one\ntwo\nthree\n"
        );
    }
    let held = c.call("quarantine.list", Value::Null);
    assert_eq!(held["result"], json!([]), "{held}");
    let no_batch = c.call("quarantine.accept", json!({"id": "0123456789ab"}));
    assert_eq!(no_batch["error"]["code"], -32602, "{no_batch}");
    let no_id = c.call("quarantine.reject", Value::Null);
    assert_eq!(no_id["error"]["code"], -32602, "{no_id}");
    let cli = c.call(
        "cli",
        json!({"argv": ["show", "b.md"], "cwd": env.vault.to_str().unwrap()}),
    );
    assert_eq!(cli["result"]["code"], 0);
    assert_eq!(cli["result"]["stdout"], "YgpvbmUK"); // base64 of "b\none\n"
    // Streamed output comes first, in cli.stdout notifications.
    let (streamed, notes) = c.call_noting(
        "cli",
        json!({"argv": ["show", "b.md"], "cwd": env.vault.to_str().unwrap(), "stream": true}),
    );
    assert_eq!(streamed["result"]["code"], 0, "{streamed}");
    assert_eq!(streamed["result"]["stdout"], "");
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["method"], "cli.stdout");
    assert_eq!(notes[0]["params"]["data"], "YgpvbmUK");
    // Last: from here on, events may come between answers.
    let sub = c.call("subscribe", Value::Null);
    assert_eq!(sub["result"]["subscribed"], true, "{sub}");
}

#[test]
fn every_method_answers_on_the_socket_and_on_stdio() {
    let env = Env::init();
    std::fs::write(env.vault.join("a.md"), "one\ntwo\nthree\n").unwrap();
    std::fs::write(env.vault.join("b.md"), "b\none\n").unwrap();
    env.ok(&["scan"]);
    // A concurrent edit of the same line on a second device: a conflict.
    let other = env.clone_to("other");
    std::fs::write(other.vault.join("a.md"), "one\nTWO from the other\nthree\n").unwrap();
    other.ok(&["scan"]);
    std::fs::write(env.vault.join("a.md"), "one\n2 from here\nthree\n").unwrap();
    env.ok(&["scan"]);
    let export = other.export("other.vx");
    env.ok(&["import", export.to_str().unwrap()]);

    let d = Daemon::start(&env, &[]);
    let mut socket = Conn::socket(&d.socket);
    every_method(&env, &mut socket, false);
    drop(socket);
    let (st, err) = d.stop();
    assert!(st.success(), "{err}");

    let mut d = Daemon::start(&env, &["--stdio"]);
    let mut stdio = Conn {
        w: Box::new(d.child.stdin.take().unwrap()),
        r: BufReader::new(Box::new(d.child.stdout.take().unwrap())),
        next: 0,
    };
    every_method(&env, &mut stdio, true);
    drop(stdio);
    let st = wait_bounded(&mut d.child, Duration::from_secs(20));
    assert!(st.success());
}

#[test]
fn an_editor_saving_its_old_buffer_right_after_a_sync_write_loses_no_remote_change() {
    let a = Env::init();
    let file = common::note_changed_elsewhere(&a);
    let d = Daemon::start(&a, &[]);
    // The import runs in the daemon and writes the note (a sync write)...
    a.ok(&["import", file.to_str().unwrap()]);
    // ...and the editor, which still holds the old text, saves it with a
    // new line at once.
    std::fs::write(a.vault.join("note.md"), "one\ntwo\nthree\nfour from a\n").unwrap();
    let merged = "one\nTWO from b\nthree\nfour from a\n";
    eventually("the merge on disk and in the journal", || {
        std::fs::read_to_string(a.vault.join("note.md")).unwrap() == merged
            && a.ok(&["show", "note.md"]) == merged.as_bytes()
    });
    let (st, err) = d.stop();
    assert!(st.success(), "{err}");
}

#[test]
fn reading_files_is_not_a_change_so_an_idle_daemon_stops_scanning() {
    let env = Env::init();
    for i in 0..200 {
        std::fs::create_dir_all(env.vault.join(format!("d{}", i % 10))).unwrap();
        std::fs::write(env.vault.join(format!("d{}/n{i}.md", i % 10)), "text\n").unwrap();
    }
    let d = Daemon::start_logging(&env, &[], Some("vellum_bridge=debug"));
    eventually("the startup scan", || env.json(&["status"])["files"] == 200);
    // A scan opens every folder and reads files; were those reads taken
    // for changes, each scan would ask for the next, for ever.
    std::thread::sleep(Duration::from_secs(2));
    let (st, err) = d.stop();
    assert!(st.success(), "{err}");
    let scans = err.matches("nothing changed").count() + err.matches("recorded changes").count();
    assert!(scans <= 3, "{scans} scans in an idle daemon:\n{err}");
}

#[test]
fn a_startup_scan_that_would_revert_many_files_is_held_and_rejected_over_rpc() {
    let env = Env::init();
    let old: Vec<(String, String)> = (0..30)
        .map(|i| (format!("n{i:02}.md"), format!("note {i}\n")))
        .collect();
    for (p, t) in &old {
        env.write(p, t);
    }
    env.ok(&["scan"]);
    for (p, t) in &old {
        env.write(p, format!("{t}newer work\n"));
    }
    env.ok(&["scan"]);
    let head = env.head();
    let newer = common::tree(&env.vault);
    // While no daemon ran, the notes came back from an old copy.
    for (p, t) in &old {
        env.write(p, t);
    }
    let d = Daemon::start(&env, &[]);
    let s = UnixStream::connect(&d.socket).unwrap();
    let mut c = Conn {
        w: Box::new(s.try_clone().unwrap()),
        r: BufReader::new(Box::new(s)),
        next: 0,
    };
    eventually("the startup scan to hold the reverts", || {
        c.call("status", Value::Null)["result"]["quarantined"] == 30
    });
    let list = c.call("quarantine.list", Value::Null);
    let batch = &list["result"][0];
    assert_eq!(batch["source"], "scan", "{list}");
    assert_eq!(batch["files"].as_array().unwrap().len(), 30);
    let id = batch["id"].as_str().unwrap();
    let done = c.call("quarantine.reject", json!({"id": id}));
    assert_eq!(done["result"]["ops_recorded"], 0, "{done}");
    assert_eq!(done["result"]["changed"].as_array().unwrap().len(), 30);
    assert_eq!(common::tree(&env.vault), newer);
    // The daemon's watcher sees the writes as its own: nothing recorded.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(c.call("status", Value::Null)["result"]["head"], head);
    assert_eq!(c.call("status", Value::Null)["result"]["quarantined"], 0);
    drop(c);
    let (st, err) = d.stop();
    assert!(st.success(), "{err}");
}

#[test]
fn symlinks_pointing_outside_the_vault_are_skipped_and_never_written_through() {
    let a = Env::init();
    a.write("note.md", "hello\n");
    a.ok(&["scan"]);
    let b = a.clone_to("b");
    let outside = a.tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.md"), "not the vault's\n").unwrap();
    let d = Daemon::start(&b, &[]);
    let ops = b.json(&["status"])["ops"].clone();
    std::os::unix::fs::symlink(&outside, b.vault.join("docs")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.md"), b.vault.join("link.md")).unwrap();
    b.write("seen.md", "after the links\n");
    eventually("the save after the links", || {
        logged_paths(&b).contains(&"seen.md".to_string())
    });
    assert!(
        !logged_paths(&b)
            .iter()
            .any(|p| p == "link.md" || p.starts_with("docs"))
    );
    assert_eq!(b.json(&["status"])["ops"], ops.as_u64().unwrap() + 1);

    // Another device writes into a folder this one has as a link.
    a.write("docs/plan.md", "the plan\n");
    a.write("link.md", "a note of the same name\n");
    a.ok(&["scan"]);
    let file = a.export("a.vx");
    let out = b.run(&["import", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("symlink"), "{err}");
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        1,
        "nothing lands outside the vault"
    );
    assert_eq!(
        std::fs::read_to_string(outside.join("secret.md")).unwrap(),
        "not the vault's\n"
    );
    assert_eq!(b.ok(&["show", "docs/plan.md"]), b"the plan\n");
    let (st, err) = d.stop();
    assert!(st.success(), "{err}");
}

/// A command run as the unprivileged user `nobody` (uid 65534).
fn as_nobody(home: &std::path::Path, args: &[&str]) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_vellum"))
        .args(args)
        .env("VELLUM_HOME", home)
        .env_remove("VELLUM_VAULT");
    c
}

#[test]
fn a_socket_connection_from_another_user_is_refused_before_any_data() {
    let out = Command::new("id").arg("-u").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "this test runs a daemon as another user, which needs root"
    );
    // The daemon runs as nobody; this test connects as root, which the
    // socket's mode (0600) lets through: the daemon's own check of the
    // peer's uid is what refuses it.
    let tmp = tempfile::tempdir().unwrap();
    use std::os::unix::fs::{PermissionsExt, chown};
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (vault, home) = (tmp.path().join("vault"), tmp.path().join("home"));
    for d in [&vault, &home] {
        std::fs::create_dir_all(d).unwrap();
        chown(d, Some(65534), Some(65534)).unwrap();
    }
    let v = vault.to_str().unwrap();
    let st = as_nobody(&home, &["init", "--vault", v, "--name", "nobody"])
        .status()
        .unwrap();
    assert!(st.success());
    let d = Daemon::spawn(
        as_nobody(&home, &["serve", "--offline", "--vault", v]),
        vault.join(".vellum/daemon.sock"),
    );
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = s.write_all(b"{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": \"status\"}\n");
    let mut answer = String::new();
    let n = BufReader::new(&s).read_line(&mut answer).unwrap_or(0);
    assert_eq!((n, answer.as_str()), (0, ""), "root got an answer");
    // Its own user is answered.
    let out = as_nobody(&home, &["status", "--json", "--vault", v])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (st, err) = d.stop();
    assert!(st.success(), "{err}");
    assert!(
        err.contains("refused a connection from another user"),
        "{err}"
    );
}

/// The process's peak resident memory so far, in KiB.
fn peak_rss_kib(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

#[test]
fn a_64_mib_attachment_is_recorded_in_bounded_memory() {
    const MIB: usize = 1 << 20;
    let env = Env::init();
    env.write("note.md", "hello\n");
    let d = Daemon::start(&env, &[]);
    eventually("the startup scan", || env.json(&["status"])["files"] == 1);
    let before = peak_rss_kib(&d.pid());
    // Written beside the vault, then moved in whole, as a copy tool would.
    let staged = env.tmp.path().join("video.bin");
    let mut hasher = blake3::Hasher::new();
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&staged).unwrap());
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut chunk = vec![0u8; MIB];
        for _ in 0..64 {
            for b in chunk.iter_mut() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *b = state as u8;
            }
            hasher.update(&chunk);
            f.write_all(&chunk).unwrap();
        }
    }
    std::fs::create_dir_all(env.vault.join("attachments")).unwrap();
    std::fs::rename(&staged, env.vault.join("attachments/video.bin")).unwrap();
    eventually("the attachment's op", || {
        logged_paths(&env).contains(&"attachments/video.bin".to_string())
    });
    let recorded = peak_rss_kib(&d.pid());
    // Read back through the daemon: its output streams to the client.
    let shown = env.ok(&["show", "attachments/video.bin"]);
    assert_eq!(blake3::hash(&shown), hasher.finalize());
    let peak = peak_rss_kib(&d.pid());
    let (st, err) = d.stop();
    assert!(st.success(), "{err}");
    println!(
        "peak RSS {} MiB before, {} MiB after recording, {} MiB after reading back",
        before / 1024,
        recorded / 1024,
        peak / 1024
    );
    // Streamed in chunks both ways: the file never sits in memory whole.
    // What is in flight is bounded by the store (a memtable being filled
    // and the sealed ones fjall queues, 8 MiB each, and its block cache)
    // and by the output chunks queued for the client.
    assert!(
        peak < before + 48 * 1024,
        "peak RSS grew from {before} KiB to {peak} KiB for a 64 MiB file"
    );
}

/// Reads notifications from a subscribed connection until `want` accepts
/// one (bounded); every one read is returned.
fn events_until(r: &mut BufReader<UnixStream>, mut want: impl FnMut(&Value) -> bool) -> Vec<Value> {
    let until = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    // What a read that timed out mid-line got stays here for the next.
    let mut line = String::new();
    loop {
        assert!(Instant::now() < until, "the event never came; saw {seen:?}");
        match r.read_line(&mut line) {
            Ok(0) => panic!("the daemon closed the connection; saw {seen:?}"),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => panic!("{e}"),
        }
        let v: Value = serde_json::from_str(&std::mem::take(&mut line)).unwrap();
        assert_eq!(v["method"], "event", "{v}");
        let done = want(&v["params"]);
        seen.push(v["params"].clone());
        if done {
            return seen;
        }
    }
}

#[test]
fn subscribers_hear_of_saves_and_of_other_devices_ops_with_provenance() {
    let a = Env::init();
    for i in 0..30 {
        a.write(&format!("n{i:02}.md"), format!("note {i}\n"));
    }
    a.ok(&["scan"]);
    let b = a.clone_to("b");
    let d = Daemon::start(&a, &[]);
    let s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    writeln!(w, r#"{{"jsonrpc": "2.0", "id": 1, "method": "subscribe"}}"#).unwrap();
    let mut line = String::new();
    while line.is_empty() {
        let _ = r.read_line(&mut line);
    }
    let answer: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(answer["result"]["subscribed"], true, "{answer}");

    // A save here: a local op.
    a.write("fresh.md", "typed here\n");
    let seen = events_until(&mut r, |e| e["kind"] == "ops");
    let ops = &seen.last().unwrap()["ops"];
    assert_eq!(ops[0]["op"]["path"], "fresh.md", "{ops}");
    assert_eq!(ops[0]["provenance"], json!({"source": "local"}));
    events_until(&mut r, |e| {
        e["kind"] == "status" && e["status"]["files"] == 31
    });

    // Ops from B, through an import: remote, naming B and the op; then a
    // mass delete from B is held, and subscribers hear of that too.
    b.write("n03.md", "note 3, edited on b\n");
    b.ok(&["scan"]);
    for i in 10..30 {
        std::fs::remove_file(b.vault.join(format!("n{i:02}.md"))).unwrap();
    }
    b.ok(&["scan"]);
    let file = b.export("b.vx");
    a.ok(&["import", file.to_str().unwrap()]);
    let b_device = b.json(&["status"])["device"].as_str().unwrap().to_string();
    let seen = events_until(&mut r, |e| {
        e["kind"] == "quarantine" && e["held"].as_array().is_some_and(|h| !h.is_empty())
    });
    let ops: Vec<&Value> = seen
        .iter()
        .filter(|e| e["kind"] == "ops")
        .flat_map(|e| e["ops"].as_array().unwrap())
        .collect();
    let edit = ops
        .iter()
        .find(|o| o["op"]["path"] == "n03.md")
        .unwrap_or_else(|| panic!("no edit from b in {seen:?}"));
    assert_eq!(edit["provenance"]["source"], "remote");
    assert_eq!(edit["provenance"]["device"], b_device.as_str());
    assert!(
        edit["provenance"]["op"]
            .as_str()
            .unwrap()
            .starts_with(edit["op"]["id"].as_str().unwrap())
    );
    let held = &seen.last().unwrap()["held"];
    assert_eq!(held[0]["files"].as_array().unwrap().len(), 20, "{held}");
    drop(w);
    drop(r);
    let (st, err) = d.stop();
    assert!(st.success(), "{err}");
}

/// The vault-wide ignore globs a new vault starts with.
fn default_globs() -> Vec<String> {
    vellum_bridge::vault::DEFAULT_IGNORES
        .iter()
        .map(|g| g.to_string())
        .collect()
}

/// The `kind` of every op in the log, with its path, newest first.
fn logged_kinds(env: &Env) -> Vec<(String, Option<String>)> {
    env.json(&["log", "--limit", "100000"])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_string(),
                e["path"].as_str().map(String::from),
            )
        })
        .collect()
}

#[test]
fn vault_set_renames_the_device_and_refuses_bad_input_in_one_line() {
    let env = Env::init();
    let d = Daemon::start(&env, &[]);
    let mut c = Conn::socket(&d.socket);
    let device = env.json(&["status"])["device"].clone();
    let fresh = c.call("vault.get", Value::Null);
    assert_eq!(
        fresh["result"],
        json!({"device": device, "device_name": "test-device", "ignore": default_globs()}),
        "{fresh}"
    );

    let renamed = c.call("vault.set", json!({"device_name": "  laptop  "}));
    assert_eq!(renamed["result"]["device_name"], "laptop", "{renamed}");
    assert_eq!(renamed["result"]["ignore"], json!(default_globs()));
    assert_eq!(
        c.call("vault.get", Value::Null)["result"]["device_name"],
        "laptop"
    );
    let newest = &env.json(&["log", "--limit", "1"])[0];
    assert_eq!(newest["kind"], "device_info", "{newest}");
    assert!(
        newest["summary"].as_str().unwrap().contains("\"laptop\""),
        "{newest}"
    );
    // The same name again writes nothing.
    let ops = env.json(&["status"])["ops"].clone();
    c.call("vault.set", json!({"device_name": "laptop"}));
    assert_eq!(env.json(&["status"])["ops"], ops);

    let too_many = vec!["*.x"; 1001];
    for (params, says) in [
        (json!({"device_name": "   "}), "empty"),
        (json!({"device_name": "lap\ttop"}), "control character"),
        (json!({"device_name": "x".repeat(257)}), "at most 256"),
        (json!({"ignore": ["notes/{a"]}), "notes/{a"),
        (json!({"ignore": ["*.md", " "]}), "empty"),
        (json!({"ignore": ["a\nb"]}), "line break"),
        (json!({"ignore": too_many}), "at most 1000"),
        (
            json!({"device_name": "x", "colour": "red"}),
            "unknown field",
        ),
        (json!({}), "device_name or ignore"),
        (Value::Null, "vault.set takes"),
    ] {
        let r = c.call("vault.set", params.clone());
        assert_eq!(r["error"]["code"], -32602, "{params}: {r}");
        let message = r["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{params}: {message}");
        assert!(!message.contains('\n'), "{params}: {message}");
    }
    // Nothing was written by any of them.
    assert_eq!(env.json(&["status"])["ops"], ops);
    assert_eq!(
        c.call("vault.get", Value::Null)["result"],
        json!({"device": device, "device_name": "laptop", "ignore": default_globs()})
    );
    drop(c);
    let (st, err) = d.stop();
    assert!(st.success(), "{err}");
    // Without the daemon, the journal says the same.
    let newest = &env.json(&["log", "--limit", "1"])[0];
    assert_eq!(newest["kind"], "device_info", "{newest}");
}

#[test]
fn a_new_ignore_glob_never_deletes_a_tracked_file_and_removing_it_tracks_what_it_hid() {
    let env = Env::init();
    env.write("drafts/plan.md", "the plan\n");
    env.write("drafts/gone.md", "removed by hand while ignored\n");
    env.write("scratch.tmp", "ignored from the start\n");
    let d = Daemon::start(&env, &[]);
    eventually("the startup scan", || env.json(&["status"])["files"] == 2);
    let mut c = Conn::socket(&d.socket);

    let mut globs = default_globs();
    globs.push("/drafts/".into());
    let set = c.call("vault.set", json!({"ignore": globs}));
    assert_eq!(set["result"]["ignore"], json!(globs), "{set}");
    // Still on disk, still in the journal, and no delete anywhere.
    assert_eq!(env.read("drafts/plan.md"), b"the plan\n");
    assert_eq!(env.json(&["status"])["files"], 2);
    let kinds = logged_kinds(&env);
    assert_eq!(kinds[0].0, "vault_config", "{kinds:?}");
    assert!(!kinds.iter().any(|(k, _)| k == "delete"), "{kinds:?}");
    // While ignored, what happens there stays on this disk.
    env.write("drafts/plan.md", "the plan, changed while ignored\n");
    std::fs::remove_file(env.vault.join("drafts/gone.md")).unwrap();
    assert_eq!(env.scan()["ops_recorded"], 0);
    assert_eq!(env.ok(&["show", "drafts/plan.md"]), b"the plan\n");
    assert_eq!(env.json(&["status"])["files"], 2);

    // The glob gone, and `*.tmp` with it: the next scan (which vault.set
    // runs) records what they hid, and the file removed while ignored
    // comes back from the journal.
    let fewer: Vec<String> = default_globs()
        .into_iter()
        .filter(|g| g != "*.tmp")
        .collect();
    let set = c.call("vault.set", json!({"ignore": fewer}));
    assert_eq!(set["result"]["ignore"], json!(fewer), "{set}");
    assert_eq!(
        env.ok(&["show", "drafts/plan.md"]),
        b"the plan, changed while ignored\n"
    );
    assert_eq!(
        env.ok(&["show", "scratch.tmp"]),
        b"ignored from the start\n"
    );
    assert!(
        env.vault.join("drafts/gone.md").exists(),
        "a tracked file removed while ignored was not written back"
    );
    assert_eq!(
        env.read("drafts/gone.md"),
        b"removed by hand while ignored\n"
    );
    assert_eq!(env.json(&["status"])["files"], 3);
    let kinds = logged_kinds(&env);
    assert!(
        kinds.contains(&("create".into(), Some("scratch.tmp".into()))),
        "{kinds:?}"
    );
    assert!(!kinds.iter().any(|(k, _)| k == "delete"), "{kinds:?}");
    // Nothing is left for a later scan to find.
    assert_eq!(env.scan()["ops_recorded"], 0);
    drop(c);
    let (st, err) = d.stop();
    assert!(st.success(), "{err}");
}

#[test]
fn a_glob_from_another_device_leaves_its_tracked_files_on_disk_whatever_ops_say() {
    let a = Env::init();
    a.write("drafts/plan.md", "plan\n");
    a.write("drafts/old.md", "old\n");
    a.write("notes/keep.md", "keep\n");
    a.ok(&["scan"]);
    let b = a.clone_to("b");
    // On A: an edit and a delete under drafts/, then the glob that ignores
    // it. B gets all three at once.
    a.write("drafts/plan.md", "plan, edited on a\n");
    std::fs::remove_file(a.vault.join("drafts/old.md")).unwrap();
    a.ok(&["scan"]);
    let d = Daemon::start(&a, &[]);
    let mut globs = default_globs();
    globs.push("drafts/".into());
    let set = Conn::socket(&d.socket).call("vault.set", json!({"ignore": globs}));
    assert_eq!(set["result"]["ignore"], json!(globs), "{set}");
    let (st, err) = d.stop();
    assert!(st.success(), "{err}");
    let file = a.export("a.vx");
    b.ok(&["import", file.to_str().unwrap()]);

    // B ignores drafts/ now: the disk writer left it as it was, the
    // deleted file in place and the edit unwritten.
    assert!(
        b.vault.join("drafts/old.md").exists(),
        "a delete reached an ignored file"
    );
    assert_eq!(b.read("drafts/old.md"), b"old\n");
    assert_eq!(b.read("drafts/plan.md"), b"plan\n");
    assert_eq!(b.read("notes/keep.md"), b"keep\n");
    // B's scans record nothing there, and no delete.
    assert_eq!(b.scan()["ops_recorded"], 0);
    let b_device = b.json(&["status"])["device"].as_str().unwrap().to_string();
    let by_b_deletes = b
        .json(&["log", "--limit", "100000"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "delete" && b_device.starts_with(e["author"].as_str().unwrap()))
        .count();
    assert_eq!(by_b_deletes, 0);
    // The journal has A's edit, for when the glob goes.
    assert_eq!(b.ok(&["show", "drafts/plan.md"]), b"plan, edited on a\n");
}
