//! `vellum key export|import` against the real binary: a vault folder whose
//! device keys are lost comes back with its key export, reads its whole
//! history, and syncs again with the devices that kept theirs.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::Env;
use common::daemon::{Daemon, eventually};
use serde_json::Value;

const PASS: &str = "correct horse battery staple\n";

/// Writes a key export of `env` to `name` beside it.
fn export(env: &Env, name: &str) -> (PathBuf, Value) {
    let file = env.tmp.path().join(name);
    let out = env.run_with_input(&["key", "export", file.to_str().unwrap(), "--json"], PASS);
    assert!(
        out.status.success(),
        "key export failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (file, serde_json::from_slice(&out.stdout).unwrap())
}

/// A copy of `env`'s folder on "another machine": a VELLUM_HOME without
/// its keys.
fn copy_elsewhere(env: &Env, name: &str) -> Env {
    let other = Env {
        tmp: env.tmp.clone(),
        vault: env.tmp.path().join(name),
        home: env.tmp.path().join(format!("{name}-home")),
    };
    let st = std::process::Command::new("cp")
        .args([
            "-a",
            env.vault.to_str().unwrap(),
            other.vault.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(st.success());
    other
}

fn import(env: &Env, file: &Path, input: &str) -> std::process::Output {
    env.run_with_input(
        &[
            "key",
            "import",
            file.to_str().unwrap(),
            "--name",
            "restored",
            "--json",
        ],
        input,
    )
}

/// The one-line error of a failed command (exit 1).
fn refused(out: std::process::Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    err
}

fn instance(env: &Env) -> String {
    std::fs::read_to_string(env.vault.join(".vellum/instance")).unwrap()
}

#[test]
fn a_vault_whose_keys_are_lost_comes_back_with_its_key_export() {
    let a = Env::init();
    a.write("a.md", "first\n");
    a.scan();
    let first = a.head();
    let (file, exported) = export(&a, "vault.key");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 156);
    // The recovery identity is a member of its own, never a writer.
    let peers = a.json(&["peers"]);
    let rec = peers
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["device"] == exported["recovery"])
        .unwrap_or_else(|| panic!("{peers}"));
    assert_eq!(rec["role"], "recovery");
    assert_eq!(rec["name"], exported["name"]);
    a.write("a.md", "second, after the export\n");
    a.scan();
    let a_id = a.json(&["status"])["device"].as_str().unwrap().to_string();

    // The folder (journal included) reaches a machine without its keys.
    let b = copy_elsewhere(&a, "restored");
    let err = b.fails(&["status"]);
    assert!(err.contains("key import"), "{err}");
    let before = instance(&b);
    let err = refused(import(&b, &file, "not the passphrase\n"));
    assert!(err.contains("wrong passphrase"), "{err}");
    assert_eq!(instance(&b), before, "a refused import changes nothing");

    let out = import(&b, &file, PASS);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_ne!(r["device"], a_id.as_str());
    assert_eq!(r["recorded"], 0);
    assert!(
        r["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["device"] == a_id.as_str()),
        "{r}"
    );
    // The whole history reads again, and the chain checks out.
    assert_eq!(b.read("a.md"), b"second, after the export\n");
    assert_eq!(b.ok(&["show", "a.md", "--at", &first]), b"first\n");
    let verified = String::from_utf8(b.ok(&["verify"])).unwrap();
    assert!(verified.starts_with("ok"), "{verified}");
    // It writes as itself, and may retire the lost device.
    b.write("b.md", "written after the recovery\n");
    b.scan();
    let status = b.json(&["status"]);
    assert_eq!(status["device"], r["device"]);
    let log = String::from_utf8(b.ok(&["log"])).unwrap();
    assert!(log.contains("create b.md"), "{log}");
    let removed = b.json(&["member", "remove", &a_id[..12]]);
    assert_eq!(removed["device"], a_id.as_str());
    // A second import in the same folder: the keys are here now.
    let err = refused(import(&b, &file, PASS));
    assert!(err.contains("works as it is"), "{err}");
}

#[test]
fn a_recovered_device_syncs_again_with_the_devices_that_kept_their_keys() {
    let a = Env::init();
    a.write("kept.md", "on every device\n");
    a.scan();
    // The export goes through the running daemon.
    let da = Daemon::start_net(&a, &[]);
    let (file, exported) = export(&a, "vault.key");
    assert!(exported["ops"].as_array().is_some_and(|o| !o.is_empty()));
    let _ = da.stop();
    let b = copy_elsewhere(&a, "restored");
    let _da = Daemon::start_net(&a, &[]);
    let addr = a.json(&["status"])["network"]["listening"][0]
        .as_str()
        .unwrap()
        .to_string();
    let out = import(&b, &file, PASS);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let new_id = serde_json::from_slice::<Value>(&out.stdout).unwrap()["device"]
        .as_str()
        .unwrap()
        .to_string();
    // A does not know the new device yet: B's node starts under the
    // recovery key, which A admits, and hands over once A holds the add.
    let _db = Daemon::start_net(&b, &["--peer", &addr]);
    b.write("from-b.md", "written on the recovered device\n");
    a.write("from-a.md", "written on the device that kept its keys\n");
    eventually("both notes on both devices", || {
        a.vault.join("from-b.md").exists() && b.vault.join("from-a.md").exists()
    });
    eventually("A to see B under its new id", || {
        a.json(&["peers"])
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["device"] == new_id.as_str() && p["connected"] == true)
    });
    let carrier = std::fs::read_dir(&b.home)
        .unwrap()
        .filter_map(Result::ok)
        .any(|d| d.path().join("carrier.key").exists());
    assert!(
        !carrier,
        "the recovery key is dropped once A knows the new device"
    );
    assert_eq!(a.head(), b.head());
}

#[test]
fn key_export_refuses_what_would_lose_or_leak_keys() {
    let a = Env::init();
    let target = a.tmp.path().join("exists.key");
    std::fs::write(&target, "keep me").unwrap();
    let t = target.to_str().unwrap();
    let err = refused(a.run_with_input(&["key", "export", t], PASS));
    assert!(err.contains("never overwrites"), "{err}");
    assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
    let inside = a.vault.join("notes.key");
    let err = refused(a.run_with_input(&["key", "export", inside.to_str().unwrap()], PASS));
    assert!(err.contains("inside the vault"), "{err}");
    assert!(!inside.exists());
    let new = a.tmp.path().join("new.key");
    let n = new.to_str().unwrap();
    let err = refused(a.run_with_input(&["key", "export", n], "short\n"));
    assert!(err.contains("at least 12"), "{err}");
    let err = refused(a.run_with_input(&["key", "export", n], ""));
    assert!(err.contains("no passphrase"), "{err}");
    let err = refused(a.run_with_input(&["key", "export", "/no/such/dir/x.key"], PASS));
    assert!(err.contains("/no/such/dir"), "{err}");
    assert!(!new.exists());
    // None of these added a recovery member.
    assert!(a.json(&["peers"]).as_array().unwrap().is_empty());
}

#[test]
fn key_import_refuses_files_and_folders_it_cannot_recover() {
    let a = Env::init();
    a.write("a.md", "a\n");
    a.scan();
    let older = copy_elsewhere(&a, "older");
    let (file, exported) = export(&a, "vault.key");
    let k = file.to_str().unwrap();

    // Not a key file; a truncated one.
    let junk = a.tmp.path().join("junk.key");
    std::fs::write(&junk, vec![7u8; 156]).unwrap();
    let err = refused(import(&older, &junk, PASS));
    assert!(err.contains("not a vellum key export"), "{err}");
    let cut = a.tmp.path().join("cut.key");
    std::fs::write(&cut, &std::fs::read(&file).unwrap()[..100]).unwrap();
    let err = refused(import(&older, &cut, PASS));
    assert!(err.contains("not a vellum key export"), "{err}");
    // A folder copied before the export does not know its recovery key.
    let before = instance(&older);
    let err = refused(import(&older, &file, PASS));
    assert!(err.contains("does not know"), "{err}");
    assert_eq!(instance(&older), before);
    // Another vault's folder.
    let other = Env::init();
    let elsewhere = copy_elsewhere(&other, "other-vault");
    let err = refused(import(&elsewhere, &file, PASS));
    assert!(err.contains("another vault"), "{err}");
    // A folder that is no vault.
    let empty = Env::new();
    let out = empty.run_with_input(&["key", "import", k], PASS);
    let err = refused(out);
    assert!(err.contains("not a vault"), "{err}");
    // The device whose keys are here.
    let err = refused(import(&a, &file, PASS));
    assert!(err.contains("works as it is"), "{err}");
    // A recovery key removed from the vault opens nothing any more.
    let name = exported["name"].as_str().unwrap();
    a.ok(&["member", "remove", name]);
    let later = copy_elsewhere(&a, "later");
    let err = refused(import(&later, &file, PASS));
    assert!(err.contains("removed"), "{err}");
}
