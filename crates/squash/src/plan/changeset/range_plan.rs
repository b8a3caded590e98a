//! What the changeset rules decide about one range, as data: the fate of every entry of its
//! layers ([`Fate`]), and the steps the merge follows to write the new layer ([`RangePlan`]).

use std::collections::BTreeSet;

use serde::Serialize;

use crate::layer::entry::EntryPath;
use crate::plan::exclude::ExcludeFigures;
use crate::read::reread::Reread;

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
    pub missing_lower: BTreeSet<EntryPath>,
    /// Directories the range implies, of which the plan must know whether the layers below hold
    /// them (a header is written for those they do not).
    pub missing_lower_dirs: BTreeSet<EntryPath>,
    /// Entries (layer of the range, entry) whose header the plan needs and the index did not
    /// keep: the plan is incomplete until they are read again and it is made anew.
    pub missing_headers: BTreeSet<(usize, usize)>,
    /// `--exclude`: the paths to ask the layers below about (`None` when nothing is asked).
    pub missing_excluded: Option<BTreeSet<EntryPath>>,
    /// `--exclude`: what each pattern removes from this range and hides below it.
    pub excluded: Vec<ExcludeFigures>,
    /// Layers read again while planning (headers the indexes did not keep).
    pub rereads: Vec<Reread>,
}

impl RangePlan {
    /// What the plan asked of the layers below the range (files, directories, and for
    /// `--exclude` paths), the rest of it dropped.
    pub(crate) fn into_questions(
        self,
    ) -> (BTreeSet<EntryPath>, BTreeSet<EntryPath>, Option<BTreeSet<EntryPath>>) {
        (self.missing_lower, self.missing_lower_dirs, self.missing_excluded)
    }
}
