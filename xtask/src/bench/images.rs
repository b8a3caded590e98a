//! The bench's inputs written from the testkit's layer tars: OCI layouts compressed with the
//! limit's own compressors (pigz, zstd), `docker save` tarballs for the peers; and what is read
//! back from squash's outputs.

use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::run_command;

pub(crate) fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((format!("sha256:{}", hex::encode(hasher.finalize())), total))
}

pub(crate) fn compress_cmd(kind: &str, input: &Path, output: &Path) -> Result<()> {
    let mut cmd = match kind {
        "gzip" => {
            let mut c = Command::new("pigz");
            c.args(["-6", "-c", "-n"]);
            c
        }
        _ => {
            let mut c = Command::new("zstd");
            c.args(["-3", "-T0", "-q", "-c"]);
            c
        }
    };
    let out = File::create(output)?;
    run_command(cmd.arg(input).stdout(out))
}

/// Writes an OCI layout whose layers are `tars` compressed with `kind`.
pub(crate) fn write_layout(dir: &Path, tars: &[PathBuf], kind: &str) -> Result<Vec<PathBuf>> {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs)?;
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    let mut blob_paths = Vec::new();
    for tar in tars {
        let (diff_id, _) = sha256_file(tar)?;
        let temp = dir.join("blob.tmp");
        compress_cmd(kind, tar, &temp)?;
        let (digest, size) = sha256_file(&temp)?;
        let path = blobs.join(&digest[7..]);
        fs::rename(&temp, &path)?;
        let media = if kind == "gzip" {
            "application/vnd.oci.image.layer.v1.tar+gzip"
        } else {
            "application/vnd.oci.image.layer.v1.tar+zstd"
        };
        layers.push(json!({"mediaType": media, "digest": digest, "size": size}));
        diff_ids.push(diff_id);
        blob_paths.push(path);
    }
    let history: Vec<_> = (0..tars.len())
        .map(
            |i| json!({"created": "2024-01-01T00:00:00Z", "created_by": format!("bench step {i}")}),
        )
        .collect();
    let config = serde_json::to_vec(
        &json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}, "history": history}),
    )?;
    let config_digest = format!("sha256:{}", hex::encode(Sha256::digest(&config)));
    fs::write(blobs.join(&config_digest[7..]), &config)?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": layers,
    }))?;
    let manifest_digest = format!("sha256:{}", hex::encode(Sha256::digest(&manifest)));
    fs::write(blobs.join(&manifest_digest[7..]), &manifest)?;
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let index = json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest, "size": manifest.len(), "annotations": {"org.opencontainers.image.ref.name": "bench"}}]});
    fs::write(dir.join("index.json"), serde_json::to_vec(&index)?)?;
    Ok(blob_paths)
}

/// A legacy `docker save` tarball of the uncompressed layers, for the Python peers.
pub(crate) fn write_docker_archive(path: &Path, tars: &[PathBuf]) -> Result<()> {
    let mut builder = tar::Builder::new(BufWriter::new(File::create(path)?));
    let mut names = Vec::new();
    let mut diff_ids = Vec::new();
    for tar in tars {
        let (diff_id, _) = sha256_file(tar)?;
        let name = format!("{}/layer.tar", &diff_id[7..]);
        builder.append_path_with_name(tar, &name)?;
        names.push(name);
        diff_ids.push(diff_id);
    }
    let history: Vec<_> = (0..tars.len())
        .map(
            |i| json!({"created": "2024-01-01T00:00:00Z", "created_by": format!("bench step {i}")}),
        )
        .collect();
    let config = serde_json::to_vec(
        &json!({"architecture": "amd64", "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": diff_ids}, "history": history}),
    )?;
    let config_name = format!("{}.json", hex::encode(Sha256::digest(&config)));
    let manifest = serde_json::to_vec(
        &json!([{"Config": config_name, "RepoTags": ["bench:latest"], "Layers": names}]),
    )?;
    for (name, bytes) in [(config_name.as_str(), &config), ("manifest.json", &manifest)] {
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        builder.append_data(&mut h, name, &bytes[..])?;
    }
    builder.into_inner()?.flush()?;
    Ok(())
}

/// Copies the new layer (the manifest's second) of the `docker save` tarball `archive` to `to`.
pub(crate) fn extract_new_layer(archive: &Path, to: &Path) -> Result<()> {
    let mut tarball = tar::Archive::new(File::open(archive)?);
    // Each member's data: where it starts in the tarball, and its size.
    let mut members = std::collections::BTreeMap::new();
    let mut manifest = None;
    for member in tarball.entries()? {
        let member = member?;
        let name = member.path()?.to_string_lossy().into_owned();
        if name == "manifest.json" {
            manifest = Some(serde_json::from_reader::<_, serde_json::Value>(member)?);
        } else {
            members.insert(name, (member.raw_file_position(), member.size()));
        }
    }
    let manifest = manifest.context("no manifest.json in the squashed archive")?;
    let layer =
        manifest[0]["Layers"][1].as_str().context("the squashed archive has no second layer")?;
    let &(position, size) = members.get(layer).with_context(|| format!("no member {layer}"))?;
    let mut file = File::open(archive)?;
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(position))?;
    std::io::copy(&mut std::io::Read::take(file, size), &mut File::create(to)?)?;
    Ok(())
}

/// The blob of the last layer of the image in an OCI layout (the merged one).
pub(crate) fn newest_layer_blob(layout: &Path) -> Result<PathBuf> {
    let index: serde_json::Value = serde_json::from_slice(&fs::read(layout.join("index.json"))?)?;
    let digest = index["manifests"][0]["digest"].as_str().context("no manifest")?;
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("blobs/sha256").join(&digest[7..]))?)?;
    let layers = manifest["layers"].as_array().context("no layers")?;
    let last = layers.last().and_then(|l| l["digest"].as_str()).context("no layer")?;
    Ok(layout.join("blobs/sha256").join(&last[7..]))
}
