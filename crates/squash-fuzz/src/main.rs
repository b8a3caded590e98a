//! `squash-fuzz [--seconds N] [--seed S] [--registry]` (what `cargo xtask fuzz` runs): fuzzes
//! for N seconds (default 60) from the shared fixtures and generated images, as files or
//! (`--registry`) served by a faulty registry of its own; findings are saved under
//! target/fuzz/crashes and make it exit 1. Copy each into tests/fuzz-corpus/ once fixed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// The valid images of the shared fixtures that seed the fuzzer (small archives and layouts of
/// every shape the readers know).
const FIXTURES: [&str; 9] = [
    "wagoodman__dive/.data/test-docker-image.tar",
    "wagoodman__dive/.data/test-oci-gzip-image.tar",
    "wagoodman__dive/.data/test-oci-zstd-image.tar",
    "google__go-containerregistry/pkg/v1/mutate/testdata/whiteout_image.tar",
    "google__go-containerregistry/pkg/v1/mutate/testdata/overwritten_file.tar",
    "google__go-containerregistry/pkg/v1/mutate/testdata/whiteout_dir.tar",
    "google__go-containerregistry/pkg/v1/tarball/testdata/test_image_1.tar",
    "google__go-containerregistry/pkg/v1/tarball/testdata/hello-world-v25.tar",
    "containers__image/docker/archive/fixtures/almostempty.tar",
];

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(message) => {
            eprintln!("squash-fuzz: {message}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<ExitCode, String> {
    let (mut seconds, mut rng_seed, mut registry) = (60u64, 1u64, false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |what: &str| {
            args.next().and_then(|v| v.parse().ok()).ok_or(format!("{arg} takes {what}"))
        };
        match arg.as_str() {
            "--seconds" => seconds = value("a number of seconds")?,
            "--seed" => rng_seed = value("a number")?,
            "--registry" => registry = true,
            other => {
                return Err(format!("unknown option `{other}` (--seconds N, --seed S, --registry)"))
            }
        }
    }
    let root = workspace();
    let fixtures = root.join("../shared/fixtures");
    let mut seeds = Vec::new();
    for fixture in FIXTURES {
        match squash_fuzz::Seed::from_reference(&fixtures.join(fixture).display().to_string()) {
            Some(seed) => seeds.push(seed),
            None => eprintln!("fuzz: seed `{fixture}` does not read cleanly; left out"),
        }
    }
    let from_fixtures = seeds.len();
    seeds.extend(squash_fuzz::Seed::generated(12));
    let scratch = root.join("target/fuzz/scratch");
    let crashes = root.join("target/fuzz/crashes");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).map_err(|e| format!("`{}`: {e}", scratch.display()))?;
    squash_fuzz::install_panic_recorder();
    eprintln!(
        "fuzz: {} seeds ({from_fixtures} from the shared fixtures), {seconds} s, seed {rng_seed}{}",
        seeds.len(),
        if registry { ", served by a faulty registry" } else { "" }
    );
    let run = if registry { squash_fuzz::fuzz_registry } else { squash_fuzz::fuzz };
    let stats = run(&seeds, rng_seed, Duration::from_secs(seconds), &scratch, &crashes)
        .map_err(|e| format!("the fuzzer failed: {e}"))?;
    let _ = std::fs::remove_dir_all(&scratch);
    let secs = stats.elapsed.as_secs_f64();
    println!(
        "fuzz: {} executions in {secs:.1} s ({:.0} exec/s), {} accepted through every step, {} findings",
        stats.executions,
        stats.executions as f64 / secs.max(1e-9),
        stats.accepted,
        stats.findings.len()
    );
    for (path, finding, description) in &stats.findings {
        println!("  {}: {finding:?}\n    {description}", path.display());
    }
    if !stats.findings.is_empty() {
        println!(
            "the fuzzer found {} problems (cases saved under {})",
            stats.findings.len(),
            crashes.display()
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// The workspace root.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
