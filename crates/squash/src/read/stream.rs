//! Opening a layer as a verified tar stream: blob bytes are checked against the descriptor's
//! size and digest, and the uncompressed bytes against the config's diff_id, in the same pass.

use std::io::{self, BufReader, Read};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};

use sha2::{Digest as _, Sha256};

use crate::digest::Digest;
use crate::error::{Error, IoContext, Location, Result};
use crate::layer::compression::{Compression, Decoder};
use crate::layer::tarstream::TarReader;
use crate::read::archive::tar_error;
use crate::read::blob::VerifyingReader;
use crate::read::{Image, Layer};

/// A layer being read as a tar stream. Decompression and the diff_id hash run on a thread of
/// their own, a few chunks ahead of the reader, so that decoding overlaps with merging and
/// compressing. Call [`LayerStream::finish`] after the last entry: it waits for the rest of the
/// stream (what follows the end-of-archive marker included) and for the verdict on the diff_id,
/// size and digest.
pub(crate) struct LayerStream {
    pub tar: TarReader<ReadAhead>,
    pub location: Location,
}

/// What reading a layer to its end proved about it.
#[derive(Debug, Clone)]
pub(crate) struct Verified {
    pub blob_digest: Digest,
    pub uncompressed_size: u64,
}

/// Uncompressed bytes per message from the decoding thread.
const CHUNK: usize = 1 << 20;
/// Messages in flight: bounds the memory of a stream to a few MiB.
const AHEAD: usize = 4;

enum Message {
    Data(Vec<u8>),
    Failed(Error),
    Done(Verified),
}

/// The reading end of a decoding thread.
pub(crate) struct ReadAhead {
    rx: Receiver<Message>,
    /// Returns spent chunks to the decoding thread, which reuses them.
    back: Sender<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
    done: Option<Verified>,
}

impl Read for ReadAhead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            if self.done.is_some() {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Message::Data(chunk)) => {
                    let spent = std::mem::replace(&mut self.chunk, chunk);
                    let _ = self.back.send(spent);
                    self.pos = 0;
                }
                Ok(Message::Done(verified)) => self.done = Some(verified),
                Ok(Message::Failed(error)) => return Err(error.into_io()),
                Err(_) => return Err(io::Error::other("layer decoding thread stopped")),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// How much a read of a layer verifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Check {
    /// The blob's size and digest, and the diff_id of the uncompressed stream.
    Full,
    /// The blob's size and this digest only: for a second read of a blob whose first read
    /// verified everything. The same compressed bytes decode to the same tar, so the diff_id
    /// holds without hashing the uncompressed stream again.
    BlobOnly(Digest),
}

/// Decodes the whole layer, sending chunks, then checks the diff_id, size and digest.
fn decode(
    decoder: Decoder<BufReader<VerifyingReader<Box<dyn Read + Send>>>>,
    mut diff_hasher: Option<Sha256>,
    diff_id: &Digest,
    location: &Location,
    tx: &SyncSender<Message>,
    recycled: &Receiver<Vec<u8>>,
) -> Result<Option<Verified>> {
    let mut decoder = decoder;
    let mut uncompressed_size = 0u64;
    loop {
        let mut chunk = match recycled.try_recv() {
            Ok(mut spent) => {
                spent.resize(CHUNK, 0);
                spent
            }
            Err(_) => vec![0u8; CHUNK],
        };
        let mut filled = 0;
        while filled < CHUNK {
            match decoder.read(&mut chunk[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(location.clone(), e)),
            }
        }
        if filled == 0 {
            break;
        }
        chunk.truncate(filled);
        uncompressed_size += filled as u64;
        if let Some(hasher) = &mut diff_hasher {
            hasher.update(&chunk);
        }
        if tx.send(Message::Data(chunk)).is_err() {
            // The reader went away: nothing to report to.
            return Ok(None);
        }
    }
    let mut buffered = decoder.into_inner();
    io::copy(&mut buffered, &mut io::sink()).at(|| location.clone())?;
    let blob_digest = buffered.into_inner().finish()?;
    // A plain tar's blob digest is its diff_id: one hash serves both.
    let actual = diff_hasher.map(|h| Digest::from_raw(h.finalize().into()));
    if let Some(actual) = actual {
        if actual != *diff_id {
            return Err(Error::DigestMismatch {
                location: location.clone().part("diff_id (uncompressed tar)"),
                expected: diff_id.clone(),
                actual,
            });
        }
    }
    Ok(Some(Verified { blob_digest, uncompressed_size }))
}

impl LayerStream {
    pub(crate) fn open(image: &Image, layer: &Layer, check: Check) -> Result<LayerStream> {
        let location = image.layer_location(layer);
        let blob = match &check {
            Check::Full => image.open_layer_blob(layer)?,
            Check::BlobOnly(digest) => {
                let mut blob = layer.blob.clone();
                blob.digest = Some(digest.clone());
                image.store.open_blob(&blob, location.clone())?
            }
        };
        let buffered = BufReader::with_capacity(256 * 1024, blob);
        let decoder = Decoder::new(layer.compression, buffered).at(|| location.clone())?;
        let diff_hasher = match (&check, layer.compression) {
            (Check::Full, Compression::None) => {
                // The blob digest is checked against the diff_id instead.
                None
            }
            (Check::Full, _) => Some(Sha256::new()),
            (Check::BlobOnly(_), _) => None,
        };
        let plain_full = check == Check::Full && layer.compression == Compression::None;
        let (tx, rx) = sync_channel(AHEAD);
        let (back_tx, back_rx) = channel();
        let diff_id = layer.diff_id.clone();
        let thread_location = location.clone();
        std::thread::Builder::new()
            .name(format!("decode layer {}", layer.index))
            .spawn(move || {
                let message = match decode(decoder, diff_hasher, &diff_id, &thread_location, &tx, &back_rx) {
                    Ok(Some(verified)) if plain_full && verified.blob_digest != diff_id => Message::Failed(Error::DigestMismatch {
                        location: thread_location.part("diff_id (uncompressed tar)"),
                        expected: diff_id,
                        actual: verified.blob_digest,
                    }),
                    Ok(Some(verified)) => Message::Done(verified),
                    Ok(None) => return,
                    Err(error) => Message::Failed(error),
                };
                let _ = tx.send(message);
            })
            .at(|| location.clone())?;
        let reader = ReadAhead { rx, back: back_tx, chunk: Vec::new(), pos: 0, done: None };
        Ok(LayerStream { tar: TarReader::new(reader), location })
    }

    /// Converts a tar-level error into a located [`Error`].
    pub(crate) fn error(&self, e: crate::layer::tarstream::TarError) -> Error {
        tar_error(self.location.clone(), e)
    }

    pub(crate) fn finish(self) -> Result<Verified> {
        let location = self.location;
        let mut reader = self.tar.into_inner();
        io::copy(&mut reader, &mut io::sink()).at(|| location.clone())?;
        reader.done.ok_or_else(|| Error::io(location, io::Error::other("layer stream ended without a verdict")))
    }
}

impl Image {
    /// Reads one layer's headers (skipping file contents) and verifies its digests.
    pub fn index_layer(&self, layer_index: usize) -> Result<crate::layer::index::LayerIndex> {
        use crate::layer::index::{IndexedEntry, LayerIndex};
        let layer = self.layers.get(layer_index).ok_or_else(|| Error::InvalidRange { reason: format!("no layer {layer_index}") })?;
        let mut stream = LayerStream::open(self, layer, Check::Full)?;
        let mut entries = Vec::new();
        loop {
            let group = match stream.tar.next_group() {
                Ok(Some(group)) => group,
                Ok(None) => break,
                Err(e) => return Err(stream.error(e)),
            };
            entries.push(IndexedEntry::from_group(group, &stream.location)?);
        }
        let location = stream.location.clone();
        let verified = stream.finish()?;
        Ok(LayerIndex {
            layer: layer_index,
            entries,
            blob_digest: verified.blob_digest,
            uncompressed_size: verified.uncompressed_size,
            compressed_size: layer.blob.size,
            location,
        })
    }

    /// Indexes several layers in parallel; the result keeps the order of `layers`.
    pub fn index_layers(&self, layers: impl IntoIterator<Item = usize>) -> Result<Vec<crate::layer::index::LayerIndex>> {
        use rayon::prelude::*;
        let wanted: Vec<usize> = layers.into_iter().collect();
        wanted.par_iter().map(|&i| self.index_layer(i)).collect()
    }
}

impl Image {
    /// Streams layer `layer_index` as an uncompressed tar into `out`, verifying its digest, size
    /// and diff_id as it goes (an export of one layer).
    pub fn write_layer_tar(&self, layer_index: usize, out: &mut dyn std::io::Write) -> Result<()> {
        let layer = self.layers.get(layer_index).ok_or_else(|| Error::InvalidRange { reason: format!("no layer {layer_index}") })?;
        let mut stream = LayerStream::open(self, layer, Check::Full)?;
        let location = stream.location.clone();
        io::copy(stream.tar.get_mut(), out).at(|| location.clone())?;
        stream.finish()?;
        Ok(())
    }
}
