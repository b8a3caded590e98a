//! Output containers: OCI layout directories (new or existing), OCI archives and `docker save`
//! tarballs. Everything is written under a temporary name next to the destination and put in
//! place by [`Target::commit`]; dropping an uncommitted target removes what it wrote.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tempfile::{NamedTempFile, TempDir};

use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, IoContext, Location, Result};
use crate::layer::tarstream::{padding, BLOCK};

/// The container to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputFormat {
    /// An OCI image-layout directory; an existing layout gets the image added under its tag.
    OciLayout,
    /// A tar of an OCI image layout.
    OciArchive,
    /// A `docker save` tarball that `docker load`, skopeo and podman read.
    DockerArchive,
}

impl std::str::FromStr for OutputFormat {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<OutputFormat, String> {
        match s {
            "oci" | "oci-layout" => Ok(OutputFormat::OciLayout),
            "oci-archive" => Ok(OutputFormat::OciArchive),
            "docker-archive" | "docker" => Ok(OutputFormat::DockerArchive),
            other => Err(format!("unknown output format `{other}` (expected oci, oci-archive or docker-archive)")),
        }
    }
}

/// Where and how to write the new image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Destination file or directory.
    pub path: PathBuf,
    /// Container format.
    pub format: OutputFormat,
    /// Tag (OCI `org.opencontainers.image.ref.name`) or `NAME:TAG` (docker `RepoTags`).
    pub tag: Option<String>,
}

impl Output {
    /// Parses `oci:PATH[:TAG]`, `oci-archive:PATH[:TAG]`, `docker-archive:PATH[:NAME:TAG]`, or a
    /// bare path written in `default` format.
    pub fn parse(s: &str, default: OutputFormat) -> std::result::Result<Output, String> {
        for (prefix, format) in [
            ("oci-archive:", OutputFormat::OciArchive),
            ("oci:", OutputFormat::OciLayout),
            ("docker-archive:", OutputFormat::DockerArchive),
        ] {
            if let Some(rest) = s.strip_prefix(prefix) {
                let (path, tag) = match rest.split_once(':') {
                    Some((p, t)) => (p, Some(t.to_string())),
                    None => (rest, None),
                };
                if path.is_empty() {
                    return Err(format!("`{s}` names no path"));
                }
                return Ok(Output { path: PathBuf::from(path), format, tag });
            }
        }
        if s.is_empty() {
            return Err("empty output path".into());
        }
        Ok(Output { path: PathBuf::from(s), format: default, tag: None })
    }
}

/// An output being written.
pub(crate) enum Target {
    Layout(LayoutTarget),
    Archive(ArchiveTarget),
}

pub(crate) struct LayoutTarget {
    root: PathBuf,
    /// The temporary directory of a new layout; `None` when adding to an existing one.
    fresh: Option<TempDir>,
    created: Vec<PathBuf>,
    committed: bool,
}

pub(crate) struct ArchiveTarget {
    dest: PathBuf,
    file: Option<NamedTempFile>,
    out: BufWriter<File>,
    offset: u64,
    format: OutputFormat,
    written: BTreeSet<Digest>,
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn temp_prefix(path: &Path) -> String {
    format!(".{}.squash-tmp", path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
}

impl Target {
    pub(crate) fn create(output: &Output, input: &Path) -> Result<Target> {
        let location = Location::file(&output.path);
        if let (Ok(a), Ok(b)) = (fs::canonicalize(&output.path), fs::canonicalize(input)) {
            if a == b && output.format != OutputFormat::OciLayout {
                return Err(Error::Output { location, reason: "the output would overwrite the input; choose another path".into() });
            }
        }
        let parent = parent_dir(&output.path);
        match output.format {
            OutputFormat::OciLayout => {
                if output.path.exists() {
                    if !output.path.join("oci-layout").is_file() {
                        return Err(Error::Output {
                            location,
                            reason: "exists and is not an OCI image layout; remove it or choose another path".into(),
                        });
                    }
                    return Ok(Target::Layout(LayoutTarget {
                        root: output.path.clone(),
                        fresh: None,
                        created: Vec::new(),
                        committed: false,
                    }));
                }
                let temp =
                    tempfile::Builder::new().prefix(&temp_prefix(&output.path)).tempdir_in(&parent).at(|| Location::file(&parent))?;
                fs::create_dir_all(temp.path().join("blobs/sha256")).at(|| Location::file(temp.path()))?;
                Ok(Target::Layout(LayoutTarget { root: output.path.clone(), fresh: Some(temp), created: Vec::new(), committed: false }))
            }
            format => {
                if output.path.is_dir() {
                    return Err(Error::Output { location, reason: "is a directory; an archive output needs a file path".into() });
                }
                let file =
                    tempfile::Builder::new().prefix(&temp_prefix(&output.path)).tempfile_in(&parent).at(|| Location::file(&parent))?;
                let handle = file.reopen().at(|| Location::file(file.path()))?;
                let mut target = ArchiveTarget {
                    dest: output.path.clone(),
                    file: Some(file),
                    out: BufWriter::with_capacity(1 << 20, handle),
                    offset: 0,
                    format,
                    written: BTreeSet::new(),
                };
                if format == OutputFormat::OciArchive {
                    target.member_dir("blobs/")?;
                    target.member_dir("blobs/sha256/")?;
                    target.member_bytes("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
                }
                Ok(Target::Archive(target))
            }
        }
    }

    /// Whether the output already holds this blob.
    pub(crate) fn has_blob(&self, digest: &Digest) -> bool {
        match self {
            Target::Layout(t) => {
                t.work().join("blobs/sha256").join(digest.hex()).is_file() || t.root.join("blobs/sha256").join(digest.hex()).is_file()
            }
            Target::Archive(t) => t.written.contains(digest),
        }
    }

    /// Writes a blob produced by `write`; when `known` is given the result must have that digest.
    pub(crate) fn write_blob(
        &mut self,
        known: Option<&Digest>,
        kind: BlobKind,
        write: &mut dyn FnMut(&mut dyn Write) -> Result<()>,
    ) -> Result<(Digest, u64)> {
        let (digest, size) = match self {
            Target::Layout(t) => t.write_blob(write)?,
            Target::Archive(t) => t.write_blob(kind, write)?,
        };
        if let Some(expected) = known {
            if *expected != digest {
                return Err(Error::DigestMismatch {
                    location: Location::default().part("blob copied to the output"),
                    expected: expected.clone(),
                    actual: digest,
                });
            }
        }
        Ok((digest, size))
    }

    /// Writes the final documents and puts the output in place.
    pub(crate) fn commit(self, finish: Finish) -> Result<()> {
        match self {
            Target::Layout(t) => t.commit(finish),
            Target::Archive(t) => t.commit(finish),
        }
    }
}

/// What a blob is, for naming it inside a `docker save` tarball.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlobKind {
    Layer,
    Config,
    Manifest,
}

/// The documents that tie an output together.
pub(crate) struct Finish {
    /// Descriptor of the manifest, for `index.json`.
    pub manifest_descriptor: Value,
    /// Tag to record.
    pub tag: Option<String>,
    /// For docker archives: config digest and layer digests in order.
    pub config: Digest,
    pub layers: Vec<Digest>,
}

impl LayoutTarget {
    fn work(&self) -> PathBuf {
        match &self.fresh {
            Some(t) => t.path().to_path_buf(),
            None => self.root.clone(),
        }
    }

    fn write_blob(&mut self, write: &mut dyn FnMut(&mut dyn Write) -> Result<()>) -> Result<(Digest, u64)> {
        let dir = self.work().join("blobs/sha256");
        fs::create_dir_all(&dir).at(|| Location::file(&dir))?;
        let temp = NamedTempFile::new_in(&dir).at(|| Location::file(&dir))?;
        let handle = temp.reopen().at(|| Location::file(temp.path()))?;
        let mut writer = HashingWriter::new(BufWriter::with_capacity(1 << 20, handle));
        write(&mut writer)?;
        let (buffered, digest, size) = writer.finish();
        let file = buffered.into_inner().map_err(|e| Error::io(Location::file(temp.path()), e.into_error()))?;
        file.sync_all().at(|| Location::file(temp.path()))?;
        let final_path = dir.join(digest.hex());
        if final_path.exists() {
            return Ok((digest, size));
        }
        temp.persist(&final_path).map_err(|e| Error::io(Location::file(&final_path), e.error))?;
        if self.fresh.is_none() {
            self.created.push(final_path);
        }
        Ok((digest, size))
    }

    fn commit(mut self, finish: Finish) -> Result<()> {
        let work = self.work();
        let index_path = work.join("index.json");
        let mut index = if self.fresh.is_none() {
            let raw = fs::read(&index_path).at(|| Location::file(&index_path))?;
            serde_json::from_slice::<Value>(&raw).map_err(|e| Error::invalid(Location::file(&index_path), "image index", e.to_string()))?
        } else {
            json!({"schemaVersion": 2, "mediaType": crate::read::OCI_INDEX_MEDIA_TYPE, "manifests": []})
        };
        let mut descriptor = finish.manifest_descriptor;
        if let Some(tag) = &finish.tag {
            descriptor["annotations"] = json!({ "org.opencontainers.image.ref.name": tag });
        }
        let manifests = match index.get_mut("manifests") {
            Some(Value::Array(items)) => items,
            _ => {
                index["manifests"] = json!([]);
                match index.get_mut("manifests") {
                    Some(Value::Array(items)) => items,
                    _ => return Err(Error::invalid(Location::file(&index_path), "image index", "no manifests")),
                }
            }
        };
        if let Some(tag) = &finish.tag {
            manifests.retain(|m| m.pointer("/annotations/org.opencontainers.image.ref.name").and_then(Value::as_str) != Some(tag));
        }
        manifests.push(descriptor);
        let bytes = serde_json::to_vec(&index).map_err(|e| Error::io(Location::file(&index_path), e.into()))?;
        write_file_atomically(&work, "index.json", &bytes)?;
        if let Some(temp) = self.fresh.take() {
            write_file_atomically(temp.path(), "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
            let kept = temp.keep();
            if let Err(e) = fs::rename(&kept, &self.root) {
                let _ = fs::remove_dir_all(&kept);
                return Err(Error::io(Location::file(&self.root), e));
            }
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for LayoutTarget {
    fn drop(&mut self) {
        if !self.committed {
            for path in &self.created {
                let _ = fs::remove_file(path);
            }
        }
    }
}

fn write_file_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let mut temp = NamedTempFile::new_in(dir).at(|| Location::file(dir))?;
    temp.write_all(bytes).at(|| Location::file(temp.path()))?;
    temp.as_file().sync_all().at(|| Location::file(temp.path()))?;
    let dest = dir.join(name);
    temp.persist(&dest).map_err(|e| Error::io(Location::file(&dest), e.error))?;
    Ok(())
}

impl ArchiveTarget {
    fn location(&self) -> Location {
        Location::file(&self.dest)
    }

    fn header(name: &[u8], size: u64, typeflag: u8) -> [u8; BLOCK] {
        let mut block = [0u8; BLOCK];
        block[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
        let octal = |field: &mut [u8], value: u64| {
            let width = field.len() - 1;
            let text = format!("{value:0width$o}");
            field[..width].copy_from_slice(&text.as_bytes()[text.len().saturating_sub(width)..]);
        };
        octal(&mut block[100..108], if typeflag == b'5' { 0o755 } else { 0o644 });
        octal(&mut block[108..116], 0);
        octal(&mut block[116..124], 0);
        if size < 8u64.pow(11) {
            octal(&mut block[124..136], size);
        } else {
            block[124] = 0x80;
            block[128..136].copy_from_slice(&size.to_be_bytes());
        }
        octal(&mut block[136..148], 0);
        block[156] = typeflag;
        block[257..263].copy_from_slice(b"ustar\0");
        block[263..265].copy_from_slice(b"00");
        block[148..156].fill(b' ');
        let sum: u64 = block.iter().map(|&b| u64::from(b)).sum();
        block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        block
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes).at(|| Location::file(&self.dest))?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    fn member_dir(&mut self, name: &str) -> Result<()> {
        self.put(&Self::header(name.as_bytes(), 0, b'5'))
    }

    fn member_bytes(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        self.put(&Self::header(name.as_bytes(), bytes.len() as u64, b'0'))?;
        self.put(bytes)?;
        self.put(&vec![0u8; padding(bytes.len() as u64) as usize])
    }

    fn blob_name(&self, kind: BlobKind, digest: &Digest) -> String {
        match (self.format, kind) {
            (OutputFormat::DockerArchive, BlobKind::Config) => format!("{}.json", digest.hex()),
            (OutputFormat::DockerArchive, _) => format!("{}.tar", digest.hex()),
            _ => format!("blobs/sha256/{}", digest.hex()),
        }
    }

    fn write_blob(&mut self, kind: BlobKind, write: &mut dyn FnMut(&mut dyn Write) -> Result<()>) -> Result<(Digest, u64)> {
        let header_offset = self.offset;
        let placeholder = self.blob_name(kind, &Digest::of(b""));
        self.put(&Self::header(placeholder.as_bytes(), 0, b'0'))?;
        let location = self.location();
        let mut writer = HashingWriter::new(&mut self.out);
        write(&mut writer)?;
        let (_, digest, size) = writer.finish();
        self.offset += size;
        self.put(&vec![0u8; padding(size) as usize])?;
        if self.written.contains(&digest) {
            // Already in the archive: cut the duplicate off again.
            self.out.flush().at(|| location.clone())?;
            let file = self.out.get_mut();
            file.set_len(header_offset).at(|| location.clone())?;
            file.seek(SeekFrom::Start(header_offset)).at(|| location.clone())?;
            self.offset = header_offset;
            return Ok((digest, size));
        }
        let name = self.blob_name(kind, &digest);
        let header = Self::header(name.as_bytes(), size, b'0');
        self.out.flush().at(|| location.clone())?;
        let file = self.out.get_mut();
        file.seek(SeekFrom::Start(header_offset)).at(|| location.clone())?;
        file.write_all(&header).at(|| location.clone())?;
        file.seek(SeekFrom::Start(self.offset)).at(|| location.clone())?;
        self.written.insert(digest.clone());
        Ok((digest, size))
    }

    fn commit(mut self, finish: Finish) -> Result<()> {
        match self.format {
            OutputFormat::DockerArchive => {
                let repo_tags: Value = match &finish.tag {
                    Some(tag) => json!([tag]),
                    None => Value::Null,
                };
                let manifest = json!([{
                    "Config": format!("{}.json", finish.config.hex()),
                    "RepoTags": repo_tags,
                    "Layers": finish.layers.iter().map(|d| format!("{}.tar", d.hex())).collect::<Vec<_>>(),
                }]);
                let bytes = serde_json::to_vec(&manifest).map_err(|e| Error::io(self.location(), e.into()))?;
                self.member_bytes("manifest.json", &bytes)?;
            }
            _ => {
                let mut descriptor = finish.manifest_descriptor;
                if let Some(tag) = &finish.tag {
                    descriptor["annotations"] = json!({ "org.opencontainers.image.ref.name": tag });
                }
                let index = json!({"schemaVersion": 2, "mediaType": crate::read::OCI_INDEX_MEDIA_TYPE, "manifests": [descriptor]});
                let bytes = serde_json::to_vec(&index).map_err(|e| Error::io(self.location(), e.into()))?;
                self.member_bytes("index.json", &bytes)?;
            }
        }
        self.put(&[0u8; 2 * BLOCK])?;
        let location = self.location();
        self.out.flush().at(|| location.clone())?;
        let file =
            self.file.take().ok_or_else(|| Error::Output { location: location.clone(), reason: "archive already committed".into() })?;
        file.as_file().sync_all().at(|| location.clone())?;
        file.persist(&self.dest).map_err(|e| Error::io(location, e.error))?;
        Ok(())
    }
}
