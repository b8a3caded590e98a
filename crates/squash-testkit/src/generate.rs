//! Random, valid layer stacks for property tests: files, directories, symlinks, hard links,
//! whiteouts, opaque markers, type changes and odd names, each layer checked against the model.

use crate::builder::LayerBuilder;
use crate::model::{NodeKind, RootFs};
use crate::random::Rng;

const NAMES: &[&[u8]] =
    &[b"a", b"b", b"c", b"etc", b"keep.wh.me", b"sp ace", b"\xff\xfename", b"dir.wh.x"];

fn random_path(rng: &mut Rng, existing_dirs: &[Vec<u8>]) -> Vec<u8> {
    let mut path = if !existing_dirs.is_empty() && rng.chance(70) {
        existing_dirs[rng.below(existing_dirs.len())].clone()
    } else {
        Vec::new()
    };
    let extra = 1 + rng.below(2);
    for _ in 0..extra {
        if !path.is_empty() {
            path.push(b'/');
        }
        if rng.chance(3) {
            path.extend(std::iter::repeat_n(b'L', 110));
        } else {
            path.extend_from_slice(NAMES[rng.below(NAMES.len())]);
        }
    }
    path
}

fn spelled(rng: &mut Rng, path: &[u8], dir: bool) -> Vec<u8> {
    let mut out = match rng.below(4) {
        0 => b"./".to_vec(),
        1 => b"/".to_vec(),
        _ => Vec::new(),
    };
    out.extend_from_slice(path);
    if dir && rng.chance(50) {
        out.push(b'/');
    }
    out
}

/// Forgets the known directories below `path` (and `path` itself with `include_self`).
fn forget_tree(known: &mut std::collections::BTreeSet<Vec<u8>>, path: &[u8], include_self: bool) {
    known.retain(|d| {
        !(include_self && d == path || d.starts_with(path) && d.get(path.len()) == Some(&b'/'))
    });
}

/// File content of a random length: empty, short, around a tar block, or up to 3 kB.
pub(crate) fn content(rng: &mut Rng) -> Vec<u8> {
    let len = match rng.below(4) {
        0 => 0,
        1 => rng.below(40),
        2 => 511 + rng.below(3),
        _ => rng.below(3000),
    };
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

fn one_layer(rng: &mut Rng, fs: &RootFs, late_whiteouts: bool, implicit_parents: bool) -> Vec<u8> {
    let dirs: Vec<Vec<u8>> = fs
        .nodes()
        .iter()
        .filter(|(p, n)| n.kind == NodeKind::Dir && !p.is_empty())
        .map(|(p, _)| p.clone())
        .collect();
    let files: Vec<Vec<u8>> = fs
        .nodes()
        .iter()
        .filter(|(_, n)| n.kind != NodeKind::Dir)
        .map(|(p, _)| p.clone())
        .collect();
    let all: Vec<Vec<u8>> = fs.nodes().keys().filter(|p| !p.is_empty()).cloned().collect();
    let mut layer = LayerBuilder::new();
    layer.mtime(1_600_000_000 + rng.below(1000) as u64);
    let mut made_files: Vec<Vec<u8>> = Vec::new();
    // Like Docker and BuildKit, write a directory entry for every parent that does not exist yet
    // (directories made implicitly by appliers carry metadata no layer states); in stacks with
    // implicit parents, some layers leave them out, as hand-made tars do.
    let mut known_dirs: std::collections::BTreeSet<Vec<u8>> = dirs.iter().cloned().collect();
    let write_parents = !(implicit_parents && rng.chance(60));
    let parents =
        |layer: &mut LayerBuilder, known: &mut std::collections::BTreeSet<Vec<u8>>, path: &[u8]| {
            for (i, &b) in path.iter().enumerate() {
                if b == b'/' && !known.contains(&path[..i]) {
                    if write_parents {
                        layer.dir(&path[..i]);
                    }
                    known.insert(path[..i].to_vec());
                }
            }
        };
    // Whiteouts first in some layers, last in others: their position must not matter.
    let whiteouts_last = rng.chance(50) && late_whiteouts;
    let mut deferred: Vec<(bool, Vec<u8>)> = Vec::new();
    let ops = 1 + rng.below(8);
    for _ in 0..ops {
        match rng.below(12) {
            0..=2 => {
                let path = random_path(rng, &dirs);
                parents(&mut layer, &mut known_dirs, &path);
                let xattrs: Vec<(&str, &[u8])> =
                    if rng.chance(15) { vec![("user.test", b"v\x00\xff")] } else { Vec::new() };
                let mode = [0o644, 0o755, 0o4755, 0o600][rng.below(4)];
                layer.file_with(
                    spelled(rng, &path, false),
                    &content(rng),
                    mode,
                    rng.below(3) as u64 * 1000,
                    rng.below(2) as u64,
                    &xattrs,
                );
                made_files.push(path);
            }
            3 => {
                let path = random_path(rng, &dirs);
                parents(&mut layer, &mut known_dirs, &path);
                known_dirs.insert(path.clone());
                layer.dir_with(
                    spelled(rng, &path, true),
                    [0o755, 0o700, 0o1777][rng.below(3)],
                    rng.below(2) as u64,
                    0,
                );
            }
            4 if !dirs.is_empty() => {
                // Directory over directory: new attributes, children merge.
                let path = dirs[rng.below(dirs.len())].clone();
                layer.dir_with(spelled(rng, &path, true), 0o750, 7, 7);
            }
            5 => {
                let path = random_path(rng, &dirs);
                parents(&mut layer, &mut known_dirs, &path);
                let target =
                    if rng.chance(50) { b"../x/y".to_vec() } else { random_path(rng, &dirs) };
                layer.symlink(spelled(rng, &path, false), target);
            }
            6 if !made_files.is_empty() || !files.is_empty() => {
                let target = if !made_files.is_empty() && rng.chance(60) {
                    made_files[rng.below(made_files.len())].clone()
                } else if !files.is_empty() {
                    files[rng.below(files.len())].clone()
                } else {
                    continue;
                };
                let path = random_path(rng, &dirs);
                parents(&mut layer, &mut known_dirs, &path);
                let target =
                    if rng.chance(20) { [b"/".as_slice(), &target].concat() } else { target };
                layer.hardlink(spelled(rng, &path, false), target);
                made_files.push(path);
            }
            7 | 8 if !all.is_empty() => {
                let path = all[rng.below(all.len())].clone();
                forget_tree(&mut known_dirs, &path, true);
                if whiteouts_last {
                    deferred.push((false, path))
                } else {
                    layer.whiteout(path);
                }
            }
            9 if !dirs.is_empty() => {
                let dir = dirs[rng.below(dirs.len())].clone();
                forget_tree(&mut known_dirs, &dir, false);
                if whiteouts_last {
                    deferred.push((true, dir))
                } else {
                    layer.opaque(dir);
                }
            }
            10 if !all.is_empty() => {
                // Type change: replace whatever is there with the other kind.
                let path = all[rng.below(all.len())].clone();
                if dirs.contains(&path) {
                    forget_tree(&mut known_dirs, &path, true);
                    layer.file(spelled(rng, &path, false), &content(rng));
                    made_files.push(path);
                } else {
                    known_dirs.insert(path.clone());
                    layer.dir(spelled(rng, &path, true));
                }
            }
            11 if !dirs.is_empty() => {
                // Delete a directory and re-create it in the same layer.
                let dir = dirs[rng.below(dirs.len())].clone();
                forget_tree(&mut known_dirs, &dir, false);
                layer.whiteout(&dir);
                parents(&mut layer, &mut known_dirs, &dir);
                layer.dir(&dir);
                layer.file([dir.as_slice(), b"/new"].concat(), b"fresh");
            }
            _ => {
                let path = random_path(rng, &dirs);
                parents(&mut layer, &mut known_dirs, &path);
                if rng.chance(50) {
                    layer.fifo(&path);
                } else {
                    layer.char_device(&path, 1, 3);
                }
            }
        }
    }
    for (opaque, path) in deferred {
        if opaque {
            layer.opaque(path);
        } else {
            layer.whiteout(path);
        }
    }
    layer.finish()
}

/// A stack of `layers` random layers from `seed`, each valid under the model when applied on
/// the ones before it. Half the layers put their whiteouts after their other entries, which the
/// spec allows and some appliers (umoci) read differently.
pub fn random_stack(seed: u64, layers: usize) -> Vec<Vec<u8>> {
    stack(seed, layers, true, false)
}

/// Like [`random_stack`], where some layers name no directory for the parents they create:
/// appliers make those implicitly, and a squash must keep them even when what implied them is
/// deleted later.
pub fn random_stack_implicit_parents(seed: u64, layers: usize) -> Vec<Vec<u8>> {
    stack(seed, layers, true, true)
}

/// Like [`random_stack`], with every whiteout before the entries of its layer, as Docker and
/// BuildKit write them: all appliers agree on such layers.
pub fn random_stack_whiteouts_first(seed: u64, layers: usize) -> Vec<Vec<u8>> {
    stack(seed, layers, false, false)
}

fn stack(seed: u64, layers: usize, late_whiteouts: bool, implicit_parents: bool) -> Vec<Vec<u8>> {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut fs = RootFs::new();
    let mut out = Vec::new();
    while out.len() < layers {
        let mut attempts = 0;
        loop {
            let layer = one_layer(&mut rng, &fs, late_whiteouts, implicit_parents);
            let mut next = fs.clone();
            if next.apply(&layer).is_ok() {
                fs = next;
                out.push(layer);
                break;
            }
            attempts += 1;
            if attempts > 50 {
                out.push(LayerBuilder::new().file(format!("filler{}", out.len()), b"x").finish());
                let last = out.last().cloned().unwrap_or_default();
                let _ = fs.apply(&last);
                break;
            }
        }
    }
    out
}
