//! Layer compression: sniffing by magic bytes, streaming decoders, and encoder settings.
//!
//! Media types lie (a `tar.gzip` layer that is a plain tar exists in the wild), so the bytes decide.

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
        parse_compression(s).map_err(|message| crate::error::ParseError::new("compression", s, message))
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

/// What the first bytes of a blob say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sniffed {
    Known(Compression),
    /// A compression that layers do not use (bzip2, xz); named for the error message.
    Unsupported(&'static str),
}

/// Looks at the magic bytes at the start of a blob.
pub(crate) fn sniff(head: &[u8]) -> Sniffed {
    match head {
        [0x1f, 0x8b, ..] => Sniffed::Known(Compression::Gzip),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Sniffed::Known(Compression::Zstd),
        [b'B', b'Z', b'h', ..] => Sniffed::Unsupported("bzip2"),
        [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => Sniffed::Unsupported("xz"),
        _ => Sniffed::Known(Compression::None),
    }
}

/// A decompressing reader over a layer blob.
pub(crate) enum Decoder<R: BufRead> {
    Plain(R),
    Gzip(Box<flate2::bufread::MultiGzDecoder<R>>),
    #[cfg(feature = "zstd")]
    Zstd(Box<zstd::stream::read::Decoder<'static, R>>),
}

/// The error for a zstd layer when squash is built without its `zstd` feature.
#[cfg(not(feature = "zstd"))]
pub(crate) fn zstd_not_built() -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, "zstd layers need squash built with its `zstd` cargo feature")
}

impl<R: BufRead> Decoder<R> {
    pub(crate) fn new(compression: Compression, inner: R) -> io::Result<Decoder<R>> {
        Ok(match compression {
            Compression::None => Decoder::Plain(inner),
            Compression::Gzip => Decoder::Gzip(Box::new(flate2::bufread::MultiGzDecoder::new(inner))),
            #[cfg(feature = "zstd")]
            Compression::Zstd => Decoder::Zstd(Box::new(zstd::stream::read::Decoder::with_buffer(inner)?)),
            #[cfg(not(feature = "zstd"))]
            Compression::Zstd => return Err(zstd_not_built()),
        })
    }

    /// The compressed reader, for draining whatever the decoder left unread.
    pub(crate) fn into_inner(self) -> R {
        match self {
            Decoder::Plain(r) => r,
            Decoder::Gzip(d) => d.into_inner(),
            #[cfg(feature = "zstd")]
            Decoder::Zstd(d) => d.finish(),
        }
    }
}

impl<R: BufRead> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Plain(r) => r.read(buf),
            Decoder::Gzip(d) => d.read(buf),
            #[cfg(feature = "zstd")]
            Decoder::Zstd(d) => d.read(buf),
        }
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
        assert_eq!(sniff(b"BZh91AY"), Sniffed::Unsupported("bzip2"));
        assert_eq!(sniff(&[0xfd, b'7', b'z', b'X', b'Z', 0]), Sniffed::Unsupported("xz"));
        assert_eq!(sniff(b"usr/"), Sniffed::Known(Compression::None));
        assert_eq!(sniff(b""), Sniffed::Known(Compression::None));
    }

    /// The fixture blob from go-containerregistry: "content.tar", zstd-compressed.
    fn zstd_fixture() -> Vec<u8> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/fixtures/google__go-containerregistry/pkg/crane/testdata/content.tar.zst"
        );
        std::fs::read(path).expect("fixture")
    }

    #[cfg(feature = "zstd")]
    #[test]
    fn decodes_zstd() {
        let mut tar = Vec::new();
        Decoder::new(Compression::Zstd, &zstd_fixture()[..]).expect("decoder").read_to_end(&mut tar).expect("decode");
        assert!(tar.len() >= 1024 && tar.len() % 512 == 0, "{} bytes", tar.len());
    }

    #[cfg(not(feature = "zstd"))]
    #[test]
    fn zstd_without_the_feature_is_a_clear_error() {
        let error = Decoder::new(Compression::Zstd, &zstd_fixture()[..]).err().expect("refused");
        assert_eq!(error.kind(), io::ErrorKind::Unsupported);
        assert!(error.to_string().contains("`zstd` cargo feature"), "{error}");
        let error = crate::merge::compress::Encoder::new(Compression::Zstd, None, 1, Vec::new()).err().expect("refused");
        assert!(error.to_string().contains("`zstd` cargo feature"), "{error}");
    }
}
