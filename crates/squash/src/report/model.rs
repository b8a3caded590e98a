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

/// A path whose content is stored more than once or deleted, or a directory whose small wasted
/// files are counted together ([`WastedPath::files`] above 1, the path ending in `/`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WastedPath {
    /// The path (a grouped directory's ends in `/`).
    pub path: String,
    /// Files counted in this row: 1 for a path, the number of wasted files for a directory.
    #[serde(default = "one")]
    pub files: usize,
    /// How many copies the image stores (including the surviving one, if any).
    pub copies: usize,
    /// Bytes a full squash reclaims: every copy except the survivor.
    pub reclaimable_bytes: u64,
    /// Layers holding a copy.
    pub layers: Vec<usize>,
    /// Whether every wasted copy lies in the base layers, which the planned squash keeps as
    /// they are: it does not reclaim these bytes.
    #[serde(default)]
    pub base: bool,
    /// Every layer that touched the path, in order (for a directory, what its files went
    /// through, each event counting its files).
    #[serde(default)]
    pub events: Vec<PathEvent>,
}

fn one() -> usize {
    1
}

/// What one layer did to a path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PathEvent {
    /// The layer.
    pub layer: usize,
    /// What it did.
    pub action: Action,
    /// The layer's history step.
    pub created_by: Option<String>,
    /// For [`Action::Metadata`]: the fields that changed, from what to what (empty when the
    /// copy is identical).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<FieldChange>,
    /// For [`Action::Deleted`]: by what (`whiteout`, `opaque directory usr/x`, `parent usr/x
    /// deleted`, `parent usr/x replaced`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub how: Option<String>,
    /// Files this event counts (1 for a path; in a grouped directory, how many of its files).
    #[serde(default = "one")]
    pub files: usize,
}

/// What a layer did to a path. More may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Action {
    /// It added the path, which no lower layer had (or a lower layer had deleted).
    Added,
    /// It stored the path again with new content.
    Replaced,
    /// It stored the same content again because metadata changed (mode, owner, mtime,
    /// xattrs): a `chmod`, `chown` or `touch` in a later step.
    Metadata,
    /// It replaced the path with an entry of another type.
    TypeChanged,
    /// It deleted the path: a whiteout, an opaque directory, or a parent deleted or replaced.
    Deleted,
}

impl Action {
    /// The word the report prints.
    pub fn word(self) -> &'static str {
        match self {
            Action::Added => "added",
            Action::Replaced => "replaced",
            Action::Metadata => "metadata",
            Action::TypeChanged => "type changed",
            Action::Deleted => "deleted",
        }
    }
}

/// One metadata field that changed between two copies of a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FieldChange {
    /// `mode`, `uid`, `gid`, `mtime` or `xattrs`.
    pub field: String,
    /// Its value in the earlier copy (`mode` in octal, `mtime` in UTC; `various` in a group).
    pub from: String,
    /// Its value in the later copy.
    pub to: String,
}

/// Why some wasted bytes are waste: a layer stored them and a later one made them waste. Causes
/// group every wasted file by those two layers and by kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Cause {
    /// The layer that stored the bytes.
    pub stored_by: CauseLayer,
    /// The later layer that deleted, replaced or stored them again.
    pub wasted_by: CauseLayer,
    /// The wasted bytes.
    pub bytes: u64,
    /// The wasted files.
    pub files: usize,
    /// What kind of waste it is.
    pub kind: CauseKind,
    /// For [`CauseKind::PackageCache`]: the tool (`apt`, `apk`, `dnf`, `yum`, `pip`, `npm`,
    /// `yarn`, `go`, `cargo`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// For [`CauseKind::MetadataOnly`]: nothing in any of its files' headers changed either
    /// (mode, owner, times, xattrs): a step stored them again as they were, which happens when
    /// it copies a file into its layer without changing it (a hard link to it, a `chmod` or
    /// `chown` to what it already has, a program that opens it for writing).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unchanged: bool,
    /// What to change in the Dockerfile.
    pub fix: String,
    /// The largest of its paths (at most three).
    pub paths: Vec<String>,
    /// Whether the bytes lie in the base layers, which the planned squash keeps as they are.
    pub base: bool,
    /// The squash that reclaims it without touching the Dockerfile.
    pub squash: SquashFix,
}

/// A layer a cause names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CauseLayer {
    /// Its position in the image.
    pub layer: usize,
    /// Its history step.
    pub created_by: Option<String>,
}

/// The kinds of waste a cause can be. More may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CauseKind {
    /// Files a later step deleted.
    DeletedLater,
    /// Build-only files (compilers, headers, static libraries, build trees) a later step
    /// deleted.
    BuildOnly,
    /// The same content stored again for a metadata change.
    MetadataOnly,
    /// Package manager lists and caches a later step deleted or replaced.
    PackageCache,
    /// Files a later step wrote again with new content (or as another type).
    Rewritten,
    /// Files a later step moved or renamed: deleted where they were, and the same content
    /// (size and fingerprint) added by that step at another path.
    Moved,
}

impl CauseKind {
    /// The words the report prints.
    pub fn words(self) -> &'static str {
        match self {
            CauseKind::DeletedLater => "deleted by a later step",
            CauseKind::BuildOnly => "build-only files deleted by a later step",
            CauseKind::MetadataOnly => "stored again for a metadata change",
            CauseKind::PackageCache => "package manager lists and caches",
            CauseKind::Rewritten => "written again by a later step",
            CauseKind::Moved => "moved by a later step (stored again at its new path)",
        }
    }
}

/// The squash that reclaims a cause: its two layers and those between them merged into one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SquashFix {
    /// The first layer of the range.
    pub first: usize,
    /// The last layer of the range.
    pub last: usize,
    /// The wasted bytes that squash reclaims (this cause's and those of every other cause
    /// stored and made waste within the range).
    pub reclaims: u64,
    /// The command.
    pub command: String,
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
    /// encoder (see [`RangeReport::sampled_bytes`]), or exact (see
    /// [`RangeReport::compressed_size_after_exact`]).
    pub compressed_size_after_estimate: u64,
    /// Compression of the new layer.
    #[serde(default = "default_compression")]
    pub compression: Compression,
    /// Uncompressed bytes of the new layer that were compressed to estimate its size (all of
    /// them when it is small; 0 when exact or uncompressed).
    #[serde(default)]
    pub sampled_bytes: u64,
    /// The exact stored size of the new layer, as a squash with the same options writes it: with
    /// [`ReportOptions::exact`], and without it when compressing the whole layer costs less than
    /// an estimate from the default sample (zstd up to level 4, whose real encoder runs about as
    /// fast as the proxy each estimate needs, on a layer larger than the sample).
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
    /// Why the wasted bytes are waste, largest first.
    #[serde(default)]
    pub causes: Vec<Cause>,
    /// The paths wasting the most bytes, largest first; small files grouped by directory
    /// unless [`ReportOptions::group`] is off.
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
    /// compression. Without it, a layer whose estimate would cost more than that (see
    /// [`RangeReport::compressed_size_after_exact`]) is measured whole, without its digest.
    pub exact: bool,
    /// The clutter rules ([`ClutterRule::defaults`] unless changed).
    pub clutter: Vec<ClutterRule>,
    /// Without `exact`: about this many uncompressed bytes of each new layer are compressed
    /// to estimate its size, in pieces spread evenly over it; a smaller layer is compressed
    /// whole. More is slower and closer. `None` (the default): 256 MiB for zstd up to level 9,
    /// 64 MiB for gzip and higher zstd levels.
    pub sample_bytes: Option<u64>,
    /// Whether wasted files under [`SMALL_FILE`] bytes are counted together by directory.
    pub group: bool,
    /// The depth (in path components) of the directories small files are grouped under: a
    /// file deeper down counts in its ancestor at this depth.
    pub group_depth: usize,
    /// The image as the squash commands in causes name it (`IMAGE` unless set).
    pub input: String,
    /// For an image chosen from a multi-platform index: its platform, which the squash
    /// commands in causes name with `--platform`.
    pub platform: Option<String>,
}

/// Wasted files smaller than this are grouped by directory (64 KiB).
pub const SMALL_FILE: u64 = 64 << 10;

impl Default for ReportOptions {
    fn default() -> ReportOptions {
        ReportOptions {
            top_paths: 20,
            exact: false,
            clutter: ClutterRule::defaults(),
            sample_bytes: None,
            group: true,
            group_depth: 4,
            input: "IMAGE".into(),
            platform: None,
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
    /// Groups small wasted files by directory (`true`, the default) or lists each one.
    pub fn with_grouping(mut self, group: bool) -> ReportOptions {
        self.group = group;
        self
    }
    /// Groups small wasted files under their ancestor `depth` components deep (at least 1).
    pub fn with_group_depth(mut self, depth: usize) -> ReportOptions {
        self.group_depth = depth.max(1);
        self
    }
    /// Names the image `input` in the squash commands of causes.
    pub fn with_input(mut self, input: impl Into<String>) -> ReportOptions {
        self.input = input.into();
        self
    }
    /// Names the platform of an image chosen from an index in the squash commands of causes.
    pub fn with_platform(mut self, platform: impl Into<String>) -> ReportOptions {
        self.platform = Some(platform.into());
        self
    }
    /// Adds a clutter rule.
    pub fn with_clutter(mut self, rule: ClutterRule) -> ReportOptions {
        self.clutter.push(rule);
        self
    }
}
