//! `--exclude`: paths that vanish from the image's filesystem, with their subtrees. Patterns are
//! gitignore-style globs anchored at the image root (`**`, `*`, `?`, `[…]`; `*` never crosses a
//! `/`; a trailing `/` matches directories only), matched by `globset`.

use std::os::unix::ffi::OsStrExt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::layer::entry::EntryPath;

/// One pattern, compiled.
#[derive(Debug, Clone)]
struct Pattern {
    text: String,
    matcher: globset::GlobMatcher,
    dir_only: bool,
}

/// The compiled `--exclude` patterns, in the order given.
#[derive(Debug, Clone, Default)]
pub struct Excludes {
    patterns: Vec<Pattern>,
}

impl Excludes {
    /// Compiles `patterns`; a blank line or one starting with `#` (as in an `--exclude-from`
    /// file) is skipped.
    pub fn new(patterns: &[String]) -> Result<Excludes> {
        let mut compiled = Vec::new();
        for text in patterns {
            let trimmed = text.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let dir_only = trimmed.ends_with('/');
            let glob = trimmed.trim_start_matches('/').trim_end_matches('/');
            let glob = glob.strip_prefix("./").unwrap_or(glob);
            if glob.is_empty() {
                return Err(Error::InvalidOption {
                    reason: format!("--exclude `{text}` names the root, which cannot be removed"),
                });
            }
            let matcher = globset::GlobBuilder::new(glob)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| Error::InvalidOption { reason: format!("--exclude `{text}`: {e}") })?
                .compile_matcher();
            compiled.push(Pattern { text: trimmed.to_string(), matcher, dir_only });
        }
        Ok(Excludes { patterns: compiled })
    }

    /// Whether there is no pattern.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The patterns as given (trimmed), in order.
    pub fn patterns(&self) -> impl Iterator<Item = &str> {
        self.patterns.iter().map(|p| p.text.as_str())
    }

    /// The first pattern that matches `path` itself (`dir`: whether it is a directory).
    pub fn matching(&self, path: &EntryPath, dir: bool) -> Option<usize> {
        if path.is_root() {
            return None;
        }
        let os = std::ffi::OsStr::from_bytes(path.as_bytes());
        self.patterns.iter().position(|p| (dir || !p.dir_only) && p.matcher.is_match(os))
    }

    /// The first pattern that removes `path`: one that matches the path itself or one of its
    /// ancestors (which are directories), the highest first.
    pub fn covering(&self, path: &EntryPath, dir: bool) -> Option<usize> {
        if self.is_empty() {
            return None;
        }
        path.ancestors().find_map(|a| self.matching(&a, true)).or_else(|| self.matching(path, dir))
    }

    /// [`Excludes::covering`], with the path the pattern matched (`path` or an ancestor).
    pub fn covering_at(&self, path: &EntryPath, dir: bool) -> Option<(usize, EntryPath)> {
        if self.is_empty() {
            return None;
        }
        path.ancestors()
            .find_map(|a| self.matching(&a, true).map(|p| (p, a)))
            .or_else(|| self.matching(path, dir).map(|p| (p, path.clone())))
    }
}

/// What one pattern removes: entries and bytes dropped from squashed ranges (reclaimed), and
/// those still stored in kept layers below, hidden by whiteouts in a new layer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ExcludeFigures {
    /// The pattern.
    pub pattern: String,
    /// Entries of squashed layers dropped.
    pub entries_reclaimed: u64,
    /// Their bytes in the layers' tar streams (headers, data, padding).
    pub bytes_reclaimed: u64,
    /// Entries of kept layers below that a new layer's whiteouts hide.
    pub entries_hidden: u64,
    /// Their bytes, which those layers still store.
    pub bytes_hidden: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> EntryPath {
        EntryPath::parse(s.as_bytes()).expect("path")
    }

    #[test]
    fn patterns_are_anchored_gitignore_globs() {
        let ex = Excludes::new(&[
            "**/__pycache__/".into(),
            "var/lib/apt/lists".into(),
            "usr/share/doc/*".into(),
            "*.log".into(),
            "tmp/[ab]?".into(),
            "# a comment".into(),
            "".into(),
        ])
        .expect("patterns");
        assert_eq!(ex.patterns().count(), 5);
        assert_eq!(ex.matching(&path("usr/lib/python3/x/__pycache__"), true), Some(0));
        assert_eq!(ex.matching(&path("__pycache__"), true), Some(0));
        assert_eq!(
            ex.matching(&path("usr/__pycache__"), false),
            None,
            "a trailing / matches directories only"
        );
        assert_eq!(ex.matching(&path("var/lib/apt/lists"), true), Some(1));
        assert_eq!(ex.matching(&path("x/var/lib/apt/lists"), true), None, "anchored at the root");
        assert_eq!(ex.matching(&path("usr/share/doc/bash"), true), Some(2));
        assert_eq!(
            ex.matching(&path("usr/share/doc/bash/README"), false),
            None,
            "* does not cross /"
        );
        assert_eq!(
            ex.covering(&path("usr/share/doc/bash/README"), false),
            Some(2),
            "but the subtree goes with it"
        );
        assert_eq!(ex.matching(&path("app.log"), false), Some(3));
        assert_eq!(ex.matching(&path("var/app.log"), false), None);
        assert_eq!(ex.matching(&path("tmp/a1"), false), Some(4));
        assert_eq!(ex.matching(&path("tmp/c1"), false), None);
        assert!(Excludes::new(&["/".into()]).is_err());
        assert!(Excludes::new(&["a/[".into()]).is_err());
    }
}
