//! Archive outputs on a stream that cannot seek (a pipe into `docker load`): members in the order
//! a streaming reader needs, each written once; a blob whose digest is known in advance passes
//! straight through, others are spooled first to learn their digest and size.

use std::collections::BTreeSet;
use std::io::{BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::PathBuf;

use super::container::{
    closing_members, member_header, member_name, opening_members, BlobKind, Finish, OutputWriter,
    STDOUT,
};
use super::output::OutputFormat;
use crate::digest::{Digest, HashingWriter, StreamHasher};
use crate::error::{Error, IoContext, Location, Result};
use crate::layer::tarstream::padding;

/// An archive written front to back into a stream that cannot seek (a pipe into `docker load`).
pub(crate) struct StreamTarget<'a> {
    pub(super) out: &'a mut dyn Write,
    pub(super) format: OutputFormat,
    /// Where blobs whose digest is not known in advance are spooled.
    pub(super) tmp_dir: Option<PathBuf>,
    pub(super) written: BTreeSet<Digest>,
    /// Whether the members that open the archive (an OCI archive's `oci-layout`) are out.
    pub(super) opened: bool,
}

impl StreamTarget<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes).at(|| Location::file(STDOUT))
    }

    fn member(&mut self, name: &str, size: u64, typeflag: u8) -> Result<()> {
        self.put(&member_header(name.as_bytes(), size, typeflag))
    }

    fn opening(&mut self) -> Result<()> {
        if std::mem::replace(&mut self.opened, true) {
            return Ok(());
        }
        self.put(&opening_members(self.format))
    }

    pub(super) fn write_blob(
        &mut self,
        kind: BlobKind,
        known: Option<(&Digest, u64)>,
        hasher: StreamHasher,
        write: &mut dyn FnMut(&mut dyn Write) -> Result<()>,
    ) -> Result<(Digest, u64)> {
        self.opening()?;
        let (digest, size) = match known {
            Some((digest, size)) => {
                // Known in advance: the member begins at once and the bytes pass straight through.
                self.member(&member_name(self.format, kind, digest), size, b'0')?;
                let dest = PathBuf::from(STDOUT);
                let mut writer =
                    HashingWriter::new(OutputWriter { inner: &mut *self.out, dest: &dest }, hasher);
                write(&mut writer)?;
                let (_, actual, written) = writer.finish();
                if written != size || actual != *digest {
                    return Err(Error::DigestMismatch {
                        location: Location::file(STDOUT).part("blob copied to the output"),
                        expected: digest.clone(),
                        actual,
                    });
                }
                (actual, written)
            }
            None => {
                // Spooled first: the member's name and size are its digest and length.
                let dir = self.tmp_dir.clone().unwrap_or_else(std::env::temp_dir);
                let spool = tempfile::tempfile_in(&dir).at(|| Location::file(&dir))?;
                let mut writer = HashingWriter::new(
                    OutputWriter { inner: BufWriter::with_capacity(1 << 20, &spool), dest: &dir },
                    hasher,
                );
                write(&mut writer)?;
                let (buffered, digest, size) = writer.finish();
                buffered
                    .inner
                    .into_inner()
                    .map_err(|e| Error::io(Location::file(&dir), e.into_error()))?;
                if self.written.contains(&digest) {
                    return Ok((digest, size));
                }
                self.member(&member_name(self.format, kind, &digest), size, b'0')?;
                let mut reader = &spool;
                reader.seek(SeekFrom::Start(0)).at(|| Location::file(&dir))?;
                let dest = PathBuf::from(STDOUT);
                // Read in 1 MiB pieces (`io::copy` alone would read 8 KiB at a time).
                let copied = std::io::copy(
                    &mut BufReader::with_capacity(1 << 20, reader),
                    &mut OutputWriter { inner: &mut *self.out, dest: &dest },
                )
                .at(|| Location::file(&dir))?;
                if copied != size {
                    return Err(Error::Output {
                        location: Location::file(&dir),
                        reason: "the spooled blob changed size".into(),
                    });
                }
                (digest, size)
            }
        };
        self.put(&vec![0u8; padding(size) as usize])?;
        self.written.insert(digest.clone());
        Ok((digest, size))
    }

    pub(super) fn commit(mut self, finish: Finish) -> Result<()> {
        self.opening()?;
        let closing = closing_members(self.format, finish)
            .map_err(|e| Error::io(Location::file(STDOUT), e.into()))?;
        self.put(&closing)?;
        self.out.flush().at(|| Location::file(STDOUT))
    }
}
