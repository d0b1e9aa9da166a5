//! Writing files into a vault or a checkout: atomically (temp file in the
//! same folder, fsync, rename, fsync the folder), with the op's mtime, and
//! never through a symlink.

use std::fs::{self, File, FileTimes};
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

use crate::error::user;

/// `root/rel`, refusing any path whose folders are symlinks or not folders:
/// a write must never land outside `root`.
pub fn safe_target(root: &Path, rel: &str) -> Result<PathBuf> {
    let rel_path = Path::new(rel);
    if rel_path
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        bail!("refusing to write {rel}: not a plain relative path");
    }
    let mut at = root.to_path_buf();
    let comps: Vec<_> = rel_path.components().collect();
    for (i, c) in comps.iter().enumerate() {
        at.push(c.as_os_str());
        let last = i + 1 == comps.len();
        match fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                bail!("refusing to write {rel}: {} is a symlink", at.display())
            }
            Ok(m) if !last && !m.is_dir() => {
                bail!("refusing to write {rel}: {} is not a folder", at.display())
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("checking {}", at.display())),
        }
    }
    Ok(at)
}

fn system_time(mtime_ms: i64) -> std::time::SystemTime {
    if mtime_ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(mtime_ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(mtime_ms.unsigned_abs())
    }
}

/// The checked target path of `rel`, with its folders created.
fn prepare(root: &Path, rel: &str) -> Result<PathBuf> {
    safe_target(root, rel)?;
    let target = root.join(rel);
    let dir = target.parent().expect("a file under root has a parent");
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // Re-check after creating folders: one of them may have raced into a link.
    safe_target(root, rel)
}

/// Writes `rel` under `root` atomically with the given mtime. `fill`
/// writes the content into the temp file.
pub fn write_atomic(
    root: &Path,
    rel: &str,
    mtime_ms: i64,
    fill: &mut dyn FnMut(&mut File) -> Result<()>,
) -> Result<()> {
    let target = prepare(root, rel)?;
    let dir = target.parent().expect("a file under root has a parent");
    let name = target.file_name().expect("a file name").to_string_lossy();
    let tmp = dir.join(format!(".{name}.vellum-tmp-{}", std::process::id()));
    let result = (|| -> Result<()> {
        let f = create_filled(&tmp, mtime_ms, fill)?;
        f.sync_all()
            .with_context(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, &target).with_context(|| format!("replacing {}", target.display()))?;
        File::open(dir)?.sync_all()?;
        Ok(())
    })();
    if result.is_err() {
        // No partial file is left behind, whatever failed.
        let _ = fs::remove_file(&tmp);
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
    create_filled(&prepare(root, rel)?, mtime_ms, fill)?;
    Ok(())
}

/// Creates `path` (which must not exist), lets `fill` write its content and
/// sets its mtime. Writers hand over whole texts or 64 KiB blob chunks, so
/// no buffering is needed.
fn create_filled(
    path: &Path,
    mtime_ms: i64,
    fill: &mut dyn FnMut(&mut File) -> Result<()>,
) -> Result<File> {
    let mut f = File::options()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    fill(&mut f)?;
    f.flush()?;
    f.set_times(FileTimes::new().set_modified(system_time(mtime_ms)))?;
    Ok(f)
}

/// The content hash of the regular file at `rel` under `root`, or `None`
/// if nothing is there. A symlink or a folder there is an error: it is not
/// a file Vellum wrote.
pub fn hash_file(root: &Path, rel: &str) -> Result<Option<vellum_journal::ContentHash>> {
    let target = safe_target(root, rel)?;
    let meta = match fs::symlink_metadata(&target) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("checking {}", target.display())),
    };
    if !meta.is_file() {
        bail!("{} is not a regular file", target.display());
    }
    let mut f = match File::open(&target) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", target.display())),
    };
    let mut h = blake3::Hasher::new();
    std::io::copy(&mut f, &mut h).with_context(|| format!("reading {}", target.display()))?;
    Ok(Some(vellum_journal::ContentHash(*h.finalize().as_bytes())))
}

/// Removes `rel` and then every folder it leaves empty, up to `root`.
pub fn remove_file(root: &Path, rel: &str) -> Result<()> {
    let target = safe_target(root, rel)?;
    match fs::remove_file(&target) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing {}", target.display())),
    }
    let mut dir = target.parent().map(Path::to_path_buf);
    while let Some(d) = dir {
        if d == root || !d.starts_with(root) {
            break;
        }
        if fs::remove_dir(&d).is_err() {
            break; // not empty, or not ours to remove
        }
        dir = d.parent().map(Path::to_path_buf);
    }
    if let Some(parent) = target.parent()
        && let Ok(f) = File::open(parent.ancestors().find(|a| a.exists()).unwrap_or(root))
    {
        let _ = f.sync_all();
    }
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
