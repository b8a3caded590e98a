//! A waste report with CI gates: exits with 1 when a gate fails, as `squash report` does (the
//! built-in example image fails them: its cache layer is all waste).
//!
//! `cargo run -p squash --example report_gates [IMAGE]`; without an argument it builds a small
//! example image first.

use squash::{Gates, Image, LayerSelector, SquashOptions};

#[path = "common/mod.rs"]
mod common;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scratch = tempfile::tempdir()?;
    let image = common::image_argument(scratch.path());
    let image = Image::open(&image)?;
    let report = image.report(&SquashOptions::default().with_selector(LayerSelector::Top(3)), 5)?;
    println!("wasted {} bytes; efficiency {:.3}", report.wasted_bytes, report.efficiency);
    for path in report.wasted_paths.iter().take(5) {
        println!("  {} bytes reclaimable in {}", path.reclaimable_bytes, path.path);
    }
    let gates = Gates::new()
        .with_max_wasted_bytes(100_000)
        .with_max_wasted_percent(10.0)
        .with_min_efficiency(0.9);
    let mut failed = false;
    for result in report.gate_results(&gates) {
        println!("{} {result}", if result.passed { "pass" } else { "FAIL" });
        failed |= !result.passed;
    }
    if failed {
        std::process::exit(1);
    }
    Ok(())
}
