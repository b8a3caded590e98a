//! Every media type squash reads or writes, in one place: the OCI image-spec's and Docker's
//! (v2 schema 2) documents and layers, the layer types of each compression, and the check that
//! refuses a layer type this tool cannot unpack.

use crate::codec::compression::Compression;
use crate::error::{Error, Location, Result};

/// An OCI image manifest.
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// An OCI image index.
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// An OCI image config.
pub(crate) const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// A Docker image manifest (v2 schema 2).
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// A Docker manifest list.
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// A Docker image config.
pub(crate) const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// What a containers-image `dir:` manifest may call its config.
pub(crate) const OCTET_STREAM: &str = "application/octet-stream";
/// The prefix of Docker's deprecated schema 1 manifests.
pub(crate) const DOCKER_SCHEMA1_PREFIX: &str = "application/vnd.docker.distribution.manifest.v1";

/// The layer media types squash unpacks: the OCI image-spec's (nondistributable ones included)
/// and Docker's.
const LAYERS: [&str; 11] = [
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar.zstd",
    "application/vnd.docker.image.rootfs.foreign.diff.tar",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];

/// The OCI layer media type for a layer of this compression.
pub(crate) fn oci_layer(compression: Compression) -> &'static str {
    match compression {
        Compression::None => "application/vnd.oci.image.layer.v1.tar",
        Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
        Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
    }
}

/// The Docker v2s2 media type for a layer of this compression.
pub(crate) fn docker_layer(compression: Compression) -> &'static str {
    match compression {
        Compression::None => "application/vnd.docker.image.rootfs.diff.tar",
        Compression::Gzip => "application/vnd.docker.image.rootfs.diff.tar.gzip",
        Compression::Zstd => "application/vnd.docker.image.rootfs.diff.tar.zstd",
    }
}

/// The compression a layer media type names (`+gzip`, `.gzip`, `+zstd`, `.zstd`, or a plain
/// tar), or `None` for a type that is not a layer's.
pub(crate) fn compression_of(media_type: &str) -> Option<Compression> {
    if !LAYERS.contains(&media_type) {
        return None;
    }
    Some(if media_type.ends_with("gzip") {
        Compression::Gzip
    } else if media_type.ends_with("zstd") {
        Compression::Zstd
    } else {
        Compression::None
    })
}

/// The nondistributable variant of an OCI layer media type.
pub(crate) fn nondistributable(media_type: &str) -> String {
    media_type.replace(".layer.v1", ".layer.nondistributable.v1")
}

/// Accepts the layer media types of the OCI image-spec and Docker's v2s2, refuses the rest.
pub(crate) fn check_layer(media_type: &str, location: &Location) -> Result<()> {
    if media_type.contains("+encrypted") {
        return Err(Error::unsupported(
            location.clone(),
            format!("encrypted layer (`{media_type}`)"),
        ));
    }
    if LAYERS.contains(&media_type) {
        Ok(())
    } else {
        Err(Error::unsupported(location.clone(), format!("layer media type `{media_type}`")))
    }
}
