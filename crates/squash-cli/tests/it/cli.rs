//! The `squash` binary end to end: exit codes, output, and errors that name the file.

use std::process::Command;

fn squash(args: &[&str]) -> (i32, String, String) {
    let (code, stdout, stderr) = squash_bytes(args);
    (code, String::from_utf8_lossy(&stdout).into_owned(), stderr)
}

/// Runs squash with stdout a pipe (an image stream, as bytes).
fn squash_bytes(args: &[&str]) -> (i32, Vec<u8>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_squash")).args(args).output().expect("run squash");
    (out.status.code().unwrap_or(-1), out.stdout, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn fixture(path: &str) -> String {
    format!("{}/../../../shared/fixtures/{path}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn demo_squashes_and_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, stdout, stderr) = squash(&["demo", "--keep", dir.path().to_str().expect("utf8")]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("0 B wasted"), "{stdout}");
    assert!(stdout.contains("base layer kept: true"), "{stdout}");
    // The reference model judges what the demo wrote: both images give the same root filesystem.
    let (before, _) = squash_testkit::read_oci_layout(&dir.path().join("demo-oci"), Some("app"));
    let (after, _) =
        squash_testkit::read_oci_layout(&dir.path().join("demo-squashed"), Some("app"));
    assert_eq!((before.len(), after.len()), (5, 2));
    assert_eq!(before[0].0, after[0].0, "base layer digest");
    let a = squash_testkit::RootFs::from_layers(before.iter().map(|(_, t)| t.as_slice()))
        .expect("original");
    let b = squash_testkit::RootFs::from_layers(after.iter().map(|(_, t)| t.as_slice()))
        .expect("squashed");
    assert!(a.nodes().len() > 5);
    assert_eq!(a.diff(&b), Vec::<String>::new());
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
    let (code, _, stderr) = squash(&["report", &image, "--fail-if-wasted-percent-over", "0.001"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("--fail-if-wasted-percent-over"), "{stderr}");
    let (code, _, stderr) = squash(&["report", &image, "--min-efficiency", "1.0"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("--min-efficiency"), "{stderr}");
    let (code, _, stderr) = squash(&[
        "report",
        &image,
        "--fail-if-wasted-over",
        "1GB",
        "--fail-if-wasted-percent-over",
        "99",
        "--min-efficiency",
        "0.01",
    ]);
    assert_eq!(code, 0, "gates that hold pass: {stderr}");
    let dir = tempfile::tempdir().expect("tempdir");
    // A dry run prints the plan with the exact new size and writes nothing.
    let (code, stdout, _) = squash(&[&image, "--from-layer", "5", "--dry-run", "--json"]);
    assert_eq!(code, 0);
    let plan: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let predicted = plan["ranges"][0]["uncompressed_size_after"].as_u64().expect("size");
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
    let svg = dir.path().join("chart.svg");
    let (code, _, _) = squash(&["report", &image, "--svg", svg.to_str().expect("utf8")]);
    assert_eq!(code, 0);
    let chart = std::fs::read_to_string(&svg).expect("svg");
    assert!(chart.starts_with("<svg") && chart.trim_end().ends_with("</svg>"));
    let out = dir.path().join("out.tar");
    let (code, stdout, stderr) =
        squash(&[&image, "--from-layer", "5", "-o", out.to_str().expect("utf8")]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("layers: 14 -> 10"), "{stdout}");
    let (_, inspected, _) = squash(&["inspect", "--json", out.to_str().expect("utf8")]);
    let inspected: serde_json::Value = serde_json::from_str(&inspected).expect("json");
    assert_eq!(
        inspected["layers"][9]["uncompressed_size"].as_u64(),
        Some(predicted),
        "the dry run predicted the new layer to the byte"
    );
    assert!(
        stderr.contains("the top 5 filesystem layers"),
        "the chosen range and its rule are printed: {stderr}"
    );
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
    let (code, _, stderr) =
        squash(&[&image, "--from-layer", "99", "-o", out.to_str().expect("utf8")]);
    assert_eq!(code, 2, "{stderr}");
    assert!(!out.exists());
}

/// Shell completions for the three shells, a man page, and `--help` that lists the choices of
/// `--format` and `--compression` and ends with examples. bash checks the script's syntax.
#[test]
fn completions_man_page_and_help() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, stdout, stderr) = squash(&["completions", shell]);
        assert_eq!(code, 0, "{shell}: {stderr}");
        assert!(stdout.contains("--from-layer") && stdout.contains("inspect"), "{shell}: {stdout}");
        if shell == "bash" {
            let dir = tempfile::tempdir().expect("tempdir");
            let script = dir.path().join("squash.bash");
            std::fs::write(&script, &stdout).expect("write");
            let status = Command::new("bash").arg("-n").arg(&script).status().expect("bash");
            assert!(status.success(), "bash -n rejects the completion script");
        }
    }
    let (code, stdout, stderr) = squash(&["manpage"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with(".ie") || stdout.contains(".TH squash"),
        "{}",
        &stdout[..stdout.len().min(200)]
    );
    assert!(stdout.contains("from\\-layer"), "the man page documents the options");
    let (code, stdout, _) = squash(&["--help"]);
    assert_eq!(code, 0);
    for expected in ["oci-archive", "docker-archive", "gzip", "zstd", "Examples:", "Exit codes:"] {
        assert!(stdout.contains(expected), "--help names `{expected}`:\n{stdout}");
    }
    let (code, _, stderr) =
        squash(&["x.tar", "--from-layer", "1", "--compression", "lz4", "-o", "y.tar"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("gzip") && stderr.contains("zstd"), "{stderr}");
}

/// `--ci-config` reads dive's `.dive-ci` rules with dive's units and gives the same verdicts as
/// squash's own flags; flags on the command line win over the file.
#[test]
fn dive_ci_config_gates() {
    let image = fixture("wagoodman__dive/.data/test-docker-image.tar");
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, stdout, _) = squash(&["report", "--json", &image]);
    let report: squash::document::ReportDocument =
        serde_json::from_str(&stdout).expect("report document");
    let (wasted, percent, efficiency) = (
        report.report.wasted_bytes_non_base,
        report.report.wasted_percent,
        report.report.efficiency,
    );
    assert!(wasted > 0 && percent > 0.0 && efficiency < 1.0);
    let config = dir.path().join(".dive-ci");
    let run = |rules: &str, extra: &[&str]| {
        std::fs::write(&config, format!("rules:\n{rules}")).expect("write");
        let mut args =
            vec!["report", "--json", &image, "--ci-config", config.to_str().expect("utf8")];
        args.extend_from_slice(extra);
        let (code, stdout, stderr) = squash(&args);
        let document: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_default();
        let verdicts: Vec<(String, bool)> = document["gates"]
            .as_array()
            .map(|g| {
                g.iter()
                    .map(|g| {
                        (
                            g["rule"].as_str().unwrap_or("").to_string(),
                            g["passed"].as_bool().unwrap_or(true),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        (code, verdicts, stderr)
    };
    // Just above each figure: every rule passes; just below: every rule fails.
    let above = format!(
        "  lowestEfficiency: {}\n  highestWastedBytes: {}B\n  highestUserWastedPercent: {}\n",
        efficiency - 0.001,
        wasted,
        (percent + 0.01) / 100.0
    );
    let (code, verdicts, stderr) = run(&above, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(verdicts.len(), 3);
    assert!(verdicts.iter().all(|(_, passed)| *passed), "{verdicts:?}");
    let below = format!(
        "  lowestEfficiency: {}\n  highestWastedBytes: {}\n  highestUserWastedPercent: {}\n",
        efficiency + 0.001,
        wasted - 1,
        (percent - 0.01) / 100.0
    );
    let (code, verdicts, _) = run(&below, &[]);
    assert_eq!(code, 1);
    assert!(verdicts.iter().all(|(_, passed)| !*passed), "{verdicts:?}");
    // A flag wins over the file; `disabled` turns a rule off.
    let (code, verdicts, _) = run(
        "  lowestEfficiency: disabled\n  highestWastedBytes: 1\n",
        &["--fail-if-wasted-over", "1GB"],
    );
    assert_eq!((code, verdicts), (0, vec![("--fail-if-wasted-over".to_string(), true)]));
    // dive's unit for the percent is a ratio: 20 is refused, naming the file and the rule.
    let (code, _, stderr) = run("  highestUserWastedPercent: 20\n", &[]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains(".dive-ci") && stderr.contains("rules.highestUserWastedPercent"),
        "{stderr}"
    );
}

/// `-q` and `-v` work for every command, before or after its name; a squash run's options
/// before a command name are refused; the image is a required argument.
#[test]
fn global_verbosity_and_argument_rules() {
    let image = fixture("wagoodman__dive/.data/test-docker-image.tar");
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out.tar");
    let out = out.to_str().expect("utf8");
    let (code, stdout, stderr) = squash(&["-q", &image, "--from-layer", "3", "-o", out]);
    assert_eq!((code, stdout.as_str(), stderr.as_str()), (0, "", ""));
    let (code, _, stderr) = squash(&[&image, "--from-layer", "3", "-o", out, "-v"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("] merging layers 11..13") && stderr.contains("] done"), "{stderr}");
    let first = stderr.lines().find(|l| l.starts_with("squash: ["));
    assert!(first.is_some_and(|l| l.ends_with("] opening the input")), "{stderr}");
    // Each step says the seconds since the start and the CPU seconds used so far, both growing.
    let steps: Vec<(f64, f64)> = stderr
        .lines()
        .filter_map(|line| line.strip_prefix("squash: [")?.split_once(" s CPU] "))
        .map(|(clocks, _)| {
            let (wall, cpu) = clocks.split_once(" s, ").expect("wall, then CPU");
            (wall.trim().parse().expect("wall"), cpu.trim().parse().expect("cpu"))
        })
        .collect();
    assert!(steps.len() >= 3, "{stderr}");
    assert!(steps.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1), "{stderr}");
    assert!(steps.last().is_some_and(|&(_, cpu)| cpu > 0.0), "{stderr}");
    for args in [
        vec!["-v", "report", &image],
        vec!["report", &image, "--verbose"],
        vec!["inspect", "-v", &image],
    ] {
        let (code, _, stderr) = squash(&args);
        assert_eq!(code, 0, "{args:?}: {stderr}");
        assert!(stderr.contains("read 14 layers (linux/amd64)"), "{args:?}: {stderr}");
    }
    let (code, stdout, _) = squash(&["-q", "inspect", &image]);
    assert_eq!(code, 0);
    assert!(stdout.contains("dive-test:latest"));
    let (code, _, stderr) = squash(&["-q", "-v", "inspect", &image]);
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) = squash(&["--from-layer", "2", "inspect", &image]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--from-layer belongs to a squash run"), "{stderr}");
    let (code, _, stderr) = squash(&["inspect"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("<IMAGE>"), "{stderr}");
    let (_, help, _) = squash(&["--help"]);
    assert!(help.contains("squash [OPTIONS] <IMAGE>"), "{help}");
}

/// The most threads the process `child` had at once, sampled until it ends.
fn peak_threads(mut child: std::process::Child) -> (std::process::ExitStatus, usize) {
    let tasks = format!("/proc/{}/task", child.id());
    let mut peak = 0;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return (status, peak);
        }
        if let Ok(entries) = std::fs::read_dir(&tasks) {
            peak = peak.max(entries.count());
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// `--threads 1` caps every thread squash starts: one layer at a time is indexed, each read and
/// decoded on the thread that uses it, and one compression worker. Besides those, the process
/// has its main thread and the signal-handling thread.
#[test]
fn threads_cap_every_thread() {
    use squash_testkit::{noise, ImageBuilder, LayerBuilder, LayerCompression};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut image = ImageBuilder::new(LayerCompression::Gzip);
    for i in 0..8u64 {
        image.layer(
            LayerBuilder::new().file(format!("f{}", i % 3), &noise(1_500_000, i + 1)).finish(),
            "RUN step",
        );
    }
    let layout = dir.path().join("in");
    image.write_oci_layout(&layout, "t");
    let input = format!("oci:{}:t", layout.display());
    for (threads, limit) in [("1", 4), ("2", 6)] {
        let out = dir.path().join(format!("out-{threads}"));
        let child = Command::new(env!("CARGO_BIN_EXE_squash"))
            .args([&input, "--from-layer", "7", "--threads", threads, "-q", "-o"])
            .arg(format!("oci:{}:t", out.display()))
            .spawn()
            .expect("run squash");
        let (status, peak) = peak_threads(child);
        assert!(status.success());
        assert!(
            peak <= limit,
            "--threads {threads}: {peak} threads at once (at most {limit} expected)"
        );
        let child = Command::new(env!("CARGO_BIN_EXE_squash"))
            .args(["report", &input, "--threads", threads])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("run report");
        let (status, peak) = peak_threads(child);
        assert!(status.success());
        assert!(
            peak <= limit,
            "report --threads {threads}: {peak} threads at once (at most {limit} expected)"
        );
    }
}

/// docker-squash's and crane's spellings: `-f`, `-t`, `-m`, `--output-path`; `--all` flattens
/// every layer into one (the model reads the same filesystem); `--source-date-epoch` dates the
/// new history entry and config, over `SOURCE_DATE_EPOCH`.
#[test]
fn docker_squash_and_crane_habits() {
    let image = fixture("wagoodman__dive/.data/test-docker-image.tar");
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("aliases.tar");
    let out_arg = out.to_str().expect("utf8");
    let status = Command::new(env!("CARGO_BIN_EXE_squash"))
        .args([
            &image,
            "-f",
            "5",
            "-t",
            "app:squashed",
            "-m",
            "squashed by the test",
            "--output-path",
            out_arg,
        ])
        .args(["--source-date-epoch", "1234567890"])
        .env("SOURCE_DATE_EPOCH", "1")
        .output()
        .expect("run squash");
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let (code, inspected, _) = squash(&["inspect", "--json", out_arg]);
    assert_eq!(code, 0);
    let inspected: serde_json::Value = serde_json::from_str(&inspected).expect("json");
    assert_eq!(inspected["layers"].as_array().map(Vec::len), Some(10));
    let text = inspected.to_string();
    assert!(text.contains("squashed by the test"), "-m sets the history comment");
    assert!(
        text.contains("2009-02-13T23:31:30Z"),
        "the flag's epoch wins over SOURCE_DATE_EPOCH: {text}"
    );
    assert!(text.contains("app:squashed"), "-t names the image");

    let flat = dir.path().join("flat");
    let flat_arg = format!("oci:{}:flat", flat.display());
    let (code, stdout, stderr) = squash(&[&image, "--all", "-o", &flat_arg]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("layers: 14 -> 1"), "{stdout}");
    assert!(stderr.contains("--all"), "the rule is named: {stderr}");
    let opened = squash::Image::open(&image).expect("open");
    let original: Vec<Vec<u8>> = (0..opened.layers().len())
        .map(|i| {
            let mut tar = Vec::new();
            opened.write_layer_tar(i, &mut tar).expect("layer");
            tar
        })
        .collect();
    let (after, _) = squash_testkit::read_oci_layout(&flat, Some("flat"));
    assert_eq!(after.len(), 1);
    let a = squash_testkit::RootFs::from_layers(original.iter().map(|t| t.as_slice()))
        .expect("original");
    let b = squash_testkit::RootFs::from_layers(after.iter().map(|(_, t)| t.as_slice()))
        .expect("flattened");
    assert_eq!(a.diff(&b), Vec::<String>::new());
    let (code, _, stderr) = squash(&[&image, "--all", "-f", "2", "--dry-run"]);
    assert_eq!(code, 2, "--all and --from-layer conflict: {stderr}");
    let (code, _, stderr) = squash(&[&image, "-f", "2", "--rewrite-timestamp", "--dry-run"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("--source-date-epoch"), "{stderr}");
}

/// `crane mutate`'s and `docker commit --change`'s edits: they change what they name in the
/// config and manifest, keep everything else, and need no range (the layers are then copied).
#[test]
fn config_and_manifest_edits() {
    let image = fixture("wagoodman__dive/.data/test-docker-image.tar");
    let dir = tempfile::tempdir().expect("tempdir");
    let before = squash::Image::open(&image).expect("open");
    let layout = dir.path().join("edited");
    let (code, _, stderr) = squash(&[
        &image,
        "--label",
        "org.example.team=platform",
        "--env",
        "PATH=/opt/bin",
        "--env",
        "EXTRA=1",
        "--entrypoint",
        r#"["/bin/app", "--serve"]"#,
        "--cmd",
        "null",
        "--workdir",
        "/srv",
        "--user",
        "1000:1000",
        "--annotation",
        "org.opencontainers.image.source=https://example.org/app",
        "-o",
        &format!("oci:{}:edited", layout.display()),
    ]);
    assert_eq!(code, 0, "edits need no range: {stderr}");
    let after = squash::Image::open(&format!("oci:{}:edited", layout.display())).expect("reopen");
    let digests =
        |i: &squash::Image| i.layers().iter().map(|l| l.diff_id().clone()).collect::<Vec<_>>();
    assert_eq!(digests(&after), digests(&before), "the layers are copied");
    let config = &after.config_json()["config"];
    assert_eq!(config["Labels"]["org.example.team"], "platform");
    assert_eq!(config["Entrypoint"], serde_json::json!(["/bin/app", "--serve"]));
    assert!(config.get("Cmd").is_none(), "null removes the command");
    assert_eq!(config["WorkingDir"], "/srv");
    assert_eq!(config["User"], "1000:1000");
    let env: Vec<&str> =
        config["Env"].as_array().expect("env").iter().filter_map(|v| v.as_str()).collect();
    assert_eq!(
        env.iter().filter(|v| v.starts_with("PATH=")).collect::<Vec<_>>(),
        vec![&"PATH=/opt/bin"],
        "{env:?}"
    );
    assert!(env.contains(&"EXTRA=1"), "{env:?}");
    let original = &before.config_json();
    for field in ["architecture", "os", "history"] {
        assert_eq!(after.config_json()[field], original[field], "{field} is kept");
    }
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index"))
            .expect("json");
    let digest = index["manifests"][0]["digest"].as_str().expect("digest").replace("sha256:", "");
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(layout.join("blobs/sha256").join(digest)).expect("manifest"),
    )
    .expect("json");
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.source"],
        "https://example.org/app"
    );

    let archive = dir.path().join("edited.tar");
    let (code, _, stderr) =
        squash(&[&image, "--annotation", "a=b", "-o", archive.to_str().expect("utf8")]);
    assert_ne!(code, 0);
    assert!(stderr.contains("docker-archive"), "{stderr}");
    assert!(!archive.exists(), "a failed run leaves nothing");
    let (code, _, stderr) = squash(&[&image, "--env", "NOEQUALS", "--dry-run"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--env"), "{stderr}");
}

/// `squash diff`: exit 0 for equal filesystems, 1 for different ones (with what differs, in
/// text and JSON), 2 for an error; `squash --verify` reads its output back before it puts it
/// in place, whether the output exists or not, and before it sends a byte of a stream.
#[test]
fn diff_and_verify() {
    let image = fixture("wagoodman__dive/.data/test-docker-image.tar");
    let dir = tempfile::tempdir().expect("tempdir");
    let squashed = dir.path().join("squashed.tar");
    let squashed_arg = squashed.to_str().expect("utf8");
    let (code, _, stderr) = squash(&[&image, "-f", "5", "--verify", "-o", squashed_arg]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("verified"), "{stderr}");
    let (code, stdout, _) = squash(&["diff", &image, squashed_arg]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("equal"), "{stdout}");
    // An output that exists is left as it was until the image is verified beside it: an
    // archive is then replaced, a layout gains the tag; nothing is left beside either.
    let (code, stdout, stderr) = squash(&[&image, "-f", "4", "--verify", "-o", squashed_arg]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("verified"), "{stderr}");
    assert!(stdout.contains(&format!("wrote {squashed_arg}")), "{stdout}");
    let (code, stdout, _) = squash(&["inspect", "--json", squashed_arg]);
    assert_eq!(code, 0, "{stdout}");
    let layout = dir.path().join("layout");
    let tagged = |tag: &str| format!("oci:{}:{tag}", layout.display());
    let (code, _, stderr) = squash(&[&image, "-f", "5", "-o", &tagged("plain")]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = squash(&[&image, "-f", "3", "--verify", "-o", &tagged("checked")]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(&format!("wrote {}", layout.display())), "{stdout}");
    for tag in ["plain", "checked"] {
        let (code, stdout, _) = squash(&["diff", &image, &tagged(tag)]);
        assert_eq!(code, 0, "{tag}: {stdout}");
    }
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["layout", "squashed.tar"], "nothing left beside the outputs");
    // To a stream, the image is verified in the scratch directory before any byte is sent: the
    // bytes are those of the same run without --verify, the summary names standard output, and
    // the scratch directory is gone afterwards.
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).expect("tmp");
    let tmp_arg = tmp.to_str().expect("utf8");
    let (code, verified, stderr) =
        squash_bytes(&[&image, "-f", "5", "--verify", "--tmp-dir", tmp_arg, "-o", "-"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("verified") && stderr.contains("wrote standard output"), "{stderr}");
    let (code, streamed, stderr) = squash_bytes(&[&image, "-f", "5", "-o", "-"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(verified == streamed, "--verify changes no byte of the stream");
    assert_eq!(std::fs::read_dir(&tmp).expect("tmp").count(), 0, "the scratch is removed");

    let testdata = fixture("google__go-containerregistry/pkg/v1/tarball/testdata");
    let (one, two) =
        (format!("{testdata}/test_image_1.tar"), format!("{testdata}/test_image_2.tar"));
    let (code, stdout, _) = squash(&["diff", &one, &two]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("+ bat")
            && stdout.contains("- foo")
            && stdout.contains("2 added, 2 removed"),
        "{stdout}"
    );
    let (code, stdout, _) = squash(&["diff", "--json", &one, &two]);
    assert_eq!(code, 1);
    let document: squash::document::DiffDocument =
        serde_json::from_str(&stdout).expect("a DiffDocument");
    assert!(!document.equal);
    assert_eq!(document.diff.added, vec!["bat".to_string(), "baz".to_string()]);
    let (code, _, stderr) = squash(&["diff", &one, &one, "--ignore", "mtime,bogus"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("bogus"), "{stderr}");
    let (code, _, stderr) = squash(&["diff", &one, "/no/such/image.tar"]);
    assert_eq!(code, 2, "{stderr}");
}

/// `--exclude` and `--exclude-from` on the command line: the dry run and the report give each
/// pattern's figures, and a verified squash leaves the excluded paths out.
#[test]
fn excludes_on_the_command_line() {
    let image = fixture("wagoodman__dive/.data/test-docker-image.tar");
    let dir = tempfile::tempdir().expect("tempdir");
    let list = dir.path().join("excludes");
    std::fs::write(&list, "# caches\ntmp/\n\n").expect("write");
    let list_arg = list.to_str().expect("utf8");
    let (code, stdout, stderr) = squash(&[
        &image,
        "-f",
        "5",
        "--exclude",
        "root/.data/*.txt",
        "--exclude-from",
        list_arg,
        "--dry-run",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("--exclude root/.data/*.txt: 1 entry, 7.2 kB reclaimed"), "{stdout}");
    assert!(stdout.contains("--exclude tmp/: 2 entries"), "{stdout}");
    let (code, stdout, _) =
        squash(&["report", &image, "-f", "5", "--exclude", "root/.data/*.txt", "--json"]);
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(report["squash"][0]["excluded"][0]["entries_reclaimed"], 1, "{report}");
    let out = dir.path().join("out.tar");
    let out_arg = out.to_str().expect("utf8");
    let (code, _, stderr) = squash(&[
        &image,
        "-f",
        "5",
        "--exclude",
        "root/.data/*.txt",
        "--exclude-from",
        list_arg,
        "--verify",
        "-o",
        out_arg,
    ]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, _) = squash(&["diff", &image, out_arg]);
    assert_eq!(code, 1);
    assert!(
        stdout.contains("- root/.data/saved.again2.txt") && stdout.contains("- tmp"),
        "{stdout}"
    );
    assert!(!stdout.contains('+'), "nothing added: {stdout}");
    let (code, _, stderr) =
        squash(&[&image, "--layers", "9..10", "--exclude", "root/saved.txt", "--dry-run"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("above every squashed range"), "{stderr}");
}

#[test]
fn report_of_many_images_markdown_html_exact_and_clutter() {
    let docker = fixture("wagoodman__dive/.data/test-docker-image.tar");
    let kaniko = fixture("wagoodman__dive/.data/test-kaniko-image.tar");
    let dir = tempfile::tempdir().expect("tempdir");
    // Several images: each, then their sum with each shared blob once (the same image twice
    // stores nothing more).
    let (code, stdout, stderr) = squash(&["report", "--json", &docker, &docker]);
    assert_eq!(code, 0, "{stderr}");
    let both: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let (_, one, _) = squash(&["report", "--json", &docker]);
    let one: serde_json::Value = serde_json::from_str(&one).expect("json");
    let stored: u64 = one["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["compressed_size"].as_u64().expect("size"))
        .sum();
    assert_eq!(both["images"].as_array().map(Vec::len), Some(2));
    assert_eq!(both["summary"]["stored_bytes"].as_u64(), Some(stored));
    assert_eq!(both["summary"]["images"].as_u64(), Some(2));
    // --from-file, with comments; text ends with the summary.
    let list = dir.path().join("images.txt");
    std::fs::write(&list, format!("# audit\n{docker}\n\n{kaniko}\n")).expect("list");
    let (code, stdout, stderr) = squash(&["report", "--from-file", list.to_str().expect("utf8")]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!("== {docker}")) && stdout.contains(&format!("== {kaniko}")),
        "{stdout}"
    );
    assert!(stdout.contains("== all 2 images"), "{stdout}");
    // --exact: the size and digest a squash with the same options writes.
    let (code, stdout, stderr) = squash(&[
        "report",
        "--json",
        "--exact",
        "--compression",
        "zstd",
        &docker,
        "--from-layer",
        "5",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let exact: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let out = dir.path().join("out");
    let (code, stdout, stderr) = squash(&[
        &docker,
        "--from-layer",
        "5",
        "--compression",
        "zstd",
        "-o",
        &format!("oci:{}:t", out.display()),
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let written: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let new_layer = &written["layers"][9];
    assert_eq!(exact["squash"][0]["digest_after"], new_layer["digest"], "{exact}");
    assert_eq!(exact["squash"][0]["compressed_size_after_exact"], new_layer["compressed_size"]);
    // Clutter: the fixture copies a file into /tmp; the gate reads it, --no-default-clutter and
    // --clutter change the list.
    let (code, _, stderr) = squash(&["report", &docker, "--fail-if-clutter-over", "1B"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("--fail-if-clutter-over"), "{stderr}");
    let (code, stdout, _) = squash(&[
        "report",
        "--json",
        &docker,
        "--no-default-clutter",
        "--clutter",
        "root/**/*.txt",
    ]);
    assert_eq!(code, 0);
    let custom: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let rules: Vec<&str> = custom["clutter"]
        .as_array()
        .expect("clutter")
        .iter()
        .map(|c| c["rule"].as_str().expect("rule"))
        .collect();
    assert_eq!(rules, ["root/**/*.txt"]);
    // Markdown for a pull request: the layer table and the clutter, with the --exclude to use.
    let (code, stdout, _) = squash(&["report", "--format", "markdown", &docker]);
    assert_eq!(code, 0);
    assert!(stdout.contains("| # | stored | uncompressed |"), "{stdout}");
    assert!(stdout.contains("`--exclude 'tmp/*'`"), "{stdout}");
    let (code, _, stderr) = squash(&["report", "--json", "--format", "markdown", &docker]);
    assert_eq!(code, 2, "{stderr}");
    // HTML: one page with the chart inline and nothing fetched.
    let page = dir.path().join("report.html");
    let (code, _, stderr) =
        squash(&["report", &docker, &kaniko, "--html", page.to_str().expect("utf8")]);
    assert_eq!(code, 0, "{stderr}");
    let html = std::fs::read_to_string(&page).expect("html");
    assert!(
        html.starts_with("<!DOCTYPE html>")
            && html.matches("<svg").count() == 2
            && html.contains("All 2 images")
    );
    assert!(
        !html.contains("http://")
            || html.matches("http://").count()
                == html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count()
    );
    assert!(!html.contains("<script") && !html.contains("https://"));
}

/// docs/fleets.md: its Kubernetes documents parse, the Job is indexed over the ConfigMap's list,
/// its arguments are ones squash takes, and the list reads as `--from-file` reads it; its CI
/// matrix's commands are squash's.
#[test]
fn the_fleet_page_is_what_the_cli_reads() {
    use yaml_rust2::{Yaml, YamlLoader};
    let page =
        std::fs::read_to_string(format!("{}/../../docs/fleets.md", env!("CARGO_MANIFEST_DIR")))
            .expect("docs/fleets.md");
    let blocks: Vec<&str> =
        page.split("```yaml\n").skip(1).filter_map(|b| b.split("```").next()).collect();
    assert_eq!(blocks.len(), 2, "a Kubernetes block and a CI block");
    let documents = YamlLoader::load_from_str(blocks[0]).expect("the Kubernetes block is YAML");
    let kinds: Vec<&str> = documents.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds, ["ConfigMap", "Job"]);
    let list = documents[0]["data"]["images.txt"].as_str().expect("images.txt");
    let job = &documents[1]["spec"];
    assert_eq!(job["completionMode"].as_str(), Some("Indexed"));
    let lines = list.lines().filter(|l| !l.trim().is_empty()).count() as i64;
    assert_eq!(job["completions"].as_i64(), Some(lines), "one pod per line");
    let pod = &job["template"]["spec"];
    let container = &pod["containers"][0];
    let args: Vec<&str> =
        container["args"].as_vec().expect("args").iter().filter_map(Yaml::as_str).collect();
    assert!(args.contains(&"--index=$(JOB_COMPLETION_INDEX)"), "{args:?}");
    let mounts: Vec<&str> = container["volumeMounts"]
        .as_vec()
        .expect("mounts")
        .iter()
        .filter_map(|m| m["mountPath"].as_str())
        .collect();
    assert!(args.contains(&"--from-file=/fleet/images.txt") && mounts.contains(&"/fleet"));
    assert_eq!(container["env"][0]["value"].as_str(), Some("/config"));
    assert!(mounts.contains(&"/config"), "DOCKER_CONFIG is the mounted Secret");
    // The list as the pods read it: three images, the index past them refused by name.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("images.txt");
    std::fs::write(&file, list).expect("write");
    let file_arg = format!("--from-file={}", file.display());
    let (code, _, stderr) = squash(&["inspect", &file_arg, &format!("--index={lines}")]);
    assert_eq!(code, 2);
    assert!(stderr.contains(&format!("lists {lines} images")), "{stderr}");
    // The Job's other arguments parse (a dry run then stops at the unreachable registry).
    let mut job_args: Vec<String> = args
        .iter()
        .map(|a| a.replace("/fleet/images.txt", file.to_str().expect("utf8")))
        .map(|a| a.replace("$(JOB_COMPLETION_INDEX)", "0"))
        .collect();
    job_args.extend(["--dry-run".into(), "--retries=0".into()]);
    let job_args: Vec<&str> = job_args.iter().map(String::as_str).collect();
    let (code, _, stderr) = squash(&job_args);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("`docker://registry.example`: cannot reach the registry"),
        "stopped at the registry: {stderr}"
    );
    let ci = YamlLoader::load_from_str(blocks[1]).expect("the CI block is YAML");
    assert!(ci[0]["jobs"]["squash"]["strategy"]["matrix"]["image"].as_vec().is_some());
}

/// The README and the docs/ pages: every flag their `squash` command lines use is one squash
/// takes (its help lists it), and every relative link names a file that exists.
#[test]
fn the_docs_use_only_flags_squash_takes_and_links_that_exist() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut pages = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).expect("docs/").flatten() {
        if entry.path().extension().is_some_and(|e| e == "md") {
            pages.push(entry.path());
        }
    }
    let mut known = String::new();
    for command in [&[][..], &["inspect"], &["report"], &["diff"], &["demo"], &["completions"]] {
        let mut args: Vec<&str> = command.to_vec();
        args.push("--help");
        known.push_str(&squash(&args).1);
    }
    let mut unknown = Vec::new();
    let mut broken = Vec::new();
    for page in &pages {
        let text = std::fs::read_to_string(page).expect("a page");
        let mut in_code = false;
        for line in text.lines() {
            if line.starts_with("```") {
                in_code = !in_code;
                continue;
            }
            // Command lines: in code blocks, and in backticks in the prose.
            let commands: Vec<&str> = if in_code {
                vec![line]
            } else {
                line.split('`').skip(1).step_by(2).filter(|c| c.starts_with("squash ")).collect()
            };
            for command in commands.iter().filter(|c| c.contains("squash ")) {
                let after = &command[command.find("squash ").unwrap_or(0)..];
                let after = after.split(" | ").next().unwrap_or(after);
                for word in after.split_whitespace().filter(|w| w.starts_with("--") && w.len() > 2)
                {
                    let flag: String = word
                        .trim_start_matches('[')
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                        .collect();
                    if flag.len() > 2
                        && !known.contains(&format!("{flag} "))
                        && !known.contains(&format!("{flag}\n"))
                        && !known.contains(&format!("{flag}="))
                        && !known.contains(&format!("{flag},"))
                    {
                        unknown.push(format!("{}: {flag} in `{}`", page.display(), command.trim()));
                    }
                }
            }
            // Relative links.
            for part in line.split("](").skip(1) {
                let target = part.split(')').next().unwrap_or("");
                let file = target.split('#').next().unwrap_or("");
                if file.is_empty() || file.contains("://") {
                    continue;
                }
                if !page.parent().expect("a directory").join(file).exists() {
                    broken.push(format!("{}: {target}", page.display()));
                }
            }
        }
    }
    assert!(unknown.is_empty(), "flags squash does not take:\n{}", unknown.join("\n"));
    assert!(broken.is_empty(), "links to nothing:\n{}", broken.join("\n"));
}
