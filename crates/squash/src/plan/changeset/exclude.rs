//! `--exclude` on a range: the patterns applied to the delta (what goes, and the whiteouts that
//! keep what the layers below hold hidden), asked of the layers below, and checked against the
//! kept layers above every range.

use std::borrow::Cow;
use std::collections::BTreeSet;

use super::delta::{Delta, Node, Pos};
use super::lower::{Lower, LowerExcluded};
use super::range_plan::Fate;
use crate::error::Result;
use crate::layer::entry::EntryPath;
use crate::layer::layer_index::LayerIndex;
use crate::plan::exclude::{ExcludeFigures, Excludes};

/// `--exclude` over the layers below a range (the image's first layers, applied in full):
/// which of `asked` they hold, and the highest paths the patterns cover with what is under each.
pub(crate) fn resolve_excluded(
    layers: &[LayerIndex],
    asked: &BTreeSet<EntryPath>,
    exclude: &Excludes,
) -> Result<LowerExcluded> {
    let delta = Delta::applied(layers)?;
    let held = asked.iter().filter(|p| delta.map.contains_key(*p)).cloned().collect();
    let mut tops: Vec<(EntryPath, usize, u64, u64)> = Vec::new();
    for (path, node) in &delta.map {
        let size = |pos: &Pos| layers[pos.layer()].entries[pos.entry()].tar_size();
        // (directory, entries, bytes): a directory only entries below imply is no entry.
        let (dir, entries, bytes) = match node {
            Node::Dir { newest, .. } => (true, 1, size(newest)),
            Node::Other { pos, .. } => (false, 1, size(pos)),
            Node::Implied { .. } => (true, 0, 0),
            _ => continue,
        };
        if let Some(top) = tops.last_mut().filter(|t| path.starts_with(&t.0)) {
            top.2 += entries;
            top.3 += bytes;
            continue;
        }
        if let Some(pattern) = exclude.matching(path, dir) {
            tops.push((EntryPath::clone(path), pattern, entries, bytes));
        }
    }
    Ok(LowerExcluded { held, tops })
}

/// `--exclude` above every range: the first path of `layers` (kept layers above the top-most
/// range, oldest first) that the patterns cover and that is still there after the last of them,
/// with the pattern that covers it, as (position in `layers`, entry, pattern).
pub(crate) fn excluded_above(
    layers: &[LayerIndex],
    exclude: &Excludes,
) -> Result<Option<(usize, usize, usize)>> {
    let delta = Delta::applied(layers)?;
    for (path, node) in &delta.map {
        let (pos, dir) = match node {
            Node::Dir { newest, .. } => (*newest, true),
            Node::Other { pos, .. } => (*pos, false),
            _ => continue,
        };
        if let Some(pattern) = exclude.covering(path, dir) {
            return Ok(Some((pos.layer(), pos.entry(), pattern)));
        }
    }
    Ok(None)
}

/// `--exclude` on a range's delta: every node a pattern covers goes, with its subtree (its
/// entries' fate: [`Fate::Excluded`]); where the layers below hold the path, or hold a path the
/// patterns cover, a whiteout takes its place. Returns the paths to ask the layers below about
/// (when `lower` does not say yet; nothing is asked in a base range) and each pattern's figures.
pub(super) fn apply_excludes(
    delta: &mut Delta<'_>,
    lower: &Lower,
    exclude: &Excludes,
) -> (Option<BTreeSet<EntryPath>>, Vec<ExcludeFigures>) {
    let mut figures: Vec<ExcludeFigures> = exclude
        .patterns()
        .map(|p| ExcludeFigures { pattern: p.to_string(), ..Default::default() })
        .collect();
    // The highest covered nodes that create something (a whiteout or an opaque marker of the
    // range stays: it hides what the layers below hold).
    let mut doomed: Vec<(EntryPath, usize)> = Vec::new();
    for (path, node) in &delta.map {
        let dir = match node {
            Node::Dir { .. } | Node::Implied { .. } | Node::Implicit { .. } => true,
            Node::Other { .. } => false,
            Node::Removed | Node::OpaqueOnly => continue,
        };
        if doomed.last().is_some_and(|(top, _)| path.starts_with(top)) {
            continue;
        }
        if let Some(pattern) = exclude.matching(path, dir) {
            doomed.push((EntryPath::clone(path), pattern));
        }
    }
    let mut asked = BTreeSet::new();
    // Paths where a whiteout now stands in for what the range dropped.
    let mut replaced: BTreeSet<EntryPath> = BTreeSet::new();
    for (path, pattern) in &doomed {
        let fate = Fate::Excluded { pattern: *pattern };
        delta.remove_descendants(path, fate);
        let node = delta.map.remove(path);
        let deleted_below = matches!(node, Some(Node::Implicit { whiteout: true, .. }));
        if let Some(node) = &node {
            delta.retire(node, fate);
        }
        // What the layers below hold there would show again: a whiteout hides it.
        if delta.lower_visible(path) {
            let held = match &lower.excluded {
                Some(found) => found.held.contains(path),
                None => {
                    asked.insert(path.clone());
                    false
                }
            };
            if held || deleted_below {
                delta.map.insert(Cow::Owned(path.clone()), Node::Removed);
                replaced.insert(path.clone());
            }
        }
    }
    // What the layers below hold that the patterns cover and the range leaves visible.
    if !delta.base {
        match &lower.excluded {
            Some(found) => {
                for (path, pattern, entries, bytes) in &found.tops {
                    // Hidden by the range already: under a deleted, replaced or opaque directory.
                    if !delta.lower_visible(path) {
                        continue;
                    }
                    match delta.map.get(path) {
                        None => {
                            delta.map.insert(Cow::Owned(path.clone()), Node::Removed);
                        }
                        Some(Node::Removed) if replaced.contains(path) => {}
                        // Deleted or replaced by the range itself, which the patterns let be.
                        Some(_) => continue,
                    }
                    figures[*pattern].entries_hidden += entries;
                    figures[*pattern].bytes_hidden += bytes;
                }
            }
            None => {
                asked.insert(EntryPath::root());
            }
        }
    }
    for (layer, fates) in delta.fates.iter().enumerate() {
        for (entry, fate) in fates.iter().enumerate() {
            if let Fate::Excluded { pattern } = fate {
                figures[*pattern].entries_reclaimed += 1;
                figures[*pattern].bytes_reclaimed += delta.layers[layer].entries[entry].tar_size();
            }
        }
    }
    let missing = (!delta.base && lower.excluded.is_none()).then_some(asked);
    (missing, figures)
}
