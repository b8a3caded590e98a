//! One test per rule of docs/layer-rules.md. Each builds a small stack, squashes the named
//! ranges and compares the filesystems with the reference model (see
//! `support::check_equivalent`).

use squash_testkit::cases::{self, Case};
use squash_testkit::LayerCompression;

use crate::support::check_equivalent;

/// Checks every case of a group against the reference model.
fn check_cases(group: Vec<Case>) {
    for case in group {
        if let Err(e) = check_equivalent(&case.layers, case.ranges.clone(), LayerCompression::Gzip)
        {
            panic!("{}: {e}", case.name);
        }
    }
}

#[test]
fn rule1_one_entry_per_normalized_path() {
    check_cases(cases::rule1());
}

#[test]
fn rule2_type_change_removes_the_lower_subtree() {
    check_cases(cases::rule2());
}

#[test]
fn rule3_whiteout_scope_is_lower_layers() {
    check_cases(cases::rule3());
}

#[test]
fn rule4_whiteout_is_a_basename_prefix() {
    check_cases(cases::rule4());
}

#[test]
fn rule5_opaque_whiteout_wherever_it_sits() {
    check_cases(cases::rule5());
}

#[test]
fn rule6_reemit_exactly_the_needed_whiteouts() {
    check_cases(cases::rule6());
}

#[test]
fn rule7_hardlink_outlives_its_target_name() {
    check_cases(cases::rule7());
}

#[test]
fn rule8_symlinks_are_never_followed() {
    check_cases(cases::rule8());
}

#[test]
fn rule9_never_invent_directories() {
    check_cases(cases::rule9());
}

#[test]
fn rule10_keep_every_attribute() {
    check_cases(cases::rule10());
}

#[test]
fn umoci_whiteout_under_a_file() {
    check_cases(cases::umoci_whiteout_under_a_file());
}

/// Every case, and no two with one name (the compatibility matrix names them).
#[test]
fn every_case_has_its_own_name() {
    let all = cases::regression_cases();
    let names: std::collections::BTreeSet<_> = all.iter().map(|c| c.name.clone()).collect();
    assert_eq!(names.len(), all.len());
    assert!(all.len() > 20, "{} cases", all.len());
}

/// Entries of the squashed layers of `stack` squashed over `range`, as `(path, is_dir)`.
fn squashed_entries(stack: &[Vec<u8>], range: (usize, usize)) -> Vec<(String, bool)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = crate::support::build(dir.path(), stack, LayerCompression::Gzip);
    let out =
        crate::support::squash(&input, dir.path(), vec![range], squash::SquashOptions::default())
            .expect("squash");
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
    let group = cases::implicit_directory_emptied();
    check_cases(group.clone());
    let long = "L".repeat(120);
    for (name, x) in [("implicit-emptied/short", "x"), ("implicit-emptied/long", long.as_str())] {
        let case = group.iter().find(|c| c.name == name).expect("case");
        let entries = squashed_entries(&case.layers, case.ranges[0]);
        assert!(entries.contains(&(format!("{x}/y/"), true)), "{entries:?}");
    }
    // A directory the lower layers hold keeps its own metadata: no header is written for it.
    let case = group.iter().find(|c| c.name == "implicit-emptied/lower-dir").expect("case");
    let entries = squashed_entries(&case.layers, case.ranges[0]);
    assert!(entries.contains(&("x/y/".to_string(), true)), "{entries:?}");
    assert!(
        !entries.iter().any(|(p, _)| p == "x/" || p == "x"),
        "x is below the range: {entries:?}"
    );
}

/// A range that starts at the first layer has nothing below it: its new layer holds no whiteout
/// or opaque marker.
#[test]
fn base_range_writes_no_whiteouts() {
    check_cases(cases::base_range());
    let stack = cases::base_range_stack();
    for end in 1..stack.len() {
        let entries = squashed_entries(&stack, (0, end));
        let markers: Vec<_> = entries
            .iter()
            .filter(|(p, _)| p.rsplit('/').next().is_some_and(|n| n.starts_with(".wh.")))
            .collect();
        assert!(markers.is_empty(), "range 0..{end}: {markers:?}");
    }
    let entries = squashed_entries(&stack, (0, 4));
    assert!(entries.contains(&("nope/deep/".to_string(), true)), "{entries:?}");
}

/// A whiteout is written only in a directory the layers below hold: elsewhere it hides
/// nothing, and overlayfs lists it as an entry that cannot be opened.
#[test]
fn whiteouts_only_where_the_layers_below_hold_the_directory() {
    let group = cases::whiteouts_in_new_directories();
    check_cases(group.clone());
    let markers = |name: &str| {
        let case = group.iter().find(|c| c.name == name).expect("case");
        let entries = squashed_entries(&case.layers, case.ranges[0]);
        let mut found: Vec<String> =
            entries.into_iter().map(|(p, _)| p).filter(|p| p.contains(".wh.")).collect();
        found.sort();
        found
    };
    assert_eq!(markers("new-dir-whiteout/new"), Vec::<String>::new());
    // `d/g` came and went inside the range; its whiteout hides nothing but does no harm in a
    // directory the layers below hold (overlayfs merges it and hides its whiteouts).
    assert_eq!(
        markers("new-dir-whiteout/below"),
        vec!["d/.wh.f".to_string(), "d/.wh.g".to_string()]
    );
    assert_eq!(markers("new-dir-whiteout/nested"), vec!["d/.wh.x".to_string()]);
}
