//! Choosing what to squash: `--from-layer N|DIGEST|base` and explicit `--layers A..B` ranges,
//! resolved against an image into validated, ordered, non-overlapping ranges.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::read::image::Image;

/// What the user asked to squash.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LayerSelector {
    /// Nothing: copy the image as it is.
    #[default]
    Nothing,
    /// The top N filesystem layers (history steps that made no layer are not counted).
    Top(usize),
    /// Every layer above the one whose diff_id or blob digest starts with this (it is kept).
    Above(String),
    /// Every layer above the base image: the longest common diff_id prefix with `--base` images
    /// or with other images of the same input.
    Base,
    /// Explicit inclusive ranges of layer indexes, as `squash inspect` numbers them.
    Ranges(Vec<(usize, usize)>),
    /// Every layer, the base included: the image flattened into one layer (`crane flatten`,
    /// `podman build --squash-all`, docker-squash without `-f`).
    All,
    /// The last N history steps, empty ones (`ENV`, `CMD`, `LABEL`) included, as
    /// docker-squash's `-f N` counts them: the filesystem layers among them are the range, and
    /// the steps fold into one with [`crate::HistoryMode::Drop`].
    Steps(usize),
}

impl std::str::FromStr for LayerSelector {
    type Err = crate::error::ParseError;
    /// Parses a `--from-layer` value: `base`, a number, or a digest (prefix).
    fn from_str(s: &str) -> std::result::Result<LayerSelector, crate::error::ParseError> {
        parse_selector(s)
            .map_err(|message| crate::error::ParseError::new("layer selector", s, message))
    }
}

/// Parses a `--from-layer` value: `base`, a number, or a digest (prefix).
fn parse_selector(s: &str) -> std::result::Result<LayerSelector, String> {
    if s == "base" {
        return Ok(LayerSelector::Base);
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && s.len() < 8 {
        return s.parse().map(LayerSelector::Top).map_err(|e| format!("`{s}`: {e}"));
    }
    let hex = s.strip_prefix("sha256:").unwrap_or(s);
    if hex.len() >= 4 && hex.len() <= 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(LayerSelector::Above(hex.to_ascii_lowercase()));
    }
    Err(format!(
        "`{s}` is neither `base`, a layer count, nor a digest prefix (at least 4 hex digits)"
    ))
}

/// Parses `A..B` (inclusive) as given to `--layers`.
pub fn parse_layer_range(s: &str) -> std::result::Result<(usize, usize), crate::error::ParseError> {
    parse_range_text(s).map_err(|message| crate::error::ParseError::new("layer range", s, message))
}

fn parse_range_text(s: &str) -> std::result::Result<(usize, usize), String> {
    let (a, b) = s.split_once("..").ok_or_else(|| format!("`{s}` is not a range `A..B`"))?;
    let a: usize = a.trim().parse().map_err(|_| format!("`{s}`: `{a}` is not a layer index"))?;
    let b: usize = b.trim().parse().map_err(|_| format!("`{s}`: `{b}` is not a layer index"))?;
    Ok((a, b))
}

/// A range of layers (inclusive indexes) that becomes one layer, and the rule that chose it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LayerRange {
    /// First layer of the range.
    pub start: usize,
    /// Last layer of the range (inclusive).
    pub end: usize,
    /// Why these layers: which rule chose them.
    pub reason: String,
    /// The first history step the range owns, when the rule says (the last N steps, or the
    /// steps after a base image's history); else the step of its first layer.
    #[serde(skip)]
    pub(crate) first_step: Option<usize>,
}

impl LayerRange {
    /// Number of layers in the range.
    pub fn len(&self) -> usize {
        self.end - self.start + 1
    }

    /// Always false: a range holds at least one layer.
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl fmt::Display for LayerRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "layers {}..{} ({}): {}", self.start, self.end, layers(self.len()), self.reason)
    }
}

/// Whether the history of `base` is a prefix of the history of `image` (the same steps, made
/// the same way, in the same order).
fn history_prefix(base: &Image, image: &Image) -> bool {
    let (ours, theirs) = (base.history(), image.history());
    !ours.is_empty()
        && ours.len() <= theirs.len()
        && ours.iter().zip(theirs).all(|(a, b)| {
            a.created_by == b.created_by && a.empty_layer == b.empty_layer && a.created == b.created
        })
}

/// `1 layer`, `3 layers`.
pub(crate) fn layers(n: usize) -> String {
    if n == 1 {
        "1 layer".to_string()
    } else {
        format!("{n} layers")
    }
}

/// Resolves `selector` against `image`. `bases` are extra images given with `--base`.
pub(crate) fn resolve(
    image: &Image,
    selector: &LayerSelector,
    bases: &[Image],
) -> Result<Vec<LayerRange>> {
    let count = image.layers().len();
    let invalid = |reason: String| Error::InvalidRange { reason };
    match selector {
        LayerSelector::Nothing => Ok(Vec::new()),
        LayerSelector::All => {
            if count == 0 {
                return Err(invalid("--all: the image has no filesystem layers".into()));
            }
            Ok(vec![LayerRange {
                // Every step, the empty ones before the first layer included.
                first_step: Some(0),
                start: 0,
                end: count - 1,
                reason: format!("every layer, the base included ({})", layers(count)),
            }])
        }
        LayerSelector::Top(n) => {
            if *n == 0 || *n > count {
                return Err(invalid(format!(
                    "--from-layer {n}: the image has {} (empty history steps do not count; -f \
                     counts steps as docker-squash does)",
                    layers(count).replace("layer", "filesystem layer")
                )));
            }
            Ok(vec![LayerRange {
                first_step: None,
                start: count - n,
                end: count - 1,
                reason: format!("the top {n} filesystem layers"),
            }])
        }
        LayerSelector::Steps(n) => {
            let steps = image.history().len();
            let paired = image.layers().iter().all(|l| l.history_index().is_some());
            if !paired || steps == 0 {
                return Err(invalid(format!(
                    "-f {n}: the image's history does not pair its steps with its layers, so \
                     steps cannot be counted; count filesystem layers with --from-layer {n}"
                )));
            }
            if *n == 0 || *n > steps {
                return Err(invalid(format!(
                    "-f {n}: the image has {steps} history steps ({} among them); -f counts \
                     steps as docker-squash does, --from-layer counts layers",
                    layers(count).replace("layer", "filesystem layer")
                )));
            }
            let marker = steps - n;
            let inside: Vec<usize> = image
                .layers()
                .iter()
                .filter(|l| l.history_index().is_some_and(|h| h >= marker))
                .map(|l| l.index())
                .collect();
            let (Some(&start), Some(&end)) = (inside.first(), inside.last()) else {
                return Ok(Vec::new());
            };
            let mut range = LayerRange {
                first_step: None,
                start,
                end,
                reason: format!(
                    "the last {n} history steps ({} among them)",
                    layers(inside.len()).replace("layer", "filesystem layer")
                ),
            };
            range.first_step = Some(marker);
            Ok(vec![range])
        }
        LayerSelector::Above(prefix) => {
            let matches: Vec<usize> = image
                .layers()
                .iter()
                .filter(|l| {
                    l.diff_id().hex().starts_with(prefix.as_str())
                        || l.digest().is_some_and(|d| d.hex().starts_with(prefix.as_str()))
                })
                .map(|l| l.index())
                .collect();
            let index = match matches.as_slice() {
                [one] => *one,
                [] => {
                    return Err(invalid(format!(
                        "no layer's diff_id or digest starts with `{prefix}`\n{}",
                        layer_listing(image)
                    )))
                }
                many => {
                    let first = many[0];
                    if many
                        .iter()
                        .all(|&i| image.layers()[i].diff_id() == image.layers()[first].diff_id())
                    {
                        *many.last().unwrap_or(&first)
                    } else {
                        return Err(invalid(format!(
                            "`{prefix}` matches layers {many:?}; give more digits"
                        )));
                    }
                }
            };
            if index + 1 >= count {
                return Err(invalid(format!(
                    "layer {index} (`{prefix}`) is the top layer: nothing above it to squash"
                )));
            }
            Ok(vec![LayerRange {
                first_step: None,
                start: index + 1,
                end: count - 1,
                reason: format!(
                    "every layer above layer {index} ({}), which is kept",
                    image.layers()[index].diff_id().short()
                ),
            }])
        }
        LayerSelector::Base => {
            let mut candidates: Vec<(String, Vec<Digest>)> = bases
                .iter()
                .map(|b| {
                    (
                        b.path().display().to_string(),
                        b.layers().iter().map(|l| l.diff_id().clone()).collect(),
                    )
                })
                .collect();
            let from_bases = !candidates.is_empty();
            if !from_bases {
                candidates = image.sibling_diff_ids()?;
            }
            let own: Vec<&Digest> = image.layers().iter().map(|l| l.diff_id()).collect();
            let best = candidates
                .iter()
                .map(|(name, ids)| {
                    (own.iter().zip(ids).take_while(|(a, b)| **a == *b).count(), ids.len(), name)
                })
                .filter(|(common, len, _)| *common > 0 && common == len)
                .max_by_key(|(common, _, _)| *common);
            match best {
                Some((common, _, _)) if common >= count => Err(invalid(format!(
                    "the image is its base image ({} in common): nothing above it to squash",
                    layers(count)
                ))),
                Some((common, _, name)) => {
                    let found = if from_bases { "" } else { " (found in the same input)" };
                    // A base from the same build: its history is a prefix of the image's, and
                    // the range's steps begin right after it.
                    let first_step = bases
                        .iter()
                        .find(|b| b.path().display().to_string() == *name)
                        .filter(|b| history_prefix(b, image))
                        .map(|b| b.history().len());
                    Ok(vec![LayerRange {
                        first_step,
                        start: common,
                        end: count - 1,
                        reason: format!(
                            "every layer above the base image `{name}` ({} in common, by \
                             diff_id){found}",
                            layers(common)
                        ),
                    }])
                }
                None => Err(invalid(format!(
                    "cannot find the base image: {}; name the boundary with --from-layer N (top N \
                     layers), --from-layer DIGEST (squash above that layer), --base IMAGE, or \
                     --layers A..B\n{}",
                    if from_bases {
                        "no --base image is a prefix of this image's layers"
                    } else {
                        "the input holds no other image whose layers are a prefix of this one's"
                    },
                    layer_listing(image)
                ))),
            }
        }
        LayerSelector::Ranges(ranges) => {
            let mut sorted = ranges.clone();
            sorted.sort();
            let mut out: Vec<LayerRange> = Vec::new();
            for (a, b) in sorted {
                if a > b || b >= count {
                    return Err(invalid(format!(
                        "--layers {a}..{b}: indexes run from 0 to {} and A must not exceed B",
                        count.saturating_sub(1)
                    )));
                }
                if let Some(prev) = out.last() {
                    if a <= prev.end {
                        return Err(invalid(format!(
                            "--layers {a}..{b} overlaps {}..{}",
                            prev.start, prev.end
                        )));
                    }
                }
                out.push(LayerRange {
                    first_step: None,
                    start: a,
                    end: b,
                    reason: format!("layers {a}..{b}, as asked"),
                });
            }
            Ok(out)
        }
    }
}

/// The image's layers with their history, for error messages that ask the user to choose.
pub(crate) fn layer_listing(image: &Image) -> String {
    let mut out = String::from("layers (index, diff_id, created_by):");
    for layer in image.layers() {
        let step = layer
            .history_index()
            .and_then(|h| image.history().get(h))
            .and_then(|h| h.created_by.clone())
            .unwrap_or_default();
        let step: String = step.chars().take(70).collect();
        out.push_str(&format!("\n  {:>3}  {}  {}", layer.index(), layer.diff_id().short(), step));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_selectors() {
        assert_eq!("base".parse(), Ok(LayerSelector::Base));
        assert_eq!("3".parse(), Ok(LayerSelector::Top(3)));
        assert_eq!("sha256:ABCD12".parse(), Ok(LayerSelector::Above("abcd12".into())));
        assert!("xyz".parse::<LayerSelector>().is_err());
        assert_eq!(parse_layer_range("2..5"), Ok((2, 5)));
        assert!(parse_layer_range("2-5").is_err());
    }
}
