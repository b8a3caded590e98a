//! Registries in and out, all real and on loopback: Debian's `docker-registry` (distribution
//! 2.8) started by each test with its own config, over plain HTTP, over TLS with `htpasswd -B`
//! users, and with token authentication from a test-only issuer; skopeo copies images in and
//! out, the reference model compares filesystems, and Docker pulls and runs what squash pushed.
//! A proxy in the test cuts, corrupts and refuses requests. A missing tool is a loud skip, and
//! fatal with SQUASH_REQUIRE_INTEROP=1 (CI).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use squash_testkit::engines::output;
use squash_testkit::registry::{
    base64_std, Auth, Certificates, Fault, FaultProxy, Registry, Request, TokenIssuer,
};
use squash_testkit::{read_oci_layout, ImageBuilder, LayerBuilder, LayerCompression, RootFs};

const BIN: &str = env!("CARGO_BIN_EXE_squash");

/// Whether `tool` is on the PATH.
fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
}

/// Whether every tool is there: a loud skip when one is missing, fatal in CI.
fn ready(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools.iter().copied().filter(|t| !on_path(t)).collect();
    squash_testkit::required(&format!("for the registry tests, {missing:?}"), missing.is_empty())
}

/// An environment without anyone's credentials: an empty Docker config, no podman auth file.
fn clean_env(cmd: &mut Command, dir: &Path) {
    let empty = dir.join("no-credentials");
    std::fs::create_dir_all(&empty).expect("empty config dir");
    cmd.env("DOCKER_CONFIG", &empty)
        .env("REGISTRY_AUTH_FILE", empty.join("auth.json"))
        .env("XDG_RUNTIME_DIR", &empty)
        .env("HOME", &empty)
        .env_remove("SQUASH_CREDS");
}

/// Runs squash: exit code, stdout, stderr.
fn squash(dir: &Path, args: &[&str]) -> (i32, String, String) {
    squash_with(dir, args, &[])
}

fn squash_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    clean_env(&mut cmd, dir);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("squash runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `skopeo --insecure-policy ARGS`, which must succeed.
fn skopeo(args: &[&str]) -> Vec<u8> {
    output(Command::new("skopeo").arg("--insecure-policy").args(args))
}

/// The manifest `reference` names, as skopeo reads it.
fn manifest(reference: &str, extra: &[&str]) -> Value {
    let mut args = vec!["inspect", "--raw"];
    args.extend(extra);
    args.push(reference);
    serde_json::from_slice(&skopeo(&args)).expect("a manifest")
}

fn layer_digests(manifest: &Value) -> Vec<String> {
    manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["digest"].as_str().expect("digest").to_string())
        .collect()
}

/// The filesystem of the image tagged `t` in an OCI layout, by the reference model.
fn model(layout: &Path) -> RootFs {
    let (layers, _) = read_oci_layout(layout, Some("t"));
    RootFs::from_layers(layers.iter().map(|(_, tar)| tar.as_slice())).expect("the layers apply")
}

/// Copies `reference` out with skopeo into a layout under `dir` and models its filesystem.
fn copied_out(reference: &str, dir: &Path, name: &str, extra: &[&str]) -> RootFs {
    let layout = dir.join(name);
    let destination = format!("oci:{}:t", layout.display());
    let mut args = vec!["copy", "-q"];
    args.extend(extra);
    args.extend([reference, destination.as_str()]);
    skopeo(&args);
    model(&layout)
}

/// The reference model sees the same filesystem in both (and a real one).
fn same(squashed: &RootFs, original: &RootFs, what: &str) {
    assert!(original.nodes().len() > 3, "{what}: the original has files");
    assert_eq!(original.diff(squashed), Vec::<String>::new(), "{what}");
}

fn outcome(stdout: &str) -> Value {
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// A base with a static busybox (so that Docker can run a listing), and an app whose layers
/// hold, as Docker's do, the directories above every path they change: additions, overwrites,
/// a chmod, deletions, an opaque directory, hard links, a type change.
fn docker_like_images(dir: &Path) -> (PathBuf, PathBuf) {
    let mut b = ImageBuilder::new(LayerCompression::Gzip);
    b.layer(crate::engines::busybox_base(), "ADD rootfs /");
    let base_path = dir.join("base.tar");
    b.write_docker_archive(&base_path, "squash-test/base:1");
    let mut lists = LayerBuilder::new();
    lists.dir("var").dir("var/lib").dir("var/lib/apt").dir("var/lib/apt/lists");
    for i in 0..20 {
        lists.file(format!("var/lib/apt/lists/repo{i}"), "Package: x\n".repeat(500).as_bytes());
    }
    b.layer(lists.finish(), "RUN apt-get update");
    b.layer(
        LayerBuilder::new()
            .dir("app")
            .file_with("app/tool", &squash_testkit::noise(400_000, 1), 0o755, 1000, 1000, &[])
            .hardlink("app/tool-alias", "app/tool")
            .symlink("app/current", "tool")
            .file("app/config", b"v1")
            .dir("etc")
            .dir("etc/conf.d")
            .file("etc/conf.d/old", b"old")
            .finish(),
        "RUN install",
    );
    b.layer(
        LayerBuilder::new()
            .dir("app")
            .file_with("app/tool", &squash_testkit::noise(400_000, 1), 0o700, 1000, 1000, &[])
            .hardlink("app/tool-alias", "app/tool")
            .dir("etc")
            .opaque("etc/conf.d")
            .dir("etc/conf.d")
            .file("etc/conf.d/new", b"new")
            .whiteout("app/config")
            .dir("app/config")
            .file("app/config/v2", b"v2")
            .finish(),
        "RUN chmod 700 /app/tool && reconfigure",
    );
    let app_path = dir.join("app.tar");
    b.write_docker_archive(&app_path, "squash-test/app:1");
    (app_path, base_path)
}

/// skopeo's flags for a destination, as `inspect` spells them for its source.
fn inspect_flags(copy_flags: &[&str]) -> Vec<String> {
    copy_flags
        .iter()
        .map(|a| {
            a.replace("--dest-tls-verify", "--tls-verify").replace("--dest-cert-dir", "--cert-dir")
        })
        .map(|a| if a == "--dest-creds" { "--creds".to_string() } else { a })
        .collect()
}

/// Pushes `base:1` and `app:1` (see [`docker_like_images`]) into `host` with skopeo, which
/// takes `extra` flags; the layer digests of each.
fn push_images(dir: &Path, host: &str, extra: &[&str]) -> (Vec<String>, Vec<String>) {
    let (app, base) = docker_like_images(dir);
    for (archive, name) in [(&base, "base:1"), (&app, "app:1")] {
        let source = format!("docker-archive:{}", archive.display());
        let destination = format!("docker://{host}/{name}");
        let mut args = vec!["copy", "-q"];
        args.extend(extra);
        args.extend([source.as_str(), destination.as_str()]);
        skopeo(&args);
    }
    let flags = inspect_flags(extra);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let base_layers = layer_digests(&manifest(&format!("docker://{host}/base:1"), &flags));
    let app_layers = layer_digests(&manifest(&format!("docker://{host}/app:1"), &flags));
    (base_layers, app_layers)
}

#[test]
fn registry_to_registry_downloads_no_base_layer_and_mounts_across_repositories() {
    if !ready(&["docker-registry", "skopeo"]) || !Path::new("/bin/busybox").exists() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = Registry::start(&dir.path().join("registry"), &Auth::None);
    let host = registry.host();
    let (base_layers, app_layers) = push_images(dir.path(), &host, &["--dest-tls-verify=false"]);
    assert_eq!((base_layers.len(), app_layers.len()), (1, 4));
    let app = format!("docker://{host}/app:1");
    let base = format!("docker://{host}/base:1");

    // In place: the same repository, another tag.
    let before = registry.requests().len();
    let squashed = format!("docker://{host}/app:squashed");
    let (code, stdout, stderr) = squash(
        dir.path(),
        &[&app, "--from-layer", "base", "--base", &base, "-o", &squashed, "--json"],
    );
    assert_eq!(code, 0, "{stderr}");
    let written = outcome(&stdout);
    let transfer = &written["transfer"];
    assert_eq!(transfer["blobs_present"], 1, "the base layer is there: {transfer}");
    assert_eq!(transfer["blobs_mounted"], 0, "{transfer}");
    assert_eq!(transfer["blobs_uploaded"], 2, "the new layer and config: {transfer}");
    let pushed = written["pushed"].as_str().expect("pushed by digest");
    assert_eq!(
        pushed,
        format!("docker://{host}/app@{}", written["manifest_digest"].as_str().expect("digest"))
    );
    assert!(
        written["layers"][1]["rereads"].is_null(),
        "nothing below the range was read: {written}"
    );
    let requests: Vec<String> = registry.requests()[before..].to_vec();
    for digest in &base_layers {
        assert!(
            !requests.iter().any(|r| r.starts_with("GET ") && r.contains(digest.as_str())),
            "the base layer {digest} was downloaded:\n{}",
            requests.join("\n")
        );
    }
    assert!(requests.iter().any(|r| r == "PUT /v2/app/manifests/squashed 201"));
    let last_put = requests.iter().rposition(|r| r.starts_with("PUT ")).expect("a PUT");
    assert_eq!(requests[last_put], "PUT /v2/app/manifests/squashed 201", "the tag is put last");

    // A run that changes nothing (a range of one layer squashes to itself) puts a tag and
    // uploads no blob: the layers and the unchanged config are there, or mounted from the
    // source repository.
    for (target, present, mounted) in [("app:same", 5, 0), ("copies/app:same", 0, 5)] {
        let (code, stdout, stderr) = squash(
            dir.path(),
            &[&app, "--from-layer", "1", "-o", &format!("docker://{host}/{target}"), "--json"],
        );
        assert_eq!(code, 0, "{stderr}");
        let transfer = &outcome(&stdout)["transfer"];
        assert_eq!(transfer["blobs_uploaded"], 0, "{target}: {transfer}");
        assert_eq!(transfer["blobs_present"], present, "{target}: {transfer}");
        assert_eq!(transfer["blobs_mounted"], mounted, "{target}: {transfer}");
        let copy = manifest(&format!("docker://{host}/{target}"), &["--tls-verify=false"]);
        assert_eq!(copy, manifest(&app, &["--tls-verify=false"]), "{target}: the same manifest");
    }

    // An image whose range deletes what it wrote, and implies a directory it does not write:
    // the plan must ask the layer below, which is downloaded, and the outcome says why.
    std::fs::create_dir_all(dir.path().join("implied")).expect("mkdir");
    let (implied, _) = crate::engines::images(&dir.path().join("implied"));
    let implied_ref = format!("docker://{host}/implied:1");
    let source = format!("docker-archive:{}", implied.display());
    skopeo(&["copy", "-q", "--dest-tls-verify=false", &source, &implied_ref]);
    let (code, stdout, stderr) = squash(
        dir.path(),
        &[&implied_ref, "--from-layer", "3", "-o", &format!("docker://{host}/implied:squashed")],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("also read layer(s) 0: directories the range writes or implies"),
        "the layer below is named with the reason:\n{stdout}"
    );

    // Another repository of the same registry: the base is mounted, not uploaded.
    let before = registry.requests().len();
    let elsewhere = format!("docker://{host}/team/app:squashed");
    let (code, stdout, stderr) =
        squash(dir.path(), &[&app, "--from-layer", "base", "--base", &base, "-o", &elsewhere]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(&format!("pushed:   docker://{host}/team/app@sha256:")), "{stdout}");
    assert!(stdout.contains("1 mounted"), "{stdout}");
    let requests: Vec<String> = registry.requests()[before..].to_vec();
    assert!(requests.iter().any(|r| r == "POST /v2/team/app/blobs/uploads/ 201"), "a mount");
    for digest in &base_layers {
        assert!(!requests.iter().any(|r| r.starts_with("GET ") && r.contains(digest.as_str())));
    }

    // skopeo copies both out; the reference model sees the same filesystem.
    let insecure = ["--src-tls-verify=false"];
    let original = copied_out(&app, dir.path(), "original", &insecure);
    for (name, reference) in [("in-place", &squashed), ("elsewhere", &elsewhere)] {
        same(&copied_out(reference, dir.path(), name, &insecure), &original, name);
    }
    let flattened = manifest(&elsewhere, &["--tls-verify=false"]);
    assert_eq!(layer_digests(&flattened)[0], base_layers[0], "the base layer is shared");
    assert_eq!(layer_digests(&flattened).len(), 2);

    // Docker pulls it from the registry (plain HTTP to 127.0.0.1 is allowed) and runs it.
    if !ready(&["dockerd", "docker"]) {
        return;
    }
    let docker = crate::engines::start_docker("registry-pull");
    let (one, two) = (format!("{host}/app:1"), format!("{host}/team/app:squashed"));
    for image in [&one, &two] {
        output(docker.cmd().args(["pull", "-q", image]));
    }
    assert_eq!(crate::engines::listing(&docker, &one), crate::engines::listing(&docker, &two));
    assert_eq!(
        crate::engines::exported(&crate::engines::export(&docker, &one)),
        crate::engines::exported(&crate::engines::export(&docker, &two))
    );
}

/// A TLS registry with htpasswd users: the certificate is trusted through `--cert-dir` (or not
/// verified with `--tls-verify=false`), credentials come from `--creds`, SQUASH_CREDS or
/// `--authfile`, a missing one gets 401 explained, and no secret shows, even with `-v`.
#[test]
fn a_registry_over_tls_with_htpasswd_users() {
    if !ready(&["docker-registry", "skopeo", "openssl", "htpasswd"])
        || !Path::new("/bin/busybox").exists()
    {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let certificates = Certificates::make(&dir.path().join("certs"));
    let trust = certificates.trust_dir();
    let password = "s3cret-Pa55word";
    let auth = Auth::Htpasswd {
        certificates: certificates.dir.clone(),
        user: "tester".into(),
        password: password.into(),
    };
    let registry = Registry::start(&dir.path().join("registry"), &auth);
    let host = registry.host();
    let creds = format!("tester:{password}");
    let trust_flag = format!("--dest-cert-dir={}", trust.display());
    push_images(dir.path(), &host, &[&trust_flag, "--dest-creds", &creds]);
    let app = format!("docker://{host}/app:1");
    let cert_dir = trust.to_str().expect("utf8");

    // No credentials: 401, explained, naming the registry, the repository and the request.
    let (code, _, stderr) = squash(dir.path(), &["inspect", &app, "--cert-dir", cert_dir]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!("docker://{host}/app"))
            && stderr.contains("GET /v2/app/manifests/1")
            && stderr.contains("HTTP 401")
            && stderr.contains("--creds"),
        "{stderr}"
    );
    // The certificate not trusted: refused, unless verification is off.
    let (code, _, stderr) = squash(dir.path(), &["inspect", &app, "--creds", &creds]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("cannot reach the registry") && stderr.contains("--tls-verify=false"),
        "{stderr}"
    );
    let (code, _, stderr) =
        squash(dir.path(), &["inspect", &app, "--creds", &creds, "--tls-verify=false"]);
    assert_eq!(code, 0, "{stderr}");
    // A wrong password.
    let (code, _, stderr) =
        squash(dir.path(), &["inspect", &app, "--cert-dir", cert_dir, "--creds", "tester:wrong"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("HTTP 401"), "{stderr}");

    // SQUASH_CREDS, a squash pushed over TLS, with -v: the password shows nowhere.
    let squashed = format!("docker://{host}/app:squashed");
    let base = format!("docker://{host}/base:1");
    // The app squashed above its base and pushed to `to` over TLS, credentials in SQUASH_CREDS.
    let push = |to: &str, more: &[&str]| {
        let args =
            [&app, "--from-layer", "base", "--base", &base, "-o", to, "--cert-dir", cert_dir];
        squash_with(dir.path(), &[&args[..], more].concat(), &[("SQUASH_CREDS", &creds)])
    };
    let (code, stdout, stderr) = push(&squashed, &["-v"]);
    assert_eq!(code, 0, "{stderr}");
    for text in [&stdout, &stderr] {
        assert!(!text.contains(password), "a secret was printed:\n{text}");
        assert!(!text.contains(&base64_std(creds.as_bytes())), "a secret was printed:\n{text}");
    }
    // --verify: pushed by digest, read back from the registry (over TLS, with the same
    // credentials), and tagged only then: the tag's PUT comes after the read-back, and last.
    let verified = format!("docker://{host}/app:verified");
    let before = registry.requests().len();
    let (code, stdout, stderr) = push(&verified, &["--verify", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("verified: the written image's root filesystem equals"), "{stderr}");
    let digest = outcome(&stdout)["manifest_digest"].as_str().expect("digest").to_string();
    let requests: Vec<String> = registry.requests()[before..].to_vec();
    let at = |request: &str| requests.iter().position(|r| r == request);
    let put = at(&format!("PUT /v2/app/manifests/{digest} 201")).expect("pushed by digest");
    let read_back = at(&format!("GET /v2/app/manifests/{digest} 200")).expect("read back");
    let tagged = at("PUT /v2/app/manifests/verified 201").expect("tagged");
    assert!(put < read_back && read_back < tagged, "{}", requests.join("\n"));
    let last_put = requests.iter().rposition(|r| r.starts_with("PUT ")).expect("a PUT");
    assert_eq!(last_put, tagged, "the tag is put last:\n{}", requests.join("\n"));
    let reads_layers = |r: &String| r.starts_with("GET /v2/app/blobs/");
    assert!(requests[put..tagged].iter().any(reads_layers), "the layers are read back");
    // An auth file in Docker's format.
    let authfile = dir.path().join("auth.json");
    let config = serde_json::json!({"auths": {&host: {"auth": base64_std(creds.as_bytes())}}});
    std::fs::write(&authfile, config.to_string()).expect("auth file");
    let (code, stdout, stderr) = squash(
        dir.path(),
        &[
            "inspect",
            &squashed,
            "--cert-dir",
            cert_dir,
            "--authfile",
            authfile.to_str().expect("utf8"),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("squash: merged layers"), "{stdout}");
    // skopeo reads the push back, and the model agrees.
    let src_cert = format!("--src-cert-dir={}", trust.display());
    let src = ["--src-creds", creds.as_str(), src_cert.as_str()];
    same(
        &copied_out(&squashed, dir.path(), "squashed", &src),
        &copied_out(&app, dir.path(), "original", &src),
        "over TLS",
    );
}

/// A registry that authenticates with tokens: the client asks the issuer the registry names
/// for a token with the scopes each request needs (pull and push of the target, pull of the
/// repository a blob is mounted from), with Basic credentials.
#[test]
fn bearer_tokens_from_the_registrys_issuer() {
    if !ready(&["docker-registry", "skopeo", "openssl"]) || !Path::new("/bin/busybox").exists() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let password = "t0ken-Pa55";
    let issuer = TokenIssuer::start(&dir.path().join("issuer"), "tester", password);
    let registry =
        Registry::start(&dir.path().join("registry"), &Auth::Token { issuer: Arc::clone(&issuer) });
    let host = registry.host();
    let creds = format!("tester:{password}");
    push_images(dir.path(), &host, &["--dest-tls-verify=false", "--dest-creds", &creds]);
    let app = format!("docker://{host}/app:1");
    let (code, _, stderr) = squash(dir.path(), &["inspect", &app]);
    assert_eq!(code, 2);
    assert!(stderr.contains("token service") && stderr.contains("401"), "{stderr}");
    let elsewhere = format!("docker://{host}/team/app:squashed");
    let (code, stdout, stderr) = squash(
        dir.path(),
        &[&app, "--from-layer", "1", "-o", &elsewhere, "--creds", &creds, "--json", "-q"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(outcome(&stdout)["transfer"]["blobs_mounted"].as_u64() >= Some(1), "{stdout}");
    let issued = issuer.issued.lock().expect("issued").clone();
    assert!(
        issued
            .iter()
            .any(|s| s.contains("repository:team/app:pull,push")
                && s.contains("repository:app:pull")),
        "one token for the mount's two repositories: {issued:?}"
    );
    let insecure = ["--src-tls-verify=false", "--src-creds", creds.as_str()];
    same(
        &copied_out(&elsewhere, dir.path(), "squashed", &insecure),
        &copied_out(&app, dir.path(), "original", &insecure),
        "with tokens",
    );
}

/// Two platforms and an attestation in an index, pushed by skopeo: squashed in the registry,
/// every platform checked against its original through the model.
#[test]
fn a_multi_platform_index_is_squashed_in_the_registry() {
    if !ready(&["docker-registry", "skopeo"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = Registry::start(&dir.path().join("registry"), &Auth::None);
    let host = registry.host();
    let image = |arch: &str| {
        let mut b = ImageBuilder::new(LayerCompression::Gzip);
        b.layer(LayerBuilder::new().dir("etc").file("etc/arch", arch.as_bytes()).finish(), "ADD /");
        b.layer(
            LayerBuilder::new().dir("srv").file("srv/a", b"1").file("srv/b", b"2").finish(),
            "RUN one",
        );
        b.layer(LayerBuilder::new().whiteout("srv/a").file("srv/c", b"3").finish(), "RUN two");
        b
    };
    let (amd, arm) = (image("amd64"), image("arm64"));
    let layout = dir.path().join("multi");
    ImageBuilder::write_multi_platform_layout(
        &layout,
        "multi",
        &[("linux/amd64", &amd), ("linux/arm64", &arm)],
    );
    let original = format!("docker://{host}/multi:1");
    let source = format!("oci:{}:multi", layout.display());
    skopeo(&["copy", "-q", "--all", "--dest-tls-verify=false", &source, &original]);
    let squashed = format!("docker://{host}/multi:squashed");
    // Verified: every platform read back from the registry before the tag is put.
    let (code, stdout, stderr) = squash(
        dir.path(),
        &[&original, "--from-layer", "2", "-o", &squashed, "--json", "--verify"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("each of the 2 written images equals the input's"), "{stderr}");
    let written = outcome(&stdout);
    assert_eq!(written["images"].as_array().map(Vec::len), Some(2), "{written}");
    assert!(written["pushed"].as_str().is_some_and(|p| p.contains("/multi@sha256:")));
    let index = manifest(&squashed, &["--tls-verify=false"]);
    assert_eq!(index["manifests"].as_array().map(Vec::len), Some(2), "attestation dropped");
    for arch in ["amd64", "arm64"] {
        let platform =
            ["--src-tls-verify=false", "--override-os", "linux", "--override-arch", arch];
        let before = copied_out(&original, dir.path(), &format!("before-{arch}"), &platform);
        let after = copied_out(&squashed, dir.path(), &format!("after-{arch}"), &platform);
        same(&after, &before, arch);
        let inspected: Value = serde_json::from_slice(&skopeo(&[
            "inspect",
            "--tls-verify=false",
            "--override-os",
            "linux",
            "--override-arch",
            arch,
            &squashed,
        ]))
        .expect("inspect");
        let layers = inspected["Layers"].as_array().map(Vec::len);
        assert_eq!(layers, Some(2), "{arch}: the base and one new layer");
    }
}

/// A plain registry behind the fault proxy, with the app image pushed.
fn faulty(
    dir: &Path,
    choose: Arc<dyn Fn(&Request) -> Fault + Send + Sync>,
) -> (Arc<Mutex<Registry>>, FaultProxy, Vec<String>) {
    let registry = Registry::start(&dir.join("registry"), &Auth::None);
    let host = registry.host();
    let (_, app_layers) = push_images(dir, &host, &["--dest-tls-verify=false"]);
    let proxy = FaultProxy::start(host, choose);
    (Arc::new(Mutex::new(registry)), proxy, app_layers)
}

/// A download cut halfway resumes where it stopped; a 429 is waited out (its `Retry-After`).
#[test]
fn a_cut_download_resumes_and_a_429_is_waited_out() {
    if !ready(&["docker-registry", "skopeo"]) || !Path::new("/bin/busybox").exists() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let top: Arc<Mutex<String>> = Arc::default();
    let (cuts, refusals) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let chooser = {
        let (top, cuts, refusals) = (Arc::clone(&top), Arc::clone(&cuts), Arc::clone(&refusals));
        Arc::new(move |r: &Request| {
            let top = top.lock().map(|t| t.clone()).unwrap_or_default();
            if r.method == "GET" && !top.is_empty() && r.path.ends_with(&top) {
                if cuts.fetch_add(1, Ordering::SeqCst) == 0 {
                    return Fault::CutAfter(20_000);
                }
            } else if r.method == "GET"
                && r.path.contains("/manifests/")
                && refusals.fetch_add(1, Ordering::SeqCst) == 0
            {
                return Fault::Status(429);
            }
            Fault::Pass
        })
    };
    let (registry, proxy, app_layers) = faulty(dir.path(), chooser);
    *top.lock().expect("top") = app_layers.last().expect("a layer").clone();
    let app = format!("docker://{}/app:1", proxy.host());
    let out = format!("oci:{}:t", dir.path().join("out").display());
    let started = std::time::Instant::now();
    let (code, _, stderr) = squash(dir.path(), &[&app, "--from-layer", "2", "-o", &out]);
    assert_eq!(code, 0, "{stderr}");
    assert!(cuts.load(Ordering::SeqCst) >= 2, "the cut download was asked again");
    assert!(refusals.load(Ordering::SeqCst) >= 2, "the refused manifest was asked again");
    assert!(started.elapsed() >= std::time::Duration::from_secs(1), "Retry-After: 1 honoured");
    let host = registry.lock().expect("registry").host();
    let original = copied_out(
        &format!("docker://{host}/app:1"),
        dir.path(),
        "original",
        &["--src-tls-verify=false"],
    );
    same(&model(&dir.path().join("out")), &original, "resumed");
}

/// A blob whose bytes do not match its digest fails the run, and nothing is pushed.
#[test]
fn wrong_bytes_from_the_registry_push_nothing() {
    if !ready(&["docker-registry", "skopeo"]) || !Path::new("/bin/busybox").exists() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let top: Arc<Mutex<String>> = Arc::default();
    let chooser = {
        let top = Arc::clone(&top);
        Arc::new(move |r: &Request| {
            let top = top.lock().map(|t| t.clone()).unwrap_or_default();
            if r.method == "GET" && !top.is_empty() && r.path.ends_with(&top) {
                return Fault::Corrupt(5_000);
            }
            Fault::Pass
        })
    };
    let (registry, proxy, app_layers) = faulty(dir.path(), chooser);
    let digest = app_layers.last().expect("a layer").clone();
    *top.lock().expect("top") = digest.clone();
    let before = registry.lock().expect("registry").requests().len();
    let app = format!("docker://{}/app:1", proxy.host());
    let target = format!("docker://{}/app:squashed", proxy.host());
    let (code, _, stderr) = squash(dir.path(), &[&app, "--from-layer", "2", "-o", &target]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("layer 3") && stderr.contains(&digest[..19]), "{stderr}");
    let requests = registry.lock().expect("registry").requests()[before..].to_vec();
    assert!(
        !requests.iter().any(|r| r.starts_with("PUT ") || r.starts_with("POST ")),
        "something was pushed:\n{}",
        requests.join("\n")
    );
}

/// The registry dies during the push: the run fails, the target tag still names what it named,
/// and a rerun succeeds.
#[test]
fn a_push_cut_short_moves_no_tag_and_a_rerun_succeeds() {
    if !ready(&["docker-registry", "skopeo"]) || !Path::new("/bin/busybox").exists() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let victim: Arc<Mutex<Option<Arc<Mutex<Registry>>>>> = Arc::default();
    let chooser = {
        let victim = Arc::clone(&victim);
        Arc::new(move |r: &Request| {
            if r.method == "POST" && r.path.ends_with("/blobs/uploads/") {
                if let Some(registry) = victim.lock().ok().and_then(|mut v| v.take()) {
                    registry.lock().expect("registry").stop();
                    return Fault::Drop;
                }
            }
            Fault::Pass
        })
    };
    let (registry, proxy, _) = faulty(dir.path(), chooser);
    let host = registry.lock().expect("registry").host();
    // The target tag names the base image before the run.
    skopeo(&[
        "copy",
        "-q",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{host}/base:1"),
        &format!("docker://{host}/app:target"),
    ]);
    let tagged = || manifest(&format!("docker://{host}/app:target"), &["--tls-verify=false"]);
    let before = tagged();
    *victim.lock().expect("victim") = Some(Arc::clone(&registry));
    let app = format!("docker://{}/app:1", proxy.host());
    let target = format!("docker://{}/app:target", proxy.host());
    let args = [app.as_str(), "--from-layer", "2", "-o", target.as_str(), "--retries", "1"];
    let (code, _, stderr) = squash(dir.path(), &args);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains(&format!("docker://{}/app", proxy.host())), "{stderr}");
    registry.lock().expect("registry").start_again();
    assert_eq!(tagged(), before, "the tag did not move");
    let (code, _, stderr) = squash(dir.path(), &args);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(layer_digests(&tagged()).len(), 3, "the tag names the squashed image now");
}
