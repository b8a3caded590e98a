//! Which compression a blob has: the [`Compression`] names and sniffing by magic bytes.
//!
//! Media types lie (a `tar.gzip` layer that is a plain tar exists in the wild), so the bytes decide
//! (docs/layer-rules.md, rule 13).

use std::fmt;
use std::io::{self, BufRead, BufReader, Read};

use serde::{Deserialize, Serialize};

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// A plain tar stream.
    None,
    /// gzip, possibly several members (pigz, eStargz).
    Gzip,
    /// zstd, possibly several frames.
    Zstd,
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        })
    }
}

impl std::str::FromStr for Compression {
    type Err = crate::error::ParseError;
    fn from_str(s: &str) -> Result<Compression, crate::error::ParseError> {
        parse_compression(s)
            .map_err(|message| crate::error::ParseError::new("compression", s, message))
    }
}

fn parse_compression(s: &str) -> Result<Compression, String> {
    match s {
        "none" | "uncompressed" => Ok(Compression::None),
        "gzip" => Ok(Compression::Gzip),
        "zstd" => Ok(Compression::Zstd),
        other => Err(format!("unknown compression `{other}` (expected gzip, zstd or none)")),
    }
}

/// A compression that archives use (`docker load` reads them) but layers do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArchiveCompression {
    Bzip2,
    Xz,
}

impl fmt::Display for ArchiveCompression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ArchiveCompression::Bzip2 => "bzip2",
            ArchiveCompression::Xz => "xz",
        })
    }
}

/// What the first bytes of a blob say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sniffed {
    Known(Compression),
    /// bzip2 or xz: read for a whole archive, refused for a layer.
    Archive(ArchiveCompression),
}

/// Looks at the magic bytes at the start of a blob.
pub(crate) fn sniff(head: &[u8]) -> Sniffed {
    match head {
        [0x1f, 0x8b, ..] => Sniffed::Known(Compression::Gzip),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Sniffed::Known(Compression::Zstd),
        // A block's magic (the digits of pi) or an empty stream's (those of its square root)
        // follows the level, so that a tar whose first name starts with `BZh` stays a tar.
        [b'B', b'Z', b'h', b'1'..=b'9', 0x31, 0x41, 0x59, 0x26, 0x53, 0x59, ..]
        | [b'B', b'Z', b'h', b'1'..=b'9', 0x17, 0x72, 0x45, 0x38, 0x50, 0x90, ..] => {
            Sniffed::Archive(ArchiveCompression::Bzip2)
        }
        [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => Sniffed::Archive(ArchiveCompression::Xz),
        _ => Sniffed::Known(Compression::None),
    }
}

/// Peeks at the first bytes of `reader` without consuming them.
pub(crate) fn sniff_buffered<R: Read>(reader: R) -> io::Result<(Sniffed, BufReader<R>)> {
    let mut buffered = BufReader::with_capacity(256 * 1024, reader);
    let head = buffered.fill_buf()?;
    Ok((sniff(head), buffered))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_magic() {
        assert_eq!(sniff(&[0x1f, 0x8b, 8]), Sniffed::Known(Compression::Gzip));
        assert_eq!(sniff(&[0x28, 0xb5, 0x2f, 0xfd]), Sniffed::Known(Compression::Zstd));
        assert_eq!(sniff(b"BZh91AY&SY"), Sniffed::Archive(ArchiveCompression::Bzip2));
        assert_eq!(sniff(b"BZh9tool/\0\0"), Sniffed::Known(Compression::None));
        assert_eq!(
            sniff(&[0xfd, b'7', b'z', b'X', b'Z', 0]),
            Sniffed::Archive(ArchiveCompression::Xz)
        );
        assert_eq!(sniff(b"usr/"), Sniffed::Known(Compression::None));
        assert_eq!(sniff(b""), Sniffed::Known(Compression::None));
    }
}
