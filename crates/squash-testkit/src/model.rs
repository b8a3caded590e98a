//! The reference model: applies layer tars to an in-memory tree following the OCI image-spec
//! (`layer.md`): whiteouts hide lower layers only and are applied before the layer's entries,
//! opaque whiteouts hide a directory's lower children, a directory over a directory merges, any
//! other entry replaces the path and its subtree, hard links share an inode, missing parents are
//! created as implicit directories. It reads tars with the `tar` crate, not with squash's reader.

use std::collections::BTreeMap;
use std::io::Read;

use sha2::{Digest as _, Sha256};

/// What a path holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    /// A regular file: size and sha256 of its content.
    File {
        /// Size in bytes.
        size: u64,
        /// sha256 of the content, hex.
        sha256: String,
    },
    /// A directory.
    Dir,
    /// A symbolic link and its target.
    Symlink(Vec<u8>),
    /// A character device.
    Char(u64, u64),
    /// A block device.
    Block(u64, u64),
    /// A named pipe.
    Fifo,
}

/// A filesystem node with the attributes a squash must preserve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// What it is.
    pub kind: NodeKind,
    /// Permission bits (incl. setuid/setgid/sticky).
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// Modification time, seconds; `None` for a directory an applier made as a missing parent,
    /// whose time is that of the unpacking (no layer states it, so it is not compared).
    pub mtime: Option<u64>,
    /// Extended attributes.
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Inode number: hard links share it.
    pub inode: usize,
}

/// A root filesystem built by applying layers.
#[derive(Debug, Clone)]
pub struct RootFs {
    nodes: BTreeMap<Vec<u8>, Node>,
    next_inode: usize,
    /// Whether a whiteout or opaque marker creates its missing parent directories, as Docker's
    /// and containerd's appliers do; umoci's does not, and the spec says nothing of it.
    marker_parents: bool,
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs::new()
    }
}

fn normalize(raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut out: Vec<u8> = Vec::new();
    for part in raw.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err(format!("`..` in {}", String::from_utf8_lossy(raw))),
            p => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(p);
            }
        }
    }
    Ok(out)
}

fn parent(path: &[u8]) -> Option<&[u8]> {
    if path.is_empty() {
        return None;
    }
    Some(match path.iter().rposition(|&b| b == b'/') {
        Some(i) => &path[..i],
        None => b"",
    })
}

fn is_under(path: &[u8], dir: &[u8]) -> bool {
    dir.is_empty() && !path.is_empty()
        || path.len() > dir.len() && path.starts_with(dir) && path[dir.len()] == b'/'
}

impl RootFs {
    /// An empty filesystem: just the root directory.
    pub fn new() -> RootFs {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            Vec::new(),
            Node {
                kind: NodeKind::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
                mtime: None,
                xattrs: BTreeMap::new(),
                inode: 0,
            },
        );
        RootFs { nodes, next_inode: 1, marker_parents: true }
    }

    /// Applies layers (uncompressed tars) in order, markers creating their missing parents as
    /// Docker and containerd do.
    pub fn from_layers<'a>(layers: impl IntoIterator<Item = &'a [u8]>) -> Result<RootFs, String> {
        RootFs::new().apply_all(layers)
    }

    /// Applies layers in order, markers creating nothing (a marker whose parent is missing does
    /// nothing), as umoci does. An image whose result differs between the two models depends on
    /// its applier; one whose result does not must give the same result after a squash.
    pub fn from_layers_strict<'a>(
        layers: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<RootFs, String> {
        let mut fs = RootFs::new();
        fs.marker_parents = false;
        fs.apply_all(layers)
    }

    fn apply_all<'a>(self, layers: impl IntoIterator<Item = &'a [u8]>) -> Result<RootFs, String> {
        let mut fs = self;
        for (i, layer) in layers.into_iter().enumerate() {
            fs.apply(layer).map_err(|e| format!("layer {i}: {e}"))?;
        }
        Ok(fs)
    }

    /// The nodes by normalized path (the root is the empty path).
    pub fn nodes(&self) -> &BTreeMap<Vec<u8>, Node> {
        &self.nodes
    }

    /// The same filesystem with each node passed through `f`: kept as `f` returns it, or
    /// dropped (the root is kept as it is if dropped). For comparing with what an applier
    /// unpacked, leaving out what the applier adds or cannot keep.
    pub fn filter_map(&self, mut f: impl FnMut(&[u8], &Node) -> Option<Node>) -> RootFs {
        let nodes = self
            .nodes
            .iter()
            .filter_map(|(path, node)| match f(path, node) {
                None if path.is_empty() => Some((path.clone(), node.clone())),
                kept => kept.map(|n| (path.clone(), n)),
            })
            .collect();
        RootFs { nodes, next_inode: self.next_inode, marker_parents: self.marker_parents }
    }

    /// Creates `dir` and its missing ancestors as implicit directories (mode 0755, owner 0:0,
    /// no stated mtime). Returns false if one of them is not a directory.
    fn make_parents(&mut self, dir: &[u8], include_self: bool) -> bool {
        let mut chain = Vec::new();
        let mut cursor = if include_self { Some(dir) } else { parent(dir) };
        while let Some(p) = cursor {
            chain.push(p.to_vec());
            cursor = parent(p);
        }
        for a in chain.into_iter().rev() {
            match self.nodes.get(&a) {
                Some(Node { kind: NodeKind::Dir, .. }) => {}
                Some(_) => return false,
                None => {
                    let inode = self.next_inode;
                    self.next_inode += 1;
                    self.nodes.insert(
                        a,
                        Node {
                            kind: NodeKind::Dir,
                            mode: 0o755,
                            uid: 0,
                            gid: 0,
                            mtime: None,
                            xattrs: BTreeMap::new(),
                            inode,
                        },
                    );
                }
            }
        }
        true
    }

    /// Whether a marker in `dir` acts: the directory exists (created first, with its missing
    /// ancestors, where markers create parents).
    fn marker_dir(&mut self, dir: &[u8]) -> bool {
        if self.marker_parents {
            return self.make_parents(dir, true);
        }
        let mut cursor = Some(dir);
        while let Some(p) = cursor {
            if !matches!(self.nodes.get(p), Some(Node { kind: NodeKind::Dir, .. })) {
                return false;
            }
            cursor = parent(p);
        }
        true
    }

    fn remove_tree(&mut self, path: &[u8], include_self: bool) {
        self.nodes.retain(|p, _| !(is_under(p, path) || include_self && p == path));
    }

    /// Applies one uncompressed layer tar.
    pub fn apply(&mut self, layer: &[u8]) -> Result<(), String> {
        struct Pending {
            path: Vec<u8>,
            header: tar::Header,
            link: Option<Vec<u8>>,
            data: Vec<u8>,
            xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
        }
        let mut archive = tar::Archive::new(layer);
        let mut entries = Vec::new();
        let mut whiteouts = Vec::new();
        let mut opaques = Vec::new();
        for entry in archive.entries().map_err(|e| e.to_string())? {
            let mut entry = entry.map_err(|e| e.to_string())?;
            let path = normalize(&entry.path_bytes())?;
            let name = path.rsplit(|&b| b == b'/').next().unwrap_or(&[]).to_vec();
            let dir = parent(&path).unwrap_or(b"").to_vec();
            if name == b".wh..wh..opq" {
                opaques.push(dir);
                continue;
            }
            if name.starts_with(b".wh..wh.") {
                continue;
            }
            if let Some(target) = name.strip_prefix(b".wh.") {
                let mut full = dir.clone();
                if !full.is_empty() {
                    full.push(b'/');
                }
                full.extend_from_slice(target);
                whiteouts.push(full);
                continue;
            }
            let mut xattrs = BTreeMap::new();
            if let Ok(Some(pax)) = entry.pax_extensions() {
                for ext in pax.flatten() {
                    if let Some(k) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") {
                        xattrs.insert(k.to_vec(), ext.value_bytes().to_vec());
                    }
                }
            }
            let link = entry.link_name_bytes().map(|l| l.to_vec());
            if entry.size() > 64 << 20 {
                return Err(format!(
                    "{}: too large for the in-memory model",
                    String::from_utf8_lossy(&path)
                ));
            }
            let mut data = Vec::new();
            entry.read_to_end(&mut data).map_err(|e| e.to_string())?;
            entries.push(Pending { path, header: entry.header().clone(), link, data, xattrs });
        }
        // Appliers (Docker's and containerd's) create a marker's missing parent directories
        // before acting on it, as for any entry; a marker under a non-directory does nothing.
        for path in whiteouts {
            if self.marker_dir(parent(&path).unwrap_or(b"")) {
                self.remove_tree(&path, true);
            }
        }
        for dir in opaques {
            if self.marker_dir(&dir) {
                self.remove_tree(&dir, false);
            }
        }
        for e in entries {
            let shown = String::from_utf8_lossy(&e.path).into_owned();
            // Parents: implicit directories where missing; a non-directory parent is an error.
            if !self.make_parents(&e.path, false) {
                return Err(format!("{shown}: parent is not a directory"));
            }
            let h = &e.header;
            let mode = h.mode().map_err(|e| e.to_string())? & 0o7777;
            let uid = h.uid().map_err(|e| e.to_string())?;
            let gid = h.gid().map_err(|e| e.to_string())?;
            let mtime = h.mtime().map_err(|e| e.to_string())?;
            let kind = match h.entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => NodeKind::File {
                    size: e.data.len() as u64,
                    sha256: hex::encode(Sha256::digest(&e.data)),
                },
                tar::EntryType::Directory => NodeKind::Dir,
                tar::EntryType::Symlink => NodeKind::Symlink(e.link.clone().unwrap_or_default()),
                tar::EntryType::Char => NodeKind::Char(
                    h.device_major().ok().flatten().unwrap_or(0).into(),
                    h.device_minor().ok().flatten().unwrap_or(0).into(),
                ),
                tar::EntryType::Block => NodeKind::Block(
                    h.device_major().ok().flatten().unwrap_or(0).into(),
                    h.device_minor().ok().flatten().unwrap_or(0).into(),
                ),
                tar::EntryType::Fifo => NodeKind::Fifo,
                tar::EntryType::Link => {
                    let target = normalize(&e.link.clone().unwrap_or_default())?;
                    let node = match self.nodes.get(&target) {
                        Some(n) if n.kind != NodeKind::Dir => n.clone(),
                        Some(_) => return Err(format!("{shown}: hard link to a directory")),
                        None => {
                            return Err(format!(
                                "{shown}: hard link target `{}` missing",
                                String::from_utf8_lossy(&target)
                            ))
                        }
                    };
                    if target == e.path {
                        return Err(format!("{shown}: hard link to itself"));
                    }
                    self.remove_tree(&e.path, true);
                    self.nodes.insert(e.path.clone(), node);
                    continue;
                }
                other => return Err(format!("{shown}: unsupported entry type {other:?}")),
            };
            let is_dir = kind == NodeKind::Dir;
            if is_dir {
                if let Some(existing) = self.nodes.get_mut(&e.path) {
                    if existing.kind == NodeKind::Dir {
                        existing.mode = mode;
                        existing.uid = uid;
                        existing.gid = gid;
                        existing.mtime = Some(mtime);
                        existing.xattrs = e.xattrs;
                        continue;
                    }
                }
            }
            self.remove_tree(&e.path, true);
            let inode = self.next_inode;
            self.next_inode += 1;
            self.nodes.insert(
                e.path,
                Node { kind, mode, uid, gid, mtime: Some(mtime), xattrs: e.xattrs, inode },
            );
        }
        Ok(())
    }

    fn link_groups(&self) -> Vec<Vec<Vec<u8>>> {
        let mut groups: BTreeMap<usize, Vec<Vec<u8>>> = BTreeMap::new();
        for (path, node) in &self.nodes {
            if node.kind != NodeKind::Dir {
                groups.entry(node.inode).or_default().push(path.clone());
            }
        }
        let mut out: Vec<Vec<Vec<u8>>> = groups.into_values().filter(|g| g.len() > 1).collect();
        out.sort();
        out
    }

    /// How `self` differs from `other`, entry by entry (empty when equal). Inode numbers are
    /// compared only as hard-link groups.
    pub fn diff(&self, other: &RootFs) -> Vec<String> {
        let mut out = Vec::new();
        let show = |p: &[u8]| {
            if p.is_empty() {
                "/".to_string()
            } else {
                String::from_utf8_lossy(p).into_owned()
            }
        };
        for (path, a) in &self.nodes {
            match other.nodes.get(path) {
                None => out.push(format!("only in left: {} {:?}", show(path), a.kind)),
                Some(b) => {
                    // An implicit directory's time is the unpacking's: not compared.
                    let timed = a.mtime.is_some() && b.mtime.is_some();
                    let strip =
                        |n: &Node| Node { inode: 0, mtime: n.mtime.filter(|_| timed), ..n.clone() };
                    if strip(a) != strip(b) {
                        out.push(format!(
                            "differs: {}\n  left:  {:?}\n  right: {:?}",
                            show(path),
                            strip(a),
                            strip(b)
                        ));
                    }
                }
            }
        }
        for (path, b) in &other.nodes {
            if !self.nodes.contains_key(path) {
                out.push(format!("only in right: {} {:?}", show(path), b.kind));
            }
        }
        let (left, right) = (self.link_groups(), other.link_groups());
        if left != right {
            out.push(format!("hard-link groups differ:\n  left:  {left:?}\n  right: {right:?}"));
        }
        out
    }
}
