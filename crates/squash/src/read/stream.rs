//! Opening a layer as a verified tar stream: blob bytes are checked against the descriptor's
//! size and digest, and the uncompressed bytes against the config's diff_id, in the same pass,
//! each on a thread of its own.

use std::io::{self, BufRead, Read};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};

use sha2::{Digest as _, Sha256};

use super::archive::tar_error;
use super::blob::VerifyingReader;
use super::image::{Image, Layer};
use crate::budget::Budget;
use crate::codec::compression::Compression;
use crate::codec::decode::Decoder;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Location, Result};
use crate::layer::tarstream::{drain, fill, TarError, TarReader};

/// A layer being read as a tar stream, through a pipeline of threads a few chunks ahead of the
/// reader: one reads the blob and hashes it (size and digest), one decompresses, one hashes the
/// uncompressed bytes for the diff_id as they pass on to the reader. Each stage has a core of its
/// own when there is one, so verification costs little wall time. Call
/// [`LayerStream::finish`] after the last entry: it drains the stream (what follows the
/// end-of-archive marker included) and returns the verdict on the diff_id, size and digest.
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
/// Compressed bytes per message from the reading thread.
const RAW_CHUNK: usize = 256 << 10;
/// Messages in flight per stage: bounds the memory of a stream to a few MiB.
const AHEAD: usize = 4;

enum Message {
    Data(Vec<u8>),
    Failed(Error),
    Done(Verified),
}

/// Fills a chunk on the consumer's own thread: `Ok(None)` when the chunk holds more data,
/// the stream's verdict once it has ended.
type FillInline = Box<dyn FnMut(&mut Vec<u8>) -> Result<Option<Verified>> + Send>;

/// Where a stream's chunks come from.
enum Feed {
    /// A pipeline stage on a thread of its own, which takes spent chunks back for reuse.
    Thread { rx: Receiver<Message>, back: Sender<Vec<u8>> },
    /// The consumer's thread, reading and decoding as it goes (a thread budget below three).
    Inline(FillInline),
}

/// The receiving end of a stream: yields the chunks in order and keeps the verdict that ends
/// the stream.
struct Chunks {
    feed: Feed,
    chunk: Vec<u8>,
    pos: usize,
    done: Option<Verified>,
}

impl Chunks {
    fn new(rx: Receiver<Message>, back: Sender<Vec<u8>>) -> Chunks {
        Chunks { feed: Feed::Thread { rx, back }, chunk: Vec::new(), pos: 0, done: None }
    }

    fn inline(fill: FillInline) -> Chunks {
        Chunks { feed: Feed::Inline(fill), chunk: Vec::new(), pos: 0, done: None }
    }

    /// Waits for the next chunk; `Ok(false)` at the end of the stream.
    fn next(&mut self) -> io::Result<bool> {
        if self.done.is_some() {
            return Ok(false);
        }
        let (rx, back) = match &mut self.feed {
            Feed::Thread { rx, back } => (rx, back),
            Feed::Inline(fill) => {
                self.pos = 0;
                return match fill(&mut self.chunk) {
                    Ok(None) => Ok(true),
                    Ok(Some(verified)) => {
                        self.done = Some(verified);
                        Ok(false)
                    }
                    Err(error) => Err(error.into_io()),
                };
            }
        };
        match rx.recv() {
            Ok(Message::Data(chunk)) => {
                let spent = std::mem::replace(&mut self.chunk, chunk);
                let _ = back.send(spent);
                self.pos = 0;
                Ok(true)
            }
            Ok(Message::Done(verified)) => {
                self.done = Some(verified);
                Ok(false)
            }
            Ok(Message::Failed(error)) => Err(error.into_io()),
            Err(_) => Err(io::Error::other("layer reading thread stopped")),
        }
    }
}

/// Sends chunks of `size` bytes filled from `source` until it ends, reusing spent chunks.
/// Returns the number of bytes sent, or `None` if the receiver went away.
fn pump(
    source: &mut impl Read,
    size: usize,
    tx: &SyncSender<Message>,
    recycled: &Receiver<Vec<u8>>,
) -> io::Result<Option<u64>> {
    let mut total = 0u64;
    loop {
        let mut chunk = recycled.try_recv().unwrap_or_default();
        let filled = fill(source, &mut chunk, size)?;
        if filled == 0 {
            return Ok(Some(total));
        }
        total += filled as u64;
        if tx.send(Message::Data(chunk)).is_err() {
            return Ok(None);
        }
    }
}

/// Starts a pipeline stage on a thread named `name`: `work` sends data through the sender,
/// reusing the spent chunks that come back on the receiver, and returns the stream's verdict
/// (`None` if its reader went away). Returns the stage's receiving end.
fn spawn_stage(
    name: String,
    location: &Location,
    work: impl FnOnce(&SyncSender<Message>, &Receiver<Vec<u8>>) -> Result<Option<Verified>>
        + Send
        + 'static,
) -> Result<Chunks> {
    let (tx, rx) = sync_channel(AHEAD);
    let (back_tx, recycled) = channel();
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            let message = match work(&tx, &recycled) {
                Ok(Some(verified)) => Message::Done(verified),
                Ok(None) => return,
                Err(error) => Message::Failed(error),
            };
            let _ = tx.send(message);
        })
        .at(|| location.clone())?;
    Ok(Chunks::new(rx, back_tx))
}

/// First stage: reads the blob, verifying size and digest, in chunks of `size`.
fn spawn_reader(
    mut blob: VerifyingReader<Box<dyn Read + Send>>,
    size: usize,
    name: String,
    location: &Location,
) -> Result<Chunks> {
    let thread_location = location.clone();
    spawn_stage(name, location, move |tx, recycled| {
        let Some(count) = pump(&mut blob, size, tx, recycled).at(|| thread_location)? else {
            return Ok(None);
        };
        let blob_digest = blob.finish()?;
        Ok(Some(Verified { blob_digest, uncompressed_size: count }))
    })
}

/// Third stage: hashes the decompressed chunks for the diff_id, which must be `expected`, as they
/// pass on to the reader (who gives the spent ones back to the decompressing stage).
fn spawn_diff_hasher(
    decoded: Chunks,
    expected: Digest,
    name: String,
    location: &Location,
) -> Result<Chunks> {
    // Only a stage on a thread of its own comes before this one; anything else would leave the
    // diff_id unchecked, so it is refused.
    let Feed::Thread { rx: inbox, back } = decoded.feed else {
        return Err(Error::io(
            location.clone(),
            io::Error::other("the diff_id stage needs a stage on a thread of its own before it"),
        ));
    };
    let (tx, rx) = sync_channel(AHEAD);
    let thread_location = location.clone();
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            let mut hasher = Sha256::new();
            for message in inbox {
                let message = match message {
                    Message::Data(chunk) => {
                        hasher.update(&chunk);
                        Message::Data(chunk)
                    }
                    Message::Done(verified) => {
                        let actual = Digest::from_raw(hasher.finalize().into());
                        let _ = tx.send(match diff_mismatch(&thread_location, expected, actual) {
                            None => Message::Done(verified),
                            Some(error) => Message::Failed(error),
                        });
                        return;
                    }
                    failed @ Message::Failed(_) => failed,
                };
                if tx.send(message).is_err() {
                    return;
                }
            }
        })
        .at(|| location.clone())?;
    Ok(Chunks::new(rx, back))
}

/// The error of a stream whose diff_id hashed to `actual`, if that is not `expected`.
fn diff_mismatch(location: &Location, expected: Digest, actual: Digest) -> Option<Error> {
    (actual != expected).then(|| Error::DigestMismatch {
        location: location.clone().within("diff_id (uncompressed tar)"),
        expected,
        actual,
    })
}

/// Second stage: decompresses the first stage's chunks.
fn spawn_decoder(
    compression: Compression,
    raw: Chunks,
    name: String,
    location: &Location,
) -> Result<Chunks> {
    let mut decoder = Decoder::new(compression, CompressedReader(raw)).at(|| location.clone())?;
    let thread_location = location.clone();
    spawn_stage(name, location, move |tx, recycled| {
        let Some(uncompressed_size) =
            pump(&mut decoder, CHUNK, tx, recycled).at(|| thread_location.clone())?
        else {
            return Ok(None);
        };
        // Drain what follows the compressed stream, up to the first stage's verdict.
        let mut raw = decoder.into_inner();
        drain(&mut raw).at(|| thread_location.clone())?;
        match raw.0.done.take() {
            Some(v) => Ok(Some(Verified { blob_digest: v.blob_digest, uncompressed_size })),
            None => {
                Err(Error::io(thread_location, io::Error::other("blob ended without a verdict")))
            }
        }
    })
}

/// The whole pipeline on the consumer's thread: the blob is read and verified (size and
/// digest), decompressed, and handed out in chunks, with the same checks and errors as the
/// threaded stages.
fn inline_stream(
    blob: VerifyingReader<Box<dyn Read + Send>>,
    compression: Compression,
    location: &Location,
) -> Result<Chunks> {
    let location = location.clone();
    let mut count = 0u64;
    // A plain tar goes through the same decoder, which passes it on; reads of a chunk's size
    // mostly bypass the buffer.
    let mut decoder = Some(
        Decoder::new(compression, io::BufReader::with_capacity(RAW_CHUNK, blob))
            .at(|| location.clone())?,
    );
    Ok(Chunks::inline(Box::new(move |chunk| {
        let Some(reader) = decoder.as_mut() else {
            return Err(Error::io(location.clone(), io::Error::other("read past the end")));
        };
        let n = fill(reader, chunk, CHUNK).at(|| location.clone())?;
        if n > 0 {
            count += n as u64;
            return Ok(None);
        }
        // Drain what follows the compressed stream, then the blob's verdict.
        let Some(reader) = decoder.take() else { return Ok(None) };
        let mut raw = reader.into_inner();
        drain(&mut raw).at(|| location.clone())?;
        let blob_digest = raw.into_inner().finish()?;
        Ok(Some(Verified { blob_digest, uncompressed_size: count }))
    })))
}

/// `Read::read` for a reader whose `BufRead` side does the work.
fn read_buffered(reader: &mut impl BufRead, buf: &mut [u8]) -> io::Result<usize> {
    let available = reader.fill_buf()?;
    let n = buf.len().min(available.len());
    buf[..n].copy_from_slice(&available[..n]);
    reader.consume(n);
    Ok(n)
}

/// The compressed chunks as a buffered reader, for the decoder.
struct CompressedReader(Chunks);

impl Read for CompressedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_buffered(self, buf)
    }
}

impl BufRead for CompressedReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.0.pos == self.0.chunk.len() {
            if !self.0.next()? {
                return Ok(&[]);
            }
        }
        Ok(&self.0.chunk[self.0.pos..])
    }
    fn consume(&mut self, n: usize) {
        self.0.pos += n;
    }
}

/// How the diff_id of a layer is checked.
enum DiffCheck {
    /// Not at all: a second read of a blob whose first read checked it.
    None,
    /// The blob is a plain tar: its digest is the diff_id.
    BlobDigest(Digest),
    /// The uncompressed bytes are hashed as they arrive (on the reader's thread: a pipelined
    /// stream hashes them in a stage of its own and checks nothing here).
    Hash(Box<Sha256>, Digest),
}

/// The reading end of a layer's pipeline: the uncompressed tar, hashed for the diff_id as chunks
/// arrive.
pub(crate) struct ReadAhead {
    chunks: Chunks,
    diff: DiffCheck,
    location: Location,
}

impl ReadAhead {
    /// Checks the diff_id once the stream has ended.
    fn verdict(&mut self) -> io::Result<()> {
        let Some(verified) = &self.chunks.done else { return Ok(()) };
        let (expected, actual) = match std::mem::replace(&mut self.diff, DiffCheck::None) {
            DiffCheck::None => return Ok(()),
            DiffCheck::BlobDigest(expected) => (expected, verified.blob_digest.clone()),
            DiffCheck::Hash(hasher, expected) => {
                (expected, Digest::from_raw(hasher.finalize().into()))
            }
        };
        diff_mismatch(&self.location, expected, actual).map_or(Ok(()), |e| Err(e.into_io()))
    }
}

impl BufRead for ReadAhead {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.chunks.pos == self.chunks.chunk.len() {
            if !self.chunks.next()? {
                self.verdict()?;
                return Ok(&[]);
            }
            if let DiffCheck::Hash(hasher, _) = &mut self.diff {
                hasher.update(&self.chunks.chunk);
            }
        }
        Ok(&self.chunks.chunk[self.chunks.pos..])
    }
    fn consume(&mut self, n: usize) {
        self.chunks.pos += n;
    }
}

impl Read for ReadAhead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_buffered(self, buf)
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

impl LayerStream {
    /// Opens a layer, its stages on threads of their own or not as `budget` says.
    pub(crate) fn open_within(
        image: &Image,
        layer: &Layer,
        check: Check,
        budget: Budget,
    ) -> Result<LayerStream> {
        let location = image.layer_location(layer);
        let blob = match &check {
            Check::Full => image.open_layer_blob(layer)?,
            Check::BlobOnly(digest) => {
                let mut blob = layer.blob.clone();
                blob.digest = Some(digest.clone());
                image.store.open_blob(&blob, location.clone())?
            }
        };
        let diff = match (&check, layer.compression) {
            (Check::BlobOnly(_), _) => DiffCheck::None,
            (Check::Full, Compression::None) => DiffCheck::BlobDigest(layer.diff_id.clone()),
            (Check::Full, _) => DiffCheck::Hash(Box::new(Sha256::new()), layer.diff_id.clone()),
        };
        let (chunks, diff) = if !budget.pipelined() {
            (inline_stream(blob, layer.compression, &location)?, diff)
        } else if layer.compression == Compression::None {
            (spawn_reader(blob, CHUNK, format!("read layer {}", layer.index), &location)?, diff)
        } else {
            let raw =
                spawn_reader(blob, RAW_CHUNK, format!("read layer {}", layer.index), &location)?;
            let decoded = spawn_decoder(
                layer.compression,
                raw,
                format!("decode layer {}", layer.index),
                &location,
            )?;
            match diff {
                // Hashed in a stage of its own: nothing is left to check at the reader.
                DiffCheck::Hash(_, expected) => {
                    let name = format!("hash layer {}", layer.index);
                    (spawn_diff_hasher(decoded, expected, name, &location)?, DiffCheck::None)
                }
                other => (decoded, other),
            }
        };
        let reader = ReadAhead { chunks, diff, location: location.clone() };
        Ok(LayerStream { tar: TarReader::new(reader), location })
    }

    /// Converts a tar-level error into a located [`Error`].
    pub(crate) fn error(&self, e: TarError) -> Error {
        tar_error(self.location.clone(), e)
    }

    pub(crate) fn finish(self) -> Result<Verified> {
        let location = self.location;
        let mut reader = self.tar.into_inner();
        drain(&mut reader).at(|| location.clone())?;
        reader.chunks.done.ok_or_else(|| {
            Error::io(location, io::Error::other("layer stream ended without a verdict"))
        })
    }
}
