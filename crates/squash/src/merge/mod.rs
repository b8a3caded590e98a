//! Stage 3, merging: streams one planned range's surviving entries, in the planned order, into
//! one new layer blob, compressing and digesting in the same pass.

pub(crate) mod compress;
pub(crate) mod pgzip;

use std::io::Write;

use sha2::{Digest as _, Sha256};

use crate::digest::Digest;
use crate::error::{Error, IoContext, Location, Result};
use crate::layer::compression::Compression;
use crate::layer::header::{clamp_times, END_OF_ARCHIVE};
use crate::plan::{Item, PlannedRange};
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

/// Writes the new layer of `planned` to `out`, compressed as planned.
pub(crate) fn merge_range(
    image: &Image,
    planned: &PlannedRange,
    level: Option<i32>,
    threads: usize,
    out: &mut dyn Write,
    progress: &dyn Progress,
) -> Result<Merged> {
    let location = || Location::file(image.path()).part(format!("new layer for layers {}..{}", planned.range.start, planned.range.end));
    let budget = Budget::new(threads);
    let encoder = Encoder::new(planned.compression, level, budget.compressors(), out).at(location)?;
    // An uncompressed layer's diff_id is its blob digest, which the output computes anyway.
    let hasher = (planned.compression != Compression::None).then(Sha256::new);
    let mut tar = TarSink { inner: Counting::new(encoder, progress, true), hasher, count: 0 };
    // Every header group written goes through here, its times lowered when asked for.
    let clamp = planned.clamp_times;
    let header = |tar: &mut TarSink<_>, raw: &[u8]| -> Result<()> {
        match clamp.and_then(|epoch| clamp_times(raw, epoch)) {
            Some(clamped) => tar.write_all(&clamped),
            None => tar.write_all(raw),
        }
        .at(location)
    };
    for marker in &planned.plan.prelude {
        header(&mut tar, marker)?;
    }
    for (offset, steps) in planned.plan.steps.iter().enumerate() {
        if steps.iter().flat_map(|s| s.items()).all(|item| matches!(item, Item::Header(_) | Item::CopyLower(_))) {
            // Nothing of this layer's data survives (its first read verified it): its headers
            // are in the plan, and the layer is not read again.
            for item in steps.iter().flat_map(|s| s.items()) {
                match item {
                    Item::Header(bytes) => header(&mut tar, bytes)?,
                    Item::CopyLower(lower) => {
                        header(&mut tar, &lower.header)?;
                        copy_lower(image, lower.layer, lower.entry, &mut tar, budget)?
                    }
                    Item::Copy | Item::CopyWithHeader(_) => {}
                }
            }
            continue;
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
                        Item::Header(bytes) => header(&mut tar, bytes)?,
                        Item::Copy => {
                            header(&mut tar, &group.raw)?;
                            stream
                                .tar
                                .copy_data_padded(&mut tar)
                                .map_err(|e| crate::read::archive::tar_error(stream.location.clone(), e))?;
                        }
                        Item::CopyLower(lower) => {
                            header(&mut tar, &lower.header)?;
                            copy_lower(image, lower.layer, lower.entry, &mut tar, budget)?
                        }
                        Item::CopyWithHeader(renamed) => {
                            header(&mut tar, renamed)?;
                            stream
                                .tar
                                .copy_data_padded(&mut tar)
                                .map_err(|e| crate::read::archive::tar_error(stream.location.clone(), e))?;
                        }
                    }
                }
            }
            entry_index += 1;
        }
        stream.finish()?;
    }
    tar.write_all(&END_OF_ARCHIVE).at(location)?;
    let TarSink { inner: counting, hasher, count: uncompressed_size } = tar;
    let encoder = counting.into_inner();
    let diff_id = hasher.map(|h| Digest::from_raw(h.finalize().into()));
    encoder.finish().at(location)?;
    if uncompressed_size != planned.plan.uncompressed_size {
        return Err(Error::Output {
            location: location(),
            reason: format!("internal error: wrote {uncompressed_size} bytes, planned {}", planned.plan.uncompressed_size),
        });
    }
    Ok(Merged { diff_id, uncompressed_size })
}

/// Copies the data of entry `entry` of image layer `layer` (below the range), after its new
/// header was written: the content of a hard link whose target the range deletes. That layer is
/// read in full and verified.
fn copy_lower(image: &Image, layer: usize, entry: usize, out: &mut impl Write, budget: Budget) -> Result<()> {
    let source = image.layers().get(layer).ok_or_else(|| Error::InvalidRange { reason: format!("no layer {layer}") })?;
    let mut stream = LayerStream::open_within(image, source, Check::Full, budget)?;
    for index in 0..=entry {
        match stream.tar.next_group() {
            Ok(Some(_)) => {}
            Ok(None) => return Err(Error::malformed_tar(stream.location.clone(), format!("layer has no entry {index}"))),
            Err(e) => return Err(stream.error(e)),
        }
    }
    stream.tar.copy_data_padded(out).map_err(|e| crate::read::archive::tar_error(stream.location.clone(), e))?;
    stream.finish()?;
    Ok(())
}
