//! Archive outputs on disk (OCI archives and `docker save` tarballs): written front to back into
//! a temporary file beside the destination, each member's header patched in place once its
//! blob's digest and size are known, and renamed into place at the commit.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::PathBuf;

use tempfile::NamedTempFile;

use super::container::{
    closing_members, member_header, member_name, BlobKind, Finish, OutputWriter,
};
use super::output::OutputFormat;
use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, IoContext, Location, Result};
use crate::layer::tarstream::padding;

/// An archive being written on disk.
pub(crate) struct ArchiveTarget {
    pub(super) dest: PathBuf,
    pub(super) file: Option<NamedTempFile>,
    pub(super) out: BufWriter<File>,
    pub(super) offset: u64,
    pub(super) format: OutputFormat,
    pub(super) written: BTreeSet<Digest>,
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
        write: &mut dyn FnMut(&mut dyn Write) -> Result<()>,
    ) -> Result<(Digest, u64)> {
        let header_offset = self.offset;
        let placeholder = member_name(self.format, kind, &Digest::of(b""));
        self.put(&member_header(placeholder.as_bytes(), 0, b'0'))?;
        let location = self.location();
        let mut writer =
            HashingWriter::new(OutputWriter { inner: &mut self.out, dest: &self.dest });
        write(&mut writer)?;
        let (_, digest, size) = writer.finish();
        self.offset += size;
        self.put(&vec![0u8; padding(size) as usize])?;
        if self.written.contains(&digest) {
            // Already in the archive: cut the duplicate off again.
            self.out.flush().at(|| location.clone())?;
            let file = self.out.get_mut();
            file.set_len(header_offset).at(|| location.clone())?;
            file.seek(SeekFrom::Start(header_offset)).at(|| location.clone())?;
            self.offset = header_offset;
            return Ok((digest, size));
        }
        let name = member_name(self.format, kind, &digest);
        let header = member_header(name.as_bytes(), size, b'0');
        self.out.flush().at(|| location.clone())?;
        let file = self.out.get_mut();
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
        let file = self.file.take().ok_or_else(|| Error::Output {
            location: location.clone(),
            reason: "archive already committed".into(),
        })?;
        file.as_file().sync_all().at(|| location.clone())?;
        file.persist(&self.dest).map_err(|e| Error::io(location, e.error))?;
        Ok(())
    }
}
