//! Reading a squashed range once. Its layers are indexed newest first, so that when a layer is read
//! every layer above it in the range is known: an entry that one of them shadows (the same path, a
//! whiteout or a file over it or over a parent, an opaque parent) can never reach the new layer,
//! and every other entry is kept, header group and data, in an unnamed temporary file as the layer
//! is read (removed by the system when closed, whatever happens to the run); a plain layer in the
//! spool of the input (a `docker save` tarball from a pipe) is already such a file, and where its
//! kept entries lie there is noted instead. A plan's first
//! [`CacheBudget::for_kept_copies`] bytes of copies stay in the page cache; beyond, a copy is
//! written back and dropped from the page cache as it grows. The merge (or a report's measure)
//! copies from there instead of decoding the layer again. What it needs and a file lacks (the
//! target of a hard link later in the same layer whose name a layer above shadows; a hash collision
//! in the shadow sets) is read from the layer again, and counted.

use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use super::blob::Store;
use super::image::Image;
use crate::budget::Budget;
use crate::codec::compression::Compression;
use crate::context::Context;
use crate::error::{Error, IoContext, Location, Result};
use crate::layer::entry::{EntryKind, EntryPath};
use crate::layer::layer_index::{EntryClass, LayerIndex};
use crate::layer::tarstream::{padding, HeaderGroup, TarError};
use crate::page_cache::{read_ahead, CacheBudget, DropBehind, WriteBehind, BEHIND};
use crate::progress::Event;

/// The entries of one layer of a range that no layer above it shadows, as they were read.
#[derive(Debug)]
pub(crate) struct Kept {
    /// Cached up to `cached_until`; beyond, dropped from the page cache as it was written and
    /// dropped behind its reader.
    file: File,
    cached_until: u64,
    /// Which entries are kept, one bit per entry of the layer.
    entries: Vec<u64>,
    /// Where each kept entry starts in `file`, in order, when `file` is the spool of the input
    /// (a plain layer there is left where it is, not copied); `None`: `file` is a copy holding
    /// the kept entries one after another.
    offsets: Option<Vec<u64>>,
}

/// The paths of the layers above, as hashes in one sorted list (8 bytes a path, with two flags
/// in the low bits): a collision only makes an entry look shadowed, and the merge then reads
/// its layer again.
#[derive(Debug, Default)]
struct Shadow {
    keys: Vec<u64>,
    /// Where the keys of each value of the top 16 bits start (65,537 bounds): a lookup searches
    /// a few keys, not the whole list.
    starts: Vec<u32>,
}

/// A path whose descendants below are hidden: a whiteout, a non-directory, an opaque directory.
const COVERS: u64 = 1;
/// The target of a hard link: its content may be needed whatever shadows the name.
const LINKED: u64 = 2;
const FLAGS: u64 = COVERS | LINKED;

fn key(path: &[u8]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    path.hash(&mut hasher);
    hasher.finish() & !FLAGS
}

impl Shadow {
    /// The flags of `path`, if a layer above names it.
    fn find(&self, path: &[u8]) -> Option<u64> {
        let k = key(path);
        let top = (k >> 48) as usize;
        let (from, to) = (*self.starts.get(top)? as usize, *self.starts.get(top + 1)? as usize);
        let slice = &self.keys[from..to];
        slice.binary_search_by_key(&k, |v| v & !FLAGS).ok().map(|i| slice[i] & FLAGS)
    }

    /// Whether a layer above hides what lies below `dir` (a whiteout, a non-directory or an
    /// opaque directory at it or at one of its ancestors).
    fn covers_below(&self, dir: &[u8]) -> bool {
        !dir.is_empty()
            && (self.find(dir).is_some_and(|f| f & COVERS != 0)
                || dir.iter().enumerate().any(|(i, &b)| {
                    b == b'/' && self.find(&dir[..i]).is_some_and(|f| f & COVERS != 0)
                }))
    }

    /// Whether a layer above hides the entry at `path` of a layer below; `parent` remembers the
    /// verdict for the last parent directory asked about (entries come grouped by directory).
    fn hides(&self, path: &EntryPath, dir: bool, parent: &mut (Vec<u8>, bool)) -> bool {
        let bytes = path.as_bytes();
        if path.is_root() || self.keys.is_empty() {
            return false;
        }
        match self.find(bytes) {
            Some(flags) if flags & LINKED != 0 => return false,
            Some(_) if !dir => return true,
            _ => {}
        }
        let up = &bytes[..bytes.iter().rposition(|&b| b == b'/').unwrap_or(0)];
        if parent.0 != up {
            parent.0.clear();
            parent.0.extend_from_slice(up);
            parent.1 = self.covers_below(up);
        }
        parent.1
    }

    /// Adds the entries of a layer, which lies below those added before.
    fn add(&mut self, index: &LayerIndex) {
        let mut keys = std::mem::take(&mut self.keys);
        keys.reserve(index.entries.len());
        for e in &index.entries {
            match &e.class {
                EntryClass::Node(kind) => {
                    keys.push(
                        key(e.path.as_bytes()) | if *kind != EntryKind::Dir { COVERS } else { 0 },
                    );
                    if let Some(target) = &e.link_target {
                        keys.push(key(target.as_bytes()) | LINKED);
                    }
                }
                EntryClass::Whiteout(target) => keys.push(key(target.as_bytes()) | COVERS),
                EntryClass::Opaque(dir) => keys.push(key(dir.as_bytes()) | COVERS),
                EntryClass::Ignored => {}
            }
        }
        keys.sort_unstable();
        // One key per path, its flags joined (in place: no second list at the peak).
        keys.dedup_by(|later, kept| {
            let same = *later & !FLAGS == *kept & !FLAGS;
            if same {
                *kept |= *later & FLAGS;
            }
            same
        });
        keys.shrink_to_fit();
        let mut starts = Vec::with_capacity((1 << 16) + 1);
        let mut at = 0usize;
        for top in 0..=(1u64 << 16) {
            while at < keys.len() && keys[at] >> 48 < top {
                at += 1;
            }
            starts.push(u32::try_from(at).unwrap_or(u32::MAX));
        }
        self.keys = keys;
        self.starts = starts;
    }
}

/// A reader of a [`Kept`] file at a position of its own (the file may be shared). Past its
/// cached part the file was dropped from the page cache as it was written, so there the reader
/// asks for the next [`BEHIND`] bytes ahead of it and drops what it has passed: the copy
/// streams through a few MiB of memory (docs/speed.md). Reading an entry again then reads it
/// from the disk.
pub(crate) struct At<'a> {
    file: &'a File,
    pos: u64,
    cached_until: u64,
    behind: DropBehind,
}

impl<'a> At<'a> {
    /// A reader of `file` from its start; the bytes before `cached_until` stay cached.
    fn new(file: &'a File, cached_until: u64) -> At<'a> {
        At { file, pos: 0, cached_until, behind: DropBehind::new(cached_until) }
    }
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == 0 {
            read_ahead(self.file, self.cached_until, self.cached_until + 2 * BEHIND);
        }
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        if self.behind.reached(self.file, self.pos, false) {
            read_ahead(self.file, self.pos + BEHIND, self.pos + 2 * BEHIND);
        }
        Ok(n)
    }
}

impl Seek for At<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.pos = match to {
            SeekFrom::Start(p) => p,
            SeekFrom::Current(d) => self
                .pos
                .checked_add_signed(d)
                .ok_or_else(|| io::Error::other("seek before the start"))?,
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
    /// The first entry not passed yet, where the first kept entry from it on starts in a copy,
    /// and how many kept entries come before it.
    next: usize,
    offset: u64,
    rank: usize,
}

impl Kept {
    /// Whether entry `entry` of the layer is kept.
    pub(crate) fn has(&self, entry: usize) -> bool {
        self.entries.get(entry / 64).is_some_and(|word| word >> (entry % 64) & 1 == 1)
    }

    /// What the kept entries of image layer `layer` are read from, as errors name it.
    pub(crate) fn describe(&self, layer: usize) -> String {
        match self.offsets {
            Some(_) => format!("layer {layer}'s surviving entries in the spool of the input"),
            None => format!("temporary copy of layer {layer}'s surviving entries"),
        }
    }

    /// A reader of the kept entries, in order; `index` is the layer's index.
    pub(crate) fn reader<'a>(&'a self, index: &'a LayerIndex) -> KeptReader<'a> {
        KeptReader {
            kept: self,
            index,
            reader: io::BufReader::with_capacity(1 << 20, At::new(&self.file, self.cached_until)),
            next: 0,
            offset: 0,
            rank: 0,
        }
    }
}

impl<'a> KeptReader<'a> {
    /// The header group and a reader of the padded data of kept entry `entry` (entries are
    /// asked for in ascending order; one may be asked for again).
    pub(crate) fn entry(
        &mut self,
        entry: usize,
    ) -> io::Result<(Vec<u8>, io::Take<&mut io::BufReader<At<'a>>>)> {
        // Every kept entry before `entry` lies before it in the file.
        while self.next < entry {
            if self.kept.has(self.next) {
                self.offset += self.index.entries[self.next].tar_size();
                self.rank += 1;
            }
            self.next += 1;
        }
        if !self.kept.has(entry) {
            return Err(io::Error::other(format!("entry {entry} was not kept")));
        }
        let start = match &self.kept.offsets {
            None => self.offset,
            Some(offsets) => *offsets
                .get(self.rank)
                .ok_or_else(|| io::Error::other(format!("entry {entry} has no offset")))?,
        };
        let e = &self.index.entries[entry];
        let here = self.reader.stream_position()?;
        self.reader.seek_relative(start as i64 - here as i64)?;
        let mut header = vec![0; e.header_len as usize];
        self.reader.read_exact(&mut header)?;
        let data = e.tar_size() - u64::from(e.header_len);
        Ok((header, (&mut self.reader).take(data)))
    }
}

impl Image {
    /// Indexes the layers of `range` newest first ([`WINDOW`] at a time), keeping in an unnamed
    /// temporary file under the context's temporary directory per layer what no layer indexed
    /// before it shadows. Every digest is checked as [`Image::index_layers`] checks it. The
    /// result is oldest first; with `facts`, the indexes hold their entries' facts. The
    /// copies stay cached while `cache` (shared by the ranges of one plan) lasts; past it each
    /// copy is written back and dropped from the page cache as it grows, and dropped behind its
    /// reader (a squash's merge or a report's measure, which read it once, front to back).
    pub(crate) fn index_range_once(
        &self,
        range: std::ops::RangeInclusive<usize>,
        (context, cache): (&Context<'_>, &Arc<CacheBudget>),
        facts: bool,
    ) -> Result<(Vec<LayerIndex>, Vec<Kept>)> {
        let budget = context.budget();
        let progress = context.progress();
        let size = |i: usize| self.layers().get(i).map_or(0, |l| l.blob.size);
        let layers: Vec<usize> = range.rev().collect();
        if !layers.is_empty() {
            progress.event(&Event::Indexing {
                layers: layers.len(),
                bytes: crate::units::total(layers.iter().map(|&i| size(i))),
            });
        }
        let dir = context.scratch_dir();
        let mut shadow = Shadow::default();
        let mut indexes = Vec::with_capacity(layers.len());
        let mut kept = Vec::with_capacity(layers.len());
        for chunk in layers.chunks(WINDOW) {
            use rayon::prelude::*;
            let done: Vec<Result<(LayerIndex, Kept)>> = budget.run(|| {
                chunk
                    .par_iter()
                    .map(|&layer| {
                        let result =
                            self.index_keeping(layer, budget, &shadow, (&dir, cache), facts)?;
                        progress.event(&Event::Indexed { layer, bytes: size(layer) });
                        Ok(result)
                    })
                    .collect()
            })?;
            for result in done {
                let (index, k) = result?;
                indexes.push(index);
                kept.push(k);
            }
            for index in &indexes[indexes.len() - chunk.len()..] {
                shadow.add(index);
            }
        }
        indexes.reverse();
        kept.reverse();
        Ok((indexes, kept))
    }
}

impl Image {
    /// Indexes `layer`, keeping in a temporary file under `dir` what `shadow` does not hide; or,
    /// for a plain layer in the spool of the input, noting where those entries lie there.
    fn index_keeping(
        &self,
        layer: usize,
        budget: Budget,
        shadow: &Shadow,
        (dir, cache): (&Path, &Arc<CacheBudget>),
        facts: bool,
    ) -> Result<(LayerIndex, Kept)> {
        let location = || {
            Location::file(dir).part(format!("temporary copy of layer {layer}'s surviving entries"))
        };
        let mut keeping = match self.in_spool(layer) {
            Some(spool) => Keeping::InPlace { spool, offsets: Vec::new(), end: 0 },
            None => {
                let file = tempfile::tempfile_in(dir).at(location)?;
                let within = WriteBehind::within(file, cache.clone());
                Keeping::Copy(BufWriter::with_capacity(1 << 20, within))
            }
        };
        let (mut entries, mut number): (Vec<u64>, u32) = (Vec::new(), 0);
        let mut parent = (Vec::new(), false);
        let index = self.index_layer_visiting(layer, budget, facts, &mut |group, stream| {
            let entry = number;
            number = number.saturating_add(1);
            // A path that does not parse is the index's error to report.
            let is_dir = group.meta.kind() == Some(EntryKind::Dir);
            let hidden = EntryPath::parse(&group.meta.path)
                .map_or(true, |path| shadow.hides(&path, is_dir, &mut parent));
            let kept = match &mut keeping {
                Keeping::InPlace { spool, offsets, end } => {
                    let data = stream.tar.offset();
                    // What the spool does not hold as read is not kept: the merge reads the
                    // layer again for it.
                    let at = if hidden { None } else { spool.start(group, data, *end) };
                    *end = data + group.meta.size + padding(group.meta.size);
                    match at {
                        Some(at) => {
                            offsets.push(at);
                            true
                        }
                        None => false,
                    }
                }
                Keeping::Copy(_) if hidden => false,
                Keeping::Copy(out) => {
                    let mut counted = Counted { inner: out, failed: false };
                    let written = match counted.write_all(&group.raw) {
                        Ok(()) => stream.tar.copy_data_padded(&mut counted),
                        Err(e) => Err(TarError::Io(e)),
                    };
                    match written {
                        Ok(()) => true,
                        // Writing the copy failed (a full disk): the temporary file's error.
                        Err(TarError::Io(e)) if counted.failed => {
                            return Err(Error::io(location(), e))
                        }
                        Err(e) => return Err(stream.error(e)),
                    }
                }
            };
            if kept {
                let word = entry as usize / 64;
                if entries.len() <= word {
                    entries.resize(word + 1, 0u64);
                }
                entries[word] |= 1 << (entry % 64);
            }
            Ok(())
        })?;
        entries.shrink_to_fit();
        let kept = match keeping {
            Keeping::InPlace { spool, mut offsets, .. } => {
                offsets.shrink_to_fit();
                Kept { file: spool.file, cached_until: spool.len, entries, offsets: Some(offsets) }
            }
            Keeping::Copy(out) => {
                let out = out.into_inner().map_err(|e| Error::io(location(), e.into_error()))?;
                let cached_until = out.cached_until();
                Kept { file: out.file, cached_until, entries, offsets: None }
            }
        };
        Ok((index, kept))
    }

    /// The spool of the input, opened again, when `layer` lies there as a plain tar (a
    /// `docker save` tarball read from a pipe): its entries, checked against the layer's digests
    /// as they are indexed, are then read from there by the merge instead of being copied. The
    /// spool is a file of squash's own, as the copies are, and lives as long as the image.
    fn in_spool(&self, layer: usize) -> Option<Spool> {
        self.spool.as_ref()?;
        let layer = self.layers().get(layer)?;
        let Store::Archive(archive) = &self.store else { return None };
        if layer.compression != Compression::None {
            return None;
        }
        let (base, _) = archive.resolve(&layer.blob.name)?;
        let file = File::open(archive.path()).ok()?;
        let len = file.metadata().ok()?.len();
        Some(Spool { file, base, len })
    }
}

/// How an indexed layer keeps its entries: copied into a temporary file, or left in the spool.
enum Keeping {
    Copy(BufWriter<WriteBehind>),
    /// Where each kept entry starts in the spool, and where the entry before the next one ends
    /// in the layer.
    InPlace {
        spool: Spool,
        offsets: Vec<u64>,
        end: u64,
    },
}

/// The spool of the input, a layer's offset in it, and its length.
struct Spool {
    file: File,
    base: u64,
    len: u64,
}

impl Spool {
    /// Where the header group `group` starts in the spool, its data starting at `data` in the
    /// layer and the entry before it ending at `end`, if the spool holds the group as it was
    /// read: the tar reader leaves out a global header and writes zeros for the padding of an
    /// extension header and a size of 0 for an entry that cannot have data, so a group that is
    /// not one plain header right after the entry before it is compared with the spool.
    fn start(&self, group: &HeaderGroup, data: u64, end: u64) -> Option<u64> {
        let len = group.raw.len() as u64;
        if data.checked_sub(len) != Some(end) {
            return None;
        }
        let at = self.base + end;
        if len != 512 || group.meta.kind() != Some(EntryKind::File) {
            let mut held = vec![0; group.raw.len()];
            self.file.read_exact_at(&mut held, at).ok()?;
            if held != group.raw {
                return None;
            }
        }
        Some(at)
    }
}

/// Layers indexed at once. A layer's entries are checked against the layers at least this far
/// above it (all indexed before it starts), so what is kept does not depend on the thread
/// count; with more than one, an entry that only a layer indexed at the same time shadows is
/// kept for nothing, which costs temporary space, not correctness. BENCHMARKS.md has the
/// measurements that chose one.
const WINDOW: usize = 1;

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

#[cfg(test)]
mod tests {
    use std::io::{Read, Seek, SeekFrom, Write};
    use std::sync::Arc;

    use super::At;
    use crate::page_cache::{CacheBudget, WriteBehind, BEHIND};

    /// A streamed copy, written back and dropped as it grew (from its start, or from where the
    /// cache budget it shares ran out, or never), reads back exactly as written, dropped behind
    /// the reader and read ahead of it past its cached part, and so again for a second reader;
    /// a seek back (an entry asked for again) reads the same bytes from the disk.
    #[test]
    fn a_streamed_copy_reads_back_what_was_written() {
        let data: Vec<u8> = (0..3 * BEHIND + 4_321).map(|i| (i * 31 % 241) as u8).collect();
        // A budget shared with a file that took half of it.
        let shared = Arc::new(CacheBudget::new(2 * BEHIND));
        let mut first = WriteBehind::within(tempfile::tempfile().unwrap(), shared.clone());
        first.write_all(&data[..BEHIND as usize]).unwrap();
        assert_eq!(first.cached_until(), BEHIND);
        // Handed over from the start; from the piece that found the budget spent (the 11th of
        // 777,777 bytes); never.
        let cases = [
            (None, 0),
            (Some(shared), 11 * 777_777),
            (Some(Arc::new(CacheBudget::new(u64::MAX))), data.len() as u64),
        ];
        for (budget, expected) in cases {
            let mut out = match budget {
                None => WriteBehind::new(tempfile::tempfile().unwrap(), true),
                Some(budget) => WriteBehind::within(tempfile::tempfile().unwrap(), budget),
            };
            for piece in data.chunks(777_777) {
                out.write_all(piece).unwrap();
            }
            assert_eq!(out.cached_until(), expected);
            read_back(out.file, expected, &data);
        }
    }

    fn read_back(file: std::fs::File, cached_until: u64, data: &[u8]) {
        // The second reader finds what the first one dropped behind it (on the disk).
        for pass in 0..2 {
            let mut at = At::new(&file, cached_until);
            let mut back = Vec::new();
            let mut piece = vec![0u8; 1 << 20];
            loop {
                let n = at.read(&mut piece).unwrap();
                if n == 0 {
                    break;
                }
                back.extend_from_slice(&piece[..n]);
            }
            assert!(back == data, "the copy differs (reader {pass})");
            let from = BEHIND + 5;
            at.seek(SeekFrom::Start(from)).unwrap();
            let mut again = vec![0u8; 2 * BEHIND as usize];
            at.read_exact(&mut again).unwrap();
            assert!(again[..] == data[from as usize..from as usize + again.len()]);
        }
    }
}
