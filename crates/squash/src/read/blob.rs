//! Blob access: a store (a directory, an indexed archive or a registry's repository) and a
//! reader that verifies each blob's size and sha256 as it is read.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::codec::compression::{sniff_buffered, Sniffed};
use crate::digest::{Digest, HashingReader};
use crate::error::{Error, IoContext, Location, Result};
use crate::page_cache::ReadOnce;
use crate::read::archive::{read_small, ArchiveIndex};
#[cfg(feature = "registry")]
use crate::registry::repository::Repository;
use crate::registry::transfer::Transfer;

/// The blob name of `digest` in an OCI layout (and in a registry's repository).
pub(crate) fn layout_blob_name(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

/// Where the blobs of an image live.
#[derive(Debug, Clone)]
pub(crate) enum Store {
    /// Files below a directory.
    Dir(PathBuf),
    /// Members of an outer tar archive.
    Archive(Arc<ArchiveIndex>),
    /// A repository of a registry: blobs under `blobs/`, documents under `manifests/`.
    #[cfg(feature = "registry")]
    Registry(Arc<Repository>),
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
            #[cfg(feature = "registry")]
            Store::Registry(r) => r.path(),
        }
    }

    /// The name of the document (manifest or index) with `digest`: a blob in a layout or an
    /// archive, a manifest in a registry.
    pub(crate) fn document_name(&self, digest: &Digest) -> String {
        if self.is_registry() {
            return format!("manifests/{digest}");
        }
        layout_blob_name(digest)
    }

    /// What reading from the store moved through a registry so far, when it is one.
    pub(crate) fn transfer(&self) -> Option<Transfer> {
        match self {
            #[cfg(feature = "registry")]
            Store::Registry(r) => Some(r.client().counters.transfer()),
            _ => None,
        }
    }

    /// Whether the store is a registry's repository (read over the network, where blobs are not
    /// opened to learn about them).
    pub(crate) fn is_registry(&self) -> bool {
        #[cfg(feature = "registry")]
        return matches!(self, Store::Registry(_));
        #[cfg(not(feature = "registry"))]
        false
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
                        Ok(Some((Box::new(ReadOnce::new(file, 0, size)), size)))
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(Error::io(Location::file(&path), e)),
                }
            }
            Store::Archive(a) => a.open_member(name),
            #[cfg(feature = "registry")]
            Store::Registry(r) => r.open(name),
        }
    }

    /// Opens a blob with verification of size and digest at EOF.
    pub(crate) fn open_blob(
        &self,
        blob: &BlobRef,
        location: Location,
    ) -> Result<VerifyingReader<Box<dyn Read + Send>>> {
        let reader = self.open_raw(blob, &location)?;
        Ok(self.verifying(reader, blob, location))
    }

    /// Opens a blob as [`Store::open_blob`] does, and tells the compression its first bytes
    /// show (those bytes are read again through the verifying reader).
    pub(crate) fn open_blob_sniffed(
        &self,
        blob: &BlobRef,
        location: Location,
    ) -> Result<(Sniffed, VerifyingReader<Box<dyn Read + Send>>)> {
        let reader = self.open_raw(blob, &location)?;
        let (sniffed, reader) = sniff_buffered(reader).at(|| location.clone())?;
        let reader: Box<dyn Read + Send> = Box::new(reader);
        Ok((sniffed, self.verifying(reader, blob, location)))
    }

    /// A verifying reader of `blob`. A member of a spooled archive was hashed as the spool was
    /// filled (with the bytes it holds at the offset read here): its bytes are counted and its
    /// digest compared at the end, not hashed again.
    fn verifying(
        &self,
        reader: Box<dyn Read + Send>,
        blob: &BlobRef,
        location: Location,
    ) -> VerifyingReader<Box<dyn Read + Send>> {
        let known = match self {
            Store::Archive(archive) => archive.spooled_digest(&blob.name),
            _ => None,
        };
        let inner = match known {
            Some(digest) => HashingReader::known(reader, digest),
            None => HashingReader::new(reader),
        };
        VerifyingReader {
            inner,
            expected_size: blob.size,
            expected_digest: blob.digest.clone(),
            location,
            verified: None,
        }
    }

    /// Opens a blob, checking the size its store states against the size the image states.
    fn open_raw(&self, blob: &BlobRef, location: &Location) -> Result<Box<dyn Read + Send>> {
        let opened = match (self, &blob.digest) {
            #[cfg(feature = "registry")]
            (Store::Registry(r), Some(digest)) if blob.name.starts_with("blobs/") => {
                r.blob(digest, Some(blob.size))?
            }
            _ => self.open(&blob.name)?,
        };
        let location = location.clone();
        let Some((reader, on_disk)) = opened else {
            return Err(match &blob.digest {
                Some(digest) => Error::MissingBlob { location, digest: digest.clone() },
                None => {
                    Error::invalid(location, "image", format!("missing member `{}`", blob.name))
                }
            });
        };
        // A registry that states no size (a chunked response) is held to the size at the end.
        if on_disk != blob.size && !(self.is_registry() && on_disk == 0) {
            return Err(Error::SizeMismatch { location, expected: blob.size, actual: on_disk });
        }
        Ok(reader)
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
/// digest (hashed as it is read, or for a member of a spooled archive as the spool was filled).
/// A mismatch surfaces as an [`Error`] carried through `io::Error`.
pub(crate) struct VerifyingReader<R> {
    inner: HashingReader<R>,
    expected_size: u64,
    expected_digest: Option<Digest>,
    location: Location,
    verified: Option<Digest>,
}

impl<R: Read> VerifyingReader<R> {
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
