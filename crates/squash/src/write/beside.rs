//! Work done on a thread beside the one that writes an output in order, so that one waits less
//! for the other with threads to spare (a pipelined budget): a layout's kept layers copied beside
//! the merge ([`CopiesBeside`]), and a stream's new layers merged beside the copies of its kept
//! layers ([`MergesBeside`]). A failure on either side stops the other (through [`Watch`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};

use super::layout::{BlobDir, Written};
use super::target::Target;
use crate::context::Context;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::merge::new_layer::{PreMerged, PreMergedLayers};
use crate::plan::squash_plan::{PlannedRange, SquashPlan};
use crate::progress::{Event, Progress};
use crate::read::image::Image;

/// The kept layers a layout gets copied on a thread beside the merge, so that the merge does not
/// wait for them: with threads to spare (a pipelined budget), when a range is merged here, for
/// every kept layer whose blob digest is known and that the layout lacks (each blob once).
/// Their blobs are kept, and synced, before the image's documents are written.
pub(crate) struct CopiesBeside {
    /// The layers, in order, with their blobs' digests.
    pub(super) layers: Vec<(usize, Digest)>,
}

impl CopiesBeside {
    pub(super) fn plan(
        plan: &SquashPlan,
        image: &Image,
        target: &mut Target<'_>,
        premerged: &PreMergedLayers,
        context: &Context<'_>,
    ) -> Result<CopiesBeside> {
        let mut beside = CopiesBeside { layers: Vec::new() };
        let merged_here = plan.ranges.iter().any(|r| !premerged.contains_key(&r.range.start));
        if target.blob_dir().is_none() || !merged_here || !context.budget().pipelined() {
            return Ok(beside);
        }
        for index in plan.kept_layers(image) {
            let Some(known) = image.layers()[index].digest() else { continue };
            if beside.copies(known) || target.reuse_blob(known, &image.store)? {
                continue;
            }
            beside.layers.push((index, known.clone()));
        }
        Ok(beside)
    }

    /// Whether the blob `digest` is copied beside.
    pub(super) fn copies(&self, digest: &Digest) -> bool {
        self.layers.iter().any(|(_, d)| d == digest)
    }

    /// Copies the layers into `dir`, each checked against its digest and size as it is read;
    /// `None` once `progress` says to stop.
    pub(super) fn copy(
        &self,
        image: &Image,
        dir: &BlobDir<'_>,
        progress: &dyn Progress,
    ) -> Result<Option<Vec<Written>>> {
        let mut copies = Vec::with_capacity(self.layers.len());
        for (index, known) in &self.layers {
            if progress.cancelled() {
                return Ok(None);
            }
            let layer = &image.layers()[*index];
            progress.step(format!("copying layer {index}"));
            let mut reader = image.open_layer_blob(layer)?;
            let copy = dir
                .copy_layer(
                    (known, layer.size()),
                    &mut reader,
                    progress,
                    &image.layer_location(layer),
                )
                .map_err(|e| e.writing(|| format!("writing the copy of layer {index}")));
            match copy {
                Ok(copy) => copies.push(copy),
                Err(Error::Cancelled) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        Ok(Some(copies))
    }
}

/// The ranges an archive on a stream gets merged on a thread beside the copies of its kept
/// layers. A stream spools a new layer anyway, to learn its digest and size before its member
/// begins; merged beside, it is spooled while the kept layers go out, in the same order as
/// before. Only with threads to spare (a pipelined budget) and a kept layer to copy below a
/// range merged here.
pub(crate) struct MergesBeside<'p> {
    ranges: Vec<&'p PlannedRange>,
}

impl<'p> MergesBeside<'p> {
    pub(super) fn plan(
        plan: &'p SquashPlan,
        image: &Image,
        target: &Target<'_>,
        premerged: &PreMergedLayers,
        context: &Context<'_>,
    ) -> MergesBeside<'p> {
        let mut ranges: Vec<&PlannedRange> =
            plan.ranges.iter().filter(|r| !premerged.contains_key(&r.range.start)).collect();
        ranges.sort_by_key(|r| r.range.start);
        let last = ranges.last().map(|r| r.range.start);
        let copies_first = plan.kept_layers(image).any(|index| Some(index) < last);
        if !matches!(target, Target::Stream(_)) || !context.budget().pipelined() || !copies_first {
            ranges.clear();
        }
        MergesBeside { ranges }
    }

    /// Whether any range is merged beside.
    pub(super) fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The first layers of the ranges merged beside.
    pub(super) fn starts(&self) -> Vec<usize> {
        self.ranges.iter().map(|r| r.range.start).collect()
    }

    /// Merges the ranges in order, each into a temporary file sent to `done` with the first
    /// layer of its range; stops quietly once `context` says to stop or `done` is dropped.
    pub(super) fn merge(
        &self,
        image: &Image,
        level: Option<i32>,
        context: &Context<'_>,
        done: Sender<(usize, PreMerged)>,
    ) -> Result<()> {
        for planned in &self.ranges {
            if context.cancelled() {
                return Ok(());
            }
            let (start, end) = (planned.range.start, planned.range.end);
            context.progress().step(format!("merging layers {start}..{end}"));
            let merged = match PreMerged::merge(image, planned, level, context) {
                Ok(merged) => merged,
                Err(Error::Cancelled) => return Ok(()),
                Err(e) => {
                    return Err(
                        e.writing(|| format!("writing the new layer of layers {start}..{end}"))
                    )
                }
            };
            if done.send((start, merged)).is_err() {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// Where the writer finds the new layers merged ahead: merged before the image was written (the
/// platforms of an index, merged concurrently), or being merged beside it.
pub(super) struct MergedAhead<'a> {
    pub(super) before: &'a mut PreMergedLayers,
    pub(super) beside: Vec<usize>,
    pub(super) from_beside: Receiver<(usize, PreMerged)>,
}

impl MergedAhead<'_> {
    /// The range starting at layer `start` merged ahead, if it was, and whether its bytes must
    /// be hashed again as they are copied (not when merged beside a stream: like the spool it
    /// stands for, it was hashed as it was written, and is copied at once). Waits for a merge
    /// beside; one that stopped before giving it is a cancellation (the caller reports the
    /// merge's own error first).
    pub(super) fn take(&mut self, start: usize) -> Result<Option<(PreMerged, bool)>> {
        if let Some(before) = self.before.remove(&start) {
            return Ok(Some((before, true)));
        }
        if !self.beside.contains(&start) {
            return Ok(None);
        }
        match self.from_beside.recv() {
            Ok((merged_start, merged)) if merged_start == start => Ok(Some((merged, false))),
            _ => Err(Error::Cancelled),
        }
    }
}

/// A run's progress, told to stop also once `stop` is set (the work on the other side failed).
pub(super) struct Watch<'a> {
    pub(super) inner: &'a dyn Progress,
    pub(super) stop: &'a AtomicBool,
}

impl Progress for Watch<'_> {
    fn event(&self, event: &Event) {
        self.inner.event(event);
    }
    fn cancelled(&self) -> bool {
        self.inner.cancelled() || self.stop.load(Ordering::Relaxed)
    }
}

/// Runs `work`, setting `failed` if it fails, so that the other side, whose [`Watch`] reads it,
/// stops.
pub(super) fn flagging<T>(failed: &AtomicBool, work: impl FnOnce() -> Result<T>) -> Result<T> {
    let result = work();
    if result.is_err() {
        failed.store(true, Ordering::Relaxed);
    }
    result
}
