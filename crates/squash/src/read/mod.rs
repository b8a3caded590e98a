//! Reading: any supported input (OCI layout, OCI archive, `docker save` tarball in its three
//! shapes, containers-image `dir:`, a registry) becomes an [`Image`] (or an [`ImageIndex`])
//! whose blobs are read in place, each verified as it passes; and the layers of an image are
//! read as verified tar streams, indexed, read once per squashed range, or read again where a
//! plan needs it.
//!
//! The files, lowest first: `media` (every media type), `archive` (outer tars by offset),
//! `blob` (stores and the verifying reader), `platform`, `descriptor` (what manifests and indexes
//! share), `image` (the model), `spool` (inputs copied first), `reference`, `oci` (a manifest
//! into an `Image`), `docker`, `image_index`, `layout` (OCI layouts: tags and platforms),
//! `remote` (images in a registry), `open` (a reference into an `Image` or index), `stream` (a
//! layer as a verified tar), `indexing`, `once` (a range read once), `reread`.

pub(crate) mod archive;
pub(crate) mod blob;
pub(crate) mod descriptor;
mod docker;
pub(crate) mod image;
pub(crate) mod image_index;
pub(crate) mod indexing;
mod layout;
pub(crate) mod media;
mod oci;
pub(crate) mod once;
mod open;
pub(crate) mod platform;
pub(crate) mod reference;
#[cfg(feature = "registry")]
mod remote;
pub(crate) mod reread;
mod spool;
pub(crate) mod stream;
