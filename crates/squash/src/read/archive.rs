//! Outer tar archives (OCI archives and `docker save` tarballs): indexed once, members served in
//! place by offset, never extracted.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::error::{Error, IoContext, Location, Result};
use crate::layer::entry::{EntryKind, EntryPath};
use crate::layer::tarstream::{TarError, TarReader};
use crate::page_cache::ReadOnce;

/// One member of an outer archive.
#[derive(Debug, Clone)]
enum Member {
    File {
        offset: u64,
        size: u64,
    },
    /// A symbolic or hard link to another member (docker dedups identical layers this way).
    Link {
        target: String,
    },
    Dir,
}

/// The members of an outer tar archive, by normalized name.
#[derive(Debug, Clone)]
pub(crate) struct ArchiveIndex {
    path: PathBuf,
    members: BTreeMap<String, Member>,
    /// For an archive spooled from a pipe, the digests its large members' bytes had as they
    /// were written to the spool (by data offset).
    spooled: SpooledDigests,
}

/// The sha256 of the data of members of a spooled archive, computed as the spool was filled:
/// by the offset of the data in the spool, its size and digest.
pub(crate) type SpooledDigests = BTreeMap<u64, (u64, Digest)>;

impl ArchiveIndex {
    /// Reads every header of the archive at `path`, seeking over member data.
    pub(crate) fn open(path: &Path) -> Result<ArchiveIndex> {
        let file = File::open(path).at(|| Location::file(path))?;
        let mut reader = TarReader::new(BufReader::with_capacity(64 * 1024, file));
        let mut members = BTreeMap::new();
        let file_len = std::fs::metadata(path).at(|| Location::file(path))?.len();
        loop {
            let group = match reader.next_group() {
                Ok(Some(group)) => group,
                Ok(None) => break,
                Err(e) => return Err(tar_error(Location::file(path), e)),
            };
            let meta = &group.meta;
            let name = normalize(&meta.path).map_err(|reason| {
                Error::malformed_tar(
                    Location::file(path).entry(String::from_utf8_lossy(&meta.path)),
                    reason,
                )
            })?;
            let member = match meta.kind() {
                Some(EntryKind::File) => {
                    let offset = reader.offset();
                    if offset + meta.size > file_len {
                        return Err(Error::malformed_tar(
                            Location::file(path).entry(&name),
                            "member extends past the end of the archive (truncated)",
                        ));
                    }
                    Member::File { offset, size: meta.size }
                }
                Some(EntryKind::Dir) => Member::Dir,
                Some(EntryKind::Symlink) => {
                    let link = String::from_utf8_lossy(&meta.link).into_owned();
                    let base = match name.rfind('/') {
                        Some(i) => format!("{}/{}", &name[..i], link),
                        None => link.clone(),
                    };
                    let target = if link.starts_with('/') { link } else { base };
                    let target = resolve_dots(&target).ok_or_else(|| {
                        Error::malformed_tar(
                            Location::file(path).entry(&name),
                            "symlink leaves the archive",
                        )
                    })?;
                    Member::Link { target }
                }
                Some(EntryKind::Hardlink) => {
                    let target = normalize(&meta.link).map_err(|reason| {
                        Error::malformed_tar(Location::file(path).entry(&name), reason)
                    })?;
                    Member::Link { target }
                }
                _ => continue,
            };
            members.insert(name, member);
            reader.skip_data_seeking().map_err(|e| tar_error(Location::file(path), e))?;
        }
        Ok(ArchiveIndex { path: path.to_path_buf(), members, spooled: SpooledDigests::new() })
    }

    /// The archive, with the digests its members had as it was spooled.
    pub(crate) fn with_spooled(mut self, spooled: SpooledDigests) -> ArchiveIndex {
        self.spooled = spooled;
        self
    }

    /// The digest member `name` had as the archive was spooled, when it was hashed then: the
    /// same offset and size.
    pub(crate) fn spooled_digest(&self, name: &str) -> Option<Digest> {
        let (offset, size) = self.resolve(name)?;
        self.spooled.get(&offset).filter(|(s, _)| *s == size).map(|(_, digest)| digest.clone())
    }

    /// The archive's path on disk.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the archive holds a regular member called `name` (after following links).
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.resolve(name).is_some()
    }

    /// Offset and size of member `name`, following links.
    pub(crate) fn resolve(&self, name: &str) -> Option<(u64, u64)> {
        let mut current = normalize(name.as_bytes()).ok()?;
        for _ in 0..16 {
            match self.members.get(&current)? {
                Member::File { offset, size } => return Some((*offset, *size)),
                Member::Link { target } => current = target.clone(),
                Member::Dir => return None,
            }
        }
        None
    }

    /// Opens member `name` for reading.
    pub(crate) fn open_member(&self, name: &str) -> Result<Option<(Box<dyn Read + Send>, u64)>> {
        let Some((offset, size)) = self.resolve(name) else {
            return Ok(None);
        };
        let file = File::open(&self.path).at(|| Location::file(&self.path))?;
        Ok(Some((Box::new(ReadOnce::new(file, offset, size)), size)))
    }

    /// Names of regular members (after following links), for format detection.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.members.keys().map(String::as_str)
    }
}

/// Normalizes a member name; `..` is refused (an archive must not point outside itself).
fn normalize(raw: &[u8]) -> std::result::Result<String, String> {
    let path = EntryPath::parse(raw).map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(path.as_bytes()).into_owned())
}

/// Resolves `.` and `..` in a link target inside the archive; `None` if it climbs out.
fn resolve_dots(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            other => parts.push(other),
        }
    }
    Some(parts.join("/"))
}

pub(crate) fn tar_error(location: Location, error: TarError) -> Error {
    match error {
        TarError::Io(e) => Error::io(location, e),
        TarError::Malformed { entry, reason } => {
            let location = match entry {
                Some(entry) => location.entry(String::from_utf8_lossy(&entry)),
                None => location,
            };
            Error::MalformedTar { location, reason }
        }
    }
}

/// Reads a small member (a JSON document) whole, with a size cap.
pub(crate) fn read_small(reader: &mut dyn Read, limit: u64) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    reader.take(limit + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(io::Error::other(format!("document larger than {limit} bytes")));
    }
    Ok(buf)
}
