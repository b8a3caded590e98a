//! Advisory locks and temporaries of outputs. A directory lock (`flock` on the directory itself)
//! serializes the read-modify-write of a layout's `index.json`, and the creation and sweeping of
//! temporaries in that directory. Every temporary stays locked by the run that made it for as
//! long as that run lives, so a later run can tell a dead run's leftovers (lockable) from a live
//! run's (locked) and remove only the former.

use std::fs::{self, File, Permissions, TryLockError};
use std::path::Path;
use std::time::{Duration, Instant};

use tempfile::{NamedTempFile, TempDir};

use crate::error::{Error, IoContext, Location, Result};
use crate::progress::{Event, Progress};

/// How long a run waits for another run's lock on an output layout by default.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(120);

/// What every temporary's name contains, after an optional destination prefix.
pub(crate) const TEMP_MARK: &str = ".squash-tmp";

/// How long to wait for a lock, and whom to tell while waiting.
#[derive(Clone, Copy)]
pub(crate) struct LockWait<'a> {
    pub timeout: Duration,
    pub progress: &'a dyn Progress,
}

/// An exclusive lock on a directory, released when dropped.
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Locks `dir`, waiting up to the timeout; says so through `progress` after a second.
    pub(crate) fn acquire(dir: &Path, wait: LockWait<'_>) -> Result<DirLock> {
        let file = File::open(dir).at(|| Location::file(dir))?;
        let start = Instant::now();
        let mut told = false;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(DirLock { _file: file }),
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(e)) => return Err(Error::io(Location::file(dir), e)),
            }
            if wait.progress.cancelled() {
                return Err(Error::Cancelled);
            }
            let waited = start.elapsed();
            if waited >= wait.timeout {
                return Err(Error::Output {
                    location: Location::file(dir),
                    reason: format!(
                        "gave up after {:.0} s waiting for the lock that another run writing \
                            there holds (see --lock-timeout)",
                        wait.timeout.as_secs_f64()
                    ),
                });
            }
            if !told && waited >= Duration::from_secs(1) {
                let message = format!(
                    "waiting for the lock on `{}`: another run is writing there",
                    dir.display()
                );
                wait.progress.event(&Event::Notice { message });
                told = true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Locks `dir` when it can be opened; `None` when it cannot (no read permission), in which
    /// case the caller must not sweep it.
    pub(crate) fn acquire_if_possible(dir: &Path, wait: LockWait<'_>) -> Result<Option<DirLock>> {
        if File::open(dir).is_err() {
            return Ok(None);
        }
        DirLock::acquire(dir, wait).map(Some)
    }
}

#[cfg(unix)]
fn mode(bits: u32) -> Permissions {
    use std::os::unix::fs::PermissionsExt;
    Permissions::from_mode(bits)
}

/// A new temporary file in `dir`, mode 0644 less the umask, locked by this run.
pub(crate) fn temp_file(dir: &Path, prefix: &str) -> Result<NamedTempFile> {
    let temp = tempfile::Builder::new()
        .prefix(prefix)
        .permissions(mode(0o644))
        .tempfile_in(dir)
        .at(|| Location::file(dir))?;
    temp.as_file().lock().at(|| Location::file(temp.path()))?;
    Ok(temp)
}

/// A new temporary directory in `dir`, mode 0755 less the umask, locked by this run through the
/// returned handle.
pub(crate) fn temp_dir(dir: &Path, prefix: &str) -> Result<(TempDir, File)> {
    let temp = tempfile::Builder::new()
        .prefix(prefix)
        .permissions(mode(0o755))
        .tempdir_in(dir)
        .at(|| Location::file(dir))?;
    let handle = File::open(temp.path()).at(|| Location::file(temp.path()))?;
    handle.lock().at(|| Location::file(temp.path()))?;
    Ok((temp, handle))
}

/// Removes the temporaries in `dir` whose names start with `prefix` and that no live run holds.
/// The caller holds the lock on `dir`, under which every temporary is created and locked, so a
/// temporary that can be locked here belongs to a run that is gone. Returns how many went.
pub(crate) fn sweep(dir: &Path, prefix: &str) -> usize {
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten() {
        if !entry.file_name().as_encoded_bytes().starts_with(prefix.as_bytes()) {
            continue;
        }
        let path = entry.path();
        let Ok(metadata) = fs::symlink_metadata(&path) else { continue };
        if metadata.file_type().is_symlink() {
            continue;
        }
        let Ok(handle) = File::open(&path) else { continue };
        if handle.try_lock().is_err() {
            continue;
        }
        let gone =
            if metadata.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
        removed += usize::from(gone.is_ok());
    }
    removed
}
