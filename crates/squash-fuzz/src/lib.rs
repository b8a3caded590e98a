//! A mutation fuzzer for squash on stable Rust. Seeds are real images (the shared fixtures and
//! images the testkit generates), taken apart into layer tars, config and manifest. A mutation
//! changes one part deeply (a layer tar's bytes or entries, the config's JSON, the manifest's or
//! index's JSON) and the image is put back together with every digest, size and diff_id
//! re-chained, so that the mutation reaches the tar and JSON parsers instead of stopping at a
//! sha256; or it flips bytes of the finished archive, which the digests must catch. Each case
//! runs `inspect`, `report` and a squash in-process: a panic, a case slower than the hang limit,
//! or output left behind after an error is a finding. In the registry mode, each case is served
//! by a faulty registry of the fuzzer's own and read from `docker://`. `cargo xtask fuzz`
//! drives it, and every finding is kept under `tests/fuzz-corpus/` as a test.

use std::io::{Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use squash::{
    Context, Image, LayerSelector, OpenOptions, Output, OutputFormat, RegistryOptions,
    ReportOptions, SquashOptions,
};
use squash_testkit::Rng;

pub mod registry;

/// The first panic seen by the recorder since it was last read, on any thread.
static PANICKED: Mutex<Option<String>> = Mutex::new(None);

/// Records every panic (the library's reading and decoding threads included) instead of
/// printing it, for [`run_case`] to report.
pub fn install_panic_recorder() {
    std::panic::set_hook(Box::new(|info| {
        if let Ok(mut slot) = PANICKED.lock() {
            slot.get_or_insert_with(|| info.to_string());
        }
    }));
}

fn take_recorded_panic() -> Option<String> {
    PANICKED.lock().ok().and_then(|mut slot| slot.take())
}

/// A case slower than this is a hang.
pub const HANG_LIMIT: Duration = Duration::from_secs(10);

/// An image taken apart: uncompressed layer tars and the config.
#[derive(Debug, Clone)]
pub struct Seed {
    /// Where it came from, for reports.
    pub name: String,
    /// Layer tars, base first, uncompressed.
    pub layers: Vec<Vec<u8>>,
    /// The config, whose `rootfs.diff_ids` are rewritten on assembly.
    pub config: Value,
}

impl Seed {
    /// Takes the image at `reference` apart; `None` if it does not open or read cleanly.
    pub fn from_reference(reference: &str) -> Option<Seed> {
        let image = Image::open(reference).ok()?;
        let mut layers = Vec::new();
        for i in 0..image.layers().len() {
            let mut tar = Vec::new();
            image.write_layer_tar(i, &mut tar).ok()?;
            layers.push(tar);
        }
        Some(Seed { name: reference.to_string(), layers, config: image.config_json().clone() })
    }

    /// Seeds the testkit generates: random stacks (whiteouts, opaque markers, hard links, type
    /// changes, long and odd names), some with implicit parents.
    pub fn generated(count: u64) -> Vec<Seed> {
        (0..count)
            .map(|i| {
                let layers = if i % 2 == 0 {
                    squash_testkit::random_stack(i, 4)
                } else {
                    squash_testkit::random_stack_implicit_parents(i, 4)
                };
                Seed::from_layers(&format!("generated stack {i}"), layers)
            })
            .collect()
    }

    /// A seed from generated layers.
    pub fn from_layers(name: &str, layers: Vec<Vec<u8>>) -> Seed {
        let history: Vec<Value> =
            (0..layers.len()).map(|i| json!({"created_by": format!("RUN step {i}")})).collect();
        let config = json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": []},
            "history": history
        });
        Seed { name: name.to_string(), layers, config }
    }
}

/// The container a case is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    Docker,
    Oci,
}

/// Layer compression on assembly.
#[derive(Debug, Clone, Copy)]
enum Codec {
    None,
    Gzip,
    Zstd,
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn compress(codec: Codec, tar: &[u8]) -> Vec<u8> {
    match codec {
        Codec::None => tar.to_vec(),
        Codec::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            let _ = e.write_all(tar);
            e.finish().unwrap_or_default()
        }
        Codec::Zstd => zstd::encode_all(tar, 1).unwrap_or_default(),
    }
}

/// How a whole archive is compressed: as a layer can be, or in a codec only archives use.
#[derive(Debug, Clone, Copy)]
enum Outer {
    Layer(Codec),
    Xz,
    Bzip2,
}

fn compress_archive(codec: Outer, archive: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let done = match codec {
        Outer::Layer(codec) => return compress(codec, archive),
        Outer::Xz => liblzma::read::XzEncoder::new(archive, 1).read_to_end(&mut out),
        Outer::Bzip2 => {
            bzip2::read::BzEncoder::new(archive, bzip2::Compression::fast()).read_to_end(&mut out)
        }
    };
    done.map(|_| out).unwrap_or_default()
}

/// Values that break assumptions about JSON documents.
fn odd_value(rng: &mut Rng) -> Value {
    match rng.below(10) {
        0 => Value::Null,
        1 => json!(-1),
        2 => json!(u64::MAX),
        3 => json!(1.5e300),
        4 => json!(""),
        5 => json!("sha256:"),
        6 => json!(format!("sha256:{}", "0".repeat(64))),
        7 => json!([]),
        8 => json!({}),
        _ => json!("../../etc/passwd"),
    }
}

/// Changes one random place of a JSON document: a value replaced, a key removed or added, an
/// array element duplicated or dropped.
fn mutate_json(rng: &mut Rng, value: &mut Value) {
    mutate_json_at(rng, value, 0);
}

fn mutate_json_at(rng: &mut Rng, value: &mut Value, depth: usize) {
    let leaf = depth >= 6 || rng.chance(30);
    match value {
        Value::Object(map) if !map.is_empty() => {
            let key = map.keys().nth(rng.below(map.len())).cloned().unwrap_or_default();
            if !leaf {
                if let Some(child) = map.get_mut(&key) {
                    return mutate_json_at(rng, child, depth + 1);
                }
            }
            match rng.below(3) {
                0 => {
                    map.remove(&key);
                }
                1 => {
                    map.insert(key, odd_value(rng));
                }
                _ => {
                    map.insert(format!("{key}x"), odd_value(rng));
                }
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let i = rng.below(items.len());
            if !leaf {
                return mutate_json_at(rng, &mut items[i], depth + 1);
            }
            match rng.below(3) {
                0 => {
                    items.remove(i);
                }
                1 => {
                    let copy = items[i].clone();
                    items.push(copy);
                }
                _ => items[i] = odd_value(rng),
            }
        }
        other => *other = odd_value(rng),
    }
}

/// Bytes of tar header fields worth hitting: name, mode, size, mtime, checksum, typeflag,
/// linkname, magic, prefix.
const HEADER_FIELDS: [(usize, usize); 9] = [
    (0, 100),
    (100, 8),
    (124, 12),
    (136, 12),
    (148, 8),
    (156, 1),
    (157, 100),
    (257, 8),
    (345, 155),
];

fn tar_checksum(block: &mut [u8]) {
    block[148..156].fill(b' ');
    let sum: u64 = block.iter().map(|&b| u64::from(b)).sum();
    let text = format!("{sum:06o}\0 ");
    block[148..156].copy_from_slice(text.as_bytes());
}

/// Mutates a layer tar: header fields (checksum fixed most of the time, so the header is read),
/// data bytes, truncation, duplicated or dropped blocks, or new entries of odd kinds.
fn mutate_tar(rng: &mut Rng, tar: &mut Vec<u8>) {
    let blocks = tar.len() / 512;
    match rng.below(6) {
        0 | 1 if blocks > 0 => {
            // A header-looking block: one with "ustar" magic, else any.
            let headers: Vec<usize> =
                (0..blocks).filter(|b| tar[b * 512 + 257..b * 512 + 262] == *b"ustar").collect();
            let block = if headers.is_empty() {
                rng.below(blocks)
            } else {
                headers[rng.below(headers.len())]
            };
            let (offset, len) = HEADER_FIELDS[rng.below(HEADER_FIELDS.len())];
            let start = block * 512 + offset;
            for _ in 0..1 + rng.below(3) {
                let at = start + rng.below(len);
                tar[at] = match rng.below(5) {
                    0 => 0,
                    1 => b'7',
                    2 => 0x80,
                    3 => {
                        [b'0', b'1', b'2', b'5', b'L', b'K', b'x', b'g', b'S', b'7'][rng.below(10)]
                    }
                    _ => rng.next_u64() as u8,
                };
            }
            if rng.chance(85) {
                tar_checksum(&mut tar[block * 512..block * 512 + 512]);
            }
        }
        2 if !tar.is_empty() => {
            for _ in 0..1 + rng.below(8) {
                let at = rng.below(tar.len());
                tar[at] ^= 1 << rng.below(8);
            }
        }
        3 if !tar.is_empty() => {
            let at = rng.below(tar.len());
            tar.truncate(at);
        }
        4 if blocks > 1 => {
            let block = rng.below(blocks);
            let copy = tar[block * 512..block * 512 + 512].to_vec();
            if rng.chance(50) {
                let at = rng.below(blocks) * 512;
                tar.splice(at..at, copy);
            } else {
                tar.drain(block * 512..block * 512 + 512);
            }
        }
        _ => {
            // A new entry of an odd kind, before the end-of-archive blocks.
            let names: [&[u8]; 10] = [
                b"../escape",
                b"/abs/path",
                b"a/.wh..wh..opq",
                b".wh.a",
                b"a/.wh..wh.meta",
                b".",
                b"a//b/./c",
                b"\xff\xfe",
                b"a/../..",
                b"",
            ];
            let mut header = tar::Header::new_gnu();
            let name = names[rng.below(names.len())];
            let field = &mut header.as_old_mut().name;
            field[..name.len()].copy_from_slice(name);
            let kinds = [
                tar::EntryType::Regular,
                tar::EntryType::Link,
                tar::EntryType::Symlink,
                tar::EntryType::Directory,
                tar::EntryType::Char,
                tar::EntryType::GNUSparse,
            ];
            header.set_entry_type(kinds[rng.below(kinds.len())]);
            let _ = header.set_link_name(["a", "../../x", "/", "a/b"][rng.below(4)]);
            let size = [0u64, 1, 511, 512, 4096][rng.below(5)];
            header.set_size(size);
            header.set_mode(0o644);
            header.set_cksum();
            let mut entry = header.as_bytes().to_vec();
            entry.resize(512 + size.div_ceil(512) as usize * 512, b'z');
            let end = tar.len().saturating_sub(1024);
            let at = (end / 512) * 512;
            tar.splice(at..at, entry);
        }
    }
}

/// One mutated image, ready to write.
#[derive(Debug, Clone)]
pub struct Case {
    /// What was done, for reports.
    pub description: String,
    /// The archive's bytes.
    pub bytes: Vec<u8>,
}

/// The members of an image archive, digests re-chained.
fn assemble(
    rng: &mut Rng,
    seed: &Seed,
    container: Container,
    what: &mut String,
) -> Vec<(String, Vec<u8>)> {
    let mut layers = seed.layers.clone();
    let mut config = seed.config.clone();
    let part = rng.below(10);
    if part < 5 && !layers.is_empty() {
        let i = rng.below(layers.len());
        mutate_tar(rng, &mut layers[i]);
        what.push_str(&format!("layer {i} tar mutated; "));
    }
    let codec = [Codec::None, Codec::Gzip, Codec::Zstd][rng.below(3)];
    let blobs: Vec<Vec<u8>> = layers.iter().map(|t| compress(codec, t)).collect();
    let diff_ids: Vec<Value> = layers.iter().map(|t| json!(sha256(t))).collect();
    config["rootfs"] = json!({"type": "layers", "diff_ids": diff_ids});
    if (5..7).contains(&part) {
        mutate_json(rng, &mut config);
        what.push_str("config mutated; ");
    }
    let config_bytes = serde_json::to_vec(&config).unwrap_or_default();
    let config_digest = sha256(&config_bytes);
    let mutate_manifest = part >= 7;
    let mut members: Vec<(String, Vec<u8>)> = Vec::new();
    match container {
        Container::Docker => {
            let mut names = Vec::new();
            for blob in &blobs {
                let name = format!("{}.tar", &sha256(blob)[7..]);
                members.push((name.clone(), blob.clone()));
                names.push(json!(name));
            }
            members.push((format!("{}.json", &config_digest[7..]), config_bytes));
            let mut manifest = json!([{
                "Config": format!("{}.json", &config_digest[7..]),
                "RepoTags": ["fuzz:latest"],
                "Layers": names
            }]);
            if mutate_manifest {
                mutate_json(rng, &mut manifest);
                what.push_str("manifest.json mutated; ");
            }
            members
                .push(("manifest.json".into(), serde_json::to_vec(&manifest).unwrap_or_default()));
        }
        Container::Oci => {
            let media = match codec {
                Codec::None => "application/vnd.oci.image.layer.v1.tar",
                Codec::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
                Codec::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
            };
            let mut descriptors = Vec::new();
            for blob in &blobs {
                let digest = sha256(blob);
                members.push((format!("blobs/sha256/{}", &digest[7..]), blob.clone()));
                descriptors.push(json!({"mediaType": media, "digest": digest, "size": blob.len()}));
            }
            members.push((format!("blobs/sha256/{}", &config_digest[7..]), config_bytes.clone()));
            let mut manifest = json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config_digest,
                    "size": config_bytes.len()
                },
                "layers": descriptors,
            });
            let mutate_index = mutate_manifest && rng.chance(40);
            if mutate_manifest && !mutate_index {
                mutate_json(rng, &mut manifest);
                what.push_str("manifest mutated; ");
            }
            let manifest_bytes = serde_json::to_vec(&manifest).unwrap_or_default();
            let manifest_digest = sha256(&manifest_bytes);
            members
                .push((format!("blobs/sha256/{}", &manifest_digest[7..]), manifest_bytes.clone()));
            let mut index = json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": [{
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": manifest_digest,
                    "size": manifest_bytes.len(),
                    "annotations": {"org.opencontainers.image.ref.name": "latest"},
                    "platform": {"os": "linux", "architecture": "amd64"}
                }]
            });
            if mutate_index {
                mutate_json(rng, &mut index);
                what.push_str("index.json mutated; ");
            }
            members.push(("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()));
            members.push(("index.json".into(), serde_json::to_vec(&index).unwrap_or_default()));
        }
    }
    members
}

/// Builds a mutated OCI layout from `seed`, as its members (for the registry mode), and what
/// was done.
pub fn mutate_layout(rng: &mut Rng, seed: &Seed) -> (Vec<(String, Vec<u8>)>, String) {
    let mut description = format!("{} served by a registry: ", seed.name);
    let members = assemble(rng, seed, Container::Oci, &mut description);
    (members, description)
}

/// An archive of `members` (an OCI archive for a layout's): how a case is kept as a file.
pub fn archive(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, bytes) in members {
        let mut header = tar::Header::new_ustar();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        if builder.append_data(&mut header, name, bytes.as_slice()).is_err() {
            break;
        }
    }
    builder.into_inner().unwrap_or_default()
}

/// Builds a mutated case from `seed`.
pub fn mutate(rng: &mut Rng, seed: &Seed) -> Case {
    let container = if rng.chance(50) { Container::Docker } else { Container::Oci };
    let mut description = format!("{} as {container:?}: ", seed.name);
    let members = assemble(rng, seed, container, &mut description);
    let mut bytes = archive(&members);
    if rng.chance(10) && !bytes.is_empty() {
        // Shallow: bytes of the finished archive, which the digests and the outer tar must catch.
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(bytes.len());
            bytes[at] ^= 1 << rng.below(8);
        }
        description.push_str("archive bytes flipped; ");
    }
    if rng.chance(10) && !bytes.is_empty() {
        // The whole archive compressed (`docker save | gzip`, or zstd, xz, bzip2), read through
        // a decompressed copy; sometimes damaged after compression, which the decoder must
        // catch.
        let codec = [Outer::Layer(Codec::Gzip), Outer::Layer(Codec::Zstd), Outer::Xz, Outer::Bzip2]
            [rng.below(4)];
        bytes = compress_archive(codec, &bytes);
        description.push_str(&format!("archive {codec:?}-compressed; "));
        if rng.chance(30) && !bytes.is_empty() {
            let at = rng.below(bytes.len());
            bytes[at] ^= 1 << rng.below(8);
            description.push_str("a compressed byte flipped; ");
        }
    }
    Case { description, bytes }
}

/// What a case found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Something panicked, with the message.
    Panic(String),
    /// The case took longer than [`HANG_LIMIT`].
    Hang,
    /// A step failed and left these files at the destination.
    LeftBehind(Vec<String>),
}

/// Runs inspect, report and a squash of the image archive at `path`, writing under `work`
/// (which must be empty). `Ok(true)` when the image passed every step, `Ok(false)` when a step
/// refused it cleanly.
pub fn run_case(path: &Path, work: &Path) -> Result<bool, Finding> {
    run_steps(&path.display().to_string(), &OpenOptions::default(), work)
}

/// Inspect, report and a squash of the image `reference` names, opened with `options`.
fn run_steps(reference: &str, options: &OpenOptions, work: &Path) -> Result<bool, Finding> {
    let out = work.join("out");
    let steps = || -> squash::Result<()> {
        let image = Image::open_with(reference, options)?;
        // Layers read on threads of their own, then on the reading thread (one thread in all).
        image.index_layers(0..image.layers().len())?;
        image.report_in(
            &SquashOptions::default(),
            &ReportOptions::default().with_top_paths(5),
            &Context::new().with_threads(1),
        )?;
        let count = image.layers().len();
        let selector = if count > 1 {
            LayerSelector::Top(count - 1)
        } else {
            LayerSelector::Top(count.max(1))
        };
        let plan = image.plan(&SquashOptions::default().with_selector(selector))?;
        plan.execute(&image, &Output::new(out.clone(), OutputFormat::OciArchive).with_tag("fuzz"))?;
        Ok(())
    };
    let result = catch_unwind(AssertUnwindSafe(steps));
    if let Some(message) = take_recorded_panic() {
        return Err(Finding::Panic(message));
    }
    match result {
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            Err(Finding::Panic(message))
        }
        Ok(Ok(())) => {
            let _ = std::fs::remove_file(&out);
            Ok(true)
        }
        Ok(Err(error)) => {
            let left: Vec<String> = std::fs::read_dir(work)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            if !left.is_empty() {
                return Err(Finding::LeftBehind(left));
            }
            // A clean refusal names something.
            if error.to_string().is_empty() {
                return Err(Finding::Panic("an error with no message".into()));
            }
            Ok(false)
        }
    }
}

/// [`run_case`] on its own thread, giving up after [`HANG_LIMIT`].
pub fn run_case_with_limit(path: &Path, work: &Path) -> Result<bool, Finding> {
    let (tx, rx) = mpsc::channel();
    let (path, work) = (path.to_path_buf(), work.to_path_buf());
    std::thread::spawn(move || {
        let _ = tx.send(run_case(&path, &work));
    });
    rx.recv_timeout(HANG_LIMIT).unwrap_or(Err(Finding::Hang))
}

/// A case served by a registry of the fuzzer's own (faulty as `faults` says), read from
/// `docker://`, on its own thread, giving up after [`HANG_LIMIT`].
pub fn run_registry_case(
    members: &[(String, Vec<u8>)],
    faults: registry::Faults,
    work: &Path,
) -> Result<bool, Finding> {
    let served = registry::serve(members, faults).map_err(|e| Finding::Panic(e.to_string()))?;
    let reference = served.reference();
    let options = OpenOptions::default().with_registry(
        RegistryOptions::default().with_retries(1).with_timeout(Duration::from_secs(3)),
    );
    let (tx, rx) = mpsc::channel();
    let work = work.to_path_buf();
    std::thread::spawn(move || {
        let _ = tx.send(run_steps(&reference, &options, &work));
    });
    let verdict = rx.recv_timeout(HANG_LIMIT).unwrap_or(Err(Finding::Hang));
    drop(served);
    verdict
}

/// Totals of a fuzzing run.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Cases run.
    pub executions: u64,
    /// Cases the library accepted through every step.
    pub accepted: u64,
    /// Findings, each with the file the case was saved to.
    pub findings: Vec<(PathBuf, Finding, String)>,
    /// Wall time.
    pub elapsed: Duration,
}

/// Fuzzes the registry reader for `duration` from `seeds`: each case an OCI layout served by a
/// faulty registry (see [`registry`]); each finding's case is saved under `crashes` as an OCI
/// archive, with what was served in its description.
pub fn fuzz_registry(
    seeds: &[Seed],
    rng_seed: u64,
    duration: Duration,
    scratch: &Path,
    crashes: &Path,
) -> std::io::Result<Stats> {
    drive(seeds, rng_seed, duration, scratch, crashes, "registry-", |rng, seed, work| {
        let (members, mut description) = mutate_layout(rng, seed);
        let faults =
            registry::Faults { percent: rng.below(25) as u64, seed: rng.below(1 << 30) as u64 };
        description.push_str(&format!("{faults:?}"));
        let verdict = run_registry_case(&members, faults, work);
        Ok((Case { description, bytes: archive(&members) }, verdict))
    })
}

/// Fuzzes for `duration` from `seeds`, saving each finding's case under `crashes`.
pub fn fuzz(
    seeds: &[Seed],
    rng_seed: u64,
    duration: Duration,
    scratch: &Path,
    crashes: &Path,
) -> std::io::Result<Stats> {
    let case_path = scratch.join("case.tar");
    drive(seeds, rng_seed, duration, scratch, crashes, "", |rng, seed, work| {
        let case = mutate(rng, seed);
        std::fs::write(&case_path, &case.bytes)?;
        let verdict = run_case_with_limit(&case_path, work);
        Ok((case, verdict))
    })
}

/// Runs cases made and judged by `one` (from a seed, in an empty work directory) for
/// `duration`, saving each finding's case under `crashes` (its name begins with `prefix`).
fn drive(
    seeds: &[Seed],
    rng_seed: u64,
    duration: Duration,
    scratch: &Path,
    crashes: &Path,
    prefix: &str,
    mut one: impl FnMut(&mut Rng, &Seed, &Path) -> std::io::Result<(Case, Result<bool, Finding>)>,
) -> std::io::Result<Stats> {
    let mut rng = Rng::new(rng_seed);
    let mut stats = Stats::default();
    let start = Instant::now();
    while start.elapsed() < duration && !seeds.is_empty() {
        let seed = &seeds[rng.below(seeds.len())];
        let work = scratch.join(format!("work-{}", stats.executions));
        std::fs::create_dir_all(&work)?;
        let (case, verdict) = one(&mut rng, seed, &work)?;
        stats.executions += 1;
        match verdict {
            Ok(accepted) => stats.accepted += u64::from(accepted),
            Err(finding) => {
                std::fs::create_dir_all(crashes)?;
                let name = format!("{prefix}{}.tar", &sha256(&case.bytes)[7..23]);
                let saved = crashes.join(name);
                std::fs::write(&saved, &case.bytes)?;
                stats.findings.push((saved, finding.clone(), case.description));
                if finding == Finding::Hang {
                    // The hung thread still runs; stop here rather than pile up more.
                    break;
                }
            }
        }
        let _ = std::fs::remove_dir_all(&work);
    }
    stats.elapsed = start.elapsed();
    Ok(stats)
}
