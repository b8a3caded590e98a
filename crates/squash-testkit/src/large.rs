//! Large generated images for the bench: layer tars written straight to files, with contents
//! made on the fly (text that compresses like package lists, noise that does not), so that a
//! gigabyte image costs no memory to make. The bytes depend only on the seeds and sizes.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::random::Noise;

const MIB: u64 = 1 << 20;

/// Text that compresses like real text files (about 4:1 with gzip), for the bench images.
pub fn words(len: usize, seed: u64) -> Vec<u8> {
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
    let mut noise = Noise::new(seed);
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

/// A layer tar written straight to a file, large files streamed from a generator and never
/// held in memory.
pub struct LayerWriter {
    builder: tar::Builder<BufWriter<File>>,
}

impl LayerWriter {
    /// A new layer tar at `path`.
    pub fn create(path: &Path) -> io::Result<LayerWriter> {
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
    /// A directory entry.
    pub fn dir(&mut self, path: &str) -> io::Result<()> {
        let mut h = Self::header(tar::EntryType::Directory, 0o755, 0);
        self.builder.append_data(&mut h, path, io::empty())?;
        Ok(())
    }
    /// A file with `data`.
    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> io::Result<()> {
        let mut h = Self::header(tar::EntryType::Regular, mode, data.len() as u64);
        self.builder.append_data(&mut h, path, data)?;
        Ok(())
    }
    /// A large file streamed from a generator, never held in memory.
    pub fn big(
        &mut self,
        path: &str,
        mode: u32,
        size: u64,
        seed: u64,
        compressible: bool,
    ) -> io::Result<()> {
        let mut h = Self::header(tar::EntryType::Regular, mode, size);
        let reader = Generated {
            left: size,
            noise: Noise::new(seed),
            compressible,
            seed,
            buf: Vec::new(),
            pos: 0,
        };
        self.builder.append_data(&mut h, path, reader)?;
        Ok(())
    }
    /// A whiteout of `dir/name`.
    pub fn whiteout(&mut self, dir: &str, name: &str) -> io::Result<()> {
        self.file(&format!("{dir}/.wh.{name}"), 0o644, b"")
    }
    /// Ends the tar and flushes it.
    pub fn finish(self) -> io::Result<()> {
        self.builder.into_inner()?.flush()?;
        Ok(())
    }
}

/// The content of a large file: text (`words`) or noise, made a MiB at a time.
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
                words(n, self.seed)
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

/// An image of many small files, as `node_modules` or conda trees make: a base layer of `n`
/// files, then a layer adding `n / 2` more and one that rewrites half of those and adds
/// `n / 4` new ones, and deletes a directory of the base. The range above the base holds
/// `n` entries (and a few directories); the image `2n`.
pub fn many_entries(dir: &Path, n: u64) -> io::Result<Vec<PathBuf>> {
    let paths: Vec<PathBuf> = (0..3).map(|i| dir.join(format!("layer{i}.tar"))).collect();
    let tree = |l: &mut LayerWriter,
                root: &str,
                files: std::ops::Range<u64>,
                seed: u64|
     -> io::Result<()> {
        for f in files {
            if f % 100 == 0 {
                l.dir(&format!("{root}/package-{}", f / 100))?;
                l.dir(&format!("{root}/package-{}/lib", f / 100))?;
            }
            l.file(
                &format!("{root}/package-{}/lib/module-{f}.js", f / 100),
                0o644,
                &words(96, seed + f),
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

/// The bench image: a base of small files, then incompressible and text data, a metadata-only
/// duplicate of a large directory, deletes and re-adds. File sizes scale with `scale`; the
/// number of entries does not, so that peak memory can be compared across sizes.
pub fn bench_layers(dir: &Path, scale: f64) -> io::Result<Vec<PathBuf>> {
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
                &words(1024 + (f * 37 % 3000) as usize, d * 1000 + f),
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
        l.file(&format!("app/m{f}.js"), 0o644, &words(800, 7_000_000 + f))?;
    }
    l.big("var/lists/list1", 0o644, n(10.0) * MIB, 999, true)?;
    l.finish()?;
    Ok(paths)
}

/// The many-layer bench image, shaped like an application image after many `RUN` steps: a base,
/// then 23 layers that mostly write what later ones shadow or delete (package lists and caches
/// written and removed, build trees made and purged, a large file written again four times, a
/// log rotated), and a few hundred MB (at scale 1) that survive. File sizes scale with `scale`.
pub fn many_layers(dir: &Path, scale: f64) -> io::Result<Vec<PathBuf>> {
    let n = |x: f64| (x * scale).max(1.0) as u64;
    let mut paths = Vec::new();
    let mut next = |dir: &Path| {
        let path = dir.join(format!("layer{}.tar", paths.len()));
        paths.push(path.clone());
        LayerWriter::create(&path)
    };
    // 0: the base.
    let mut l = next(dir)?;
    for d in ["usr", "usr/lib", "var", "var/lib", "var/cache", "opt", "root"] {
        l.dir(d)?;
    }
    l.big("usr/lib/libbase.so", 0o755, n(40.0) * MIB, 1, false)?;
    l.finish()?;
    for step in 0..4u64 {
        // apt-get update: lists (text) that a later step removes.
        let mut l = next(dir)?;
        l.dir("var/lib/apt")?;
        l.dir("var/lib/apt/lists")?;
        for i in 0..4 {
            let name = format!("var/lib/apt/lists/repo{i}_Packages");
            l.big(&name, 0o644, n(12.0) * MIB, 100 + step * 10 + i, true)?;
        }
        l.finish()?;
        // apt-get install: a package that stays, and its cache.
        let mut l = next(dir)?;
        l.dir("opt/pkg")?;
        l.big(&format!("opt/pkg/tool{step}"), 0o755, n(25.0) * MIB, 200 + step, false)?;
        l.dir("var/cache/apt")?;
        l.big(&format!("var/cache/apt/tool{step}.deb"), 0o644, n(25.0) * MIB, 300 + step, false)?;
        l.finish()?;
        // A build tree and a large data file written again.
        let mut l = next(dir)?;
        l.dir("root/build")?;
        l.big(&format!("root/build/obj{step}.o"), 0o644, n(30.0) * MIB, 400 + step, false)?;
        l.dir("opt/data")?;
        l.big("opt/data/model.bin", 0o644, n(40.0) * MIB, 500 + step, false)?;
        l.big("var/log.txt", 0o644, n(4.0) * MIB, 600 + step, true)?;
        l.finish()?;
        // rm -rf the lists, the cache and the build tree.
        let mut l = next(dir)?;
        l.whiteout("var/lib/apt", "lists")?;
        l.whiteout("var/cache", "apt")?;
        l.whiteout("root", "build")?;
        l.finish()?;
        // Configuration that stays.
        let mut l = next(dir)?;
        l.dir("etc")?;
        l.file(&format!("etc/app{step}.conf"), 0o644, &words(4096, 700 + step))?;
        l.finish()?;
    }
    // The application itself, last.
    let mut l = next(dir)?;
    l.dir("app")?;
    l.big("app/server", 0o755, n(60.0) * MIB, 900, false)?;
    l.big("app/assets.txt", 0o644, n(40.0) * MIB, 901, true)?;
    l.finish()?;
    Ok(paths)
}
