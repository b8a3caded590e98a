//! Project chores: `cargo xtask bench` generates large images and times squash against the
//! physical limit (plain decompression + compression of the same bytes) and installed peers
//! (oci-squash; docker-squash when a Docker daemon answers);
//! `cargo xtask fuzz` mutates real and generated images and runs inspect, report and squash on
//! them in-process; `cargo xtask man` writes the man page; `cargo xtask ci` runs the checks CI
//! runs.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::json;
use sha2::{Digest, Sha256};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("bench") => bench(&args[1..]),
        Some("ci") => ci(),
        Some("fuzz") => fuzz(&args[1..]),
        Some("man") => man(),
        _ => {
            eprintln!(
                "usage: cargo xtask bench [--scale S] [--runs N] [--dir DIR] [--peers-only] \
                    [--entries N,N,…] | cargo xtask fuzz [--seconds N] [--seed S] \
                 | cargo xtask man | cargo xtask ci"
            );
            Ok(())
        }
    }
}

/// `cargo xtask man`: writes the man page (clap_mangen, through the CLI's hidden `manpage`
/// command) to target/man/squash.1.
fn man() -> Result<()> {
    let out = Command::new("cargo")
        .current_dir(root())
        .args(["run", "--quiet", "-p", "squash-cli", "--", "manpage"])
        .stderr(Stdio::inherit())
        .output()
        .context("running the CLI")?;
    if !out.status.success() {
        bail!("squash manpage failed");
    }
    let dir = root().join("target/man");
    fs::create_dir_all(&dir)?;
    fs::write(dir.join("squash.1"), &out.stdout)?;
    println!("wrote {}", dir.join("squash.1").display());
    Ok(())
}

/// The valid images of the shared fixtures that seed the fuzzer (small archives and layouts of
/// every shape the readers know).
const FUZZ_FIXTURES: [&str; 9] = [
    "wagoodman__dive/.data/test-docker-image.tar",
    "wagoodman__dive/.data/test-oci-gzip-image.tar",
    "wagoodman__dive/.data/test-oci-zstd-image.tar",
    "google__go-containerregistry/pkg/v1/mutate/testdata/whiteout_image.tar",
    "google__go-containerregistry/pkg/v1/mutate/testdata/overwritten_file.tar",
    "google__go-containerregistry/pkg/v1/mutate/testdata/whiteout_dir.tar",
    "google__go-containerregistry/pkg/v1/tarball/testdata/test_image_1.tar",
    "google__go-containerregistry/pkg/v1/tarball/testdata/hello-world-v25.tar",
    "containers__image/docker/archive/fixtures/almostempty.tar",
];

/// `cargo xtask fuzz [--seconds N] [--seed S]`: fuzzes for N seconds (default 60); findings are
/// saved under target/fuzz/crashes and make it fail. Copy each into tests/fuzz-corpus/ once
/// fixed.
fn fuzz(args: &[String]) -> Result<()> {
    let mut seconds = 60u64;
    let mut rng_seed = 1u64;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--seconds" => seconds = it.next().context("--seconds N")?.parse()?,
            "--seed" => rng_seed = it.next().context("--seed S")?.parse()?,
            other => bail!("unknown fuzz option `{other}`"),
        }
    }
    let fixtures = root().join("../shared/fixtures");
    let mut seeds = Vec::new();
    for fixture in FUZZ_FIXTURES {
        match squash_fuzz::Seed::from_reference(&fixtures.join(fixture).display().to_string()) {
            Some(seed) => seeds.push(seed),
            None => eprintln!("fuzz: seed `{fixture}` does not read cleanly; left out"),
        }
    }
    let from_fixtures = seeds.len();
    seeds.extend(squash_fuzz::Seed::generated(12));
    let scratch = root().join("target/fuzz/scratch");
    let crashes = root().join("target/fuzz/crashes");
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&scratch)?;
    squash_fuzz::install_panic_recorder();
    eprintln!(
        "fuzz: {} seeds ({from_fixtures} from the shared fixtures), {seconds} s, seed {rng_seed}",
        seeds.len()
    );
    let stats = squash_fuzz::fuzz(
        &seeds,
        rng_seed,
        std::time::Duration::from_secs(seconds),
        &scratch,
        &crashes,
    )?;
    let _ = fs::remove_dir_all(&scratch);
    let secs = stats.elapsed.as_secs_f64();
    println!(
        "fuzz: {} executions in {secs:.1} s ({:.0} exec/s), {} accepted through every step, {} \
            findings",
        stats.executions,
        stats.executions as f64 / secs.max(1e-9),
        stats.accepted,
        stats.findings.len()
    );
    for (path, finding, description) in &stats.findings {
        println!("  {}: {finding:?}\n    {description}", path.display());
    }
    if !stats.findings.is_empty() {
        bail!(
            "the fuzzer found {} problems (cases saved under {})",
            stats.findings.len(),
            crashes.display()
        );
    }
    Ok(())
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

fn ci() -> Result<()> {
    let cargo = || {
        let mut c = Command::new("cargo");
        c.current_dir(root());
        c
    };
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    run(cargo().args(["test", "--workspace"]))
}

/// A fast deterministic byte source.
struct Noise(u64);

impl Noise {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            let bytes = self.0.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// Text that compresses like real text files (about 4:1 with gzip).
fn text(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "package",
        "version",
        "depends",
        "libc6",
        "amd64",
        "description",
        "the",
        "a",
        "of",
        "install",
        "/usr/lib",
        "priority",
        "optional",
        "section",
        "size",
        "sha256",
    ];
    let mut noise = Noise(seed | 1);
    let mut out = Vec::with_capacity(len + 16);
    let mut word = [0u8; 8];
    while out.len() < len {
        noise.fill(&mut word);
        out.extend_from_slice(WORDS[(word[0] % 16) as usize].as_bytes());
        out.push(if word[1] % 9 == 0 { b'\n' } else { b' ' });
        if word[2] % 5 == 0 {
            out.extend_from_slice(
                format!("{:x}", u32::from_le_bytes([word[3], word[4], word[5], word[6]]))
                    .as_bytes(),
            );
        }
    }
    out.truncate(len);
    out
}

struct LayerWriter {
    builder: tar::Builder<BufWriter<File>>,
}

impl LayerWriter {
    fn create(path: &Path) -> Result<LayerWriter> {
        Ok(LayerWriter {
            builder: tar::Builder::new(BufWriter::with_capacity(1 << 20, File::create(path)?)),
        })
    }
    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(1_700_000_000);
        h
    }
    fn dir(&mut self, path: &str) -> Result<()> {
        let mut h = Self::header(tar::EntryType::Directory, 0o755, 0);
        self.builder.append_data(&mut h, path, io::empty())?;
        Ok(())
    }
    fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> Result<()> {
        let mut h = Self::header(tar::EntryType::Regular, mode, data.len() as u64);
        self.builder.append_data(&mut h, path, data)?;
        Ok(())
    }
    /// A large file streamed from a generator, never held in memory.
    fn big(
        &mut self,
        path: &str,
        mode: u32,
        size: u64,
        seed: u64,
        compressible: bool,
    ) -> Result<()> {
        let mut h = Self::header(tar::EntryType::Regular, mode, size);
        let reader = Generated {
            left: size,
            noise: Noise(seed | 1),
            compressible,
            seed,
            buf: Vec::new(),
            pos: 0,
        };
        self.builder.append_data(&mut h, path, reader)?;
        Ok(())
    }
    fn whiteout(&mut self, dir: &str, name: &str) -> Result<()> {
        self.file(&format!("{dir}/.wh.{name}"), 0o644, b"")
    }
    fn finish(self) -> Result<()> {
        self.builder.into_inner()?.flush()?;
        Ok(())
    }
}

struct Generated {
    left: u64,
    noise: Noise,
    compressible: bool,
    seed: u64,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for Generated {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        if self.pos == self.buf.len() {
            let n = (1 << 20).min(self.left) as usize;
            self.buf = if self.compressible {
                self.seed = self.seed.wrapping_add(1);
                text(n, self.seed)
            } else {
                let mut b = vec![0u8; n];
                self.noise.fill(&mut b);
                b
            };
            self.pos = 0;
        }
        let n = out.len().min(self.buf.len() - self.pos).min(self.left as usize);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        self.left -= n as u64;
        Ok(n)
    }
}

const MIB: u64 = 1 << 20;

/// An image of many small files, as `node_modules` or conda trees make: a base layer of `n`
/// files, then a layer adding `n / 2` more and one that rewrites half of those and adds
/// `n / 4` new ones, and deletes a directory of the base. The range above the base holds
/// `n` entries (and a few directories); the image `2n`.
fn write_entry_layers(dir: &Path, n: u64) -> Result<Vec<PathBuf>> {
    let paths: Vec<PathBuf> = (0..3).map(|i| dir.join(format!("layer{i}.tar"))).collect();
    let tree =
        |l: &mut LayerWriter, root: &str, files: std::ops::Range<u64>, seed: u64| -> Result<()> {
            for f in files {
                if f % 100 == 0 {
                    l.dir(&format!("{root}/package-{}", f / 100))?;
                    l.dir(&format!("{root}/package-{}/lib", f / 100))?;
                }
                l.file(
                    &format!("{root}/package-{}/lib/module-{f}.js", f / 100),
                    0o644,
                    &text(96, seed + f),
                )?;
            }
            Ok(())
        };
    let mut l = LayerWriter::create(&paths[0])?;
    for d in ["usr", "usr/lib", "usr/lib/node_modules"] {
        l.dir(d)?;
    }
    tree(&mut l, "usr/lib/node_modules", 0..n, 0)?;
    l.finish()?;
    let mut l = LayerWriter::create(&paths[1])?;
    for d in ["app", "app/node_modules"] {
        l.dir(d)?;
    }
    tree(&mut l, "app/node_modules", 0..n / 2, 1 << 40)?;
    l.finish()?;
    let mut l = LayerWriter::create(&paths[2])?;
    for d in ["app", "app/node_modules"] {
        l.dir(d)?;
    }
    tree(&mut l, "app/node_modules", n / 4..n / 2 + n / 4, 2 << 40)?;
    l.dir("usr/lib/node_modules")?;
    l.whiteout("usr/lib/node_modules", "package-0")?;
    l.finish()?;
    Ok(paths)
}

/// `--entries N,…`: time and peak RSS of a squash above the base (a range of N entries) and of
/// a report (2N entries), gzip layers, medians of `runs` rounds.
fn bench_entries(dir: &Path, counts: &[u64], runs: usize) -> Result<()> {
    run(Command::new("cargo").current_dir(root()).args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "squash-cli",
    ]))?;
    let squash = root().join("target/release/squash");
    println!(
        "entry-count series: gzip layers, a squash of every layer above the base, medians of \
        {runs} runs"
    );
    println!(
        "{:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "range", "squash s", "RSS MB", "B/entry", "report of", "report s", "RSS MB"
    );
    for &n in counts {
        let work = dir.join(format!("entries-{n}"));
        let _ = fs::remove_dir_all(&work);
        fs::create_dir_all(&work)?;
        let tars = write_entry_layers(&work, n)?;
        let layout = work.join("oci-gzip");
        write_layout(&layout, &tars, "gzip")?;
        let out = work.join("out");
        let squash_run = timed_median(runs, || {
            let _ = fs::remove_dir_all(&out);
            timed(
                Command::new(&squash)
                    .arg(format!("oci:{}:bench", layout.display()))
                    .args(["--from-layer", "2", "--quiet", "-o"])
                    .arg(format!("oci:{}:bench", out.display())),
            )
        })?;
        let report_run = timed_median(runs, || {
            timed(
                Command::new(&squash)
                    .arg("report")
                    .arg(format!("oci:{}:bench", layout.display()))
                    .args(["--from-layer", "2"]),
            )
        })?;
        println!(
            "{:>10} {:>10.2} {:>10.1} {:>10.0} {:>10} {:>10.2} {:>10.1}",
            n,
            squash_run.0,
            squash_run.1,
            squash_run.1 * 1e6 / n as f64,
            2 * n,
            report_run.0,
            report_run.1
        );
        if std::env::var_os("SQUASH_BENCH_KEEP").is_none() {
            fs::remove_dir_all(&work)?;
        }
    }
    Ok(())
}

/// The bench image: a base of small files, then incompressible and text data, a metadata-only
/// duplicate of a large directory, deletes and re-adds. File sizes scale with `scale`; the
/// number of entries does not, so that peak memory can be compared across sizes.
fn write_layers(dir: &Path, scale: f64) -> Result<Vec<PathBuf>> {
    let n = |x: f64| (x * scale).max(1.0) as u64;
    let count = |x: f64| x as u64;
    let paths: Vec<PathBuf> = (0..5).map(|i| dir.join(format!("layer{i}.tar"))).collect();
    // 0: base, many small files.
    let mut l = LayerWriter::create(&paths[0])?;
    l.dir("usr")?;
    l.dir("usr/share")?;
    for d in 0..count(40.0) {
        l.dir(&format!("usr/share/d{d}"))?;
        for f in 0..500 {
            l.file(
                &format!("usr/share/d{d}/f{f}.txt"),
                0o644,
                &text(1024 + (f * 37 % 3000) as usize, d * 1000 + f),
            )?;
        }
    }
    l.finish()?;
    // 1: incompressible binaries.
    let mut l = LayerWriter::create(&paths[1])?;
    l.dir("opt")?;
    l.dir("opt/bin")?;
    for i in 0..3 {
        l.big(&format!("opt/bin/blob{i}"), 0o644, n(100.0) * MIB, 10 + i, false)?;
    }
    l.finish()?;
    // 2: compressible text, a large directory.
    let mut l = LayerWriter::create(&paths[2])?;
    l.dir("var")?;
    l.dir("var/lists")?;
    for i in 0..30 {
        l.big(&format!("var/lists/list{i}"), 0o644, n(10.0) * MIB, 100 + i, true)?;
    }
    l.finish()?;
    // 3: metadata-only duplicate: chmod of the large directory and of one binary.
    let mut l = LayerWriter::create(&paths[3])?;
    l.dir("var/lists")?;
    for i in 0..30 {
        l.big(&format!("var/lists/list{i}"), 0o600, n(10.0) * MIB, 100 + i, true)?;
    }
    l.big("opt/bin/blob0", 0o755, n(100.0) * MIB, 10, false)?;
    l.finish()?;
    // 4: deletes and re-adds.
    let mut l = LayerWriter::create(&paths[4])?;
    l.whiteout("opt/bin", "blob1")?;
    l.whiteout("var/lists", "list0")?;
    l.dir("usr/share/d0")?;
    for f in 0..250 {
        l.whiteout("usr/share/d0", &format!("f{f}.txt"))?;
    }
    l.dir("app")?;
    for f in 0..count(10_000.0) {
        l.file(&format!("app/m{f}.js"), 0o644, &text(800, 7_000_000 + f))?;
    }
    l.big("var/lists/list1", 0o644, n(10.0) * MIB, 999, true)?;
    l.finish()?;
    Ok(paths)
}

fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((format!("sha256:{}", hex::encode(hasher.finalize())), total))
}

fn compress_cmd(kind: &str, input: &Path, output: &Path) -> Result<()> {
    let mut cmd = match kind {
        "gzip" => {
            let mut c = Command::new("pigz");
            c.args(["-6", "-c", "-n"]);
            c
        }
        _ => {
            let mut c = Command::new("zstd");
            c.args(["-3", "-T0", "-q", "-c"]);
            c
        }
    };
    let out = File::create(output)?;
    run(cmd.arg(input).stdout(out))
}

/// Writes an OCI layout whose layers are `tars` compressed with `kind`.
fn write_layout(dir: &Path, tars: &[PathBuf], kind: &str) -> Result<Vec<PathBuf>> {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs)?;
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    let mut blob_paths = Vec::new();
    for tar in tars {
        let (diff_id, _) = sha256_file(tar)?;
        let temp = dir.join("blob.tmp");
        compress_cmd(kind, tar, &temp)?;
        let (digest, size) = sha256_file(&temp)?;
        let path = blobs.join(&digest[7..]);
        fs::rename(&temp, &path)?;
        let media = if kind == "gzip" {
            "application/vnd.oci.image.layer.v1.tar+gzip"
        } else {
            "application/vnd.oci.image.layer.v1.tar+zstd"
        };
        layers.push(json!({"mediaType": media, "digest": digest, "size": size}));
        diff_ids.push(diff_id);
        blob_paths.push(path);
    }
    let history: Vec<_> = (0..tars.len())
        .map(
            |i| json!({"created": "2024-01-01T00:00:00Z", "created_by": format!("bench step {i}")}),
        )
        .collect();
    let config = serde_json::to_vec(
        &json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}, "history": history}),
    )?;
    let config_digest = format!("sha256:{}", hex::encode(Sha256::digest(&config)));
    fs::write(blobs.join(&config_digest[7..]), &config)?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": layers,
    }))?;
    let manifest_digest = format!("sha256:{}", hex::encode(Sha256::digest(&manifest)));
    fs::write(blobs.join(&manifest_digest[7..]), &manifest)?;
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let index = json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest, "size": manifest.len(), "annotations": {"org.opencontainers.image.ref.name": "bench"}}]});
    fs::write(dir.join("index.json"), serde_json::to_vec(&index)?)?;
    Ok(blob_paths)
}

/// A legacy `docker save` tarball of the uncompressed layers, for the Python peers.
fn write_docker_archive(path: &Path, tars: &[PathBuf]) -> Result<()> {
    let mut builder = tar::Builder::new(BufWriter::new(File::create(path)?));
    let mut names = Vec::new();
    let mut diff_ids = Vec::new();
    for tar in tars {
        let (diff_id, _) = sha256_file(tar)?;
        let name = format!("{}/layer.tar", &diff_id[7..]);
        builder.append_path_with_name(tar, &name)?;
        names.push(name);
        diff_ids.push(diff_id);
    }
    let history: Vec<_> = (0..tars.len())
        .map(
            |i| json!({"created": "2024-01-01T00:00:00Z", "created_by": format!("bench step {i}")}),
        )
        .collect();
    let config = serde_json::to_vec(
        &json!({"architecture": "amd64", "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": diff_ids}, "history": history}),
    )?;
    let config_name = format!("{}.json", hex::encode(Sha256::digest(&config)));
    let manifest = serde_json::to_vec(
        &json!([{"Config": config_name, "RepoTags": ["bench:latest"], "Layers": names}]),
    )?;
    for (name, bytes) in [(config_name.as_str(), &config), ("manifest.json", &manifest)] {
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        builder.append_data(&mut h, name, &bytes[..])?;
    }
    builder.into_inner()?.flush()?;
    Ok(())
}

/// Copies the new layer (the manifest's second) of the `docker save` tarball `archive` to `to`.
fn extract_new_layer(archive: &Path, to: &Path) -> Result<()> {
    let mut tarball = tar::Archive::new(File::open(archive)?);
    // Each member's data: where it starts in the tarball, and its size.
    let mut members = std::collections::BTreeMap::new();
    let mut manifest = None;
    for member in tarball.entries()? {
        let member = member?;
        let name = member.path()?.to_string_lossy().into_owned();
        if name == "manifest.json" {
            manifest = Some(serde_json::from_reader::<_, serde_json::Value>(member)?);
        } else {
            members.insert(name, (member.raw_file_position(), member.size()));
        }
    }
    let manifest = manifest.context("no manifest.json in the squashed archive")?;
    let layer =
        manifest[0]["Layers"][1].as_str().context("the squashed archive has no second layer")?;
    let &(position, size) = members.get(layer).with_context(|| format!("no member {layer}"))?;
    let mut file = File::open(archive)?;
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(position))?;
    std::io::copy(&mut std::io::Read::take(file, size), &mut File::create(to)?)?;
    Ok(())
}

/// Prints a case's row against its physical limit: `ours` is squash's (median seconds, median
/// CPU seconds, peak RSS), `read` and `write` the limit's two commands' (seconds, CPU seconds)
/// per round. The limit is their sum, the overlap their larger one, the floor their CPU spread
/// over `cores`.
fn limit_row(
    case: &str,
    ours: (f64, f64, f64),
    read: &[(f64, f64)],
    write: &[(f64, f64)],
    cores: usize,
) {
    let (time, cpu, rss) = ours;
    let wall = |runs: &[(f64, f64)]| median(runs.iter().map(|r| r.0).collect());
    let busy = |runs: &[(f64, f64)]| median(runs.iter().map(|r| r.1).collect());
    let (limit, limit_cpu) = (wall(read) + wall(write), busy(read) + busy(write));
    let overlap = wall(read).max(wall(write));
    println!(
        "{:<28} {:>9.2} {:>7.2} {:>9.2} {:>7.2} {:>6.2}x {:>9.2} {:>6.2}x {:>6.2}x {:>7.1}",
        case,
        time,
        cpu,
        limit,
        limit_cpu,
        time / limit,
        overlap,
        time / overlap,
        limit_cpu / cores as f64 / limit,
        rss
    );
}

/// Runs a command under GNU time: (seconds, peak RSS in MB).
fn timed(cmd: &mut Command) -> Result<(f64, f64)> {
    timed_cpu(cmd).map(|(wall, rss, _)| (wall, rss))
}

/// Runs a command under GNU time: (seconds, peak RSS in MB, CPU seconds: user and system, its
/// children included).
fn timed_cpu(cmd: &mut Command) -> Result<(f64, f64, f64)> {
    let report = std::env::temp_dir().join("squash-bench-time.txt");
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let mut timed = Command::new("/usr/bin/time");
    timed.arg("-f").arg("%U %S %M").arg("-o").arg(&report).arg(program).args(args);
    if let Some(dir) = cmd.get_current_dir() {
        timed.current_dir(dir);
    }
    settle();
    let start = Instant::now();
    let status = timed.stdout(Stdio::null()).stderr(Stdio::piped()).output()?;
    let wall = start.elapsed().as_secs_f64();
    if !status.status.success() {
        bail!("{cmd:?} failed:\n{}", String::from_utf8_lossy(&status.stderr));
    }
    let text = fs::read_to_string(&report)?;
    // The last line: what GNU time printed after anything the command's own failure added.
    let fields: Vec<f64> = text
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    let &[user, system, rss_kb] = fields.as_slice() else {
        bail!("unexpected output of GNU time: {text}")
    };
    Ok((wall, rss_kb / 1024.0, user + system))
}

/// Writes dirty pages back before a measurement, so that no run pays for the writes of the
/// one before it (generating the images writes gigabytes).
fn settle() {
    let _ = Command::new("sync").status();
}

/// The median of some timings.
fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times.get(times.len() / 2).copied().unwrap_or(0.0)
}

/// Runs `measure` `runs` times: the median time and the largest peak RSS.
fn timed_median(
    runs: usize,
    mut measure: impl FnMut() -> Result<(f64, f64)>,
) -> Result<(f64, f64)> {
    let mut times = Vec::new();
    let mut rss = 0f64;
    for _ in 0..runs {
        let (t, r) = measure()?;
        times.push(t);
        rss = rss.max(r);
    }
    Ok((median(times), rss))
}

/// Time of a shell pipeline (for the limits): (seconds, CPU seconds of the whole pipeline).
fn timed_sh(script: &str) -> Result<(f64, f64)> {
    timed_cpu(Command::new("sh").arg("-c").arg(script)).map(|(wall, _, cpu)| (wall, cpu))
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn bench(args: &[String]) -> Result<()> {
    let mut scale = 1.0f64;
    let mut dir = root().join("target/bench");
    let mut runs = 3usize;
    let mut peers_only = false;
    let mut entries: Vec<u64> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--scale" => scale = it.next().context("--scale needs a number")?.parse()?,
            "--dir" => dir = PathBuf::from(it.next().context("--dir needs a path")?),
            "--runs" => runs = it.next().context("--runs needs a number")?.parse::<usize>()?.max(1),
            "--peers-only" => peers_only = true,
            "--entries" => {
                let list =
                    it.next().context("--entries needs counts, such as 100000,400000,1000000")?;
                entries = list
                    .split(',')
                    .map(|n| n.trim().replace('_', "").parse::<u64>())
                    .collect::<Result<_, _>>()?;
            }
            other => bail!("unknown argument {other}"),
        }
    }
    if !entries.is_empty() {
        return bench_entries(&dir, &entries, runs);
    }
    for tool in ["pigz", "zstd", "/usr/bin/time"] {
        if !have(tool) {
            bail!(
                "`{tool}` is needed for the physical-limit measurements (apt-get install pigz \
                zstd time)"
            );
        }
    }
    run(Command::new("cargo").current_dir(root()).args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "squash-cli",
    ]))?;
    let squash = root().join("target/release/squash");
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!(
        "machine: {cores} cores; squashing every layer above layer 0 (4 layers); medians of \
        {runs} runs"
    );
    println!(
        "\"CPU\": user and system seconds; \"floor\": the limit's own CPU spread over every \
        core, as a ratio to the limit"
    );
    println!(
        "{:<28} {:>9} {:>7} {:>9} {:>7} {:>7} {:>9} {:>7} {:>7} {:>7}",
        "case",
        "squash s",
        "CPU s",
        "limit s",
        "CPU s",
        "ratio",
        "overlap s",
        "ratio",
        "floor",
        "RSS MB"
    );
    for s in [scale, scale * 2.0] {
        let work = dir.join(format!("scale-{s}"));
        let _ = fs::remove_dir_all(&work);
        fs::create_dir_all(&work)?;
        let tars = write_layers(&work, s)?;
        let total: u64 = tars.iter().map(|t| fs::metadata(t).map(|m| m.len()).unwrap_or(0)).sum();
        println!("-- image scale {s}: {:.0} MB uncompressed in 5 layers", total as f64 / 1e6);
        let kinds: &[&str] = if peers_only { &[] } else { &["gzip", "zstd"] };
        for &kind in kinds {
            let layout = work.join(format!("oci-{kind}"));
            let blobs = write_layout(&layout, &tars, kind)?;
            let out = work.join(format!("out-{kind}"));
            let _ = fs::remove_dir_all(&out);
            // The physical limit: decompress the range's blobs, compress the resulting layer.
            // Each of the `runs` rounds times squash and then the limit's two commands, so that
            // the machine's drift affects both alike; medians are reported.
            let range: Vec<String> = blobs[1..].iter().map(|b| b.display().to_string()).collect();
            let new_tar = work.join("new-layer.tar");
            let (dc, c) = if kind == "gzip" {
                ("pigz -dc", format!("pigz -p{cores} -6 -n -c"))
            } else {
                ("zstd -dc -q", "zstd -T0 -3 -q -c".to_string())
            };
            let (mut ours, mut ours_cpu, mut rss, mut decompress, mut compress) =
                (Vec::new(), Vec::new(), 0f64, Vec::new(), Vec::new());
            for round in 0..runs {
                let _ = fs::remove_dir_all(&out);
                let (t, r, cpu) = timed_cpu(
                    Command::new(&squash)
                        .arg(format!("oci:{}:bench", layout.display()))
                        .args(["--from-layer", "4", "--quiet", "-o"])
                        .arg(format!("oci:{}:bench", out.display())),
                )?;
                ours.push(t);
                ours_cpu.push(cpu);
                rss = rss.max(r);
                if round == 0 {
                    let new_blob = newest_layer_blob(&out)?;
                    run(Command::new("sh").arg("-c").arg(format!(
                        "{dc} {} > {}",
                        new_blob.display(),
                        new_tar.display()
                    )))?;
                }
                decompress.push(timed_sh(&format!("{dc} {} > /dev/null", range.join(" ")))?);
                compress.push(timed_sh(&format!("{c} < {} > /dev/null", new_tar.display()))?);
            }
            limit_row(
                &format!("{kind} in, {kind} out"),
                (median(ours), median(ours_cpu), rss),
                &decompress,
                &compress,
                cores,
            );
            fs::remove_file(&new_tar)?;
            let report_time = timed_median(runs, || {
                timed(
                    Command::new(&squash)
                        .arg("report")
                        .arg(format!("oci:{}:bench", layout.display()))
                        .args(["--from-layer", "4"]),
                )
            })?;
            println!(
                "{:<28} {:>9.2} {:>73.1}",
                format!("  report ({kind})"),
                report_time.0,
                report_time.1
            );
        }
        // Peers work on `docker save` tarballs.
        let archive = work.join("docker.tar");
        write_docker_archive(&archive, &tars)?;
        let out = work.join("ours-docker.tar");
        let peer_out = work.join("oci-squash.tar");
        let tmp = work.join("oci-squash-tmp");
        let peer_installed = have("oci-squash");
        // Rounds alternate squash and the peer, so that the machine's drift affects both alike.
        let (mut ours, mut ours_cpu, mut rss, mut peer, mut peer_rss, mut peer_error) =
            (Vec::new(), Vec::new(), 0f64, Vec::new(), 0f64, None);
        // The limit of a plain tar: hashing the range's layers as they are read, and the new
        // layer as it is written (`sha256sum`, the issue's definition).
        let new_plain = work.join("new-plain.tar");
        let range: Vec<String> = tars[1..].iter().map(|t| t.display().to_string()).collect();
        let (mut read_hash, mut write_hash) = (Vec::new(), Vec::new());
        for round in 0..runs {
            let (t, r, cpu) = timed_cpu(
                Command::new(&squash)
                    .arg(&archive)
                    .args(["--from-layer", "4", "--quiet", "-o"])
                    .arg(&out),
            )?;
            ours.push(t);
            ours_cpu.push(cpu);
            rss = rss.max(r);
            if round == 0 {
                extract_new_layer(&out, &new_plain)?;
            }
            read_hash.push(timed_sh(&format!("cat {} | sha256sum > /dev/null", range.join(" ")))?);
            write_hash.push(timed_sh(&format!("sha256sum {} > /dev/null", new_plain.display()))?);
            if peer_installed && peer_error.is_none() {
                let _ = fs::remove_dir_all(&tmp);
                let _ = fs::remove_file(&peer_out);
                match timed(
                    Command::new("oci-squash")
                        .args(["-f", "4", "--tmp-dir"])
                        .arg(&tmp)
                        .arg("-o")
                        .arg(&peer_out)
                        .arg(&archive),
                ) {
                    Ok((t, r)) => {
                        peer.push(t);
                        peer_rss = peer_rss.max(r);
                    }
                    Err(e) => {
                        peer_error =
                            Some(e.to_string().lines().last().unwrap_or_default().to_string())
                    }
                }
                let _ = fs::remove_dir_all(&tmp);
            }
        }
        let ours = median(ours);
        limit_row(
            "docker-archive (plain tar)",
            (ours, median(ours_cpu), rss),
            &read_hash,
            &write_hash,
            cores,
        );
        let _ = fs::remove_file(&new_plain);
        match (peer_installed, peer_error) {
            (false, _) => println!("  oci-squash: not installed (pip install oci-squash)"),
            (true, Some(e)) => println!("  oci-squash failed: {e}"),
            (true, None) => {
                let t = median(peer);
                println!(
                    "{:<28} {:>9.2} {:>34.2}x slower {:>29.1}",
                    "  oci-squash (same input)",
                    t,
                    t / ours,
                    peer_rss
                )
            }
        }
        docker_peer(&squash, &archive, runs, ours)?;
        println!("  buildah, crane: need containers-storage or a registry; not run");
        for f in ["docker.tar", "ours-docker.tar", "oci-squash.tar"] {
            let _ = fs::remove_file(work.join(f));
        }
        for t in &tars {
            fs::remove_file(t)?;
        }
    }
    Ok(())
}

/// Whether the daemon at `DOCKER_HOST` (or the default socket) answers.
fn docker_answers() -> bool {
    Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The seconds between the first log line of docker-squash containing `from` and the first
/// after it containing `to` (its log lines start with `YYYY-MM-DD HH:MM:SS,mmm`).
fn log_span(log: &str, from: &str, to: &str) -> Option<f64> {
    let stamp = |line: &str| -> Option<f64> {
        let time = line.get(11..23)?;
        let (hms, ms) = time.split_once(',')?;
        let mut parts = hms.split(':').map(|p| p.parse::<f64>().ok());
        let (h, m, s) = (parts.next()??, parts.next()??, parts.next()??);
        Some(h * 3600.0 + m * 60.0 + s + ms.parse::<f64>().ok()? / 1000.0)
    };
    let mut lines = log.lines();
    let start = lines.by_ref().find(|l| l.contains(from)).and_then(stamp)?;
    let end = lines.find(|l| l.contains(to)).and_then(stamp)?;
    Some(end - start)
}

/// docker-squash (it drives the daemon: `docker save`, squash, `docker load`) against the same
/// flow through squash (`docker save | squash - -o - | docker load`), when `DOCKER_HOST`
/// answers; and the squash steps alone: docker-squash's from its log, squash's on the saved
/// tarball (`ours_alone`, measured before).
fn docker_peer(squash: &Path, archive: &Path, runs: usize, ours_alone: f64) -> Result<()> {
    if !have("docker") || !docker_answers() {
        println!("  docker-squash: no Docker daemon answers (set DOCKER_HOST); not run");
        return Ok(());
    }
    if !have("docker-squash") {
        println!("  docker-squash: not installed (pip install docker-squash==1.2.2); not run");
        return Ok(());
    }
    run(Command::new("docker").args(["load", "-q", "-i"]).arg(archive).stdout(Stdio::null()))?;
    let rmi = |tag: &str| {
        let _ = Command::new("docker").args(["rmi", "-f", tag]).output();
    };
    let pipe = format!(
        "docker save bench:latest | {} - --from-layer 4 --quiet -o docker-archive:-:bench:ours | \
            docker load -q > /dev/null",
        squash.display()
    );
    let (mut peer, mut peer_steps, mut ours, mut save) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // Rounds alternate the two flows, so that the machine's drift affects both alike.
    for _ in 0..runs {
        settle();
        let start = Instant::now();
        let out = Command::new("docker-squash")
            .args(["-f", "4", "-t", "bench:docker-squash", "bench:latest"])
            .output()?;
        peer.push(start.elapsed().as_secs_f64());
        let log = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            println!("  docker-squash failed: {}", log.lines().last().unwrap_or_default());
            rmi("bench:latest");
            return Ok(());
        }
        if let Some(t) = log_span(&log, "Squashing image", "New squashed image ID") {
            peer_steps.push(t);
        }
        rmi("bench:docker-squash");
        ours.push(timed_sh(&pipe)?.0);
        rmi("bench:ours");
        save.push(timed_sh("docker save bench:latest > /dev/null")?.0);
    }
    rmi("bench:latest");
    let (peer, ours, save) = (median(peer), median(ours), median(save));
    println!("{:<28} {:>9.2} {:>9} {:>7}", "  docker save | squash | load", ours, "", "");
    println!(
        "{:<28} {:>9.2} {:>9} {:>6.2}x",
        "  docker-squash (whole flow)",
        peer,
        "",
        peer / ours
    );
    println!("{:<28} {:>9.2}", "  docker save alone", save);
    if !peer_steps.is_empty() {
        let steps = median(peer_steps);
        println!(
            "{:<28} {:>9.2} {:>9} {:>6.2}x  (from its log; squash's is the docker-archive row)",
            "  docker-squash squash step",
            steps,
            "",
            steps / ours_alone
        );
    }
    Ok(())
}

/// The blob of the last layer of the image in an OCI layout (the merged one).
fn newest_layer_blob(layout: &Path) -> Result<PathBuf> {
    let index: serde_json::Value = serde_json::from_slice(&fs::read(layout.join("index.json"))?)?;
    let digest = index["manifests"][0]["digest"].as_str().context("no manifest")?;
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("blobs/sha256").join(&digest[7..]))?)?;
    let layers = manifest["layers"].as_array().context("no layers")?;
    let last = layers.last().and_then(|l| l["digest"].as_str()).context("no layer")?;
    Ok(layout.join("blobs/sha256").join(&last[7..]))
}
