//! Micro-benchmarks: planning and merging throughput (entries per second) and the new-layer
//! compressors (MB/s at 1 thread and at all cores). Inputs are generated with fixed seeds.
//! Run with `cargo bench -p squash-benches`.

use std::time::Instant;

use squash::{Compression, Context, Image, LayerSelector, Output, OutputFormat, SquashOptions};
use squash_testkit::{noise, ImageBuilder, LayerBuilder, LayerCompression};

/// Text-like bytes: pseudo-random letters, compressible about 2:1.
fn text(len: usize, seed: u64) -> Vec<u8> {
    noise(len, seed).into_iter().map(|b| b"etaoin shrdlu\n"[(b % 14) as usize]).collect()
}

fn many_entries(dir: &std::path::Path) -> (String, usize) {
    let mut builder = ImageBuilder::new(LayerCompression::None);
    let mut entries = 0;
    for layer in 0..4u64 {
        let mut l = LayerBuilder::new();
        for d in 0..50 {
            l.dir(format!("d{d}"));
            for f in 0..500u64 {
                // Every layer rewrites a quarter of the files and deletes a few.
                if layer == 0 || f % 4 == layer {
                    l.file(format!("d{d}/f{f}"), &text(64, layer * 1_000_000 + f));
                    entries += 1;
                } else if f % 50 == layer {
                    l.whiteout(format!("d{d}/f{f}"));
                    entries += 1;
                }
            }
        }
        builder.layer(l.finish(), &format!("layer {layer}"));
    }
    let path = dir.join("many");
    builder.write_oci_layout(&path, "t");
    (format!("oci:{}:t", path.display()), entries)
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (reference, entries) = many_entries(dir.path());
    let image = Image::open(&reference).expect("open");
    let options = SquashOptions::default()
        .with_selector(LayerSelector::Top(4))
        .with_compression(Compression::None);
    let start = Instant::now();
    let plan = image.plan(&options).expect("plan");
    let planned = start.elapsed().as_secs_f64();
    let start = Instant::now();
    plan.execute(&image, &Output::new(dir.path().join("out"), OutputFormat::OciLayout))
        .expect("execute");
    let merged = start.elapsed().as_secs_f64();
    println!(
        "index + plan: {entries} entries in {planned:.3}s = {:.0} entries/s",
        entries as f64 / planned
    );
    println!(
        "merge (uncompressed): {entries} entries in {merged:.3}s = {:.0} entries/s",
        entries as f64 / merged
    );

    // Compressors: one 64 MiB text layer squashed with each compression and thread count.
    let mut builder = ImageBuilder::new(LayerCompression::None);
    builder.layer(LayerBuilder::new().file("big", &text(64 << 20, 7)).finish(), "big");
    builder.layer(LayerBuilder::new().file("small", b"s").finish(), "small");
    let path = dir.path().join("big");
    builder.write_oci_layout(&path, "t");
    let image = Image::open(&format!("oci:{}:t", path.display())).expect("open");
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    for compression in [Compression::Gzip, Compression::Zstd] {
        for threads in [1, cores] {
            let options = SquashOptions::default()
                .with_selector(LayerSelector::Top(2))
                .with_compression(compression);
            let context = Context::new().with_threads(threads);
            let plan = image.plan_in(&options, &context).expect("plan");
            let out = dir.path().join(format!("out-{compression}-{threads}"));
            let start = Instant::now();
            plan.execute_in(&image, &Output::new(out, OutputFormat::OciLayout), &context)
                .expect("execute");
            let secs = start.elapsed().as_secs_f64();
            println!("{compression} at {threads} thread(s): {:.0} MB/s", 64.0 * 1.048_576 / secs);
        }
    }
}
