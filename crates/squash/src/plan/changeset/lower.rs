//! What a range's plan needs of the layers below it, and how it is asked: the files hard links
//! of the range reach when the range deletes their names, and which of the directories the range
//! implies those layers hold. [`DirQuery`] indexes the layers below keeping only what the answer
//! about directories depends on.

use std::collections::{BTreeMap, BTreeSet};

use super::delta::{Delta, InodeSource, Node};
use crate::error::Result;
use crate::layer::entry::{EntryKind, EntryPath};
use crate::layer::layer_index::{EntryClass, EntryFilter, IndexedEntry, LayerIndex};

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

/// Resolves `files` to the entries that provide them after applying `layers` (the layers
/// below a range, base first), leaving out paths that are not regular files there; and finds
/// which of `dirs` are directories there.
pub(crate) fn resolve_lower(
    layers: &[LayerIndex],
    files: &BTreeSet<EntryPath>,
    dirs: &BTreeSet<EntryPath>,
) -> Result<Lower> {
    let delta = Delta::applied(layers)?;
    // A directory only markers made is there for some appliers and not for others: not held.
    let held = dirs
        .iter()
        .filter(|d| {
            matches!(
                delta.map.get(*d),
                Some(Node::Dir { .. }) | Some(Node::Implied { by_marker: false, .. })
            )
        })
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
                    .filter(|(_, node)| {
                        matches!(node, Node::Other { inode: other, .. } if other == inode)
                    })
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
    fn for_layer(&self) -> Box<dyn FnMut(&mut IndexedEntry) -> bool + '_> {
        // The directories asked about that an entry of this layer already implies.
        let mut implied: BTreeSet<EntryPath> = BTreeSet::new();
        Box::new(move |entry| match &entry.class {
            EntryClass::Whiteout(target) | EntryClass::Opaque(target) => {
                self.relevant.contains(target)
            }
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
                let Some(dir) = entry.path.ancestors().filter(|a| self.dirs.contains(a)).last()
                else {
                    return false;
                };
                if implied.contains(&dir) {
                    return false;
                }
                let rest = &entry.path.as_bytes()
                    [if dir.is_root() { 0 } else { dir.as_bytes().len() + 1 }..];
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;
    use crate::error::Location;
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
        LayerIndex {
            layer,
            entries,
            blob_digest: Digest::from_raw([0; 32]),
            uncompressed_size: 0,
            compressed_size: 0,
            location,
            facts: Vec::new(),
        }
    }

    fn held(
        layers: &[Vec<u8>],
        dirs: &BTreeSet<EntryPath>,
        filter: Option<&DirQuery>,
    ) -> Option<BTreeSet<EntryPath>> {
        let indexes: Vec<LayerIndex> =
            layers.iter().enumerate().map(|(i, tar)| index(i, tar, filter)).collect();
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
                let pick =
                    |n: u64| list[((seed * 7 + k * 13 + n * 31) as usize) % list.len()].clone();
                queries.push([pick(0)].into_iter().collect());
                queries.push([pick(1), pick(2), pick(3)].into_iter().collect());
            }
            for dirs in queries {
                let Some(full) = held(&stack, &dirs, None) else { continue };
                let query = DirQuery::new(&dirs);
                assert_eq!(
                    held(&stack, &dirs, Some(&query)),
                    Some(full),
                    "seed {seed}, asked about {dirs:?}"
                );
                cases += 1;
            }
        }
        assert!(cases > 1000, "only {cases} cases");
    }
}
