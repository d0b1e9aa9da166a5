//! DESIGN §8, quarantine: a batch that deletes or empties many files, or a
//! scan that finds many files reverted or re-created, is held back from the
//! disk until the user accepts or rejects it. Real processes, real vaults.

mod common;
use common::{Env, tree};
use serde_json::Value;

fn note(i: usize) -> String {
    format!("notes/n{i:02}.md")
}

fn body(i: usize) -> String {
    format!("# note {i}\n\nfirst text of note {i}\n")
}

/// A vault with 40 notes, and a second device of it.
fn two_devices() -> (Env, Env) {
    let a = Env::init();
    for i in 0..40 {
        a.write(&note(i), body(i));
    }
    a.scan();
    let b = a.clone_to("b");
    (a, b)
}

/// `from`'s whole journal, as an export file.
fn export(from: &Env, name: &str) -> String {
    from.export(name).to_string_lossy().into_owned()
}

/// B deletes notes 0..30; A imports that. Returns A's import report.
fn mass_delete_reaches_a(a: &Env, b: &Env) -> Value {
    for i in 0..30 {
        std::fs::remove_file(b.vault.join(note(i))).unwrap();
    }
    assert_eq!(b.scan()["deleted"], 30);
    let file = export(b, "b.vx");
    a.json(&["import", &file])
}

fn held(env: &Env) -> Vec<Value> {
    env.json(&["quarantine", "list"])
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn an_import_that_deletes_most_of_the_vault_is_held_back_from_the_disk() {
    let (a, b) = two_devices();
    let before = tree(&a.vault);
    let r = mass_delete_reaches_a(&a, &b);
    assert_eq!(r["quarantined"], 30, "{r}");
    assert_eq!(r["changed"], serde_json::json!([]), "{r}");
    // The head has the deletes (replay includes them); the disk does not.
    assert_eq!(tree(&a.vault), before);
    assert!(a.fails(&["show", &note(3)]).contains("n03.md"));
    assert_eq!(a.json(&["status"])["quarantined"], 30);
    assert_eq!(a.json(&["status"])["files"], 10);

    let list = held(&a);
    assert_eq!(list.len(), 1, "{list:?}");
    let batch = &list[0];
    assert_eq!(batch["source"], "remote");
    assert_eq!(
        batch["author"],
        b.json(&["status"])["device"],
        "the batch names the device that wrote it"
    );
    let name = batch["author_name"].as_str().unwrap();
    assert!(name.ends_with("(clone)"), "named as the clone was: {name}");
    let files = batch["files"].as_array().unwrap();
    assert_eq!(files.len(), 30);
    assert!(files.iter().all(|f| f["change"] == "delete"));
    let text = String::from_utf8(a.ok(&["quarantine", "list"])).unwrap();
    assert!(text.contains("30 file(s)") && text.contains("delete   notes/n07.md"));

    // Held paths are not scanned: nothing is recorded for them.
    assert_eq!(a.scan()["ops_recorded"], 0);

    let id = batch["id"].as_str().unwrap();
    let done = a.json(&["quarantine", "accept", &id[..6]]);
    assert_eq!(done["changed"].as_array().unwrap().len(), 30, "{done}");
    assert_eq!(a.json(&["status"])["quarantined"], 0);
    assert!(held(&a).is_empty());
    assert_eq!(tree(&a.vault), tree(&b.vault));
    assert_eq!(a.scan()["ops_recorded"], 0);
    a.ok(&["verify"]);
}

#[test]
fn rejecting_a_held_deletion_brings_the_files_back_on_every_device() {
    let (a, b) = two_devices();
    let before = tree(&a.vault);
    mass_delete_reaches_a(&a, &b);
    let id = held(&a)[0]["id"].as_str().unwrap().to_string();
    let done = a.json(&["quarantine", "reject", &id]);
    assert_eq!(done["ops_recorded"], 30, "{done}");
    assert_eq!(tree(&a.vault), before);
    assert_eq!(a.ok(&["show", &note(3)]), body(3).as_bytes());
    assert_eq!(a.json(&["status"])["files"], 40);
    let log = String::from_utf8(a.ok(&["log", "--limit", "1"])).unwrap();
    assert!(log.contains("[quarantine reject]"), "{log}");

    // B learns of the rejection: the files come back there too.
    let file = export(&a, "a.vx");
    let r = b.json(&["import", &file]);
    assert_eq!(r["quarantined"], 0, "{r}");
    assert_eq!(tree(&b.vault), before);
    a.ok(&["verify"]);
    b.ok(&["verify"]);
}

#[test]
fn a_held_file_edited_meanwhile_is_recorded_and_kept_whatever_the_decision() {
    for decision in ["accept", "reject"] {
        let (a, b) = two_devices();
        mass_delete_reaches_a(&a, &b);
        a.write(&note(5), "# note 5\n\nrewritten while held\n");
        let id = held(&a)[0]["id"].as_str().unwrap().to_string();
        a.ok(&["quarantine", decision, &id]);
        assert_eq!(
            a.read(&note(5)),
            b"# note 5\n\nrewritten while held\n",
            "{decision}"
        );
        assert_eq!(
            a.ok(&["show", &note(5)]),
            b"# note 5\n\nrewritten while held\n",
            "{decision}"
        );
        let expected_files = if decision == "accept" { 11 } else { 40 };
        assert_eq!(a.json(&["status"])["files"], expected_files, "{decision}");
        assert_eq!(a.scan()["ops_recorded"], 0, "{decision}");
    }
}

#[test]
fn emptying_many_files_elsewhere_is_held_and_reject_refills_them() {
    let (a, b) = two_devices();
    for i in 10..35 {
        b.write(&note(i), "");
    }
    b.scan();
    let r = a.json(&["import", &export(&b, "b.vx")]);
    assert_eq!(r["quarantined"], 25, "{r}");
    assert_eq!(a.read(&note(12)), body(12).as_bytes());
    let list = held(&a);
    assert!(
        list[0]["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["change"] == "empty")
    );
    a.ok(&["quarantine", "reject", list[0]["id"].as_str().unwrap()]);
    assert_eq!(a.read(&note(12)), body(12).as_bytes());
    assert_eq!(a.ok(&["show", &note(12)]), body(12).as_bytes());
    b.ok(&["import", &export(&a, "a.vx")]);
    assert_eq!(b.read(&note(12)), body(12).as_bytes());
}

#[test]
fn a_rollback_on_another_device_that_deletes_many_files_is_held() {
    let a = Env::init();
    for i in 0..5 {
        a.write(&note(i), body(i));
    }
    a.scan();
    let point = a.head();
    for i in 5..35 {
        a.write(&note(i), body(i));
    }
    a.scan();
    let b = a.clone_to("b");
    // B needs --yes for it; A holds it all the same.
    assert!(b.fails(&["rollback", "--to", &point]).contains("--yes"));
    b.ok(&["rollback", "--to", &point, "--yes"]);
    assert_eq!(tree(&b.vault).len(), 5);
    let r = a.json(&["import", &export(&b, "b.vx")]);
    assert_eq!(r["quarantined"], 30, "{r}");
    assert_eq!(tree(&a.vault).len(), 35);
    let id = held(&a)[0]["id"].as_str().unwrap().to_string();
    a.ok(&["quarantine", "accept", &id]);
    assert_eq!(tree(&a.vault), tree(&b.vault));
}

#[test]
fn a_few_deletes_from_another_device_are_not_held() {
    let (a, b) = two_devices();
    for i in 0..3 {
        std::fs::remove_file(b.vault.join(note(i))).unwrap();
    }
    b.scan();
    let r = a.json(&["import", &export(&b, "b.vx")]);
    assert_eq!(r["quarantined"], 0, "{r}");
    assert_eq!(r["changed"].as_array().unwrap().len(), 3);
    assert!(held(&a).is_empty());
}

/// A vault whose notes were copied aside, then changed: 25 edited, 5
/// deleted and 5 created; then the old copy is put back over the notes
/// folder. Returns the vault, its head before the copy came back and the
/// tree of the disk at that moment.
fn restored_from_old_copy() -> (Env, String, std::collections::BTreeMap<String, Vec<u8>>) {
    let a = Env::init();
    for i in 0..40 {
        a.write(&note(i), body(i));
    }
    a.scan();
    let copy = a.tmp.path().join("old-copy");
    std::fs::create_dir_all(&copy).unwrap();
    for i in 0..40 {
        std::fs::copy(a.vault.join(note(i)), copy.join(format!("n{i:02}.md"))).unwrap();
    }
    for i in 0..25 {
        a.write(&note(i), format!("{}later work on {i}\n", body(i)));
    }
    for i in 25..30 {
        std::fs::remove_file(a.vault.join(note(i))).unwrap();
    }
    for i in 40..45 {
        a.write(&note(i), body(i));
    }
    a.scan();
    let head = a.head();
    let newer = tree(&a.vault);
    std::fs::remove_dir_all(a.vault.join("notes")).unwrap();
    std::fs::create_dir_all(a.vault.join("notes")).unwrap();
    for i in 0..40 {
        std::fs::copy(copy.join(format!("n{i:02}.md")), a.vault.join(note(i))).unwrap();
    }
    (a, head, newer)
}

#[test]
fn a_vault_folder_restored_from_an_old_copy_is_held_not_recorded() {
    let (a, head, newer) = restored_from_old_copy();
    let r = a.scan();
    assert_eq!(r["ops_recorded"], 0, "{r}");
    assert_eq!(r["quarantined"], 35, "{r}");
    assert_eq!(a.head(), head);
    let list = held(&a);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["source"], "scan");
    let count = |c: &str| {
        list[0]["files"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["change"] == c)
            .count()
    };
    assert_eq!(
        (count("revert"), count("recreate"), count("delete")),
        (25, 5, 5)
    );
    // Held paths stay out of later scans.
    assert_eq!(a.scan()["ops_recorded"], 0);

    // Reject: the disk gets the newer files back; nothing is recorded.
    let id = list[0]["id"].as_str().unwrap().to_string();
    let done = a.json(&["quarantine", "reject", &id]);
    assert_eq!(done["ops_recorded"], 0, "{done}");
    assert_eq!(tree(&a.vault), newer);
    assert_eq!(a.head(), head);
    assert_eq!(a.scan()["ops_recorded"], 0);
}

#[test]
fn accepting_a_restored_old_copy_records_it() {
    let (a, _, _) = restored_from_old_copy();
    // The user also typed into one restored note: new bytes, recorded at
    // once rather than held.
    a.write(&note(39), format!("{}typed after the restore\n", body(39)));
    let r = a.scan();
    assert_eq!(r["quarantined"], 35, "{r}");
    assert_eq!(r["edited"], 1, "{r}");
    let disk = tree(&a.vault);
    let id = held(&a)[0]["id"].as_str().unwrap().to_string();
    let done = a.json(&["quarantine", "accept", &id]);
    assert_eq!(done["ops_recorded"], 35, "{done}");
    assert_eq!(tree(&a.vault), disk);
    assert_eq!(a.ok(&["show", &note(3)]), body(3).as_bytes());
    assert!(a.fails(&["show", &note(42)]).contains("n42.md"));
    a.ok(&["verify"]);
}

#[test]
fn bad_quarantine_ids_are_clear_errors() {
    let a = Env::init();
    assert!(
        a.fails(&["quarantine", "accept", "abc123"])
            .contains("no held batch")
    );
    assert!(
        a.fails(&["quarantine", "reject", "abc123"])
            .contains("quarantine list")
    );
    let text = String::from_utf8(a.ok(&["quarantine", "list"])).unwrap();
    assert_eq!(text, "nothing is held\n");
}
