//! Reading a squashed range once. Its layers are indexed newest first, so that when a layer is
//! read every layer above it in the range is known: an entry that one of them shadows (the same
//! path, a whiteout or a file over it or over a parent, an opaque parent) can never reach the new
//! layer, and every other entry is kept, header group and data, in an unnamed temporary file as
//! the layer is read (removed by the system when closed, whatever happens to the run). The merge
//! copies from there instead of decoding the layer again. What it needs and a file lacks (the
//! target of a hard link later in the same layer whose name a layer above shadows; a hash
//! collision in the shadow sets) is read from the layer again, and counted.

use std::collections::HashSet;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::error::{Error, IoContext, Location, Result};
use crate::layer::entry::{EntryKind, EntryPath};
use crate::layer::index::{EntryClass, LayerIndex};
use crate::read::stream::Budget;
use crate::read::Image;

/// The entries of one layer of a range that no layer above it shadows, as they were read.
#[derive(Debug)]
pub(crate) struct Kept {
    file: File,
    /// The entries kept (their numbers in the layer, ascending).
    entries: Vec<u32>,
}

/// The paths of the layers above, as hashes: a collision only makes an entry look shadowed,
/// and the merge then reads its layer again.
#[derive(Debug, Default)]
struct Shadow {
    /// Every path an entry or a whiteout names.
    any: HashSet<u64>,
    /// Paths whose descendants below are hidden: whiteouts, non-directories, opaque directories.
    covers: HashSet<u64>,
    /// Targets of hard links: their content may be needed whatever shadows the name.
    link_targets: HashSet<u64>,
}

fn key(path: &[u8]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    path.hash(&mut hasher);
    hasher.finish()
}

impl Shadow {
    /// Whether a layer above hides the entry at `path` of a layer below.
    fn hides(&self, path: &EntryPath, dir: bool) -> bool {
        let bytes = path.as_bytes();
        if path.is_root() || self.link_targets.contains(&key(bytes)) {
            return false;
        }
        if !dir && self.any.contains(&key(bytes)) {
            return true;
        }
        bytes.iter().enumerate().any(|(i, &b)| b == b'/' && self.covers.contains(&key(&bytes[..i])))
    }

    /// Adds the entries of a layer, which lies below those added before.
    fn add(&mut self, index: &LayerIndex) {
        for e in &index.entries {
            match &e.class {
                EntryClass::Node(kind) => {
                    self.any.insert(key(e.path.as_bytes()));
                    if *kind != EntryKind::Dir {
                        self.covers.insert(key(e.path.as_bytes()));
                    }
                    if let Some(target) = &e.link_target {
                        self.link_targets.insert(key(target.as_bytes()));
                    }
                }
                EntryClass::Whiteout(target) => {
                    self.any.insert(key(target.as_bytes()));
                    self.covers.insert(key(target.as_bytes()));
                }
                EntryClass::Opaque(dir) => {
                    self.covers.insert(key(dir.as_bytes()));
                }
                EntryClass::Ignored => {}
            }
        }
    }
}

/// A reader of a [`Kept`] file at a position of its own (the file may be shared).
pub(crate) struct At<'a> {
    file: &'a File,
    pos: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for At<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.pos = match to {
            SeekFrom::Start(p) => p,
            SeekFrom::Current(d) => self.pos.checked_add_signed(d).ok_or_else(|| io::Error::other("seek before the start"))?,
            SeekFrom::End(_) => return Err(io::Error::other("no seek from the end")),
        };
        Ok(self.pos)
    }
}

/// Reads the kept entries of one layer in order.
pub(crate) struct KeptReader<'a> {
    kept: &'a Kept,
    index: &'a LayerIndex,
    reader: io::BufReader<At<'a>>,
    /// The next kept entry not passed yet, and where it starts.
    next: usize,
    offset: u64,
}

impl Kept {
    /// Whether entry `entry` of the layer is kept.
    pub(crate) fn has(&self, entry: usize) -> bool {
        u32::try_from(entry).is_ok_and(|e| self.entries.binary_search(&e).is_ok())
    }

    /// A reader of the kept entries, in order; `index` is the layer's index.
    pub(crate) fn reader<'a>(&'a self, index: &'a LayerIndex) -> KeptReader<'a> {
        KeptReader { kept: self, index, reader: io::BufReader::with_capacity(1 << 20, At { file: &self.file, pos: 0 }), next: 0, offset: 0 }
    }
}

impl<'a> KeptReader<'a> {
    /// The header group and a reader of the padded data of kept entry `entry` (entries are
    /// asked for in ascending order; one may be asked for again).
    pub(crate) fn entry(&mut self, entry: usize) -> io::Result<(Vec<u8>, io::Take<&mut io::BufReader<At<'a>>>)> {
        let size = |e: u32| self.index.entries[e as usize].tar_size();
        while self.kept.entries.get(self.next).is_some_and(|&e| (e as usize) < entry) {
            self.offset += size(self.kept.entries[self.next]);
            self.next += 1;
        }
        if self.kept.entries.get(self.next).is_none_or(|&e| e as usize != entry) {
            return Err(io::Error::other(format!("entry {entry} was not kept")));
        }
        let e = &self.index.entries[entry];
        let here = self.reader.stream_position()?;
        self.reader.seek_relative(self.offset as i64 - here as i64)?;
        let mut header = vec![0; e.header_len as usize];
        self.reader.read_exact(&mut header)?;
        let data = e.tar_size() - u64::from(e.header_len);
        Ok((header, (&mut self.reader).take(data)))
    }
}

impl Image {
    /// Indexes the layers of `range` newest first, keeping in an unnamed temporary file under
    /// `tmp_dir` (default: `TMPDIR`) per layer what no layer above it in the range shadows.
    /// Every digest is checked as [`Image::index_layers`] checks it. The result is oldest first.
    pub(crate) fn index_range_once(
        &self,
        range: std::ops::RangeInclusive<usize>,
        threads: usize,
        progress: &dyn crate::write::Progress,
        tmp_dir: Option<&Path>,
    ) -> Result<(Vec<LayerIndex>, Vec<Kept>)> {
        use crate::write::Event;
        let budget = Budget::new(threads);
        let size = |i: usize| self.layers().get(i).map_or(0, |l| l.blob.size);
        let layers: Vec<usize> = range.rev().collect();
        if !layers.is_empty() {
            progress.event(&Event::Indexing { layers: layers.len(), bytes: layers.iter().map(|&i| size(i)).sum() });
        }
        let dir = tmp_dir.map(Path::to_path_buf).unwrap_or_else(std::env::temp_dir);
        let mut shadow = Shadow::default();
        let mut indexes = Vec::with_capacity(layers.len());
        let mut kept = Vec::with_capacity(layers.len());
        for &layer in &layers {
            let location = || Location::file(&dir).part(format!("temporary copy of layer {layer}'s surviving entries"));
            let file = tempfile::tempfile_in(&dir).at(location)?;
            let mut out = BufWriter::with_capacity(1 << 20, file);
            let (mut entries, mut number) = (Vec::new(), 0u32);
            let index = self.index_layer_visiting(layer, budget, &mut |group, stream| {
                let entry = number;
                number = number.saturating_add(1);
                // A path that does not parse is the index's error to report, with its name.
                let Ok(path) = EntryPath::parse(&group.meta.path) else { return Ok(()) };
                let dir = group.meta.kind() == Some(EntryKind::Dir);
                if shadow.hides(&path, dir) {
                    return Ok(());
                }
                let mut counted = Counted { inner: &mut out, failed: false };
                let written = match counted.write_all(&group.raw) {
                    Ok(()) => stream.tar.copy_data_padded(&mut counted),
                    Err(e) => Err(crate::layer::tarstream::TarError::Io(e)),
                };
                match written {
                    Ok(()) => {
                        entries.push(entry);
                        Ok(())
                    }
                    // Writing the copy failed (a full disk): the temporary file's error.
                    Err(crate::layer::tarstream::TarError::Io(e)) if counted.failed => Err(Error::io(location(), e)),
                    Err(e) => Err(stream.error(e)),
                }
            })?;
            let file = out.into_inner().map_err(|e| Error::io(location(), e.into_error()))?;
            shadow.add(&index);
            progress.event(&Event::Indexed { layer, bytes: size(layer) });
            entries.shrink_to_fit();
            indexes.push(index);
            kept.push(Kept { file, entries });
        }
        indexes.reverse();
        kept.reverse();
        Ok((indexes, kept))
    }
}

/// Tells a failed write (of the copy) from a failed read (of the layer).
struct Counted<'a, W: Write> {
    inner: &'a mut W,
    failed: bool,
}

impl<W: Write> Write for Counted<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf).inspect_err(|_| self.failed = true)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
