//! A pigz-style block-parallel gzip writer. The input is cut into fixed 1 MiB blocks; each block
//! is deflated on its own (primed with the previous block's last 32 KiB as a dictionary, so the
//! ratio stays close to a single stream) and ended with a sync flush, so the raw deflate streams
//! concatenate into one valid stream. Block boundaries never depend on the thread count, so
//! neither do the output bytes.

use std::io::{self, Write};

use flate2::{Compress, Compression, FlushCompress, Status};
use rayon::prelude::*;

use crate::budget::Budget;

/// Uncompressed bytes per block.
pub(crate) const BLOCK_SIZE: usize = 1 << 20;
pub(crate) const DICTIONARY: usize = 32 * 1024;

/// The gzip header: no name, mtime 0, OS "unknown", so it is reproducible.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// Compresses blocks in batches on a thread pool and writes them in order.
pub(crate) struct ParallelGzip<W: Write> {
    out: W,
    level: Compression,
    pool: rayon::ThreadPool,
    /// Full blocks waiting for a batch, and the block being filled.
    pending: Vec<Vec<u8>>,
    current: Vec<u8>,
    /// The last 32 KiB before the first pending block.
    dictionary: Vec<u8>,
    crc: crc32fast::Hasher,
    length: u64,
    batch: usize,
    header_written: bool,
}

pub(crate) fn deflate_block(
    level: Compression,
    dictionary: &[u8],
    data: &[u8],
    last: bool,
) -> io::Result<(Vec<u8>, crc32fast::Hasher)> {
    let mut compress = Compress::new(level, false);
    if !dictionary.is_empty() {
        compress.set_dictionary(dictionary).map_err(io::Error::other)?;
    }
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    let flush = if last { FlushCompress::Finish } else { FlushCompress::Sync };
    loop {
        let consumed = compress.total_in() as usize;
        let status =
            compress.compress_vec(&data[consumed..], &mut out, flush).map_err(io::Error::other)?;
        let done = compress.total_in() as usize == data.len()
            && match status {
                Status::StreamEnd => true,
                // A sync flush is complete when it left spare room in the output.
                Status::Ok | Status::BufError => !last && out.len() < out.capacity(),
            };
        if done {
            break;
        }
        out.reserve(out.capacity().max(64 * 1024));
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(data);
    Ok((out, crc))
}

fn tail(data: &[u8]) -> &[u8] {
    &data[data.len().saturating_sub(DICTIONARY)..]
}

impl<W: Write> ParallelGzip<W> {
    /// A writer compressing at `level` (0-9) with `threads` workers (0 = all cores).
    pub(crate) fn new(out: W, level: u32, threads: usize) -> io::Result<ParallelGzip<W>> {
        let threads = if threads == 0 { Budget::cores() } else { threads };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(io::Error::other)?;
        Ok(ParallelGzip {
            out,
            level: Compression::new(level.min(9)),
            pool,
            pending: Vec::new(),
            current: Vec::with_capacity(BLOCK_SIZE),
            dictionary: Vec::new(),
            crc: crc32fast::Hasher::new(),
            length: 0,
            batch: threads * 2,
            header_written: false,
        })
    }

    /// Compresses and writes `blocks` (the last one ending the stream when `last`).
    fn flush_blocks(&mut self, blocks: Vec<Vec<u8>>, last: bool) -> io::Result<()> {
        if !self.header_written {
            self.out.write_all(&HEADER)?;
            self.header_written = true;
        }
        let count = blocks.len();
        let dictionaries: Vec<&[u8]> = std::iter::once(self.dictionary.as_slice())
            .chain(blocks.iter().take(count.saturating_sub(1)).map(|b| tail(b)))
            .collect();
        let level = self.level;
        let compressed: Vec<io::Result<(Vec<u8>, crc32fast::Hasher)>> = self.pool.install(|| {
            blocks
                .par_iter()
                .zip(dictionaries.par_iter())
                .enumerate()
                .map(|(i, (block, dict))| deflate_block(level, dict, block, last && i + 1 == count))
                .collect()
        });
        for result in compressed {
            let (bytes, crc) = result?;
            self.out.write_all(&bytes)?;
            self.crc.combine(&crc);
        }
        if let Some(block) = blocks.last() {
            self.dictionary = tail(block).to_vec();
        }
        Ok(())
    }

    /// Ends the stream and returns the inner writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        let mut blocks = std::mem::take(&mut self.pending);
        blocks.push(std::mem::take(&mut self.current));
        self.flush_blocks(blocks, true)?;
        let crc = self.crc.clone().finalize();
        self.out.write_all(&crc.to_le_bytes())?;
        self.out.write_all(&(self.length as u32).to_le_bytes())?;
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = BLOCK_SIZE - self.current.len();
        let n = room.min(buf.len());
        self.current.extend_from_slice(&buf[..n]);
        self.length += n as u64;
        if self.current.len() == BLOCK_SIZE {
            let full = std::mem::replace(&mut self.current, Vec::with_capacity(BLOCK_SIZE));
            self.pending.push(full);
            if self.pending.len() >= self.batch {
                let blocks = std::mem::take(&mut self.pending);
                self.flush_blocks(blocks, false)?;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn compress(data: &[u8], threads: usize) -> Vec<u8> {
        let mut w = ParallelGzip::new(Vec::new(), 6, threads).unwrap();
        for chunk in data.chunks(77_777) {
            w.write_all(chunk).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn round_trips_and_ignores_thread_count() {
        let mut data = Vec::new();
        let mut x: u32 = 1;
        for i in 0..(3 * BLOCK_SIZE + 12345) {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            data.push(if i % 3 == 0 { (x >> 24) as u8 } else { b"abcdefgh"[i % 8] });
        }
        let one = compress(&data, 1);
        assert_eq!(one, compress(&data, 2));
        assert_eq!(one, compress(&data, 5));
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&one[..]).read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        let mut empty = Vec::new();
        flate2::read::GzDecoder::new(&compress(b"", 3)[..]).read_to_end(&mut empty).unwrap();
        assert!(empty.is_empty());
    }
}
