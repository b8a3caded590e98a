//! Clutter: files that stay visible in an image and that guides on image size say to drop
//! (package lists and caches, byte code, docs), matched by rules that are `--exclude` globs, and
//! counted per rule, per matched path and per layer that added them.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::layer::entry::EntryPath;
use crate::plan::exclude::Excludes;

/// A kind of clutter: files that stay visible in an image and that guides on image size say to
/// drop (package lists and caches, byte code, docs). `pattern` is an `--exclude` glob that
/// removes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ClutterRule {
    /// A short name (`apt lists`).
    pub name: String,
    /// The `--exclude` pattern that matches it.
    pub pattern: String,
}

impl ClutterRule {
    /// A rule named `name` matching `pattern` (an `--exclude` glob).
    pub fn new(name: impl Into<String>, pattern: impl Into<String>) -> ClutterRule {
        ClutterRule { name: name.into(), pattern: pattern.into() }
    }

    /// The built-in list (README "Clutter" lists it): package manager lists and caches,
    /// language caches, byte code, documentation and temporary directories.
    pub fn defaults() -> Vec<ClutterRule> {
        [
            ("apt lists", "var/lib/apt/lists/*"),
            ("apt cache", "var/cache/apt/*"),
            ("apk cache", "var/cache/apk/*"),
            ("dnf cache", "var/cache/dnf/*"),
            ("yum cache", "var/cache/yum/*"),
            ("pip cache", "**/.cache/pip"),
            ("python byte code", "**/__pycache__"),
            ("npm cache", "**/.npm"),
            ("yarn cache", "**/.cache/yarn"),
            ("go build cache", "**/.cache/go-build"),
            ("cargo registry", "**/.cargo/registry"),
            ("docs", "usr/share/doc/*"),
            ("man pages", "usr/share/man/*"),
            ("info pages", "usr/share/info/*"),
            ("tmp", "tmp/*"),
            ("var/tmp", "var/tmp/*"),
        ]
        .into_iter()
        .map(|(name, pattern)| ClutterRule::new(name, pattern))
        .collect()
    }
}

/// The bytes of one layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LayerBytes {
    /// The layer.
    pub layer: usize,
    /// Its bytes.
    pub bytes: u64,
}

/// What one clutter rule matched in the final filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Clutter {
    /// The rule's name.
    pub rule: String,
    /// The `--exclude` pattern that removes it.
    pub pattern: String,
    /// Visible files with content it covers.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The bytes of those files that lie in squashed layers: a squash with `--exclude` drops
    /// them; the rest stays stored in the base (or kept layers), hidden by a whiteout.
    pub reclaimable_bytes: u64,
    /// Which layers added them, and how many bytes each.
    pub layers: Vec<LayerBytes>,
}

/// One path a clutter rule matched (a directory with what lies below it, or a file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ClutterPath {
    /// The path.
    pub path: String,
    /// The rule's name.
    pub rule: String,
    /// Visible files with content at or below it.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Which layers added them.
    pub layers: Vec<LayerBytes>,
}

/// The clutter rules compiled, with a memo of what covers each directory seen.
pub(super) struct Clutterer {
    rules: Excludes,
    memo: RefCell<HashMap<EntryPath, Option<(usize, EntryPath)>>>,
}

/// Files, bytes by layer, and bytes in squashed layers.
type ClutterFigures = (u64, BTreeMap<usize, u64>, u64);

/// Clutter found so far: per rule and per matched path.
#[derive(Default)]
pub(super) struct ClutterFound {
    /// (rule, path) → its figures.
    paths: BTreeMap<(usize, EntryPath), ClutterFigures>,
}

impl Clutterer {
    pub(super) fn new(rules: &[ClutterRule]) -> Result<Clutterer> {
        let patterns: Vec<String> = rules.iter().map(|r| r.pattern.clone()).collect();
        if let Some(bad) =
            patterns.iter().find(|p| p.trim().is_empty() || p.trim().starts_with('#'))
        {
            return Err(Error::InvalidOption {
                reason: format!("clutter pattern `{bad}` is empty"),
            });
        }
        let rules = Excludes::new(&patterns)?;
        Ok(Clutterer { rules, memo: Default::default() })
    }

    /// A visible file of `bytes` at `path`, added by `layer`.
    pub(super) fn visit(
        &self,
        path: &EntryPath,
        layer: usize,
        bytes: u64,
        squashed: bool,
        found: &mut ClutterFound,
    ) {
        if self.rules.is_empty() {
            return;
        }
        let hit = match path.parent() {
            Some(parent) => {
                let mut memo = self.memo.borrow_mut();
                let above = memo
                    .entry(parent.clone())
                    .or_insert_with(|| self.rules.covering_at(&parent, true))
                    .clone();
                above.or_else(|| self.rules.matching(path, false).map(|r| (r, path.clone())))
            }
            None => self.rules.matching(path, false).map(|r| (r, path.clone())),
        };
        if let Some(key) = hit {
            let record = found.paths.entry(key).or_default();
            record.0 += 1;
            *record.1.entry(layer).or_default() += bytes;
            if squashed {
                record.2 += bytes;
            }
        }
    }
}

impl ClutterFound {
    /// Per rule, and the `top` largest paths.
    pub(super) fn finish(
        self,
        rules: &[ClutterRule],
        top: usize,
    ) -> (Vec<Clutter>, Vec<ClutterPath>) {
        let layer_list = |m: &BTreeMap<usize, u64>| {
            m.iter().map(|(&layer, &bytes)| LayerBytes { layer, bytes }).collect::<Vec<_>>()
        };
        let mut per_rule: BTreeMap<usize, ClutterFigures> = BTreeMap::new();
        let mut paths = Vec::new();
        for ((rule, path), (files, by_layer, squashed)) in self.paths {
            let total = per_rule.entry(rule).or_default();
            total.0 += files;
            for (&l, &b) in &by_layer {
                *total.1.entry(l).or_default() += b;
            }
            total.2 += squashed;
            paths.push(ClutterPath {
                path: path.display(),
                rule: rules[rule].name.clone(),
                files,
                bytes: by_layer.values().sum(),
                layers: layer_list(&by_layer),
            });
        }
        let mut clutter: Vec<Clutter> = per_rule
            .into_iter()
            .map(|(rule, (files, by_layer, squashed))| Clutter {
                rule: rules[rule].name.clone(),
                pattern: rules[rule].pattern.clone(),
                files,
                bytes: by_layer.values().sum(),
                reclaimable_bytes: squashed,
                layers: layer_list(&by_layer),
            })
            .collect();
        clutter.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.rule.cmp(&b.rule)));
        paths.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.path.cmp(&b.path)));
        paths.truncate(top);
        (clutter, paths)
    }
}
