//! `squash inspect IMAGE`: an image's layers (digests, sizes, compression, the history step of
//! each), every layer decoded and every digest checked on the way; every image of an index.

use std::process::ExitCode;

use anyhow::Result;
use squash::document::{IndexInspectDocument, InspectDocument, RunSettings};
use squash::present::human;
use squash::Image;

use super::{json_line, log_read};
use crate::args::{ImageArgs, Verbosity};
use crate::exit::out;
use crate::{input, render};

pub fn run(
    args: &ImageArgs,
    as_json: bool,
    verify: bool,
    verbosity: Verbosity,
) -> Result<ExitCode> {
    let started = std::time::Instant::now();
    // `--from-file LIST --index N`: the image of that line (its output ignored).
    let mut listed = args.clone();
    input::from_list(&mut listed)?;
    let args = &listed;
    let scratch = input::scratch_for(args, false)?;
    let (index, images) = input::images_to_read(args, scratch.as_ref().map(|d| d.path()))?;
    let Some(index) = index else {
        let image = &images[0];
        // Indexing decodes every layer: each blob's size and sha256 and each diff_id are checked.
        let indexes = image.index_layers(0..image.layers().len())?;
        log_read(verbosity, image, started);
        if as_json {
            out(&json_line(&InspectDocument::new(image, &indexes, verify))?)?;
        } else {
            out(&inspect_text(image, &indexes, verify))?;
        }
        return Ok(ExitCode::SUCCESS);
    };
    let mut documents = Vec::new();
    let mut text = format!(
        "image index: {} ({}){}, {} images\nindex:    {}\n",
        index.source().display(),
        index.format(),
        index.name().map(|n| format!(", {n}")).unwrap_or_default(),
        images.len(),
        index.digest()
    );
    for image in &images {
        let indexes = image.index_layers(0..image.layers().len())?;
        log_read(verbosity, image, started);
        if as_json {
            documents.push(InspectDocument::new(image, &indexes, verify));
        } else {
            text.push('\n');
            text.push_str(&inspect_text(image, &indexes, verify));
        }
    }
    if as_json {
        out(&json_line(&IndexInspectDocument::new(&index, documents))?)?;
    } else {
        out(&text)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `inspect`'s text for one image whose layers `indexes` describe.
fn inspect_text(image: &Image, indexes: &[squash::LayerIndex], verify: bool) -> String {
    let mut text = format!(
        "image: {} ({}){}\n",
        image.source().display(),
        image.format(),
        image.name().map(|n| format!(", {n}")).unwrap_or_default()
    );
    if let Some(p) = image.platform() {
        let others: Vec<String> = image.other_platforms().iter().map(ToString::to_string).collect();
        let others = if others.is_empty() {
            String::new()
        } else {
            format!(" (the index also holds {})", others.join(", "))
        };
        text.push_str(&format!("platform: {p}{others}\n"));
    }
    if let Some(d) = image.manifest_digest() {
        text.push_str(&format!("manifest: {d}\n"));
    }
    text.push_str(&format!("config:   {}\n", image.config_digest()));
    text.push_str(&settings_text(&RunSettings::of(image)));
    let stored: u64 = image.layers().iter().map(|l| l.size()).fold(0, u64::saturating_add);
    let uncompressed: u64 = indexes.iter().map(|i| i.uncompressed_size).sum();
    text.push_str(&format!(
        "size:     {} stored, {} uncompressed, in {}\n",
        human(stored),
        human(uncompressed),
        render::count(image.layers().len(), "layer", "layers")
    ));
    let mut rows = vec![[
        "#",
        "DIGEST",
        "DIFF_ID",
        "SIZE",
        "UNCOMPRESSED",
        "COMPRESSION",
        "CREATED",
        "CREATED BY",
    ]
    .map(String::from)
    .to_vec()];
    let mut printed_steps = 0usize;
    for (layer, index) in image.layers().iter().zip(indexes) {
        if let Some(step) = layer.history_index() {
            for empty in &image.history()[printed_steps..step] {
                rows.push(empty_step_row(empty));
            }
            printed_steps = step + 1;
        }
        let step = layer.history_index().and_then(|h| image.history().get(h));
        rows.push(vec![
            layer.index().to_string(),
            index.blob_digest.short(),
            layer.diff_id().short(),
            human(layer.size()),
            human(index.uncompressed_size),
            format!(
                "{} ({})",
                layer.compression(),
                layer.media_type().rsplit('.').next().unwrap_or_default()
            ),
            step.and_then(|s| s.created.clone()).unwrap_or_default(),
            step_text(step),
        ]);
    }
    for empty in image.history().iter().skip(printed_steps) {
        rows.push(empty_step_row(empty));
    }
    text.push_str(&render::table(&rows));
    if verify {
        text.push_str(&format!(
            "verified: {}the config's sha256; {n} layer blobs (size and sha256); {n} diff_ids \
                (every layer decoded)\n",
            if image.manifest_digest().is_some() { "the manifest's size and sha256; " } else { "" },
            n = image.layers().len()
        ));
    }
    text
}

/// An `inspect` row for a history step that made no layer.
fn empty_step_row(step: &squash::HistoryStep) -> Vec<String> {
    vec![
        "-".to_string(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        "(no layer)".into(),
        step.created.clone().unwrap_or_default(),
        step_text(Some(step)),
    ]
}

/// A step's `created_by` as every row prints it: as the Dockerfile said it (`step_text` of
/// `squash::present::story`), on one line, cut at 70 characters.
fn step_text(step: Option<&squash::HistoryStep>) -> String {
    let created_by = step.and_then(|s| s.created_by.as_deref());
    render::truncated(&squash::present::story::layer_step(created_by), 70)
}

/// What the config says a container runs with, one field a line; absent fields left out.
fn settings_text(s: &RunSettings) -> String {
    let mut text = String::new();
    let mut line = |name: &str, value: String| {
        let name = if name.is_empty() { String::new() } else { format!("{name}:") };
        text.push_str(&format!("{name:<10}{value}\n"));
    };
    let json = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_default();
    if let Some(created) = &s.created {
        line("created", created.clone());
    }
    line("user", s.user.clone().unwrap_or_else(|| "(root)".into()));
    if let Some(dir) = &s.working_dir {
        line("workdir", dir.clone());
    }
    if let Some(entrypoint) = &s.entrypoint {
        line("entrypoint", json(entrypoint));
    }
    if let Some(cmd) = &s.cmd {
        line("cmd", json(cmd));
    }
    for (n, env) in s.env.iter().enumerate() {
        line(if n == 0 { "env" } else { "" }, env.clone());
    }
    for (n, (key, value)) in s.labels.iter().enumerate() {
        line(if n == 0 { "labels" } else { "" }, format!("{key}={value}"));
    }
    if !s.exposed_ports.is_empty() {
        line("ports", s.exposed_ports.join(", "));
    }
    if !s.volumes.is_empty() {
        line("volumes", s.volumes.join(", "));
    }
    if let Some(signal) = &s.stop_signal {
        line("stopsignal", signal.clone());
    }
    text
}
