//! What a run moved through registries: bytes each way, and the blobs it did not have to move.

use serde::{Deserialize, Serialize};

/// What a run moved through registries, for its outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Transfer {
    /// Bytes downloaded (blobs and documents).
    pub downloaded_bytes: u64,
    /// Bytes uploaded (blobs and documents).
    pub uploaded_bytes: u64,
    /// Blobs the target already had (a `HEAD` said so): neither downloaded nor uploaded.
    pub blobs_present: u64,
    /// Blobs mounted from another repository of the same registry: neither downloaded nor
    /// uploaded.
    pub blobs_mounted: u64,
    /// Blobs uploaded.
    pub blobs_uploaded: u64,
}

impl Transfer {
    /// The sum of two transfers.
    pub fn add(&self, other: &Transfer) -> Transfer {
        Transfer {
            downloaded_bytes: self.downloaded_bytes + other.downloaded_bytes,
            uploaded_bytes: self.uploaded_bytes + other.uploaded_bytes,
            blobs_present: self.blobs_present + other.blobs_present,
            blobs_mounted: self.blobs_mounted + other.blobs_mounted,
            blobs_uploaded: self.blobs_uploaded + other.blobs_uploaded,
        }
    }
}
