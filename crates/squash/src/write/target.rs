//! An output being written, whatever its container: created under temporary names beside its
//! destination (after the guard that it touches no input), or pushed to a registry untagged,
//! fed blobs, and put in place (or tagged) by [`Target::commit`]; dropping an uncommitted
//! target removes what it wrote (a registry keeps untagged blobs for its garbage collection).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::archive::ArchiveTarget;
use super::container::{opening_members, parent_dir, temp_prefix, BlobKind, Finish};
use super::layout::{BlobDir, LayoutTarget, Written};
use super::lock::{sweep, temp_dir, temp_file, DirLock, LockWait, TEMP_MARK};
use super::output::{
    check_directory, check_not_inside_inputs, Destination, Input, Output, OutputFormat,
};
#[cfg(feature = "registry")]
use super::registry::RegistryTarget;
use super::stream::StreamTarget;
use crate::budget::Budget;
use crate::codec::compression::Compression;
use crate::digest::{Digest, StreamHasher};
use crate::error::{Error, IoContext, Location, Result};
use crate::page_cache::{SyncBehind, WriteBehind};
use crate::progress::{Counting, Progress};
use crate::read::blob::Store;
use crate::registry::options::RegistryOptions;
use crate::registry::reference::RegistryReference;
use crate::registry::transfer::Transfer;

/// An output being written.
pub(crate) enum Target<'a> {
    Layout(LayoutTarget<'a>),
    Archive(ArchiveTarget),
    Stream(StreamTarget<'a>),
    #[cfg(feature = "registry")]
    Registry(Box<RegistryTarget>),
}

impl<'a> Target<'a> {
    /// A new output at `path` in `format`, which names the image `tag`, an archive compressed
    /// as a whole with `compression` when given: refused when it would touch a file of
    /// `inputs`.
    pub(crate) fn create(
        path: &Path,
        format: OutputFormat,
        tag: Option<&str>,
        compression: Option<Compression>,
        inputs: &[Input<'_>],
        wait: LockWait<'a>,
    ) -> Result<Target<'a>> {
        let location = Location::file(path);
        check_directory(path)?;
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
                    // A stage a verifying run killed outright left beside the layout.
                    if let Some(_lock) = DirLock::acquire_if_possible(&parent, wait)? {
                        sweep(&parent, &temp_prefix(path));
                    }
                    return Ok(Target::Layout(LayoutTarget {
                        root,
                        fresh: None,
                        staged: BTreeMap::new(),
                        wait,
                        syncs: SyncBehind::default(),
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
                    syncs: SyncBehind::default(),
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
                let compression = compression.filter(|c| *c != Compression::None);
                let mut target = ArchiveTarget {
                    dest: path.to_path_buf(),
                    file: Some(file),
                    out: BufWriter::with_capacity(
                        1 << 20,
                        WriteBehind::new(handle, compression.is_none()),
                    ),
                    offset: 0,
                    format,
                    written: BTreeSet::new(),
                    compression,
                };
                target.put(&opening_members(format))?;
                Ok(Target::Archive(target))
            }
        }
    }

    /// The target `output` names, in `format`: a path, or a repository of a registry (standard
    /// output is written by a stream target, [`Target::stream`]).
    pub(crate) fn for_output(
        output: &Output,
        format: OutputFormat,
        inputs: &[Input<'_>],
        wait: LockWait<'a>,
    ) -> Result<Target<'a>> {
        match output.destination() {
            Destination::Path(path) => Target::create(
                path,
                format,
                output.tag(),
                output.archive_compression(),
                inputs,
                wait,
            ),
            Destination::Registry(reference) => Target::registry(
                reference,
                (output.tag(), !output.holds_tag()),
                output.registry_options(),
                inputs,
            ),
            Destination::Stdout => Err(Error::InvalidOption {
                reason: "standard output is written as a stream, not as a file".into(),
            }),
        }
    }

    /// A push to a repository of a registry under `tag`, which the commit puts when `put_tag`:
    /// refused when it would move the tag an input was read by.
    pub(crate) fn registry(
        reference: &RegistryReference,
        (tag, put_tag): (Option<&str>, bool),
        options: &RegistryOptions,
        inputs: &[Input<'_>],
    ) -> Result<Target<'a>> {
        #[cfg(feature = "registry")]
        return RegistryTarget::create(reference, (tag, put_tag), options, inputs)
            .map(|t| Target::Registry(Box::new(t)));
        #[cfg(not(feature = "registry"))]
        {
            let _ = (tag, put_tag, options, inputs);
            Err(Error::unsupported(
                Location::file(reference.to_string()),
                "registries: this squash was built without its `registry` feature",
            ))
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

    /// Whether the output already holds blob `digest`, or took it without its bytes (a
    /// registry mounts a blob of `source`'s repository when it is in the same registry).
    pub(crate) fn reuse_blob(&mut self, digest: &Digest, source: &Store) -> Result<bool> {
        #[cfg(not(feature = "registry"))]
        let _ = source;
        #[cfg(feature = "registry")]
        if let Target::Registry(t) = self {
            return t.reuse(digest, source);
        }
        Ok(self.holds_blob(digest))
    }

    /// Whether the output already holds blob `digest`, from what it knows without a request
    /// (a registry: the blobs it found or pushed).
    pub(crate) fn holds_blob(&self, digest: &Digest) -> bool {
        match self {
            Target::Stream(t) => t.written.contains(digest),
            Target::Layout(t) => {
                t.staged.contains_key(digest)
                    || t.work().join("blobs/sha256").join(digest.hex()).is_file()
                    || t.root.join("blobs/sha256").join(digest.hex()).is_file()
            }
            Target::Archive(t) => t.written.contains(digest),
            #[cfg(feature = "registry")]
            Target::Registry(t) => t.present.contains(digest),
        }
    }

    /// Writes a blob produced by `write`, hashed as it is written; when `known` (digest and
    /// size) is given the result must have that digest.
    pub(crate) fn write_blob(
        &mut self,
        known: Option<(&Digest, u64)>,
        kind: BlobKind,
        write: &mut dyn FnMut(&mut dyn Write) -> Result<()>,
    ) -> Result<(Digest, u64)> {
        self.write_hashed(known, kind, StreamHasher::new(false), write)
    }

    /// [`Target::write_blob`] for a layer, whose bytes are hashed on a thread of their own if
    /// `budget` allows.
    pub(crate) fn write_layer(
        &mut self,
        known: Option<(&Digest, u64)>,
        budget: Budget,
        write: &mut dyn FnMut(&mut dyn Write) -> Result<()>,
    ) -> Result<(Digest, u64)> {
        self.write_hashed(known, BlobKind::Layer, StreamHasher::new(budget.hash_apart()), write)
    }

    fn write_hashed(
        &mut self,
        known: Option<(&Digest, u64)>,
        kind: BlobKind,
        hasher: StreamHasher,
        write: &mut dyn FnMut(&mut dyn Write) -> Result<()>,
    ) -> Result<(Digest, u64)> {
        let (digest, size) = match self {
            Target::Layout(t) => t.write_blob(hasher, write)?,
            Target::Archive(t) => t.write_blob(kind, hasher, write)?,
            Target::Stream(t) => t.write_blob(kind, known, hasher, write)?,
            #[cfg(feature = "registry")]
            Target::Registry(t) => t.write_blob(kind, known, hasher, write)?,
        };
        if let Some((expected, _)) = known {
            copied_as_known(expected, &digest)?;
        }
        Ok((digest, size))
    }

    /// Copies `reader` into the output as a layer blob (`known`: its digest and size, which the
    /// copy must have), its bytes reported to `progress` when `report`; a failed read is an
    /// error at `location`. With `checked`, `reader` checks the bytes against `known` itself (a
    /// blob of the input opened with its digest), so the copy is not hashed again.
    pub(crate) fn copy_layer(
        &mut self,
        (known, checked): (Option<(&Digest, u64)>, bool),
        reader: &mut dyn Read,
        (progress, report): (&dyn Progress, bool),
        budget: Budget,
        location: &Location,
    ) -> Result<(Digest, u64)> {
        let hasher = match known {
            Some((digest, _)) if checked => StreamHasher::known(digest.clone()),
            _ => StreamHasher::new(budget.hash_apart()),
        };
        self.write_hashed(known, BlobKind::Layer, hasher, &mut |w| {
            copy_pieces(reader, w, (progress, report), location)
        })
    }

    /// For a layout, where a thread beside this target's writer may copy kept layers
    /// ([`BlobDir::copy_layer`]), to be kept with [`Target::keep_blob`].
    pub(crate) fn blob_dir(&self) -> Option<BlobDir<'a>> {
        match self {
            Target::Layout(t) => Some(t.blob_dir()),
            _ => None,
        }
    }

    /// Keeps a blob written apart into this target's [`Target::blob_dir`].
    pub(crate) fn keep_blob(&mut self, written: Written) -> Result<(Digest, u64)> {
        match self {
            Target::Layout(t) => t.keep(written),
            _ => Err(Error::Output {
                location: Location::default().part("blob copied to the output"),
                reason: "a blob written apart is kept only by a layout".into(),
            }),
        }
    }

    /// Writes the final documents and puts the output in place; for a registry, what the push
    /// moved.
    pub(crate) fn commit(self, finish: Finish) -> Result<Option<Transfer>> {
        match self {
            Target::Layout(t) => t.commit(finish).map(|()| None),
            Target::Archive(t) => t.commit(finish).map(|()| None),
            Target::Stream(t) => t.commit(finish).map(|()| None),
            #[cfg(feature = "registry")]
            Target::Registry(t) => {
                t.commit_tag(finish)?;
                Ok(Some(t.transfer()))
            }
        }
    }
}

/// Refuses a blob copied to the output whose digest is not the one it was known by.
fn copied_as_known(expected: &Digest, actual: &Digest) -> Result<()> {
    if expected == actual {
        return Ok(());
    }
    Err(Error::DigestMismatch {
        location: Location::default().part("blob copied to the output"),
        expected: expected.clone(),
        actual: actual.clone(),
    })
}

/// Copies `reader` into `w` in 1 MiB pieces, written straight from the buffer (not 8 KiB at a
/// time), its bytes reported to `progress` when `report`; a failed read is an error at
/// `location`.
fn copy_pieces(
    reader: &mut dyn Read,
    w: &mut dyn Write,
    (progress, report): (&dyn Progress, bool),
    location: &Location,
) -> Result<()> {
    let mut counting = Counting::new(w, progress, report);
    io::copy(&mut io::BufReader::with_capacity(1 << 20, reader), &mut counting)
        .and_then(|_| counting.flush())
        .map(drop)
        .at(|| location.clone())
}

impl BlobDir<'_> {
    /// Copies a kept layer's blob, whose digest and size are `known` and which `reader` checks
    /// as it reads (a blob of the input opened with its digest), into this directory; its bytes
    /// reported to `progress`.
    pub(crate) fn copy_layer(
        &self,
        known: (&Digest, u64),
        reader: &mut dyn Read,
        progress: &dyn Progress,
        location: &Location,
    ) -> Result<Written> {
        let written = self.write(StreamHasher::known(known.0.clone()), &mut |w| {
            copy_pieces(reader, w, (progress, true), location)
        })?;
        copied_as_known(known.0, &written.digest)?;
        Ok(written)
    }
}
