use squash::{Compression, Context, Image, LayerSelector, Output, OutputFormat, SquashOptions};
use squash_testkit::{random_stack, ImageBuilder, LayerBuilder, LayerCompression};

use crate::support::build;

fn write(image: &Image, options: SquashOptions, output: &Output) -> squash::Outcome {
    write_in(image, options, output, &Context::new())
}

fn write_in(
    image: &Image,
    options: SquashOptions,
    output: &Output,
    context: &Context,
) -> squash::Outcome {
    image
        .plan_in(&options, context)
        .and_then(|p| p.execute_in(image, output, context))
        .expect("squash")
}

#[test]
fn copies_keep_every_blob_in_every_format() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = build(dir.path(), &random_stack(7, 4), LayerCompression::Zstd);
    let image = Image::open(&format!("oci:{}:t", input.display())).expect("open");
    let digests: Vec<_> = image.layers().iter().map(|l| l.digest().cloned()).collect();
    for (name, format) in [
        ("layout", OutputFormat::OciLayout),
        ("oci.tar", OutputFormat::OciArchive),
        ("docker.tar", OutputFormat::DockerArchive),
    ] {
        let path = dir.path().join(name);
        let outcome = write(
            &image,
            SquashOptions::default(),
            &Output::new(path.clone(), format).with_tag("app:1"),
        );
        let copied: Vec<_> = outcome.layers.iter().map(|l| Some(l.digest.clone())).collect();
        assert_eq!(copied, digests, "{name}");
        let reopened = Image::open(&path.display().to_string()).expect("reopen");
        let again: Vec<_> = reopened
            .layers()
            .iter()
            .map(|l| l.digest().cloned().unwrap_or_else(|| l.diff_id().clone()))
            .collect();
        assert_eq!(again.len(), digests.len());
        if format != OutputFormat::DockerArchive {
            assert_eq!(
                reopened.manifest_digest(),
                image.manifest_digest(),
                "{name}: a copy keeps the manifest"
            );
        }
        assert_eq!(
            reopened.config_digest(),
            image.config_digest(),
            "{name}: a copy keeps the config"
        );
    }
}

#[test]
fn docker_archive_round_trip_and_squash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut b = ImageBuilder::new(LayerCompression::None);
    for (i, layer) in random_stack(11, 4).into_iter().enumerate() {
        b.layer(layer, &format!("step {i}"));
    }
    let archive = dir.path().join("in.tar");
    b.write_docker_archive(&archive, "app:1");
    let image = Image::open(&archive.display().to_string()).expect("open");
    assert_eq!(image.name(), Some("app:1"));
    let out = dir.path().join("out.tar");
    let outcome = write(
        &image,
        SquashOptions::default().with_selector(LayerSelector::Top(3)),
        &Output::new(out.clone(), OutputFormat::DockerArchive),
    );
    assert_eq!(outcome.layers.len(), 2);
    let again =
        Image::open(&format!("docker-archive:{}:app:1", out.display())).expect("reopen by tag");
    assert_eq!(again.layers()[0].diff_id(), image.layers()[0].diff_id());
    assert_eq!(
        again.layers()[1].compression(),
        Compression::None,
        "an uncompressed docker archive stays uncompressed"
    );
}

#[test]
fn output_bytes_do_not_depend_on_thread_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A file of 10 MiB spans several gzip blocks (1 MiB) and several zstd jobs (4 MiB).
    let mut big = squash_testkit::noise(5 << 20, 11);
    big.extend(b"compressible text line\n".iter().cycle().take(5 << 20));
    let mut stack = random_stack(3, 5);
    stack.insert(3, LayerBuilder::new().file("big", &big).finish());
    let input = build(dir.path(), &stack, LayerCompression::Gzip);
    let image = Image::open(&format!("oci:{}:t", input.display())).expect("open");
    for compression in [Compression::Gzip, Compression::Zstd, Compression::None] {
        let mut manifests = Vec::new();
        for threads in [1, 2, 4] {
            let path = dir.path().join(format!("out-{compression}-{threads}.tar"));
            let options = SquashOptions::default()
                .with_selector(LayerSelector::Top(4))
                .with_compression(compression);
            let output = Output::new(path.clone(), OutputFormat::OciArchive).with_tag("t");
            let outcome = write_in(&image, options, &output, &Context::new().with_threads(threads));
            manifests.push((outcome.manifest_digest, std::fs::read(&path).expect("read")));
        }
        assert!(
            manifests.windows(2).all(|w| w[0] == w[1]),
            "{compression}: output changed with the thread count"
        );
    }
}

#[test]
fn history_created_and_messages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = build(dir.path(), &random_stack(5, 4), LayerCompression::Gzip);
    let image = Image::open(&format!("oci:{}:t", input.display())).expect("open");
    let out = dir.path().join("out");
    let options = SquashOptions::default()
        .with_selector(LayerSelector::Ranges(vec![(1, 2)]))
        .with_message("merged")
        .with_source_date_epoch(1_700_000_000);
    write(&image, options, &Output::new(out.clone(), OutputFormat::OciLayout).with_tag("t"));
    let (_, config) = squash_testkit::read_oci_layout(&out, Some("t"));
    let history = config["history"].as_array().expect("history");
    let merged: Vec<_> = history.iter().filter(|h| h["comment"] == "merged").collect();
    assert_eq!(merged.len(), 1);
    assert_eq!(merged[0]["created"], "2023-11-14T22:13:20Z");
    assert_eq!(config["created"], "2023-11-14T22:13:20Z");
    assert_eq!(config["config"]["Healthcheck"]["Test"][0], "CMD", "Docker-only fields survive");
    let empty = history.iter().filter(|h| h["empty_layer"] == true).count();
    assert_eq!(empty, 2 + 2, "two ENV steps and two squashed steps stay as empty steps");
    // Layer annotations describing old blobs are not copied onto the new layer.
    let dir2 = tempfile::tempdir().expect("tempdir");
    let out2 = dir2.path().join("drop");
    write(
        &image,
        SquashOptions::default()
            .with_selector(LayerSelector::Ranges(vec![(1, 2)]))
            .with_history(squash::HistoryMode::Drop),
        &Output::new(out2.clone(), OutputFormat::OciLayout).with_tag("t"),
    );
    let (_, config) = squash_testkit::read_oci_layout(&out2, Some("t"));
    // The two squashed steps and the ENV step after them (before layer 3) fold into the
    // merged step, which the first output added.
    assert_eq!(config["history"].as_array().expect("history").len(), history.len() - 3);
}

#[test]
fn adds_to_an_existing_layout_under_a_new_tag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = build(dir.path(), &random_stack(9, 3), LayerCompression::Gzip);
    let image = Image::open(&format!("oci:{}:t", input.display())).expect("open");
    let before: Vec<_> = std::fs::read_dir(input.join("blobs/sha256"))
        .expect("blobs")
        .flatten()
        .map(|e| (e.file_name(), std::fs::read(e.path()).expect("read")))
        .collect();
    write(
        &image,
        SquashOptions::default().with_selector(LayerSelector::Top(2)),
        &Output::new(input.clone(), OutputFormat::OciLayout).with_tag("squashed"),
    );
    for (name, bytes) in before {
        assert_eq!(
            std::fs::read(input.join("blobs/sha256").join(&name)).expect("still there"),
            bytes,
            "existing blobs are not rewritten"
        );
    }
    let original = Image::open(&format!("oci:{}:t", input.display())).expect("old tag");
    let squashed = Image::open(&format!("oci:{}:squashed", input.display())).expect("new tag");
    assert_eq!(original.layers().len(), 3);
    assert_eq!(squashed.layers().len(), 2);
}

/// A staged output leaves its destination exactly as it was until it is put in place: dropped
/// (a check failed), nothing changes there and nothing is left beside it; put in place, a new
/// layout is renamed to the destination, an existing one gets the image under its tag (every
/// other entry and blob untouched), and an archive replaces the file there.
#[test]
fn a_staged_output_changes_nothing_until_it_is_put_in_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = build(dir.path(), &random_stack(11, 3), LayerCompression::Zstd);
    let image = Image::open(&format!("oci:{}:t", input.display())).expect("open");
    let options = SquashOptions::default().with_selector(LayerSelector::Top(2));
    let context = Context::new();
    let out = dir.path().join("out");
    // Everything in `dir` but the input, with each file's bytes.
    let snapshot = || {
        let mut files = Vec::new();
        let mut stack = vec![dir.path().to_path_buf()];
        while let Some(path) = stack.pop() {
            if path == input {
                continue;
            }
            if path.is_dir() {
                stack.extend(std::fs::read_dir(&path).expect("dir").flatten().map(|e| e.path()));
            } else {
                files.push((path.clone(), std::fs::read(&path).expect("read")));
            }
        }
        files.sort();
        files
    };
    let stage = |output: &Output| {
        let staged = squash::StagedOutput::beside(output, None, &context).expect("stage");
        assert!(staged.path().is_some_and(|p| p.starts_with(dir.path())));
        let written = write_in(&image, options.clone(), staged.output(), &context);
        (staged, written.manifest_digest)
    };

    // A new layout: dropped, nothing is there; put in place, it is the image.
    let first = Output::new(out.clone(), OutputFormat::OciLayout).with_tag("first");
    drop(stage(&first).0);
    assert!(snapshot().is_empty(), "a dropped stage leaves nothing");
    let (staged, written) = stage(&first);
    staged.put_in_place(&written, None, &context).expect("in place");
    assert_eq!(
        Image::open(&format!("oci:{}:first", out.display())).expect("first").layers().len(),
        2
    );
    let layout = snapshot();

    // An existing layout: dropped, it is as it was; put in place, it gains the tag.
    let second = Output::new(out.clone(), OutputFormat::OciLayout).with_tag("second");
    drop(stage(&second).0);
    assert!(snapshot() == layout, "a dropped stage leaves the layout as it was");
    let (staged, _) = stage(&second);
    let other = squash::Digest::of(b"another image");
    assert!(staged.put_in_place(&other, None, &context).is_err(), "not the image written");
    assert!(snapshot() == layout, "refused, the layout is as it was");
    let (staged, written) = stage(&second);
    staged.put_in_place(&written, None, &context).expect("added");
    let after = snapshot();
    for (path, bytes) in &layout {
        if !path.ends_with("index.json") {
            assert!(after.contains(&(path.clone(), bytes.clone())), "{} untouched", path.display());
        }
    }
    assert!(after.iter().all(|(p, _)| p.starts_with(&out)), "nothing left beside the layout");
    for tag in ["first", "second"] {
        let written = Image::open(&format!("oci:{}:{tag}", out.display())).expect(tag);
        assert_eq!(written.layers().len(), 2);
    }

    // An archive: dropped, the file there keeps its bytes; put in place, it is replaced.
    let archive = dir.path().join("out.tar");
    std::fs::write(&archive, b"not an image yet").expect("write");
    let third = Output::new(archive.clone(), OutputFormat::OciArchive).with_tag("third");
    drop(stage(&third).0);
    assert_eq!(std::fs::read(&archive).expect("read"), b"not an image yet");
    let (staged, written) = stage(&third);
    staged.put_in_place(&written, None, &context).expect("replaced");
    let written = Image::open(&format!("oci-archive:{}", archive.display())).expect("archive");
    assert_eq!(written.layers().len(), 2);
    let names: Vec<_> =
        std::fs::read_dir(dir.path()).expect("dir").flatten().map(|e| e.file_name()).collect();
    assert_eq!(names.len(), 3, "the input, the layout and the archive only: {names:?}");
}

#[test]
fn report_predicts_the_new_layer_to_the_byte() {
    for seed in 20..30u64 {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = build(dir.path(), &random_stack(seed, 5), LayerCompression::Gzip);
        let image = Image::open(&format!("oci:{}:t", input.display())).expect("open");
        let options = SquashOptions::default().with_selector(LayerSelector::Top(4));
        let report = image.report(&options, 5).expect("report");
        let outcome =
            write(&image, options, &Output::new(dir.path().join("out"), OutputFormat::OciLayout));
        let new = outcome.layers.iter().find(|l| l.squashed_from.is_some()).expect("new layer");
        assert_eq!(
            report.squash[0].uncompressed_size_after,
            new.uncompressed_size.expect("size"),
            "seed {seed}"
        );
        assert!(report.wasted_bytes >= report.wasted_bytes_non_base);
        assert!((0.0..=1.0).contains(&report.efficiency));
    }
}

/// A plan belongs to the image it was made from: executing it on another one is refused as
/// such (not as a digest mismatch halfway), and nothing is written.
#[test]
fn a_plan_runs_only_on_its_own_image() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = build(&dir.path().join("a"), &random_stack(21, 4), LayerCompression::Gzip);
    let second = build(&dir.path().join("b"), &random_stack(22, 4), LayerCompression::Gzip);
    let a = squash::Image::open(&format!("oci:{}:t", first.display())).expect("open");
    let b = squash::Image::open(&format!("oci:{}:t", second.display())).expect("open");
    let plan = a
        .plan(&squash::SquashOptions::default().with_selector(squash::LayerSelector::Top(2)))
        .expect("plan");
    let out = dir.path().join("out");
    let err = plan
        .execute(&b, &squash::Output::new(out.clone(), squash::OutputFormat::OciLayout))
        .expect_err("another image");
    assert!(err.to_string().contains("this plan was made for the image"), "{err}");
    assert!(!out.exists());
}

/// `--rewrite-timestamp`: in the new layer, every time later than the epoch is lowered to it
/// (main header, GNU atime and ctime, PAX records, in headers that keep their length), earlier
/// ones stay, the kept base layer is copied as it was, and the filesystem is otherwise the
/// original's.
#[test]
fn rewrite_timestamp_lowers_only_the_later_times_of_new_layers() {
    let (epoch, older, later) = (1_700_000_000u64, 1_000_000_000u64, 2_000_000_000u64);
    let base = LayerBuilder::new().mtime(later).dir("etc").file("etc/base", b"base").finish();
    let first = LayerBuilder::new()
        .mtime(older)
        .file("old", b"old")
        .mtime(later)
        .dir("new")
        .file("new/f", b"new")
        .finish();
    let second = {
        let mut builder = tar::Builder::new(Vec::new());
        builder
            .append_pax_extensions([
                ("mtime", &b"2000000000.123456789"[..]),
                ("ctime", &b"1000000000.5"[..]),
            ])
            .expect("pax");
        let mut h = tar::Header::new_gnu();
        h.set_path("new/pax").expect("path");
        h.set_size(3);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(later);
        let gnu = h.as_gnu_mut().expect("a GNU header");
        gnu.set_atime(later);
        gnu.set_ctime(older);
        h.set_cksum();
        builder.append(&h, &b"pax"[..]).expect("entry");
        builder.into_inner().expect("tar")
    };
    let stack = vec![base, first, second];
    let dir = tempfile::tempdir().expect("tempdir");
    let input = build(dir.path(), &stack, LayerCompression::Gzip);
    let image = Image::open(&format!("oci:{}:t", input.display())).expect("open");
    let options =
        SquashOptions::default().with_selector(LayerSelector::Top(2)).with_rewrite_timestamp(true);
    let missing = image.plan(&options).expect_err("no epoch");
    assert!(missing.to_string().contains("--source-date-epoch"), "{missing}");
    let out = dir.path().join("out");
    let outcome = write(
        &image,
        options.with_source_date_epoch(epoch as i64),
        &Output::new(out.clone(), OutputFormat::OciLayout),
    );
    let squashed = Image::open(&format!("oci:{}", out.display())).expect("reopen");
    assert_eq!(
        squashed.layers()[0].digest(),
        image.layers()[0].digest(),
        "the base layer is copied"
    );
    assert_eq!(outcome.layers.len(), 2);

    let mut tar_bytes = Vec::new();
    squashed.write_layer_tar(1, &mut tar_bytes).expect("new layer");
    let mut archive = tar::Archive::new(&tar_bytes[..]);
    let mut seen = Vec::new();
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let path = entry.path().expect("path").display().to_string();
        let mtime = entry.header().mtime().expect("mtime");
        assert!(mtime <= epoch, "{path}: mtime {mtime}");
        if let Some(gnu) = entry.header().as_gnu() {
            assert!(
                gnu.atime().unwrap_or(0) <= epoch && gnu.ctime().unwrap_or(0) <= epoch,
                "{path}: GNU times"
            );
        }
        if let Some(pax) = entry.pax_extensions().expect("pax") {
            for ext in pax.flatten() {
                let key = ext.key().expect("key").to_string();
                let value = ext.value().expect("value").to_string();
                if key.ends_with("time") {
                    let secs: f64 = value.parse().expect("a time");
                    assert!(secs <= epoch as f64, "{path}: {key}={value}");
                    if key == "ctime" {
                        assert_eq!(value, "1000000000.5", "an earlier time stays as it was");
                    }
                }
            }
        }
        if path == "old" {
            assert_eq!(mtime, older, "an earlier mtime stays");
        }
        seen.push(path);
    }
    assert!(seen.iter().any(|p| p == "new/pax") && seen.iter().any(|p| p == "old"), "{seen:?}");

    // The filesystem is the original's once both are seen with times at most the epoch; the base
    // layer's later times are still there.
    let clamp = |fs: &squash_testkit::RootFs| {
        fs.filter_map(|_, node| {
            Some(squash_testkit::Node { mtime: node.mtime.map(|t| t.min(epoch)), ..node.clone() })
        })
    };
    let original =
        squash_testkit::RootFs::from_layers(stack.iter().map(|l| l.as_slice())).expect("original");
    let layers: Vec<Vec<u8>> = (0..squashed.layers().len())
        .map(|i| {
            let mut bytes = Vec::new();
            squashed.write_layer_tar(i, &mut bytes).expect("layer");
            bytes
        })
        .collect();
    let result =
        squash_testkit::RootFs::from_layers(layers.iter().map(|l| l.as_slice())).expect("squashed");
    assert_eq!(clamp(&original).diff(&clamp(&result)), Vec::<String>::new());
    assert_eq!(result.nodes()[&b"etc/base"[..]].mtime, Some(later), "kept layers are not touched");
}

/// Reading each layer of a range once (what its read kept, copied) writes the same bytes as
/// reading the layers again, on random stacks with hard links, type changes and markers at
/// every position of the range; and the only layers read again are the rare ones counted.
#[test]
fn one_read_of_each_layer_writes_what_two_reads_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut reread = 0;
    for seed in 0..40u64 {
        let stack = if seed % 2 == 0 {
            random_stack(100 + seed, 6)
        } else {
            squash_testkit::random_changeset_stack(100 + seed, 6)
        };
        let input = build(&dir.path().join(seed.to_string()), &stack, LayerCompression::Gzip);
        let image = Image::open(&format!("oci:{}:t", input.display())).expect("open");
        for ranges in [vec![(0, 5)], vec![(1, 4)], vec![(2, 5)], vec![(1, 2), (4, 5)]] {
            let mut outputs = Vec::new();
            for once in [true, false] {
                let options = SquashOptions::default()
                    .with_selector(LayerSelector::Ranges(ranges.clone()))
                    .with_read_once(once);
                let path = dir.path().join(format!("out-{seed}-{once}.tar"));
                let outcome = write(
                    &image,
                    options,
                    &Output::new(path.clone(), OutputFormat::OciArchive).with_tag("t"),
                );
                let rereads: usize = outcome.layers.iter().map(|l| l.rereads.len()).sum();
                if once {
                    reread += rereads;
                }
                outputs.push((outcome.manifest_digest, std::fs::read(&path).expect("read")));
                std::fs::remove_file(&path).expect("remove");
            }
            assert!(
                outputs[0] == outputs[1],
                "seed {seed}, ranges {ranges:?}: one read wrote other bytes than two"
            );
        }
    }
    eprintln!("layers read again in 160 squashes: {reread}");
}

/// A hard link's target earlier in its layer, whose name a layer above replaces: the link
/// becomes the file, whose header and data the one read did not keep; the layer is read again
/// for each (planning, then merging), and the outcome says so.
#[test]
fn a_layer_read_again_is_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stack = vec![
        LayerBuilder::new().dir("etc").file("etc/base", b"base").finish(),
        LayerBuilder::new()
            .dir("app")
            .file("app/a", b"content of a")
            .hardlink("app/b", "app/a")
            .finish(),
        LayerBuilder::new().dir("app").file("app/a", b"a replaced").finish(),
    ];
    let input = build(dir.path(), &stack, LayerCompression::Gzip);
    let image = Image::open(&format!("oci:{}:t", input.display())).expect("open");
    let out = dir.path().join("out");
    let outcome = write(
        &image,
        SquashOptions::default().with_selector(LayerSelector::Top(2)),
        &Output::new(out.clone(), OutputFormat::OciLayout).with_tag("t"),
    );
    let merged = outcome.layers.iter().find(|l| l.squashed_from.is_some()).expect("merged");
    assert_eq!(
        merged.rereads.iter().map(|r| r.layer).collect::<Vec<_>>(),
        vec![1, 1],
        "{:?}",
        merged.rereads
    );
    assert!(
        merged.rereads[0].reason.contains("headers")
            && merged.rereads[1].reason.contains("did not keep"),
        "{:?}",
        merged.rereads
    );
    let (layers, _) = squash_testkit::read_oci_layout(&out, Some("t"));
    let after = squash_testkit::RootFs::from_layers(layers.iter().map(|(_, t)| t.as_slice()))
        .expect("squashed");
    let before =
        squash_testkit::RootFs::from_layers(stack.iter().map(Vec::as_slice)).expect("original");
    assert_eq!(before.diff(&after), Vec::<String>::new());
    // Without hard links nothing is read again.
    let plain = vec![
        stack[0].clone(),
        LayerBuilder::new().dir("app").file("app/a", b"1").finish(),
        stack[2].clone(),
    ];
    let input = build(&dir.path().join("plain"), &plain, LayerCompression::Gzip);
    let image = Image::open(&format!("oci:{}:t", input.display())).expect("open");
    let outcome = write(
        &image,
        SquashOptions::default().with_selector(LayerSelector::Top(2)),
        &Output::new(dir.path().join("out2"), OutputFormat::OciLayout).with_tag("t"),
    );
    assert!(outcome.layers.iter().all(|l| l.rereads.is_empty()));
}

/// History steps belong to ranges: with `HistoryMode::Drop`, the steps from a range's first
/// layer (or the first of the last N steps) to the step before the next kept layer fold into
/// one, as docker-squash writes them; steps that made no layer fold into an empty step; a range
/// of one layer that would squash to itself keeps its blob.
#[test]
fn history_steps_fold_with_their_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut b = ImageBuilder::new(LayerCompression::Gzip);
    b.layer(LayerBuilder::new().dir("etc").file("etc/a", b"a").finish(), "ADD base");
    b.empty_step("ENV A=1");
    b.layer(LayerBuilder::new().dir("etc").file("etc/b", b"b").finish(), "RUN b");
    b.layer(LayerBuilder::new().dir("etc").file("etc/c", b"c").finish(), "RUN c");
    b.empty_step("CMD [\"sh\"]");
    b.empty_step("LABEL l=1");
    let input = dir.path().join("in");
    b.write_oci_layout(&input, "t");
    let image = Image::open(&format!("oci:{}:t", input.display())).expect("open");
    assert_eq!(image.history().len(), 6);
    let history_of = |selector: LayerSelector, name: &str| {
        let out = dir.path().join(name);
        let options = SquashOptions::default()
            .with_selector(selector)
            .with_history(squash::HistoryMode::Drop);
        let plan = image.plan(&options).expect("plan");
        let outcome = plan
            .execute(&image, &Output::new(out.clone(), OutputFormat::OciLayout).with_tag("t"))
            .expect("execute");
        let (layers, config) = squash_testkit::read_oci_layout(&out, Some("t"));
        let steps = squash_testkit::history_steps(&config["history"]);
        (steps, layers.len(), outcome, plan)
    };
    // The last 4 steps: ENV, two layers, CMD, LABEL fold into the merged step.
    let (steps, layers, ..) = history_of(LayerSelector::Steps(5), "five");
    assert_eq!(layers, 2);
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert_eq!(steps[0].0, "ADD base");
    assert!(steps[1].0.starts_with("squash: merged layers 1..2") && !steps[1].1, "{steps:?}");
    // The top 2 layers by --from-layer: the CMD and LABEL after them fold in too; ENV stays.
    let (steps, ..) = history_of(LayerSelector::Top(2), "top");
    let names: Vec<&str> = steps.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(names[..2], ["ADD base", "ENV A=1"], "{steps:?}");
    assert_eq!(steps.len(), 3, "{steps:?}");
    // The last 2 steps made no layer: they fold into one empty step, the layers stay as they are.
    let (steps, layers, outcome, plan) = history_of(LayerSelector::Steps(2), "steps");
    assert_eq!(plan.folded_steps, Some((4, 5)));
    assert_eq!((layers, steps.len()), (3, 5), "{steps:?}");
    assert!(steps[4].1 && steps[4].0.contains("folded"), "{steps:?}");
    assert!(outcome.layers.iter().all(|l| l.squashed_from.is_none()));
    // The last 3 steps hold one layer that squashes to itself: kept, its blob the same.
    let (steps, _, outcome, plan) = history_of(LayerSelector::Steps(3), "one");
    assert_eq!(plan.unchanged.len(), 1, "{:?}", plan.unchanged);
    assert_eq!(outcome.layers[2].digest, *image.layers()[2].digest().expect("digest"));
    assert_eq!(steps.len(), 4, "{steps:?}");
    assert!(!steps[3].1, "the folded step stands for the kept layer: {steps:?}");
}
