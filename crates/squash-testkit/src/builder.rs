//! Writing test layers and images with the `tar` crate and plain JSON.

use std::fs;
use std::io::Write;
use std::path::Path;

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Builds one layer tar, entry by entry.
#[derive(Default)]
pub struct LayerBuilder {
    builder: Option<tar::Builder<Vec<u8>>>,
    mtime: u64,
}

fn header(
    kind: tar::EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    size: u64,
) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(uid);
    h.set_gid(gid);
    h.set_mtime(mtime);
    h.set_size(size);
    h
}

impl LayerBuilder {
    /// An empty layer.
    pub fn new() -> Self {
        LayerBuilder { builder: Some(tar::Builder::new(Vec::new())), mtime: 1_600_000_000 }
    }

    fn b(&mut self) -> &mut tar::Builder<Vec<u8>> {
        self.builder.get_or_insert_with(|| tar::Builder::new(Vec::new()))
    }

    /// Sets the mtime of the following entries.
    pub fn mtime(&mut self, mtime: u64) -> &mut Self {
        self.mtime = mtime;
        self
    }

    /// A regular file.
    pub fn file(&mut self, path: impl AsRef<[u8]>, content: &[u8]) -> &mut Self {
        self.file_with(path, content, 0o644, 0, 0, &[])
    }

    /// A regular file with mode, owner and xattrs.
    pub fn file_with(
        &mut self,
        path: impl AsRef<[u8]>,
        content: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
        xattrs: &[(&str, &[u8])],
    ) -> &mut Self {
        let mtime = self.mtime;
        if !xattrs.is_empty() {
            let records: Vec<(String, &[u8])> =
                xattrs.iter().map(|(k, v)| (format!("SCHILY.xattr.{k}"), *v)).collect();
            self.b()
                .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), *v)))
                .expect("pax");
        }
        let mut h = header(tar::EntryType::Regular, mode, uid, gid, mtime, content.len() as u64);
        append_path(self.b(), &mut h, path.as_ref(), content);
        self
    }

    /// A directory.
    pub fn dir(&mut self, path: impl AsRef<[u8]>) -> &mut Self {
        self.dir_with(path, 0o755, 0, 0)
    }

    /// A directory with mode and owner.
    pub fn dir_with(&mut self, path: impl AsRef<[u8]>, mode: u32, uid: u64, gid: u64) -> &mut Self {
        let mtime = self.mtime;
        let mut h = header(tar::EntryType::Directory, mode, uid, gid, mtime, 0);
        append_path(self.b(), &mut h, path.as_ref(), &[]);
        self
    }

    /// A symbolic link.
    pub fn symlink(&mut self, path: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> &mut Self {
        let mtime = self.mtime;
        let mut h = header(tar::EntryType::Symlink, 0o777, 0, 0, mtime, 0);
        append_link(self.b(), &mut h, path.as_ref(), target.as_ref());
        self
    }

    /// A hard link to an earlier entry.
    pub fn hardlink(&mut self, path: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> &mut Self {
        let mtime = self.mtime;
        let mut h = header(tar::EntryType::Link, 0o644, 0, 0, mtime, 0);
        append_link(self.b(), &mut h, path.as_ref(), target.as_ref());
        self
    }

    /// A hard link to an earlier entry, its header carrying the file's mode and owner (as
    /// Docker's and BuildKit's tar writers fill it).
    pub fn hardlink_with(
        &mut self,
        path: impl AsRef<[u8]>,
        target: impl AsRef<[u8]>,
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> &mut Self {
        let mtime = self.mtime;
        let mut h = header(tar::EntryType::Link, mode, uid, gid, mtime, 0);
        append_link(self.b(), &mut h, path.as_ref(), target.as_ref());
        self
    }

    /// A named pipe.
    pub fn fifo(&mut self, path: impl AsRef<[u8]>) -> &mut Self {
        let mtime = self.mtime;
        let mut h = header(tar::EntryType::Fifo, 0o600, 0, 0, mtime, 0);
        append_path(self.b(), &mut h, path.as_ref(), &[]);
        self
    }

    /// A character device.
    pub fn char_device(&mut self, path: impl AsRef<[u8]>, major: u32, minor: u32) -> &mut Self {
        let mtime = self.mtime;
        let mut h = header(tar::EntryType::Char, 0o666, 0, 0, mtime, 0);
        h.set_device_major(major).expect("major");
        h.set_device_minor(minor).expect("minor");
        append_path(self.b(), &mut h, path.as_ref(), &[]);
        self
    }

    /// A whiteout for `path` (written as `dir/.wh.name`).
    pub fn whiteout(&mut self, path: impl AsRef<[u8]>) -> &mut Self {
        let path = path.as_ref();
        let (dir, name) = match path.iter().rposition(|&b| b == b'/') {
            Some(i) => (&path[..=i], &path[i + 1..]),
            None => (&b""[..], path),
        };
        let marker = [dir, b".wh.", name].concat();
        self.file(marker, b"")
    }

    /// An opaque whiteout in directory `dir`.
    pub fn opaque(&mut self, dir: impl AsRef<[u8]>) -> &mut Self {
        let dir = dir.as_ref();
        let marker = if dir.is_empty() {
            b".wh..wh..opq".to_vec()
        } else {
            [dir, b"/.wh..wh..opq"].concat()
        };
        self.file(marker, b"")
    }

    /// The finished tar.
    pub fn finish(&mut self) -> Vec<u8> {
        let builder = self.builder.take().unwrap_or_else(|| tar::Builder::new(Vec::new()));
        builder.into_inner().expect("tar")
    }
}

/// Writes a GNU `././@LongLink` header carrying `value` (a long name or link target).
fn append_gnu_long(builder: &mut tar::Builder<Vec<u8>>, kind: tar::EntryType, value: &[u8]) {
    let mut long = tar::Header::new_gnu();
    long.set_entry_type(kind);
    let mut data = value.to_vec();
    data.push(0);
    long.set_size(data.len() as u64);
    long.as_gnu_mut().expect("gnu").name[..13].copy_from_slice(b"././@LongLink");
    long.set_cksum();
    builder.append(&long, &data[..]).expect("long name");
}

/// Copies `value` into a 100-byte header field, truncated when a GNU long header carries it.
fn set_field(field: &mut [u8; 100], value: &[u8]) {
    *field = [0; 100];
    let n = value.len().min(100);
    field[..n].copy_from_slice(&value[..n]);
}

fn append_path(builder: &mut tar::Builder<Vec<u8>>, h: &mut tar::Header, path: &[u8], data: &[u8]) {
    if path.len() > 100 {
        append_gnu_long(builder, tar::EntryType::GNULongName, path);
    }
    set_field(&mut h.as_old_mut().name, path);
    h.set_cksum();
    builder.append(h, data).expect("append");
}

fn append_link(
    builder: &mut tar::Builder<Vec<u8>>,
    h: &mut tar::Header,
    path: &[u8],
    target: &[u8],
) {
    if target.len() > 100 {
        append_gnu_long(builder, tar::EntryType::GNULongLink, target);
    }
    set_field(&mut h.as_old_mut().linkname, target);
    append_path(builder, h, path, &[]);
}

/// How a test layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerCompression {
    /// Plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

impl LayerCompression {
    /// `tar` compressed this way (gzip at its fastest level, zstd at level 1).
    pub fn compress(self, tar: &[u8]) -> Vec<u8> {
        match self {
            LayerCompression::None => tar.to_vec(),
            LayerCompression::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(tar).expect("gzip");
                e.finish().expect("gzip")
            }
            LayerCompression::Zstd => zstd::encode_all(tar, 1).expect("zstd"),
        }
    }

    fn oci_media_type(self) -> &'static str {
        match self {
            LayerCompression::None => "application/vnd.oci.image.layer.v1.tar",
            LayerCompression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            LayerCompression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

#[derive(Clone)]
struct BuiltLayer {
    tar: Vec<u8>,
    blob: Vec<u8>,
    media_type: &'static str,
    /// The history step's command; `None` for a step with only a comment (`docker import`).
    created_by: Option<String>,
    comment: Option<String>,
    /// The diff_id the config states, when it is not the tar's own (a broken image).
    stated_diff_id: Option<String>,
}

/// Builds an image from layer tars and writes it in any supported container format.
pub struct ImageBuilder {
    layers: Vec<BuiltLayer>,
    empty_steps: Vec<(usize, String)>,
    compression: LayerCompression,
    /// `os`, `architecture`, `variant` of the config.
    platform: (String, String, Option<String>),
}

impl Default for ImageBuilder {
    fn default() -> Self {
        ImageBuilder::new(LayerCompression::Gzip)
    }
}

impl ImageBuilder {
    /// A builder whose layers are compressed with `compression`.
    pub fn new(compression: LayerCompression) -> Self {
        ImageBuilder {
            layers: Vec::new(),
            empty_steps: Vec::new(),
            compression,
            platform: ("linux".into(), "amd64".into(), None),
        }
    }

    /// Sets the platform the config states, `os/arch[/variant]` (default `linux/amd64`).
    pub fn platform(&mut self, platform: &str) -> &mut Self {
        let mut parts = platform.split('/');
        self.platform = (
            parts.next().unwrap_or("linux").to_string(),
            parts.next().unwrap_or("amd64").to_string(),
            parts.next().map(str::to_string),
        );
        self
    }

    /// Adds a layer made by `created_by`.
    pub fn layer(&mut self, tar: Vec<u8>, created_by: &str) -> &mut Self {
        let compression = self.compression;
        self.layer_compressed(tar, created_by, compression)
    }

    /// Adds a layer with its own compression.
    pub fn layer_compressed(
        &mut self,
        tar: Vec<u8>,
        created_by: &str,
        compression: LayerCompression,
    ) -> &mut Self {
        let blob = compression.compress(&tar);
        self.layers.push(BuiltLayer {
            tar,
            blob,
            media_type: compression.oci_media_type(),
            created_by: Some(created_by.to_string()),
            comment: None,
            stated_diff_id: None,
        });
        self
    }

    /// Adds a layer whose history step names no command, only a comment, as `docker import`
    /// writes it (`"comment": "Imported from -"`).
    pub fn imported_layer(&mut self, tar: Vec<u8>, comment: &str) -> &mut Self {
        self.layer(tar, "");
        let last = self.layers.last_mut().expect("a layer");
        (last.created_by, last.comment) = (None, Some(comment.to_string()));
        self
    }

    /// Makes the config state `diff_id` for layer `layer` instead of its tar's digest: an
    /// inconsistent image, which readers must refuse.
    pub fn state_diff_id(&mut self, layer: usize, diff_id: &str) -> &mut Self {
        self.layers[layer].stated_diff_id = Some(diff_id.to_string());
        self
    }

    /// Adds a history step that makes no layer (like `ENV`), after the layers added so far.
    pub fn empty_step(&mut self, created_by: &str) -> &mut Self {
        self.empty_steps.push((self.layers.len(), created_by.to_string()));
        self
    }

    fn config(&self) -> Vec<u8> {
        let mut history = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            for (_, step) in self.empty_steps.iter().filter(|(at, _)| *at == i) {
                history.push(json!({
                    "created": "2024-01-01T00:00:00Z",
                    "created_by": step,
                    "empty_layer": true
                }));
            }
            let mut step = json!({ "created": format!("2024-01-01T00:00:{:02}Z", i % 60) });
            if let Some(created_by) = &layer.created_by {
                step["created_by"] = json!(created_by);
            }
            if let Some(comment) = &layer.comment {
                step["comment"] = json!(comment);
            }
            history.push(step);
        }
        for (_, step) in self.empty_steps.iter().filter(|(at, _)| *at == self.layers.len()) {
            history.push(
                json!({"created": "2024-01-01T00:00:00Z", "created_by": step, "empty_layer": true}),
            );
        }
        let diff_ids: Vec<String> = self
            .layers
            .iter()
            .map(|l| l.stated_diff_id.clone().unwrap_or_else(|| sha256(&l.tar)))
            .collect();
        let mut config = json!({
            "architecture": self.platform.1,
            "os": self.platform.0,
            "config": {
                "Env": ["PATH=/usr/bin"],
                "Healthcheck": {"Test": ["CMD", "true"]},
                "OnBuild": null
            },
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history,
        });
        if let Some(variant) = &self.platform.2 {
            config["variant"] = json!(variant);
        }
        serde_json::to_vec(&config).expect("json")
    }

    fn manifest(&self, config: &[u8]) -> Vec<u8> {
        let layers: Vec<Value> = self
            .layers
            .iter()
            .map(|l| {
                json!({
                    "mediaType": l.media_type,
                    "digest": sha256(&l.blob),
                    "size": l.blob.len(),
                    "annotations": {"test.layer": "old"}
                })
            })
            .collect();
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256(config),
                "size": config.len()
            },
            "layers": layers,
        }))
        .expect("json")
    }

    /// The layer tars, uncompressed, in order.
    pub fn layer_tars(&self) -> Vec<Vec<u8>> {
        self.layers.iter().map(|l| l.tar.clone()).collect()
    }

    /// This image with its config stating `platform`.
    fn with_platform(&self, platform: &str) -> ImageBuilder {
        let mut copy = ImageBuilder {
            layers: self.layers.clone(),
            empty_steps: self.empty_steps.clone(),
            compression: self.compression,
            platform: self.platform.clone(),
        };
        copy.platform(platform);
        copy
    }

    /// Writes an OCI image layout whose `tag` names an image index of `images`, one per
    /// platform (`os/arch[/variant]`, which their configs state too), followed by an
    /// attestation manifest (platform `unknown/unknown`, as BuildKit adds) for the first.
    pub fn write_multi_platform_layout(dir: &Path, tag: &str, images: &[(&str, &ImageBuilder)]) {
        let blobs = dir.join("blobs/sha256");
        fs::create_dir_all(&blobs).expect("mkdir");
        let mut entries = Vec::new();
        for (platform, image) in images {
            let config = image.with_platform(platform).config();
            let manifest = image.manifest(&config);
            for blob in image.layers.iter().map(|l| &l.blob).chain([&config, &manifest]) {
                fs::write(blobs.join(&sha256(blob)[7..]), blob).expect("write blob");
            }
            let mut parts = platform.split('/');
            let mut p = json!({
                "os": parts.next().unwrap_or("linux"),
                "architecture": parts.next().unwrap_or("amd64")
            });
            if let Some(variant) = parts.next() {
                p["variant"] = json!(variant);
            }
            entries.push(json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": sha256(&manifest),
                "size": manifest.len(),
                "platform": p
            }));
        }
        let empty = b"{}".to_vec();
        let attestation = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256(&empty),
                "size": empty.len()
            },
            "layers": [],
        }))
        .expect("json");
        for blob in [&empty, &attestation] {
            fs::write(blobs.join(&sha256(blob)[7..]), blob).expect("write blob");
        }
        if let Some(first) = entries.first().and_then(|e| e["digest"].as_str()).map(str::to_string)
        {
            entries.push(json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": sha256(&attestation),
                "size": attestation.len(),
                "platform": {"os": "unknown", "architecture": "unknown"},
                "annotations": {
                    "vnd.docker.reference.type": "attestation-manifest",
                    "vnd.docker.reference.digest": first
                },
            }));
        }
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": entries
        }))
        .expect("json");
        fs::write(blobs.join(&sha256(&index)[7..]), &index).expect("write blob");
        fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).expect("write");
        let top = json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": sha256(&index),
            "size": index.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag}
        }]});
        fs::write(dir.join("index.json"), serde_json::to_vec(&top).expect("json")).expect("write");
    }

    /// Writes an OCI image layout directory with the image tagged `tag`.
    pub fn write_oci_layout(&self, dir: &Path, tag: &str) {
        let blobs = dir.join("blobs/sha256");
        fs::create_dir_all(&blobs).expect("mkdir");
        let config = self.config();
        let manifest = self.manifest(&config);
        for blob in self.layers.iter().map(|l| &l.blob).chain([&config, &manifest]) {
            fs::write(blobs.join(&sha256(blob)[7..]), blob).expect("write blob");
        }
        fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).expect("write");
        let entry = json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha256(&manifest),
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag}
        });
        // A layout that already holds images gets this one added under its tag.
        let mut index = fs::read(dir.join("index.json"))
            .ok()
            .and_then(|raw| serde_json::from_slice::<Value>(&raw).ok())
            .unwrap_or_else(|| json!({"schemaVersion": 2, "manifests": []}));
        if let Some(list) = index["manifests"].as_array_mut() {
            list.push(entry);
        }
        fs::write(dir.join("index.json"), serde_json::to_vec(&index).expect("json"))
            .expect("write");
    }

    /// Writes an OCI archive (a tar of the layout).
    pub fn write_oci_archive(&self, path: &Path, tag: &str) {
        let staging = tempfile_dir(path);
        self.write_oci_layout(&staging, tag);
        let mut builder = tar::Builder::new(fs::File::create(path).expect("create"));
        builder.append_dir_all(".", &staging).expect("tar");
        builder.finish().expect("tar");
        fs::remove_dir_all(&staging).expect("cleanup");
    }

    /// Writes a legacy `docker save` tarball (`<id>/layer.tar`, uncompressed layers as Docker
    /// writes them).
    pub fn write_docker_archive(&self, path: &Path, repo_tag: &str) {
        let config = self.config();
        let mut builder = tar::Builder::new(fs::File::create(path).expect("create"));
        let mut layer_paths = Vec::new();
        for layer in &self.layers {
            let id = &sha256(&layer.tar)[7..];
            let name = format!("{id}/layer.tar");
            let mut h = tar::Header::new_ustar();
            h.set_size(layer.tar.len() as u64);
            h.set_mode(0o644);
            builder.append_data(&mut h, &name, &layer.tar[..]).expect("tar");
            layer_paths.push(name);
        }
        let config_name = format!("{}.json", &sha256(&config)[7..]);
        let manifest = serde_json::to_vec(
            &json!([{"Config": config_name, "RepoTags": [repo_tag], "Layers": layer_paths}]),
        )
        .expect("json");
        for (name, bytes) in [(config_name.as_str(), &config), ("manifest.json", &manifest)] {
            let mut h = tar::Header::new_ustar();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            builder.append_data(&mut h, name, &bytes[..]).expect("tar");
        }
        builder.finish().expect("tar");
    }
}

fn tempfile_dir(near: &Path) -> std::path::PathBuf {
    let dir = near.with_extension("staging");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("mkdir");
    dir
}

/// Decompresses a layer blob by its magic bytes.
pub fn decompress(blob: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    match blob {
        [0x1f, 0x8b, ..] => {
            flate2::read::MultiGzDecoder::new(blob).read_to_end(&mut out).expect("gunzip");
        }
        [0x28, 0xb5, 0x2f, 0xfd, ..] => out = zstd::decode_all(blob).expect("unzstd"),
        _ => out = blob.to_vec(),
    }
    out
}

/// How many gzip members `blob` holds, each read to its end (RFC 1952 §2.2: members follow
/// one another).
pub fn gzip_members(blob: &[u8]) -> usize {
    use std::io::Read;
    let mut rest = blob;
    let mut members = 0;
    while !rest.is_empty() {
        let mut decoder = flate2::bufread::GzDecoder::new(rest);
        std::io::copy(&mut decoder.by_ref(), &mut std::io::sink()).expect("a gzip member");
        rest = decoder.into_inner();
        members += 1;
    }
    members
}

/// Reads the image tagged `tag` (or the only one) from an OCI layout directory, independently
/// of squash's reader: returns each layer's blob digest and uncompressed tar, and the config.
pub fn read_oci_layout(dir: &Path, tag: Option<&str>) -> (Vec<(String, Vec<u8>)>, Value) {
    let blob = |digest: &str| fs::read(dir.join("blobs/sha256").join(&digest[7..])).expect("blob");
    let index: Value =
        serde_json::from_slice(&fs::read(dir.join("index.json")).expect("index")).expect("json");
    let manifests = index["manifests"].as_array().expect("manifests");
    let entry = manifests
        .iter()
        .find(|m| {
            tag.is_none() || m["annotations"]["org.opencontainers.image.ref.name"].as_str() == tag
        })
        .expect("tagged manifest");
    let manifest_bytes = blob(entry["digest"].as_str().expect("digest"));
    assert_eq!(
        sha256(&manifest_bytes),
        entry["digest"].as_str().expect("digest"),
        "manifest digest"
    );
    let manifest: Value = serde_json::from_slice(&manifest_bytes).expect("manifest");
    let config_bytes = blob(manifest["config"]["digest"].as_str().expect("config"));
    assert_eq!(
        sha256(&config_bytes),
        manifest["config"]["digest"].as_str().expect("config"),
        "config digest"
    );
    let config: Value = serde_json::from_slice(&config_bytes).expect("config");
    let mut layers = Vec::new();
    for (i, layer) in manifest["layers"].as_array().expect("layers").iter().enumerate() {
        let digest = layer["digest"].as_str().expect("digest").to_string();
        let bytes = blob(&digest);
        assert_eq!(sha256(&bytes), digest, "layer {i} digest");
        assert_eq!(bytes.len() as u64, layer["size"].as_u64().expect("size"), "layer {i} size");
        let tar = decompress(&bytes);
        assert_eq!(
            Some(sha256(&tar).as_str()),
            config["rootfs"]["diff_ids"][i].as_str(),
            "layer {i} diff_id"
        );
        layers.push((digest, tar));
    }
    (layers, config)
}
