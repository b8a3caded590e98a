//! A report as data: figures per layer and per wasted path, what squashing each range would
//! reclaim, the clutter found ([`Report`]), and what a report measures beyond the squash options
//! ([`ReportOptions`]).

use serde::{Deserialize, Serialize};

use super::clutter::{Clutter, ClutterPath, ClutterRule};
use crate::codec::compression::Compression;
use crate::digest::Digest;
use crate::plan::exclude::ExcludeFigures;
use crate::plan::range::LayerRange;

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
    pub compression: Compression,
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
    pub digest_after: Option<Digest>,
    /// Uncompressed bytes reclaimed as a percentage of the non-base part of the image.
    pub reclaimed_percent: f64,
    /// What each `--exclude` pattern would remove from the range and hide below it (left out
    /// when none was given).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded: Vec<ExcludeFigures>,
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

fn default_compression() -> Compression {
    Compression::Gzip
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
        ReportOptions {
            top_paths: 20,
            exact: false,
            clutter: ClutterRule::defaults(),
            sample_bytes: None,
        }
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
