//! Writing tar headers: renaming an entry's header group (for re-pointed hard links and hard
//! links turned into files) and making whiteout markers. Every field not renamed is copied from
//! the original header block, so modes, owners, times and PAX records survive.

use super::tarstream::{padding, BLOCK};

/// A header group split into its parts.
struct Parts {
    pax: Option<Vec<(Vec<u8>, Vec<u8>)>>,
    main: [u8; BLOCK],
    trailing: Vec<u8>,
}

fn octal_len(block: &[u8], range: std::ops::Range<usize>) -> u64 {
    let text: String = block[range].iter().map(|&b| b as char).filter(|c| c.is_digit(8)).collect();
    u64::from_str_radix(&text, 8).unwrap_or(0)
}

fn split(raw: &[u8]) -> Parts {
    let mut pos = 0;
    let mut pax = None;
    while pos + BLOCK <= raw.len() {
        let block = &raw[pos..pos + BLOCK];
        let flag = block[156];
        let size = if block[124] & 0x80 != 0 { 0 } else { octal_len(block, 124..136) };
        match flag {
            b'x' | b'L' | b'K' | b'g' => {
                let data_start = pos + BLOCK;
                let data_end = (data_start + size as usize).min(raw.len());
                if flag == b'x' {
                    pax = Some(parse_records(&raw[data_start..data_end]));
                }
                pos = data_end + padding(size) as usize;
            }
            _ => {
                let mut main = [0u8; BLOCK];
                main.copy_from_slice(block);
                return Parts { pax, main, trailing: raw[pos + BLOCK..].to_vec() };
            }
        }
    }
    Parts { pax, main: [0u8; BLOCK], trailing: Vec::new() }
}

fn until_nul(data: &[u8]) -> &[u8] {
    match data.iter().position(|&b| b == 0) {
        Some(i) => &data[..i],
        None => data,
    }
}

/// The target of a GNU `K` long-link header in the group, if any.
fn long_link(raw: &[u8]) -> Option<Vec<u8>> {
    let mut pos = 0;
    let mut found = None;
    while pos + BLOCK <= raw.len() {
        let block = &raw[pos..pos + BLOCK];
        let size = octal_len(block, 124..136) as usize;
        match block[156] {
            b'x' | b'L' | b'K' | b'g' => {
                if block[156] == b'K' {
                    found = raw.get(pos + BLOCK..pos + BLOCK + size).map(|d| until_nul(d).to_vec());
                }
                pos += BLOCK + size + padding(size as u64) as usize;
            }
            _ => break,
        }
    }
    found
}

fn parse_records(mut data: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(space) = data.iter().position(|&b| b == b' ') {
        let Some(len) =
            std::str::from_utf8(&data[..space]).ok().and_then(|s| s.parse::<usize>().ok())
        else {
            break;
        };
        if len <= space + 1 || len > data.len() {
            break;
        }
        let record = &data[space + 1..len - 1];
        if let Some(eq) = record.iter().position(|&b| b == b'=') {
            out.push((record[..eq].to_vec(), record[eq + 1..].to_vec()));
        }
        data = &data[len..];
    }
    out
}

fn encode_records(records: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in records {
        let body = key.len() + value.len() + 3; // space, '=', newline
        let mut len = body + 1;
        loop {
            let candidate = body + len.to_string().len();
            if candidate == len {
                break;
            }
            len = candidate;
        }
        out.extend_from_slice(len.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(key);
        out.push(b'=');
        out.extend_from_slice(value);
        out.push(b'\n');
    }
    out
}

fn set_checksum(block: &mut [u8; BLOCK]) {
    block[148..156].fill(b' ');
    let sum: u64 = block.iter().map(|&b| u64::from(b)).sum();
    let text = format!("{sum:06o}\0 ");
    block[148..156].copy_from_slice(text.as_bytes());
}

fn write_octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let text = format!("{value:0width$o}");
    field[..width].copy_from_slice(&text.as_bytes()[text.len() - width..]);
    field[width] = 0;
}

fn set_field(field: &mut [u8], value: &[u8]) {
    field.fill(0);
    field[..value.len()].copy_from_slice(value);
}

/// A PAX extended header (`x`) carrying `records`, named after the entry like Go's writer does.
fn pax_header(records: &[(Vec<u8>, Vec<u8>)], name: &[u8]) -> Vec<u8> {
    let data = encode_records(records);
    let mut block = [0u8; BLOCK];
    let mut pax_name = b"PaxHeaders.0/".to_vec();
    pax_name.extend_from_slice(&name[..name.len().min(100 - pax_name.len())]);
    set_field(&mut block[0..100], &pax_name);
    write_octal(&mut block[100..108], 0o644);
    write_octal(&mut block[108..116], 0);
    write_octal(&mut block[116..124], 0);
    write_octal(&mut block[124..136], data.len() as u64);
    write_octal(&mut block[136..148], 0);
    block[156] = b'x';
    block[257..263].copy_from_slice(b"ustar\0");
    block[263..265].copy_from_slice(b"00");
    set_checksum(&mut block);
    let mut out = block.to_vec();
    out.extend_from_slice(&data);
    out.resize(out.len() + padding(data.len() as u64) as usize, 0);
    out
}

/// Rewrites a header group so that the entry is called `path` and, when `link` is given, points
/// at `link`, keeping every other field and PAX record. Names longer than the ustar fields go
/// into PAX `path`/`linkpath` records; GNU long-name headers are dropped in favour of those.
pub(crate) fn rename_group(raw: &[u8], path: &[u8], link: Option<&[u8]>) -> Vec<u8> {
    let parts = split(raw);
    let original_link = parts
        .pax
        .as_ref()
        .and_then(|records| {
            records.iter().rev().find(|(k, _)| k == b"linkpath").map(|(_, v)| v.clone())
        })
        .or_else(|| long_link(raw))
        .unwrap_or_else(|| until_nul(&parts.main[157..257]).to_vec());
    let link = link.map(<[u8]>::to_vec).unwrap_or(original_link);
    let link = link.as_slice();
    let mut main = parts.main;
    let ustar = &main[257..263] == b"ustar\0";
    let mut records: Vec<(Vec<u8>, Vec<u8>)> = parts.pax.unwrap_or_default();
    let sparse_name = records.iter().any(|(k, _)| k == b"GNU.sparse.name");
    records.retain(|(k, _)| k != b"path" && k != b"linkpath");
    if sparse_name {
        for (k, v) in &mut records {
            if k == b"GNU.sparse.name" {
                *v = path.to_vec();
            }
        }
    } else if path.len() > 100 {
        records.push((b"path".to_vec(), path.to_vec()));
    }
    if link.len() > 100 {
        records.push((b"linkpath".to_vec(), link.to_vec()));
    }
    if !sparse_name {
        set_field(&mut main[0..100], &path[..path.len().min(100)]);
        if ustar && &main[508..512] != b"tar\0" {
            main[345..500].fill(0);
        }
    }
    set_field(&mut main[157..257], &link[..link.len().min(100)]);
    set_checksum(&mut main);
    let mut out = Vec::with_capacity(BLOCK * 2);
    if !records.is_empty() {
        out.extend_from_slice(&pax_header(&records, path));
    }
    out.extend_from_slice(&main);
    out.extend_from_slice(&parts.trailing);
    out
}

/// A header-only entry called `path` with `mode`, owner 0:0, `typeflag` and the raw mtime field
/// `mtime` (12 bytes, octal), behind a PAX `path` record when the name is longer than 100 bytes.
fn synthetic(path: &[u8], mode: u32, typeflag: u8, mtime: Option<&[u8]>) -> Vec<u8> {
    let mut block = [0u8; BLOCK];
    set_field(&mut block[0..100], &path[..path.len().min(100)]);
    write_octal(&mut block[100..108], mode.into());
    write_octal(&mut block[108..116], 0);
    write_octal(&mut block[116..124], 0);
    write_octal(&mut block[124..136], 0);
    match mtime {
        Some(field) => block[136..148].copy_from_slice(field),
        None => write_octal(&mut block[136..148], 0),
    }
    block[156] = typeflag;
    block[257..263].copy_from_slice(b"ustar\0");
    block[263..265].copy_from_slice(b"00");
    set_checksum(&mut block);
    let mut out = Vec::new();
    if path.len() > 100 {
        out.extend_from_slice(&pax_header(&[(b"path".to_vec(), path.to_vec())], path));
    }
    out.extend_from_slice(&block);
    out
}

/// A header-only regular-file entry called `path`, used for whiteout and opaque markers. Its
/// fields are fixed (mode 0644, owner 0:0, mtime 0) so output is deterministic.
pub(crate) fn marker(path: &[u8]) -> Vec<u8> {
    synthetic(path, 0o644, b'0', None)
}

/// A directory entry called `path` (a trailing `/` is added), mode 0755, owner 0:0, as appliers
/// create a missing parent; its mtime field is `mtime`, that of the entry that implied the
/// directory (see [`mtime_field`]).
pub(crate) fn implied_directory(path: &[u8], mtime: &[u8; 12]) -> Vec<u8> {
    let mut name = path.to_vec();
    name.push(b'/');
    synthetic(&name, 0o755, b'5', Some(mtime))
}

/// The mtime field (12 bytes, as stored) of the main header of a header group.
pub(crate) fn mtime_field(raw: &[u8]) -> [u8; 12] {
    let mut field = [0u8; 12];
    field.copy_from_slice(&split(raw).main[136..148]);
    field
}

/// Lowers every time of a header group that is later than `epoch` to `epoch` (BuildKit's and
/// buildah's `--rewrite-timestamp`): the main header's mtime (and a GNU header's atime and ctime),
/// and the `mtime`, `atime` and `ctime` records of its PAX header. The group keeps its length: a
/// PAX value is rewritten to as many characters, padded with a zero fraction (`.000`) or, when
/// only one character is left over, a leading zero. `None` when nothing was later.
pub(crate) fn clamp_times(raw: &[u8], epoch: u64) -> Option<Vec<u8>> {
    let mut out = raw.to_vec();
    let mut changed = false;
    let mut pos = 0;
    while pos + BLOCK <= out.len() {
        let flag = out[pos + 156];
        let size = if out[pos + 124] & 0x80 != 0 {
            0
        } else {
            octal_len(&out[pos..pos + BLOCK], 124..136) as usize
        };
        // The mtime, and the atime and ctime of an old GNU header.
        let gnu = &out[pos + 257..pos + 265] == b"ustar  \0";
        let fields: &[usize] = if gnu { &[136, 345, 357] } else { &[136] };
        let mut block_changed = false;
        for &field in fields {
            block_changed |= clamp_numeric(&mut out[pos + field..pos + field + 12], epoch);
        }
        if block_changed {
            let mut block = [0u8; BLOCK];
            block.copy_from_slice(&out[pos..pos + BLOCK]);
            set_checksum(&mut block);
            out[pos..pos + BLOCK].copy_from_slice(&block);
            changed = true;
        }
        match flag {
            b'x' | b'L' | b'K' | b'g' => {
                let data = pos + BLOCK..(pos + BLOCK + size).min(out.len());
                if flag == b'x' {
                    changed |= clamp_pax_times(&mut out[data.clone()], epoch);
                }
                pos = data.end + padding(size as u64) as usize;
            }
            _ => break,
        }
    }
    changed.then_some(out)
}

/// Lowers a numeric header field (octal, or GNU base-256) above `epoch` to `epoch`, in octal.
fn clamp_numeric(field: &mut [u8], epoch: u64) -> bool {
    let value = if field[0] & 0x80 != 0 {
        if field[0] & 0x40 != 0 {
            return false; // negative: earlier than any epoch
        }
        field[1..]
            .iter()
            .fold(u64::from(field[0] & 0x3f), |v, &b| v.saturating_mul(256) | u64::from(b))
    } else {
        octal_len(field, 0..field.len())
    };
    if value <= epoch {
        return false;
    }
    write_octal(field, epoch);
    true
}

/// Lowers the `mtime`, `atime` and `ctime` records of PAX data above `epoch`, in place.
fn clamp_pax_times(data: &mut [u8], epoch: u64) -> bool {
    let mut changed = false;
    let mut at = 0;
    while let Some(space) = data[at..].iter().position(|&b| b == b' ') {
        let Some(len) =
            std::str::from_utf8(&data[at..at + space]).ok().and_then(|s| s.parse::<usize>().ok())
        else {
            break;
        };
        if len <= space + 1 || at + len > data.len() {
            break;
        }
        let record = at + space + 1..at + len - 1;
        if let Some(eq) = data[record.clone()].iter().position(|&b| b == b'=') {
            let key = &data[record.start..record.start + eq];
            if key == b"mtime" || key == b"atime" || key == b"ctime" {
                let value = record.start + eq + 1..record.end;
                if let Some(new) = clamped_pax_time(&data[value.clone()], epoch) {
                    data[value].copy_from_slice(&new);
                    changed = true;
                }
            }
        }
        at += len;
    }
    changed
}

/// `epoch` written in as many characters as `value`, if `value` (a PAX time: seconds, maybe a
/// fraction) is later than `epoch`.
fn clamped_pax_time(value: &[u8], epoch: u64) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(value).ok()?;
    if text.starts_with('-') {
        return None;
    }
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let secs: u64 = secs.parse().ok()?;
    let later = secs > epoch || (secs == epoch && frac.bytes().any(|b| b != b'0'));
    if !later {
        return None;
    }
    let mut new = epoch.to_string().into_bytes();
    let spare = value.len().checked_sub(new.len())?;
    match spare {
        0 => {}
        1 => new.insert(0, b'0'),
        n => {
            new.push(b'.');
            new.resize(new.len() + n - 1, b'0');
        }
    }
    Some(new)
}

/// The two zero blocks that end a tar archive.
pub(crate) const END_OF_ARCHIVE: [u8; 2 * BLOCK] = [0u8; 2 * BLOCK];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::tarstream::TarReader;

    fn read_one(bytes: &[u8]) -> crate::layer::tarstream::EntryMeta {
        let mut with_end = bytes.to_vec();
        with_end.extend_from_slice(&END_OF_ARCHIVE);
        let mut reader = TarReader::new(&with_end[..]);
        reader.next_group().unwrap().unwrap().meta
    }

    #[test]
    fn pax_times_are_lowered_in_as_many_characters() {
        let e = 1_700_000_000;
        let clamp =
            |v: &str| clamped_pax_time(v.as_bytes(), e).map(|n| String::from_utf8(n).unwrap());
        assert_eq!(clamp("2000000000.123456789").as_deref(), Some("1700000000.000000000"));
        assert_eq!(clamp("2000000000").as_deref(), Some("1700000000"));
        assert_eq!(clamp("10000000000").as_deref(), Some("01700000000"));
        assert_eq!(clamp("100000000000").as_deref(), Some("1700000000.0"));
        assert_eq!(clamp("1700000000.5").as_deref(), Some("1700000000.0"));
        assert_eq!(clamp("1700000000.000"), None);
        assert_eq!(clamp("1600000000.9"), None);
        assert_eq!(clamp("-5"), None);
        assert_eq!(clamp("junk"), None);
    }

    #[test]
    fn a_clamped_group_keeps_its_length_and_reads_back_lowered() {
        let mut builder = tar::Builder::new(Vec::new());
        builder
            .append_pax_extensions([
                ("mtime", &b"2000000000.25"[..]),
                ("atime", &b"1500000000"[..]),
            ])
            .unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_path("f").unwrap();
        h.set_size(0);
        h.set_mtime(2_000_000_000);
        h.set_cksum();
        builder.append(&h, &[][..]).unwrap();
        let raw = builder.into_inner().unwrap();
        let clamped = clamp_times(&raw, 1_700_000_000).expect("later times");
        assert_eq!(clamped.len(), raw.len());
        let meta = read_one(&clamped);
        let record = |key: &[u8]| meta.pax.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        assert_eq!(record(b"mtime").as_deref(), Some(&b"1700000000.00"[..]));
        assert_eq!(record(b"atime").as_deref(), Some(&b"1500000000"[..]), "an earlier time stays");
        assert_eq!(&mtime_field(&clamped)[..11], format!("{:011o}", 1_700_000_000).as_bytes());
        assert_eq!(clamp_times(&clamped, 1_700_000_000), None, "nothing is later any more");
    }

    #[test]
    fn pax_lengths_count_themselves() {
        let encoded = encode_records(&[(b"path".to_vec(), vec![b'a'; 95])]);
        assert_eq!(encoded.len(), 105);
        assert!(encoded.starts_with(b"105 path="));
    }

    #[test]
    fn markers_round_trip_long_names() {
        let long = [b'd'; 150];
        let mut name = long.to_vec();
        name.extend_from_slice(b"/.wh.x");
        let meta = read_one(&marker(&name));
        assert_eq!(meta.path, name);
        assert_eq!(meta.size, 0);
    }

    #[test]
    fn rename_keeps_fields() {
        let original = marker(b"a/file");
        let renamed = rename_group(&original, &[b'n'; 120], None);
        let meta = read_one(&renamed);
        assert_eq!(meta.path, vec![b'n'; 120]);
        assert_eq!(meta.mode, 0o644);
        let relinked = rename_group(&original, b"b", Some(&[b'l'; 130]));
        let meta = read_one(&relinked);
        assert_eq!((meta.path.as_slice(), meta.link.len()), (&b"b"[..], 130));
    }
}
