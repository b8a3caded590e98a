use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use squash::{
    Context, Image, IndexOptions, LayerSelector, Opened, Output, OutputFormat, Platform,
    SquashOptions,
};
use squash_testkit::{decompress, ImageBuilder, LayerBuilder, LayerCompression, RootFs};

fn l() -> LayerBuilder {
    LayerBuilder::new()
}

/// Two platforms over bases of their own (amd64: 4 layers, arm64: 3), and BuildKit's
/// attestation manifest for amd64.
fn two_platforms(dir: &Path) -> PathBuf {
    let mut amd64 = ImageBuilder::new(LayerCompression::Gzip);
    amd64.layer(l().dir("etc").file("etc/arch", b"amd64").finish(), "ADD base");
    amd64.layer(
        l().dir("app")
            .file("app/bin", &squash_testkit::noise(5000, 1))
            .file("app/tmp", b"tmp")
            .finish(),
        "COPY app",
    );
    amd64.layer(l().dir("app").whiteout("app/tmp").file("app/conf", b"1").finish(), "RUN rm");
    amd64.layer(l().dir("app").file("app/conf", b"2").finish(), "RUN conf");
    let mut arm64 = ImageBuilder::new(LayerCompression::Zstd);
    arm64.layer(l().dir("etc").file("etc/arch", b"arm64").finish(), "ADD base");
    arm64.layer(
        l().dir("app").file("app/bin", &squash_testkit::noise(5000, 2)).finish(),
        "COPY app",
    );
    arm64.layer(
        l().dir("app").file("app/bin", &squash_testkit::noise(6000, 3)).finish(),
        "RUN rebuild",
    );
    let input = dir.join("in");
    ImageBuilder::write_multi_platform_layout(
        &input,
        "t",
        &[("linux/amd64", &amd64), ("linux/arm64/v8", &arm64)],
    );
    input
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    std::fs::read(layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:")))
        .expect("blob")
}

fn json_blob(layout: &Path, digest: &str) -> Value {
    serde_json::from_slice(&blob(layout, digest)).expect("json")
}

/// The index the layout's `index.json` tags `tag`.
fn tagged_index(layout: &Path, tag: &str) -> Value {
    let top: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index.json"))
            .expect("json");
    let entry = top["manifests"]
        .as_array()
        .and_then(|m| {
            m.iter().find(|e| e["annotations"]["org.opencontainers.image.ref.name"] == json!(tag))
        })
        .expect("tagged entry");
    json_blob(layout, entry["digest"].as_str().expect("digest"))
}

/// The root filesystem of the image `manifest` points at, by the model.
fn rootfs(layout: &Path, manifest: &str) -> (RootFs, Vec<String>) {
    let manifest = json_blob(layout, manifest);
    let digests: Vec<String> = manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["digest"].as_str().expect("digest").to_string())
        .collect();
    let tars: Vec<Vec<u8>> = digests.iter().map(|d| decompress(&blob(layout, d))).collect();
    (RootFs::from_layers(tars.iter().map(Vec::as_slice)).expect("applies"), digests)
}

fn open_index(reference: &str) -> squash::ImageIndex {
    match Opened::open(&reference.parse().expect("reference"), &Default::default()).expect("open") {
        Opened::Index(index) => *index,
        Opened::Image(_) => panic!("{reference}: an image, not an index"),
    }
}

fn squash_index(
    input: &str,
    out: &Path,
    from_top: usize,
    index_options: &IndexOptions,
) -> squash::IndexOutcome {
    let index = open_index(input);
    let options = SquashOptions::default().with_selector(LayerSelector::Top(from_top));
    let plan = index.plan(&options, index_options).expect("plan");
    plan.execute(&index, &Output::new(out.to_path_buf(), OutputFormat::OciLayout).with_tag("t"))
        .expect("write")
}

/// Every platform squashed: each platform's filesystem is the original's, its base layer the
/// same blob, the entries keep their order and platforms, and the attestation of the squashed
/// amd64 image is dropped.
#[test]
fn every_platform_of_an_index_is_squashed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = two_platforms(dir.path());
    let before = tagged_index(&input, "t");
    let out = dir.path().join("out");
    let outcome =
        squash_index(&format!("oci:{}:t", input.display()), &out, 2, &IndexOptions::default());
    assert_eq!(outcome.images.len(), 2);
    assert!(outcome.images.iter().all(|i| i.squashed));
    assert_eq!(outcome.dropped_attestations.len(), 1, "{outcome:?}");
    let after = tagged_index(&out, "t");
    assert_eq!(after["mediaType"], before["mediaType"]);
    let (old, new) = (
        before["manifests"].as_array().expect("entries"),
        after["manifests"].as_array().expect("entries"),
    );
    assert_eq!(new.len(), 2, "the attestation is dropped: {after}");
    for (old, new) in old.iter().zip(new) {
        assert_eq!(old["platform"], new["platform"], "platforms in order");
        assert_ne!(old["digest"], new["digest"]);
        let (fs_before, layers_before) = rootfs(&input, old["digest"].as_str().expect("digest"));
        let (fs_after, layers_after) = rootfs(&out, new["digest"].as_str().expect("digest"));
        assert!(
            fs_before.diff(&fs_after).is_empty(),
            "{}: {:?}",
            old["platform"],
            fs_before.diff(&fs_after)
        );
        assert_eq!(layers_after.len(), layers_before.len() - 1);
        assert_eq!(
            layers_before[..layers_before.len() - 2],
            layers_after[..layers_after.len() - 1],
            "base layers are the same blobs"
        );
    }
    // The same input and options give the same bytes, whatever the thread count: with one
    // thread the platforms are merged one after another, with more at the same time.
    for threads in [1, 2, 4] {
        let again = dir.path().join(format!("again-{threads}"));
        let index = open_index(&format!("oci:{}:t", input.display()));
        let options = SquashOptions::default().with_selector(LayerSelector::Top(2));
        let context = Context::new().with_threads(threads);
        let plan = index.plan_in(&options, &IndexOptions::default(), &context).expect("plan");
        let output = Output::new(again.clone(), OutputFormat::OciLayout).with_tag("t");
        let second = plan.execute_in(&index, &output, &context).expect("write");
        assert_eq!(outcome.index_digest, second.index_digest, "{threads} threads");
        assert_eq!(
            std::fs::read_dir(again.join("blobs/sha256")).expect("blobs").count(),
            std::fs::read_dir(out.join("blobs/sha256")).expect("blobs").count()
        );
    }
}

/// `--platform`: only that image is squashed; the other is copied with its manifest digest, and
/// so is the attestation of the copied image. `--keep-attestations` keeps the stale one.
#[test]
fn chosen_platforms_are_squashed_and_the_rest_copied() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = two_platforms(dir.path());
    let reference = format!("oci:{}:t", input.display());
    let before = tagged_index(&input, "t");
    let arm: Platform = "linux/arm64".parse().expect("platform");
    let out = dir.path().join("out");
    let outcome =
        squash_index(&reference, &out, 2, &IndexOptions::default().with_platforms(vec![arm]));
    let after = tagged_index(&out, "t");
    let (old, new) = (
        before["manifests"].as_array().expect("entries"),
        after["manifests"].as_array().expect("entries"),
    );
    assert_eq!(new.len(), 3, "{after}");
    assert_eq!(old[0], new[0], "amd64 copied as it was");
    assert_ne!(old[1]["digest"], new[1]["digest"], "arm64 squashed");
    assert_eq!(old[2], new[2], "the attestation of the copied image stays");
    assert!(outcome.dropped_attestations.is_empty() && outcome.stale_attestations.is_empty());
    // Its blobs are there and verify.
    let copied = open_index(&format!("oci:{}:t", out.display()));
    copied.images()[0].verify_layers(0..4, &Context::new()).expect("copied image verifies");
    // Keeping the attestation of a squashed image: it is listed as stale.
    let kept = dir.path().join("kept");
    let outcome =
        squash_index(&reference, &kept, 2, &IndexOptions::default().with_keep_attestations(true));
    assert_eq!(outcome.stale_attestations.len(), 1);
    assert_eq!(tagged_index(&kept, "t")["manifests"].as_array().map(Vec::len), Some(3));
    // A platform the index lacks is an error naming what it has.
    let index = open_index(&reference);
    let wrong =
        IndexOptions::default().with_platforms(vec!["linux/s390x".parse().expect("platform")]);
    let err = index
        .plan(&SquashOptions::default().with_selector(LayerSelector::Top(2)), &wrong)
        .expect_err("no s390x");
    assert!(err.to_string().contains("linux/amd64, linux/arm64/v8"), "{err}");
}

/// A docker-archive holds one platform: a whole index is refused there, with the option that
/// helps.
#[test]
fn an_index_is_not_written_as_a_docker_archive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = two_platforms(dir.path());
    let index = open_index(&format!("oci:{}:t", input.display()));
    let plan = index
        .plan(
            &SquashOptions::default().with_selector(LayerSelector::Top(2)),
            &IndexOptions::default(),
        )
        .expect("plan");
    let out = dir.path().join("out.tar");
    let err = plan
        .execute(&index, &Output::new(out.clone(), OutputFormat::DockerArchive))
        .expect_err("refused");
    assert!(err.to_string().contains("--platform"), "{err}");
    assert!(!out.exists());
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A Docker manifest list nested in an OCI index: both rewritten, each keeping its media type
/// and its own annotations.
#[test]
fn nested_indexes_and_docker_manifest_lists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = two_platforms(dir.path());
    // Turn the tagged index into a Docker manifest list inside a new OCI index.
    let mut inner = tagged_index(&input, "t");
    inner["mediaType"] = json!("application/vnd.docker.distribution.manifest.list.v2+json");
    for entry in inner["manifests"].as_array_mut().expect("entries") {
        entry["annotations"]["test.entry"] = json!("kept");
    }
    let inner = serde_json::to_vec(&inner).expect("json");
    std::fs::write(input.join("blobs/sha256").join(&sha256(&inner)[7..]), &inner).expect("write");
    let outer = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "annotations": {"test.index": "outer"},
        "manifests": [{"mediaType": "application/vnd.docker.distribution.manifest.list.v2+json", "digest": sha256(&inner), "size": inner.len()}],
    }))
    .expect("json");
    std::fs::write(input.join("blobs/sha256").join(&sha256(&outer)[7..]), &outer).expect("write");
    let top = json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": sha256(&outer), "size": outer.len(), "annotations": {"org.opencontainers.image.ref.name": "t"}}]});
    std::fs::write(input.join("index.json"), serde_json::to_vec(&top).expect("json"))
        .expect("write");

    let out = dir.path().join("out");
    let outcome =
        squash_index(&format!("oci:{}:t", input.display()), &out, 2, &IndexOptions::default());
    assert_eq!(outcome.images.len(), 2);
    let outer = tagged_index(&out, "t");
    assert_eq!(outer["annotations"]["test.index"], json!("outer"));
    let inner_entry = &outer["manifests"][0];
    assert_eq!(
        inner_entry["mediaType"],
        json!("application/vnd.docker.distribution.manifest.list.v2+json")
    );
    let inner = json_blob(&out, inner_entry["digest"].as_str().expect("digest"));
    assert_eq!(
        inner["mediaType"],
        json!("application/vnd.docker.distribution.manifest.list.v2+json")
    );
    let entries = inner["manifests"].as_array().expect("entries");
    assert_eq!(entries.len(), 2, "{inner}");
    assert!(entries.iter().all(|e| e["annotations"]["test.entry"] == json!("kept")));
    // A single platform is still read from it.
    let image = Image::open_with(
        &format!("oci:{}:t", out.display()),
        &squash::OpenOptions::default().with_platform("linux/arm64".parse().expect("p")),
    )
    .expect("open one platform");
    assert_eq!(image.layers().len(), 2);
    assert_eq!(image.other_platforms().len(), 1);
}

/// skopeo copies every platform of what squash wrote (`copy --all`).
#[test]
fn skopeo_copies_every_platform() {
    if !squash_testkit::tool_available("skopeo") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let input = two_platforms(dir.path());
    let out = dir.path().join("out");
    squash_index(&format!("oci:{}:t", input.display()), &out, 2, &IndexOptions::default());
    let copy = dir.path().join("copy");
    let status = std::process::Command::new("skopeo")
        .args(["copy", "--all", "--quiet"])
        .arg(format!("oci:{}:t", out.display()))
        .arg(format!("oci:{}:t", copy.display()))
        .output()
        .expect("skopeo");
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    assert_eq!(tagged_index(&copy, "t")["manifests"].as_array().map(Vec::len), Some(2));
}

/// What `umoci unpack` makes of the image `manifest` of the layout: the layout gets a tag for
/// it, since umoci unpacks tagged image manifests only.
fn umoci_tree(layout: &Path, manifest: &Value, tag: &str, scratch: &Path) -> Vec<u8> {
    let path = layout.join("index.json");
    let mut index: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("index.json")).expect("json");
    let mut entry = manifest.clone();
    entry["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
    index["manifests"].as_array_mut().expect("manifests").push(entry);
    std::fs::write(&path, serde_json::to_vec(&index).expect("json")).expect("write");
    squash_testkit::engines::umoci_rootfs(layout, tag, scratch).expect("umoci unpack").tar
}

/// An index built independently (buildah manifest create/add/push --all, from two images of
/// different platforms sharing nothing): squashed, skopeo copies every platform of it, and
/// umoci unpacks each platform of the original and of the squashed image to the same tree.
#[test]
fn buildah_made_index_squashes_and_unpacks_per_platform() {
    if !squash_testkit::tool_available("buildah")
        || !squash_testkit::tool_available("skopeo")
        || !squash_testkit::tool_available("umoci")
    {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let buildah = || {
        let mut c = std::process::Command::new("buildah");
        c.arg("--root")
            .arg(store.join("root"))
            .arg("--runroot")
            .arg(store.join("run"))
            .args(["--storage-driver", "vfs"]);
        c
    };
    let run = |c: &mut std::process::Command| {
        let out = c.output().expect("spawn");
        assert!(out.status.success(), "{c:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    for (platform, seed) in [("linux/amd64", 1u64), ("linux/arm64", 2)] {
        let mut b = ImageBuilder::new(LayerCompression::Gzip);
        b.platform(platform);
        b.layer(l().dir("etc").file("etc/arch", platform.as_bytes()).finish(), "ADD base");
        b.layer(
            l().dir("opt")
                .file("opt/big", &squash_testkit::noise(20_000, seed))
                .file("opt/keep", b"k")
                .finish(),
            "RUN fetch",
        );
        b.layer(
            l().dir("opt").whiteout("opt/big").hardlink("opt/keep2", "opt/keep").finish(),
            "RUN rm",
        );
        let layout = dir.path().join(platform.replace('/', "-"));
        b.write_oci_layout(&layout, "t");
        if platform == "linux/amd64" {
            run(buildah().args(["manifest", "create", "localhost/list"]));
        }
        run(buildah()
            .args(["manifest", "add", "localhost/list"])
            .arg(format!("oci:{}:t", layout.display())));
    }
    let pushed = dir.path().join("pushed");
    run(buildah()
        .args(["manifest", "push", "--all", "--quiet", "localhost/list"])
        .arg(format!("oci:{}:t", pushed.display())));
    let out = dir.path().join("out");
    let outcome =
        squash_index(&format!("oci:{}:t", pushed.display()), &out, 2, &IndexOptions::default());
    assert_eq!(outcome.images.len(), 2, "{outcome:?}");
    let copy = dir.path().join("copy");
    run(std::process::Command::new("skopeo")
        .args(["copy", "--all", "--quiet"])
        .arg(format!("oci:{}:t", out.display()))
        .arg(format!("oci:{}:t", copy.display())));
    let (before, after) = (tagged_index(&pushed, "t"), tagged_index(&out, "t"));
    let (old, new) = (
        before["manifests"].as_array().expect("entries"),
        after["manifests"].as_array().expect("entries"),
    );
    assert_eq!(old.len(), new.len());
    for (i, (old, new)) in old.iter().zip(new).enumerate() {
        assert_eq!(old["platform"], new["platform"]);
        let (fs_before, _) = rootfs(&pushed, old["digest"].as_str().expect("digest"));
        let (fs_after, _) = rootfs(&out, new["digest"].as_str().expect("digest"));
        assert!(
            fs_before.diff(&fs_after).is_empty(),
            "{}: {:?}",
            old["platform"],
            fs_before.diff(&fs_after)
        );
        let tag = format!("p{i}");
        let original = RootFs::from_layers([umoci_tree(&pushed, old, &tag, dir.path()).as_slice()])
            .expect("tree");
        let squashed = RootFs::from_layers([umoci_tree(&out, new, &tag, dir.path()).as_slice()])
            .expect("tree");
        let strip = |fs: &RootFs| {
            fs.filter_map(|p, n| {
                (!p.is_empty()).then(|| squash_testkit::Node { mtime: None, ..n.clone() })
            })
        };
        let diff = strip(&original).diff(&strip(&squashed));
        assert!(diff.is_empty(), "{}: umoci unpacks different trees: {diff:?}", old["platform"]);
        assert!(original.nodes().contains_key(&b"opt/keep2"[..]), "the tree is the image's");
    }
}

/// A referrer (a manifest whose `subject` names an image of the index) goes with its image:
/// dropped when that image is squashed, copied with its blobs when the image is copied.
#[test]
fn referrers_follow_their_subject() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = two_platforms(dir.path());
    let mut index = tagged_index(&input, "t");
    let arm = index["manifests"][1].clone();
    let empty = b"{}".to_vec();
    let signature = b"signature bytes".to_vec();
    let referrer = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.example.signature",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(&empty), "size": empty.len()},
        "layers": [{"mediaType": "application/vnd.example.signature", "digest": sha256(&signature), "size": signature.len()}],
        "subject": {"mediaType": arm["mediaType"], "digest": arm["digest"], "size": arm["size"]},
    }))
    .expect("json");
    for blob in [&empty, &signature, &referrer] {
        std::fs::write(input.join("blobs/sha256").join(&sha256(blob)[7..]), blob).expect("write");
    }
    index["manifests"].as_array_mut().expect("entries").push(json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha256(&referrer), "size": referrer.len(),
        "artifactType": "application/vnd.example.signature",
    }));
    let index = serde_json::to_vec(&index).expect("json");
    std::fs::write(input.join("blobs/sha256").join(&sha256(&index)[7..]), &index).expect("write");
    let top = json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": sha256(&index), "size": index.len(), "annotations": {"org.opencontainers.image.ref.name": "t"}}]});
    std::fs::write(input.join("index.json"), serde_json::to_vec(&top).expect("json"))
        .expect("write");
    let reference = format!("oci:{}:t", input.display());

    let all = dir.path().join("all");
    let outcome = squash_index(&reference, &all, 2, &IndexOptions::default());
    assert_eq!(
        outcome.dropped_attestations.len(),
        2,
        "the amd64 attestation and the arm64 referrer: {outcome:?}"
    );
    assert_eq!(tagged_index(&all, "t")["manifests"].as_array().map(Vec::len), Some(2));

    let amd_only = dir.path().join("amd");
    let outcome = squash_index(
        &reference,
        &amd_only,
        2,
        &IndexOptions::default().with_platforms(vec!["linux/amd64".parse().expect("p")]),
    );
    assert_eq!(outcome.dropped_attestations.len(), 1, "{outcome:?}");
    let entries = tagged_index(&amd_only, "t")["manifests"].as_array().cloned().expect("entries");
    let kept = entries
        .iter()
        .find(|e| e["artifactType"] == json!("application/vnd.example.signature"))
        .expect("the referrer stays");
    assert_eq!(kept["digest"], json!(sha256(&referrer)));
    assert_eq!(blob(&amd_only, &sha256(&signature)), signature, "its blobs are copied");
}

/// Records progress events and checks that each phase's work adds up to its announced total.
#[derive(Default)]
struct Tally {
    events: std::sync::Mutex<Vec<squash::Event>>,
}

impl squash::Progress for Tally {
    fn event(&self, event: &squash::Event) {
        self.events.lock().expect("lock").push(event.clone());
    }
}

impl Tally {
    /// `(announced, done)` per indexing and writing phase, in order.
    fn phases(&self) -> Vec<(&'static str, u64, u64)> {
        let mut phases: Vec<(&'static str, u64, u64)> = Vec::new();
        for event in self.events.lock().expect("lock").iter() {
            match event {
                squash::Event::Indexing { bytes, .. } => phases.push(("indexing", *bytes, 0)),
                squash::Event::Writing { total } => phases.push(("writing", *total, 0)),
                squash::Event::Measuring { total } => phases.push(("measuring", *total, 0)),
                squash::Event::Indexed { bytes, .. } | squash::Event::Advanced { bytes } => {
                    phases.last_mut().expect("a phase began first").2 += bytes;
                }
                _ => {}
            }
        }
        phases
    }
}

/// Structured progress: planning announces the layers it indexes and their bytes, writing the
/// bytes of work it will do, and the work done adds up to exactly that, for an image, every
/// image of an index (merged ahead or not), and a stream.
#[test]
fn progress_events_add_up_to_their_totals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = two_platforms(dir.path());
    let reference = format!("oci:{}:t", input.display());
    for threads in [1, 4] {
        let index = open_index(&reference);
        let options = SquashOptions::default().with_selector(LayerSelector::Top(2));
        let tally = Tally::default();
        let context = Context::new().with_threads(threads).with_progress(&tally);
        let plan = index.plan_in(&options, &IndexOptions::default(), &context).expect("plan");
        let out = dir.path().join(format!("out-{threads}"));
        plan.execute_in(&index, &Output::new(out, OutputFormat::OciLayout).with_tag("t"), &context)
            .expect("write");
        let phases = tally.phases();
        assert!(phases.iter().filter(|p| p.0 == "indexing").count() >= 2, "{phases:?}");
        assert!(phases.iter().filter(|p| p.0 == "writing").count() >= 2, "{phases:?}");
        for (phase, announced, done) in &phases {
            assert_eq!(announced, done, "{threads} threads, {phase}: {phases:?}");
        }
        let image = index.images()[0].clone();
        let image_plan =
            image.plan_in(&options, &Context::new().with_threads(threads)).expect("plan");
        let tally = Tally::default();
        let mut stream = Vec::new();
        let context = Context::new().with_threads(threads).with_progress(&tally);
        image_plan
            .execute_to_writer(&image, OutputFormat::OciArchive, None, &mut stream, &context)
            .expect("stream");
        let phases = tally.phases();
        assert_eq!(phases.len(), 1, "{phases:?}");
        let kept: u64 = image.layers()[..2].iter().map(|l| l.size()).sum();
        assert_eq!(phases[0].1, kept + image_plan.ranges[0].uncompressed_size(), "{phases:?}");
        assert_eq!(phases[0].1, phases[0].2);
    }
}

/// A report announces its indexing and then its measuring (not a writing: it writes nothing),
/// and each phase's work adds up to its total: the new layer's uncompressed bytes.
#[test]
fn report_progress_measures_and_does_not_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = two_platforms(dir.path());
    let index = open_index(&format!("oci:{}:t", input.display()));
    let image = index.images()[0].clone();
    let options = SquashOptions::default().with_selector(LayerSelector::Top(2));
    for exact in [false, true] {
        let tally = Tally::default();
        let report = image
            .report_in(
                &options,
                &squash::ReportOptions::default().with_exact(exact),
                &Context::new().with_progress(&tally),
            )
            .expect("report");
        let phases = tally.phases();
        let names: Vec<_> = phases.iter().map(|p| p.0).collect();
        assert_eq!(names.last(), Some(&"measuring"), "{phases:?}");
        assert!(names[..names.len() - 1].iter().all(|&n| n == "indexing"), "{phases:?}");
        for (phase, announced, done) in &phases {
            assert_eq!(announced, done, "exact {exact}, {phase}: {phases:?}");
        }
        let measured = phases.last().expect("a phase").1;
        assert_eq!(
            measured,
            report.squash.iter().map(|r| r.uncompressed_size_after).sum::<u64>(),
            "{phases:?}"
        );
    }
}
