//! Planning: what to squash ([`SquashOptions`], the selector resolved into ranges), decided from
//! the layers' indexes before any byte is written ([`SquashPlan`]), for one image or every image
//! of an index. The decisions are the changeset rules' (`changeset`, pure functions of the
//! indexes); `planner` reads what they ask for (the range once, the layers below, headers again).
//!
//! The files, lowest first: `range` (selectors into ranges), `exclude` (the patterns), `edits`
//! (config and manifest edits), `options`, `changeset/`, `squash_plan` (the plan as data),
//! `planner`, `image_index` (every platform of an index).

pub(crate) mod changeset;
pub(crate) mod edits;
pub(crate) mod exclude;
pub(crate) mod image_index;
pub(crate) mod options;
pub(crate) mod planner;
pub(crate) mod range;
pub(crate) mod squash_plan;
