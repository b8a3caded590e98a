//! `Report`: how many bytes each layer wastes (content that later layers shadow or delete, so no
//! container sees it), which paths waste them, and what squashing a range would reclaim. A view
//! of plans made over the layer indexes; it writes nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::layer::index::{EntryClass, LayerIndex};
use crate::plan::changeset::plan_range;
use crate::plan::{range, Fate, LayerRange, LayerSelector, SquashOptions};
use crate::read::Image;

/// Figures for one layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LayerReport {
    /// Position in the image.
    pub index: usize,
    /// The history step that made it.
    pub created_by: Option<String>,
    /// Stored blob size.
    pub compressed_size: u64,
    /// Uncompressed tar size.
    pub uncompressed_size: u64,
    /// Entries at paths no lower layer of the image had.
    pub added: usize,
    /// Entries of lower layers this layer replaces.
    pub changed: usize,
    /// Whiteout and opaque markers.
    pub deleted: usize,
    /// File bytes of this layer that later layers shadow or delete.
    pub wasted_bytes: u64,
    /// File bytes of this layer that stay visible.
    pub kept_bytes: u64,
    /// Whether the layer is part of the base image (kept as is by a squash).
    pub base: bool,
    /// Uncompressed tar bytes of this layer that the squash described by the options drops:
    /// its size less what the new layer writes while copying from it (0 for a layer it keeps).
    #[serde(default)]
    pub reclaimed_bytes: u64,
    /// Stored bytes the squash reclaims from this layer: its blob size less its share of the
    /// new layer's compressed size (measured like [`RangeReport::compressed_size_after_estimate`]).
    #[serde(default)]
    pub reclaimed_compressed_bytes: u64,
}

/// A path whose content is stored more than once or deleted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WastedPath {
    /// The path.
    pub path: String,
    /// How many copies the image stores (including the surviving one, if any).
    pub copies: usize,
    /// Bytes a full squash reclaims: every copy except the survivor.
    pub reclaimable_bytes: u64,
    /// Layers holding a copy.
    pub layers: Vec<usize>,
}

/// What squashing a range would do, before and after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RangeReport {
    /// The range and why it was chosen.
    pub range: LayerRange,
    /// Stored bytes of the range's layers.
    pub compressed_size_before: u64,
    /// Uncompressed bytes of the range's layers.
    pub uncompressed_size_before: u64,
    /// Exact uncompressed size of the new layer.
    pub uncompressed_size_after: u64,
    /// Stored size of the new layer: estimated by compressing samples of it with the real
    /// encoder (see [`RangeReport::sampled_bytes`]), or exact with [`ReportOptions::exact`].
    pub compressed_size_after_estimate: u64,
    /// Compression of the new layer.
    #[serde(default = "default_compression")]
    pub compression: crate::layer::compression::Compression,
    /// Uncompressed bytes of the new layer that were compressed to estimate its size (all of
    /// them when it is small; 0 when exact or uncompressed).
    #[serde(default)]
    pub sampled_bytes: u64,
    /// With [`ReportOptions::exact`]: the exact stored size of the new layer, as a squash with the
    /// same options writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compressed_size_after_exact: Option<u64>,
    /// With [`ReportOptions::exact`]: the new layer's blob digest, as a squash with the same
    /// options writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest_after: Option<crate::digest::Digest>,
    /// Uncompressed bytes reclaimed as a percentage of the non-base part of the image.
    pub reclaimed_percent: f64,
    /// What each `--exclude` pattern would remove from the range and hide below it (left out
    /// when none was given).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded: Vec<crate::plan::exclude::ExcludeFigures>,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Report {
    /// Every layer, base first.
    pub layers: Vec<LayerReport>,
    /// The paths wasting the most bytes, largest first.
    pub wasted_paths: Vec<WastedPath>,
    /// File bytes wasted across the image.
    pub wasted_bytes: u64,
    /// File bytes wasted outside the base layers.
    pub wasted_bytes_non_base: u64,
    /// Wasted bytes as a percentage of the file bytes outside the base layers.
    pub wasted_percent: f64,
    /// Share of stored file bytes that stay visible (1.0 = nothing wasted).
    pub efficiency: f64,
    /// The squash the options describe.
    pub squash: Vec<RangeReport>,
    /// Visible file bytes under the clutter rules' paths ([`ClutterRule`]): still in the final
    /// filesystem, so not wasted, and not reclaimed by a squash unless `--exclude` removes them.
    #[serde(default)]
    pub clutter_bytes: u64,
    /// The part of [`Report::clutter_bytes`] that layers outside the base added.
    #[serde(default)]
    pub clutter_bytes_non_base: u64,
    /// Each rule that matched something, largest first.
    #[serde(default)]
    pub clutter: Vec<Clutter>,
    /// The matched paths holding the most clutter, largest first.
    #[serde(default)]
    pub clutter_paths: Vec<ClutterPath>,
}

fn default_compression() -> crate::layer::compression::Compression {
    crate::layer::compression::Compression::Gzip
}

/// A kind of clutter: files that stay visible in an image and that guides on image size say to
/// drop (package lists and caches, byte code, docs). `pattern` is an `--exclude` glob that
/// removes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ClutterRule {
    /// A short name (`apt lists`).
    pub name: String,
    /// The `--exclude` pattern that matches it.
    pub pattern: String,
}

impl ClutterRule {
    /// A rule named `name` matching `pattern` (an `--exclude` glob).
    pub fn new(name: impl Into<String>, pattern: impl Into<String>) -> ClutterRule {
        ClutterRule { name: name.into(), pattern: pattern.into() }
    }

    /// The built-in list (README "Clutter" lists it): package manager lists and caches,
    /// language caches, byte code, documentation and temporary directories.
    pub fn defaults() -> Vec<ClutterRule> {
        [
            ("apt lists", "var/lib/apt/lists/*"),
            ("apt cache", "var/cache/apt/*"),
            ("apk cache", "var/cache/apk/*"),
            ("dnf cache", "var/cache/dnf/*"),
            ("yum cache", "var/cache/yum/*"),
            ("pip cache", "**/.cache/pip"),
            ("python byte code", "**/__pycache__"),
            ("npm cache", "**/.npm"),
            ("yarn cache", "**/.cache/yarn"),
            ("go build cache", "**/.cache/go-build"),
            ("cargo registry", "**/.cargo/registry"),
            ("docs", "usr/share/doc/*"),
            ("man pages", "usr/share/man/*"),
            ("info pages", "usr/share/info/*"),
            ("tmp", "tmp/*"),
            ("var/tmp", "var/tmp/*"),
        ]
        .into_iter()
        .map(|(name, pattern)| ClutterRule::new(name, pattern))
        .collect()
    }
}

/// The bytes of one layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LayerBytes {
    /// The layer.
    pub layer: usize,
    /// Its bytes.
    pub bytes: u64,
}

/// What one clutter rule matched in the final filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Clutter {
    /// The rule's name.
    pub rule: String,
    /// The `--exclude` pattern that removes it.
    pub pattern: String,
    /// Visible files with content it covers.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The bytes of those files that lie in squashed layers: a squash with `--exclude` drops
    /// them; the rest stays stored in the base (or kept layers), hidden by a whiteout.
    pub reclaimable_bytes: u64,
    /// Which layers added them, and how many bytes each.
    pub layers: Vec<LayerBytes>,
}

/// One path a clutter rule matched (a directory with what lies below it, or a file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ClutterPath {
    /// The path.
    pub path: String,
    /// The rule's name.
    pub rule: String,
    /// Visible files with content at or below it.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Which layers added them.
    pub layers: Vec<LayerBytes>,
}

/// What a report measures beyond the squash options: how many paths to list, whether the new
/// layers' compressed sizes are measured exactly, and the clutter rules.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReportOptions {
    /// How many wasteful paths, and clutter paths, to list.
    pub top_paths: usize,
    /// Run the real encoder over each new layer (into a sink that counts and hashes, on every
    /// thread) instead of compressing samples: exact sizes and digests, at the cost of a full
    /// compression.
    pub exact: bool,
    /// The clutter rules ([`ClutterRule::defaults`] unless changed).
    pub clutter: Vec<ClutterRule>,
    /// Without `exact`: about this many uncompressed bytes of each new layer are compressed
    /// to estimate its size, in pieces spread evenly over it; a smaller layer is compressed
    /// whole. More is slower and closer. `None` (the default): 256 MiB for zstd up to level 9,
    /// 64 MiB for gzip and higher zstd levels.
    pub sample_bytes: Option<u64>,
}

impl Default for ReportOptions {
    fn default() -> ReportOptions {
        ReportOptions { top_paths: 20, exact: false, clutter: ClutterRule::defaults(), sample_bytes: None }
    }
}

impl ReportOptions {
    /// Lists `top` paths.
    pub fn with_top_paths(mut self, top: usize) -> ReportOptions {
        self.top_paths = top;
        self
    }
    /// Measures compressed sizes exactly.
    pub fn with_exact(mut self, exact: bool) -> ReportOptions {
        self.exact = exact;
        self
    }
    /// Compresses about `bytes` of each new layer to estimate its size.
    pub fn with_sample_bytes(mut self, bytes: u64) -> ReportOptions {
        self.sample_bytes = Some(bytes.max(1));
        self
    }
    /// Adds a clutter rule.
    pub fn with_clutter(mut self, rule: ClutterRule) -> ReportOptions {
        self.clutter.push(rule);
        self
    }
}

/// CI gates, with absolute and relative thresholds.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Gates {
    /// Fail if more than this many bytes are wasted outside the base.
    pub max_wasted_bytes: Option<u64>,
    /// Fail if more than this percentage of the non-base file bytes is wasted.
    pub max_wasted_percent: Option<f64>,
    /// Fail if the efficiency is below this.
    pub min_efficiency: Option<f64>,
    /// Fail if more than this many bytes of clutter lie outside the base.
    pub max_clutter_bytes: Option<u64>,
}

impl Gates {
    /// No gate: every report passes.
    pub fn new() -> Gates {
        Gates::default()
    }

    /// Fail if more than `bytes` file bytes are wasted outside the base.
    pub fn with_max_wasted_bytes(mut self, bytes: u64) -> Gates {
        self.max_wasted_bytes = Some(bytes);
        self
    }

    /// Fail if more than `percent` (0–100) of the non-base file bytes is wasted.
    pub fn with_max_wasted_percent(mut self, percent: f64) -> Gates {
        self.max_wasted_percent = Some(percent);
        self
    }

    /// Fail if more than `bytes` bytes of clutter ([`Report::clutter_bytes_non_base`]) lie
    /// outside the base.
    pub fn with_max_clutter_bytes(mut self, bytes: u64) -> Gates {
        self.max_clutter_bytes = Some(bytes);
        self
    }

    /// Fail if the efficiency (0–1) is below `ratio`.
    pub fn with_min_efficiency(mut self, ratio: f64) -> Gates {
        self.min_efficiency = Some(ratio);
        self
    }
}

/// A CI gate's rule, named as the CLI flag that sets it (which is also its JSON spelling).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum GateRule {
    /// [`Gates::max_wasted_bytes`]: bytes wasted outside the base.
    #[serde(rename = "--fail-if-wasted-over")]
    MaxWastedBytes,
    /// [`Gates::max_wasted_percent`]: wasted share (0–100) of the non-base file bytes.
    #[serde(rename = "--fail-if-wasted-percent-over")]
    MaxWastedPercent,
    /// [`Gates::min_efficiency`]: share (0–1) of stored file bytes that stay visible.
    #[serde(rename = "--min-efficiency")]
    MinEfficiency,
    /// [`Gates::max_clutter_bytes`]: clutter bytes outside the base.
    #[serde(rename = "--fail-if-clutter-over")]
    MaxClutterBytes,
}

impl GateRule {
    /// The CLI flag that sets this rule.
    pub fn flag(self) -> &'static str {
        match self {
            GateRule::MaxWastedBytes => "--fail-if-wasted-over",
            GateRule::MaxWastedPercent => "--fail-if-wasted-percent-over",
            GateRule::MinEfficiency => "--min-efficiency",
            GateRule::MaxClutterBytes => "--fail-if-clutter-over",
        }
    }
}

impl std::fmt::Display for GateRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.flag())
    }
}

/// The verdict of one gate: the rule, its limit, the report's value, and whether the value is
/// within the limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GateResult {
    /// The rule.
    pub rule: GateRule,
    /// The limit given.
    pub limit: f64,
    /// The report's figure the rule reads.
    pub value: f64,
    /// Whether the figure is within the limit.
    pub passed: bool,
}

impl std::fmt::Display for GateResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let relation = match (self.rule, self.passed) {
            (GateRule::MinEfficiency, true) => ">=",
            (GateRule::MinEfficiency, false) => "<",
            (_, true) => "<=",
            (_, false) => ">",
        };
        match self.rule {
            GateRule::MaxWastedBytes => write!(f, "{}: {} bytes wasted {relation} {}", self.rule, self.value, self.limit),
            GateRule::MaxWastedPercent => write!(f, "{}: {:.2}% wasted {relation} {}%", self.rule, self.value, self.limit),
            GateRule::MinEfficiency => write!(f, "{}: efficiency {:.4} {relation} {}", self.rule, self.value, self.limit),
            GateRule::MaxClutterBytes => write!(f, "{}: {} bytes of clutter {relation} {}", self.rule, self.value, self.limit),
        }
    }
}

impl Report {
    /// Every gate that is set, with its verdict.
    pub fn gate_results(&self, gates: &Gates) -> Vec<GateResult> {
        let mut results = Vec::new();
        if let Some(max) = gates.max_wasted_bytes {
            let value = self.wasted_bytes_non_base;
            results.push(GateResult { rule: GateRule::MaxWastedBytes, limit: max as f64, value: value as f64, passed: value <= max });
        }
        if let Some(max) = gates.max_wasted_percent {
            results.push(GateResult {
                rule: GateRule::MaxWastedPercent,
                limit: max,
                value: self.wasted_percent,
                passed: self.wasted_percent <= max,
            });
        }
        if let Some(min) = gates.min_efficiency {
            results.push(GateResult { rule: GateRule::MinEfficiency, limit: min, value: self.efficiency, passed: self.efficiency >= min });
        }
        if let Some(max) = gates.max_clutter_bytes {
            let value = self.clutter_bytes_non_base;
            results.push(GateResult { rule: GateRule::MaxClutterBytes, limit: max as f64, value: value as f64, passed: value <= max });
        }
        results
    }

    /// The gates that fail; each displays as its rule with the figures.
    pub fn failed_gates(&self, gates: &Gates) -> Vec<GateResult> {
        self.gate_results(gates).into_iter().filter(|g| !g.passed).collect()
    }
}

fn file_bytes(index: &LayerIndex, entry: usize) -> u64 {
    let e = &index.entries[entry];
    match e.class {
        EntryClass::Node(_) => e.size,
        _ => 0,
    }
}

impl Image {
    /// Measures waste per layer and per path, and what the squash described by `options` would
    /// reclaim (default selector: everything above the base if it can be found, else above
    /// layer 0), with its compressed size estimated from samples ([`Image::report_with`]).
    ///
    /// ```no_run
    /// use squash::{Gates, Image, SquashOptions};
    ///
    /// let image = Image::open("app.tar")?;
    /// let report = image.report(&SquashOptions::default(), 10)?;
    /// let gates = Gates::new().with_max_wasted_bytes(50_000_000);
    /// for result in report.gate_results(&gates) {
    ///     println!("{result}");
    /// }
    /// # Ok::<(), squash::Error>(())
    /// ```
    pub fn report(&self, options: &SquashOptions, top_paths: usize) -> Result<Report> {
        self.report_with(options, &ReportOptions::default().with_top_paths(top_paths), &crate::write::NoProgress)
    }

    /// [`Image::report`], telling `progress` about the layers it indexes
    /// ([`Event::Indexing`](crate::Event::Indexing), [`Event::Indexed`](crate::Event::Indexed)).
    pub fn report_with_progress(&self, options: &SquashOptions, top_paths: usize, progress: &dyn crate::write::Progress) -> Result<Report> {
        self.report_with(options, &ReportOptions::default().with_top_paths(top_paths), progress)
    }

    /// The report, measured as `how` says. Every layer is indexed (a range's layers newest first,
    /// what can survive kept in unnamed temporary files, as a squash reads them); then each
    /// range's new layer is streamed as a squash would write it into a compressor that only
    /// counts: samples of it ([`ReportOptions::exact`] off) or all of it. Nothing is written
    /// beside those temporaries, which the system removes. `progress` hears of the indexing, then of the merges as
    /// [`Event::Measuring`](crate::Event::Measuring) and [`Event::Advanced`](crate::Event::Advanced),
    /// and can cancel.
    pub fn report_with(&self, options: &SquashOptions, how: &ReportOptions, progress: &dyn crate::write::Progress) -> Result<Report> {
        let top_paths = how.top_paths;
        let count = self.layers().len();
        let ranges = match &options.selector {
            LayerSelector::Nothing => match range::resolve(self, &LayerSelector::Base, &options.bases) {
                Ok(r) => r,
                Err(_) if count > 1 => {
                    vec![LayerRange { start: 1, end: count - 1, reason: "every layer above layer 0 (no base image found)".into() }]
                }
                Err(_) => Vec::new(),
            },
            selector => range::resolve(self, selector, &options.bases)?,
        };
        let base_end = ranges.first().map(|r| r.start).unwrap_or(count);
        let in_range = |l: usize| ranges.iter().any(|r| (r.start..=r.end).contains(&l));
        // The layers outside the ranges are indexed in parallel; each range is read once, its
        // surviving entries kept for measuring the new layer without decoding them again.
        let outside: Vec<usize> = (0..count).filter(|&l| !in_range(l)).collect();
        let mut slots: Vec<Option<LayerIndex>> = (0..count).map(|_| None).collect();
        for (l, index) in outside.iter().zip(self.index_layers_reporting(outside.iter().copied(), options.threads, progress)?) {
            slots[*l] = Some(index);
        }
        let mut kept = Vec::with_capacity(ranges.len());
        for r in &ranges {
            let (range_indexes, range_kept) =
                self.index_range_once(r.start..=r.end, options.threads, progress, options.tmp_dir.as_deref())?;
            for (offset, index) in range_indexes.into_iter().enumerate() {
                slots[r.start + offset] = Some(index);
            }
            kept.push(std::sync::Arc::new(range_kept));
        }
        let mut indexes: Vec<LayerIndex> = slots
            .into_iter()
            .enumerate()
            .map(|(l, index)| {
                index.ok_or_else(|| crate::error::Error::InvalidRange { reason: format!("internal error: layer {l} was not indexed") })
            })
            .collect::<Result<_>>()?;
        let whole = plan_range(&indexes, &Default::default(), &Default::default())?;
        let mut layers = Vec::with_capacity(count);
        let mut per_path: BTreeMap<String, WastedPath> = BTreeMap::new();
        let mut changed = vec![0usize; count];
        for fate in whole.fates.iter().flatten() {
            if let Fate::Replaced { by } = fate {
                changed[*by] += 1;
            }
        }
        // Paths of which some copy is dropped: only those get a record (not every file's path).
        let mut wasteful: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
        for (l, index) in indexes.iter().enumerate() {
            for (e, fate) in whole.fates[l].iter().enumerate() {
                if fate.is_dropped() && file_bytes(index, e) > 0 {
                    wasteful.insert(index.entries[e].path.display());
                }
            }
        }
        let clutter = Clutterer::new(&how.clutter)?;
        let mut clutter_found = ClutterFound::default();
        let (mut wasted_total, mut wasted_non_base, mut kept_total, mut non_base_total) = (0u64, 0u64, 0u64, 0u64);
        for (l, index) in indexes.iter().enumerate() {
            let (mut wasted, mut kept, mut nodes, mut markers) = (0u64, 0u64, 0usize, 0usize);
            for (e, fate) in whole.fates[l].iter().enumerate() {
                let bytes = file_bytes(index, e);
                match index.entries[e].class {
                    EntryClass::Node(_) => nodes += 1,
                    EntryClass::Whiteout(_) | EntryClass::Opaque(_) => markers += 1,
                    EntryClass::Ignored => {}
                }
                if fate.is_dropped() {
                    wasted += bytes;
                } else {
                    kept += bytes;
                    if bytes > 0 {
                        clutter.visit(&index.entries[e].path, l, bytes, in_range(l), &mut clutter_found);
                    }
                }
                if bytes > 0 {
                    let path = index.entries[e].path.display();
                    if !wasteful.contains(&path) {
                        continue;
                    }
                    let record =
                        per_path.entry(path.clone()).or_insert(WastedPath { path, copies: 0, reclaimable_bytes: 0, layers: Vec::new() });
                    record.copies += 1;
                    record.layers.push(l);
                    if fate.is_dropped() {
                        record.reclaimable_bytes += bytes;
                    }
                }
            }
            let base = l < base_end;
            wasted_total += wasted;
            kept_total += kept;
            if !base {
                wasted_non_base += wasted;
                non_base_total += wasted + kept;
            }
            let created_by = self.layers()[l].history_index().and_then(|h| self.history().get(h)).and_then(|h| h.created_by.clone());
            layers.push(LayerReport {
                index: l,
                created_by,
                compressed_size: index.compressed_size,
                uncompressed_size: index.uncompressed_size,
                added: nodes.saturating_sub(changed[l]),
                changed: changed[l],
                deleted: markers,
                wasted_bytes: wasted,
                kept_bytes: kept,
                base,
                reclaimed_bytes: 0,
                reclaimed_compressed_bytes: 0,
            });
        }
        drop(whole);
        let mut wasted_paths: Vec<WastedPath> = per_path.into_values().filter(|p| p.reclaimable_bytes > 0).collect();
        wasted_paths.sort_by(|a, b| b.reclaimable_bytes.cmp(&a.reclaimable_bytes).then_with(|| a.path.cmp(&b.path)));
        wasted_paths.truncate(top_paths);
        let non_base_uncompressed: u64 = indexes[base_end.min(count)..].iter().map(|i| i.uncompressed_size).sum();
        let exclude = crate::plan::exclude::Excludes::new(&options.excludes)?;
        let clamp_times = options.clamp_times()?;
        // Plan every range first (so that a bad range fails before any layer is read again).
        // (Last range first, so that taking its indexes out leaves the others' positions.)
        let mut planned = Vec::with_capacity(ranges.len());
        for (range, kept) in ranges.into_iter().zip(kept).rev() {
            // The layers below are indexed whole already: the plan asks them, not a new read.
            let (below, from) = indexes.split_at_mut(range.start);
            let plan =
                self.plan_indexes(&mut from[..=range.end - range.start], options.threads, progress, &exclude, Some(&kept), Some(below))?;
            let compression = options.compression.unwrap_or_else(|| crate::plan::default_compression(self, &range));
            crate::plan::check_level(compression, options.level)?;
            let taken = indexes.drain(range.start..=range.end).collect();
            planned.push(crate::plan::PlannedRange { range, indexes: taken, compression, clamp_times, plan, kept: Some(kept) });
        }
        planned.reverse();
        drop(indexes);
        progress.event(&crate::write::Event::Measuring { total: planned.iter().map(|p| p.uncompressed_size()).sum() });
        let mut squash = Vec::new();
        for planned in &planned {
            progress.step(format!("measuring the new layer for layers {}", planned.range));
            let measured = {
                let sample =
                    how.sample_bytes.unwrap_or_else(|| crate::merge::sample::default_sample_bytes(planned.compression, options.level));
                crate::merge::measure_range(self, planned, options.level, options.threads, sample, how.exact, progress)?
            };
            for (offset, (index, (written, compressed))) in planned.indexes.iter().zip(&measured.per_layer).enumerate() {
                let layer = &mut layers[planned.range.start + offset];
                layer.reclaimed_bytes = index.uncompressed_size.saturating_sub(*written);
                layer.reclaimed_compressed_bytes = index.compressed_size.saturating_sub(*compressed);
            }
            let reclaimed = planned.uncompressed_size_before().saturating_sub(planned.uncompressed_size());
            squash.push(RangeReport {
                range: planned.range.clone(),
                compressed_size_before: planned.compressed_size_before(),
                uncompressed_size_before: planned.uncompressed_size_before(),
                uncompressed_size_after: planned.uncompressed_size(),
                compressed_size_after_estimate: measured.compressed_size,
                compression: planned.compression,
                sampled_bytes: measured.sampled,
                compressed_size_after_exact: measured.digest.is_some().then_some(measured.compressed_size),
                digest_after: measured.digest,
                reclaimed_percent: if non_base_uncompressed == 0 { 0.0 } else { 100.0 * reclaimed as f64 / non_base_uncompressed as f64 },
                excluded: planned.excluded().to_vec(),
            });
        }
        let total = wasted_total + kept_total;
        let (clutter, clutter_paths) = clutter_found.finish(&how.clutter, top_paths);
        Ok(Report {
            layers,
            wasted_paths,
            wasted_bytes: wasted_total,
            wasted_bytes_non_base: wasted_non_base,
            wasted_percent: if non_base_total == 0 { 0.0 } else { 100.0 * wasted_non_base as f64 / non_base_total as f64 },
            efficiency: if total == 0 { 1.0 } else { kept_total as f64 / total as f64 },
            squash,
            clutter_bytes: clutter.iter().map(|c| c.bytes).sum(),
            clutter_bytes_non_base: clutter.iter().flat_map(|c| &c.layers).filter(|l| l.layer >= base_end).map(|l| l.bytes).sum(),
            clutter,
            clutter_paths,
        })
    }
}

/// The clutter rules compiled, with a memo of what covers each directory seen.
struct Clutterer {
    rules: crate::plan::exclude::Excludes,
    memo: std::cell::RefCell<std::collections::HashMap<crate::layer::entry::EntryPath, Option<(usize, crate::layer::entry::EntryPath)>>>,
}

/// Files, bytes by layer, and bytes in squashed layers.
type ClutterFigures = (u64, BTreeMap<usize, u64>, u64);

/// Clutter found so far: per rule and per matched path.
#[derive(Default)]
struct ClutterFound {
    /// (rule, path) → its figures.
    paths: BTreeMap<(usize, crate::layer::entry::EntryPath), ClutterFigures>,
}

impl Clutterer {
    fn new(rules: &[ClutterRule]) -> Result<Clutterer> {
        let patterns: Vec<String> = rules.iter().map(|r| r.pattern.clone()).collect();
        if let Some(bad) = patterns.iter().find(|p| p.trim().is_empty() || p.trim().starts_with('#')) {
            return Err(crate::error::Error::InvalidOption { reason: format!("clutter pattern `{bad}` is empty") });
        }
        let rules = crate::plan::exclude::Excludes::new(&patterns)?;
        Ok(Clutterer { rules, memo: Default::default() })
    }

    /// A visible file of `bytes` at `path`, added by `layer`.
    fn visit(&self, path: &crate::layer::entry::EntryPath, layer: usize, bytes: u64, squashed: bool, found: &mut ClutterFound) {
        if self.rules.is_empty() {
            return;
        }
        let hit = match path.parent() {
            Some(parent) => {
                let mut memo = self.memo.borrow_mut();
                let above = memo.entry(parent.clone()).or_insert_with(|| self.rules.covering_at(&parent, true)).clone();
                above.or_else(|| self.rules.matching(path, false).map(|r| (r, path.clone())))
            }
            None => self.rules.matching(path, false).map(|r| (r, path.clone())),
        };
        if let Some(key) = hit {
            let record = found.paths.entry(key).or_default();
            record.0 += 1;
            *record.1.entry(layer).or_default() += bytes;
            if squashed {
                record.2 += bytes;
            }
        }
    }
}

impl ClutterFound {
    /// Per rule, and the `top` largest paths.
    fn finish(self, rules: &[ClutterRule], top: usize) -> (Vec<Clutter>, Vec<ClutterPath>) {
        let layer_list = |m: &BTreeMap<usize, u64>| m.iter().map(|(&layer, &bytes)| LayerBytes { layer, bytes }).collect::<Vec<_>>();
        let mut per_rule: BTreeMap<usize, ClutterFigures> = BTreeMap::new();
        let mut paths = Vec::new();
        for ((rule, path), (files, by_layer, squashed)) in self.paths {
            let total = per_rule.entry(rule).or_default();
            total.0 += files;
            for (&l, &b) in &by_layer {
                *total.1.entry(l).or_default() += b;
            }
            total.2 += squashed;
            paths.push(ClutterPath {
                path: path.display(),
                rule: rules[rule].name.clone(),
                files,
                bytes: by_layer.values().sum(),
                layers: layer_list(&by_layer),
            });
        }
        let mut clutter: Vec<Clutter> = per_rule
            .into_iter()
            .map(|(rule, (files, by_layer, squashed))| Clutter {
                rule: rules[rule].name.clone(),
                pattern: rules[rule].pattern.clone(),
                files,
                bytes: by_layer.values().sum(),
                reclaimable_bytes: squashed,
                layers: layer_list(&by_layer),
            })
            .collect();
        clutter.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.rule.cmp(&b.rule)));
        paths.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.path.cmp(&b.path)));
        paths.truncate(top);
        (clutter, paths)
    }
}

/// A bar chart, one bar per layer, of kept and wasted bytes, as SVG.
#[cfg(feature = "svg")]
pub fn report_svg(report: &Report) -> String {
    let width = 900.0;
    let bar_height = 22.0;
    let label_width = 280.0;
    let value_width = 150.0;
    let top = 64.0;
    let height = top + report.layers.len() as f64 * (bar_height + 8.0) + 24.0;
    let max = report.layers.iter().map(|l| l.kept_bytes + l.wasted_bytes).max().unwrap_or(1).max(1) as f64;
    let scale = (width - label_width - value_width) / max;
    let escape = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"22\" font-size=\"16\">Bytes per layer: {} wasted in all, {} outside the base ({:.1}%)</text>\n\
         <rect x=\"10\" y=\"34\" width=\"12\" height=\"12\" fill=\"#4a7fd4\"/><text x=\"28\" y=\"45\">kept (visible in the container)</text>\n\
         <rect x=\"230\" y=\"34\" width=\"12\" height=\"12\" fill=\"#d9534f\"/><text x=\"248\" y=\"45\">wasted (shadowed or deleted later)</text>\n",
        human(report.wasted_bytes),
        human(report.wasted_bytes_non_base),
        report.wasted_percent
    );
    for (i, layer) in report.layers.iter().enumerate() {
        let y = top + i as f64 * (bar_height + 8.0);
        let label: String = layer.created_by.clone().unwrap_or_default().chars().take(36).collect();
        let kept_w = layer.kept_bytes as f64 * scale;
        let wasted_w = layer.wasted_bytes as f64 * scale;
        svg.push_str(&format!(
            "<text x=\"10\" y=\"{:.1}\">{}{} {}</text>\n<rect x=\"{label_width}\" y=\"{y:.1}\" width=\"{kept_w:.1}\" height=\"{bar_height}\" fill=\"#4a7fd4\"/>\n<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{wasted_w:.1}\" height=\"{bar_height}\" fill=\"#d9534f\"/>\n<text x=\"{:.1}\" y=\"{:.1}\">{} / {}</text>\n",
            y + 15.0,
            layer.index,
            if layer.base { " (base)" } else { "" },
            escape(&label),
            label_width + kept_w,
            label_width + kept_w + wasted_w + 6.0,
            y + 15.0,
            human(layer.kept_bytes),
            human(layer.wasted_bytes),
        ));
    }
    svg.push_str("</svg>\n");
    svg
}

/// `1.5 MB`-style sizes (powers of 1000, as registries show them).
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    // A value that rounds to 1000.0 at one decimal is shown in the next unit (999,950 B is
    // 1.0 MB, not 1000.0 kB).
    while (value >= 1000.0 || unit > 0 && value >= 999.95) && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Parses `50MB`, `1.5GiB`, `1000` (bytes) and the like.
pub fn parse_size(s: &str) -> std::result::Result<u64, crate::error::ParseError> {
    parse_size_text(s).map_err(|message| crate::error::ParseError::new("size", s, message))
}

fn parse_size_text(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("`{s}` is not a size"))?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "ki" | "kib" => 1024.0,
        "mi" | "mib" => 1024.0 * 1024.0,
        "gi" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "ti" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("`{s}`: unknown unit `{other}`")),
    };
    Ok((number * factor).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("50MB"), Ok(50_000_000));
        assert_eq!(parse_size("1.5 GiB"), Ok(1_610_612_736));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("ten").is_err());
        assert_eq!(human(999), "999 B");
        assert_eq!(human(1_500_000), "1.5 MB");
        assert_eq!(human(999_949), "999.9 kB");
        assert_eq!(human(999_950), "1.0 MB");
        assert_eq!(human(1_000), "1.0 kB");
        assert_eq!(parse_size("2TB"), Ok(2_000_000_000_000));
        assert_eq!(parse_size("1 TiB"), Ok(1 << 40));
    }
}

/// Several images' reports summed as a registry stores them: each blob once, however many
/// images share it. Images are added one at a time, so only their blob lists are held.
#[derive(Debug, Clone, Default)]
pub struct Audit {
    images: usize,
    /// Every layer blob of the images, by digest, with its size.
    blobs: BTreeMap<String, u64>,
    /// The blobs the images would have after their squashes: the layers kept, by digest, and
    /// the new layers, by what makes them (the same layers below and in the range, squashed
    /// with the same options, give the same bytes).
    blobs_after: BTreeMap<String, u64>,
    exact: bool,
}

/// What [`Audit`] sums up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuditSummary {
    /// Images reported.
    pub images: usize,
    /// Distinct layer blobs they store.
    pub blobs: usize,
    /// Their stored bytes, each blob counted once.
    pub stored_bytes: u64,
    /// The stored bytes after squashing every image as reported, each blob counted once (a new
    /// layer at its estimated size, or exact ones when every report was exact).
    pub stored_bytes_after: u64,
    /// What the squashes save in all, compressed.
    pub saved_bytes: u64,
    /// The saving as a percentage of the stored bytes.
    pub saved_percent: f64,
    /// Whether the figures after are exact (every report made with [`ReportOptions::exact`]).
    pub exact: bool,
}

impl Audit {
    /// An empty audit.
    pub fn new() -> Audit {
        Audit { exact: true, ..Audit::default() }
    }

    /// Adds `image` and its `report`.
    pub fn add(&mut self, image: &Image, report: &Report) {
        self.images += 1;
        let digest = |l: usize| {
            let layer = &image.layers()[l];
            layer.digest().unwrap_or(layer.diff_id()).to_string()
        };
        for (l, layer) in report.layers.iter().enumerate() {
            self.blobs.insert(digest(l), layer.compressed_size);
            if !report.squash.iter().any(|r| (r.range.start..=r.range.end).contains(&l)) {
                self.blobs_after.insert(digest(l), layer.compressed_size);
            }
        }
        for range in &report.squash {
            let made_of: Vec<String> = (0..=range.range.end).map(digest).collect();
            let key = match &range.digest_after {
                Some(d) => d.to_string(),
                None => format!("{} from {}", range.range.start, made_of.join(",")),
            };
            self.blobs_after.insert(key, range.compressed_size_after_estimate);
            self.exact &= range.compressed_size_after_exact.is_some();
        }
    }

    /// The sums so far.
    pub fn summary(&self) -> AuditSummary {
        let stored: u64 = self.blobs.values().sum();
        let after: u64 = self.blobs_after.values().sum();
        let saved = stored.saturating_sub(after);
        AuditSummary {
            images: self.images,
            blobs: self.blobs.len(),
            stored_bytes: stored,
            stored_bytes_after: after,
            saved_bytes: saved,
            saved_percent: if stored == 0 { 0.0 } else { 100.0 * saved as f64 / stored as f64 },
            exact: self.exact && self.images > 0,
        }
    }
}
