//! The vocabulary shared by all stages: entry paths and kinds, compression, the tar stream
//! reader, and the per-layer index that planning works from.

pub(crate) mod compression;
pub(crate) mod entry;
pub(crate) mod header;
pub(crate) mod index;
pub(crate) mod tarstream;
