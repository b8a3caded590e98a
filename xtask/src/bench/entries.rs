//! `cargo xtask bench --entries N,…`: time and peak memory of squashes and reports of images
//! of many small files, to show that both grow with entries, not with contents.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::Result;

use super::images::write_layout;
use super::measure::{timed, timed_median};

/// `--entries N,…`: time and peak RSS of a squash above the base (a range of N entries) and of
/// a report (2N entries), gzip layers, medians of `runs` rounds.
pub(crate) fn bench_entries(squash: &Path, dir: &Path, counts: &[u64], runs: usize) -> Result<()> {
    println!(
        "entry-count series: gzip layers, a squash of every layer above the base, medians of \
        {runs} runs"
    );
    println!(
        "{:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "range", "squash s", "RSS MB", "B/entry", "report of", "report s", "RSS MB"
    );
    for &n in counts {
        let work = dir.join(format!("entries-{n}"));
        let _ = fs::remove_dir_all(&work);
        fs::create_dir_all(&work)?;
        let tars = squash_testkit::large::many_entries(&work, n)?;
        let layout = work.join("oci-gzip");
        write_layout(&layout, &tars, "gzip")?;
        let out = work.join("out");
        let squash_run = timed_median(runs, || {
            let _ = fs::remove_dir_all(&out);
            timed(
                Command::new(squash)
                    .arg(format!("oci:{}:bench", layout.display()))
                    .args(["--from-layer", "2", "--quiet", "-o"])
                    .arg(format!("oci:{}:bench", out.display())),
            )
        })?;
        let report_run = timed_median(runs, || {
            timed(
                Command::new(squash)
                    .arg("report")
                    .arg(format!("oci:{}:bench", layout.display()))
                    .args(["--from-layer", "2"]),
            )
        })?;
        println!(
            "{:>10} {:>10.2} {:>10.1} {:>10.0} {:>10} {:>10.2} {:>10.1}",
            n,
            squash_run.0,
            squash_run.1,
            squash_run.1 * 1e6 / n as f64,
            2 * n,
            report_run.0,
            report_run.1
        );
        if std::env::var_os("SQUASH_BENCH_KEEP").is_none() {
            fs::remove_dir_all(&work)?;
        }
    }
    Ok(())
}
