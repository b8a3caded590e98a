//! `--exclude`: every matching path vanishes from the squashed image's filesystem with its
//! subtree, wherever its data sits: dropped from a squashed range, hidden by whiteouts when a
//! kept layer below holds it, refused when a kept layer above every range does. The model judges
//! (with markers creating their parents, and without); umoci unpacks the result.

use std::path::Path;

use squash::{EntryPath, Excludes, Image, LayerSelector, Output, OutputFormat, SquashOptions};
use squash_testkit::{random_stack, read_oci_layout, LayerBuilder, LayerCompression, RootFs};

use crate::support::build;

/// The model's filesystem with what `excludes` covers taken out.
fn without(fs: &RootFs, excludes: &Excludes) -> RootFs {
    fs.filter_map(|path, node| {
        let path = EntryPath::parse(path).ok()?;
        let dir = matches!(node.kind, squash_testkit::NodeKind::Dir);
        excludes.covering(&path, dir).is_none().then(|| node.clone())
    })
}

/// Squashes `selector` of the layout at `input` with `patterns`, and checks the result against
/// the original minus what the patterns cover; returns the output layout.
fn check(
    dir: &Path,
    input: &Path,
    selector: LayerSelector,
    patterns: &[String],
) -> std::path::PathBuf {
    let image = Image::open(&format!("oci:{}:t", input.display())).expect("open");
    let mut options = SquashOptions::default().with_selector(selector.clone());
    for p in patterns {
        options = options.with_exclude(p.clone());
    }
    let out = dir.join("out");
    let _ = std::fs::remove_dir_all(&out);
    let plan = image.plan(&options).expect("plan");
    plan.execute(&image, &Output::new(out.clone(), OutputFormat::OciLayout).with_tag("t"))
        .expect("execute");
    let excludes = Excludes::new(patterns).expect("patterns");
    let (before, _) = read_oci_layout(input, Some("t"));
    let (after, _) = read_oci_layout(&out, Some("t"));
    let listing = || {
        format!(
            "patterns {patterns:?}, {selector:?}\n--- input:\n{}\n--- output:\n{}",
            crate::support::listing(before.iter().map(|(_, t)| t.as_slice())),
            crate::support::listing(after.iter().map(|(_, t)| t.as_slice()))
        )
    };
    let expected = without(
        &RootFs::from_layers(before.iter().map(|(_, t)| t.as_slice())).expect("original"),
        &excludes,
    );
    let actual = RootFs::from_layers(after.iter().map(|(_, t)| t.as_slice())).expect("squashed");
    let diff = expected.diff(&actual);
    assert!(diff.is_empty(), "{}\n{}", diff.join("\n"), listing());
    let strict = |layers: &[(String, Vec<u8>)]| {
        RootFs::from_layers_strict(layers.iter().map(|(_, t)| t.as_slice()))
    };
    if let Ok(strict_before) = strict(&before) {
        if without(&strict_before, &excludes).diff(&expected).is_empty() {
            let diff = expected.diff(&strict(&after).expect("squashed, strictly"));
            assert!(
                diff.is_empty(),
                "where markers create no parents:\n{}\n{}",
                diff.join("\n"),
                listing()
            );
        }
    }
    out
}

/// A glob that matches `path` only: its metacharacters escaped.
fn literal(path: &str) -> String {
    path.chars()
        .flat_map(|c| if "*?[]{}\\".contains(c) { vec!['\\', c] } else { vec![c] })
        .collect()
}

/// Random stacks, random patterns taken from their paths (exact, a directory's subtree,
/// directories only, `**` and `*` globs), over ranges at the top, in the middle and at the base.
#[test]
fn random_excludes_over_every_position() {
    let mut cases = 0;
    for seed in 0..40u64 {
        let stack = random_stack(seed, 5);
        let dir = tempfile::tempdir().expect("tempdir");
        let input = build(dir.path(), &stack, LayerCompression::Gzip);
        // Every path any layer names, so that patterns hit kept layers as well as the range.
        let mut names: Vec<String> = Vec::new();
        for tar in &stack {
            for entry in tar::Archive::new(tar.as_slice()).entries().expect("entries").flatten() {
                if let Ok(path) = entry.path() {
                    let name = path
                        .to_string_lossy()
                        .trim_start_matches("./")
                        .trim_end_matches('/')
                        .to_string();
                    if !name.is_empty() && !name.contains(".wh.") && !name.contains('\u{fffd}') {
                        names.push(name);
                    }
                }
            }
        }
        names.sort();
        names.dedup();
        if names.is_empty() {
            continue;
        }
        let pick = |k: u64| names[((seed * 31 + k * 17) as usize) % names.len()].clone();
        let last = |p: &str| p.rsplit('/').next().unwrap_or(p).to_string();
        let patterns = match seed % 4 {
            0 => vec![literal(&pick(1))],
            1 => vec![format!("{}/", literal(&pick(2))), literal(&pick(3))],
            2 => vec![format!("**/{}", literal(&last(&pick(4))))],
            _ => vec![format!(
                "{}/*",
                literal(&pick(5)).rsplit_once('/').map(|(d, _)| d.to_string()).unwrap_or_default()
            )]
            .into_iter()
            .filter(|p| p != "/*")
            .chain([literal(&pick(6))])
            .collect(),
        };
        for selector in
            [LayerSelector::Top(5), LayerSelector::Top(2), LayerSelector::Ranges(vec![(1, 4)])]
        {
            check(dir.path(), &input, selector, &patterns);
            cases += 1;
        }
        // With kept layers above the range, a path they still hold at the end is refused, and
        // only then.
        let image = Image::open(&format!("oci:{}:t", input.display())).expect("open");
        let mut options =
            SquashOptions::default().with_selector(LayerSelector::Ranges(vec![(1, 2)]));
        for p in &patterns {
            options = options.with_exclude(p.clone());
        }
        let excludes = Excludes::new(&patterns).expect("patterns");
        let final_fs = RootFs::from_layers(stack.iter().map(|l| l.as_slice())).expect("model");
        // Whether a layer above writes a path the patterns cover that is still there at the end.
        let still_there = stack[3..].iter().any(|tar| {
            tar::Archive::new(tar.as_slice()).entries().expect("entries").flatten().any(|entry| {
                let Ok(name) = entry.path().map(|p| p.to_string_lossy().into_owned()) else {
                    return false;
                };
                let name = name.trim_start_matches("./").trim_end_matches('/').to_string();
                let Ok(path) = EntryPath::parse(name.as_bytes()) else { return false };
                let Some(node) = final_fs.nodes().get(path.as_bytes()) else { return false };
                let dir = matches!(node.kind, squash_testkit::NodeKind::Dir);
                !path.is_root()
                    && !path.file_name().starts_with(b".wh.")
                    && excludes.covering(&path, dir).is_some()
            })
        });
        match image.plan(&options) {
            Ok(_) => {
                assert!(
                    !still_there,
                    "seed {seed}: {patterns:?} covers a path the layers above hold, and was not \
                        refused\n{}",
                    crate::support::listing(stack.iter().map(|l| l.as_slice()))
                );
                check(dir.path(), &input, LayerSelector::Ranges(vec![(1, 2)]), &patterns);
                cases += 1;
            }
            Err(e) => assert!(
                still_there && e.to_string().contains("above every squashed range"),
                "seed {seed}: {e}"
            ),
        }
    }
    assert!(cases >= 100, "{cases} cases");
}

/// The three positions, by hand: data in the range is dropped (reclaimed), data in a kept layer
/// below is hidden by a whiteout (its directory stays, empty), and data in a kept layer above
/// every range is refused with the layer and the entry named. Hard links: excluding one name
/// keeps the other, with the content.
#[test]
fn excludes_in_the_range_below_it_and_above_every_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stack = vec![
        LayerBuilder::new()
            .dir("usr")
            .dir("usr/share")
            .dir("usr/share/doc")
            .file("usr/share/doc/base.txt", b"base docs")
            .file("keep", b"k")
            .finish(),
        LayerBuilder::new()
            .dir("app")
            .file("app/main.py", b"print()")
            .dir("app/__pycache__")
            .file("app/__pycache__/main.pyc", &[7u8; 4000])
            .file("usr/share/doc/app.txt", b"app docs")
            .file("app/data", b"shared content")
            .hardlink("app/data-link", "app/data")
            .finish(),
        LayerBuilder::new().file("app/cache.log", b"log").finish(),
    ];
    let input = build(dir.path(), &stack, LayerCompression::Gzip);
    let patterns: Vec<String> = vec![
        "**/__pycache__/".into(),
        "usr/share/doc".into(),
        "**/*.log".into(),
        "app/data".into(),
    ];
    let out = check(dir.path(), &input, LayerSelector::Top(2), &patterns);
    let image = Image::open(&format!("oci:{}:t", input.display())).expect("open");
    let mut options = SquashOptions::default().with_selector(LayerSelector::Top(2));
    for p in &patterns {
        options = options.with_exclude(p.clone());
    }
    let plan = image.plan(&options).expect("plan");
    let figures = plan.excluded();
    assert_eq!(figures.len(), 4);
    assert_eq!((figures[0].entries_reclaimed, figures[0].entries_hidden), (2, 0), "{figures:?}");
    assert!(figures[0].bytes_reclaimed >= 4000);
    assert_eq!(figures[1].entries_reclaimed, 1, "app.txt in the range: {figures:?}");
    assert_eq!(figures[1].entries_hidden, 2, "the directory and base.txt below: {figures:?}");
    assert_eq!(figures[2].entries_reclaimed, 1, "cache.log, in the range: {figures:?}");
    assert_eq!(
        figures[3].entries_reclaimed, 1,
        "app/data, whose content its link keeps: {figures:?}"
    );
    let (after, _) = read_oci_layout(&out, Some("t"));
    let fs = RootFs::from_layers(after.iter().map(|(_, t)| t.as_slice())).expect("squashed");
    assert!(fs.nodes().contains_key(&b"usr/share"[..]), "the emptied parent stays a directory");
    assert!(!fs.nodes().contains_key(&b"usr/share/doc"[..]));
    assert!(
        fs.nodes().contains_key(&b"app/data-link"[..]),
        "the other name of the hard link stays"
    );
    assert_eq!(
        after[0].0,
        read_oci_layout(&input, Some("t")).0[0].0,
        "the base layer is kept byte for byte"
    );

    // Above every range: `**/*.log` is in the top layer, which a squash of the middle layer keeps.
    let refused = image
        .plan(
            &SquashOptions::default()
                .with_selector(LayerSelector::Ranges(vec![(1, 1)]))
                .with_exclude("**/*.log"),
        )
        .map(|_| ())
        .expect_err("a path above every range");
    let text = refused.to_string();
    assert!(
        text.contains("app/cache.log") && text.contains("layer 2") && text.contains("**/*.log"),
        "{text}"
    );
    // ...unless that layer deletes it again.
    let stack2 = vec![
        stack[0].clone(),
        stack[1].clone(),
        LayerBuilder::new().file("tmp.log", b"x").finish(),
        LayerBuilder::new().whiteout("tmp.log").finish(),
    ];
    let dir2 = tempfile::tempdir().expect("tempdir");
    let input2 = build(dir2.path(), &stack2, LayerCompression::Gzip);
    check(dir2.path(), &input2, LayerSelector::Ranges(vec![(1, 1)]), &["*.log".to_string()]);
}

/// umoci unpacks the excluded image without the excluded paths and with everything else.
#[test]
fn umoci_unpacks_without_the_excluded_paths() {
    if !squash_testkit::tool_available("umoci") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let stack = vec![
        LayerBuilder::new()
            .dir("var")
            .dir("var/lib")
            .dir("var/lib/apt")
            .dir("var/lib/apt/lists")
            .file("var/lib/apt/lists/a", b"a")
            .file("etc", b"e")
            .finish(),
        LayerBuilder::new()
            .file("var/lib/apt/lists/b", b"b")
            .dir("srv")
            .file("srv/x.pyc", b"x")
            .file("srv/x.py", b"y")
            .finish(),
    ];
    let input = build(dir.path(), &stack, LayerCompression::Gzip);
    let out = check(
        dir.path(),
        &input,
        LayerSelector::Top(1),
        &["var/lib/apt/lists/*".into(), "**/*.pyc".into()],
    );
    let bundle = dir.path().join("bundle");
    let status = std::process::Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:t", out.display()))
        .arg(&bundle)
        .status()
        .expect("umoci");
    assert!(status.success());
    let root = bundle.join("rootfs");
    assert!(root.join("var/lib/apt/lists").is_dir(), "the emptied directory stays");
    assert!(
        !root.join("var/lib/apt/lists/a").exists() && !root.join("var/lib/apt/lists/b").exists()
    );
    assert!(
        !root.join("srv/x.pyc").exists()
            && root.join("srv/x.py").is_file()
            && root.join("etc").is_file()
    );
}
