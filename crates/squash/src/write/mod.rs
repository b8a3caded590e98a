//! Stage 4, writing: copies kept layers byte for byte, merges planned ranges, rebuilds the config
//! (`rootfs.diff_ids`, history) and manifest as JSON values so unknown fields survive, and commits
//! the output container.

mod index;
mod lock;
pub(crate) mod target;

use std::io;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::digest::Digest;
use crate::error::{Error, IoContext, Location, Result};
use crate::layer::compression::Compression;
use crate::merge::merge_range;
use crate::plan::{HistoryMode, LayerRange, PlannedRange, SquashPlan};
use crate::read::{Image, InputFormat, DOCKER_CONFIG, OCI_CONFIG, OCI_MANIFEST};
pub use index::{ImageOutcome, IndexOptions, IndexOutcome, IndexPlan};
use lock::LockWait;
use target::{BlobKind, Finish, Input, Target};
pub use target::{Output, OutputFormat};

/// One layer of the written image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OutcomeLayer {
    /// Position in the new image.
    pub index: usize,
    /// Blob digest.
    pub digest: Digest,
    /// Uncompressed digest.
    pub diff_id: Digest,
    /// Blob size.
    pub compressed_size: u64,
    /// Media type written in the manifest.
    pub media_type: String,
    /// For a merged layer, the range of input layers it replaces; `None` for a kept layer.
    pub squashed_from: Option<LayerRange>,
    /// Uncompressed size, known for merged layers.
    pub uncompressed_size: Option<u64>,
    /// For a merged layer: the layers read again to plan and write it, beyond one read of each
    /// layer of its range, each with the reason (left out when there is none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rereads: Vec<crate::plan::Reread>,
}

/// What a squash (or copy) wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Outcome {
    /// Where the image was written.
    pub output: String,
    /// The new manifest's digest (for a `docker save` output, the manifest it would have).
    pub manifest_digest: Digest,
    /// The new config's digest (the image ID).
    pub config_digest: Digest,
    /// The layers of the new image, base first.
    pub layers: Vec<OutcomeLayer>,
    /// What each `--exclude` pattern removed (left out when none was given).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded: Vec<crate::plan::exclude::ExcludeFigures>,
}

impl Outcome {
    /// Layers in the new image.
    pub fn layer_count(&self) -> usize {
        self.layers.len()
    }
}

fn oci_layer_media_type(c: Compression) -> &'static str {
    match c {
        Compression::None => "application/vnd.oci.image.layer.v1.tar",
        Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
        Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
    }
}

/// Whether the image's manifest uses Docker v2s2 media types.
fn docker_family(image: &Image, output: &Output) -> bool {
    match &image.manifest {
        Some(m) => m.media_type.contains("docker"),
        None => output.format == OutputFormat::DockerArchive,
    }
}

/// Formats seconds since the epoch as RFC 3339 in UTC.
pub(crate) fn rfc3339(epoch: i64) -> String {
    let days = epoch.div_euclid(86_400);
    let secs = epoch.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// What a run is doing, for a [`Progress`] to show. Bytes are units of work, known ahead: a
/// layer indexed or copied as it is counts its stored bytes, a new layer its uncompressed bytes
/// (exactly as planned).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Layers are about to be indexed (read in full, their headers recorded and every digest
    /// checked): `layers` of them, `bytes` stored bytes in all.
    Indexing {
        /// How many layers.
        layers: usize,
        /// Their stored bytes.
        bytes: u64,
    },
    /// One of them is done.
    Indexed {
        /// The image layer.
        layer: usize,
        /// Its stored bytes.
        bytes: u64,
    },
    /// Writing begins: of an image, or for an index of each image in turn and once for the
    /// ranges merged ahead of writing. `total` bytes of work follow in [`Event::Advanced`].
    Writing {
        /// The bytes of work.
        total: u64,
    },
    /// `squash report` begins to measure its ranges' new layers, which it streams as a squash
    /// writes them but writes nowhere. `total` bytes of work follow in [`Event::Advanced`].
    Measuring {
        /// The bytes of work: the new layers' uncompressed bytes.
        total: u64,
    },
    /// A step of the writing or measuring begins (`copying layer 3`, `merging layers 1..4`).
    Step {
        /// What it does.
        description: String,
    },
    /// `bytes` more bytes of work are done.
    Advanced {
        /// How many.
        bytes: u64,
    },
    /// Something a person waiting should know (`waiting for the lock on …`).
    Notice {
        /// The message.
        message: String,
    },
}

/// Receives progress while an image is planned, reported on or written, and can cancel a
/// write. The library never prints; a front end decides what a person sees. Events may come
/// from several threads at once (layers are indexed in parallel).
pub trait Progress: Sync {
    /// Something happened.
    fn event(&self, event: &Event) {
        let _ = event;
    }
    /// Whether the run should stop. Polled while writing; when it returns true the run fails
    /// with [`Error::Cancelled`] and removes everything it wrote.
    fn cancelled(&self) -> bool {
        false
    }
}

impl dyn Progress + '_ {
    pub(crate) fn step(&self, description: String) {
        self.event(&Event::Step { description });
    }
}

/// How long a run waits for another run's lock on an output layout by default.
pub const DEFAULT_LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Progress that goes nowhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// Reports bytes to a [`Progress`] as work done as they pass, in steps of at least 1 MiB
/// (unless `report` is off), and stops the write when the run is cancelled. A kept layer is
/// counted as it is copied, a new layer as its uncompressed tar enters the encoder.
pub(crate) struct Counting<'a, W> {
    inner: W,
    progress: &'a dyn Progress,
    unreported: u64,
    report: bool,
}

impl<'a, W> Counting<'a, W> {
    /// `inner`, its bytes reported to `progress` when `report`.
    pub(crate) fn new(inner: W, progress: &'a dyn Progress, report: bool) -> Self {
        Counting { inner, progress, unreported: 0, report }
    }

    /// The writer.
    pub(crate) fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// Reports what is left and returns the writer, without flushing it.
    pub(crate) fn into_inner(mut self) -> W {
        self.report();
        self.inner
    }
}

impl<W: io::Write> io::Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.progress.cancelled() {
            return Err(Error::Cancelled.into_io());
        }
        let n = self.inner.write(buf)?;
        self.unreported += n as u64;
        if self.unreported >= 1 << 20 {
            self.report();
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.report();
        self.inner.flush()
    }
}

impl<W> Counting<'_, W> {
    fn report(&mut self) {
        let bytes = std::mem::take(&mut self.unreported);
        if self.report && bytes > 0 {
            self.progress.event(&Event::Advanced { bytes });
        }
    }
}

/// A new layer merged ahead of writing, into a temporary file.
pub(crate) struct PreMerged {
    pub file: tempfile::NamedTempFile,
    pub digest: Digest,
    pub size: u64,
    pub merged: crate::merge::Merged,
}

/// Layers merged ahead for one image, by the first layer of their range.
pub(crate) type PreMergedLayers = std::collections::BTreeMap<usize, PreMerged>;

impl PreMerged {
    /// Merges `planned` of `image` into a temporary file in `dir` with `threads`.
    pub(crate) fn merge(
        image: &Image,
        planned: &PlannedRange,
        level: Option<i32>,
        threads: usize,
        dir: &std::path::Path,
        progress: &dyn Progress,
    ) -> Result<PreMerged> {
        let file = tempfile::Builder::new().prefix(".squash-layer-").tempfile_in(dir).map_err(|e| Error::Output {
            location: Location::file(dir),
            reason: format!("cannot create a temporary file for a new layer here (see --tmp-dir): {e}"),
        })?;
        let location = Location::file(file.path());
        let handle = file.reopen().at(|| location.clone())?;
        let mut writer = crate::digest::HashingWriter::new(io::BufWriter::with_capacity(1 << 20, handle));
        let merged = merge_range(image, planned, level, threads, &mut writer, progress)?;
        io::Write::flush(&mut writer).at(|| location.clone())?;
        let (buffered, digest, size) = writer.finish();
        buffered.into_inner().map_err(|e| Error::io(location.clone(), e.into_error()))?;
        Ok(PreMerged { file, digest, size, merged })
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
    /// let outcome = plan.execute(&image, &Output::new("out", OutputFormat::OciLayout).with_tag("app"))?;
    /// println!("new manifest {}", outcome.manifest_digest);
    /// # Ok::<(), squash::Error>(())
    /// ```
    pub fn execute(&self, image: &Image, output: &Output) -> Result<Outcome> {
        self.execute_with_progress(image, output, &NoProgress)
    }

    /// [`SquashPlan::execute`], reporting progress.
    pub fn execute_with_progress(&self, image: &Image, output: &Output, progress: &dyn Progress) -> Result<Outcome> {
        self.check_before_writing(image, progress)?;
        let mut inputs = vec![Input::image(image)];
        inputs.extend(self.options.bases.iter().map(Input::image));
        let wait = LockWait { timeout: self.options.lock_timeout.unwrap_or(DEFAULT_LOCK_TIMEOUT), progress };
        let target = Target::create(output, &inputs, wait)?;
        self.write_image(image, output, target, progress)
    }

    /// Writes the new image as an archive (`format`: [`OutputFormat::DockerArchive`] or
    /// [`OutputFormat::OciArchive`]) into `out`, such as a pipe into `docker load`: members in
    /// the order a streaming reader needs (layers, then config, then manifest), each written
    /// once. New layers are spooled to temporary files (in [`SquashOptions::tmp_dir`]) to learn
    /// their digests before their members begin; kept layers are streamed as they are read. If
    /// this fails, what was written is an incomplete archive that no loader accepts.
    pub fn execute_to_writer(
        &self,
        image: &Image,
        format: OutputFormat,
        tag: Option<String>,
        out: &mut dyn io::Write,
        progress: &dyn Progress,
    ) -> Result<Outcome> {
        if format == OutputFormat::OciLayout {
            return Err(Error::InvalidOption {
                reason: "a stream holds an archive: choose docker-archive or oci-archive, not an OCI layout directory".into(),
            });
        }
        self.check_before_writing(image, progress)?;
        let output = Output { path: "-".into(), format, tag };
        let target = Target::stream(format, out, self.options.tmp_dir.clone());
        self.write_image(image, &output, target, progress)
    }

    fn check_before_writing(&self, image: &Image, progress: &dyn Progress) -> Result<()> {
        self.check_image(image)?;
        if progress.cancelled() {
            return Err(Error::Cancelled);
        }
        if self.options.verify_all {
            // Ranges were decoded and fully checked when planned; kept layers are checked here.
            image.verify_layers(self.kept_layers(image), self.options.threads)?;
        }
        Ok(())
    }

    fn write_image(&self, image: &Image, output: &Output, mut target: Target<'_>, progress: &dyn Progress) -> Result<Outcome> {
        let (outcome, manifest_descriptor) = self.write_image_blobs(image, output, &mut target, progress, &mut PreMergedLayers::new())?;
        let tag = output.tag.clone().or_else(|| default_tag(image, output.format));
        target.commit(Finish {
            manifest_descriptor,
            tag,
            config: outcome.config_digest.clone(),
            layers: outcome.layers.iter().map(|l| l.digest.clone()).collect(),
            extra_blobs: Vec::new(),
        })?;
        Ok(outcome)
    }

    /// The bytes of work writing `image` takes: the stored bytes of the layers it copies, and
    /// the uncompressed bytes of the new layers not merged ahead.
    fn work(&self, image: &Image, premerged: &PreMergedLayers) -> u64 {
        let kept: u64 = self.kept_layers(image).map(|i| image.layers()[i].size()).sum();
        let new: u64 = self.ranges.iter().filter(|r| !premerged.contains_key(&r.range.start)).map(|r| r.plan.uncompressed_size).sum();
        kept + new
    }

    /// Writes the image's blobs (layers, config and, but for a docker archive, the manifest)
    /// into `target`: what it wrote, and the manifest's descriptor.
    pub(crate) fn write_image_blobs(
        &self,
        image: &Image,
        output: &Output,
        target: &mut Target<'_>,
        progress: &dyn Progress,
        premerged: &mut PreMergedLayers,
    ) -> Result<(Outcome, Value)> {
        let docker = docker_family(image, output);
        progress.event(&Event::Writing { total: self.work(image, premerged) });
        let mut layers: Vec<OutcomeLayer> = Vec::new();
        let mut descriptors: Vec<Value> = Vec::new();
        let mut index = 0;
        while index < image.layers().len() {
            let new_index = layers.len();
            if let Some(planned) = self.ranges.iter().find(|r| r.range.start == index) {
                progress.step(format!("merging layers {}..{}", planned.range.start, planned.range.end));
                let (layer, descriptor) =
                    self.write_range(image, planned, docker, new_index, target, progress, premerged.remove(&planned.range.start))?;
                layers.push(layer);
                descriptors.push(descriptor);
                index = planned.range.end + 1;
                continue;
            }
            let layer = &image.layers()[index];
            let (digest, size) = match layer.digest() {
                Some(known) if target.has_blob(known) => {
                    progress.event(&Event::Advanced { bytes: layer.size() });
                    (known.clone(), layer.size())
                }
                known => {
                    progress.step(format!("copying layer {index}"));
                    let mut reader = image.open_layer_blob(layer)?;
                    let location = image.layer_location(layer);
                    target.write_blob(known.map(|d| (d, layer.size())), BlobKind::Layer, &mut |w| {
                        let mut counting = Counting::new(w, progress, true);
                        io::copy(&mut reader, &mut counting).and_then(|_| io::Write::flush(&mut counting)).at(|| location.clone())
                    })?
                }
            };
            let media_type = match (&layer.descriptor, docker) {
                (Some(d), _) if image.manifest.is_some() || !docker => {
                    d.get("mediaType").and_then(Value::as_str).unwrap_or(&layer.media_type).to_string()
                }
                (_, true) => layer.media_type.clone(),
                (_, false) => oci_layer_media_type(layer.compression()).to_string(),
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

        let edits = &self.options.edits;
        if !edits.annotations.is_empty() && output.format == OutputFormat::DockerArchive {
            return Err(Error::InvalidOption {
                reason: "--annotation: a docker-archive stores no manifest, so it cannot carry annotations; write an OCI layout or archive"
                    .into(),
            });
        }
        let copy = self.ranges.is_empty() && !edits.changes_config();
        let config_bytes = if copy { image.config.raw.clone() } else { self.new_config(image, &layers)? };
        let (config_digest, config_size) =
            target.write_blob(None, BlobKind::Config, &mut |w| w.write_all(&config_bytes).at(|| Location::file(&output.path)))?;
        // A `dir:` manifest may call its config `application/octet-stream`; it is rewritten.
        let verbatim = copy && edits.annotations.is_empty() && image.format() != InputFormat::Dir;
        let manifest_bytes = match &image.manifest {
            Some(m) if verbatim => m.raw.clone(),
            _ => new_manifest(image, docker, &config_digest, config_size, descriptors, edits)?,
        };
        let manifest_media_type = match &image.manifest {
            Some(m) => m.media_type.clone(),
            None if docker => "application/vnd.docker.distribution.manifest.v2+json".to_string(),
            None => OCI_MANIFEST.to_string(),
        };
        let manifest_digest = if output.format == OutputFormat::DockerArchive {
            Digest::of(&manifest_bytes)
        } else {
            target.write_blob(None, BlobKind::Manifest, &mut |w| w.write_all(&manifest_bytes).at(|| Location::file(&output.path)))?.0
        };
        let mut manifest_descriptor =
            json!({"mediaType": manifest_media_type, "digest": manifest_digest.to_string(), "size": manifest_bytes.len()});
        if let Some(platform) = image.platform() {
            let mut p = json!({"os": platform.os, "architecture": platform.architecture});
            if let Some(v) = &platform.variant {
                p["variant"] = json!(v);
            }
            manifest_descriptor["platform"] = p;
        }
        let excluded = self.excluded();
        Ok((Outcome { output: output.path.display().to_string(), manifest_digest, config_digest, layers, excluded }, manifest_descriptor))
    }

    #[expect(clippy::too_many_arguments, reason = "one range's writing state, kept private")]
    fn write_range(
        &self,
        image: &Image,
        planned: &PlannedRange,
        docker: bool,
        new_index: usize,
        target: &mut Target,
        progress: &dyn Progress,
        premerged: Option<PreMerged>,
    ) -> Result<(OutcomeLayer, Value)> {
        let mut merged = None;
        let (digest, size) = match premerged {
            // Merged ahead (platforms of an index, concurrently): its bytes are copied in.
            Some(p) => {
                let location = Location::file(p.file.path());
                let mut file = p.file.reopen().at(|| location.clone())?;
                merged = Some(p.merged);
                target.write_blob(Some((&p.digest, p.size)), BlobKind::Layer, &mut |w| {
                    let mut counting = Counting::new(w, progress, false);
                    io::copy(&mut file, &mut counting).and_then(|_| io::Write::flush(&mut counting)).map(drop).at(|| location.clone())
                })?
            }
            None => target.write_blob(None, BlobKind::Layer, &mut |w| {
                merged = Some(merge_range(image, planned, self.options.level, self.options.threads, w, progress)?);
                w.flush().at(|| Location::file(image.path()))
            })?,
        };
        let merged =
            merged.ok_or_else(|| Error::Output { location: Location::file(image.path()), reason: "merge produced nothing".into() })?;
        let media_type = if docker {
            crate::read::docker_media_type(planned.compression).to_string()
        } else {
            let nondistributable =
                image.layers()[planned.range.start..=planned.range.end].iter().all(|l| l.media_type().contains("nondistributable"));
            let base = oci_layer_media_type(planned.compression);
            if nondistributable {
                base.replace(".layer.v1", ".layer.nondistributable.v1")
            } else {
                base.to_string()
            }
        };
        let descriptor = json!({"mediaType": media_type, "digest": digest.to_string(), "size": size});
        let blob_digest = digest.clone();
        let layer = OutcomeLayer {
            index: new_index,
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

    /// The config with new `rootfs.diff_ids` and history; every other field as it was.
    fn new_config(&self, image: &Image, layers: &[crate::write::OutcomeLayer]) -> Result<Vec<u8>> {
        let mut config = image.config.value.clone();
        let Some(object) = config.as_object_mut() else {
            return Err(Error::invalid(Location::file(image.path()), "image config", "not an object"));
        };
        self.options.edits.apply_to_config(object);
        let diff_ids: Vec<Value> = layers.iter().map(|l| json!(l.diff_id.to_string())).collect();
        let rootfs = object.entry("rootfs").or_insert_with(|| json!({"type": "layers"}));
        rootfs["diff_ids"] = Value::Array(diff_ids);
        let created_override = self.options.source_date_epoch.map(rfc3339);
        if let Some(created) = &created_override {
            object.insert("created".into(), json!(created));
        }
        let old_history: Vec<Value> = object.get("history").and_then(Value::as_array).cloned().unwrap_or_default();
        let paired = image.layers().iter().all(|l| l.history_index().is_some()) && !old_history.is_empty();
        if paired {
            let mut history = Vec::with_capacity(old_history.len() + self.ranges.len());
            for (step_index, step) in old_history.into_iter().enumerate() {
                let layer = image.layers().iter().find(|l| l.history_index() == Some(step_index));
                let range = layer.and_then(|l| self.ranges.iter().find(|r| (r.range.start..=r.range.end).contains(&l.index())));
                match (range, layer) {
                    (Some(planned), Some(layer)) => {
                        if self.options.history == HistoryMode::KeepAsEmpty {
                            let mut step = step;
                            if let Some(s) = step.as_object_mut() {
                                s.insert("empty_layer".into(), json!(true));
                            }
                            history.push(step);
                        }
                        if layer.index() == planned.range.end {
                            history.push(self.merged_step(image, planned, created_override.as_deref()));
                        }
                    }
                    _ => history.push(step),
                }
            }
            object.insert("history".into(), Value::Array(history));
        }
        serde_json::to_vec(&config).map_err(|e| Error::io(Location::file(image.path()), e.into()))
    }

    fn merged_step(&self, image: &Image, planned: &PlannedRange, created: Option<&str>) -> Value {
        let mut step = Map::new();
        let newest = image.layers()[planned.range.start..=planned.range.end]
            .iter()
            .filter_map(|l| l.history_index())
            .filter_map(|h| image.history().get(h))
            .filter_map(|h| h.created.clone())
            .max();
        if let Some(created) = created.map(str::to_string).or(newest) {
            step.insert("created".into(), json!(created));
        }
        step.insert(
            "created_by".into(),
            json!(format!(
                "squash: merged layers {}..{} ({})",
                planned.range.start,
                planned.range.end,
                crate::plan::range::layers(planned.range.len())
            )),
        );
        if let Some(message) = &self.options.message {
            step.insert("comment".into(), json!(message));
        }
        Value::Object(step)
    }
}

fn new_manifest(
    image: &Image,
    docker: bool,
    config_digest: &Digest,
    config_size: u64,
    layers: Vec<Value>,
    edits: &crate::plan::edits::ConfigEdits,
) -> Result<Vec<u8>> {
    let mut manifest = match &image.manifest {
        Some(m) => {
            let mut value = m.value.clone();
            let mut config = value.get("config").cloned().unwrap_or_else(|| json!({}));
            let media_type = config.get("mediaType").and_then(Value::as_str).unwrap_or_default();
            if media_type != OCI_CONFIG && media_type != DOCKER_CONFIG {
                config["mediaType"] = json!(if docker { DOCKER_CONFIG } else { OCI_CONFIG });
            }
            config["digest"] = json!(config_digest.to_string());
            config["size"] = json!(config_size);
            value["config"] = config;
            value["layers"] = Value::Array(layers);
            value
        }
        None if docker => json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": DOCKER_CONFIG, "digest": config_digest.to_string(), "size": config_size},
            "layers": layers,
        }),
        None => json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest.to_string(), "size": config_size},
            "layers": layers,
        }),
    };
    if let Some(object) = manifest.as_object_mut() {
        edits.apply_to_manifest(object);
    }
    serde_json::to_vec(&manifest).map_err(|e| Error::io(Location::file(image.path()), e.into()))
}

/// The tag carried over from the input when none is given.
fn default_tag(image: &Image, format: OutputFormat) -> Option<String> {
    let name = image.name()?;
    match format {
        OutputFormat::DockerArchive => (name.contains(':') && !name.starts_with('@')).then(|| name.to_string()),
        _ => {
            if image.format() == InputFormat::DockerArchive || name.contains(':') {
                name.rsplit_once(':').map(|(_, t)| t.to_string()).or_else(|| Some(name.to_string())).filter(|t| !t.starts_with('@'))
            } else {
                Some(name.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
