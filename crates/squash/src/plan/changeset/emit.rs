//! The new layer of a range, decided: which entries it writes, under which headers, in what
//! order, and its exact size. Surviving files are written at their stream positions, grouped by
//! inode so that a hard link follows the name it points at (or becomes the file when every
//! earlier name is gone); directories come before their contents, markers where the layers below
//! need them, and directories only entries imply get headers of their own where appliers would
//! otherwise differ.

use std::collections::{BTreeMap, BTreeSet};

use super::delta::{
    descendants, nearest_dir, opaque_name, whiteout_name, Delta, InodeSource, Node, Pos,
};
use super::exclude::apply_excludes;
use super::lower::{Lower, LowerSource};
use super::range_plan::{Fate, Item, LowerCopy, RangePlan, Step};
use crate::error::{Error, Result};
use crate::layer::entry::EntryPath;
use crate::layer::header::{implied_directory, marker, rename_group, END_OF_ARCHIVE};
use crate::layer::layer_index::{IndexedEntry, LayerIndex};
use crate::layer::tarstream::padding;
use crate::plan::exclude::Excludes;

/// Plans the merge of `layers` (oldest first) into one layer. `lower` gives what the plan needs
/// of the layers below the range; the plan lists in `missing_lower` and `missing_lower_dirs`
/// what it needed and did not get (ask the layers below and plan again).
pub(crate) fn plan_range(
    layers: &[LayerIndex],
    lower: &Lower,
    exclude: &Excludes,
) -> Result<RangePlan> {
    let mut delta = Delta::applied(layers)?;
    let (missing_excluded, excluded) = if exclude.is_empty() {
        (None, Vec::new())
    } else {
        apply_excludes(&mut delta, lower, exclude)
    };
    // From here the delta is only read; the fates are changed on their own.
    let mut fates = std::mem::take(&mut delta.fates);
    let delta = delta;
    let mut emission = Emission::new(layers);
    emission.inodes(&delta, lower, &mut fates)?;
    refuse_dumpdirs(&delta)?;
    let mut missing_lower_dirs = BTreeSet::new();
    let (prelude, markers_after) = markers(&delta, lower, &mut missing_lower_dirs);
    emission.implied_directories(&delta, lower, &mut missing_lower_dirs);
    let steps = emission.schedule(&delta, markers_after)?;
    let uncompressed_size = tar_size(layers, &prelude, &steps);
    Ok(RangePlan {
        prelude,
        steps,
        fates,
        uncompressed_size,
        missing_lower: emission.missing_lower,
        missing_lower_dirs,
        missing_headers: emission.missing_headers,
        missing_excluded,
        excluded,
        rereads: Vec::new(),
    })
}

/// What an event of the schedule writes: the directory whose incarnation begins there, a plain
/// copy of the entry, or an item held aside.
#[derive(Debug, Clone, Copy)]
enum What {
    Dir,
    Copy,
    Held(u32),
}

/// Ranks of what one position writes, in order: implied directories (parents first), the entry
/// itself, then a directory whose incarnation begins there.
const IMPLIED: u8 = 0;
const EMITTED: u8 = 1;
const DIRECTORY: u8 = 2;

/// What is written where, gathered before it is put in order.
struct Emission<'d> {
    layers: &'d [LayerIndex],
    /// One list sorted by position at the end (an event per surviving entry, not a map):
    /// (position, rank, name, what). Paths are borrowed from the delta, not copied: a plan's
    /// memory is a few small records per entry.
    events: Vec<(Pos, u8, &'d EntryPath, What)>,
    /// Items other than a plain copy, which wait here so that an event stays small.
    held: Vec<Option<Item>>,
    /// Files below the range that hard links need and `lower` did not have.
    missing_lower: BTreeSet<EntryPath>,
    /// Entries whose header the plan needs and the index did not keep.
    missing_headers: BTreeSet<(usize, usize)>,
}

impl<'d> Emission<'d> {
    fn new(layers: &'d [LayerIndex]) -> Emission<'d> {
        Emission {
            layers,
            events: Vec::new(),
            held: Vec::new(),
            missing_lower: BTreeSet::new(),
            missing_headers: BTreeSet::new(),
        }
    }

    fn entry(&self, pos: Pos) -> &'d IndexedEntry {
        &self.layers[pos.layer()].entries[pos.entry()]
    }

    /// Writes `item` for the entry at `pos`, named `path`.
    fn emit(&mut self, pos: Pos, path: &'d EntryPath, item: Item) {
        let what = self.hold(item);
        self.events.push((pos, EMITTED, path, what));
    }

    fn hold(&mut self, item: Item) -> What {
        match item {
            Item::Copy => What::Copy,
            other => {
                self.held.push(Some(other));
                What::Held((self.held.len() - 1) as u32)
            }
        }
    }

    /// Every surviving non-directory, inode by inode: the name that holds the content first,
    /// then the hard links to it (docs/layer-rules.md, rule 7).
    fn inodes(
        &mut self,
        delta: &'d Delta<'_>,
        lower: &'d Lower,
        fates: &mut [Vec<Fate>],
    ) -> Result<()> {
        // One flat list sorted by inode, not a list per inode: no allocation per entry.
        let mut members: Vec<(u32, Pos, &'d EntryPath)> = delta
            .map
            .iter()
            .filter_map(|(path, node)| match node {
                Node::Other { pos, inode } => Some((*inode, *pos, &**path)),
                _ => None,
            })
            .collect();
        members.sort_unstable_by_key(|&(inode, pos, _)| (inode, pos));
        for group in members.chunk_by(|a, b| a.0 == b.0) {
            self.inode(delta, lower, fates, group)?;
        }
        Ok(())
    }

    /// One inode's names (`group`, in stream order).
    fn inode(
        &mut self,
        delta: &'d Delta<'_>,
        lower: &'d Lower,
        fates: &mut [Vec<Fate>],
        group: &[(u32, Pos, &'d EntryPath)],
    ) -> Result<()> {
        let inode = group[0].0;
        // The members of the group still to write (the first may become the file).
        let mut group = group;
        // The position at which the primary name itself is written, when it is a member.
        let mut primary_pos = None;
        let primary: &EntryPath = match &delta.inodes[inode as usize] {
            InodeSource::Entry(source) => {
                let source_path = &self.entry(*source).path;
                let survives = matches!(
                    delta.map.get(source_path),
                    Some(Node::Other { pos, .. }) if pos == source
                );
                if survives {
                    self.emit(*source, source_path, Item::Copy);
                    primary_pos = Some(*source);
                    source_path
                } else {
                    // The link outlives its target's name, so the first surviving name becomes
                    // the file, with the old content and metadata.
                    let &(_, first_pos, first_path) = &group[0];
                    group = &group[1..];
                    // The index keeps no header of a plain file: this one is read again, and the
                    // range planned anew, when it is missing.
                    let header = match self.entry(*source).raw.as_deref() {
                        Some(raw) => rename_group(raw, first_path.as_bytes(), None),
                        None => {
                            self.missing_headers.insert((source.layer(), source.entry()));
                            Vec::new()
                        }
                    };
                    self.emit(*source, first_path, Item::CopyWithHeader(header));
                    fates[source.layer()][source.entry()] = Fate::Kept;
                    fates[first_pos.layer()][first_pos.entry()] = Fate::Converted;
                    first_path
                }
            }
            InodeSource::Lower(target) => {
                // Anything the range put at the target's name (a deletion, a directory, another
                // file) shadows the lower file there.
                let untouched =
                    |name: &EntryPath| !delta.map.contains_key(name) && delta.lower_visible(name);
                if untouched(target) {
                    target
                } else {
                    let Some(source) = lower.files.get(&**target) else {
                        self.missing_lower.insert(EntryPath::clone(target));
                        return Ok(());
                    };
                    // Another name of the same lower file that the range leaves alone keeps
                    // the links together with it.
                    match source.names.iter().find(|n| untouched(n)) {
                        Some(name) => name,
                        None => {
                            let (first_pos, first_path) = (group[0].1, group[0].2);
                            group = &group[1..];
                            self.lower_becomes_file(source, first_pos, first_path);
                            fates[first_pos.layer()][first_pos.entry()] = Fate::Converted;
                            first_path
                        }
                    }
                }
            }
        };
        let mut emitted_before: BTreeSet<&EntryPath> = BTreeSet::new();
        emitted_before.insert(primary);
        for &(_, pos, path) in group {
            if path == primary && primary_pos == Some(pos) {
                continue;
            }
            let link = self.entry(pos);
            // Members are visited in stream order, so every name recorded so far is written
            // before this link.
            let valid =
                link.link_target.as_ref().is_some_and(|target| emitted_before.contains(target));
            let item = if valid {
                Item::Copy
            } else {
                Item::Header(rename_group(link.raw()?, path.as_bytes(), Some(primary.as_bytes())))
            };
            emitted_before.insert(path);
            self.emit(pos, path, item);
        }
        Ok(())
    }

    /// The target of a hard link lies below the range and the range hides every name of it: the
    /// first link becomes the file, its content read from the layer below that holds it.
    fn lower_becomes_file(&mut self, source: &LowerSource, pos: Pos, path: &'d EntryPath) {
        let header = rename_group(&source.raw, path.as_bytes(), None);
        let copy = LowerCopy {
            layer: source.layer,
            entry: source.entry,
            stored_size: source.stored_size,
            header,
        };
        self.emit(pos, path, Item::CopyLower(Box::new(copy)));
    }

    /// Directories that the range's result holds and that nothing written creates: a header of
    /// their own, at the position of the entry that implied them. Deepest first, since a written
    /// directory creates its parents. So do those below a directory written with a header: an
    /// applier that makes missing parents while restoring only the immediate parent's times
    /// (umoci) would otherwise change that directory's mtime after setting it.
    fn implied_directories(
        &mut self,
        delta: &'d Delta<'_>,
        lower: &Lower,
        missing_lower_dirs: &mut BTreeSet<EntryPath>,
    ) {
        let mut created: BTreeSet<&EntryPath> =
            self.events.iter().map(|(_, _, path, _)| *path).collect();
        created.extend(
            delta.map.iter().filter(|(_, n)| matches!(n, Node::Dir { .. })).map(|(p, _)| &**p),
        );
        let mut implied: Vec<(Pos, &'d EntryPath, Vec<u8>)> = Vec::new();
        for (path, node) in delta.map.iter().rev() {
            let (by, lower_may_hold) = match node {
                Node::Implied { by, .. } => (*by, !delta.base),
                Node::Implicit { by, .. } => (*by, false),
                _ => continue,
            };
            if created.range::<EntryPath, _>(descendants(path)).next().is_some()
                && nearest_dir(delta, path).is_none()
            {
                continue;
            }
            if lower_may_hold {
                match &lower.dirs {
                    None => {
                        missing_lower_dirs.insert(EntryPath::clone(path));
                        continue;
                    }
                    Some(held) if held.contains(&**path) => continue,
                    Some(_) => {}
                }
            }
            implied.push((by, path, implied_directory(path.as_bytes(), &self.entry(by).mtime)));
            created.insert(path);
        }
        implied.sort();
        for (pos, path, header) in implied {
            let what = self.hold(Item::Header(header));
            self.events.push((pos, IMPLIED, path, what));
        }
    }

    /// Puts every event in order into steps, per layer of the range: directories before their
    /// contents, opaque markers right after their directory.
    fn schedule(
        &mut self,
        delta: &Delta<'_>,
        markers_after: MarkersAfter,
    ) -> Result<Vec<Vec<Step>>> {
        let mut schedule = Schedule {
            steps: self.layers.iter().map(|_| Vec::new()).collect(),
            emitted_dirs: BTreeSet::new(),
            markers_after,
        };
        let mut events = std::mem::take(&mut self.events);
        events.extend(delta.map.iter().filter_map(|(path, node)| match node {
            Node::Dir { first, .. } => Some((*first, DIRECTORY, &**path, What::Dir)),
            _ => None,
        }));
        events.sort_unstable_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
        for (pos, _, path, item) in events {
            for ancestor in path.ancestors() {
                schedule.dir(delta, pos, &ancestor)?;
            }
            match item {
                What::Dir => schedule.dir(delta, pos, path)?,
                What::Copy => schedule.push(pos, Item::Copy),
                What::Held(index) => {
                    if let Some(item) = self.held[index as usize].take() {
                        schedule.push(pos, item);
                    }
                }
            }
        }
        Ok(schedule.steps)
    }
}

/// Refuses a directory entry that carries data (a GNU dumpdir), which no applier restores.
fn refuse_dumpdirs(delta: &Delta<'_>) -> Result<()> {
    let entry = |pos: &Pos| &delta.layers[pos.layer()].entries[pos.entry()];
    for (path, node) in &delta.map {
        if let Node::Dir { first, newest, .. } = node {
            if entry(first).stored_size > 0 || entry(newest).stored_size > 0 {
                return Err(Error::Unsupported {
                    location: delta.layers[first.layer()].location.clone().entry(path.display()),
                    what: "directory entry with data (GNU dumpdir)".into(),
                });
            }
        }
    }
    Ok(())
}

/// The markers of the new layer: in the prelude, except those of implicit directories below a
/// directory that has a header, which follow that directory (returned by that directory).
///
/// A whiteout in a directory that the range writes and the layers below do not hold hides
/// nothing, and overlayfs (Docker's and containerd's snapshots) lists it in that directory as
/// an entry that cannot be opened: it is left out, once the layers below say so. So is an opaque
/// marker of a directory the range implies and the layers below do not hold. What the layers
/// below must be asked goes into `missing_lower_dirs`.
fn markers(
    delta: &Delta<'_>,
    lower: &Lower,
    missing_lower_dirs: &mut BTreeSet<EntryPath>,
) -> (Vec<Vec<u8>>, MarkersAfter) {
    let mut below = |dir: EntryPath| -> bool {
        if dir.is_root()
            || !matches!(delta.map.get(&dir), Some(Node::Dir { .. }) | Some(Node::Implied { .. }))
        {
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
    let mut markers_after = MarkersAfter::new();
    for (path, node) in &delta.map {
        let mut markers = Vec::new();
        match node {
            Node::Removed if below(path.parent().unwrap_or_default()) => {
                markers.push(marker(&whiteout_name(path)))
            }
            Node::OpaqueOnly => markers.push(marker(&opaque_name(path))),
            Node::Implied { opaque: true, .. } if below(EntryPath::clone(path)) => {
                markers.push(marker(&opaque_name(path)))
            }
            Node::Implicit { whiteout, .. } => {
                if *whiteout {
                    markers.push(marker(&whiteout_name(path)));
                }
                markers.push(marker(&opaque_name(path)));
                if let Some(dir) = nearest_dir(delta, path) {
                    markers_after.entry(dir).or_default().extend(markers);
                    continue;
                }
            }
            _ => {}
        }
        prelude.extend(markers);
    }
    (prelude, markers_after)
}

/// The exact size of the new layer's uncompressed tar.
fn tar_size(layers: &[LayerIndex], prelude: &[Vec<u8>], steps: &[Vec<Step>]) -> u64 {
    let mut size: u64 =
        prelude.iter().map(|h| h.len() as u64).sum::<u64>() + END_OF_ARCHIVE.len() as u64;
    for (layer, steps) in steps.iter().enumerate() {
        for step in steps {
            let e = &layers[layer].entries[step.entry];
            for item in step.items() {
                size += match item {
                    Item::Header(h) => h.len() as u64,
                    Item::Copy => e.tar_size(),
                    Item::CopyWithHeader(h) => {
                        h.len() as u64 + e.tar_size() - u64::from(e.header_len)
                    }
                    Item::CopyLower(lower) => {
                        lower.header.len() as u64 + lower.stored_size + padding(lower.stored_size)
                    }
                };
            }
        }
    }
    size
}

/// Markers of implicit directories, by the nearest directory with a header they follow.
type MarkersAfter = BTreeMap<EntryPath, Vec<Vec<u8>>>;

/// Where each surviving entry goes in the new layer.
struct Schedule {
    /// For each layer of the range, the items attached to its stream positions, which are
    /// scheduled in increasing order: emitted in order when the merge reaches them.
    steps: Vec<Vec<Step>>,
    emitted_dirs: BTreeSet<EntryPath>,
    /// Markers of implicit directories, by their nearest directory with a header: written right
    /// after it (and after its own opaque marker, so that marker cannot hide them).
    markers_after: MarkersAfter,
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

    /// Schedules the directory at `path` at `pos` (its newest header, then its markers), unless
    /// it is no directory with a header or was scheduled already.
    fn dir(&mut self, delta: &Delta<'_>, pos: Pos, path: &EntryPath) -> Result<()> {
        let Some(Node::Dir { newest, opaque, .. }) = delta.map.get(path) else { return Ok(()) };
        if !self.emitted_dirs.insert(path.clone()) {
            return Ok(());
        }
        let raw = delta.layers[newest.layer()].entries[newest.entry()].raw()?.to_vec();
        self.push(pos, Item::Header(raw));
        if *opaque {
            self.push(pos, Item::Header(marker(&opaque_name(path))));
        }
        for header in self.markers_after.remove(path).into_iter().flatten() {
            self.push(pos, Item::Header(header));
        }
        Ok(())
    }
}
