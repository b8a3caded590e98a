//! The fuzzer's cases stay fixed: every case kept under tests/fuzz-corpus/ (its findings, once
//! fixed, and a sample of the cases it refused and accepted) runs through
//! inspect, report and squash without a panic, a hang or output left behind; and a short,
//! deterministic fuzzing run (the same harness `cargo xtask fuzz` drives) finds nothing.

use std::path::Path;

use squash_fuzz::{fuzz, install_panic_recorder, run_case_with_limit, Seed};

#[test]
fn saved_fuzz_cases_stay_fixed() {
    install_panic_recorder();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz-corpus");
    let mut cases: Vec<_> =
        std::fs::read_dir(&dir).expect("tests/fuzz-corpus").flatten().map(|e| e.path()).collect();
    cases.retain(|p| p.extension().is_some_and(|e| e == "tar"));
    cases.sort();
    assert!(!cases.is_empty(), "no saved cases in {}", dir.display());
    for case in cases {
        let work = tempfile::tempdir().expect("tempdir");
        if let Err(finding) = run_case_with_limit(&case, work.path()) {
            panic!("{}: {finding:?}", case.display());
        }
    }
}

#[test]
fn a_short_fuzzing_run_finds_nothing() {
    install_panic_recorder();
    let seeds = Seed::generated(6);
    let scratch = tempfile::tempdir().expect("tempdir");
    let crashes = scratch.path().join("crashes");
    let stats = fuzz(&seeds, 42, std::time::Duration::from_secs(4), scratch.path(), &crashes)
        .expect("fuzz");
    assert!(stats.executions > 20, "the harness ran only {} cases", stats.executions);
    assert!(
        stats.accepted > 0 && stats.accepted < stats.executions,
        "mutations must both pass and fail: {stats:?}"
    );
    assert!(stats.findings.is_empty(), "{:?}", stats.findings);
}

/// The registry mode: cases served by a faulty registry of the fuzzer's own, read from
/// `docker://`; nothing panics, hangs or leaves output behind.
#[test]
fn a_short_registry_fuzzing_run_finds_nothing() {
    install_panic_recorder();
    let seeds = Seed::generated(6);
    let scratch = tempfile::tempdir().expect("tempdir");
    let crashes = scratch.path().join("crashes");
    let stats = squash_fuzz::fuzz_registry(
        &seeds,
        7,
        std::time::Duration::from_secs(4),
        scratch.path(),
        &crashes,
    )
    .expect("fuzz");
    assert!(stats.executions > 5, "the harness ran only {} cases", stats.executions);
    assert!(stats.accepted > 0 && stats.accepted < stats.executions, "{stats:?}");
    assert!(stats.findings.is_empty(), "{:?}", stats.findings);
}
