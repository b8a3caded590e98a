//! A range's new layer as a blob: its uncompressed tar (see `range_tar`) through the encoder,
//! the diff_id hashed on the way and the size checked against the plan; or merged ahead into a
//! temporary file, when several ranges of an index are merged at once.

use std::io::{self, Write};

use super::range_tar::{check_size, new_layer_location, write_tar, TarOut};
use crate::codec::compression::Compression;
use crate::codec::encode::Encoder;
use crate::context::Context;
use crate::digest::{Digest, HashingWriter, StreamHasher};
use crate::error::{Error, IoContext, Location, Result};
use crate::plan::squash_plan::PlannedRange;
use crate::progress::Counting;
use crate::read::image::Image;
use crate::read::reread::Reread;

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
/// as work done and stops a cancelled run): counted, and hashed for the diff_id (on a thread of
/// its own if the budget allows: on the merging thread it is the largest serial cost).
struct TarSink<W> {
    inner: W,
    hasher: Option<StreamHasher>,
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

impl<W: Write> TarOut for TarSink<W> {}

/// Writes the new layer of `planned` to `out`, compressed as planned.
pub(crate) fn merge_range(
    image: &Image,
    planned: &PlannedRange,
    level: Option<i32>,
    out: &mut dyn Write,
    context: &Context<'_>,
) -> Result<Merged> {
    let location = new_layer_location(image, planned);
    let budget = context.budget();
    let encoder = Encoder::new(planned.compression, level, budget.compressors(), out)
        .at(|| location.clone())?;
    // An uncompressed layer's diff_id is its blob digest, which the output computes anyway.
    let hasher =
        (planned.compression != Compression::None).then(|| StreamHasher::new(budget.hash_apart()));
    let mut tar =
        TarSink { inner: Counting::new(encoder, context.progress(), true), hasher, count: 0 };
    let mut rereads = planned.rereads().to_vec();
    rereads.extend(write_tar(image, planned, &planned.indexes, budget, &mut tar)?);
    let TarSink { inner: counting, hasher, count: uncompressed_size } = tar;
    let encoder = counting.into_inner();
    let diff_id = hasher.map(StreamHasher::finalize);
    encoder.finish().at(|| location.clone())?;
    check_size(&location, uncompressed_size, planned)?;
    Ok(Merged { diff_id, uncompressed_size, rereads })
}

/// A new layer merged ahead of writing, into a temporary file.
pub(crate) struct PreMerged {
    pub file: tempfile::NamedTempFile,
    pub digest: Digest,
    pub size: u64,
    pub merged: Merged,
}

/// Layers merged ahead for one image, by the first layer of their range.
pub(crate) type PreMergedLayers = std::collections::BTreeMap<usize, PreMerged>;

impl PreMerged {
    /// Merges `planned` of `image` into a temporary file in the context's temporary directory.
    pub(crate) fn merge(
        image: &Image,
        planned: &PlannedRange,
        level: Option<i32>,
        context: &Context<'_>,
    ) -> Result<PreMerged> {
        let dir = context.scratch_dir();
        let file =
            tempfile::Builder::new().prefix(".squash-layer-").tempfile_in(&dir).map_err(|e| {
                Error::Output {
                    location: Location::file(&dir),
                    reason: format!(
                        "cannot create a temporary file for a new layer here (see --tmp-dir): {e}"
                    ),
                }
            })?;
        let location = Location::file(file.path());
        let handle = file.reopen().at(|| location.clone())?;
        let mut writer = HashingWriter::new(
            io::BufWriter::with_capacity(1 << 20, handle),
            StreamHasher::new(context.budget().hash_apart()),
        );
        let merged = merge_range(image, planned, level, &mut writer, context)?;
        io::Write::flush(&mut writer).at(|| location.clone())?;
        let (buffered, digest, size) = writer.finish();
        buffered.into_inner().map_err(|e| Error::io(location.clone(), e.into_error()))?;
        Ok(PreMerged { file, digest, size, merged })
    }
}
