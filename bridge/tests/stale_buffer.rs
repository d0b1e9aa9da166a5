//! DESIGN §8: an editor that held a note's older buffer may save it back
//! right after Vellum wrote the note for another device's ops (a sync
//! write). The scanner merges that save with the synced version instead of
//! recording a revert: no remote change is lost, and the disk is given the
//! merged text. Here the sync write is an import.

mod common;
use common::Env;

/// Device A with note.md; device B edits its second line; A imports that
/// (a sync write) while A's editor still holds the old text.
fn synced() -> Env {
    let a = Env::init();
    let file = common::note_changed_elsewhere(&a);
    a.ok(&["import", file.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(a.vault.join("note.md")).unwrap(),
        "one\nTWO from b\nthree\n"
    );
    a
}

#[test]
fn an_old_buffer_saved_with_an_edit_right_after_a_sync_write_is_merged() {
    let a = synced();
    // The editor saves its old buffer plus a line the user typed.
    std::fs::write(a.vault.join("note.md"), "one\ntwo\nthree\nfour from a\n").unwrap();
    a.ok(&["scan"]);
    let merged = "one\nTWO from b\nthree\nfour from a\n";
    assert_eq!(a.ok(&["show", "note.md"]), merged.as_bytes());
    assert_eq!(
        std::fs::read_to_string(a.vault.join("note.md")).unwrap(),
        merged
    );
    // The disk now matches the record: the next scan records nothing.
    let again = a.json(&["scan"]);
    assert_eq!(again["ops_recorded"], 0);
}

#[test]
fn an_old_buffer_saved_unchanged_right_after_a_sync_write_changes_nothing() {
    let a = synced();
    let ops = a.json(&["status"])["ops"].clone();
    std::fs::write(a.vault.join("note.md"), "one\ntwo\nthree\n").unwrap();
    let scan = a.json(&["scan"]);
    assert_eq!(scan["ops_recorded"], 0, "{scan}");
    assert_eq!(a.json(&["status"])["ops"], ops);
    assert_eq!(a.ok(&["show", "note.md"]), b"one\nTWO from b\nthree\n");
    assert_eq!(
        std::fs::read_to_string(a.vault.join("note.md")).unwrap(),
        "one\nTWO from b\nthree\n"
    );
}

#[test]
fn an_edit_of_the_synced_text_is_an_edit() {
    let a = synced();
    // The user edited what the sync wrote: nearer the synced text, so an
    // ordinary edit, which may change the synced line too.
    std::fs::write(a.vault.join("note.md"), "one\nTWO from b, seen\nthree\n").unwrap();
    a.ok(&["scan"]);
    assert_eq!(
        a.ok(&["show", "note.md"]),
        b"one\nTWO from b, seen\nthree\n"
    );
    assert_eq!(
        std::fs::read_to_string(a.vault.join("note.md")).unwrap(),
        "one\nTWO from b, seen\nthree\n"
    );
}
