//! The image model every stage reads from: an [`Image`] (manifest, config, layers and their
//! history, blobs left in place in their store), how it was stored ([`InputFormat`]), and how to
//! choose one when an input holds several ([`OpenOptions`]).

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::blob::{BlobRef, Store, VerifyingReader};
use super::descriptor::config_ref;
use super::platform::Platform;
use crate::codec::compression::{sniff_buffered, Compression, Sniffed};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Location, Result};
use crate::registry::options::RegistryOptions;

/// The container an image was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputFormat {
    /// An OCI image-layout directory.
    OciLayout,
    /// A tar of an OCI image layout.
    OciArchive,
    /// A `docker save` tarball (legacy, skopeo `docker-archive`, or Docker 25+).
    DockerArchive,
    /// A containers-image `dir:` directory (`manifest.json` and blobs named by hex digest).
    Dir,
    /// A repository of a registry (`docker://`).
    Registry,
}

impl fmt::Display for InputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InputFormat::OciLayout => "oci",
            InputFormat::OciArchive => "oci-archive",
            InputFormat::DockerArchive => "docker-archive",
            InputFormat::Dir => "dir",
            InputFormat::Registry => "docker",
        })
    }
}

/// How to choose one image when an input holds several, and where to spool one that cannot be
/// read in place.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct OpenOptions {
    /// The platform to pick from a multi-platform index. Default: the only one, else the host's.
    pub platform: Option<Platform>,
    /// Where to spool standard input or a pipe (`-`, `/dev/stdin`, `<(docker save app)`), and
    /// the decompressed copy of a gzip- or zstd-compressed archive; default: the system's
    /// temporary directory (`TMPDIR`).
    pub tmp_dir: Option<std::path::PathBuf>,
    /// Polled while spooling: when it returns true, the spool is removed and opening fails with
    /// [`Error::Cancelled`].
    pub cancelled: Option<fn() -> bool>,
    /// How registries are reached (credentials, TLS, retries), for `docker://` inputs.
    pub registry: RegistryOptions,
}

impl OpenOptions {
    /// Picks `platform` from multi-platform indexes.
    pub fn with_platform(mut self, platform: Platform) -> Self {
        self.platform = Some(platform);
        self
    }
    /// Spools non-seekable inputs into `dir`.
    pub fn with_tmp_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.tmp_dir = Some(dir.into());
        self
    }
    /// Polls `cancelled` while spooling.
    pub fn with_cancel(mut self, cancelled: fn() -> bool) -> Self {
        self.cancelled = Some(cancelled);
        self
    }
    /// Reaches registries as `registry` says.
    pub fn with_registry(mut self, registry: RegistryOptions) -> Self {
        self.registry = registry;
        self
    }
}

/// A JSON document blob (manifest or config), kept as bytes and as a JSON value so that fields
/// this library does not know survive a rewrite (docs/layer-rules.md, rule 11).
#[derive(Debug, Clone)]
pub(crate) struct Document {
    pub raw: Vec<u8>,
    pub digest: Digest,
    pub media_type: String,
    pub value: Value,
}

/// One layer of an image.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Layer {
    pub(crate) index: usize,
    pub(crate) blob: BlobRef,
    pub(crate) media_type: String,
    pub(crate) compression: Compression,
    pub(crate) diff_id: Digest,
    /// The manifest's descriptor, copied unchanged when the layer is kept.
    pub(crate) descriptor: Option<Value>,
    /// Index into the config's `history` of the step that made this layer.
    pub(crate) history: Option<usize>,
}

impl Layer {
    /// Position in the image, 0 being the base.
    pub fn index(&self) -> usize {
        self.index
    }
    /// The blob's digest, when the image states it (a legacy `docker save` does not for
    /// compressed layers; it is computed when the layer is read or copied).
    pub fn digest(&self) -> Option<&Digest> {
        self.blob.digest.as_ref()
    }
    /// Size of the stored blob.
    pub fn size(&self) -> u64 {
        self.blob.size
    }
    /// The sha256 of the uncompressed tar stream, from the config's `rootfs.diff_ids`.
    pub fn diff_id(&self) -> &Digest {
        &self.diff_id
    }
    /// The media type the manifest gives (or the one implied by a `docker save` tarball).
    pub fn media_type(&self) -> &str {
        &self.media_type
    }
    /// The compression found in the blob's first bytes.
    pub fn compression(&self) -> Compression {
        self.compression
    }
    /// Index of this layer's step in [`Image::history`].
    pub fn history_index(&self) -> Option<usize> {
        self.history
    }
    pub(crate) fn label(&self) -> String {
        format!(
            "layer {} ({})",
            self.index,
            self.blob.digest.as_ref().unwrap_or(&self.diff_id).short()
        )
    }
}

/// One entry of the config's `history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HistoryStep {
    /// `created_by`: the command that made the step.
    pub created_by: Option<String>,
    /// `created`.
    pub created: Option<String>,
    /// `comment`.
    pub comment: Option<String>,
    /// Whether the step made no layer.
    pub empty_layer: bool,
}

/// Another image stored in the same input, found for base detection.
#[derive(Debug, Clone)]
pub(crate) enum Sibling {
    Manifest { name: String, blob: BlobRef },
    Docker { name: String, config: String },
}

/// An image opened for reading: manifest, config and layer descriptors, with its blobs left in
/// place until a stage reads them.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Image {
    pub(crate) store: Store,
    pub(crate) format: InputFormat,
    pub(crate) manifest: Option<Document>,
    pub(crate) config: Document,
    pub(crate) layers: Vec<Layer>,
    pub(crate) history: Vec<HistoryStep>,
    pub(crate) name: Option<String>,
    pub(crate) platform: Option<Platform>,
    pub(crate) siblings: Vec<Sibling>,
    /// The other platforms of the index this image was chosen from.
    pub(crate) other_platforms: Vec<Platform>,
    /// The temporary copy of a non-seekable input (standard input, a pipe), removed with the
    /// last image that reads it.
    pub(crate) spool: Option<(Arc<tempfile::TempPath>, std::path::PathBuf)>,
}

impl Image {
    /// The path the image was given as: [`Image::path`], or `-` (or the pipe's path) for an
    /// image read from standard input or a pipe, whose bytes were spooled to a temporary file.
    pub fn source(&self) -> &Path {
        self.spool.as_ref().map(|(_, source)| source.as_path()).unwrap_or_else(|| self.path())
    }

    /// The format the image was read from.
    pub fn format(&self) -> InputFormat {
        self.format
    }

    /// The file or directory the image was read from.
    pub fn path(&self) -> &Path {
        self.store.path()
    }

    /// The layers, base first.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The config's `history`, oldest first, including steps that made no layer.
    pub fn history(&self) -> &[HistoryStep] {
        &self.history
    }

    /// The digest of the manifest, when the image has one (a `docker save` tarball has none).
    pub fn manifest_digest(&self) -> Option<&Digest> {
        self.manifest.as_ref().map(|m| &m.digest)
    }

    /// The digest of the config blob (the image ID Docker shows).
    pub fn config_digest(&self) -> &Digest {
        &self.config.digest
    }

    /// The tag or name the image was chosen by or carries.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The other platforms of the image index this image was chosen from (attestation
    /// manifests left out), in the index's order; empty for a single-platform input. What
    /// squash writes holds this image's platform only.
    pub fn other_platforms(&self) -> &[Platform] {
        &self.other_platforms
    }

    /// The platform chosen from an index, or the config's.
    pub fn platform(&self) -> Option<&Platform> {
        self.platform.as_ref()
    }

    /// The config as a JSON value (unknown fields included).
    pub fn config_json(&self) -> &Value {
        &self.config.value
    }

    /// Layer `index`, or the error that says there is none.
    pub(crate) fn layer(&self, index: usize) -> Result<&Layer> {
        self.layers
            .get(index)
            .ok_or_else(|| Error::InvalidRange { reason: format!("no layer {index}") })
    }

    /// Opens a layer's stored blob, verifying size and digest when it reaches its end.
    pub(crate) fn open_layer_blob(
        &self,
        layer: &Layer,
    ) -> Result<VerifyingReader<Box<dyn Read + Send>>> {
        let location = self.layer_location(layer);
        if !self.store.is_registry() {
            return self.store.open_blob(&layer.blob, location);
        }
        // A registry's layer was given the compression its media type names (to learn it by
        // its bytes would download every layer); its first bytes must agree.
        let (sniffed, reader) = self.store.open_blob_sniffed(&layer.blob, location.clone())?;
        match sniffed {
            Sniffed::Known(c) if c == layer.compression => Ok(reader),
            Sniffed::Known(c) => Err(Error::invalid(
                location,
                "layer",
                format!(
                    "its media type `{}` says {}, but the blob is {c}",
                    layer.media_type, layer.compression
                ),
            )),
            Sniffed::Archive(name) => Err(Error::unsupported(
                location,
                format!("{name}-compressed layer (layers are gzip, zstd or plain tar)"),
            )),
        }
    }

    /// Where errors about `layer` point: the input as it was given (not its temporary copy).
    pub(crate) fn layer_location(&self, layer: &Layer) -> Location {
        Location::file(self.source()).part(layer.label())
    }

    /// Computes the digest of every layer blob that the image does not state, by reading it.
    pub fn resolve_digests(&mut self) -> Result<()> {
        let store = self.store.clone();
        for layer in &mut self.layers {
            if layer.blob.digest.is_none() {
                let location = store.location().part(layer.label());
                let reader = store.open_blob(&layer.blob, location)?;
                layer.blob.digest = Some(reader.finish()?);
            }
        }
        Ok(())
    }

    /// The diff_ids of the other images stored in the same input, with their names: candidates
    /// for the base image.
    pub fn sibling_diff_ids(&self) -> Result<Vec<(String, Vec<Digest>)>> {
        let mut out = Vec::new();
        for sibling in &self.siblings {
            let (name, config) = match sibling {
                Sibling::Manifest { name, blob } => {
                    let location = self.store.location().part(format!("manifest {name}"));
                    let raw = self.store.read_document(blob, location.clone())?;
                    let value: Value = serde_json::from_slice(&raw).map_err(|e| {
                        Error::invalid(location.clone(), "image manifest", e.to_string())
                    })?;
                    let Some(config) = config_ref(&value, &location)? else { continue };
                    let config = self.store.read_document(&config, location.clone())?;
                    (name.clone(), config)
                }
                Sibling::Docker { name, config } => match self.store.read_unverified(config)? {
                    Some(raw) => (name.clone(), raw),
                    None => continue,
                },
            };
            let Ok(value) = serde_json::from_slice::<Value>(&config) else { continue };
            if let Ok(ids) = diff_ids(&value, &self.store.location()) {
                out.push((name, ids));
            }
        }
        Ok(out)
    }
}

/// `rootfs.diff_ids` of an image config.
pub(crate) fn diff_ids(config: &Value, location: &Location) -> Result<Vec<Digest>> {
    let rootfs = config
        .get("rootfs")
        .ok_or_else(|| Error::invalid(location.clone(), "image config", "no `rootfs`"))?;
    let ids = rootfs.get("diff_ids").and_then(Value::as_array).ok_or_else(|| {
        Error::invalid(location.clone(), "image config", "no `rootfs.diff_ids` array")
    })?;
    ids.iter()
        .map(|v| {
            v.as_str()
                .ok_or_else(|| {
                    Error::invalid(location.clone(), "image config", "a diff_id is not a string")
                })?
                .parse::<Digest>()
                .map_err(|e| Error::invalid(location.clone(), "image config", e.to_string()))
        })
        .collect()
}

/// Parses the config's history and pairs the non-empty steps with layers (docs/layer-rules.md,
/// rule 11).
pub(crate) fn history_of(
    config: &Value,
    layer_count: usize,
) -> (Vec<HistoryStep>, Vec<Option<usize>>) {
    let steps: Vec<HistoryStep> = config
        .get("history")
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .map(|h| HistoryStep {
                    created_by: h.get("created_by").and_then(Value::as_str).map(str::to_string),
                    created: h.get("created").and_then(Value::as_str).map(str::to_string),
                    comment: h.get("comment").and_then(Value::as_str).map(str::to_string),
                    empty_layer: h.get("empty_layer").and_then(Value::as_bool).unwrap_or(false),
                })
                .collect()
        })
        .unwrap_or_default();
    let non_empty: Vec<usize> =
        steps.iter().enumerate().filter(|(_, s)| !s.empty_layer).map(|(i, _)| i).collect();
    let pairing = if non_empty.len() == layer_count {
        non_empty.into_iter().map(Some).collect()
    } else {
        vec![None; layer_count]
    };
    (steps, pairing)
}

/// Sniffs each layer blob's first bytes; bzip2 and xz layers are refused. A registry's layer
/// is not opened: its media type names its compression.
pub(crate) fn sniff_layer(
    store: &Store,
    blob: &BlobRef,
    media_type: &str,
    location: &Location,
) -> Result<Compression> {
    if store.is_registry() {
        return crate::read::media::compression_of(media_type).ok_or_else(|| {
            Error::unsupported(location.clone(), format!("layer media type `{media_type}`"))
        });
    }
    let Some((reader, _)) = store.open(&blob.name)? else {
        return Err(match &blob.digest {
            Some(digest) => {
                Error::MissingBlob { location: location.clone(), digest: digest.clone() }
            }
            None => Error::invalid(
                location.clone(),
                "image",
                format!("missing layer member `{}`", blob.name),
            ),
        });
    };
    let (sniffed, _) = sniff_buffered(reader).at(|| location.clone())?;
    match sniffed {
        Sniffed::Known(c) => Ok(c),
        Sniffed::Archive(name) => Err(Error::unsupported(
            location.clone(),
            format!("{name}-compressed layer (layers are gzip, zstd or plain tar)"),
        )),
    }
}
