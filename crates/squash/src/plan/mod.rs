//! Stage 2, planning: decides, from layer indexes alone, which ranges become which new layers,
//! which entries survive, and the exact bytes and order of every header the new layers hold.
//! A [`SquashPlan`] is plain data: `report`, `--dry-run` and `execute` all read the same object.

pub(crate) mod changeset;
pub mod edits;
pub mod exclude;
pub(crate) mod range;

use std::collections::BTreeSet;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::layer::compression::Compression;
use crate::layer::entry::EntryPath;
use crate::layer::index::LayerIndex;
use crate::read::stream::Budget;
use crate::read::Image;
use exclude::Excludes;
pub use range::{parse_layer_range, LayerRange, LayerSelector};

/// How the squashed steps appear in the new config's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HistoryMode {
    /// Keep each squashed step as an `empty_layer: true` entry (as `docker build --squash`),
    /// followed by one entry for the merged layer.
    #[default]
    KeepAsEmpty,
    /// Drop the squashed steps; only the entry for the merged layer remains.
    Drop,
}

/// What to squash and how to write it. Builder-style: `SquashOptions::default().with_selector(..)`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SquashOptions {
    /// Which layers to squash.
    pub selector: LayerSelector,
    /// Base images for `--from-layer base`.
    pub bases: Vec<Image>,
    /// Compression of the new layers; default: that of the squashed layers.
    pub compression: Option<Compression>,
    /// Compression level; default: gzip 6, zstd 3.
    pub level: Option<i32>,
    /// Threads in all, 0 for all cores: indexing, reading, decoding and compressing share
    /// them (with one or two, layers are read and decoded on the thread that uses them).
    /// Output bytes never depend on it.
    pub threads: usize,
    /// Comment of the history entry that describes a merged layer.
    pub message: Option<String>,
    /// What happens to the squashed history steps.
    pub history: HistoryMode,
    /// `SOURCE_DATE_EPOCH`: the `created` time of new history entries and of the config.
    pub source_date_epoch: Option<i64>,
    /// `--exclude` patterns (gitignore-style, anchored at the root): every path they match
    /// vanishes from the image's filesystem, with its subtree.
    pub excludes: Vec<String>,
    /// Read each layer of a range once (default): while it is indexed, newest first, what no
    /// layer above it shadows is kept in a temporary file, and the merge copies from there
    /// instead of decoding the layer again. Turn it off for a plan that will not be executed (a
    /// dry run): it then writes nothing to disk, and an execution reads the layers again.
    pub read_once: bool,
    /// Lower the times of the entries written into new layers (mtime, and PAX atime and ctime)
    /// that are later than `source_date_epoch` to it, as BuildKit's and buildah's
    /// `--rewrite-timestamp` do. Kept layers are never touched.
    pub rewrite_timestamp: bool,
    /// Changes to the config and manifest of every image written (labels, environment,
    /// entrypoint, command, working directory, user, annotations).
    pub edits: edits::ConfigEdits,
    /// How long to wait for another run's lock on an output layout (default
    /// [`crate::DEFAULT_LOCK_TIMEOUT`]).
    pub lock_timeout: Option<std::time::Duration>,
    /// Also decode every kept layer and check its diff_id (kept layers are otherwise copied with
    /// their size and sha256 checked only).
    pub verify_all: bool,
    /// Where new layers are spooled when the output is a stream, and where a range read once
    /// keeps its surviving entries ([`SquashOptions::read_once`]) (default: `TMPDIR`).
    pub tmp_dir: Option<std::path::PathBuf>,
}

impl Default for SquashOptions {
    fn default() -> SquashOptions {
        SquashOptions {
            selector: LayerSelector::default(),
            bases: Vec::new(),
            compression: None,
            level: None,
            threads: 0,
            message: None,
            history: HistoryMode::default(),
            source_date_epoch: None,
            excludes: Vec::new(),
            read_once: true,
            rewrite_timestamp: false,
            edits: edits::ConfigEdits::default(),
            lock_timeout: None,
            verify_all: false,
            tmp_dir: None,
        }
    }
}

impl SquashOptions {
    /// Whether each layer of a range is read once ([`SquashOptions::read_once`]).
    pub fn with_read_once(mut self, once: bool) -> SquashOptions {
        self.read_once = once;
        self
    }

    /// Sets the layer selector.
    pub fn with_selector(mut self, selector: LayerSelector) -> Self {
        self.selector = selector;
        self
    }
    /// Adds a base image for [`LayerSelector::Base`].
    pub fn with_base(mut self, base: Image) -> Self {
        self.bases.push(base);
        self
    }
    /// Sets the compression of new layers.
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = Some(compression);
        self
    }
    /// Sets the compression level.
    pub fn with_level(mut self, level: i32) -> Self {
        self.level = Some(level);
        self
    }
    /// Sets the worker thread count (0 = all cores).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }
    /// Sets the comment of the merged layers' history entries.
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }
    /// Sets what happens to squashed history steps.
    pub fn with_history(mut self, history: HistoryMode) -> Self {
        self.history = history;
        self
    }
    /// Sets how long to wait for another run's lock on an output layout.
    pub fn with_lock_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.lock_timeout = Some(timeout);
        self
    }
    /// Spools new layers of a streamed output into `dir`.
    pub fn with_tmp_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.tmp_dir = Some(dir.into());
        self
    }
    /// Decodes kept layers too and checks their diff_ids.
    pub fn with_verify_all(mut self, verify_all: bool) -> Self {
        self.verify_all = verify_all;
        self
    }
    /// Sets `SOURCE_DATE_EPOCH`.
    pub fn with_source_date_epoch(mut self, epoch: i64) -> Self {
        self.source_date_epoch = Some(epoch);
        self
    }
    /// Adds an `--exclude` pattern.
    pub fn with_exclude(mut self, pattern: impl Into<String>) -> Self {
        self.excludes.push(pattern.into());
        self
    }
    /// Sets the config and manifest edits.
    pub fn with_edits(mut self, edits: edits::ConfigEdits) -> Self {
        self.edits = edits;
        self
    }
    /// Lowers the new layers' times later than `SOURCE_DATE_EPOCH` to it.
    pub fn with_rewrite_timestamp(mut self, rewrite: bool) -> Self {
        self.rewrite_timestamp = rewrite;
        self
    }

    /// The time above which new layers' times are lowered, if asked for.
    pub(crate) fn clamp_times(&self) -> Result<Option<u64>> {
        if !self.rewrite_timestamp {
            return Ok(None);
        }
        match self.source_date_epoch {
            None => Err(Error::InvalidOption {
                reason: "--rewrite-timestamp needs a time: give --source-date-epoch or set SOURCE_DATE_EPOCH".into(),
            }),
            Some(epoch) => u64::try_from(epoch)
                .map(Some)
                .map_err(|_| Error::InvalidOption { reason: format!("--rewrite-timestamp: the epoch {epoch} is before 1970") }),
        }
    }
}

/// What becomes of one entry of a squashed layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "fate")]
pub enum Fate {
    /// It is in the new layer.
    Kept,
    /// A later entry at the same path (or above it) replaces it in layer `by`.
    Replaced {
        /// The image layer that replaces it.
        by: usize,
    },
    /// A whiteout in layer `by` deletes it.
    Deleted {
        /// The image layer that deletes it.
        by: usize,
    },
    /// A hard link whose target's name did not survive: it becomes the file itself.
    Converted,
    /// A whiteout or opaque marker: consumed by the merge (re-emitted only where needed).
    Marker,
    /// `--exclude` pattern `pattern` (its position among the patterns) removes it.
    Excluded {
        /// Which pattern.
        pattern: usize,
    },
    /// Reserved `.wh..wh.` metadata, which has no effect.
    Ignored,
}

impl Fate {
    /// Whether the entry's bytes are gone from the squashed image.
    pub fn is_dropped(&self) -> bool {
        matches!(self, Fate::Replaced { .. } | Fate::Deleted { .. } | Fate::Excluded { .. })
    }
}

/// One thing the merge writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    /// Header bytes held in the plan (a hoisted directory, a re-pointed hard link, a marker).
    Header(Vec<u8>),
    /// The entry at this stream position, header and data, as it is.
    Copy,
    /// The entry's data under a new header (a hard link's target renamed to the link).
    CopyWithHeader(Vec<u8>),
    /// The data of entry `entry` of image layer `layer`, below the range, under a new header (a
    /// hard link whose target the range deletes).
    CopyLower(Box<LowerCopy>),
}

/// Where the content of an [`Item::CopyLower`] is, and its new header (boxed: rare, and it would
/// make every item twice as large).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LowerCopy {
    pub layer: usize,
    pub entry: usize,
    pub stored_size: u64,
    pub header: Vec<u8>,
}

/// The items to write when the merge reaches entry `entry` of a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Step {
    pub entry: usize,
    /// Empty for the most common step, a copy of the entry alone (which then costs no allocation).
    items: Vec<Item>,
}

/// The items of a step that copies its entry and does nothing else.
static COPY_ONLY: [Item; 1] = [Item::Copy];

impl Step {
    /// A step that writes `first` (and what is pushed next).
    pub(crate) fn with(entry: usize, first: Item) -> Step {
        match first {
            Item::Copy => Step { entry, items: Vec::new() },
            other => Step { entry, items: vec![other] },
        }
    }

    /// Appends `item` to what the step writes.
    pub(crate) fn push(&mut self, item: Item) {
        if self.items.is_empty() {
            self.items.push(Item::Copy);
        }
        self.items.push(item);
    }

    /// What the step writes, in order.
    pub(crate) fn items(&self) -> &[Item] {
        if self.items.is_empty() {
            &COPY_ONLY
        } else {
            &self.items
        }
    }
}

/// The merge of one range, decided.
#[derive(Debug, Clone)]
pub(crate) struct RangePlan {
    /// Whiteout and opaque markers written first.
    pub prelude: Vec<Vec<u8>>,
    /// For each layer of the range, the steps in stream order.
    pub steps: Vec<Vec<Step>>,
    /// The fate of every entry of every layer of the range.
    pub fates: Vec<Vec<Fate>>,
    /// Exact size of the new layer's uncompressed tar.
    pub uncompressed_size: u64,
    /// Files below the range that hard links needed and the plan did not have.
    pub missing_lower: std::collections::BTreeSet<crate::layer::entry::EntryPath>,
    /// Directories the range implies, of which the plan must know whether the layers below hold
    /// them (a header is written for those they do not).
    pub missing_lower_dirs: std::collections::BTreeSet<crate::layer::entry::EntryPath>,
    /// Entries (layer of the range, entry) whose header the plan needs and the index did not
    /// keep: the plan is incomplete until they are read again and it is made anew.
    pub missing_headers: std::collections::BTreeSet<(usize, usize)>,
    /// `--exclude`: the paths to ask the layers below about (`None` when nothing is asked).
    pub missing_excluded: Option<BTreeSet<EntryPath>>,
    /// `--exclude`: what each pattern removes from this range and hides below it.
    pub excluded: Vec<exclude::ExcludeFigures>,
    /// Layers read again while planning (headers the indexes did not keep).
    pub rereads: Vec<Reread>,
}

/// A layer read again, beyond the one read of each layer a squash needs, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Reread {
    /// The image layer.
    pub layer: usize,
    /// Why.
    pub reason: String,
}

impl Reread {
    pub(crate) fn new(layer: usize, reason: &str) -> Reread {
        Reread { layer, reason: reason.to_string() }
    }
}

impl RangePlan {
    /// What the plan asked of the layers below the range (files, directories, and for
    /// `--exclude` paths), the rest of it dropped.
    fn into_questions(self) -> (BTreeSet<EntryPath>, BTreeSet<EntryPath>, Option<BTreeSet<EntryPath>>) {
        (self.missing_lower, self.missing_lower_dirs, self.missing_excluded)
    }
}

/// One planned range with what is known about it before the merge.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PlannedRange {
    /// Which layers, and why.
    pub range: LayerRange,
    /// The indexes of the range's layers (oldest first).
    pub indexes: Vec<LayerIndex>,
    /// Compression of the new layer.
    pub compression: Compression,
    /// Times of the new layer's entries later than this are lowered to it
    /// ([`SquashOptions::rewrite_timestamp`]).
    pub clamp_times: Option<u64>,
    pub(crate) plan: RangePlan,
    /// With [`SquashOptions::read_once`]: what each layer's one read kept for the merge.
    pub(crate) kept: Option<std::sync::Arc<Vec<crate::read::once::Kept>>>,
}

impl PlannedRange {
    /// What each `--exclude` pattern removes from the range and hides below it, in the order
    /// of the patterns (empty without patterns).
    pub fn excluded(&self) -> &[exclude::ExcludeFigures] {
        &self.plan.excluded
    }
    /// Exact size of the new layer's uncompressed tar.
    pub fn uncompressed_size(&self) -> u64 {
        self.plan.uncompressed_size
    }
    /// Uncompressed bytes of the range's layers before the squash.
    pub fn uncompressed_size_before(&self) -> u64 {
        self.indexes.iter().map(|i| i.uncompressed_size).sum()
    }
    /// Stored (compressed) bytes of the range's layers before the squash.
    pub fn compressed_size_before(&self) -> u64 {
        self.indexes.iter().map(|i| i.compressed_size).sum()
    }
    /// The fate of entry `entry` of the range's `layer`-th layer (0 = oldest of the range).
    pub fn fates(&self) -> &[Vec<Fate>] {
        &self.plan.fates
    }
    /// Layers read again while planning, beyond one read of each layer of the range.
    pub fn rereads(&self) -> &[Reread] {
        &self.plan.rereads
    }
    /// Number of entries written to the new layer.
    pub fn entries_after(&self) -> usize {
        self.plan.prelude.len() + self.plan.steps.iter().flatten().map(|s| s.items().len()).sum::<usize>()
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
    pub(crate) made_for: Option<crate::digest::Digest>,
}

impl SquashPlan {
    /// What each `--exclude` pattern removes, summed over the ranges (empty without patterns).
    pub fn excluded(&self) -> Vec<exclude::ExcludeFigures> {
        let mut total: Vec<exclude::ExcludeFigures> = Vec::new();
        for range in &self.ranges {
            for (i, figures) in range.excluded().iter().enumerate() {
                if total.len() <= i {
                    total.push(exclude::ExcludeFigures { pattern: figures.pattern.clone(), ..Default::default() });
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
        !self.ranges.is_empty() || !self.options.edits.is_empty()
    }

    /// A plan that copies `image` as it is (no range, no edit).
    pub(crate) fn copy_of(image: &Image, options: &SquashOptions) -> SquashPlan {
        let options = SquashOptions { edits: edits::ConfigEdits::default(), ..options.clone() };
        SquashPlan { ranges: Vec::new(), options, made_for: Some(image.config_digest().clone()) }
    }

    /// Refuses `image` unless the plan was made for it.
    pub(crate) fn check_image(&self, image: &Image) -> Result<()> {
        match &self.made_for {
            Some(digest) if digest != image.config_digest() => Err(Error::InvalidOption {
                reason: format!(
                    "this plan was made for the image with config {}, not for `{}` (config {}): plan the image it writes",
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
        (0..image.layers().len()).filter(|i| !self.ranges.iter().any(|r| (r.range.start..=r.range.end).contains(i)))
    }
}

impl Image {
    /// Resolves the options' selector into ranges, indexes those layers (reading headers only,
    /// verifying digests) and decides the merge of each range.
    ///
    /// ```no_run
    /// use squash::{Image, LayerSelector, SquashOptions};
    ///
    /// let image = Image::open("app.tar")?;
    /// let options = SquashOptions::default().with_selector(LayerSelector::Base).with_base(Image::open("base.tar")?);
    /// let plan = image.plan(&options)?;
    /// for range in &plan.ranges {
    ///     println!("{}: {} bytes after", range.range, range.uncompressed_size());
    /// }
    /// # Ok::<(), squash::Error>(())
    /// ```
    pub fn plan(&self, options: &SquashOptions) -> Result<SquashPlan> {
        self.plan_with_progress(options, &crate::write::NoProgress)
    }

    /// [`Image::plan`], telling `progress` about the layers it indexes
    /// ([`Event::Indexing`](crate::Event::Indexing), [`Event::Indexed`](crate::Event::Indexed)).
    pub fn plan_with_progress(&self, options: &SquashOptions, progress: &dyn crate::write::Progress) -> Result<SquashPlan> {
        let ranges = range::resolve(self, &options.selector, &options.bases)?;
        let clamp_times = options.clamp_times()?;
        let exclude = Excludes::new(&options.excludes)?;
        if !exclude.is_empty() {
            self.check_excludes_above(&ranges, &exclude, options.threads, progress)?;
        }
        let mut planned = Vec::with_capacity(ranges.len());
        for range in ranges {
            let (mut indexes, kept) = if options.read_once {
                let (indexes, kept) =
                    self.index_range_once(range.start..=range.end, options.threads, progress, options.tmp_dir.as_deref())?;
                (indexes, Some(std::sync::Arc::new(kept)))
            } else {
                (self.index_layers_reporting(range.start..=range.end, options.threads, progress)?, None)
            };
            let plan = self.plan_indexes(&mut indexes, options.threads, progress, &exclude, kept.as_deref().map(Vec::as_slice), None)?;
            let compression = options.compression.unwrap_or_else(|| default_compression(self, &range));
            check_level(compression, options.level)?;
            planned.push(PlannedRange { range, indexes, compression, clamp_times, plan, kept });
        }
        Ok(SquashPlan { ranges: planned, options: options.clone(), made_for: Some(self.config_digest().clone()) })
    }
}

impl Image {
    /// `--exclude` can remove what lies in squashed ranges and in kept layers below the top-most
    /// one, not what a kept layer above every range still holds at the end: that is refused.
    fn check_excludes_above(
        &self,
        ranges: &[LayerRange],
        exclude: &Excludes,
        threads: usize,
        progress: &dyn crate::write::Progress,
    ) -> Result<()> {
        let Some(top) = ranges.last() else {
            return Err(Error::InvalidOption {
                reason: "--exclude removes paths while squashing: choose the layers to squash (--from-layer, --layers or --all)".into(),
            });
        };
        let above = top.end + 1..self.layers().len();
        if above.is_empty() {
            return Ok(());
        }
        let indexes = self.index_layers_reporting(above.clone(), threads, progress)?;
        if let Some((layer, entry, pattern)) = changeset::excluded_above(&indexes, exclude)? {
            let index = &indexes[layer];
            let pattern = exclude.patterns().nth(pattern).unwrap_or_default();
            return Err(Error::InvalidOption {
                reason: format!(
                    "--exclude `{pattern}`: `{}` is in layer {}, which is kept above every squashed range; removing it would mean rewriting that layer: squash up to layer {} (for example --layers {}..{})",
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

    /// Plans a range from its indexes; when hard links in it need files of the layers below
    /// (their names deleted by the range), or when it implies directories that nothing it writes
    /// creates, indexes the layers below too and plans again (or asks `held`, the whole indexes
    /// of every layer below, when the caller has them: `report` does). Headers the indexes did
    /// not keep and the plan needs (a file whose name a link outlives) are read again first.
    pub(crate) fn plan_indexes(
        &self,
        indexes: &mut [LayerIndex],
        threads: usize,
        progress: &dyn crate::write::Progress,
        exclude: &Excludes,
        kept: Option<&[crate::read::once::Kept]>,
        held: Option<&mut [LayerIndex]>,
    ) -> Result<RangePlan> {
        let mut rereads = Vec::new();
        let mut plan = self.plan_indexes_counting(indexes, threads, progress, exclude, kept, held, &mut rereads)?;
        plan.rereads = rereads;
        Ok(plan)
    }

    #[expect(clippy::too_many_arguments, reason = "one range's planning state, kept private")]
    fn plan_indexes_counting(
        &self,
        indexes: &mut [LayerIndex],
        threads: usize,
        progress: &dyn crate::write::Progress,
        exclude: &Excludes,
        kept: Option<&[crate::read::once::Kept]>,
        held: Option<&mut [LayerIndex]>,
        rereads: &mut Vec<Reread>,
    ) -> Result<RangePlan> {
        let budget = Budget::new(threads);
        let plan = self.plan_with_headers(indexes, &Default::default(), exclude, budget, kept, rereads)?;
        if plan.missing_lower.is_empty() && plan.missing_lower_dirs.is_empty() && plan.missing_excluded.is_none() {
            return Ok(plan);
        }
        // Only what the first plan asked for is kept while the layers below are read (the rest
        // of it is dropped here, not at the end of the function).
        let (mut files, mut dirs, asked) = plan.into_questions();
        let start = indexes.first().map(|i| i.layer).unwrap_or(0);
        if let Some(asked) = asked {
            let questions = Questions { files, dirs, asked };
            return self.plan_excluding(indexes, start, questions, threads, progress, exclude, kept, held, rereads);
        }
        let lower = match held {
            Some(held) => self.resolve_lower(held, &mut files, &mut dirs, budget, rereads)?,
            None => {
                // Only directories asked about: the indexes keep only what their answer depends on.
                let query = files.is_empty().then(|| changeset::DirQuery::new(&dirs));
                let filter = query.as_ref().map(|q| q as &dyn crate::layer::index::EntryFilter);
                let mut lower_indexes = self.index_layers_filtered(0..start, threads, progress, filter)?;
                self.resolve_lower(&mut lower_indexes, &mut files, &mut dirs, budget, rereads)?
            }
        };
        let plan = self.plan_with_headers(indexes, &lower, exclude, budget, kept, rereads)?;
        match plan.missing_lower.first() {
            None => Ok(plan),
            Some(target) => Err(no_link_target(indexes, target)),
        }
    }

    /// What the layers below need to tell about `files` and `dirs`, headers read again if needed.
    fn resolve_lower(
        &self,
        lower_indexes: &mut [LayerIndex],
        files: &mut BTreeSet<EntryPath>,
        dirs: &mut BTreeSet<EntryPath>,
        budget: Budget,
        rereads: &mut Vec<Reread>,
    ) -> Result<changeset::Lower> {
        let mut lower = changeset::resolve_lower(lower_indexes, files, dirs)?;
        if !lower.missing_headers.is_empty() {
            self.restore_headers(lower_indexes, &lower.missing_headers, budget, None, rereads)?;
            lower = changeset::resolve_lower(lower_indexes, files, dirs)?;
        }
        Ok(lower)
    }

    /// [`Image::plan_indexes`] with `--exclude` patterns: the layers below are indexed whole, and
    /// asked again (with the parents of every whiteout the patterns add) until the plan needs
    /// nothing more of them.
    #[expect(clippy::too_many_arguments, reason = "one range's planning state, kept private")]
    fn plan_excluding(
        &self,
        indexes: &mut [LayerIndex],
        start: usize,
        questions: Questions,
        threads: usize,
        progress: &dyn crate::write::Progress,
        exclude: &Excludes,
        kept: Option<&[crate::read::once::Kept]>,
        held: Option<&mut [LayerIndex]>,
        rereads: &mut Vec<Reread>,
    ) -> Result<RangePlan> {
        let Questions { mut files, mut dirs, mut asked } = questions;
        let budget = Budget::new(threads);
        let mut indexed;
        let lower_indexes: &mut [LayerIndex] = match held {
            Some(held) => held,
            None => {
                indexed = self.index_layers_reporting(0..start, threads, progress)?;
                &mut indexed
            }
        };
        for _ in 0..4 {
            let excluded = changeset::resolve_excluded(lower_indexes, &asked, exclude)?;
            // The parent of every whiteout the patterns may add, so that each is written where the
            // layers below hold its directory.
            dirs.extend(asked.iter().chain(excluded.tops.iter().map(|t| &t.0)).filter_map(|p| p.parent()).filter(|p| !p.is_root()));
            let mut lower = self.resolve_lower(lower_indexes, &mut files, &mut dirs, budget, rereads)?;
            lower.excluded = Some(excluded);
            let plan = self.plan_with_headers(indexes, &lower, exclude, budget, kept, rereads)?;
            let new_files: Vec<EntryPath> = plan.missing_lower.iter().filter(|f| !files.contains(*f)).cloned().collect();
            if plan.missing_lower.is_empty() {
                return Ok(plan);
            }
            if new_files.is_empty() {
                return Err(no_link_target(indexes, plan.missing_lower.first().unwrap_or(&EntryPath::root())));
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
    fn plan_with_headers(
        &self,
        indexes: &mut [LayerIndex],
        lower: &changeset::Lower,
        exclude: &Excludes,
        budget: Budget,
        kept: Option<&[crate::read::once::Kept]>,
        rereads: &mut Vec<Reread>,
    ) -> Result<RangePlan> {
        let plan = changeset::plan_range(indexes, lower, exclude)?;
        if plan.missing_headers.is_empty() {
            return Ok(plan);
        }
        self.restore_headers(indexes, &plan.missing_headers, budget, kept, rereads)?;
        let plan = changeset::plan_range(indexes, lower, exclude)?;
        match plan.missing_headers.first() {
            None => Ok(plan),
            Some((layer, entry)) => Err(Error::Output {
                location: indexes.get(*layer).map(|i| i.location.clone()).unwrap_or_default(),
                reason: format!("internal error: the header of entry {entry} is still missing after reading the layer again"),
            }),
        }
    }
}

/// What a first plan asked of the layers below: files, directories, and `--exclude` paths.
struct Questions {
    files: BTreeSet<EntryPath>,
    dirs: BTreeSet<EntryPath>,
    asked: BTreeSet<EntryPath>,
}

/// A hard link of the range whose target neither the range nor the layers below hold.
fn no_link_target(indexes: &[LayerIndex], target: &EntryPath) -> Error {
    let location = indexes.first().map(|i| i.location.clone()).unwrap_or_default();
    Error::MalformedTar { location, reason: format!("hard link target `{}` exists in no layer", target.display()) }
}

/// Refuses a level the chosen compression does not have.
pub(crate) fn check_level(compression: Compression, level: Option<i32>) -> Result<()> {
    let Some(level) = level else { return Ok(()) };
    let (low, high) = match compression {
        Compression::None => {
            return Err(Error::InvalidOption { reason: format!("--level {level} has no meaning with --compression none") })
        }
        Compression::Gzip => (1, 9),
        Compression::Zstd => (1, 22),
    };
    if (low..=high).contains(&level) {
        Ok(())
    } else {
        Err(Error::InvalidOption { reason: format!("--level {level} is out of range for {compression} (levels {low} to {high})") })
    }
}

/// The new layer keeps the squashed layers' compression (SPEC-NOTES rule 13): the most common
/// one among them, the newest winning ties.
pub(crate) fn default_compression(image: &Image, range: &LayerRange) -> Compression {
    let layers = &image.layers()[range.start..=range.end];
    let count = |c: Compression| layers.iter().filter(|l| l.compression() == c).count();
    let mut best = layers.last().map(|l| l.compression()).unwrap_or(Compression::Gzip);
    for c in [Compression::Gzip, Compression::Zstd, Compression::None] {
        if count(c) > count(best) {
            best = c;
        }
    }
    best
}
