//! Drives the real `vellum` binary in temp folders.
#![allow(dead_code, clippy::new_without_default)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub mod daemon;

pub struct Env {
    pub tmp: std::rc::Rc<tempfile::TempDir>,
    pub vault: PathBuf,
    pub home: PathBuf,
}

impl Env {
    /// A fresh folder for a vault (not initialised) and a private VELLUM_HOME.
    pub fn new() -> Env {
        let tmp = tempfile::tempdir().expect("tempdir");
        let vault = tmp.path().join("vault");
        let home = tmp.path().join("home");
        std::fs::create_dir_all(&vault).unwrap();
        Env {
            tmp: std::rc::Rc::new(tmp),
            vault,
            home,
        }
    }

    /// Another vault folder in the same temp dir, with the same VELLUM_HOME
    /// (a second device on this machine).
    pub fn sibling(&self, name: &str) -> Env {
        Env {
            tmp: self.tmp.clone(),
            vault: self.tmp.path().join(name),
            home: self.home.clone(),
        }
    }

    /// A second device of this vault, cloned into a sibling folder.
    pub fn clone_to(&self, name: &str) -> Env {
        let other = self.sibling(name);
        self.ok(&[
            "clone",
            self.vault.to_str().unwrap(),
            other.vault.to_str().unwrap(),
        ]);
        other
    }

    /// This vault's whole journal, exported to `name` beside it.
    pub fn export(&self, name: &str) -> PathBuf {
        let file = self.tmp.path().join(name);
        self.ok(&["export", file.to_str().unwrap()]);
        file
    }

    /// A fresh, initialised, empty vault.
    pub fn init() -> Env {
        let env = Env::new();
        env.ok(&["init", "--name", "test-device"]);
        env
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_vellum"));
        c.args(args)
            .arg("--vault")
            .arg(&self.vault)
            .env("VELLUM_HOME", &self.home)
            .env("TZ", "UTC")
            .env_remove("VELLUM_VAULT")
            .current_dir(self.tmp.path());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run vellum")
    }

    /// Runs a command with `input` on its stdin.
    pub fn run_with_input(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .cmd(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run vellum");
        // A command that fails before reading closes the pipe early.
        let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
        child.wait_with_output().expect("run vellum")
    }

    /// Runs a command that must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> Vec<u8> {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "vellum {args:?} failed ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Runs a `--json` command that must succeed and print one document.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.ok(&a);
        serde_json::from_slice(&out).unwrap_or_else(|e| {
            panic!(
                "vellum {args:?}: stdout is not one JSON document ({e}): {}",
                String::from_utf8_lossy(&out)
            )
        })
    }

    /// Runs a command that must fail as a user error (exit 1) with a
    /// one-line message; returns it.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(
            out.status.code(),
            Some(1),
            "vellum {args:?}: expected exit 1, got {:?}; stderr: {err}",
            out.status.code()
        );
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "vellum {args:?}: error is not one line: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        err
    }

    pub fn write(&self, rel: &str, bytes: impl AsRef<[u8]>) {
        let p = self.vault.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    pub fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.vault.join(rel)).unwrap()
    }

    pub fn head(&self) -> String {
        self.json(&["status"])["head"].as_str().unwrap().to_string()
    }

    pub fn scan(&self) -> Value {
        self.json(&["scan"])
    }
}

/// Every file under `dir` (skipping `.vellum/`), with its bytes.
pub fn tree(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().to_string();
            if rel == ".vellum" {
                continue;
            }
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Replaces run-specific values (ids, hashes, times) so JSON can be
/// snapshotted.
pub fn redact(v: &Value) -> Value {
    const KEYS: &[&str] = &[
        "head", "device", "vault", "id", "hlc", "time", "author", "file", "at", "to", "hash",
        "mtime",
    ];
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let v = if KEYS.contains(&k.as_str()) && !v.is_null() {
                        Value::String(format!("[{k}]"))
                    } else {
                        redact(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(redact).collect()),
        other => other.clone(),
    }
}

/// `a`'s vault with note.md ("one\ntwo\nthree\n") recorded, a second device
/// of it that changed the second line to "TWO from b", and that device's
/// export: importing it into `a` writes the note for another device's op
/// (a sync write). The export's path.
pub fn note_changed_elsewhere(a: &Env) -> PathBuf {
    std::fs::write(a.vault.join("note.md"), "one\ntwo\nthree\n").unwrap();
    a.ok(&["scan"]);
    let b = a.clone_to("b");
    std::fs::write(b.vault.join("note.md"), "one\nTWO from b\nthree\n").unwrap();
    b.ok(&["scan"]);
    b.export("b.vx")
}

/// A libp2p node driven by hand (a device that misbehaves, or sits in the
/// middle), on loopback with mDNS off, and its events. Call inside a tokio
/// runtime.
pub fn hand_node(
    vault: vellum_journal::VaultId,
    seed: [u8; 32],
) -> (
    vellum_replicator::net::Handle,
    tokio::sync::mpsc::UnboundedReceiver<vellum_replicator::net::NetEvent>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let node = vellum_replicator::net::start(
        vellum_replicator::net::Config {
            vault,
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
            mdns: false,
            internet: None,
        },
        seed,
        Box::new(move |e| {
            let _ = tx.send(e);
        }),
    )
    .unwrap();
    (node, rx)
}
