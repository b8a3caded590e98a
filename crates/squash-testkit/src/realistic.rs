//! Images whose contents compress like a real image's: text (configs, docs, package lists),
//! machine code with its tables and padding, already-compressed archives, many small files,
//! and later layers that replace, `chmod` and delete part of them, so that what survives a
//! squash compresses differently from each layer as a whole.

use crate::builder::{ImageBuilder, LayerBuilder, LayerCompression};
use crate::random::{noise, Rng};

const WORDS: &[&str] = &[
    "the",
    "package",
    "version",
    "depends",
    "libc6",
    "description",
    "install",
    "config",
    "for",
    "with",
    "this",
    "file",
    "is",
    "a",
    "of",
    "and",
    "to",
    "in",
    "system",
    "service",
    "default",
    "option",
    "value",
    "user",
    "group",
    "path",
    "share",
    "lib",
    "usr",
    "bin",
    "Architecture:",
    "amd64",
    "Maintainer:",
    "Debian",
    "Priority:",
    "optional",
    "Section:",
    "utils",
    "Size:",
    "SHA256:",
    "Filename:",
    "pool/main/",
    "Homepage:",
    "https://",
    ".org",
    "error",
    "warning",
    "return",
    "function",
    "import",
];

/// `len` bytes of word-like text (ratio about 0.3 under gzip).
pub fn text(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        let word = WORDS[rng.below(WORDS.len())];
        out.extend_from_slice(word.as_bytes());
        if rng.chance(10) {
            out.extend_from_slice(format!("{:x}", rng.next_u64() % 100_000).as_bytes());
        }
        out.push(if rng.chance(12) { b'\n' } else { b' ' });
    }
    out.truncate(len);
    out
}

/// `len` bytes shaped like machine code: instructions from a small set with random
/// operands, a string table, and zero-padded sections (ratio about 0.4 to 0.5).
pub fn binary(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    const OPCODES: &[&[u8]] = &[
        b"\x48\x89\xe5",
        b"\x48\x8b\x45",
        b"\xe8",
        b"\x0f\x1f\x44\x00\x00",
        b"\xc3",
        b"\x55",
        b"\x41\x57",
    ];
    let mut out = Vec::with_capacity(len + 64);
    while out.len() < len {
        match rng.below(20) {
            0 => out.extend(std::iter::repeat_n(0u8, 64 + rng.below(2048))),
            1 => out.extend_from_slice(&text(200 + rng.below(400), rng.next_u64())),
            _ => {
                out.extend_from_slice(OPCODES[rng.below(OPCODES.len())]);
                let operand = rng.next_u64().to_le_bytes();
                out.extend_from_slice(&operand[..rng.below(5)]);
            }
        }
    }
    out.truncate(len);
    out
}

/// A Debian-like image roughly as a Dockerfile makes it, about `scale` / 4 MB in
/// all: a base, `apt-get update`, an install, lists removed, a large file `chmod`ed (stored
/// again), Python byte code and a pip cache, and an app; layers compressed as `compression`.
pub fn realistic_image(compression: LayerCompression, seed: u64, scale: usize) -> ImageBuilder {
    let mb = |n: f64| (n * scale as f64 * 10_000.0) as usize;
    let mut rng = Rng(seed | 1);
    let mut image = ImageBuilder::new(compression);
    let mut base = LayerBuilder::new();
    base.dir("usr")
        .dir("usr/bin")
        .dir("usr/share")
        .dir("usr/share/doc")
        .dir("etc")
        .dir("var")
        .dir("var/lib")
        .dir("tmp");
    for i in 0..8 {
        base.file(
            format!("usr/bin/tool{i}"),
            &binary(mb(3.0) / 8 + rng.below(20_000), rng.next_u64()),
        );
    }
    for i in 0..120 {
        base.dir(format!("usr/share/doc/pkg{i}"));
        base.file(
            format!("usr/share/doc/pkg{i}/copyright"),
            &text(mb(1.0) / 120 + rng.below(3000), rng.next_u64()),
        );
    }
    for i in 0..300 {
        base.file(format!("etc/conf{i}"), &text(50 + rng.below(600), rng.next_u64()));
    }
    image.layer(base.finish(), "ADD rootfs.tar /");
    let mut update = LayerBuilder::new();
    update.dir("var/lib/apt").dir("var/lib/apt/lists");
    for i in 0..4 {
        update.file(format!("var/lib/apt/lists/deb_{i}_Packages"), &text(mb(1.5), rng.next_u64()));
    }
    image.layer(update.finish(), "RUN apt-get update");
    let mut install = LayerBuilder::new();
    install
        .dir("usr/lib")
        .dir("usr/lib/x")
        .dir("opt")
        .dir("usr/share/man")
        .dir("usr/share/man/man1");
    for i in 0..12 {
        install.file(format!("usr/lib/x/lib{i}.so"), &binary(mb(4.0) / 12, rng.next_u64()));
    }
    for i in 0..1500 {
        install.file(format!("usr/lib/x/small{i}.h"), &text(40 + rng.below(500), rng.next_u64()));
    }
    for i in 0..80 {
        install.file(
            format!("usr/share/man/man1/cmd{i}.1.gz"),
            &noise(1_000 + rng.below(6_000), rng.next_u64()),
        );
    }
    let archive = noise(mb(2.5), rng.next_u64());
    install.file("opt/data.tar.gz", &archive);
    image.layer(install.finish(), "RUN apt-get install -y build-essential");
    let mut clean = LayerBuilder::new();
    for i in 0..4 {
        clean.whiteout(format!("var/lib/apt/lists/deb_{i}_Packages"));
    }
    for i in 0..6 {
        clean.whiteout(format!("usr/lib/x/lib{i}.so"));
    }
    image.layer(clean.finish(), "RUN apt-get purge -y gcc && rm -rf /var/lib/apt/lists/*");
    let mut chmod = LayerBuilder::new();
    chmod.dir("opt");
    chmod.file_with("opt/data.tar.gz", &archive, 0o600, 0, 0, &[]);
    chmod.dir("usr").dir("usr/bin");
    chmod.file("usr/bin/tool0", &binary(mb(3.0) / 8, rng.next_u64()));
    image.layer(chmod.finish(), "RUN chmod 600 /opt/data.tar.gz");
    let mut python = LayerBuilder::new();
    python.dir("app").dir("app/__pycache__").dir("root").dir("root/.cache").dir("root/.cache/pip");
    for i in 0..200 {
        python.file(format!("app/mod{i}.py"), &text(500 + rng.below(4_000), rng.next_u64()));
        python.file(
            format!("app/__pycache__/mod{i}.cpython-311.pyc"),
            &binary(300 + rng.below(3_000), rng.next_u64()),
        );
    }
    python.file("root/.cache/pip/wheel.whl", &noise(mb(1.0), rng.next_u64()));
    image.layer(python.finish(), "RUN pip install -r requirements.txt");
    let mut app = LayerBuilder::new();
    app.dir("app");
    for i in 0..50 {
        app.file(format!("app/mod{i}.py"), &text(500 + rng.below(4_000), rng.next_u64()));
    }
    app.file("app/server", &binary(mb(2.0), rng.next_u64()));
    image.layer(app.finish(), "COPY . /app");
    image
}
