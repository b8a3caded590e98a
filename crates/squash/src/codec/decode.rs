//! Streaming decoders for layer blobs and compressed archives.

use std::io::{self, BufRead, Read};

use super::compression::{ArchiveCompression, Compression};

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
    io::Error::new(
        io::ErrorKind::Unsupported,
        "zstd layers need squash built with its `zstd` cargo feature",
    )
}

impl<R: BufRead> Decoder<R> {
    pub(crate) fn new(compression: Compression, inner: R) -> io::Result<Decoder<R>> {
        Ok(match compression {
            Compression::None => Decoder::Plain(inner),
            Compression::Gzip => {
                Decoder::Gzip(Box::new(flate2::bufread::MultiGzDecoder::new(inner)))
            }
            #[cfg(feature = "zstd")]
            Compression::Zstd => {
                Decoder::Zstd(Box::new(zstd::stream::read::Decoder::with_buffer(inner)?))
            }
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

/// A decompressing reader over a whole archive in bzip2 or xz (every stream of it, as `bzip2
/// -d` and `xz -d` read concatenated ones); an error when squash was built without the
/// codec's cargo feature.
pub(crate) fn archive_decoder<'a, R: BufRead + 'a>(
    compression: ArchiveCompression,
    inner: R,
) -> io::Result<Box<dyn Read + 'a>> {
    match compression {
        #[cfg(feature = "xz")]
        ArchiveCompression::Xz => {
            Ok(Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(inner)))
        }
        #[cfg(feature = "bzip2")]
        ArchiveCompression::Bzip2 => Ok(Box::new(bzip2::bufread::MultiBzDecoder::new(inner))),
        #[allow(unreachable_patterns)]
        other => {
            drop(inner);
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "{other}-compressed archives need squash built with its `{other}` cargo \
                     feature"
                ),
            ))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The fixture blob from go-containerregistry: "content.tar", zstd-compressed.
    fn zstd_fixture() -> Vec<u8> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/fixtures/google__go-containerregistry",
            "/pkg/crane/testdata/content.tar.zst"
        );
        std::fs::read(path).expect("fixture")
    }

    #[cfg(feature = "zstd")]
    #[test]
    fn decodes_zstd() {
        let mut tar = Vec::new();
        Decoder::new(Compression::Zstd, &zstd_fixture()[..])
            .expect("decoder")
            .read_to_end(&mut tar)
            .expect("decode");
        assert!(tar.len() >= 1024 && tar.len() % 512 == 0, "{} bytes", tar.len());
    }

    #[cfg(not(feature = "xz"))]
    #[test]
    fn xz_without_the_feature_is_a_clear_error() {
        let error = archive_decoder(ArchiveCompression::Xz, &b"\xfd7zXZ\0"[..]).err();
        let error = error.expect("refused");
        assert_eq!(error.kind(), io::ErrorKind::Unsupported);
        assert!(error.to_string().contains("`xz` cargo feature"), "{error}");
    }

    #[cfg(not(feature = "zstd"))]
    #[test]
    fn zstd_without_the_feature_is_a_clear_error() {
        let error = Decoder::new(Compression::Zstd, &zstd_fixture()[..]).err().expect("refused");
        assert_eq!(error.kind(), io::ErrorKind::Unsupported);
        assert!(error.to_string().contains("`zstd` cargo feature"), "{error}");
    }
}
