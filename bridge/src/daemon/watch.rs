//! The file watcher: raw notify events, gathered until the vault has been
//! quiet for the debounce (and at most [`GATHER_MAX`] after the first),
//! then one scan of the paths they named.
//!
//! A per-path debouncer that polls on a tick adds up to a tick to every
//! save and wakes an idle daemon once per tick; this thread sleeps until
//! an event or the end of the quiet window, so a save is scanned one
//! debounce after its last event, and an idle daemon does not wake.
//! Events can cancel out (a file created and deleted within the window):
//! the scan compares the disk with the records, never trusts the events.

use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use vellum_journal::path::VELLUM_DIR;

use super::Job;

/// However busy the disk, a batch is scanned this long after its first
/// event: a program writing all the time must not hold every save back.
pub const GATHER_MAX: Duration = Duration::from_secs(1);

/// Watches `root` and sends `jobs` a scan for each quiet batch of changes.
/// Dropping the returned watcher stops the thread.
pub fn start(
    root: &Path,
    debounce: Duration,
    jobs: mpsc::Sender<Job>,
) -> Result<RecommendedWatcher> {
    // Events name paths as the watch was given: an absolute root makes
    // every one of them relative to it, whatever the current directory.
    let root =
        std::fs::canonicalize(root).with_context(|| format!("finding {}", root.display()))?;
    let (tx, rx) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(tx).context("starting the file watcher")?;
    watcher
        .watch(&root, RecursiveMode::Recursive)
        .with_context(|| format!("watching {}", root.display()))?;
    std::thread::Builder::new()
        .name("watch".into())
        .spawn(move || gather(&root, debounce, &rx, &jobs))
        .context("starting the watcher's thread")?;
    Ok(watcher)
}

/// What one batch of events asks for.
#[derive(Default)]
struct Batch {
    paths: Vec<String>,
    /// Some event named no path under the vault, or the kernel's queue
    /// overflowed: compare everything.
    everything: bool,
}

impl Batch {
    /// Adds `event`; whether it is a change (the vault's own `.vellum/`
    /// and reads are not).
    fn add(&mut self, root: &Path, event: notify::Result<Event>) -> bool {
        let Ok(e) = event else {
            self.everything = true;
            return true;
        };
        if e.need_rescan() {
            self.everything = true;
            return true;
        }
        // A scan opens folders and reads files: counting those would make
        // each scan ask for the next. A file closed after writing is a
        // change.
        if let EventKind::Access(kind) = e.kind
            && kind != AccessKind::Close(AccessMode::Write)
        {
            return false;
        }
        let mut change = false;
        for p in &e.paths {
            match relative(root, p) {
                Some(rel) if rel == VELLUM_DIR || rel.starts_with(&format!("{VELLUM_DIR}/")) => {}
                Some(rel) => {
                    self.paths.push(rel);
                    change = true;
                }
                None => {
                    self.everything = true;
                    change = true;
                }
            }
        }
        change
    }

    fn job(self) -> Job {
        if self.everything {
            Job::Scan {
                why: "events the watcher could not name",
                paths: None,
            }
        } else {
            Job::Scan {
                why: "a change on disk",
                paths: Some(self.paths),
            }
        }
    }
}

/// `p` relative to `root`, if it is a UTF-8 path strictly under it.
fn relative(root: &Path, p: &Path) -> Option<String> {
    let rel = p.strip_prefix(root).ok()?.to_str()?;
    (!rel.is_empty()).then(|| rel.to_string())
}

fn gather(
    root: &Path,
    debounce: Duration,
    events: &mpsc::Receiver<notify::Result<Event>>,
    jobs: &mpsc::Sender<Job>,
) {
    loop {
        // Sleep until a change.
        let mut batch = Batch::default();
        loop {
            let Ok(e) = events.recv() else { return };
            if batch.add(root, e) {
                break;
            }
        }
        let first = Instant::now();
        let mut last = first;
        // Then until the vault is quiet.
        loop {
            let until = (last + debounce).min(first + GATHER_MAX);
            match events.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(e) => {
                    if batch.add(root, e) {
                        last = Instant::now();
                    }
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = jobs.send(batch.job());
                    return;
                }
            }
        }
        if jobs.send(batch.job()).is_err() {
            return;
        }
    }
}
