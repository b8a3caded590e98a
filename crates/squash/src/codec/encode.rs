//! Encoders for new layers, configured so that output bytes depend only on the data, the
//! compression and the level, never on the thread count.

use std::io::{self, Write};

use super::compression::Compression;

/// Bytes of input per zstd job.
#[cfg(feature = "zstd")]
pub(crate) const ZSTD_JOB_SIZE: u32 = 4 << 20;

/// A streaming compressor writing into `W`.
pub(crate) enum Encoder<W: Write> {
    None(W),
    Gzip(Box<super::pgzip::ParallelGzip<W>>),
    #[cfg(feature = "zstd")]
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    pub(crate) fn new(
        compression: Compression,
        level: Option<i32>,
        threads: usize,
        out: W,
    ) -> io::Result<Encoder<W>> {
        Ok(match compression {
            Compression::None => Encoder::None(out),
            Compression::Gzip => {
                let level = level.unwrap_or(6).clamp(0, 9) as u32;
                Encoder::Gzip(Box::new(super::pgzip::ParallelGzip::new(out, level, threads)?))
            }
            #[cfg(not(feature = "zstd"))]
            Compression::Zstd => return Err(super::decode::zstd_not_built()),
            #[cfg(feature = "zstd")]
            Compression::Zstd => {
                let mut encoder = zstd::stream::write::Encoder::new(out, level.unwrap_or(3))?;
                // zstd's multi-threaded mode gives the same bytes for any worker count >= 1.
                let workers = if threads == 0 { crate::budget::Budget::cores() } else { threads };
                encoder.multithread(workers.max(1) as u32)?;
                // Jobs of 4 MiB instead of the default 8 MiB (at level 3): zstd keeps a few jobs'
                // input and output buffers per worker, so this halves the encoder's memory
                // (about 140 MB down to 95 MB peak on 2 cores) for about 1% in size. The job
                // size is fixed, not derived from the worker count, so the bytes stay the same.
                encoder.set_parameter(zstd::stream::raw::CParameter::JobSize(ZSTD_JOB_SIZE))?;
                encoder.include_checksum(true)?;
                Encoder::Zstd(encoder)
            }
        })
    }

    pub(crate) fn finish(self) -> io::Result<W> {
        match self {
            Encoder::None(w) => Ok(w),
            Encoder::Gzip(e) => e.finish(),
            #[cfg(feature = "zstd")]
            Encoder::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::None(w) => w.write(buf),
            Encoder::Gzip(e) => e.write(buf),
            #[cfg(feature = "zstd")]
            Encoder::Zstd(e) => e.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::None(w) => w.flush(),
            Encoder::Gzip(e) => e.flush(),
            #[cfg(feature = "zstd")]
            Encoder::Zstd(e) => e.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(not(feature = "zstd"))]
    #[test]
    fn zstd_without_the_feature_is_a_clear_error() {
        let error = super::Encoder::new(super::Compression::Zstd, None, 1, Vec::new())
            .err()
            .expect("refused");
        assert!(error.to_string().contains("`zstd` cargo feature"), "{error}");
    }
}
