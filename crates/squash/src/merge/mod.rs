//! Stage 3, merging: streams one planned range's surviving entries, in the planned order, into
//! one new layer blob, compressing and digesting in the same pass.

pub(crate) mod compress;
pub(crate) mod pgzip;
pub(crate) mod sample;

use std::io::Write;

use sha2::{Digest as _, Sha256};

use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, IoContext, Location, Result};
use crate::layer::compression::Compression;
use crate::layer::header::{clamp_times, END_OF_ARCHIVE};
use crate::plan::{Item, PlannedRange, Reread};
use crate::read::stream::{Budget, Check, LayerStream};
use crate::read::Image;
use crate::write::{Counting, Progress};
use compress::Encoder;

/// What merging a range produced.
#[derive(Debug, Clone)]
pub(crate) struct Merged {
    /// The new layer's diff_id; `None` for an uncompressed layer, whose blob digest it is.
    pub diff_id: Option<Digest>,
    pub uncompressed_size: u64,
    /// Layers read again to write it, beyond the one read of each layer of the range.
    pub rereads: Vec<Reread>,
}

/// The uncompressed tar going into the encoder (through a [`Counting`] writer, which reports it
/// as work done and stops a cancelled run): counted, and hashed for the diff_id.
struct TarSink<W> {
    inner: W,
    hasher: Option<Sha256>,
    count: u64,
}

impl<W: Write> Write for TarSink<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buf[..n]);
        }
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Where a range's new uncompressed tar goes, told which layer of the range the bytes that
/// follow come from (an estimate attributes compressed bytes to the layers by it).
pub(crate) trait TarOut: Write {
    /// The bytes that follow come from the range's `layer`-th layer (`None`: whiteout markers
    /// written first and the end of the archive).
    fn source(&mut self, layer: Option<usize>) {
        let _ = layer;
    }
}

impl<W: Write> TarOut for TarSink<W> {}

/// Writes the new layer of `planned` to `out`, compressed as planned.
pub(crate) fn merge_range(
    image: &Image,
    planned: &PlannedRange,
    level: Option<i32>,
    threads: usize,
    out: &mut dyn Write,
    progress: &dyn Progress,
) -> Result<Merged> {
    let location = new_layer_location(image, planned);
    let budget = Budget::new(threads);
    let encoder = Encoder::new(planned.compression, level, budget.compressors(), out).at(|| location.clone())?;
    // An uncompressed layer's diff_id is its blob digest, which the output computes anyway.
    let hasher = (planned.compression != Compression::None).then(Sha256::new);
    let mut tar = TarSink { inner: Counting::new(encoder, progress, true), hasher, count: 0 };
    let mut rereads = planned.rereads().to_vec();
    rereads.extend(write_tar(image, planned, budget, &mut tar)?);
    let TarSink { inner: counting, hasher, count: uncompressed_size } = tar;
    let encoder = counting.into_inner();
    let diff_id = hasher.map(|h| Digest::from_raw(h.finalize().into()));
    encoder.finish().at(|| location.clone())?;
    check_size(&location, uncompressed_size, planned)?;
    Ok(Merged { diff_id, uncompressed_size, rereads })
}

/// The compressed size of the new layer of `planned`, without writing it.
#[derive(Debug, Clone)]
pub(crate) struct Measurement {
    /// Its compressed size: exact, or estimated from samples.
    pub compressed_size: u64,
    /// With `exact`: the blob digest a squash with the same options writes.
    pub digest: Option<Digest>,
    /// Uncompressed bytes compressed to estimate it (0 when exact or uncompressed).
    pub sampled: u64,
    /// Per layer of the range: its bytes in the new tar, and their share of the compressed size.
    pub per_layer: Vec<(u64, u64)>,
}

/// The real encoder and a sampler, fed the same tar: the exact size, and how the layers of the
/// range share it.
struct Tee<'a, W: Write> {
    encoder: Counting<'a, Encoder<W>>,
    sampler: sample::Sampler,
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

impl<W: TarOut> TarOut for Counting<'_, W> {
    fn source(&mut self, layer: Option<usize>) {
        self.get_mut().source(layer);
    }
}

/// Measures the compressed size of the new layer of `planned`: with `exact`, by running the
/// real encoder (all of `threads`) into a sink that counts and hashes, which gives the size and
/// digest a squash with the same options writes; otherwise by compressing samples
/// ([`sample::Sampler`]). Either way the range's layers are read again as a merge reads them.
pub(crate) fn measure_range(
    image: &Image,
    planned: &PlannedRange,
    level: Option<i32>,
    threads: usize,
    sample_bytes: u64,
    exact: bool,
    progress: &dyn Progress,
) -> Result<Measurement> {
    let location = new_layer_location(image, planned);
    let budget = Budget::new(threads);
    let layers = planned.plan.steps.len();
    let sampler =
        sample::Sampler::new(planned.compression, level, planned.plan.uncompressed_size, layers, sample_bytes, budget.compressors())
            .at(|| location.clone())?;
    if !exact {
        let mut tar = Counting::new(sampler, progress, true);
        write_tar(image, planned, budget, &mut tar)?;
        let measured = tar.into_inner().finish().at(|| location.clone())?;
        check_size(&location, measured.total, planned)?;
        return Ok(Measurement {
            compressed_size: measured.compressed,
            digest: None,
            sampled: measured.sampled,
            per_layer: measured.per_layer,
        });
    }
    let encoder =
        Encoder::new(planned.compression, level, budget.compressors(), HashingWriter::new(std::io::sink())).at(|| location.clone())?;
    let mut tee = Tee { encoder: Counting::new(encoder, progress, true), sampler };
    write_tar(image, planned, budget, &mut tee)?;
    let Tee { encoder, sampler } = tee;
    let (_, digest, size) = encoder.into_inner().finish().at(|| location.clone())?.finish();
    let measured = sampler.finish().at(|| location.clone())?;
    check_size(&location, measured.total, planned)?;
    // The layers' shares, from the samples, scaled to add up to the exact size.
    let scale = if measured.compressed == 0 { 0.0 } else { size as f64 / measured.compressed as f64 };
    let per_layer = measured.per_layer.iter().map(|&(bytes, compressed)| (bytes, (compressed as f64 * scale).round() as u64)).collect();
    Ok(Measurement { compressed_size: size, digest: Some(digest), sampled: 0, per_layer })
}

/// Where errors about the new layer of `planned` point.
pub(crate) fn new_layer_location(image: &Image, planned: &PlannedRange) -> Location {
    Location::file(image.path()).part(format!("new layer for layers {}..{}", planned.range.start, planned.range.end))
}

/// That the tar written is exactly as long as planned.
pub(crate) fn check_size(location: &Location, written: u64, planned: &PlannedRange) -> Result<()> {
    if written != planned.plan.uncompressed_size {
        return Err(Error::Output {
            location: location.clone(),
            reason: format!("internal error: wrote {written} bytes, planned {}", planned.plan.uncompressed_size),
        });
    }
    Ok(())
}

/// Writes the uncompressed tar of `planned`'s new layer to `tar`: the prelude of markers, then
/// each layer's surviving entries, then the end of the archive. Entries come from what the
/// planning read kept ([`crate::read::once`]), or else from the layer read again (blob digest
/// checked), only for the layers whose data survives. Returns the layers read again.
pub(crate) fn write_tar(image: &Image, planned: &PlannedRange, budget: Budget, tar: &mut dyn TarOut) -> Result<Vec<Reread>> {
    let mut rereads = Vec::new();
    let location = || new_layer_location(image, planned);
    // Every header group written goes through here, its times lowered when asked for.
    let clamp = planned.clamp_times;
    let header = |tar: &mut dyn TarOut, raw: &[u8]| -> Result<()> {
        match clamp.and_then(|epoch| clamp_times(raw, epoch)) {
            Some(clamped) => tar.write_all(&clamped),
            None => tar.write_all(raw),
        }
        .at(location)
    };
    tar.source(None);
    for marker in &planned.plan.prelude {
        header(tar, marker)?;
    }
    for (offset, steps) in planned.plan.steps.iter().enumerate() {
        tar.source(Some(offset));
        if steps.iter().flat_map(|s| s.items()).all(|item| matches!(item, Item::Header(_) | Item::CopyLower(_))) {
            // Nothing of this layer's data survives (its first read verified it): its headers
            // are in the plan, and the layer is not read again.
            for item in steps.iter().flat_map(|s| s.items()) {
                match item {
                    Item::Header(bytes) => header(tar, bytes)?,
                    Item::CopyLower(lower) => {
                        header(tar, &lower.header)?;
                        rereads.push(Reread::new(lower.layer, LOWER));
                        copy_lower(image, lower.layer, lower.entry, tar, budget)?
                    }
                    Item::Copy | Item::CopyWithHeader(_) => {}
                }
            }
            continue;
        }
        let index = &planned.indexes[offset];
        let copies = |s: &&crate::plan::Step| s.items().iter().any(|i| matches!(i, Item::Copy | Item::CopyWithHeader(_)));
        if let Some(kept) = planned.kept.as_ref().map(|k| &k[offset]).filter(|k| steps.iter().filter(copies).all(|s| k.has(s.entry))) {
            let at = || Location::file(image.path()).part(format!("temporary copy of layer {}'s surviving entries", index.layer));
            let mut reader = kept.reader(index);
            for step in steps {
                for item in step.items() {
                    let renamed = match item {
                        Item::Header(bytes) => {
                            header(tar, bytes)?;
                            continue;
                        }
                        Item::CopyLower(lower) => {
                            header(tar, &lower.header)?;
                            rereads.push(Reread::new(lower.layer, LOWER));
                            copy_lower(image, lower.layer, lower.entry, tar, budget)?;
                            continue;
                        }
                        Item::Copy => None,
                        Item::CopyWithHeader(renamed) => Some(renamed),
                    };
                    let (raw, mut data) = reader.entry(step.entry).at(at)?;
                    header(tar, renamed.map_or(&raw[..], |r| &r[..]))?;
                    let expected = data.limit();
                    let copied = std::io::copy(&mut data, tar).at(at)?;
                    if copied != expected {
                        return Err(Error::Output {
                            location: at(),
                            reason: format!("temporary copy is short: {copied} of {expected} bytes"),
                        });
                    }
                }
            }
            continue;
        }
        if planned.kept.is_some() {
            rereads.push(Reread::new(index.layer, "entries its one read did not keep (a hard link's target that a layer above shadows)"));
        }
        let layer = &image.layers()[planned.range.start + offset];
        let check = Check::BlobOnly(planned.indexes[offset].blob_digest.clone());
        let mut stream = LayerStream::open_within(image, layer, check, budget)?;
        let mut steps = steps.iter().peekable();
        let mut entry_index = 0usize;
        while steps.peek().is_some() {
            let group = match stream.tar.next_group() {
                Ok(Some(group)) => group,
                Ok(None) => {
                    return Err(Error::malformed_tar(
                        stream.location.clone(),
                        "layer changed while it was being read (fewer entries than indexed)",
                    ))
                }
                Err(e) => return Err(stream.error(e)),
            };
            if let Some(step) = steps.next_if(|s| s.entry == entry_index) {
                for item in step.items() {
                    match item {
                        Item::Header(bytes) => header(tar, bytes)?,
                        Item::Copy => {
                            header(tar, &group.raw)?;
                            stream
                                .tar
                                .copy_data_padded(&mut &mut *tar)
                                .map_err(|e| crate::read::archive::tar_error(stream.location.clone(), e))?;
                        }
                        Item::CopyLower(lower) => {
                            header(tar, &lower.header)?;
                            rereads.push(Reread::new(lower.layer, LOWER));
                            copy_lower(image, lower.layer, lower.entry, tar, budget)?
                        }
                        Item::CopyWithHeader(renamed) => {
                            header(tar, renamed)?;
                            stream
                                .tar
                                .copy_data_padded(&mut &mut *tar)
                                .map_err(|e| crate::read::archive::tar_error(stream.location.clone(), e))?;
                        }
                    }
                }
            }
            entry_index += 1;
        }
        stream.finish()?;
    }
    tar.source(None);
    tar.write_all(&END_OF_ARCHIVE).at(location)?;
    Ok(rereads)
}

/// Why a layer below a range is read: a hard link's content.
const LOWER: &str = "content of a hard link's target below the range";

/// Copies the data of entry `entry` of image layer `layer` (below the range), after its new
/// header was written: the content of a hard link whose target the range deletes. That layer is
/// read in full and verified.
fn copy_lower(image: &Image, layer: usize, entry: usize, out: &mut dyn Write, budget: Budget) -> Result<()> {
    let source = image.layers().get(layer).ok_or_else(|| Error::InvalidRange { reason: format!("no layer {layer}") })?;
    let mut stream = LayerStream::open_within(image, source, Check::Full, budget)?;
    for index in 0..=entry {
        match stream.tar.next_group() {
            Ok(Some(_)) => {}
            Ok(None) => return Err(Error::malformed_tar(stream.location.clone(), format!("layer has no entry {index}"))),
            Err(e) => return Err(stream.error(e)),
        }
    }
    stream.tar.copy_data_padded(&mut &mut *out).map_err(|e| crate::read::archive::tar_error(stream.location.clone(), e))?;
    stream.finish()?;
    Ok(())
}
