//! The parts of manifests and indexes every reader shares: descriptors as blobs of a store, a
//! document's kind and schema version, an index's entries, a manifest's config, and whether an
//! index entry is an attestation.

use serde_json::Value;

use super::blob::{layout_blob_name, BlobRef, Store};
use super::media::{
    DOCKER_CONFIG, DOCKER_LIST, DOCKER_MANIFEST, DOCKER_SCHEMA1_PREFIX, OCI_CONFIG, OCI_INDEX,
    OCI_MANIFEST,
};
use super::platform::platform_of;
use crate::digest::Digest;
use crate::error::{Error, Location, Result};

/// The annotation that names an image in an OCI layout's `index.json`.
pub(crate) const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The annotation containerd writes for the same.
pub(crate) const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// The manifest annotation that gives the base image's manifest digest.
pub(crate) const BASE_DIGEST: &str = "org.opencontainers.image.base.digest";
/// The annotation of BuildKit's attestation manifests naming the manifest they describe.
pub(crate) const REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";

/// What a JSON document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Index,
    Manifest,
}

pub(crate) fn index_entries<'a>(index: &'a Value, location: &Location) -> Result<Vec<&'a Value>> {
    if !index.is_object() {
        return Err(Error::invalid(location.clone(), "image index", "not a JSON object"));
    }
    check_schema_version(index, location, "image index")?;
    match index.get("manifests") {
        Some(Value::Array(items)) => Ok(items.iter().collect()),
        Some(Value::Null) | None => Ok(Vec::new()),
        Some(_) => {
            Err(Error::invalid(location.clone(), "image index", "`manifests` is not an array"))
        }
    }
}

pub(crate) fn check_schema_version(
    doc: &Value,
    location: &Location,
    what: &'static str,
) -> Result<()> {
    match doc.get("schemaVersion").and_then(Value::as_u64) {
        Some(2) => Ok(()),
        Some(1) => Err(Error::unsupported(
            location.clone(),
            "Docker schema 1 manifest (deprecated; convert it with a registry tool first)",
        )),
        Some(v) => Err(Error::unsupported(location.clone(), format!("{what} schemaVersion {v}"))),
        None => {
            Err(Error::invalid(location.clone(), what, "missing or non-integer `schemaVersion`"))
        }
    }
}

/// The largest size a descriptor may declare: the image spec makes `size` an int64.
const MAX_SIZE: u64 = i64::MAX as u64;

/// A descriptor's digest and size as a blob of `store`.
pub(crate) fn descriptor_ref(
    descriptor: &Value,
    location: &Location,
    store: &Store,
) -> Result<BlobRef> {
    let digest = descriptor
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::invalid(location.clone(), "descriptor", "no `digest`"))?
        .parse::<Digest>()
        .map_err(|e| Error::invalid(location.clone(), "descriptor", e.to_string()))?;
    let size = descriptor.get("size").and_then(Value::as_u64).filter(|&s| s <= MAX_SIZE);
    let size = size.ok_or_else(|| {
        Error::invalid(location.clone(), "descriptor", format!("no valid `size` for {digest}"))
    })?;
    let name = match store {
        Store::Dir(root) if !root.join("oci-layout").exists() => digest.hex().to_string(),
        _ => layout_blob_name(&digest),
    };
    Ok(BlobRef { name, size, digest: Some(digest) })
}

/// A descriptor of a document (an image manifest or an index) as a blob of `store`: in a
/// registry, documents are read from its manifests, not its blobs.
pub(crate) fn document_ref(
    descriptor: &Value,
    location: &Location,
    store: &Store,
) -> Result<BlobRef> {
    let mut blob = descriptor_ref(descriptor, location, store)?;
    if let Some(digest) = &blob.digest {
        if store.is_registry() {
            blob.name = store.document_name(digest);
        }
    }
    Ok(blob)
}

/// The config descriptor of a manifest, or `None` if it is not a container image.
pub(crate) fn config_ref(manifest: &Value, location: &Location) -> Result<Option<BlobRef>> {
    let Some(config) = manifest.get("config") else { return Ok(None) };
    let media_type = config.get("mediaType").and_then(Value::as_str).unwrap_or(OCI_CONFIG);
    if media_type != OCI_CONFIG && media_type != DOCKER_CONFIG {
        return Ok(None);
    }
    let digest: Digest = config
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::invalid(location.clone(), "image manifest", "config has no digest"))?
        .parse()
        .map_err(|e: crate::digest::InvalidDigest| {
            Error::invalid(location.clone(), "image manifest", e.to_string())
        })?;
    let size =
        config.get("size").and_then(Value::as_u64).filter(|&s| s <= MAX_SIZE).ok_or_else(|| {
            Error::invalid(location.clone(), "image manifest", "config has no size")
        })?;
    Ok(Some(BlobRef { name: layout_blob_name(&digest), size, digest: Some(digest) }))
}

pub(crate) fn classify(doc: &Value, declared: Option<&str>, location: &Location) -> Result<Kind> {
    let media_type = doc.get("mediaType").and_then(Value::as_str).or(declared);
    match media_type {
        Some(OCI_INDEX | DOCKER_LIST) => return Ok(Kind::Index),
        Some(OCI_MANIFEST | DOCKER_MANIFEST) => return Ok(Kind::Manifest),
        Some(m) if m.starts_with(DOCKER_SCHEMA1_PREFIX) => {
            return Err(Error::unsupported(
                location.clone(),
                "Docker schema 1 manifest (deprecated; convert it with a registry tool first)",
            ));
        }
        _ => {}
    }
    if doc.get("schemaVersion").and_then(Value::as_u64) == Some(1) {
        return Err(Error::unsupported(
            location.clone(),
            "Docker schema 1 manifest (deprecated; convert it with a registry tool first)",
        ));
    }
    if doc.get("manifests").is_some() {
        return Ok(Kind::Index);
    }
    if doc.get("config").is_some() && doc.get("layers").is_some() {
        return Ok(Kind::Manifest);
    }
    Err(Error::invalid(
        location.clone(),
        "manifest",
        format!("unknown document type (mediaType {media_type:?})"),
    ))
}

/// Whether an index entry is an attestation (BuildKit marks them `unknown/unknown`, or names
/// the manifest they describe).
pub(crate) fn is_attestation(entry: &Value) -> bool {
    let unknown =
        platform_of(entry).is_some_and(|p| p.os == "unknown" && p.architecture == "unknown");
    let reference_type =
        entry.get("annotations").and_then(|a| a.get("vnd.docker.reference.type")).is_some();
    unknown || reference_type
}
