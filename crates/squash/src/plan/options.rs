//! What a squash is asked to do: the layers to squash, how to write the new layers, the history,
//! times, excludes and config edits ([`SquashOptions`]), and the defaults and limits that follow
//! from the image (the new layer's compression, the levels each compression has).

use serde::Serialize;

use super::edits;
use super::range::{LayerRange, LayerSelector};
use crate::codec::compression::Compression;
use crate::error::{Error, Result};
use crate::read::image::Image;

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
    /// layer above it shadows is kept in a temporary file (in the run's
    /// [`Context::tmp_dir`](crate::Context::tmp_dir)), and the merge copies from there
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
}

impl Default for SquashOptions {
    fn default() -> SquashOptions {
        SquashOptions {
            selector: LayerSelector::default(),
            bases: Vec::new(),
            compression: None,
            level: None,
            message: None,
            history: HistoryMode::default(),
            source_date_epoch: None,
            excludes: Vec::new(),
            read_once: true,
            rewrite_timestamp: false,
            edits: edits::ConfigEdits::default(),
            lock_timeout: None,
            verify_all: false,
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
                reason: "--rewrite-timestamp needs a time: give --source-date-epoch or set \
                    SOURCE_DATE_EPOCH"
                    .into(),
            }),
            Some(epoch) => u64::try_from(epoch).map(Some).map_err(|_| Error::InvalidOption {
                reason: format!(
                    "--rewrite-timestamp: the \
                    epoch {epoch} is before 1970"
                ),
            }),
        }
    }
}

/// Refuses a level the chosen compression does not have.
pub(crate) fn check_level(compression: Compression, level: Option<i32>) -> Result<()> {
    let Some(level) = level else { return Ok(()) };
    let (low, high) = match compression {
        Compression::None => {
            return Err(Error::InvalidOption {
                reason: format!("--level {level} has no meaning with --compression none"),
            })
        }
        Compression::Gzip => (1, 9),
        Compression::Zstd => (1, 22),
    };
    if (low..=high).contains(&level) {
        Ok(())
    } else {
        Err(Error::InvalidOption {
            reason: format!(
                "--level {level} is out of range for {compression} (levels {low} to {high})"
            ),
        })
    }
}

/// The new layer keeps the squashed layers' compression (docs/layer-rules.md, rule 13): the most
/// common one among them, the newest winning ties.
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
