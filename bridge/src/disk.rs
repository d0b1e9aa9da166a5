//! Writing files into a vault or a checkout (DESIGN §8, disk writes):
//! atomically (a temp file in the same folder, fsync, rename, fsync the
//! folder), with the op's mtime, and never through a symlink.
//!
//! Every path component is opened relative to its parent folder's
//! descriptor (`openat`) with `O_NOFOLLOW`, from the vault root down. A
//! folder swapped for a symlink while Vellum works makes the write fail; it
//! can never land outside the vault, which checking a path first and then
//! writing to it by name could not promise. The root itself is opened as
//! given: a vault may live behind a symlinked path.

use std::ffi::OsStr;
use std::fs::{File, FileTimes};
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path};
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags};
use rustix::io::Errno;
use vellum_journal::ContentHash;

use crate::error::user;

/// Names of Vellum's temp files end with this; the scanner never records
/// them, whatever the ignore rules say (one left by a crash is debris).
pub const TEMP_SUFFIX: &str = ".vellum.tmp";

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// A vault-relative path opened down to its folder: the descriptors of the
/// root and of each folder on the way (`fds[i]` holds `folders[i]`), and
/// the file's name.
struct Opened<'a> {
    fds: Vec<OwnedFd>,
    folders: Vec<&'a OsStr>,
    name: &'a OsStr,
}

impl Opened<'_> {
    /// The folder that holds the file.
    fn dir(&self) -> &OwnedFd {
        self.fds.last().expect("the root is always open")
    }
}

fn io(e: Errno) -> std::io::Error {
    e.into()
}

/// Splits `rel` into folders and a file name, refusing anything but plain
/// names (`..`, a leading `/`, `.`).
fn split(rel: &str) -> Result<(Vec<&OsStr>, &OsStr)> {
    let mut parts = Vec::new();
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(n) => parts.push(n),
            _ => bail!("refusing to write {rel}: not a plain relative path"),
        }
    }
    let Some(name) = parts.pop() else {
        bail!("refusing to write an empty path");
    };
    Ok((parts, name))
}

/// Opens `rel`'s folders under `root`, one component at a time, creating
/// missing ones when `create`. `None` when a folder is missing and not
/// created. A component that is a symlink or not a folder is an error.
fn open<'a>(root: &Path, rel: &'a str, create: bool) -> Result<Option<Opened<'a>>> {
    let (folders, name) = split(rel)?;
    let root_fd = rustix::fs::openat(
        CWD,
        root,
        DIR_FLAGS.difference(OFlags::NOFOLLOW),
        Mode::empty(),
    )
    .map_err(io)
    .with_context(|| format!("opening {}", root.display()))?;
    let mut fds = vec![root_fd];
    for (i, folder) in folders.iter().enumerate() {
        let parent = fds.last().expect("the root is always open");
        let opened = match rustix::fs::openat(parent, *folder, DIR_FLAGS, Mode::empty()) {
            Err(Errno::NOENT) if create => {
                match rustix::fs::mkdirat(parent, *folder, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => {
                        return Err(io(e))
                            .with_context(|| format!("creating {}", shown(root, &folders[..=i])));
                    }
                }
                // Opened again with O_NOFOLLOW: a folder that raced into a
                // symlink since is refused below.
                rustix::fs::openat(parent, *folder, DIR_FLAGS, Mode::empty())
            }
            other => other,
        };
        match opened {
            Ok(fd) => fds.push(fd),
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::LOOP | Errno::NOTDIR) => bail!(
                "refusing to write {rel}: {} is a symlink or not a folder",
                shown(root, &folders[..=i])
            ),
            Err(e) => {
                return Err(io(e))
                    .with_context(|| format!("opening {}", shown(root, &folders[..=i])));
            }
        }
    }
    Ok(Some(Opened { fds, folders, name }))
}

/// [`open`], creating missing folders. A folder removed between its
/// creation and its opening (another program at work) is an error.
fn open_creating<'a>(root: &Path, rel: &'a str) -> Result<Opened<'a>> {
    open(root, rel, true)?.ok_or_else(|| {
        anyhow::anyhow!("cannot write {rel}: a folder on its way vanished while it was made")
    })
}

fn shown(root: &Path, parts: &[&OsStr]) -> String {
    let mut p = root.to_path_buf();
    p.extend(parts);
    p.display().to_string()
}

/// What is at `name` in `dir`, without following a symlink: `None` if
/// nothing.
fn kind_at(dir: &OwnedFd, name: &OsStr) -> std::io::Result<Option<FileType>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(io(e)),
    }
}

/// Refuses to replace anything at the target but a regular file: a
/// symlink or a folder there is the user's, not Vellum's to overwrite.
fn check_target(o: &Opened<'_>, root: &Path, rel: &str) -> Result<()> {
    match kind_at(o.dir(), o.name)
        .with_context(|| format!("checking {}", root.join(rel).display()))?
    {
        Some(FileType::Symlink) => bail!("refusing to write {rel}: it is a symlink"),
        Some(FileType::Directory) => bail!("refusing to write {rel}: it is a folder"),
        _ => Ok(()),
    }
}

fn system_time(mtime_ms: i64) -> std::time::SystemTime {
    if mtime_ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(mtime_ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(mtime_ms.unsigned_abs())
    }
}

/// Creates `name` in `dir` (it must not exist), lets `fill` write its
/// content and sets its mtime. Writers hand over whole texts or 64 KiB
/// blob chunks, so no buffering is needed.
fn create_filled(
    dir: &OwnedFd,
    name: &OsStr,
    mtime_ms: i64,
    fill: &mut dyn FnMut(&mut File) -> Result<()>,
) -> Result<File> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )
    .map_err(io)?;
    let mut f = File::from(fd);
    fill(&mut f)?;
    f.flush()?;
    f.set_times(FileTimes::new().set_modified(system_time(mtime_ms)))?;
    Ok(f)
}

/// Writes `rel` under `root` atomically with the given mtime; `fill`
/// writes the content into the temp file. Returns the new file's metadata,
/// taken from its descriptor after the rename (a rename changes ctime).
pub fn write_atomic(
    root: &Path,
    rel: &str,
    mtime_ms: i64,
    fill: &mut dyn FnMut(&mut File) -> Result<()>,
) -> Result<std::fs::Metadata> {
    let o = open_creating(root, rel)?;
    check_target(&o, root, rel)?;
    let target = root.join(rel);
    let mut tmp = o.name.to_os_string();
    tmp.push(format!(".{}{TEMP_SUFFIX}", std::process::id()));
    let tmp = {
        let mut t = std::ffi::OsString::from(".");
        t.push(&tmp);
        t
    };
    // A temp file of a crashed run that had this process id.
    let _ = rustix::fs::unlinkat(o.dir(), &tmp, AtFlags::empty());
    let result = (|| -> Result<std::fs::Metadata> {
        let f = create_filled(o.dir(), &tmp, mtime_ms, fill)
            .with_context(|| format!("writing {}", target.display()))?;
        f.sync_all()
            .with_context(|| format!("writing {}", target.display()))?;
        rustix::fs::renameat(o.dir(), &tmp, o.dir(), o.name)
            .map_err(io)
            .with_context(|| format!("replacing {}", target.display()))?;
        rustix::fs::fsync(o.dir()).map_err(io)?;
        Ok(f.metadata()?)
    })();
    if result.is_err() {
        // No partial file is left behind, whatever failed.
        let _ = rustix::fs::unlinkat(o.dir(), &tmp, AtFlags::empty());
    }
    result
}

/// Writes a new file `rel` under `root` (a checkout folder Vellum just
/// created): no temp file and no fsync, since nothing is replaced and an
/// interrupted checkout is simply run again into a fresh folder.
pub fn write_new(
    root: &Path,
    rel: &str,
    mtime_ms: i64,
    fill: &mut dyn FnMut(&mut File) -> Result<()>,
) -> Result<()> {
    write_fresh(root, rel, mtime_ms, fill).map(|_| ())
}

/// [`write_new`], returning the file's metadata: for a folder being filled
/// for the first time (a join), made durable at the end by [`sync_all`].
pub fn write_fresh(
    root: &Path,
    rel: &str,
    mtime_ms: i64,
    fill: &mut dyn FnMut(&mut File) -> Result<()>,
) -> Result<std::fs::Metadata> {
    let o = open_creating(root, rel)?;
    let f = create_filled(o.dir(), o.name, mtime_ms, fill)
        .with_context(|| format!("writing {}", root.join(rel).display()))?;
    Ok(f.metadata()?)
}

/// Makes everything written on `root`'s filesystem durable (`syncfs`):
/// one call after many [`write_fresh`] instead of an fsync per file.
pub fn sync_all(root: &Path) -> Result<()> {
    let dir = File::open(root).with_context(|| format!("opening {}", root.display()))?;
    rustix::fs::syncfs(&dir).map_err(io)?;
    Ok(())
}

/// The content hash of the regular file at `rel` under `root`, or `None`
/// if nothing is there. A symlink or a folder there is an error: it is not
/// a file Vellum wrote.
pub fn hash_file(root: &Path, rel: &str) -> Result<Option<ContentHash>> {
    let Some(o) = open(root, rel, false)? else {
        return Ok(None);
    };
    let shown = || root.join(rel).display().to_string();
    let fd = match rustix::fs::openat(
        o.dir(),
        o.name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(Errno::LOOP) => bail!("{} is a symlink", shown()),
        Err(e) => return Err(io(e)).with_context(|| format!("reading {}", shown())),
    };
    let mut f = File::from(fd);
    if !f.metadata()?.is_file() {
        bail!("{} is not a regular file", shown());
    }
    let mut h = blake3::Hasher::new();
    std::io::copy(&mut f, &mut h).with_context(|| format!("reading {}", shown()))?;
    Ok(Some(ContentHash(*h.finalize().as_bytes())))
}

/// Removes `rel` and then every folder it leaves empty, up to `root`. A
/// symlink at `rel` is refused; nothing there is fine.
pub fn remove_file(root: &Path, rel: &str) -> Result<()> {
    let Some(o) = open(root, rel, false)? else {
        return Ok(());
    };
    let target = root.join(rel);
    match kind_at(o.dir(), o.name).with_context(|| format!("checking {}", target.display()))? {
        None => return Ok(()),
        Some(FileType::Symlink) => bail!("refusing to remove {rel}: it is a symlink"),
        Some(FileType::Directory) => bail!("refusing to remove {rel}: it is a folder"),
        Some(_) => {}
    }
    match rustix::fs::unlinkat(o.dir(), o.name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => {}
        Err(e) => return Err(io(e)).with_context(|| format!("removing {}", target.display())),
    }
    // Folders left empty go too, deepest first; the first that is not
    // empty (or not ours to remove) stops it.
    let mut alive = o.folders.len();
    for i in (0..o.folders.len()).rev() {
        if rustix::fs::unlinkat(&o.fds[i], o.folders[i], AtFlags::REMOVEDIR).is_err() {
            break;
        }
        alive = i;
    }
    let _ = rustix::fs::fsync(o.fds[alive].as_fd());
    Ok(())
}

/// Refuses `dest` unless it is missing or an empty folder: `what` (checkout,
/// clone) writes only into a new or empty folder.
pub fn require_new_or_empty(dest: &Path, what: &str) -> Result<()> {
    if dest.exists() {
        if !dest.is_dir() {
            return Err(user(format!(
                "{} exists and is not a folder",
                dest.display()
            )));
        }
        if dest.read_dir()?.next().is_some() {
            return Err(user(format!(
                "{} is not empty; {what} writes only into a new or empty folder",
                dest.display()
            )));
        }
    }
    Ok(())
}
