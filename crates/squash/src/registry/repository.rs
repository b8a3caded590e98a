//! One repository of a registry as a store: blobs by digest (`blobs/sha256/HEX`, downloaded as
//! they are read, never ahead) and documents by digest or tag (`manifests/REF`), each document
//! fetched once per run and kept, within bounds that a hostile index cannot exceed.

use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::client::{Client, Fetched, DOCUMENT_LIMIT};
use super::reference::RegistryReference;
use crate::digest::Digest;
use crate::error::{Error, Location, Result};

/// Documents kept for the run, at most.
const KEPT_BYTES: u64 = 256 << 20;
/// Documents fetched in one run, at most: an index that lists more (or that nests and repeats
/// its children to multiply them) is refused.
const DOCUMENT_FETCHES: u64 = 20_000;

/// A document: its bytes, and the media type the registry states.
pub(crate) type Document = (Arc<Vec<u8>>, Option<String>);

/// A repository of a registry, read (and written) through one client.
pub(crate) struct Repository {
    client: Arc<Client>,
    name: String,
    /// `docker://REGISTRY/REPO`, for messages.
    shown: PathBuf,
    documents: Mutex<Documents>,
}

#[derive(Default)]
struct Documents {
    kept: HashMap<Digest, Arc<Vec<u8>>>,
    kept_bytes: u64,
    fetched: u64,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository").field("shown", &self.shown).finish_non_exhaustive()
    }
}

impl Repository {
    /// The repository `reference` names, reached through `client`.
    pub(crate) fn new(client: Arc<Client>, reference: &RegistryReference) -> Repository {
        Repository {
            client,
            name: reference.repository.clone(),
            shown: PathBuf::from(format!(
                "docker://{}/{}",
                reference.registry, reference.repository
            )),
            documents: Mutex::new(Documents::default()),
        }
    }

    /// The client that reaches the registry.
    pub(crate) fn client(&self) -> &Arc<Client> {
        &self.client
    }

    /// The repository's name (`team/app`).
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// `docker://REGISTRY/REPO`, as messages name it.
    pub(crate) fn path(&self) -> &Path {
        &self.shown
    }

    fn location(&self) -> Location {
        Location::file(&self.shown)
    }

    /// Opens `name` (`blobs/ALG/HEX` or `manifests/REF`): a reader and the size the registry
    /// states (0 when it states none), or `None` when the repository has no such thing.
    pub(crate) fn open(&self, name: &str) -> Result<Option<(Box<dyn Read + Send>, u64)>> {
        if let Some(reference) = name.strip_prefix("manifests/") {
            return Ok(self.document(reference)?.map(|(bytes, _)| {
                let size = bytes.len() as u64;
                (Box::new(Cursor::new(SharedBytes(bytes))) as Box<dyn Read + Send>, size)
            }));
        }
        let Some(digest) = blob_digest(name) else { return Ok(None) };
        self.blob(&digest, None)
    }

    /// Blob `digest` as a reader that resumes a dropped download, and the size the registry
    /// states; `expected` is the size the image states, which a resumption must reach.
    pub(crate) fn blob(
        &self,
        digest: &Digest,
        expected: Option<u64>,
    ) -> Result<Option<(Box<dyn Read + Send>, u64)>> {
        match self.client.blob(&self.name, digest, expected)? {
            Some((download, stated)) => Ok(Some((Box::new(download), stated.unwrap_or(0)))),
            None => Ok(None),
        }
    }

    /// Document `reference` (a digest or a tag): its bytes and the media type the registry
    /// states, verified against the digest it is named by or the registry states; fetched once.
    pub(crate) fn document(&self, reference: &str) -> Result<Option<Document>> {
        let named: Option<Digest> = reference.parse().ok();
        if let Some(digest) = &named {
            if let Some(bytes) = self.kept(digest) {
                return Ok(Some((bytes, None)));
            }
        }
        {
            let mut documents = self.lock()?;
            documents.fetched += 1;
            if documents.fetched > DOCUMENT_FETCHES {
                return Err(Error::invalid(
                    self.location(),
                    "image index",
                    format!(
                        "more than {DOCUMENT_FETCHES} manifests to read: an index that lists \
                         (or nests) too many"
                    ),
                ));
            }
        }
        let Some(Fetched { bytes, media_type, digest: stated }) =
            self.client.manifest(&self.name, reference)?
        else {
            return Ok(None);
        };
        let actual = Digest::of(&bytes);
        let location = self.location().part(format!("manifest {reference}"));
        for expected in [named.as_ref(), stated.as_ref()].into_iter().flatten() {
            if *expected != actual {
                return Err(Error::DigestMismatch { location, expected: expected.clone(), actual });
            }
        }
        let bytes = Arc::new(bytes);
        self.keep(actual, &bytes)?;
        Ok(Some((bytes, media_type)))
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Documents>> {
        self.documents.lock().map_err(|_| {
            Error::io(self.location(), std::io::Error::other("the document cache was poisoned"))
        })
    }

    fn kept(&self, digest: &Digest) -> Option<Arc<Vec<u8>>> {
        self.documents.lock().ok()?.kept.get(digest).cloned()
    }

    fn keep(&self, digest: Digest, bytes: &Arc<Vec<u8>>) -> Result<()> {
        let mut documents = self.lock()?;
        let size = bytes.len() as u64;
        if documents.kept_bytes + size <= KEPT_BYTES
            && size <= DOCUMENT_LIMIT
            && documents.kept.insert(digest, Arc::clone(bytes)).is_none()
        {
            documents.kept_bytes += size;
        }
        Ok(())
    }
}

/// The digest a blob name (`blobs/ALG/HEX`) stands for.
fn blob_digest(name: &str) -> Option<Digest> {
    let rest = name.strip_prefix("blobs/")?;
    let (algorithm, hex) = rest.split_once('/')?;
    format!("{algorithm}:{hex}").parse().ok()
}

/// Shared bytes read through a cursor.
struct SharedBytes(Arc<Vec<u8>>);

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}
