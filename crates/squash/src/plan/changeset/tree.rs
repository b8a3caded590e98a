//! An image's final filesystem as the changeset rules make it: every layer applied from the
//! first, each path with the entry it comes from (what `squash diff` compares).

use super::delta::{Delta, InodeSource, Node};
use crate::error::Result;
use crate::layer::entry::EntryPath;
use crate::layer::layer_index::LayerIndex;

/// Where a path of an image's final filesystem comes from, once every layer is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FinalSource {
    /// A directory: its newest header, as (layer, entry).
    Dir(usize, usize),
    /// Any other node: the entry at `at`, whose content (and metadata, shared by every name of
    /// the inode) is that of the entry `content`, the file a hard link reaches or the entry
    /// itself; `inode` groups hard links.
    Other { at: (usize, usize), content: (usize, usize), inode: u32 },
    /// A directory that only entries below it imply: appliers create it (0755, root).
    Implied,
}

/// The final filesystem of `layers`, all of an image's layers from its first: each path and where
/// it comes from, in byte order. A directory that only a marker's parent path implies is there,
/// as Docker, containerd and podman make it (umoci does not).
pub(crate) fn final_tree(layers: &[LayerIndex]) -> Result<Vec<(EntryPath, FinalSource)>> {
    let delta = Delta::applied(layers)?;
    let mut out = Vec::with_capacity(delta.map.len());
    for (path, node) in &delta.map {
        let source = match node {
            Node::Dir { newest, .. } => FinalSource::Dir(newest.layer(), newest.entry()),
            Node::Other { pos, inode } => match &delta.inodes[*inode as usize] {
                InodeSource::Entry(content) => FinalSource::Other {
                    at: (pos.layer(), pos.entry()),
                    content: (content.layer(), content.entry()),
                    inode: *inode,
                },
                InodeSource::Lower(_) => continue,
            },
            Node::Implied { .. } => FinalSource::Implied,
            _ => continue,
        };
        out.push((EntryPath::clone(path), source));
    }
    Ok(out)
}
