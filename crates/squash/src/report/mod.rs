//! Reports: how many bytes each layer wastes (content later layers shadow or delete, so no
//! container sees it), which paths waste them, what squashing each range would reclaim
//! (measured as a squash would write it), the clutter that stays visible, CI gates on those
//! figures, and several images summed as a registry stores them.
//!
//! The files, lowest first: `clutter` (rules and what they match), `model` (the report as
//! data), `gates`, `audit`, `sample` (a new layer's compressed size from samples), `measure`,
//! `compute` (an image's report).

pub(crate) mod audit;
pub(crate) mod clutter;
pub(crate) mod compute;
pub(crate) mod gates;
pub(crate) mod measure;
pub(crate) mod model;
pub(crate) mod sample;
pub(crate) mod story;
