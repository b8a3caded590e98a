//! OCI layout outputs. A new layout is built in a temporary directory beside its destination
//! and renamed into place; an existing one gets its new blobs staged under temporary names, then
//! put in and its `index.json` updated in one step under the layout's lock.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tempfile::{NamedTempFile, TempDir};

use super::container::{parent_dir, Finish, OutputWriter, OCI_LAYOUT};
use super::lock::{temp_file, DirLock, LockWait, TEMP_MARK};
use crate::digest::{Digest, HashingWriter, StreamHasher};
use crate::error::{Error, IoContext, Location, Result};
use crate::page_cache::{SyncBehind, WriteBehind};
use crate::read::descriptor::REF_NAME;
use crate::read::media::OCI_INDEX;

/// A layout being written: a new one built in a temporary directory beside its destination, or
/// an existing one whose new blobs are staged under temporary names until the commit.
pub(crate) struct LayoutTarget<'a> {
    pub(super) root: PathBuf,
    /// The temporary directory of a new layout, and the handle that keeps it locked.
    pub(super) fresh: Option<(TempDir, File)>,
    /// New blobs for an existing layout, not yet under their names.
    pub(super) staged: BTreeMap<Digest, NamedTempFile>,
    pub(super) wait: LockWait<'a>,
    /// The blobs written, synced beside the run; all of them before the commit.
    pub(super) syncs: SyncBehind,
}

impl<'a> LayoutTarget<'a> {
    pub(super) fn work(&self) -> PathBuf {
        match &self.fresh {
            Some((t, _)) => t.path().to_path_buf(),
            None => self.root.clone(),
        }
    }

    pub(super) fn write_blob(
        &mut self,
        hasher: StreamHasher,
        write: &mut dyn FnMut(&mut dyn Write) -> Result<()>,
    ) -> Result<(Digest, u64)> {
        let written = self.blob_dir().write(hasher, write)?;
        self.keep(written)
    }

    /// Where blobs of this layout may be written apart from it (on another thread), to be kept
    /// with [`LayoutTarget::keep`].
    pub(super) fn blob_dir(&self) -> BlobDir<'a> {
        BlobDir {
            root: self.root.clone(),
            work: self.work(),
            fresh: self.fresh.is_some(),
            wait: self.wait,
        }
    }

    /// Puts a blob written apart under its name (or among the blobs staged for an existing
    /// layout), and hands it over to be synced before the commit; one the layout holds already
    /// is dropped.
    pub(super) fn keep(&mut self, written: Written) -> Result<(Digest, u64)> {
        let Written { digest, size, temp, file } = written;
        let final_path = self.work().join("blobs/sha256").join(digest.hex());
        if final_path.exists() || self.staged.contains_key(&digest) {
            return Ok((digest, size));
        }
        // Named in errors where it will be once the output is in place.
        self.syncs.sync(file, self.root.join("blobs/sha256").join(digest.hex()));
        if self.fresh.is_some() {
            temp.persist(&final_path)
                .map_err(|e| Error::io(Location::file(&final_path), e.error))?;
        } else {
            self.staged.insert(digest.clone(), temp);
        }
        Ok((digest, size))
    }

    pub(super) fn commit(mut self, finish: Finish) -> Result<()> {
        self.syncs.finish().map_err(|(path, e)| Error::io(Location::file(path), e))?;
        let Some((temp, dir_lock)) = self.fresh.take() else {
            let staged = std::mem::take(&mut self.staged)
                .into_iter()
                .map(|(d, t)| (d, Staged::Temp(t)))
                .collect();
            return add_to_layout(&self.root, staged, &Listed::of(&finish), self.wait);
        };
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []});
        let index = with_descriptor(index, &Listed::of(&finish), &self.root)?;
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
        let staged = finish
            .blobs()
            .into_iter()
            .map(|d| (d.clone(), Staged::Path(blobs.join(d.hex()))))
            .collect();
        add_to_layout(&self.root, staged, &Listed::of(&finish), self.wait)
    }
}

/// Where a layout's blobs are written under temporary names: what a thread beside the
/// layout's writer needs to write one, which the layout then keeps ([`LayoutTarget::keep`]).
pub(crate) struct BlobDir<'a> {
    root: PathBuf,
    work: PathBuf,
    fresh: bool,
    wait: LockWait<'a>,
}

/// A blob written under a temporary name, on the disk's way (its flushes settled) but not
/// synced or kept yet.
pub(crate) struct Written {
    pub digest: Digest,
    pub size: u64,
    temp: NamedTempFile,
    file: File,
}

impl BlobDir<'_> {
    /// Writes a blob produced by `write`, hashed by `hasher` as it is written.
    pub(crate) fn write(
        &self,
        hasher: StreamHasher,
        write: &mut dyn FnMut(&mut dyn Write) -> Result<()>,
    ) -> Result<Written> {
        let dir = self.work.join("blobs/sha256");
        fs::create_dir_all(&dir).at(|| Location::file(&dir))?;
        let temp = if self.fresh {
            temp_file(&dir, &format!("{TEMP_MARK}-"))?
        } else {
            // Under the layout's lock, so that a sweep never sees it unlocked.
            let _lock = DirLock::acquire(&self.root, self.wait)?;
            temp_file(&dir, &format!("{TEMP_MARK}-"))?
        };
        let handle = temp.reopen().at(|| Location::file(temp.path()))?;
        let mut writer = HashingWriter::new(
            OutputWriter {
                inner: BufWriter::with_capacity(1 << 20, WriteBehind::new(handle, true)),
                dest: &self.root,
            },
            hasher,
        );
        write(&mut writer)?;
        let (buffered, digest, size) = writer.finish();
        let mut behind = buffered
            .inner
            .into_inner()
            .map_err(|e| Error::io(Location::file(&self.root), e.into_error()))?;
        behind.settle().at(|| Location::file(&self.root))?;
        Ok(Written { digest, size, temp, file: behind.file })
    }
}

/// What a layout's `index.json` gets for one image: its descriptor, under its tag, and every
/// blob the image needs.
struct Listed<'a> {
    descriptor: &'a Value,
    tag: Option<&'a str>,
    blobs: Vec<Digest>,
}

impl Listed<'_> {
    fn of(finish: &Finish) -> Listed<'_> {
        Listed {
            descriptor: &finish.manifest_descriptor,
            tag: finish.tag.as_deref(),
            blobs: finish.blobs(),
        }
    }
}

/// Adds the one image of the layout at `from` (written by this run, as a new layout) to the
/// existing layout at `into`: its blobs are moved in and its `index.json` entry added (replacing
/// an entry of the same tag) in one step under `into`'s lock, as a run writing there adds its
/// image. The image must be `written` (the manifest or index a run wrote there). Both must be on
/// one file system.
pub(super) fn add_layout_image(
    from: &Path,
    written: &Digest,
    into: &Path,
    wait: LockWait<'_>,
) -> Result<()> {
    let index_path = from.join("index.json");
    let raw = fs::read(&index_path).at(|| Location::file(&index_path))?;
    let index: Value = serde_json::from_slice(&raw)
        .map_err(|e| Error::invalid(Location::file(&index_path), "image index", e.to_string()))?;
    let descriptor = match index.get("manifests").and_then(Value::as_array).map(Vec::as_slice) {
        Some([descriptor]) => descriptor,
        _ => {
            return Err(Error::invalid(
                Location::file(&index_path),
                "image index",
                "a layout written by this run lists one image",
            ))
        }
    };
    let listed = descriptor.get("digest").and_then(Value::as_str);
    if listed != Some(written.to_string().as_str()) {
        return Err(Error::Output {
            location: Location::file(&index_path),
            reason: format!(
                "lists {}, not the image written ({written})",
                listed.unwrap_or("none")
            ),
        });
    }
    let tag = descriptor.get("annotations").and_then(|a| a.get(REF_NAME)).and_then(Value::as_str);
    if !into.join("oci-layout").is_file() {
        return Err(Error::Output {
            location: Location::file(into),
            reason: "exists and is not an OCI image layout; remove it or choose another path"
                .into(),
        });
    }
    let blobs = from.join("blobs/sha256");
    let mut staged = BTreeMap::new();
    for entry in fs::read_dir(&blobs).at(|| Location::file(&blobs))? {
        let entry = entry.at(|| Location::file(&blobs))?;
        let name = entry.file_name();
        // A layout written whole holds its blobs only, each under its digest.
        if let Ok(digest) = format!("sha256:{}", name.to_string_lossy()).parse::<Digest>() {
            staged.insert(digest, Staged::Path(entry.path()));
        }
    }
    let listed = Listed { descriptor, tag, blobs: staged.keys().cloned().collect() };
    add_to_layout(into, staged, &listed, wait)
}

/// A blob waiting to be put into a layout.
enum Staged {
    Temp(NamedTempFile),
    Path(PathBuf),
}

/// Puts staged blobs into the existing layout at `root` and adds the image to its `index.json`,
/// all under the layout's lock. On failure the blobs put in are removed again.
fn add_to_layout(
    root: &Path,
    staged: BTreeMap<Digest, Staged>,
    listed: &Listed<'_>,
    wait: LockWait<'_>,
) -> Result<()> {
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
                    temp.persist(&final_path)
                        .map_err(|e| Error::io(Location::file(&final_path), e.error))?;
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
        for digest in &listed.blobs {
            if !blobs.join(digest.hex()).is_file() {
                return Err(Error::Output {
                    location: Location::file(root),
                    reason: format!(
                        "blob {digest} that the new image needs is gone (removed by \
                        another program meanwhile?)"
                    ),
                });
            }
        }
        let index_path = root.join("index.json");
        let raw = fs::read(&index_path).at(|| Location::file(&index_path))?;
        let index: Value = serde_json::from_slice(&raw).map_err(|e| {
            Error::invalid(Location::file(&index_path), "image index", e.to_string())
        })?;
        let bytes = with_descriptor(index, listed, root)?;
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
fn with_descriptor(mut index: Value, listed: &Listed<'_>, root: &Path) -> Result<Vec<u8>> {
    let index_path = root.join("index.json");
    let mut descriptor = listed.descriptor.clone();
    if let Some(tag) = listed.tag {
        descriptor["annotations"] = json!({ (REF_NAME): tag });
    }
    if !index.get("manifests").is_some_and(Value::is_array) {
        index["manifests"] = json!([]);
    }
    let Some(Value::Array(manifests)) = index.get_mut("manifests") else {
        return Err(Error::invalid(Location::file(&index_path), "image index", "no manifests"));
    };
    if let Some(tag) = listed.tag {
        manifests.retain(|m| {
            m.get("annotations").and_then(|a| a.get(REF_NAME)).and_then(Value::as_str) != Some(tag)
        });
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
