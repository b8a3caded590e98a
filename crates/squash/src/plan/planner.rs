//! Planning an image: the selector resolved into ranges, each range's layers read once (newest
//! first, what can survive kept for the merge), and the changeset rules asked to decide; when a
//! decision needs the layers below the range (hard links whose names the range deletes,
//! directories it implies, `--exclude`) or headers the indexes did not keep, those are read and
//! the range decided again. This is where planning meets reading: the decisions themselves are
//! the pure functions of `changeset`.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::changeset::emit::plan_range;
use super::changeset::exclude::{excluded_above, resolve_excluded};
use super::changeset::lower::{resolve_lower, DirQuery, Lower};
use super::changeset::range_plan::RangePlan;
use super::exclude::Excludes;
use super::options::{check_level, default_compression, SquashOptions};
use super::range::{resolve, LayerRange, LayerSelector};
use super::squash_plan::{PlannedRange, SquashPlan};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::layer::entry::EntryPath;
use crate::layer::layer_index::{EntryFilter, LayerIndex};
use crate::page_cache::CacheBudget;
use crate::read::image::Image;
use crate::read::once::Kept;
use crate::read::reread::Reread;

impl Image {
    /// Resolves the options' selector into ranges, indexes those layers (reading headers only,
    /// verifying digests) and decides the merge of each range.
    ///
    /// ```no_run
    /// use squash::{Image, LayerSelector, SquashOptions};
    ///
    /// let image = Image::open("app.tar")?;
    /// let base = Image::open("base.tar")?;
    /// let options = SquashOptions::default().with_selector(LayerSelector::Base).with_base(base);
    /// let plan = image.plan(&options)?;
    /// for range in &plan.ranges {
    ///     println!("{}: {} bytes after", range.range, range.uncompressed_size());
    /// }
    /// # Ok::<(), squash::Error>(())
    /// ```
    pub fn plan(&self, options: &SquashOptions) -> Result<SquashPlan> {
        self.plan_in(options, &Context::new())
    }

    /// [`Image::plan`] within `context`: its threads, its temporary directory (for the copies a
    /// range's one read keeps), and its progress, which hears of the layers indexed
    /// ([`Event::Indexing`](crate::Event::Indexing), [`Event::Indexed`](crate::Event::Indexed)).
    pub fn plan_in(&self, options: &SquashOptions, context: &Context<'_>) -> Result<SquashPlan> {
        let ranges = resolve(self, &options.selector, &options.bases)?;
        // A refusal of the options comes before any layer is read.
        options.clamp_times()?;
        let exclude = Excludes::new(&options.excludes)?;
        if !exclude.is_empty() {
            self.check_excludes_above(&ranges, &exclude, context)?;
        }
        let mut planned = Vec::with_capacity(ranges.len());
        let cache = CacheBudget::for_kept_copies();
        for range in ranges {
            let (indexes, kept) = if options.read_once {
                let (indexes, kept) =
                    self.index_range_once(range.start..=range.end, (context, &cache), false)?;
                (indexes, Some(Arc::new(kept)))
            } else {
                (self.index_layers_in(range.start..=range.end, context)?, None)
            };
            planned.push(self.plan_range(
                RangeRead { range, indexes, kept },
                None,
                options,
                &exclude,
                context,
            )?);
        }
        // A range of one layer that nothing rewrites squashes to itself: the layer is kept as
        // it is (the same blob, still shared), not written again under another digest.
        let (unchanged, planned): (Vec<PlannedRange>, Vec<PlannedRange>) =
            planned.into_iter().partition(|r| r.squashes_to_itself(self, options));
        // -f N over steps that made no filesystem layer: only the history can change.
        let fold = match (&options.selector, planned.is_empty() && unchanged.is_empty()) {
            (LayerSelector::Steps(n), true) => {
                let steps = self.history().len();
                Some((steps - n, steps - 1))
            }
            _ => None,
        };
        Ok(SquashPlan {
            ranges: planned,
            options: options.clone(),
            made_for: Some(self.config_digest().clone()),
            unchanged: unchanged.into_iter().map(|r| r.range).collect(),
            folded_steps: fold,
        })
    }

    /// Decides one range from what reading it gave: the merge, the new layer's compression and
    /// the times to clamp. `held`: the whole indexes of every layer below the range, when the
    /// caller has them (a report does), which the plan then asks instead of reading them.
    pub(crate) fn plan_range(
        &self,
        read: RangeRead,
        held: Option<&mut [LayerIndex]>,
        options: &SquashOptions,
        exclude: &Excludes,
        context: &Context<'_>,
    ) -> Result<PlannedRange> {
        let RangeRead { range, mut indexes, kept } = read;
        let clamp_times = options.clamp_times()?;
        let mut planner = Planner {
            image: self,
            context,
            exclude,
            kept: kept.as_deref().map(Vec::as_slice),
            rereads: Vec::new(),
        };
        let mut plan = planner.plan(&mut indexes, held)?;
        plan.rereads = planner.rereads;
        let compression = options.compression.unwrap_or_else(|| default_compression(self, &range));
        check_level(compression, options.level)?;
        let sizes_before = indexes
            .iter()
            .fold((0, 0), |(u, c), i| (u + i.uncompressed_size, c + i.compressed_size));
        Ok(PlannedRange { range, indexes, sizes_before, compression, clamp_times, plan, kept })
    }

    /// `--exclude` can remove what lies in squashed ranges and in kept layers below the top-most
    /// one, not what a kept layer above every range still holds at the end: that is refused.
    fn check_excludes_above(
        &self,
        ranges: &[LayerRange],
        exclude: &Excludes,
        context: &Context<'_>,
    ) -> Result<()> {
        let Some(top) = ranges.last() else {
            return Err(Error::InvalidOption {
                reason: "--exclude removes paths while squashing: choose the layers to squash \
                    (--from-layer, --layers or --all)"
                    .into(),
            });
        };
        let above = top.end + 1..self.layers().len();
        if above.is_empty() {
            return Ok(());
        }
        let indexes = self.index_layers_in(above.clone(), context)?;
        if let Some((layer, entry, pattern)) = excluded_above(&indexes, exclude)? {
            let index = &indexes[layer];
            let pattern = exclude.patterns().nth(pattern).unwrap_or_default();
            return Err(Error::InvalidOption {
                reason: format!(
                    "--exclude `{pattern}`: `{}` is in layer {}, which is kept above every \
                     squashed range; removing it would mean rewriting that layer: squash up to \
                     layer {} (for example --layers {}..{})",
                    index.entries[entry].path.display(),
                    index.layer,
                    self.layers().len() - 1,
                    top.start,
                    self.layers().len() - 1
                ),
            });
        }
        Ok(())
    }
}

/// What reading a range gave: its layers' indexes (oldest first) and, when it was read once,
/// what each layer's read kept for the merge.
pub(crate) struct RangeRead {
    pub range: LayerRange,
    pub indexes: Vec<LayerIndex>,
    pub kept: Option<Arc<Vec<Kept>>>,
}

/// Why a range's plan reads the layers below it, when it asks them about directories.
const LOWER_FOR_DIRS: &str = "directories the range writes or implies: which of them the layers \
                              below hold (a whiteout inside one they do not hold is left out)";

/// One range's planning: the image it reads from, the run's context, the `--exclude` patterns,
/// what the range's one read kept, and the layers read again on the way.
struct Planner<'a, 'c> {
    image: &'a Image,
    context: &'a Context<'c>,
    exclude: &'a Excludes,
    kept: Option<&'a [Kept]>,
    rereads: Vec<Reread>,
}

/// What a first plan asked of the layers below: files, directories, and `--exclude` paths.
struct Questions {
    files: BTreeSet<EntryPath>,
    dirs: BTreeSet<EntryPath>,
    asked: BTreeSet<EntryPath>,
}

impl Planner<'_, '_> {
    /// Plans a range from its indexes; when hard links in it need files of the layers below
    /// (their names deleted by the range), or when it implies directories that nothing it writes
    /// creates, indexes the layers below too and plans again (or asks `held`, the whole indexes
    /// of every layer below, when the caller has them). Headers the indexes did not keep and the
    /// plan needs (a file whose name a link outlives) are read again first.
    fn plan(
        &mut self,
        indexes: &mut [LayerIndex],
        held: Option<&mut [LayerIndex]>,
    ) -> Result<RangePlan> {
        let plan = self.with_headers(indexes, &Lower::default())?;
        if plan.missing_lower.is_empty()
            && plan.missing_lower_dirs.is_empty()
            && plan.missing_excluded.is_none()
        {
            return Ok(plan);
        }
        // Only what the first plan asked for is kept while the layers below are read (the rest
        // of it is dropped here, not at the end of the function).
        let (mut files, mut dirs, asked) = plan.into_questions();
        let start = indexes.first().map(|i| i.layer).unwrap_or(0);
        if let Some(asked) = asked {
            return self.excluding(indexes, start, Questions { files, dirs, asked }, held);
        }
        let lower = match held {
            Some(held) => self.lower(held, &mut files, &mut dirs)?,
            None => {
                // Only directories asked about: the indexes keep only what their answer depends on.
                let query = files.is_empty().then(|| DirQuery::new(&dirs));
                let filter = query.as_ref().map(|q| q as &dyn EntryFilter);
                let reason = if files.is_empty() {
                    LOWER_FOR_DIRS
                } else {
                    "files that hard links of the range reach, whose names the range deletes"
                };
                self.rereads.extend((0..start).map(|layer| Reread::new(layer, reason)));
                let mut lower_indexes =
                    self.image.index_layers_filtered(0..start, self.context, filter, false)?;
                self.lower(&mut lower_indexes, &mut files, &mut dirs)?
            }
        };
        let plan = self.with_headers(indexes, &lower)?;
        match plan.missing_lower.first() {
            None => Ok(plan),
            Some(target) => Err(no_link_target(indexes, target)),
        }
    }

    /// What the layers below need to tell about `files` and `dirs`, headers read again if needed.
    fn lower(
        &mut self,
        lower_indexes: &mut [LayerIndex],
        files: &mut BTreeSet<EntryPath>,
        dirs: &mut BTreeSet<EntryPath>,
    ) -> Result<Lower> {
        let mut lower = resolve_lower(lower_indexes, files, dirs)?;
        if !lower.missing_headers.is_empty() {
            self.image.restore_headers(
                lower_indexes,
                &lower.missing_headers,
                self.context.budget(),
                None,
                &mut self.rereads,
            )?;
            lower = resolve_lower(lower_indexes, files, dirs)?;
        }
        Ok(lower)
    }

    /// [`Planner::plan`] with `--exclude` patterns: the layers below are indexed whole, and
    /// asked again (with the parents of every whiteout the patterns add) until the plan needs
    /// nothing more of them.
    fn excluding(
        &mut self,
        indexes: &mut [LayerIndex],
        start: usize,
        questions: Questions,
        held: Option<&mut [LayerIndex]>,
    ) -> Result<RangePlan> {
        let Questions { mut files, mut dirs, mut asked } = questions;
        let mut indexed;
        let lower_indexes: &mut [LayerIndex] = match held {
            Some(held) => held,
            None => {
                self.rereads.extend((0..start).map(|layer| {
                    Reread::new(layer, "--exclude: what the layers below hold that it covers")
                }));
                indexed = self.image.index_layers_in(0..start, self.context)?;
                &mut indexed
            }
        };
        for _ in 0..4 {
            let excluded = resolve_excluded(lower_indexes, &asked, self.exclude)?;
            // The parent of every whiteout the patterns may add, so that each is written where the
            // layers below hold its directory.
            dirs.extend(
                asked
                    .iter()
                    .chain(excluded.tops.iter().map(|t| &t.0))
                    .filter_map(|p| p.parent())
                    .filter(|p| !p.is_root()),
            );
            let mut lower = self.lower(lower_indexes, &mut files, &mut dirs)?;
            lower.excluded = Some(excluded);
            let plan = self.with_headers(indexes, &lower)?;
            let new_files: Vec<EntryPath> =
                plan.missing_lower.iter().filter(|f| !files.contains(*f)).cloned().collect();
            if plan.missing_lower.is_empty() {
                return Ok(plan);
            }
            if new_files.is_empty() {
                return Err(no_link_target(
                    indexes,
                    plan.missing_lower.first().unwrap_or(&EntryPath::root()),
                ));
            }
            files.extend(new_files);
            asked.extend(plan.missing_excluded.into_iter().flatten());
        }
        Err(Error::Output {
            location: indexes.first().map(|i| i.location.clone()).unwrap_or_default(),
            reason: "internal error: --exclude planning did not settle".into(),
        })
    }

    /// Plans `indexes` over `lower`; if the plan needs headers the indexes did not keep, reads
    /// them again and plans anew.
    fn with_headers(&mut self, indexes: &mut [LayerIndex], lower: &Lower) -> Result<RangePlan> {
        let plan = plan_range(indexes, lower, self.exclude)?;
        if plan.missing_headers.is_empty() {
            return Ok(plan);
        }
        self.image.restore_headers(
            indexes,
            &plan.missing_headers,
            self.context.budget(),
            self.kept,
            &mut self.rereads,
        )?;
        let plan = plan_range(indexes, lower, self.exclude)?;
        match plan.missing_headers.first() {
            None => Ok(plan),
            Some((layer, entry)) => Err(Error::Output {
                location: indexes.get(*layer).map(|i| i.location.clone()).unwrap_or_default(),
                reason: format!(
                    "internal error: the header of entry {entry} is still missing \
                    after reading the layer again"
                ),
            }),
        }
    }
}

/// A hard link of the range whose target neither the range nor the layers below hold.
fn no_link_target(indexes: &[LayerIndex], target: &EntryPath) -> Error {
    let location = indexes.first().map(|i| i.location.clone()).unwrap_or_default();
    Error::MalformedTar {
        location,
        reason: format!("hard link target `{}` exists in no layer", target.display()),
    }
}
