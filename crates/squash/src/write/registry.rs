//! Registry outputs: a blob the repository already has is left alone (a `HEAD` says so), a
//! blob of another repository of the same registry is mounted, and the rest are streamed up as
//! they are written (one streamed request each, completed with the digest learnt as the bytes
//! pass, which the registry checks). Manifests are put by digest as they are written (children
//! before the index that lists them); the tag is put last, by the commit, or for a push staged
//! to be checked first, once it is checked (`put_tag`). A run that fails leaves the tag where it
//! was: what it uploaded is referenced by no tag, for the registry's garbage collection.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

use serde_json::Value;

use super::container::{BlobKind, Finish};
use super::output::{check_tag_not_moved, Input};
use crate::digest::{Digest, HashingWriter, StreamHasher};
use crate::error::{Error, IoContext, Location, Result};
use crate::read::blob::Store;
use crate::read::media::{OCI_INDEX, OCI_MANIFEST};
use crate::registry::client::{Client, Upload, DOCUMENT_LIMIT};
use crate::registry::options::RegistryOptions;
use crate::registry::reference::RegistryReference;
use crate::registry::transfer::Transfer;

/// Bytes handed from the writer to the upload at a time.
const PIECE: usize = 1 << 20;
/// Pieces in flight between the writer and the upload.
const PIECES_IN_FLIGHT: usize = 4;

/// An image being pushed to a repository.
pub(crate) struct RegistryTarget {
    client: Arc<Client>,
    /// The repository, untagged.
    reference: RegistryReference,
    /// The tag put by the commit.
    tag: Option<String>,
    /// Documents put so far, by digest: their bytes and media type.
    documents: BTreeMap<Digest, (Vec<u8>, String)>,
    /// Blobs the repository holds: found, mounted or uploaded by this run.
    pub(super) present: BTreeSet<Digest>,
    /// Uploads the registry started instead of a mount, by the digest meant to be mounted.
    pending: BTreeMap<Digest, Upload>,
}

impl RegistryTarget {
    /// A push to `reference`'s repository under `tag`, which the commit puts when `put_tag`
    /// (else the image is left by digest only, for its tag to be put later): refused when it
    /// would move the tag an input was read by.
    pub(super) fn create(
        reference: &RegistryReference,
        (tag, put_tag): (Option<&str>, bool),
        options: &RegistryOptions,
        inputs: &[Input<'_>],
    ) -> Result<RegistryTarget> {
        let repository = reference.with_repository(&reference.repository);
        check_tag_not_moved(reference, tag, inputs)?;
        let client = Client::connect(reference, options)?;
        Ok(RegistryTarget {
            client,
            reference: repository,
            tag: tag.filter(|_| put_tag).map(str::to_string),
            documents: BTreeMap::new(),
            present: BTreeSet::new(),
            pending: BTreeMap::new(),
        })
    }

    fn repository(&self) -> &str {
        &self.reference.repository
    }

    fn location(&self) -> Location {
        Location::file(self.reference.to_string())
    }

    /// What this push moved (the source's downloads are counted by the source's client).
    pub(super) fn transfer(&self) -> Transfer {
        self.client.counters.transfer()
    }

    /// Whether the repository holds blob `digest` already, or took it without its bytes: a
    /// mount from `source`, when that is another repository of the same registry.
    pub(super) fn reuse(&mut self, digest: &Digest, source: &Store) -> Result<bool> {
        if self.present.contains(digest) {
            return Ok(true);
        }
        let repository = self.repository().to_string();
        let scopes = [crate::registry::client::push(&repository)];
        if self.client.blob_size(&repository, digest, &scopes)?.is_some() {
            self.client.count_present();
            self.present.insert(digest.clone());
            return Ok(true);
        }
        if let Store::Registry(from) = source {
            if from.client().base() == self.client.base() && from.name() != repository {
                match self.client.mount(&repository, digest, from.name())? {
                    None => {
                        self.present.insert(digest.clone());
                        return Ok(true);
                    }
                    Some(upload) => {
                        self.pending.insert(digest.clone(), upload);
                    }
                }
            }
        }
        Ok(false)
    }

    /// Pushes a blob produced by `write`: a document is put as a manifest; any other blob is
    /// streamed up as it is written.
    pub(super) fn write_blob(
        &mut self,
        kind: BlobKind,
        known: Option<(&Digest, u64)>,
        hasher: StreamHasher,
        write: &mut dyn FnMut(&mut dyn Write) -> Result<()>,
    ) -> Result<(Digest, u64)> {
        if kind == BlobKind::Manifest {
            return self.put_document(write);
        }
        let repository = self.repository().to_string();
        let upload = match known.and_then(|(digest, _)| self.pending.remove(digest)) {
            Some(upload) => upload,
            None => self.client.start_upload(&repository)?,
        };
        let client = Arc::clone(&self.client);
        let (sender, receiver) = sync_channel::<Piece>(PIECES_IN_FLIGHT);
        let (digest_sender, digest_receiver) = sync_channel::<Digest>(1);
        let location = self.location();
        let (written, uploaded) = std::thread::scope(|scope| {
            let upload_location = location.clone();
            let uploader = scope.spawn(move || {
                let mut reader = PieceReader { receiver, piece: Vec::new(), at: 0, ended: false };
                client.upload(&repository, upload, &mut reader, &mut || {
                    digest_receiver.recv().map_err(|_| Error::Output {
                        location: upload_location.clone(),
                        reason: "the blob was not written whole".into(),
                    })
                })
            });
            let mut writer =
                HashingWriter::new(PieceWriter { sender: Some(sender), piece: Vec::new() }, hasher);
            let written = write(&mut writer).and_then(|()| {
                writer.flush().at(|| location.clone())?;
                let (mut pieces, digest, size) = writer.finish();
                // The digest first: the upload asks for it once the bytes are out.
                let _ = digest_sender.send(digest.clone());
                pieces.end().at(|| location.clone())?;
                Ok((digest, size))
            });
            let uploaded = uploader.join().unwrap_or_else(|_| {
                Err(Error::Output {
                    location: location.clone(),
                    reason: "the upload failed".into(),
                })
            });
            (written, uploaded)
        });
        // The upload's own error explains a writer that found the upload gone.
        match (written, uploaded) {
            (Ok((digest, size)), Ok(_)) => {
                self.present.insert(digest.clone());
                Ok((digest, size))
            }
            (Err(e), Ok(_)) | (Ok(_), Err(e)) => Err(e),
            (Err(written), Err(uploaded)) => {
                Err(if matches!(written, Error::Cancelled) { written } else { uploaded })
            }
        }
    }

    /// Puts a document (a manifest or an index) by its digest.
    fn put_document(
        &mut self,
        write: &mut dyn FnMut(&mut dyn Write) -> Result<()>,
    ) -> Result<(Digest, u64)> {
        let mut bytes = Vec::new();
        write(&mut bytes)?;
        if bytes.len() as u64 > DOCUMENT_LIMIT {
            return Err(Error::Output {
                location: self.location(),
                reason: format!("a manifest is larger than {DOCUMENT_LIMIT} bytes"),
            });
        }
        let digest = Digest::of(&bytes);
        let size = bytes.len() as u64;
        if !self.documents.contains_key(&digest) {
            let media_type = media_type_of(&bytes);
            let repository = self.repository().to_string();
            self.client.put_manifest(&repository, &digest.to_string(), &media_type, &bytes)?;
            self.documents.insert(digest.clone(), (bytes, media_type));
        }
        Ok((digest, size))
    }

    /// Puts the tag on the image's manifest (or index): the last request of a push.
    pub(super) fn commit_tag(&self, finish: Finish) -> Result<()> {
        let Some(tag) = &self.tag else { return Ok(()) };
        let top: Option<Digest> = finish
            .manifest_descriptor
            .get("digest")
            .and_then(Value::as_str)
            .and_then(|d| d.parse().ok());
        let Some((bytes, media_type)) = top.as_ref().and_then(|d| self.documents.get(d)) else {
            return Err(Error::Output {
                location: self.location(),
                reason: "the image's manifest was not pushed".into(),
            });
        };
        self.client.put_manifest(self.repository(), tag, media_type, bytes)
    }
}

/// Puts `tag` in `reference`'s repository on the document `digest` already there (a push whose
/// tag was held): the document is fetched by digest, its bytes checked against the digest, and
/// put again under the tag, the one request that moves it.
pub(super) fn put_tag(
    reference: &RegistryReference,
    options: &RegistryOptions,
    digest: &Digest,
    tag: &str,
) -> Result<()> {
    let client = Client::connect(reference, options)?;
    let repository = &reference.repository;
    let location = || Location::file(format!("{}@{digest}", reference.with_repository(repository)));
    let fetched = client.manifest(repository, &digest.to_string())?.ok_or_else(|| {
        Error::Output { location: location(), reason: "the image pushed is gone".into() }
    })?;
    let actual = Digest::of(&fetched.bytes);
    if actual != *digest {
        return Err(Error::DigestMismatch {
            location: location(),
            expected: digest.clone(),
            actual,
        });
    }
    let media_type = fetched.media_type.unwrap_or_else(|| media_type_of(&fetched.bytes));
    client.put_manifest(repository, tag, &media_type, &fetched.bytes)
}

/// The media type a document states, or the one its shape implies.
fn media_type_of(bytes: &[u8]) -> String {
    let value: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    match value.get("mediaType").and_then(Value::as_str) {
        Some(stated) => stated.to_string(),
        None if value.get("manifests").is_some() => OCI_INDEX.to_string(),
        None => OCI_MANIFEST.to_string(),
    }
}

/// What the writer hands the upload: bytes, or the end of the blob.
enum Piece {
    Bytes(Vec<u8>),
    End,
}

/// The writer's end: bytes gathered into pieces and handed over; an upload that stopped makes
/// a write fail.
struct PieceWriter {
    sender: Option<SyncSender<Piece>>,
    piece: Vec<u8>,
}

impl PieceWriter {
    fn hand_over(&mut self, piece: Piece) -> io::Result<()> {
        let sender = self.sender.as_ref().ok_or_else(|| io::Error::other("the blob has ended"))?;
        sender.send(piece).map_err(|_| io::Error::other("the upload stopped"))
    }

    /// Hands over what is left and the end of the blob.
    fn end(&mut self) -> io::Result<()> {
        self.flush()?;
        self.hand_over(Piece::End)?;
        self.sender = None;
        Ok(())
    }
}

impl Write for PieceWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.piece.is_empty() && buf.len() >= PIECE {
            self.hand_over(Piece::Bytes(buf.to_vec()))?;
            return Ok(buf.len());
        }
        let n = buf.len().min(PIECE - self.piece.len());
        self.piece.extend_from_slice(&buf[..n]);
        if self.piece.len() == PIECE {
            self.flush()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.piece.is_empty() {
            return Ok(());
        }
        let piece = std::mem::replace(&mut self.piece, Vec::with_capacity(PIECE));
        self.hand_over(Piece::Bytes(piece))
    }
}

/// The upload's end: pieces read in order until the end; a writer that stopped before the end
/// makes the read fail, so that the request is not completed.
struct PieceReader {
    receiver: Receiver<Piece>,
    piece: Vec<u8>,
    at: usize,
    ended: bool,
}

impl Read for PieceReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.piece.len() {
            if self.ended {
                return Ok(0);
            }
            match self.receiver.recv() {
                Ok(Piece::Bytes(piece)) => {
                    self.piece = piece;
                    self.at = 0;
                }
                Ok(Piece::End) => self.ended = true,
                Err(_) => return Err(io::Error::other("the blob was not written whole")),
            }
        }
        let n = buf.len().min(self.piece.len() - self.at);
        buf[..n].copy_from_slice(&self.piece[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
