//! Opening a layer as a verified tar stream: blob bytes are checked against the descriptor's
//! size and digest, and the uncompressed bytes against the config's diff_id, in the same pass,
//! each on a thread of its own.

use std::io::{self, BufRead, Read};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};

use sha2::{Digest as _, Sha256};

use crate::digest::Digest;
use crate::error::{Error, IoContext, Location, Result};
use crate::layer::compression::{Compression, Decoder};
use crate::layer::index::EntryFilter;
use crate::layer::tarstream::{drain, TarReader};
use crate::read::archive::tar_error;
use crate::read::blob::VerifyingReader;
use crate::read::{Image, Layer};

/// A layer being read as a tar stream, through a pipeline of threads a few chunks ahead of the
/// reader: one reads the blob and hashes it (size and digest), one decompresses, and the reader
/// itself hashes the uncompressed bytes for the diff_id as chunks arrive. Each stage has a core
/// of its own when there is one, so verification costs little wall time. Call
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
fn pump(source: &mut impl Read, size: usize, tx: &SyncSender<Message>, recycled: &Receiver<Vec<u8>>) -> io::Result<Option<u64>> {
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
    work: impl FnOnce(&SyncSender<Message>, &Receiver<Vec<u8>>) -> Result<Option<Verified>> + Send + 'static,
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
fn spawn_reader(mut blob: VerifyingReader<Box<dyn Read + Send>>, size: usize, name: String, location: &Location) -> Result<Chunks> {
    let thread_location = location.clone();
    spawn_stage(name, location, move |tx, recycled| {
        let Some(count) = pump(&mut blob, size, tx, recycled).at(|| thread_location)? else { return Ok(None) };
        let blob_digest = blob.finish()?;
        Ok(Some(Verified { blob_digest, uncompressed_size: count }))
    })
}

/// Second stage: decompresses the first stage's chunks.
fn spawn_decoder(compression: Compression, raw: Chunks, name: String, location: &Location) -> Result<Chunks> {
    let mut decoder = Decoder::new(compression, CompressedReader(raw)).at(|| location.clone())?;
    let thread_location = location.clone();
    spawn_stage(name, location, move |tx, recycled| {
        let Some(uncompressed_size) = pump(&mut decoder, CHUNK, tx, recycled).at(|| thread_location.clone())? else { return Ok(None) };
        // Drain what follows the compressed stream, up to the first stage's verdict.
        let mut raw = decoder.into_inner();
        drain(&mut raw).at(|| thread_location.clone())?;
        match raw.0.done.take() {
            Some(v) => Ok(Some(Verified { blob_digest: v.blob_digest, uncompressed_size })),
            None => Err(Error::io(thread_location, io::Error::other("blob ended without a verdict"))),
        }
    })
}

/// Fills `chunk` with up to `size` bytes of `source`; the number read (0 at its end).
fn fill(source: &mut impl Read, chunk: &mut Vec<u8>, size: usize) -> io::Result<usize> {
    chunk.resize(size, 0);
    let mut filled = 0;
    while filled < size {
        match source.read(&mut chunk[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    chunk.truncate(filled);
    Ok(filled)
}

/// The whole pipeline on the consumer's thread: the blob is read and verified (size and
/// digest), decompressed, and handed out in chunks, with the same checks and errors as the
/// threaded stages.
fn inline_stream(blob: VerifyingReader<Box<dyn Read + Send>>, compression: Compression, location: &Location) -> Result<Chunks> {
    let location = location.clone();
    let mut count = 0u64;
    // A plain tar goes through the same decoder, which passes it on; reads of a chunk's size
    // mostly bypass the buffer.
    let mut decoder = Some(Decoder::new(compression, io::BufReader::with_capacity(RAW_CHUNK, blob)).at(|| location.clone())?);
    Ok(Chunks::inline(Box::new(move |chunk| {
        let Some(reader) = decoder.as_mut() else { return Err(Error::io(location.clone(), io::Error::other("read past the end"))) };
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
    /// The uncompressed bytes are hashed as they arrive.
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
            DiffCheck::Hash(hasher, expected) => (expected, Digest::from_raw(hasher.finalize().into())),
        };
        if actual == expected {
            return Ok(());
        }
        Err(Error::DigestMismatch { location: self.location.clone().within("diff_id (uncompressed tar)"), expected, actual }.into_io())
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

/// How reading and compressing may use threads, from a budget of `threads` (`--threads`; 0:
/// all cores, with no cap). Output bytes never depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Budget {
    threads: usize,
}

impl Budget {
    /// A budget of `threads` threads in all; 0 for all cores.
    pub(crate) fn new(threads: usize) -> Budget {
        Budget { threads }
    }

    /// This machine's cores.
    pub(crate) fn cores() -> usize {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    }

    /// Whether a layer stream reads and decodes on threads of its own (two, besides its
    /// consumer), or on the consumer's thread (with a budget of one or two threads).
    pub(crate) fn pipelined(self) -> bool {
        self.threads == 0 || self.threads >= 3
    }

    /// How many layers are indexed at once.
    pub(crate) fn parallel_layers(self) -> usize {
        match self.threads {
            0 => Self::cores(),
            n if n >= 3 => n / 3,
            n => n,
        }
    }

    /// Compression workers beside one layer stream (0: all cores).
    pub(crate) fn compressors(self) -> usize {
        match self.threads {
            0 => 0,
            n if n >= 3 => n - 2,
            n => n,
        }
    }

    /// Runs `work` on at most [`Budget::parallel_layers`] threads.
    pub(crate) fn run<T: Send>(self, work: impl FnOnce() -> T + Send) -> Result<T> {
        if self.threads == 0 {
            return Ok(work());
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.parallel_layers())
            .thread_name(|i| format!("index {i}"))
            .build()
            .map_err(|e| Error::io(Location::default(), io::Error::other(e)))?;
        Ok(pool.install(work))
    }
}

impl LayerStream {
    /// Opens a layer, its stages on threads of their own or not as `budget` says.
    pub(crate) fn open_within(image: &Image, layer: &Layer, check: Check, budget: Budget) -> Result<LayerStream> {
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
        let chunks = if !budget.pipelined() {
            inline_stream(blob, layer.compression, &location)?
        } else if layer.compression == Compression::None {
            spawn_reader(blob, CHUNK, format!("read layer {}", layer.index), &location)?
        } else {
            let raw = spawn_reader(blob, RAW_CHUNK, format!("read layer {}", layer.index), &location)?;
            spawn_decoder(layer.compression, raw, format!("decode layer {}", layer.index), &location)?
        };
        let reader = ReadAhead { chunks, diff, location: location.clone() };
        Ok(LayerStream { tar: TarReader::new(reader), location })
    }

    /// Converts a tar-level error into a located [`Error`].
    pub(crate) fn error(&self, e: crate::layer::tarstream::TarError) -> Error {
        tar_error(self.location.clone(), e)
    }

    pub(crate) fn finish(self) -> Result<Verified> {
        let location = self.location;
        let mut reader = self.tar.into_inner();
        drain(&mut reader).at(|| location.clone())?;
        reader.chunks.done.ok_or_else(|| Error::io(location, io::Error::other("layer stream ended without a verdict")))
    }
}

/// What indexing shows each header group to, with the stream (whose data for that entry it may
/// read) before the entry is indexed.
pub(crate) type EntryVisitor<'a> = dyn FnMut(&crate::layer::tarstream::HeaderGroup, &mut LayerStream) -> Result<()> + 'a;

impl Image {
    /// Reads one layer's headers (skipping file contents) and verifies its digests.
    pub fn index_layer(&self, layer_index: usize) -> Result<crate::layer::index::LayerIndex> {
        self.index_layer_within(layer_index, Budget::new(0), None, None)
    }

    /// Indexes layer `layer_index` as [`Image::index_layer`] does, showing `visit` each header
    /// group (with the stream, whose data for that entry it may read) before it is indexed.
    pub(crate) fn index_layer_visiting(
        &self,
        layer_index: usize,
        budget: Budget,
        visit: &mut EntryVisitor<'_>,
    ) -> Result<crate::layer::index::LayerIndex> {
        self.index_layer_within(layer_index, budget, None, Some(visit))
    }

    fn index_layer_within(
        &self,
        layer_index: usize,
        budget: Budget,
        filter: Option<&dyn EntryFilter>,
        mut visit: Option<&mut EntryVisitor<'_>>,
    ) -> Result<crate::layer::index::LayerIndex> {
        use crate::layer::index::{IndexedEntry, LayerIndex};
        let layer = self.layers.get(layer_index).ok_or_else(|| Error::InvalidRange { reason: format!("no layer {layer_index}") })?;
        let mut stream = LayerStream::open_within(self, layer, Check::Full, budget)?;
        let mut entries = Vec::new();
        let mut keep = filter.map(|f| f.for_layer());
        loop {
            let group = match stream.tar.next_group() {
                Ok(Some(group)) => group,
                Ok(None) => break,
                Err(e) => return Err(stream.error(e)),
            };
            if let Some(visit) = visit.as_mut() {
                visit(&group, &mut stream)?;
            }
            let mut entry = IndexedEntry::from_group(group, &stream.location)?;
            if keep.as_mut().is_none_or(|keep| keep(&mut entry)) {
                entries.push(entry);
            }
        }
        entries.shrink_to_fit();
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

    /// Reads again the header bytes of `wanted` (position in `indexes`, entry), which their
    /// indexes did not keep: from what a one-time read `kept`, when it kept them all for that
    /// layer, otherwise from the layer (its blob digest checked again), which is counted in
    /// `rereads`.
    pub(crate) fn restore_headers(
        &self,
        indexes: &mut [crate::layer::index::LayerIndex],
        wanted: &std::collections::BTreeSet<(usize, usize)>,
        budget: Budget,
        kept: Option<&[crate::read::once::Kept]>,
        rereads: &mut Vec<crate::plan::Reread>,
    ) -> Result<()> {
        for (position, index) in indexes.iter_mut().enumerate() {
            let entries: std::collections::BTreeSet<usize> =
                wanted.range((position, 0)..=(position, usize::MAX)).map(|&(_, e)| e).collect();
            let Some(&last) = entries.last() else { continue };
            if let Some(kept) = kept.and_then(|k| k.get(position)).filter(|k| entries.iter().all(|&e| k.has(e))) {
                let mut headers = Vec::with_capacity(entries.len());
                {
                    let mut reader = kept.reader(index);
                    for &e in &entries {
                        let (header, _) = reader.entry(e).map_err(|err| Error::io(index.location.clone(), err))?;
                        headers.push((e, header));
                    }
                }
                for (e, header) in headers {
                    index.entries[e].raw = Some(header.into_boxed_slice());
                }
                continue;
            }
            rereads.push(crate::plan::Reread::new(index.layer, "headers of files whose names a hard link outlives"));
            let layer = self.layers.get(index.layer).ok_or_else(|| Error::InvalidRange { reason: format!("no layer {}", index.layer) })?;
            let mut stream = LayerStream::open_within(self, layer, Check::BlobOnly(index.blob_digest.clone()), budget)?;
            for i in 0..=last {
                let group = match stream.tar.next_group() {
                    Ok(Some(group)) => group,
                    Ok(None) => return Err(Error::malformed_tar(stream.location.clone(), "layer changed while it was being read")),
                    Err(e) => return Err(stream.error(e)),
                };
                if entries.contains(&i) {
                    index.entries[i].raw = Some(group.raw.into_boxed_slice());
                }
            }
            stream.finish()?;
        }
        Ok(())
    }

    /// Indexes several layers in parallel, on all cores; the result keeps the order of `layers`.
    pub fn index_layers(&self, layers: impl IntoIterator<Item = usize>) -> Result<Vec<crate::layer::index::LayerIndex>> {
        self.index_layers_with_threads(layers, 0)
    }

    /// [`Image::index_layers`] on at most `threads` threads in all (0: all cores): with one or
    /// two, each layer is read and decoded on the thread that indexes it; from three on, a
    /// third of them index layers at once, each with a reading and a decoding thread.
    pub fn index_layers_with_threads(
        &self,
        layers: impl IntoIterator<Item = usize>,
        threads: usize,
    ) -> Result<Vec<crate::layer::index::LayerIndex>> {
        self.index_layers_reporting(layers, threads, &crate::write::NoProgress)
    }

    /// [`Image::index_layers_with_threads`], telling `progress` what it does
    /// ([`Event::Indexing`](crate::Event::Indexing), then [`Event::Indexed`](crate::Event::Indexed)
    /// for each layer as it is done).
    pub(crate) fn index_layers_reporting(
        &self,
        layers: impl IntoIterator<Item = usize>,
        threads: usize,
        progress: &dyn crate::write::Progress,
    ) -> Result<Vec<crate::layer::index::LayerIndex>> {
        self.index_layers_filtered(layers, threads, progress, None)
    }

    /// [`Image::index_layers_reporting`], keeping in each index only what `filter` chooses (every
    /// entry is still read and the layer verified in full).
    pub(crate) fn index_layers_filtered(
        &self,
        layers: impl IntoIterator<Item = usize>,
        threads: usize,
        progress: &dyn crate::write::Progress,
        filter: Option<&dyn EntryFilter>,
    ) -> Result<Vec<crate::layer::index::LayerIndex>> {
        use crate::write::Event;
        use rayon::prelude::*;
        let budget = Budget::new(threads);
        let wanted: Vec<usize> = layers.into_iter().collect();
        let size = |i: usize| self.layers.get(i).map_or(0, |l| l.blob.size);
        if !wanted.is_empty() {
            progress.event(&Event::Indexing { layers: wanted.len(), bytes: wanted.iter().map(|&i| size(i)).sum() });
        }
        budget.run(|| {
            wanted
                .par_iter()
                .map(|&i| {
                    let index = self.index_layer_within(i, budget, filter, None)?;
                    progress.event(&Event::Indexed { layer: i, bytes: size(i) });
                    Ok(index)
                })
                .collect()
        })?
    }
}

impl Image {
    /// Decodes the given layers (in parallel, on at most `threads` threads; 0: all cores) and
    /// checks each blob's size and sha256 and each layer's diff_id, writing nothing.
    pub fn verify_layers(&self, layers: impl IntoIterator<Item = usize>, threads: usize) -> Result<()> {
        use rayon::prelude::*;
        let budget = Budget::new(threads);
        let wanted: Vec<usize> = layers.into_iter().collect();
        budget.run(|| wanted.par_iter().try_for_each(|&i| self.export_layer_within(i, &mut io::sink(), budget)))?
    }

    /// Streams layer `layer_index` as an uncompressed tar into `out`, verifying its digest, size
    /// and diff_id as it goes (an export of one layer).
    pub fn write_layer_tar(&self, layer_index: usize, out: &mut dyn std::io::Write) -> Result<()> {
        self.export_layer_within(layer_index, out, Budget::new(0))
    }

    fn export_layer_within(&self, layer_index: usize, out: &mut dyn std::io::Write, budget: Budget) -> Result<()> {
        let layer = self.layers.get(layer_index).ok_or_else(|| Error::InvalidRange { reason: format!("no layer {layer_index}") })?;
        let mut stream = LayerStream::open_within(self, layer, Check::Full, budget)?;
        let location = stream.location.clone();
        io::copy(stream.tar.get_mut(), out).at(|| location.clone())?;
        stream.finish()?;
        Ok(())
    }
}
