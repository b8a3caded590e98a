//! `docker save` tarballs (legacy `<id>/layer.tar`, skopeo `<digest>.tar`, Docker 25+ with an OCI
//! layout inside) and containers-image `dir:` directories, mapped onto the [`Image`] model.

use serde_json::Value;

use super::blob::{BlobRef, Store};
use super::image::{
    diff_ids, history_of, sniff_layer, Document, Image, InputFormat, Layer, Sibling,
};
use super::media::{self, DOCKER_CONFIG, OCI_MANIFEST};
use super::oci;
use super::platform::Platform;
use crate::codec::compression::Compression;
use crate::digest::Digest;
use crate::error::{Error, Result};

/// Opens the image chosen by `selector` (`NAME:TAG` or `@INDEX`) in a `docker save` tarball.
pub(crate) fn open_archive(store: Store, selector: Option<&str>) -> Result<Image> {
    let location = store.location().part("`manifest.json`");
    let raw = store
        .read_unverified("manifest.json")?
        .ok_or_else(|| Error::invalid(store.location(), "docker archive", "no `manifest.json`"))?;
    let value: Value = serde_json::from_slice(&raw)
        .map_err(|e| Error::invalid(location.clone(), "docker manifest.json", e.to_string()))?;
    let entries = match &value {
        Value::Array(items) => items,
        Value::Null => {
            return Err(Error::invalid(
                location,
                "docker manifest.json",
                "it is `null`, not a list of images",
            ))
        }
        _ => return Err(Error::invalid(location, "docker manifest.json", "not a list of images")),
    };
    let tags_of = |e: &Value| -> Vec<String> {
        e.get("RepoTags")
            .and_then(Value::as_array)
            .map(|t| t.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default()
    };
    let listing = || {
        entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let tags = tags_of(e);
                if tags.is_empty() {
                    format!("@{i}")
                } else {
                    format!("@{i} ({})", tags.join(", "))
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let chosen = match selector {
        Some(sel) if sel.starts_with('@') => {
            let n: usize = sel[1..].parse().map_err(|_| Error::Selection {
                location: location.clone(),
                reason: format!("`{sel}` is not an image number"),
            })?;
            entries.get(n).map(|e| (n, e))
        }
        Some(sel) => entries.iter().enumerate().find(|(_, e)| {
            tags_of(e).iter().any(|t| t == sel || t.strip_suffix(":latest") == Some(sel))
        }),
        None if entries.len() == 1 => entries.first().map(|e| (0, e)),
        None if entries.is_empty() => {
            return Err(Error::invalid(location, "docker manifest.json", "lists no image"))
        }
        None => {
            return Err(Error::Selection {
                location,
                reason: format!(
                    "holds {} images; choose one with `docker-archive:PATH:NAME:TAG` or \
                        `docker-archive:PATH:@N`: {}",
                    entries.len(),
                    listing()
                ),
            });
        }
    };
    let Some((chosen_index, entry)) = chosen else {
        return Err(Error::Selection {
            location,
            reason: format!("no image `{}`; images: {}", selector.unwrap_or_default(), listing()),
        });
    };
    let entry_location = location.clone().within(format!("image @{chosen_index}"));
    let config_name = entry
        .get("Config")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            Error::invalid(entry_location.clone(), "docker manifest.json", "no `Config`")
        })?
        .to_string();
    let config_location = store.location().part(format!("config `{config_name}`"));
    let config_raw = store.read_unverified(&config_name)?.ok_or_else(|| {
        Error::invalid(config_location.clone(), "docker archive", "config member missing")
    })?;
    let config_digest = Digest::of(&config_raw);
    // Only `blobs/sha256/<hex>` names are a digest claim; `<hex>.json` names are not checked by
    // `docker load` and some tools rewrite configs without renaming them.
    if let Some(named) = digest_in_name_strict(&config_name) {
        if named != config_digest {
            return Err(Error::DigestMismatch {
                location: config_location,
                expected: named,
                actual: config_digest,
            });
        }
    }
    let config_value: Value = serde_json::from_slice(&config_raw)
        .map_err(|e| Error::invalid(config_location.clone(), "image config", e.to_string()))?;
    let ids = diff_ids(&config_value, &config_location)?;
    let layer_names: Vec<String> = entry
        .get("Layers")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            Error::invalid(entry_location.clone(), "docker manifest.json", "no `Layers`")
        })?
        .iter()
        .map(|v| {
            v.as_str().map(str::to_string).ok_or_else(|| {
                Error::invalid(
                    entry_location.clone(),
                    "docker manifest.json",
                    "a layer path is not a string",
                )
            })
        })
        .collect::<Result<_>>()?;
    if layer_names.len() != ids.len() {
        return Err(Error::invalid(
            entry_location,
            "docker manifest.json",
            format!("{} layers but the config lists {} diff_ids", layer_names.len(), ids.len()),
        ));
    }
    let sources = entry.get("LayerSources");
    let (history, pairing) = history_of(&config_value, ids.len());
    let mut layers = Vec::with_capacity(ids.len());
    for (index, (name, diff_id)) in layer_names.into_iter().zip(ids).enumerate() {
        let layer_location = store.location().part(format!("layer {index} (`{name}`)"));
        let Some((_, size)) = store.open(&name)? else {
            return Err(Error::invalid(layer_location, "docker archive", "layer member missing"));
        };
        let source = sources.and_then(|s| s.get(diff_id.to_string()));
        let mut blob = BlobRef { digest: digest_in_name_strict(&name), name, size };
        let mut descriptor = None;
        let compression = sniff_layer(&store, &blob, "", &layer_location)?;
        let mut media_type = media::docker_layer(compression).to_string();
        // LayerSources describe the layer as a registry serves it; they describe the stored
        // member only when the sizes agree (Docker 25+), not for an uncompressed `layer.tar`.
        let source = source.filter(|s| s.get("size").and_then(Value::as_u64) == Some(size));
        if let Some(source) = source {
            let digest =
                source.get("digest").and_then(Value::as_str).and_then(|d| d.parse::<Digest>().ok());
            if let Some(digest) = digest {
                blob.digest = Some(digest);
            }
            if let Some(m) = source.get("mediaType").and_then(Value::as_str) {
                media::check_layer(m, &layer_location)?;
                media_type = m.to_string();
            }
            descriptor = Some(source.clone());
        }
        if blob.digest.is_none() && compression == Compression::None {
            // An uncompressed blob's digest is its diff_id; verified when it is read.
            blob.digest = Some(diff_id.clone());
        }
        layers.push(Layer {
            index,
            blob,
            media_type,
            compression,
            diff_id,
            descriptor,
            history: pairing[index],
        });
    }
    let platform = Some(Platform {
        os: config_value.get("os").and_then(Value::as_str).unwrap_or("linux").to_string(),
        architecture: config_value
            .get("architecture")
            .and_then(Value::as_str)
            .unwrap_or("amd64")
            .to_string(),
        variant: config_value.get("variant").and_then(Value::as_str).map(str::to_string),
    });
    let siblings = entries
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != chosen_index)
        .filter_map(|(i, e)| {
            let config = e.get("Config")?.as_str()?.to_string();
            let name = tags_of(e).first().cloned().unwrap_or_else(|| format!("@{i}"));
            Some(Sibling::Docker { name, config })
        })
        .collect();
    let name = selector.map(str::to_string).or_else(|| tags_of(entry).first().cloned());
    let config = Document {
        raw: config_raw,
        digest: config_digest,
        media_type: DOCKER_CONFIG.to_string(),
        value: config_value,
    };
    Ok(Image {
        store,
        format: InputFormat::DockerArchive,
        manifest: None,
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

/// Only `blobs/sha256/<hex>` is a reliable digest for a layer member: `<hex>.tar` names may be a
/// diff_id (skopeo) rather than the blob's digest.
fn digest_in_name_strict(name: &str) -> Option<Digest> {
    name.strip_prefix("blobs/sha256/").and_then(Digest::from_hex)
}

/// Opens a containers-image `dir:` directory: `manifest.json` is the image manifest itself.
pub(crate) fn open_dir(store: Store) -> Result<Image> {
    let location = store.location().part("`manifest.json`");
    let raw = store
        .read_unverified("manifest.json")?
        .ok_or_else(|| Error::invalid(store.location(), "dir image", "no `manifest.json`"))?;
    let value: Value = serde_json::from_slice(&raw)
        .map_err(|e| Error::invalid(location.clone(), "image manifest", e.to_string()))?;
    if value.get("schemaVersion").and_then(Value::as_u64) == Some(1) {
        return Err(Error::unsupported(
            location,
            "Docker schema 1 manifest (deprecated; convert it with a registry tool first)",
        ));
    }
    let media_type =
        value.get("mediaType").and_then(Value::as_str).unwrap_or(OCI_MANIFEST).to_string();
    let manifest = Document { digest: Digest::of(&raw), raw, media_type, value };
    oci::from_manifest(&store, InputFormat::Dir, manifest, None, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_names() {
        let hex = "ee301c921b8aadc002973b2e0c3da17d701dcd994b606769a7e6eaa100b81d44";
        assert!(digest_in_name_strict(&format!("{hex}.tar")).is_none());
    }
}
