//! `report`'s compressed figures against real squashes of the same images: the default
//! estimate within 3%, `exact` equal byte for byte; clutter found where it lies.

use std::path::Path;

use squash::{
    Compression, Context, Image, LayerSelector, Output, OutputFormat, ReportOptions, SquashOptions,
};
use squash_testkit::{realistic_image, ImageBuilder, LayerBuilder, LayerCompression};

/// Squashes with `options` into `dir/name` and returns the new layer's blob size and digest.
fn squashed_layer(
    image: &Image,
    options: &SquashOptions,
    context: &Context,
    dir: &Path,
    name: &str,
) -> (u64, squash::Digest) {
    let plan = image.plan_in(options, context).expect("plan");
    let output = Output::new(dir.join(name), OutputFormat::OciLayout).with_tag("t");
    let outcome = plan.execute_in(image, &output, context).expect("squash");
    let merged: Vec<_> = outcome.layers.iter().filter(|l| l.squashed_from.is_some()).collect();
    assert_eq!(merged.len(), 1);
    (merged[0].compressed_size, merged[0].digest.clone())
}

fn open(dir: &Path, compression: LayerCompression, seed: u64) -> Image {
    let layout = dir.join(format!("in-{seed}"));
    realistic_image(compression, seed, 100).write_oci_layout(&layout, "t");
    Image::open(&format!("oci:{}:t", layout.display())).expect("open")
}

#[test]
fn compressed_estimate_is_within_three_percent_of_a_squash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = open(dir.path(), LayerCompression::Gzip, 1);
    let cases: [(Compression, Option<i32>); 5] = [
        (Compression::Gzip, None),
        (Compression::Gzip, Some(1)),
        (Compression::Gzip, Some(9)),
        (Compression::Zstd, None),
        (Compression::Zstd, Some(19)),
    ];
    let mut n = 0;
    for (compression, level) in cases {
        let mut options = SquashOptions::default().with_selector(LayerSelector::Top(6));
        options.compression = Some(compression);
        options.level = level;
        n += 1;
        let (real, _) =
            squashed_layer(&image, &options, &Context::new(), dir.path(), &format!("out{n}"));
        // The default compresses the whole layer here (it is small); smaller samples exercise
        // the sampling itself, down to four of the 1 MiB pieces (gzip's members, zstd's pieces
        // within its jobs) of the 11 MB layer.
        let budgets: &[u64] = match (compression, level) {
            // zstd 19 reaches back 8 MiB: a few 1 MiB pieces do not tell how it compresses
            // (the README says so; the default sample and --exact do).
            (Compression::Zstd, Some(19)) => &[256 << 20],
            (Compression::Zstd, _) => &[256 << 20, 6 << 20, 4 << 20],
            _ => &[256 << 20, 8 << 20, 6 << 20, 4 << 20],
        };
        for &units in budgets {
            let report = image
                .report_in(
                    &options,
                    &ReportOptions::default().with_sample_bytes(units),
                    &Context::new(),
                )
                .expect("report");
            let estimate = report.squash[0].compressed_size_after_estimate;
            let off = (estimate as f64 - real as f64) / real as f64 * 100.0;
            eprintln!(
                "{compression} level {level:?}, {units} bytes sampled at most: estimate \
                    {estimate}, real {real}, {off:+.2}% (sampled {})",
                report.squash[0].sampled_bytes
            );
            assert!(
                off.abs() <= 3.0,
                "{compression} {level:?} with {units} units: estimate \
                {estimate} is {off:+.2}% off {real}"
            );
            assert!(
                report.squash[0].sampled_bytes > 0
                    && report.squash[0].sampled_bytes <= report.squash[0].uncompressed_size_after
            );
        }
    }
}

/// The estimate, its sample and each layer's share are the same for any thread count: pieces
/// are picked by their position and their figures added in the stream's order, however many
/// compress at once and whichever finishes first.
#[test]
fn estimates_do_not_depend_on_thread_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = open(dir.path(), LayerCompression::Gzip, 3);
    for compression in [Compression::Gzip, Compression::Zstd] {
        let mut options = SquashOptions::default().with_selector(LayerSelector::Top(6));
        options.compression = Some(compression);
        for how in [
            ReportOptions::default().with_sample_bytes(4 << 20),
            ReportOptions::default().with_exact(true),
        ] {
            let figures = |threads: usize| {
                let context = Context::new().with_threads(threads);
                let report = image.report_in(&options, &how, &context).expect("report");
                let range = &report.squash[0];
                let shares: Vec<u64> =
                    report.layers.iter().map(|l| l.reclaimed_compressed_bytes).collect();
                (range.compressed_size_after_estimate, range.sampled_bytes, shares)
            };
            let one = figures(1);
            assert!(one.2.iter().any(|&b| b > 0), "{compression}: {one:?}");
            for threads in [2, 3, 8] {
                assert_eq!(figures(threads), one, "{compression}, {threads} threads");
            }
        }
    }
}

/// A default report of a zstd layer larger than its sample measures it whole, which at zstd's
/// fast levels costs less than sampling it: the size a squash writes, nothing sampled, and no
/// digest (only `exact` hashes it). A sample size of the caller's is still sampled.
#[test]
fn a_fast_zstd_layer_larger_than_the_sample_is_measured_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let big = squash_testkit::large::words(1 << 20, 7).repeat(260);
    let mut b = ImageBuilder::new(LayerCompression::Zstd);
    b.layer(LayerBuilder::new().file("base", b"base").finish(), "base");
    b.layer(LayerBuilder::new().file("big", &big).finish(), "big");
    b.layer(LayerBuilder::new().file("small", b"small").finish(), "small");
    drop(big);
    let layout = dir.path().join("in");
    b.write_oci_layout(&layout, "t");
    drop(b);
    let image = Image::open(&format!("oci:{}:t", layout.display())).expect("open");
    let mut options = SquashOptions::default().with_selector(LayerSelector::Top(2));
    options.compression = Some(Compression::Zstd);
    let (size, _) = squashed_layer(&image, &options, &Context::new(), dir.path(), "out");
    let report =
        image.report_in(&options, &ReportOptions::default(), &Context::new()).expect("report");
    let range = &report.squash[0];
    assert!(range.uncompressed_size_after > 256 << 20, "{}", range.uncompressed_size_after);
    assert_eq!(range.compressed_size_after_exact, Some(size));
    assert_eq!(range.compressed_size_after_estimate, size);
    assert_eq!((range.sampled_bytes, range.digest_after.as_ref()), (0, None));
    let sampled = image
        .report_in(&options, &ReportOptions::default().with_sample_bytes(64 << 20), &Context::new())
        .expect("report");
    let range = &sampled.squash[0];
    assert_eq!(range.compressed_size_after_exact, None);
    assert!(range.sampled_bytes > 0 && range.sampled_bytes < range.uncompressed_size_after);
}

#[test]
fn exact_sizes_and_digests_equal_a_squash() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (n, (input, compression)) in [
        (LayerCompression::Gzip, Compression::Gzip),
        (LayerCompression::Zstd, Compression::Zstd),
        (LayerCompression::Gzip, Compression::None),
    ]
    .into_iter()
    .enumerate()
    {
        let image = open(dir.path(), input, 10 + n as u64);
        let mut options = SquashOptions::default().with_selector(LayerSelector::Top(5));
        options.compression = Some(compression);
        for threads in [1, 3] {
            let context = Context::new().with_threads(threads);
            let report = image
                .report_in(&options, &ReportOptions::default().with_exact(true), &context)
                .expect("report");
            let (size, digest) = squashed_layer(
                &image,
                &options,
                &context,
                dir.path(),
                &format!("out-{n}-{threads}"),
            );
            let range = &report.squash[0];
            // The sizes before are the plan's, and the range's layers' in the report.
            let plan = image.plan_in(&options, &context).expect("plan");
            let layers = &report.layers[range.range.start..=range.range.end];
            assert_eq!(
                (range.uncompressed_size_before, range.compressed_size_before),
                (
                    plan.ranges[0].uncompressed_size_before(),
                    plan.ranges[0].compressed_size_before()
                )
            );
            assert_eq!(
                range.uncompressed_size_before,
                layers.iter().map(|l| l.uncompressed_size).sum::<u64>()
            );
            assert_eq!(
                range.compressed_size_before,
                layers.iter().map(|l| l.compressed_size).sum::<u64>()
            );
            assert_eq!(range.compressed_size_after_exact, Some(size), "{compression}");
            assert_eq!(range.compressed_size_after_estimate, size);
            assert_eq!(range.digest_after.as_ref(), Some(&digest), "{compression}");
            // The layers' shares of the new layer add up to it (less gzip's framing and the
            // markers), so their reclaimed bytes add up to what the squash saves. (Uncompressed,
            // the new layer outgrows the layers it replaces: nothing is reclaimed.)
            if compression == Compression::None {
                assert!(report
                    .layers
                    .iter()
                    .all(|l| l.reclaimed_compressed_bytes <= l.compressed_size));
                continue;
            }
            let reclaimed: u64 = report.layers.iter().map(|l| l.reclaimed_compressed_bytes).sum();
            let saved = range.compressed_size_before - size;
            assert!(
                reclaimed.abs_diff(saved) <= saved / 50 + 4096,
                "per layer {reclaimed} against {saved} in all"
            );
            // The shares come from the fast proxy's sizes (the real encoder sees the whole
            // tar, not the layers): they agree with the default report's, which compresses
            // every piece of this small layer with the real encoder, within 2% of each layer.
            let sampled =
                image.report_in(&options, &ReportOptions::default(), &context).expect("report");
            for (exact, by_samples) in report.layers.iter().zip(&sampled.layers) {
                let off = exact
                    .reclaimed_compressed_bytes
                    .abs_diff(by_samples.reclaimed_compressed_bytes);
                assert!(
                    off <= exact.compressed_size / 50,
                    "{compression} layer {}: {} against {}",
                    exact.index,
                    exact.reclaimed_compressed_bytes,
                    by_samples.reclaimed_compressed_bytes
                );
            }
        }
    }
}

#[test]
fn clutter_is_found_with_its_layers_and_gated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = open(dir.path(), LayerCompression::Gzip, 3);
    let options = SquashOptions::default().with_selector(LayerSelector::Top(6));
    let report =
        image.report_in(&options, &ReportOptions::default(), &Context::new()).expect("report");
    let rule = |name: &str| report.clutter.iter().find(|c| c.rule == name);
    // The lists were deleted by a later layer: waste, not clutter.
    assert!(rule("apt lists").is_none());
    let docs = rule("docs").expect("docs");
    assert_eq!(docs.files, 120);
    assert_eq!(docs.layers.iter().map(|l| l.layer).collect::<Vec<_>>(), vec![0]);
    assert_eq!(docs.reclaimable_bytes, 0, "the docs lie in the base, which a squash keeps");
    let pyc = rule("python byte code").expect("byte code");
    assert_eq!(pyc.files, 200);
    assert_eq!(pyc.layers.iter().map(|l| l.layer).collect::<Vec<_>>(), vec![5]);
    assert_eq!(pyc.reclaimable_bytes, pyc.bytes);
    assert_eq!(pyc.pattern, "**/__pycache__");
    let pip = rule("pip cache").expect("pip");
    assert_eq!(pip.files, 1);
    assert_eq!(report.clutter_bytes, report.clutter.iter().map(|c| c.bytes).sum::<u64>());
    assert_eq!(report.clutter_bytes_non_base, report.clutter_bytes - docs.bytes);
    assert!(report
        .clutter_paths
        .iter()
        .any(|p| p.path == "app/__pycache__" && p.bytes == pyc.bytes));
    // Excluding what the rules name removes it: the report after such a squash has none.
    let mut with_excludes = options.clone();
    with_excludes.excludes = vec![pyc.pattern.clone(), pip.pattern.clone()];
    let plan = image.plan(&with_excludes).expect("plan");
    let out = dir.path().join("out");
    plan.execute(&image, &Output::new(out.clone(), OutputFormat::OciLayout).with_tag("t"))
        .expect("squash");
    let after = Image::open(&format!("oci:{}:t", out.display()))
        .expect("open")
        .report(&SquashOptions::default(), 10)
        .expect("report");
    assert!(
        after.clutter.iter().all(|c| c.rule != "python byte code" && c.rule != "pip cache"),
        "{:?}",
        after.clutter
    );
    // The gate reads the clutter outside the base.
    let gates = squash::Gates::new().with_max_clutter_bytes(report.clutter_bytes_non_base - 1);
    assert_eq!(report.failed_gates(&gates).len(), 1);
    assert!(report
        .failed_gates(&squash::Gates::new().with_max_clutter_bytes(report.clutter_bytes_non_base))
        .is_empty());
}

/// Records the bytes each indexing phase announces.
#[derive(Default)]
struct Indexed(std::sync::Mutex<u64>);

impl squash::Progress for Indexed {
    fn event(&self, event: &squash::Event) {
        if let squash::Event::Indexing { bytes, .. } = event {
            *self.0.lock().expect("lock") += bytes;
        }
    }
}

/// A report indexes every layer once: a range that asks the layers below (about the
/// directories of its whiteouts, the targets of its hard links, what `--exclude` hides) is
/// planned from the indexes the report holds, and `exact` still gives the digest a squash
/// (which reads the layers below itself) writes.
#[test]
fn report_reads_each_layer_once_and_plans_as_a_squash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut asked_below = 0;
    for seed in 0..24u64 {
        let stack = squash_testkit::random_stack(seed, 6);
        let case = dir.path().join(format!("case-{seed}"));
        std::fs::create_dir_all(&case).expect("mkdir");
        let input = crate::support::build(&case, &stack, LayerCompression::Gzip);
        let image = Image::open(&format!("oci:{}:t", input.display())).expect("open");
        let stored: u64 = image.layers().iter().map(|l| l.size()).sum();
        let excludes: &[&str] = if seed % 3 == 0 { &["d1", "f2"] } else { &[] };
        for ranges in [vec![(3, 5)], vec![(1, 2), (4, 5)]] {
            let mut options =
                SquashOptions::default().with_selector(LayerSelector::Ranges(ranges.clone()));
            options.excludes = excludes.iter().map(|p| p.to_string()).collect();
            let progress = Indexed::default();
            let report = match image.report_in(
                &options,
                &ReportOptions::default().with_exact(true),
                &Context::new().with_progress(&progress),
            ) {
                Ok(report) => report,
                // What a squash refuses (an --exclude over a layer kept above), a report refuses
                // too.
                Err(e) => {
                    assert!(
                        image.plan(&options).is_err(),
                        "seed {seed} {ranges:?}: only the report refused: {e}"
                    );
                    continue;
                }
            };
            assert_eq!(
                *progress.0.lock().expect("lock"),
                stored,
                "seed {seed} {ranges:?}: every layer read once"
            );
            let plan = image.plan(&options).expect("plan");
            asked_below += plan.ranges.iter().filter(|r| r.range.start > 0).count();
            let out = case.join(format!("out-{}", ranges.len()));
            let outcome = plan
                .execute(&image, &Output::new(out, OutputFormat::OciLayout).with_tag("t"))
                .expect("squash");
            let written: Vec<_> = outcome
                .layers
                .iter()
                .filter(|l| l.squashed_from.is_some())
                .map(|l| l.digest.clone())
                .collect();
            let measured: Vec<_> =
                report.squash.iter().map(|r| r.digest_after.clone().expect("exact")).collect();
            assert_eq!(
                measured, written,
                "seed {seed} {ranges:?}: the report plans the new layers a squash writes"
            );
        }
    }
    assert!(asked_below > 0);
}
