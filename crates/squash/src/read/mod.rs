//! Stage 1, reading: any supported input (OCI layout, OCI archive, `docker save` tarball in its
//! three shapes, containers-image `dir:`) becomes one [`Image`] model whose blobs are read in place.

pub(crate) mod archive;
pub(crate) mod blob;
mod docker;
mod index;
mod oci;
pub(crate) mod once;
mod reference;
mod spool;
pub(crate) mod stream;

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::digest::Digest;
use crate::error::{Error, IoContext, Location, Result};
use crate::layer::compression::{sniff_buffered, Compression, Sniffed};
use archive::ArchiveIndex;
use blob::{BlobRef, Store, VerifyingReader};
pub(crate) use docker::docker_media_type;
pub use index::{ImageIndex, IndexChild, IndexChildKind};
pub(crate) use oci::{descriptor_ref as oci_descriptor_ref, DOCKER_CONFIG, OCI_CONFIG, OCI_INDEX as OCI_INDEX_MEDIA_TYPE, OCI_MANIFEST};
pub(crate) use reference::remote_transport;
pub use reference::{ImageReference, Transport};

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
}

impl fmt::Display for InputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InputFormat::OciLayout => "oci",
            InputFormat::OciArchive => "oci-archive",
            InputFormat::DockerArchive => "docker-archive",
            InputFormat::Dir => "dir",
        })
    }
}

/// A platform as `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Platform {
    /// Operating system (`linux`).
    pub os: String,
    /// CPU architecture (`amd64`, `arm64`).
    pub architecture: String,
    /// Variant (`v7`), if any.
    pub variant: Option<String>,
}

impl Platform {
    /// The platform of the machine this runs on, in OCI spelling.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform { os: std::env::consts::OS.to_string(), architecture: architecture.to_string(), variant: None }
    }

    /// Whether `other` is this platform (a variant left out here matches any).
    pub fn matches(&self, other: &Platform) -> bool {
        self.os == other.os && self.architecture == other.architecture && (self.variant.is_none() || self.variant == other.variant)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Platform {
    type Err = crate::error::ParseError;
    fn from_str(s: &str) -> std::result::Result<Platform, crate::error::ParseError> {
        parse_platform(s).map_err(|message| crate::error::ParseError::new("platform", s, message))
    }
}

fn parse_platform(s: &str) -> std::result::Result<Platform, String> {
    let parts: Vec<&str> = s.split('/').collect();
    match parts.as_slice() {
        [os, arch] if !os.is_empty() && !arch.is_empty() => {
            Ok(Platform { os: os.to_string(), architecture: arch.to_string(), variant: None })
        }
        [os, arch, variant] if !os.is_empty() && !arch.is_empty() && !variant.is_empty() => {
            Ok(Platform { os: os.to_string(), architecture: arch.to_string(), variant: Some(variant.to_string()) })
        }
        _ => Err(format!("`{s}` is not a platform (expected os/arch[/variant], e.g. linux/amd64)")),
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
}

/// A JSON document blob (manifest or config), kept as bytes and as a JSON value so that fields
/// this library does not know survive a rewrite (SPEC-NOTES rule 11).
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
        format!("layer {} ({})", self.index, self.blob.digest.as_ref().unwrap_or(&self.diff_id).short())
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
    /// Opens the image named by `reference`: `oci:PATH[:TAG]`, `oci-archive:PATH[:TAG]`,
    /// `docker-archive:PATH[:NAME:TAG]`, `dir:PATH`, or a bare path whose format is detected.
    ///
    /// ```no_run
    /// let image = squash::Image::open("docker-archive:app.tar")?;
    /// for layer in image.layers() {
    ///     println!("{} {} bytes", layer.diff_id(), layer.size());
    /// }
    /// # Ok::<(), squash::Error>(())
    /// ```
    pub fn open(reference: &str) -> Result<Image> {
        Image::open_with(reference, &OpenOptions::default())
    }

    /// Like [`Image::open`], with options for choosing among several images.
    pub fn open_with(reference: &str, options: &OpenOptions) -> Result<Image> {
        Image::open_reference(&parse_reference(reference)?, options)
    }

    /// Opens a parsed reference. A platform asked for in `options` must be the image's, whether
    /// the input is an index or a single image.
    pub fn open_reference(reference: &ImageReference, options: &OpenOptions) -> Result<Image> {
        let image = Image::open_unchecked(reference, options)?;
        if let (Some(wanted), Some(actual)) = (&options.platform, image.platform()) {
            if !wanted.matches(actual) {
                return Err(Error::Selection {
                    location: Location::file(&reference.path),
                    reason: format!("no manifest for platform {wanted}: the image is for {actual} only"),
                });
            }
        }
        Ok(image)
    }

    fn open_unchecked(reference: &ImageReference, options: &OpenOptions) -> Result<Image> {
        match open_store(reference, options, false)? {
            Opened::Image(image) => Ok(*image),
            Opened::Index(index) => Err(Error::Selection {
                location: Location::file(index.path()),
                reason: "an image index where one image was expected".into(),
            }),
        }
    }
}

/// What a reference names: one image, or an image index (every platform of it).
#[derive(Debug, Clone)]
pub enum Opened {
    /// A single image (a manifest, or the platform chosen from an index).
    Image(Box<Image>),
    /// An image index, read whole.
    Index(Box<ImageIndex>),
}

impl Opened {
    /// Opens `reference`: an image index when the reference names one (an OCI layout or
    /// archive whose tag points at an index, directly or through nested ones), else the image.
    /// `options.platform` is not used to choose here: every platform is read.
    ///
    /// ```no_run
    /// use squash::Opened;
    ///
    /// match Opened::open(&"oci:layout:app".parse()?, &Default::default())? {
    ///     Opened::Index(index) => println!("an index of {} images", index.images().len()),
    ///     Opened::Image(image) => println!("one image of {} layers", image.layers().len()),
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(reference: &ImageReference, options: &OpenOptions) -> Result<Opened> {
        open_store(reference, options, true)
    }

    /// [`Opened::open`] of a reference given as text, refused as [`Image::open_with`] refuses
    /// it (a remote transport as unsupported, with the command that makes a file of it).
    pub fn open_with(reference: &str, options: &OpenOptions) -> Result<Opened> {
        Opened::open(&parse_reference(reference)?, options)
    }

    /// The image of `image`'s platform here, as a base for it: an image as it is (unless it
    /// states another platform), an index's image of that platform.
    pub fn for_platform_of(&self, image: &Image) -> Option<Image> {
        match self {
            Opened::Image(b) => {
                let other = matches!((b.platform(), image.platform()), (Some(a), Some(p)) if !a.matches(p));
                (!other).then(|| (**b).clone())
            }
            Opened::Index(index) => {
                index.images().into_iter().find(|b| matches!((b.platform(), image.platform()), (Some(a), Some(p)) if a.matches(p))).cloned()
            }
        }
    }
}

/// `reference` parsed, or the error that names it: unsupported for a remote transport, a
/// selection error otherwise.
fn parse_reference(reference: &str) -> Result<ImageReference> {
    reference.parse().map_err(|e: crate::error::ParseError| {
        let reason = e.to_string();
        let location = Location::file(reference);
        match remote_transport(reference) {
            Some(_) => Error::Unsupported { location, what: reason },
            None => Error::Selection { location, reason },
        }
    })
}

/// Opens the store `reference` names (spooling a non-seekable input first) and reads from it
/// one image, or with `indexes` an image index when the reference names one.
fn open_store(reference: &ImageReference, options: &OpenOptions, indexes: bool) -> Result<Opened> {
    let path = &reference.path;
    // Read through a temporary copy: a pipe, and an archive that is itself compressed (the copy
    // is decompressed).
    let spooled = |spool: TempPathShared| -> Result<Opened> {
        let mut inner = reference.clone();
        inner.path = spool.to_path_buf();
        let mut opened = open_store(&inner, options, indexes)?;
        let spool = Some((spool, path.clone()));
        match &mut opened {
            Opened::Image(image) => image.spool = spool,
            Opened::Index(index) => index.set_spool(spool),
        }
        Ok(opened)
    };
    if spool::wanted(path) {
        return spooled(Arc::new(spool::spool(path, options)?));
    }
    let metadata = std::fs::metadata(path).at(|| Location::file(path))?;
    let transport = match reference.transport {
        Some(t) => t,
        None => detect(path, metadata.is_dir())?,
    };
    match transport {
        Transport::Oci => {
            if !metadata.is_dir() {
                return Err(Error::Selection { location: Location::file(path), reason: "`oci:` needs an OCI layout directory".into() });
            }
            oci::open_any(Store::Dir(path.clone()), InputFormat::OciLayout, reference.name.as_deref(), options, indexes)
        }
        Transport::Dir => docker::open_dir(Store::Dir(path.clone())).map(|i| Opened::Image(Box::new(i))),
        Transport::OciArchive | Transport::DockerArchive => {
            if metadata.is_dir() {
                return Err(Error::Selection {
                    location: Location::file(path),
                    reason: "an archive transport needs a file, not a directory".into(),
                });
            }
            if !plain_tar(path)? {
                return spooled(Arc::new(spool::spool(path, options)?));
            }
            let index = Arc::new(ArchiveIndex::open(path)?);
            let store = Store::Archive(index.clone());
            let has_layout = index.contains("oci-layout") && index.contains("index.json");
            let has_docker = index.contains("manifest.json");
            match transport {
                Transport::DockerArchive if has_docker => {
                    docker::open_archive(store, reference.name.as_deref()).map(|i| Opened::Image(Box::new(i)))
                }
                Transport::OciArchive if has_layout => {
                    oci::open_any(store, InputFormat::OciArchive, reference.name.as_deref(), options, indexes)
                }
                _ if has_layout => oci::open_any(
                    store,
                    if has_docker { InputFormat::DockerArchive } else { InputFormat::OciArchive },
                    reference.name.as_deref(),
                    options,
                    indexes,
                ),
                _ if has_docker => docker::open_archive(store, reference.name.as_deref()).map(|i| Opened::Image(Box::new(i))),
                _ => Err(not_an_image(&index)),
            }
        }
    }
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

    /// Opens a layer's stored blob, verifying size and digest when it reaches its end.
    pub(crate) fn open_layer_blob(&self, layer: &Layer) -> Result<VerifyingReader<Box<dyn Read + Send>>> {
        self.store.open_blob(&layer.blob, self.layer_location(layer))
    }

    pub(crate) fn layer_location(&self, layer: &Layer) -> Location {
        self.store.location().part(layer.label())
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
                    let value: Value =
                        serde_json::from_slice(&raw).map_err(|e| Error::invalid(location.clone(), "image manifest", e.to_string()))?;
                    let Some(config) = oci::config_ref(&value, &location)? else { continue };
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

/// Guesses the transport of a bare path.
fn detect(path: &Path, is_dir: bool) -> Result<Transport> {
    if is_dir {
        if path.join("oci-layout").is_file() {
            return Ok(Transport::Oci);
        }
        if path.join("manifest.json").is_file() {
            return Ok(Transport::Dir);
        }
        return Err(Error::Selection {
            location: Location::file(path),
            reason: "directory is neither an OCI image layout (no `oci-layout`) nor a `dir:` image (no `manifest.json`)".into(),
        });
    }
    Ok(Transport::DockerArchive)
}

/// Whether the archive at `path` is a plain tar (members are read in place by offset); a
/// gzip- or zstd-compressed one is read through a decompressed copy, other compressions are
/// refused with a useful message.
fn plain_tar(path: &Path) -> Result<bool> {
    let file = std::fs::File::open(path).at(|| Location::file(path))?;
    let (sniffed, _) = sniff_buffered(file).at(|| Location::file(path))?;
    match sniffed {
        Sniffed::Known(Compression::None) => Ok(true),
        Sniffed::Known(_) => Ok(false),
        Sniffed::Unsupported(c) => {
            Err(Error::unsupported(Location::file(path), format!("the archive itself is {c}-compressed; decompress it first")))
        }
    }
}

/// A temporary copy of an input, shared by the image and its clones.
type TempPathShared = Arc<tempfile::TempPath>;

fn not_an_image(index: &ArchiveIndex) -> Error {
    let names: Vec<&str> = index.names().take(5).collect();
    let what = if names.iter().any(|n| n.ends_with("/layer.tar") || n.ends_with("/json")) {
        "a `docker save` tarball without `manifest.json` (pre-Docker-1.10 format, or damaged)".to_string()
    } else {
        format!("neither an OCI archive (no `oci-layout` and `index.json`) nor a `docker save` tarball (no `manifest.json`); it looks like a plain tar (first members: {})", names.join(", "))
    };
    Error::unsupported(Location::file(index.path()), what)
}

/// `rootfs.diff_ids` of an image config.
pub(crate) fn diff_ids(config: &Value, location: &Location) -> Result<Vec<Digest>> {
    let rootfs = config.get("rootfs").ok_or_else(|| Error::invalid(location.clone(), "image config", "no `rootfs`"))?;
    let ids = rootfs
        .get("diff_ids")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::invalid(location.clone(), "image config", "no `rootfs.diff_ids` array"))?;
    ids.iter()
        .map(|v| {
            v.as_str()
                .ok_or_else(|| Error::invalid(location.clone(), "image config", "a diff_id is not a string"))?
                .parse::<Digest>()
                .map_err(|e| Error::invalid(location.clone(), "image config", e.to_string()))
        })
        .collect()
}

/// Parses the config's history and pairs the non-empty steps with layers (SPEC-NOTES rule 11).
pub(crate) fn history_of(config: &Value, layer_count: usize) -> (Vec<HistoryStep>, Vec<Option<usize>>) {
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
    let non_empty: Vec<usize> = steps.iter().enumerate().filter(|(_, s)| !s.empty_layer).map(|(i, _)| i).collect();
    let pairing = if non_empty.len() == layer_count { non_empty.into_iter().map(Some).collect() } else { vec![None; layer_count] };
    (steps, pairing)
}

/// Sniffs each layer blob's first bytes; bzip2 and xz layers are refused.
pub(crate) fn sniff_layer(store: &Store, blob: &BlobRef, location: &Location) -> Result<Compression> {
    let Some((reader, _)) = store.open(&blob.name)? else {
        return Err(match &blob.digest {
            Some(digest) => Error::MissingBlob { location: location.clone(), digest: digest.clone() },
            None => Error::invalid(location.clone(), "image", format!("missing layer member `{}`", blob.name)),
        });
    };
    let (sniffed, _) = sniff_buffered(reader).at(|| location.clone())?;
    match sniffed {
        Sniffed::Known(c) => Ok(c),
        Sniffed::Unsupported(name) => {
            Err(Error::unsupported(location.clone(), format!("{name}-compressed layer (layers are gzip, zstd or plain tar)")))
        }
    }
}
