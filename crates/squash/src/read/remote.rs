//! Images in a registry (`docker://HOST/REPO:TAG`): the repository reached (credentials, TLS
//! and retries as the options say), the document the tag or digest names fetched and verified,
//! and the image (or the whole index) opened from it like a layout's. Blobs stay in the
//! registry until a stage reads them; layers that are only copied are never downloaded.

use std::sync::Arc;

use super::blob::{BlobRef, Store};
use super::image::{InputFormat, OpenOptions};
use super::image_index::Opened;
use super::layout::open_document;
use crate::digest::Digest;
use crate::error::{Error, Location, Result};
use crate::registry::client::Client;
use crate::registry::reference::RegistryReference;
use crate::registry::repository::Repository;

/// Opens what `reference` names in its registry: with `indexes`, an image index read whole when
/// it names one; else the image (the platform chosen from an index).
pub(crate) fn open(
    reference: &RegistryReference,
    options: &OpenOptions,
    indexes: bool,
) -> Result<Opened> {
    let client = Client::connect(reference, &options.registry)?;
    let repository = Arc::new(Repository::new(client, reference));
    let store = Store::Registry(Arc::clone(&repository));
    let wanted = reference.reference();
    let Some((bytes, media_type)) = repository.document(&wanted)? else {
        return Err(Error::Selection {
            location: Location::file(reference.to_string()),
            reason: match &reference.digest {
                Some(digest) => format!("the repository has no manifest {digest}"),
                None => format!("the repository has no tag `{wanted}`"),
            },
        });
    };
    let digest = Digest::of(&bytes);
    let descriptor = BlobRef {
        name: store.document_name(&digest),
        size: bytes.len() as u64,
        digest: Some(digest),
    };
    let name = reference.tag.clone();
    open_document(&store, InputFormat::Registry, name, descriptor, media_type, options, indexes)
}
