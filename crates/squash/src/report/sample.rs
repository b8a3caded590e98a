//! Estimating a new layer's compressed size without writing it. [`Sampler`] cuts the
//! uncompressed tar into pieces, compresses one piece of each stratum with the layer's encoder
//! and the context that encoder has at that point (gzip: none, its 1 MiB blocks are members of
//! their own; zstd: the window before it within its job, and the overlap a job gets from the
//! one before), and scales the ratio to the whole. A tar no larger than the sample is
//! compressed whole in the encoder's own units (gzip's 1 MiB members, zstd's 4 MiB jobs), which
//! gives the real size to within a few bytes per layer of the range (a piece ends where a
//! layer's bytes end, a block of the encoder does not) and zstd's framing. Which pieces are
//! compressed depends on positions only, so the figure is the same for any thread count.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc;

use rayon::prelude::*;

use crate::codec::compression::Compression;
use crate::merge::range_tar::TarOut;

/// How many uncompressed bytes of a new layer are compressed by default: zstd up to level 9 is
/// fast and its 1 MiB pieces need more of them (on the bench image, 64 MiB was 3.3% off and
/// 256 MiB 0.7%); gzip and the slow zstd levels are within 1% from 64 MiB, thanks to the proxy.
pub(crate) fn default_sample_bytes(compression: Compression, level: Option<i32>) -> u64 {
    match compression {
        Compression::Zstd if level.unwrap_or(3) <= 9 => 256 << 20,
        _ => 64 << 20,
    }
}

/// Whether estimating the compressed size of a `total`-byte layer from `sample_bytes` of samples
/// costs less than compressing all of it with the real encoder. An estimate runs the proxy (zstd
/// at level 1) over every piece and the real encoder over the picked ones, with their context
/// (zstd: about as much again); the real encoder costs, per byte, this many times the proxy
/// (measured single-threaded on the bench's new layers, docs/speed.md): zstd about 1 up to level
/// 3, 1.3 at 4, 3 to 5 from 5 to 9, far more above; gzip (libdeflate at level 6) about 4. So
/// zstd's fast levels are cheaper to compress whole than to sample, at any size.
pub(crate) fn sampling_pays(
    compression: Compression,
    level: Option<i32>,
    total: u64,
    sample_bytes: u64,
) -> bool {
    let (cost, context) = match compression {
        Compression::None => return true,
        Compression::Gzip => (4.0, 1.0),
        Compression::Zstd => {
            let cost = match level.unwrap_or(3) {
                ..=3 => 1.0,
                4 => 1.3,
                5 => 3.0,
                6..=9 => 4.0,
                10..=15 => 8.0,
                _ => 20.0,
            };
            (cost, 2.0)
        }
    };
    let (total, sampled) = (total as f64, sample_bytes.min(total) as f64);
    total + sampled * context * cost < total * cost
}

/// Size of a sampled zstd piece when a layer is larger than the sample: zstd's context reaches
/// back a window (2 MiB at level 3) within a job, so a piece gets up to that much before it.
/// A gzip piece is the encoder's block, compressed exactly as the encoder does.
#[cfg(feature = "zstd")]
const ZSTD_PIECE: usize = 1 << 20;

/// What a sample measured.
#[derive(Debug, Clone, Default)]
pub(crate) struct Measured {
    /// The estimated compressed size of the whole layer.
    pub compressed: u64,
    /// Uncompressed bytes that were compressed to measure it.
    pub sampled: u64,
    /// The uncompressed bytes that passed.
    pub total: u64,
    /// Per layer of the range: its bytes in the new tar and the estimated compressed size of
    /// them.
    pub per_layer: Vec<(u64, u64)>,
}

/// One piece: its bytes, the context before them (dictionary or prefix) when it is picked for
/// the real encoder, and how many of them each layer of the range contributed.
struct Unit {
    prefix: Option<Vec<u8>>,
    data: Vec<u8>,
    shares: Vec<u64>,
}

/// A compressed piece's figures: how many of its bytes each layer contributed, its length, and
/// its sizes (the real encoder's when it was picked, the proxy's).
type Done = (Vec<u64>, usize, io::Result<(Option<u64>, u64)>);

/// How many batches of pieces may be compressing while the stream goes on: the stream does not
/// wait for them, and the pieces they hold (at most `batch` each, with their context) are
/// bounded.
const IN_FLIGHT: usize = 2;

/// The most bytes of pieces and their contexts one batch holds. A batch is one piece per thread,
/// fewer where many threads or a long context (zstd's slow levels reach back 8 MiB) would hold
/// more: the batches in flight and the one filling stay within three times this (or three
/// pieces with their contexts), whatever the core count.
const BATCH_BYTES: usize = 8 << 20;

/// Per-piece figures summed: the real encoder's size (picked pieces) and a fast proxy's.
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    /// Bytes of picked pieces, their real compressed size and their proxy size.
    sampled: f64,
    real: f64,
    proxy_sampled: f64,
    /// The proxy's size of every piece.
    proxy: f64,
}

/// A [`TarOut`] that estimates the compressed size of what passes through it.
pub(crate) struct Sampler {
    compression: Compression,
    level: i32,
    /// The encoder's unit: a gzip block, a zstd job.
    job: u64,
    /// Sampled pieces' size.
    piece: usize,
    /// How far back a piece's context reaches, and how far into the job before it.
    window: u64,
    overlap: u64,
    stride: u64,
    /// Whether every piece goes through the fast proxy (the estimate's auxiliary variable).
    proxy: bool,
    pool: crate::budget::Pool,
    batch: usize,
    /// Batches compressing on the pool, oldest first: their figures are added in the stream's
    /// order, so the estimate does not depend on which finishes first.
    in_flight: VecDeque<mpsc::Receiver<Vec<Done>>>,
    /// The bytes before the current piece that a later piece's context may need.
    history: VecDeque<u8>,
    keep: usize,
    /// The current piece's bytes, when they are needed ([`Sampler::needs_piece`]); its length
    /// either way.
    current: Vec<u8>,
    current_len: usize,
    /// Bytes of the current piece from each layer of the range (the last slot: no layer).
    current_shares: Vec<u64>,
    source: usize,
    /// Stream offset where the current piece starts, and its number.
    offset: u64,
    piece_index: u64,
    pending: Vec<Unit>,
    total: u64,
    total_per_layer: Vec<u64>,
    /// In all, and per layer (shares of pieces attributed by their bytes).
    sums: Sums,
    sums_per_layer: Vec<Sums>,
    /// An error of a piece ended by [`TarOut::source`], returned by the next call.
    failed: Option<io::Error>,
}

/// zstd's window log for a level, and the overlap log of its strategy (zstd's tables for
/// inputs above 256 kB): 6 for fast to lazy, 7 for lazy2 and btlazy2, 8 for btopt and
/// btultra, 9 for btultra2. A job of the multi-threaded mode starts with the last
/// `window >> (9 - overlap log)` bytes of the job before it.
#[cfg(feature = "zstd")]
fn zstd_context(level: i32) -> (u64, u64) {
    const WINDOW_LOG: [u32; 23] = [
        19, 19, 20, 21, 21, 21, 21, 21, 21, 22, 22, 22, 22, 22, 22, 22, 22, 23, 23, 23, 25, 26, 27,
    ];
    const OVERLAP_LOG: [u32; 23] =
        [6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7, 8, 8, 8, 9, 9, 9, 9];
    let level = level.clamp(0, 22) as usize;
    (1 << WINDOW_LOG[level], 1 << (WINDOW_LOG[level] - (9 - OVERLAP_LOG[level])))
}

impl Sampler {
    /// A sampler for a tar of `total` bytes, made of `layers` layers, compressed as `compression`
    /// at `level` (its default when `None`), compressing about `sample_bytes` of it with
    /// `threads` threads (0: all cores). A tar no larger than that is compressed whole, in the
    /// encoder's own units.
    pub(crate) fn new(
        compression: Compression,
        level: Option<i32>,
        total: u64,
        layers: usize,
        sample_bytes: u64,
        threads: usize,
    ) -> io::Result<Sampler> {
        let block = crate::codec::pgzip::BLOCK_SIZE;
        let (job, piece, window, overlap, level) = match compression {
            Compression::None => (block as u64, block, 0, 0, 0),
            Compression::Gzip => (block as u64, block, 0, 0, level.unwrap_or(6).clamp(0, 9)),
            #[cfg(feature = "zstd")]
            Compression::Zstd => {
                let level = level.unwrap_or(3);
                let (window, overlap) = zstd_context(level);
                let job = crate::codec::encode::ZSTD_JOB_SIZE as u64;
                let piece = if total <= sample_bytes { job as usize } else { ZSTD_PIECE };
                (job, piece, window, overlap, level)
            }
            #[cfg(not(feature = "zstd"))]
            Compression::Zstd => return Err(crate::codec::decode::zstd_not_built()),
        };
        let pieces = total.div_ceil(piece as u64).max(1);
        let samples = (sample_bytes / piece as u64).max(1);
        let threads = if threads == 0 { crate::budget::Budget::cores() } else { threads };
        let keep = window.min(job + overlap) as usize;
        let pool = crate::budget::Pool::new(threads, "sample")?;
        Ok(Sampler {
            compression,
            level,
            job,
            piece,
            window,
            overlap,
            stride: pieces.div_ceil(samples),
            proxy: true,
            pool,
            batch: threads.min(BATCH_BYTES / (piece + keep)).max(1),
            in_flight: VecDeque::new(),
            history: VecDeque::new(),
            keep,
            current: Vec::new(),
            current_len: 0,
            current_shares: vec![0; layers + 1],
            source: layers,
            offset: 0,
            piece_index: 0,
            pending: Vec::new(),
            total: 0,
            total_per_layer: vec![0; layers + 1],
            sums: Sums::default(),
            sums_per_layer: vec![Sums::default(); layers + 1],
            failed: None,
        })
    }

    /// A sampler for how the layers share a size the real encoder gives: no proxy, only the
    /// picked pieces are compressed (each with the context the encoder has before it). Each
    /// layer's share is its bytes at its sampled pieces' ratio (the overall ratio for a layer
    /// none of whose pieces was picked), which costs the picked pieces alone: the others are
    /// counted, and copied only where a later piece's context needs them.
    pub(crate) fn for_shares(mut self) -> Sampler {
        self.proxy = false;
        self
    }

    /// Whether the bytes of piece `index` are needed: it is compressed, or a later piece's
    /// context may reach into it.
    fn needs_piece(&self, index: u64) -> bool {
        self.keep > 0
            || (self.compression != Compression::None && (self.uses_proxy() || self.picked(index)))
    }

    /// Whether every piece goes through the proxy: when not all are compressed for real.
    fn uses_proxy(&self) -> bool {
        self.proxy && self.stride > 1
    }

    /// Whether piece `index` is compressed: one piece per stratum of `stride` pieces, at a
    /// position within it that a hash of the stratum's number decides (not always the first,
    /// which would follow any period in the data).
    fn picked(&self, index: u64) -> bool {
        let stratum = index / self.stride;
        let mut x = stratum.wrapping_add(0x9e37_79b9_7f4a_7c15);
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^= x >> 31;
        index % self.stride == x % self.stride
    }

    /// The current piece is complete (or the stream ended): keep it if picked, with the
    /// context the encoder has at its start (the window before it, not reaching further back
    /// than the overlap of its job), and keep what later pieces' contexts need.
    fn end_piece(&mut self) -> io::Result<()> {
        if self.current_len == 0 {
            return Ok(());
        }
        let shares =
            std::mem::replace(&mut self.current_shares, vec![0; self.total_per_layer.len()]);
        let data = std::mem::take(&mut self.current);
        let len = std::mem::take(&mut self.current_len);
        let picked = self.picked(self.piece_index);
        // With every piece picked the proxy is not needed; otherwise every piece gets it.
        let compressed = self.compression != Compression::None && (picked || self.uses_proxy());
        let prefix = (compressed && picked).then(|| {
            let job_start = self.offset - self.offset % self.job;
            let context_start =
                job_start.saturating_sub(self.overlap).max(self.offset.saturating_sub(self.window));
            let context = ((self.offset - context_start) as usize).min(self.history.len());
            let (front, back) = self.history.as_slices();
            let from = self.history.len() - context;
            let mut prefix = Vec::with_capacity(context);
            if from < front.len() {
                prefix.extend_from_slice(&front[from..]);
                prefix.extend_from_slice(back);
            } else {
                prefix.extend_from_slice(&back[from - front.len()..]);
            }
            prefix
        });
        if self.keep > 0 {
            // A ring: dropping the oldest bytes moves none of the others.
            let excess = (self.history.len() + data.len()).saturating_sub(self.keep);
            self.history.drain(..excess.min(self.history.len()));
            let skip = data.len().saturating_sub(self.keep);
            self.history.extend(&data[skip..]);
        }
        self.offset += len as u64;
        self.piece_index += 1;
        if compressed {
            self.pending.push(Unit { prefix, data, shares });
            if self.pending.len() >= self.batch {
                self.compress_pending()?;
            }
        }
        Ok(())
    }

    /// Sends the pending pieces to the pool to be compressed while the stream goes on; with
    /// [`IN_FLIGHT`] batches already there, first adds up the oldest.
    fn compress_pending(&mut self) -> io::Result<()> {
        let units = std::mem::take(&mut self.pending);
        if units.is_empty() {
            return Ok(());
        }
        while self.in_flight.len() >= IN_FLIGHT {
            self.add_oldest()?;
        }
        let (compression, level, proxy) = (self.compression, self.level, self.uses_proxy());
        let (done, receive) = mpsc::channel();
        // A job spawned on a pool that panics would abort the process: a panic here drops the
        // sender instead, which [`Sampler::add_oldest`] reports as an error.
        self.pool.spawn(move || {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                let sizes: Vec<io::Result<(Option<u64>, u64)>> = units
                    .par_iter()
                    .map(|u| {
                        let real = u
                            .prefix
                            .as_ref()
                            .map(|prefix| compressed_len(compression, level, prefix, &u.data))
                            .transpose()?;
                        let fast = if proxy { proxy_len(&u.data)? } else { 0 };
                        Ok((real, fast))
                    })
                    .collect();
                let figures =
                    units.into_iter().zip(sizes).map(|(u, size)| (u.shares, u.data.len(), size));
                // The sampler may be gone (an error ended the stream): nobody needs the figures.
                let _ = done.send(figures.collect());
            }));
        });
        self.in_flight.push_back(receive);
        Ok(())
    }

    /// Waits for the oldest batch on the pool and adds its figures to the sums.
    fn add_oldest(&mut self) -> io::Result<()> {
        let Some(receive) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let figures = receive
            .recv()
            .map_err(|_| io::Error::other("a sample's compression stopped before it ended"))?;
        for (shares, len, size) in figures {
            let (real, fast) = size?;
            let len = len as f64;
            let add = |sums: &mut Sums, share: f64| {
                sums.proxy += fast as f64 * share;
                if let Some(real) = real {
                    sums.sampled += len * share;
                    sums.real += real as f64 * share;
                    sums.proxy_sampled += fast as f64 * share;
                }
            };
            add(&mut self.sums, 1.0);
            for (sums, share) in self.sums_per_layer.iter_mut().zip(&shares) {
                add(sums, *share as f64 / len);
            }
        }
        Ok(())
    }

    /// Ends the stream: the estimate.
    pub(crate) fn finish(mut self) -> io::Result<Measured> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        self.end_piece()?;
        self.compress_pending()?;
        while !self.in_flight.is_empty() {
            self.add_oldest()?;
        }
        let layers = self.total_per_layer.len() - 1;
        if self.compression == Compression::None {
            return Ok(Measured {
                compressed: self.total,
                sampled: 0,
                total: self.total,
                per_layer: self.total_per_layer[..layers].iter().map(|&b| (b, b)).collect(),
            });
        }
        // Every piece compressed: the sum. Otherwise the real encoder's size of the picked
        // pieces over the proxy's, times the proxy's size of everything (a ratio estimate with
        // the proxy as auxiliary variable: the proxy follows what each piece holds, so the
        // estimate does not depend on how well the picked pieces represent the rest).
        let estimate = |sums: &Sums, bytes: u64, fallback: f64| -> (u64, f64) {
            if !self.uses_proxy() {
                let ratio = if sums.sampled > 0.0 { sums.real / sums.sampled } else { fallback };
                if self.stride == 1 {
                    return (sums.real.round() as u64, ratio);
                }
                return ((bytes as f64 * ratio).round() as u64, ratio);
            }
            if sums.proxy_sampled > 0.0 {
                let ratio = sums.real / sums.proxy_sampled;
                ((sums.proxy * ratio).round() as u64, ratio)
            } else {
                // No piece of it was picked: the proxy's size at the overall ratio.
                ((sums.proxy * fallback).round() as u64, fallback)
            }
        };
        let (compressed, ratio) = estimate(&self.sums, self.total, 1.0);
        let per_layer = (0..layers)
            .map(|l| {
                let bytes = self.total_per_layer[l];
                (bytes, estimate(&self.sums_per_layer[l], bytes, ratio).0)
            })
            .collect();
        Ok(Measured {
            compressed,
            sampled: self.sums.sampled.round() as u64,
            total: self.total,
            per_layer,
        })
    }
}

/// A fast compressor's size of `data` on its own, which tracks how well any LZ77 coder
/// compresses it: zstd at level 1 (flate2's fastest without the `zstd` feature).
fn proxy_len(data: &[u8]) -> io::Result<u64> {
    #[cfg(feature = "zstd")]
    {
        zstd::bulk::compress(data, 1).map(|v| v.len() as u64)
    }
    #[cfg(not(feature = "zstd"))]
    {
        let mut encoder =
            flate2::write::DeflateEncoder::new(io::sink(), flate2::Compression::fast());
        encoder.write_all(data)?;
        Ok(encoder.total_out())
    }
}

/// The size one unit compresses to, as the layer's encoder writes it.
fn compressed_len(
    compression: Compression,
    level: i32,
    prefix: &[u8],
    data: &[u8],
) -> io::Result<u64> {
    match compression {
        Compression::None => Ok(data.len() as u64),
        Compression::Gzip => {
            debug_assert!(prefix.is_empty(), "a gzip member starts with no context");
            crate::codec::pgzip::MemberCompressor::new(level as u32)
                .member(data)
                .map(|m| m.len() as u64)
        }
        #[cfg(feature = "zstd")]
        Compression::Zstd => {
            use zstd::zstd_safe::{CCtx, CParameter};
            let error = |code: usize| io::Error::other(zstd::zstd_safe::get_error_name(code));
            let mut cctx = CCtx::create();
            cctx.set_parameter(CParameter::CompressionLevel(level)).map_err(error)?;
            cctx.set_parameter(CParameter::ChecksumFlag(true)).map_err(error)?;
            cctx.ref_prefix(prefix).map_err(error)?;
            let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(data.len()));
            cctx.compress2(&mut out, data).map_err(error)?;
            Ok(out.len() as u64)
        }
        #[cfg(not(feature = "zstd"))]
        Compression::Zstd => Err(crate::codec::decode::zstd_not_built()),
    }
}

impl Write for Sampler {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let room = self.piece - self.current_len;
        let n = buf.len().min(room);
        if self.needs_piece(self.piece_index) {
            if self.current.capacity() == 0 {
                self.current.reserve_exact(self.piece);
            }
            self.current.extend_from_slice(&buf[..n]);
        }
        self.current_len += n;
        self.current_shares[self.source] += n as u64;
        self.total_per_layer[self.source] += n as u64;
        self.total += n as u64;
        if self.current_len == self.piece {
            self.end_piece()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl TarOut for Sampler {
    /// A piece never holds bytes of two layers, so that each layer's share is measured, not
    /// apportioned: a new layer ends the current piece early.
    fn source(&mut self, layer: Option<usize>) {
        let last = self.total_per_layer.len() - 1;
        let source = layer.map_or(last, |l| l.min(last));
        if source != self.source && self.failed.is_none() {
            if let Err(e) = self.end_piece() {
                self.failed = Some(e);
            }
        }
        self.source = source;
    }
}

#[cfg(test)]
mod tests {
    use super::{default_sample_bytes, sampling_pays};
    use crate::codec::compression::Compression;

    /// zstd's fast levels are never cheaper to sample than to compress whole; its slow levels
    /// and gzip are, once a layer is a few times larger than the sample.
    #[test]
    fn samples_pay_only_where_the_encoder_is_slow() {
        const GB: u64 = 1 << 30;
        for level in [None, Some(1), Some(3)] {
            let sample = default_sample_bytes(Compression::Zstd, level);
            for total in [sample + 1, GB, 100 * GB] {
                assert!(!sampling_pays(Compression::Zstd, level, total, sample), "{level:?}");
            }
        }
        for (compression, level) in [(Compression::Zstd, Some(19)), (Compression::Gzip, None)] {
            let sample = default_sample_bytes(compression, level);
            assert!(sampling_pays(compression, level, 4 * GB, sample), "{compression:?}");
            assert!(!sampling_pays(compression, level, sample, sample), "{compression:?}");
        }
    }
}
