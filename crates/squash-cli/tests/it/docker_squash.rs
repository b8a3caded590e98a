//! docker-squash's users: images built by the test's own Docker daemon with the legacy builder
//! (`RUN`, `COPY`, `ENV`, `CMD`, `LABEL`, `WORKDIR` steps in several orders) are squashed by
//! docker-squash 1.2.2 and by squash with the same request (`-f N` for every N, `-f` the
//! intermediate image of the same build, everything), and the histories they write are compared:
//! the number of entries, their `empty_layer` flags, and every `created_by` but the merged
//! step's (docker-squash writes none there). A one-layer range keeps its digest.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;
use squash_testkit::engines::{output, Docker};

const BIN: &str = env!("CARGO_BIN_EXE_squash");

/// `(created_by, empty_layer)` of each history entry of `image` in the daemon.
fn history(docker: &Docker, image: &str, dir: &Path) -> Vec<(String, bool)> {
    let archive = dir.join("history.tar");
    output(docker.cmd().args(["save", "-o"]).arg(&archive).arg(image));
    let out =
        Command::new(BIN).arg("inspect").arg("--json").arg(&archive).output().expect("inspect");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let document: Value = serde_json::from_slice(&out.stdout).expect("json");
    squash_testkit::history_steps(&document["history"])
}

/// `docker save IMAGE | squash - ARGS -o docker-archive:-:NEW | docker load`.
fn squash_through(docker: &Docker, image: &str, args: &[&str], new: &str) {
    let mut save = docker.cmd().args(["save", image]).stdout(Stdio::piped()).spawn().expect("save");
    let destination = format!("docker-archive:-:{new}");
    let mut squash = Command::new(BIN)
        .arg("-")
        .args(args)
        .args(["-q", "-o", &destination])
        .stdin(save.stdout.take().expect("stdout"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("squash");
    let load = docker
        .cmd()
        .arg("load")
        .stdin(squash.stdout.take().expect("stdout"))
        .output()
        .expect("load");
    let squashed = squash.wait_with_output().expect("squash");
    assert!(save.wait().expect("save").success());
    assert!(squashed.status.success(), "{args:?}: {}", String::from_utf8_lossy(&squashed.stderr));
    assert!(load.status.success(), "{}", String::from_utf8_lossy(&load.stderr));
}

/// The two histories agree: as many entries, the same `empty_layer` flags, the same
/// `created_by` but the last (the merged step, which docker-squash leaves without one).
fn same_shape(what: &str, ours: &[(String, bool)], theirs: &[(String, bool)]) {
    assert_eq!(ours.len(), theirs.len(), "{what}: entries\nours {ours:#?}\ntheirs {theirs:#?}");
    let flags = |h: &[(String, bool)]| h.iter().map(|e| e.1).collect::<Vec<_>>();
    assert_eq!(flags(ours), flags(theirs), "{what}: empty_layer flags");
    let kept = ours.len().saturating_sub(1);
    assert_eq!(ours[..kept], theirs[..kept], "{what}: created_by of the kept steps");
}

#[test]
fn docker_squash_and_squash_write_the_same_history() {
    let tools = ["dockerd", "docker", "docker-squash"];
    if !tools.iter().all(|t| squash_testkit::tool_available(t)) || !crate::engines::busybox() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, base) = crate::engines::images(dir.path());
    let docker = crate::engines::start_docker("docker-squash");
    docker.load(&base).expect("load");
    let build = |name: &str, dockerfile: &str| {
        let context = dir.path().join(name.replace([':', '/'], "-"));
        std::fs::create_dir_all(&context).expect("context");
        std::fs::write(context.join("Dockerfile"), dockerfile).expect("Dockerfile");
        std::fs::write(context.join("file.txt"), "copied\n").expect("file");
        output(
            docker
                .cmd()
                .env("DOCKER_BUILDKIT", "0")
                .args(["build", "--network", "none", "-q", "-t", name])
                .arg(&context),
        );
    };
    // An intermediate image of the build, and two images on it with the steps in other orders.
    build(
        "ds/mid:1",
        "FROM squash-test/base:1\nRUN echo one > /one\nENV STAGE=mid\nCMD [\"sh\"]\n",
    );
    build(
        "ds/a:1",
        "FROM ds/mid:1\nRUN echo a > /a\nENV X=1\nCOPY file.txt /file.txt\nCMD [\"sh\"]\nLABEL l=1\n",
    );
    build(
        "ds/b:1",
        "FROM ds/mid:1\nLABEL a=1\nRUN mkdir /srv && echo x > /srv/x\nWORKDIR /srv\nRUN echo y > y\nENV Y=2\n",
    );
    let mid_id = String::from_utf8_lossy(&output(
        docker.cmd().args(["image", "inspect", "--format", "{{.Id}}", "ds/mid:1"]),
    ))
    .trim()
    .to_string();
    for image in ["ds/a:1", "ds/b:1"] {
        let original = history(&docker, image, dir.path());
        let steps = original.len();
        let mut requests: Vec<(String, Vec<String>, Vec<String>)> = (2..=steps)
            .map(|n| {
                (
                    format!("-f {n}"),
                    vec!["-f".into(), n.to_string()],
                    vec!["-f".into(), n.to_string()],
                )
            })
            .collect();
        requests.push((
            "the intermediate image".into(),
            vec!["-f".into(), mid_id.clone()],
            vec!["--from-layer".into(), "base".into(), "--base".into(), "mid.tar".into()],
        ));
        requests.push(("everything".into(), Vec::new(), vec!["--all".into()]));
        output(docker.cmd().args(["save", "-o"]).arg(dir.path().join("mid.tar")).arg("ds/mid:1"));
        for (what, theirs_args, ours_args) in requests {
            let theirs_tag = "ds/theirs:latest";
            let out = Command::new("docker-squash")
                .env("DOCKER_HOST", docker.host())
                .args(&theirs_args)
                .args(["-t", theirs_tag, image])
                .output()
                .expect("docker-squash");
            assert!(
                out.status.success(),
                "docker-squash {theirs_args:?} {image}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let theirs = history(&docker, theirs_tag, dir.path());
            let mut args: Vec<String> = ours_args
                .iter()
                .map(|a| {
                    if a == "mid.tar" {
                        dir.path().join("mid.tar").display().to_string()
                    } else {
                        a.clone()
                    }
                })
                .collect();
            args.push("--drop-history".into());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            squash_through(&docker, image, &args, "ds/ours:latest");
            let ours = history(&docker, "ds/ours:latest", dir.path());
            same_shape(&format!("{image} {what}"), &ours, &theirs);
            // Without --drop-history the squashed steps stay, as empty ones, and one is added.
            let kept: Vec<&str> = args.iter().copied().filter(|a| *a != "--drop-history").collect();
            squash_through(&docker, image, &kept, "ds/ours:kept");
            let with_steps = history(&docker, "ds/ours:kept", dir.path());
            assert!(with_steps.len() >= original.len(), "{image} {what}: {with_steps:#?}");
            docker.remove(theirs_tag);
        }
    }
    // A one-layer range keeps its digest; an --exclude that hits it rewrites it.
    let layers = |image: &str| -> Vec<String> {
        serde_json::from_slice(&output(docker.cmd().args([
            "image",
            "inspect",
            "--format",
            "{{json .RootFS.Layers}}",
            image,
        ])))
        .expect("layers")
    };
    squash_through(&docker, "ds/a:1", &["--from-layer", "1"], "ds/one:kept");
    assert_eq!(layers("ds/one:kept"), layers("ds/a:1"), "a one-layer range squashes to itself");
    squash_through(
        &docker,
        "ds/a:1",
        &["--from-layer", "1", "--exclude", "file.txt"],
        "ds/one:excluded",
    );
    assert_ne!(layers("ds/one:excluded").last(), layers("ds/a:1").last());
}
