//! `LayerIndex`: one streaming pass over a layer that records every entry's path, kind, sizes and
//! raw header bytes (never file contents). Planning works from these indexes alone.

use serde::Serialize;

use super::entry::{EntryKind, EntryPath, Whiteout};
use super::tarstream::{EntryMeta, HeaderGroup};
use crate::digest::Digest;
use crate::error::{Error, Location, Result};

/// What an entry means under the OCI layer rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryClass {
    /// An entry that creates or replaces its path.
    Node(EntryKind),
    /// `.wh.NAME`: deletes the path it names in lower layers.
    Whiteout(EntryPath),
    /// `.wh..wh..opq`: hides the lower-layer children of the directory it names.
    Opaque(EntryPath),
    /// Reserved `.wh..wh.*` metadata: no effect.
    Ignored,
}

/// One entry of a layer, as indexed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IndexedEntry {
    /// The normalized path.
    pub path: EntryPath,
    /// What it does.
    pub class: EntryClass,
    /// For hard links, the normalized target path.
    pub link_target: Option<EntryPath>,
    /// Bytes of data stored in the layer after the header (excluding padding).
    pub stored_size: u64,
    /// The file's logical size (differs for sparse files).
    pub size: u64,
    /// The raw header group (extension headers and main header), kept only for directories,
    /// hard links and markers (see [`IndexedEntry::header_needed`]): every other entry is copied
    /// with its header as the layer is read again, and the few a plan renames are read again
    /// while planning.
    pub(crate) raw: Option<Box<[u8]>>,
    /// The length of the raw header group.
    pub(crate) header_len: u32,
    /// The main header's mtime field, for a directory this entry implies.
    pub(crate) mtime: [u8; 12],
}

impl IndexedEntry {
    /// Builds the index record of a header group read from a layer.
    pub(crate) fn from_group(group: HeaderGroup, location: &Location) -> Result<IndexedEntry> {
        let meta = &group.meta;
        let name = String::from_utf8_lossy(&meta.path).into_owned();
        let bad =
            |reason: String| Error::malformed_tar(location.clone().entry(name.clone()), reason);
        let path = EntryPath::parse(&meta.path).map_err(|e| bad(e.to_string()))?;
        let kind = meta.kind().ok_or_else(|| bad("unsupported entry type".into()))?;
        let class = match Whiteout::classify(&path).map_err(|e| bad(e.to_string()))? {
            Whiteout::None => EntryClass::Node(kind),
            Whiteout::Plain(target) => EntryClass::Whiteout(target),
            Whiteout::Opaque(dir) => EntryClass::Opaque(dir),
            Whiteout::Meta => EntryClass::Ignored,
        };
        if path.is_root() && kind != EntryKind::Dir {
            return Err(bad("the root can only be a directory".into()));
        }
        let link_target = if kind == EntryKind::Hardlink {
            let target =
                EntryPath::parse(&meta.link).map_err(|e| bad(format!("hard link target: {e}")))?;
            if target.is_root() {
                return Err(bad("hard link to the root directory".into()));
            }
            Some(target)
        } else {
            None
        };
        let header_len =
            u32::try_from(group.raw.len()).map_err(|_| bad("header longer than 4 GiB".into()))?;
        let mtime = super::header::mtime_field(&group.raw);
        let mut entry = IndexedEntry {
            path,
            class,
            link_target,
            stored_size: meta.size,
            size: meta.real_size,
            raw: None,
            header_len,
            mtime,
        };
        if entry.header_needed() {
            entry.raw = Some(group.raw.into_boxed_slice());
        }
        Ok(entry)
    }

    /// Whether the index keeps this entry's header bytes: a directory (its newest header is
    /// written), a hard link (renamed when its target goes), a marker. A plain file's header is
    /// needed only when a link outlives its name; the plan then asks for it to be read again.
    pub(crate) fn header_needed(&self) -> bool {
        !matches!(
            self.class,
            EntryClass::Node(kind) if kind != EntryKind::Dir && kind != EntryKind::Hardlink
        )
    }

    /// The raw header group, which the index kept for this entry.
    pub(crate) fn raw(&self) -> Result<&[u8]> {
        self.raw.as_deref().ok_or_else(|| Error::Output {
            location: Location::default(),
            reason: format!("internal error: the header of `{}` was not kept", self.path.display()),
        })
    }

    /// The entry's kind, for entries that create a path.
    pub fn kind(&self) -> Option<EntryKind> {
        match self.class {
            EntryClass::Node(kind) => Some(kind),
            _ => None,
        }
    }

    /// The file bytes a container sees at this entry's path: its logical size (0 for a marker).
    pub fn file_bytes(&self) -> u64 {
        match self.class {
            EntryClass::Node(_) => self.size,
            _ => 0,
        }
    }

    /// Bytes this entry takes in an uncompressed tar: header group, data and padding.
    pub fn tar_size(&self) -> u64 {
        u64::from(self.header_len) + self.stored_size + super::tarstream::padding(self.stored_size)
    }
}

/// Chooses, layer by layer, which entries an index keeps, and may simplify those it keeps: for
/// reading only what one question about some layers needs. Such an index's entries no longer
/// match the layer's positions.
pub(crate) trait EntryFilter: Sync {
    /// A fresh chooser for one layer: called on each entry in stream order, it returns whether
    /// the entry is kept.
    fn for_layer(&self) -> Box<dyn FnMut(&mut IndexedEntry) -> bool + '_>;
}

/// Every entry of one layer, in stream order, with what reading it proved.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LayerIndex {
    /// Position of the layer in the image.
    pub layer: usize,
    /// Entries in stream order.
    pub entries: Vec<IndexedEntry>,
    /// The verified blob digest.
    pub blob_digest: Digest,
    /// Size of the uncompressed tar stream.
    pub uncompressed_size: u64,
    /// Size of the stored blob.
    pub compressed_size: u64,
    /// Where the layer is, for error messages.
    pub location: Location,
    /// With the entries, in step with them, when the index was asked for them (a report's):
    /// what tells a copy that only changes metadata from new content. Empty otherwise.
    pub facts: Vec<EntryFacts>,
}

/// An entry's metadata and a fingerprint of its data, as a report compares two copies of a
/// path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct EntryFacts {
    /// XXH3-128 of the entry's data bytes (of nothing, for an entry without data).
    pub content: [u8; 16],
    /// XXH3-64 of the entry's extended attributes (PAX `SCHILY.xattr.*` records, by name); 0
    /// without any.
    pub xattrs: u64,
    /// Permission bits (and setuid, setgid, sticky).
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// Modification time (seconds since the epoch, nanoseconds), as `squash diff` reads it.
    pub mtime: Option<(i64, u32)>,
}

impl EntryFacts {
    /// The facts of an entry read from `meta`, whose data's fingerprint is `content`.
    pub(crate) fn new(meta: &EntryMeta, content: [u8; 16]) -> EntryFacts {
        let xattrs = meta.xattrs();
        let xattrs = if xattrs.is_empty() {
            0
        } else {
            let mut hasher = xxhash_rust::xxh3::Xxh3::new();
            for (name, value) in &xattrs {
                for part in [name, value] {
                    hasher.update(&(part.len() as u64).to_le_bytes());
                    hasher.update(part);
                }
            }
            hasher.digest()
        };
        EntryFacts {
            content,
            xattrs,
            mode: meta.mode & 0o7777,
            uid: meta.uid,
            gid: meta.gid,
            mtime: meta.mtime(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a report adds per entry, as ARCHITECTURE.md states it.
    #[test]
    fn facts_are_a_small_record() {
        assert_eq!(std::mem::size_of::<EntryFacts>(), 72);
    }
}
