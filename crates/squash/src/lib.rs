//! squash rewrites container images offline: it merges chosen ranges of layers into one layer
//! each, drops every file that later layers shadow or delete, and writes a new image whose
//! untouched layers stay byte-identical.
//!
//! Data flows one way: [`Image::open`] (read) → [`Image::plan`] (plan, pure) →
//! [`SquashPlan::execute`] (merge and write) → [`Outcome`].

#![deny(missing_docs)]
#![doc = include_str!("../README.md")]

mod diff;
mod digest;
pub mod document;
mod error;
mod layer;
mod merge;
mod pages;
mod plan;
mod read;
mod report;
mod write;

pub use diff::{diff_images, diff_trees, Attribute, ChangedPath, Difference, Tree, TreeDiff, TreeEntry};
pub use digest::{Digest, InvalidDigest};
pub use error::{Error, Location, ParseError, Result};
pub use layer::compression::Compression;
pub use layer::entry::{EntryKind, EntryPath, Whiteout};
pub use layer::index::{EntryClass, IndexedEntry, LayerIndex};
pub use plan::edits::{parse_command, ConfigEdits, KeyEdit};
pub use plan::exclude::{ExcludeFigures, Excludes};
pub use plan::{parse_layer_range, Fate, HistoryMode, LayerRange, LayerSelector, PlannedRange, Reread, SquashOptions, SquashPlan};
pub use read::{
    HistoryStep, Image, ImageIndex, ImageReference, IndexChild, IndexChildKind, InputFormat, Layer, OpenOptions, Opened, Platform,
    Transport,
};
pub use report::{
    Audit, AuditSummary, Clutter, ClutterPath, ClutterRule, GateResult, GateRule, Gates, LayerBytes, LayerReport, RangeReport, Report,
    ReportOptions, WastedPath,
};

/// Presentation helpers for programs that show squash's figures to people: sizes as text and
/// back, and the report as an SVG chart, Markdown for a pull request, or an HTML page.
pub mod present {
    #[cfg(feature = "svg")]
    pub use crate::pages::report_html;
    pub use crate::pages::report_markdown;
    #[cfg(feature = "svg")]
    pub use crate::report::report_svg;
    pub use crate::report::{human, parse_size};
}
pub use write::{
    Event, ImageOutcome, IndexOptions, IndexOutcome, IndexPlan, NoProgress, Outcome, OutcomeLayer, Output, OutputFormat, Progress,
    DEFAULT_LOCK_TIMEOUT,
};
