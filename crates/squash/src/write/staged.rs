//! An output staged before it is put in place: the image is written into a locked temporary
//! directory next to the path it is meant for (or pushed to its repository by digest, its tag
//! held back), read back and checked there by the caller, and only then put in place (added to
//! the layout there, renamed over the file there, or tagged). Until then the destination is
//! left exactly as it was; dropped, the stage is removed (a push's blobs and manifest stay in
//! the repository, referenced by no tag, as a failed push leaves them).

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;

use super::container::{parent_dir, temp_prefix};
use super::layout::add_layout_image;
use super::lock::{sweep, temp_dir, DirLock, LockWait, DEFAULT_LOCK_TIMEOUT};
use super::output::{check_directory, Destination, Output};
#[cfg(feature = "registry")]
use super::registry::put_tag;
use crate::context::Context;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Location, Result};
#[cfg(feature = "registry")]
use crate::registry::reference::RegistryReference;

/// An output whose image is written beside its destination first, to be checked before it is
/// put in place: what `--verify` writes. For a path, the stage is a temporary directory in the
/// destination's directory (so that putting the image in place is a rename, on one file
/// system), locked by this run while it lives, so that another run's sweep leaves it alone and
/// sweeps it once this run is gone. For a push, the image is pushed by digest and its tag put
/// only by [`StagedOutput::put_in_place`]. A run writing into the stage checks the stage
/// against its inputs, not the destination: check the output with [`Output::check_against`]
/// first.
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
/// let outcome = plan.execute_in(&image, staged.output(), &context)?;
/// // ... read `staged.path()` back and check it; dropping `staged` instead leaves `out` as it was.
/// staged.put_in_place(&outcome.manifest_digest, None, &context)?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct StagedOutput {
    stage: Stage,
    staged: Output,
}

/// Where a staged image waits.
#[derive(Debug)]
enum Stage {
    /// A locked temporary directory beside the destination path.
    Beside { dir: TempDir, _lock: File, dest: PathBuf },
    /// The destination repository itself, by digest: the tag is put last.
    #[cfg(feature = "registry")]
    Pushed { reference: RegistryReference, tag: String },
}

impl StagedOutput {
    /// A stage for `output`. For a path: a directory beside it, created under the lock of the
    /// destination's directory when it can be taken, waiting up to `lock_timeout`
    /// ([`DEFAULT_LOCK_TIMEOUT`] when `None`) and telling `context`'s progress while it waits.
    /// For a push: the repository itself, the image pushed by digest and its tag held back.
    pub fn beside(
        output: &Output,
        lock_timeout: Option<Duration>,
        context: &Context<'_>,
    ) -> Result<StagedOutput> {
        let dest = match output.destination() {
            Destination::Path(dest) => dest,
            #[cfg(feature = "registry")]
            Destination::Registry(reference) => {
                let tag = output.tag().unwrap_or("latest").to_string();
                let stage = Stage::Pushed { reference: reference.clone(), tag };
                return Ok(StagedOutput { stage, staged: output.holding_tag() });
            }
            _ => {
                return Err(Error::InvalidOption {
                    reason: "only an output to a path or a registry can be staged".into(),
                })
            }
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
        Ok(StagedOutput { stage: Stage::Beside { dir, _lock: lock, dest: dest.clone() }, staged })
    }

    /// Where to write the image: the output given, at a path in the stage (its format, tag and
    /// compression unchanged), or the same push with its tag held back.
    pub fn output(&self) -> &Output {
        &self.staged
    }

    /// The path of the image written into the stage; `None` for a push, whose image is read
    /// back by the digest its outcome names ([`crate::Outcome::pushed`]).
    pub fn path(&self) -> Option<&Path> {
        self.staged.path()
    }

    /// Puts the staged image in place; `written` is the digest of the manifest (or index) the
    /// run wrote into the stage, as its outcome gives it. A layout is renamed to the
    /// destination when nothing is there, or else added to the layout there (its blobs moved
    /// in and its `index.json` entry added, replacing the entry of the same tag, under that
    /// layout's lock, waiting as [`StagedOutput::beside`] does); an archive is renamed over the
    /// destination, as a run without a stage replaces it. A push gets its tag: the document
    /// `written` is fetched from the repository, checked against its digest and put under the
    /// tag. The stage is removed.
    pub fn put_in_place(
        self,
        written: &Digest,
        lock_timeout: Option<Duration>,
        context: &Context<'_>,
    ) -> Result<()> {
        let (dir, dest) = match &self.stage {
            Stage::Beside { dir, dest, .. } => (dir, dest),
            #[cfg(feature = "registry")]
            Stage::Pushed { reference, tag } => {
                let options = self.staged.registry_options();
                return put_tag(reference, options, written, tag);
            }
        };
        let staged = self.staged.path().unwrap_or(dir.path()).to_path_buf();
        let location = || Location::file(dest);
        if !staged.is_dir() {
            return fs::rename(&staged, dest).at(location);
        }
        let wait = lock_wait(lock_timeout, context);
        if !dest.exists() {
            let parent = parent_dir(dest);
            let _lock = DirLock::acquire_if_possible(&parent, wait)?;
            if !dest.exists() {
                return fs::rename(&staged, dest).at(location);
            }
        }
        // A layout there (or created by another run meanwhile): the image joins it.
        add_layout_image(&staged, written, dest, wait)
    }
}

fn lock_wait<'a>(timeout: Option<Duration>, context: &'a Context<'_>) -> LockWait<'a> {
    LockWait { timeout: timeout.unwrap_or(DEFAULT_LOCK_TIMEOUT), progress: context.progress() }
}
