use std::path::Path;

use squash::{Image, LayerSelector, Output, OutputFormat, SquashOptions};
use squash_testkit::{ImageBuilder, LayerBuilder, LayerCompression, RootFs};

use crate::support::fixtures;

/// Every valid image of the shared fixtures, by reference.
fn valid_images() -> Vec<String> {
    let f = fixtures();
    let ggcr = f.join("google__go-containerregistry/pkg/v1");
    let dive = f.join("wagoodman__dive/.data");
    let mut out: Vec<String> = [
        "tarball/testdata/test_image_1.tar",
        "tarball/testdata/test_image_2.tar",
        "tarball/testdata/test_load_manifest.tar",
        "tarball/testdata/hello-world-v25.tar",
        "mutate/testdata/whiteout_image.tar",
        "mutate/testdata/overwritten_file.tar",
        "mutate/testdata/whiteout_dir.tar",
        "mutate/testdata/source_image.tar",
        "mutate/testdata/source_image_with_empty_layer_history.tar",
    ]
    .iter()
    .map(|p| ggcr.join(p).display().to_string())
    .collect();
    for sel in ["@0", "@1"] {
        out.push(format!(
            "docker-archive:{}:{sel}",
            ggcr.join("tarball/testdata/test_bundle.tar").display()
        ));
        out.push(format!(
            "docker-archive:{}:{sel}",
            ggcr.join("tarball/testdata/test_link.tar").display()
        ));
    }
    // Wrapped in xz, as `docker load` reads it; the second image's `layer.tar` is a symlink to
    // the first's.
    for sel in ["@0", "@1"] {
        out.push(format!(
            "docker-archive:{}:{sel}",
            f.join("containers__skopeo/systemtest/testdata/docker-two-images.tar.xz").display()
        ));
    }
    for tag in ["1", "2", "3", "4"] {
        out.push(format!("oci:{}:{tag}", ggcr.join("layout/testdata/test_index").display()));
    }
    out.push(format!("oci:{}", ggcr.join("layout/testdata/test_index_one_image").display()));
    out.push(
        f.join("containers__image/docker/archive/fixtures/almostempty.tar").display().to_string(),
    );
    out.push(format!(
        "dir:{}",
        f.join("containers__skopeo/integration/fixtures/uncompressed-image-s2").display()
    ));
    for name in [
        "test-docker-image.tar",
        "test-kaniko-image.tar",
        "test-oci-gzip-image.tar",
        "test-oci-zstd-image.tar",
        "test-oci-uncompressed-image.tar",
        "test-oci-estargz-image.tar",
    ] {
        out.push(dive.join(name).display().to_string());
    }
    out.push(format!("oci:{}:v1", f.join("regclient__regclient/testdata/testrepo").display()));
    out
}

fn layer_tars(image: &Image) -> Vec<Vec<u8>> {
    (0..image.layers().len())
        .map(|i| {
            let mut tar = Vec::new();
            image
                .write_layer_tar(i, &mut tar)
                .unwrap_or_else(|e| panic!("{}: layer {i}: {e}", image.path().display()));
            tar
        })
        .collect()
}

fn read_back(path: &Path) -> Vec<Vec<u8>> {
    let image = Image::open(&format!("oci:{}", path.display())).expect("reopen");
    layer_tars(&image)
}

#[test]
fn valid_images_open_inspect_copy_and_squash() {
    for reference in valid_images() {
        let image = Image::open(&reference).unwrap_or_else(|e| panic!("{reference}: {e}"));
        assert!(!image.layers().is_empty(), "{reference}: no layers");
        let indexes = image
            .index_layers(0..image.layers().len())
            .unwrap_or_else(|e| panic!("{reference}: {e}"));
        for (layer, index) in image.layers().iter().zip(&indexes) {
            if let Some(d) = layer.digest() {
                assert_eq!(d, &index.blob_digest, "{reference}: layer {}", layer.index());
            }
        }
        let dir = tempfile::tempdir().expect("tempdir");
        // Copy: every layer blob stays identical.
        let copy = dir.path().join("copy");
        let outcome = image
            .plan(&SquashOptions::default())
            .and_then(|p| {
                p.execute(&image, &Output::new(copy.clone(), OutputFormat::OciLayout).with_tag("t"))
            })
            .unwrap_or_else(|e| panic!("{reference}: copy: {e}"));
        for (layer, index) in outcome.layers.iter().zip(&indexes) {
            assert_eq!(
                layer.digest, index.blob_digest,
                "{reference}: copied layer {} changed",
                layer.index
            );
        }
        // Squash everything: same filesystem under the reference model.
        let before = layer_tars(&image);
        let Ok(expected) = RootFs::from_layers(before.iter().map(Vec::as_slice)) else { continue };
        let squashed = dir.path().join("squashed");
        let n = image.layers().len();
        image
            .plan(&SquashOptions::default().with_selector(LayerSelector::Ranges(vec![(0, n - 1)])))
            .and_then(|p| {
                p.execute(&image, &Output::new(squashed.clone(), OutputFormat::OciLayout))
            })
            .unwrap_or_else(|e| panic!("{reference}: squash: {e}"));
        let after = read_back(&squashed);
        let actual =
            RootFs::from_layers(after.iter().map(Vec::as_slice)).expect("squashed applies");
        let diff = expected.diff(&actual);
        assert!(diff.is_empty(), "{reference}: {}", diff.join("\n"));
    }
}

/// The layer-tar fixtures (tar edge cases from tar-split, tar-rs, moby, bootc) as a middle layer
/// between a base and a top layer: squashing keeps every entry and attribute.
/// The layer-tar fixtures: tar edge cases from tar-split, tar-rs, moby, bootc and regclient.
fn tar_fixtures() -> Vec<std::path::PathBuf> {
    let f = fixtures();
    let mut tars = Vec::new();
    for dir in [
        "vbatts__tar-split/archive/tar/testdata",
        "composefs__tar-rs/tests/archives",
        "moby__moby/daemon/builder/remotecontext/internal/tarsum/testdata",
        "regclient__regclient/testdata",
    ] {
        for entry in walk(&f.join(dir)) {
            if entry.extension().is_some_and(|e| e == "tar") {
                tars.push(entry);
            }
        }
    }
    for name in [
        "vbatts__tar-split/tar/asm/testdata/t.tar.gz",
        "vbatts__tar-split/tar/asm/testdata/longlink.tar.gz",
        "vbatts__tar-split/tar/asm/testdata/fatlonglink.tar.gz",
        "vbatts__tar-split/tar/asm/testdata/iso-8859.tar.gz",
        "vbatts__tar-split/tar/asm/testdata/extranils.tar.gz",
        "vbatts__tar-split/tar/asm/testdata/notenoughnils.tar.gz",
        "bootc-dev__bootc/crates/ostree-ext/tests/it/fixtures/hlinks.tar.gz",
        "bootc-dev__bootc/crates/ostree-ext/src/container/tests/it/fixtures/exampleos.tar.zst",
    ] {
        tars.push(f.join(name));
    }
    tars
}

#[test]
fn tar_fixtures_as_layers() {
    let (mut squashed, mut refused) = (0, 0);
    for path in tar_fixtures() {
        let raw = std::fs::read(&path).expect("read");
        let tar = squash_testkit::decompress(&raw);
        let dir = tempfile::tempdir().expect("tempdir");
        let mut builder = ImageBuilder::new(LayerCompression::Gzip);
        builder.layer(LayerBuilder::new().dir("base").file("base/file", b"base").finish(), "base");
        builder.layer_compressed(tar.clone(), "fixture", LayerCompression::None);
        builder.layer(LayerBuilder::new().file("top", b"top").finish(), "top");
        builder.write_oci_layout(&dir.path().join("in"), "t");
        match crate::support::squash(
            &dir.path().join("in"),
            dir.path(),
            vec![(1, 2)],
            SquashOptions::default(),
        ) {
            Ok(out) => {
                squashed += 1;
                let stack = builder.layer_tars();
                // The model reads with the `tar` crate, which reads data after header-only
                // entries whose size field is not 0; appliers (Go) and squash do not.
                let model_agrees = !path.ends_with("hdr-only.tar");
                if let (true, Ok(expected)) =
                    (model_agrees, RootFs::from_layers(stack.iter().map(Vec::as_slice)))
                {
                    let (after, _) = squash_testkit::read_oci_layout(&out, Some("t"));
                    let actual = RootFs::from_layers(after.iter().map(|(_, t)| t.as_slice()))
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    let diff = expected.diff(&actual);
                    assert!(diff.is_empty(), "{}: {}", path.display(), diff.join("\n"));
                }
            }
            Err(e) => {
                refused += 1;
                let message = e.to_string();
                assert!(
                    matches!(
                        e,
                        squash::Error::MalformedTar { .. } | squash::Error::Unsupported { .. }
                    ),
                    "{}: {message}",
                    path.display()
                );
                assert!(
                    message.contains("layer 1"),
                    "{}: error does not name the layer: {message}",
                    path.display()
                );
            }
        }
    }
    assert!(squashed > 40 && refused > 5, "squashed {squashed}, refused {refused}");
}

/// A `docker save` tarball read through a spool (here: compressed, as from a pipe) has its
/// plain layers' surviving entries read from the spool where they lie rather than copied; a
/// header group the tar reader normalizes (a global header left out, a size of 0 written for
/// a header-only entry) is not held there as read, and its layer is read again. The image
/// written is the one the tarball gives when read as a file, for every layer-tar fixture as a
/// layer twice (the lower copy mostly shadowed by the upper one) under a top layer.
#[test]
fn tar_fixtures_from_a_spool_squash_as_from_the_file() {
    let (mut compared, mut read_again) = (0, Vec::new());
    for path in tar_fixtures() {
        let tar = squash_testkit::decompress(&std::fs::read(&path).expect("read"));
        let dir = tempfile::tempdir().expect("tempdir");
        let mut builder = ImageBuilder::new(LayerCompression::Gzip);
        builder.layer(LayerBuilder::new().dir("base").file("base/file", b"base").finish(), "base");
        builder.layer_compressed(tar.clone(), "fixture", LayerCompression::None);
        builder.layer_compressed(tar, "fixture again", LayerCompression::None);
        let top = LayerBuilder::new().file("top", b"top").whiteout("base/file").finish();
        builder.layer_compressed(top, "top", LayerCompression::None);
        let file = dir.path().join("in.tar");
        builder.write_docker_archive(&file, "app:1");
        let spooled = dir.path().join("in.tar.gz");
        let bytes = std::fs::read(&file).expect("archive");
        std::fs::write(&spooled, LayerCompression::Gzip.compress(&bytes)).expect("write");
        let options = SquashOptions::default().with_selector(LayerSelector::Ranges(vec![(1, 3)]));
        let squashed = |input: &Path, name: &str| {
            let image = Image::open(&input.display().to_string())?;
            let out = dir.path().join(name);
            let outcome = image.plan(&options).and_then(|plan| {
                plan.execute(&image, &Output::new(&out, OutputFormat::OciArchive))
            })?;
            let written = std::fs::read(&out).expect("output");
            let rereads: Vec<_> = outcome.layers.into_iter().flat_map(|l| l.rereads).collect();
            Ok::<_, squash::Error>((written, rereads))
        };
        let from_file = squashed(&file, "from-file.tar");
        let from_spool = squashed(&spooled, "from-spool.tar");
        match (from_file, from_spool) {
            (Ok((a, rereads)), Ok((b, spooled_rereads))) => {
                assert!(a == b, "{}: the spool gives another image", path.display());
                assert!(rereads.is_empty(), "{}: {rereads:?}", path.display());
                compared += 1;
                if !spooled_rereads.is_empty() {
                    read_again.push(path.file_name().expect("name").display().to_string());
                }
            }
            (Err(a), Err(b)) => {
                let b = b.to_string().replace("in.tar.gz", "in.tar");
                assert_eq!(a.to_string(), b, "{}", path.display());
            }
            (a, b) => panic!("{}: from the file {a:?}, from the spool {b:?}", path.display()),
        }
    }
    assert!(compared > 40, "compared {compared}");
    // The two fixtures whose groups the reader normalizes, and only those.
    read_again.sort();
    assert_eq!(read_again, ["hdr-only.tar", "pax-global-records.tar"]);
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let p = entry.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
