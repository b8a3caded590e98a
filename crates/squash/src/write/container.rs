//! What every output container shares: the kinds of blob, the documents that close an output,
//! the member names and headers of the archives squash writes, a writer that blames the output
//! (not the input being copied) when a write fails, and a file that is written back as it grows.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::lock::TEMP_MARK;
use super::output::OutputFormat;
use crate::digest::Digest;
use crate::error::{Error, Location};
use crate::layer::tarstream::{padding, BLOCK};
use crate::read::descriptor::REF_NAME;
use crate::read::media::OCI_INDEX;

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
    pub(super) fn blobs(&self) -> Vec<Digest> {
        let manifest = self
            .manifest_descriptor
            .get("digest")
            .and_then(Value::as_str)
            .and_then(|d| d.parse::<Digest>().ok());
        let mut all: Vec<Digest> = self
            .layers
            .iter()
            .cloned()
            .chain([self.config.clone()])
            .chain(manifest)
            .chain(self.extra_blobs.iter().cloned())
            .collect();
        all.sort_by_key(|a| a.to_string());
        all.dedup();
        all
    }
}

/// Writes into `W`, naming `dest` in the error when a write fails (a full disk is the output's
/// fault, not the input layer's being copied).
pub(super) struct OutputWriter<'d, W> {
    pub inner: W,
    pub dest: &'d Path,
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

/// The directory `path` is in.
pub(super) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The prefix of temporaries beside a new destination: `.NAME.squash-tmp`.
pub(super) fn temp_prefix(path: &Path) -> String {
    format!(
        ".{}{TEMP_MARK}",
        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    )
}

/// The name of a blob's member in an archive of `format`.
pub(super) fn member_name(format: OutputFormat, kind: BlobKind, digest: &Digest) -> String {
    match (format, kind) {
        (OutputFormat::DockerArchive, BlobKind::Config) => format!("{}.json", digest.hex()),
        (OutputFormat::DockerArchive, _) => format!("{}.tar", digest.hex()),
        _ => format!("blobs/sha256/{}", digest.hex()),
    }
}

/// The last member of an archive of `format`: `manifest.json` or `index.json`, and its bytes.
pub(super) fn closing_document(
    format: OutputFormat,
    finish: Finish,
) -> std::result::Result<(&'static str, Vec<u8>), serde_json::Error> {
    match format {
        OutputFormat::DockerArchive => {
            let repo_tags: Value = match &finish.tag {
                Some(tag) => json!([tag]),
                None => Value::Null,
            };
            let manifest = json!([{
                "Config": format!("{}.json", finish.config.hex()),
                "RepoTags": repo_tags,
                "Layers": finish.layers.iter().map(|d| format!("{}.tar", d.hex()))
                    .collect::<Vec<_>>(),
            }]);
            Ok(("manifest.json", serde_json::to_vec(&manifest)?))
        }
        _ => {
            let mut descriptor = finish.manifest_descriptor;
            if let Some(tag) = &finish.tag {
                descriptor["annotations"] = json!({ (REF_NAME): tag });
            }
            let index =
                json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor]});
            Ok(("index.json", serde_json::to_vec(&index)?))
        }
    }
}

/// The `oci-layout` file of every OCI layout and archive written.
pub(super) const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// A whole member holding `bytes`: header, data, padding.
pub(super) fn small_member(name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut out = member_header(name.as_bytes(), bytes.len() as u64, b'0').to_vec();
    out.extend_from_slice(bytes);
    out.resize(out.len() + padding(bytes.len() as u64) as usize, 0);
    out
}

/// The members an archive of `format` begins with: an OCI archive's `blobs/` directories and
/// `oci-layout`; nothing for a docker archive.
pub(super) fn opening_members(format: OutputFormat) -> Vec<u8> {
    if format != OutputFormat::OciArchive {
        return Vec::new();
    }
    let mut out = member_header(b"blobs/", 0, b'5').to_vec();
    out.extend_from_slice(&member_header(b"blobs/sha256/", 0, b'5'));
    out.extend(small_member("oci-layout", OCI_LAYOUT));
    out
}

/// The members an archive ends with: the closing document (see [`closing_document`]) and the
/// end-of-archive blocks.
pub(super) fn closing_members(
    format: OutputFormat,
    finish: Finish,
) -> std::result::Result<Vec<u8>, serde_json::Error> {
    let (name, bytes) = closing_document(format, finish)?;
    let mut out = small_member(name, &bytes);
    out.extend_from_slice(&[0u8; 2 * BLOCK]);
    Ok(out)
}

/// A member header of an archive squash writes: mode 0644 (0755 for a directory), owner 0:0,
/// mtime 0, so that the archive is reproducible.
pub(super) fn member_header(name: &[u8], size: u64, typeflag: u8) -> [u8; BLOCK] {
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

/// Where a streamed output's errors point.
pub(super) const STDOUT: &str = "<standard output>";
