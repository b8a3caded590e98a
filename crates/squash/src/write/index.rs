//! Every platform of an image index in one run: each image squashed by its own plan or copied
//! byte for byte, the attestations of squashed images dropped (or kept), nested indexes
//! rewritten the same way, and a new index that keeps its entries' order, platforms,
//! annotations and artifact types, its own annotations and its media type (OCI index or Docker
//! manifest list). An index whose entries all stay the same is copied byte for byte.

use std::collections::BTreeMap;
use std::io;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::lock::LockWait;
use super::target::{BlobKind, Finish, Input, Target};
use super::{Counting, Event, NoProgress, Outcome, Output, OutputFormat, PreMerged, PreMergedLayers, Progress, DEFAULT_LOCK_TIMEOUT};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Location, Result};
use crate::plan::{PlannedRange, SquashOptions, SquashPlan};
use crate::read::blob::BlobRef;
use crate::read::stream::Budget;
use crate::read::{Image, ImageIndex, IndexChildKind, Opened, Platform};

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

    /// The base images (each an image or an index) for [`LayerSelector::Base`](crate::LayerSelector::Base).
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

/// One image of a written index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ImageOutcome {
    /// Its platform, `os/arch[/variant]`.
    pub platform: Option<String>,
    /// Whether layers of it were squashed (else it was copied unchanged).
    pub squashed: bool,
    /// The manifest it replaces.
    pub original_manifest_digest: Option<Digest>,
    /// What was written for it.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// What squashing an index wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IndexOutcome {
    /// Where it was written.
    pub output: String,
    /// The new index's digest.
    pub index_digest: Digest,
    /// Every image, in index order (nested indexes included).
    pub images: Vec<ImageOutcome>,
    /// Attestation manifests left out, because the image they describe was squashed.
    pub dropped_attestations: Vec<Digest>,
    /// Attestations kept (`keep_attestations`) that describe a manifest no longer written.
    pub stale_attestations: Vec<Digest>,
    /// Entries the input lists without holding them: listed in the new index as they were.
    pub absent: Vec<Digest>,
}

impl ImageIndex {
    /// Plans every image of the index: each resolves its own ranges with `options`
    /// (`--from-layer N` counts that image's layers; `base` uses the base of its platform),
    /// within `index_options.platforms` when given; the rest is copied.
    ///
    /// ```no_run
    /// use squash::{IndexOptions, LayerSelector, Opened, Output, OutputFormat, SquashOptions};
    ///
    /// if let Opened::Index(index) = Opened::open(&"oci:layout:app".parse()?, &Default::default())? {
    ///     let only_arm = IndexOptions::default().with_platforms(vec!["linux/arm64".parse()?]);
    ///     let plan = index.plan(&SquashOptions::default().with_selector(LayerSelector::Top(2)), &only_arm)?;
    ///     let outcome = plan.execute(&index, &Output::new("out", OutputFormat::OciLayout))?;
    ///     println!("new index {}", outcome.index_digest);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn plan(&self, options: &SquashOptions, index_options: &IndexOptions) -> Result<IndexPlan> {
        self.plan_with_progress(options, index_options, &NoProgress)
    }

    /// [`ImageIndex::plan`], telling `progress` about the layers it indexes, image by image.
    pub fn plan_with_progress(&self, options: &SquashOptions, index_options: &IndexOptions, progress: &dyn Progress) -> Result<IndexPlan> {
        for wanted in &index_options.platforms {
            if !self.images().iter().any(|i| i.platform().is_some_and(|p| wanted.matches(p))) {
                let listed: Vec<String> = self.platforms().iter().map(ToString::to_string).collect();
                return Err(Error::Selection {
                    location: Location::file(self.source()),
                    reason: format!("no manifest for platform {wanted}; platforms: {}", listed.join(", ")),
                });
            }
        }
        let mut plan = self.plan_children(options, index_options, progress)?;
        let replaced = plan.replaced(self);
        plan.drop_attestations(self, &replaced, index_options.keep_attestations);
        Ok(plan)
    }

    fn plan_children(&self, options: &SquashOptions, index_options: &IndexOptions, progress: &dyn Progress) -> Result<IndexPlan> {
        let mut children = Vec::with_capacity(self.children.len());
        for child in &self.children {
            children.push(match &child.kind {
                IndexChildKind::Image(image) => {
                    let chosen = index_options.platforms.is_empty()
                        || index_options.platforms.iter().any(|w| image.platform().is_some_and(|p| w.matches(p)));
                    if chosen {
                        let mut child_options = options.clone();
                        child_options.bases = index_options.bases.iter().filter_map(|b| b.for_platform_of(image)).collect();
                        ChildPlan::Image(image.plan_with_progress(&child_options, progress)?)
                    } else {
                        ChildPlan::Image(SquashPlan::copy_of(image, options))
                    }
                }
                IndexChildKind::Index(nested) => ChildPlan::Index(nested.plan_children(options, index_options, progress)?),
                _ => ChildPlan::Copy,
            });
        }
        Ok(IndexPlan { children, options: options.clone() })
    }

    /// Every image of the index (nested ones too) with its plan, in order, into `out`.
    fn images_with_plans<'a>(&'a self, plan: &'a IndexPlan, out: &mut Vec<(&'a Image, &'a SquashPlan)>) {
        for (child, child_plan) in self.children.iter().zip(&plan.children) {
            match (&child.kind, child_plan) {
                (IndexChildKind::Image(image), ChildPlan::Image(p)) => out.push((image, p)),
                (IndexChildKind::Index(nested), ChildPlan::Index(p)) => nested.images_with_plans(p, out),
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
    fn replaced(&self, index: &ImageIndex) -> Vec<Digest> {
        self.images(index).into_iter().filter(|(_, p)| p.changes_image()).filter_map(|(i, _)| i.manifest_digest().cloned()).collect()
    }

    fn drop_attestations(&mut self, index: &ImageIndex, replaced: &[Digest], keep: bool) {
        for (child, plan) in index.children.iter().zip(self.children.iter_mut()) {
            match (&child.kind, plan) {
                (IndexChildKind::Attestation { of: Some(of) }, plan) if replaced.contains(of) && !keep => *plan = ChildPlan::Drop,
                (IndexChildKind::Index(nested), ChildPlan::Index(p)) => p.drop_attestations(nested, replaced, keep),
                _ => {}
            }
        }
    }

    /// Writes the new index and everything it lists to `output` (an OCI layout or archive).
    /// Nothing is left at the destination if this fails.
    pub fn execute(&self, index: &ImageIndex, output: &Output) -> Result<IndexOutcome> {
        self.execute_with_progress(index, output, &NoProgress)
    }

    /// [`IndexPlan::execute`], reporting progress.
    pub fn execute_with_progress(&self, index: &ImageIndex, output: &Output, progress: &dyn Progress) -> Result<IndexOutcome> {
        check_format(output.format)?;
        self.check_before_writing(index, progress)?;
        let mut inputs = vec![Input::index(index)];
        for (_, plan) in self.images(index) {
            inputs.extend(plan.options.bases.iter().map(Input::image));
        }
        let wait = LockWait { timeout: self.options.lock_timeout.unwrap_or(DEFAULT_LOCK_TIMEOUT), progress };
        let target = Target::create(output, &inputs, wait)?;
        self.write(index, output, target, progress)
    }

    /// Writes the new index as an OCI archive into `out` (see
    /// [`SquashPlan::execute_to_writer`]).
    pub fn execute_to_writer(
        &self,
        index: &ImageIndex,
        tag: Option<String>,
        out: &mut dyn io::Write,
        progress: &dyn Progress,
    ) -> Result<IndexOutcome> {
        self.check_before_writing(index, progress)?;
        let output = Output { path: "-".into(), format: OutputFormat::OciArchive, tag };
        let target = Target::stream(OutputFormat::OciArchive, out, self.options.tmp_dir.clone());
        self.write(index, &output, target, progress)
    }

    fn check_before_writing(&self, index: &ImageIndex, progress: &dyn Progress) -> Result<()> {
        if progress.cancelled() {
            return Err(Error::Cancelled);
        }
        if self.options.verify_all {
            for (image, plan) in self.images(index) {
                image.verify_layers(plan.kept_layers(image), self.options.threads)?;
            }
        }
        Ok(())
    }

    /// With several ranges across the index's images and threads to spare, merges them
    /// concurrently into temporary files (in `tmp_dir`, else the system's), `--threads` shared
    /// among them; the writing then copies each in. Output bytes are the same either way.
    fn premerge(&self, index: &ImageIndex, progress: &dyn Progress) -> Result<BTreeMap<(Digest, usize), PreMerged>> {
        let jobs: Vec<(&Image, &PlannedRange)> = self
            .images(index)
            .into_iter()
            .filter(|(image, _)| image.manifest_digest().is_some())
            .flat_map(|(image, plan)| plan.ranges.iter().map(move |r| (image, r)))
            .collect();
        let total = match self.options.threads {
            0 => Budget::cores(),
            n => n,
        };
        let workers = jobs.len().min(total);
        if workers < 2 {
            return Ok(BTreeMap::new());
        }
        let per_job = (total / workers).max(1);
        progress.event(&Event::Writing { total: jobs.iter().map(|(_, r)| r.plan.uncompressed_size).sum() });
        progress.step(format!("merging {} ranges, {workers} at once", jobs.len()));
        let dir = self.options.tmp_dir.clone().unwrap_or_else(std::env::temp_dir);
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results: Vec<Result<Vec<(usize, PreMerged)>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    scope.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some((image, planned)) = jobs.get(i) else { return Ok(done) };
                            done.push((i, PreMerged::merge(image, planned, self.options.level, per_job, &dir, progress)?));
                        }
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(Error::Cancelled))).collect()
        });
        let mut out = BTreeMap::new();
        for result in results {
            for (i, merged) in result? {
                let (image, planned) = jobs[i];
                if let Some(digest) = image.manifest_digest() {
                    out.insert((digest.clone(), planned.range.start), merged);
                }
            }
        }
        Ok(out)
    }

    fn write(&self, index: &ImageIndex, output: &Output, mut target: Target<'_>, progress: &dyn Progress) -> Result<IndexOutcome> {
        let mut written = Written { premerged: self.premerge(index, progress)?, ..Default::default() };
        let descriptor = self.write_index(index, output, &mut target, progress, &mut written)?;
        let index_digest: Digest = descriptor["digest"].as_str().and_then(|d| d.parse().ok()).unwrap_or_else(|| index.digest().clone());
        let tag = output.tag.clone().or_else(|| index.name().map(|n| n.rsplit_once(':').map(|(_, t)| t).unwrap_or(n).to_string()));
        target.commit(Finish {
            manifest_descriptor: descriptor,
            tag,
            config: index_digest.clone(),
            layers: Vec::new(),
            extra_blobs: written.blobs,
        })?;
        Ok(IndexOutcome {
            output: output.path.display().to_string(),
            index_digest,
            images: written.images,
            dropped_attestations: written.dropped,
            stale_attestations: written.stale,
            absent: written.absent,
        })
    }

    /// Writes `index` (the top one or a nested one) and what it lists; its new descriptor.
    fn write_index(
        &self,
        index: &ImageIndex,
        output: &Output,
        target: &mut Target<'_>,
        progress: &dyn Progress,
        written: &mut Written,
    ) -> Result<Value> {
        let replaced = self.replaced(index);
        let mut entries = Vec::with_capacity(index.children.len());
        for (child, plan) in index.children.iter().zip(&self.children) {
            let digest = child.blob.digest.clone();
            let descriptor = match (&child.kind, plan) {
                (_, ChildPlan::Drop) => {
                    written.dropped.extend(digest);
                    continue;
                }
                (IndexChildKind::Image(image), ChildPlan::Image(p)) => {
                    if let Some(platform) = image.platform() {
                        progress.step(format!("platform {platform}"));
                    }
                    let mut premerged: PreMergedLayers = match image.manifest_digest() {
                        Some(digest) => p
                            .ranges
                            .iter()
                            .filter_map(|r| written.premerged.remove(&(digest.clone(), r.range.start)).map(|m| (r.range.start, m)))
                            .collect(),
                        None => PreMergedLayers::new(),
                    };
                    let (outcome, new) = p.write_image_blobs(image, output, target, progress, &mut premerged)?;
                    written.blobs.extend(outcome.layers.iter().map(|l| l.digest.clone()));
                    written.blobs.push(outcome.config_digest.clone());
                    written.blobs.push(outcome.manifest_digest.clone());
                    let mut descriptor = child.descriptor.clone();
                    descriptor["digest"] = new["digest"].clone();
                    descriptor["size"] = new["size"].clone();
                    written.images.push(ImageOutcome {
                        platform: image.platform().map(ToString::to_string),
                        squashed: !p.ranges.is_empty(),
                        original_manifest_digest: image.manifest_digest().cloned(),
                        outcome,
                    });
                    descriptor
                }
                (IndexChildKind::Index(nested), ChildPlan::Index(p)) => {
                    let new = p.write_index(nested, output, target, progress, written)?;
                    let mut descriptor = child.descriptor.clone();
                    descriptor["digest"] = new["digest"].clone();
                    descriptor["size"] = new["size"].clone();
                    descriptor
                }
                (IndexChildKind::Absent, _) => {
                    written.absent.extend(digest);
                    child.descriptor.clone()
                }
                (kind, _) => {
                    if let IndexChildKind::Attestation { of: Some(of) } = kind {
                        if replaced.contains(of) {
                            written.stale.extend(digest.clone());
                        }
                    }
                    copy_manifest(index, &child.blob, target, progress, written)?;
                    child.descriptor.clone()
                }
            };
            entries.push(descriptor);
        }
        let original: Vec<Value> = index.document.value.get("manifests").and_then(Value::as_array).cloned().unwrap_or_default();
        let bytes = if entries == original {
            index.document.raw.clone()
        } else {
            let mut value = index.document.value.clone();
            value["manifests"] = Value::Array(entries);
            serde_json::to_vec(&value).map_err(|e| Error::io(Location::file(&output.path), e.into()))?
        };
        let (digest, size) =
            target.write_blob(None, BlobKind::Manifest, &mut |w| w.write_all(&bytes).at(|| Location::file(&output.path)))?;
        written.blobs.push(digest.clone());
        Ok(json!({"mediaType": index.media_type(), "digest": digest.to_string(), "size": size}))
    }
}

/// What the writing of an index gathered on its way.
#[derive(Default)]
struct Written {
    premerged: BTreeMap<(Digest, usize), PreMerged>,
    blobs: Vec<Digest>,
    images: Vec<ImageOutcome>,
    dropped: Vec<Digest>,
    stale: Vec<Digest>,
    absent: Vec<Digest>,
}

/// An index cannot be a `docker save` tarball, nor a layout on standard output.
fn check_format(format: OutputFormat) -> Result<()> {
    match format {
        OutputFormat::DockerArchive => Err(Error::InvalidOption {
            reason: "a docker-archive holds one platform: choose it with --platform (or write oci or oci-archive, which hold \
                     every platform of the index)"
                .into(),
        }),
        _ => Ok(()),
    }
}

/// Copies a manifest that is not a container image (an attestation, an artifact) and every blob
/// it names (`config`, `layers`, `blobs`), each verified as read.
fn copy_manifest(
    index: &ImageIndex,
    blob: &BlobRef,
    target: &mut Target<'_>,
    progress: &dyn Progress,
    written: &mut Written,
) -> Result<()> {
    let store = &index.store;
    let digest = blob.digest.clone().ok_or_else(|| Error::invalid(store.location(), "descriptor", "no digest"))?;
    let location = store.location().part(format!("manifest {}", digest.short()));
    let raw = store.read_document(blob, location.clone())?;
    let value: Value = serde_json::from_slice(&raw).map_err(|e| Error::invalid(location.clone(), "manifest", e.to_string()))?;
    let mut named: Vec<&Value> = value.get("config").into_iter().collect();
    for list in ["layers", "blobs"] {
        named.extend(value.get(list).and_then(Value::as_array).into_iter().flatten());
    }
    let total = named.iter().filter_map(|d| d.get("size").and_then(Value::as_u64)).sum();
    progress.event(&Event::Writing { total });
    for descriptor in named {
        let child = crate::read::oci_descriptor_ref(descriptor, &location, store)?;
        let Some(child_digest) = child.digest.clone() else { continue };
        if !target.has_blob(&child_digest) {
            let blob_location = location.clone().within(format!("blob {}", child_digest.short()));
            let mut reader = store.open_blob(&child, blob_location.clone())?;
            target.write_blob(Some((&child_digest, child.size)), BlobKind::Layer, &mut |w| {
                let mut counting = Counting::new(w, progress, true);
                io::copy(&mut reader, &mut counting).and_then(|_| io::Write::flush(&mut counting)).at(|| blob_location.clone())
            })?;
        }
        written.blobs.push(child_digest);
    }
    target.write_blob(Some((&digest, raw.len() as u64)), BlobKind::Manifest, &mut |w| w.write_all(&raw).at(|| location.clone()))?;
    written.blobs.push(digest);
    Ok(())
}
