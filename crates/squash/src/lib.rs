//! squash rewrites container images offline: it merges chosen ranges of layers into one layer
//! each, drops every file that later layers shadow or delete, and writes a new image whose
//! untouched layers stay byte-identical.
//!
//! An image is opened ([`Image::open`]), planned ([`Image::plan`], which reads what it must and
//! decides everything) and executed ([`SquashPlan::execute`]), giving an [`Outcome`]; a
//! [`Report`] and a [`TreeDiff`] are computed the same way. Every operation has a variant that
//! takes a [`Context`] (threads, progress and cancellation, temporary directory).
//!
//! The modules, lowest first (a module imports only modules below it; ARCHITECTURE.md draws the
//! map): the ground (`digest`, `error`, `progress`, `budget`, `context`, `units`), `codec`,
//! `layer`, `registry`, `read`, `plan`, `merge`, `write`, then `report` and `diff`, then
//! `present`.

#![deny(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]
#![doc = include_str!("../README.md")]

mod budget;
mod codec;
mod config_diff;
mod context;
mod diff;
mod digest;
mod error;
mod layer;
mod merge;
mod page_cache;
mod plan;
pub mod present;
mod progress;
mod read;
mod registry;
mod report;
mod units;
mod write;

pub use codec::compression::Compression;
pub use config_diff::{diff_configs, ConfigChange};
pub use context::Context;
pub use diff::{
    diff_images, diff_trees, Attribute, ChangedPath, Difference, Tree, TreeDiff, TreeEntry,
};
pub use digest::{Digest, InvalidDigest};
pub use error::{Error, Location, ParseError, Result};
pub use layer::entry::{EntryKind, EntryPath, Whiteout};
pub use layer::layer_index::{EntryClass, EntryFacts, IndexedEntry, LayerIndex};
pub use plan::changeset::range_plan::Fate;
pub use plan::edits::{parse_command, ConfigEdits, KeyEdit};
pub use plan::exclude::{ExcludeFigures, Excludes};
pub use plan::image_index::{IndexOptions, IndexPlan};
pub use plan::options::{HistoryMode, SquashOptions};
pub use plan::range::{parse_layer_range, LayerRange, LayerSelector};
pub use plan::squash_plan::{PlannedRange, SquashPlan};
pub use present::document;
pub use progress::{Event, NoProgress, Progress};
pub use read::image::{HistoryStep, Image, InputFormat, Layer, OpenOptions};
pub use read::image_index::{ImageIndex, IndexChild, IndexChildKind, Opened};
pub use read::platform::Platform;
pub use read::reference::{ImageReference, Transport};
pub use read::reread::Reread;
pub use registry::options::{Credentials, RegistryOptions};
pub use registry::reference::RegistryReference;
pub use registry::transfer::Transfer;
pub use report::audit::{Audit, AuditSummary};
pub use report::clutter::{Clutter, ClutterPath, ClutterRule, LayerBytes};
pub use report::gates::{GateResult, GateRule, Gates};
pub use report::model::{
    Action, Cause, CauseKind, CauseLayer, FieldChange, LayerReport, PathEvent, RangeReport, Report,
    ReportOptions, SquashFix, WastedPath, SMALL_FILE,
};
pub use write::image_index::{ImageOutcome, IndexOutcome};
pub use write::lock::DEFAULT_LOCK_TIMEOUT;
pub use write::outcome::{Outcome, OutcomeLayer};
pub use write::output::{Destination, Output, OutputFormat};
pub use write::staged::StagedOutput;
