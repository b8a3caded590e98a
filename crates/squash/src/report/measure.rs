//! A new layer's compressed size without writing it: its tar streamed as a squash writes it
//! (see `merge::range_tar`) into the real encoder whose output is only counted, and hashed if
//! asked (exact), or into samples compressed as that encoder would (estimated), with how the
//! range's layers share the result.

use std::io::Write;

use super::sample::Sampler;
use crate::codec::encode::Encoder;
use crate::context::Context;
use crate::digest::{Digest, StreamHasher};
use crate::error::{IoContext, Result};
use crate::layer::layer_index::LayerIndex;
use crate::merge::range_tar::{check_size, new_layer_location, write_tar, TarOut};
use crate::plan::squash_plan::PlannedRange;
use crate::progress::Counting;
use crate::read::image::Image;

/// With `exact`, the samples that tell the layers' shares are this fraction of an estimate's.
const EXACT_SHARE: u64 = 4;

/// How a new layer is measured: about `sample_bytes` of it compressed, or all of it (`exact`),
/// its blob hashed too with `digest`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct How {
    pub sample_bytes: u64,
    pub exact: bool,
    pub digest: bool,
}

/// The compressed size of the new layer of `planned`, without writing it.
#[derive(Debug, Clone)]
pub(crate) struct Measurement {
    /// Its compressed size: exact, or estimated from samples.
    pub compressed_size: u64,
    /// Whether the size is exact.
    pub exact: bool,
    /// With `exact` and `digest`: the blob digest a squash with the same options writes.
    pub digest: Option<Digest>,
    /// Uncompressed bytes compressed to estimate it (0 when exact or uncompressed).
    pub sampled: u64,
    /// Per layer of the range: its bytes in the new tar, and their share of the compressed size.
    pub per_layer: Vec<(u64, u64)>,
}

/// Where the real encoder's output goes when measured: counted, and hashed if asked.
struct Sink {
    hasher: Option<StreamHasher>,
    size: u64,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(hasher) = &mut self.hasher {
            hasher.update(buf);
        }
        self.size += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The real encoder and a sampler, fed the same tar: the exact size, and how the layers of the
/// range share it.
struct Tee<'a, W: Write> {
    encoder: Counting<'a, Encoder<W>>,
    sampler: Sampler,
}

impl<W: Write> Write for Tee<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.encoder.write_all(buf)?;
        self.sampler.write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.encoder.flush()
    }
}

impl<W: Write> TarOut for Tee<'_, W> {
    fn source(&mut self, layer: Option<usize>) {
        self.sampler.source(layer);
    }
}

/// Measures the compressed size of the new layer of `planned`: with `exact`, by running the
/// real encoder (all of `threads`) into a sink that counts (and with `digest` hashes), which
/// gives the size (and digest) a squash with the same options writes; otherwise by compressing
/// samples ([`Sampler`]). Either way the range's layers are read again as a merge reads them.
/// `indexes` are the range's layers' indexes, wherever the caller holds them.
pub(crate) fn measure_range(
    image: &Image,
    planned: &PlannedRange,
    indexes: &[LayerIndex],
    level: Option<i32>,
    how: How,
    context: &Context<'_>,
) -> Result<Measurement> {
    let How { sample_bytes, exact, digest } = how;
    let progress = context.progress();
    let location = new_layer_location(image, planned);
    let budget = context.budget();
    let layers = planned.plan.steps.len();
    // With `exact` the samples give only how the layers share the real size: a quarter of
    // them, without the proxy, so that the real encoder's work is not done twice over.
    let sample_bytes = if exact { sample_bytes.div_ceil(EXACT_SHARE) } else { sample_bytes };
    let sampler = Sampler::new(
        planned.compression,
        level,
        planned.plan.uncompressed_size,
        layers,
        sample_bytes,
        budget.compressors(),
    )
    .at(|| location.clone())?;
    if !exact {
        let mut tar = Counting::new(sampler, progress, true);
        write_tar(image, planned, indexes, budget, &mut tar)?;
        let measured = tar.into_inner().finish().at(|| location.clone())?;
        check_size(&location, measured.total, planned)?;
        return Ok(Measurement {
            compressed_size: measured.compressed,
            exact: false,
            digest: None,
            sampled: measured.sampled,
            per_layer: measured.per_layer,
        });
    }
    let encoder = Encoder::new(
        planned.compression,
        level,
        budget.compressors(),
        Sink { hasher: digest.then(|| StreamHasher::new(budget.hash_apart())), size: 0 },
    )
    .at(|| location.clone())?;
    let sampler = sampler.for_shares();
    let mut tee = Tee { encoder: Counting::new(encoder, progress, true), sampler };
    write_tar(image, planned, indexes, budget, &mut tee)?;
    let Tee { encoder, sampler } = tee;
    let Sink { hasher, size } = encoder.into_inner().finish().at(|| location.clone())?;
    let measured = sampler.finish().at(|| location.clone())?;
    check_size(&location, measured.total, planned)?;
    // The layers' shares, from the samples, scaled to add up to the exact size.
    let scale =
        if measured.compressed == 0 { 0.0 } else { size as f64 / measured.compressed as f64 };
    let per_layer = measured
        .per_layer
        .iter()
        .map(|&(bytes, compressed)| (bytes, (compressed as f64 * scale).round() as u64))
        .collect();
    Ok(Measurement {
        compressed_size: size,
        exact: true,
        digest: hasher.map(StreamHasher::finalize),
        sampled: 0,
        per_layer,
    })
}
