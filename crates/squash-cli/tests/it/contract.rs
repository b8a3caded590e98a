//! The CLI contract at its edges, one test per defect it must not have: dry runs, file modes,
//! closed pipes, concurrent writers, outputs inside inputs, signals, conflicting options,
//! remote transports, a forgotten range, error text, and what is verified.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use squash_testkit::{noise, ImageBuilder, LayerBuilder, LayerCompression};

const BIN: &str = env!("CARGO_BIN_EXE_squash");

/// Runs squash as a user does: (exit code, stdout, stderr).
pub(crate) fn squash(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().expect("run squash");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// A three-layer OCI layout tagged `t` in `dir/in`.
fn layout(dir: &Path) -> PathBuf {
    let mut b = ImageBuilder::new(LayerCompression::Gzip);
    b.layer(LayerBuilder::new().dir("etc").file("etc/base", b"base").finish(), "ADD base");
    b.layer(LayerBuilder::new().file("etc/a", &noise(20_000, 1)).finish(), "RUN a");
    b.layer(LayerBuilder::new().whiteout("etc/a").file("etc/b", b"b").finish(), "RUN b");
    let path = dir.join("in");
    b.write_oci_layout(&path, "t");
    path
}

/// Every file under `root` with its bytes and mode: to prove an input was not touched.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if dir.is_file() {
            let mode = std::fs::metadata(&dir).expect("metadata").permissions().mode();
            out.insert(dir.clone(), (std::fs::read(&dir).expect("read"), mode));
            continue;
        }
        for entry in std::fs::read_dir(&dir).expect("read_dir").flatten() {
            stack.push(entry.path());
        }
        out.insert(dir, (Vec::new(), 0));
    }
    out
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn dry_run_with_output_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = layout(dir.path());
    let before = snapshot(dir.path());
    for out in ["out.tar", "oci:out", "oci-archive:out.tar", "docker-archive:out.tar:app:1"] {
        let target = format!(
            "{}/{}",
            dir.path().display(),
            out.rsplit_once(':').map(|(p, _)| p).unwrap_or(out)
        );
        let target = if out.contains(':') {
            out.replacen(':', &format!(":{}/", dir.path().display()), 1)
        } else {
            target
        };
        let (code, stdout, stderr) = squash(&[
            &format!("oci:{}:t", input.display()),
            "--from-layer",
            "2",
            "--dry-run",
            "-o",
            &target,
            "--json",
        ]);
        assert_eq!(code, 0, "{out}: {stderr}");
        let plan: serde_json::Value = serde_json::from_str(&stdout).expect("json");
        assert_eq!(plan["dry_run"], true);
        assert_eq!(snapshot(dir.path()), before, "{out}: a dry run wrote something");
    }
    // The same with the existing input layout as the output; the human plan is the result, on
    // stdout.
    let (code, stdout, stderr) = squash(&[
        &format!("oci:{}:t", input.display()),
        "--from-layer",
        "2",
        "--dry-run",
        "-o",
        &format!("oci:{}:new", input.display()),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("squashing layers 1..2 (2 layers)")
            && stdout.contains("keeping layer 0 byte for byte"),
        "{stdout}"
    );
    assert!(!stderr.contains("squashing"), "{stderr}");
    assert_eq!(snapshot(dir.path()), before);
}

/// Runs `squash args` in a shell with `umask`; returns the exit code and stderr.
fn with_umask(umask: &str, args: &[&str]) -> (i32, String) {
    let mut command =
        vec!["-c".to_string(), format!("umask {umask}; exec \"$0\" \"$@\""), BIN.to_string()];
    command.extend(args.iter().map(|a| a.to_string()));
    let out = Command::new("sh").args(&command).output().expect("sh");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn modes(root: &Path) -> Vec<(PathBuf, u32)> {
    let mut out = vec![(
        root.to_path_buf(),
        std::fs::metadata(root).expect("metadata").permissions().mode() & 0o777,
    )];
    if root.is_dir() {
        for entry in std::fs::read_dir(root).expect("read_dir").flatten() {
            out.extend(modes(&entry.path()));
        }
    }
    out
}

#[test]
fn outputs_are_readable_by_other_users() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = layout(dir.path());
    let image = format!("oci:{}:t", input.display());
    for (umask, file_mode, dir_mode) in
        [("022", 0o644, 0o755), ("027", 0o640, 0o750), ("077", 0o600, 0o700)]
    {
        let outputs = [
            format!("oci:{}/layout-{umask}:x", dir.path().display()),
            format!("oci-archive:{}/oci-{umask}.tar", dir.path().display()),
            format!("docker-archive:{}/docker-{umask}.tar", dir.path().display()),
        ];
        for out in &outputs {
            let (code, stderr) = with_umask(umask, &[&image, "--from-layer", "2", "-o", out, "-q"]);
            assert_eq!(code, 0, "{out}: {stderr}");
        }
        for path in [
            dir.path().join(format!("layout-{umask}")),
            dir.path().join(format!("oci-{umask}.tar")),
            dir.path().join(format!("docker-{umask}.tar")),
        ] {
            for (p, mode) in modes(&path) {
                let expected = if p.is_dir() { dir_mode } else { file_mode };
                assert_eq!(mode, expected, "{} under umask {umask}: mode {mode:o}", p.display());
            }
        }
    }
    // A tag added to an existing layout: the new blobs and index.json are readable too.
    let (code, stderr) = with_umask(
        "022",
        &[&image, "--from-layer", "2", "-o", &format!("oci:{}:squashed", input.display()), "-q"],
    );
    assert_eq!(code, 0, "{stderr}");
    for (p, mode) in modes(&input) {
        let expected = if p.is_dir() { 0o755 } else { 0o644 };
        assert_eq!(mode, expected, "{}: mode {mode:o}", p.display());
    }
}

#[test]
fn closed_stdout_ends_quietly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = layout(dir.path());
    let image = format!("oci:{}:t", input.display());
    for args in [
        vec!["inspect", &image],
        vec!["inspect", "--json", &image],
        vec!["report", &image],
        vec!["report", "--json", &image],
    ] {
        let mut child = Command::new(BIN)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        drop(child.stdout.take());
        let mut stderr = String::new();
        child.stderr.take().expect("stderr").read_to_string(&mut stderr).expect("read stderr");
        let status = child.wait().expect("wait");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
        assert_eq!(
            status.signal(),
            Some(13),
            "{args:?}: ends by SIGPIPE as coreutils do: {status:?}"
        );
    }
}

#[test]
fn concurrent_writers_keep_every_tag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = layout(dir.path());
    let image = format!("oci:{}:t", input.display());
    let shared = dir.path().join("shared");
    let (code, _, stderr) =
        squash(&[&image, "--convert", "-o", &format!("oci:{}:seed", shared.display()), "-q"]);
    assert_eq!(code, 0, "{stderr}");
    let writers = 2;
    let rounds = 20;
    std::thread::scope(|scope| {
        for w in 0..writers {
            let (image, shared) = (&image, &shared);
            scope.spawn(move || {
                for r in 0..rounds {
                    // Different selections, so writers also add different blobs.
                    let from = if (w + r) % 2 == 0 { "1" } else { "2" };
                    let (code, _, stderr) = squash(&[
                        image,
                        "--from-layer",
                        from,
                        "-o",
                        &format!("oci:{}:w{w}-r{r}", shared.display()),
                        "-q",
                    ]);
                    assert_eq!(code, 0, "writer {w} round {r}: {stderr}");
                }
            });
        }
    });
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(shared.join("index.json")).expect("index"))
            .expect("json");
    let tags: Vec<&str> = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .filter_map(|m| {
            m.pointer("/annotations/org.opencontainers.image.ref.name").and_then(|t| t.as_str())
        })
        .collect();
    assert_eq!(tags.len(), writers * rounds + 1, "every tag survives: {tags:?}");
    for tag in tags {
        // inspect decodes every layer and checks every digest.
        let (code, _, stderr) = squash(&["inspect", &format!("oci:{}:{tag}", shared.display())]);
        assert_eq!(code, 0, "{tag}: {stderr}");
    }
    let leftovers: Vec<String> =
        entries(&shared.join("blobs/sha256")).into_iter().filter(|n| n.starts_with('.')).collect();
    assert!(leftovers.is_empty(), "temporaries left: {leftovers:?}");
}

#[test]
fn concurrent_writers_creating_one_new_layout_keep_every_tag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = layout(dir.path());
    let image = format!("oci:{}:t", input.display());
    for round in 0..5 {
        let fresh = dir.path().join(format!("fresh-{round}"));
        std::thread::scope(|scope| {
            for w in 0..4 {
                let (image, fresh) = (&image, &fresh);
                scope.spawn(move || {
                    let from = if w % 2 == 0 { "1" } else { "2" };
                    let (code, _, stderr) = squash(&[
                        image,
                        "--from-layer",
                        from,
                        "-o",
                        &format!("oci:{}:w{w}", fresh.display()),
                        "-q",
                    ]);
                    assert_eq!(code, 0, "round {round} writer {w}: {stderr}");
                });
            }
        });
        for w in 0..4 {
            let (code, _, stderr) = squash(&["inspect", &format!("oci:{}:w{w}", fresh.display())]);
            assert_eq!(code, 0, "round {round}: tag w{w}: {stderr}");
        }
        let left: Vec<String> =
            entries(dir.path()).into_iter().filter(|n| n.contains(".squash-tmp")).collect();
        assert!(left.is_empty(), "round {round}: {left:?}");
    }
}

#[test]
fn output_inside_an_input_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = layout(dir.path());
    let base = dir.path().join("base.tar");
    {
        let mut b = ImageBuilder::new(LayerCompression::Gzip);
        b.layer(LayerBuilder::new().dir("etc").file("etc/base", b"base").finish(), "ADD base");
        b.write_docker_archive(&base, "base:1");
    }
    std::os::unix::fs::symlink(&input, dir.path().join("link")).expect("symlink");
    let before = snapshot(dir.path());
    let image = format!("oci:{}:t", input.display());
    let blob = entries(&input.join("blobs/sha256")).into_iter().next().expect("a blob");
    let cases = [
        format!("docker-archive:{}/blobs/sha256/{blob}", input.display()),
        format!("docker-archive:{}/index.json", input.display()),
        format!("oci-archive:{}/new.tar", input.display()),
        format!("docker-archive:{}/link/index.json", dir.path().display()),
        format!("docker-archive:{}/in/blobs/../index.json", dir.path().display()),
        format!("oci:{}/blobs/new", input.display()),
        format!("oci:{}:t", input.display()),
        format!("docker-archive:{}", base.display()),
        format!("oci-archive:{}/../base.tar", input.display()),
    ];
    for out in &cases {
        let (code, _, stderr) =
            squash(&[&image, "--from-layer", "base", "--base", s(&base), "-o", out]);
        assert_eq!(code, 2, "{out}: {stderr}");
        assert!(stderr.contains("input"), "{out}: names the input: {stderr}");
        assert_eq!(snapshot(dir.path()), before, "{out}: an input changed");
    }
    // A new tag in the input layout is an addition, not a change of the input's image.
    let (code, _, stderr) = squash(&[
        &image,
        "--from-layer",
        "2",
        "-o",
        &format!("oci:{}:squashed", input.display()),
        "-q",
    ]);
    assert_eq!(code, 0, "{stderr}");
}

/// Starts a squash slow enough to be interrupted: 64 MB of noise recompressed at gzip level 9 on
/// one thread.
fn slow_image(dir: &Path) -> String {
    let mut b = ImageBuilder::new(LayerCompression::None);
    b.layer(LayerBuilder::new().dir("data").finish(), "ADD base");
    b.layer(LayerBuilder::new().file("data/big", &noise(64 << 20, 3)).finish(), "RUN big");
    b.layer(LayerBuilder::new().file("data/small", b"x").finish(), "RUN small");
    let path = dir.join("slow");
    b.write_oci_layout(&path, "t");
    format!("oci:{}:t", path.display())
}

fn slow_squash(image: &str, out: &str) -> std::process::Child {
    slow_squash_with(image, out, &[])
}

/// [`slow_squash`] with more arguments.
fn slow_squash_with(image: &str, out: &str, more: &[&str]) -> std::process::Child {
    Command::new(BIN)
        .args(more)
        .args([
            image,
            "--from-layer",
            "2",
            "--compression",
            "gzip",
            "--level",
            "9",
            "--threads",
            "1",
            "-q",
            "-o",
            out,
        ])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

/// Waits until `dir` holds an entry whose name contains `.squash-tmp`.
fn wait_for_temporary(dir: &Path) {
    let start = Instant::now();
    while !entries(dir).iter().any(|n| n.contains(".squash-tmp")) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no temporary appeared in {}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(200));
}

fn kill(child: &std::process::Child, signal: &str) {
    let status =
        Command::new("kill").args([signal, &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
}

#[test]
fn interrupted_runs_leave_nothing_and_stale_temporaries_are_swept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = slow_image(dir.path());
    let outs = dir.path().join("outs");
    std::fs::create_dir(&outs).expect("mkdir");
    for (signal, code) in [("-INT", 130), ("-TERM", 143)] {
        for out in ["oci:new", "oci-archive:new.tar", "docker-archive:new.tar"] {
            let out = out.replacen(':', &format!(":{}/", outs.display()), 1);
            let mut child = slow_squash(&image, &out);
            wait_for_temporary(&outs);
            kill(&child, signal);
            let status = child.wait().expect("wait");
            assert_eq!(status.code(), Some(code), "{out} {signal}");
            assert_eq!(entries(&outs), Vec::<String>::new(), "{out} {signal}: left behind");
        }
    }
    // Into an existing layout: its staged blobs go as well.
    let existing = outs.join("existing");
    let (code, _, stderr) =
        squash(&[&image, "--convert", "-o", &format!("oci:{}:seed", existing.display()), "-q"]);
    assert_eq!(code, 0, "{stderr}");
    let seeded = snapshot(&existing);
    let mut child = slow_squash(&image, &format!("oci:{}:new", existing.display()));
    wait_for_temporary(&existing.join("blobs/sha256"));
    kill(&child, "-INT");
    assert_eq!(child.wait().expect("wait").code(), Some(130));
    assert_eq!(snapshot(&existing), seeded, "an interrupted addition leaves the layout as it was");
    // With --verify the image is staged beside the layout: interrupted, the stage goes too.
    let mut child =
        slow_squash_with(&image, &format!("oci:{}:new", existing.display()), &["--verify"]);
    wait_for_temporary(&outs);
    kill(&child, "-INT");
    assert_eq!(child.wait().expect("wait").code(), Some(130));
    assert_eq!(
        snapshot(&existing),
        seeded,
        "an interrupted verified run leaves the layout as it was"
    );
    assert_eq!(entries(&outs), vec!["existing".to_string()], "the stage is removed");
    // A run killed outright leaves temporaries; the next run writing there removes them.
    for (out, verify) in [
        (format!("oci:{}:new", existing.display()), false),
        (format!("docker-archive:{}/killed.tar", outs.display()), false),
        (format!("oci:{}:again", existing.display()), true),
    ] {
        let watched = if out.starts_with("oci:") && !verify {
            existing.join("blobs/sha256")
        } else {
            outs.clone()
        };
        let more: &[&str] = if verify { &["--verify"] } else { &[] };
        let mut child = slow_squash_with(&image, &out, more);
        wait_for_temporary(&watched);
        kill(&child, "-KILL");
        let _ = child.wait();
        assert!(
            entries(&watched).iter().any(|n| n.contains(".squash-tmp")),
            "SIGKILL leaves its temporaries"
        );
        let (code, _, stderr) = squash(&[&image, "--from-layer", "1", "-q", "-o", &out]);
        assert_eq!(code, 0, "{stderr}");
        let left: Vec<String> =
            entries(&watched).into_iter().filter(|n| n.contains(".squash-tmp")).collect();
        assert!(left.is_empty(), "{out}: stale temporaries not swept: {left:?}");
    }
}

#[test]
fn conflicting_options_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = layout(dir.path());
    let image = format!("oci:{}:t", input.display());
    let out = |name: &str| format!("{}/{name}", dir.path().display());
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--platform".into(), "linux/arm64".into(), "-o".into(), out("a.tar")], "linux/arm64"),
        (
            vec![
                "--compression".into(),
                "zstd".into(),
                "--level".into(),
                "40".into(),
                "-o".into(),
                out("a.tar"),
            ],
            "--level 40",
        ),
        (
            vec![
                "--compression".into(),
                "gzip".into(),
                "--level".into(),
                "12".into(),
                "-o".into(),
                out("a.tar"),
            ],
            "--level 12",
        ),
        (
            vec![
                "--compression".into(),
                "none".into(),
                "--level".into(),
                "3".into(),
                "-o".into(),
                out("a.tar"),
            ],
            "--compression none",
        ),
        (vec!["--level".into(), "0".into(), "-o".into(), out("a.tar")], "--level 0"),
        (
            vec![
                "-o".into(),
                format!("oci:{}", out("x")),
                "--format".into(),
                "docker-archive".into(),
            ],
            "--format",
        ),
        (vec!["-o".into(), format!("oci:{}:a", out("x")), "--tag".into(), "b".into()], "--tag"),
        (vec!["-o".into(), format!("oci:{}:", out("x"))], "empty tag"),
        (vec!["-o".into(), "oci:-".into()], "standard output"),
    ];
    for (extra, expected) in cases {
        let mut args = vec![image.clone(), "--from-layer".into(), "2".into()];
        args.extend(extra.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _, stderr) = squash(&args);
        assert_eq!(code, 2, "{extra:?}: {stderr}");
        assert!(stderr.contains(expected), "{extra:?}: `{stderr}` should name `{expected}`");
        assert_eq!(entries(dir.path()), vec!["in".to_string()], "{extra:?}: wrote something");
    }
    assert!(!Path::new("-").exists(), "no directory named `-`");
    // Agreeing options are fine.
    let (code, _, stderr) = squash(&[
        &image,
        "--from-layer",
        "2",
        "-o",
        &format!("oci:{}:a", out("x")),
        "--tag",
        "a",
        "--format",
        "oci",
        "-q",
    ]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn remote_transports_get_a_hint() {
    for reference in
        ["docker-daemon:app:latest", "containers-storage:localhost/app", "registry:5000/app"]
    {
        let (code, _, stderr) = squash(&[reference, "--from-layer", "1", "-o", "out.tar"]);
        assert_eq!(code, 2, "{reference}: {stderr}");
        assert!(
            stderr.contains("reads files, layouts and registries (`docker://HOST/REPO:TAG`)")
                && stderr.contains("docker save")
                && stderr.contains("skopeo copy"),
            "{reference}: {stderr}"
        );
        let (code, _, stderr) = squash(&["inspect", reference]);
        assert_eq!(code, 2);
        assert!(!stderr.contains("No such file"), "{reference}: {stderr}");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let input = layout(dir.path());
    let (code, _, stderr) = squash(&[
        &format!("oci:{}:t", input.display()),
        "--from-layer",
        "1",
        "-o",
        "docker-daemon:app:squashed",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("docker load"), "{stderr}");
}

#[test]
fn no_range_is_an_error_unless_convert() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = layout(dir.path());
    let image = format!("oci:{}:t", input.display());
    let out = dir.path().join("out.tar");
    for extra in [vec![], vec!["--dry-run"]] {
        let mut args = vec![image.as_str(), "-o", s(&out)];
        args.extend(extra);
        let (code, _, stderr) = squash(&args);
        assert_eq!(code, 2, "{stderr}");
        for hint in
            ["--from-layer base", "--from-layer N", "--from-layer DIGEST", "--layers", "--convert"]
        {
            assert!(stderr.contains(hint), "the hint lists `{hint}`: {stderr}");
        }
        assert!(!out.exists());
    }
    let (code, _, stderr) =
        squash(&[&image, "--convert", "-o", &format!("docker-archive:{}", out.display()), "-q"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, _) = squash(&["inspect", "--json", s(&out)]);
    assert_eq!(code, 0);
    let value: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(value["layers"].as_array().map(Vec::len), Some(3), "a conversion keeps every layer");
    let (code, _, stderr) = squash(&[&image, "--convert", "--from-layer", "1", "-o", s(&out)]);
    assert_eq!(code, 2, "--convert with a range is a conflict: {stderr}");
}

#[test]
fn errors_are_printed_once_and_blame_the_output_when_writing_fails() {
    let (code, _, stderr) = squash(&["inspect", "/nonexistent/image.tar"]);
    assert_eq!(code, 2);
    assert_eq!(stderr.matches("No such file or directory").count(), 1, "{stderr}");
    let dir = tempfile::tempdir().expect("tempdir");
    let big = dir.path().join("big.tar");
    std::fs::write(&big, vec![0u8; 17 << 20]).expect("write");
    let (_, _, stderr) = squash(&["inspect", &format!("docker-archive:{}", big.display())]);
    assert!(stderr.lines().all(|l| l.matches("larger than").count() <= 1), "{stderr}");
    // Writing fails (a file size limit stands in for a full disk): the output is named, not the
    // input layer being copied.
    let input = layout(dir.path());
    let out = dir.path().join("out.tar");
    let script = "trap '' XFSZ; ulimit -f 8; exec \"$0\" \"$@\"";
    let result = Command::new("sh")
        .args([
            "-c",
            script,
            BIN,
            &format!("oci:{}:t", input.display()),
            "--from-layer",
            "1",
            "-o",
            s(&out),
            "--compression",
            "none",
        ])
        .output()
        .expect("sh");
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("out.tar"), "names the output: {stderr}");
    assert!(stderr.contains(": writing the "), "says what was being written: {stderr}");
    assert!(
        !stderr.contains("layer 0 (") && !stderr.contains("layer 1 ("),
        "does not blame an input layer: {stderr}"
    );
    assert_eq!(entries(dir.path()), vec!["big.tar".to_string(), "in".to_string()], "nothing left");
}

#[test]
fn kept_layers_are_verified_on_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut b = ImageBuilder::new(LayerCompression::Gzip);
    b.layer(LayerBuilder::new().file("a", &noise(5000, 1)).finish(), "one");
    b.layer(LayerBuilder::new().file("b", b"b").finish(), "two");
    b.state_diff_id(0, &format!("sha256:{}", "ab".repeat(32)));
    let input = dir.path().join("in");
    b.write_oci_layout(&input, "t");
    let image = format!("oci:{}:t", input.display());
    // By default a kept layer is copied with its size and sha256 checked, not decoded.
    let (code, _, stderr) =
        squash(&[&image, "--from-layer", "1", "-o", s(&dir.path().join("plain.tar")), "-q"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = squash(&[
        &image,
        "--from-layer",
        "1",
        "--verify-all",
        "-o",
        s(&dir.path().join("all.tar")),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("layer 0") && stderr.contains("diff_id"), "{stderr}");
    assert!(!dir.path().join("all.tar").exists());
    let (code, _, stderr) = squash(&["inspect", "--verify", &image]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("diff_id"), "{stderr}");
}

#[test]
fn every_json_document_parses_into_its_type() {
    use squash::document::{
        ErrorDocument, InspectDocument, OutcomeDocument, PlanDocument, ReportDocument,
        SCHEMA_VERSION,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let input = layout(dir.path());
    let image = format!("oci:{}:t", input.display());
    let (_, stdout, _) = squash(&["inspect", "--json", "--verify", &image]);
    let inspect: InspectDocument = serde_json::from_str(&stdout).expect("inspect");
    assert_eq!((inspect.schema_version, inspect.layers.len()), (SCHEMA_VERSION, 3));
    assert_eq!(inspect.verified.map(|v| v.diff_ids), Some(3));
    let (_, stdout, _) = squash(&[&image, "--from-layer", "2", "--dry-run", "--json"]);
    let plan: PlanDocument = serde_json::from_str(&stdout).expect("plan");
    assert_eq!(
        (plan.ranges[0].range.start, plan.ranges[0].range.end, plan.kept_layers.as_slice()),
        (1, 2, &[0][..])
    );
    let out = dir.path().join("out.tar");
    let (_, stdout, _) = squash(&[&image, "--from-layer", "2", "-o", s(&out), "--json"]);
    let outcome: OutcomeDocument = serde_json::from_str(&stdout).expect("outcome");
    assert_eq!(
        outcome.outcome.layers[1].squashed_from.as_ref().map(|r| (r.start, r.end)),
        Some((1, 2))
    );
    assert_eq!(
        outcome.outcome.layers[1].uncompressed_size,
        Some(plan.ranges[0].uncompressed_size_after)
    );
    assert_eq!(outcome.input.name.as_deref(), Some("t"));
    let (code, stdout, _) = squash(&[
        "report",
        "--json",
        &image,
        "--fail-if-wasted-over",
        "1B",
        "--min-efficiency",
        "0.0",
    ]);
    assert_eq!(code, 1);
    let report: ReportDocument = serde_json::from_str(&stdout).expect("report");
    let verdicts: Vec<(&str, bool)> =
        report.gates.iter().map(|g| (g.rule.flag(), g.passed)).collect();
    assert_eq!(verdicts, [("--fail-if-wasted-over", false), ("--min-efficiency", true)]);
    for args in [
        vec!["inspect", "--json", "/nonexistent"],
        vec!["report", "--json", "/nonexistent"],
        vec![&image, "--json", "-o", s(&out)],
    ] {
        let (code, stdout, _) = squash(&args);
        assert_eq!(code, 2, "{args:?}");
        let error: ErrorDocument =
            serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"));
        assert_eq!(error.exit_code, 2);
    }
}

#[test]
fn a_held_layout_lock_is_waited_for_then_given_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = layout(dir.path());
    let image = format!("oci:{}:t", input.display());
    let shared = dir.path().join("shared");
    let (code, _, stderr) =
        squash(&[&image, "--convert", "-o", &format!("oci:{}:seed", shared.display()), "-q"]);
    assert_eq!(code, 0, "{stderr}");
    let before = snapshot(&shared);
    // Another writer holds the layout's lock.
    let holder = std::fs::File::open(&shared).expect("open layout");
    holder.lock().expect("lock");
    let start = Instant::now();
    let (code, _, stderr) = squash(&[
        &image,
        "--from-layer",
        "1",
        "--lock-timeout",
        "2",
        "-o",
        &format!("oci:{}:late", shared.display()),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(start.elapsed() >= Duration::from_secs(2), "gave up too early");
    assert!(stderr.contains("waiting for the lock"), "says it waits: {stderr}");
    assert!(stderr.contains("gave up") && stderr.contains("--lock-timeout"), "{stderr}");
    assert_eq!(snapshot(&shared), before, "nothing written while the lock was held");
    // Released: the same run goes through.
    drop(holder);
    let (code, _, stderr) = squash(&[
        &image,
        "--from-layer",
        "1",
        "-o",
        &format!("oci:{}:late", shared.display()),
        "-q",
    ]);
    assert_eq!(code, 0, "{stderr}");
}

/// A multi-platform index through the command line: every platform squashed into an OCI
/// layout or archive (standard output too); a docker-archive takes one platform and names the
/// ones it leaves out; a platform the index lacks is an error listing what it has; inspect
/// names the other platforms. Attestation manifests are not platforms.
#[test]
fn multi_platform_indexes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut amd64 = ImageBuilder::new(LayerCompression::Gzip);
    amd64.layer(LayerBuilder::new().file("base", b"amd64").finish(), "ADD base");
    amd64.layer(LayerBuilder::new().file("a", b"a").finish(), "RUN a");
    amd64.layer(LayerBuilder::new().whiteout("a").finish(), "RUN rm a");
    let mut arm64 = ImageBuilder::new(LayerCompression::Gzip);
    arm64.layer(LayerBuilder::new().file("base", b"arm64").finish(), "ADD base");
    arm64.layer(LayerBuilder::new().file("b", b"b").finish(), "RUN b");
    let input = dir.path().join("in");
    ImageBuilder::write_multi_platform_layout(
        &input,
        "t",
        &[("linux/amd64", &amd64), ("linux/arm64/v8", &arm64)],
    );
    let image = format!("oci:{}:t", s(&input));
    let out = |name: &str| dir.path().join(name);

    let (code, stdout, stderr) =
        squash(&[&image, "--from-layer", "2", "-o", &format!("oci:{}:t", s(&out("all")))]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("linux/amd64")
            && stdout.contains("linux/arm64/v8")
            && stdout.contains("squashed"),
        "{stdout}"
    );
    assert!(stdout.contains("dropped 1 attestation"), "{stdout}");
    assert!(
        !stderr.contains("unknown/unknown") && !stdout.contains("unknown/unknown"),
        "an attestation is not a platform"
    );

    // One platform squashed, the other copied.
    let (code, stdout, stderr) = squash(&[
        &image,
        "--platform",
        "linux/arm64",
        "--from-layer",
        "2",
        "-o",
        &format!("oci-archive:{}", s(&out("arm.tar"))),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("copied") && stdout.contains("squashed"), "{stdout}");

    // --verify reads every image of the written index back: squashed (less what --exclude
    // removed) or copied.
    let verified = format!("oci:{}:t", s(&out("verified")));
    let (code, _, stderr) = squash(&[&image, "--from-layer", "2", "--verify", "-o", &verified]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(
            "verified: the root filesystem of each of the 2 written images equals the input's"
        ),
        "{stderr}"
    );
    // Again into the layout now there, under the same tag: verified beside it, then the tag
    // moves to the image written again (the same bytes).
    let (code, _, stderr) = squash(&[&image, "--from-layer", "2", "--verify", "-o", &verified]);
    assert_eq!(code, 0, "an existing output is verified before the tag moves: {stderr}");
    let listed: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out("verified").join("index.json")).expect("index.json"),
    )
    .expect("json");
    assert_eq!(
        listed["manifests"].as_array().map(Vec::len),
        Some(1),
        "one entry for `t`: {listed}"
    );
    let (code, _, stderr) = squash(&[
        &image,
        "--platform",
        "linux/arm64",
        "--from-layer",
        "1",
        "--exclude",
        "b",
        "--verify",
        "-o",
        &format!("oci-archive:{}", s(&out("verified.tar"))),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("each of the 2 written images"), "{stderr}");
    let (code, stdout, _) = squash(&[
        "diff",
        &format!("oci:{}:t", s(&input)),
        &format!("oci-archive:{}", s(&out("verified.tar"))),
        "--platform",
        "linux/arm64",
    ]);
    assert_eq!(code, 1, "the excluded file is gone: {stdout}");
    assert!(stdout.contains("- b"), "{stdout}");

    // A docker-archive holds one platform.
    let (code, _, stderr) = squash(&[
        &image,
        "--from-layer",
        "2",
        "-o",
        &format!("docker-archive:{}", s(&out("d.tar"))),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--platform"), "{stderr}");
    assert!(!out("d.tar").exists());
    let (code, _, stderr) = squash(&[
        &image,
        "--platform",
        "linux/amd64",
        "--from-layer",
        "2",
        "-o",
        &format!("docker-archive:{}:app:1", s(&out("d.tar"))),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr
            .contains("warning: the index also holds linux/arm64/v8; only linux/amd64 is written"),
        "{stderr}"
    );
    assert!(out("d.tar").exists());

    // A platform the index lacks.
    let (code, _, stderr) = squash(&[
        &image,
        "--platform",
        "linux/s390x",
        "--from-layer",
        "2",
        "-o",
        &format!("oci:{}", s(&out("x"))),
    ]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("linux/s390x") && stderr.contains("linux/amd64, linux/arm64/v8"),
        "{stderr}"
    );
    assert!(!out("x").exists());

    // To standard output, as an OCI archive that holds both.
    let archive = std::fs::File::create(out("stream.tar")).expect("create");
    let status = Command::new(BIN)
        .args([&image, "--from-layer", "2", "-q", "-o", "oci-archive:-"])
        .stdout(archive)
        .status()
        .expect("run squash");
    assert!(status.success());
    let (code, stdout, stderr) = squash(&[
        "inspect",
        &format!("oci-archive:{}", s(&out("stream.tar"))),
        "--platform",
        "linux/arm64",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("platform: linux/arm64/v8 (the index also holds linux/amd64)"),
        "{stdout}"
    );

    // inspect and report without --platform: image by image, gates for each.
    let (code, stdout, stderr) = squash(&["inspect", &image]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("2 images")
            && stdout.contains("platform: linux/amd64")
            && stdout.contains("platform: linux/arm64/v8"),
        "{stdout}"
    );
    let (code, stdout, stderr) =
        squash(&["report", &image, "--from-layer", "2", "--json", "--fail-if-wasted-over", "0"]);
    assert_eq!(code, 1, "amd64 wastes its `a`: {stderr}");
    let doc: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
    assert_eq!(doc["images"].as_array().map(Vec::len), Some(2), "{stdout}");
    assert!(
        stderr.contains("gate failed: linux/amd64:") && !stderr.contains("linux/arm64/v8:"),
        "{stderr}"
    );

    // JSON: the other platforms of an image read from an index.
    let (code, stdout, stderr) =
        squash(&["inspect", &image, "--platform", "linux/amd64", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let doc: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
    assert_eq!(doc["input"]["other_platforms"], serde_json::json!(["linux/arm64/v8"]), "{stdout}");
}
