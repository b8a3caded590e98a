//! Images through pipes: `-` (and any non-seekable path) as input, spooled and removed again;
//! archives that are themselves compressed, read through a decompressed copy; `-o -` as an
//! archive on standard output, byte for byte what the same run writes to a file.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use squash_testkit::{noise, ImageBuilder, LayerBuilder, LayerCompression};

const BIN: &str = env!("CARGO_BIN_EXE_squash");

/// Runs squash with `stdin` as its input and `TMPDIR=tmp`; returns code, stdout bytes, stderr.
fn run(args: &[&str], stdin: Option<&[u8]>, tmp: &Path) -> (i32, Vec<u8>, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .env("TMPDIR", tmp)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        let bytes = bytes.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        });
    }
    let out = child.wait_with_output().expect("wait");
    (out.status.code().unwrap_or(-1), out.stdout, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn archive(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let base = LayerBuilder::new().dir("etc").file("etc/os", b"base").finish();
    let mut b = ImageBuilder::new(LayerCompression::Gzip);
    b.layer(base.clone(), "ADD base");
    let base_path = dir.join("base.tar");
    b.write_docker_archive(&base_path, "base:1");
    b.layer(LayerBuilder::new().file("etc/big", &noise(300_000, 5)).finish(), "RUN big");
    b.layer(LayerBuilder::new().whiteout("etc/big").file("etc/small", b"s").finish(), "RUN rm");
    let app = dir.join("app.tar");
    b.write_docker_archive(&app, "app:1");
    (app, base_path)
}

fn empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).expect("read_dir").next().is_none()
}

#[test]
fn standard_input_and_pipes_are_spooled_then_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tmp = tempfile::tempdir().expect("tmp");
    let (app, base) = archive(dir.path());
    let bytes = std::fs::read(&app).expect("read");
    let file_out = dir.path().join("from-file.tar");
    let (code, _, stderr) = run(
        &[
            app.to_str().expect("utf8"),
            "--from-layer",
            "base",
            "--base",
            base.to_str().expect("utf8"),
            "-o",
            file_out.to_str().expect("utf8"),
            "-q",
        ],
        None,
        tmp.path(),
    );
    assert_eq!(code, 0, "{stderr}");
    let expected = std::fs::read(&file_out).expect("out");
    // `-` and /dev/stdin.
    for input in ["-", "/dev/stdin", "docker-archive:-"] {
        let out = dir.path().join("from-stdin.tar");
        let (code, _, stderr) = run(
            &[
                input,
                "--from-layer",
                "base",
                "--base",
                base.to_str().expect("utf8"),
                "-o",
                out.to_str().expect("utf8"),
                if input == "-" { "-v" } else { "-q" },
            ],
            Some(&bytes),
            tmp.path(),
        );
        assert_eq!(code, 0, "{input}: {stderr}");
        if input == "-" {
            // With -v, the spool is the first step, timed as the others are.
            let first = stderr.lines().find(|l| l.starts_with("squash: ["));
            assert!(
                first.is_some_and(|l| l.ends_with(
                    "] reading the input into a spool (each member \
                     hashed as it arrives)"
                )),
                "{stderr}"
            );
        }
        assert_eq!(
            std::fs::read(&out).expect("out"),
            expected,
            "{input}: the same bytes as from the file"
        );
        assert!(empty(tmp.path()), "{input}: the spool is removed");
    }
    // A pipe given as a path (process substitution).
    if Command::new("bash").arg("--version").output().is_ok() {
        let out = dir.path().join("from-pipe.tar");
        let script = format!(
            "\"$0\" <(cat '{}') --from-layer base --base '{}' -o '{}' -q",
            app.display(),
            base.display(),
            out.display()
        );
        let status = Command::new("bash")
            .args(["-c", &script, BIN])
            .env("TMPDIR", tmp.path())
            .status()
            .expect("bash");
        assert!(status.success());
        assert_eq!(std::fs::read(&out).expect("out"), expected);
        assert!(empty(tmp.path()));
    }
    // inspect and report read stdin too.
    let (code, stdout, stderr) = run(&["inspect", "--json", "-"], Some(&bytes), tmp.path());
    assert_eq!(code, 0, "{stderr}");
    let doc: squash::document::InspectDocument = serde_json::from_slice(&stdout).expect("json");
    assert_eq!((doc.input.path.as_str(), doc.layers.len()), ("-", 3));
    let (code, _, stderr) = run(&["report", "-"], Some(&bytes), tmp.path());
    assert_eq!(code, 0, "{stderr}");
    assert!(empty(tmp.path()));
    // A bad stream: a clear error, and no spool left.
    let (code, _, stderr) = run(&["inspect", "-"], Some(&bytes[..bytes.len() / 2]), tmp.path());
    assert_eq!(code, 2, "{stderr}");
    assert!(!stderr.contains("checksum") || stderr.contains("tar"), "{stderr}");
    assert!(empty(tmp.path()));
    // --tmp-dir chooses where the spool goes; a full disk there names the spool.
    let script = "trap '' XFSZ; ulimit -f 64; exec \"$0\" \"$@\"";
    let result = Command::new("sh")
        .args(["-c", script, BIN, "inspect", "-", "--tmp-dir"])
        .arg(tmp.path())
        .stdin(std::fs::File::open(&app).expect("open"))
        .output()
        .expect("sh");
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("spool"), "names the spool: {stderr}");
    assert!(empty(tmp.path()));
}

#[test]
fn an_interrupted_spool_is_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tmp = tempfile::tempdir().expect("tmp");
    let (app, _) = archive(dir.path());
    let bytes = std::fs::read(&app).expect("read");
    for (signal, code) in [("-INT", 130), ("-TERM", 143)] {
        let mut child = Command::new(BIN)
            .args([
                "-",
                "--from-layer",
                "1",
                "-o",
                dir.path().join("never.tar").to_str().expect("utf8"),
            ])
            .env("TMPDIR", tmp.path())
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        // Half the image, then the pipe stays open: squash is spooling.
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(&bytes[..bytes.len() / 2]).expect("write");
        let start = std::time::Instant::now();
        while empty(tmp.path()) {
            assert!(start.elapsed() < Duration::from_secs(20), "no spool appeared");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(100));
        assert!(Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill")
            .success());
        let status = child.wait().expect("wait");
        drop(pipe);
        assert_eq!(status.code(), Some(code), "{signal}");
        assert!(empty(tmp.path()), "{signal}: the spool is removed");
        assert!(!dir.path().join("never.tar").exists());
    }
}

#[test]
fn standard_output_carries_the_same_archive_as_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tmp = tempfile::tempdir().expect("tmp");
    let (app, base) = archive(dir.path());
    let bytes = std::fs::read(&app).expect("read");
    let common = ["--from-layer", "base", "--base", base.to_str().expect("utf8")];
    for (stream, file) in [
        (vec!["-o", "-"], "docker-archive:"),
        (vec!["-o", "docker-archive:-:app:squashed"], "docker-archive:"),
        (vec!["-o", "-", "--format", "oci-archive"], "oci-archive:"),
        (vec!["-o", "oci-archive:-"], "oci-archive:"),
    ] {
        let tag = stream
            .iter()
            .find_map(|a| a.strip_prefix("docker-archive:-:"))
            .map(|t| format!(":{t}"))
            .unwrap_or_default();
        let out = dir.path().join("file.tar");
        let mut args = vec![app.to_str().expect("utf8")];
        args.extend(common);
        let target = format!("{file}{}{tag}", out.display());
        let (code, _, stderr) =
            run(&[args.clone(), vec!["-o", &target, "-q"]].concat(), None, tmp.path());
        assert_eq!(code, 0, "{stderr}");
        let expected = std::fs::read(&out).expect("out");
        let (code, stdout, stderr) =
            run(&[args.clone(), stream.clone()].concat(), None, tmp.path());
        assert_eq!(code, 0, "{stream:?}: {stderr}");
        assert!(
            stdout == expected,
            "{stream:?}: stdout holds {} bytes, the file {}",
            stdout.len(),
            expected.len()
        );
        assert!(stderr.contains("wrote standard output"), "the summary goes to stderr: {stderr}");
        assert!(empty(tmp.path()), "{stream:?}: new layers' spools are removed");
        // From standard input to standard output, as in
        // `docker save | squash - … -o - | docker load`.
        let mut piped = vec!["-"];
        piped.extend(common);
        piped.extend(stream.iter().copied());
        let (code, stdout, stderr) = run(&piped, Some(&bytes), tmp.path());
        assert_eq!(code, 0, "{stderr}");
        assert!(stdout == expected, "{stream:?}: through both pipes");
        assert!(empty(tmp.path()));
    }
    // The JSON outcome goes to stderr with the image on stdout.
    let (code, stdout, stderr) = run(
        &[app.to_str().expect("utf8"), "--from-layer", "1", "-o", "-", "--json"],
        None,
        tmp.path(),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with(b"") && stdout.len() > 1024);
    let json_start = stderr.find('{').expect("json on stderr");
    let doc: squash::document::OutcomeDocument =
        serde_json::from_str(&stderr[json_start..]).expect("outcome");
    assert_eq!(doc.outcome.output, "-");
    // An OCI layout cannot be a stream.
    for bad in [
        vec!["-o", "oci:-"],
        vec!["-o", "-", "--format", "oci"],
        vec!["-o", "docker-archive:-", "--format", "oci-archive"],
    ] {
        let (code, stdout, stderr) = run(
            &[vec![app.to_str().expect("utf8"), "--from-layer", "1"], bad.clone()].concat(),
            None,
            tmp.path(),
        );
        assert_eq!(code, 2, "{bad:?}: {stderr}");
        assert!(stdout.is_empty(), "{bad:?}");
    }
    // What was streamed opens as an image.
    let streamed = dir.path().join("streamed.tar");
    let (code, stdout, _) = run(
        &[
            app.to_str().expect("utf8"),
            "--from-layer",
            "base",
            "--base",
            base.to_str().expect("utf8"),
            "-o",
            "-",
        ],
        None,
        tmp.path(),
    );
    assert_eq!(code, 0);
    std::fs::write(&streamed, &stdout).expect("write");
    let mut reader = std::fs::File::open(&streamed).expect("open");
    let mut head = [0u8; 512];
    reader.read_exact(&mut head).expect("header");
    let image =
        squash::Image::open(streamed.to_str().expect("utf8")).expect("the streamed archive opens");
    assert_eq!(image.layers().len(), 2);
    image.index_layers(0..2).expect("every layer verifies");
}

#[test]
fn every_option_streams_the_bytes_a_file_gets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tmp = tempfile::tempdir().expect("tmp");
    let (app, base) = archive(dir.path());
    let bytes = std::fs::read(&app).expect("read");
    let base = base.to_str().expect("utf8").to_string();
    let option_sets: Vec<Vec<&str>> = vec![
        vec!["--layers", "1..2"],
        vec!["--layers", "0..0", "--layers", "1..2"],
        vec!["--from-layer", "base", "--base", &base, "--compression", "zstd", "--level", "5"],
        vec!["--from-layer", "2", "--compression", "none"],
        vec![
            "--from-layer",
            "2",
            "--compression",
            "gzip",
            "--level",
            "1",
            "--drop-history",
            "--message",
            "squashed in CI",
        ],
    ];
    for options in option_sets {
        for epoch in [None, Some("1700000000")] {
            let out = dir.path().join("file.tar");
            let mut file_args = vec![app.to_str().expect("utf8")];
            file_args.extend(options.iter().copied());
            file_args.extend(["-o", out.to_str().expect("utf8"), "-q"]);
            let with_env = |args: &[&str], stdin: Option<&[u8]>| {
                let mut child = Command::new(BIN);
                child.args(args).env("TMPDIR", tmp.path());
                if let Some(e) = epoch {
                    child.env("SOURCE_DATE_EPOCH", e);
                }
                child
                    .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                let mut child = child.spawn().expect("spawn");
                if let Some(bytes) = stdin {
                    let mut pipe = child.stdin.take().expect("stdin");
                    let bytes = bytes.to_vec();
                    std::thread::spawn(move || {
                        let _ = pipe.write_all(&bytes);
                    });
                }
                child.wait_with_output().expect("wait")
            };
            let done = with_env(&file_args, None);
            assert!(
                done.status.success(),
                "{options:?}: {}",
                String::from_utf8_lossy(&done.stderr)
            );
            let expected = std::fs::read(&out).expect("out");
            let mut stream_args = vec!["-"];
            stream_args.extend(options.iter().copied());
            stream_args.extend(["-o", "-", "-q"]);
            let streamed = with_env(&stream_args, Some(&bytes));
            assert!(
                streamed.status.success(),
                "{options:?}: {}",
                String::from_utf8_lossy(&streamed.stderr)
            );
            assert!(
                streamed.stdout == expected,
                "{options:?} {epoch:?}: stdin to stdout differs from file to file"
            );
            assert!(empty(tmp.path()));
        }
    }
}

/// `bytes` compressed as `xz -6` or `bzip2 -9` would.
fn compress_archive(name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match name {
        "xz" => liblzma::read::XzEncoder::new(bytes, 6).read_to_end(&mut out),
        _ => bzip2::read::BzEncoder::new(bytes, bzip2::Compression::best()).read_to_end(&mut out),
    }
    .expect("compress");
    out
}

/// `docker save app | gzip` (or zstd, xz, bzip2: what `docker load` reads), from a file or a
/// pipe: read through a decompressed copy that goes away, with the same result as the plain
/// archive; a damaged stream names the file and leaves nothing; the compressed input itself
/// cannot be the output.
#[test]
fn compressed_archives_are_read_through_a_decompressed_copy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tmp = tempfile::tempdir().expect("tmp");
    let (app, base) = archive(dir.path());
    let plain = std::fs::read(&app).expect("read");
    let squash_to = |input: &str, out: &Path, stdin: Option<&[u8]>| {
        let args = [
            input,
            "--from-layer",
            "base",
            "--base",
            base.to_str().expect("utf8"),
            "-o",
            out.to_str().expect("utf8"),
            "-q",
        ];
        run(&args, stdin, tmp.path())
    };
    let expected_path = dir.path().join("from-plain.tar");
    let (code, _, stderr) = squash_to(app.to_str().expect("utf8"), &expected_path, None);
    assert_eq!(code, 0, "{stderr}");
    let expected = std::fs::read(&expected_path).expect("out");
    for name in ["gz", "zst", "xz", "bz2"] {
        let compressed = match name {
            "gz" => LayerCompression::Gzip.compress(&plain),
            "zst" => LayerCompression::Zstd.compress(&plain),
            "xz" => compress_archive("xz", &plain),
            _ => compress_archive("bzip2", &plain),
        };
        let path = dir.path().join(format!("app.tar.{name}"));
        std::fs::write(&path, &compressed).expect("write");
        for (input, stdin) in [
            (path.to_str().expect("utf8").to_string(), None),
            ("-".to_string(), Some(&compressed[..])),
        ] {
            let out = dir.path().join(format!("out-{name}.tar"));
            let (code, _, stderr) = squash_to(&input, &out, stdin);
            assert_eq!(code, 0, "{name} {input}: {stderr}");
            assert_eq!(
                std::fs::read(&out).expect("out"),
                expected,
                "{name} {input}: the same bytes as from the plain archive"
            );
            assert!(empty(tmp.path()), "{name} {input}: the copy is removed");
        }
        // inspect reads it too, under its own name.
        let (code, stdout, stderr) =
            run(&["inspect", "--json", path.to_str().expect("utf8")], None, tmp.path());
        assert_eq!(code, 0, "{stderr}");
        let doc: squash::document::InspectDocument = serde_json::from_slice(&stdout).expect("json");
        assert_eq!((doc.input.path.as_str(), doc.layers.len()), (path.to_str().expect("utf8"), 3));
        // The input itself is not an output.
        let before = std::fs::read(&path).expect("read");
        let (code, _, stderr) = squash_to(path.to_str().expect("utf8"), &path, None);
        assert_eq!(code, 2, "{name}: {stderr}");
        let refused = if matches!(name, "xz" | "bz2") {
            "but writes them plain" // a name squash does not write
        } else {
            "would overwrite the input"
        };
        assert!(stderr.contains(refused), "{name}: {stderr}");
        assert_eq!(std::fs::read(&path).expect("read"), before, "{name}: the input is unchanged");
        // Damaged: cut in the middle.
        let cut = dir.path().join(format!("cut.tar.{name}"));
        std::fs::write(&cut, &compressed[..compressed.len() / 2]).expect("write");
        let out = dir.path().join(format!("cut-{name}.tar"));
        let (code, _, stderr) = squash_to(cut.to_str().expect("utf8"), &out, None);
        assert_eq!(code, 2, "{name}: {stderr}");
        assert!(stderr.contains(&format!("cut.tar.{name}")), "{name}: names the file: {stderr}");
        assert!(!out.exists() && empty(tmp.path()), "{name}: nothing left behind");
    }
    // Compressed twice (a `.tar.zst` gzipped again): decompressed twice.
    let twice = dir.path().join("app.tar.zst.gz");
    std::fs::write(
        &twice,
        LayerCompression::Gzip.compress(&LayerCompression::Zstd.compress(&plain)),
    )
    .expect("write");
    let out = dir.path().join("out-twice.tar");
    let (code, _, stderr) = squash_to(twice.to_str().expect("utf8"), &out, None);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(std::fs::read(&out).expect("out"), expected);
    assert!(empty(tmp.path()));
    // An xz-compressed bzip2 archive: decompressed twice, whatever the codecs.
    let twice = dir.path().join("app.tar.bz2.xz");
    std::fs::write(&twice, compress_archive("xz", &compress_archive("bzip2", &plain)))
        .expect("write");
    let (code, _, stderr) = squash_to(twice.to_str().expect("utf8"), &out, None);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(std::fs::read(&out).expect("out"), expected);
    assert!(empty(tmp.path()));
    // Read, not written: an output named as xz says how to get one, and nothing is written.
    let named = dir.path().join("out.tar.xz");
    let (code, _, stderr) = squash_to(twice.to_str().expect("utf8"), &named, None);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains(&format!("`-o - | xz > {}`", named.display())), "{stderr}");
    assert!(!named.exists() && empty(tmp.path()));
    // A layout is a directory, whatever its name.
    let layout = format!("oci:{}", dir.path().join("layout.xz").display());
    let (code, _, stderr) = squash_to(twice.to_str().expect("utf8"), Path::new(&layout), None);
    assert_eq!(code, 0, "{stderr}");
    assert!(dir.path().join("layout.xz/index.json").is_file());
    // The magic and then garbage: the codec's error, naming the file and the codec.
    for (name, magic) in
        [("bzip2", &b"BZh91AY&SY"[..]), ("xz", &[0xfd, b'7', b'z', b'X', b'Z', 0, 0, 4][..])]
    {
        let path = dir.path().join(format!("garbage.tar.{name}"));
        std::fs::write(&path, [magic, &[0u8; 64][..]].concat()).expect("write");
        let (code, _, stderr) = run(&["inspect", path.to_str().expect("utf8")], None, tmp.path());
        assert_eq!(code, 2, "{name}: {stderr}");
        assert!(
            stderr.contains(&format!("garbage.tar.{name}`: the archive, {name}-compressed: ")),
            "{name}: {stderr}"
        );
        let (code, _, stderr) =
            run(&["inspect", "-"], Some(&[magic, &[0u8; 64][..]].concat()), tmp.path());
        assert_eq!(code, 2, "{name} on standard input: {stderr}");
        assert!(empty(tmp.path()), "{name}: nothing left behind");
    }
}
