//! Several images' reports summed as a registry stores them: each blob once, however many images
//! share it ([`Audit`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::model::Report;
use crate::read::image::Image;

/// Several images' reports summed as a registry stores them: each blob once, however many
/// images share it. Images are added one at a time, so only their blob lists are held.
#[derive(Debug, Clone, Default)]
pub struct Audit {
    images: usize,
    /// Every layer blob of the images, by digest, with its size.
    blobs: BTreeMap<String, u64>,
    /// The blobs the images would have after their squashes: the layers kept, by digest, and
    /// the new layers, by what makes them (the same layers below and in the range, squashed
    /// with the same options, give the same bytes).
    blobs_after: BTreeMap<String, u64>,
    exact: bool,
}

/// What [`Audit`] sums up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuditSummary {
    /// Images reported.
    pub images: usize,
    /// Distinct layer blobs they store.
    pub blobs: usize,
    /// Their stored bytes, each blob counted once.
    pub stored_bytes: u64,
    /// The stored bytes after squashing every image as reported, each blob counted once (a new
    /// layer at its estimated size, or exact ones when every new layer was measured exactly).
    pub stored_bytes_after: u64,
    /// What the squashes save in all, compressed.
    pub saved_bytes: u64,
    /// The saving as a percentage of the stored bytes.
    pub saved_percent: f64,
    /// Whether the figures after are exact (every new layer measured whole: with
    /// [`ReportOptions::exact`](crate::ReportOptions::exact), or where that costs less than an
    /// estimate).
    pub exact: bool,
}

impl Audit {
    /// An empty audit.
    pub fn new() -> Audit {
        Audit { exact: true, ..Audit::default() }
    }

    /// Adds `image` and its `report`.
    pub fn add(&mut self, image: &Image, report: &Report) {
        self.images += 1;
        let digest = |l: usize| {
            let layer = &image.layers()[l];
            layer.digest().unwrap_or(layer.diff_id()).to_string()
        };
        for (l, layer) in report.layers.iter().enumerate() {
            self.blobs.insert(digest(l), layer.compressed_size);
            if !report.squash.iter().any(|r| (r.range.start..=r.range.end).contains(&l)) {
                self.blobs_after.insert(digest(l), layer.compressed_size);
            }
        }
        for range in &report.squash {
            let made_of: Vec<String> = (0..=range.range.end).map(digest).collect();
            let key = match &range.digest_after {
                Some(d) => d.to_string(),
                None => format!("{} from {}", range.range.start, made_of.join(",")),
            };
            self.blobs_after.insert(key, range.compressed_size_after_estimate);
            self.exact &= range.compressed_size_after_exact.is_some();
        }
    }

    /// The sums so far.
    pub fn summary(&self) -> AuditSummary {
        let stored: u64 = self.blobs.values().sum();
        let after: u64 = self.blobs_after.values().sum();
        let saved = stored.saturating_sub(after);
        AuditSummary {
            images: self.images,
            blobs: self.blobs.len(),
            stored_bytes: stored,
            stored_bytes_after: after,
            saved_bytes: saved,
            saved_percent: if stored == 0 { 0.0 } else { 100.0 * saved as f64 / stored as f64 },
            exact: self.exact && self.images > 0,
        }
    }
}
