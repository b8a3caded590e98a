//! Merging: one planned range into one new layer. `range_tar` writes the range's new
//! uncompressed tar in the planned order (from the copies its one read kept, or the layers read
//! again); `new_layer` puts it through the encoder into a blob, checking it against the plan.

pub(crate) mod new_layer;
pub(crate) mod range_tar;
