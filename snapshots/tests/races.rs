//! The replay rules of DESIGN §4 for ops other than plain edits, each case
//! with its expected bytes and conflicts: concurrent creates at one path,
//! concurrent resolves, rename races and collisions, binary races and bad
//! bases. Every case runs with both delivery orders, which must agree with
//! each other and with a replay from scratch.

use vellum_journal::payload::{Action, BlobRef, Body};
use vellum_journal::replay::{ConflictKind, VaultState};
use vellum_journal::{ContentHash, FileId, OpId};
use vellum_snapshots::TimeMachine;

mod common;
use common::{Devices, comparable, edit};

const A: usize = 0;
const B: usize = 1;

/// Both devices get each other's ops, `A`'s first or `B`'s first; both
/// end states must be the same, and equal to a replay from scratch.
fn exchange(d: &mut Devices, a_first: bool) {
    if a_first {
        d.sync(A, B);
        d.sync(B, A);
    } else {
        d.sync(B, A);
        d.sync(A, B);
    }
    let (ha, hb) = (d.head(A), d.head(B));
    assert_eq!(comparable(&ha), comparable(&hb), "the devices differ");
    for dev in [A, B] {
        let scratch = TimeMachine::replay_from_scratch(&d.journals[dev]).unwrap();
        assert_eq!(
            comparable(&scratch),
            comparable(&ha),
            "replay from scratch differs"
        );
    }
}

/// Runs `case` for both delivery orders of its concurrent part.
fn both_orders(case: impl Fn(bool)) {
    case(true);
    case(false);
}

/// The open conflicts at `path`: (kind, op).
fn conflicts(head: &VaultState, path: &str) -> Vec<(ConflictKind, OpId)> {
    let (_, f) = head.file_at(path).expect("file exists");
    f.conflicts.iter().map(|c| (c.kind, c.op)).collect()
}

/// Which of two concurrent ops sorts first (the earlier in total order).
fn earlier(d: &Devices, x: OpId, y: OpId) -> OpId {
    let j = &d.journals[A];
    let kx = j.op_meta(&x).unwrap().unwrap().order_key();
    let ky = j.op_meta(&y).unwrap().unwrap().order_key();
    if kx < ky { x } else { y }
}

#[test]
fn daily_notes_created_from_one_template_become_one_note_with_both_additions() {
    both_orders(|a_first| {
        let mut d = Devices::new(2, 1);
        let fa = d.create(A, "daily.md", "# Daily\n## Tasks\n- [ ] water plants\n");
        let fb = d.create(B, "daily.md", "# Daily\n## Tasks\n- [ ] call mum\n");
        exchange(&mut d, a_first);
        let head = d.head(A);
        let first = earlier(&d, fa, fb);
        let later = if first == fa { fb } else { fa };
        // The earlier file keeps the path, the later is its alias, and the
        // lines are the union, the earlier's first.
        assert_eq!(head.file_at("daily.md").unwrap().0, first);
        assert_eq!(head.aliases.get(&later), Some(&first));
        assert_eq!(head.paths.len(), 1);
        let want = if first == fa {
            "# Daily\n## Tasks\n- [ ] water plants\n- [ ] call mum\n"
        } else {
            "# Daily\n## Tasks\n- [ ] call mum\n- [ ] water plants\n"
        };
        assert_eq!(d.text_at(A, "daily.md").unwrap(), want);
        assert_eq!(
            conflicts(&head, "daily.md"),
            [(ConflictKind::CreatedTwice, later)]
        );
        assert_eq!(head.open_conflicts, 1);
    });
}

#[test]
fn an_edit_to_the_alias_made_before_the_sync_lands_in_the_surviving_note() {
    both_orders(|a_first| {
        let mut d = Devices::new(2, 2);
        let fa = d.create(A, "daily.md", "# Daily\n- a\n");
        let fb = d.create(B, "daily.md", "# Daily\n- b\n");
        // Each adds a line to its own note before they meet.
        d.edit(A, fa, "# Daily\n- a\n- a2\n");
        d.edit(B, fb, "# Daily\n- b\n- b2\n");
        exchange(&mut d, a_first);
        // The creates' lines in total order, then the edits' lines: each
        // edit appended to the end of its own note, which is one point in
        // the union, where insertions keep total order.
        let want = if earlier(&d, fa, fb) == fa {
            "# Daily\n- a\n- b\n- a2\n- b2\n"
        } else {
            "# Daily\n- b\n- a\n- b2\n- a2\n"
        };
        assert_eq!(d.text_at(A, "daily.md").unwrap(), want);
        // Later edits through the path go to the survivor.
        let (survivor, _) = d.file_at(B, "daily.md").unwrap();
        d.edit(B, survivor, &format!("{want}- after\n"));
        d.sync(B, A);
        assert_eq!(
            d.text_at(A, "daily.md").unwrap(),
            format!("{want}- after\n")
        );
    });
}

/// Regression seed 7417. An edit made against a version of the alias that
/// its own causal past had already replaced has a bad base, even though it
/// is the text the alias was created with: the whole replay kept that text
/// in memory for the alias and merged on it, while a replay rewound to a
/// later checkpoint rebuilt the base from the op's past and did not.
#[test]
fn an_edit_to_the_alias_on_a_base_its_own_past_replaced_is_a_bad_base() {
    both_orders(|a_first| {
        let mut d = Devices::new(2, 2);
        let fa = d.create(A, "daily.md", "# Daily\n- a\n");
        let fb = d.create(B, "daily.md", "# Daily\n- b\n");
        d.edit(A, fa, "# Daily\n- a\n- a1\n");
        // Made as if A's view still showed the created text.
        let stale = d.write(A, edit(fa, "# Daily\n- a\n", "# Daily\n- a\n- a2\n"));
        assert_eq!(
            conflicts(&d.head(A), "daily.md"),
            [(ConflictKind::BadBase, stale)]
        );
        exchange(&mut d, a_first);
        // Lamports tie; B's device id sorts first, so A's note is the alias.
        assert_eq!(
            earlier(&d, fa, fb),
            fb,
            "the case needs A's note to be the alias"
        );
        let head = d.head(A);
        assert_eq!(
            d.text_at(A, "daily.md").unwrap(),
            "# Daily\n- b\n- a\n- a1\n"
        );
        assert_eq!(
            conflicts(&head, "daily.md"),
            [
                (ConflictKind::CreatedTwice, fa),
                (ConflictKind::BadBase, stale)
            ]
        );
    });
}

#[test]
fn the_same_text_created_twice_is_one_note_without_a_conflict() {
    both_orders(|a_first| {
        let mut d = Devices::new(2, 3);
        d.create(A, "todo.md", "- milk\n");
        d.create(B, "todo.md", "- milk\n");
        exchange(&mut d, a_first);
        let head = d.head(A);
        assert_eq!(head.paths.len(), 1);
        assert_eq!(d.text_at(A, "todo.md").unwrap(), "- milk\n");
        assert_eq!(head.open_conflicts, 0);
    });
}

#[test]
fn a_text_and_a_binary_file_created_at_one_path_keep_both_with_a_suffix() {
    both_orders(|a_first| {
        let mut d = Devices::new(2, 4);
        let text = d.create(A, "img.png", "not really an image\n");
        let blob = Body::Blob(BlobRef {
            hash: ContentHash::of(b""),
            size: 0,
            chunks: Vec::new(),
        });
        let bin = d.write(
            B,
            Action::Create {
                path: "img.png".into(),
                mtime_ms: 0,
                body: blob,
            },
        );
        exchange(&mut d, a_first);
        let head = d.head(A);
        let first = earlier(&d, text, bin);
        let (later, author) = if first == text { (bin, B) } else { (text, A) };
        assert_eq!(head.file_at("img.png").unwrap().0, first);
        let suffixed = format!(
            "img (conflict {}).png",
            &common::device(author).short()[..6]
        );
        assert_eq!(head.file_at(&suffixed).unwrap().0, later);
        assert!(head.aliases.is_empty());
    });
}

/// A note with an overlap conflict on both devices: both rewrote its line.
fn conflicted(seed: u64) -> (Devices, FileId) {
    let mut d = Devices::new(2, seed);
    let f = d.create(A, "plan.md", "# Plan\nmeet at noon\n");
    d.sync(A, B);
    d.edit(A, f, "# Plan\nmeet at one\n");
    d.edit(B, f, "# Plan\nmeet at two\n");
    d.sync_all();
    assert_eq!(d.head(A).open_conflicts, 1);
    (d, f)
}

fn resolve(d: &mut Devices, dev: usize, file: FileId, text: &str) -> OpId {
    let head = d.head(dev);
    let f = &head.files[&file];
    d.write(
        dev,
        Action::Resolve {
            file,
            sides: f.conflicts.iter().map(|c| c.op).collect(),
            base: f.hash,
            body: Body::Text(text.into()),
            mtime_ms: 0,
        },
    )
}

#[test]
fn concurrent_resolves_that_choose_differently_reopen_the_conflict() {
    both_orders(|a_first| {
        let (mut d, f) = conflicted(5);
        let ra = resolve(&mut d, A, f, "# Plan\nmeet at one\n");
        let rb = resolve(&mut d, B, f, "# Plan\nmeet at two\n");
        exchange(&mut d, a_first);
        let head = d.head(A);
        let first = earlier(&d, ra, rb);
        let later = if first == ra { rb } else { ra };
        // The file keeps the first choice; the conflict is open again,
        // between the two choices.
        let want = if first == ra { "one" } else { "two" };
        assert_eq!(
            d.text_at(A, "plan.md").unwrap(),
            format!("# Plan\nmeet at {want}\n")
        );
        assert_eq!(
            conflicts(&head, "plan.md"),
            [(ConflictKind::Resolves, later)]
        );
        // A third resolve, made after both, closes it everywhere.
        resolve(&mut d, B, f, "# Plan\nmeet at half past one\n");
        d.sync_all();
        assert_eq!(d.head(A).open_conflicts, 0);
        assert_eq!(
            d.text_at(A, "plan.md").unwrap(),
            "# Plan\nmeet at half past one\n"
        );
    });
}

#[test]
fn concurrent_resolves_that_agree_close_the_conflict() {
    both_orders(|a_first| {
        let (mut d, f) = conflicted(6);
        resolve(&mut d, A, f, "# Plan\nmeet at one\n");
        resolve(&mut d, B, f, "# Plan\nmeet at one\n");
        exchange(&mut d, a_first);
        assert_eq!(d.head(A).open_conflicts, 0);
        assert_eq!(d.text_at(A, "plan.md").unwrap(), "# Plan\nmeet at one\n");
    });
}

#[test]
fn a_resolve_merges_an_edit_it_had_not_seen() {
    both_orders(|a_first| {
        let (mut d, f) = conflicted(7);
        let base = d.text(A, f).unwrap();
        resolve(&mut d, A, f, "# Plan\nmeet at one\n");
        d.edit(B, f, &format!("{base}bring cake\n"));
        exchange(&mut d, a_first);
        assert_eq!(
            d.text_at(A, "plan.md").unwrap(),
            "# Plan\nmeet at one\nbring cake\n"
        );
        assert_eq!(d.head(A).open_conflicts, 0);
    });
}

#[test]
fn concurrent_renames_keep_the_later_name_and_record_the_other() {
    both_orders(|a_first| {
        let mut d = Devices::new(2, 8);
        let f = d.create(A, "draft.md", "text\n");
        d.sync(A, B);
        let rename = |to: &str| Action::Rename {
            file: f,
            from: "draft.md".into(),
            to: to.into(),
            mtime_ms: 0,
        };
        let ra = d.write(A, rename("essay.md"));
        let rb = d.write(B, rename("post.md"));
        exchange(&mut d, a_first);
        let head = d.head(A);
        let first = earlier(&d, ra, rb);
        let name = if first == ra { "post.md" } else { "essay.md" };
        assert_eq!(head.paths.len(), 1);
        assert_eq!(head.file_at(name).unwrap().0, f);
        assert_eq!(conflicts(&head, name), [(ConflictKind::Renames, first)]);
    });
}

#[test]
fn a_rename_onto_a_new_file_gives_the_later_a_suffix() {
    both_orders(|a_first| {
        let mut d = Devices::new(2, 9);
        let x = d.create(A, "x.md", "x\n");
        d.sync(A, B);
        let rename = d.write(
            A,
            Action::Rename {
                file: x,
                from: "x.md".into(),
                to: "y.md".into(),
                mtime_ms: 0,
            },
        );
        let y = d.create(B, "y.md", "y\n");
        exchange(&mut d, a_first);
        let head = d.head(A);
        // The create had seen x (at its old path): a collision, not a
        // concurrent create, so both files stay.
        let (kept, moved, author) = if earlier(&d, rename, y) == rename {
            (x, y, B)
        } else {
            (y, x, A)
        };
        assert_eq!(head.file_at("y.md").unwrap().0, kept);
        let suffixed = format!("y (conflict {}).md", &common::device(author).short()[..6]);
        assert_eq!(head.file_at(&suffixed).unwrap().0, moved);
        assert_eq!(head.open_conflicts, 0);
    });
}

#[test]
fn an_op_with_a_bad_base_has_no_effect_and_opens_a_conflict() {
    let mut d = Devices::new(2, 10);
    let f = d.create(A, "n.md", "one\n");
    let mut bad = edit(f, "one\n", "two\n");
    if let Action::Edit { base, .. } = &mut bad {
        *base = ContentHash::of(b"never a version of n.md\n");
    }
    let op = d.write(A, bad);
    let head = d.head(A);
    assert_eq!(d.text_at(A, "n.md").unwrap(), "one\n");
    assert_eq!(conflicts(&head, "n.md"), [(ConflictKind::BadBase, op)]);
    d.sync(A, B);
    assert_eq!(comparable(&d.head(B)), comparable(&head));
}

#[test]
fn binary_replace_races_keep_the_later_bytes_and_both_in_history() {
    both_orders(|a_first| {
        let mut d = Devices::new(2, 11);
        let blob = |n: u8| {
            Body::Blob(BlobRef {
                hash: ContentHash::of(&[n]),
                size: 1,
                chunks: Vec::new(),
            })
        };
        let f = d.write(
            A,
            Action::Create {
                path: "a.bin".into(),
                mtime_ms: 0,
                body: blob(0),
            },
        );
        d.sync(A, B);
        let replace = |n| Action::Replace {
            file: f,
            base: ContentHash::of(&[0]),
            body: blob(n),
            mtime_ms: 0,
        };
        let ra = d.write(A, replace(1));
        let rb = d.write(B, replace(2));
        exchange(&mut d, a_first);
        let head = d.head(A);
        let later = if earlier(&d, ra, rb) == ra { rb } else { ra };
        let want = if later == ra { 1 } else { 2 };
        assert_eq!(head.files[&f].hash, ContentHash::of(&[want]));
        assert_eq!(conflicts(&head, "a.bin"), [(ConflictKind::Binary, later)]);
    });
}
