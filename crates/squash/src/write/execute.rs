//! Executing a plan: kept layers copied byte for byte (verified as read), the planned ranges
//! merged into new layers, the config and manifest rebuilt, and the output committed; what was
//! written described as an [`Outcome`].

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;

use serde_json::{json, Value};

use super::beside::{flagging, CopiesBeside, MergedAhead, MergesBeside, Watch};
use super::container::{BlobKind, Finish};
use super::documents::new_manifest;
use super::lock::{LockWait, DEFAULT_LOCK_TIMEOUT};
use super::outcome::{total_transfer, Outcome, OutcomeLayer};
use super::output::{default_tag, Input, Output, OutputFormat};
use super::space::{self, Need};
use super::target::Target;
use crate::context::Context;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Location, Result};
use crate::merge::new_layer::{merge_range, PreMerged, PreMergedLayers};
use crate::plan::squash_plan::{PlannedRange, SquashPlan};
use crate::progress::Event;
use crate::read::image::{Image, InputFormat};
use crate::read::media::{self, DOCKER_MANIFEST, OCI_MANIFEST};

/// Whether the image's manifest uses Docker v2s2 media types.
fn docker_family(image: &Image, format: OutputFormat) -> bool {
    match &image.manifest {
        Some(m) => m.media_type.contains("docker"),
        None => format == OutputFormat::DockerArchive,
    }
}

impl SquashPlan {
    /// Merges the planned ranges, copies every other layer byte for byte, and writes the new
    /// image to `output`. Nothing is left at the destination if this fails.
    ///
    /// ```no_run
    /// use squash::{Image, LayerSelector, Output, OutputFormat, SquashOptions};
    ///
    /// let image = Image::open("oci:layout:app")?;
    /// let plan = image.plan(&SquashOptions::default().with_selector(LayerSelector::Top(3)))?;
    /// let output = Output::new("out", OutputFormat::OciLayout).with_tag("app");
    /// let outcome = plan.execute(&image, &output)?;
    /// println!("new manifest {}", outcome.manifest_digest);
    /// # Ok::<(), squash::Error>(())
    /// ```
    pub fn execute(&self, image: &Image, output: &Output) -> Result<Outcome> {
        self.execute_in(image, output, &Context::new())
    }

    /// [`SquashPlan::execute`] within `context`: its threads, its temporary directory (for the
    /// new layers of an archive written to standard output) and its progress, which hears of the
    /// work and can cancel it. An output on standard output is written as
    /// [`SquashPlan::execute_to_writer`] writes it.
    pub fn execute_in(
        &self,
        image: &Image,
        output: &Output,
        context: &Context<'_>,
    ) -> Result<Outcome> {
        let format = output.format_for(image.format());
        // Without a tag given, the input's name, known before anything is checked or written.
        let output = &output.clone().or_tag(default_tag(image.name(), format));
        let mut inputs = vec![Input::image(image)];
        inputs.extend(self.options.bases.iter().map(Input::image));
        if output.is_stdout() {
            let mut stdout = io::BufWriter::with_capacity(1 << 20, io::stdout().lock());
            let tag = output.tag().map(str::to_string);
            return self.execute_to_writer(image, format, tag, &mut stdout, context);
        }
        self.check_before_writing(image, context)?;
        if let Some(path) = output.path() {
            self.check_room(image, path, format, output.archive_compression().is_some())?;
        }
        let wait = LockWait {
            timeout: self.options.lock_timeout.unwrap_or(DEFAULT_LOCK_TIMEOUT),
            progress: context.progress(),
        };
        let target = Target::for_output(output, format, &inputs, wait)?;
        self.write_image(image, &output.clone().with_format(format), target, context)
    }

    /// Writes the new image as an archive (`format`: [`OutputFormat::DockerArchive`] or
    /// [`OutputFormat::OciArchive`]) into `out`, such as a pipe into `docker load`: members in
    /// the order a streaming reader needs (layers, then config, then manifest), each written
    /// once. New layers are spooled to temporary files (in the context's temporary directory) to
    /// learn their digests before their members begin; kept layers are streamed as they are
    /// read. If this fails, what was written is an incomplete archive that no loader accepts.
    pub fn execute_to_writer(
        &self,
        image: &Image,
        format: OutputFormat,
        tag: Option<String>,
        out: &mut dyn io::Write,
        context: &Context<'_>,
    ) -> Result<Outcome> {
        if format == OutputFormat::OciLayout {
            return Err(Error::InvalidOption {
                reason: "a stream holds an archive: choose docker-archive or oci-archive, not an \
                    OCI layout directory"
                    .into(),
            });
        }
        self.check_before_writing(image, context)?;
        check_spool_room(context, self.new_layers_estimate())?;
        let output =
            Output::stdout(format).or_tag(tag.or_else(|| default_tag(image.name(), format)));
        let target = Target::stream(format, out, context.tmp_dir().map(Into::into));
        self.write_image(image, &output, target, context)
    }

    /// The new layers' size: exact when stored uncompressed, else their exact uncompressed
    /// size at the compression ratio of the layers they replace.
    pub(super) fn new_layers_estimate(&self) -> u64 {
        self.ranges
            .iter()
            .map(|r| {
                let (before, stored) = (r.uncompressed_size_before(), r.compressed_size_before());
                if r.compression == crate::codec::compression::Compression::None || before == 0 {
                    r.uncompressed_size()
                } else {
                    let ratio = (stored as f64 / before as f64).min(1.0);
                    (r.uncompressed_size() as f64 * ratio) as u64
                }
            })
            .sum()
    }

    /// Refuses a run whose output at `path` would not fit: the kept layers it copies (those an
    /// existing layout lacks), the new layers (estimated), and for an archive compressed as a
    /// whole its plain copy too.
    fn check_room(
        &self,
        image: &Image,
        path: &Path,
        format: OutputFormat,
        compressed: bool,
    ) -> Result<()> {
        let mut kept = KeptBlobs::default();
        kept.add(image, self, path, format);
        space::check(&room_needs(path, kept.bytes(), self.new_layers_estimate(), compressed))
    }

    fn check_before_writing(&self, image: &Image, context: &Context<'_>) -> Result<()> {
        self.check_image(image)?;
        if context.cancelled() {
            return Err(Error::Cancelled);
        }
        if self.options.verify_all {
            // Ranges were decoded and fully checked when planned; kept layers are checked here.
            image.verify_layers(self.kept_layers(image), context)?;
        }
        Ok(())
    }

    /// Writes `image` into `target`, then commits it. `output`'s format is the one written.
    fn write_image(
        &self,
        image: &Image,
        output: &Output,
        mut target: Target<'_>,
        context: &Context<'_>,
    ) -> Result<Outcome> {
        let (mut outcome, manifest_descriptor) = self.write_image_blobs(
            image,
            output,
            &mut target,
            context,
            &mut PreMergedLayers::new(),
        )?;
        let tag = output.tag().map(str::to_string);
        outcome.tag = tag.clone();
        let pushed = target.commit(Finish {
            manifest_descriptor,
            tag,
            config: outcome.config_digest.clone(),
            layers: outcome.layers.iter().map(|l| l.digest.clone()).collect(),
            extra_blobs: Vec::new(),
        })?;
        outcome.transfer = total_transfer(image.store.transfer(), pushed);
        outcome.pushed = output.pushed(&outcome.manifest_digest);
        Ok(outcome)
    }

    /// The bytes of work writing `image` takes: the stored bytes of the layers it copies, and
    /// the uncompressed bytes of the new layers not merged ahead.
    fn work(&self, image: &Image, premerged: &PreMergedLayers) -> u64 {
        let kept = crate::units::total(self.kept_layers(image).map(|i| image.layers()[i].size()));
        let new: u64 = self
            .ranges
            .iter()
            .filter(|r| !premerged.contains_key(&r.range.start))
            .map(|r| r.plan.uncompressed_size)
            .sum();
        kept.saturating_add(new)
    }

    /// Writes the image's blobs (layers, config and, but for a docker archive, the manifest)
    /// into `target`: what it wrote, and the manifest's descriptor. `output`'s format is the one
    /// written.
    pub(crate) fn write_image_blobs(
        &self,
        image: &Image,
        output: &Output,
        target: &mut Target<'_>,
        context: &Context<'_>,
        premerged: &mut PreMergedLayers,
    ) -> Result<(Outcome, Value)> {
        let progress = context.progress();
        let format = output.format_for(image.format());
        let docker = docker_family(image, format);
        progress.event(&Event::Writing { total: self.work(image, premerged) });
        // Kept layers copied on a thread beside the merge, or new layers merged beside the copies
        // of kept layers, where they can be (see `CopiesBeside` and `MergesBeside`).
        let copies = CopiesBeside::plan(self, image, target, premerged, context)?;
        let merges = MergesBeside::plan(self, image, target, premerged, context);
        // `failed`: the work beside failed, and the writer stops; `stop`: the writer failed.
        let (failed, stop) = (AtomicBool::new(false), AtomicBool::new(false));
        let on_main = Watch { inner: progress, stop: &failed };
        let main_context = context.clone().with_progress(&on_main);
        let on_beside = Watch { inner: progress, stop: &stop };
        let beside_context = context.clone().with_progress(&on_beside);
        let dir = target.blob_dir();
        let (send, receive) = mpsc::channel();
        let mut ahead =
            MergedAhead { before: premerged, beside: merges.starts(), from_beside: receive };
        let (main, copied, merged) = std::thread::scope(|scope| {
            let copier = match (&dir, copies.layers.is_empty()) {
                (Some(dir), false) => {
                    Some(scope.spawn(|| flagging(&failed, || copies.copy(image, dir, &on_beside))))
                }
                _ => None,
            };
            let merger = (!merges.is_empty()).then(|| {
                let (merges, beside_context, failed) = (&merges, &beside_context, &failed);
                scope.spawn(move || {
                    flagging(failed, || {
                        merges.merge(image, self.options.level, beside_context, send)
                    })
                })
            });
            let main = flagging(&stop, || {
                self.write_layers(image, docker, target, &main_context, &mut ahead, &copies)
            });
            // Dropped before the merge beside is joined, so that it cannot wait on a send.
            drop(ahead);
            let stopped = |what: &str| {
                Error::io(Location::file(image.path()), io::Error::other(format!("{what} stopped")))
            };
            let copied = copier.map(|thread| {
                thread.join().unwrap_or_else(|_| Err(stopped("the thread copying the kept layers")))
            });
            let merged = merger.map(|thread| {
                thread.join().unwrap_or_else(|_| Err(stopped("the thread merging the new layers")))
            });
            (main, copied, merged)
        });
        // The failure beside first: it is what stopped the writer, if the writer failed.
        merged.transpose()?;
        let (layers, descriptors) = match (main, copied.transpose()?) {
            (Err(e), _) => return Err(e),
            (Ok(_), Some(None)) => return Err(Error::Cancelled),
            (Ok(written), Some(Some(copies))) => {
                for copy in copies {
                    target.keep_blob(copy)?;
                }
                written
            }
            (Ok(written), None) => written,
        };

        let edits = &self.options.edits;
        if !edits.annotations.is_empty() && format == OutputFormat::DockerArchive {
            return Err(Error::InvalidOption {
                reason: "--annotation: a docker-archive stores no manifest, so it cannot carry \
                    annotations; write an OCI layout or archive"
                    .into(),
            });
        }
        let copy = self.ranges.is_empty() && !edits.changes_config() && !self.folds_history();
        let config_bytes =
            if copy { image.config.raw.clone() } else { self.new_config(image, &layers)? };
        // The input's own config, unchanged, is not written again where the output holds it (a
        // repository that has it, or one of the same registry it can be mounted from). Its
        // digest is compared with the bytes: a descriptor without one stands for none.
        let unchanged = copy
            .then(|| image.config_digest())
            .filter(|digest| *digest == &Digest::of(&config_bytes));
        let (config_digest, config_size) = match unchanged {
            Some(digest) if target.reuse_blob(digest, &image.store)? => {
                (digest.clone(), config_bytes.len() as u64)
            }
            _ => target.write_blob(None, BlobKind::Config, &mut |w| {
                w.write_all(&config_bytes).at(|| output.location())
            })?,
        };
        // A `dir:` manifest may call its config `application/octet-stream`; it is rewritten.
        let verbatim = copy && edits.annotations.is_empty() && image.format() != InputFormat::Dir;
        let manifest_bytes = match &image.manifest {
            Some(m) if verbatim => m.raw.clone(),
            _ => new_manifest(image, docker, &config_digest, config_size, descriptors, edits)?,
        };
        let manifest_media_type = match &image.manifest {
            Some(m) => m.media_type.clone(),
            None if docker => DOCKER_MANIFEST.to_string(),
            None => OCI_MANIFEST.to_string(),
        };
        let manifest_digest = if format == OutputFormat::DockerArchive {
            Digest::of(&manifest_bytes)
        } else {
            target
                .write_blob(None, BlobKind::Manifest, &mut |w| {
                    w.write_all(&manifest_bytes).at(|| output.location())
                })?
                .0
        };
        let mut manifest_descriptor = json!({
            "mediaType": manifest_media_type,
            "digest": manifest_digest.to_string(),
            "size": manifest_bytes.len()
        });
        if let Some(platform) = image.platform() {
            let mut p = json!({"os": platform.os, "architecture": platform.architecture});
            if let Some(v) = &platform.variant {
                p["variant"] = json!(v);
            }
            manifest_descriptor["platform"] = p;
        }
        let excluded = self.excluded();
        Ok((
            Outcome {
                output: output.shown(),
                manifest_digest,
                config_digest,
                layers,
                excluded,
                transfer: None,
                pushed: None,
                tag: None,
                unchanged: self.unchanged.clone(),
            },
            manifest_descriptor,
        ))
    }

    /// Writes the image's layers into `target` in order (ranges merged, or copied from
    /// `premerged`; kept layers copied, or counted as copied where `beside` copies them): each
    /// layer's record and descriptor.
    fn write_layers(
        &self,
        image: &Image,
        docker: bool,
        target: &mut Target<'_>,
        context: &Context<'_>,
        ahead: &mut MergedAhead<'_>,
        beside: &CopiesBeside,
    ) -> Result<(Vec<OutcomeLayer>, Vec<Value>)> {
        let progress = context.progress();
        let mut layers: Vec<OutcomeLayer> = Vec::new();
        let mut descriptors: Vec<Value> = Vec::new();
        let mut index = 0;
        while index < image.layers().len() {
            let new_index = layers.len();
            if let Some(planned) = self.ranges.iter().find(|r| r.range.start == index) {
                let merged = ahead.take(planned.range.start)?;
                if ahead.beside.contains(&planned.range.start) {
                    progress.step(format!(
                        "writing layers {}..{}, merged beside",
                        planned.range.start, planned.range.end
                    ));
                } else {
                    progress.step(format!(
                        "merging layers {}..{}",
                        planned.range.start, planned.range.end
                    ));
                }
                let (mut layer, descriptor) =
                    self.write_range(image, planned, docker, target, context, merged)?;
                layer.index = new_index;
                layers.push(layer);
                descriptors.push(descriptor);
                index = planned.range.end + 1;
                continue;
            }
            let layer = &image.layers()[index];
            // A blob copied beside: by its thread (which tells its bytes), or, for a later layer
            // with the same blob, reused.
            let (beside_copy, reused) = match layer.digest() {
                Some(known) if beside.copies(known) => {
                    (beside.layers.iter().any(|(i, _)| *i == index), true)
                }
                Some(known) => (false, target.reuse_blob(known, &image.store)?),
                None => (false, false),
            };
            let (digest, size) = match layer.digest() {
                Some(known) if beside_copy => (known.clone(), layer.size()),
                Some(known) if reused => {
                    progress.event(&Event::Advanced { bytes: layer.size() });
                    (known.clone(), layer.size())
                }
                known => {
                    progress.step(format!("copying layer {index}"));
                    let mut reader = image.open_layer_blob(layer)?;
                    // The reader checks the blob's size and digest as it copies.
                    target
                        .copy_layer(
                            (known.map(|d| (d, layer.size())), true),
                            &mut reader,
                            (progress, true),
                            context.budget(),
                            &image.layer_location(layer),
                        )
                        .map_err(|e| e.writing(|| format!("writing the copy of layer {index}")))?
                }
            };
            let media_type = match (&layer.descriptor, docker) {
                (Some(d), _) if image.manifest.is_some() || !docker => d
                    .get("mediaType")
                    .and_then(Value::as_str)
                    .unwrap_or(&layer.media_type)
                    .to_string(),
                (_, true) => layer.media_type.clone(),
                (_, false) => media::oci_layer(layer.compression()).to_string(),
            };
            let descriptor = match (&layer.descriptor, &image.manifest) {
                (Some(d), Some(_)) => d.clone(),
                _ => json!({"mediaType": media_type, "digest": digest.to_string(), "size": size}),
            };
            layers.push(OutcomeLayer {
                index: new_index,
                digest,
                diff_id: layer.diff_id().clone(),
                compressed_size: size,
                media_type,
                squashed_from: None,
                uncompressed_size: None,
                rereads: Vec::new(),
            });
            descriptors.push(descriptor);
            index += 1;
        }

        Ok((layers, descriptors))
    }

    /// Writes the new layer of `planned` (merged now, or merged ahead into `premerged`, hashed
    /// again as it is copied when its flag says so): the outcome's record of it (at index 0; the
    /// caller places it) and its descriptor.
    fn write_range(
        &self,
        image: &Image,
        planned: &PlannedRange,
        docker: bool,
        target: &mut Target,
        context: &Context<'_>,
        premerged: Option<(PreMerged, bool)>,
    ) -> Result<(OutcomeLayer, Value)> {
        let progress = context.progress();
        let mut merged = None;
        let (digest, size) = match premerged {
            // Merged ahead (platforms of an index, concurrently, or beside a stream's copies):
            // its bytes are copied in, but once only if a layer already written has its blob.
            Some((p, _)) if target.holds_blob(&p.digest) => {
                merged = Some(p.merged);
                (p.digest, p.size)
            }
            Some((p, hash_again)) => {
                let location = Location::file(p.file.path());
                let mut file = p.file.reopen().at(|| location.clone())?;
                merged = Some(p.merged);
                target.copy_layer(
                    (Some((&p.digest, p.size)), !hash_again),
                    &mut file,
                    (progress, false),
                    context.budget(),
                    &location,
                )?
            }
            None => target
                .write_layer(None, context.budget(), &mut |w| {
                    merged = Some(merge_range(image, planned, self.options.level, w, context)?);
                    w.flush().at(|| Location::file(image.path()))
                })
                .map_err(|e| {
                    e.writing(|| {
                        format!(
                            "writing the new layer of layers {}..{}",
                            planned.range.start, planned.range.end
                        )
                    })
                })?,
        };
        let merged = merged.ok_or_else(|| Error::Output {
            location: Location::file(image.path()),
            reason: "merge produced nothing".into(),
        })?;
        let media_type = if docker {
            media::docker_layer(planned.compression).to_string()
        } else {
            let nondistributable = image.layers()[planned.range.start..=planned.range.end]
                .iter()
                .all(|l| l.media_type().contains("nondistributable"));
            let base = media::oci_layer(planned.compression);
            if nondistributable {
                media::nondistributable(base)
            } else {
                base.to_string()
            }
        };
        let descriptor =
            json!({"mediaType": media_type, "digest": digest.to_string(), "size": size});
        let blob_digest = digest.clone();
        let layer = OutcomeLayer {
            index: 0,
            digest,
            diff_id: merged.diff_id.unwrap_or_else(|| blob_digest.clone()),
            compressed_size: size,
            media_type,
            squashed_from: Some(planned.range.clone()),
            uncompressed_size: Some(merged.uncompressed_size),
            rereads: merged.rereads.clone(),
        };
        Ok((layer, descriptor))
    }
}

/// Refuses a stream whose `new` bytes of new layers, spooled to learn their digests before their
/// members begin, would not fit in the context's temporary directory.
pub(super) fn check_spool_room(context: &Context<'_>, new: u64) -> Result<()> {
    space::check(&[Need {
        place: context.scratch_dir(),
        bytes: new,
        what: "of new layers spooled before they are streamed (--tmp-dir)".into(),
    }])
}

/// What an output at `path` needs: `kept` bytes of layers copied, `new` bytes of new layers
/// (estimated), and for an archive compressed as a whole its plain copy too.
pub(super) fn room_needs(path: &Path, kept: u64, new: u64, compressed: bool) -> Vec<Need> {
    let mut needs = vec![
        Need { place: path.to_path_buf(), bytes: kept, what: "of layers kept".into() },
        Need { place: path.to_path_buf(), bytes: new, what: "of new layers (estimated)".into() },
    ];
    if compressed {
        needs.push(Need {
            place: path.to_path_buf(),
            bytes: kept.saturating_add(new),
            what: "of the archive before it is compressed".into(),
        });
    }
    needs
}

/// The kept layers one output copies, each blob once (an index's images may share them), less
/// those an existing layout at the output holds.
#[derive(Default)]
pub(super) struct KeptBlobs {
    by_digest: BTreeMap<Digest, u64>,
    /// Layers whose digest is learnt as they are written (a `docker save` tarball's).
    unnamed: u64,
}

impl KeptBlobs {
    /// Adds the layers `plan` keeps of `image`, written to `path` in `format`.
    pub(super) fn add(
        &mut self,
        image: &Image,
        plan: &SquashPlan,
        path: &Path,
        format: OutputFormat,
    ) {
        let present = |digest: &Digest| {
            format == OutputFormat::OciLayout
                && path.join("blobs/sha256").join(digest.hex()).is_file()
        };
        for layer in plan.kept_layers(image).map(|i| &image.layers()[i]) {
            match layer.digest() {
                Some(digest) if present(digest) => {}
                Some(digest) => {
                    self.by_digest.insert(digest.clone(), layer.size());
                }
                None => self.unnamed = self.unnamed.saturating_add(layer.size()),
            }
        }
    }

    /// Their bytes.
    pub(super) fn bytes(&self) -> u64 {
        crate::units::total(self.by_digest.values().copied()).saturating_add(self.unnamed)
    }
}
