//! The uncompressed tar of a range's new layer, written in the planned order: the prelude of
//! markers, each layer's surviving entries (from what the range's one read kept, or from the
//! layer read again where it did not keep them), hard links' content from the layers below, and
//! the end of the archive. Every header passes through here, its times clamped when asked for.

use std::io::Write;

use crate::budget::Budget;
use crate::error::{Error, IoContext, Location, Result};
use crate::layer::header::{clamp_times, END_OF_ARCHIVE};
use crate::layer::layer_index::LayerIndex;
use crate::layer::tarstream::move_exact;
use crate::plan::changeset::range_plan::{Item, Step};
use crate::plan::squash_plan::PlannedRange;
use crate::progress::Counting;
use crate::read::archive::tar_error;
use crate::read::image::Image;
use crate::read::reread::Reread;
use crate::read::stream::{Check, LayerStream};

/// Where a range's new uncompressed tar goes, told which layer of the range the bytes that
/// follow come from (an estimate attributes compressed bytes to the layers by it).
pub(crate) trait TarOut: Write {
    /// The bytes that follow come from the range's `layer`-th layer (`None`: whiteout markers
    /// written first and the end of the archive).
    fn source(&mut self, layer: Option<usize>) {
        let _ = layer;
    }
}

impl<W: TarOut> TarOut for Counting<'_, W> {
    fn source(&mut self, layer: Option<usize>) {
        self.get_mut().source(layer);
    }
}

/// Where errors about the new layer of `planned` point.
pub(crate) fn new_layer_location(image: &Image, planned: &PlannedRange) -> Location {
    Location::file(image.path())
        .part(format!("new layer for layers {}..{}", planned.range.start, planned.range.end))
}

/// That the tar written is exactly as long as planned.
pub(crate) fn check_size(location: &Location, written: u64, planned: &PlannedRange) -> Result<()> {
    if written != planned.plan.uncompressed_size {
        return Err(Error::Output {
            location: location.clone(),
            reason: format!(
                "internal error: wrote {written} bytes, planned {}",
                planned.plan.uncompressed_size
            ),
        });
    }
    Ok(())
}

/// Writes the uncompressed tar of `planned`'s new layer to `tar`: the prelude of markers, then
/// each layer's surviving entries, then the end of the archive. Entries come from what the
/// planning read kept ([`crate::read::once`]), or else from the layer read again (blob digest
/// checked), only for the layers whose data survives. `indexes` are the range's layers' (those
/// of `planned`, or the same held elsewhere). Returns the layers read again.
pub(crate) fn write_tar(
    image: &Image,
    planned: &PlannedRange,
    indexes: &[LayerIndex],
    budget: Budget,
    tar: &mut dyn TarOut,
) -> Result<Vec<Reread>> {
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
        if steps
            .iter()
            .flat_map(|s| s.items())
            .all(|item| matches!(item, Item::Header(_) | Item::CopyLower(_)))
        {
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
        let index = &indexes[offset];
        let copies =
            |s: &&Step| s.items().iter().any(|i| matches!(i, Item::Copy | Item::CopyWithHeader(_)));
        if let Some(kept) = planned
            .kept
            .as_ref()
            .map(|k| &k[offset])
            .filter(|k| steps.iter().filter(copies).all(|s| k.has(s.entry)))
        {
            let at = || Location::file(image.path()).part(kept.describe(index.layer));
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
                    let out: &mut dyn Write = &mut *tar;
                    let copied = move_exact(&mut data, Some(out), expected).at(at)?;
                    if copied != expected {
                        return Err(Error::Output {
                            location: at(),
                            reason: format!("short: {copied} of {expected} bytes"),
                        });
                    }
                }
            }
            continue;
        }
        if planned.kept.is_some() {
            rereads.push(Reread::new(
                index.layer,
                "entries its one read did not keep (a hard link's target that a layer \
                above shadows, or a header group the spool does not hold as it was read)",
            ));
        }
        let layer = &image.layers()[planned.range.start + offset];
        let check = Check::BlobOnly(index.blob_digest.clone());
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
                                .map_err(|e| tar_error(stream.location.clone(), e))?;
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
                                .map_err(|e| tar_error(stream.location.clone(), e))?;
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
fn copy_lower(
    image: &Image,
    layer: usize,
    entry: usize,
    out: &mut dyn Write,
    budget: Budget,
) -> Result<()> {
    let source = image
        .layers()
        .get(layer)
        .ok_or_else(|| Error::InvalidRange { reason: format!("no layer {layer}") })?;
    let mut stream = LayerStream::open_within(image, source, Check::Full, budget)?;
    for index in 0..=entry {
        match stream.tar.next_group() {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(Error::malformed_tar(
                    stream.location.clone(),
                    format!("layer has no entry {index}"),
                ))
            }
            Err(e) => return Err(stream.error(e)),
        }
    }
    stream
        .tar
        .copy_data_padded(&mut &mut *out)
        .map_err(|e| tar_error(stream.location.clone(), e))?;
    stream.finish()?;
    Ok(())
}
