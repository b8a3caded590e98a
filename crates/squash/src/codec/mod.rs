//! Compression in one place: which compression a blob has (sniffed from its first bytes), the
//! streaming decoders that read layers and compressed archives, and the encoders that write new
//! layers (gzip through a block-parallel writer, zstd in its multi-threaded mode), configured so
//! that the bytes never depend on the thread count.

pub(crate) mod compression;
pub(crate) mod decode;
pub(crate) mod encode;
pub(crate) mod pgzip;
