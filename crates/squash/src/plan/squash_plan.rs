//! A plan as data: the ranges decided ([`PlannedRange`]) and everything a squash will do
//! ([`SquashPlan`]), which `report`, a dry run and an execution all read.

use std::sync::Arc;

use super::changeset::range_plan::{Fate, RangePlan};
use super::edits::ConfigEdits;
use super::exclude::ExcludeFigures;
use super::options::SquashOptions;
use super::range::LayerRange;
use crate::codec::compression::Compression;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layer::layer_index::LayerIndex;
use crate::read::image::Image;
use crate::read::once::Kept;
use crate::read::reread::Reread;

/// One planned range with what is known about it before the merge.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PlannedRange {
    /// Which layers, and why.
    pub range: LayerRange,
    /// The indexes of the range's layers (oldest first). A report hands them back to the one
    /// list of every layer's index that its analysis reads, and leaves this empty.
    pub indexes: Vec<LayerIndex>,
    /// Uncompressed and stored bytes of the range's layers before the squash, counted when
    /// the range is planned.
    pub(crate) sizes_before: (u64, u64),
    /// Compression of the new layer.
    pub compression: Compression,
    /// Times of the new layer's entries later than this are lowered to it
    /// ([`SquashOptions::rewrite_timestamp`]).
    pub clamp_times: Option<u64>,
    pub(crate) plan: RangePlan,
    /// With [`SquashOptions::read_once`]: what each layer's one read kept for the merge.
    pub(crate) kept: Option<Arc<Vec<Kept>>>,
}

impl PlannedRange {
    /// What each `--exclude` pattern removes from the range and hides below it, in the order
    /// of the patterns (empty without patterns).
    pub fn excluded(&self) -> &[ExcludeFigures] {
        &self.plan.excluded
    }
    /// Exact size of the new layer's uncompressed tar.
    pub fn uncompressed_size(&self) -> u64 {
        self.plan.uncompressed_size
    }
    /// Uncompressed bytes of the range's layers before the squash.
    pub fn uncompressed_size_before(&self) -> u64 {
        self.sizes_before.0
    }
    /// Stored (compressed) bytes of the range's layers before the squash.
    pub fn compressed_size_before(&self) -> u64 {
        self.sizes_before.1
    }
    /// The fate of entry `entry` of the range's `layer`-th layer (0 = oldest of the range).
    pub fn fates(&self) -> &[Vec<Fate>] {
        &self.plan.fates
    }
    /// Layers read again while planning, beyond one read of each layer of the range.
    pub fn rereads(&self) -> &[Reread] {
        &self.plan.rereads
    }
    /// Whether the range holds one layer that the squash would write again with nothing changed
    /// (nothing dropped or added, no `--exclude` effect, no time clamped, the same compression
    /// and no level asked for): then the layer is better kept as it is.
    pub(crate) fn squashes_to_itself(&self, image: &Image, options: &SquashOptions) -> bool {
        let Some(layer) = image.layers().get(self.range.start) else { return false };
        self.range.len() == 1
            && self.clamp_times.is_none()
            && options.level.is_none()
            && options.compression.is_none_or(|c| c == layer.compression())
            && self.excluded().iter().all(|f| f.entries_reclaimed == 0 && f.entries_hidden == 0)
            && self.uncompressed_size() == self.uncompressed_size_before()
    }

    /// Number of entries written to the new layer.
    pub fn entries_after(&self) -> usize {
        self.plan.prelude.len()
            + self.plan.steps.iter().flatten().map(|s| s.items().len()).sum::<usize>()
    }
}

/// Everything a squash will do, decided before any byte is written.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SquashPlan {
    /// The ranges, in image order; empty for a plain copy.
    pub ranges: Vec<PlannedRange>,
    /// The options the plan was made with.
    pub options: SquashOptions,
    /// The config digest of the image the plan was made for: executing it on another image is
    /// refused.
    pub(crate) made_for: Option<Digest>,
    /// Ranges of one layer that would squash to themselves: their layer is kept as it is.
    pub unchanged: Vec<LayerRange>,
    /// With `-f N` ([`crate::LayerSelector::Steps`]) over steps that made no filesystem layer:
    /// those steps (first and last, inclusive), which fold into one with
    /// [`crate::HistoryMode::Drop`].
    pub folded_steps: Option<(usize, usize)>,
}

impl SquashPlan {
    /// What each `--exclude` pattern removes, summed over the ranges (empty without patterns).
    pub fn excluded(&self) -> Vec<ExcludeFigures> {
        let mut total: Vec<ExcludeFigures> = Vec::new();
        for range in &self.ranges {
            for (i, figures) in range.excluded().iter().enumerate() {
                if total.len() <= i {
                    total.push(ExcludeFigures {
                        pattern: figures.pattern.clone(),
                        ..Default::default()
                    });
                }
                total[i].entries_reclaimed += figures.entries_reclaimed;
                total[i].bytes_reclaimed += figures.bytes_reclaimed;
                total[i].entries_hidden += figures.entries_hidden;
                total[i].bytes_hidden += figures.bytes_hidden;
            }
        }
        total
    }

    /// Whether the plan writes an image other than its input: a range to squash, or an edit of
    /// the config or manifest.
    pub fn changes_image(&self) -> bool {
        !self.ranges.is_empty() || !self.options.edits.is_empty() || self.folds_history()
    }

    /// Whether the history is rewritten beyond the ranges' own steps: with
    /// [`crate::HistoryMode::Drop`], the steps of a one-layer range kept as it is, or steps that
    /// made no layer, fold into one.
    pub fn folds_history(&self) -> bool {
        self.options.history == crate::plan::options::HistoryMode::Drop
            && (self.folded_steps.is_some() || !self.unchanged.is_empty())
    }

    /// A plan that copies `image` as it is (no range, no edit).
    pub(crate) fn copy_of(image: &Image, options: &SquashOptions) -> SquashPlan {
        let options = SquashOptions { edits: ConfigEdits::default(), ..options.clone() };
        SquashPlan {
            ranges: Vec::new(),
            options,
            made_for: Some(image.config_digest().clone()),
            unchanged: Vec::new(),
            folded_steps: None,
        }
    }

    /// Refuses `image` unless the plan was made for it.
    pub(crate) fn check_image(&self, image: &Image) -> Result<()> {
        match &self.made_for {
            Some(digest) if digest != image.config_digest() => Err(Error::InvalidOption {
                reason: format!(
                    "this plan was made for the image with config {}, not for `{}` (config {}): \
                        plan the image it writes",
                    digest.short(),
                    image.source().display(),
                    image.config_digest().short()
                ),
            }),
            _ => Ok(()),
        }
    }

    /// The digests of the layers kept as they are.
    pub fn kept_layers<'a>(&'a self, image: &'a Image) -> impl Iterator<Item = usize> + 'a {
        (0..image.layers().len())
            .filter(|i| !self.ranges.iter().any(|r| (r.range.start..=r.range.end).contains(i)))
    }
}
