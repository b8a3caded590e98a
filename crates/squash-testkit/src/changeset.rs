//! Random stacks written the way container engines write layers, so that real appliers (Docker,
//! containerd, podman, umoci) load them: each layer is the changeset of random filesystem
//! operations (write, overwrite, chmod, chown, setfattr, rm, rm -rf, mkdir, ln, ln -s, mkfifo,
//! type changes, a directory deleted and re-made), listed as Docker's differ lists it: every
//! changed path once, in byte order so parents come before their children, the parents of every
//! changed path, a whiteout for each deleted path (none under a deleted directory), an opaque
//! marker for a directory deleted and re-made, and every name of a hard-linked file whose inode
//! changed, the first as the file and the others as links to it, with the file's metadata.

use std::collections::{BTreeMap, BTreeSet};

use crate::builder::LayerBuilder;
use crate::generate::content;
use crate::model::{NodeKind, RootFs};
use crate::random::Rng;

/// Names under the root stay clear of what engines put into every container (`etc`, `dev`,
/// `proc`, `sys`, `run`).
const NAMES: &[&[u8]] =
    &[b"a", b"b", b"c", b"lib", b"keep.wh.me", b"sp ace", b"\xff\xfename", b"dir.wh.x", b"a-b"];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Dir { mode: u32, uid: u64, gid: u64 },
    File(usize),
    Symlink(Vec<u8>),
    Fifo,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Inode {
    content: Vec<u8>,
    mode: u32,
    uid: u64,
    gid: u64,
    xattrs: Vec<(String, Vec<u8>)>,
}

#[derive(Debug, Clone, Default)]
struct State {
    paths: BTreeMap<Vec<u8>, Kind>,
    inodes: BTreeMap<usize, Inode>,
    next_inode: usize,
}

fn ancestors(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.iter().enumerate().filter(|(_, &b)| b == b'/').map(move |(i, _)| &path[..i])
}

fn under(path: &[u8], dir: &[u8]) -> bool {
    path.len() > dir.len() && path.starts_with(dir) && path[dir.len()] == b'/'
}

impl State {
    fn dirs(&self) -> Vec<Vec<u8>> {
        self.paths
            .iter()
            .filter(|(_, k)| matches!(k, Kind::Dir { .. }))
            .map(|(p, _)| p.clone())
            .collect()
    }

    fn files(&self) -> Vec<Vec<u8>> {
        self.paths
            .iter()
            .filter(|(_, k)| matches!(k, Kind::File(_)))
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// A path that does not exist yet, in the root or an existing directory.
    fn new_path(&self, rng: &mut Rng) -> Option<Vec<u8>> {
        for _ in 0..10 {
            let dirs = self.dirs();
            let mut path =
                if rng.chance(75) { rng.pick(&dirs).unwrap_or_default() } else { Vec::new() };
            if !path.is_empty() {
                path.push(b'/');
            }
            if rng.chance(4) {
                path.extend(std::iter::repeat_n(b'L', 110));
            } else {
                path.extend_from_slice(NAMES[rng.below(NAMES.len())]);
            }
            if !self.paths.contains_key(&path) {
                return Some(path);
            }
        }
        None
    }

    fn new_file(&mut self, path: Vec<u8>, rng: &mut Rng) {
        let inode = self.next_inode;
        self.next_inode += 1;
        let mode = [0o644, 0o755, 0o4755, 0o600, 0o444][rng.below(5)];
        let uid = [0, 0, 1000, 3_000_000][rng.below(4)];
        self.inodes.insert(
            inode,
            Inode {
                content: content(rng),
                mode,
                uid,
                gid: rng.below(2) as u64 * 100,
                xattrs: Vec::new(),
            },
        );
        self.paths.insert(path, Kind::File(inode));
    }

    /// Removes `path` and everything under it.
    fn remove(&mut self, path: &[u8]) {
        self.paths.retain(|p, _| p != path && !under(p, path));
        let used: BTreeSet<usize> = self
            .paths
            .values()
            .filter_map(|k| if let Kind::File(i) = k { Some(*i) } else { None })
            .collect();
        self.inodes.retain(|i, _| used.contains(i));
    }
}

/// What one layer changed: paths written or modified, inodes modified or linked, directories
/// of the layer below removed at some point.
#[derive(Default)]
struct Changes {
    paths: BTreeSet<Vec<u8>>,
    inodes: BTreeSet<usize>,
    removed_dirs: BTreeSet<Vec<u8>>,
}

fn operate(rng: &mut Rng, state: &mut State, before: &State, changes: &mut Changes) {
    let removed_dir = |changes: &mut Changes, path: &[u8]| {
        for (p, k) in &before.paths {
            if matches!(k, Kind::Dir { .. }) && (p == path || under(p, path)) {
                changes.removed_dirs.insert(p.clone());
            }
        }
    };
    match rng.below(14) {
        0..=2 => {
            if let Some(path) = state.new_path(rng) {
                state.new_file(path.clone(), rng);
                changes.paths.insert(path);
            }
        }
        3 => {
            // Overwrite in place: every name of the file sees the new content.
            if let Some(Kind::File(inode)) =
                rng.pick(&state.files()).and_then(|p| state.paths.get(&p).cloned())
            {
                state.inodes.get_mut(&inode).expect("inode").content = content(rng);
                changes.inodes.insert(inode);
            }
        }
        4 => {
            if let Some(path) = state.new_path(rng) {
                let mode = [0o755, 0o700, 0o1777, 0o2750][rng.below(4)];
                state.paths.insert(
                    path.clone(),
                    Kind::Dir { mode, uid: rng.below(2) as u64 * 1000, gid: 0 },
                );
                changes.paths.insert(path);
            }
        }
        5 => {
            // chmod or chown.
            let all: Vec<Vec<u8>> = state.paths.keys().cloned().collect();
            if let Some(path) = rng.pick(&all) {
                match state.paths.get_mut(&path) {
                    Some(Kind::Dir { mode, uid, .. }) => {
                        *mode = [0o750, 0o711, 0o755][rng.below(3)];
                        *uid = rng.below(3) as u64;
                        changes.paths.insert(path);
                    }
                    Some(Kind::File(inode)) => {
                        let node = state.inodes.get_mut(inode).expect("inode");
                        if rng.chance(50) {
                            node.mode = [0o700, 0o640, 0o6755][rng.below(3)];
                        } else {
                            node.uid = 1000 + rng.below(2) as u64;
                            node.gid = 1000;
                        }
                        changes.inodes.insert(*inode);
                    }
                    _ => {}
                }
            }
        }
        6 => {
            if let Some(Kind::File(inode)) =
                rng.pick(&state.files()).and_then(|p| state.paths.get(&p).cloned())
            {
                state.inodes.get_mut(&inode).expect("inode").xattrs =
                    vec![("user.test".into(), vec![b'v', 0, 0xff, rng.next_u64() as u8])];
                changes.inodes.insert(inode);
            }
        }
        7 => {
            // rm of anything but a directory.
            let leaves: Vec<Vec<u8>> = state
                .paths
                .iter()
                .filter(|(_, k)| !matches!(k, Kind::Dir { .. }))
                .map(|(p, _)| p.clone())
                .collect();
            if let Some(path) = rng.pick(&leaves) {
                if let Some(Kind::File(inode)) = state.paths.get(&path) {
                    changes.inodes.insert(*inode);
                }
                state.remove(&path);
            }
        }
        8 => {
            if let Some(dir) = rng.pick(&state.dirs()) {
                removed_dir(changes, &dir);
                state.remove(&dir);
            }
        }
        9 => {
            // rm -rf dir && mkdir dir && echo > dir/new
            if let Some(dir) = rng.pick(&state.dirs()) {
                removed_dir(changes, &dir);
                state.remove(&dir);
                state.paths.insert(dir.clone(), Kind::Dir { mode: 0o755, uid: 0, gid: 0 });
                let file = [dir.as_slice(), b"/new"].concat();
                state.new_file(file.clone(), rng);
                changes.paths.insert(dir);
                changes.paths.insert(file);
            }
        }
        10 => {
            if let (Some(target), Some(path)) = (rng.pick(&state.files()), state.new_path(rng)) {
                let kind = state.paths[&target].clone();
                if let Kind::File(inode) = kind {
                    changes.inodes.insert(inode);
                }
                state.paths.insert(path.clone(), kind);
                changes.paths.insert(path);
            }
        }
        11 => {
            if let Some(path) = state.new_path(rng) {
                let target = match rng.pick(&state.paths.keys().cloned().collect::<Vec<_>>()) {
                    Some(p) if rng.chance(70) => [b"/".as_slice(), &p].concat(),
                    _ => b"../nowhere".to_vec(),
                };
                state.paths.insert(path.clone(), Kind::Symlink(target));
                changes.paths.insert(path);
            }
        }
        12 => {
            if let Some(path) = state.new_path(rng) {
                state.paths.insert(path.clone(), Kind::Fifo);
                changes.paths.insert(path);
            }
        }
        _ => {
            // A type change: a file becomes a directory, a directory a file.
            let all: Vec<Vec<u8>> = state.paths.keys().cloned().collect();
            if let Some(path) = rng.pick(&all) {
                let was_dir = matches!(state.paths[&path], Kind::Dir { .. });
                if was_dir {
                    removed_dir(changes, &path);
                } else if let Some(Kind::File(inode)) = state.paths.get(&path) {
                    changes.inodes.insert(*inode);
                }
                state.remove(&path);
                if was_dir {
                    state.new_file(path.clone(), rng);
                } else {
                    state.paths.insert(path.clone(), Kind::Dir { mode: 0o755, uid: 0, gid: 0 });
                }
                changes.paths.insert(path);
            }
        }
    }
}

/// The layer that turns `before` into `after`.
fn changeset(before: &State, after: &State, changes: &Changes, mtime: u64) -> Vec<u8> {
    // Directories deleted and re-made: an opaque marker hides what was below, so everything
    // they hold now is written.
    let opaque: BTreeSet<Vec<u8>> = changes
        .removed_dirs
        .iter()
        .filter(|d| matches!(after.paths.get(*d), Some(Kind::Dir { .. })))
        .filter(|d| {
            !changes
                .removed_dirs
                .iter()
                .any(|o| under(d, o) && matches!(after.paths.get(o), Some(Kind::Dir { .. })))
        })
        .cloned()
        .collect();
    let mut write: BTreeSet<Vec<u8>> = BTreeSet::new();
    for (path, kind) in &after.paths {
        let changed = match (before.paths.get(path), kind) {
            (None, _) => true,
            (Some(Kind::File(a)), Kind::File(b)) => {
                a != b || before.inodes.get(a) != after.inodes.get(b)
            }
            (Some(old), new) => old != new,
        };
        let linked = matches!(kind, Kind::File(i) if changes.inodes.contains(i));
        let hidden = opaque.iter().any(|d| under(path, d) || d == path);
        if changed || linked || hidden || changes.paths.contains(path) {
            write.insert(path.clone());
        }
    }
    // Every name of a file written, so its hard links stay one inode.
    let written: BTreeSet<usize> = write
        .iter()
        .filter_map(|p| if let Some(Kind::File(i)) = after.paths.get(p) { Some(*i) } else { None })
        .collect();
    write.extend(
        after
            .paths
            .iter()
            .filter(|(_, k)| matches!(k, Kind::File(i) if written.contains(i)))
            .map(|(p, _)| p.clone()),
    );
    let mut whiteouts: BTreeSet<Vec<u8>> = BTreeSet::new();
    for path in before.paths.keys() {
        if after.paths.contains_key(path) {
            continue;
        }
        let covered = ancestors(path).any(|a| {
            !after.paths.contains_key(a)
                || !matches!(after.paths.get(a), Some(Kind::Dir { .. }))
                || opaque.contains(a)
        });
        if !covered {
            whiteouts.insert(path.clone());
        }
    }
    // The directories holding what changed, as the upper directory of an overlay holds them.
    let parents: Vec<Vec<u8>> = write
        .iter()
        .chain(&whiteouts)
        .flat_map(|p| ancestors(p).map(<[u8]>::to_vec).collect::<Vec<_>>())
        .collect();
    write.extend(parents);
    // One walk in byte order: a whiteout sits where its path would, an opaque marker right
    // after its directory.
    let mut order: Vec<(Vec<u8>, bool)> = write
        .into_iter()
        .map(|p| (p, false))
        .chain(whiteouts.into_iter().map(|p| (p, true)))
        .collect();
    order.sort();
    let mut layer = LayerBuilder::new();
    layer.mtime(mtime);
    let mut first_name: BTreeMap<usize, Vec<u8>> = BTreeMap::new();
    for (path, whiteout) in order {
        if whiteout {
            layer.whiteout(&path);
            continue;
        }
        match &after.paths[&path] {
            Kind::Dir { mode, uid, gid } => {
                layer.dir_with(&path, *mode, *uid, *gid);
                if opaque.contains(&path) {
                    layer.opaque(&path);
                }
            }
            Kind::File(inode) => {
                let node = &after.inodes[inode];
                match first_name.get(inode) {
                    Some(target) => {
                        layer.hardlink_with(&path, target, node.mode, node.uid, node.gid);
                    }
                    None => {
                        let xattrs: Vec<(&str, &[u8])> =
                            node.xattrs.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
                        layer.file_with(
                            &path,
                            &node.content,
                            node.mode,
                            node.uid,
                            node.gid,
                            &xattrs,
                        );
                        first_name.insert(*inode, path.clone());
                    }
                }
            }
            Kind::Symlink(target) => {
                layer.symlink(&path, target);
            }
            Kind::Fifo => {
                layer.fifo(&path);
            }
        }
    }
    layer.finish()
}

/// Checks the model's filesystem against the generator's state: same paths, kinds, modes,
/// owners, and hard-link groups.
fn agrees(fs: &RootFs, state: &State) -> Result<(), String> {
    let nodes: Vec<_> = fs.nodes().iter().filter(|(p, _)| !p.is_empty()).collect();
    if nodes.len() != state.paths.len() {
        return Err(format!(
            "{} paths in the model, {} in the state",
            nodes.len(),
            state.paths.len()
        ));
    }
    let mut groups: BTreeMap<usize, usize> = BTreeMap::new();
    for (path, node) in nodes {
        let kind = state
            .paths
            .get(path)
            .ok_or_else(|| format!("{} only in the model", String::from_utf8_lossy(path)))?;
        let ok = match kind {
            Kind::Dir { mode, uid, gid } => {
                node.kind == NodeKind::Dir && (node.mode, node.uid, node.gid) == (*mode, *uid, *gid)
            }
            Kind::File(inode) => {
                let i = &state.inodes[inode];
                let same_group = *groups.entry(*inode).or_insert(node.inode) == node.inode;
                matches!(node.kind, NodeKind::File { size, .. } if size == i.content.len() as u64)
                    && (node.mode, node.uid, node.gid) == (i.mode, i.uid, i.gid)
                    && same_group
            }
            Kind::Symlink(target) => node.kind == NodeKind::Symlink(target.clone()),
            Kind::Fifo => node.kind == NodeKind::Fifo,
        };
        if !ok {
            return Err(format!(
                "{}: {kind:?} in the state, {node:?} in the model",
                String::from_utf8_lossy(path)
            ));
        }
    }
    Ok(())
}

/// A stack of `layers` layers from `seed`, each the changeset of 1 to 6 random operations on
/// the filesystem the layers below make, written as Docker's differ writes a layer (see the
/// module's comment). Real appliers load these; [`crate::random_stack`]'s layers hold what
/// only hand-made tars hold (one path twice in a layer, markers after entries, links before
/// their targets).
pub fn random_changeset_stack(seed: u64, layers: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(seed);
    let mut state = State::default();
    let mut fs = RootFs::new();
    let mut out = Vec::new();
    while out.len() < layers {
        let before = state.clone();
        let mut changes = Changes::default();
        for _ in 0..1 + rng.below(6) {
            operate(&mut rng, &mut state, &before, &mut changes);
        }
        let layer = changeset(&before, &state, &changes, 1_600_000_000 + 1000 * out.len() as u64);
        fs.apply(&layer).unwrap_or_else(|e| {
            panic!("seed {seed}, layer {}: the changeset does not apply: {e}", out.len())
        });
        agrees(&fs, &state).unwrap_or_else(|e| {
            panic!("seed {seed}, layer {}: the changeset is wrong: {e}", out.len())
        });
        out.push(layer);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parent(path: &[u8]) -> Option<&[u8]> {
        path.iter().rposition(|&b| b == b'/').map(|i| &path[..i])
    }

    #[test]
    fn changesets_apply_to_the_generated_filesystem() {
        let mut kinds = BTreeSet::new();
        for seed in 0..300 {
            for layer in random_changeset_stack(seed, 6) {
                let mut archive = tar::Archive::new(layer.as_slice());
                let mut seen = BTreeSet::new();
                for entry in archive.entries().expect("tar") {
                    let entry = entry.expect("entry");
                    let path = entry.path_bytes().into_owned();
                    assert!(
                        seen.insert(path.clone()),
                        "seed {seed}: {} twice in a layer",
                        String::from_utf8_lossy(&path)
                    );
                    let name = path.rsplit(|&b| b == b'/').next().unwrap_or_default().to_vec();
                    kinds.insert(if name == b".wh..wh..opq" {
                        "opaque".to_string()
                    } else if name.starts_with(b".wh.") {
                        "whiteout".into()
                    } else {
                        format!("{:?}", entry.header().entry_type())
                    });
                    if let Some(parent) = parent(&path) {
                        assert!(
                            seen.contains(parent),
                            "seed {seed}: {} before its parent",
                            String::from_utf8_lossy(&path)
                        );
                    }
                }
            }
        }
        for kind in ["opaque", "whiteout", "Regular", "Directory", "Symlink", "Link", "Fifo"] {
            assert!(kinds.contains(kind), "{kind} never generated: {kinds:?}");
        }
    }
}
