//! The run context: what one operation of the library (planning, executing, reporting,
//! comparing) may use and whom it tells. One value carries the thread budget, the progress sink
//! (which also carries cancellation) and the directory for temporary files, so that every entry
//! point takes the same three things the same way.

use std::path::{Path, PathBuf};

use crate::budget::Budget;
use crate::progress::{NoProgress, Progress};

/// What a run may use and whom it tells: threads (`--threads`), a [`Progress`] that hears of
/// the work and may cancel it, and where temporary files go (`--tmp-dir`).
///
/// ```
/// use squash::{Context, NoProgress};
///
/// let quiet = Context::new().with_threads(2).with_tmp_dir("/var/tmp");
/// assert_eq!(quiet.threads(), 2);
/// let progress = NoProgress;
/// let told = quiet.with_progress(&progress);
/// assert!(!told.cancelled());
/// ```
#[derive(Clone)]
pub struct Context<'a> {
    threads: usize,
    progress: &'a dyn Progress,
    tmp_dir: Option<PathBuf>,
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("threads", &self.threads)
            .field("tmp_dir", &self.tmp_dir)
            .finish_non_exhaustive()
    }
}

impl Default for Context<'static> {
    fn default() -> Self {
        Context::new()
    }
}

impl Context<'static> {
    /// Every core, no progress, temporary files in the system's directory (`TMPDIR`).
    pub fn new() -> Context<'static> {
        Context { threads: 0, progress: &NoProgress, tmp_dir: None }
    }
}

impl<'a> Context<'a> {
    /// At most `threads` threads in all; 0 for every core. Output bytes never depend on it.
    pub fn with_threads(mut self, threads: usize) -> Context<'a> {
        self.threads = threads;
        self
    }

    /// Tells `progress` of the work, and stops when it says the run is cancelled.
    pub fn with_progress<'b>(self, progress: &'b dyn Progress) -> Context<'b> {
        Context { threads: self.threads, progress, tmp_dir: self.tmp_dir }
    }

    /// Puts temporary files (spools, the copies a range's one read keeps, new layers of a
    /// streamed output) in `dir`.
    pub fn with_tmp_dir(mut self, dir: impl Into<PathBuf>) -> Context<'a> {
        self.tmp_dir = Some(dir.into());
        self
    }

    /// The thread count asked for (0: every core).
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Whom the run tells.
    pub fn progress(&self) -> &'a dyn Progress {
        self.progress
    }

    /// The directory for temporary files, when one was given.
    pub fn tmp_dir(&self) -> Option<&Path> {
        self.tmp_dir.as_deref()
    }

    /// The directory for temporary files: the one given, else the system's.
    pub(crate) fn scratch_dir(&self) -> PathBuf {
        self.tmp_dir.clone().unwrap_or_else(std::env::temp_dir)
    }

    /// Whether the run should stop (its [`Progress`] says so).
    pub fn cancelled(&self) -> bool {
        self.progress.cancelled()
    }

    /// The thread budget.
    pub(crate) fn budget(&self) -> Budget {
        Budget::new(self.threads)
    }
}
