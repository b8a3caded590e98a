//! Output containers: OCI layout directories (new or existing), OCI archives and `docker save`
//! tarballs. Everything is written under a temporary name next to the destination and put in
//! place by [`Target::commit`]; dropping an uncommitted target removes what it wrote. Files get
//! mode 0644 and directories 0755, less the umask. No output may touch a file of an input.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};

use serde_json::{json, Value};
use tempfile::{NamedTempFile, TempDir};

use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, IoContext, Location, Result};
use crate::layer::tarstream::{padding, BLOCK};
use crate::write::lock::{sweep, temp_dir, temp_file, DirLock, LockWait, TEMP_MARK};

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

impl std::fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OutputFormat::OciLayout => "oci",
            OutputFormat::OciArchive => "oci-archive",
            OutputFormat::DockerArchive => "docker-archive",
        })
    }
}

impl std::str::FromStr for OutputFormat {
    type Err = crate::error::ParseError;
    fn from_str(s: &str) -> std::result::Result<OutputFormat, crate::error::ParseError> {
        parse_format(s).map_err(|message| crate::error::ParseError::new("output format", s, message))
    }
}

fn parse_format(s: &str) -> std::result::Result<OutputFormat, String> {
    match s {
        "oci" | "oci-layout" => Ok(OutputFormat::OciLayout),
        "oci-archive" => Ok(OutputFormat::OciArchive),
        "docker-archive" | "docker" => Ok(OutputFormat::DockerArchive),
        other => Err(format!("unknown output format `{other}` (expected oci, oci-archive or docker-archive)")),
    }
}

/// Where and how to write the new image.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Output {
    /// Destination file or directory.
    pub path: PathBuf,
    /// Container format.
    pub format: OutputFormat,
    /// Tag (OCI `org.opencontainers.image.ref.name`) or `NAME:TAG` (docker `RepoTags`).
    pub tag: Option<String>,
}

impl Output {
    /// An output at `path` in `format`, untagged.
    ///
    /// ```
    /// use squash::{Output, OutputFormat};
    ///
    /// let output = Output::new("out", OutputFormat::OciLayout).with_tag("app");
    /// assert_eq!(output.tag.as_deref(), Some("app"));
    /// ```
    pub fn new(path: impl Into<PathBuf>, format: OutputFormat) -> Output {
        Output { path: path.into(), format, tag: None }
    }

    /// This output with `tag`: an OCI `org.opencontainers.image.ref.name`, or `NAME:TAG` for a
    /// docker archive's `RepoTags`.
    pub fn with_tag(mut self, tag: impl Into<String>) -> Output {
        self.tag = Some(tag.into());
        self
    }

    /// Parses `oci:PATH[:TAG]`, `oci-archive:PATH[:TAG]`, `docker-archive:PATH[:NAME:TAG]`, or a
    /// bare path written in `default` format.
    pub fn parse(s: &str, default: OutputFormat) -> std::result::Result<Output, crate::error::ParseError> {
        parse_output(s, default).map_err(|message| crate::error::ParseError::new("output", s, message))
    }
}

fn parse_output(s: &str, default: OutputFormat) -> std::result::Result<Output, String> {
    for (prefix, format) in
        [("oci-archive:", OutputFormat::OciArchive), ("oci:", OutputFormat::OciLayout), ("docker-archive:", OutputFormat::DockerArchive)]
    {
        if let Some(rest) = s.strip_prefix(prefix) {
            let (path, tag) = match rest.split_once(':') {
                Some((p, t)) => (p, Some(t.to_string())),
                None => (rest, None),
            };
            if path.is_empty() {
                return Err(format!("`{s}` names no path"));
            }
            if tag.as_deref() == Some("") {
                return Err(format!("`{s}` ends with an empty tag; give one after the colon or drop the colon"));
            }
            if path == "-" {
                return Err(format!(
                    "`{s}`: `-` is standard output, which is not a file: write there with `SquashPlan::execute_to_writer`"
                ));
            }
            return Ok(Output { path: PathBuf::from(path), format, tag });
        }
    }
    if s.is_empty() {
        return Err("empty output path".into());
    }
    if s == "-" {
        return Err("`-` is standard output, which is not a file: write there with `SquashPlan::execute_to_writer`".into());
    }
    if let Some((name, what)) = crate::read::remote_transport(s) {
        return Err(format!(
            "`{s}`: the `{name}` transport ({what}) is not written by squash, which writes files and layouts only: \
             write a file (`-o app.tar`) and load it with `docker load -i app.tar`, `podman load -i app.tar` \
             or `skopeo copy docker-archive:app.tar {s}`"
        ));
    }
    Ok(Output { path: PathBuf::from(s), format: default, tag: None })
}

/// An output being written.
pub(crate) enum Target<'a> {
    Layout(LayoutTarget<'a>),
    Archive(ArchiveTarget),
    Stream(StreamTarget<'a>),
}

/// An archive written front to back into a stream that cannot seek (a pipe into `docker load`).
pub(crate) struct StreamTarget<'a> {
    out: &'a mut dyn Write,
    format: OutputFormat,
    /// Where blobs whose digest is not known in advance are spooled.
    tmp_dir: Option<PathBuf>,
    written: BTreeSet<Digest>,
    /// Whether the members that open the archive (an OCI archive's `oci-layout`) are out.
    opened: bool,
}

/// A layout being written: a new one built in a temporary directory beside its destination, or
/// an existing one whose new blobs are staged under temporary names until the commit.
pub(crate) struct LayoutTarget<'a> {
    root: PathBuf,
    /// The temporary directory of a new layout, and the handle that keeps it locked.
    fresh: Option<(TempDir, File)>,
    /// New blobs for an existing layout, not yet under their names.
    staged: BTreeMap<Digest, NamedTempFile>,
    wait: LockWait<'a>,
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

/// The prefix of temporaries beside a new destination: `.NAME.squash-tmp`.
fn temp_prefix(path: &Path) -> String {
    format!(".{}{TEMP_MARK}", path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
}

/// `path` with symlinks and `..` resolved, also when its last components do not exist yet.
fn resolve(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(path)).unwrap_or_else(|_| path.to_path_buf())
    };
    let mut existing = absolute.clone();
    let mut missing: Vec<std::ffi::OsString> = Vec::new();
    loop {
        if let Ok(mut resolved) = fs::canonicalize(&existing) {
            for part in missing.iter().rev() {
                match Path::new(part).components().next() {
                    Some(Component::ParentDir) => {
                        resolved.pop();
                    }
                    Some(Component::Normal(name)) => resolved.push(name),
                    _ => {}
                }
            }
            return resolved;
        }
        match existing.file_name() {
            Some(name) => missing.push(name.to_os_string()),
            None if existing.ends_with("..") => missing.push("..".into()),
            None => {}
        }
        if !existing.pop() {
            return absolute;
        }
    }
}

/// Refuses an output that would create, replace or rename over a file of an input.
fn check_not_inside_inputs(output: &Output, inputs: &[Input<'_>]) -> Result<()> {
    let dest = resolve(&output.path);
    // An input read through a temporary copy (a pipe, a compressed archive) is checked under the
    // path it was given as, too.
    for (input, path) in inputs.iter().flat_map(|i| [(i, i.path), (i, i.source)]) {
        let Ok(source) = fs::canonicalize(path) else { continue };
        let location = || Location::file(&output.path);
        if dest == source {
            let same_layout = output.format == OutputFormat::OciLayout && source.is_dir() && source.join("oci-layout").is_file();
            if !same_layout {
                return Err(Error::Output { location: location(), reason: format!("would overwrite the input `{}`", path.display()) });
            }
            if output.tag.is_some() && output.tag.as_deref() == input.tag {
                return Err(Error::Output {
                    location: location(),
                    reason: format!(
                        "would replace the input's own tag `{}` in `{}`; write under another tag",
                        input.tag.unwrap_or_default(),
                        path.display()
                    ),
                });
            }
        } else if dest.starts_with(&source) {
            return Err(Error::Output {
                location: location(),
                reason: format!("is inside the input `{}`; writing there would change the input", path.display()),
            });
        }
    }
    Ok(())
}

/// An image read by the run, which its output must not touch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Input<'p> {
    /// Where it is read from.
    pub path: &'p Path,
    /// The path it was given as: `path`, unless it is read through a temporary copy.
    pub source: &'p Path,
    /// The tag the image was chosen by in its layout, if any.
    pub tag: Option<&'p str>,
}

impl<'p> Input<'p> {
    /// The input `image`.
    pub(crate) fn image(image: &'p crate::read::Image) -> Input<'p> {
        Input { path: image.path(), source: image.source(), tag: image.name() }
    }

    /// The input `index`.
    pub(crate) fn index(index: &'p crate::read::ImageIndex) -> Input<'p> {
        Input { path: index.path(), source: index.source(), tag: index.name() }
    }
}

/// Writes into `W`, naming `dest` in the error when a write fails (a full disk is the output's
/// fault, not the input layer's being copied).
struct OutputWriter<'d, W> {
    inner: W,
    dest: &'d Path,
}

impl<W: Write> OutputWriter<'_, W> {
    fn wrap(&self, e: std::io::Error) -> std::io::Error {
        if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            return e;
        }
        Error::Io { location: Location::file(self.dest), source: e }.into_io()
    }
}

impl<W: Write> Write for OutputWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf).map_err(|e| self.wrap(e))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush().map_err(|e| self.wrap(e))
    }
}

impl<'a> Target<'a> {
    pub(crate) fn create(output: &Output, inputs: &[Input<'_>], wait: LockWait<'a>) -> Result<Target<'a>> {
        let location = Location::file(&output.path);
        check_not_inside_inputs(output, inputs)?;
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
                    let root = output.path.clone();
                    {
                        let _lock = DirLock::acquire(&root, wait)?;
                        sweep(&root.join("blobs/sha256"), TEMP_MARK);
                        sweep(&root, TEMP_MARK);
                    }
                    return Ok(Target::Layout(LayoutTarget { root, fresh: None, staged: BTreeMap::new(), wait }));
                }
                let fresh = {
                    let _lock = DirLock::acquire_if_possible(&parent, wait)?.inspect(|_| {
                        sweep(&parent, &temp_prefix(&output.path));
                    });
                    temp_dir(&parent, &format!("{}-", temp_prefix(&output.path)))?
                };
                fs::create_dir_all(fresh.0.path().join("blobs/sha256")).at(|| Location::file(fresh.0.path()))?;
                Ok(Target::Layout(LayoutTarget { root: output.path.clone(), fresh: Some(fresh), staged: BTreeMap::new(), wait }))
            }
            format => {
                if output.path.is_dir() {
                    return Err(Error::Output { location, reason: "is a directory; an archive output needs a file path".into() });
                }
                let file = {
                    let _lock = DirLock::acquire_if_possible(&parent, wait)?.inspect(|_| {
                        sweep(&parent, &temp_prefix(&output.path));
                    });
                    temp_file(&parent, &format!("{}-", temp_prefix(&output.path)))?
                };
                let handle = file.reopen().at(|| Location::file(file.path()))?;
                let mut target = ArchiveTarget {
                    dest: output.path.clone(),
                    file: Some(file),
                    out: BufWriter::with_capacity(1 << 20, handle),
                    offset: 0,
                    format,
                    written: BTreeSet::new(),
                };
                target.put(&opening_members(format))?;
                Ok(Target::Archive(target))
            }
        }
    }

    /// A target that writes an archive of `format` into `out`.
    pub(crate) fn stream(format: OutputFormat, out: &'a mut dyn Write, tmp_dir: Option<PathBuf>) -> Target<'a> {
        Target::Stream(StreamTarget { out, format, tmp_dir, written: BTreeSet::new(), opened: false })
    }

    /// Whether the output already holds this blob.
    pub(crate) fn has_blob(&self, digest: &Digest) -> bool {
        match self {
            Target::Stream(t) => t.written.contains(digest),
            Target::Layout(t) => {
                t.staged.contains_key(digest)
                    || t.work().join("blobs/sha256").join(digest.hex()).is_file()
                    || t.root.join("blobs/sha256").join(digest.hex()).is_file()
            }
            Target::Archive(t) => t.written.contains(digest),
        }
    }

    /// Writes a blob produced by `write`; when `known` (digest and size) is given the result
    /// must have that digest.
    pub(crate) fn write_blob(
        &mut self,
        known: Option<(&Digest, u64)>,
        kind: BlobKind,
        write: &mut dyn FnMut(&mut dyn Write) -> Result<()>,
    ) -> Result<(Digest, u64)> {
        let (digest, size) = match self {
            Target::Layout(t) => t.write_blob(write)?,
            Target::Archive(t) => t.write_blob(kind, write)?,
            Target::Stream(t) => t.write_blob(kind, known, write)?,
        };
        if let Some((expected, _)) = known {
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
            Target::Stream(t) => t.commit(finish),
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
    /// Every other blob the output refers to (an index's images).
    pub extra_blobs: Vec<Digest>,
}

impl Finish {
    /// Every blob the new image refers to: layers, config and (for layouts) the manifest.
    fn blobs(&self) -> Vec<Digest> {
        let manifest = self.manifest_descriptor.get("digest").and_then(Value::as_str).and_then(|d| d.parse::<Digest>().ok());
        let mut all: Vec<Digest> =
            self.layers.iter().cloned().chain([self.config.clone()]).chain(manifest).chain(self.extra_blobs.iter().cloned()).collect();
        all.sort_by_key(|a| a.to_string());
        all.dedup();
        all
    }
}

impl LayoutTarget<'_> {
    fn work(&self) -> PathBuf {
        match &self.fresh {
            Some((t, _)) => t.path().to_path_buf(),
            None => self.root.clone(),
        }
    }

    fn write_blob(&mut self, write: &mut dyn FnMut(&mut dyn Write) -> Result<()>) -> Result<(Digest, u64)> {
        let dir = self.work().join("blobs/sha256");
        fs::create_dir_all(&dir).at(|| Location::file(&dir))?;
        let temp = if self.fresh.is_some() {
            temp_file(&dir, &format!("{TEMP_MARK}-"))?
        } else {
            // Under the layout's lock, so that a sweep never sees it unlocked.
            let _lock = DirLock::acquire(&self.root, self.wait)?;
            temp_file(&dir, &format!("{TEMP_MARK}-"))?
        };
        let handle = temp.reopen().at(|| Location::file(temp.path()))?;
        let mut writer = HashingWriter::new(OutputWriter { inner: BufWriter::with_capacity(1 << 20, handle), dest: &self.root });
        write(&mut writer)?;
        let (buffered, digest, size) = writer.finish();
        let file = buffered.inner.into_inner().map_err(|e| Error::io(Location::file(&self.root), e.into_error()))?;
        file.sync_all().at(|| Location::file(&self.root))?;
        let final_path = dir.join(digest.hex());
        if final_path.exists() || self.staged.contains_key(&digest) {
            return Ok((digest, size));
        }
        if self.fresh.is_some() {
            temp.persist(&final_path).map_err(|e| Error::io(Location::file(&final_path), e.error))?;
        } else {
            self.staged.insert(digest.clone(), temp);
        }
        Ok((digest, size))
    }

    fn commit(mut self, finish: Finish) -> Result<()> {
        let Some((temp, dir_lock)) = self.fresh.take() else {
            let staged = std::mem::take(&mut self.staged).into_iter().map(|(d, t)| (d, Staged::Temp(t))).collect();
            return add_to_layout(&self.root, staged, &finish, self.wait);
        };
        let index = json!({"schemaVersion": 2, "mediaType": crate::read::OCI_INDEX_MEDIA_TYPE, "manifests": []});
        let index = with_descriptor(index, &finish, &self.root)?;
        write_file_atomically(temp.path(), "index.json", &index)?;
        write_file_atomically(temp.path(), "oci-layout", OCI_LAYOUT)?;
        let parent = parent_dir(&self.root);
        let parent_lock = DirLock::acquire_if_possible(&parent, self.wait)?;
        if !self.root.exists() {
            fs::rename(temp.path(), &self.root).at(|| Location::file(&self.root))?;
            let _ = temp.keep();
            drop(dir_lock);
            return Ok(());
        }
        drop(parent_lock);
        // Another run created the layout meanwhile: add this image to it.
        if !self.root.join("oci-layout").is_file() {
            return Err(Error::Output {
                location: Location::file(&self.root),
                reason: "appeared while this run was writing and is not an OCI image layout".into(),
            });
        }
        let blobs = temp.path().join("blobs/sha256");
        let staged = finish.blobs().into_iter().map(|d| (d.clone(), Staged::Path(blobs.join(d.hex())))).collect();
        add_to_layout(&self.root, staged, &finish, self.wait)
    }
}

/// A blob waiting to be put into a layout.
enum Staged {
    Temp(NamedTempFile),
    Path(PathBuf),
}

/// Puts staged blobs into the existing layout at `root` and adds the image to its `index.json`,
/// all under the layout's lock. On failure the blobs put in are removed again.
fn add_to_layout(root: &Path, staged: BTreeMap<Digest, Staged>, finish: &Finish, wait: LockWait<'_>) -> Result<()> {
    let _lock = DirLock::acquire(root, wait)?;
    let blobs = root.join("blobs/sha256");
    let mut put: Vec<PathBuf> = Vec::new();
    let result = (|| {
        for (digest, blob) in staged {
            let final_path = blobs.join(digest.hex());
            if final_path.exists() {
                continue;
            }
            match blob {
                Staged::Temp(temp) => {
                    temp.persist(&final_path).map_err(|e| Error::io(Location::file(&final_path), e.error))?;
                }
                Staged::Path(path) => {
                    if !path.exists() {
                        continue;
                    }
                    fs::rename(&path, &final_path).at(|| Location::file(&final_path))?;
                }
            }
            put.push(final_path);
        }
        for digest in finish.blobs() {
            if !blobs.join(digest.hex()).is_file() {
                return Err(Error::Output {
                    location: Location::file(root),
                    reason: format!("blob {digest} that the new image needs is gone (removed by another program meanwhile?)"),
                });
            }
        }
        let index_path = root.join("index.json");
        let raw = fs::read(&index_path).at(|| Location::file(&index_path))?;
        let index: Value =
            serde_json::from_slice(&raw).map_err(|e| Error::invalid(Location::file(&index_path), "image index", e.to_string()))?;
        let bytes = with_descriptor(index, finish, root)?;
        write_file_atomically(root, "index.json", &bytes)
    })();
    if result.is_err() {
        for path in put {
            let _ = fs::remove_file(path);
        }
    }
    result
}

/// `index` with the new manifest's descriptor added (replacing an entry of the same tag), as bytes.
fn with_descriptor(mut index: Value, finish: &Finish, root: &Path) -> Result<Vec<u8>> {
    let index_path = root.join("index.json");
    let mut descriptor = finish.manifest_descriptor.clone();
    if let Some(tag) = &finish.tag {
        descriptor["annotations"] = json!({ "org.opencontainers.image.ref.name": tag });
    }
    if !index.get("manifests").is_some_and(Value::is_array) {
        index["manifests"] = json!([]);
    }
    let Some(Value::Array(manifests)) = index.get_mut("manifests") else {
        return Err(Error::invalid(Location::file(&index_path), "image index", "no manifests"));
    };
    if let Some(tag) = &finish.tag {
        manifests.retain(|m| m.pointer("/annotations/org.opencontainers.image.ref.name").and_then(Value::as_str) != Some(tag));
    }
    manifests.push(descriptor);
    serde_json::to_vec(&index).map_err(|e| Error::io(Location::file(&index_path), e.into()))
}

fn write_file_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let dest = dir.join(name);
    let mut temp = temp_file(dir, &format!("{TEMP_MARK}-"))?;
    temp.write_all(bytes).at(|| Location::file(&dest))?;
    temp.as_file().sync_all().at(|| Location::file(&dest))?;
    temp.persist(&dest).map_err(|e| Error::io(Location::file(&dest), e.error))?;
    Ok(())
}

/// The name of a blob's member in an archive of `format`.
fn member_name(format: OutputFormat, kind: BlobKind, digest: &Digest) -> String {
    match (format, kind) {
        (OutputFormat::DockerArchive, BlobKind::Config) => format!("{}.json", digest.hex()),
        (OutputFormat::DockerArchive, _) => format!("{}.tar", digest.hex()),
        _ => format!("blobs/sha256/{}", digest.hex()),
    }
}

/// The last member of an archive of `format`: `manifest.json` or `index.json`, and its bytes.
fn closing_document(format: OutputFormat, finish: Finish) -> std::result::Result<(&'static str, Vec<u8>), serde_json::Error> {
    match format {
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
            Ok(("manifest.json", serde_json::to_vec(&manifest)?))
        }
        _ => {
            let mut descriptor = finish.manifest_descriptor;
            if let Some(tag) = &finish.tag {
                descriptor["annotations"] = json!({ "org.opencontainers.image.ref.name": tag });
            }
            let index = json!({"schemaVersion": 2, "mediaType": crate::read::OCI_INDEX_MEDIA_TYPE, "manifests": [descriptor]});
            Ok(("index.json", serde_json::to_vec(&index)?))
        }
    }
}

/// The `oci-layout` file of every OCI layout and archive written.
const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// A whole member holding `bytes`: header, data, padding.
fn small_member(name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut out = ArchiveTarget::header(name.as_bytes(), bytes.len() as u64, b'0').to_vec();
    out.extend_from_slice(bytes);
    out.resize(out.len() + padding(bytes.len() as u64) as usize, 0);
    out
}

/// The members an archive of `format` begins with: an OCI archive's `blobs/` directories and
/// `oci-layout`; nothing for a docker archive.
fn opening_members(format: OutputFormat) -> Vec<u8> {
    if format != OutputFormat::OciArchive {
        return Vec::new();
    }
    let mut out = ArchiveTarget::header(b"blobs/", 0, b'5').to_vec();
    out.extend_from_slice(&ArchiveTarget::header(b"blobs/sha256/", 0, b'5'));
    out.extend(small_member("oci-layout", OCI_LAYOUT));
    out
}

/// The members an archive ends with: the closing document (see [`closing_document`]) and the
/// end-of-archive blocks.
fn closing_members(format: OutputFormat, finish: Finish) -> std::result::Result<Vec<u8>, serde_json::Error> {
    let (name, bytes) = closing_document(format, finish)?;
    let mut out = small_member(name, &bytes);
    out.extend_from_slice(&[0u8; 2 * BLOCK]);
    Ok(out)
}

/// Where a streamed output's errors point.
const STDOUT: &str = "<standard output>";

impl StreamTarget<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes).at(|| Location::file(STDOUT))
    }

    fn member(&mut self, name: &str, size: u64, typeflag: u8) -> Result<()> {
        self.put(&ArchiveTarget::header(name.as_bytes(), size, typeflag))
    }

    fn opening(&mut self) -> Result<()> {
        if std::mem::replace(&mut self.opened, true) {
            return Ok(());
        }
        self.put(&opening_members(self.format))
    }

    fn write_blob(
        &mut self,
        kind: BlobKind,
        known: Option<(&Digest, u64)>,
        write: &mut dyn FnMut(&mut dyn Write) -> Result<()>,
    ) -> Result<(Digest, u64)> {
        self.opening()?;
        let (digest, size) = match known {
            Some((digest, size)) => {
                // Known in advance: the member begins at once and the bytes pass straight through.
                self.member(&member_name(self.format, kind, digest), size, b'0')?;
                let dest = PathBuf::from(STDOUT);
                let mut writer = HashingWriter::new(OutputWriter { inner: &mut *self.out, dest: &dest });
                write(&mut writer)?;
                let (_, actual, written) = writer.finish();
                if written != size || actual != *digest {
                    return Err(Error::DigestMismatch {
                        location: Location::file(STDOUT).part("blob copied to the output"),
                        expected: digest.clone(),
                        actual,
                    });
                }
                (actual, written)
            }
            None => {
                // Spooled first: the member's name and size are its digest and length.
                let dir = self.tmp_dir.clone().unwrap_or_else(std::env::temp_dir);
                let spool = tempfile::tempfile_in(&dir).at(|| Location::file(&dir))?;
                let mut writer = HashingWriter::new(OutputWriter { inner: BufWriter::with_capacity(1 << 20, &spool), dest: &dir });
                write(&mut writer)?;
                let (buffered, digest, size) = writer.finish();
                buffered.inner.into_inner().map_err(|e| Error::io(Location::file(&dir), e.into_error()))?;
                if self.written.contains(&digest) {
                    return Ok((digest, size));
                }
                self.member(&member_name(self.format, kind, &digest), size, b'0')?;
                let mut reader = &spool;
                reader.seek(SeekFrom::Start(0)).at(|| Location::file(&dir))?;
                let dest = PathBuf::from(STDOUT);
                let copied =
                    std::io::copy(&mut reader, &mut OutputWriter { inner: &mut *self.out, dest: &dest }).at(|| Location::file(&dir))?;
                if copied != size {
                    return Err(Error::Output { location: Location::file(&dir), reason: "the spooled blob changed size".into() });
                }
                (digest, size)
            }
        };
        self.put(&vec![0u8; padding(size) as usize])?;
        self.written.insert(digest.clone());
        Ok((digest, size))
    }

    fn commit(mut self, finish: Finish) -> Result<()> {
        self.opening()?;
        let closing = closing_members(self.format, finish).map_err(|e| Error::io(Location::file(STDOUT), e.into()))?;
        self.put(&closing)?;
        self.out.flush().at(|| Location::file(STDOUT))
    }
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

    fn write_blob(&mut self, kind: BlobKind, write: &mut dyn FnMut(&mut dyn Write) -> Result<()>) -> Result<(Digest, u64)> {
        let header_offset = self.offset;
        let placeholder = member_name(self.format, kind, &Digest::of(b""));
        self.put(&Self::header(placeholder.as_bytes(), 0, b'0'))?;
        let location = self.location();
        let mut writer = HashingWriter::new(OutputWriter { inner: &mut self.out, dest: &self.dest });
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
        let name = member_name(self.format, kind, &digest);
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
        let closing = closing_members(self.format, finish).map_err(|e| Error::io(self.location(), e.into()))?;
        self.put(&closing)?;
        let location = self.location();
        self.out.flush().at(|| location.clone())?;
        let file =
            self.file.take().ok_or_else(|| Error::Output { location: location.clone(), reason: "archive already committed".into() })?;
        file.as_file().sync_all().at(|| location.clone())?;
        file.persist(&self.dest).map_err(|e| Error::io(location, e.error))?;
        Ok(())
    }
}
