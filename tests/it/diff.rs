//! `diff` compares final filesystems: it agrees with the reference model on random stacks, finds
//! nothing between an image and its squash, and finds every single-attribute change of a random
//! filesystem, at that path and in that attribute only.

use std::collections::BTreeSet;

use squash::{diff_trees, Attribute, Context, Image, LayerSelector, SquashOptions};
use squash_testkit::{random_stack, LayerBuilder, LayerCompression, NodeKind, RootFs};

use crate::support::{build, squash};

fn open(path: &std::path::Path) -> Image {
    Image::open(&format!("oci:{}:t", path.display())).expect("open")
}

/// The tree's view of every path matches the model's, and a squash changes nothing.
#[test]
fn trees_agree_with_the_model_and_a_squash_changes_nothing() {
    for seed in 0..24u64 {
        let stack = random_stack(seed, 4);
        let dir = tempfile::tempdir().expect("tempdir");
        let input = build(dir.path(), &stack, LayerCompression::Gzip);
        let image = open(&input);
        let tree = image.tree_in(&Context::new().with_threads(2)).expect("tree");
        // A marker's missing parents are made, as Docker, containerd and podman make them.
        let model = RootFs::from_layers(stack.iter().map(|l| l.as_slice())).expect("model");
        let model_paths: BTreeSet<Vec<u8>> =
            model.nodes().keys().filter(|p| !p.is_empty()).cloned().collect();
        let tree_paths: BTreeSet<Vec<u8>> =
            tree.entries.keys().filter(|p| !p.is_root()).map(|p| p.as_bytes().to_vec()).collect();
        assert_eq!(tree_paths, model_paths, "seed {seed}: paths");
        for (path, node) in model.nodes() {
            if path.is_empty() {
                continue;
            }
            let entry = tree
                .entries
                .iter()
                .find(|(p, _)| p.as_bytes() == path.as_slice())
                .map(|(_, e)| e)
                .expect("entry");
            let what = String::from_utf8_lossy(path);
            assert_eq!(
                (entry.mode, entry.uid, entry.gid),
                (node.mode, node.uid, node.gid),
                "seed {seed}: {what}"
            );
            if let Some(mtime) = node.mtime {
                assert_eq!(
                    entry.mtime.map(|(s, _)| s as u64),
                    Some(mtime),
                    "seed {seed}: {what} mtime"
                );
            }
            let xattrs: Vec<(Vec<u8>, Vec<u8>)> =
                node.xattrs.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            assert_eq!(entry.xattrs(), xattrs.as_slice(), "seed {seed}: {what} xattrs");
            match &node.kind {
                NodeKind::File { size, sha256 } => {
                    assert_eq!(entry.size, *size, "seed {seed}: {what}");
                    assert_eq!(
                        entry.content().as_ref().map(|d| d.hex().to_string()).as_deref(),
                        Some(sha256.as_str()),
                        "seed {seed}: {what}"
                    );
                }
                NodeKind::Symlink(target) => {
                    assert_eq!(entry.link(), Some(target.as_slice()), "seed {seed}: {what}")
                }
                NodeKind::Char(a, b) | NodeKind::Block(a, b) => {
                    assert_eq!(entry.device(), Some((*a, *b)), "seed {seed}: {what}")
                }
                NodeKind::Dir | NodeKind::Fifo => {}
            }
            let links =
                model.nodes().iter().filter(|(p, n)| *p != path && n.inode == node.inode).count();
            assert_eq!(entry.hardlinks().len(), links, "seed {seed}: {what} hard links");
        }
        let out =
            squash(&input, dir.path(), vec![(1, 3)], SquashOptions::default()).expect("squash");
        let squashed = Image::open(&format!("oci:{}", out.display())).expect("squashed");
        let diff = diff_trees(&tree, &squashed.tree_in(&one_thread()).expect("tree"), &[]);
        assert!(diff.is_empty(), "seed {seed}: {diff:?}");
    }
}

/// One entry of a flat test filesystem.
#[derive(Clone)]
enum Spec {
    File {
        path: String,
        content: Vec<u8>,
        mode: u32,
        uid: u64,
        gid: u64,
        mtime: u64,
        xattr: Option<Vec<u8>>,
    },
    Dir {
        path: String,
        mode: u32,
    },
    Symlink {
        path: String,
        target: String,
    },
    Hardlink {
        path: String,
        target: String,
    },
    Char {
        path: String,
        major: u32,
    },
    Fifo {
        path: String,
    },
}

fn layer(specs: &[Spec]) -> Vec<u8> {
    let mut b = LayerBuilder::new();
    for spec in specs {
        b.mtime(1_600_000_000);
        match spec {
            Spec::File { path, content, mode, uid, gid, mtime, xattr } => {
                b.mtime(*mtime);
                let xattrs: Vec<(&str, &[u8])> =
                    xattr.iter().map(|v| ("user.note", v.as_slice())).collect();
                b.file_with(path, content, *mode, *uid, *gid, &xattrs);
            }
            Spec::Dir { path, mode } => {
                b.dir_with(path, *mode, 0, 0);
            }
            Spec::Symlink { path, target } => {
                b.symlink(path, target);
            }
            Spec::Hardlink { path, target } => {
                b.hardlink(path, target);
            }
            Spec::Char { path, major } => {
                b.char_device(path, *major, 1);
            }
            Spec::Fifo { path } => {
                b.fifo(path);
            }
        }
    }
    b.finish()
}

/// A random flat filesystem of `seed`: directories, files (some with xattrs), a symlink, a hard
/// link pair, a device and a fifo.
fn random_fs(seed: u64) -> Vec<Spec> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut specs = vec![Spec::Dir { path: "d".into(), mode: 0o755 }];
    for i in 0..(3 + next(5)) {
        specs.push(Spec::File {
            path: format!("d/f{i}"),
            content: format!("content {seed} {i} {}", next(1000)).into_bytes(),
            mode: [0o644, 0o600, 0o755][next(3) as usize],
            uid: next(3) * 1000,
            gid: next(3) * 1000,
            mtime: 1_600_000_000 + next(1_000_000),
            xattr: (next(2) == 0).then(|| b"v1".to_vec()),
        });
    }
    specs.push(Spec::Symlink { path: "d/link".into(), target: "f0".into() });
    specs.push(Spec::Hardlink { path: "d/hard".into(), target: "d/f1".into() });
    specs.push(Spec::Char { path: "d/dev".into(), major: 1 + next(10) as u32 });
    specs.push(Spec::Fifo { path: "d/pipe".into() });
    specs
}

type FileFields<'a> =
    (&'a mut Vec<u8>, &'a mut u32, &'a mut u64, &'a mut u64, &'a mut u64, &'a mut Option<Vec<u8>>);

fn file_mut<'a>(specs: &'a mut [Spec], path: &str) -> FileFields<'a> {
    for spec in specs {
        if let Spec::File { path: p, content, mode, uid, gid, mtime, xattr } = spec {
            if p == path {
                return (content, mode, uid, gid, mtime, xattr);
            }
        }
    }
    panic!("no file {path}")
}

/// Each single-attribute change is found at its path, in that attribute (and, for a new size or
/// type, the attributes that change with it); an unchanged rebuild differs in nothing.
#[test]
fn every_single_attribute_change_is_found() {
    type Mutation =
        (&'static str, fn(&mut Vec<Spec>), &'static [&'static str], &'static [Attribute]);
    let mutations: &[Mutation] = &[
        ("mode", |s| *file_mut(s, "d/f0").1 ^= 0o011, &["d/f0"], &[Attribute::Mode]),
        ("uid", |s| *file_mut(s, "d/f0").2 += 1, &["d/f0"], &[Attribute::Uid]),
        ("gid", |s| *file_mut(s, "d/f2").3 += 7, &["d/f2"], &[Attribute::Gid]),
        ("mtime", |s| *file_mut(s, "d/f2").4 += 1, &["d/f2"], &[Attribute::Mtime]),
        (
            "content",
            |s| {
                let c = file_mut(s, "d/f0").0;
                let last = c.len() - 1;
                c[last] ^= 1;
            },
            &["d/f0"],
            &[Attribute::Content],
        ),
        (
            "size",
            |s| file_mut(s, "d/f2").0.push(b'!'),
            &["d/f2"],
            &[Attribute::Size, Attribute::Content],
        ),
        (
            "xattrs",
            |s| {
                let x = file_mut(s, "d/f0").5;
                *x = Some(match x {
                    Some(_) => b"v2".to_vec(),
                    None => b"v1".to_vec(),
                });
            },
            &["d/f0"],
            &[Attribute::Xattrs],
        ),
        (
            "link",
            |s| {
                for spec in s.iter_mut() {
                    if let Spec::Symlink { target, .. } = spec {
                        target.push('x');
                    }
                }
            },
            &["d/link"],
            &[Attribute::Link],
        ),
        (
            "device",
            |s| {
                for spec in s.iter_mut() {
                    if let Spec::Char { major, .. } = spec {
                        *major += 1;
                    }
                }
            },
            &["d/dev"],
            &[Attribute::Device],
        ),
        (
            "type",
            |s| {
                for spec in s.iter_mut() {
                    if let Spec::Fifo { path } = spec {
                        *spec = Spec::Dir { path: path.clone(), mode: 0o600 };
                    }
                }
            },
            &["d/pipe"],
            &[Attribute::Type],
        ),
        (
            "hardlinks",
            |s| {
                let copy = s.iter().find_map(|spec| match spec {
                    Spec::File { path, .. } if path == "d/f1" => Some(spec.clone()),
                    _ => None,
                });
                for spec in s.iter_mut() {
                    if matches!(spec, Spec::Hardlink { .. }) {
                        if let Some(Spec::File { content, mode, uid, gid, mtime, xattr, .. }) =
                            copy.clone()
                        {
                            *spec = Spec::File {
                                path: "d/hard".into(),
                                content,
                                mode,
                                uid,
                                gid,
                                mtime,
                                xattr,
                            };
                        }
                    }
                }
            },
            &["d/f1", "d/hard"],
            &[Attribute::Hardlinks],
        ),
    ];
    for seed in 0..8u64 {
        let dir = tempfile::tempdir().expect("tempdir");
        let original = random_fs(seed);
        let a = open(&build(&dir.path().join("a"), &[layer(&original)], LayerCompression::None));
        let tree_a = a.tree_in(&one_thread()).expect("tree");
        let same =
            open(&build(&dir.path().join("same"), &[layer(&original)], LayerCompression::Gzip));
        assert!(
            diff_trees(&tree_a, &same.tree_in(&one_thread()).expect("tree"), &[]).is_empty(),
            "seed {seed}: an unchanged rebuild"
        );
        for (name, mutate, paths, attributes) in mutations {
            let mut changed = original.clone();
            mutate(&mut changed);
            let work = dir.path().join(name);
            std::fs::create_dir_all(&work).expect("dir");
            let b = open(&build(&work, &[layer(&changed)], LayerCompression::None));
            let diff = diff_trees(&tree_a, &b.tree_in(&one_thread()).expect("tree"), &[]);
            assert!(
                diff.added.is_empty() && diff.removed.is_empty(),
                "seed {seed}, {name}: {diff:?}"
            );
            let found: Vec<&str> = diff.changed.iter().map(|c| c.path.as_str()).collect();
            assert_eq!(found, *paths, "seed {seed}, {name}: {diff:?}");
            for change in &diff.changed {
                let what: Vec<Attribute> = change.differences.iter().map(|d| d.attribute).collect();
                for attribute in *attributes {
                    assert!(what.contains(attribute), "seed {seed}, {name}: {what:?}");
                }
                if *name != "type" {
                    assert_eq!(
                        what.len(),
                        attributes.len(),
                        "seed {seed}, {name}: only that attribute: {what:?}"
                    );
                }
            }
            // Ignored, the attribute is not reported.
            let ignored = diff_trees(&tree_a, &b.tree_in(&one_thread()).expect("tree"), attributes);
            if *name != "type" {
                assert!(ignored.is_empty(), "seed {seed}, {name}: ignored yet found: {ignored:?}");
            }
        }
    }
}

/// `--from-layer` above a base: the squashed image's tree equals the original's (a second
/// check through the library's own entry point).
#[test]
fn a_squash_above_the_base_keeps_the_tree() {
    let stack = random_stack(99, 5);
    let dir = tempfile::tempdir().expect("tempdir");
    let input = build(dir.path(), &stack, LayerCompression::Zstd);
    let image = open(&input);
    let plan =
        image.plan(&SquashOptions::default().with_selector(LayerSelector::Top(3))).expect("plan");
    let out = dir.path().join("out");
    plan.execute(&image, &squash::Output::new(out.clone(), squash::OutputFormat::OciLayout))
        .expect("execute");
    let squashed = Image::open(&format!("oci:{}", out.display())).expect("reopen");
    assert!(squash::diff_images(&image, &squashed, &[], &Context::new()).expect("diff").is_empty());
}

/// A context of one thread: each layer read and decoded on the thread that uses it.
fn one_thread() -> Context<'static> {
    Context::new().with_threads(1)
}
