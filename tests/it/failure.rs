use std::collections::BTreeMap;
use std::path::Path;

use squash::{
    Context, Error, Image, IndexOptions, LayerSelector, Opened, Output, OutputFormat, SquashOptions,
};
use squash_testkit::{ImageBuilder, LayerBuilder, LayerCompression};

use crate::support::fixtures;

fn open_err(reference: &str) -> Error {
    match Image::open(reference) {
        Ok(_) => panic!("{reference}: opened, but must be refused"),
        Err(e) => e,
    }
}

fn assert_nothing_left(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .expect("read_dir")
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != "in")
        .collect();
    assert!(left.is_empty(), "output left behind: {left:?}");
}

#[test]
fn invalid_fixtures_are_refused_with_a_clear_error() {
    let f = fixtures();
    let ggcr = f.join("google__go-containerregistry/pkg/v1");
    let cases: Vec<(String, &str)> = vec![
        (
            ggcr.join("tarball/testdata/no_manifest.tar").display().to_string(),
            "without `manifest.json`",
        ),
        (ggcr.join("tarball/testdata/null_manifest.tar").display().to_string(), "`null`"),
        (
            format!(
                "oci:{}",
                f.join("containers__image/oci/layout/fixtures/delete_image_only_one_image")
                    .display()
            ),
            "size mismatch",
        ),
        (
            format!(
                "oci:{}:1.0.0",
                f.join("containers__image/oci/layout/fixtures/delete_image_multiple_images")
                    .display()
            ),
            "size mismatch",
        ),
        (
            format!(
                "oci:{}",
                ggcr.join("layout/testdata/test_gc_image_unknown_mediatype").display()
            ),
            "missing blob",
        ),
        (
            format!("oci:{}", ggcr.join("layout/testdata/test_index_media_type").display()),
            "not a container image",
        ),
        (
            format!(
                "oci:{}",
                f.join("containers__image/oci/layout/fixtures/delete_image_shared_blobs_dir")
                    .display()
            ),
            "missing blob",
        ),
        (
            format!(
                "dir:{}",
                f.join("containers__skopeo/integration/fixtures/uncompressed-image-s1").display()
            ),
            "schema 1",
        ),
        (
            format!("oci:{}:a1", f.join("regclient__regclient/testdata/testrepo").display()),
            "not a container image",
        ),
        (
            format!("oci:{}", f.join("regclient__regclient/testdata/testrepo").display()),
            "choose one",
        ),
        (
            format!("oci:{}:nope", f.join("regclient__regclient/testdata/testrepo").display()),
            "no image tagged `nope`",
        ),
        (ggcr.join("tarball/testdata/content.tar").display().to_string(), "plain tar"),
        (
            f.join("containers__skopeo/systemtest/testdata/docker-two-images.tar.xz")
                .display()
                .to_string(),
            "holds 2 images; choose one",
        ),
        (
            f.join("moby__moby/integration-cli/testdata/emptyLayer.tar").display().to_string(),
            "manifest.json",
        ),
        (
            f.join("vbatts__tar-split/archive/tar/testdata/neg-size.tar").display().to_string(),
            "malformed tar",
        ),
    ];
    for (reference, expected) in cases {
        let message = open_err(&reference).to_string();
        assert!(message.contains(expected), "{reference}: `{message}` should mention `{expected}`");
        assert!(message.contains('`'), "{reference}: `{message}` should name the file");
    }
}

fn corrupt_image(dir: &Path) -> std::path::PathBuf {
    let mut b = ImageBuilder::new(LayerCompression::Gzip);
    b.layer(LayerBuilder::new().file("a", &[7u8; 5000]).finish(), "one");
    b.layer(LayerBuilder::new().file("b", &[8u8; 5000]).finish(), "two");
    let input = dir.join("in");
    b.write_oci_layout(&input, "t");
    input
}

/// A layout of four gzip layers under `dir`: the top two shadow part of the second, the fourth
/// holds `top`.
fn four_layer_image(dir: &Path, top: &[u8]) -> std::path::PathBuf {
    let mut b = ImageBuilder::new(LayerCompression::Gzip);
    b.layer(LayerBuilder::new().file("a", &squash_testkit::noise(3 << 20, 1)).finish(), "one");
    b.layer(LayerBuilder::new().file("b", &squash_testkit::noise(1 << 20, 2)).finish(), "two");
    b.layer(LayerBuilder::new().file("c", &[9u8; 300_000]).file("b", b"new").finish(), "three");
    b.layer(LayerBuilder::new().file("d", top).finish(), "four");
    let input = dir.join("in");
    b.write_oci_layout(&input, "t");
    input
}

/// Flips one byte in the middle of the blob of `image`'s layer `n`, stored in layout `input`.
fn corrupt_layer(image: &Image, input: &Path, n: usize) {
    let layer = image.layers()[n].digest().expect("digest").clone();
    let blob = input.join("blobs/sha256").join(layer.hex());
    let mut bytes = std::fs::read(&blob).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&blob, &bytes).expect("write");
}

/// Kept layers of a layout output are copied on a thread beside the merge when the budget has
/// threads to spare: the image written is byte for byte the one written with the copies made
/// first, and a corrupt kept blob fails the run (stopping the merge), names its layer and leaves
/// nothing, whatever the budget.
#[test]
fn kept_layers_copied_beside_the_merge_change_nothing_and_fail_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = four_layer_image(dir.path(), &[4u8; 5000]);
    let image = Image::open(&format!("oci:{}:t", input.display())).expect("open");
    let options = SquashOptions::default().with_selector(LayerSelector::Top(2));
    let written = |threads: usize| {
        let out = dir.path().join(format!("out-{threads}"));
        let context = Context::new().with_threads(threads);
        let plan = image.plan_in(&options, &context).expect("plan");
        plan.execute_in(&image, &Output::new(&out, OutputFormat::OciLayout), &context)
            .expect("squash");
        let mut files = BTreeMap::new();
        for entry in std::fs::read_dir(out.join("blobs/sha256")).expect("blobs").flatten() {
            let bytes = std::fs::read(entry.path()).expect("blob");
            files.insert(entry.file_name(), squash::Digest::of(&bytes).to_string());
        }
        let index = std::fs::read(out.join("index.json")).expect("index");
        files.insert("index.json".into(), squash::Digest::of(&index).to_string());
        std::fs::remove_dir_all(&out).expect("remove");
        files
    };
    let first = written(1);
    assert_eq!(first.len(), 6, "two kept layers, a new one, the config, the manifest, the index");
    assert_eq!(written(4), first, "copied beside the merge");
    assert_eq!(written(0), first, "copied beside the merge, every core");
    corrupt_layer(&image, &input, 1);
    for threads in [0, 1, 4] {
        let context = Context::new().with_threads(threads);
        let output = Output::new(dir.path().join("out"), OutputFormat::OciLayout);
        let err = image
            .plan_in(&options, &context)
            .and_then(|p| p.execute_in(&image, &output, &context))
            .expect_err("a corrupt kept blob must fail");
        assert!(matches!(err, Error::DigestMismatch { .. }), "{threads} threads: {err}");
        assert!(err.to_string().contains("layer 1"), "{threads} threads: {err}");
        assert_nothing_left(dir.path());
    }
}

/// Records the steps a run takes.
#[derive(Default)]
struct Steps(std::sync::Mutex<Vec<String>>);

impl squash::Progress for Steps {
    fn event(&self, event: &squash::Event) {
        if let squash::Event::Step { description } = event {
            self.0.lock().expect("lock").push(description.clone());
        }
    }
}

/// A writer that takes `left` bytes, then fails.
struct FailingAfter {
    left: usize,
}

impl std::io::Write for FailingAfter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Err(std::io::Error::other("the reader went away"));
        }
        let n = buf.len().min(self.left);
        self.left -= n;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn new_layers_merged_beside_a_stream_change_nothing_and_fail_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tmp = tempfile::tempdir().expect("tmp");
    let input = four_layer_image(dir.path(), &squash_testkit::noise(2 << 20, 4));
    let image = Image::open(&format!("oci:{}:t", input.display())).expect("open");
    let options = SquashOptions::default().with_selector(LayerSelector::Top(2));
    let steps = Steps::default();
    let stream = |threads: usize, out: &mut dyn std::io::Write| {
        steps.0.lock().expect("lock").clear();
        let context =
            Context::new().with_threads(threads).with_tmp_dir(tmp.path()).with_progress(&steps);
        image.plan_in(&options, &context).and_then(|plan| {
            plan.execute_to_writer(&image, OutputFormat::DockerArchive, None, out, &context)
        })
    };
    // Threads to spare merge the top two layers beside the copies of layers 0 and 1; one
    // thread merges them after. The archive is the same.
    let beside = "writing layers 2..3, merged beside";
    let mut first = Vec::new();
    stream(1, &mut first).expect("squash");
    assert!(!steps.0.lock().expect("lock").iter().any(|s| s == beside));
    for threads in [0, 4] {
        let mut bytes = Vec::new();
        stream(threads, &mut bytes).expect("squash");
        assert!(bytes == first, "{threads} threads: a different archive");
        assert!(steps.0.lock().expect("lock").iter().any(|s| s == beside), "{threads} threads");
        assert_nothing_left(tmp.path());
    }
    // The reader goes away while the kept layers are written: its error, and no spool left.
    for threads in [0, 1, 4] {
        let err = stream(threads, &mut FailingAfter { left: 1 << 20 }).expect_err("must fail");
        assert!(err.to_string().contains("the reader went away"), "{threads} threads: {err}");
        assert_nothing_left(tmp.path());
    }
    // A corrupt kept blob: its layer is named, beside a merge or not.
    corrupt_layer(&image, &input, 1);
    for threads in [0, 1, 4] {
        let err = stream(threads, &mut std::io::sink()).expect_err("a corrupt kept blob must fail");
        assert!(matches!(err, Error::DigestMismatch { .. }), "{threads} threads: {err}");
        assert!(err.to_string().contains("layer 1"), "{threads} threads: {err}");
        assert_nothing_left(tmp.path());
    }
}

#[test]
fn a_new_layer_equal_to_a_kept_one_is_written_once_to_a_stream() {
    // Two layers squashed into one, stored plain; an image with that layer below the same two
    // gets, from the squash of its top two, a new layer whose blob is the kept layer's.
    let dir = tempfile::tempdir().expect("tempdir");
    let one = LayerBuilder::new().file("a", &squash_testkit::noise(1 << 20, 1)).finish();
    let two = LayerBuilder::new().file("b", b"bee").finish();
    let mut b = ImageBuilder::new(LayerCompression::None);
    b.layer(one.clone(), "one");
    b.layer(two.clone(), "two");
    let first = dir.path().join("first");
    b.write_oci_layout(&first, "t");
    let image = Image::open(&format!("oci:{}:t", first.display())).expect("open");
    let all = SquashOptions::default()
        .with_selector(LayerSelector::All)
        .with_compression(squash::Compression::None);
    let once = dir.path().join("once");
    image
        .plan(&all)
        .and_then(|p| p.execute(&image, &Output::new(&once, OutputFormat::OciLayout).with_tag("t")))
        .expect("squash");
    let squashed = Image::open(&format!("oci:{}:t", once.display())).expect("open");
    let blob = squashed.layers()[0].digest().expect("digest").clone();
    let bytes = std::fs::read(once.join("blobs/sha256").join(blob.hex())).expect("blob");
    let mut b = ImageBuilder::new(LayerCompression::None);
    b.layer(bytes, "squashed");
    b.layer(one, "one");
    b.layer(two, "two");
    let again = dir.path().join("again");
    b.write_oci_layout(&again, "t");
    // The same in both platforms of an index, whose ranges are merged ahead of writing.
    let both = dir.path().join("both");
    ImageBuilder::write_multi_platform_layout(
        &both,
        "t",
        &[("linux/amd64", &b), ("linux/arm64", &b)],
    );
    let image = Image::open(&format!("oci:{}:t", again.display())).expect("open");
    let top = SquashOptions::default()
        .with_selector(LayerSelector::Top(2))
        .with_compression(squash::Compression::None);
    // With threads to spare, an index's ranges are merged ahead, and a single image's beside
    // the copies of its kept layers; either way each blob is one member of the archive.
    for threads in [1, 4] {
        let context = Context::new().with_threads(threads).with_tmp_dir(dir.path());
        let opened = Opened::open(
            &format!("oci:{}:t", both.display()).parse().expect("ref"),
            &Default::default(),
        );
        let Ok(Opened::Index(index)) = opened else { panic!("not an index") };
        let mut out = Vec::new();
        index
            .plan_in(&top, &IndexOptions::default(), &context)
            .and_then(|p| p.execute_to_writer(&index, None, &mut out, &context))
            .expect("squash the index");
        let mut names = BTreeMap::new();
        for entry in tar::Archive::new(out.as_slice()).entries().expect("tar") {
            let name = entry.expect("member").path().expect("path").display().to_string();
            *names.entry(name).or_insert(0) += 1;
        }
        assert!(names.values().all(|n| *n == 1), "{threads} threads, an index: {names:?}");
        let mut out = Vec::new();
        let outcome = image
            .plan_in(&top, &context)
            .and_then(|p| {
                p.execute_to_writer(&image, OutputFormat::OciArchive, None, &mut out, &context)
            })
            .expect("squash");
        assert_eq!(outcome.layers[1].digest, blob, "the new layer is the kept one's blob");
        let mut names = Vec::new();
        for entry in tar::Archive::new(out.as_slice()).entries().expect("tar") {
            names.push(entry.expect("member").path().expect("path").display().to_string());
        }
        let blob_members = names.iter().filter(|n| n.ends_with(blob.hex())).count();
        assert_eq!(blob_members, 1, "{threads} threads: {names:?}");
    }
}

#[test]
fn corrupted_layer_blob_is_named_and_leaves_no_output() {
    for format in [OutputFormat::OciLayout, OutputFormat::OciArchive, OutputFormat::DockerArchive] {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = corrupt_image(dir.path());
        let image = Image::open(&format!("oci:{}:t", input.display())).expect("open");
        let layer = image.layers()[1].digest().expect("digest").clone();
        let blob = input.join("blobs/sha256").join(layer.hex());
        let mut bytes = std::fs::read(&blob).expect("read");
        let last = bytes.len() - 10;
        bytes[last] ^= 0xff;
        std::fs::write(&blob, &bytes).expect("write");
        let output = Output::new(dir.path().join("out"), format);
        // Squashing decodes the layer: the damage is found, whether the layer is read on
        // threads of its own (0: all cores) or on the thread that uses it (1).
        for threads in [0, 1] {
            let context = Context::new().with_threads(threads);
            let err = image
                .plan_in(&SquashOptions::default().with_selector(LayerSelector::Top(2)), &context)
                .and_then(|p| p.execute_in(&image, &output, &context))
                .expect_err("corrupt blob must fail");
            let message = err.to_string();
            assert!(message.contains("layer 1"), "{threads} threads: {message}");
            assert!(
                message.contains(&layer.short())
                    || message.contains("digest")
                    || message.contains("gzip")
                    || message.contains("corrupt"),
                "{threads} threads: {message}"
            );
            assert_nothing_left(dir.path());
        }
        // Copying verifies the digest of every blob it copies, as it reads it (the copy is not
        // hashed again): the error names the input's layer.
        let err = image
            .plan(&SquashOptions::default())
            .and_then(|p| p.execute(&image, &output))
            .expect_err("corrupt blob must fail");
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        assert!(err.to_string().contains("layer 1"), "{err}");
        assert_nothing_left(dir.path());
    }
}

/// A member of an archive read through a spool (here a gzip-compressed `docker save` tarball;
/// standard input goes the same way) is hashed as it is spooled and counted, not hashed again,
/// when it is read back: a damaged layer still fails with its digest, named, whether it is kept
/// or squashed, and nothing is left; an undamaged archive squashes as the plain file does.
#[test]
fn a_spooled_archive_s_damaged_layers_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut b = ImageBuilder::new(LayerCompression::None);
    for n in 0..4u64 {
        let data = squash_testkit::noise(200_000, n);
        b.layer(LayerBuilder::new().file(format!("f{n}"), &data).finish(), "step");
    }
    let plain = dir.path().join("plain.tar");
    b.write_docker_archive(&plain, "app:1");
    let tar = std::fs::read(&plain).expect("read");
    let gzip = |bytes: &[u8], name: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, LayerCompression::Gzip.compress(bytes)).expect("write");
        format!("docker-archive:{}", path.display())
    };
    let options = SquashOptions::default().with_selector(LayerSelector::Top(2));
    let squash = |reference: &str, out: &Path| {
        let image = Image::open(reference)?;
        image.plan(&options)?.execute(&image, &Output::new(out, OutputFormat::DockerArchive))
    };
    let (from_file, from_spool) = (dir.path().join("file.tar"), dir.path().join("spool.tar"));
    squash(&format!("docker-archive:{}", plain.display()), &from_file).expect("file");
    squash(&gzip(&tar, "app.tar.gz"), &from_spool).expect("spool");
    assert_eq!(
        std::fs::read(&from_file).expect("read"),
        std::fs::read(&from_spool).expect("read"),
        "the same archive through a spool"
    );
    let member = |name: &str| {
        let mut archive = tar::Archive::new(&tar[..]);
        let mut entry = archive
            .entries()
            .expect("entries")
            .flatten()
            .find(|e| e.path().is_ok_and(|p| p.to_string_lossy() == name))
            .expect("member");
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).expect("member");
        (entry.raw_file_position() as usize, bytes)
    };
    let manifest: serde_json::Value = serde_json::from_slice(&member("manifest.json").1).unwrap();
    for (layer, role) in [(1, "kept"), (2, "squashed")] {
        let name = manifest[0]["Layers"][layer].as_str().expect("the layer's member");
        let (offset, bytes) = member(name);
        let size = bytes.len();
        let mut damaged = tar.clone();
        damaged[offset + size / 2] ^= 0xff;
        let out = dir.path().join(format!("out-{layer}.tar"));
        let err = squash(&gzip(&damaged, &format!("damaged-{layer}.tar.gz")), &out)
            .expect_err("a damaged layer must fail");
        assert!(matches!(err, Error::DigestMismatch { .. }), "{role}: {err}");
        assert!(err.to_string().contains(&format!("layer {layer}")), "{role}: {err}");
        assert!(!out.exists(), "{role}: nothing is left");
    }
}

#[test]
fn truncated_archive_fails_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut b = ImageBuilder::new(LayerCompression::Gzip);
    b.layer(LayerBuilder::new().file("a", &[1u8; 20000]).finish(), "one");
    let archive = dir.path().join("in.tar");
    b.write_docker_archive(&archive, "app:1");
    let bytes = std::fs::read(&archive).expect("read");
    std::fs::write(&archive, &bytes[..bytes.len() / 3]).expect("truncate");
    let err = open_err(&archive.display().to_string());
    assert!(matches!(err, Error::MalformedTar { .. } | Error::InvalidDocument { .. }), "{err}");
}

#[test]
fn parent_dir_in_outer_archive_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("evil.tar");
    let mut data = Vec::new();
    {
        let mut builder = tar::Builder::new(&mut data);
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..17].copy_from_slice(b"../manifest.json\0");
        h.set_size(2);
        h.set_cksum();
        builder.append(&h, &b"[]"[..]).expect("append");
        builder.finish().expect("finish");
    }
    std::fs::write(&path, data).expect("write");
    let message = open_err(&path.display().to_string()).to_string();
    assert!(message.contains("`..`"), "{message}");
}

#[test]
fn bad_ranges_are_explained() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = corrupt_image(dir.path());
    let image = Image::open(&format!("oci:{}:t", input.display())).expect("open");
    for selector in [
        LayerSelector::Top(3),
        LayerSelector::Ranges(vec![(0, 5)]),
        LayerSelector::Ranges(vec![(0, 1), (1, 1)]),
        LayerSelector::Above("ffff".into()),
        LayerSelector::Base,
    ] {
        let err = image
            .plan(&SquashOptions::default().with_selector(selector.clone()))
            .expect_err("invalid");
        assert!(matches!(err, Error::InvalidRange { .. }), "{selector:?}: {err}");
    }
    let err = image
        .plan(&SquashOptions::default().with_selector(LayerSelector::Base))
        .expect_err("no base");
    assert!(
        err.to_string().contains("RUN") || err.to_string().contains("one"),
        "lists the layers with their history: {err}"
    );
}

#[test]
fn a_config_whose_diff_id_lies_is_refused() {
    let wrong = format!("sha256:{}", "ab".repeat(32));
    for compression in [LayerCompression::None, LayerCompression::Gzip, LayerCompression::Zstd] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut b = ImageBuilder::new(compression);
        b.layer(LayerBuilder::new().file("a", &[7u8; 5000]).finish(), "one");
        b.layer(LayerBuilder::new().file("b", &[8u8; 300_000]).finish(), "two");
        b.layer(LayerBuilder::new().file("c", &[9u8; 5000]).finish(), "three");
        b.state_diff_id(1, &wrong);
        let input = dir.path().join("in");
        b.write_oci_layout(&input, "t");
        for threads in [0, 1] {
            let result = Image::open(&format!("oci:{}:t", input.display())).and_then(|image| {
                let output = Output::new(dir.path().join("out"), OutputFormat::OciLayout);
                let options = SquashOptions::default().with_selector(LayerSelector::Top(2));
                let context = Context::new().with_threads(threads);
                image
                    .plan_in(&options, &context)
                    .and_then(|p| p.execute_in(&image, &output, &context))
            });
            let err = result.expect_err("a lying diff_id must be found");
            let message = err.to_string();
            assert!(
                matches!(err, Error::DigestMismatch { .. }),
                "{compression:?}, {threads} threads: {message}"
            );
            assert!(
                message.contains("layer 1") && message.contains("diff_id"),
                "{compression:?}, {threads} threads: {message}"
            );
            assert!(
                message.contains(&"ab".repeat(6)),
                "{compression:?}, {threads} threads: {message}"
            );
            assert_nothing_left(dir.path());
        }
    }
}

/// An index of six nested levels, each naming the same child ten times: a million paths to one
/// image. Children are resolved once per digest and the entries counted, so it is refused at
/// once, naming the limit; the image itself opens through one path.
#[test]
fn an_index_that_names_one_child_a_million_ways_is_refused_at_once() {
    use sha2::Digest as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let layout = dir.path().join("nested");
    let mut image = ImageBuilder::new(LayerCompression::Gzip);
    image.layer(LayerBuilder::new().file("hello", b"hi\n").finish(), "RUN hello");
    image.write_oci_layout(&layout, "one");
    let index_path = layout.join("index.json");
    let top: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).expect("read")).expect("json");
    let mut child = top["manifests"][0].clone();
    child.as_object_mut().expect("descriptor").remove("annotations");
    for _ in 0..6 {
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": vec![child.clone(); 10],
        });
        let bytes = serde_json::to_vec(&index).expect("json");
        let hex = hex::encode(sha2::Sha256::digest(&bytes));
        std::fs::write(layout.join("blobs/sha256").join(&hex), &bytes).expect("write");
        child = serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": format!("sha256:{hex}"),
            "size": bytes.len(),
        });
    }
    child["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "deep"});
    let mut top = top;
    top["manifests"] = serde_json::json!([child]);
    std::fs::write(&index_path, serde_json::to_vec(&top).expect("json")).expect("write");

    let started = std::time::Instant::now();
    let reference = format!("oci:{}:deep", layout.display());
    let error = match squash::Opened::open_with(&reference, &squash::OpenOptions::default()) {
        Ok(_) => panic!("an index of a million paths was read whole"),
        Err(e) => e,
    };
    let message = error.to_string();
    assert!(message.contains("more than 10000 manifests"), "{message}");
    assert!(message.contains("nested"), "{message}");
    // One image through one path: the platform walk takes the first of identical entries.
    let image = Image::open(&reference).expect("the image opens through one path");
    assert_eq!(image.layers().len(), 1);
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "{:?}", started.elapsed());
}

/// Sizes a manifest declares are summed for progress and the room check before any blob is
/// read: a size beyond the spec's int64, or several that add up past `u64`, is refused or
/// found wrong when the blob is read, never an overflow.
#[test]
fn declared_sizes_that_overflow_are_refused_not_summed() {
    use sha2::Digest as _;
    type Edit = fn(&mut serde_json::Value);
    let cases: [(&str, Edit); 3] = [
        ("two layers of u64::MAX bytes", |m| {
            m["layers"][1]["size"] = u64::MAX.into();
            m["layers"][2]["size"] = u64::MAX.into();
        }),
        ("three layers of i64::MAX bytes", |m| {
            for layer in m["layers"].as_array_mut().expect("layers") {
                layer["size"] = (i64::MAX as u64).into();
            }
        }),
        ("a config of u64::MAX bytes", |m| m["config"]["size"] = u64::MAX.into()),
    ];
    for (what, edit) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = dir.path().join("in");
        let mut b = ImageBuilder::new(LayerCompression::Gzip);
        for (i, name) in ["a", "b", "c"].iter().enumerate() {
            b.layer(LayerBuilder::new().file(name, &[i as u8; 3000]).finish(), name);
        }
        b.write_oci_layout(&layout, "t");
        let index_path = layout.join("index.json");
        let mut index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&index_path).expect("read")).expect("json");
        let old = index["manifests"][0]["digest"].as_str().expect("digest").to_string();
        let blob = |d: &str| layout.join("blobs/sha256").join(d.trim_start_matches("sha256:"));
        let mut manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(blob(&old)).expect("read")).expect("json");
        edit(&mut manifest);
        let bytes = serde_json::to_vec(&manifest).expect("json");
        let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&bytes)));
        std::fs::write(blob(&digest), &bytes).expect("write");
        index["manifests"][0]["digest"] = digest.into();
        index["manifests"][0]["size"] = bytes.len().into();
        std::fs::write(&index_path, serde_json::to_vec(&index).expect("json")).expect("write");

        let archive = dir.path().join("in.tar");
        let mut tar = tar::Builder::new(std::fs::File::create(&archive).expect("create"));
        tar.append_dir_all(".", &layout).expect("archive");
        tar.finish().expect("archive");
        drop(tar);
        for reference in [format!("oci:{}:t", layout.display()), archive.display().to_string()] {
            let result = Image::open(&reference).and_then(|image| {
                let options = SquashOptions::default().with_selector(LayerSelector::Top(3));
                let context = Context::new();
                image.report(&options, 10)?;
                let output = Output::new(dir.path().join("out"), OutputFormat::OciArchive);
                let plan = image.plan_in(&options, &context)?;
                plan.execute_in(&image, &output, &context)
            });
            let message = result.expect_err(what).to_string();
            assert!(message.contains("size"), "{what}, {reference}: {message}");
            assert!(!dir.path().join("out").exists(), "{what}, {reference}: output left");
        }
    }
}
