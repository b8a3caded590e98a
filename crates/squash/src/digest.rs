//! Content digests (`sha256:<hex>`) and the hashing adapters that every blob byte passes through.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;
use std::sync::mpsc::{channel, sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// A validated `sha256:<64 lowercase hex>` content digest.
///
/// Only sha256 is supported: it is the only algorithm that image tools write in practice, and the
/// only one a layer's `diff_id` uses.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[non_exhaustive]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest::from_raw(Sha256::digest(bytes).into())
    }

    pub(crate) fn from_raw(raw: [u8; 32]) -> Digest {
        Digest { hex: hex::encode(raw) }
    }

    /// Parses a bare 64-character hex string (as used in blob file names).
    pub fn from_hex(hex: &str) -> Option<Digest> {
        let valid = hex.len() == 64
            && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        valid.then(|| Digest { hex: hex.to_string() })
    }

    /// The 64 hex characters, without the algorithm.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// A short form for tables: the algorithm and the first 12 hex characters.
    pub fn short(&self) -> String {
        format!("sha256:{}", &self.hex[..12])
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

/// The reason a string is not a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidDigest(pub String);

impl fmt::Display for InvalidDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not a sha256 digest (expected `sha256:` and 64 lowercase hex digits)",
            self.0
        )
    }
}

impl std::error::Error for InvalidDigest {}

impl FromStr for Digest {
    type Err = InvalidDigest;
    fn from_str(s: &str) -> Result<Digest, InvalidDigest> {
        s.strip_prefix("sha256:")
            .and_then(Digest::from_hex)
            .ok_or_else(|| InvalidDigest(s.to_string()))
    }
}

impl TryFrom<String> for Digest {
    type Error = InvalidDigest;
    fn try_from(s: String) -> Result<Digest, InvalidDigest> {
        s.parse()
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.to_string()
    }
}

/// A reader that hashes and counts every byte that passes through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    hash: ReadHash,
    count: u64,
}

/// What a [`HashingReader`] knows of the digest of its bytes.
enum ReadHash {
    /// Computed as they pass.
    Running(Sha256),
    /// Computed when they were written to a file of squash's own (a spool, hashed as it was
    /// filled): the bytes are counted, not hashed again.
    Known(Digest),
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        HashingReader { inner, hash: ReadHash::Running(Sha256::new()), count: 0 }
    }

    /// A reader of bytes whose digest, once all of them are read, is `digest`: they were hashed
    /// as they were written where they are read from.
    pub(crate) fn known(inner: R, digest: Digest) -> Self {
        HashingReader { inner, hash: ReadHash::Known(digest), count: 0 }
    }

    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// The digest of the bytes read so far (with a known digest: of all of them, which the
    /// caller reads to their end and counts).
    pub(crate) fn digest(&self) -> Digest {
        match &self.hash {
            ReadHash::Running(hasher) => Digest::from_raw(hasher.clone().finalize().into()),
            ReadHash::Known(digest) => digest.clone(),
        }
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let ReadHash::Running(hasher) = &mut self.hash {
            hasher.update(&buf[..n]);
        }
        self.count += n as u64;
        Ok(n)
    }
}

/// Bytes handed to a hashing thread at a time.
const APART_CHUNK: usize = 1 << 20;
/// Chunks in flight to a hashing thread: bounds its memory to a few MiB.
const APART_AHEAD: usize = 4;

/// A running sha256, computed on the caller's thread or on a thread of its own.
///
/// Hashing runs at about 1.4 GB/s a core with the CPU's SHA instructions: on the thread that
/// also assembles and compresses a new layer it is the largest serial cost of the merge. Apart,
/// the bytes are copied into 1 MiB chunks (a few in flight, reused) that a thread hashes while
/// the caller goes on; a stream shorter than one chunk never starts the thread. The digest is the
/// same either way.
pub(crate) struct StreamHasher(Hashing);

enum Hashing {
    Here(Sha256),
    Apart {
        pending: Vec<u8>,
        worker: Option<Worker>,
    },
    /// Bytes whose digest the reader they come from checks: not hashed again.
    Known(Digest),
}

/// A hashing thread: chunks go to it and come back, spent, for reuse.
struct Worker {
    chunks: SyncSender<Vec<u8>>,
    spent: Receiver<Vec<u8>>,
    thread: JoinHandle<Sha256>,
}

impl StreamHasher {
    /// A hasher on the caller's thread, or (`apart`) on a thread of its own once a chunk's worth
    /// of bytes has come.
    pub(crate) fn new(apart: bool) -> StreamHasher {
        StreamHasher(if apart {
            Hashing::Apart { pending: Vec::with_capacity(APART_CHUNK), worker: None }
        } else {
            Hashing::Here(Sha256::new())
        })
    }

    /// For a copy of bytes whose reader checks them against `digest` as they pass (a verifying
    /// reader of a blob of the input, which fails the copy if they differ): hashing them again
    /// would only repeat that check, so nothing is hashed and the digest is `digest`.
    pub(crate) fn known(digest: Digest) -> StreamHasher {
        StreamHasher(Hashing::Known(digest))
    }

    /// Adds `data` to the hash.
    pub(crate) fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let (pending, worker) = match &mut self.0 {
                Hashing::Here(hasher) => return hasher.update(data),
                Hashing::Known(_) => return,
                Hashing::Apart { pending, worker } => (pending, worker),
            };
            let take = (APART_CHUNK - pending.len()).min(data.len());
            pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if pending.len() < APART_CHUNK {
                continue;
            }
            if worker.is_none() {
                *worker = Worker::start();
            }
            match worker {
                Some(worker) => {
                    let next =
                        worker.spent.try_recv().unwrap_or_else(|_| Vec::with_capacity(APART_CHUNK));
                    worker.hand(std::mem::replace(pending, next));
                }
                // No thread to be had (the system is out of them): hash here from now on.
                None => self.0 = Hashing::Here(Sha256::new_with_prefix(&pending)),
            }
        }
    }

    /// The digest of every byte added.
    pub(crate) fn finalize(self) -> Digest {
        let hasher = match self.0 {
            Hashing::Known(digest) => return digest,
            Hashing::Here(hasher) => hasher,
            Hashing::Apart { pending, worker: None } => Sha256::new_with_prefix(&pending),
            Hashing::Apart { pending, worker: Some(worker) } => {
                if !pending.is_empty() {
                    worker.hand(pending);
                }
                let Worker { chunks, thread, .. } = worker;
                drop(chunks);
                // The thread only hashes what it is given: it fails only if sha256 itself did.
                thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            }
        };
        Digest::from_raw(hasher.finalize().into())
    }
}

impl Worker {
    fn start() -> Option<Worker> {
        let (chunks, inbox) = sync_channel::<Vec<u8>>(APART_AHEAD);
        let (give_back, spent) = channel();
        let thread = std::thread::Builder::new()
            .name("sha256".into())
            .spawn(move || {
                let mut hasher = Sha256::new();
                for mut chunk in inbox {
                    hasher.update(&chunk);
                    chunk.clear();
                    // The caller may be done and gone: then the chunk is freed here.
                    let _ = give_back.send(chunk);
                }
                hasher
            })
            .ok()?;
        Some(Worker { chunks, spent, thread })
    }

    fn hand(&self, chunk: Vec<u8>) {
        // The thread stops only when the sender is dropped, which `finalize` does last.
        let _ = self.chunks.send(chunk);
    }
}

/// A writer that hashes and counts every byte written through it.
pub(crate) struct HashingWriter<W> {
    inner: W,
    hasher: StreamHasher,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Hashes with `hasher` (on a thread of its own, for a long stream).
    pub(crate) fn new(inner: W, hasher: StreamHasher) -> Self {
        HashingWriter { inner, hasher, count: 0 }
    }

    pub(crate) fn finish(self) -> (W, Digest, u64) {
        (self.inner, self.hasher.finalize(), self.count)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let d: Digest = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
            .parse()
            .unwrap();
        assert_eq!(d, Digest::of(b"{}"));
        assert_eq!(d.short(), "sha256:44136fa355b3");
        assert!("sha256:44136FA355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
            .parse::<Digest>()
            .is_err());
        assert!("sha512:00".parse::<Digest>().is_err());
        assert!("sha256:".parse::<Digest>().is_err());
    }

    #[test]
    fn hashing_reader_counts_to_eof() {
        let mut r = HashingReader::new(&b"hello world"[..]);
        let mut buf = [0u8; 5];
        r.read_exact(&mut buf).unwrap();
        std::io::copy(&mut r, &mut std::io::sink()).unwrap();
        let (d, n) = (r.digest(), r.count());
        assert_eq!(n, 11);
        assert_eq!(d, Digest::of(b"hello world"));
    }

    /// Hashed apart or here, in pieces that straddle the chunks or in one, a stream's digest is
    /// its sha256; a stream of exactly one chunk, or shorter, included.
    #[test]
    fn a_stream_hashed_apart_has_its_digest() {
        for len in [0, 1, APART_CHUNK - 1, APART_CHUNK, 3 * APART_CHUNK + 12_345] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let expected = Digest::of(&data);
            for apart in [false, true] {
                for piece in [1 << 12, 777_777, APART_CHUNK, len.max(1)] {
                    let mut hasher = StreamHasher::new(apart);
                    for bytes in data.chunks(piece) {
                        hasher.update(bytes);
                    }
                    assert_eq!(hasher.finalize(), expected, "{len} bytes, apart: {apart}");
                }
            }
        }
    }
}
