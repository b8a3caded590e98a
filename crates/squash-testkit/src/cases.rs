//! The engine's regression cases: one or more small stacks per rule of docs/layer-rules.md, each
//! with the ranges to squash. The library's tests check them against the reference model; the
//! compatibility matrix has real appliers unpack them.

use crate::builder::LayerBuilder;

/// A layer stack and the ranges (inclusive layer indices) a squash merges.
#[derive(Debug, Clone)]
pub struct Case {
    /// Which trap it is, and which variant: `rule7/b`.
    pub name: String,
    /// Uncompressed layer tars, bottom first.
    pub layers: Vec<Vec<u8>>,
    /// The ranges to squash.
    pub ranges: Vec<(usize, usize)>,
}

fn l() -> LayerBuilder {
    LayerBuilder::new()
}

fn case(name: &str, layers: Vec<Vec<u8>>, ranges: Vec<(usize, usize)>) -> Case {
    Case { name: name.to_string(), layers, ranges }
}

/// Every regression case, in the order of docs/layer-rules.md.
pub fn regression_cases() -> Vec<Case> {
    let mut all = Vec::new();
    for group in [
        rule1(),
        rule2(),
        rule3(),
        rule4(),
        rule5(),
        rule6(),
        rule7(),
        rule8(),
        rule9(),
        rule10(),
        umoci_whiteout_under_a_file(),
        implicit_directory_emptied(),
        base_range(),
        whiteouts_in_new_directories(),
        hardlink_headers(),
    ] {
        all.extend(group);
    }
    all
}

/// Rule 1, one entry per normalized path (docker-squash#108, #118: duplicate paths spelled
/// differently).
pub fn rule1() -> Vec<Case> {
    vec![case(
        "rule1",
        vec![
            l().dir("a").file("a/f", b"1").finish(),
            l().file("./a/f", b"2").file("/a/f", b"3").dir("a/").finish(),
            l().file("a//f", b"4").finish(),
        ],
        vec![(1, 2)],
    )]
}

/// Rule 2, a type change removes the lower subtree (docker-squash#253: `rm -rf dir; touch dir`
/// keeps both).
pub fn rule2() -> Vec<Case> {
    vec![
        case(
            "rule2/dir-to-file",
            vec![
                l().dir("d").file("d/x", b"x").finish(),
                l().whiteout("d").finish(),
                l().file("d", b"now a file").finish(),
            ],
            vec![(1, 2)],
        ),
        case(
            "rule2/file-dir-symlink",
            vec![
                l().file("f", b"file").finish(),
                l().dir("f").file("f/y", b"y").finish(),
                l().symlink("f", "elsewhere").finish(),
            ],
            vec![(0, 2)],
        ),
        // A directory replaced in the same layer that filled it, after entries in it and below
        // it: nothing of the old tree or of the lower layers' tree may show through.
        case(
            "rule2/dir-replaced-in-its-own-layer",
            vec![
                l().dir("a").dir("a/b").file("a/b/z", b"lower").file("a/k", b"lower").finish(),
                l().dir("a")
                    .dir("a/b")
                    .file("a/b/x", b"x")
                    .symlink("a", "elsewhere")
                    .dir("a")
                    .file("a/y", b"y")
                    .finish(),
                l().file("a/b2", b"b2").finish(),
            ],
            vec![(1, 2)],
        ),
        // Many entries of one directory, one of whose siblings turns into a file and back: the
        // lower layers show through the directory each time it is a plain one again.
        case(
            "rule2/sibling-changes-type",
            vec![
                l().dir("d").dir("d/s").file("d/s/old", b"old").file("d/keep", b"k").finish(),
                l().dir("d")
                    .file("d/one", b"1")
                    .file("d/s", b"file now")
                    .file("d/two", b"2")
                    .dir("d/s")
                    .file("d/s/new", b"new")
                    .file("d/three", b"3")
                    .finish(),
                l().file("d/four", b"4").finish(),
            ],
            vec![(1, 2)],
        ),
    ]
}

/// Rule 3, a whiteout hides lower layers only; the entry in its own layer survives.
pub fn rule3() -> Vec<Case> {
    vec![
        case(
            "rule3/base",
            vec![l().file("a", b"old").finish(), l().file("a", b"new").whiteout("a").finish()],
            vec![(0, 1)],
        ),
        case(
            "rule3/above",
            vec![
                l().file("a", b"old").finish(),
                l().file("a", b"new").whiteout("a").finish(),
                l().file("b", b"b").finish(),
            ],
            vec![(1, 2)],
        ),
    ]
}

/// Rule 4, a whiteout is a basename prefix (docker-squash's and oci-squash's test `".wh." in
/// name`).
pub fn rule4() -> Vec<Case> {
    vec![case(
        "rule4",
        vec![
            l().file("keep.wh.me", b"k").dir("dir.wh.x").file("dir.wh.x/file", b"f").finish(),
            l().file("other", b"o").finish(),
        ],
        vec![(0, 1)],
    )]
}

/// Rule 5, an opaque whiteout counts wherever it sits in its layer (ggcr#1897, #2029: the
/// marker after the layer's own children).
pub fn rule5() -> Vec<Case> {
    vec![case(
        "rule5",
        vec![
            l().dir("d").file("d/old", b"o").finish(),
            l().dir("d").file("d/new", b"n").opaque("d").finish(),
            l().file("z", b"z").finish(),
        ],
        vec![(1, 2)],
    )]
}

/// Rule 6, re-emit exactly the needed whiteouts (docker-squash#97: a lost whiteout resurrects
/// base files; #181: nested markers).
pub fn rule6() -> Vec<Case> {
    vec![
        case(
            "rule6/nested",
            vec![
                l().dir("d").file("d/a", b"a").file("d/b", b"b").finish(),
                l().whiteout("d/a").finish(),
                l().whiteout("d").finish(),
                l().file("c", b"c").finish(),
            ],
            vec![(1, 3)],
        ),
        // Deleted and re-created inside the range: an opaque marker keeps the base's children
        // hidden.
        case(
            "rule6/recreated",
            vec![
                l().dir("d").file("d/a", b"a").finish(),
                l().whiteout("d").finish(),
                l().dir("d").file("d/new", b"n").finish(),
            ],
            vec![(1, 2)],
        ),
    ]
}

/// Rule 7, a hard link outlives its target's name (ggcr#977, #2002; docker-squash and
/// oci-squash re-point links to new content).
pub fn rule7() -> Vec<Case> {
    vec![
        case(
            "rule7/overwritten",
            vec![
                l().file("base", b"b").finish(),
                l().file("usr/bin/x", b"old")
                    .hardlink("usr/bin/y", "/usr/bin/x")
                    .hardlink("usr/bin/z", "usr/bin/y")
                    .finish(),
                l().file("usr/bin/x", b"new").finish(),
            ],
            vec![(1, 2)],
        ),
        case(
            "rule7/deleted",
            vec![
                l().file("base", b"b").finish(),
                l().file("t", b"old").hardlink("h", "t").finish(),
                l().whiteout("t").finish(),
            ],
            vec![(1, 2)],
        ),
    ]
}

/// Rule 8, symlinks are data: dangling and looping links stay as they are.
pub fn rule8() -> Vec<Case> {
    vec![case(
        "rule8",
        vec![
            l().symlink("loop", "loop").symlink("dangling", "/nowhere").dir("d").finish(),
            l().symlink("d2", "d").file("d/f", b"f").finish(),
        ],
        vec![(0, 1)],
    )]
}

/// Rule 9, no invented parents; the newest directory header wins.
pub fn rule9() -> Vec<Case> {
    vec![case(
        "rule9",
        vec![
            l().file("x", b"x").finish(),
            l().file("a/b/c", b"c").finish(),
            l().dir_with("a", 0o700, 5, 5).finish(),
        ],
        vec![(1, 2)],
    )]
}

/// A valid `security.capability` value (VFS_CAP_REVISION_2, effective, permitted
/// CAP_NET_BIND_SERVICE): the kernel refuses malformed ones.
pub const CAP_NET_BIND_SERVICE: &[u8] =
    b"\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";

/// Rule 10, keep every attribute: setuid, large ids, xattrs, long and non-UTF-8 names, devices.
pub fn rule10() -> Vec<Case> {
    let long = "l".repeat(150);
    vec![case(
        "rule10",
        vec![
            l().file_with(
                "s",
                b"s",
                0o4755,
                3_000_000,
                70_000,
                &[("security.capability", CAP_NET_BIND_SERVICE)],
            )
            .finish(),
            l().file(format!("{long}/{long}"), b"long")
                .symlink("sl", long.as_str())
                .file(b"\xff\xfe-name".as_slice(), b"latin")
                .char_device("null", 1, 3)
                .fifo("p")
                .finish(),
            l().file("z", b"z").finish(),
        ],
        vec![(0, 2)],
    )]
}

/// umoci writes whiteouts under a path it turned into a file in the same layer.
pub fn umoci_whiteout_under_a_file() -> Vec<Case> {
    vec![case(
        "umoci-whiteout-under-a-file",
        vec![
            l().dir("a").file("a/x", b"x").finish(),
            l().file("a", b"file now").whiteout("a/x").finish(),
            l().file("b", b"b").finish(),
        ],
        vec![(1, 2)],
    )]
}

/// An implicit directory emptied inside the range stays: `x/y/f` (no headers for `x/`, `x/y/`)
/// deleted by a later layer of the range leaves `/x` and `/x/y`. With a short and a long name,
/// above a layer and as a base range; under a directory the lower layers hold; and an implied
/// directory that an opaque marker then empties.
pub fn implicit_directory_emptied() -> Vec<Case> {
    let long = "L".repeat(120);
    let mut out = Vec::new();
    for (variant, x) in [("short", "x"), ("long", long.as_str())] {
        let stack = vec![
            l().file("keep", b"keep").finish(),
            l().file(format!("{x}/y/f"), b"f").finish(),
            l().whiteout(format!("{x}/y/f")).finish(),
        ];
        out.push(case(&format!("implicit-emptied/{variant}"), stack.clone(), vec![(1, 2)]));
        out.push(case(
            &format!("implicit-emptied/{variant}-base-range"),
            stack[1..].to_vec(),
            vec![(0, 1)],
        ));
    }
    out.push(case(
        "implicit-emptied/lower-dir",
        vec![
            l().dir_with("x", 0o700, 5, 5).file("keep", b"keep").finish(),
            l().file("x/y/f", b"f").finish(),
            l().whiteout("x/y/f").finish(),
        ],
        vec![(1, 2)],
    ));
    out.push(case(
        "implicit-emptied/opaque",
        vec![
            l().dir("x").file("x/old", b"old").finish(),
            l().file("x/z/f", b"f").finish(),
            l().opaque("x/z").whiteout("x/z/f").finish(),
        ],
        vec![(1, 2)],
    ));
    out
}

/// A range that starts at the first layer has nothing below it: its new layer holds no marker.
/// Every range `0..end` of one stack.
pub fn base_range() -> Vec<Case> {
    let stack = base_range_stack();
    (1..stack.len())
        .map(|end| case(&format!("base-range/0..{end}"), stack.clone(), vec![(0, end)]))
        .collect()
}

/// The stack of [`base_range`]: whiteouts, opaque markers, a deleted directory, and a file
/// deleted from directories no header names.
pub fn base_range_stack() -> Vec<Vec<u8>> {
    vec![
        l().dir("a").file("a/f", b"f").dir("d").file("d/x", b"x").finish(),
        l().whiteout("a/f").opaque("d").file("d/y", b"y").finish(),
        l().whiteout("d").file("g", b"g").finish(),
        l().file("nope/deep/f", b"f").finish(),
        l().whiteout("nope/deep/f").whiteout("never-existed").finish(),
    ]
}

/// Whiteouts where Docker's differ writes them: a directory made and filled in one layer and a
/// file of it deleted in the next (`d/` then `d/` and `d/.wh.f`). Squashed, the whiteout hides
/// nothing unless the layers below hold the directory: left in, overlayfs would list it there
/// as an entry that cannot be opened. Also with the directory below (the whiteout is needed),
/// and nested.
pub fn whiteouts_in_new_directories() -> Vec<Case> {
    vec![
        case(
            "new-dir-whiteout/new",
            vec![
                l().file("keep", b"keep").finish(),
                l().dir("d").file("d/f", b"f").file("d/g", b"g").finish(),
                l().dir("d").whiteout("d/f").finish(),
            ],
            vec![(1, 2)],
        ),
        case(
            "new-dir-whiteout/below",
            vec![
                l().dir("d").file("d/f", b"f").finish(),
                l().dir("d").file("d/g", b"g").finish(),
                l().dir("d").whiteout("d/f").whiteout("d/g").finish(),
            ],
            vec![(1, 2)],
        ),
        case(
            "new-dir-whiteout/nested",
            vec![
                l().dir("d").file("d/keep", b"k").finish(),
                l().dir("d")
                    .dir("d/new")
                    .dir("d/new/sub")
                    .file("d/new/sub/f", b"f")
                    .file("d/x", b"x")
                    .finish(),
                l().dir("d")
                    .dir("d/new")
                    .dir("d/new/sub")
                    .whiteout("d/new/sub/f")
                    .whiteout("d/x")
                    .finish(),
            ],
            vec![(1, 2)],
        ),
    ]
}

/// A hard link whose header states another mode and owner than its target's (hand-made tars;
/// Docker's and BuildKit's writers copy the file's). The model, like GNU tar, takes the
/// target's; some appliers apply the link's header to the shared inode.
pub fn hardlink_headers() -> Vec<Case> {
    vec![case(
        "hardlink-header-metadata",
        vec![
            l().file("keep", b"keep").finish(),
            l().file_with("x", b"x", 0o755, 1000, 1000, &[]).hardlink("y", "x").finish(),
            l().file("z", b"z").finish(),
        ],
        vec![(1, 2)],
    )]
}
