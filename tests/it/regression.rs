//! One test per trap of SPEC-NOTES.md. Each builds a small stack, squashes the named ranges and
//! compares the filesystems with the reference model (see `support::check_equivalent`).

use squash_testkit::{LayerBuilder, LayerCompression};

use crate::support::check_equivalent;

fn l() -> LayerBuilder {
    LayerBuilder::new()
}

fn check(stack: Vec<Vec<u8>>, ranges: Vec<(usize, usize)>) {
    check_equivalent(&stack, ranges, LayerCompression::Gzip).expect("squash");
}

/// See: docker-squash#108, #118 (duplicate paths spelled differently).
#[test]
fn rule1_one_entry_per_normalized_path() {
    check(
        vec![
            l().dir("a").file("a/f", b"1").finish(),
            l().file("./a/f", b"2").file("/a/f", b"3").dir("a/").finish(),
            l().file("a//f", b"4").finish(),
        ],
        vec![(1, 2)],
    );
}

/// See: docker-squash#253 (`rm -rf dir; touch dir` keeps both).
#[test]
fn rule2_type_change_removes_the_lower_subtree() {
    check(vec![l().dir("d").file("d/x", b"x").finish(), l().whiteout("d").finish(), l().file("d", b"now a file").finish()], vec![(1, 2)]);
    check(
        vec![l().file("f", b"file").finish(), l().dir("f").file("f/y", b"y").finish(), l().symlink("f", "elsewhere").finish()],
        vec![(0, 2)],
    );
}

/// A whiteout hides lower layers only; the entry in its own layer survives.
#[test]
fn rule3_whiteout_scope_is_lower_layers() {
    check(vec![l().file("a", b"old").finish(), l().file("a", b"new").whiteout("a").finish()], vec![(0, 1)]);
    check(vec![l().file("a", b"old").finish(), l().file("a", b"new").whiteout("a").finish(), l().file("b", b"b").finish()], vec![(1, 2)]);
}

/// See: docker-squash and oci-squash test `".wh." in name`.
#[test]
fn rule4_whiteout_is_a_basename_prefix() {
    check(
        vec![l().file("keep.wh.me", b"k").dir("dir.wh.x").file("dir.wh.x/file", b"f").finish(), l().file("other", b"o").finish()],
        vec![(0, 1)],
    );
}

/// See: ggcr#1897, #2029 (opaque marker after the layer's own children).
#[test]
fn rule5_opaque_whiteout_wherever_it_sits() {
    check(
        vec![
            l().dir("d").file("d/old", b"o").finish(),
            l().dir("d").file("d/new", b"n").opaque("d").finish(),
            l().file("z", b"z").finish(),
        ],
        vec![(1, 2)],
    );
}

/// See: docker-squash#97 (lost whiteout resurrects base files), #181 (nested markers).
#[test]
fn rule6_reemit_exactly_the_needed_whiteouts() {
    check(
        vec![
            l().dir("d").file("d/a", b"a").file("d/b", b"b").finish(),
            l().whiteout("d/a").finish(),
            l().whiteout("d").finish(),
            l().file("c", b"c").finish(),
        ],
        vec![(1, 3)],
    );
    // Deleted and re-created inside the range: an opaque marker keeps the base's children hidden.
    check(
        vec![l().dir("d").file("d/a", b"a").finish(), l().whiteout("d").finish(), l().dir("d").file("d/new", b"n").finish()],
        vec![(1, 2)],
    );
}

/// See: ggcr#977, #2002; docker-squash and oci-squash re-point links to new content.
#[test]
fn rule7_hardlink_outlives_its_target_name() {
    check(
        vec![
            l().file("base", b"b").finish(),
            l().file("usr/bin/x", b"old").hardlink("usr/bin/y", "/usr/bin/x").hardlink("usr/bin/z", "usr/bin/y").finish(),
            l().file("usr/bin/x", b"new").finish(),
        ],
        vec![(1, 2)],
    );
    check(
        vec![l().file("base", b"b").finish(), l().file("t", b"old").hardlink("h", "t").finish(), l().whiteout("t").finish()],
        vec![(1, 2)],
    );
}

/// Symlinks are data: dangling and looping links stay as they are.
#[test]
fn rule8_symlinks_are_never_followed() {
    check(
        vec![
            l().symlink("loop", "loop").symlink("dangling", "/nowhere").dir("d").finish(),
            l().symlink("d2", "d").file("d/f", b"f").finish(),
        ],
        vec![(0, 1)],
    );
}

/// No invented parents; the newest directory header wins.
#[test]
fn rule9_never_invent_directories() {
    check(vec![l().file("x", b"x").finish(), l().file("a/b/c", b"c").finish(), l().dir_with("a", 0o700, 5, 5).finish()], vec![(1, 2)]);
}

/// Every attribute: setuid, large ids, xattrs, long and non-UTF-8 names, devices.
#[test]
fn rule10_keep_every_attribute() {
    let long = "l".repeat(150);
    check(
        vec![
            l().file_with("s", b"s", 0o4755, 3_000_000, 70_000, &[("security.capability", b"\x01\x00\x00\x02\xff")]).finish(),
            l().file(format!("{long}/{long}"), b"long")
                .symlink("sl", long.as_str())
                .file(b"\xff\xfe-name".as_slice(), b"latin")
                .char_device("null", 1, 3)
                .fifo("p")
                .finish(),
            l().file("z", b"z").finish(),
        ],
        vec![(0, 2)],
    );
}

/// umoci writes whiteouts under a path it turned into a file in the same layer.
#[test]
fn umoci_whiteout_under_a_file() {
    check(
        vec![l().dir("a").file("a/x", b"x").finish(), l().file("a", b"file now").whiteout("a/x").finish(), l().file("b", b"b").finish()],
        vec![(1, 2)],
    );
}

/// Entries of the squashed layers of `stack` squashed over `range`, as `(path, is_dir)`.
fn squashed_entries(stack: &[Vec<u8>], range: (usize, usize)) -> Vec<(String, bool)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = crate::support::build(dir.path(), stack, LayerCompression::Gzip);
    let out = crate::support::squash(&input, dir.path(), vec![range], squash::SquashOptions::default()).expect("squash");
    let (layers, _) = squash_testkit::read_oci_layout(&out, Some("t"));
    let mut entries = Vec::new();
    let mut archive = tar::Archive::new(layers[range.0].1.as_slice());
    for entry in archive.entries().expect("tar").flatten() {
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        entries.push((path, entry.header().entry_type().is_dir()));
    }
    entries
}

/// An implicit directory emptied inside the range stays: `x/y/f` (no headers for `x/`, `x/y/`)
/// deleted by a later layer of the range leaves `/x` and `/x/y`, written as directories since
/// appliers differ on creating a whiteout's parents (umoci does not).
#[test]
fn implicit_directory_emptied_inside_the_range_is_written() {
    let long = "L".repeat(120);
    for x in ["x", long.as_str()] {
        let stack = vec![
            l().file("keep", b"keep").finish(),
            l().file(format!("{x}/y/f"), b"f").finish(),
            l().whiteout(format!("{x}/y/f")).finish(),
        ];
        check(stack.clone(), vec![(1, 2)]);
        let entries = squashed_entries(&stack, (1, 2));
        assert!(entries.contains(&(format!("{x}/y/"), true)), "{entries:?}");
        // Within a base range too, where nothing is below.
        check(stack[1..].to_vec(), vec![(0, 1)]);
    }
    // A directory the lower layers hold keeps its own metadata: no header is written for it.
    let stack = vec![
        l().dir_with("x", 0o700, 5, 5).file("keep", b"keep").finish(),
        l().file("x/y/f", b"f").finish(),
        l().whiteout("x/y/f").finish(),
    ];
    check(stack.clone(), vec![(1, 2)]);
    let entries = squashed_entries(&stack, (1, 2));
    assert!(entries.contains(&("x/y/".to_string(), true)), "{entries:?}");
    assert!(!entries.iter().any(|(p, _)| p == "x/" || p == "x"), "x is below the range: {entries:?}");
    // An implied directory that an opaque marker then empties.
    check(
        vec![l().dir("x").file("x/old", b"old").finish(), l().file("x/z/f", b"f").finish(), l().opaque("x/z").whiteout("x/z/f").finish()],
        vec![(1, 2)],
    );
}

/// A range that starts at the first layer has nothing below it: its new layer holds no whiteout
/// or opaque marker.
#[test]
fn base_range_writes_no_whiteouts() {
    let stack = vec![
        l().dir("a").file("a/f", b"f").dir("d").file("d/x", b"x").finish(),
        l().whiteout("a/f").opaque("d").file("d/y", b"y").finish(),
        l().whiteout("d").file("g", b"g").finish(),
        l().file("nope/deep/f", b"f").finish(),
        l().whiteout("nope/deep/f").whiteout("never-existed").finish(),
    ];
    for end in 1..stack.len() {
        check(stack.clone(), vec![(0, end)]);
        let entries = squashed_entries(&stack, (0, end));
        let markers: Vec<_> = entries.iter().filter(|(p, _)| p.rsplit('/').next().is_some_and(|n| n.starts_with(".wh."))).collect();
        assert!(markers.is_empty(), "range 0..{end}: {markers:?}");
    }
    let entries = squashed_entries(&stack, (0, 4));
    assert!(entries.contains(&("nope/deep/".to_string(), true)), "{entries:?}");
}
