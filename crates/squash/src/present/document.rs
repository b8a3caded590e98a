//! The JSON documents of the command line (`--json`), as library types: what `inspect`, a dry
//! run, a squash, `report` and an error print, so that a caller can read them back into the
//! types that wrote them. Every document carries [`SCHEMA_VERSION`] and names its input the same
//! way; a layer range has one shape ([`LayerRange`]) and each size one name
//! (`compressed_size`, `uncompressed_size`, with `_before`/`_after` for a range). docs/json.md
//! shows an example of each.

use serde::{Deserialize, Serialize};

use crate::codec::compression::Compression;
use crate::config_diff::ConfigChange;
use crate::diff::{Attribute, TreeDiff};
use crate::digest::Digest;
use crate::error::Location;
use crate::layer::layer_index::LayerIndex;
use crate::plan::exclude::ExcludeFigures;
use crate::plan::image_index::IndexPlan;
use crate::plan::range::LayerRange;
use crate::plan::squash_plan::{PlannedRange, SquashPlan};
use crate::read::image::{HistoryStep, Image, InputFormat};
use crate::read::image_index::ImageIndex;
use crate::report::audit::AuditSummary;
use crate::report::gates::GateResult;
use crate::report::model::Report;
use crate::write::image_index::IndexOutcome;
use crate::write::outcome::Outcome;

/// The version of every document here; it changes when a field changes meaning or goes away.
pub const SCHEMA_VERSION: u32 = 2;

/// Which image a document is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct InputInfo {
    /// The image as a reference that names it exactly (`oci:PATH:TAG`,
    /// `docker-archive:PATH:NAME`, …), whatever form it was given in.
    pub reference: String,
    /// The file or directory read.
    pub path: String,
    /// Its container format.
    pub format: InputFormat,
    /// The tag or name the image was chosen by, if any.
    pub name: Option<String>,
    /// The manifest's digest (`None` for a legacy `docker save` tarball, which has none).
    pub manifest_digest: Option<Digest>,
    /// The config's digest (the image ID).
    pub config_digest: Digest,
    /// `os/arch[/variant]`, when known.
    pub platform: Option<String>,
    /// The other platforms of the image index the image was chosen from
    /// ([`Image::other_platforms`]): not read, and not in what squash writes. Left out when
    /// there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_platforms: Vec<String>,
}

/// The reference that names an input again: `FORMAT:PATH[:NAME]`, or a registry's
/// `docker://HOST/REPO[:TAG]`.
fn reference(format: InputFormat, source: &std::path::Path, name: &str) -> String {
    match format {
        InputFormat::Registry => format!("{}{name}", source.display()),
        _ => format!("{format}:{}{name}", source.display()),
    }
}

impl InputInfo {
    /// Describes `image`.
    pub fn of(image: &Image) -> InputInfo {
        let name = image.name().map(|n| format!(":{n}")).unwrap_or_default();
        InputInfo {
            reference: reference(image.format(), image.source(), &name),
            path: image.source().display().to_string(),
            format: image.format(),
            name: image.name().map(str::to_string),
            manifest_digest: image.manifest_digest().cloned(),
            config_digest: image.config_digest().clone(),
            platform: image.platform().map(ToString::to_string),
            other_platforms: image.other_platforms().iter().map(ToString::to_string).collect(),
        }
    }
}

/// One layer as `inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct InspectLayer {
    /// Position in the image.
    pub index: usize,
    /// Blob digest.
    pub digest: Digest,
    /// Uncompressed digest, as the config states it (and as verified).
    pub diff_id: Digest,
    /// Stored blob size.
    pub compressed_size: u64,
    /// Uncompressed tar size.
    pub uncompressed_size: u64,
    /// Media type in the manifest.
    pub media_type: String,
    /// Compression found in the blob's bytes.
    pub compression: Compression,
    /// Tar entries.
    pub entries: usize,
    /// The history step that made the layer.
    pub history: Option<usize>,
}

/// What `inspect` checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Verification {
    /// Whether a manifest was read and its size and sha256 checked.
    pub manifest: bool,
    /// The config's sha256 was checked.
    pub config: bool,
    /// Layer blobs whose size and sha256 were checked.
    pub layer_blobs: usize,
    /// Layers decoded and checked against their diff_id.
    pub diff_ids: usize,
}

/// `squash inspect --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct InspectDocument {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The image.
    pub input: InputInfo,
    /// Its layers, base first.
    pub layers: Vec<InspectLayer>,
    /// Its history steps, empty ones included.
    pub history: Vec<HistoryStep>,
    /// What the config says a container runs with.
    #[serde(default)]
    pub config: RunSettings,
    /// The layers' stored bytes, in all.
    #[serde(default)]
    pub compressed_size: u64,
    /// The layers' uncompressed bytes, in all.
    #[serde(default)]
    pub uncompressed_size: u64,
    /// With `--verify`: what was checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<Verification>,
}

/// What an image's config says a container runs with, and when the image was made: the fields
/// `docker inspect` and `skopeo inspect` show.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RunSettings {
    /// `created`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// `config.User`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `config.WorkingDir`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// `config.Entrypoint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// `config.Cmd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// `config.Env`, as `KEY=VALUE`.
    #[serde(default)]
    pub env: Vec<String>,
    /// `config.Labels`.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// `config.ExposedPorts`' keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exposed_ports: Vec<String>,
    /// `config.Volumes`' keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    /// `config.StopSignal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
}

impl RunSettings {
    /// The settings `image`'s config holds.
    pub fn of(image: &Image) -> RunSettings {
        use serde_json::Value;
        let config = image.config_json();
        let c = &config["config"];
        let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
        let list = |v: &Value| {
            v.as_array().map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        };
        let keys = |v: &Value| {
            v.as_object().map(|m| m.keys().cloned().collect::<Vec<_>>()).unwrap_or_default()
        };
        RunSettings {
            created: text(&config["created"]),
            user: text(&c["User"]),
            working_dir: text(&c["WorkingDir"]),
            entrypoint: list(&c["Entrypoint"]),
            cmd: list(&c["Cmd"]),
            env: list(&c["Env"]).unwrap_or_default(),
            labels: c["Labels"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                        .collect()
                })
                .unwrap_or_default(),
            exposed_ports: keys(&c["ExposedPorts"]),
            volumes: keys(&c["Volumes"]),
            stop_signal: text(&c["StopSignal"]),
        }
    }
}

impl InspectDocument {
    /// The document for `image`, whose layers `indexes` describe (as [`Image::index_layers`]
    /// returns them, every layer decoded and verified).
    pub fn new(image: &Image, indexes: &[LayerIndex], verify: bool) -> InspectDocument {
        let layers = image
            .layers()
            .iter()
            .zip(indexes)
            .map(|(l, i)| InspectLayer {
                index: l.index(),
                digest: i.blob_digest.clone(),
                diff_id: l.diff_id().clone(),
                compressed_size: l.size(),
                uncompressed_size: i.uncompressed_size,
                media_type: l.media_type().to_string(),
                compression: l.compression(),
                entries: i.entries.len(),
                history: l.history_index(),
            })
            .collect();
        let verified = verify.then(|| Verification {
            manifest: image.manifest_digest().is_some(),
            config: true,
            layer_blobs: indexes.len(),
            diff_ids: indexes.len(),
        });
        InspectDocument {
            schema_version: SCHEMA_VERSION,
            input: InputInfo::of(image),
            layers,
            history: image.history().to_vec(),
            config: RunSettings::of(image),
            compressed_size: image.layers().iter().map(|l| l.size()).fold(0, u64::saturating_add),
            uncompressed_size: indexes.iter().map(|i| i.uncompressed_size).sum(),
            verified,
        }
    }
}

/// One range of a dry run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PlannedRangeSummary {
    /// The layers and the rule that chose them.
    pub range: LayerRange,
    /// Stored bytes of the range's layers.
    pub compressed_size_before: u64,
    /// Uncompressed bytes of the range's layers.
    pub uncompressed_size_before: u64,
    /// Exact uncompressed size of the new layer.
    pub uncompressed_size_after: u64,
    /// Entries the new layer holds.
    pub entries_after: usize,
    /// Compression of the new layer.
    pub compression: Compression,
    /// What each `--exclude` pattern removes from the range and hides below it (left out when
    /// none was given).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded: Vec<ExcludeFigures>,
}

impl From<&PlannedRange> for PlannedRangeSummary {
    fn from(r: &PlannedRange) -> PlannedRangeSummary {
        PlannedRangeSummary {
            range: r.range.clone(),
            compressed_size_before: r.compressed_size_before(),
            uncompressed_size_before: r.uncompressed_size_before(),
            uncompressed_size_after: r.uncompressed_size(),
            entries_after: r.entries_after(),
            compression: r.compression,
            excluded: r.excluded().to_vec(),
        }
    }
}

/// `squash IMAGE … --dry-run --json`: the plan, nothing written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PlanDocument {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Always true.
    pub dry_run: bool,
    /// The image.
    pub input: InputInfo,
    /// The ranges to squash, in image order.
    pub ranges: Vec<PlannedRangeSummary>,
    /// The layers kept byte for byte.
    pub kept_layers: Vec<usize>,
    /// Ranges of one layer kept as they were: each would squash to itself (left out when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unchanged: Vec<LayerRange>,
    /// History steps that made no filesystem layer, asked for with `-f N` (first and last):
    /// they fold into one step with `--drop-history` (left out when none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folded_steps: Option<(usize, usize)>,
}

impl PlanDocument {
    /// The document for `plan`, made from `image`.
    pub fn new(image: &Image, plan: &SquashPlan) -> PlanDocument {
        PlanDocument {
            schema_version: SCHEMA_VERSION,
            dry_run: true,
            input: InputInfo::of(image),
            ranges: plan.ranges.iter().map(PlannedRangeSummary::from).collect(),
            kept_layers: plan.kept_layers(image).collect(),
            unchanged: plan.unchanged.clone(),
            folded_steps: plan.folded_steps,
        }
    }
}

/// Which image index a document is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IndexInfo {
    /// The index as a reference that names it exactly (`oci:PATH:TAG`, …).
    pub reference: String,
    /// The file or directory read.
    pub path: String,
    /// Its container format.
    pub format: InputFormat,
    /// The tag it was chosen by, if any.
    pub name: Option<String>,
    /// The index document's digest.
    pub index_digest: Digest,
    /// Its media type (OCI image index or Docker manifest list).
    pub media_type: String,
    /// The platforms of its images, in order.
    pub platforms: Vec<String>,
}

impl IndexInfo {
    /// Describes `index`.
    pub fn of(index: &ImageIndex) -> IndexInfo {
        let name = index.name().map(|n| format!(":{n}")).unwrap_or_default();
        IndexInfo {
            reference: reference(index.format(), index.source(), &name),
            path: index.source().display().to_string(),
            format: index.format(),
            name: index.name().map(str::to_string),
            index_digest: index.digest().clone(),
            media_type: index.media_type().to_string(),
            platforms: index.platforms().iter().map(ToString::to_string).collect(),
        }
    }
}

/// `squash inspect --json INDEX`: every image of an index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IndexInspectDocument {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The index.
    pub index: IndexInfo,
    /// One document per image, in index order.
    pub images: Vec<InspectDocument>,
}

impl IndexInspectDocument {
    /// The document for `index` whose images' documents are `images`.
    pub fn new(index: &ImageIndex, images: Vec<InspectDocument>) -> IndexInspectDocument {
        IndexInspectDocument { schema_version: SCHEMA_VERSION, index: IndexInfo::of(index), images }
    }
}

/// `squash report --json INDEX`: the report of every image of an index, each with its gates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IndexReportDocument {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The index.
    pub index: IndexInfo,
    /// One report per image, in index order.
    pub images: Vec<ReportDocument>,
}

impl IndexReportDocument {
    /// The document for `index` whose images' reports are `images`.
    pub fn new(index: &ImageIndex, images: Vec<ReportDocument>) -> IndexReportDocument {
        IndexReportDocument { schema_version: SCHEMA_VERSION, index: IndexInfo::of(index), images }
    }
}

/// `squash INDEX … --dry-run --json`: the plan of every image of an index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IndexPlanDocument {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Always true.
    pub dry_run: bool,
    /// The index.
    pub index: IndexInfo,
    /// One plan per image, in index order (copied images have no range).
    pub images: Vec<PlanDocument>,
}

impl IndexPlanDocument {
    /// The document for `plan` of `index`.
    pub fn new(index: &ImageIndex, plan: &IndexPlan) -> IndexPlanDocument {
        IndexPlanDocument {
            schema_version: SCHEMA_VERSION,
            dry_run: true,
            index: IndexInfo::of(index),
            images: plan
                .images(index)
                .into_iter()
                .map(|(image, p)| PlanDocument::new(image, p))
                .collect(),
        }
    }
}

/// `squash INDEX … --json`: what was written for an index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IndexOutcomeDocument {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The index read.
    pub index: IndexInfo,
    /// What was written.
    #[serde(flatten)]
    pub outcome: IndexOutcome,
}

impl IndexOutcomeDocument {
    /// The document for `outcome`, written from `index`.
    pub fn new(index: &ImageIndex, outcome: IndexOutcome) -> IndexOutcomeDocument {
        IndexOutcomeDocument {
            schema_version: SCHEMA_VERSION,
            index: IndexInfo::of(index),
            outcome,
        }
    }
}

/// `squash IMAGE … --json`: what was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OutcomeDocument {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The image read.
    pub input: InputInfo,
    /// What was written.
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl OutcomeDocument {
    /// The document for `outcome`, written from `image`.
    pub fn new(image: &Image, outcome: Outcome) -> OutcomeDocument {
        OutcomeDocument { schema_version: SCHEMA_VERSION, input: InputInfo::of(image), outcome }
    }
}

/// `squash report --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ReportDocument {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The image.
    pub input: InputInfo,
    /// The figures.
    #[serde(flatten)]
    pub report: Report,
    /// Every gate given, with its verdict (empty when none is).
    pub gates: Vec<GateResult>,
}

impl ReportDocument {
    /// The document for `report` of `image` with the verdicts `gates`.
    pub fn new(image: &Image, report: Report, gates: Vec<GateResult>) -> ReportDocument {
        ReportDocument {
            schema_version: SCHEMA_VERSION,
            input: InputInfo::of(image),
            report,
            gates,
        }
    }
}

/// `squash report --json A B …`: each image's report, then what they store together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MultiReportDocument {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// One report per image, inputs in the order given, an index's images in its order.
    pub images: Vec<ReportDocument>,
    /// Their sum, each shared blob counted once.
    pub summary: AuditSummary,
}

impl MultiReportDocument {
    /// The document for the reports `images` and their `summary`.
    pub fn new(images: Vec<ReportDocument>, summary: AuditSummary) -> MultiReportDocument {
        MultiReportDocument { schema_version: SCHEMA_VERSION, images, summary }
    }
}

/// What went wrong, in an [`ErrorDocument`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ErrorInfo {
    /// [`crate::Error::kind`], or `usage` for an error of the command line itself.
    pub kind: String,
    /// The message, as printed on stderr.
    pub message: String,
    /// The file the error is about, if any.
    pub file: Option<String>,
    /// The blob, layer or member inside it.
    pub part: Option<String>,
    /// The tar entry inside that layer.
    pub entry: Option<String>,
}

/// Any command's `--json` output when it fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ErrorDocument {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The error.
    pub error: ErrorInfo,
    /// The process's exit code.
    pub exit_code: u8,
}

impl ErrorDocument {
    /// The document for an error of `kind` ([`crate::Error::kind`], or `usage`) printed as
    /// `message`, about `location` if known, ending the process with `exit_code`.
    pub fn new(
        kind: &str,
        message: &str,
        location: Option<&Location>,
        exit_code: u8,
    ) -> ErrorDocument {
        ErrorDocument {
            schema_version: SCHEMA_VERSION,
            error: ErrorInfo {
                kind: kind.to_string(),
                message: message.to_string(),
                file: location.and_then(|l| l.file.as_ref()).map(|f| f.display().to_string()),
                part: location.and_then(|l| l.part.clone()),
                entry: location.and_then(|l| l.entry.clone()),
            },
            exit_code,
        }
    }
}

/// `squash diff --json`: how the final filesystems of two images differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DiffDocument {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The first image.
    pub a: InputInfo,
    /// The second image.
    pub b: InputInfo,
    /// Whether the filesystems are equal in every attribute compared, and the configs and
    /// manifests in every field compared.
    pub equal: bool,
    /// The attributes left out of the comparison.
    pub ignored: Vec<Attribute>,
    /// Whether the configs and manifests were left out (`--ignore config`).
    #[serde(default)]
    pub config_ignored: bool,
    /// The fields of the configs and manifests that differ.
    #[serde(default)]
    pub config: Vec<ConfigChange>,
    /// The paths added, removed and changed.
    #[serde(flatten)]
    pub diff: TreeDiff,
}

impl DiffDocument {
    /// The document of `diff` between `a` and `b`.
    pub fn new(a: &Image, b: &Image, ignored: Vec<Attribute>, diff: TreeDiff) -> DiffDocument {
        DiffDocument {
            schema_version: SCHEMA_VERSION,
            a: InputInfo::of(a),
            b: InputInfo::of(b),
            equal: diff.is_empty(),
            ignored,
            config_ignored: true,
            config: Vec::new(),
            diff,
        }
    }

    /// Adds the configs' and manifests' differences ([`crate::diff_configs`]) to the
    /// comparison.
    pub fn with_config(mut self, config: Vec<ConfigChange>) -> DiffDocument {
        self.equal &= config.is_empty();
        self.config_ignored = false;
        self.config = config;
        self
    }
}
