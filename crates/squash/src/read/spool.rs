//! Inputs that cannot be read in place: standard input (`-`) and pipes (`/dev/stdin`,
//! `<(docker save app)`), and archives that are themselves gzip- or zstd-compressed
//! (`docker save app | gzip`). Archives are read by offset and `docker save` puts
//! `manifest.json` last, so such an input is first copied whole (decompressed) to a temporary
//! file, which goes away with the image (or at once, on an error or a cancellation).

use std::fs::File;
use std::io::{self, BufRead, Read, Write};
use std::path::Path;

use tempfile::TempPath;

use super::image::OpenOptions;
use crate::codec::compression::{sniff_buffered, Compression, Sniffed};
use crate::codec::decode::Decoder;
use crate::error::{Error, IoContext, Location, Result};

/// Whether `path` names standard input or something that is neither a file nor a directory.
pub(crate) fn wanted(path: &Path) -> bool {
    if path.as_os_str() == "-" {
        return !path.exists();
    }
    std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

/// Copies the input at `path` (`-`: standard input) to a temporary file, decompressing it on
/// the way when its first bytes say it is gzip or zstd. bzip2 and xz are refused.
pub(crate) fn spool(path: &Path, options: &OpenOptions) -> Result<TempPath> {
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
    let filling =
        Filling { file: temp.as_file(), path: &spool_path, shown: &shown, cancelled: &cancelled };
    if path.as_os_str() == "-" {
        filling.fill(io::stdin().lock(), path)?;
    } else {
        filling.fill(File::open(path).at(|| Location::file(path))?, path)?;
    }
    Ok(temp.into_temp_path())
}

/// The spool being filled: its file, where it is, the input as the errors name it, and whether
/// the run was cancelled.
struct Filling<'a> {
    file: &'a File,
    path: &'a Path,
    shown: &'a str,
    cancelled: &'a dyn Fn() -> bool,
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
            let codec = match sniffed {
                Sniffed::Known(Compression::None) => break,
                Sniffed::Known(c) if codecs.len() < 4 => c,
                Sniffed::Known(_) => {
                    return Err(Error::unsupported(
                        read_location,
                        "the archive is compressed more than four times",
                    ))
                }
                Sniffed::Unsupported(c) => {
                    return Err(Error::unsupported(
                        read_location,
                        format!("the archive itself is {c}-compressed; decompress it first"),
                    ))
                }
            };
            codecs.push(codec.to_string());
            let decoder = Decoder::new(codec, source).at(|| read_location.clone())?;
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

    /// Copies a plain tar to the end into the spool, in pieces so that a cancellation is seen.
    /// The kernel copies, so a failure is not told apart by end: one the disk gives (no space
    /// left, a quota, a file too large) is the spool's, any other the input's.
    fn copy_plain<R: Read>(&self, mut source: R, location: &Location) -> Result<()> {
        const PIECE: u64 = 16 << 20;
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
            if copied < PIECE {
                return Ok(());
            }
        }
    }

    /// Copies what a decoder gives, to the end, into the spool.
    fn copy_decoded(&self, mut source: impl Read, location: &Location) -> Result<()> {
        let mut out = io::BufWriter::with_capacity(1 << 20, self.file);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            if (self.cancelled)() {
                return Err(Error::Cancelled);
            }
            let n = match source.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(location.clone(), e)),
            };
            out.write_all(&buf[..n]).map_err(|e| self.write_failed(e))?;
        }
        out.flush().map_err(|e| self.write_failed(e))
    }

    fn write_failed(&self, e: io::Error) -> Error {
        Error::Output {
            location: Location::file(self.path),
            reason: format!("spooling {} failed: {e}", self.shown),
        }
    }
}
