//! The OCI changeset rules (image-spec `layer.md`), applied to the indexes of a layer range to
//! decide which entries survive a squash, which whiteouts the kept layers below still need, and
//! in what order the new layer's entries must be written.
//!
//! The range is simulated as a *delta* over an unknown lower filesystem: each touched path is a
//! directory (with an "opaque" flag when the lower layers' children must stay hidden), another
//! node (with an inode number, so hard links can be followed), or removed. Nothing is read here.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use super::exclude::{ExcludeFigures, Excludes};
use super::{Fate, Item, LowerCopy, RangePlan, Step};
use crate::error::{Error, Result};
use crate::layer::entry::{EntryKind, EntryPath, OPAQUE_WHITEOUT, WHITEOUT_PREFIX};
use crate::layer::header::{implied_directory, marker, rename_group, END_OF_ARCHIVE};
use crate::layer::index::{EntryClass, EntryFilter, LayerIndex};
use crate::layer::tarstream::padding;

/// A position in the range: (layer within the range, entry within the layer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Pos {
    layer: u32,
    entry: u32,
}

impl Pos {
    /// Entry `entry` of the range's `layer`-th layer (positions are stored in 32 bits: a plan
    /// holds several per entry).
    fn new(layer: usize, entry: usize) -> Pos {
        Pos { layer: layer as u32, entry: entry as u32 }
    }
    fn layer(self) -> usize {
        self.layer as usize
    }
    fn entry(self) -> usize {
        self.entry as usize
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
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

#[derive(Debug, Clone, PartialEq, Eq)]
enum InodeSource {
    /// Content written by this entry of the range.
    Entry(Pos),
    /// A file of the layers below the range, reached by a hard link (boxed: rare, and the list
    /// has an element per entry).
    Lower(Box<EntryPath>),
}

struct Delta<'a> {
    layers: &'a [LayerIndex],
    /// Whether the range starts at the image's first layer: nothing lies below, so nothing needs
    /// hiding and no marker is written.
    base: bool,
    /// Paths borrowed from the indexes, owned only for directories that entries imply.
    map: BTreeMap<Cow<'a, EntryPath>, Node>,
    inodes: Vec<InodeSource>,
    lower_inodes: BTreeMap<EntryPath, u32>,
    fates: Vec<Vec<Fate>>,
}

/// The bounds of the strict descendants of `path` in byte order: `path/` up to `path0`.
fn descendants(path: &EntryPath) -> (Bound<EntryPath>, Bound<EntryPath>) {
    if path.is_root() {
        return (Bound::Excluded(EntryPath::root()), Bound::Unbounded);
    }
    let mut low = path.as_bytes().to_vec();
    low.push(b'/');
    let mut high = path.as_bytes().to_vec();
    high.push(b'/' + 1);
    (Bound::Included(EntryPath::from_normalized(low)), Bound::Excluded(EntryPath::from_normalized(high)))
}

impl<'a> Delta<'a> {
    fn new(layers: &'a [LayerIndex]) -> Self {
        let fates = layers.iter().map(|l| vec![Fate::Kept; l.entries.len()]).collect();
        let base = layers.first().is_none_or(|l| l.layer == 0);
        Delta { layers, base, map: BTreeMap::new(), inodes: Vec::new(), lower_inodes: BTreeMap::new(), fates }
    }

    /// The delta of `layers` once every one of them is applied, oldest first.
    fn applied(layers: &'a [LayerIndex]) -> Result<Self> {
        let mut delta = Delta::new(layers);
        for layer in 0..layers.len() {
            delta.apply_layer(layer)?;
        }
        Ok(delta)
    }

    fn image_layer(&self, layer: usize) -> usize {
        self.layers[layer].layer
    }

    fn error(&self, pos: Pos, reason: String) -> Error {
        let entry = &self.layers[pos.layer()].entries[pos.entry()];
        Error::MalformedTar { location: self.layers[pos.layer()].location.clone().entry(entry.path.display()), reason }
    }

    /// Whether what the lower layers hold at `path` can still show through: no ancestor in the
    /// delta is removed, opaque, or something other than a directory.
    fn lower_visible(&self, path: &EntryPath) -> bool {
        !self.base
            && path.ancestors().all(|a| match self.map.get(&a) {
                None => true,
                Some(Node::Dir { opaque, .. }) | Some(Node::Implied { opaque, .. }) => !opaque,
                Some(_) => false,
            })
    }

    /// Records that the entry behind `node` no longer survives.
    fn retire(&mut self, node: &Node, fate: Fate) {
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
    /// parents are implied like an entry's. Returns false if an ancestor is not a directory.
    fn materialize_parents(&mut self, path: &EntryPath, pos: Pos, marker: bool) -> bool {
        let implies = !marker || self.base;
        let mut hidden = false;
        for ancestor in path.ancestors() {
            match self.map.get_mut(&ancestor) {
                Some(Node::Other { .. }) => return false,
                Some(Node::Removed) => {
                    self.map.insert(Cow::Owned(ancestor), Node::Implicit { whiteout: true, by: pos });
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
                    self.map.insert(Cow::Owned(ancestor), Node::Implicit { whiteout: false, by: pos });
                }
                None if implies && !ancestor.is_root() => {
                    self.map.insert(Cow::Owned(ancestor), Node::Implied { by: pos, opaque: false, by_marker: marker });
                }
                None => {}
            }
        }
        true
    }

    fn remove_descendants(&mut self, path: &EntryPath, fate: Fate) {
        let doomed: Vec<Cow<'a, EntryPath>> = self.map.range::<EntryPath, _>(descendants(path)).map(|(k, _)| k.clone()).collect();
        for key in doomed {
            if let Some(node) = self.map.remove(&key) {
                self.retire(&node, fate);
            }
        }
    }

    fn whiteout(&mut self, target: &'a EntryPath, pos: Pos) {
        let by = self.image_layer(pos.layer());
        // A whiteout under a non-directory (umoci writes such) deletes nothing.
        if !self.materialize_parents(target, pos, true) {
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
        if !self.materialize_parents(&dir.join(OPAQUE_WHITEOUT), pos, true) {
            return;
        }
        self.remove_descendants(dir, Fate::Deleted { by });
        let visible = self.lower_visible(dir);
        match self.map.get_mut(dir) {
            Some(Node::Dir { opaque, .. }) | Some(Node::Implied { opaque, .. }) => *opaque |= visible,
            Some(Node::OpaqueOnly) | Some(Node::Implicit { .. }) => {}
            _ => {
                if visible {
                    self.map.insert(Cow::Borrowed(dir), Node::OpaqueOnly);
                }
            }
        }
    }

    fn check_parents(&mut self, path: &EntryPath, pos: Pos) -> Result<()> {
        if self.materialize_parents(path, pos, false) {
            return Ok(());
        }
        let blocker = path.ancestors().find(|a| matches!(self.map.get(a), Some(Node::Other { .. }))).unwrap_or_default();
        Err(self.error(pos, format!("parent `{}` is not a directory", blocker.display())))
    }

    fn apply_node(&mut self, pos: Pos, kind: EntryKind) -> Result<()> {
        let by = self.image_layer(pos.layer());
        let layers: &'a [LayerIndex] = self.layers;
        let entry = &layers[pos.layer()].entries[pos.entry()];
        let path = &entry.path;
        self.check_parents(path, pos)?;
        if kind == EntryKind::Dir {
            let visible = self.lower_visible(path);
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
                Some(Node::Dir { .. }) | Some(Node::OpaqueOnly) | Some(Node::Implicit { .. }) | Some(Node::Implied { .. }) => {
                    return Err(self.error(pos, format!("hard link to directory `{}`", target.display())));
                }
                Some(Node::Removed) => {
                    return Err(self.error(pos, format!("hard link target `{}` was deleted", target.display())));
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
                    return Err(self.error(pos, format!("hard link target `{}` does not exist", target.display())));
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
        let entries: &'a [crate::layer::index::IndexedEntry] = &self.layers[layer].entries;
        // Whiteouts hide lower layers only, wherever they sit in the tar: apply them first
        // (SPEC-NOTES rules 3 and 5), plain ones before opaque ones.
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

/// Where each surviving entry goes in the new layer.
struct Schedule {
    /// For each layer of the range, the items attached to its stream positions, which are
    /// scheduled in increasing order: emitted in order when the merge reaches them.
    steps: Vec<Vec<Step>>,
    emitted_dirs: BTreeSet<EntryPath>,
    /// Markers of implicit directories, by their nearest directory with a header: written right
    /// after it (and after its own opaque marker, so that marker cannot hide them).
    markers_after: BTreeMap<EntryPath, Vec<Vec<u8>>>,
}

/// What an event of the schedule writes: the directory whose incarnation begins there, a plain
/// copy of the entry, or an item held aside.
#[derive(Debug, Clone, Copy)]
enum What {
    Dir,
    Copy,
    Held(u32),
}

impl Schedule {
    /// Schedules `item` at `pos`, which is the last position scheduled or a later one.
    fn push(&mut self, pos: Pos, item: Item) {
        let steps = &mut self.steps[pos.layer()];
        match steps.last_mut() {
            Some(step) if step.entry == pos.entry() => step.push(item),
            _ => steps.push(Step::with(pos.entry(), item)),
        }
    }
}

fn whiteout_name(path: &EntryPath) -> Vec<u8> {
    let mut name = WHITEOUT_PREFIX.to_vec();
    name.extend_from_slice(path.file_name());
    path.parent().unwrap_or_default().join(&name).as_bytes().to_vec()
}

fn opaque_name(dir: &EntryPath) -> Vec<u8> {
    dir.join(OPAQUE_WHITEOUT).as_bytes().to_vec()
}

/// A file of the layers below a range, visible at the range's start: what a hard link in the
/// range may need when the range deletes the file's name.
#[derive(Debug, Clone)]
pub(crate) struct LowerSource {
    /// The image layer holding the content, and the entry there.
    pub layer: usize,
    pub entry: usize,
    pub raw: Box<[u8]>,
    pub stored_size: u64,
    /// Every name the file has there (its hard links), in byte order: a link in the range can
    /// point at one the range leaves alone instead of becoming a copy.
    pub names: Vec<EntryPath>,
}

/// What a range's plan needs to know of the layers below it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Lower {
    /// Files that hard links in the range need, when the range deletes their names.
    pub files: BTreeMap<EntryPath, LowerSource>,
    /// Of the directories the range implies, those that the lower layers hold; `None` until
    /// asked for.
    pub dirs: Option<BTreeSet<EntryPath>>,
    /// Entries (layer below, entry) of `files` whose header the index did not keep.
    pub missing_headers: BTreeSet<(usize, usize)>,
    /// `--exclude`: what the layers below hold that the patterns cover, once asked for.
    pub excluded: Option<LowerExcluded>,
}

/// What `--exclude` needs of the layers below a range.
#[derive(Debug, Clone, Default)]
pub(crate) struct LowerExcluded {
    /// Of the paths the range drops, those the layers below hold (any type): each gets a
    /// whiteout, or the lower one would show again.
    pub held: BTreeSet<EntryPath>,
    /// The highest paths of the layers below that the patterns cover, each with the pattern,
    /// and the entries and tar bytes of what it hides there.
    pub tops: Vec<(EntryPath, usize, u64, u64)>,
}

/// `--exclude` over the layers below a range (the image's first layers, applied in full):
/// which of `asked` they hold, and the highest paths the patterns cover with what is under each.
pub(crate) fn resolve_excluded(layers: &[LayerIndex], asked: &BTreeSet<EntryPath>, exclude: &Excludes) -> Result<LowerExcluded> {
    let delta = Delta::applied(layers)?;
    let held = asked.iter().filter(|p| delta.map.contains_key(*p)).cloned().collect();
    let mut tops: Vec<(EntryPath, usize, u64, u64)> = Vec::new();
    for (path, node) in &delta.map {
        let size = |pos: &Pos| layers[pos.layer()].entries[pos.entry()].tar_size();
        // (directory, entries, bytes): a directory only entries below imply is no entry.
        let (dir, entries, bytes) = match node {
            Node::Dir { newest, .. } => (true, 1, size(newest)),
            Node::Other { pos, .. } => (false, 1, size(pos)),
            Node::Implied { .. } => (true, 0, 0),
            _ => continue,
        };
        if let Some(top) = tops.last_mut().filter(|t| path.starts_with(&t.0)) {
            top.2 += entries;
            top.3 += bytes;
            continue;
        }
        if let Some(pattern) = exclude.matching(path, dir) {
            tops.push((EntryPath::clone(path), pattern, entries, bytes));
        }
    }
    Ok(LowerExcluded { held, tops })
}

/// `--exclude` above every range: the first path of `layers` (kept layers above the top-most
/// range, oldest first) that the patterns cover and that is still there after the last of them,
/// with the pattern that covers it, as (position in `layers`, entry, pattern).
pub(crate) fn excluded_above(layers: &[LayerIndex], exclude: &Excludes) -> Result<Option<(usize, usize, usize)>> {
    let delta = Delta::applied(layers)?;
    for (path, node) in &delta.map {
        let (pos, dir) = match node {
            Node::Dir { newest, .. } => (*newest, true),
            Node::Other { pos, .. } => (*pos, false),
            _ => continue,
        };
        if let Some(pattern) = exclude.covering(path, dir) {
            return Ok(Some((pos.layer(), pos.entry(), pattern)));
        }
    }
    Ok(None)
}

/// Resolves `files` to the entries that provide them after applying `layers` (the layers
/// below a range, base first), leaving out paths that are not regular files there; and finds
/// which of `dirs` are directories there.
pub(crate) fn resolve_lower(layers: &[LayerIndex], files: &BTreeSet<EntryPath>, dirs: &BTreeSet<EntryPath>) -> Result<Lower> {
    let delta = Delta::applied(layers)?;
    // A directory only markers made is there for some appliers and not for others: not held.
    let held = dirs
        .iter()
        .filter(|d| matches!(delta.map.get(*d), Some(Node::Dir { .. }) | Some(Node::Implied { by_marker: false, .. })))
        .cloned()
        .collect();
    let mut out = BTreeMap::new();
    let mut missing_headers = BTreeSet::new();
    for target in files {
        if let Some(Node::Other { inode, .. }) = delta.map.get(target) {
            if let InodeSource::Entry(pos) = &delta.inodes[*inode as usize] {
                let entry = &layers[pos.layer()].entries[pos.entry()];
                let names = delta
                    .map
                    .iter()
                    .filter(|(_, node)| matches!(node, Node::Other { inode: other, .. } if other == inode))
                    .map(|(path, _)| EntryPath::clone(path))
                    .collect();
                out.insert(
                    target.clone(),
                    LowerSource {
                        layer: layers[pos.layer()].layer,
                        entry: pos.entry(),
                        raw: match entry.raw.as_deref() {
                            Some(raw) => raw.into(),
                            None => {
                                missing_headers.insert((pos.layer(), pos.entry()));
                                Box::default()
                            }
                        },
                        stored_size: entry.stored_size,
                        names,
                    },
                );
            }
        }
    }
    Ok(Lower { files: out, dirs: Some(held), missing_headers, excluded: None })
}

/// Where a path of an image's final filesystem comes from, once every layer is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FinalSource {
    /// A directory: its newest header, as (layer, entry).
    Dir(usize, usize),
    /// Any other node: the entry at `at`, whose content (and metadata, shared by every name of
    /// the inode) is that of the entry `content`, the file a hard link reaches or the entry
    /// itself; `inode` groups hard links.
    Other { at: (usize, usize), content: (usize, usize), inode: u32 },
    /// A directory that only entries below it imply: appliers create it (0755, root).
    Implied,
}

/// The final filesystem of `layers`, all of an image's layers from its first: each path and where
/// it comes from, in byte order. A directory that only a marker's parent path implies is there,
/// as Docker, containerd and podman make it (umoci does not).
pub(crate) fn final_tree(layers: &[LayerIndex]) -> Result<Vec<(EntryPath, FinalSource)>> {
    let delta = Delta::applied(layers)?;
    let mut out = Vec::with_capacity(delta.map.len());
    for (path, node) in &delta.map {
        let source = match node {
            Node::Dir { newest, .. } => FinalSource::Dir(newest.layer(), newest.entry()),
            Node::Other { pos, inode } => match &delta.inodes[*inode as usize] {
                InodeSource::Entry(content) => {
                    FinalSource::Other { at: (pos.layer(), pos.entry()), content: (content.layer(), content.entry()), inode: *inode }
                }
                InodeSource::Lower(_) => continue,
            },
            Node::Implied { .. } => FinalSource::Implied,
            _ => continue,
        };
        out.push((EntryPath::clone(path), source));
    }
    Ok(out)
}

/// Which of some directories the layers below a range hold, asked of indexes that keep only what
/// the answer depends on (an [`EntryFilter`] for [`resolve_lower`] without files): the entries
/// at those directories and their ancestors, the markers that delete one of them or hide their
/// contents, and, per layer and directory, one entry below it, which implies it. That entry is
/// kept as a directory header of its first component below the directory (what it implies
/// there), so that what the filter leaves out of the deeper levels cannot make it conflict
/// with anything. A base image of many files is then held as a few records per directory asked
/// about, not one per file.
pub(crate) struct DirQuery {
    /// The directories asked about.
    dirs: BTreeSet<EntryPath>,
    /// Those and their ancestors.
    relevant: BTreeSet<EntryPath>,
}

impl DirQuery {
    pub(crate) fn new(dirs: &BTreeSet<EntryPath>) -> DirQuery {
        let mut relevant = BTreeSet::new();
        for dir in dirs {
            relevant.extend(dir.ancestors());
            relevant.insert(dir.clone());
        }
        DirQuery { dirs: dirs.clone(), relevant }
    }
}

impl EntryFilter for DirQuery {
    fn for_layer(&self) -> Box<dyn FnMut(&mut crate::layer::index::IndexedEntry) -> bool + '_> {
        // The directories asked about that an entry of this layer already implies.
        let mut implied: BTreeSet<EntryPath> = BTreeSet::new();
        Box::new(move |entry| match &entry.class {
            EntryClass::Whiteout(target) | EntryClass::Opaque(target) => self.relevant.contains(target),
            EntryClass::Ignored => false,
            EntryClass::Node(_) if self.relevant.contains(&entry.path) => {
                // What this filter keeps of the layers never holds a hard link's target.
                if entry.class == EntryClass::Node(EntryKind::Hardlink) {
                    entry.class = EntryClass::Node(EntryKind::File);
                    entry.link_target = None;
                }
                true
            }
            EntryClass::Node(_) => {
                let Some(dir) = entry.path.ancestors().filter(|a| self.dirs.contains(a)).last() else { return false };
                if implied.contains(&dir) {
                    return false;
                }
                let rest = &entry.path.as_bytes()[if dir.is_root() { 0 } else { dir.as_bytes().len() + 1 }..];
                let child = rest.split(|&b| b == b'/').next().unwrap_or(rest);
                implied.extend(self.dirs.iter().filter(|d| dir.starts_with(d)).cloned());
                entry.path = dir.join(child);
                entry.class = EntryClass::Node(EntryKind::Dir);
                entry.link_target = None;
                entry.stored_size = 0;
                entry.size = 0;
                entry.raw = None;
                true
            }
        })
    }
}

/// Plans the merge of `layers` (oldest first) into one layer. `lower` gives what the plan needs
/// of the layers below the range; the plan lists in `missing_lower` and `missing_lower_dirs`
/// what it needed and did not get (call [`resolve_lower`] and plan again).
pub(crate) fn plan_range(layers: &[LayerIndex], lower: &Lower, exclude: &Excludes) -> Result<RangePlan> {
    let mut delta = Delta::applied(layers)?;
    let (missing_excluded, excluded) = if exclude.is_empty() { (None, Vec::new()) } else { apply_excludes(&mut delta, lower, exclude) };
    let mut missing_lower: BTreeSet<EntryPath> = BTreeSet::new();
    let mut missing_headers: BTreeSet<(usize, usize)> = BTreeSet::new();
    let entry = |pos: Pos| &layers[pos.layer()].entries[pos.entry()];

    // Group the surviving non-directories by inode.
    // Paths are borrowed from the delta and the indexes, not copied: a plan's memory is a few
    // small records per entry.
    // One flat list sorted by inode, not a list per inode: no allocation per entry.
    let mut members: Vec<(u32, Pos, &EntryPath)> = delta
        .map
        .iter()
        .filter_map(|(path, node)| match node {
            Node::Other { pos, inode } => Some((*inode, *pos, &**path)),
            _ => None,
        })
        .collect();
    members.sort_unstable_by_key(|&(inode, pos, _)| (inode, pos));
    // What is written where, in one list that is sorted by position below (an event per
    // surviving entry, not a map): (position, rank, name, item), where the rank orders what one
    // position writes: implied directories (parents first), the entry (an emission: its item),
    // then a directory whose incarnation begins there (no item).
    // Items other than a plain copy wait in `held`, so that an event stays small.
    let mut events: Vec<(Pos, u8, &EntryPath, What)> = Vec::with_capacity(members.len());
    let mut held: Vec<Option<Item>> = Vec::new();
    let mut hold = |item: Item| match item {
        Item::Copy => What::Copy,
        other => {
            held.push(Some(other));
            What::Held((held.len() - 1) as u32)
        }
    };
    let mut emissions = |pos: Pos, path, item| {
        let what = hold(item);
        events.push((pos, 1, path, what))
    };
    for group in members.chunk_by(|a, b| a.0 == b.0) {
        let inode = group[0].0;
        // The members of the group still to write (the first may become the file).
        let mut group = group;
        // The position at which the primary name itself is written, when it is a member.
        let mut primary_pos = None;
        let primary = match &delta.inodes[inode as usize] {
            InodeSource::Entry(source) => {
                let source_path = &entry(*source).path;
                let survives = matches!(delta.map.get(source_path), Some(Node::Other { pos, .. }) if pos == source);
                if survives {
                    emissions(*source, source_path, Item::Copy);
                    primary_pos = Some(*source);
                    source_path
                } else {
                    // SPEC-NOTES rule 7: the link outlives its target's name, so the first
                    // surviving name becomes the file, with the old content and metadata.
                    let &(_, first_pos, first_path) = &group[0];
                    group = &group[1..];
                    // The index keeps no header of a plain file: this one is read again, and the
                    // range planned anew, when it is missing.
                    let header = match entry(*source).raw.as_deref() {
                        Some(raw) => rename_group(raw, first_path.as_bytes(), None),
                        None => {
                            missing_headers.insert((source.layer(), source.entry()));
                            Vec::new()
                        }
                    };
                    emissions(*source, first_path, Item::CopyWithHeader(header));
                    delta.fates[source.layer()][source.entry()] = Fate::Kept;
                    delta.fates[first_pos.layer()][first_pos.entry()] = Fate::Converted;
                    first_path
                }
            }
            InodeSource::Lower(target) => {
                // Anything the range put at the target's name (a deletion, a directory, another
                // file) shadows the lower file there.
                let untouched = |name: &EntryPath| !delta.map.contains_key(name) && delta.lower_visible(name);
                if !untouched(target) {
                    let Some(source) = lower.files.get(target) else {
                        missing_lower.insert(EntryPath::clone(target));
                        continue;
                    };
                    // Another name of the same lower file that the range leaves alone keeps
                    // the links together with it.
                    if let Some(name) = source.names.iter().find(|n| untouched(n)) {
                        name
                    } else {
                        // SPEC-NOTES rule 7 with the target below the range: the range hides every
                        // name of it, so the first link becomes the file, its content read from the
                        // layer below that holds it.
                        let &(_, first_pos, first_path) = &group[0];
                        group = &group[1..];
                        let header = rename_group(&source.raw, first_path.as_bytes(), None);
                        emissions(
                            first_pos,
                            first_path,
                            Item::CopyLower(Box::new(LowerCopy {
                                layer: source.layer,
                                entry: source.entry,
                                stored_size: source.stored_size,
                                header,
                            })),
                        );
                        delta.fates[first_pos.layer()][first_pos.entry()] = Fate::Converted;
                        first_path
                    }
                } else {
                    target
                }
            }
        };
        let mut emitted_before: BTreeSet<&EntryPath> = BTreeSet::new();
        emitted_before.insert(primary);
        for &(_, pos, path) in group {
            if path == primary && primary_pos == Some(pos) {
                continue;
            }
            let link = entry(pos);
            // Members are visited in stream order, so every name recorded so far is written
            // before this link.
            let valid = link.link_target.as_ref().is_some_and(|target| emitted_before.contains(target));
            let item = if valid { Item::Copy } else { Item::Header(rename_group(link.raw()?, path.as_bytes(), Some(primary.as_bytes()))) };
            emitted_before.insert(path);
            emissions(pos, path, item);
        }
    }
    for (path, node) in &delta.map {
        if let Node::Dir { first, newest, .. } = node {
            if entry(*first).stored_size > 0 || entry(*newest).stored_size > 0 {
                return Err(Error::Unsupported {
                    location: layers[first.layer()].location.clone().entry(path.display()),
                    what: "directory entry with data (GNU dumpdir)".into(),
                });
            }
        }
    }

    // Markers: in the prelude, except those of implicit directories below a directory that has
    // a header, which follow that directory.
    // A whiteout in a directory that the range writes and the layers below do not hold hides
    // nothing, and overlayfs (Docker's and containerd's snapshots) lists it in that directory
    // as an entry that cannot be opened: it is left out, once the layers below say so.
    let mut missing_lower_dirs: BTreeSet<EntryPath> = BTreeSet::new();
    // So is an opaque marker of a directory the range implies and the layers below do not hold.
    let mut below = |dir: EntryPath| -> bool {
        if dir.is_root() || !matches!(delta.map.get(&dir), Some(Node::Dir { .. }) | Some(Node::Implied { .. })) {
            return true;
        }
        match &lower.dirs {
            Some(held) => held.contains(&dir),
            None => {
                missing_lower_dirs.insert(dir);
                true
            }
        }
    };
    let mut prelude = Vec::new();
    let mut markers_after: BTreeMap<EntryPath, Vec<Vec<u8>>> = BTreeMap::new();
    for (path, node) in &delta.map {
        let mut markers = Vec::new();
        match node {
            Node::Removed if below(path.parent().unwrap_or_default()) => markers.push(marker(&whiteout_name(path))),
            Node::OpaqueOnly => markers.push(marker(&opaque_name(path))),
            Node::Implied { opaque: true, .. } if below(EntryPath::clone(path)) => markers.push(marker(&opaque_name(path))),
            Node::Implicit { whiteout, .. } => {
                if *whiteout {
                    markers.push(marker(&whiteout_name(path)));
                }
                markers.push(marker(&opaque_name(path)));
                if let Some(dir) = nearest_dir(&delta, path) {
                    markers_after.entry(dir).or_default().extend(markers);
                    continue;
                }
            }
            _ => {}
        }
        prelude.extend(markers);
    }

    // Directories that the range's result holds and that nothing written creates: a header of
    // their own, at the position of the entry that implied them. Deepest first, since a written
    // directory creates its parents. So do those below a directory written with a header:
    // an applier that makes missing parents while restoring only the immediate parent's times
    // (umoci) would otherwise change that directory's mtime after setting it.
    drop(members);
    let mut created: BTreeSet<&EntryPath> = events.iter().map(|(_, _, path, _)| *path).collect();
    created.extend(delta.map.iter().filter(|(_, n)| matches!(n, Node::Dir { .. })).map(|(p, _)| &**p));
    let mut implied: Vec<(Pos, &EntryPath, Vec<u8>)> = Vec::new();
    for (path, node) in delta.map.iter().rev() {
        let (by, lower_may_hold) = match node {
            Node::Implied { by, .. } => (*by, !delta.base),
            Node::Implicit { by, .. } => (*by, false),
            _ => continue,
        };
        if created.range::<EntryPath, _>(descendants(path)).next().is_some() && nearest_dir(&delta, path).is_none() {
            continue;
        }
        if lower_may_hold {
            match &lower.dirs {
                None => {
                    missing_lower_dirs.insert(EntryPath::clone(path));
                    continue;
                }
                Some(held) if held.contains(path) => continue,
                Some(_) => {}
            }
        }
        implied.push((by, path, implied_directory(path.as_bytes(), &entry(by).mtime)));
        created.insert(path);
    }
    implied.sort();

    // Order: directories before their contents, opaque markers right after their directory.
    let mut schedule = Schedule { steps: layers.iter().map(|_| Vec::new()).collect(), emitted_dirs: BTreeSet::new(), markers_after };
    for (pos, path, header) in implied {
        let what = hold(Item::Header(header));
        events.push((pos, 0, path, what));
    }
    events.extend(delta.map.iter().filter_map(|(path, node)| match node {
        Node::Dir { first, .. } => Some((*first, 2, &**path, What::Dir)),
        _ => None,
    }));
    events.sort_unstable_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
    for (pos, _, path, item) in events {
        for ancestor in path.ancestors() {
            emit_dir(&delta, &mut schedule, pos, &ancestor)?;
        }
        match item {
            What::Dir => emit_dir(&delta, &mut schedule, pos, path)?,
            What::Copy => schedule.push(pos, Item::Copy),
            What::Held(index) => {
                if let Some(item) = held[index as usize].take() {
                    schedule.push(pos, item);
                }
            }
        }
    }

    let steps = schedule.steps;
    let mut size: u64 = prelude.iter().map(|h| h.len() as u64).sum::<u64>() + END_OF_ARCHIVE.len() as u64;
    for (layer, step) in steps.iter().enumerate().flat_map(|(layer, steps)| steps.iter().map(move |step| (layer, step))) {
        let e = entry(Pos::new(layer, step.entry));
        for item in step.items() {
            size += match item {
                Item::Header(h) => h.len() as u64,
                Item::Copy => e.tar_size(),
                Item::CopyWithHeader(h) => h.len() as u64 + e.tar_size() - u64::from(e.header_len),
                Item::CopyLower(lower) => lower.header.len() as u64 + lower.stored_size + padding(lower.stored_size),
            };
        }
    }
    Ok(RangePlan {
        prelude,
        steps,
        fates: delta.fates,
        uncompressed_size: size,
        missing_lower,
        missing_lower_dirs,
        missing_headers,
        missing_excluded,
        excluded,
        rereads: Vec::new(),
    })
}

/// `--exclude` on a range's delta: every node a pattern covers goes, with its subtree (its
/// entries' fate: [`Fate::Excluded`]); where the layers below hold the path, or hold a path the
/// patterns cover, a whiteout takes its place. Returns the paths to ask the layers below about
/// (when `lower` does not say yet; nothing is asked in a base range) and each pattern's figures.
fn apply_excludes(delta: &mut Delta<'_>, lower: &Lower, exclude: &Excludes) -> (Option<BTreeSet<EntryPath>>, Vec<ExcludeFigures>) {
    let mut figures: Vec<ExcludeFigures> =
        exclude.patterns().map(|p| ExcludeFigures { pattern: p.to_string(), ..Default::default() }).collect();
    // The highest covered nodes that create something (a whiteout or an opaque marker of the
    // range stays: it hides what the layers below hold).
    let mut doomed: Vec<(EntryPath, usize)> = Vec::new();
    for (path, node) in &delta.map {
        let dir = match node {
            Node::Dir { .. } | Node::Implied { .. } | Node::Implicit { .. } => true,
            Node::Other { .. } => false,
            Node::Removed | Node::OpaqueOnly => continue,
        };
        if doomed.last().is_some_and(|(top, _)| path.starts_with(top)) {
            continue;
        }
        if let Some(pattern) = exclude.matching(path, dir) {
            doomed.push((EntryPath::clone(path), pattern));
        }
    }
    let mut asked = BTreeSet::new();
    // Paths where a whiteout now stands in for what the range dropped.
    let mut replaced: BTreeSet<EntryPath> = BTreeSet::new();
    for (path, pattern) in &doomed {
        let fate = Fate::Excluded { pattern: *pattern };
        delta.remove_descendants(path, fate);
        let node = delta.map.remove(path);
        let deleted_below = matches!(node, Some(Node::Implicit { whiteout: true, .. }));
        if let Some(node) = &node {
            delta.retire(node, fate);
        }
        // What the layers below hold there would show again: a whiteout hides it.
        if delta.lower_visible(path) {
            let held = match &lower.excluded {
                Some(found) => found.held.contains(path),
                None => {
                    asked.insert(path.clone());
                    false
                }
            };
            if held || deleted_below {
                delta.map.insert(Cow::Owned(path.clone()), Node::Removed);
                replaced.insert(path.clone());
            }
        }
    }
    // What the layers below hold that the patterns cover and the range leaves visible.
    if !delta.base {
        match &lower.excluded {
            Some(found) => {
                for (path, pattern, entries, bytes) in &found.tops {
                    // Hidden by the range already: under a deleted, replaced or opaque directory.
                    if !delta.lower_visible(path) {
                        continue;
                    }
                    match delta.map.get(path) {
                        None => {
                            delta.map.insert(Cow::Owned(path.clone()), Node::Removed);
                        }
                        Some(Node::Removed) if replaced.contains(path) => {}
                        // Deleted or replaced by the range itself, which the patterns let be.
                        Some(_) => continue,
                    }
                    figures[*pattern].entries_hidden += entries;
                    figures[*pattern].bytes_hidden += bytes;
                }
            }
            None => {
                asked.insert(EntryPath::root());
            }
        }
    }
    for (layer, fates) in delta.fates.iter().enumerate() {
        for (entry, fate) in fates.iter().enumerate() {
            if let Fate::Excluded { pattern } = fate {
                figures[*pattern].entries_reclaimed += 1;
                figures[*pattern].bytes_reclaimed += delta.layers[layer].entries[entry].tar_size();
            }
        }
    }
    let missing = (!delta.base && lower.excluded.is_none()).then_some(asked);
    (missing, figures)
}

/// The nearest ancestor of `path` that is a directory with a header of its own.
fn nearest_dir(delta: &Delta<'_>, path: &EntryPath) -> Option<EntryPath> {
    let mut found = None;
    for ancestor in path.ancestors() {
        if let Some(Node::Dir { .. }) = delta.map.get(&ancestor) {
            found = Some(ancestor);
        }
    }
    found
}

fn emit_dir(delta: &Delta<'_>, schedule: &mut Schedule, pos: Pos, path: &EntryPath) -> Result<()> {
    let Some(Node::Dir { newest, opaque, .. }) = delta.map.get(path) else { return Ok(()) };
    if !schedule.emitted_dirs.insert(path.clone()) {
        return Ok(());
    }
    let raw = delta.layers[newest.layer()].entries[newest.entry()].raw()?.to_vec();
    schedule.push(pos, Item::Header(raw));
    if *opaque {
        schedule.push(pos, Item::Header(marker(&opaque_name(path))));
    }
    for header in schedule.markers_after.remove(path).into_iter().flatten() {
        schedule.push(pos, Item::Header(header));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;
    use crate::error::Location;
    use crate::layer::index::IndexedEntry;
    use crate::layer::tarstream::TarReader;

    fn index(layer: usize, tar: &[u8], filter: Option<&DirQuery>) -> LayerIndex {
        let location = Location::default();
        let mut reader = TarReader::new(tar);
        let mut keep = filter.map(|f| f.for_layer());
        let mut entries = Vec::new();
        while let Some(group) = reader.next_group().expect("a valid tar") {
            let mut entry = IndexedEntry::from_group(group, &location).expect("a valid entry");
            if keep.as_mut().is_none_or(|keep| keep(&mut entry)) {
                entries.push(entry);
            }
        }
        LayerIndex { layer, entries, blob_digest: Digest::from_raw([0; 32]), uncompressed_size: 0, compressed_size: 0, location }
    }

    fn held(layers: &[Vec<u8>], dirs: &BTreeSet<EntryPath>, filter: Option<&DirQuery>) -> Option<BTreeSet<EntryPath>> {
        let indexes: Vec<LayerIndex> = layers.iter().enumerate().map(|(i, tar)| index(i, tar, filter)).collect();
        resolve_lower(&indexes, &BTreeSet::new(), dirs).ok().and_then(|lower| lower.dirs)
    }

    /// Asked only about directories, indexes that keep what the answer depends on give the
    /// answer of full ones: every directory of random stacks at once, and small sets of them.
    #[test]
    fn a_directory_query_answers_as_the_full_indexes_do() {
        let mut cases = 0;
        for seed in 0..150u64 {
            let stack = match seed % 3 {
                0 => squash_testkit::random_stack(seed, 4),
                1 => squash_testkit::random_stack_implicit_parents(seed, 4),
                _ => squash_testkit::random_changeset_stack(seed, 4),
            };
            // Every directory any entry names or implies, and a few that no layer holds.
            let mut all: BTreeSet<EntryPath> = BTreeSet::new();
            for (i, tar) in stack.iter().enumerate() {
                for entry in index(i, tar, None).entries {
                    all.extend(entry.path.ancestors().filter(|a| !a.is_root()));
                    if entry.kind() == Some(EntryKind::Dir) && !entry.path.is_root() {
                        all.insert(entry.path.clone());
                    }
                }
            }
            all.insert(EntryPath::parse(b"no/such/dir").expect("a path"));
            let list: Vec<EntryPath> = all.iter().cloned().collect();
            let mut queries = vec![all.clone()];
            for k in 0..6u64 {
                let pick = |n: u64| list[((seed * 7 + k * 13 + n * 31) as usize) % list.len()].clone();
                queries.push([pick(0)].into_iter().collect());
                queries.push([pick(1), pick(2), pick(3)].into_iter().collect());
            }
            for dirs in queries {
                let Some(full) = held(&stack, &dirs, None) else { continue };
                let query = DirQuery::new(&dirs);
                assert_eq!(held(&stack, &dirs, Some(&query)), Some(full), "seed {seed}, asked about {dirs:?}");
                cases += 1;
            }
        }
        assert!(cases > 1000, "only {cases} cases");
    }
}
