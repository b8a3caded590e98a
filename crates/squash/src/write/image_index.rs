//! Writing every platform of an image index in one run: each image by its own plan (squashed or
//! copied byte for byte), the attestations of squashed images dropped (or kept), nested indexes
//! rewritten the same way, and a new index that keeps its entries' order, platforms, annotations
//! and artifact types, its own annotations and its media type (OCI index or Docker manifest
//! list). An index whose entries all stay the same is copied byte for byte. Ranges of several
//! images may be merged concurrently beforehand.

use std::collections::BTreeMap;
use std::io;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::container::{BlobKind, Finish};
use super::execute::{check_spool_room, room_needs, KeptBlobs};
use super::lock::{LockWait, DEFAULT_LOCK_TIMEOUT};
use super::outcome::{total_transfer, Outcome};
use super::output::{default_tag, Input, Output, OutputFormat};
use super::space::{self, Need};
use super::target::Target;
use crate::budget::Budget;
use crate::context::Context;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::merge::new_layer::{PreMerged, PreMergedLayers};
use crate::plan::image_index::{ChildPlan, IndexPlan};
use crate::plan::squash_plan::PlannedRange;
use crate::progress::Event;
use crate::read::blob::BlobRef;
use crate::read::descriptor::descriptor_ref;
use crate::read::image::Image;
use crate::read::image_index::{read_document, ImageIndex, IndexChildKind};
use crate::registry::transfer::Transfer;

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
    /// What the run moved through registries, when it read from or wrote to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<Transfer>,
    /// For a push, the index by digest: `docker://HOST/REPO@sha256:…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed: Option<String>,
    /// The tag the output carries (given, or the input's name), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

impl IndexPlan {
    /// Writes the new index and everything it lists to `output` (an OCI layout or archive).
    /// Nothing is left at the destination if this fails.
    pub fn execute(&self, index: &ImageIndex, output: &Output) -> Result<IndexOutcome> {
        self.execute_in(index, output, &Context::new())
    }

    /// [`IndexPlan::execute`] within `context` (threads, temporary directory, progress). On
    /// standard output, an OCI archive is written as [`IndexPlan::execute_to_writer`] writes it.
    pub fn execute_in(
        &self,
        index: &ImageIndex,
        output: &Output,
        context: &Context<'_>,
    ) -> Result<IndexOutcome> {
        let format = output.format_for(index.format());
        check_format(format)?;
        let output = &output.clone().or_tag(default_tag(index.name(), format));
        let mut inputs = vec![Input::index(index)];
        for (_, plan) in self.images(index) {
            inputs.extend(plan.options.bases.iter().map(Input::image));
        }
        if output.is_stdout() {
            let mut stdout = io::BufWriter::with_capacity(1 << 20, io::stdout().lock());
            let tag = output.tag().map(str::to_string);
            return self.execute_to_writer(index, tag, &mut stdout, context);
        }
        self.check_before_writing(index, context)?;
        // Room, before the first byte is written: every image's kept layers (each blob once)
        // and new layers at the output, and the new layers merged ahead in --tmp-dir.
        let new = self.new_layers_estimate(index);
        let mut needs = Vec::new();
        if let Some(path) = output.path() {
            let mut kept = KeptBlobs::default();
            for (image, plan) in self.images(index) {
                kept.add(image, plan, path, format);
            }
            needs = room_needs(path, kept.bytes(), new, output.archive_compression().is_some());
        }
        if self.merges_ahead(index, context) {
            needs.push(Need {
                place: context.scratch_dir(),
                bytes: new,
                what: "of new layers merged ahead (--tmp-dir)".into(),
            });
        }
        space::check(&needs)?;
        let wait = LockWait {
            timeout: self.options.lock_timeout.unwrap_or(DEFAULT_LOCK_TIMEOUT),
            progress: context.progress(),
        };
        let target = Target::for_output(output, format, &inputs, wait)?;
        self.write(index, &output.clone().with_format(format), target, context)
    }

    /// Writes the new index as an OCI archive into `out` (see
    /// [`SquashPlan::execute_to_writer`](crate::SquashPlan::execute_to_writer)).
    pub fn execute_to_writer(
        &self,
        index: &ImageIndex,
        tag: Option<String>,
        out: &mut dyn io::Write,
        context: &Context<'_>,
    ) -> Result<IndexOutcome> {
        self.check_before_writing(index, context)?;
        check_spool_room(context, self.new_layers_estimate(index))?;
        let default = default_tag(index.name(), OutputFormat::OciArchive);
        let output = Output::stdout(OutputFormat::OciArchive).or_tag(tag.or(default));
        let target =
            Target::stream(OutputFormat::OciArchive, out, context.tmp_dir().map(Into::into));
        self.write(index, &output, target, context)
    }

    fn check_before_writing(&self, index: &ImageIndex, context: &Context<'_>) -> Result<()> {
        if context.cancelled() {
            return Err(Error::Cancelled);
        }
        if self.options.verify_all {
            for (image, plan) in self.images(index) {
                image.verify_layers(plan.kept_layers(image), context)?;
            }
        }
        Ok(())
    }

    /// The ranges merged ahead ([`IndexPlan::premerge`]), and how many at once; none when fewer
    /// than two would run at once.
    fn premerge_jobs<'a>(
        &'a self,
        index: &'a ImageIndex,
        context: &Context<'_>,
    ) -> (Vec<(&'a Image, &'a PlannedRange)>, usize, usize) {
        let jobs: Vec<(&Image, &PlannedRange)> = self
            .images(index)
            .into_iter()
            .filter(|(image, _)| image.manifest_digest().is_some())
            .flat_map(|(image, plan)| plan.ranges.iter().map(move |r| (image, r)))
            .collect();
        let total = match context.threads() {
            0 => Budget::cores(),
            n => n,
        };
        let workers = jobs.len().min(total);
        if workers < 2 {
            return (Vec::new(), 0, total);
        }
        (jobs, workers, total)
    }

    /// The new layers' size over every image (see [`SquashPlan::new_layers_estimate`]).
    fn new_layers_estimate(&self, index: &ImageIndex) -> u64 {
        crate::units::total(
            self.images(index).into_iter().map(|(_, plan)| plan.new_layers_estimate()),
        )
    }

    /// Whether the ranges are merged ahead into temporary files.
    fn merges_ahead(&self, index: &ImageIndex, context: &Context<'_>) -> bool {
        self.premerge_jobs(index, context).1 >= 2
    }

    /// With several ranges across the index's images and threads to spare, merges them
    /// concurrently into temporary files (in the context's temporary directory), its threads
    /// shared among them; the writing then copies each in. Output bytes are the same either way.
    fn premerge(
        &self,
        index: &ImageIndex,
        context: &Context<'_>,
    ) -> Result<BTreeMap<(Digest, usize), PreMerged>> {
        let progress = context.progress();
        let (jobs, workers, total) = self.premerge_jobs(index, context);
        if workers < 2 {
            return Ok(BTreeMap::new());
        }
        let per_job = (total / workers).max(1);
        progress.event(&Event::Writing {
            total: jobs.iter().map(|(_, r)| r.plan.uncompressed_size).sum(),
        });
        progress.step(format!("merging {} ranges, {workers} at once", jobs.len()));
        let job_context = context.clone().with_threads(per_job);
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results: Vec<Result<Vec<(usize, PreMerged)>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    scope.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some((image, planned)) = jobs.get(i) else { return Ok(done) };
                            done.push((
                                i,
                                PreMerged::merge(image, planned, self.options.level, &job_context)?,
                            ));
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(Error::Cancelled)))
                .collect()
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

    fn write(
        &self,
        index: &ImageIndex,
        output: &Output,
        mut target: Target<'_>,
        context: &Context<'_>,
    ) -> Result<IndexOutcome> {
        let mut written =
            Written { premerged: self.premerge(index, context)?, ..Default::default() };
        let descriptor = self.write_index(index, output, &mut target, context, &mut written)?;
        let index_digest: Digest = descriptor["digest"]
            .as_str()
            .and_then(|d| d.parse().ok())
            .unwrap_or_else(|| index.digest().clone());
        let tag = output.tag().map(str::to_string);
        let pushed = target.commit(Finish {
            manifest_descriptor: descriptor,
            tag: tag.clone(),
            config: index_digest.clone(),
            layers: Vec::new(),
            extra_blobs: written.blobs,
        })?;
        Ok(IndexOutcome {
            output: output.shown(),
            pushed: output.pushed(&index_digest),
            tag: tag.clone(),
            index_digest,
            images: written.images,
            dropped_attestations: written.dropped,
            stale_attestations: written.stale,
            absent: written.absent,
            transfer: total_transfer(index.store.transfer(), pushed),
        })
    }

    /// Writes `index` (the top one or a nested one) and what it lists; its new descriptor.
    fn write_index(
        &self,
        index: &ImageIndex,
        output: &Output,
        target: &mut Target<'_>,
        context: &Context<'_>,
        written: &mut Written,
    ) -> Result<Value> {
        let progress = context.progress();
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
                            .filter_map(|r| {
                                written
                                    .premerged
                                    .remove(&(digest.clone(), r.range.start))
                                    .map(|m| (r.range.start, m))
                            })
                            .collect(),
                        None => PreMergedLayers::new(),
                    };
                    let (outcome, new) =
                        p.write_image_blobs(image, output, target, context, &mut premerged)?;
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
                    let new = p.write_index(nested, output, target, context, written)?;
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
                    copy_manifest(index, &child.blob, target, context, written)?;
                    child.descriptor.clone()
                }
            };
            entries.push(descriptor);
        }
        let original: Vec<Value> = index
            .document
            .value
            .get("manifests")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let bytes = if entries == original {
            index.document.raw.clone()
        } else {
            let mut value = index.document.value.clone();
            value["manifests"] = Value::Array(entries);
            serde_json::to_vec(&value).map_err(|e| Error::io(output.location(), e.into()))?
        };
        let (digest, size) = target.write_blob(None, BlobKind::Manifest, &mut |w| {
            w.write_all(&bytes).at(|| output.location())
        })?;
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
            reason: "a docker-archive holds one platform: choose it with --platform (or write oci \
                or oci-archive, which hold \
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
    context: &Context<'_>,
    written: &mut Written,
) -> Result<()> {
    let (store, progress) = (&index.store, context.progress());
    let (raw, digest, value) = read_document(store, blob)?;
    let location = store.location().part(format!("manifest {}", digest.short()));
    let mut named: Vec<&Value> = value.get("config").into_iter().collect();
    for list in ["layers", "blobs"] {
        named.extend(value.get(list).and_then(Value::as_array).into_iter().flatten());
    }
    let total =
        crate::units::total(named.iter().filter_map(|d| d.get("size").and_then(Value::as_u64)));
    progress.event(&Event::Writing { total });
    for descriptor in named {
        let child = descriptor_ref(descriptor, &location, store)?;
        let Some(child_digest) = child.digest.clone() else { continue };
        if !target.reuse_blob(&child_digest, store)? {
            let blob_location = location.clone().within(format!("blob {}", child_digest.short()));
            let mut reader = store.open_blob(&child, blob_location.clone())?;
            // The reader checks the blob's size and digest as it copies.
            target.copy_layer(
                (Some((&child_digest, child.size)), true),
                &mut reader,
                (progress, true),
                context.budget(),
                &blob_location,
            )?;
        }
        written.blobs.push(child_digest);
    }
    target.write_blob(Some((&digest, raw.len() as u64)), BlobKind::Manifest, &mut |w| {
        w.write_all(&raw).at(|| location.clone())
    })?;
    written.blobs.push(digest);
    Ok(())
}
