//! The documents of a written image: the config (new `rootfs.diff_ids`, the history of squashed
//! steps, the edits asked for, every other field as it was), the manifest, and the tag an output
//! carries when none is given.

use serde_json::{json, Map, Value};

use super::outcome::OutcomeLayer;
use crate::digest::Digest;
use crate::error::{Error, Location, Result};
use crate::plan::edits::ConfigEdits;
use crate::plan::options::HistoryMode;
use crate::plan::range::{layers, LayerRange};
use crate::plan::squash_plan::{PlannedRange, SquashPlan};
use crate::read::image::Image;
use crate::read::media::{DOCKER_CONFIG, DOCKER_MANIFEST, OCI_CONFIG, OCI_MANIFEST};

/// Formats seconds since the epoch as RFC 3339 in UTC.
pub(crate) fn rfc3339(epoch: i64) -> String {
    crate::units::date_time(epoch, 'T', "Z")
}

impl SquashPlan {
    /// The config with new `rootfs.diff_ids` and history; every other field as it was.
    pub(super) fn new_config(&self, image: &Image, layers: &[OutcomeLayer]) -> Result<Vec<u8>> {
        let mut config = image.config.value.clone();
        let Some(object) = config.as_object_mut() else {
            return Err(Error::invalid(
                Location::file(image.path()),
                "image config",
                "not an object",
            ));
        };
        self.options.edits.apply_to_config(object);
        let diff_ids: Vec<Value> = layers.iter().map(|l| json!(l.diff_id.to_string())).collect();
        let rootfs = object.entry("rootfs").or_insert_with(|| json!({"type": "layers"}));
        rootfs["diff_ids"] = Value::Array(diff_ids);
        let created_override = self.options.source_date_epoch.map(rfc3339);
        if let Some(created) = &created_override {
            object.insert("created".into(), json!(created));
        }
        let old_history: Vec<Value> =
            object.get("history").and_then(Value::as_array).cloned().unwrap_or_default();
        let paired =
            image.layers().iter().all(|l| l.history_index().is_some()) && !old_history.is_empty();
        if paired && self.options.history == HistoryMode::Drop {
            let history = self.folded_history(image, old_history, created_override.as_deref());
            object.insert("history".into(), Value::Array(history));
        } else if paired {
            let mut history = Vec::with_capacity(old_history.len() + self.ranges.len());
            for (step_index, step) in old_history.into_iter().enumerate() {
                let layer = image.layers().iter().find(|l| l.history_index() == Some(step_index));
                let range = layer.and_then(|l| {
                    self.ranges.iter().find(|r| (r.range.start..=r.range.end).contains(&l.index()))
                });
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
                            history.push(self.merged_step(
                                image,
                                planned,
                                created_override.as_deref(),
                            ));
                        }
                    }
                    _ => history.push(step),
                }
            }
            object.insert("history".into(), Value::Array(history));
        }
        serde_json::to_vec(&config).map_err(|e| Error::io(Location::file(image.path()), e.into()))
    }

    /// The history with [`HistoryMode::Drop`]: the steps each range owns (from its first step,
    /// or its first layer's, up to the step before the next kept layer, or the end) fold into
    /// one step: the merged layer's, the kept layer's for a one-layer range kept as it is, or
    /// an empty step for steps that made no layer (`-f N` over `ENV`, `CMD`, `LABEL` steps), as
    /// docker-squash writes them.
    fn folded_history(
        &self,
        image: &Image,
        old_history: Vec<Value>,
        created: Option<&str>,
    ) -> Vec<Value> {
        let last = old_history.len().saturating_sub(1);
        let step_of = |layer: usize| image.layers().get(layer).and_then(|l| l.history_index());
        // The steps a range of layers owns, and the step that replaces them.
        let owned = |range: &LayerRange| -> Option<(usize, usize)> {
            let first = range.first_step.or_else(|| step_of(range.start))?;
            let end = match step_of(range.end + 1) {
                Some(next) => next.checked_sub(1)?,
                None => last,
            };
            Some((first.min(end), end))
        };
        let mut folds: Vec<(usize, usize, Value)> = Vec::new();
        for planned in &self.ranges {
            if let Some((first, end)) = owned(&planned.range) {
                folds.push((first, end, self.merged_step(image, planned, created)));
            }
        }
        for range in &self.unchanged {
            if let Some((first, end)) = owned(range) {
                let mut step = old_history.get(step_of(range.start).unwrap_or(first)).cloned();
                if let Some(Value::Object(s)) = step.as_mut() {
                    s.insert(
                        "created_by".into(),
                        json!(format!(
                            "squash: layer {} kept as it was, steps {first}..{end} folded",
                            range.start
                        )),
                    );
                    if let Some(message) = &self.options.message {
                        s.insert("comment".into(), json!(message));
                    }
                }
                folds.push((first, end, step.unwrap_or_else(|| json!({}))));
            }
        }
        if let Some((first, end)) = self.folded_steps {
            let mut step = Map::new();
            if let Some(created) = created.map(str::to_string).or_else(|| {
                image.history()[first..=end.min(last)]
                    .iter()
                    .filter_map(|h| h.created.clone())
                    .max()
            }) {
                step.insert("created".into(), json!(created));
            }
            step.insert(
                "created_by".into(),
                json!(format!("squash: steps {first}..{end} folded (no filesystem layer)")),
            );
            if let Some(message) = &self.options.message {
                step.insert("comment".into(), json!(message));
            }
            step.insert("empty_layer".into(), json!(true));
            folds.push((first, end, Value::Object(step)));
        }
        let mut history = Vec::with_capacity(old_history.len());
        for (index, step) in old_history.into_iter().enumerate() {
            match folds.iter_mut().find(|(first, end, _)| (*first..=*end).contains(&index)) {
                Some((_, end, replacement)) if index == *end => {
                    history.push(std::mem::take(replacement));
                }
                Some(_) => {}
                None => history.push(step),
            }
        }
        history
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
                layers(planned.range.len())
            )),
        );
        if let Some(message) = &self.options.message {
            step.insert("comment".into(), json!(message));
        }
        Value::Object(step)
    }
}

/// The manifest of the new image: the input's, with the new config and layers (every other
/// field as it was), or a new one for an input that has none (a `docker save` tarball).
pub(super) fn new_manifest(
    image: &Image,
    docker: bool,
    config_digest: &Digest,
    config_size: u64,
    layers: Vec<Value>,
    edits: &ConfigEdits,
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
            "mediaType": DOCKER_MANIFEST,
            "config": {
                "mediaType": DOCKER_CONFIG,
                "digest": config_digest.to_string(),
                "size": config_size
            },
            "layers": layers,
        }),
        None => json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "digest": config_digest.to_string(),
                "size": config_size
            },
            "layers": layers,
        }),
    };
    if let Some(object) = manifest.as_object_mut() {
        edits.apply_to_manifest(object);
    }
    serde_json::to_vec(&manifest).map_err(|e| Error::io(Location::file(image.path()), e.into()))
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
