//! An output being written, whatever its container: created under temporary names beside its
//! destination (after the guard that it touches no input), fed blobs, and put in place by
//! [`Target::commit`]; dropping an uncommitted target removes what it wrote.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::archive::ArchiveTarget;
use super::container::{opening_members, parent_dir, temp_prefix, BlobKind, Finish};
use super::layout::LayoutTarget;
use super::lock::{sweep, temp_dir, temp_file, DirLock, LockWait, TEMP_MARK};
use super::output::{check_not_inside_inputs, Input, OutputFormat};
use super::stream::StreamTarget;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Location, Result};

/// An output being written.
pub(crate) enum Target<'a> {
    Layout(LayoutTarget<'a>),
    Archive(ArchiveTarget),
    Stream(StreamTarget<'a>),
}

impl<'a> Target<'a> {
    /// A new output at `path` in `format`, which names the image `tag`: refused when it would
    /// touch a file of `inputs`.
    pub(crate) fn create(
        path: &Path,
        format: OutputFormat,
        tag: Option<&str>,
        inputs: &[Input<'_>],
        wait: LockWait<'a>,
    ) -> Result<Target<'a>> {
        let location = Location::file(path);
        check_not_inside_inputs(path, format, tag, inputs)?;
        let parent = parent_dir(path);
        match format {
            OutputFormat::OciLayout => {
                if path.exists() {
                    if !path.join("oci-layout").is_file() {
                        return Err(Error::Output {
                            location,
                            reason: "exists and is not an OCI image layout; remove it or choose \
                                another path"
                                .into(),
                        });
                    }
                    let root = path.to_path_buf();
                    {
                        let _lock = DirLock::acquire(&root, wait)?;
                        sweep(&root.join("blobs/sha256"), TEMP_MARK);
                        sweep(&root, TEMP_MARK);
                    }
                    return Ok(Target::Layout(LayoutTarget {
                        root,
                        fresh: None,
                        staged: BTreeMap::new(),
                        wait,
                    }));
                }
                let fresh = {
                    let _lock = DirLock::acquire_if_possible(&parent, wait)?.inspect(|_| {
                        sweep(&parent, &temp_prefix(path));
                    });
                    temp_dir(&parent, &format!("{}-", temp_prefix(path)))?
                };
                fs::create_dir_all(fresh.0.path().join("blobs/sha256"))
                    .at(|| Location::file(fresh.0.path()))?;
                Ok(Target::Layout(LayoutTarget {
                    root: path.to_path_buf(),
                    fresh: Some(fresh),
                    staged: BTreeMap::new(),
                    wait,
                }))
            }
            format => {
                if path.is_dir() {
                    return Err(Error::Output {
                        location,
                        reason: "is a directory; an archive output needs a file path".into(),
                    });
                }
                let file = {
                    let _lock = DirLock::acquire_if_possible(&parent, wait)?.inspect(|_| {
                        sweep(&parent, &temp_prefix(path));
                    });
                    temp_file(&parent, &format!("{}-", temp_prefix(path)))?
                };
                let handle = file.reopen().at(|| Location::file(file.path()))?;
                let mut target = ArchiveTarget {
                    dest: path.to_path_buf(),
                    file: Some(file),
                    out: BufWriter::with_capacity(1 << 20, handle),
                    offset: 0,
                    format,
                    written: BTreeSet::new(),
                };
                target.put(&opening_members(format))?;
                Ok(Target::Archive(target))
            }
        }
    }

    /// A target that writes an archive of `format` into `out`.
    pub(crate) fn stream(
        format: OutputFormat,
        out: &'a mut dyn Write,
        tmp_dir: Option<PathBuf>,
    ) -> Target<'a> {
        Target::Stream(StreamTarget {
            out,
            format,
            tmp_dir,
            written: BTreeSet::new(),
            opened: false,
        })
    }

    /// Whether the output already holds this blob.
    pub(crate) fn has_blob(&self, digest: &Digest) -> bool {
        match self {
            Target::Stream(t) => t.written.contains(digest),
            Target::Layout(t) => {
                t.staged.contains_key(digest)
                    || t.work().join("blobs/sha256").join(digest.hex()).is_file()
                    || t.root.join("blobs/sha256").join(digest.hex()).is_file()
            }
            Target::Archive(t) => t.written.contains(digest),
        }
    }

    /// Writes a blob produced by `write`; when `known` (digest and size) is given the result
    /// must have that digest.
    pub(crate) fn write_blob(
        &mut self,
        known: Option<(&Digest, u64)>,
        kind: BlobKind,
        write: &mut dyn FnMut(&mut dyn Write) -> Result<()>,
    ) -> Result<(Digest, u64)> {
        let (digest, size) = match self {
            Target::Layout(t) => t.write_blob(write)?,
            Target::Archive(t) => t.write_blob(kind, write)?,
            Target::Stream(t) => t.write_blob(kind, known, write)?,
        };
        if let Some((expected, _)) = known {
            if *expected != digest {
                return Err(Error::DigestMismatch {
                    location: Location::default().part("blob copied to the output"),
                    expected: expected.clone(),
                    actual: digest,
                });
            }
        }
        Ok((digest, size))
    }

    /// Writes the final documents and puts the output in place.
    pub(crate) fn commit(self, finish: Finish) -> Result<()> {
        match self {
            Target::Layout(t) => t.commit(finish),
            Target::Archive(t) => t.commit(finish),
            Target::Stream(t) => t.commit(finish),
        }
    }
}
