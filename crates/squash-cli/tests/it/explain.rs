//! `report` says why bytes are waste and what to change, `diff` shows the config edits a
//! rewrite made, `inspect` shows what a container runs with: on testkit images and on an image
//! built by a Docker daemon of the test's own.

use std::path::Path;

use squash_testkit::engines::output;
use squash_testkit::{ImageBuilder, LayerBuilder, LayerCompression};

use crate::contract::squash;

/// A lists cache removed later and a file stored again by a chmod, as `app.tar`.
fn cached_image(dir: &Path) -> String {
    let mut b = ImageBuilder::new(LayerCompression::Gzip);
    b.layer(LayerBuilder::new().file("etc/os-release", b"ID=x\n").finish(), "FROM base");
    b.layer(
        LayerBuilder::new().file("var/lib/apt/lists/main", &vec![b'l'; 300_000]).finish(),
        "RUN apt-get update",
    );
    b.layer(
        LayerBuilder::new()
            .file_with("usr/bin/tool", &vec![b't'; 200_000], 0o755, 0, 0, &[])
            .finish(),
        "RUN apt-get install -y tool",
    );
    b.layer(
        LayerBuilder::new().whiteout("var/lib/apt/lists").finish(),
        "RUN rm -rf /var/lib/apt/lists",
    );
    b.layer(
        LayerBuilder::new()
            .file_with("usr/bin/tool", &vec![b't'; 200_000], 0o700, 0, 0, &[])
            .finish(),
        "RUN chmod 700 /usr/bin/tool",
    );
    let path = dir.join("app.tar");
    b.write_docker_archive(&path, "app:1");
    path.display().to_string()
}

#[test]
fn the_text_report_tells_causes_first_then_layers_then_stories() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = cached_image(dir.path());
    let (code, text, err) = squash(&["report", &input, "--from-layer", "4"]);
    assert_eq!(code, 0, "{err}");
    let at = |needle: &str| text.find(needle).unwrap_or_else(|| panic!("`{needle}` in\n{text}"));
    assert_eq!(at("the biggest causes and how to fix them:"), 0, "{text}");
    assert!(at("  1. 300.0 kB in 1 file, apt package manager lists and caches: stored by layer 1, made waste by layer 3") < at("  2. 200.0 kB"));
    assert!(text.contains("  2. 200.0 kB in 1 file, stored again for a metadata change: stored by layer 2, made waste by layer 4\n"), "{text}");
    assert!(text.contains("     wasted by:  RUN chmod 700 /usr/bin/tool\n"), "{text}");
    assert!(text.contains(&format!("     or squash:  squash {input} --layers 2..4 -o {}-squashed.tar   (reclaims 200.0 kB)\n", input.trim_end_matches(".tar"))), "{text}");
    assert!(
        at("the biggest causes") < at("COMPRESSED  UNCOMPRESSED")
            && at("COMPRESSED  UNCOMPRESSED") < at("top wasted paths")
    );
    assert!(
        text.contains(
            "            layer 4 metadata: mode 0755 -> 0700   RUN chmod 700 /usr/bin/tool\n"
        ),
        "{text}"
    );
    assert!(text.contains("            layer 3 deleted: parent var/lib/apt/lists deleted   RUN rm -rf /var/lib/apt/lists\n"), "{text}");
    // The command a cause prints reclaims what it says.
    let out = dir.path().join("app-squashed.tar");
    let (code, _, err) =
        squash(&[&input, "--layers", "2..4", "-o", &out.display().to_string(), "-q"]);
    assert_eq!(code, 0, "{err}");
    let (_, after, _) = squash(&["report", &out.display().to_string(), "--json"]);
    let after: serde_json::Value = serde_json::from_str(&after).expect("json");
    let causes = after["causes"].as_array().expect("causes");
    assert_eq!(causes.len(), 1, "only the lists remain: {causes:#?}");
    assert_eq!(causes[0]["kind"], "package_cache");
}

/// A base made by `docker import` has a history step with a comment and no command: the text
/// says so, where it would otherwise claim there is no step, and the JSON has no `created_by`.
#[test]
fn a_layer_whose_history_names_no_command_is_said_to_have_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut b = ImageBuilder::new(LayerCompression::Gzip);
    b.imported_layer(
        LayerBuilder::new().file("usr/share/doc/big", &vec![b'd'; 100_000]).finish(),
        "Imported from -",
    );
    b.layer(
        LayerBuilder::new().whiteout("usr/share/doc/big").finish(),
        "RUN rm /usr/share/doc/big",
    );
    let path = dir.path().join("imported.tar");
    b.write_docker_archive(&path, "imported:1");
    let input = path.display().to_string();
    let (code, text, err) = squash(&["report", &input]);
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("     stored by:  (the image's history names no command)\n"), "{text}");
    assert!(text.contains("     wasted by:  RUN rm /usr/share/doc/big\n"), "{text}");
    // The path's story names no step for the imported layer, rather than an empty one.
    assert!(text.contains("\n            layer 0 added\n"), "{text}");
    let html = dir.path().join("report.html");
    let (code, _, err) = squash(&["report", &input, "--html", &html.display().to_string()]);
    assert_eq!(code, 0, "{err}");
    let page = std::fs::read_to_string(&html).expect("html");
    assert!(page.contains("layer 0 added") && !page.contains("layer 0 added ()"), "{page}");
    let (_, json, _) = squash(&["report", &input, "--json"]);
    let report: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert!(report["layers"][0]["created_by"].is_null(), "{}", report["layers"][0]);
    assert!(report["causes"][0]["stored_by"]["created_by"].is_null(), "{}", report["causes"]);
}

/// A file stored again exactly as it was (a hard link to it, on overlayfs, copies it into the
/// step's layer) is said to be stored again unchanged, with a fix that names what does that, not
/// a chmod; a file stored again with a new mode or owner keeps the metadata wording, with a fix
/// that names the command (chmod, chown) and, for a file a COPY stored, its flag; one stored
/// again with only a new time gets a fix about what rewrites or touches a file.
#[test]
fn a_file_stored_again_as_it_was_is_not_blamed_on_a_metadata_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut b = ImageBuilder::new(LayerCompression::Gzip);
    b.layer(LayerBuilder::new().file("etc/base", b"base").finish(), "ADD base.tar /");
    b.layer(
        LayerBuilder::new()
            .file("opt/data", &vec![b'a'; 200_000])
            .file("opt/tool", &vec![b't'; 100_000])
            .file("opt/conf", &vec![b'c'; 50_000])
            .finish(),
        "RUN make install",
    );
    b.layer(
        LayerBuilder::new()
            .file("opt/data", &vec![b'a'; 200_000])
            .hardlink("opt/data-link", "opt/data")
            .finish(),
        "RUN ln /opt/data /opt/data-link",
    );
    b.layer(
        LayerBuilder::new().file_with("opt/tool", &vec![b't'; 100_000], 0o755, 0, 0, &[]).finish(),
        "RUN chmod 755 /opt/tool",
    );
    b.layer(
        LayerBuilder::new().mtime(1_700_000_000).file("opt/conf", &vec![b'c'; 50_000]).finish(),
        "RUN sed -i s/old/new/ /opt/conf",
    );
    b.layer(
        LayerBuilder::new().file("opt/big", &vec![b'b'; 120_000]).finish(),
        "COPY big /opt/big",
    );
    b.layer(
        LayerBuilder::new()
            .file_with("opt/big", &vec![b'b'; 120_000], 0o644, 1000, 1000, &[])
            .finish(),
        "RUN chown 1000:1000 /opt/big",
    );
    let path = dir.path().join("app.tar");
    b.write_docker_archive(&path, "app:1");
    let input = path.display().to_string();
    let (code, json, err) = squash(&["report", &input, "--json"]);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&json).expect("json");
    let causes = report["causes"].as_array().expect("causes");
    let by = |step: &str| {
        causes
            .iter()
            .find(|c| c["wasted_by"]["created_by"].as_str().is_some_and(|s| s.contains(step)))
            .unwrap_or_else(|| panic!("no cause made by {step}: {causes:#?}"))
    };
    let linked = by("RUN ln ");
    assert_eq!(linked["kind"], "metadata_only", "{linked:#?}");
    assert_eq!(linked["unchanged"], true, "{linked:#?}");
    assert!(linked["fix"].as_str().is_some_and(|f| f.contains("`ln`")), "{linked:#?}");
    assert_eq!(linked["bytes"], 200_000, "{linked:#?}");
    let chmod = by("RUN chmod ");
    assert_eq!(chmod["kind"], "metadata_only", "{chmod:#?}");
    assert!(chmod.get("unchanged").is_none(), "{chmod:#?}");
    // A RUN made the file: the fix is to chmod it there, not a COPY flag.
    let fix = chmod["fix"].as_str().unwrap_or_default();
    assert!(fix.starts_with("chmod it in the same RUN that creates it"), "{chmod:#?}");
    // A COPY stored it and a chown made it waste: the COPY flag for the owner, and a chown.
    let chown = by("RUN chown ");
    let fix = chown["fix"].as_str().unwrap_or_default();
    assert!(fix.contains("(`COPY --chown=…`): a later chown stores"), "{chown:#?}");
    let touched = by("RUN sed ");
    assert_eq!(touched["kind"], "metadata_only", "{touched:#?}");
    assert!(touched.get("unchanged").is_none(), "{touched:#?}");
    assert!(touched["fix"].as_str().is_some_and(|f| f.contains("`sed -i`")), "{touched:#?}");
    let (code, text, err) = squash(&["report", &input]);
    assert_eq!(code, 0, "{err}");
    assert!(
        text.contains("stored again unchanged: stored by layer 1, made waste by layer 2"),
        "{text}"
    );
    assert!(
        text.contains("100.0 kB in 1 file, stored again for a metadata change: stored by layer 1"),
        "{text}"
    );
    let (code, markdown, err) = squash(&["report", &input, "--format", "markdown"]);
    assert_eq!(code, 0, "{err}");
    assert!(markdown.contains("| stored again unchanged |"), "{markdown}");
}

/// A cause's fix is printed whole in Markdown, its apostrophes as they are and its code in
/// pairs of backticks, even for a path with a backtick or a pipe; the HTML page sets the code
/// apart in `<code>`, the squash command too.
#[test]
fn a_fix_is_whole_in_markdown_and_its_code_set_apart_in_html() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut b = ImageBuilder::new(LayerCompression::Gzip);
    b.layer(LayerBuilder::new().file("etc/motd", &vec![b'm'; 80_000]).finish(), "ADD base.tar /");
    b.layer(LayerBuilder::new().file("opt/we`ird|name", &vec![b'w'; 150_000]).finish(), "RUN make");
    b.layer(
        LayerBuilder::new()
            .file_with("etc/motd", &vec![b'm'; 80_000], 0o600, 0, 0, &[])
            .whiteout("opt/we`ird|name")
            .finish(),
        "RUN chmod 600 /etc/motd && rm /opt/we*",
    );
    let path = dir.path().join("app.tar");
    b.write_docker_archive(&path, "app:1");
    let input = path.display().to_string();
    let (code, markdown, err) =
        squash(&["report", &input, "--from-layer", "2", "--format", "markdown"]);
    assert_eq!(code, 0, "{err}");
    let row = |needle: &str| {
        markdown
            .lines()
            .find(|l| l.starts_with('|') && l.contains(needle))
            .unwrap_or_else(|| panic!("no row with {needle} in\n{markdown}"))
    };
    let base = row("(in the base: not reclaimed by this squash)");
    assert!(base.contains("| the base image's copy is stored again: "), "{base}");
    assert!(base.contains("which stops sharing the base with other images | `squash "), "{base}");
    let deleted = row("150.0 kB in 1 file");
    assert!(deleted.contains("(`… && rm -rf /opt/we'ird\\|name`)"), "{deleted}");
    let html = dir.path().join("report.html");
    let (code, _, err) =
        squash(&["report", &input, "--from-layer", "2", "--html", &html.display().to_string()]);
    assert_eq!(code, 0, "{err}");
    let page = std::fs::read_to_string(&html).expect("html");
    assert!(page.contains("<code>--layers 0..2</code>"), "{page}");
    assert!(page.contains("<code>… &amp;&amp; rm -rf /opt/we'ird|name</code>"), "{page}");
    assert!(page.contains("<code>squash "), "{page}");
    assert!(!page.replace("we`ird", "").contains('`'), "a backtick outside the path:\n{page}");
}

/// The legacy builder's (and buildah's) history steps read as the Dockerfile said them in the
/// text, Markdown and HTML views and `inspect`'s table, with a `COPY`'s content digest cut so
/// that its destination shows; the JSON keeps them as the image has them.
#[test]
fn legacy_history_steps_read_as_the_dockerfile_said_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let digest = "da4e166f36585b0d4caec45c57672d29cd2c1f336673e04474e9f87af6f33c2d";
    let copy = format!("/bin/sh -c #(nop) COPY file:{digest} in /opt/big ");
    let mut b = ImageBuilder::new(LayerCompression::Gzip);
    b.layer(LayerBuilder::new().file("etc/os-release", b"ID=x\n").finish(), "ADD rootfs /");
    b.layer(LayerBuilder::new().file("opt/big", &vec![b'b'; 150_000]).finish(), &copy);
    b.layer(
        LayerBuilder::new().file_with("opt/big", &vec![b'b'; 150_000], 0o644, 7, 7, &[]).finish(),
        "|1 USER=7 /bin/sh -c chown $USER:$USER /opt/big",
    );
    let path = dir.path().join("legacy.tar");
    b.write_docker_archive(&path, "legacy:1");
    let input = path.display().to_string();
    let (code, text, err) = squash(&["report", &input]);
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("     stored by:  COPY file:da4e166f3658… in /opt/big\n"), "{text}");
    assert!(text.contains("     wasted by:  RUN chown $USER:$USER /opt/big\n"), "{text}");
    assert!(text.contains("  COPY file:da4e166f3658… in /opt/big\n"), "the layer table: {text}");
    assert!(!text.contains("/bin/sh -c"), "{text}");
    let (code, markdown, err) = squash(&["report", &input, "--format", "markdown"]);
    assert_eq!(code, 0, "{err}");
    assert!(markdown.contains("| 1: `COPY file:da4e166f3658… in /opt/big` |"), "{markdown}");
    let html = dir.path().join("report.html");
    let (code, _, err) = squash(&["report", &input, "--html", &html.display().to_string()]);
    assert_eq!(code, 0, "{err}");
    let page = std::fs::read_to_string(&html).expect("html");
    assert!(page.contains("layer 2: RUN chown $USER:$USER /opt/big"), "{page}");
    assert!(!page.contains("/bin/sh -c"), "{page}");
    let (_, json, _) = squash(&["report", &input, "--json"]);
    let report: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(report["causes"][0]["stored_by"]["created_by"], copy.as_str());
    let (code, text, err) = squash(&["inspect", &input]);
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("  COPY file:da4e166f3658… in /opt/big\n"), "{text}");
}

#[test]
fn diff_shows_every_config_edit_and_nothing_after_a_plain_squash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = cached_image(dir.path());
    let plain = dir.path().join("plain.tar").display().to_string();
    let (code, _, err) = squash(&[&input, "--from-layer", "4", "-o", &plain, "-q"]);
    assert_eq!(code, 0, "{err}");
    let (code, text, err) = squash(&["diff", &input, &plain]);
    assert_eq!((code, text.as_str()), (0, "the filesystems are equal\n"), "{err}");
    let edited = dir.path().join("edited.tar").display().to_string();
    let (code, _, err) = squash(&[
        &input,
        "--from-layer",
        "1",
        "--label",
        "version=2",
        "--env",
        "MODE=prod",
        "--cmd",
        "[\"tool\",\"serve\"]",
        "--entrypoint",
        "[\"/usr/bin/tool\"]",
        "--user",
        "1000",
        "--workdir",
        "/srv",
        "-o",
        &edited,
        "-q",
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, text, err) = squash(&["diff", &input, &edited]);
    assert_eq!(code, 1, "{err}");
    for line in [
        "+ config labels.version: \"2\"",
        "+ config env.MODE: \"prod\"",
        "+ config entrypoint: [\"/usr/bin/tool\"]",
        "+ config cmd: [\"tool\",\"serve\"]",
        "+ config user: \"1000\"",
        "+ config workdir: \"/srv\"",
        "6 differences in the config and manifest",
        "the filesystems are equal",
    ] {
        assert!(text.lines().any(|l| l == line), "`{line}` in\n{text}");
    }
    let (_, json, _) = squash(&["diff", &input, &edited, "--json"]);
    let json: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(json["equal"], false);
    assert_eq!(json["config"].as_array().map(Vec::len), Some(6));
    let (code, text, _) = squash(&["diff", &input, &edited, "--ignore", "config"]);
    assert_eq!((code, text.as_str()), (0, "the filesystems are equal\n"));
}

#[test]
fn inspect_shows_what_a_container_runs_with() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = cached_image(dir.path());
    let edited = dir.path().join("edited.tar").display().to_string();
    let (code, _, err) = squash(&[
        &input,
        "--convert",
        "--label",
        "team=core",
        "--env",
        "MODE=prod",
        "--cmd",
        "[\"tool\"]",
        "--user",
        "1000",
        "--workdir",
        "/srv",
        "-o",
        &edited,
        "-q",
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, text, err) = squash(&["inspect", &edited]);
    assert_eq!(code, 0, "{err}");
    for line in ["user:     1000", "workdir:  /srv", "cmd:      [\"tool\"]", "labels:   team=core"]
    {
        assert!(text.lines().any(|l| l == line), "`{line}` in\n{text}");
    }
    assert!(
        text.lines().any(|l| l.starts_with("env:") && l.ends_with("MODE=prod"))
            || text.lines().any(|l| l.trim() == "MODE=prod"),
        "{text}"
    );
    assert!(text.contains("size:     "), "{text}");
    assert!(text.contains(" uncompressed, in 5 layers\n"), "{text}");
    let header = text.lines().find(|l| l.starts_with("#  DIGEST")).expect("table");
    assert!(header.contains("CREATED  ") && header.ends_with("CREATED BY"), "{header}");
    let (_, json, _) = squash(&["inspect", &edited, "--json"]);
    let json: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(json["config"]["user"], "1000");
    assert_eq!(json["config"]["labels"]["team"], "core");
    assert!(json["uncompressed_size"].as_u64().unwrap_or(0) > 700_000);
}

/// A Docker-built image (the legacy builder, busybox steps): a big file added, chmod-ed, then
/// deleted; another added, then moved; a third copied in, then deleted; a fourth added, then
/// hard-linked. The report names the `RUN` that stored the metadata-only copy, and what changed,
/// tells the move from a deletion, does not tell to delete a copied file in the `RUN` that
/// created it, and says the linked file was stored again unchanged.
#[test]
fn a_docker_built_image_names_the_run_that_stored_a_metadata_only_copy() {
    let tools = ["dockerd", "docker"];
    if !tools.iter().all(|t| squash_testkit::tool_available(t)) || !crate::engines::busybox() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, base) = crate::engines::images(dir.path());
    let docker = crate::engines::start_docker("explain");
    docker.load(&base).expect("load");
    let context = dir.path().join("context");
    std::fs::create_dir_all(&context).expect("context");
    std::fs::write(
        context.join("Dockerfile"),
        "FROM squash-test/base:1\n\
         RUN busybox head -c 3000000 /dev/urandom > /big\n\
         RUN busybox chmod 600 /big\n\
         RUN busybox rm /big\n\
         RUN busybox head -c 1000000 /dev/urandom > /download\n\
         RUN busybox mv /download /installed\n\
         COPY payload.bin /payload.bin\n\
         RUN busybox rm /payload.bin\n\
         RUN busybox head -c 400000 /dev/urandom > /kept\n\
         RUN busybox ln /kept /kept-link\n",
    )
    .expect("Dockerfile");
    std::fs::write(context.join("payload.bin"), vec![b'p'; 500_000]).expect("payload");
    output(
        docker
            .cmd()
            .env("DOCKER_BUILDKIT", "0")
            .args(["build", "--network", "none", "-q", "-t", "explain/app:1"])
            .arg(&context),
    );
    let archive = dir.path().join("app.tar");
    output(docker.cmd().args(["save", "-o"]).arg(&archive).arg("explain/app:1"));
    let (code, json, err) = squash(&["report", &archive.display().to_string(), "--json"]);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&json).expect("json");
    let causes = report["causes"].as_array().expect("causes");
    let metadata = causes
        .iter()
        .find(|c| c["kind"] == "metadata_only")
        .unwrap_or_else(|| panic!("no metadata-only cause: {causes:#?}"));
    let step = metadata["wasted_by"]["created_by"].as_str().unwrap_or_default();
    assert!(step.contains("chmod 600 /big"), "{metadata:#?}");
    assert!(metadata["bytes"].as_u64() == Some(3_000_000), "{metadata:#?}");
    let deleted = causes
        .iter()
        .find(|c| c["kind"] == "deleted_later")
        .unwrap_or_else(|| panic!("no deleted cause: {causes:#?}"));
    assert!(deleted["wasted_by"]["created_by"].as_str().unwrap_or("").contains("rm /big"));
    let moved = causes
        .iter()
        .find(|c| c["kind"] == "moved")
        .unwrap_or_else(|| panic!("no moved cause: {causes:#?}"));
    let step = moved["wasted_by"]["created_by"].as_str().unwrap_or_default();
    assert!(step.contains("mv /download /installed"), "{moved:#?}");
    // overlayfs copies a file up to link it: the same file, stored again unchanged.
    let linked = causes
        .iter()
        .find(|c| c["unchanged"] == true)
        .unwrap_or_else(|| panic!("no cause stored again unchanged: {causes:#?}"));
    let step = linked["wasted_by"]["created_by"].as_str().unwrap_or_default();
    assert!(step.contains("ln /kept /kept-link"), "{linked:#?}");
    assert_eq!(linked["kind"], "metadata_only", "{linked:#?}");
    assert_eq!(linked["bytes"].as_u64(), Some(400_000), "{linked:#?}");
    assert_eq!(moved["bytes"].as_u64(), Some(1_000_000), "{moved:#?}");
    assert!(moved["fix"].as_str().unwrap_or_default().contains("/installed"), "{moved:#?}");
    let big = report["wasted_paths"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["path"] == "big"))
        .unwrap_or_else(|| panic!("no row for big: {}", report["wasted_paths"]));
    let actions: Vec<&str> = big["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(actions, ["added", "metadata", "deleted"]);
    let changed = &big["events"][1]["changed"];
    assert_eq!(changed[0]["field"], "mode", "{changed}");
    assert_eq!(changed[0]["to"], "0600", "{changed}");
    let copied = causes
        .iter()
        .find(|c| c["bytes"] == 500_000)
        .unwrap_or_else(|| panic!("no cause for the copied payload: {causes:#?}"));
    assert_eq!(copied["kind"], "deleted_later", "{copied:#?}");
    assert!(copied["stored_by"]["created_by"].as_str().unwrap_or("").contains("COPY"));
    assert!(copied["fix"].as_str().unwrap_or("").contains("--mount=type=bind"), "{copied:#?}");
    let (_, text, _) = squash(&["report", &archive.display().to_string()]);
    assert!(text.contains("stored again for a metadata change"), "{text}");
    assert!(text.contains("chmod 600 /big"), "{text}");
    assert!(text.contains("moved by a later step"), "{text}");
}
