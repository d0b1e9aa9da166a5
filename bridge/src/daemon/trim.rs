//! Handing freed heap back to the OS once the daemon goes idle.
//!
//! glibc keeps what a burst of work freed (an initial sync served to a new
//! device, a scan of a large vault) in its per-thread arenas, where it shows
//! as resident memory for as long as the daemon runs: 96 MB at rest after
//! serving two joins of a 10k-note vault, against a budget of 64 MB
//! (DESIGN §11). Two seconds after the last job, the daemon asks glibc to
//! release it; the next burst allocates afresh.

use std::time::{Duration, Instant};

/// How long after the last job the heap is trimmed.
const AFTER: Duration = Duration::from_secs(2);

/// When the daemon last worked, while there may be freed heap to give back.
#[derive(Default)]
pub struct Trim {
    since: Option<Instant>,
}

impl Trim {
    /// A job ran (not a tick): the heap may hold freed memory.
    pub fn worked(&mut self) {
        self.since = Some(Instant::now());
    }

    /// How long to wait for the next job before trimming; `None` when there
    /// is nothing to give back.
    pub fn wait(&self) -> Option<Duration> {
        self.since.map(|t| AFTER.saturating_sub(t.elapsed()))
    }

    /// Trims if the daemon has been idle long enough since it last worked.
    pub fn if_idle(&mut self) {
        if self.since.is_some_and(|t| t.elapsed() >= AFTER) {
            self.since = None;
            release();
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn release() {
    // SAFETY: `malloc_trim` takes no pointers, only returns free pages of
    // every arena to the kernel, and is safe to call from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release() {}
