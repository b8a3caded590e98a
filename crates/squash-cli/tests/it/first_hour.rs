//! What a new user meets in the first hour: names kept through `docker load` and `podman load`,
//! the tag the output takes said aloud, mistakes refused early and plainly, archives written as
//! their names say, and the small wording of plans, reports and gates.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use squash_testkit::engines::{output, Podman};
use squash_testkit::{noise, ImageBuilder, LayerBuilder, LayerCompression};

const BIN: &str = env!("CARGO_BIN_EXE_squash");

fn squash_in(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).current_dir(dir).args(args).output().expect("squash runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A three-layer image: an OCI layout tagged `t` and a `docker save` tarball of `app:latest`.
fn images(dir: &Path) -> (PathBuf, PathBuf) {
    let mut b = ImageBuilder::new(LayerCompression::Gzip);
    b.layer(LayerBuilder::new().dir("etc").file("etc/base", b"base").finish(), "ADD base");
    b.layer(LayerBuilder::new().dir("etc").file("etc/a", &noise(20_000, 1)).finish(), "RUN a");
    b.layer(
        LayerBuilder::new()
            .dir("etc")
            .file("etc/a", &noise(20_000, 2))
            .file("etc/b", b"b")
            .finish(),
        "RUN b",
    );
    let layout = dir.join("in");
    b.write_oci_layout(&layout, "t");
    let archive = dir.join("app.tar");
    b.write_docker_archive(&archive, "app:latest");
    (layout, archive)
}

#[test]
fn the_output_keeps_the_input_name_and_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, archive) = images(dir.path());
    let (code, stdout, stderr) =
        squash_in(dir.path(), &["app.tar", "--from-layer", "2", "-o", "out.tar"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("tagged:   app:latest, as the input (-t to choose another)"),
        "{stdout}"
    );
    // A name given: said as it is.
    let (code, stdout, _) =
        squash_in(dir.path(), &["app.tar", "-f", "2", "-t", "app:small", "-o", "small.tar"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("tagged:   app:small\n"), "{stdout}");
    // An OCI archive keeps the whole name, as podman wrote it.
    let podman_like = dir.path().join("podman.tar");
    let mut b = ImageBuilder::new(LayerCompression::Gzip);
    b.layer(LayerBuilder::new().file("a", b"a").finish(), "ADD a");
    b.layer(LayerBuilder::new().file("b", b"b").finish(), "ADD b");
    b.write_oci_archive(&podman_like, "localhost/app:latest");
    let (code, stdout, stderr) =
        squash_in(dir.path(), &["podman.tar", "-f", "2", "-o", "oci-archive:again.tar"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("tagged:   localhost/app:latest, as the input"), "{stdout}");
    let _ = archive;
}

/// `podman save | squash - | podman load` in both formats, and `docker save | squash - |
/// docker load` (plain and with `--verify`): the name each engine reports is the input's, or
/// the one given.
#[test]
fn engines_load_the_squashed_image_under_the_input_name() {
    let podman_ready = squash_testkit::tool_available("podman");
    let docker_ready =
        squash_testkit::tool_available("dockerd") && squash_testkit::tool_available("docker");
    if !podman_ready || !docker_ready {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, archive) = images(dir.path());
    let pipe = |save: &mut Command, args: &[&str], load: &mut Command| -> String {
        let mut first = save.stdout(Stdio::piped()).spawn().expect("save");
        let mut middle = Command::new(BIN)
            .args(args)
            .stdin(first.stdout.take().expect("stdout"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("squash");
        let loaded = load.stdin(middle.stdout.take().expect("stdout")).output().expect("load");
        let squashed = middle.wait_with_output().expect("squash");
        assert!(first.wait().expect("save").success());
        assert!(squashed.status.success(), "{}", String::from_utf8_lossy(&squashed.stderr));
        assert!(loaded.status.success(), "{}", String::from_utf8_lossy(&loaded.stderr));
        String::from_utf8_lossy(&loaded.stdout).into_owned()
    };
    let podman = Podman::new(
        &Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("podman-names-{}", std::process::id())),
    );
    for (format, out) in [
        ("oci-archive", "oci-archive:-"),
        ("oci-archive", "docker-archive:-"),
        ("docker-archive", "docker-archive:-"),
        ("docker-archive", "oci-archive:-"),
    ] {
        // The original again: each round's load takes the name over.
        output(podman.cmd().args(["load", "-i"]).arg(&archive));
        let mut save = podman.cmd();
        save.args(["save", "--format", format, "localhost/app:latest"]);
        let mut load = podman.cmd();
        load.arg("load");
        let loaded = pipe(&mut save, &["-", "-f", "2", "-q", "-o", out], &mut load);
        assert!(
            loaded.contains("localhost/app:latest")
                || loaded.contains("docker.io/library/app:latest"),
            "podman save --format {format} | squash -o {out} | podman load: {loaded}"
        );
        assert!(!loaded.contains("localhost/latest"), "{loaded}");
    }
    let docker = crate::engines::start_docker("names");
    docker.load(&archive).expect("load");
    let mut save = docker.cmd();
    save.args(["save", "app:latest"]);
    let mut load = docker.cmd();
    load.arg("load");
    let loaded = pipe(&mut save, &["-", "-f", "2", "-q", "-o", "-"], &mut load);
    assert!(loaded.contains("Loaded image: app:latest"), "{loaded}");
    // The same pipe verified: the image reaches `docker load` once read back and compared.
    let mut save = docker.cmd();
    save.args(["save", "app:latest"]);
    let mut load = docker.cmd();
    load.arg("load");
    let args = ["-", "-f", "2", "--verify", "-t", "app:verified", "-o", "-"];
    let loaded = pipe(&mut save, &args, &mut load);
    assert!(loaded.contains("Loaded image: app:verified"), "{loaded}");
    // A compressed archive, as its name says, which `docker load` reads.
    for name in ["out.tar.gz", "out.tar.zst"] {
        let (code, stdout, stderr) =
            squash_in(dir.path(), &["app.tar", "-f", "2", "-t", "app:packed", "-o", name]);
        assert_eq!(code, 0, "{stderr}");
        assert!(stdout.contains("compressed with"), "{stdout}");
        if name.ends_with(".zst") && docker.version().starts_with("20.") {
            // Docker 20.10 reads gzip, bzip2 and xz archives, not zstd ones.
            continue;
        }
        docker.load(&dir.path().join(name)).expect("docker load of a compressed archive");
    }
}

#[test]
fn mistakes_are_refused_before_anything_is_planned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (layout, _) = images(dir.path());
    let input = format!("oci:{}:t", layout.display());
    // The output is the input (a docker archive over itself).
    let (code, stdout, stderr) = squash_in(dir.path(), &["app.tar", "-f", "2", "-o", "app.tar"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("would overwrite the input"), "{stderr}");
    assert!(!stderr.contains("squashing") && stdout.is_empty(), "no plan was printed: {stderr}");
    // A directory that does not exist.
    let (code, _, stderr) = squash_in(dir.path(), &[&input, "-f", "2", "-o", "nodir/x.tar"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("the output directory `nodir` does not exist"), "{stderr}");
    assert!(!stderr.contains("squash-tmp") && !stderr.contains("squashing"), "{stderr}");
    // An image name where a file was meant.
    let (code, _, stderr) = squash_in(dir.path(), &["app:latest", "-f", "2", "-o", "x.tar"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("docker save app:latest | squash -") && stderr.contains("docker://"),
        "{stderr}"
    );
    // A Dockerfile given as the image.
    std::fs::write(dir.path().join("Dockerfile"), "FROM debian:12\nRUN echo hi\n").expect("write");
    let (code, _, stderr) = squash_in(dir.path(), &["Dockerfile", "-f", "1", "-o", "x.tar"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("not an image archive") && !stderr.contains("checksum"), "{stderr}");
    // An empty file (or nothing on standard input) is said to be empty.
    std::fs::write(dir.path().join("empty.tar"), b"").expect("write");
    let (code, _, stderr) = squash_in(dir.path(), &["empty.tar", "-f", "1", "-o", "x.tar"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("`empty.tar`") && stderr.contains("an empty archive: no tar member"),
        "{stderr}"
    );
    // A compressed input's error names the input, not its temporary copy.
    let gz = dir.path().join("broken.tar.gz");
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut encoder, b"not a tar at all, but long enough to be read")
        .expect("gzip");
    std::fs::write(&gz, encoder.finish().expect("gzip")).expect("write");
    let (code, _, stderr) = squash_in(dir.path(), &["broken.tar.gz", "-f", "1", "-o", "x.tar"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("broken.tar.gz") && !stderr.contains("squash-spool"), "{stderr}");
}

#[test]
fn the_wording_of_plans_reports_and_gates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (layout, _) = images(dir.path());
    let input = format!("oci:{}:t", layout.display());
    let (code, stdout, _) = squash_in(dir.path(), &[&input, "-f", "2", "--dry-run"]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("dry run: nothing is written\n"), "{stdout}");
    assert!(stdout.contains("in the new layer") && !stdout.contains("entries written"), "{stdout}");
    assert!(stdout.contains("(-f 2)"), "the command line names its flag: {stdout}");
    let (_, json, _) = squash_in(dir.path(), &[&input, "-f", "2", "--dry-run", "--json"]);
    assert!(!json.contains("(--"), "the library's reasons name no flag: {json}");
    // An --exclude that matches nothing is said.
    let (code, stdout, _) =
        squash_in(dir.path(), &[&input, "-f", "2", "--exclude", "nothere/**", "--dry-run"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("--exclude nothere/**: matches nothing"), "{stdout}");
    // Gate failures in units.
    let (code, _, stderr) =
        squash_in(dir.path(), &["report", &input, "--fail-if-wasted-over", "1kB"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("kB wasted > 1.0 kB") && !stderr.contains("bytes"), "{stderr}");
    // -q with --html: the page is the output.
    let page = dir.path().join("report.html");
    let (code, stdout, _) =
        squash_in(dir.path(), &["report", &input, "-q", "--html", page.to_str().expect("utf8")]);
    if cfg!(feature = "svg") {
        assert_eq!(code, 0);
        assert!(stdout.is_empty() && page.exists(), "{stdout}");
    }
    // The demo says where its images went.
    let (code, stdout, _) = squash_in(dir.path(), &["demo"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("squash demo --keep"), "{stdout}");
}

/// `dir/name`, a tmpfs of `size`; `None` (said loudly, or failing where mounts are required)
/// where it cannot be mounted.
fn small_tmpfs(dir: &Path, name: &str, size: &str) -> Option<PathBuf> {
    let small = dir.join(name);
    std::fs::create_dir_all(&small).expect("mkdir");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(&small)
        .output()
        .is_ok_and(|o| o.status.success());
    squash_testkit::required("mounting a tmpfs (root)", mounted).then_some(small)
}

/// A destination too small for the output (a 256 kB tmpfs): refused before anything is written,
/// with both figures, and nothing left there.
#[test]
fn a_run_that_cannot_fit_is_refused_before_it_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(small) = small_tmpfs(dir.path(), "small", "256k") else { return };
    let mut b = ImageBuilder::new(LayerCompression::Gzip);
    b.layer(LayerBuilder::new().file("base", &noise(200_000, 1)).finish(), "ADD base");
    b.layer(LayerBuilder::new().file("a", &noise(300_000, 2)).finish(), "RUN a");
    b.layer(LayerBuilder::new().file("b", &noise(300_000, 3)).finish(), "RUN b");
    b.write_docker_archive(&dir.path().join("big.tar"), "big:1");
    let (code, _, stderr) =
        squash_in(dir.path(), &["big.tar", "--from-layer", "2", "-o", "small/out.tar"]);
    let left: Vec<_> = std::fs::read_dir(&small).expect("read").flatten().collect();
    let _ = Command::new("umount").arg(&small).output();
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("not enough room") && stderr.contains("is free") && stderr.contains("kB"),
        "{stderr}"
    );
    assert!(left.is_empty(), "nothing written: {left:?}");
}

/// An index whose images would not fit together (each alone would): refused before anything
/// is written, naming the free space, and not by the disk filling up half way.
#[test]
fn an_index_that_cannot_fit_is_refused_before_it_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(small) = small_tmpfs(dir.path(), "small", "512k") else { return };
    let image = |seed: u64| {
        let mut b = ImageBuilder::new(LayerCompression::Gzip);
        b.layer(LayerBuilder::new().file("base", &noise(100_000, seed)).finish(), "ADD base");
        b.layer(LayerBuilder::new().file("a", &noise(100_000, seed + 1)).finish(), "RUN a");
        b.layer(LayerBuilder::new().file("b", &noise(100_000, seed + 2)).finish(), "RUN b");
        b
    };
    let (amd, arm) = (image(1), image(11));
    ImageBuilder::write_multi_platform_layout(
        &dir.path().join("multi"),
        "multi",
        &[("linux/amd64", &amd), ("linux/arm64", &arm)],
    );
    let args = ["oci:multi:multi", "--from-layer", "2", "--compression", "gzip"];
    let one = ["--platform", "linux/amd64", "-o", "docker-archive:small/one.tar"];
    let (code, _, stderr) = squash_in(dir.path(), &[&args[..], &one].concat());
    let _ = std::fs::remove_file(small.join("one.tar"));
    assert_eq!(code, 0, "one platform alone fits: {stderr}");
    let (code, _, stderr) = squash_in(dir.path(), &[&args[..], &["-o", "oci:small/out"]].concat());
    let left: Vec<_> = std::fs::read_dir(&small).expect("read").flatten().collect();
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("not enough room") && stderr.contains("is free"),
        "refused by the check, not by a full disk: {stderr}"
    );
    assert!(left.is_empty(), "nothing written: {left:?}");
    // With two threads the two ranges are merged ahead into --tmp-dir, which must hold both
    // beside the copies planning keeps there (about 400 kB).
    let Some(tiny) = small_tmpfs(dir.path(), "tiny", "640k") else { return };
    let ahead = ["--threads", "2", "--tmp-dir", "tiny", "-o", "oci:out"];
    let (code, _, stderr) = squash_in(dir.path(), &[&args[..], &ahead].concat());
    let left: Vec<_> = std::fs::read_dir(&tiny).expect("read").flatten().collect();
    for mounted in [&small, &tiny] {
        let _ = Command::new("umount").arg(mounted).output();
    }
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("not enough room") && stderr.contains("merged ahead"),
        "refused by the check, not by a full --tmp-dir: {stderr}"
    );
    assert!(left.is_empty() && !dir.path().join("out").exists(), "nothing written: {left:?}");
}
