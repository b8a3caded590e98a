//! The compatibility matrix: every regression case of the engine, a sample of random stacks
//! and a new layer of several gzip members, written as engines write layers, squashed, then
//! unpacked by real appliers (Docker, containerd, podman, umoci) and compared with the
//! reference model, entry by entry (type, mode, owner, size, content, link target, mtime,
//! xattrs, hard-link groups). The original is unpacked too: where an applier already disagrees
//! with the model on the original, that is the applier's reading of that input, reported and
//! not held against the squash. Each applier prints its rows; README's table sums them up.

use std::path::{Path, PathBuf};

use squash::{Image, LayerSelector, Output, OutputFormat, SquashOptions};
use squash_testkit::cases::{regression_cases, Case};
use squash_testkit::engines::{self, Containerd, Docker, Podman, Unpacked};
use squash_testkit::{
    binary, gzip_members, random_changeset_stack, text, tool_available, ImageBuilder, LayerBuilder,
    LayerCompression, Node, RootFs,
};

/// A case written out: the original and the squashed image in each format an applier reads.
struct Prepared {
    case: Case,
    /// `matrix/cN`: docker-archive tags are `matrix/cN:orig` and `matrix/cN:squashed`.
    repo: String,
    /// orig.tar, squashed.tar (docker-archive); orig-oci.tar, squashed-oci.tar (OCI
    /// archives, tags `orig` and `squashed`); orig/, squashed/ (OCI layouts, same tags).
    dir: PathBuf,
    /// The model's filesystem of the original.
    expected: RootFs,
}

/// The random stacks of the matrix: changesets as Docker's differ writes them, over ranges at
/// the bottom, in the middle, at the top, and two at once.
fn random_cases() -> Vec<Case> {
    let ranges = [vec![(1, 4)], vec![(0, 2)], vec![(2, 4)], vec![(0, 1), (3, 4)]];
    (0..16u64)
        .map(|seed| Case {
            name: format!("changesets/seed-{seed}"),
            layers: random_changeset_stack(1000 + seed, 5),
            ranges: ranges[seed as usize % ranges.len()].clone(),
        })
        .collect()
}

/// A range whose new layer is several of the gzip encoder's 1 MiB members: every applier must
/// read past the first.
fn members_case() -> Case {
    Case {
        name: "gzip/several-members".to_string(),
        layers: vec![
            LayerBuilder::new().dir("opt").file("opt/base", &text(300_000, 1)).finish(),
            LayerBuilder::new()
                .file("opt/a", &binary(2_500_000, 2))
                .file("opt/small", b"x")
                .finish(),
            LayerBuilder::new().file("opt/b", &text(1_700_000, 3)).whiteout("opt/base").finish(),
        ],
        ranges: vec![(1, 2)],
    }
}

/// The gzip members of the squashed layout's new layer (the range's first layer).
fn new_layer_members(p: &Prepared) -> usize {
    let (layers, _) = squash_testkit::read_oci_layout(&p.dir.join("squashed"), Some("squashed"));
    let digest = &layers[p.case.ranges[0].0].0;
    let hex = digest.trim_start_matches("sha256:");
    let blob = std::fs::read(p.dir.join("squashed/blobs/sha256").join(hex)).expect("blob");
    gzip_members(&blob)
}

fn prepare(root: &Path) -> Vec<Prepared> {
    let mut out = Vec::new();
    let cases = regression_cases().into_iter().chain(random_cases()).chain([members_case()]);
    for (i, case) in cases.enumerate() {
        let dir = root.join(format!("c{i}"));
        std::fs::create_dir_all(&dir).expect("case dir");
        let repo = format!("matrix/c{i}");
        let mut builder = ImageBuilder::new(LayerCompression::Gzip);
        for (n, layer) in case.layers.iter().enumerate() {
            builder.layer(layer.clone(), &format!("RUN step {n}"));
        }
        builder.write_docker_archive(&dir.join("orig.tar"), &format!("{repo}:orig"));
        builder.write_oci_archive(&dir.join("orig-oci.tar"), "orig");
        builder.write_oci_layout(&dir.join("orig"), "orig");
        let image = Image::open(&format!("oci:{}:orig", dir.join("orig").display())).expect("open");
        let plan = image
            .plan(
                &SquashOptions::default().with_selector(LayerSelector::Ranges(case.ranges.clone())),
            )
            .unwrap_or_else(|e| panic!("{}: plan: {e}", case.name));
        for (path, format, tag) in [
            ("squashed.tar", OutputFormat::DockerArchive, format!("{repo}:squashed")),
            ("squashed-oci.tar", OutputFormat::OciArchive, "squashed".to_string()),
            ("squashed", OutputFormat::OciLayout, "squashed".to_string()),
        ] {
            plan.execute(&image, &Output::new(dir.join(path), format).with_tag(tag))
                .unwrap_or_else(|e| panic!("{}: write {path}: {e}", case.name));
        }
        let expected =
            RootFs::from_layers(case.layers.iter().map(Vec::as_slice)).expect("the case applies");
        let prepared = Prepared { case, repo, dir, expected };
        if prepared.case.name == "gzip/several-members" {
            let members = new_layer_members(&prepared);
            assert!(members >= 4, "the new layer is {members} gzip member(s)");
        }
        out.push(prepared);
    }
    out
}

/// The layers of the original and of the squashed image, listed for failure messages.
fn layers(p: &Prepared) -> String {
    let (squashed, _) = squash_testkit::read_oci_layout(&p.dir.join("squashed"), Some("squashed"));
    format!(
        "--- original:\n{}--- squashed:\n{}",
        crate::support::listing(p.case.layers.iter().map(Vec::as_slice)),
        crate::support::listing(squashed.iter().map(|(_, t)| t.as_slice()))
    )
}

/// One applier's verdict on one case.
struct Row {
    case: String,
    /// How the applier's unpacking of the original differs from the model (empty: agrees).
    original: Vec<String>,
    /// How its unpacking of the squashed image differs from the model (empty: agrees).
    squashed: Vec<String>,
}

/// Unpacks every case with `unpack(prepared, "orig" | "squashed")` and compares both with the
/// model. A squashed image must unpack as the model says, or, where the applier already reads
/// the original differently from the model, as the applier reads the original (that reading is
/// the applier's, and is printed). Prints every row that is not a plain agreement.
fn run_matrix(
    applier: &str,
    version: &str,
    cases: &[Prepared],
    mut unpack: impl FnMut(&Prepared, &str) -> Result<Unpacked, String>,
) {
    let since = engines::now();
    let mut rows = Vec::new();
    let mut wrong = Vec::new();
    for p in cases {
        let expected = engines::comparable(&p.expected);
        let read = |u: Result<Unpacked, String>| {
            u.map(|u| (engines::unpacked(&u.tar, &p.expected, since), u.unreadable))
        };
        let (orig, squashed) = (read(unpack(p, "orig")), read(unpack(p, "squashed")));
        let verdict = |fs: &Result<(RootFs, Vec<String>), String>| match fs {
            Ok((fs, unreadable)) => {
                let mut diff = expected.diff(fs);
                diff.extend(unreadable.iter().map(|p| format!("listed but cannot be opened: {p}")));
                diff
            }
            Err(e) => vec![format!("refused: {e}")],
        };
        let row = Row {
            case: p.case.name.clone(),
            original: verdict(&orig),
            squashed: verdict(&squashed),
        };
        // Times the model does not know (of directories made as missing parents) are the
        // unpacking's: not compared between the two readings either.
        let known = |fs: &RootFs| {
            fs.filter_map(|path, node| {
                let unknown = expected.nodes().get(path).is_some_and(|e| e.mtime.is_none());
                Some(Node { mtime: node.mtime.filter(|_| !unknown), ..node.clone() })
            })
        };
        let same_reading = match (&orig, &squashed) {
            (Ok((a, a_unreadable)), Ok((b, b_unreadable))) => {
                known(a).diff(&known(b)).is_empty()
                    && b_unreadable.iter().all(|p| a_unreadable.contains(p))
            }
            _ => false,
        };
        if !row.squashed.is_empty() && (row.original.is_empty() || !same_reading) {
            wrong.push(format!(
                "{}:\n  {}\n  (the original: {})\n{}",
                row.case,
                row.squashed.join("\n  "),
                row.original.join("; "),
                layers(p)
            ));
        }
        rows.push(row);
    }
    let agree = rows.iter().filter(|r| r.original.is_empty() && r.squashed.is_empty()).count();
    let fixed = rows.iter().filter(|r| !r.original.is_empty() && r.squashed.is_empty()).count();
    eprintln!(
        "compatibility matrix: {applier} ({version}): {} cases; original and squashed agree with \
            the model: {agree}; \
         only the squashed image agrees: {fixed}",
        rows.len()
    );
    for row in rows.iter().filter(|r| !r.original.is_empty() || !r.squashed.is_empty()) {
        eprintln!(
            "  {}:\n    original: {}\n    squashed: {}",
            row.case,
            row.original.join("; "),
            row.squashed.join("; ")
        );
    }
    assert!(
        wrong.is_empty(),
        "{applier} unpacks squashed images differently from the model and from the original:\n{}",
        wrong.join("\n")
    );
}

fn scratch(applier: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("matrix-{applier}-{}", std::process::id()))
}

#[test]
fn matrix_docker() {
    if !tool_available("dockerd") || !tool_available("docker") {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let cases = prepare(work.path());
    let docker = Docker::start(&scratch("docker"));
    let version = format!("Docker {}", docker.version());
    run_matrix("docker", &version, &cases, |p, which| {
        docker.load(&p.dir.join(format!("{which}.tar")))?;
        let image = format!("{}:{which}", p.repo);
        let tar = docker.export(&image);
        docker.remove(&image);
        tar.map(Unpacked::from)
    });
}

#[test]
fn matrix_containerd() {
    if !tool_available("containerd") || !tool_available("ctr") {
        return;
    }
    let uid = engines::output(std::process::Command::new("id").arg("-u"));
    let root = String::from_utf8_lossy(&uid).trim() == "0";
    if !squash_testkit::required("root, for containerd's `ctr images mount`", root) {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let cases = prepare(work.path());
    let containerd = Containerd::start(&scratch("containerd"));
    let version = format!("containerd {}", containerd.version());
    run_matrix("containerd", &version, &cases, |p, which| {
        containerd.import(&p.dir.join(format!("{which}.tar")))?;
        let image = format!("docker.io/{}:{which}", p.repo);
        let tar = containerd.rootfs(&image);
        containerd.remove(&image);
        tar
    });
}

#[test]
fn matrix_podman() {
    if !tool_available("podman") {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let cases = prepare(work.path());
    let podman = Podman::new(&scratch("podman"));
    run_matrix("podman", &engines::version("podman"), &cases, |p, which| {
        // OCI archives here (Docker and containerd read the docker-archives).
        podman.load(&p.dir.join(format!("{which}-oci.tar")))?;
        let image = format!("localhost/{which}:latest");
        let tar = podman.export(&image);
        podman.remove(&image);
        tar.map(Unpacked::from)
    });
}

#[test]
fn matrix_umoci() {
    if !tool_available("umoci") {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let cases = prepare(work.path());
    run_matrix("umoci", &engines::version("umoci"), &cases, |p, which| {
        engines::umoci_rootfs(&p.dir.join(which), which, &p.dir)
    });
}
