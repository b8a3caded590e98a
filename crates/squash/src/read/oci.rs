//! An image manifest turned into the [`Image`] model: its config read and checked, its layers
//! paired with the config's diff_ids and history, each layer's compression sniffed. Used by OCI
//! layouts and archives, image indexes and `dir:` directories alike.

use serde_json::Value;

use super::blob::{BlobRef, Store};
use super::descriptor::{descriptor_ref, BASE_DIGEST};
use super::image::{
    diff_ids, history_of, sniff_layer, Document, Image, InputFormat, Layer, Sibling,
};
use super::media::{self, DOCKER_CONFIG, OCI_CONFIG, OCTET_STREAM};
use super::platform::Platform;
use crate::digest::Digest;
use crate::error::{Error, Result};

/// Builds the [`Image`] from an image manifest whose blobs live in `store`.
pub(crate) fn from_manifest(
    store: &Store,
    format: InputFormat,
    manifest: Document,
    name: Option<String>,
    platform: Option<Platform>,
) -> Result<Image> {
    let location = store.location().part(format!("manifest {}", manifest.digest.short()));
    let doc = &manifest.value;
    let config_desc = doc
        .get("config")
        .ok_or_else(|| Error::invalid(location.clone(), "image manifest", "no `config`"))?;
    let config_media_type =
        config_desc.get("mediaType").and_then(Value::as_str).unwrap_or(OCI_CONFIG).to_string();
    let dir_transport = format == InputFormat::Dir;
    if config_media_type != OCI_CONFIG
        && config_media_type != DOCKER_CONFIG
        && !(dir_transport && config_media_type == OCTET_STREAM)
    {
        return Err(Error::unsupported(
            location,
            format!(
                "not a container image: an artifact whose config media type is \
                `{config_media_type}`"
            ),
        ));
    }
    let mut config_blob = descriptor_ref(config_desc, &location, store)?;
    if dir_transport {
        config_blob.name =
            config_blob.digest.as_ref().map(|d| d.hex().to_string()).unwrap_or_default();
    }
    let config_location = store.location().part(format!(
        "config {}",
        config_blob.digest.as_ref().map(Digest::short).unwrap_or_default()
    ));
    let config_raw = store.read_document(&config_blob, config_location.clone())?;
    let config_value: Value = serde_json::from_slice(&config_raw)
        .map_err(|e| Error::invalid(config_location.clone(), "image config", e.to_string()))?;
    if !config_value.is_object() {
        return Err(Error::invalid(config_location, "image config", "not a JSON object"));
    }
    let ids = diff_ids(&config_value, &config_location)?;
    let descriptors = match doc.get("layers") {
        Some(Value::Array(items)) => items.clone(),
        Some(Value::Null) | None => Vec::new(),
        Some(_) => {
            return Err(Error::invalid(location, "image manifest", "`layers` is not an array"))
        }
    };
    if descriptors.len() != ids.len() {
        return Err(Error::invalid(
            location,
            "image manifest",
            format!("{} layers but the config lists {} diff_ids", descriptors.len(), ids.len()),
        ));
    }
    let (history, pairing) = history_of(&config_value, descriptors.len());
    let mut layers = Vec::with_capacity(descriptors.len());
    for (index, (descriptor, diff_id)) in descriptors.into_iter().zip(ids).enumerate() {
        let layer_location = location.clone().within(format!("layer {index}"));
        let media_type =
            descriptor.get("mediaType").and_then(Value::as_str).unwrap_or_default().to_string();
        media::check_layer(&media_type, &layer_location)?;
        let mut blob = descriptor_ref(&descriptor, &layer_location, store)?;
        if dir_transport {
            blob.name = blob.digest.as_ref().map(|d| d.hex().to_string()).unwrap_or_default();
        }
        let compression = sniff_layer(store, &blob, &media_type, &layer_location)?;
        layers.push(Layer {
            index,
            blob,
            media_type,
            compression,
            diff_id,
            descriptor: Some(descriptor),
            history: pairing[index],
        });
    }
    let platform = platform.or_else(|| {
        Some(Platform {
            os: config_value.get("os")?.as_str()?.to_string(),
            architecture: config_value.get("architecture")?.as_str()?.to_string(),
            variant: config_value.get("variant").and_then(Value::as_str).map(str::to_string),
        })
    });
    let config = Document {
        raw: config_raw,
        digest: config_blob.digest.clone().unwrap_or_else(|| Digest::of(b"")),
        media_type: config_media_type,
        value: config_value,
    };
    let mut siblings = Vec::new();
    if let Some(base) = doc
        .get("annotations")
        .and_then(|a| a.get(BASE_DIGEST))
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<Digest>().ok())
    {
        let name = store.document_name(&base);
        if let Ok(Some((_, size))) = store.open(&name) {
            siblings.push(Sibling::Manifest {
                name: format!("base {}", base.short()),
                blob: BlobRef { name, size, digest: Some(base) },
            });
        }
    }
    Ok(Image {
        store: store.clone(),
        format,
        manifest: Some(manifest),
        config,
        layers,
        history,
        name,
        platform,
        siblings,
        other_platforms: Vec::new(),
        spool: None,
    })
}
