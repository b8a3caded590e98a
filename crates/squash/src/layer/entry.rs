//! The vocabulary of a layer's entries: normalized paths, entry kinds and whiteout classification.

use std::fmt;

use serde::{Serialize, Serializer};

/// A path inside a layer, normalized so that `./a`, `a`, `/a` and `a/` compare equal
/// (docs/layer-rules.md, rule 1). Bytes, not UTF-8: layers may hold names in any encoding. The root
/// directory is the empty path.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EntryPath(Box<[u8]>);

/// Why a name cannot be a path inside a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadPath {
    /// The name is empty.
    Empty,
    /// A `..` component would leave the root.
    DotDot,
    /// A NUL byte inside the name.
    Nul,
}

impl fmt::Display for BadPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BadPath::Empty => "empty entry name",
            BadPath::DotDot => "`..` in entry name",
            BadPath::Nul => "NUL byte in entry name",
        })
    }
}

impl EntryPath {
    /// Normalizes a name as found in a tar header: drops leading `/` and `./`, empty and `.`
    /// components and a trailing `/`. A `..` component is refused.
    pub fn parse(raw: &[u8]) -> Result<EntryPath, BadPath> {
        if raw.is_empty() {
            return Err(BadPath::Empty);
        }
        if raw.contains(&0) {
            return Err(BadPath::Nul);
        }
        let mut out: Vec<u8> = Vec::with_capacity(raw.len());
        for component in raw.split(|&b| b == b'/') {
            match component {
                b"" | b"." => continue,
                b".." => return Err(BadPath::DotDot),
                _ => {
                    if !out.is_empty() {
                        out.push(b'/');
                    }
                    out.extend_from_slice(component);
                }
            }
        }
        Ok(EntryPath(out.into_boxed_slice()))
    }

    /// Wraps bytes that are already normalized (no `.`/`..`/empty components, no slashes at
    /// either end).
    pub(crate) fn from_normalized(bytes: Vec<u8>) -> EntryPath {
        EntryPath(bytes.into_boxed_slice())
    }

    /// The root directory.
    pub fn root() -> EntryPath {
        EntryPath::default()
    }

    /// The normalized bytes (no leading or trailing `/`; empty for the root).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Whether this is the root directory.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The parent directory, or `None` for the root.
    pub fn parent(&self) -> Option<EntryPath> {
        if self.is_root() {
            return None;
        }
        Some(match self.0.iter().rposition(|&b| b == b'/') {
            Some(i) => EntryPath(self.0[..i].into()),
            None => EntryPath::root(),
        })
    }

    /// The last component.
    pub fn file_name(&self) -> &[u8] {
        match self.0.iter().rposition(|&b| b == b'/') {
            Some(i) => &self.0[i + 1..],
            None => &self.0,
        }
    }

    /// `self/name`.
    pub fn join(&self, name: &[u8]) -> EntryPath {
        let mut out = Vec::with_capacity(self.0.len() + 1 + name.len());
        out.extend_from_slice(&self.0);
        if !out.is_empty() {
            out.push(b'/');
        }
        out.extend_from_slice(name);
        EntryPath(out.into_boxed_slice())
    }

    /// Whether `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &EntryPath) -> bool {
        other.is_root()
            || (self.0.starts_with(&other.0)
                && (self.0.len() == other.0.len() || self.0[other.0.len()] == b'/'))
    }

    /// Every proper ancestor, the root first.
    pub fn ancestors(&self) -> impl Iterator<Item = EntryPath> + '_ {
        let cuts = self.0.iter().enumerate().filter(|(_, &b)| b == b'/').map(|(i, _)| i);
        std::iter::once(EntryPath::root())
            .chain(cuts.map(|i| EntryPath(self.0[..i].into())))
            .take(if self.is_root() { 0 } else { usize::MAX })
    }

    /// The path, lossily converted for messages.
    pub fn display(&self) -> String {
        if self.is_root() {
            "/".to_string()
        } else {
            String::from_utf8_lossy(&self.0).into_owned()
        }
    }
}

impl fmt::Debug for EntryPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.display())
    }
}

impl Serialize for EntryPath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.display())
    }
}

/// What a tar entry creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// A regular file (also contiguous and sparse files).
    File,
    /// A directory.
    Dir,
    /// A symbolic link: data, never followed (docs/layer-rules.md, rule 8).
    Symlink,
    /// A hard link to an earlier entry.
    Hardlink,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A named pipe.
    Fifo,
}

impl EntryKind {
    pub(crate) fn from_typeflag(flag: u8) -> Option<EntryKind> {
        Some(match flag {
            b'0' | 0 | b'7' | b'S' => EntryKind::File,
            b'1' => EntryKind::Hardlink,
            b'2' => EntryKind::Symlink,
            b'3' => EntryKind::CharDevice,
            b'4' => EntryKind::BlockDevice,
            b'5' | b'D' => EntryKind::Dir,
            b'6' => EntryKind::Fifo,
            _ => return None,
        })
    }
}

/// The whiteout prefix of the OCI image-spec (`layer.md`, "Whiteouts").
pub const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// The opaque-whiteout basename of the OCI image-spec.
pub const OPAQUE_WHITEOUT: &[u8] = b".wh..wh..opq";

/// How a name is to be read under the OCI whiteout rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Whiteout {
    /// An ordinary entry.
    None,
    /// `DIR/.wh.NAME`: deletes `DIR/NAME` in lower layers.
    Plain(EntryPath),
    /// `DIR/.wh..wh..opq`: hides every lower-layer child of `DIR`.
    Opaque(EntryPath),
    /// Another `.wh..wh.` name (AUFS metadata such as `.wh..wh.plnk`): reserved, has no effect.
    Meta,
}

impl Whiteout {
    /// Classifies a normalized path. `.wh.` is a basename prefix only (docs/layer-rules.md,
    /// rule 4), so `keep.wh.me` and `dir.wh.x/file` are ordinary names. A bare `.wh.` is
    /// invalid.
    pub fn classify(path: &EntryPath) -> Result<Whiteout, &'static str> {
        let name = path.file_name();
        if !name.starts_with(WHITEOUT_PREFIX) {
            return Ok(Whiteout::None);
        }
        let parent = path.parent().unwrap_or_default();
        if name == OPAQUE_WHITEOUT {
            return Ok(Whiteout::Opaque(parent));
        }
        if name.starts_with(b".wh..wh.") {
            return Ok(Whiteout::Meta);
        }
        let target = &name[WHITEOUT_PREFIX.len()..];
        if target.is_empty() || target == b"." || target == b".." {
            return Err("whiteout `.wh.` without a valid name");
        }
        Ok(Whiteout::Plain(parent.join(target)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> EntryPath {
        EntryPath::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn normalizes_spellings() {
        assert_eq!(p("./a/b/"), p("a/b"));
        assert_eq!(p("/a//b"), p("a/./b"));
        assert!(p("./").is_root());
        assert!(p("/").is_root());
        assert_eq!(EntryPath::parse(b"a/../b"), Err(BadPath::DotDot));
        assert_eq!(EntryPath::parse(b""), Err(BadPath::Empty));
        assert_eq!(EntryPath::parse(b"a\0b"), Err(BadPath::Nul));
    }

    #[test]
    fn family() {
        assert_eq!(p("a/b/c").parent(), Some(p("a/b")));
        assert_eq!(p("a").parent(), Some(EntryPath::root()));
        assert_eq!(p("a/b/c").file_name(), b"c");
        assert!(p("a/b").starts_with(&p("a")));
        assert!(!p("ab").starts_with(&p("a")));
        assert!(p("ab").starts_with(&EntryPath::root()));
        let ancestors: Vec<_> = p("a/b/c").ancestors().collect();
        assert_eq!(ancestors, vec![EntryPath::root(), p("a"), p("a/b")]);
        assert_eq!(EntryPath::root().ancestors().count(), 0);
    }

    #[test]
    fn whiteouts_are_a_basename_prefix() {
        assert_eq!(Whiteout::classify(&p("a/.wh.b")), Ok(Whiteout::Plain(p("a/b"))));
        assert_eq!(Whiteout::classify(&p("a/.wh..wh..opq")), Ok(Whiteout::Opaque(p("a"))));
        assert_eq!(Whiteout::classify(&p(".wh..wh..opq")), Ok(Whiteout::Opaque(EntryPath::root())));
        assert_eq!(Whiteout::classify(&p("keep.wh.me")), Ok(Whiteout::None));
        assert_eq!(Whiteout::classify(&p("dir.wh.x/file")), Ok(Whiteout::None));
        assert_eq!(Whiteout::classify(&p("a/.wh..wh.plnk")), Ok(Whiteout::Meta));
        assert!(Whiteout::classify(&p("a/.wh.")).is_err());
    }
}
