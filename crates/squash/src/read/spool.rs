//! Inputs that cannot be read in place: standard input (`-`) and pipes (`/dev/stdin`,
//! `<(docker save app)`), and archives that are themselves gzip- or zstd-compressed
//! (`docker save app | gzip`). Archives are read by offset and `docker save` puts
//! `manifest.json` last, so such an input is first copied whole (decompressed) to a temporary
//! file, which goes away with the image (or at once, on an error or a cancellation).

use std::fs::File;
use std::io::{self, Read, Write};
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
    let raw: Box<dyn Read> = if path.as_os_str() == "-" {
        Box::new(io::stdin().lock())
    } else {
        Box::new(File::open(path).at(|| Location::file(path))?)
    };
    // Decompressed as many times as it was compressed (`gzip` of a `.tar.gz`), so that the copy
    // is a plain tar.
    let (mut source, mut read_location): (Box<dyn Read>, Location) = (raw, Location::file(path));
    let mut codecs = Vec::new();
    loop {
        let (sniffed, buffered) = sniff_buffered(source).at(|| read_location.clone())?;
        match sniffed {
            Sniffed::Known(Compression::None) => {
                source = Box::new(buffered);
                break;
            }
            Sniffed::Known(c) if codecs.len() < 4 => {
                codecs.push(c.to_string());
                source = Box::new(Decoder::new(c, buffered).at(|| read_location.clone())?);
                let how = match codecs.as_slice() {
                    [one] => format!("{one}-compressed"),
                    many => format!("compressed {} times ({})", many.len(), many.join(", ")),
                };
                read_location = Location::file(path).part(format!("the archive, {how}"));
            }
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
        }
    }
    let mut out = io::BufWriter::with_capacity(1 << 20, temp.as_file());
    let mut buf = vec![0u8; 1 << 20];
    loop {
        if options.cancelled.is_some_and(|cancelled| cancelled()) {
            return Err(Error::Cancelled);
        }
        let n = match source.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(read_location, e)),
        };
        out.write_all(&buf[..n]).map_err(|e| Error::Output {
            location: Location::file(&spool_path),
            reason: format!("spooling {shown} failed: {e}"),
        })?;
    }
    out.flush().map_err(|e| Error::Output {
        location: Location::file(&spool_path),
        reason: format!("spooling {shown} failed: {e}"),
    })?;
    drop(out);
    Ok(temp.into_temp_path())
}
