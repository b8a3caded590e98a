use std::path::{Path, PathBuf};

use squash::{Image, LayerSelector, Output, OutputFormat, SquashOptions};
use squash_testkit::{read_oci_layout, ImageBuilder, LayerCompression, RootFs};

/// The root of the shared fixtures.
pub fn fixtures() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    for candidate in [here.join("../../shared/fixtures"), here.join("../shared/fixtures")] {
        if candidate.is_dir() {
            return candidate;
        }
    }
    panic!("shared fixtures not found next to the repository");
}

/// Builds an OCI layout from `stack` in `dir/in`, tagged `t`.
pub fn build(dir: &Path, stack: &[Vec<u8>], compression: LayerCompression) -> PathBuf {
    let mut builder = ImageBuilder::new(compression);
    for (i, layer) in stack.iter().enumerate() {
        builder.layer(layer.clone(), &format!("RUN step {i}"));
        if i % 2 == 0 {
            builder.empty_step(&format!("ENV step={i}"));
        }
    }
    let path = dir.join("in");
    builder.write_oci_layout(&path, "t");
    path
}

/// Squashes `ranges` of the image at `input` into `dir/out` and returns the output path.
pub fn squash(
    input: &Path,
    dir: &Path,
    ranges: Vec<(usize, usize)>,
    options: SquashOptions,
) -> squash::Result<PathBuf> {
    let image = Image::open(&format!("oci:{}:t", input.display()))?;
    let plan = image.plan(&options.with_selector(LayerSelector::Ranges(ranges)))?;
    let out = dir.join("out");
    let output = Output::new(out.clone(), OutputFormat::OciLayout).with_tag("t");
    plan.execute(&image, &output)?;
    Ok(out)
}

/// Asserts that squashing `ranges` of `stack` gives the same filesystem, keeps the other layers'
/// blobs, and yields the expected layer count.
pub fn check_equivalent(
    stack: &[Vec<u8>],
    ranges: Vec<(usize, usize)>,
    compression: LayerCompression,
) -> squash::Result<()> {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = build(dir.path(), stack, compression);
    let out = squash(&input, dir.path(), ranges.clone(), SquashOptions::default())?;
    compare_layouts(&input, &out, &ranges);
    Ok(())
}

/// Compares the filesystems of two OCI layouts, and checks kept layers are byte-identical.
pub fn compare_layouts(input: &Path, out: &Path, ranges: &[(usize, usize)]) {
    let (before, _) = read_oci_layout(input, Some("t"));
    let (after, config) = read_oci_layout(out, Some("t"));
    let expected =
        RootFs::from_layers(before.iter().map(|(_, t)| t.as_slice())).expect("original applies");
    let actual =
        RootFs::from_layers(after.iter().map(|(_, t)| t.as_slice())).expect("squashed applies");
    let diff = expected.diff(&actual);
    assert!(
        diff.is_empty(),
        "filesystems differ for ranges {ranges:?}:\n{}\n--- input layers:\n{}\n--- output \
            layers:\n{}",
        diff.join("\n"),
        listing(before.iter().map(|(_, t)| t.as_slice())),
        listing(after.iter().map(|(_, t)| t.as_slice()))
    );
    // Where the original does not depend on whether markers create their parents (Docker and
    // containerd: they do; umoci: they do not), neither may the squashed image.
    let strict = |layers: &[(String, Vec<u8>)]| {
        RootFs::from_layers_strict(layers.iter().map(|(_, t)| t.as_slice()))
    };
    if let Ok(strict_before) = strict(&before) {
        if strict_before.diff(&expected).is_empty() {
            let strict_after = strict(&after).expect("squashed applies");
            let diff = strict_before.diff(&strict_after);
            assert!(
                diff.is_empty(),
                "filesystems differ for ranges {ranges:?} where markers create no \
                    parents:\n{}\n--- input layers:\n{}\n--- output layers:\n{}",
                diff.join("\n"),
                listing(before.iter().map(|(_, t)| t.as_slice())),
                listing(after.iter().map(|(_, t)| t.as_slice()))
            );
        }
    }
    let removed: usize = ranges.iter().map(|(a, b)| b - a).sum();
    assert_eq!(after.len(), before.len() - removed, "layer count");
    // Kept layers: same blob digests, in order.
    let mut new_index = 0;
    let mut i = 0;
    while i < before.len() {
        if let Some((_, end)) = ranges.iter().find(|(a, _)| *a == i) {
            i = end + 1;
        } else {
            assert_eq!(before[i].0, after[new_index].0, "kept layer {i} changed digest");
            i += 1;
        }
        new_index += 1;
    }
    // History pairs with layers.
    let non_empty = config["history"]
        .as_array()
        .map(|h| h.iter().filter(|s| s["empty_layer"].as_bool() != Some(true)).count());
    assert_eq!(non_empty, Some(after.len()), "history must pair with layers");
}

/// `tar tv`-like listing of layers, for failure messages.
pub fn listing<'a>(layers: impl Iterator<Item = &'a [u8]>) -> String {
    let mut out = String::new();
    for (i, layer) in layers.enumerate() {
        out.push_str(&format!("layer {i}:\n"));
        let mut archive = tar::Archive::new(layer);
        for entry in archive.entries().expect("tar").flatten() {
            let h = entry.header();
            let link = entry
                .link_name_bytes()
                .map(|l| format!(" -> {}", String::from_utf8_lossy(&l)))
                .unwrap_or_default();
            out.push_str(&format!(
                "  {:?} {:o} {}{}\n",
                h.entry_type(),
                h.mode().unwrap_or(0),
                String::from_utf8_lossy(&entry.path_bytes()),
                link
            ));
        }
    }
    out
}
