//! Planning every platform of an image index in one run: each image squashed by its own plan
//! (its own ranges, the base of its platform) or copied as it is, the attestations of squashed
//! images dropped (or kept), nested indexes planned the same way.

use super::options::SquashOptions;
use super::squash_plan::SquashPlan;
use crate::context::Context;
use crate::digest::Digest;
use crate::error::{Error, Location, Result};
use crate::read::image::Image;
use crate::read::image_index::{ImageIndex, IndexChildKind, Opened};
use crate::read::platform::Platform;

/// What to do with an index beyond the squash options of each image.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct IndexOptions {
    /// Squash only the images of these platforms (each must be in the index); copy the others
    /// unchanged. Empty: every image.
    pub platforms: Vec<Platform>,
    /// Keep the attestation manifests (and referrers) of squashed images, which then describe
    /// a manifest that is no longer in the index. Default: drop them.
    pub keep_attestations: bool,
    /// The base images for `--from-layer base`, each an image or an index: every image of the
    /// index gets those of its platform.
    pub bases: Vec<Opened>,
}

impl IndexOptions {
    /// Squash only the images of `platforms`; copy the others unchanged.
    pub fn with_platforms(mut self, platforms: Vec<Platform>) -> IndexOptions {
        self.platforms = platforms;
        self
    }

    /// Keep (`true`) or drop the attestation manifests of squashed images.
    pub fn with_keep_attestations(mut self, keep: bool) -> IndexOptions {
        self.keep_attestations = keep;
        self
    }

    /// The base images (each an image or an index) for
    /// [`LayerSelector::Base`](crate::LayerSelector::Base).
    pub fn with_bases(mut self, bases: Vec<Opened>) -> IndexOptions {
        self.bases = bases;
        self
    }
}

/// What happens to one entry of an index.
#[derive(Debug, Clone)]
pub(crate) enum ChildPlan {
    /// The image, squashed (or copied, when the plan has no range).
    Image(SquashPlan),
    /// Copied as it is: its manifest and every blob it names (none for an absent entry).
    Copy,
    /// Left out (the attestation of a squashed image).
    Drop,
    /// A nested index, planned the same way.
    Index(IndexPlan),
}

/// The plan for every entry of an index.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IndexPlan {
    pub(crate) children: Vec<ChildPlan>,
    pub(crate) options: SquashOptions,
}

impl ImageIndex {
    /// Plans every image of the index: each resolves its own ranges with `options`
    /// (`--from-layer N` counts that image's layers; `base` uses the base of its platform),
    /// within `index_options.platforms` when given; the rest is copied.
    ///
    /// ```no_run
    /// use squash::{IndexOptions, LayerSelector, Opened, Output, OutputFormat, SquashOptions};
    ///
    /// let opened = Opened::open(&"oci:layout:app".parse()?, &Default::default())?;
    /// if let Opened::Index(index) = opened {
    ///     let only_arm = IndexOptions::default().with_platforms(vec!["linux/arm64".parse()?]);
    ///     let options = SquashOptions::default().with_selector(LayerSelector::Top(2));
    ///     let plan = index.plan(&options, &only_arm)?;
    ///     let outcome = plan.execute(&index, &Output::new("out", OutputFormat::OciLayout))?;
    ///     println!("new index {}", outcome.index_digest);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn plan(&self, options: &SquashOptions, index_options: &IndexOptions) -> Result<IndexPlan> {
        self.plan_in(options, index_options, &Context::new())
    }

    /// [`ImageIndex::plan`] within `context` (its progress hears of the layers indexed, image by
    /// image).
    pub fn plan_in(
        &self,
        options: &SquashOptions,
        index_options: &IndexOptions,
        context: &Context<'_>,
    ) -> Result<IndexPlan> {
        for wanted in &index_options.platforms {
            if !self.images().iter().any(|i| i.platform().is_some_and(|p| wanted.matches(p))) {
                let listed: Vec<String> =
                    self.platforms().iter().map(ToString::to_string).collect();
                return Err(Error::Selection {
                    location: Location::file(self.source()),
                    reason: format!(
                        "no manifest for platform {wanted}; platforms: {}",
                        listed.join(", ")
                    ),
                });
            }
        }
        let mut plan = self.plan_children(options, index_options, context)?;
        let replaced = plan.replaced(self);
        plan.drop_attestations(self, &replaced, index_options.keep_attestations);
        Ok(plan)
    }

    fn plan_children(
        &self,
        options: &SquashOptions,
        index_options: &IndexOptions,
        context: &Context<'_>,
    ) -> Result<IndexPlan> {
        let mut children = Vec::with_capacity(self.children.len());
        for child in &self.children {
            children.push(match &child.kind {
                IndexChildKind::Image(image) => {
                    let chosen = index_options.platforms.is_empty()
                        || index_options
                            .platforms
                            .iter()
                            .any(|w| image.platform().is_some_and(|p| w.matches(p)));
                    if chosen {
                        let mut child_options = options.clone();
                        child_options.bases = index_options
                            .bases
                            .iter()
                            .filter_map(|b| b.for_platform_of(image))
                            .collect();
                        ChildPlan::Image(image.plan_in(&child_options, context)?)
                    } else {
                        ChildPlan::Image(SquashPlan::copy_of(image, options))
                    }
                }
                IndexChildKind::Index(nested) => {
                    ChildPlan::Index(nested.plan_children(options, index_options, context)?)
                }
                _ => ChildPlan::Copy,
            });
        }
        Ok(IndexPlan { children, options: options.clone() })
    }

    /// Every image of the index (nested ones too) with its plan, in order, into `out`.
    pub(crate) fn images_with_plans<'a>(
        &'a self,
        plan: &'a IndexPlan,
        out: &mut Vec<(&'a Image, &'a SquashPlan)>,
    ) {
        for (child, child_plan) in self.children.iter().zip(&plan.children) {
            match (&child.kind, child_plan) {
                (IndexChildKind::Image(image), ChildPlan::Image(p)) => out.push((image, p)),
                (IndexChildKind::Index(nested), ChildPlan::Index(p)) => {
                    nested.images_with_plans(p, out)
                }
                _ => {}
            }
        }
    }
}

impl IndexPlan {
    /// The plans of every image, in index order, with the image each is for.
    pub fn images<'a>(&'a self, index: &'a ImageIndex) -> Vec<(&'a Image, &'a SquashPlan)> {
        let mut out = Vec::new();
        index.images_with_plans(self, &mut out);
        out
    }

    /// The manifest digests of the images whose layers get squashed.
    pub(crate) fn replaced(&self, index: &ImageIndex) -> Vec<Digest> {
        self.images(index)
            .into_iter()
            .filter(|(_, p)| p.changes_image())
            .filter_map(|(i, _)| i.manifest_digest().cloned())
            .collect()
    }

    fn drop_attestations(&mut self, index: &ImageIndex, replaced: &[Digest], keep: bool) {
        for (child, plan) in index.children.iter().zip(self.children.iter_mut()) {
            match (&child.kind, plan) {
                (IndexChildKind::Attestation { of: Some(of) }, plan)
                    if replaced.contains(of) && !keep =>
                {
                    *plan = ChildPlan::Drop
                }
                (IndexChildKind::Index(nested), ChildPlan::Index(p)) => {
                    p.drop_attestations(nested, replaced, keep)
                }
                _ => {}
            }
        }
    }
}
