//! OCI image layouts (directories, and the archives that hold one): `oci-layout` and
//! `index.json` read, the image a tag names chosen, and an index walked down to the image of the
//! platform asked for, or read whole.

use serde_json::Value;

use super::blob::{BlobRef, Store};
use super::descriptor::{
    check_schema_version, classify, document_ref, index_entries, is_attestation, Kind,
    CONTAINERD_NAME, REF_NAME,
};
use super::image::{Document, Image, InputFormat, OpenOptions, Sibling};
use super::image_index;
use super::image_index::Opened;
use super::media::OCI_MANIFEST;
use super::oci::from_manifest;
use super::platform::{choose, platform_of, Platform};
use crate::digest::Digest;
use crate::error::{Error, Location, Result};

/// Opens what `tag` names in an OCI layout: with `indexes`, an image index read whole when it
/// names one; else the image (the platform chosen from an index).
pub(crate) fn open_any(
    store: Store,
    format: InputFormat,
    tag: Option<&str>,
    options: &OpenOptions,
    indexes: bool,
) -> Result<Opened> {
    let location = store.location();
    let layout = store
        .read_unverified("oci-layout")?
        .ok_or_else(|| Error::invalid(location.clone(), "OCI layout", "no `oci-layout` file"))?;
    let layout: Value = serde_json::from_slice(&layout).map_err(|e| {
        Error::invalid(location.clone().part("`oci-layout`"), "OCI layout", e.to_string())
    })?;
    match layout.get("imageLayoutVersion").and_then(Value::as_str) {
        Some("1.0.0") => {}
        other => {
            return Err(Error::unsupported(
                location.part("`oci-layout`"),
                format!("image layout version {other:?} (expected \"1.0.0\")"),
            ));
        }
    }
    let index_location = location.clone().part("`index.json`");
    let raw = store
        .read_unverified("index.json")?
        .ok_or_else(|| Error::invalid(location.clone(), "OCI layout", "no `index.json`"))?;
    let index: Value = serde_json::from_slice(&raw)
        .map_err(|e| Error::invalid(index_location.clone(), "image index", e.to_string()))?;
    let entries = index_entries(&index, &index_location)?;
    let named: Vec<(Option<String>, &Value)> =
        entries.iter().map(|e| (entry_name(e), *e)).collect();

    let chosen: Vec<&(Option<String>, &Value)> = match tag {
        Some(tag) => named
            .iter()
            .filter(|(name, _)| name.as_deref().is_some_and(|n| tag_matches(n, tag)))
            .collect(),
        None => named.iter().collect(),
    };
    let mut distinct: Vec<&(Option<String>, &Value)> = Vec::new();
    for candidate in chosen {
        if !distinct.iter().any(|d| d.1.get("digest") == candidate.1.get("digest")) {
            distinct.push(candidate);
        }
    }
    let tags = || {
        let mut names: Vec<String> = named.iter().filter_map(|(n, _)| n.clone()).collect();
        names.dedup();
        if names.is_empty() {
            "(no tags)".to_string()
        } else {
            names.join(", ")
        }
    };
    let (name, entry) = match distinct.as_slice() {
        [one] => (one.0.clone().or_else(|| tag.map(str::to_string)), one.1),
        [] => {
            let reason = match tag {
                Some(tag) => format!("no image tagged `{tag}`; tags: {}", tags()),
                None => "the layout's index.json lists no image".to_string(),
            };
            return Err(Error::Selection { location: index_location, reason });
        }
        many => {
            return Err(Error::Selection {
                location: index_location,
                reason: format!(
                    "holds {} images; choose one with `oci:PATH:TAG` (or `oci-archive:PATH:TAG`); \
                        tags: {}",
                    many.len(),
                    tags()
                ),
            });
        }
    };
    let descriptor = document_ref(entry, &index_location, &store)?;
    let declared = entry_media_type(entry);
    let mut opened = open_document(&store, format, name, descriptor, declared, options, indexes)?;
    if let Opened::Image(image) = &mut opened {
        for (other_name, other) in &named {
            if other.get("digest") == entry.get("digest") {
                continue;
            }
            if let Ok(blob) = document_ref(other, &index_location, &store) {
                let label = other_name
                    .clone()
                    .unwrap_or_else(|| blob.digest.as_ref().map(Digest::short).unwrap_or_default());
                image.siblings.push(Sibling::Manifest { name: label, blob });
            }
        }
    }
    Ok(opened)
}

/// Opens the document `descriptor` names in `store` (of media type `declared`, when its
/// descriptor says), chosen by `name`: with `indexes`, an image index read whole when it is
/// one; else the image (the platform chosen from an index as `options` say).
pub(crate) fn open_document(
    store: &Store,
    format: InputFormat,
    name: Option<String>,
    descriptor: BlobRef,
    declared: Option<String>,
    options: &OpenOptions,
    indexes: bool,
) -> Result<Opened> {
    if indexes {
        if let Some(index) =
            image_index::read(store, format, &descriptor, declared.as_deref(), name.clone(), 0)?
        {
            return Ok(Opened::Index(Box::new(index)));
        }
    }
    let walk = Walk { store, format, name, options };
    Ok(Opened::Image(Box::new(walk.image(descriptor, declared, None, 0)?)))
}

fn tag_matches(name: &str, tag: &str) -> bool {
    name == tag
        || name
            .rsplit_once(':')
            .is_some_and(|(_, t)| t == tag && !name.ends_with(&format!("@{tag}")))
}

fn entry_name(entry: &Value) -> Option<String> {
    let annotations = entry.get("annotations")?;
    annotations
        .get(REF_NAME)
        .or_else(|| annotations.get(CONTAINERD_NAME))
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn entry_media_type(entry: &Value) -> Option<String> {
    entry.get("mediaType").and_then(Value::as_str).map(str::to_string)
}

/// A walk down an index (and the indexes nested in it) to the image of one platform.
struct Walk<'a> {
    store: &'a Store,
    format: InputFormat,
    /// The name the image was chosen by.
    name: Option<String>,
    options: &'a OpenOptions,
}

impl Walk<'_> {
    /// The image that the document `blob` (of media type `declared`, when its descriptor says)
    /// is, or that the platform chosen leads to when it is an index.
    fn image(
        &self,
        blob: BlobRef,
        declared: Option<String>,
        platform: Option<Platform>,
        depth: usize,
    ) -> Result<Image> {
        let store = self.store;
        let digest = blob
            .digest
            .clone()
            .ok_or_else(|| Error::invalid(store.location(), "descriptor", "no digest"))?;
        let location = store.location().part(format!("manifest {}", digest.short()));
        if depth > 8 {
            return Err(Error::invalid(
                location,
                "image index",
                "indexes nested too deeply (a loop?)",
            ));
        }
        let raw = store.read_document(&blob, location.clone())?;
        let doc: Value = serde_json::from_slice(&raw)
            .map_err(|e| Error::invalid(location.clone(), "manifest", e.to_string()))?;
        if !doc.is_object() {
            return Err(Error::invalid(location, "manifest", "not a JSON object"));
        }
        match classify(&doc, declared.as_deref(), &location)? {
            Kind::Index => {
                let entries = index_entries(&doc, &location)?;
                let (entry, platform) = choose_platform(&entries, self.options, &location)?;
                let child = document_ref(entry, &location, store)?;
                let mut image = self.image(child, entry_media_type(entry), platform, depth + 1)?;
                let others = entries
                    .iter()
                    .filter(|e| !is_attestation(e) && e.get("digest") != entry.get("digest"))
                    .filter_map(|e| platform_of(e))
                    .filter(|p| !image.other_platforms.contains(p));
                let others: Vec<Platform> = others.collect();
                image.other_platforms.extend(others);
                Ok(image)
            }
            Kind::Manifest => {
                check_schema_version(&doc, &location, "image manifest")?;
                let media_type = doc
                    .get("mediaType")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .or(declared)
                    .unwrap_or_else(|| OCI_MANIFEST.to_string());
                let manifest = Document { raw, digest, media_type, value: doc };
                from_manifest(store, self.format, manifest, self.name.clone(), platform)
            }
        }
    }
}

fn choose_platform<'a>(
    entries: &[&'a Value],
    options: &OpenOptions,
    location: &Location,
) -> Result<(&'a Value, Option<Platform>)> {
    // An entry listed again (the same manifest for the same platform) is one choice.
    let mut images: Vec<&Value> = Vec::new();
    for entry in entries.iter().copied().filter(|e| !is_attestation(e)) {
        let same = |e: &&Value| {
            e.get("digest") == entry.get("digest") && e.get("platform") == entry.get("platform")
        };
        if !images.iter().any(same) {
            images.push(entry);
        }
    }
    // An index of one image that states no platform: that image, whatever was asked for (its
    // config may say; the caller checks).
    if let [only] = images.as_slice() {
        if options.platform.is_some() && platform_of(only).is_none() {
            return Ok((only, None));
        }
    }
    let chosen = choose(
        &images,
        platform_of,
        options.platform.as_ref(),
        location,
        "index lists no image manifest",
    )?;
    Ok((chosen, platform_of(chosen)))
}
