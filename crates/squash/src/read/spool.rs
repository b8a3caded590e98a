//! Inputs that cannot be read in place: standard input (`-`) and pipes (`/dev/stdin`,
//! `<(docker save app)`), and archives that are themselves compressed (`docker save app |
//! gzip`; zstd, xz and bzip2 too). Archives are read by offset and `docker save` puts
//! `manifest.json` last, so such an input is first copied whole (decompressed) to a temporary
//! file, which goes away with the image (or at once, on an error or a cancellation). A thread
//! reads the spool behind its filling and hashes each large member, so that a member read back
//! from the spool (a layer, a kept layer copied out) is counted, not hashed again: the hashing
//! is done while the input arrives (`docker save` is slower than squash).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Condvar, Mutex};

use sha2::{Digest as _, Sha256};
use tempfile::TempPath;

use super::archive::SpooledDigests;
use super::image::OpenOptions;
use crate::codec::compression::{sniff_buffered, Compression, Sniffed};
use crate::codec::decode::{archive_decoder, Decoder};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Location, Result};
use crate::layer::entry::EntryKind;
use crate::layer::tarstream::{fill, TarReader};

/// Whether `path` names standard input or something that is neither a file nor a directory.
pub(crate) fn wanted(path: &Path) -> bool {
    if path.as_os_str() == "-" {
        return !path.exists();
    }
    std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

/// Copies the input at `path` (`-`: standard input) to a temporary file, decompressing it on
/// the way when its first bytes say it is gzip, zstd, xz or bzip2 (as `docker load` reads it).
/// Returns the file and the digests of the members hashed as it was filled.
pub(crate) fn spool(path: &Path, options: &OpenOptions) -> Result<(TempPath, SpooledDigests)> {
    let dir = options.tmp_dir.clone().unwrap_or_else(std::env::temp_dir);
    let shown = if path.as_os_str() == "-" {
        "standard input".to_string()
    } else {
        format!("`{}`", path.display())
    };
    let temp =
        tempfile::Builder::new().prefix(".squash-spool-").tempfile_in(&dir).map_err(|e| {
            Error::Output {
                location: Location::file(&dir),
                reason: format!("cannot create the spool for {shown} here (see --tmp-dir): {e}"),
            }
        })?;
    let spool_path = temp.path().to_path_buf();
    let cancelled = || options.cancelled.is_some_and(|cancelled| cancelled());
    let filled = Filled::default();
    let filling = Filling {
        file: temp.as_file(),
        path: &spool_path,
        shown: &shown,
        cancelled: &cancelled,
        filled: &filled,
    };
    let digests = std::thread::scope(|scope| {
        let hashing = scope.spawn(|| hash_members(temp.as_file(), &filled));
        let result = if path.as_os_str() == "-" {
            filling.fill(io::stdin().lock(), path)
        } else {
            File::open(path).at(|| Location::file(path)).and_then(|file| filling.fill(file, path))
        };
        filled.end(if result.is_ok() { End::Complete } else { End::Abandoned });
        // A member the thread did not hash is hashed when it is read, as any blob is.
        let digests = hashing.join().unwrap_or_default();
        result.map(|()| digests)
    })?;
    Ok((temp.into_temp_path(), digests))
}

/// Members smaller than this are hashed when they are read, as any blob is.
const HASHED_FROM: u64 = 64 << 10;

/// Hashes the data of each regular member of the archive being spooled into `file`, reading
/// behind the filling, until the archive's end, the end of the filling or anything the reader of
/// the archive would refuse (what follows is then hashed when read). Each digest is of the bytes
/// the spool holds at that offset, whatever the archive turns out to be.
fn hash_members(file: &File, filled: &Filled) -> SpooledDigests {
    let mut digests = SpooledDigests::new();
    let behind = Behind { file, pos: 0, filled };
    let mut tar = TarReader::new(BufReader::with_capacity(1 << 20, behind));
    while let Ok(Some(group)) = tar.next_group() {
        if group.meta.kind() != Some(EntryKind::File) || group.meta.size < HASHED_FROM {
            continue;
        }
        let offset = tar.offset();
        let mut hasher = Sha256::new();
        if tar.copy_data(&mut hasher).is_err() {
            break;
        }
        digests.insert(offset, (group.meta.size, Digest::from_raw(hasher.finalize().into())));
    }
    digests
}

/// How far the spool is filled, shared with the thread that hashes behind the filling.
#[derive(Default)]
struct Filled {
    state: Mutex<(u64, End)>,
    changed: Condvar,
}

/// Whether the filling goes on, is complete, or was given up (an error, a cancellation).
#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum End {
    #[default]
    Filling,
    Complete,
    Abandoned,
}

impl Filled {
    fn advance(&self, by: u64) {
        if let Ok(mut state) = self.state.lock() {
            state.0 += by;
            self.changed.notify_all();
        }
    }

    fn end(&self, end: End) {
        if let Ok(mut state) = self.state.lock() {
            state.1 = end;
            self.changed.notify_all();
        }
    }

    /// Waits until more than `pos` bytes are filled (returns how many) or the filling is
    /// complete (returns `pos` at its end); `None` when it was given up.
    fn past(&self, pos: u64) -> Option<u64> {
        let mut state = self.state.lock().ok()?;
        loop {
            match *state {
                (_, End::Abandoned) => return None,
                (len, _) if len > pos => return Some(len),
                (len, End::Complete) => return Some(len),
                _ => state = self.changed.wait(state).ok()?,
            }
        }
    }
}

/// Reads the spool up to where it is filled, waiting for more until the filling ends.
struct Behind<'a> {
    file: &'a File,
    pos: u64,
    filled: &'a Filled,
}

impl Read for Behind<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let len = self.filled.past(self.pos).ok_or_else(|| io::Error::other("spool given up"))?;
        let want =
            buf.len().min(usize::try_from(len.saturating_sub(self.pos)).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::other("spool shorter than filled"));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// The spool being filled: its file, where it is, the input as the errors name it, and whether
/// the run was cancelled.
struct Filling<'a> {
    file: &'a File,
    path: &'a Path,
    shown: &'a str,
    cancelled: &'a dyn Fn() -> bool,
    filled: &'a Filled,
}

impl Filling<'_> {
    /// Copies `raw`, read from `path`, into the spool. A plain tar is copied by the kernel where
    /// it can (`splice` from a pipe, `copy_file_range` from a file): `std::io::copy` does so
    /// when it sees both ends' concrete types, so they stay concrete on that path.
    fn fill<R: Read>(&self, raw: R, path: &Path) -> Result<()> {
        let location = Location::file(path);
        let (mut sniffed, buffered) = sniff_buffered(raw).at(|| location.clone())?;
        if sniffed == Sniffed::Known(Compression::None) {
            return self.copy_plain(buffered, &location);
        }
        // Decompressed as many times as it was compressed (`gzip` of a `.tar.gz`), so that the
        // copy is a plain tar.
        let mut source: Box<dyn BufRead + '_> = Box::new(buffered);
        let mut read_location = location;
        let mut codecs = Vec::new();
        loop {
            if sniffed == Sniffed::Known(Compression::None) {
                break;
            }
            if codecs.len() == 4 {
                return Err(Error::unsupported(
                    read_location,
                    "the archive is compressed more than four times",
                ));
            }
            let decoder: Box<dyn Read + '_> = match sniffed {
                Sniffed::Known(codec) => {
                    codecs.push(codec.to_string());
                    Box::new(Decoder::new(codec, source).at(|| read_location.clone())?)
                }
                Sniffed::Archive(codec) => {
                    codecs.push(codec.to_string());
                    archive_decoder(codec, source).map_err(|e| {
                        Error::unsupported(
                            read_location.clone(),
                            format!("the archive itself is {codec}-compressed: {e}"),
                        )
                    })?
                }
            };
            let how = match codecs.as_slice() {
                [one] => format!("{one}-compressed"),
                many => format!("compressed {} times ({})", many.len(), many.join(", ")),
            };
            read_location = Location::file(path).part(format!("the archive, {how}"));
            let (next, buffered) = sniff_buffered(decoder).at(|| read_location.clone())?;
            (sniffed, source) = (next, Box::new(buffered));
        }
        self.copy_decoded(source, &read_location)
    }

    /// Copies a plain tar to the end into the spool, in pieces so that a cancellation is seen
    /// and the hashing follows closely. The kernel copies, so a failure is not told apart by
    /// end: one the disk gives (no space left, a quota, a file too large) is the spool's, any
    /// other the input's.
    fn copy_plain<R: Read>(&self, mut source: R, location: &Location) -> Result<()> {
        const PIECE: u64 = 4 << 20;
        let mut out = self.file;
        loop {
            if (self.cancelled)() {
                return Err(Error::Cancelled);
            }
            let copied = io::copy(&mut (&mut source).take(PIECE), &mut out).map_err(|e| {
                use io::ErrorKind::{FileTooLarge, QuotaExceeded, StorageFull};
                match e.kind() {
                    StorageFull | QuotaExceeded | FileTooLarge => self.write_failed(e),
                    _ => Error::io(location.clone(), e),
                }
            })?;
            self.filled.advance(copied);
            if copied < PIECE {
                return Ok(());
            }
        }
    }

    /// Copies what a decoder gives, to the end, into the spool, 1 MiB at a time.
    fn copy_decoded(&self, mut source: impl Read, location: &Location) -> Result<()> {
        let mut out = self.file;
        const PIECE: usize = 1 << 20;
        let mut buf = Vec::with_capacity(PIECE);
        loop {
            if (self.cancelled)() {
                return Err(Error::Cancelled);
            }
            let n =
                fill(&mut source, &mut buf, PIECE).map_err(|e| Error::io(location.clone(), e))?;
            out.write_all(&buf).map_err(|e| self.write_failed(e))?;
            self.filled.advance(n as u64);
            if n < PIECE {
                return Ok(());
            }
        }
    }

    fn write_failed(&self, e: io::Error) -> Error {
        Error::Output {
            location: Location::file(self.path),
            reason: format!("spooling {} failed: {e}", self.shown),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::read::archive::ArchiveIndex;

    /// A tar with a large member under a long name (a GNU or pax extension before it), a small
    /// one, a hard link to the large one, and a large member after them.
    fn archive(big: &[u8], late: &[u8]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut append = |name: &str, data: &[u8]| {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            builder.append_data(&mut header, name, data).expect("append");
        };
        let long = format!("{}/layer.tar", "d".repeat(120));
        append(&long, big);
        append("small.json", b"{}");
        append("late/layer.tar", late);
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Link);
        link.set_size(0);
        builder.append_link(&mut link, "again/layer.tar", &long).expect("link");
        builder.into_inner().expect("tar")
    }

    #[test]
    fn large_members_are_hashed_as_they_are_spooled() {
        let dir = tempfile::tempdir().expect("dir");
        let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let late = vec![9u8; HASHED_FROM as usize];
        let tar = archive(&big, &late);
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gzip.write_all(&tar).expect("gzip");
        for (name, bytes) in
            [("plain.tar", tar.clone()), ("archive.tar.gz", gzip.finish().unwrap())]
        {
            let input = dir.path().join(name);
            std::fs::write(&input, bytes).expect("write");
            let options = OpenOptions::default().with_tmp_dir(dir.path());
            let (spool, digests) = spool(&input, &options).expect("spool");
            assert_eq!(std::fs::read(&spool).expect("read"), tar, "{name}: the spool is the tar");
            let index = ArchiveIndex::open(&spool).expect("index").with_spooled(digests);
            let long = format!("{}/layer.tar", "d".repeat(120));
            assert_eq!(index.spooled_digest(&long), Some(Digest::of(&big)), "{name}");
            assert_eq!(index.spooled_digest("again/layer.tar"), Some(Digest::of(&big)), "{name}");
            assert_eq!(index.spooled_digest("late/layer.tar"), Some(Digest::of(&late)), "{name}");
            assert_eq!(index.spooled_digest("small.json"), None, "{name}: hashed when read");
        }
    }

    #[test]
    fn a_spool_that_fails_stops_its_hashing() {
        let dir = tempfile::tempdir().expect("dir");
        let tar = archive(&[1u8; 100_000], &[2u8; 70_000]);
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gzip.write_all(&tar).expect("gzip");
        let mut bytes = gzip.finish().expect("gzip");
        bytes.truncate(bytes.len() / 2);
        let input = dir.path().join("cut.tar.gz");
        std::fs::write(&input, bytes).expect("write");
        let options = OpenOptions::default().with_tmp_dir(dir.path());
        let err = spool(&input, &options).expect_err("a truncated archive fails");
        assert!(err.to_string().contains("cut.tar.gz"), "{err}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").collect();
        assert_eq!(left.len(), 1, "only the input is left");
    }
}
