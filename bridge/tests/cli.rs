//! End-to-end tests of the `vellum` CLI on real folders and a real fjall
//! journal: the JSON contract, time travel, writing history forward, and
//! every bad-input case of DESIGN §12 that this stage covers.

mod common;

use std::fs::File;
use std::os::unix::fs::MetadataExt;

use common::{Env, redact, tree};

#[test]
fn init_scan_status_log_json_shapes() {
    let env = Env::new();
    env.write("notes/a.md", "# A\n\nhello\n");
    env.write("日記/2026-11-25.md", "今日は 🎉\n");
    env.write(".obsidian/workspace.json", "{}"); // ignored by default
    env.write(".obsidian/app.json", "{}");
    let init = env.json(&["init", "--name", "laptop"]);
    insta::assert_json_snapshot!("init", redact(&init));

    env.write("notes/a.md", "# A\n\nhello world\n");
    std::fs::rename(
        env.vault.join("日記/2026-11-25.md"),
        env.vault.join("日記/today.md"),
    )
    .unwrap();
    std::fs::remove_file(env.vault.join(".obsidian/app.json")).unwrap();
    env.write("b.md", "new");
    let scan = env.scan();
    insta::assert_json_snapshot!("scan", redact(&scan));

    let status = env.json(&["status"]);
    insta::assert_json_snapshot!("status", redact(&status));
    assert_eq!(status["files"], 3);
    assert!(status["journal_bytes"].as_u64().unwrap() > 0);
    assert!(status["head"].as_str().unwrap().starts_with("vv:"));

    let log = env.json(&["log"]);
    insta::assert_json_snapshot!("log", redact(&log));
    let only_a = env.json(&["log", "--path", "notes/a.md"]);
    assert_eq!(only_a.as_array().unwrap().len(), 2);
    assert_eq!(
        env.json(&["log", "--limit", "1"]).as_array().unwrap().len(),
        1
    );
    // --before pages on from an op: the rest of the log after it.
    let all = log.as_array().unwrap();
    let first = all[0]["id"].as_str().unwrap();
    let rest = env.json(&["log", "--before", first, "--limit", "1000"]);
    assert_eq!(rest.as_array().unwrap()[..], all[1..]);

    // A scan with nothing new records nothing and keeps the head.
    let again = env.scan();
    assert_eq!(again["ops_recorded"], 0);
    assert_eq!(again["head"], scan["head"]);
}

#[test]
fn show_and_checkout_travel_in_time_with_mtimes() {
    let env = Env::init();
    env.write("n.md", "one\n");
    let mtime_one = std::fs::metadata(env.vault.join("n.md")).unwrap().mtime();
    let h1 = env.scan()["head"].as_str().unwrap().to_string();
    std::thread::sleep(std::time::Duration::from_millis(20));
    env.write("n.md", "one\ntwo\n");
    env.write("img/p.bin", vec![0xffu8; 300_000]);
    let h2 = env.scan()["head"].as_str().unwrap().to_string();

    assert_eq!(env.ok(&["show", "n.md", "--at", &h1]), b"one\n");
    assert_eq!(env.ok(&["show", "n.md", "--at", &h2]), b"one\ntwo\n");
    assert_eq!(env.ok(&["show", "n.md"]), b"one\ntwo\n");
    assert_eq!(env.ok(&["show", "img/p.bin"]), vec![0xffu8; 300_000]);

    // An op id point: the op's causal past.
    let log = env.json(&["log"]);
    let first_edit = log
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "create" && e["path"] == "n.md")
        .unwrap();
    assert_eq!(
        env.ok(&["show", "n.md", "--at", first_edit["id"].as_str().unwrap()]),
        b"one\n"
    );

    let dest = env.tmp.path().join("old");
    let r = env.json(&["checkout", "--at", &h1, dest.to_str().unwrap()]);
    assert_eq!(r["files"], 1);
    assert_eq!(
        tree(&dest).into_iter().collect::<Vec<_>>(),
        vec![("n.md".to_string(), b"one\n".to_vec())]
    );
    assert_eq!(
        std::fs::metadata(dest.join("n.md")).unwrap().mtime(),
        mtime_one
    );
    assert!(!dest.join(".vellum").exists());

    let dest2 = env.tmp.path().join("new");
    env.json(&["checkout", "--at", "head", dest2.to_str().unwrap()]);
    assert_eq!(tree(&dest2), tree(&env.vault));

    // Diff: unified text, and a JSON list of changed files.
    let d = String::from_utf8(env.ok(&["diff", "--from", &h1, "--to", &h2])).unwrap();
    assert!(d.contains("+two"), "{d}");
    assert!(d.contains("Binary files"), "{d}");
    let dj = env.json(&["diff", "--from", &h1, "--to", &h2]);
    insta::assert_json_snapshot!("diff", dj);
}

#[test]
fn restore_and_rollback_write_history_forward() {
    let env = Env::init();
    env.write("keep.md", "v1\n");
    env.write("dir/x.md", "x1\n");
    let h1 = env.scan()["head"].as_str().unwrap().to_string();
    env.write("keep.md", "v2\n");
    std::fs::remove_file(env.vault.join("dir/x.md")).unwrap();
    env.write("later.md", "created after h1\n");
    env.scan();
    // An unrecorded edit: restore scans first, so it stays in history.
    env.write("later.md", "edited, never scanned\n");

    let r = env.json(&["restore", "keep.md", "--at", &h1]);
    assert_eq!(r["ops_recorded"], 1);
    assert_eq!(r["changed"], serde_json::json!(["keep.md"]));
    assert_eq!(env.read("keep.md"), b"v1\n");
    let before_rollback = env.head();
    assert_eq!(
        env.ok(&["show", "later.md", "--at", &before_rollback]),
        b"edited, never scanned\n"
    );

    let preview = env.json(&["rollback", "--to", &h1, "--dry-run"]);
    assert_eq!(preview["destructive"], 1);
    assert_eq!(
        env.read("later.md"),
        b"edited, never scanned\n",
        "dry run changed the disk"
    );

    let r = env.json(&["rollback", "--to", &h1]);
    assert_eq!(r["changed"], serde_json::json!(["dir/x.md", "later.md"]));
    assert_eq!(
        tree(&env.vault),
        [
            ("dir/x.md".to_string(), b"x1\n".to_vec()),
            ("keep.md".to_string(), b"v1\n".to_vec())
        ]
        .into_iter()
        .collect()
    );
    assert!(!env.vault.join("later.md").exists());

    // The rollback is itself history: roll forward again.
    let r = env.json(&["rollback", "--to", &before_rollback]);
    assert!(r["ops_recorded"].as_u64().unwrap() >= 2);
    assert_eq!(env.read("later.md"), b"edited, never scanned\n");
    assert!(
        !env.vault.join("dir").exists(),
        "emptied folder left behind"
    );
    assert!(env.json(&["verify"])["ok"].as_bool().unwrap());
}

#[test]
fn rollback_over_the_quarantine_threshold_needs_yes() {
    let env = Env::init();
    let h0 = env.head();
    for i in 0..25 {
        env.write(&format!("n{i}.md"), format!("note {i}\n"));
    }
    env.scan();
    let err = env.fails(&["rollback", "--to", &h0]);
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(
        tree(&env.vault).len(),
        25,
        "refused rollback touched the disk"
    );
    env.json(&["rollback", "--to", &h0, "--yes"]);
    assert_eq!(tree(&env.vault).len(), 0);
}

#[test]
fn rollback_swaps_renamed_files_back() {
    let env = Env::init();
    env.write("a.md", "content of a\n");
    env.write("b.md", "content of b\n");
    let h1 = env.scan()["head"].as_str().unwrap().to_string();
    std::fs::rename(env.vault.join("a.md"), env.vault.join("tmp.md")).unwrap();
    std::fs::rename(env.vault.join("b.md"), env.vault.join("a.md")).unwrap();
    std::fs::rename(env.vault.join("tmp.md"), env.vault.join("b.md")).unwrap();
    env.scan();
    env.json(&["rollback", "--to", &h1]);
    assert_eq!(env.read("a.md"), b"content of a\n");
    assert_eq!(env.read("b.md"), b"content of b\n");
}

#[test]
fn scan_detects_renames_with_edits_and_case_only_renames() {
    let env = Env::init();
    let body: String = (0..40).map(|i| format!("line {i}\n")).collect();
    env.write("Note.md", &body);
    env.write("other.md", "short\n");
    env.scan();
    std::fs::rename(env.vault.join("Note.md"), env.vault.join("note.md")).unwrap();
    std::fs::remove_file(env.vault.join("other.md")).unwrap();
    env.write("moved/other.md", "short\n");
    let s = env.scan();
    assert_eq!(
        (
            s["renamed"].as_u64(),
            s["created"].as_u64(),
            s["deleted"].as_u64()
        ),
        (Some(2), Some(0), Some(0)),
        "{s}"
    );
    std::fs::remove_file(env.vault.join("note.md")).unwrap();
    env.write("renamed.md", format!("{body}one more line\n"));
    let s = env.scan();
    assert_eq!(
        (s["renamed"].as_u64(), s["edited"].as_u64()),
        (Some(1), Some(1)),
        "{s}"
    );
    let log = env.json(&["log", "--path", "renamed.md"]);
    assert_eq!(log.as_array().unwrap().len(), 4, "{log}"); // create, case rename, rename, edit
}

#[test]
fn symlinks_are_skipped_with_a_warning() {
    let env = Env::init();
    env.write("real.md", "x");
    std::os::unix::fs::symlink("/etc/passwd", env.vault.join("link.md")).unwrap();
    let out = env.run(&["scan", "--json"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("symlink"));
    assert_eq!(env.json(&["status"])["files"], 1);
}

#[test]
fn invalid_utf8_note_is_a_blob() {
    let env = Env::init();
    let bytes = b"# not utf-8 \xff\xfe\n".to_vec();
    env.write("bad.md", &bytes);
    env.scan();
    let info = env.json(&["show", "bad.md"]);
    assert_eq!(info["kind"], "binary");
    assert_eq!(env.ok(&["show", "bad.md"]), bytes);
}

// ---- bad input: a clear one-line error, exit 1, nothing changed ----

#[test]
fn bad_input_non_vault_directory() {
    let env = Env::new();
    for cmd in [
        &["status"][..],
        &["scan"],
        &["log"],
        &["verify"],
        &["show", "a.md"],
    ] {
        let err = env.fails(cmd);
        assert!(err.contains("not a vault"), "{err}");
    }
    assert!(!env.vault.join(".vellum").exists());
}

#[test]
fn bad_input_already_initialised() {
    let env = Env::init();
    env.write("a.md", "a");
    env.scan();
    let before = env.json(&["status"]);
    let err = env.fails(&["init"]);
    assert!(err.contains("already a vault"), "{err}");
    assert_eq!(env.json(&["status"]), before);
}

#[test]
fn bad_input_points() {
    let env = Env::init();
    env.write("a.md", "a");
    env.scan();
    let head = env.head();
    for (point, expect) in [
        ("yesterday-ish", "unknown point"),
        ("2000-01-01", "before the vault's first op"),
        ("ffffffffffff", "no op with id"),
        ("vv:abc", "not"),
    ] {
        let err = env.fails(&["show", "a.md", "--at", point]);
        assert!(err.contains(expect), "{point}: {err}");
    }
    // A vv naming an op this device lacks.
    let mut other = head.clone();
    other.pop();
    other.push(if head.ends_with('a') { 'b' } else { 'a' });
    env.fails(&["show", "a.md", "--at", &other]);
    assert_eq!(env.head(), head);
}

#[test]
fn bad_input_paths_outside_the_vault_or_inside_dot_vellum() {
    let env = Env::init();
    env.write("a.md", "a");
    env.scan();
    for p in [
        "../etc/passwd",
        "/etc/passwd",
        ".vellum/instance",
        ".vellum",
        "a/../../x",
    ] {
        let err = env.fails(&["show", p]);
        assert!(
            err.contains("outside") || err.contains(".vellum"),
            "{p}: {err}"
        );
        env.fails(&["restore", p, "--at", "head"]);
    }
}

#[test]
fn bad_input_non_empty_checkout_destination() {
    let env = Env::init();
    env.write("a.md", "a");
    env.scan();
    let dest = env.tmp.path().join("dest");
    std::fs::create_dir(&dest).unwrap();
    std::fs::write(dest.join("mine.txt"), "keep me").unwrap();
    let err = env.fails(&["checkout", "--at", "head", dest.to_str().unwrap()]);
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(tree(&dest).len(), 1);
    let inside = env.vault.join("sub");
    let err = env.fails(&["checkout", "--at", "head", inside.to_str().unwrap()]);
    assert!(err.contains("inside the vault"), "{err}");
    assert!(!inside.exists());
}

#[test]
fn bad_input_second_writer_is_refused_by_the_lock() {
    let env = Env::init();
    env.write("a.md", "a");
    let lock = File::options()
        .write(true)
        .open(env.vault.join(".vellum/lock"))
        .unwrap();
    lock.lock().unwrap();
    let err = env.fails(&["scan"]);
    assert!(err.contains("locked"), "{err}");
    drop(lock);
    assert_eq!(env.scan()["created"], 1);
}

#[test]
fn bad_input_missing_keys_is_a_clear_error() {
    let env = Env::init();
    std::fs::remove_dir_all(&env.home).unwrap();
    let err = env.fails(&["status"]);
    assert!(err.contains("device keys"), "{err}");
}

#[test]
fn restore_of_a_path_that_never_existed_is_a_user_error() {
    let env = Env::init();
    let err = env.fails(&["restore", "nope.md", "--at", "head"]);
    assert!(err.contains("nothing to restore"), "{err}");
}

#[test]
fn names_differing_only_in_normalisation_both_survive() {
    let env = Env::init();
    env.write("caf\u{e9}.md", "nfc version\n");
    env.write("cafe\u{301}.md", "nfd version, longer\n");
    let s = env.scan();
    assert_eq!(s["created"], 2, "{s}");
    let dest = env.tmp.path().join("out");
    env.json(&["checkout", "--at", "head", dest.to_str().unwrap()]);
    let mut contents: Vec<Vec<u8>> = tree(&dest).into_values().collect();
    contents.sort();
    assert_eq!(
        contents,
        vec![b"nfc version\n".to_vec(), b"nfd version, longer\n".to_vec()]
    );
    // A second scan sees both as known: nothing recorded.
    assert_eq!(env.scan()["ops_recorded"], 0);
}

/// Regression: two files of the same size and mtime swapped by renames
/// looked unchanged to a size+mtime compare, so the swap went unrecorded.
#[test]
fn swapped_files_with_equal_size_and_mtime_are_seen() {
    let env = Env::init();
    env.write("a.md", "content of a\n");
    env.write("b.md", "content of b\n");
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for f in ["a.md", "b.md"] {
        File::options()
            .write(true)
            .open(env.vault.join(f))
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    env.scan();
    std::fs::rename(env.vault.join("a.md"), env.vault.join("t.md")).unwrap();
    std::fs::rename(env.vault.join("b.md"), env.vault.join("a.md")).unwrap();
    std::fs::rename(env.vault.join("t.md"), env.vault.join("b.md")).unwrap();
    let s = env.scan();
    assert!(s["ops_recorded"].as_u64().unwrap() >= 2, "{s}");
    assert_eq!(env.ok(&["show", "a.md"]), b"content of b\n");
    assert_eq!(env.ok(&["show", "b.md"]), b"content of a\n");
}

/// A checkout of a point whose versions are mostly not cached takes the
/// one-pass forward replay; it must give the same bytes as the per-file path.
#[test]
fn checkout_of_an_old_point_with_many_uncached_versions() {
    let env = Env::init();
    for i in 0..260 {
        env.write(&format!("n/{i}.md"), format!("note {i}\nfirst version\n"));
    }
    let old = env.scan()["head"].as_str().unwrap().to_string();
    for i in 0..260 {
        env.write(
            &format!("n/{i}.md"),
            format!("note {i}\nsecond version, longer\n"),
        );
    }
    env.write("late.md", "after the point\n");
    env.scan();
    let dest = env.tmp.path().join("old");
    let r = env.json(&["checkout", "--at", &old, dest.to_str().unwrap()]);
    assert_eq!(r["files"], 260);
    let t = tree(&dest);
    assert_eq!(t.len(), 260);
    for i in 0..260 {
        assert_eq!(
            t[&format!("n/{i}.md")],
            format!("note {i}\nfirst version\n").into_bytes()
        );
    }
}

/// Regression: recording a rewrite of a large note stalled the scan (and a
/// daemon's vault thread) for 71 s in a char-level diff. The rewrite is a
/// Replace holding exactly the new text; a one-line change to the same
/// note is still a small Edit; and `vellum diff` of the rewrite, whose time
/// is bounded, still removes every old line and adds every new one.
#[test]
fn a_rewrite_of_a_large_note_is_a_replace_and_a_one_line_change_a_small_edit() {
    let env = Env::init();
    let note = |line: &dyn Fn(usize) -> String| -> String {
        (0..20_000).map(|i| format!("{}\n", line(i))).collect()
    };
    let old = note(&|i| format!("old line {i}"));
    let new = note(&|i| format!("new line {i}"));
    let newest = |env: &Env| env.json(&["log", "--path", "big.md"])[0].clone();
    let journal_bytes = |env: &Env| env.json(&["status"])["journal_bytes"].as_u64().unwrap();
    env.write("big.md", &old);
    env.scan();
    let created = newest(&env)["id"].as_str().unwrap().to_string();

    env.write("big.md", &new);
    assert_eq!(env.scan()["edited"], 1);
    let op = newest(&env);
    assert_eq!(op["kind"], "replace", "{op}");
    let replace = op["id"].as_str().unwrap();
    assert_eq!(env.ok(&["show", "big.md", "--at", replace]), new.as_bytes());

    let diff = env.ok(&["diff", "--from", &created, "--to", replace, "big.md"]);
    let diff = String::from_utf8(diff).unwrap();
    let side = |sign: char, header: &str| -> String {
        diff.lines()
            .filter(|l| l.starts_with(sign) && !l.starts_with(header))
            .map(|l| format!("{}\n", &l[1..]))
            .collect()
    };
    assert!(
        diff.starts_with("--- a/big.md\n+++ b/big.md\n"),
        "{diff:.200}"
    );
    assert!(
        side('-', "--- ") == old,
        "the removed lines are not the old text"
    );
    assert!(
        side('+', "+++ ") == new,
        "the added lines are not the new text"
    );

    let edited = note(&|i| {
        if i == 12_345 {
            "a line the user rewrote".into()
        } else {
            format!("new line {i}")
        }
    });
    let before = journal_bytes(&env);
    env.write("big.md", &edited);
    assert_eq!(env.scan()["edited"], 1);
    let op = newest(&env);
    assert_eq!(op["kind"], "edit", "{op}");
    let grown = journal_bytes(&env) - before;
    assert!(grown < 2048, "a one-line edit took {grown} journal bytes");
    assert_eq!(env.ok(&["show", "big.md"]), edited.as_bytes());
}

/// Similarity renames compare every line of both files, so a scan compares
/// at most 64 MiB of text for them. Here nine large notes are moved and
/// edited at once (81 pairs of 1.2 MB): the first are renames, the rest
/// a delete and a create, and every byte on disk is recorded either way.
#[test]
fn renames_past_the_comparison_budget_are_a_delete_and_a_create() {
    let env = Env::init();
    let note = |i: usize, first: &str| -> String {
        let mut s = format!("{first}\n");
        for j in 0..12_000 {
            s.push_str(&format!(
                "note {i} line {j}, with words to make it longer\n"
            ));
        }
        s
    };
    for i in 0..9 {
        env.write(&format!("a{i}.md"), note(i, "# before"));
    }
    env.scan();
    for i in 0..9 {
        std::fs::remove_file(env.vault.join(format!("a{i}.md"))).unwrap();
        env.write(&format!("b{i}.md"), note(i, "# after"));
    }
    let s = env.scan();
    let renamed = s["renamed"].as_u64().unwrap();
    assert!((1..9).contains(&renamed), "{s}");
    assert_eq!(s["created"].as_u64(), Some(9 - renamed), "{s}");
    assert_eq!(s["deleted"].as_u64(), Some(9 - renamed), "{s}");
    for i in 0..9 {
        let shown = env.ok(&["show", &format!("b{i}.md")]);
        assert!(shown == note(i, "# after").as_bytes(), "b{i}.md");
        assert_eq!(
            env.run(&["show", &format!("a{i}.md")]).status.code(),
            Some(1)
        );
    }
}

/// A folder that cannot be read must not turn into deletes: here a folder
/// nested past PATH_MAX, which even root cannot list by its full path.
#[test]
fn an_unreadable_folder_records_no_deletions() {
    let env = Env::init();
    env.write("a.md", "keep me\n");
    env.scan();
    let level = "d".repeat(250);
    let script = format!(
        "cd '{}' && for i in $(seq 20); do mkdir {level} && cd {level}; done",
        env.vault.display()
    );
    assert!(
        std::process::Command::new("bash")
            .arg("-c")
            .arg(&script)
            .status()
            .unwrap()
            .success()
    );
    std::fs::remove_file(env.vault.join("a.md")).unwrap();
    let out = env.run(&["scan", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["deleted"], 0, "{s}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no deletions are recorded"));
    // Once the whole vault can be read again, the deletion is recorded.
    std::process::Command::new("rm")
        .arg("-rf")
        .arg(env.vault.join(&level))
        .status()
        .unwrap();
    assert_eq!(env.scan()["deleted"], 1);
}

#[test]
fn clone_makes_a_second_device_with_the_same_files_and_history() {
    let env = Env::init();
    env.write("notes/one.md", "# one\n");
    env.write("日記/2026-11-25.md", "今日は\n");
    env.write("img/photo.png", [0xFFu8, 0, 1, 2].repeat(50_000));
    env.scan();
    let before = env.json(&["status"]);
    let phone = env.sibling("phone");
    let r = env.json(&[
        "clone",
        env.vault.to_str().unwrap(),
        phone.vault.to_str().unwrap(),
        "--name",
        "phone",
    ]);
    assert_eq!(r["files"], 3);
    assert_eq!(tree(&phone.vault), tree(&env.vault));
    for rel in ["notes/one.md", "日記/2026-11-25.md", "img/photo.png"] {
        let mtime = |root: &std::path::Path| std::fs::metadata(root.join(rel)).unwrap().mtime();
        assert_eq!(mtime(&phone.vault), mtime(&env.vault), "{rel}");
    }

    // One vault, two devices: the source recorded the add, and the clone
    // holds every op including it.
    let (src, dst) = (env.json(&["status"]), phone.json(&["status"]));
    assert_eq!(src["vault"], before["vault"]);
    assert_eq!(dst["vault"], src["vault"]);
    assert_ne!(dst["device"], src["device"]);
    assert_eq!(dst["device"], r["device"]);
    assert_eq!(src["ops"], before["ops"].as_u64().unwrap() + 1);
    assert_eq!(dst["head"], src["head"]);
    // (log prints short ids)
    let short = |v: &serde_json::Value| v.as_str().unwrap()[..12].to_string();
    let log = env.json(&["log", "--limit", "1"]);
    assert_eq!(log[0]["kind"], "member");
    assert_eq!(short(&log[0]["id"]), short(&r["member_op"]));

    // The clone writes as itself, and both journals verify.
    phone.write("notes/one.md", "# one\nfrom the phone\n");
    assert_eq!(phone.scan()["edited"], 1);
    let log = phone.json(&["log", "--limit", "1"]);
    assert_eq!(short(&log[0]["author"]), short(&r["device"]));
    assert_eq!(phone.scan()["ops_recorded"], 0);
    phone.ok(&["verify"]);
    env.ok(&["verify"]);
}

#[test]
fn bad_input_clone_into_a_non_empty_or_nested_folder() {
    let env = Env::init();
    env.write("a.md", "a");
    env.scan();
    let ops = env.json(&["status"])["ops"].clone();
    let dest = env.tmp.path().join("dest");
    std::fs::create_dir(&dest).unwrap();
    std::fs::write(dest.join("mine.txt"), "keep me").unwrap();
    let src = env.vault.to_str().unwrap();
    let err = env.fails(&["clone", src, dest.to_str().unwrap()]);
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(tree(&dest).len(), 1);
    let inside = env.vault.join("sub");
    let err = env.fails(&["clone", src, inside.to_str().unwrap()]);
    assert!(err.contains("inside the vault"), "{err}");
    assert!(!inside.exists());
    let err = env.fails(&["clone", dest.to_str().unwrap(), "elsewhere"]);
    assert!(err.contains("not a vault"), "{err}");
    // Nothing was written to the source: no member op.
    assert_eq!(env.json(&["status"])["ops"], ops);
}

/// A vault and a clone of it, each with a file of its own.
fn two_devices() -> (Env, Env) {
    let a = Env::init();
    a.write("shared.md", "# shared\n");
    a.scan();
    let b = a.clone_to("b");
    (a, b)
}

fn export(from: &Env, since: Option<&str>, name: &str) -> String {
    let file = from.tmp.path().join(name);
    let mut args = vec!["export", file.to_str().unwrap()];
    if let Some(p) = since {
        args.extend(["--since", p]);
    }
    from.json(&args);
    file.to_str().unwrap().to_string()
}

#[test]
fn export_and_import_carry_changes_both_ways_and_twice_is_a_no_op() {
    let (a, b) = two_devices();
    a.write("from-a.md", "written on a\n");
    a.write("shared.md", "# shared\nline from a\n");
    a.scan();
    b.write("notes/from-b.md", "written on b\n");
    b.write("pic.bin", [7u8, 0, 255].repeat(40_000));
    b.scan();

    let fa = export(&a, None, "a.vx");
    let fb = export(&b, None, "b.vx");
    let ra = a.json(&["import", &fb]);
    let rb = b.json(&["import", &fa]);
    assert_eq!(ra["ops_admitted"], 2);
    assert_eq!(rb["ops_admitted"], 2);
    assert_eq!(ra["rejected"].as_array().unwrap().len(), 0);
    assert_eq!(tree(&a.vault), tree(&b.vault));
    assert_eq!(a.head(), b.head());
    assert_eq!(a.read("shared.md"), b"# shared\nline from a\n");

    // The same file again: nothing changes.
    let again = a.json(&["import", &fb]);
    assert_eq!(again["ops_admitted"], 0);
    assert_eq!(again["changed"].as_array().unwrap().len(), 0);
    // A later export with --since carries only what is new.
    a.write("from-a.md", "written on a\nand more\n");
    a.scan();
    let head_b = b.head();
    let f = export(&a, Some(&head_b), "a2.vx");
    let r = b.json(&["import", &f]);
    assert_eq!(r["ops_admitted"], 1);
    assert_eq!(r["duplicates"], 0);
    assert_eq!(r["changed"], serde_json::json!(["from-a.md"]));
    assert_eq!(tree(&a.vault), tree(&b.vault));
    a.ok(&["verify"]);
    b.ok(&["verify"]);
}

#[test]
fn an_import_missing_earlier_ops_waits_for_them_across_runs() {
    let (a, b) = two_devices();
    let start = a.head();
    a.write("shared.md", "# shared\none\n");
    a.scan();
    let mid = a.head();
    a.write("shared.md", "# shared\none\ntwo\n");
    a.scan();
    let first = export(&a, Some(&start), "first.vx");
    let second = export(&a, Some(&mid), "second.vx");
    // The later ops first: they wait, persisted, and the disk is unchanged.
    let r = b.json(&["import", &second]);
    assert_eq!(
        (r["ops_admitted"].as_u64(), r["ops_pending"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(b.read("shared.md"), b"# shared\n");
    assert_eq!(b.json(&["status"])["pending"], 1);
    let r = b.json(&["import", &first]);
    assert_eq!(r["ops_pending"], 0);
    assert_eq!(b.read("shared.md"), b"# shared\none\ntwo\n");
    assert_eq!(a.head(), b.head());
}

/// Both devices edit one note, then exchange exports both ways.
fn exchange(a: &Env, b: &Env, name: &str) {
    let fa = export(a, None, &format!("{name}-a.vx"));
    let fb = export(b, None, &format!("{name}-b.vx"));
    a.json(&["import", &fb]);
    b.json(&["import", &fa]);
    assert_eq!(tree(&a.vault), tree(&b.vault), "{name}: same bytes on both");
    assert_eq!(a.head(), b.head(), "{name}: same head");
}

#[test]
fn concurrent_edits_of_one_note_merge_on_both_devices() {
    let (a, b) = two_devices();
    a.write("shared.md", "# shared\n");
    // Both append to the note, and edit different lines of another.
    a.write("list.md", "one\ntwo\nthree\nfour\n");
    a.scan();
    a.ok(&["export", a.tmp.path().join("setup.vx").to_str().unwrap()]);
    b.json(&["import", a.tmp.path().join("setup.vx").to_str().unwrap()]);
    a.write("shared.md", "# shared\nfrom a\n");
    a.write("list.md", "ONE\ntwo\nthree\nfour\n");
    a.scan();
    b.write("shared.md", "# shared\nfrom b\n");
    b.write("list.md", "one\ntwo\nthree\nFOUR\n");
    b.scan();
    exchange(&a, &b, "merge");
    assert_eq!(a.read("list.md"), b"ONE\ntwo\nthree\nFOUR\n");
    let shared = String::from_utf8(a.read("shared.md")).unwrap();
    assert!(
        shared == "# shared\nfrom a\nfrom b\n" || shared == "# shared\nfrom b\nfrom a\n",
        "{shared:?}"
    );
    assert_eq!(a.json(&["status"])["conflicts"], 0);
    // Each edit's own point still shows its own text: nothing was lost.
    let log = a.json(&["log", "--path", "shared.md", "--limit", "2"]);
    let mut sides: Vec<Vec<u8>> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| a.ok(&["show", "shared.md", "--at", e["id"].as_str().unwrap()]))
        .collect();
    sides.sort();
    assert_eq!(
        sides,
        vec![
            b"# shared\nfrom a\n".to_vec(),
            b"# shared\nfrom b\n".to_vec()
        ]
    );
    a.ok(&["verify"]);
    b.ok(&["verify"]);
}

#[test]
fn overlapping_edits_keep_one_text_and_open_a_conflict_on_both() {
    let (a, b) = two_devices();
    a.write("plan.md", "meet at noon\n");
    a.scan();
    let f = export(&a, None, "setup.vx");
    b.json(&["import", &f]);
    a.write("plan.md", "meet at one\n");
    a.scan();
    b.write("plan.md", "meet at two\n");
    b.scan();
    let fa = export(&a, None, "overlap-a.vx");
    let fb = export(&b, None, "overlap-b.vx");
    let ra = a.json(&["import", &fb]);
    let rb = b.json(&["import", &fa]);
    // Whichever device replays the later op reports the new conflict.
    let opened = ra["conflicts_new"].as_u64().unwrap() + rb["conflicts_new"].as_u64().unwrap();
    assert!(opened >= 1, "{ra} {rb}");
    assert_eq!(tree(&a.vault), tree(&b.vault));
    let text = a.read("plan.md");
    assert!(
        text == b"meet at one\n" || text == b"meet at two\n",
        "{:?}",
        String::from_utf8_lossy(&text)
    );
    assert_eq!(a.json(&["status"])["conflicts"], 1);
    assert_eq!(b.json(&["status"])["conflicts"], 1);
    a.ok(&["verify"]);
    b.ok(&["verify"]);

    // The conflict is listed, and each side can be read.
    let list = a.json(&["conflicts"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["path"], "plan.md");
    assert_eq!(list[0]["kind"], "overlap");
    assert_eq!(
        a.ok(&["show", "plan.md", "--side", "base"]),
        b"meet at noon\n"
    );
    assert_eq!(a.ok(&["show", "plan.md", "--side", "current"]), text);
    let incoming = a.ok(&["show", "plan.md", "--side", "incoming"]);
    assert_ne!(incoming, text);
    assert!(incoming == b"meet at one\n" || incoming == b"meet at two\n");

    // A manual edit does not close it; a Resolve does, on every device.
    a.write("plan.md", "meet at three\n");
    a.scan();
    assert_eq!(a.json(&["status"])["conflicts"], 1);
    a.json(&["resolve", "plan.md", "--take", "incoming"]);
    assert_eq!(a.read("plan.md"), incoming);
    assert_eq!(a.json(&["status"])["conflicts"], 0);
    assert_eq!(a.json(&["conflicts"]).as_array().unwrap().len(), 0);
    let f = export(&a, None, "resolved.vx");
    b.json(&["import", &f]);
    assert_eq!(b.json(&["status"])["conflicts"], 0);
    assert_eq!(tree(&a.vault), tree(&b.vault));
    a.ok(&["verify"]);
    b.ok(&["verify"]);
}

#[test]
fn resolve_with_a_file_and_bad_input() {
    let (a, b) = two_devices();
    a.write("plan.md", "meet at noon\n");
    a.scan();
    let f = export(&a, None, "setup.vx");
    b.json(&["import", &f]);
    let err = a.fails(&["resolve", "plan.md", "--take", "current"]);
    assert!(err.contains("no open conflict"), "{err}");
    let err = a.fails(&["resolve", "nowhere.md", "--take", "current"]);
    assert!(err.contains("nowhere.md"), "{err}");
    a.write("plan.md", "meet at one\n");
    a.scan();
    b.write("plan.md", "meet at two\n");
    b.scan();
    exchange(&a, &b, "resolve-with");
    let merged = a.tmp.path().join("merged.md");
    std::fs::write(&merged, "meet at one, then two\n").unwrap();
    b.json(&["resolve", "plan.md", "--with", merged.to_str().unwrap()]);
    assert_eq!(b.read("plan.md"), b"meet at one, then two\n");
    assert_eq!(b.json(&["status"])["conflicts"], 0);
    exchange(&a, &b, "after-resolve");
    assert_eq!(a.json(&["status"])["conflicts"], 0);
}

#[test]
fn bad_input_foreign_truncated_or_tampered_exports_change_nothing() {
    let (a, b) = two_devices();
    b.write("new.md", "new\n");
    b.scan();
    let good = export(&b, None, "b.vx");
    let other = Env::init();
    other.write("x.md", "x\n");
    other.scan();
    let foreign = export(&other, None, "other.vx");
    let before = (a.json(&["status"])["ops"].clone(), tree(&a.vault));

    let err = a.fails(&["import", &foreign]);
    assert!(err.contains("another vault"), "{err}");
    let bytes = std::fs::read(&good).unwrap();
    let cut = a.tmp.path().join("cut.vx");
    std::fs::write(&cut, &bytes[..bytes.len() - 10]).unwrap();
    let err = a.fails(&["import", cut.to_str().unwrap()]);
    assert!(err.contains("truncated or damaged"), "{err}");
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 1;
    let bad = a.tmp.path().join("flipped.vx");
    std::fs::write(&bad, &flipped).unwrap();
    let err = a.fails(&["import", bad.to_str().unwrap()]);
    assert!(err.contains("truncated or damaged"), "{err}");
    let junk = a.tmp.path().join("junk.vx");
    std::fs::write(&junk, "hello").unwrap();
    let err = a.fails(&["import", junk.to_str().unwrap()]);
    assert!(err.contains("not a vellum export"), "{err}");
    assert_eq!((a.json(&["status"])["ops"].clone(), tree(&a.vault)), before);
    // export never overwrites a file
    let err = b.fails(&["export", &good]);
    assert!(err.contains("already exists"), "{err}");
}

/// Three devices exchanging export files in different orders (B's file
/// reaches C through A, and C's reaches B directly) end with the same
/// bytes, head and conflicts.
#[test]
fn three_devices_exchanging_in_different_orders_converge() {
    let a = Env::init();
    a.write("daily.md", "# Today\n- [ ] milk\n");
    a.write("list.md", "one\ntwo\nthree\n");
    a.scan();
    let b = a.sibling("b");
    let c = a.sibling("c");
    for d in [&b, &c] {
        a.ok(&[
            "clone",
            a.vault.to_str().unwrap(),
            d.vault.to_str().unwrap(),
        ]);
    }
    // Clones carry each other's member ops only through exchange: send A's
    // full history (both adds) to both first.
    let setup = export(&a, None, "setup.vx");
    b.json(&["import", &setup]);
    c.json(&["import", &setup]);

    a.write("daily.md", "# Today\n- [ ] milk\n- [ ] eggs\n");
    a.scan();
    b.write("daily.md", "# Today\n- [ ] milk\n- [ ] bread\n");
    b.write("list.md", "ONE\ntwo\nthree\n");
    b.scan();
    c.write("list.md", "one\ntwo\nTHREE\n");
    c.write("c-only.md", "from c\n");
    c.scan();

    let (fa, fb, fc) = (
        export(&a, None, "a.vx"),
        export(&b, None, "b.vx"),
        export(&c, None, "c.vx"),
    );
    a.json(&["import", &fb]);
    let fab = export(&a, None, "ab.vx");
    c.json(&["import", &fab]);
    b.json(&["import", &fc]);
    b.json(&["import", &fa]);
    a.json(&["import", &fc]);
    for d in [&a, &b, &c] {
        assert_eq!(tree(&d.vault), tree(&a.vault));
        assert_eq!(d.head(), a.head());
        assert_eq!(d.json(&["status"])["conflicts"], 0);
        d.ok(&["verify"]);
    }
    assert_eq!(a.read("list.md"), b"ONE\ntwo\nTHREE\n");
    let daily = String::from_utf8(a.read("daily.md")).unwrap();
    assert!(
        daily.contains("- [ ] eggs\n") && daily.contains("- [ ] bread\n"),
        "{daily}"
    );
    assert_eq!(daily.matches("milk").count(), 1, "{daily}");
    assert_eq!(a.read("c-only.md"), b"from c\n");
}

/// A delete that had not seen a concurrent edit does not remove the file:
/// both devices keep the edit, with an "edited after delete" conflict.
#[test]
fn a_delete_does_not_remove_an_edit_it_had_not_seen() {
    let (a, b) = two_devices();
    a.write("plan.md", "meet at noon\n");
    a.scan();
    let f = export(&a, None, "setup.vx");
    b.json(&["import", &f]);
    std::fs::remove_file(a.vault.join("plan.md")).unwrap();
    assert_eq!(a.scan()["deleted"], 1);
    b.write("plan.md", "meet at noon\nbring cake\n");
    b.scan();
    exchange(&a, &b, "delete-vs-edit");
    assert_eq!(a.read("plan.md"), b"meet at noon\nbring cake\n");
    let list = a.json(&["conflicts"]);
    assert_eq!(list[0]["kind"], "edited_after_delete", "{list}");
    assert_eq!(b.json(&["status"])["conflicts"], 1);
    // Deleting again, having seen the edit, removes it everywhere.
    a.json(&["resolve", "plan.md", "--take", "current"]);
    std::fs::remove_file(a.vault.join("plan.md")).unwrap();
    a.scan();
    let f = export(&a, None, "after.vx");
    b.json(&["import", &f]);
    assert!(!b.vault.join("plan.md").exists());
    assert_eq!(tree(&a.vault), tree(&b.vault));
    a.ok(&["verify"]);
    b.ok(&["verify"]);
}

/// A rename on one device and an edit on the other: the file has both,
/// since ops name files by id, not by path.
#[test]
fn a_rename_and_a_concurrent_edit_both_apply() {
    let (a, b) = two_devices();
    a.write("draft.md", "first line\nsecond line\n");
    a.scan();
    let f = export(&a, None, "setup.vx");
    b.json(&["import", &f]);
    std::fs::create_dir_all(a.vault.join("final")).unwrap();
    std::fs::rename(a.vault.join("draft.md"), a.vault.join("final/essay.md")).unwrap();
    assert_eq!(a.scan()["renamed"], 1);
    b.write("draft.md", "first line\nsecond line, edited\n");
    b.scan();
    exchange(&a, &b, "rename-edit");
    assert!(!a.vault.join("draft.md").exists());
    assert_eq!(
        a.read("final/essay.md"),
        b"first line\nsecond line, edited\n"
    );
    assert_eq!(a.json(&["status"])["conflicts"], 0);
}

#[test]
fn daily_notes_created_on_two_devices_become_one_note_with_both_lines() {
    let (a, b) = two_devices();
    let note = "daily/2026-11-26.md";
    a.write(note, "# Thursday\n## Tasks\n- [ ] water the plants\n");
    a.scan();
    b.write(note, "# Thursday\n## Tasks\n- [ ] call the bank\n");
    b.scan();
    exchange(&a, &b, "daily");
    let text = String::from_utf8(a.read(note)).unwrap();
    assert!(
        text == "# Thursday\n## Tasks\n- [ ] water the plants\n- [ ] call the bank\n"
            || text == "# Thursday\n## Tasks\n- [ ] call the bank\n- [ ] water the plants\n",
        "{text:?}"
    );
    // One note, not a conflict copy, and the union is listed for review.
    assert_eq!(tree(&a.vault).len(), 2, "shared.md and the note, no copy");
    let list = a.json(&["conflicts"]);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["kind"], "created_twice");
    assert_eq!(a.ok(&["show", note, "--side", "base"]), b"");
    let incoming = String::from_utf8(a.ok(&["show", note, "--side", "incoming"])).unwrap();
    let current = String::from_utf8(a.ok(&["show", note, "--side", "current"])).unwrap();
    let mut sides = [incoming, current];
    sides.sort();
    assert_eq!(
        sides,
        [
            "# Thursday\n## Tasks\n- [ ] call the bank\n",
            "# Thursday\n## Tasks\n- [ ] water the plants\n"
        ]
    );
    // Editing the note on the device whose file became the alias goes to
    // the one note.
    b.write(note, format!("{text}- [ ] buy bread\n"));
    b.scan();
    b.json(&["resolve", note, "--take", "current"]);
    exchange(&a, &b, "daily-after");
    assert_eq!(a.read(note), format!("{text}- [ ] buy bread\n").as_bytes());
    assert_eq!(a.json(&["status"])["conflicts"], 0);
    a.ok(&["verify"]);
    b.ok(&["verify"]);
}

#[test]
fn concurrent_resolves_that_differ_reopen_the_conflict_on_both() {
    let (a, b) = two_devices();
    a.write("plan.md", "meet at noon\n");
    a.scan();
    exchange(&a, &b, "setup");
    a.write("plan.md", "meet at one\n");
    a.scan();
    b.write("plan.md", "meet at two\n");
    b.scan();
    exchange(&a, &b, "overlap");
    assert_eq!(a.json(&["status"])["conflicts"], 1);
    let kept = a.read("plan.md");
    // Each device resolves it its own way before hearing from the other.
    let mine = b.tmp.path().join("mine.md");
    std::fs::write(&mine, "meet at half past one\n").unwrap();
    a.json(&["resolve", "plan.md", "--take", "current"]);
    b.json(&["resolve", "plan.md", "--with", mine.to_str().unwrap()]);
    exchange(&a, &b, "resolves");
    let list = a.json(&["conflicts"]);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["kind"], "concurrent_resolves");
    let current = a.ok(&["show", "plan.md", "--side", "current"]);
    let incoming = a.ok(&["show", "plan.md", "--side", "incoming"]);
    assert_eq!(a.read("plan.md"), current);
    let mut sides = [current, incoming];
    sides.sort();
    let mut want = [kept, b"meet at half past one\n".to_vec()];
    want.sort();
    assert_eq!(sides, want);
    // A resolve made after both settles it everywhere.
    a.json(&["resolve", "plan.md", "--take", "incoming"]);
    exchange(&a, &b, "settled");
    assert_eq!(b.json(&["status"])["conflicts"], 0);
    a.ok(&["verify"]);
    b.ok(&["verify"]);
}

/// `cp -a`: a folder copied with its metadata (a backup, restored later).
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    let ok = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap()
        .success();
    assert!(ok, "cp -a {} {}", from.display(), to.display());
}

#[test]
fn a_vellum_folder_restored_from_an_old_copy_takes_a_new_identity_and_loses_nothing() {
    let (a, b) = two_devices();
    a.write("notes/keep.md", "# keep\n");
    a.scan();
    exchange(&a, &b, "setup");
    let backup = a.tmp.path().join("backup-dot-vellum");
    copy_dir(&a.vault.join(".vellum"), &backup);
    let old_device = a.json(&["status"])["device"].clone();

    // Work after the backup, which reaches device b.
    a.write("notes/keep.md", "# keep\nwritten after the backup\n");
    a.write("notes/new.md", "a note made after the backup\n");
    a.scan();
    let f = export(&a, None, "after-backup.vx");
    b.json(&["import", &f]);

    // The backup comes back over .vellum/; the notes on disk stay newer,
    // and one more edit is made before vellum runs again.
    std::fs::remove_dir_all(a.vault.join(".vellum")).unwrap();
    copy_dir(&backup, &a.vault.join(".vellum"));
    a.write(
        "notes/new.md",
        "a note made after the backup\nand after the restore\n",
    );

    // Writing now would reuse seqs of its own chain: it refuses, says why,
    // and changes nothing.
    let err = a.fails(&["scan"]);
    assert!(err.contains("restored from an old copy"), "{err}");
    let status = a.json(&["status"]);
    assert!(status["stale"].is_object(), "{status}");
    assert_eq!(status["device"], old_device);

    // Its own ops come back from b: it takes a new identity, records what
    // only the disk had, and writes nothing over it.
    let fb = export(&b, None, "from-b.vx");
    let r = a.json(&["import", &fb]);
    assert!(r["new_identity"].is_string(), "{r}");
    assert_ne!(a.json(&["status"])["device"], old_device);
    assert!(a.json(&["status"])["stale"].is_null());
    assert_eq!(
        a.read("notes/keep.md"),
        b"# keep\nwritten after the backup\n"
    );
    assert_eq!(
        a.read("notes/new.md"),
        b"a note made after the backup\nand after the restore\n"
    );
    assert_eq!(tree(&a.vault).len(), 3, "no conflict copies");

    // The new identity's ops are admitted on b: the retired one added it.
    exchange(&a, &b, "after-recovery");
    assert_eq!(
        b.read("notes/new.md"),
        b"a note made after the backup\nand after the restore\n"
    );
    a.write(
        "notes/keep.md",
        "# keep\nwritten after the backup\nby the new identity\n",
    );
    a.scan();
    exchange(&a, &b, "new-identity-edits");
    assert_eq!(a.json(&["conflicts"]), serde_json::json!([]));
    a.ok(&["verify"]);
    b.ok(&["verify"]);
    // The retired key is kept, never deleted.
    let kept = std::fs::read_dir(&a.home)
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("device.retired-")
        })
        .count();
    assert_eq!(kept, 1);
}

#[test]
fn a_device_restored_with_its_keys_forks_its_chain_and_still_loses_nothing() {
    let (a, b) = two_devices();
    a.write("notes/keep.md", "# keep\n");
    a.scan();
    exchange(&a, &b, "setup");
    // A backup of the whole device: the vault's .vellum/ and VELLUM_HOME,
    // so nothing can tell that it is old until its own ops come back.
    let backup = a.tmp.path().join("backup");
    std::fs::create_dir(&backup).unwrap();
    copy_dir(&a.vault.join(".vellum"), &backup.join("dot-vellum"));
    copy_dir(&a.home, &backup.join("home"));

    a.write("notes/keep.md", "# keep\nwritten after the backup\n");
    a.scan();
    let f = export(&a, None, "after-backup.vx");
    b.json(&["import", &f]);
    b.write(
        "notes/keep.md",
        "# keep\nwritten after the backup\nand on b\n",
    );
    b.scan();

    std::fs::remove_dir_all(a.vault.join(".vellum")).unwrap();
    std::fs::remove_dir_all(&a.home).unwrap();
    copy_dir(&backup.join("dot-vellum"), &a.vault.join(".vellum"));
    copy_dir(&backup.join("home"), &a.home);
    // The restored device records what is on disk at seqs it had used.
    a.write("notes/after.md", "made after the restore\n");
    a.scan();

    let fb = export(&b, None, "from-b.vx");
    let r = a.json(&["import", &fb]);
    assert!(r["new_identity"].is_string(), "{r}");
    assert_eq!(r["rejected"], serde_json::json!([]));
    exchange(&a, &b, "after-fork");
    for env in [&a, &b] {
        assert_eq!(
            env.read("notes/keep.md"),
            b"# keep\nwritten after the backup\nand on b\n"
        );
        assert_eq!(env.read("notes/after.md"), b"made after the restore\n");
        env.ok(&["verify"]);
    }
    // Identical changes on the two branches collapsed: no conflict.
    let status = b.json(&["status"]);
    assert_eq!(status["conflicts"], 0, "{}", b.json(&["conflicts"]));
}

#[test]
fn a_copied_vault_folder_becomes_a_device_of_its_own_and_loses_nothing() {
    let a = Env::init();
    a.write("notes/plan.md", "# plan\n");
    a.scan();
    let copy = a.sibling("copy");
    copy_dir(&a.vault, &copy.vault);
    let original = a.json(&["status"])["device"].clone();
    // Both folders go on writing with the keys they share.
    a.write("notes/plan.md", "# plan\nfrom the original\n");
    a.scan();
    copy.write("notes/copy.md", "written in the copy\n");
    copy.scan();
    let copied = copy.json(&["status"])["device"].clone();
    assert_ne!(copied, original, "the copy took a device id of its own");
    assert_eq!(a.json(&["status"])["device"], original);
    // First round: the original sees its key's ops from the copy and
    // renews its own identity, whose first op vouches for its branch.
    let fa = export(&a, None, "orig-1.vx");
    let fc = export(&copy, None, "copy-1.vx");
    let r = a.json(&["import", &fc]);
    assert!(r["new_identity"].is_string(), "{r}");
    copy.json(&["import", &fa]);
    // Second round: both hold every op, and agree.
    exchange(&a, &copy, "copy");
    for env in [&a, &copy] {
        assert_eq!(env.read("notes/plan.md"), b"# plan\nfrom the original\n");
        assert_eq!(env.read("notes/copy.md"), b"written in the copy\n");
        env.ok(&["verify"]);
    }
    assert_ne!(a.json(&["status"])["device"], original);
    a.write("notes/plan.md", "# plan\nfrom the original\nlater\n");
    a.scan();
    exchange(&a, &copy, "copy-later");
    assert_eq!(
        copy.read("notes/plan.md"),
        b"# plan\nfrom the original\nlater\n"
    );
}

#[test]
fn vellum_sim_runs_seeds_and_lists_mutants() {
    let env = Env::new();
    // `--vault` is accepted and ignored: the simulator needs no vault.
    let out = env.ok(&["sim", "--seeds", "1", "--first", "3", "--jobs", "1"]);
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.lines()
            .any(|l| l.starts_with("sim: 1 seeds, 0 failed, ")),
        "{text}"
    );
    let out = env.ok(&["sim", "--list-mutants"]);
    assert!(String::from_utf8_lossy(&out).contains("skip_prev_check"));
}
