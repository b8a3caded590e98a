//! An output staged beside its destination: the image is written into a locked temporary
//! directory next to the path it is meant for, read back and checked there by the caller, and
//! only then put in place (added to the layout there, or renamed over the file there). Until
//! then the destination is left exactly as it was; dropped, the stage is removed.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;

use super::container::{parent_dir, temp_prefix};
use super::layout::add_layout_image;
use super::lock::{sweep, temp_dir, DirLock, LockWait, DEFAULT_LOCK_TIMEOUT};
use super::output::{check_directory, Destination, Output};
use crate::context::Context;
use crate::error::{Error, IoContext, Location, Result};

/// An output whose image is written beside its destination first, to be checked before it is
/// put in place: what `--verify` writes to a path. The stage is a temporary directory in the
/// destination's directory (so that putting the image in place is a rename, on one file
/// system), locked by this run while it lives, so that another run's sweep leaves it alone and
/// sweeps it once this run is gone. A run writing into the stage checks the stage against its
/// inputs, not the destination: check the output with [`Output::check_against`] first.
///
/// ```no_run
/// use squash::{Context, Image, Output, OutputFormat, SquashOptions, StagedOutput};
///
/// # fn main() -> squash::Result<()> {
/// let image = Image::open("oci:app:latest")?;
/// let plan = image.plan(&SquashOptions::default())?;
/// let context = Context::default();
/// let output = Output::new("out", OutputFormat::OciLayout).with_tag("squashed");
/// output.check_against(&image)?;
/// let staged = StagedOutput::beside(&output, None, &context)?;
/// plan.execute_in(&image, staged.output(), &context)?;
/// // ... read `staged.path()` back and check it; dropping `staged` instead leaves `out` as it was.
/// staged.put_in_place(None, &context)?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct StagedOutput {
    dir: TempDir,
    _lock: File,
    staged: Output,
    dest: PathBuf,
}

impl StagedOutput {
    /// A stage beside `output`, which must be a path: the directory is created under the lock
    /// of the destination's directory when it can be taken, waiting up to `lock_timeout`
    /// ([`DEFAULT_LOCK_TIMEOUT`] when `None`) and telling `context`'s progress while it waits.
    pub fn beside(
        output: &Output,
        lock_timeout: Option<Duration>,
        context: &Context<'_>,
    ) -> Result<StagedOutput> {
        let Destination::Path(dest) = output.destination() else {
            return Err(Error::InvalidOption {
                reason: "only an output to a path can be staged beside it".into(),
            });
        };
        check_directory(dest)?;
        let name = dest.file_name().ok_or_else(|| Error::Output {
            location: Location::file(dest),
            reason: "names no file or directory".into(),
        })?;
        let parent = parent_dir(dest);
        let wait = lock_wait(lock_timeout, context);
        let (dir, lock) = {
            let _lock = DirLock::acquire_if_possible(&parent, wait)?.inspect(|_| {
                sweep(&parent, &temp_prefix(dest));
            });
            temp_dir(&parent, &format!("{}-", temp_prefix(dest)))?
        };
        // A directory inside the stage, which is locked: a new layout takes its directory's
        // lock while it is renamed into place.
        let inner = dir.path().join("image");
        fs::create_dir(&inner).at(|| Location::file(&inner))?;
        let staged = output.at_path(inner.join(name));
        Ok(StagedOutput { dir, _lock: lock, staged, dest: dest.clone() })
    }

    /// Where to write the image: the output given, at a path in the stage (its format, tag and
    /// compression unchanged).
    pub fn output(&self) -> &Output {
        &self.staged
    }

    /// The path of the image written into the stage.
    pub fn path(&self) -> &Path {
        match self.staged.destination() {
            Destination::Path(path) => path,
            _ => self.dir.path(),
        }
    }

    /// The destination the image is meant for.
    pub fn destination(&self) -> &Path {
        &self.dest
    }

    /// Puts the staged image in place. A layout is renamed to the destination when nothing is
    /// there, or else added to the layout there (its blobs moved in and its `index.json` entry
    /// added, replacing the entry of the same tag, under that layout's lock, waiting as
    /// [`StagedOutput::beside`] does); an archive is renamed over the destination, as a run
    /// without a stage replaces it. The stage is removed.
    pub fn put_in_place(self, lock_timeout: Option<Duration>, context: &Context<'_>) -> Result<()> {
        let written = self.path().to_path_buf();
        let location = || Location::file(&self.dest);
        if !written.is_dir() {
            return fs::rename(&written, &self.dest).at(location);
        }
        let wait = lock_wait(lock_timeout, context);
        if !self.dest.exists() {
            let parent = parent_dir(&self.dest);
            let _lock = DirLock::acquire_if_possible(&parent, wait)?;
            if !self.dest.exists() {
                return fs::rename(&written, &self.dest).at(location);
            }
        }
        // A layout there (or created by another run meanwhile): the image joins it.
        add_layout_image(&written, &self.dest, wait)
    }
}

fn lock_wait<'a>(timeout: Option<Duration>, context: &'a Context<'_>) -> LockWait<'a> {
    LockWait { timeout: timeout.unwrap_or(DEFAULT_LOCK_TIMEOUT), progress: context.progress() }
}
