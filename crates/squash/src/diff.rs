//! `squash diff`: the final root filesystems of two images compared entry by entry, from their
//! layers alone (nothing is unpacked). Each layer is read once, verified as any read is, through
//! the changeset rules a squash uses; what is kept is a small record per entry and the sha256 of
//! each regular file's stored content, never the content itself.

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::budget::Budget;
use crate::context::Context;
use crate::digest::Digest;
use crate::error::Result;
use crate::layer::entry::{EntryKind, EntryPath};
use crate::layer::layer_index::LayerIndex;
use crate::layer::tarstream::EntryMeta;
use crate::plan::changeset::tree::{final_tree, FinalSource};
use crate::read::image::Image;

/// What `diff` compares of each path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Attribute {
    /// File, directory, symlink, device, fifo.
    Type,
    /// Permission bits, setuid, setgid and sticky included.
    Mode,
    /// Owner.
    Uid,
    /// Group.
    Gid,
    /// A regular file's size.
    Size,
    /// The sha256 of a regular file's content as stored.
    Content,
    /// A symbolic link's target.
    Link,
    /// A device's major and minor numbers.
    Device,
    /// Extended attributes (PAX `SCHILY.xattr.*`).
    Xattrs,
    /// Modification time.
    Mtime,
    /// The other names of the same file (hard links).
    Hardlinks,
}

impl Attribute {
    /// Every attribute, in the order they are reported.
    pub const ALL: [Attribute; 11] = [
        Attribute::Type,
        Attribute::Mode,
        Attribute::Uid,
        Attribute::Gid,
        Attribute::Size,
        Attribute::Content,
        Attribute::Link,
        Attribute::Device,
        Attribute::Xattrs,
        Attribute::Mtime,
        Attribute::Hardlinks,
    ];

    /// The attribute's name as `--ignore` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Attribute::Type => "type",
            Attribute::Mode => "mode",
            Attribute::Uid => "uid",
            Attribute::Gid => "gid",
            Attribute::Size => "size",
            Attribute::Content => "content",
            Attribute::Link => "link",
            Attribute::Device => "device",
            Attribute::Xattrs => "xattrs",
            Attribute::Mtime => "mtime",
            Attribute::Hardlinks => "hardlinks",
        }
    }
}

impl std::str::FromStr for Attribute {
    type Err = crate::error::ParseError;
    /// Parses an attribute name (`mtime`, `uid`, …).
    fn from_str(s: &str) -> std::result::Result<Attribute, crate::error::ParseError> {
        Attribute::ALL.into_iter().find(|a| a.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Attribute::ALL.iter().map(|a| a.name()).collect();
            crate::error::ParseError::new(
                "attribute",
                s,
                format!("`{s}` is not an attribute; expected one of {}", names.join(", ")),
            )
        })
    }
}

impl std::fmt::Display for Attribute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One path of a final filesystem, with every attribute `diff` compares. A small record: the
/// rare attributes (a link's target, device numbers, xattrs, other names) are boxed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TreeEntry {
    /// What it is (a file with several names is a file).
    pub kind: EntryKind,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// A regular file's logical size; 0 otherwise.
    pub size: u64,
    /// Modification time (seconds, nanoseconds); `None` for a directory that appliers create as
    /// a missing parent, whose time is that of the unpacking.
    pub mtime: Option<(i64, u32)>,
    content: Option<[u8; 32]>,
    extra: Option<Box<TreeExtra>>,
}

/// The rare attributes of a [`TreeEntry`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct TreeExtra {
    link: Option<Vec<u8>>,
    device: Option<(u64, u64)>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    hardlinks: Vec<EntryPath>,
}

impl TreeEntry {
    /// The sha256 of a regular file's stored content.
    pub fn content(&self) -> Option<Digest> {
        self.content.map(Digest::from_raw)
    }
    /// A symbolic link's target.
    pub fn link(&self) -> Option<&[u8]> {
        self.extra.as_ref().and_then(|e| e.link.as_deref())
    }
    /// A device's major and minor numbers.
    pub fn device(&self) -> Option<(u64, u64)> {
        self.extra.as_ref().and_then(|e| e.device)
    }
    /// Extended attributes, sorted by name.
    pub fn xattrs(&self) -> &[(Vec<u8>, Vec<u8>)] {
        self.extra.as_ref().map_or(&[], |e| &e.xattrs)
    }
    /// The other names of the same file, sorted; empty for a single name.
    pub fn hardlinks(&self) -> &[EntryPath] {
        self.extra.as_ref().map_or(&[], |e| &e.hardlinks)
    }
}

/// A final root filesystem: every path, in byte order.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    /// The paths and what is there.
    pub entries: BTreeMap<EntryPath, TreeEntry>,
}

/// What differs at one path present in both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Difference {
    /// Which attribute.
    pub attribute: Attribute,
    /// Its value in the first image.
    pub a: String,
    /// Its value in the second image.
    pub b: String,
}

/// A path present in both images, with what differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChangedPath {
    /// The path (`/` for the root).
    pub path: String,
    /// The attributes that differ.
    pub differences: Vec<Difference>,
}

/// How two final filesystems differ.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TreeDiff {
    /// Paths only the second image has.
    pub added: Vec<String>,
    /// Paths only the first image has.
    pub removed: Vec<String>,
    /// Paths both have, with differences.
    pub changed: Vec<ChangedPath>,
}

impl TreeDiff {
    /// Whether the two filesystems are equal (in the attributes compared).
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// The attributes of one entry of a layer, as read.
struct Attrs {
    kind: Option<EntryKind>,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: Option<(i64, u32)>,
    content: Option<[u8; 32]>,
    /// Rare fields, boxed: a symlink's target, device numbers, xattrs.
    extra: Option<Box<Extra>>,
}

struct Extra {
    link: Option<Vec<u8>>,
    device: Option<(u64, u64)>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Attrs {
    fn of(meta: &EntryMeta) -> Attrs {
        let kind = meta.kind();
        let xattrs = meta.xattrs();
        let link = (kind == Some(EntryKind::Symlink)).then(|| meta.link.clone());
        let device = matches!(kind, Some(EntryKind::CharDevice) | Some(EntryKind::BlockDevice))
            .then_some((meta.devmajor, meta.devminor));
        let extra = (link.is_some() || device.is_some() || !xattrs.is_empty())
            .then(|| Box::new(Extra { link, device, xattrs }));
        Attrs {
            kind,
            mode: meta.mode & 0o7777,
            uid: meta.uid,
            gid: meta.gid,
            size: if kind == Some(EntryKind::File) { meta.real_size } else { 0 },
            mtime: meta.mtime(),
            content: None,
            extra,
        }
    }
}

/// Hashes what is written to it.
struct HashSink(Sha256);

impl Write for HashSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Image {
    /// The image's final root filesystem: every layer read once and verified (size, sha256,
    /// diff_id), on every core.
    pub fn tree(&self) -> Result<Tree> {
        self.tree_in(&Context::new())
    }

    /// [`Image::tree`] within `context`'s threads.
    pub fn tree_in(&self, context: &Context<'_>) -> Result<Tree> {
        use rayon::prelude::*;
        let budget = context.budget();
        let wanted: Vec<usize> = (0..self.layers().len()).collect();
        let read: Vec<(LayerIndex, Vec<Attrs>)> = budget.run(|| {
            wanted.par_iter().map(|&i| self.read_attrs(i, budget)).collect::<Result<Vec<_>>>()
        })??;
        let (indexes, attrs): (Vec<LayerIndex>, Vec<Vec<Attrs>>) = read.into_iter().unzip();
        let sources = final_tree(&indexes)?;
        // The indexes served the changeset rules; the records of what survives are built from the
        // attributes alone.
        drop(indexes);
        // The names of each inode that has several, for the hard-link groups (only those names
        // are copied).
        let mut counts: Vec<u32> = Vec::new();
        for (_, source) in &sources {
            if let FinalSource::Other { inode, .. } = source {
                let inode = *inode as usize;
                if counts.len() <= inode {
                    counts.resize(inode + 1, 0);
                }
                counts[inode] += 1;
            }
        }
        let mut names: BTreeMap<u32, Vec<EntryPath>> = BTreeMap::new();
        for (path, source) in &sources {
            if let FinalSource::Other { inode, .. } = source {
                if counts[*inode as usize] > 1 {
                    names.entry(*inode).or_default().push(path.clone());
                }
            }
        }
        drop(counts);
        let mut entries = BTreeMap::new();
        // The root is always there, whether a layer names it or not.
        let mut sources = sources;
        if sources.first().is_none_or(|(path, _)| !path.is_root()) {
            sources.insert(0, (EntryPath::root(), FinalSource::Implied));
        }
        for (path, source) in sources {
            let entry = match source {
                FinalSource::Implied => TreeEntry {
                    kind: EntryKind::Dir,
                    mode: 0o755,
                    uid: 0,
                    gid: 0,
                    size: 0,
                    mtime: None,
                    content: None,
                    extra: None,
                },
                FinalSource::Dir(layer, entry) => tree_entry(&attrs[layer][entry], Vec::new()),
                FinalSource::Other { content: (layer, entry), inode, .. } => {
                    let others: Vec<EntryPath> = names
                        .get(&inode)
                        .into_iter()
                        .flatten()
                        .filter(|n| **n != path)
                        .cloned()
                        .collect();
                    tree_entry(&attrs[layer][entry], others)
                }
            };
            entries.insert(path, entry);
        }
        Ok(Tree { entries })
    }

    /// Reads layer `i`: its index (for the changeset rules) and each entry's attributes, with the
    /// sha256 of each regular file's data.
    fn read_attrs(&self, i: usize, budget: Budget) -> Result<(LayerIndex, Vec<Attrs>)> {
        let mut attrs = Vec::new();
        let index = self.index_layer_visiting(i, budget, false, &mut |group, stream| {
            let mut record = Attrs::of(&group.meta);
            // A regular file's data (a marker's too, which is empty and never read back).
            if record.kind == Some(EntryKind::File) {
                let mut sink = HashSink(Sha256::new());
                stream.tar.copy_data(&mut sink).map_err(|e| stream.error(e))?;
                record.content = Some(sink.0.finalize().into());
            }
            attrs.push(record);
            Ok(())
        })?;
        Ok((index, attrs))
    }
}

fn tree_entry(attrs: &Attrs, hardlinks: Vec<EntryPath>) -> TreeEntry {
    let extra = match (attrs.extra.as_deref(), hardlinks.is_empty()) {
        (None, true) => None,
        (read, _) => Some(Box::new(TreeExtra {
            link: read.and_then(|e| e.link.clone()),
            device: read.and_then(|e| e.device),
            xattrs: read.map(|e| e.xattrs.clone()).unwrap_or_default(),
            hardlinks,
        })),
    };
    TreeEntry {
        kind: attrs.kind.unwrap_or(EntryKind::File),
        mode: attrs.mode,
        uid: attrs.uid,
        gid: attrs.gid,
        size: attrs.size,
        mtime: attrs.mtime,
        content: attrs.content,
        extra,
    }
}

/// The value of `attribute` of `entry`, as `diff` prints it.
fn value(entry: &TreeEntry, attribute: Attribute) -> String {
    let bytes = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match attribute {
        Attribute::Type => format!("{:?}", entry.kind).to_lowercase(),
        Attribute::Mode => format!("{:04o}", entry.mode),
        Attribute::Uid => entry.uid.to_string(),
        Attribute::Gid => entry.gid.to_string(),
        Attribute::Size => entry.size.to_string(),
        Attribute::Content => {
            entry.content().as_ref().map(ToString::to_string).unwrap_or_else(|| "-".into())
        }
        Attribute::Link => entry.link().map(bytes).unwrap_or_else(|| "-".into()),
        Attribute::Device => {
            entry.device().map(|(a, b)| format!("{a},{b}")).unwrap_or_else(|| "-".into())
        }
        Attribute::Xattrs => {
            let list: Vec<String> = entry
                .xattrs()
                .iter()
                .map(|(k, v)| format!("{}={}", bytes(k), Digest::of(v).short()))
                .collect();
            if list.is_empty() {
                "-".into()
            } else {
                list.join(",")
            }
        }
        Attribute::Mtime => match entry.mtime {
            None => "(time of unpacking)".into(),
            Some((secs, 0)) => secs.to_string(),
            Some((secs, nanos)) => format!("{secs}.{nanos:09}"),
        },
        Attribute::Hardlinks => {
            let list: Vec<String> = entry.hardlinks().iter().map(EntryPath::display).collect();
            if list.is_empty() {
                "-".into()
            } else {
                list.join(",")
            }
        }
    }
}

/// Compares two final filesystems, leaving out the attributes in `ignore`. A directory that
/// appliers create as a missing parent has no mtime of its own; its mtime is not compared.
pub fn diff_trees(a: &Tree, b: &Tree, ignore: &[Attribute]) -> TreeDiff {
    let mut diff = TreeDiff::default();
    let mut left = a.entries.iter().peekable();
    let mut right = b.entries.iter().peekable();
    loop {
        match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some((path, _)), None) => {
                diff.removed.push(path.display());
                left.next();
            }
            (None, Some((path, _))) => {
                diff.added.push(path.display());
                right.next();
            }
            (Some((pa, ea)), Some((pb, eb))) => match pa.cmp(pb) {
                std::cmp::Ordering::Less => {
                    diff.removed.push(pa.display());
                    left.next();
                }
                std::cmp::Ordering::Greater => {
                    diff.added.push(pb.display());
                    right.next();
                }
                std::cmp::Ordering::Equal => {
                    let differences: Vec<Difference> = Attribute::ALL
                        .into_iter()
                        .filter(|attribute| !ignore.contains(attribute))
                        .filter(|attribute| {
                            !(*attribute == Attribute::Mtime
                                && (ea.mtime.is_none() || eb.mtime.is_none()))
                        })
                        .filter_map(|attribute| {
                            let (va, vb) = (value(ea, attribute), value(eb, attribute));
                            (va != vb).then_some(Difference { attribute, a: va, b: vb })
                        })
                        .collect();
                    if !differences.is_empty() {
                        diff.changed.push(ChangedPath { path: pa.display(), differences });
                    }
                    left.next();
                    right.next();
                }
            },
        }
    }
    diff
}

/// Compares the final filesystems of two images (see [`diff_trees`]), each read within
/// `context`'s threads.
pub fn diff_images(
    a: &Image,
    b: &Image,
    ignore: &[Attribute],
    context: &Context<'_>,
) -> Result<TreeDiff> {
    let (ta, tb) = (a.tree_in(context)?, b.tree_in(context)?);
    Ok(diff_trees(&ta, &tb, ignore))
}
