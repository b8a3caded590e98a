//! The demo's example image: a few layers written with the `tar` crate, gzip-compressed and
//! stored as an OCI image layout, the way a `docker build` of an apt-get Dockerfile leaves them.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Bytes that do not compress, from a seed: the sha256 of the seed and a block number, block
/// after block, so that file sizes mean something.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut block = 0u64;
    while out.len() < len {
        let hash = Sha256::new().chain_update(seed.to_le_bytes()).chain_update(block.to_le_bytes());
        out.extend_from_slice(&hash.finalize());
        block += 1;
    }
    out.truncate(len);
    out
}

/// One layer tar, entry by entry. Every entry is owned by root and dated 2020-09-13.
pub struct Layer(tar::Builder<Vec<u8>>);

impl Layer {
    const MTIME: u64 = 1_600_000_000;

    pub fn new() -> Self {
        Layer(tar::Builder::new(Vec::new()))
    }

    fn append(
        &mut self,
        kind: tar::EntryType,
        path: &str,
        mode: u32,
        data: &[u8],
    ) -> Result<&mut Self> {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(Self::MTIME);
        header.set_size(data.len() as u64);
        self.0
            .append_data(&mut header, path, data)
            .with_context(|| format!("demo layer entry {path}"))?;
        Ok(self)
    }

    pub fn dir(&mut self, path: &str) -> Result<&mut Self> {
        self.append(tar::EntryType::Directory, path, 0o755, &[])
    }

    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> Result<&mut Self> {
        self.append(tar::EntryType::Regular, path, mode, data)
    }

    /// A whiteout deleting `dir/name` from the layers below.
    pub fn whiteout(&mut self, dir: &str, name: &str) -> Result<&mut Self> {
        self.append(tar::EntryType::Regular, &format!("{dir}/.wh.{name}"), 0o644, &[])
    }

    pub fn finish(self) -> Result<Vec<u8>> {
        Ok(self.0.into_inner()?)
    }
}

/// An image being put together: its layers (tar, gzip blob, history step) and empty steps.
#[derive(Default)]
pub struct Sample {
    layers: Vec<(Vec<u8>, Vec<u8>, String)>,
    /// History entries, in order: the step and whether it made a layer.
    history: Vec<(String, bool)>,
}

impl Sample {
    pub fn layer(&mut self, tar: Vec<u8>, created_by: &str) -> Result<&mut Self> {
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gzip.write_all(&tar)?;
        self.layers.push((tar, gzip.finish()?, created_by.to_string()));
        self.history.push((created_by.to_string(), true));
        Ok(self)
    }

    pub fn empty_step(&mut self, created_by: &str) -> &mut Self {
        self.history.push((created_by.to_string(), false));
        self
    }

    /// Adds this image to the OCI layout at `dir` (created if needed) under `tag`.
    pub fn write_oci_layout(&self, dir: &Path, tag: &str) -> Result<()> {
        let blobs = dir.join("blobs/sha256");
        fs::create_dir_all(&blobs).with_context(|| format!("creating {}", blobs.display()))?;
        let history: Vec<Value> = self
            .history
            .iter()
            .map(|(step, layer)| {
                let mut entry = json!({"created": "2020-09-13T12:26:40Z", "created_by": step});
                if !layer {
                    entry["empty_layer"] = json!(true);
                }
                entry
            })
            .collect();
        let diff_ids: Vec<String> = self.layers.iter().map(|(tar, _, _)| sha256(tar)).collect();
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["PATH=/usr/bin"], "Cmd": ["/usr/bin/tool"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history,
        }))?;
        let layers: Vec<Value> = self
            .layers
            .iter()
            .map(|(_, blob, _)| {
                json!({
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": sha256(blob),
                    "size": blob.len()
                })
            })
            .collect();
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256(&config),
                "size": config.len()
            },
            "layers": layers,
        }))?;
        for blob in self.layers.iter().map(|(_, blob, _)| blob).chain([&config, &manifest]) {
            let path = blobs.join(&sha256(blob)[7..]);
            fs::write(&path, blob).with_context(|| format!("writing {}", path.display()))?;
        }
        fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        let index_path = dir.join("index.json");
        let mut index = match fs::read(&index_path) {
            Ok(raw) => serde_json::from_slice::<Value>(&raw)
                .with_context(|| format!("reading {}", index_path.display()))?,
            Err(_) => json!({"schemaVersion": 2, "manifests": []}),
        };
        if let Some(list) = index["manifests"].as_array_mut() {
            list.push(json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": sha256(&manifest),
                "size": manifest.len(),
                "annotations": {"org.opencontainers.image.ref.name": tag}
            }));
        }
        fs::write(&index_path, serde_json::to_vec(&index)?)
            .with_context(|| format!("writing {}", index_path.display()))?;
        Ok(())
    }
}
