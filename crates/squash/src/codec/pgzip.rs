//! A block-parallel gzip writer. The input is cut into fixed 1 MiB blocks; each block is
//! compressed on its own into a complete gzip member, and the members are written in order: a
//! multi-member gzip file (RFC 1952 §2.2), which every gzip reader decodes as one stream. Block
//! boundaries never depend on the thread count, so neither do the output bytes. With the
//! `libdeflate` feature the members are libdeflate's; without it, zlib-rs's (slower, other
//! bytes, the same format). A block whose bytes look random is stored, not compressed
//! ([`looks_random`]).

use std::io::{self, Write};

use rayon::prelude::*;

use crate::budget::{Budget, Pool};

/// Uncompressed bytes per block, and so per gzip member.
pub(crate) const BLOCK_SIZE: usize = 1 << 20;

/// How far above a uniform spread a block's byte counts may be and still look random: the sum
/// of their squares at most 1.001 times what 256 equal counts give (a uniform random 1 MiB block
/// is about 1.0002 times). Deflate gains on such a block only from repeats within its 32 KiB
/// window, and spends as long looking for them as on any other block (libdeflate's level 6 ran at
/// 80 MB/s on random bytes, where storing them costs a copy and a CRC). Measured against level
/// 6 on every block: on the bench's many-layer new layer (512 MB, 397 of its blocks stored) the
/// stored blocks cost 0.0009% in size; on a tar of a Debian system's `/usr` (1.7 GB of
/// libraries, programs, documentation and locales) no block looked random; already-compressed
/// files (archives, images) look random only where their bytes are as evenly spread.
const RANDOM_SPREAD: (u128, u128) = (1001, 1000);

/// Whether `block`'s bytes look random (see [`RANDOM_SPREAD`]): it is then stored. Counts only,
/// in integers, so the verdict is the same on every machine.
pub(crate) fn looks_random(block: &[u8]) -> bool {
    // Four tables, so that runs of one byte do not wait on the same counter.
    let mut counts = [[0u32; 256]; 4];
    let mut quads = block.chunks_exact(4);
    for q in &mut quads {
        for (table, &b) in counts.iter_mut().zip(q) {
            table[b as usize] += 1;
        }
    }
    for &b in quads.remainder() {
        counts[0][b as usize] += 1;
    }
    let squares: u128 =
        (0..256).map(|b| u128::from(counts.iter().map(|t| t[b]).sum::<u32>()).pow(2)).sum();
    let n = block.len() as u128;
    n > 0 && squares * 256 * RANDOM_SPREAD.1 <= n * n * RANDOM_SPREAD.0
}

/// Compresses whole blocks into gzip members at one gzip level (0-9); a block that looks random
/// is stored (level 0).
#[cfg(feature = "libdeflate")]
pub(crate) struct MemberCompressor {
    level: libdeflater::Compressor,
    stored: libdeflater::Compressor,
}

#[cfg(feature = "libdeflate")]
impl MemberCompressor {
    pub(crate) fn new(level: u32) -> MemberCompressor {
        // libdeflate's levels share gzip's scale up to 9 (they go on to 12).
        let level = libdeflater::CompressionLvl::new(level.min(9) as i32).unwrap_or_default();
        let none = libdeflater::CompressionLvl::new(0).unwrap_or_default();
        MemberCompressor {
            level: libdeflater::Compressor::new(level),
            stored: libdeflater::Compressor::new(none),
        }
    }

    /// `data` as one gzip member: libdeflate's header (mtime 0, OS unknown), its deflate
    /// stream, and the CRC-32 and length trailer.
    pub(crate) fn member(&mut self, data: &[u8]) -> io::Result<Vec<u8>> {
        let compressor = if looks_random(data) { &mut self.stored } else { &mut self.level };
        let mut out = vec![0; compressor.gzip_compress_bound(data.len())];
        let n = compressor
            .gzip_compress(data, &mut out)
            .map_err(|e| io::Error::other(e.to_string()))?;
        out.truncate(n);
        Ok(out)
    }
}

/// Compresses whole blocks into gzip members at one gzip level (0-9); a block that looks random
/// is stored (level 0).
#[cfg(not(feature = "libdeflate"))]
pub(crate) struct MemberCompressor(flate2::Compression);

#[cfg(not(feature = "libdeflate"))]
impl MemberCompressor {
    pub(crate) fn new(level: u32) -> MemberCompressor {
        MemberCompressor(flate2::Compression::new(level.min(9)))
    }

    /// `data` as one gzip member: a header with mtime 0 and OS unknown, so that it is
    /// reproducible, zlib-rs's deflate stream, and the trailer.
    pub(crate) fn member(&mut self, data: &[u8]) -> io::Result<Vec<u8>> {
        let level = if looks_random(data) { flate2::Compression::none() } else { self.0 };
        let mut encoder = flate2::GzBuilder::new()
            .operating_system(255)
            .write(Vec::with_capacity(data.len() / 2 + 64), level);
        encoder.write_all(data)?;
        encoder.finish()
    }
}

/// Compresses blocks in batches on a thread pool and writes them in order.
pub(crate) struct ParallelGzip<W: Write> {
    out: W,
    level: u32,
    pool: Pool,
    /// Full blocks waiting for a batch, and the block being filled.
    pending: Vec<Vec<u8>>,
    current: Vec<u8>,
    /// Blocks already compressed, emptied for reuse (a long layer allocates no new ones).
    spare: Vec<Vec<u8>>,
    batch: usize,
    /// Whether a member was written (an empty input still gets one, empty).
    wrote: bool,
}

impl<W: Write> ParallelGzip<W> {
    /// A writer compressing at `level` (0-9) with `threads` workers (0 = all cores).
    pub(crate) fn new(out: W, level: u32, threads: usize) -> io::Result<ParallelGzip<W>> {
        let threads = if threads == 0 { Budget::cores() } else { threads };
        let pool = Pool::new(threads, "gzip")?;
        Ok(ParallelGzip {
            out,
            level,
            pool,
            pending: Vec::new(),
            current: Vec::with_capacity(BLOCK_SIZE),
            spare: Vec::new(),
            batch: threads * 2,
            wrote: false,
        })
    }

    /// Compresses `blocks` into members and writes them in order.
    fn flush_blocks(&mut self, blocks: &[Vec<u8>]) -> io::Result<()> {
        let level = self.level;
        let members: Vec<io::Result<Vec<u8>>> = self.pool.install(|| {
            blocks
                .par_iter()
                .map_init(|| MemberCompressor::new(level), |c, block| c.member(block))
                .collect()
        });
        for member in members {
            self.out.write_all(&member?)?;
            self.wrote = true;
        }
        Ok(())
    }

    /// Writes what is left and returns the inner writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        let mut blocks = std::mem::take(&mut self.pending);
        if !self.current.is_empty() || (blocks.is_empty() && !self.wrote) {
            blocks.push(std::mem::take(&mut self.current));
        }
        self.flush_blocks(&blocks)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = BLOCK_SIZE - self.current.len();
        let n = room.min(buf.len());
        self.current.extend_from_slice(&buf[..n]);
        if self.current.len() == BLOCK_SIZE {
            let next = self.spare.pop().unwrap_or_else(|| Vec::with_capacity(BLOCK_SIZE));
            let full = std::mem::replace(&mut self.current, next);
            self.pending.push(full);
            if self.pending.len() >= self.batch {
                let mut blocks = std::mem::take(&mut self.pending);
                self.flush_blocks(&blocks)?;
                for mut block in blocks.drain(..) {
                    block.clear();
                    self.spare.push(block);
                }
                self.pending = blocks;
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

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(data).read_to_end(&mut back).unwrap();
        back
    }

    fn sample(len: usize) -> Vec<u8> {
        let mut data = Vec::with_capacity(len);
        let mut x: u32 = 1;
        for i in 0..len {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            data.push(if i % 3 == 0 { (x >> 24) as u8 } else { b"abcdefgh"[i % 8] });
        }
        data
    }

    #[test]
    fn round_trips_and_ignores_thread_count() {
        let data = sample(3 * BLOCK_SIZE + 12345);
        let one = compress(&data, 1);
        assert_eq!(one, compress(&data, 2));
        assert_eq!(one, compress(&data, 5));
        assert_eq!(gunzip(&one), data);
    }

    /// Random bytes look random; text, a repeated short random run and a skewed spread do not;
    /// a random block is stored (a little larger than itself) and decodes back.
    #[test]
    fn random_blocks_are_stored() {
        let random = squash_testkit::noise(BLOCK_SIZE, 9);
        assert!(looks_random(&random));
        assert!(!looks_random(&sample(BLOCK_SIZE)));
        assert!(!looks_random(&random[..4096].repeat(256)));
        let mut skewed = random.clone();
        skewed[..BLOCK_SIZE / 200].fill(0);
        assert!(!looks_random(&skewed));
        assert!(!looks_random(b""));
        let gz = compress(&random, 2);
        assert!(gz.len() > random.len() && gz.len() < random.len() + 200, "{}", gz.len());
        assert_eq!(gunzip(&gz), random);
    }

    #[test]
    fn one_member_per_block_and_one_for_nothing() {
        let members = |gz: &[u8]| gz.windows(4).filter(|w| w == &[0x1f, 0x8b, 8, 0]).count();
        let exact = sample(2 * BLOCK_SIZE);
        let gz = compress(&exact, 2);
        assert_eq!(gunzip(&gz), exact);
        assert!(members(&gz) >= 2, "{} members", members(&gz));
        let empty = compress(b"", 3);
        assert_eq!(members(&empty), 1);
        assert!(gunzip(&empty).is_empty());
    }
}
