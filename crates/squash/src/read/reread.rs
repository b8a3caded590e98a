//! Reading again what a layer's index did not keep: the header groups of files whose names a
//! hard link outlives (the plan renames them), from a range's kept copies when they hold them,
//! else from the layer itself. Every read of a layer beyond the one each squash needs is
//! recorded as a [`Reread`], with its reason.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::image::Image;
use super::once::Kept;
use super::stream::{Check, LayerStream};
use crate::budget::Budget;
use crate::error::{Error, Result};
use crate::layer::layer_index::LayerIndex;

/// A layer read again, beyond the one read of each layer a squash needs, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Reread {
    /// The image layer.
    pub layer: usize,
    /// Why.
    pub reason: String,
}

impl Reread {
    pub(crate) fn new(layer: usize, reason: &str) -> Reread {
        Reread { layer, reason: reason.to_string() }
    }
}

impl Image {
    /// Reads again the header bytes of `wanted` (position in `indexes`, entry), which their
    /// indexes did not keep: from what a one-time read `kept`, when it kept them all for that
    /// layer, otherwise from the layer (its blob digest checked again), which is counted in
    /// `rereads`.
    pub(crate) fn restore_headers(
        &self,
        indexes: &mut [LayerIndex],
        wanted: &BTreeSet<(usize, usize)>,
        budget: Budget,
        kept: Option<&[Kept]>,
        rereads: &mut Vec<Reread>,
    ) -> Result<()> {
        for (position, index) in indexes.iter_mut().enumerate() {
            let entries: BTreeSet<usize> =
                wanted.range((position, 0)..=(position, usize::MAX)).map(|&(_, e)| e).collect();
            let Some(&last) = entries.last() else { continue };
            if let Some(kept) =
                kept.and_then(|k| k.get(position)).filter(|k| entries.iter().all(|&e| k.has(e)))
            {
                let mut headers = Vec::with_capacity(entries.len());
                {
                    let mut reader = kept.reader(index);
                    for &e in &entries {
                        let (header, _) = reader
                            .entry(e)
                            .map_err(|err| Error::io(index.location.clone(), err))?;
                        headers.push((e, header));
                    }
                }
                for (e, header) in headers {
                    index.entries[e].raw = Some(header.into_boxed_slice());
                }
                continue;
            }
            rereads.push(Reread::new(
                index.layer,
                "headers of files whose names a hard link outlives",
            ));
            let layer = self.layer(index.layer)?;
            let mut stream = LayerStream::open_within(
                self,
                layer,
                Check::BlobOnly(index.blob_digest.clone()),
                budget,
            )?;
            for i in 0..=last {
                let group = match stream.tar.next_group() {
                    Ok(Some(group)) => group,
                    Ok(None) => {
                        return Err(Error::malformed_tar(
                            stream.location.clone(),
                            "layer changed while it was being read",
                        ))
                    }
                    Err(e) => return Err(stream.error(e)),
                };
                if entries.contains(&i) {
                    index.entries[i].raw = Some(group.raw.into_boxed_slice());
                }
            }
            stream.finish()?;
        }
        Ok(())
    }
}
