//! Real engines load, run and unpack what squash writes through pipes. Docker: a daemon of the
//! test's own (no network, no systemd) under target/, `docker save | squash - -o - | docker
//! load`, then the original and the squashed image are run with `--network none` and list every
//! file they see (type, mode, owner, size, link count, content hash, link target), and both are
//! exported (`docker create` + `docker export`) and compared by the reference model. podman:
//! `podman save` in both formats piped through squash into `podman load`, compared through
//! `podman create` + `podman export`. A missing engine is a loud skip, and fatal with
//! SQUASH_REQUIRE_INTEROP=1 (CI).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use squash_testkit::engines::{output, Docker, Podman};
use squash_testkit::{noise, ImageBuilder, LayerBuilder, LayerCompression, NodeKind, RootFs};

const BIN: &str = env!("CARGO_BIN_EXE_squash");

use squash_testkit::tool_available as available;

/// `producer | squash args | consumer`, each a real process, as a shell pipeline would run them.
fn pipeline(mut producer: Command, squash_args: &[&str], mut consumer: Command) {
    let mut first = producer.stdout(Stdio::piped()).spawn().expect("producer");
    let mut middle = Command::new(BIN)
        .args(squash_args)
        .stdin(first.stdout.take().expect("producer stdout"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("squash");
    let last =
        consumer.stdin(middle.stdout.take().expect("squash stdout")).output().expect("consumer");
    let squash_out = middle.wait_with_output().expect("squash");
    assert!(first.wait().expect("producer").success(), "{producer:?} failed");
    assert!(
        squash_out.status.success(),
        "squash {squash_args:?} failed:\n{}",
        String::from_utf8_lossy(&squash_out.stderr)
    );
    assert!(
        last.status.success(),
        "{consumer:?} failed:\n{}",
        String::from_utf8_lossy(&last.stderr)
    );
}

/// The base layer of the test images: a static busybox (so that an image can run a listing) and
/// its tools, `etc`, `tmp`, `var/lib`.
pub(crate) fn busybox_base() -> Vec<u8> {
    let busybox = std::fs::read("/bin/busybox").expect("/bin/busybox (Debian's busybox-static)");
    let mut base = LayerBuilder::new();
    base.dir("bin").file_with("bin/busybox", &busybox, 0o755, 0, 0, &[]);
    for tool in ["sh", "find", "stat", "sha256sum", "readlink", "xargs", "sort", "cat"] {
        base.symlink(format!("bin/{tool}"), "busybox");
    }
    base.dir("etc")
        .file("etc/os-release", b"NAME=base\n")
        .dir_with("tmp", 0o1777, 0, 0)
        .dir("var")
        .dir("var/lib");
    base.finish()
}

/// A base with a static busybox (so the image can run a listing), and layers like `RUN` steps:
/// additions, overwrites, a chmod, deletions, an opaque directory, hard links, a type change.
pub(crate) fn images(dir: &Path) -> (PathBuf, PathBuf) {
    let mut b = ImageBuilder::new(LayerCompression::Gzip);
    b.layer(busybox_base(), "ADD rootfs /");
    let base_path = dir.join("base.tar");
    b.write_docker_archive(&base_path, "squash-test/base:1");
    let mut lists = LayerBuilder::new();
    lists.dir("var/lib/apt").dir("var/lib/apt/lists");
    for i in 0..20 {
        lists.file(format!("var/lib/apt/lists/repo{i}"), "Package: x\n".repeat(500).as_bytes());
    }
    b.layer(lists.finish(), "RUN apt-get update");
    b.layer(
        LayerBuilder::new()
            .dir("app")
            .file_with("app/tool", &noise(400_000, 1), 0o755, 1000, 1000, &[])
            .hardlink("app/tool-alias", "app/tool")
            .symlink("app/current", "tool")
            .file("app/config", b"v1")
            .dir("etc/conf.d")
            .file("etc/conf.d/old", b"old")
            .finish(),
        "RUN install",
    );
    b.layer(
        LayerBuilder::new()
            .whiteout("var/lib/apt/lists")
            .file_with("app/tool", &noise(400_000, 1), 0o700, 1000, 1000, &[])
            .hardlink("app/tool-alias", "app/tool")
            .opaque("etc/conf.d")
            .dir("etc/conf.d")
            .file("etc/conf.d/new", b"new")
            .whiteout("app/config")
            .dir("app/config")
            .file("app/config/v2", b"v2")
            .finish(),
        "RUN rm -rf /var/lib/apt/lists && chmod 700 /app/tool && reconfigure",
    );
    let app_path = dir.join("app.tar");
    b.write_docker_archive(&app_path, "squash-test/app:1");
    (app_path, base_path)
}

/// Lists, inside a running container, every file (errors included: an entry listed that cannot
/// be opened shows): `path|type|mode|uid|gid|size`, each regular
/// file's link count and content hash, and link targets. (A directory's link count is left out:
/// overlayfs does not keep it.)
pub(crate) const LISTING: &str = "PATH=/bin; exec 2>&1; cd / && \
    find . -xdev \\( -path ./proc -o -path ./sys -o -path ./dev -o -path ./etc/hostname -o -path ./etc/hosts \
    -o -path ./etc/resolv.conf -o -path ./.dockerenv \\) -prune -o -print0 | xargs -0 stat -c '%n|%F|%a|%u|%g|%s' | sort; \
    find . -xdev -path ./proc -prune -o -path ./sys -prune -o -path ./etc -prune -o -type f -print0 | xargs -0 stat -c '%n links %h' | sort; \
    find . -xdev -path ./proc -prune -o -path ./sys -prune -o -path ./etc -prune -o -type f -print0 | xargs -0 sha256sum | sort; \
    find . -xdev -path ./proc -prune -o -path ./sys -prune -o -type l -print0 | xargs -0 -n1 sh -c 'echo \"$0 -> $(readlink \"$0\")\"' | sort";

/// A filesystem as an engine exported it: path → (kind, mode, uid, gid), and the hard-link
/// groups.
pub(crate) type Exported = (BTreeMap<Vec<u8>, (NodeKind, u32, u64, u64)>, Vec<Vec<Vec<u8>>>);

pub(crate) fn exported(tar: &[u8]) -> Exported {
    let fs = RootFs::from_layers([tar]).expect("the export applies");
    let mut groups: BTreeMap<usize, Vec<Vec<u8>>> = BTreeMap::new();
    let mut nodes = BTreeMap::new();
    for (path, node) in fs.nodes() {
        // What the engine itself puts into every container.
        let skip = [
            &b".dockerenv"[..],
            b"etc/hostname",
            b"etc/hosts",
            b"etc/resolv.conf",
            b"run/.containerenv",
        ];
        if skip.contains(&path.as_slice())
            || path.starts_with(b"dev")
            || path.starts_with(b"proc")
            || path.starts_with(b"sys")
        {
            continue;
        }
        nodes.insert(path.clone(), (node.kind.clone(), node.mode, node.uid, node.gid));
        groups.entry(node.inode).or_default().push(path.clone());
    }
    let mut links: Vec<Vec<Vec<u8>>> = groups.into_values().filter(|g| g.len() > 1).collect();
    links.sort();
    (nodes, links)
}

/// A Docker daemon of the test's own under target/, with the two steps this test adds.
pub(crate) fn start_docker(name: &str) -> Docker {
    Docker::start(
        &Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id())),
    )
}

/// `docker save IMAGE | squash - --from-layer base --base BASE -o docker-archive:-:NEW |
/// docker load`.
fn squash_above_base(docker: &Docker, image: &str, base: &Path, new: &str) {
    let mut save = docker.cmd();
    save.args(["save", image]);
    let mut load = docker.cmd();
    load.arg("load");
    let output = format!("docker-archive:-:{new}");
    pipeline(
        save,
        &["-", "--from-layer", "base", "--base", base.to_str().expect("utf8"), "-o", &output, "-q"],
        load,
    );
}

/// What `image` lists when it runs.
pub(crate) fn listing(docker: &Docker, image: &str) -> String {
    String::from_utf8_lossy(&output(docker.cmd().args([
        "run",
        "--rm",
        "--network",
        "none",
        image,
        "/bin/sh",
        "-c",
        LISTING,
    ])))
    .into_owned()
}

pub(crate) fn export(docker: &Docker, image: &str) -> Vec<u8> {
    docker.export(image).unwrap_or_else(|e| panic!("{e}"))
}

/// Whether the static busybox the test images list their files with is here.
pub(crate) fn busybox() -> bool {
    squash_testkit::required("/bin/busybox", Path::new("/bin/busybox").exists())
}

#[test]
fn docker_loads_runs_and_unpacks_what_squash_pipes() {
    if !available("dockerd") || !available("docker") || !busybox() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (app, base) = images(dir.path());
    let docker = start_docker("dockerd");
    docker.load(&base).expect("load");
    docker.load(&app).expect("load");
    squash_above_base(&docker, "squash-test/app:1", &base, "squash-test/app:squashed");
    let original = listing(&docker, "squash-test/app:1");
    let squashed = listing(&docker, "squash-test/app:squashed");
    assert!(
        original.contains("./app/tool|regular file|")
            && original.contains("./app/tool-alias|regular file|"),
        "the listing sees the files:\n{original}"
    );
    assert_eq!(original, squashed, "the squashed image's container sees the same files");
    assert_eq!(
        exported(&export(&docker, "squash-test/app:1")),
        exported(&export(&docker, "squash-test/app:squashed"))
    );
    // Two layers now, the base's shared; the history keeps every step.
    let layers = |image: &str| {
        let out =
            output(docker.cmd().args(["inspect", "--format", "{{json .RootFS.Layers}}", image]));
        serde_json::from_slice::<Vec<String>>(&out).expect("layers")
    };
    let (before, after) = (layers("squash-test/app:1"), layers("squash-test/app:squashed"));
    assert_eq!((before.len(), after.len()), (4, 2));
    assert_eq!(before[0], after[0], "the base layer is shared");
    let history = String::from_utf8_lossy(&output(docker.cmd().args([
        "history",
        "--no-trunc",
        "squash-test/app:squashed",
    ])))
    .into_owned();
    for step in ["squash: merged layers 1..3", "RUN apt-get update", "RUN install", "ADD rootfs /"]
    {
        assert!(history.contains(step), "docker history shows `{step}`:\n{history}");
    }
    // An image Docker's own builder made: its RUN steps write the layers (whiteouts, opaque
    // directories, hard links, chmods) as Docker writes them.
    let context = dir.path().join("context");
    std::fs::create_dir_all(&context).expect("context");
    std::fs::write(
        context.join("Dockerfile"),
        "FROM squash-test/base:1\n\
         RUN mkdir -p /srv/cache /srv/data && echo one > /srv/data/a && echo two > /srv/cache/b && ln /srv/data/a /srv/data/a-link\n\
         RUN chmod 600 /srv/data/a && echo changed > /srv/cache/b && mkdir /srv/cache/sub && echo x > /srv/cache/sub/x\n\
         RUN rm -rf /srv/cache && mkdir /srv/cache && echo fresh > /srv/cache/c && rm /etc/os-release\n\
         RUN mv /srv/data /srv/moved && ln -s /srv/moved/a /srv/a-symlink\n",
    )
    .expect("Dockerfile");
    output(
        docker
            .cmd()
            .env("DOCKER_BUILDKIT", "0")
            .args(["build", "--network", "none", "-q", "-t", "squash-test/built:1"])
            .arg(&context),
    );
    squash_above_base(&docker, "squash-test/built:1", &base, "squash-test/built:squashed");
    let built = listing(&docker, "squash-test/built:1");
    assert!(
        built.contains("./srv/moved/a-link|")
            && built.contains("./srv/cache/c|")
            && !built.contains("./srv/cache/b"),
        "{built}"
    );
    assert_eq!(
        built,
        listing(&docker, "squash-test/built:squashed"),
        "a Docker-built image squashes to the same files"
    );
    assert_eq!(layers("squash-test/built:squashed").len(), 2);
    // Docker 25's OCI-shaped save (from the fixtures; this engine writes the legacy one), piped
    // through squash into this daemon.
    let v25 = format!(
        "{}/../../../shared/fixtures/google__go-containerregistry/pkg/v1/tarball/testdata/hello-world-v25.tar",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut cat = Command::new("cat");
    cat.arg(&v25);
    let mut load = docker.cmd();
    load.arg("load");
    pipeline(cat, &["-", "--convert", "-o", "docker-archive:-:squash-test/hello:v25", "-q"], load);
    let inspected = output(docker.cmd().args([
        "inspect",
        "--format",
        "{{.Architecture}} {{len .RootFS.Layers}}",
        "squash-test/hello:v25",
    ]));
    assert_eq!(
        String::from_utf8_lossy(&inspected).trim(),
        "arm64 1",
        "the OCI-shaped save loads as it was"
    );
}

#[test]
fn podman_loads_and_unpacks_what_squash_pipes_in_both_formats() {
    if !available("podman") || !busybox() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (app, base) = images(dir.path());
    let podman = Podman::new(
        &Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("podman-{}", std::process::id())),
    );
    output(podman.cmd().args(["load", "-i"]).arg(&app));
    let export = |image: &str| exported(&podman.export(image).unwrap_or_else(|e| panic!("{e}")));
    let original = export("squash-test/app:1");
    assert!(original.0.contains_key(&b"app/tool"[..]), "the export holds the files");
    for (format, output_ref) in [
        ("oci-archive", "oci-archive:-:squashed-oci"),
        ("docker-archive", "docker-archive:-:squash-test/app:squashed-docker"),
    ] {
        let mut save = podman.cmd();
        save.args(["save", "--format", format, "squash-test/app:1"]);
        let mut load = podman.cmd();
        load.arg("load");
        pipeline(
            save,
            &[
                "-",
                "--from-layer",
                "base",
                "--base",
                base.to_str().expect("utf8"),
                "-o",
                output_ref,
                "-q",
            ],
            load,
        );
        let loaded = String::from_utf8_lossy(&output(podman.cmd().args([
            "images",
            "--format",
            "{{.Repository}}:{{.Tag}}",
        ])))
        .into_owned();
        let name = loaded
            .lines()
            .find(|l| l.contains("squashed"))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("{format}: not loaded:\n{loaded}"));
        assert_eq!(export(&name), original, "{format}: podman unpacks the same filesystem");
        output(podman.cmd().args(["rmi", &name]));
    }
}
