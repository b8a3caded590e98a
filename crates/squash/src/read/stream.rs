//! Opening a layer as a verified tar stream: blob bytes are checked against the descriptor's
//! size and digest, and the uncompressed bytes against the config's diff_id, in the same pass.

use std::io::{self, BufReader, Read};

use crate::digest::{Digest, HashingReader};
use crate::error::{Error, IoContext, Location, Result};
use crate::layer::compression::Decoder;
use crate::layer::tarstream::TarReader;
use crate::read::archive::tar_error;
use crate::read::blob::VerifyingReader;
use crate::read::{Image, Layer};

type Blob = VerifyingReader<Box<dyn Read + Send>>;

/// A layer being read as a tar stream. Call [`LayerStream::finish`] after the last entry: it
/// reads whatever follows the end-of-archive marker and verifies the diff_id, size and digest.
pub(crate) struct LayerStream {
    pub tar: TarReader<HashingReader<Decoder<BufReader<Blob>>>>,
    pub location: Location,
    diff_id: Digest,
}

/// What reading a layer to its end proved about it.
#[derive(Debug, Clone)]
pub(crate) struct Verified {
    pub blob_digest: Digest,
    pub uncompressed_size: u64,
}

impl LayerStream {
    pub(crate) fn open(image: &Image, layer: &Layer) -> Result<LayerStream> {
        let location = image.layer_location(layer);
        let blob = image.open_layer_blob(layer)?;
        let buffered = BufReader::with_capacity(256 * 1024, blob);
        let decoder = Decoder::new(layer.compression, buffered).at(|| location.clone())?;
        Ok(LayerStream { tar: TarReader::new(HashingReader::new(decoder)), location, diff_id: layer.diff_id.clone() })
    }

    /// Converts a tar-level error into a located [`Error`].
    pub(crate) fn error(&self, e: crate::layer::tarstream::TarError) -> Error {
        tar_error(self.location.clone(), e)
    }

    pub(crate) fn finish(self) -> Result<Verified> {
        let location = self.location;
        let hashing = self.tar.into_inner();
        let (decoder, diff_id, uncompressed_size) = hashing.drain_into_parts().at(|| location.clone())?;
        if diff_id != self.diff_id {
            return Err(Error::DigestMismatch {
                location: location.part("diff_id (uncompressed tar)"),
                expected: self.diff_id,
                actual: diff_id,
            });
        }
        let mut buffered = decoder.into_inner();
        io::copy(&mut buffered, &mut io::sink()).at(|| location.clone())?;
        let blob_digest = buffered.into_inner().finish()?;
        Ok(Verified { blob_digest, uncompressed_size })
    }
}

impl Image {
    /// Reads one layer's headers (skipping file contents) and verifies its digests.
    pub fn index_layer(&self, layer_index: usize) -> Result<crate::layer::index::LayerIndex> {
        use crate::layer::index::{IndexedEntry, LayerIndex};
        let layer = self.layers.get(layer_index).ok_or_else(|| Error::InvalidRange { reason: format!("no layer {layer_index}") })?;
        let mut stream = LayerStream::open(self, layer)?;
        let mut entries = Vec::new();
        loop {
            let group = match stream.tar.next_group() {
                Ok(Some(group)) => group,
                Ok(None) => break,
                Err(e) => return Err(stream.error(e)),
            };
            entries.push(IndexedEntry::from_group(group, &stream.location)?);
        }
        let location = stream.location.clone();
        let verified = stream.finish()?;
        Ok(LayerIndex {
            layer: layer_index,
            entries,
            blob_digest: verified.blob_digest,
            uncompressed_size: verified.uncompressed_size,
            compressed_size: layer.blob.size,
            location,
        })
    }

    /// Indexes several layers in parallel; the result keeps the order of `layers`.
    pub fn index_layers(&self, layers: impl IntoIterator<Item = usize>) -> Result<Vec<crate::layer::index::LayerIndex>> {
        use rayon::prelude::*;
        let wanted: Vec<usize> = layers.into_iter().collect();
        wanted.par_iter().map(|&i| self.index_layer(i)).collect()
    }
}

impl Image {
    /// Streams layer `layer_index` as an uncompressed tar into `out`, verifying its digest, size
    /// and diff_id as it goes (an export of one layer).
    pub fn write_layer_tar(&self, layer_index: usize, out: &mut dyn std::io::Write) -> Result<()> {
        let layer = self.layers.get(layer_index).ok_or_else(|| Error::InvalidRange { reason: format!("no layer {layer_index}") })?;
        let mut stream = LayerStream::open(self, layer)?;
        let location = stream.location.clone();
        io::copy(stream.tar.get_mut(), out).at(|| location.clone())?;
        stream.finish()?;
        Ok(())
    }
}
