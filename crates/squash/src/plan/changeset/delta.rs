//! The range as a delta: its layers applied one after the other under the changeset rules
//! (docs/layer-rules.md) over an unknown lower filesystem. Each path it touches is a directory
//! (opaque when the lower layers' children must stay hidden), another node (with an inode, so
//! that hard links can be followed), removed, or a directory only entries and markers below it
//! imply; each of its entries gets a [`Fate`].

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Bound;

use super::range_plan::Fate;
use crate::error::{Error, Result};
use crate::layer::entry::{EntryKind, EntryPath, OPAQUE_WHITEOUT, WHITEOUT_PREFIX};
use crate::layer::layer_index::{EntryClass, IndexedEntry, LayerIndex};

/// A position in the range: (layer within the range, entry within the layer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Pos {
    layer: u32,
    entry: u32,
}

impl Pos {
    /// Entry `entry` of the range's `layer`-th layer (positions are stored in 32 bits: a plan
    /// holds several per entry).
    pub(super) fn new(layer: usize, entry: usize) -> Pos {
        Pos { layer: layer as u32, entry: entry as u32 }
    }
    pub(super) fn layer(self) -> usize {
        self.layer as usize
    }
    pub(super) fn entry(self) -> usize {
        self.entry as usize
    }
}

/// What the range makes of one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Node {
    /// A directory: its newest header, where its current incarnation began, and whether the
    /// lower layers' children are hidden.
    Dir { newest: Pos, first: Pos, opaque: bool },
    /// Any other entry, sharing `inode` (an index into the delta's inodes) with its hard links.
    Other { pos: Pos, inode: u32 },
    /// Deleted: whatever the lower layers hold here is hidden.
    Removed,
    /// An opaque marker on a directory that only the lower layers hold.
    OpaqueOnly,
    /// A directory that no entry names but that an entry or marker below it creates, as appliers
    /// create missing parents, where the lower layers cannot show (under a removed or opaque
    /// directory). Written as markers: `.wh.NAME` if the lower layers may hold it (`whiteout`),
    /// then `NAME/.wh..wh..opq`, which creates it (for appliers that create a marker's parents)
    /// and hides nothing more; and as a directory header when no surviving entry below it
    /// creates it, so that it exists whatever the applier and whatever the marker's parents are
    /// at the moment it is applied. `by` is the entry or marker that implied it first.
    Implicit { whiteout: bool, by: Pos },
    /// A directory that no entry names but that the entry at `by` implies as a parent, where the
    /// lower layers show: it may exist below or be new. Transparent like a directory without a
    /// header (`opaque` once an opaque marker hid the lower layers' children). When nothing that
    /// survives lies below it and the lower layers do not hold it, it is written as a directory
    /// header. `by_marker`: only markers implied it (in a base range, where appliers that create
    /// a marker's parents make it and others do not).
    Implied { by: Pos, opaque: bool, by_marker: bool },
}

/// Where the content of an inode comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum InodeSource {
    /// Content written by this entry of the range.
    Entry(Pos),
    /// A file of the layers below the range, reached by a hard link (boxed: rare, and the list
    /// has an element per entry).
    Lower(Box<EntryPath>),
}

/// The range applied over an unknown lower filesystem: every path it touches, the inodes of its
/// files, and the fate of each of its entries.
pub(super) struct Delta<'a> {
    pub(super) layers: &'a [LayerIndex],
    /// Whether the range starts at the image's first layer: nothing lies below, so nothing needs
    /// hiding and no marker is written.
    pub(super) base: bool,
    /// Paths borrowed from the indexes, owned only for directories that entries imply.
    pub(super) map: BTreeMap<Cow<'a, EntryPath>, Node>,
    pub(super) inodes: Vec<InodeSource>,
    lower_inodes: BTreeMap<EntryPath, u32>,
    pub(super) fates: Vec<Vec<Fate>>,
    /// While layers are applied: a directory that, with every ancestor, is a plain directory of
    /// the delta (not opaque; the root may be absent), so that an entry directly in it has
    /// nothing to materialize and sees the lower layers. Entries of a tar come grouped by
    /// directory, so most skip the walk up their ancestors; anything that changes the directory
    /// or an ancestor forgets it.
    plain_dir: Option<&'a [u8]>,
}

/// The bytes of `path`'s parent directory (empty: the root).
fn parent_bytes(path: &EntryPath) -> &[u8] {
    let bytes = path.as_bytes();
    &bytes[..bytes.iter().rposition(|&b| b == b'/').unwrap_or(0)]
}

/// The bounds of the strict descendants of `path` in byte order: `path/` up to `path0`.
pub(super) fn descendants(path: &EntryPath) -> (Bound<EntryPath>, Bound<EntryPath>) {
    if path.is_root() {
        return (Bound::Excluded(EntryPath::root()), Bound::Unbounded);
    }
    let mut low = path.as_bytes().to_vec();
    low.push(b'/');
    let mut high = path.as_bytes().to_vec();
    high.push(b'/' + 1);
    (
        Bound::Included(EntryPath::from_normalized(low)),
        Bound::Excluded(EntryPath::from_normalized(high)),
    )
}

impl<'a> Delta<'a> {
    fn new(layers: &'a [LayerIndex]) -> Self {
        let fates = layers.iter().map(|l| vec![Fate::Kept; l.entries.len()]).collect();
        let base = layers.first().is_none_or(|l| l.layer == 0);
        Delta {
            layers,
            base,
            map: BTreeMap::new(),
            inodes: Vec::new(),
            lower_inodes: BTreeMap::new(),
            fates,
            plain_dir: None,
        }
    }

    /// The delta of `layers` once every one of them is applied, oldest first.
    pub(super) fn applied(layers: &'a [LayerIndex]) -> Result<Self> {
        let mut delta = Delta::new(layers);
        for layer in 0..layers.len() {
            delta.apply_layer(layer)?;
        }
        delta.plain_dir = None;
        Ok(delta)
    }

    fn image_layer(&self, layer: usize) -> usize {
        self.layers[layer].layer
    }

    fn error(&self, pos: Pos, reason: String) -> Error {
        let entry = &self.layers[pos.layer()].entries[pos.entry()];
        Error::MalformedTar {
            location: self.layers[pos.layer()].location.clone().entry(entry.path.display()),
            reason,
        }
    }

    /// Whether what the lower layers hold at `path` can still show through: no ancestor in the
    /// delta is removed, opaque, or something other than a directory.
    pub(super) fn lower_visible(&self, path: &EntryPath) -> bool {
        !self.base
            && path.ancestors().all(|a| match self.map.get(&a) {
                None => true,
                Some(Node::Dir { opaque, .. }) | Some(Node::Implied { opaque, .. }) => !opaque,
                Some(_) => false,
            })
    }

    /// Records that the entry behind `node` no longer survives.
    pub(super) fn retire(&mut self, node: &Node, fate: Fate) {
        match node {
            Node::Dir { newest, .. } => self.fates[newest.layer()][newest.entry()] = fate,
            Node::Other { pos, .. } => self.fates[pos.layer()][pos.entry()] = fate,
            Node::Removed | Node::OpaqueOnly | Node::Implicit { .. } | Node::Implied { .. } => {}
        }
    }

    /// Records the directories that applying the entry or marker at `pos`, at `path`, creates: a
    /// removed ancestor comes back as an implicit directory, and so do missing ancestors below one
    /// that hides the lower layers; other missing ancestors of an entry are implied. A marker
    /// implies nothing where the lower layers show (appliers differ on a marker's parents, and
    /// the marker is written again), except in a base range, where no marker is written and its
    /// parents are implied like an entry's. Returns `None` if an ancestor is not a directory,
    /// else whether every ancestor was already a plain directory (the root may be absent).
    fn materialize_parents(&mut self, path: &EntryPath, pos: Pos, marker: bool) -> Option<bool> {
        let implies = !marker || self.base;
        let mut hidden = false;
        let mut plain = true;
        for ancestor in path.ancestors() {
            let found = self.map.get_mut(&ancestor);
            plain &= match &found {
                Some(Node::Dir { opaque, .. }) => !opaque,
                None => ancestor.is_root(),
                Some(_) => false,
            };
            match found {
                Some(Node::Other { .. }) => return None,
                Some(Node::Removed) => {
                    self.map
                        .insert(Cow::Owned(ancestor), Node::Implicit { whiteout: true, by: pos });
                    hidden = true;
                }
                Some(Node::Implicit { .. }) => hidden = true,
                Some(Node::OpaqueOnly) | Some(Node::Dir { opaque: true, .. }) => hidden = true,
                Some(Node::Implied { opaque, by_marker, .. }) => {
                    *by_marker &= marker;
                    hidden |= *opaque;
                }
                Some(Node::Dir { opaque: false, .. }) => {}
                None if hidden => {
                    self.map
                        .insert(Cow::Owned(ancestor), Node::Implicit { whiteout: false, by: pos });
                }
                None if implies && !ancestor.is_root() => {
                    self.map.insert(
                        Cow::Owned(ancestor),
                        Node::Implied { by: pos, opaque: false, by_marker: marker },
                    );
                }
                None => {}
            }
        }
        Some(plain)
    }

    pub(super) fn remove_descendants(&mut self, path: &EntryPath, fate: Fate) {
        let doomed: Vec<Cow<'a, EntryPath>> =
            self.map.range::<EntryPath, _>(descendants(path)).map(|(k, _)| k.clone()).collect();
        for key in doomed {
            if let Some(node) = self.map.remove(&key) {
                self.retire(&node, fate);
            }
        }
    }

    fn whiteout(&mut self, target: &'a EntryPath, pos: Pos) {
        let by = self.image_layer(pos.layer());
        // A whiteout under a non-directory (umoci writes such) deletes nothing.
        self.plain_dir = None;
        if self.materialize_parents(target, pos, true).is_none() {
            return;
        }
        self.remove_descendants(target, Fate::Deleted { by });
        if let Some(node) = self.map.remove(target) {
            self.retire(&node, Fate::Deleted { by });
        }
        if self.lower_visible(target) {
            self.map.insert(Cow::Borrowed(target), Node::Removed);
        }
    }

    fn opaque(&mut self, dir: &'a EntryPath, pos: Pos) {
        let by = self.image_layer(pos.layer());
        self.plain_dir = None;
        if self.materialize_parents(&dir.join(OPAQUE_WHITEOUT), pos, true).is_none() {
            return;
        }
        self.remove_descendants(dir, Fate::Deleted { by });
        let visible = self.lower_visible(dir);
        match self.map.get_mut(dir) {
            Some(Node::Dir { opaque, .. }) | Some(Node::Implied { opaque, .. }) => {
                *opaque |= visible
            }
            Some(Node::OpaqueOnly) | Some(Node::Implicit { .. }) => {}
            _ => {
                if visible {
                    self.map.insert(Cow::Borrowed(dir), Node::OpaqueOnly);
                }
            }
        }
    }

    /// Materializes the parents of the entry at `path` (see [`Delta::materialize_parents`]),
    /// or fails if one is not a directory. Returns whether every ancestor is a plain directory.
    fn check_parents(&mut self, path: &'a EntryPath, pos: Pos) -> Result<bool> {
        let parent = parent_bytes(path);
        if self.plain_dir == Some(parent) {
            return Ok(true);
        }
        if let Some(plain) = self.materialize_parents(path, pos, false) {
            self.plain_dir = plain.then_some(parent);
            return Ok(plain);
        }
        let blocker = path
            .ancestors()
            .find(|a| matches!(self.map.get(a), Some(Node::Other { .. })))
            .unwrap_or_default();
        Err(self.error(pos, format!("parent `{}` is not a directory", blocker.display())))
    }

    fn apply_node(&mut self, pos: Pos, kind: EntryKind) -> Result<()> {
        let by = self.image_layer(pos.layer());
        let layers: &'a [LayerIndex] = self.layers;
        let entry = &layers[pos.layer()].entries[pos.entry()];
        let path = &entry.path;
        let plain_parents = self.check_parents(path, pos)?;
        // The cache now holds the entry's parent or nothing, and the entry changes only itself
        // and what is below it: the cache stands, unless the entry is the root itself.
        if path.is_root() {
            self.plain_dir = None;
        }
        if kind == EntryKind::Dir {
            let visible = if plain_parents { !self.base } else { self.lower_visible(path) };
            let replaced = match self.map.get_mut(path) {
                Some(Node::Dir { newest, .. }) => {
                    let old = *newest;
                    *newest = pos;
                    self.fates[old.layer()][old.entry()] = Fate::Replaced { by };
                    return Ok(());
                }
                Some(Node::OpaqueOnly) => Some((Node::OpaqueOnly, true)),
                Some(implicit @ Node::Implicit { .. }) => Some((implicit.clone(), visible)),
                Some(Node::Removed) => Some((Node::Removed, visible)),
                Some(other @ Node::Other { .. }) => Some((other.clone(), visible)),
                Some(Node::Implied { opaque, .. }) => Some((Node::Removed, *opaque)),
                None => None,
            };
            let opaque = match replaced {
                Some((old, opaque)) => {
                    self.retire(&old, Fate::Replaced { by });
                    opaque
                }
                None => false,
            };
            self.map.insert(Cow::Borrowed(path), Node::Dir { newest: pos, first: pos, opaque });
            return Ok(());
        }
        let inode = if kind == EntryKind::Hardlink {
            let target = entry.link_target.clone().unwrap_or_default();
            if target == *path {
                return Err(self.error(pos, "hard link to itself".into()));
            }
            match self.map.get(&target) {
                Some(Node::Other { inode, .. }) => *inode,
                Some(Node::Dir { .. })
                | Some(Node::OpaqueOnly)
                | Some(Node::Implicit { .. })
                | Some(Node::Implied { .. }) => {
                    return Err(
                        self.error(pos, format!("hard link to directory `{}`", target.display()))
                    );
                }
                Some(Node::Removed) => {
                    return Err(self.error(
                        pos,
                        format!("hard link target `{}` was deleted", target.display()),
                    ));
                }
                None if self.lower_visible(&target) => match self.lower_inodes.get(&target) {
                    Some(&inode) => inode,
                    None => {
                        self.inodes.push(InodeSource::Lower(Box::new(target.clone())));
                        let inode = (self.inodes.len() - 1) as u32;
                        self.lower_inodes.insert(target, inode);
                        inode
                    }
                },
                None => {
                    return Err(self.error(
                        pos,
                        format!("hard link target `{}` does not exist", target.display()),
                    ));
                }
            }
        } else {
            self.inodes.push(InodeSource::Entry(pos));
            (self.inodes.len() - 1) as u32
        };
        self.remove_descendants(path, Fate::Replaced { by });
        if let Some(old) = self.map.insert(Cow::Borrowed(path), Node::Other { pos, inode }) {
            self.retire(&old, Fate::Replaced { by });
        }
        Ok(())
    }

    fn apply_layer(&mut self, layer: usize) -> Result<()> {
        let entries: &'a [IndexedEntry] = &self.layers[layer].entries;
        // Whiteouts hide lower layers only, wherever they sit in the tar: apply them first
        // (docs/layer-rules.md, rules 3 and 5), plain ones before opaque ones.
        let mut plain = Vec::new();
        let mut opaque = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            match &entry.class {
                EntryClass::Whiteout(target) => plain.push((index, target)),
                EntryClass::Opaque(dir) => opaque.push((index, dir)),
                EntryClass::Ignored => self.fates[layer][index] = Fate::Ignored,
                EntryClass::Node(_) => {}
            }
        }
        for (index, target) in plain {
            self.fates[layer][index] = Fate::Marker;
            self.whiteout(target, Pos::new(layer, index));
        }
        for (index, dir) in opaque {
            self.fates[layer][index] = Fate::Marker;
            self.opaque(dir, Pos::new(layer, index));
        }
        for index in 0..entries.len() {
            if let EntryClass::Node(kind) = self.layers[layer].entries[index].class {
                self.apply_node(Pos::new(layer, index), kind)?;
            }
        }
        Ok(())
    }
}

/// The whiteout marker that deletes `path`.
pub(super) fn whiteout_name(path: &EntryPath) -> Vec<u8> {
    let mut name = WHITEOUT_PREFIX.to_vec();
    name.extend_from_slice(path.file_name());
    path.parent().unwrap_or_default().join(&name).as_bytes().to_vec()
}

/// The opaque marker of the directory `dir`.
pub(super) fn opaque_name(dir: &EntryPath) -> Vec<u8> {
    dir.join(OPAQUE_WHITEOUT).as_bytes().to_vec()
}

/// The nearest ancestor of `path` that is a directory with a header of its own.
pub(super) fn nearest_dir(delta: &Delta<'_>, path: &EntryPath) -> Option<EntryPath> {
    let mut found = None;
    for ancestor in path.ancestors() {
        if let Some(Node::Dir { .. }) = delta.map.get(&ancestor) {
            found = Some(ancestor);
        }
    }
    found
}
