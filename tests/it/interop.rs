use std::path::Path;
use std::process::Command;

use squash::{Image, LayerSelector, Output, OutputFormat, SquashOptions};
use squash_testkit::{LayerBuilder, LayerCompression};

use crate::support::build;

/// Whether `tool` can run; a missing tool fails when SQUASH_REQUIRE_INTEROP=1 (CI) and is a
/// loud skip otherwise.
fn available(tool: &str) -> bool {
    let found = Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(std::env::var("SQUASH_REQUIRE_INTEROP").is_err(), "`{tool}` is required (SQUASH_REQUIRE_INTEROP is set) but not found");
        eprintln!("SKIPPED: `{tool}` not found; interoperability not checked");
    }
    found
}

fn run(cmd: &mut Command) -> String {
    let output = cmd.output().expect("spawn");
    assert!(output.status.success(), "{cmd:?} failed:\n{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn squashed(dir: &Path) -> (std::path::PathBuf, Image) {
    // umoci lets a whiteout that follows same-layer entries spare their parents; the spec does
    // not, so the cross-check uses layers written as Docker and BuildKit write them (whiteouts
    // first, parents before children).
    let l = LayerBuilder::new;
    let stack = vec![
        l().dir("etc")
            .file("etc/os-release", b"demo")
            .dir("usr")
            .dir("usr/bin")
            .file_with("usr/bin/sh", b"sh", 0o755, 0, 0, &[])
            .dir_with("srv", 0o750, 7, 7)
            .file("srv/old", b"old")
            .finish(),
        l().dir("var")
            .dir("var/lib")
            .dir("var/lib/lists")
            .file("var/lib/lists/a", &vec![b'a'; 5000])
            .file("var/lib/lists/b", b"b")
            .finish(),
        l().file_with("usr/bin/tool", b"tool v1", 0o4755, 1000, 1000, &[("user.note", b"hello")])
            .hardlink("usr/bin/tool-alias", "usr/bin/tool")
            .symlink("usr/bin/t", "tool")
            .finish(),
        l().whiteout("var/lib/lists").whiteout("srv").dir("srv").file("srv/new", b"new").finish(),
        l().file_with("usr/bin/tool", b"tool v2", 0o700, 0, 0, &[]).dir("etc/os-release").file("etc/os-release/x", b"now a dir").finish(),
        l().opaque("etc").dir("etc").file("etc/only", b"only").finish(),
    ];
    let input = build(dir, &stack, LayerCompression::Gzip);
    let image = Image::open(&format!("oci:{}:t", input.display())).expect("open");
    (input, image)
}

#[test]
fn skopeo_reads_every_output_format() {
    if !available("skopeo") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, image) = squashed(dir.path());
    let plan = image.plan(&SquashOptions::default().with_selector(LayerSelector::Top(4))).expect("plan");
    for (name, format, transport) in [
        ("oci", OutputFormat::OciLayout, "oci"),
        ("oci.tar", OutputFormat::OciArchive, "oci-archive"),
        ("docker.tar", OutputFormat::DockerArchive, "docker-archive"),
    ] {
        let path = dir.path().join(name);
        plan.execute(&image, &Output { path: path.clone(), format, tag: Some("app:1".into()) }).expect("write");
        let reference = match format {
            OutputFormat::DockerArchive => format!("{transport}:{}", path.display()),
            _ => format!("{transport}:{}:app:1", path.display()),
        };
        let json = run(Command::new("skopeo").args(["inspect", "--raw"]).arg(&reference));
        assert!(json.contains("layers") || json.contains("Layers") || json.contains("schemaVersion"), "{reference}: {json}");
        let copy = dir.path().join(format!("{name}-copy"));
        run(Command::new("skopeo").args(["copy", "--quiet"]).arg(&reference).arg(format!("dir:{}", copy.display())));
    }
}

fn tree(root: &Path) -> Vec<String> {
    let output = run(Command::new("find").arg(".").args(["-printf", "%y %m %U:%G %s %l %p\\n"]).current_dir(root));
    let mut lines: Vec<String> = output.lines().map(|l| l.to_string()).collect();
    lines.sort();
    lines
}

#[test]
fn umoci_unpacks_original_and_squashed_to_equal_trees() {
    if !available("umoci") {
        return;
    }
    for top in [2, 4, 5] {
        umoci_case(top);
    }
}

fn umoci_case(top: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (input, image) = squashed(dir.path());
    let out = dir.path().join("out");
    image
        .plan(&SquashOptions::default().with_selector(LayerSelector::Top(top)))
        .and_then(|p| p.execute(&image, &Output { path: out.clone(), format: OutputFormat::OciLayout, tag: Some("t".into()) }))
        .expect("squash");
    let mut trees = Vec::new();
    for (layout, bundle) in [(&input, "b1"), (&out, "b2")] {
        let bundle = dir.path().join(bundle);
        run(Command::new("umoci").args(["unpack", "--image"]).arg(format!("{}:t", layout.display())).arg(&bundle));
        let rootfs = bundle.join("rootfs");
        let mut lines = tree(&rootfs);
        let sums = run(Command::new("sh").arg("-c").arg("find . -type f -print0 | sort -z | xargs -0 -r sha256sum").current_dir(&rootfs));
        lines.extend(sums.lines().map(str::to_string));
        let attrs = run(Command::new("sh")
            .arg("-c")
            .arg("find . -type f -print0 | sort -z | xargs -0 -r getfattr -h -d -m - 2>/dev/null || true")
            .current_dir(&rootfs));
        lines.push(attrs);
        trees.push(lines);
    }
    if trees[0] != trees[1] {
        let (before, _) = squash_testkit::read_oci_layout(&input, Some("t"));
        let (after, _) = squash_testkit::read_oci_layout(&out, Some("t"));
        panic!(
            "umoci unpacked different trees\n{:?}\n{:?}\n--- input:\n{}\n--- output:\n{}",
            trees[0].iter().filter(|l| !trees[1].contains(l)).collect::<Vec<_>>(),
            trees[1].iter().filter(|l| !trees[0].contains(l)).collect::<Vec<_>>(),
            crate::support::listing(before.iter().map(|(_, t)| t.as_slice())),
            crate::support::listing(after.iter().map(|(_, t)| t.as_slice()))
        );
    }
}
