//! OCI image layouts (directories and archives): `index.json`, nested indexes, platform
//! selection, and turning an image manifest into the [`Image`] model (also used by `dir:`).

use serde_json::Value;

use super::blob::{BlobRef, Store};
use super::{diff_ids, history_of, sniff_layer, Document, Image, InputFormat, Layer, OpenOptions, Opened, Platform, Sibling};
use crate::digest::Digest;
use crate::error::{Error, Location, Result};

pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub(crate) const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";
const BASE_DIGEST: &str = "org.opencontainers.image.base.digest";

/// The blob name of `digest` in an OCI layout.
pub(crate) fn layout_blob_name(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

/// What a JSON document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Index,
    Manifest,
}

/// Opens what `tag` names in an OCI layout: with `indexes`, an image index read whole when it
/// names one; else the image (the platform chosen from an index).
pub(crate) fn open_any(store: Store, format: InputFormat, tag: Option<&str>, options: &OpenOptions, indexes: bool) -> Result<Opened> {
    let location = store.location();
    let layout =
        store.read_unverified("oci-layout")?.ok_or_else(|| Error::invalid(location.clone(), "OCI layout", "no `oci-layout` file"))?;
    let layout: Value =
        serde_json::from_slice(&layout).map_err(|e| Error::invalid(location.clone().part("`oci-layout`"), "OCI layout", e.to_string()))?;
    match layout.get("imageLayoutVersion").and_then(Value::as_str) {
        Some("1.0.0") => {}
        other => {
            return Err(Error::unsupported(location.part("`oci-layout`"), format!("image layout version {other:?} (expected \"1.0.0\")")));
        }
    }
    let index_location = location.clone().part("`index.json`");
    let raw = store.read_unverified("index.json")?.ok_or_else(|| Error::invalid(location.clone(), "OCI layout", "no `index.json`"))?;
    let index: Value = serde_json::from_slice(&raw).map_err(|e| Error::invalid(index_location.clone(), "image index", e.to_string()))?;
    let entries = index_entries(&index, &index_location)?;
    let named: Vec<(Option<String>, &Value)> = entries.iter().map(|e| (entry_name(e), *e)).collect();

    let chosen: Vec<&(Option<String>, &Value)> = match tag {
        Some(tag) => named.iter().filter(|(name, _)| name.as_deref().is_some_and(|n| tag_matches(n, tag))).collect(),
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
                    "holds {} images; choose one with `oci:PATH:TAG` (or `oci-archive:PATH:TAG`); tags: {}",
                    many.len(),
                    tags()
                ),
            });
        }
    };
    let descriptor = descriptor_ref(entry, &index_location, &store)?;
    if indexes {
        if let Some(index) =
            super::index::read(&store, format, &descriptor, entry.get("mediaType").and_then(Value::as_str), name.clone(), 0)?
        {
            return Ok(Opened::Index(Box::new(index)));
        }
    }
    let mut image = resolve(&store, format, descriptor, entry_media_type(entry), name, options, None, 0)?;
    for (other_name, other) in &named {
        if other.get("digest") == entry.get("digest") {
            continue;
        }
        if let Ok(blob) = descriptor_ref(other, &index_location, &store) {
            let label = other_name.clone().unwrap_or_else(|| blob.digest.as_ref().map(Digest::short).unwrap_or_default());
            image.siblings.push(Sibling::Manifest { name: label, blob });
        }
    }
    Ok(Opened::Image(Box::new(image)))
}

fn tag_matches(name: &str, tag: &str) -> bool {
    name == tag || name.rsplit_once(':').is_some_and(|(_, t)| t == tag && !name.ends_with(&format!("@{tag}")))
}

fn entry_name(entry: &Value) -> Option<String> {
    let annotations = entry.get("annotations")?;
    annotations.get(REF_NAME).or_else(|| annotations.get(CONTAINERD_NAME)).and_then(Value::as_str).map(str::to_string)
}

fn entry_media_type(entry: &Value) -> Option<String> {
    entry.get("mediaType").and_then(Value::as_str).map(str::to_string)
}

pub(crate) fn index_entries<'a>(index: &'a Value, location: &Location) -> Result<Vec<&'a Value>> {
    if !index.is_object() {
        return Err(Error::invalid(location.clone(), "image index", "not a JSON object"));
    }
    check_schema_version(index, location, "image index")?;
    match index.get("manifests") {
        Some(Value::Array(items)) => Ok(items.iter().collect()),
        Some(Value::Null) | None => Ok(Vec::new()),
        Some(_) => Err(Error::invalid(location.clone(), "image index", "`manifests` is not an array")),
    }
}

fn check_schema_version(doc: &Value, location: &Location, what: &'static str) -> Result<()> {
    match doc.get("schemaVersion").and_then(Value::as_u64) {
        Some(2) => Ok(()),
        Some(1) => {
            Err(Error::unsupported(location.clone(), "Docker schema 1 manifest (deprecated; convert it with a registry tool first)"))
        }
        Some(v) => Err(Error::unsupported(location.clone(), format!("{what} schemaVersion {v}"))),
        None => Err(Error::invalid(location.clone(), what, "missing or non-integer `schemaVersion`")),
    }
}

/// A descriptor's digest and size as a blob of `store`.
pub(crate) fn descriptor_ref(descriptor: &Value, location: &Location, store: &Store) -> Result<BlobRef> {
    let digest = descriptor
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::invalid(location.clone(), "descriptor", "no `digest`"))?
        .parse::<Digest>()
        .map_err(|e| Error::invalid(location.clone(), "descriptor", e.to_string()))?;
    let size = descriptor
        .get("size")
        .and_then(Value::as_u64)
        .ok_or_else(|| Error::invalid(location.clone(), "descriptor", format!("no valid `size` for {digest}")))?;
    let name = match store {
        Store::Dir(root) if !root.join("oci-layout").exists() => digest.hex().to_string(),
        _ => layout_blob_name(&digest),
    };
    Ok(BlobRef { name, size, digest: Some(digest) })
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
        .map_err(|e: crate::digest::InvalidDigest| Error::invalid(location.clone(), "image manifest", e.to_string()))?;
    let size = config
        .get("size")
        .and_then(Value::as_u64)
        .ok_or_else(|| Error::invalid(location.clone(), "image manifest", "config has no size"))?;
    Ok(Some(BlobRef { name: layout_blob_name(&digest), size, digest: Some(digest) }))
}

pub(crate) fn classify(doc: &Value, declared: Option<&str>, location: &Location) -> Result<Kind> {
    let media_type = doc.get("mediaType").and_then(Value::as_str).or(declared);
    match media_type {
        Some(OCI_INDEX | DOCKER_LIST) => return Ok(Kind::Index),
        Some(OCI_MANIFEST | DOCKER_MANIFEST) => return Ok(Kind::Manifest),
        Some(m) if m.starts_with("application/vnd.docker.distribution.manifest.v1") => {
            return Err(Error::unsupported(
                location.clone(),
                "Docker schema 1 manifest (deprecated; convert it with a registry tool first)",
            ));
        }
        _ => {}
    }
    if doc.get("schemaVersion").and_then(Value::as_u64) == Some(1) {
        return Err(Error::unsupported(location.clone(), "Docker schema 1 manifest (deprecated; convert it with a registry tool first)"));
    }
    if doc.get("manifests").is_some() {
        return Ok(Kind::Index);
    }
    if doc.get("config").is_some() && doc.get("layers").is_some() {
        return Ok(Kind::Manifest);
    }
    Err(Error::invalid(location.clone(), "manifest", format!("unknown document type (mediaType {media_type:?})")))
}

#[expect(clippy::too_many_arguments, reason = "recursive walk state, kept private")]
fn resolve(
    store: &Store,
    format: InputFormat,
    blob: BlobRef,
    declared: Option<String>,
    name: Option<String>,
    options: &OpenOptions,
    platform: Option<Platform>,
    depth: usize,
) -> Result<Image> {
    let digest = blob.digest.clone().ok_or_else(|| Error::invalid(store.location(), "descriptor", "no digest"))?;
    let location = store.location().part(format!("manifest {}", digest.short()));
    if depth > 8 {
        return Err(Error::invalid(location, "image index", "indexes nested too deeply (a loop?)"));
    }
    let raw = store.read_document(&blob, location.clone())?;
    let doc: Value = serde_json::from_slice(&raw).map_err(|e| Error::invalid(location.clone(), "manifest", e.to_string()))?;
    if !doc.is_object() {
        return Err(Error::invalid(location, "manifest", "not a JSON object"));
    }
    match classify(&doc, declared.as_deref(), &location)? {
        Kind::Index => {
            let entries = index_entries(&doc, &location)?;
            let (entry, platform) = choose_platform(&entries, options, &location)?;
            let child = descriptor_ref(entry, &location, store)?;
            let mut image = resolve(store, format, child, entry_media_type(entry), name, options, platform, depth + 1)?;
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
            let media_type =
                doc.get("mediaType").and_then(Value::as_str).map(str::to_string).or(declared).unwrap_or_else(|| OCI_MANIFEST.to_string());
            let manifest = Document { raw, digest, media_type, value: doc };
            from_manifest(store, format, manifest, name, platform)
        }
    }
}

pub(crate) fn platform_of(entry: &Value) -> Option<Platform> {
    let p = entry.get("platform")?;
    Some(Platform {
        os: p.get("os")?.as_str()?.to_string(),
        architecture: p.get("architecture")?.as_str()?.to_string(),
        variant: p.get("variant").and_then(Value::as_str).map(str::to_string),
    })
}

pub(crate) fn is_attestation(entry: &Value) -> bool {
    let unknown = platform_of(entry).is_some_and(|p| p.os == "unknown" && p.architecture == "unknown");
    let reference_type = entry.get("annotations").and_then(|a| a.get("vnd.docker.reference.type")).is_some();
    unknown || reference_type
}

fn choose_platform<'a>(entries: &[&'a Value], options: &OpenOptions, location: &Location) -> Result<(&'a Value, Option<Platform>)> {
    let images: Vec<&Value> = entries.iter().copied().filter(|e| !is_attestation(e)).collect();
    // An index of one image that states no platform: that image, whatever was asked for (its
    // config may say; the caller checks).
    if let [only] = images.as_slice() {
        if options.platform.is_some() && platform_of(only).is_none() {
            return Ok((only, None));
        }
    }
    let chosen = choose(&images, platform_of, options.platform.as_ref(), location, "index lists no image manifest")?;
    Ok((chosen, platform_of(chosen)))
}

/// Chooses among the images of an index the one of platform `wanted` (the first that
/// matches), else the only one, else this host's; `none` says what is wrong when there is
/// none. The errors list the platforms there are.
pub(crate) fn choose<'a, T: ?Sized>(
    items: &[&'a T],
    platform: impl Fn(&T) -> Option<Platform>,
    wanted: Option<&Platform>,
    location: &Location,
    none: &str,
) -> Result<&'a T> {
    let listed = || {
        items.iter().map(|i| platform(i).map(|p| p.to_string()).unwrap_or_else(|| "(no platform)".into())).collect::<Vec<_>>().join(", ")
    };
    let matching = |target: &Platform| items.iter().copied().find(|i| platform(i).is_some_and(|p| target.matches(&p)));
    match (wanted, items) {
        (_, []) => Err(Error::Selection { location: location.clone(), reason: none.to_string() }),
        (Some(wanted), _) => matching(wanted).ok_or_else(|| Error::Selection {
            location: location.clone(),
            reason: format!("no manifest for platform {wanted}; platforms: {}", listed()),
        }),
        (None, [one]) => Ok(one),
        (None, many) => {
            let host = Platform::host();
            matching(&host).ok_or_else(|| Error::Selection {
                location: location.clone(),
                reason: format!(
                    "index has {} platforms and none is this host's ({host}); choose one with --platform: {}",
                    many.len(),
                    listed()
                ),
            })
        }
    }
}

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
    let config_desc = doc.get("config").ok_or_else(|| Error::invalid(location.clone(), "image manifest", "no `config`"))?;
    let config_media_type = config_desc.get("mediaType").and_then(Value::as_str).unwrap_or(OCI_CONFIG).to_string();
    let dir_transport = format == InputFormat::Dir;
    if config_media_type != OCI_CONFIG
        && config_media_type != DOCKER_CONFIG
        && !(dir_transport && config_media_type == "application/octet-stream")
    {
        return Err(Error::unsupported(
            location,
            format!("not a container image: an artifact whose config media type is `{config_media_type}`"),
        ));
    }
    let mut config_blob = descriptor_ref(config_desc, &location, store)?;
    if dir_transport {
        config_blob.name = config_blob.digest.as_ref().map(|d| d.hex().to_string()).unwrap_or_default();
    }
    let config_location = store.location().part(format!("config {}", config_blob.digest.as_ref().map(Digest::short).unwrap_or_default()));
    let config_raw = store.read_document(&config_blob, config_location.clone())?;
    let config_value: Value =
        serde_json::from_slice(&config_raw).map_err(|e| Error::invalid(config_location.clone(), "image config", e.to_string()))?;
    if !config_value.is_object() {
        return Err(Error::invalid(config_location, "image config", "not a JSON object"));
    }
    let ids = diff_ids(&config_value, &config_location)?;
    let descriptors = match doc.get("layers") {
        Some(Value::Array(items)) => items.clone(),
        Some(Value::Null) | None => Vec::new(),
        Some(_) => return Err(Error::invalid(location, "image manifest", "`layers` is not an array")),
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
        let media_type = descriptor.get("mediaType").and_then(Value::as_str).unwrap_or_default().to_string();
        check_layer_media_type(&media_type, &layer_location)?;
        let mut blob = descriptor_ref(&descriptor, &layer_location, store)?;
        if dir_transport {
            blob.name = blob.digest.as_ref().map(|d| d.hex().to_string()).unwrap_or_default();
        }
        let compression = sniff_layer(store, &blob, &layer_location)?;
        layers.push(Layer { index, blob, media_type, compression, diff_id, descriptor: Some(descriptor), history: pairing[index] });
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
    if let Some(base) =
        doc.get("annotations").and_then(|a| a.get(BASE_DIGEST)).and_then(Value::as_str).and_then(|s| s.parse::<Digest>().ok())
    {
        let name = layout_blob_name(&base);
        if let Ok(Some((_, size))) = store.open(&name) {
            siblings.push(Sibling::Manifest { name: format!("base {}", base.short()), blob: BlobRef { name, size, digest: Some(base) } });
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

/// Accepts the layer media types of the OCI image-spec and Docker's v2s2, refuses the rest.
pub(crate) fn check_layer_media_type(media_type: &str, location: &Location) -> Result<()> {
    if media_type.contains("+encrypted") {
        return Err(Error::unsupported(location.clone(), format!("encrypted layer (`{media_type}`)")));
    }
    let known = [
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
    if known.contains(&media_type) {
        Ok(())
    } else {
        Err(Error::unsupported(location.clone(), format!("layer media type `{media_type}`")))
    }
}
