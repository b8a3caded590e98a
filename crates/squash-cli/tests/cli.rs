//! The `squash` binary end to end: exit codes, output, and errors that name the file.

use std::process::Command;

fn squash(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_squash")).args(args).output().expect("run squash");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn fixture(path: &str) -> String {
    format!("{}/../../../shared/fixtures/{path}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn demo_squashes_and_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, stdout, stderr) = squash(&["demo", "--keep", dir.path().to_str().expect("utf8")]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("root filesystems identical"), "{stdout}");
    assert!(stdout.contains("base layer kept: true"), "{stdout}");
}

#[test]
fn inspect_report_squash_and_gates() {
    let image = fixture("wagoodman__dive/.data/test-docker-image.tar");
    let (code, stdout, _) = squash(&["inspect", "--json", &image]);
    assert_eq!(code, 0);
    let value: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(value["layers"].as_array().map(Vec::len), Some(14));
    let (code, stdout, _) = squash(&["report", "--json", &image]);
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert!(report["wasted_bytes"].as_u64().expect("wasted") > 0);
    let (code, _, stderr) = squash(&["report", &image, "--fail-if-wasted-over", "1B"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("--fail-if-wasted-over"), "{stderr}");
    let dir = tempfile::tempdir().expect("tempdir");
    let svg = dir.path().join("chart.svg");
    let (code, _, _) = squash(&["report", &image, "--svg", svg.to_str().expect("utf8")]);
    assert_eq!(code, 0);
    let chart = std::fs::read_to_string(&svg).expect("svg");
    assert!(chart.starts_with("<svg") && chart.trim_end().ends_with("</svg>"));
    let out = dir.path().join("out.tar");
    let (code, stdout, stderr) = squash(&[&image, "--from-layer", "5", "-o", out.to_str().expect("utf8")]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("layers: 14 -> 10"), "{stdout}");
    assert!(stderr.contains("the top 5 filesystem layers"), "the chosen range and its rule are printed: {stderr}");
}

#[test]
fn errors_name_the_file_and_exit_non_zero() {
    let bad = fixture("google__go-containerregistry/pkg/v1/tarball/testdata/null_manifest.tar");
    let (code, _, stderr) = squash(&["inspect", &bad]);
    assert_eq!(code, 2);
    assert!(stderr.contains("null_manifest.tar") && stderr.contains("null"), "{stderr}");
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out.tar");
    let image = fixture("wagoodman__dive/.data/test-docker-image.tar");
    let (code, _, stderr) = squash(&[&image, "--from-layer", "99", "-o", out.to_str().expect("utf8")]);
    assert_eq!(code, 2, "{stderr}");
    assert!(!out.exists());
}
