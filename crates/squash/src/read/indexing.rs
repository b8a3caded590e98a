//! Reading whole layers: indexing them (every header recorded, every digest checked, file
//! contents skipped), in parallel within the thread budget, through an optional filter that keeps
//! only what one question needs; verifying them without keeping anything; exporting one as a
//! plain tar.

use std::io::{self, Write};

use rayon::prelude::*;

use super::image::Image;
use super::stream::{Check, LayerStream};
use crate::budget::Budget;
use crate::context::Context;
use crate::error::{IoContext, Result};
use crate::layer::layer_index::{EntryFacts, EntryFilter, IndexedEntry, LayerIndex};
use crate::layer::tarstream::HeaderGroup;
use crate::progress::Event;

/// What indexing shows each header group to, with the stream (whose data for that entry it may
/// read) before the entry is indexed.
pub(crate) type EntryVisitor<'a> = dyn FnMut(&HeaderGroup, &mut LayerStream) -> Result<()> + 'a;

impl Image {
    /// Reads one layer's headers (skipping file contents) and verifies its digests.
    pub fn index_layer(&self, layer_index: usize) -> Result<LayerIndex> {
        self.index_layer_within(layer_index, Budget::new(0), None, None, false)
    }

    /// Indexes layer `layer_index` as [`Image::index_layer`] does, showing `visit` each header
    /// group (with the stream, whose data for that entry it may read) before it is indexed;
    /// with `facts`, the index holds each entry's [`EntryFacts`].
    pub(crate) fn index_layer_visiting(
        &self,
        layer_index: usize,
        budget: Budget,
        facts: bool,
        visit: &mut EntryVisitor<'_>,
    ) -> Result<LayerIndex> {
        self.index_layer_within(layer_index, budget, None, Some(visit), facts)
    }

    fn index_layer_within(
        &self,
        layer_index: usize,
        budget: Budget,
        filter: Option<&dyn EntryFilter>,
        mut visit: Option<&mut EntryVisitor<'_>>,
        facts: bool,
    ) -> Result<LayerIndex> {
        let layer = self.layer(layer_index)?;
        let mut stream = LayerStream::open_within(self, layer, Check::Full, budget)?;
        let mut entries = Vec::new();
        let mut keep = filter.map(|f| f.for_layer());
        // The facts of the entry last pushed, whose data's fingerprint the next header brings.
        let mut found: Vec<EntryFacts> = Vec::new();
        let mut waiting = false;
        if facts {
            stream.tar.hash_data();
        }
        loop {
            let next = stream.tar.next_group();
            if waiting {
                if let (Some(last), Some(hash)) =
                    (found.last_mut(), stream.tar.previous_data_hash())
                {
                    last.content = hash.to_le_bytes();
                }
                waiting = false;
            }
            let group = match next {
                Ok(Some(group)) => group,
                Ok(None) => break,
                Err(e) => return Err(stream.error(e)),
            };
            if let Some(visit) = visit.as_mut() {
                visit(&group, &mut stream)?;
            }
            let entry_facts = facts.then(|| EntryFacts::new(&group.meta, [0; 16]));
            let mut entry = IndexedEntry::from_group(group, &stream.location)?;
            if keep.as_mut().is_none_or(|keep| keep(&mut entry)) {
                entries.push(entry);
                if let Some(f) = entry_facts {
                    found.push(f);
                    waiting = true;
                }
            }
        }
        entries.shrink_to_fit();
        found.shrink_to_fit();
        let location = stream.location.clone();
        let verified = stream.finish()?;
        Ok(LayerIndex {
            layer: layer_index,
            entries,
            blob_digest: verified.blob_digest,
            uncompressed_size: verified.uncompressed_size,
            compressed_size: layer.blob.size,
            location,
            facts: found,
        })
    }

    /// Indexes several layers in parallel, on all cores; the result keeps the order of `layers`.
    pub fn index_layers(&self, layers: impl IntoIterator<Item = usize>) -> Result<Vec<LayerIndex>> {
        self.index_layers_in(layers, &Context::new())
    }

    /// [`Image::index_layers`] within `context`: on at most its threads (with one or two, each
    /// layer is read and decoded on the thread that indexes it; from three on, a third of them
    /// index layers at once, each with a reading and a decoding thread), telling its progress
    /// ([`Event::Indexing`], then [`Event::Indexed`] for each layer as it is done).
    pub fn index_layers_in(
        &self,
        layers: impl IntoIterator<Item = usize>,
        context: &Context<'_>,
    ) -> Result<Vec<LayerIndex>> {
        self.index_layers_filtered(layers, context, None, false)
    }

    /// [`Image::index_layers_in`], keeping in each index only what `filter` chooses (every
    /// entry is still read and the layer verified in full); with `facts`, each index holds its
    /// entries' [`EntryFacts`].
    pub(crate) fn index_layers_filtered(
        &self,
        layers: impl IntoIterator<Item = usize>,
        context: &Context<'_>,
        filter: Option<&dyn EntryFilter>,
        facts: bool,
    ) -> Result<Vec<LayerIndex>> {
        let budget = context.budget();
        let progress = context.progress();
        let wanted: Vec<usize> = layers.into_iter().collect();
        let size = |i: usize| self.layers.get(i).map_or(0, |l| l.blob.size);
        if !wanted.is_empty() {
            progress.event(&Event::Indexing {
                layers: wanted.len(),
                bytes: crate::units::total(wanted.iter().map(|&i| size(i))),
            });
        }
        budget.run(|| {
            wanted
                .par_iter()
                .map(|&i| {
                    let index = self.index_layer_within(i, budget, filter, None, facts)?;
                    progress.event(&Event::Indexed { layer: i, bytes: size(i) });
                    Ok(index)
                })
                .collect()
        })?
    }

    /// Decodes the given layers (in parallel, within `context`'s threads) and checks each
    /// blob's size and sha256 and each layer's diff_id, writing nothing.
    pub fn verify_layers(
        &self,
        layers: impl IntoIterator<Item = usize>,
        context: &Context<'_>,
    ) -> Result<()> {
        let budget = context.budget();
        let wanted: Vec<usize> = layers.into_iter().collect();
        budget.run(|| {
            wanted
                .par_iter()
                .try_for_each(|&i| self.export_layer_within(i, &mut io::sink(), budget))
        })?
    }

    /// Streams layer `layer_index` as an uncompressed tar into `out`, verifying its digest, size
    /// and diff_id as it goes (an export of one layer).
    pub fn write_layer_tar(&self, layer_index: usize, out: &mut dyn Write) -> Result<()> {
        self.export_layer_within(layer_index, out, Budget::new(0))
    }

    fn export_layer_within(
        &self,
        layer_index: usize,
        out: &mut dyn Write,
        budget: Budget,
    ) -> Result<()> {
        let layer = self.layer(layer_index)?;
        let mut stream = LayerStream::open_within(self, layer, Check::Full, budget)?;
        let location = stream.location.clone();
        io::copy(stream.tar.get_mut(), out).at(|| location.clone())?;
        stream.finish()?;
        Ok(())
    }
}
