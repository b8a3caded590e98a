//! Image indexes read whole, for squashing every platform in one run. Each child of an index is
//! an image (opened as an [`Image`]), a nested index, an attestation or referrer of another
//! child (BuildKit's `attestation-manifest`, or a manifest whose `subject` names one), another
//! manifest (an artifact, copied as it is), or absent from the input (its manifest blob is not
//! there, as when one platform of an index was pulled).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::blob::{BlobRef, Store};
use super::descriptor::{
    classify, document_ref, index_entries, is_attestation, Kind, REFERENCE_DIGEST,
};
use super::image::{Document, Image, InputFormat};
use super::media::{DOCKER_CONFIG, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST};
use super::oci::from_manifest;
use super::platform::{choose, platform_of, Platform};
use crate::digest::Digest;
use crate::error::{Error, Location, Result};

/// Where an index read from standard input or a pipe was spooled, shared by its images.
type Spool = Option<(Arc<tempfile::TempPath>, PathBuf)>;

/// An image index and everything it lists.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ImageIndex {
    pub(crate) store: Store,
    pub(crate) format: InputFormat,
    pub(crate) name: Option<String>,
    pub(crate) document: Document,
    pub(crate) children: Vec<IndexChild>,
    pub(crate) spool: Spool,
}

/// One entry of an index: its descriptor as the index states it, and what it points at.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IndexChild {
    pub(crate) descriptor: Value,
    pub(crate) blob: BlobRef,
    pub(crate) kind: IndexChildKind,
}

/// What an index entry points at.
#[derive(Debug, Clone)]
pub enum IndexChildKind {
    /// A container image.
    Image(Box<Image>),
    /// A nested index.
    Index(Box<ImageIndex>),
    /// A manifest about another entry of the index (`of`: that entry's manifest digest):
    /// BuildKit's attestation manifests, or a referrer whose `subject` names it.
    Attestation {
        /// The manifest it is about, when it says.
        of: Option<Digest>,
    },
    /// Another manifest (an artifact): copied as it is.
    Other,
    /// Not in the input: the index lists it but its manifest blob is not there.
    Absent,
}

/// Reads the document `blob` of `store` as an index with everything it lists, or `None` when
/// it is an image manifest.
pub(crate) fn read(
    store: &Store,
    format: InputFormat,
    blob: &BlobRef,
    declared: Option<&str>,
    name: Option<String>,
    depth: usize,
) -> Result<Option<ImageIndex>> {
    let document = read_document(store, blob)?;
    if !is_index(&document, declared, store)? {
        return Ok(None);
    }
    let mut reading = Reading { store, format, name, seen: HashMap::new(), entries: 0 };
    reading.build(document, declared, depth).map(Some)
}

/// The entries an index may list in all, its nested indexes' counted each time they are listed:
/// past it, the index is refused (real ones list a few dozen).
pub(crate) const MAX_INDEX_ENTRIES: usize = 10_000;

/// A document of the store, read (size and digest verified) and parsed.
pub(crate) fn read_document(store: &Store, blob: &BlobRef) -> Result<(Vec<u8>, Digest, Value)> {
    let digest = blob
        .digest
        .clone()
        .ok_or_else(|| Error::invalid(store.location(), "descriptor", "no digest"))?;
    let location = store.location().part(format!("manifest {}", digest.short()));
    let raw = store.read_document(blob, location.clone())?;
    let value: Value = serde_json::from_slice(&raw)
        .map_err(|e| Error::invalid(location, "manifest", e.to_string()))?;
    Ok((raw, digest, value))
}

fn is_index(
    (_, digest, value): &(Vec<u8>, Digest, Value),
    declared: Option<&str>,
    store: &Store,
) -> Result<bool> {
    let location = store.location().part(format!("index {}", digest.short()));
    Ok(value.is_object() && classify(value, declared, &location)? == Kind::Index)
}

/// An index being read whole: each distinct child read and resolved once (an index that lists
/// the same child many times, directly or through nested indexes, reuses it), and the entries
/// counted against [`MAX_INDEX_ENTRIES`].
struct Reading<'s> {
    store: &'s Store,
    format: InputFormat,
    name: Option<String>,
    /// Children resolved so far, by digest and the platform their entry states, with the
    /// entries each holds in all.
    seen: HashMap<(Digest, Option<Platform>), (IndexChildKind, usize)>,
    entries: usize,
}

impl Reading<'_> {
    /// Counts `more` entries, refusing an index past the limit.
    fn count(&mut self, more: usize, location: &Location) -> Result<()> {
        self.entries += more;
        if self.entries > MAX_INDEX_ENTRIES {
            return Err(Error::invalid(
                location.clone(),
                "image index",
                format!(
                    "lists more than {MAX_INDEX_ENTRIES} manifests in all (each nested index \
                     counted every time it is listed)"
                ),
            ));
        }
        Ok(())
    }

    /// The index whose document is `(raw, digest, value)`, with everything it lists.
    fn build(
        &mut self,
        (raw, digest, value): (Vec<u8>, Digest, Value),
        declared: Option<&str>,
        depth: usize,
    ) -> Result<ImageIndex> {
        let store = self.store;
        let location = store.location().part(format!("index {}", digest.short()));
        if depth > 8 {
            return Err(Error::invalid(
                location,
                "image index",
                "indexes nested too deeply (a loop?)",
            ));
        }
        let media_type = value
            .get("mediaType")
            .and_then(Value::as_str)
            .or(declared)
            .unwrap_or(OCI_INDEX)
            .to_string();
        let mut children = Vec::new();
        for entry in index_entries(&value, &location)? {
            self.count(1, &location)?;
            let child_blob = document_ref(entry, &location, store)?;
            let declared = entry.get("mediaType").and_then(Value::as_str);
            let key = child_blob.digest.clone().map(|d| (d, platform_of(entry)));
            let known = key.as_ref().and_then(|k| self.seen.get(k)).cloned();
            let kind = match known {
                // Attestations are told by their entry, not their document.
                Some((kind, held)) if !is_attestation(entry) => {
                    self.count(held, &location)?;
                    kind
                }
                _ => {
                    let before = self.entries;
                    let kind = self.child(entry, &child_blob, declared, depth)?;
                    if let Some(key) = key {
                        self.seen.insert(key, (kind.clone(), self.entries - before));
                    }
                    kind
                }
            };
            children.push(IndexChild { descriptor: entry.clone(), blob: child_blob, kind });
        }
        let document = Document { raw, digest, media_type, value };
        Ok(ImageIndex {
            store: store.clone(),
            format: self.format,
            name: self.name.clone(),
            document,
            children,
            spool: None,
        })
    }

    /// What the entry `entry` (its document `blob`) points at.
    fn child(
        &mut self,
        entry: &Value,
        blob: &BlobRef,
        declared: Option<&str>,
        depth: usize,
    ) -> Result<IndexChildKind> {
        let store = self.store;
        if store.open(&blob.name)?.is_none() {
            return Ok(IndexChildKind::Absent);
        }
        // Each child's document is read once, whatever it turns out to be.
        let document = read_document(store, blob)?;
        if is_index(&document, declared, store)? {
            return Ok(IndexChildKind::Index(Box::new(self.build(
                document,
                declared,
                depth + 1,
            )?)));
        }
        child_kind(store, self.format, entry, document, declared, self.name.clone())
    }
}

/// What a manifest entry of an index is, its document `(raw, digest, value)` read.
fn child_kind(
    store: &Store,
    format: InputFormat,
    entry: &Value,
    (raw, digest, value): (Vec<u8>, Digest, Value),
    declared: Option<&str>,
    name: Option<String>,
) -> Result<IndexChildKind> {
    if is_attestation(entry) {
        let of = entry
            .get("annotations")
            .and_then(|a| a.get(REFERENCE_DIGEST))
            .and_then(Value::as_str)
            .and_then(|d| d.parse().ok());
        return Ok(IndexChildKind::Attestation { of });
    }
    if let Some(subject) =
        value.get("subject").and_then(|s| s.get("digest")).and_then(Value::as_str)
    {
        return Ok(IndexChildKind::Attestation { of: subject.parse().ok() });
    }
    let is_image = value
        .get("config")
        .and_then(|c| c.get("mediaType"))
        .and_then(Value::as_str)
        .is_none_or(|m| m == OCI_CONFIG || m == DOCKER_CONFIG);
    if !is_image || value.get("layers").is_none() {
        return Ok(IndexChildKind::Other);
    }
    let media_type = value
        .get("mediaType")
        .and_then(Value::as_str)
        .or(declared)
        .unwrap_or(OCI_MANIFEST)
        .to_string();
    let manifest = Document { raw, digest, media_type, value };
    let image = from_manifest(store, format, manifest, name, platform_of(entry))?;
    Ok(IndexChildKind::Image(Box::new(image)))
}

impl ImageIndex {
    /// The file or directory the index was read from.
    pub fn path(&self) -> &Path {
        self.store.path()
    }

    /// The path it was given as (`-` for standard input; see [`Image::source`]).
    pub fn source(&self) -> &Path {
        self.spool.as_ref().map(|(_, source)| source.as_path()).unwrap_or_else(|| self.path())
    }

    /// The format it was read from.
    pub fn format(&self) -> InputFormat {
        self.format
    }

    /// The tag it was chosen by.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The digest of the index document.
    pub fn digest(&self) -> &Digest {
        &self.document.digest
    }

    /// Its media type: OCI's image index or Docker's manifest list.
    pub fn media_type(&self) -> &str {
        &self.document.media_type
    }

    /// The index's entries, in order.
    pub fn children(&self) -> &[IndexChild] {
        &self.children
    }

    /// Every image of the index and of the indexes nested in it, in order.
    pub fn images(&self) -> Vec<&Image> {
        let mut out = Vec::new();
        for child in &self.children {
            match &child.kind {
                IndexChildKind::Image(image) => out.push(image.as_ref()),
                IndexChildKind::Index(nested) => out.extend(nested.images()),
                _ => {}
            }
        }
        out
    }

    /// The platforms of [`ImageIndex::images`] (an image whose entry and config state none is
    /// left out).
    pub fn platforms(&self) -> Vec<Platform> {
        self.images().into_iter().filter_map(|i| i.platform().cloned()).collect()
    }

    /// The image of one platform: `wanted`, else the only one, else this host's. It knows the
    /// index's other platforms ([`Image::other_platforms`]).
    pub fn select(&self, wanted: Option<&Platform>) -> Result<Image> {
        let images = self.images();
        let location =
            Location::file(self.source()).part(format!("index {}", self.digest().short()));
        let chosen = choose(
            &images,
            |i| i.platform().cloned(),
            wanted,
            &location,
            "the index lists no image present in the input",
        )?;
        let mut image = (*chosen).clone();
        image.other_platforms = images
            .iter()
            .filter(|i| i.manifest_digest() != chosen.manifest_digest())
            .filter_map(|i| i.platform().cloned())
            .collect();
        Ok(image)
    }

    /// Records where the input was spooled, here and in every image it holds.
    pub(crate) fn set_spool(&mut self, spool: Spool) {
        for child in &mut self.children {
            match &mut child.kind {
                IndexChildKind::Image(image) => image.spool = spool.clone(),
                IndexChildKind::Index(nested) => nested.set_spool(spool.clone()),
                _ => {}
            }
        }
        self.spool = spool;
    }
}

impl IndexChild {
    /// The entry's descriptor as the index states it (platform, annotations, artifact type).
    pub fn descriptor(&self) -> &Value {
        &self.descriptor
    }

    /// The digest it points at.
    pub fn digest(&self) -> Option<&Digest> {
        self.blob.digest.as_ref()
    }

    /// What it points at.
    pub fn kind(&self) -> &IndexChildKind {
        &self.kind
    }

    /// The platform its descriptor states.
    pub fn platform(&self) -> Option<Platform> {
        platform_of(&self.descriptor)
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
    /// The image of `image`'s platform here, as a base for it: an image as it is (unless it
    /// states another platform), an index's image of that platform.
    pub fn for_platform_of(&self, image: &Image) -> Option<Image> {
        match self {
            Opened::Image(b) => {
                let other = b.platform().zip(image.platform()).is_some_and(|(a, p)| !a.matches(p));
                (!other).then(|| (**b).clone())
            }
            Opened::Index(index) => {
                let same = |b: &&Image| {
                    b.platform().zip(image.platform()).is_some_and(|(a, p)| a.matches(p))
                };
                index.images().into_iter().find(same).cloned()
            }
        }
    }
}
