//! The layer vocabulary shared by every stage above it: entry paths and kinds under the whiteout
//! rules, the tar stream reader that keeps every header byte, the header writers (renames,
//! markers, implied directories, clamped times), and the per-layer index that planning works
//! from.

pub(crate) mod entry;
pub(crate) mod header;
pub(crate) mod layer_index;
pub(crate) mod tarstream;
