//! Blob access: a store (a directory or an indexed archive) and a reader that verifies each
//! blob's size and sha256 as it is read.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::digest::{Digest, HashingReader};
use crate::error::{Error, IoContext, Location, Result};
use crate::read::archive::{read_small, ArchiveIndex};

/// Where the blobs of an image live.
#[derive(Debug, Clone)]
pub(crate) enum Store {
    /// Files below a directory.
    Dir(PathBuf),
    /// Members of an outer tar archive.
    Archive(Arc<ArchiveIndex>),
}

/// A blob inside a store: its name there, and what the image says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BlobRef {
    /// Relative path inside the store.
    pub name: String,
    /// Size in bytes (stated by the descriptor or by the archive member).
    pub size: u64,
    /// The digest it must have, when the image states one.
    pub digest: Option<Digest>,
}

impl Store {
    pub(crate) fn path(&self) -> &Path {
        match self {
            Store::Dir(p) => p,
            Store::Archive(a) => a.path(),
        }
    }

    pub(crate) fn location(&self) -> Location {
        Location::file(self.path())
    }

    /// Opens `name`, returning its reader and its size on disk, or `None` if absent.
    pub(crate) fn open(&self, name: &str) -> Result<Option<(Box<dyn Read + Send>, u64)>> {
        match self {
            Store::Dir(root) => {
                let path = root.join(name);
                match File::open(&path) {
                    Ok(file) => {
                        let size = file.metadata().at(|| Location::file(&path))?.len();
                        Ok(Some((Box::new(file), size)))
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(Error::io(Location::file(&path), e)),
                }
            }
            Store::Archive(a) => a.open_member(name),
        }
    }

    /// Opens a blob with verification of size and digest at EOF.
    pub(crate) fn open_blob(
        &self,
        blob: &BlobRef,
        location: Location,
    ) -> Result<VerifyingReader<Box<dyn Read + Send>>> {
        let Some((reader, on_disk)) = self.open(&blob.name)? else {
            return Err(match &blob.digest {
                Some(digest) => Error::MissingBlob { location, digest: digest.clone() },
                None => {
                    Error::invalid(location, "image", format!("missing member `{}`", blob.name))
                }
            });
        };
        if on_disk != blob.size {
            return Err(Error::SizeMismatch { location, expected: blob.size, actual: on_disk });
        }
        Ok(VerifyingReader::new(reader, blob.size, blob.digest.clone(), location))
    }

    /// Reads a JSON document blob whole (capped at 16 MiB) and verifies it.
    pub(crate) fn read_document(&self, blob: &BlobRef, location: Location) -> Result<Vec<u8>> {
        let mut reader = self.open_blob(blob, location.clone())?;
        let bytes = read_small(&mut reader, 16 << 20).at(|| location.clone())?;
        reader.finish()?;
        Ok(bytes)
    }

    /// Reads a file that no descriptor covers (`index.json`, `manifest.json`, `oci-layout`).
    pub(crate) fn read_unverified(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let Some((mut reader, _)) = self.open(name)? else {
            return Ok(None);
        };
        let location = self.location().part(format!("`{name}`"));
        read_small(&mut reader, 16 << 20).at(|| location).map(Some)
    }
}

/// A reader that checks, when the blob has been read to its end, that it had the stated size and
/// digest. A mismatch surfaces as an [`Error`] carried through `io::Error`.
pub(crate) struct VerifyingReader<R> {
    inner: HashingReader<R>,
    expected_size: u64,
    expected_digest: Option<Digest>,
    location: Location,
    verified: Option<Digest>,
}

impl<R: Read> VerifyingReader<R> {
    pub(crate) fn new(
        inner: R,
        expected_size: u64,
        expected_digest: Option<Digest>,
        location: Location,
    ) -> Self {
        VerifyingReader {
            inner: HashingReader::new(inner),
            expected_size,
            expected_digest,
            location,
            verified: None,
        }
    }

    /// Reads to the end and returns the verified digest.
    pub(crate) fn finish(mut self) -> Result<Digest> {
        io::copy(&mut self, &mut io::sink()).at(|| self.location.clone())?;
        match self.verified {
            Some(digest) => Ok(digest),
            None => Err(Error::io(self.location, io::Error::other("blob not verified"))),
        }
    }

    fn check_at_eof(&mut self) -> Result<Digest> {
        let actual_size = self.inner.count();
        if actual_size != self.expected_size {
            return Err(Error::SizeMismatch {
                location: self.location.clone(),
                expected: self.expected_size,
                actual: actual_size,
            });
        }
        let actual = self.inner.digest();
        if let Some(expected) = &self.expected_digest {
            if *expected != actual {
                return Err(Error::DigestMismatch {
                    location: self.location.clone(),
                    expected: expected.clone(),
                    actual,
                });
            }
        }
        Ok(actual)
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.verified.is_some() || buf.is_empty() {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if self.inner.count() > self.expected_size {
            let error = Error::SizeMismatch {
                location: self.location.clone(),
                expected: self.expected_size,
                actual: self.inner.count(),
            };
            return Err(error.into_io());
        }
        if n == 0 {
            let digest = self.check_at_eof().map_err(Error::into_io)?;
            self.verified = Some(digest);
        }
        Ok(n)
    }
}
