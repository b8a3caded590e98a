//! The OCI changeset rules (image-spec `layer.md`; this project's account is
//! docs/layer-rules.md), applied to the indexes of a layer range: which entries survive a squash,
//! which whiteouts the kept layers below still need, and in what order the new layer's entries
//! must be written. Pure functions of `LayerIndex`es and options: nothing here reads a layer.
//!
//! The files, lowest first: `range_plan` (what is decided, as data), `delta` (the range applied
//! over an unknown lower filesystem), `lower` (what a plan asks of the layers below), `exclude`
//! (`--exclude` on the delta), `tree` (an image's final filesystem), `emit` (the new layer's
//! entries, order and size).

pub(crate) mod delta;
pub(crate) mod emit;
pub(crate) mod exclude;
pub(crate) mod lower;
pub(crate) mod range_plan;
pub(crate) mod tree;
