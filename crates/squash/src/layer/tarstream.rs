//! A streaming tar reader that keeps every header byte.
//!
//! The `tar` crate decodes entries but hides the extension headers (PAX `x`, GNU `L`/`K`, sparse
//! extension blocks) that precede them, and a squash must copy those bytes unchanged. This reader
//! frames the stream itself, group by group (extension headers + main header), and decodes fields
//! the way Go's `archive/tar` does, since that is what Docker and containerd apply layers with:
//! the last of several PAX or GNU long-name headers wins, PAX records override GNU long names,
//! global (`g`) headers have no effect on entries, header-only types carry no data whatever their
//! size field says, and a single zero block before the end of the stream ends the archive.

use std::io::{self, BufRead, Read, Write};

use super::entry::EntryKind;

/// One tar block.
pub(crate) const BLOCK: usize = 512;

/// PAX records, key and value, in order.
pub(crate) type PaxRecords = Vec<(Vec<u8>, Vec<u8>)>;

/// An entry's header group: every block from its first extension header to its main header
/// (and old-GNU sparse extension blocks), plus the decoded fields.
#[derive(Debug, Clone)]
pub(crate) struct HeaderGroup {
    /// The raw bytes of the group, a multiple of 512.
    pub raw: Vec<u8>,
    /// The decoded main header.
    pub meta: EntryMeta,
}

/// The fields of one entry after applying PAX and GNU extension records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct EntryMeta {
    pub typeflag: u8,
    pub path: Vec<u8>,
    pub link: Vec<u8>,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: Vec<u8>,
    pub uname: Vec<u8>,
    pub gname: Vec<u8>,
    pub devmajor: u64,
    pub devminor: u64,
    /// Bytes of data stored after the header (before padding).
    pub size: u64,
    /// The logical size of the file (differs from `size` for sparse files).
    pub real_size: u64,
    /// PAX records of the entry's own `x` header, in order.
    pub pax: PaxRecords,
}

impl EntryMeta {
    pub(crate) fn kind(&self) -> Option<EntryKind> {
        EntryKind::from_typeflag(self.typeflag)
    }

    /// The modification time (seconds, nanoseconds): the PAX record's when there is one, else
    /// the header's field.
    pub(crate) fn mtime(&self) -> Option<(i64, u32)> {
        let pax = self.pax.iter().rev().any(|(k, _)| k == b"mtime");
        parse_mtime(&self.mtime, pax)
    }

    /// The extended attributes (PAX `SCHILY.xattr.*` records), by name, sorted, each name once.
    pub(crate) fn xattrs(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut xattrs: Vec<(Vec<u8>, Vec<u8>)> = self
            .pax
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(b"SCHILY.xattr.").map(|name| (name.to_vec(), v.clone()))
            })
            .collect();
        xattrs.sort();
        xattrs.dedup_by(|later, earlier| later.0 == earlier.0);
        xattrs
    }
}

/// An mtime as read: a PAX decimal time (seconds, maybe a fraction), or the header's octal field
/// (or GNU base-256).
fn parse_mtime(raw: &[u8], pax: bool) -> Option<(i64, u32)> {
    if pax {
        let text = std::str::from_utf8(raw).ok()?;
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (secs, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
        let secs: i128 = secs.parse().ok()?;
        let mut digits: String = frac.chars().take(9).collect();
        while digits.len() < 9 {
            digits.push('0');
        }
        let nanos: i128 = digits.parse().ok()?;
        let total = (secs * 1_000_000_000 + nanos) * if negative { -1 } else { 1 };
        return Some((
            i64::try_from(total.div_euclid(1_000_000_000)).ok()?,
            total.rem_euclid(1_000_000_000) as u32,
        ));
    }
    if raw.first().is_some_and(|&b| b & 0x80 != 0) {
        let value = raw[1..]
            .iter()
            .fold(i64::from(raw[0] & 0x3f), |v, &b| v.saturating_mul(256) | i64::from(b));
        return Some((if raw[0] & 0x40 != 0 { -value } else { value }, 0));
    }
    let text: String = raw.iter().map(|&b| b as char).filter(|c| c.is_digit(8)).collect();
    Some((i64::from_str_radix(if text.is_empty() { "0" } else { &text }, 8).ok()?, 0))
}

/// Why a tar stream could not be read.
#[derive(Debug)]
pub(crate) enum TarError {
    Io(io::Error),
    /// The stream is malformed; the entry's path is given when it is known.
    Malformed {
        entry: Option<Vec<u8>>,
        reason: String,
    },
}

impl From<io::Error> for TarError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            return TarError::Malformed {
                entry: None,
                reason: "unexpected end of stream (truncated)".into(),
            };
        }
        TarError::Io(e)
    }
}

fn malformed(entry: Option<&[u8]>, reason: impl Into<String>) -> TarError {
    TarError::Malformed { entry: entry.map(<[u8]>::to_vec), reason: reason.into() }
}

/// Reads header groups one after the other; the caller consumes or skips each entry's data.
pub(crate) struct TarReader<R> {
    inner: R,
    /// Bytes consumed so far.
    offset: u64,
    /// Data bytes of the current entry not yet consumed, and the padding after them.
    pending_data: u64,
    pending_pad: u64,
    finished: bool,
    /// When set, every entry's data passes through it ([`TarReader::hash_data`]).
    hasher: Option<Box<xxhash_rust::xxh3::Xxh3>>,
    /// The fingerprint of the data of the entry before the current one.
    previous_hash: Option<u128>,
}

impl<R: BufRead> TarReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        TarReader {
            inner,
            offset: 0,
            pending_data: 0,
            pending_pad: 0,
            finished: false,
            hasher: None,
            previous_hash: None,
        }
    }

    /// Fingerprints every entry's data (XXH3-128, whether it is read, copied or skipped), for
    /// telling a copy that only changes metadata from new content; see
    /// [`TarReader::previous_data_hash`].
    pub(crate) fn hash_data(&mut self) {
        self.hasher = Some(Box::default());
    }

    /// With [`TarReader::hash_data`]: the fingerprint of the data of the entry before the one
    /// [`TarReader::next_group`] returned last (of the last entry, once it returned `None`).
    pub(crate) fn previous_data_hash(&self) -> Option<u128> {
        self.previous_hash
    }

    /// Moves the current entry's remaining data (not its padding) into the fingerprint and
    /// `out`.
    fn move_data(&mut self, out: Option<&mut dyn Write>) -> Result<(), TarError> {
        let n = self.pending_data;
        let copied = match self.hasher.as_deref_mut() {
            Some(hasher) => {
                let mut tee = Tee { hasher, out };
                move_exact(&mut self.inner, Some(&mut tee), n)?
            }
            None => move_exact(&mut self.inner, out, n)?,
        };
        self.offset += copied;
        self.pending_data -= copied;
        if copied != n {
            return Err(malformed(None, "stream ends inside an entry's data (truncated)"));
        }
        Ok(())
    }

    pub(crate) fn into_inner(self) -> R {
        self.inner
    }

    pub(crate) fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Offset of the next unread byte of the stream.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    fn read_block(&mut self, block: &mut [u8; BLOCK]) -> Result<bool, TarError> {
        let mut filled = 0;
        while filled < BLOCK {
            match self.inner.read(&mut block[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.offset += filled as u64;
        match filled {
            0 => Ok(false),
            BLOCK => Ok(true),
            _ => Err(malformed(None, "stream ends inside a header block (truncated)")),
        }
    }

    fn read_exact_counted(&mut self, buf: &mut [u8]) -> Result<(), TarError> {
        self.inner.read_exact(buf)?;
        self.offset += buf.len() as u64;
        Ok(())
    }

    /// Skips the rest of the current entry's data.
    pub(crate) fn skip_data(&mut self) -> Result<(), TarError> {
        self.move_data_padded(None)
    }

    /// Skips the rest of the current entry's data by seeking (for outer archives on disk).
    pub(crate) fn skip_data_seeking(&mut self) -> Result<(), TarError>
    where
        R: io::Seek,
    {
        let n = self.pending_data + self.pending_pad;
        self.inner.seek(io::SeekFrom::Current(n as i64))?;
        self.offset += n;
        self.pending_data = 0;
        self.pending_pad = 0;
        Ok(())
    }

    /// Copies the current entry's data and its padding to `out`.
    pub(crate) fn copy_data_padded(&mut self, out: &mut impl Write) -> Result<(), TarError> {
        self.move_data_padded(Some(out))
    }

    /// Moves the rest of the current entry's data and its padding to `out`, or past them.
    fn move_data_padded(&mut self, mut out: Option<&mut dyn Write>) -> Result<(), TarError> {
        if self.hasher.is_some() {
            self.move_data(out.as_mut().map(|o| &mut **o as &mut dyn Write))?;
        }
        let n = self.pending_data + self.pending_pad;
        let copied = move_exact(&mut self.inner, out, n)?;
        self.offset += copied;
        self.pending_data = 0;
        self.pending_pad = 0;
        if copied != n {
            return Err(malformed(None, "stream ends inside an entry's data (truncated)"));
        }
        Ok(())
    }

    /// Copies the current entry's data (without its padding, which is skipped) to `out`.
    pub(crate) fn copy_data(&mut self, out: &mut impl Write) -> Result<(), TarError> {
        self.move_data(Some(out))?;
        self.skip_data()
    }

    /// Reads the current entry's data (without padding) into `out`; for small payloads only.
    fn read_data_to_vec(&mut self, limit: u64) -> Result<Vec<u8>, TarError> {
        if self.pending_data > limit {
            return Err(malformed(
                None,
                format!("extension header of {} bytes is too large", self.pending_data),
            ));
        }
        let mut buf = vec![0u8; self.pending_data as usize];
        self.read_exact_counted(&mut buf)?;
        self.pending_data = 0;
        self.skip_data()?;
        Ok(buf)
    }

    /// Reads the next entry's header group, or `None` at the end of the archive. The previous
    /// entry's data is skipped if the caller did not consume it.
    pub(crate) fn next_group(&mut self) -> Result<Option<HeaderGroup>, TarError> {
        if self.finished {
            return Ok(None);
        }
        self.skip_data()?;
        if let Some(hasher) = self.hasher.as_deref_mut() {
            self.previous_hash = Some(hasher.digest128());
            hasher.reset();
        }
        let mut raw: Vec<u8> = Vec::new();
        let mut pax: Option<PaxRecords> = None;
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut block = [0u8; BLOCK];
        loop {
            if !self.read_block(&mut block)? {
                if raw.is_empty() {
                    // No end-of-archive blocks at all (umoci 0.4.7 writes such layers).
                    self.finished = true;
                    return Ok(None);
                }
                return Err(malformed(None, "stream ends after an extension header (truncated)"));
            }
            if block.iter().all(|&b| b == 0) {
                if !raw.is_empty() {
                    return Err(malformed(None, "zero block after an extension header"));
                }
                // One zero block, then a second one or the end of the stream, ends the archive.
                let mut next = [0u8; BLOCK];
                if self.read_block(&mut next)? && next.iter().any(|&b| b != 0) {
                    return Err(malformed(
                        None,
                        "a zero block followed by a header (corrupt archive)",
                    ));
                }
                self.finished = true;
                return Ok(None);
            }
            let header = RawHeader::parse(&block)?;
            raw.extend_from_slice(&block);
            let typeflag = block[156];
            match typeflag {
                b'x' | b'g' | b'L' | b'K' => {
                    self.pending_data = header.size;
                    self.pending_pad = padding(header.size);
                    let data = self.read_data_to_vec(16 << 20)?;
                    raw.extend_from_slice(&data);
                    raw.resize(raw.len() + padding(data.len() as u64) as usize, 0);
                    match typeflag {
                        b'x' => pax = Some(parse_pax(&data)?),
                        b'g' => {
                            // Validated, then ignored as Go's archive/tar does; not part of any
                            // group.
                            parse_pax(&data)?;
                            raw.clear();
                        }
                        b'L' => long_name = Some(until_nul(&data).to_vec()),
                        _ => long_link = Some(until_nul(&data).to_vec()),
                    }
                }
                _ => {
                    let mut meta = header.meta;
                    if typeflag == b'S' && block[482] != 0 {
                        // Old-GNU sparse maps continue in extension blocks.
                        loop {
                            let mut ext = [0u8; BLOCK];
                            if !self.read_block(&mut ext)? {
                                return Err(malformed(Some(&meta.path), "truncated sparse header"));
                            }
                            raw.extend_from_slice(&ext);
                            if ext[504] == 0 {
                                break;
                            }
                        }
                    }
                    if let Some(name) = long_name {
                        meta.path = name;
                    }
                    if let Some(link) = long_link {
                        meta.link = link;
                    }
                    if let Some(records) = pax {
                        apply_pax(&mut meta, records)?;
                    }
                    if meta.path.is_empty() {
                        return Err(malformed(None, "entry with an empty name"));
                    }
                    let header_only = matches!(typeflag, b'1' | b'2' | b'3' | b'4' | b'5' | b'6');
                    if header_only && meta.size != 0 {
                        // Readers disagree on whether such an entry has data; write a size of 0
                        // so that every reader agrees with the one appliers use.
                        meta.size = 0;
                        meta.real_size = 0;
                        let main = raw.len() - BLOCK;
                        raw[main + 124..main + 136].copy_from_slice(b"00000000000\0");
                        raw[main + 148..main + 156].fill(b' ');
                        let sum: u64 = raw[main..].iter().map(|&b| u64::from(b)).sum();
                        raw[main + 148..main + 156]
                            .copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
                    }
                    if meta.kind().is_none() {
                        return Err(malformed(
                            Some(&meta.path),
                            format!("unsupported entry type {:?}", char::from(typeflag)),
                        ));
                    }
                    self.pending_data = meta.size;
                    self.pending_pad = padding(meta.size);
                    return Ok(Some(HeaderGroup { raw, meta }));
                }
            }
        }
    }
}

/// Padding after `size` bytes of data.
pub(crate) fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

/// Fills `chunk` with up to `size` bytes of `source`; the number read (0 at its end).
pub(crate) fn fill(source: &mut impl Read, chunk: &mut Vec<u8>, size: usize) -> io::Result<usize> {
    chunk.resize(size, 0);
    let mut filled = 0;
    while filled < size {
        match source.read(&mut chunk[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    chunk.truncate(filled);
    Ok(filled)
}

/// Reads `from` to its end, dropping the bytes; returns how many there were.
pub(crate) fn drain(from: &mut impl BufRead) -> io::Result<u64> {
    move_exact(from, None, u64::MAX)
}

/// Moves up to `n` bytes from `from` to `to` (or drops them) straight out of the reader's
/// buffer; returns how many there were.
pub(crate) fn move_exact(
    from: &mut impl BufRead,
    mut to: Option<&mut dyn Write>,
    n: u64,
) -> io::Result<u64> {
    let mut left = n;
    while left > 0 {
        let available = match from.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            break;
        }
        let take = available.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if let Some(out) = to.as_mut() {
            out.write_all(&available[..take])?;
        }
        from.consume(take);
        left -= take as u64;
    }
    Ok(n - left)
}

/// Writes into a fingerprint and, when there is one, a writer.
struct Tee<'a, 'b> {
    hasher: &'a mut xxhash_rust::xxh3::Xxh3,
    out: Option<&'b mut dyn Write>,
}

impl Write for Tee<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match self.out.as_mut() {
            Some(out) => out.write(buf)?,
            None => buf.len(),
        };
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.as_mut().map_or(Ok(()), |out| out.flush())
    }
}

fn until_nul(data: &[u8]) -> &[u8] {
    match data.iter().position(|&b| b == 0) {
        Some(i) => &data[..i],
        None => data,
    }
}

/// The decoded fields of a single 512-byte header.
struct RawHeader {
    size: u64,
    meta: EntryMeta,
}

impl RawHeader {
    fn parse(block: &[u8; BLOCK]) -> Result<RawHeader, TarError> {
        let name = until_nul(&block[0..100]);
        let stored = parse_numeric(&block[148..156])
            .map_err(|_| malformed(Some(name), "invalid header checksum field"))?;
        let unsigned: u64 = block
            .iter()
            .enumerate()
            .map(|(i, &b)| if (148..156).contains(&i) { 32 } else { u64::from(b) })
            .sum();
        let signed: i64 = block
            .iter()
            .enumerate()
            .map(|(i, &b)| if (148..156).contains(&i) { 32 } else { i64::from(b as i8) })
            .sum();
        if stored != unsigned && stored as i64 != signed {
            return Err(malformed(Some(name), "header checksum mismatch (corrupt header)"));
        }
        let field = |range: std::ops::Range<usize>, what: &str| {
            parse_numeric(&block[range])
                .map_err(|e| malformed(Some(name), format!("invalid {what} field: {e}")))
        };
        let size = field(124..136, "size")?;
        let magic = &block[257..263];
        let ustar = magic == b"ustar\0";
        let gnu = &block[257..265] == b"ustar  \0";
        let mut path = name.to_vec();
        if ustar {
            let star = &block[508..512] == b"tar\0";
            let prefix = until_nul(if star { &block[345..476] } else { &block[345..500] });
            if !prefix.is_empty() {
                path = [prefix, b"/", name].concat();
            }
        }
        let typeflag = block[156];
        let real_size =
            if typeflag == b'S' && gnu { field(483..495, "sparse real size")? } else { size };
        let meta = EntryMeta {
            typeflag,
            path,
            link: until_nul(&block[157..257]).to_vec(),
            mode: field(100..108, "mode")? as u32,
            uid: field(108..116, "uid")?,
            gid: field(116..124, "gid")?,
            mtime: until_nul(&block[136..148]).to_vec(),
            uname: if ustar || gnu { until_nul(&block[265..297]).to_vec() } else { Vec::new() },
            gname: if ustar || gnu { until_nul(&block[297..329]).to_vec() } else { Vec::new() },
            devmajor: if ustar || gnu { field(329..337, "devmajor")? } else { 0 },
            devminor: if ustar || gnu { field(337..345, "devminor")? } else { 0 },
            size,
            real_size,
            pax: Vec::new(),
        };
        Ok(RawHeader { size, meta })
    }
}

/// Parses a numeric header field: octal (padded with spaces or NULs, empty meaning 0) or GNU
/// base-256. Negative base-256 values are refused.
fn parse_numeric(field: &[u8]) -> Result<u64, String> {
    if field.first().is_some_and(|&b| b & 0x80 != 0) {
        if field[0] & 0x40 != 0 {
            return Err("negative value".into());
        }
        let mut value: u64 = u64::from(field[0] & 0x3f);
        for &b in &field[1..] {
            value = value.checked_mul(256).ok_or("value overflows 64 bits")? | u64::from(b);
        }
        return Ok(value);
    }
    let trimmed: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|&b| b == b' ' || b == 0)
        .take_while(|&b| b != b' ' && b != 0)
        .collect();
    if trimmed.is_empty() {
        return Ok(0);
    }
    let text = std::str::from_utf8(&trimmed).map_err(|_| "not octal".to_string())?;
    u64::from_str_radix(text, 8).map_err(|_| format!("`{}` is not octal", text.escape_debug()))
}

/// Parses PAX records `"<len> <key>=<value>\n"`.
fn parse_pax(data: &[u8]) -> Result<PaxRecords, TarError> {
    let mut records = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        if rest.iter().all(|&b| b == 0) {
            break;
        }
        let space = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| malformed(None, "malformed PAX record (no length)"))?;
        let len: usize = std::str::from_utf8(&rest[..space])
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| malformed(None, "malformed PAX record length"))?;
        if len <= space + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err(malformed(None, "malformed PAX record (bad length or missing newline)"));
        }
        let record = &rest[space + 1..len - 1];
        let eq = record
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| malformed(None, "malformed PAX record (no `=`)"))?;
        let (key, value) = (&record[..eq], &record[eq + 1..]);
        if key.is_empty() || key.contains(&0) {
            return Err(malformed(None, "PAX record with an empty key or a NUL in its key"));
        }
        records.push((key.to_vec(), value.to_vec()));
        rest = &rest[len..];
    }
    Ok(records)
}

fn apply_pax(meta: &mut EntryMeta, records: PaxRecords) -> Result<(), TarError> {
    let num = |meta: &EntryMeta, key: &[u8], value: &[u8]| -> Result<u64, TarError> {
        std::str::from_utf8(value).ok().and_then(|s| s.parse::<u64>().ok()).ok_or_else(|| {
            malformed(
                Some(&meta.path),
                format!("invalid PAX `{}` value", String::from_utf8_lossy(key)),
            )
        })
    };
    let mut sparse_name = None;
    let mut sparse_size = None;
    for (key, value) in &records {
        match key.as_slice() {
            b"path" => {
                if value.contains(&0) {
                    return Err(malformed(Some(&meta.path), "NUL byte in PAX path"));
                }
                meta.path = value.clone();
            }
            b"linkpath" => {
                if value.contains(&0) {
                    return Err(malformed(Some(&meta.path), "NUL byte in PAX linkpath"));
                }
                meta.link = value.clone();
            }
            b"size" => {
                meta.size = num(meta, key, value)?;
                meta.real_size = meta.size;
            }
            b"uid" => meta.uid = num(meta, key, value)?,
            b"gid" => meta.gid = num(meta, key, value)?,
            b"uname" => meta.uname = value.clone(),
            b"gname" => meta.gname = value.clone(),
            b"mtime" => {
                if !valid_pax_time(value) {
                    return Err(malformed(Some(&meta.path), "invalid PAX mtime"));
                }
                meta.mtime = value.clone();
            }
            b"GNU.sparse.name" => sparse_name = Some(value.clone()),
            b"GNU.sparse.realsize" | b"GNU.sparse.size" => {
                sparse_size = Some(num(meta, key, value)?)
            }
            _ => {}
        }
        if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
            if name.is_empty() {
                return Err(malformed(Some(&meta.path), "PAX xattr record without a name"));
            }
        }
    }
    if let Some(name) = sparse_name {
        meta.path = name;
    }
    if let Some(size) = sparse_size {
        meta.real_size = size;
    }
    meta.pax = records;
    Ok(())
}

fn valid_pax_time(value: &[u8]) -> bool {
    let text = match std::str::from_utf8(value) {
        Ok(t) => t,
        Err(_) => return false,
    };
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (secs, frac) = match unsigned.split_once('.') {
        Some((s, f)) => (s, Some(f)),
        None => (unsigned, None),
    };
    !secs.is_empty()
        && secs.bytes().all(|b| b.is_ascii_digit())
        && frac.is_none_or(|f| f.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_fields() {
        assert_eq!(parse_numeric(b"0000644\0"), Ok(0o644));
        assert_eq!(parse_numeric(b"  644 \0"), Ok(0o644));
        assert_eq!(parse_numeric(b"\0\0\0\0"), Ok(0));
        assert_eq!(parse_numeric(&[0x80, 0, 0, 1, 0]), Ok(256));
        assert!(parse_numeric(&[0xff, 0xff]).is_err());
        assert!(parse_numeric(b"12x").is_err());
    }

    #[test]
    fn pax_records() {
        let recs = parse_pax(b"16 path=a/b/c/d\n12 uid=1000\n").unwrap();
        assert_eq!(
            recs,
            vec![(b"path".to_vec(), b"a/b/c/d".to_vec()), (b"uid".to_vec(), b"1000".to_vec())]
        );
        assert!(parse_pax(b"99 path=x\n").is_err());
        assert!(parse_pax(b"x path=x\n").is_err());
    }
}
