//! Archive outputs on disk (OCI archives and `docker save` tarballs): written front to back into
//! a temporary file beside the destination, each member's header patched in place once its
//! blob's digest and size are known, compressed as a whole when the output asks for it, and
//! renamed into place at the commit.

use std::collections::BTreeSet;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::PathBuf;

use tempfile::NamedTempFile;

use super::container::{
    closing_members, member_header, member_name, BlobKind, Finish, OutputWriter,
};
use super::container::{parent_dir, temp_prefix};
use super::lock::temp_file;
use super::output::OutputFormat;
use crate::codec::compression::Compression;
use crate::codec::encode::Encoder;
use crate::digest::{Digest, HashingWriter, StreamHasher};
use crate::error::{Error, IoContext, Location, Result};
use crate::layer::tarstream::padding;
use crate::page_cache::WriteBehind;

/// An archive being written on disk.
pub(crate) struct ArchiveTarget {
    pub(super) dest: PathBuf,
    pub(super) file: Option<NamedTempFile>,
    pub(super) out: BufWriter<WriteBehind>,
    pub(super) offset: u64,
    pub(super) format: OutputFormat,
    pub(super) written: BTreeSet<Digest>,
    /// The archive is compressed as a whole at the commit, when given (never
    /// `Compression::None`).
    pub(super) compression: Option<Compression>,
}

impl ArchiveTarget {
    fn location(&self) -> Location {
        Location::file(&self.dest)
    }

    pub(super) fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes).at(|| Location::file(&self.dest))?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    pub(super) fn write_blob(
        &mut self,
        kind: BlobKind,
        hasher: StreamHasher,
        write: &mut dyn FnMut(&mut dyn Write) -> Result<()>,
    ) -> Result<(Digest, u64)> {
        let header_offset = self.offset;
        let placeholder = member_name(self.format, kind, &Digest::of(b""));
        self.put(&member_header(placeholder.as_bytes(), 0, b'0'))?;
        let location = self.location();
        let mut writer =
            HashingWriter::new(OutputWriter { inner: &mut self.out, dest: &self.dest }, hasher);
        write(&mut writer)?;
        let (_, digest, size) = writer.finish();
        self.offset += size;
        self.put(&vec![0u8; padding(size) as usize])?;
        if self.written.contains(&digest) {
            // Already in the archive: cut the duplicate off again.
            self.out.flush().at(|| location.clone())?;
            let file = &mut self.out.get_mut().file;
            file.set_len(header_offset).at(|| location.clone())?;
            file.seek(SeekFrom::Start(header_offset)).at(|| location.clone())?;
            self.offset = header_offset;
            return Ok((digest, size));
        }
        let name = member_name(self.format, kind, &digest);
        let header = member_header(name.as_bytes(), size, b'0');
        self.out.flush().at(|| location.clone())?;
        let file = &mut self.out.get_mut().file;
        file.seek(SeekFrom::Start(header_offset)).at(|| location.clone())?;
        file.write_all(&header).at(|| location.clone())?;
        file.seek(SeekFrom::Start(self.offset)).at(|| location.clone())?;
        self.written.insert(digest.clone());
        Ok((digest, size))
    }

    pub(super) fn commit(mut self, finish: Finish) -> Result<()> {
        let closing = closing_members(self.format, finish)
            .map_err(|e| Error::io(self.location(), e.into()))?;
        self.put(&closing)?;
        let location = self.location();
        self.out.flush().at(|| location.clone())?;
        self.out.get_mut().settle().at(|| location.clone())?;
        let file = self.file.take().ok_or_else(|| Error::Output {
            location: location.clone(),
            reason: "archive already committed".into(),
        })?;
        let file = match self.compression {
            Some(compression) => compressed(&file, compression, &self.dest)?,
            None => file,
        };
        file.as_file().sync_all().at(|| location.clone())?;
        file.persist(&self.dest).map_err(|e| Error::io(location, e.error))?;
        Ok(())
    }
}

/// A temporary file beside `dest` holding the archive `plain` compressed with `compression`
/// (every core, the bytes independent of their number); `plain` is removed when dropped.
fn compressed(
    plain: &NamedTempFile,
    compression: Compression,
    dest: &std::path::Path,
) -> Result<NamedTempFile> {
    let location = Location::file(dest);
    let packed = temp_file(&parent_dir(dest), &format!("{}-", temp_prefix(dest)))?;
    let out = BufWriter::with_capacity(1 << 20, packed.reopen().at(|| location.clone())?);
    let mut encoder = Encoder::new(compression, None, 0, out).at(|| location.clone())?;
    let mut input = plain.reopen().at(|| location.clone())?;
    std::io::copy(&mut input, &mut encoder).at(|| location.clone())?;
    encoder.finish().and_then(|mut w| w.flush()).at(|| location.clone())?;
    Ok(packed)
}
