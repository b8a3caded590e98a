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
    /// Estimated stored size of the new layer: each surviving entry at its own layer's
    /// compression ratio.
    pub compressed_size_after_estimate: u64,
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
}

impl GateRule {
    /// The CLI flag that sets this rule.
    pub fn flag(self) -> &'static str {
        match self {
            GateRule::MaxWastedBytes => "--fail-if-wasted-over",
            GateRule::MaxWastedPercent => "--fail-if-wasted-percent-over",
            GateRule::MinEfficiency => "--min-efficiency",
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
    /// layer 0). Reads layer headers only.
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
        self.report_with_progress(options, top_paths, &crate::write::NoProgress)
    }

    /// [`Image::report`], telling `progress` about the layers it indexes
    /// ([`Event::Indexing`](crate::Event::Indexing), [`Event::Indexed`](crate::Event::Indexed)).
    pub fn report_with_progress(&self, options: &SquashOptions, top_paths: usize, progress: &dyn crate::write::Progress) -> Result<Report> {
        let count = self.layers().len();
        let mut indexes = self.index_layers_reporting(0..count, options.threads, progress)?;
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
            });
        }
        let mut wasted_paths: Vec<WastedPath> = per_path.into_values().filter(|p| p.reclaimable_bytes > 0).collect();
        wasted_paths.sort_by(|a, b| b.reclaimable_bytes.cmp(&a.reclaimable_bytes).then_with(|| a.path.cmp(&b.path)));
        wasted_paths.truncate(top_paths);
        let non_base_uncompressed: u64 = indexes[base_end.min(count)..].iter().map(|i| i.uncompressed_size).sum();
        let mut squash = Vec::new();
        let exclude = crate::plan::exclude::Excludes::new(&options.excludes)?;
        for range in ranges {
            let plan = self.plan_indexes(&mut indexes[range.start..=range.end], options.threads, progress, &exclude)?;
            let slice = &indexes[range.start..=range.end];
            let compressed_before: u64 = slice.iter().map(|i| i.compressed_size).sum();
            let uncompressed_before: u64 = slice.iter().map(|i| i.uncompressed_size).sum();
            // Each surviving entry is assumed to compress as well as the layer it comes from.
            let estimate: f64 = slice
                .iter()
                .zip(&plan.fates)
                .map(|(index, fates)| {
                    let ratio =
                        if index.uncompressed_size == 0 { 1.0 } else { index.compressed_size as f64 / index.uncompressed_size as f64 };
                    let kept: u64 = index
                        .entries
                        .iter()
                        .zip(fates)
                        .filter(|(_, f)| matches!(f, Fate::Kept | Fate::Converted))
                        .map(|(e, _)| e.tar_size())
                        .sum();
                    kept as f64 * ratio
                })
                .sum();
            let reclaimed = uncompressed_before.saturating_sub(plan.uncompressed_size);
            squash.push(RangeReport {
                range,
                compressed_size_before: compressed_before,
                uncompressed_size_before: uncompressed_before,
                uncompressed_size_after: plan.uncompressed_size,
                compressed_size_after_estimate: estimate.round() as u64,
                reclaimed_percent: if non_base_uncompressed == 0 { 0.0 } else { 100.0 * reclaimed as f64 / non_base_uncompressed as f64 },
                excluded: plan.excluded.clone(),
            });
        }
        let total = wasted_total + kept_total;
        Ok(Report {
            layers,
            wasted_paths,
            wasted_bytes: wasted_total,
            wasted_bytes_non_base: wasted_non_base,
            wasted_percent: if non_base_total == 0 { 0.0 } else { 100.0 * wasted_non_base as f64 / non_base_total as f64 },
            efficiency: if total == 0 { 1.0 } else { kept_total as f64 / total as f64 },
            squash,
        })
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
