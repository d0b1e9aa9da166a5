//! DESIGN §8 disk writes and §12: a write never lands outside the vault,
//! never leaves a partial file, and never replaces bytes a scan has not
//! recorded. The writer on real folders; the vault on real fjall; a full
//! disk on a real tmpfs.

mod common;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;

use common::Env;
use vellum_bridge::disk;

fn fill_with(text: &'static str) -> impl FnMut(&mut std::fs::File) -> anyhow::Result<()> {
    move |f| Ok(std::io::Write::write_all(f, text.as_bytes())?)
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_folder_that_is_a_symlink_is_never_written_or_removed_through() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, outside) = (tmp.path().join("vault"), tmp.path().join("outside"));
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("keep.md"), "not the vault's").unwrap();
    symlink(&outside, root.join("docs")).unwrap();

    let err = disk::write_atomic(&root, "docs/new.md", 0, &mut fill_with("x")).unwrap_err();
    assert!(err.to_string().contains("symlink"), "{err:#}");
    let err = disk::write_atomic(&root, "docs/deeper/new.md", 0, &mut fill_with("x")).unwrap_err();
    assert!(err.to_string().contains("symlink"), "{err:#}");
    let err = disk::remove_file(&root, "docs/keep.md").unwrap_err();
    assert!(err.to_string().contains("symlink"), "{err:#}");
    assert!(disk::hash_file(&root, "docs/keep.md").is_err());
    assert_eq!(entries(&outside), ["keep.md"]);
    assert_eq!(
        std::fs::read_to_string(outside.join("keep.md")).unwrap(),
        "not the vault's"
    );
}

#[test]
fn a_symlink_at_the_target_is_refused_not_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("vault");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(tmp.path().join("secret"), "outside").unwrap();
    symlink(tmp.path().join("secret"), root.join("note.md")).unwrap();
    let err = disk::write_atomic(&root, "note.md", 0, &mut fill_with("x")).unwrap_err();
    assert!(err.to_string().contains("symlink"), "{err:#}");
    assert!(disk::remove_file(&root, "note.md").is_err());
    assert!(
        std::fs::symlink_metadata(root.join("note.md"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("secret")).unwrap(),
        "outside"
    );
}

#[test]
fn a_failed_write_leaves_neither_a_partial_file_nor_a_temp_file() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::write(root.join("note.md"), "before").unwrap();
    let err = disk::write_atomic(root, "note.md", 0, &mut |f| {
        std::io::Write::write_all(f, b"half of the new")?;
        anyhow::bail!("the source ran dry")
    })
    .unwrap_err();
    assert!(format!("{err:#}").contains("ran dry"), "{err:#}");
    assert_eq!(
        std::fs::read_to_string(root.join("note.md")).unwrap(),
        "before"
    );
    assert_eq!(entries(root), ["note.md"]);
}

#[test]
fn writes_are_whole_with_the_mtime_and_removal_takes_emptied_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let meta =
        disk::write_atomic(root, "a/b/c.md", 1_700_000_000_000, &mut fill_with("text")).unwrap();
    assert_eq!(meta.len(), 4);
    let on_disk = std::fs::metadata(root.join("a/b/c.md")).unwrap();
    assert_eq!(
        on_disk.modified().unwrap(),
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_000)
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!((meta.ino(), meta.ctime()), (on_disk.ino(), on_disk.ctime()));
    disk::write_atomic(root, "a/keep.md", 0, &mut fill_with("k")).unwrap();
    disk::remove_file(root, "a/b/c.md").unwrap();
    assert!(!root.join("a/b").exists());
    assert_eq!(entries(&root.join("a")), ["keep.md"]);
    // Nothing there is not an error.
    disk::remove_file(root, "a/b/c.md").unwrap();
    assert!(disk::write_atomic(root, "../escape.md", 0, &mut fill_with("x")).is_err());
}

/// A tmpfs of `size` mounted at `dir` for the test's life.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs to fill a disk, which needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Tmpfs {
    /// Makes room, keeping what is there.
    fn grow(&self, size: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_during_an_import_leaves_no_partial_file_and_loses_nothing() {
    let a = Env::init();
    a.write("note.md", "hello\n");
    a.scan();
    let b = a.clone_to("b");
    // A 1 MiB attachment that does not compress.
    let big: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    a.write("attachments/big.bin", &big);
    a.write("attachments/small.md", "small\n");
    a.scan();
    let file = a.export("a.vx");

    let attachments = b.vault.join("attachments");
    let full = Tmpfs::mount(&attachments, "256k");
    let out = b.run(&["import", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("could not be written"), "{err}");
    assert!(err.contains("No space left"), "{err}");
    // No partial file, no temp file; the small file made it.
    assert_eq!(entries(&attachments), ["small.md"]);
    // The journal holds the attachment.
    assert_eq!(b.ok(&["show", "attachments/big.bin"]), big);
    assert_eq!(b.scan()["ops_recorded"], 0);
    assert_eq!(entries(&attachments), ["small.md"]);

    full.grow("4m");
    // With room again, the next scan writes it.
    assert_eq!(b.scan()["ops_recorded"], 0);
    assert_eq!(b.read("attachments/big.bin"), big);
    assert_eq!(common::tree(&b.vault), common::tree(&a.vault));
    b.ok(&["verify"]);
}

#[test]
fn a_symlinked_folder_in_the_vault_blocks_writes_into_it_until_removed() {
    let a = Env::init();
    a.write("note.md", "hello\n");
    a.scan();
    let b = a.clone_to("b");
    let outside = a.tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    symlink(&outside, b.vault.join("docs")).unwrap();
    let scan = b.run(&["scan"]);
    assert!(
        String::from_utf8_lossy(&scan.stderr).contains("skipped symlink docs"),
        "{}",
        String::from_utf8_lossy(&scan.stderr)
    );

    a.write("docs/plan.md", "the plan\n");
    a.scan();
    let file = a.export("a.vx");
    let out = b.run(&["import", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("symlink"), "{err}");
    assert!(
        entries(&outside).is_empty(),
        "nothing lands outside the vault"
    );
    assert_eq!(b.ok(&["show", "docs/plan.md"]), b"the plan\n");

    std::fs::remove_file(b.vault.join("docs")).unwrap();
    b.scan();
    assert_eq!(b.read("docs/plan.md"), b"the plan\n");
    assert!(entries(&outside).is_empty());
}

/// The vault's own process is this test binary run again, with a private
/// VELLUM_HOME (device keys live there): the library is driven directly,
/// to put a user's save between a scan and a disk write.
#[test]
fn a_save_between_a_scan_and_a_sync_write_is_recorded_first_and_kept() {
    const NAME: &str = "a_save_between_a_scan_and_a_sync_write_is_recorded_first_and_kept";
    let Some(dir) = std::env::var_os("VELLUM_TEST_CHILD_DIR") else {
        let tmp = tempfile::tempdir().unwrap();
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", NAME, "--nocapture", "--test-threads", "1"])
            .env("VELLUM_TEST_CHILD_DIR", tmp.path())
            .env("VELLUM_HOME", tmp.path().join("home"))
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{text}");
        assert!(text.contains("1 passed"), "the child ran no test: {text}");
        return;
    };
    use std::collections::BTreeSet;
    use vellum_bridge::materialise::{disk_behind, materialise};
    use vellum_bridge::{scan, vault::Vault};
    use vellum_journal::payload::{Action, Body, Payload};
    use vellum_journal::store::Batch;

    let root = Path::new(&dir).join("vault");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("a.md"), "one\ntwo\nthree\n").unwrap();
    let mut v = Vault::init(&root, "test").unwrap();
    scan::scan(&mut v).unwrap();
    let old = v.head().unwrap();
    let (id, f) = old.file_at("a.md").unwrap();
    // An op changes the note (as one from another device would)...
    v.append(
        vec![Payload::new(Action::Replace {
            file: id,
            base: f.hash,
            body: Body::Text("one\nTWO\nthree\n".into()),
            mtime_ms: 0,
        })],
        Batch::new(),
    )
    .unwrap();
    let new = v.head().unwrap();
    // ...while the user saves a line of their own.
    std::fs::write(root.join("a.md"), "one\ntwo\nthree\nfour\n").unwrap();
    let written = materialise(&v, &old, &new, &BTreeSet::from([id])).unwrap();
    assert!(written.is_empty(), "{written:?}");
    assert_eq!(
        std::fs::read_to_string(root.join("a.md")).unwrap(),
        "one\ntwo\nthree\nfour\n"
    );
    assert!(disk_behind(&v).unwrap());
    // The next scan records the save, merged with the op, and writes that.
    scan::scan(&mut v).unwrap();
    assert_eq!(
        std::fs::read_to_string(root.join("a.md")).unwrap(),
        "one\nTWO\nthree\nfour\n"
    );
    assert!(!disk_behind(&v).unwrap());
}
