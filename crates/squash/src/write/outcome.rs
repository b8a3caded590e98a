//! What a squash wrote: the new image's digests and layers ([`Outcome`]), each layer kept or new.

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::plan::exclude::ExcludeFigures;
use crate::plan::range::LayerRange;
use crate::read::reread::Reread;
use crate::registry::transfer::Transfer;

/// One layer of the written image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OutcomeLayer {
    /// Position in the new image.
    pub index: usize,
    /// Blob digest.
    pub digest: Digest,
    /// Uncompressed digest.
    pub diff_id: Digest,
    /// Blob size.
    pub compressed_size: u64,
    /// Media type written in the manifest.
    pub media_type: String,
    /// For a merged layer, the range of input layers it replaces; `None` for a kept layer.
    pub squashed_from: Option<LayerRange>,
    /// Uncompressed size, known for merged layers.
    pub uncompressed_size: Option<u64>,
    /// For a merged layer: the layers read again to plan and write it, beyond one read of each
    /// layer of its range, each with the reason (left out when there is none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rereads: Vec<Reread>,
}

/// What a squash (or copy) wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Outcome {
    /// Where the image was written.
    pub output: String,
    /// The new manifest's digest (for a `docker save` output, the manifest it would have).
    pub manifest_digest: Digest,
    /// The new config's digest (the image ID).
    pub config_digest: Digest,
    /// The layers of the new image, base first.
    pub layers: Vec<OutcomeLayer>,
    /// What each `--exclude` pattern removed (left out when none was given).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded: Vec<ExcludeFigures>,
    /// What the run moved through registries, when it read from or wrote to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<Transfer>,
    /// For a push, the image by digest: `docker://HOST/REPO@sha256:…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed: Option<String>,
    /// The tag the output carries (given, or the input's name), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Ranges of one layer kept as they were: each would squash to itself (left out when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unchanged: Vec<LayerRange>,
}

/// The sum of what a run's source and output moved through registries.
pub(crate) fn total_transfer(
    source: Option<Transfer>,
    output: Option<Transfer>,
) -> Option<Transfer> {
    match (source, output) {
        (Some(a), Some(b)) => Some(a.add(&b)),
        (a, b) => a.or(b),
    }
}

impl Outcome {
    /// Layers in the new image.
    pub fn layer_count(&self) -> usize {
        self.layers.len()
    }
}
