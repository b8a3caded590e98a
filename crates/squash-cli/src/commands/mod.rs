//! One function per command: map arguments to library options, call, render.

mod demo;

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;
use squash::{
    human, parse_layer_range, parse_size, report_svg, Compression, Gates, HistoryMode, Image, InputFormat, LayerSelector, OpenOptions,
    Output, OutputFormat, Platform, SquashOptions,
};

use crate::args::{Cli, Command, ImageArgs, SelectArgs, SquashArgs};
use crate::render;

pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Some(Command::Inspect(args)) => inspect(&args.image, args.json),
        Some(Command::Report(args)) => report(args),
        Some(Command::Demo(args)) => demo::run(args.keep),
        None => squash(cli.squash),
    }
}

fn open(args: &ImageArgs) -> Result<Image> {
    let reference = args.image.as_deref().ok_or_else(|| anyhow!("no image given (see --help)"))?;
    let mut options = OpenOptions::default();
    if let Some(p) = &args.platform {
        options = options.with_platform(p.parse::<Platform>().map_err(|e| anyhow!(e))?);
    }
    Ok(Image::open_with(reference, &options)?)
}

fn selector(args: &SelectArgs) -> Result<(LayerSelector, Vec<Image>)> {
    let selector = match (&args.from_layer, args.layers.is_empty()) {
        (Some(_), false) => bail!("use either --from-layer or --layers, not both"),
        (Some(value), true) => value.parse::<LayerSelector>().map_err(|e| anyhow!("--from-layer {e}"))?,
        (None, false) => LayerSelector::Ranges(
            args.layers.iter().map(|r| parse_layer_range(r).map_err(|e| anyhow!("--layers {e}"))).collect::<Result<_>>()?,
        ),
        (None, true) => LayerSelector::Nothing,
    };
    let bases =
        args.base.iter().map(|b| Image::open(b).with_context(|| format!("opening base image `{b}`"))).collect::<Result<Vec<_>>>()?;
    Ok((selector, bases))
}

fn squash(args: SquashArgs) -> Result<ExitCode> {
    let image = open(&args.image)?;
    let (selector, bases) = selector(&args.select)?;
    let mut options = SquashOptions::default().with_selector(selector);
    options.bases = bases;
    if let Some(c) = &args.compression {
        options = options.with_compression(c.parse::<Compression>().map_err(|e| anyhow!(e))?);
    }
    if let Some(level) = args.level {
        options = options.with_level(level);
    }
    options = options.with_threads(args.threads.unwrap_or(0));
    if let Some(message) = &args.message {
        options = options.with_message(message.clone());
    }
    if args.drop_history {
        options = options.with_history(HistoryMode::Drop);
    }
    if let Ok(epoch) = std::env::var("SOURCE_DATE_EPOCH") {
        let epoch: i64 = epoch.trim().parse().with_context(|| format!("SOURCE_DATE_EPOCH `{epoch}` is not a number of seconds"))?;
        options = options.with_source_date_epoch(epoch);
    }
    let default_format = match image.format() {
        InputFormat::DockerArchive => OutputFormat::DockerArchive,
        InputFormat::OciArchive => OutputFormat::OciArchive,
        InputFormat::OciLayout | InputFormat::Dir => OutputFormat::OciLayout,
    };
    let default_format = match &args.format {
        Some(f) => f.parse::<OutputFormat>().map_err(|e| anyhow!(e))?,
        None => default_format,
    };
    let output = match &args.output {
        Some(o) => {
            let mut output = Output::parse(o, default_format).map_err(|e| anyhow!(e))?;
            if args.tag.is_some() {
                output.tag = args.tag.clone();
            }
            Some(output)
        }
        None if args.dry_run => None,
        None => bail!("no output given: use -o OUT (or --dry-run)"),
    };
    let plan = image.plan(&options)?;
    if !args.quiet && !args.json {
        eprint!("{}", render::plan(&image, &plan));
    }
    let Some(output) = output else {
        if args.json {
            let ranges: Vec<_> = plan
                .ranges
                .iter()
                .map(|r| json!({"range": r.range, "uncompressed_before": r.uncompressed_size_before(), "compressed_before": r.compressed_size_before(), "uncompressed_after": r.uncompressed_size(), "entries_after": r.entries_after()}))
                .collect();
            println!("{}", serde_json::to_string_pretty(&json!({"dry_run": true, "ranges": ranges}))?);
        }
        return Ok(ExitCode::SUCCESS);
    };
    // A progress line only for a person watching a terminal.
    let outcome = if !args.quiet && !args.json && std::io::stderr().is_terminal() {
        let line = render::ProgressLine::new();
        let outcome = plan.execute_with_progress(&image, &output, &line);
        line.finish();
        outcome?
    } else {
        plan.execute(&image, &output)?
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else if !args.quiet {
        print!("{}", render::outcome(&image, &plan, &outcome));
    }
    Ok(ExitCode::SUCCESS)
}

fn inspect(args: &ImageArgs, as_json: bool) -> Result<ExitCode> {
    let image = open(args)?;
    let indexes = image.index_layers(0..image.layers().len())?;
    if as_json {
        let layers: Vec<_> = image
            .layers()
            .iter()
            .zip(&indexes)
            .map(|(l, i)| {
                json!({
                    "index": l.index(),
                    "digest": i.blob_digest.to_string(),
                    "diff_id": l.diff_id().to_string(),
                    "size": l.size(),
                    "uncompressed_size": i.uncompressed_size,
                    "media_type": l.media_type(),
                    "compression": l.compression(),
                    "entries": i.entries.len(),
                    "history": l.history_index(),
                })
            })
            .collect();
        let value = json!({
            "path": image.path().display().to_string(),
            "format": image.format(),
            "name": image.name(),
            "platform": image.platform().map(|p| p.to_string()),
            "manifest_digest": image.manifest_digest().map(|d| d.to_string()),
            "config_digest": image.config_digest().to_string(),
            "layers": layers,
            "history": image.history(),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("image: {} ({}){}", image.path().display(), image.format(), image.name().map(|n| format!(", {n}")).unwrap_or_default());
    if let Some(p) = image.platform() {
        println!("platform: {p}");
    }
    if let Some(d) = image.manifest_digest() {
        println!("manifest: {d}");
    }
    println!("config:   {}", image.config_digest());
    let mut rows = vec![["#", "DIGEST", "DIFF_ID", "SIZE", "UNCOMPRESSED", "COMPRESSION", "CREATED BY"].map(String::from).to_vec()];
    let mut printed_steps = 0usize;
    for (layer, index) in image.layers().iter().zip(&indexes) {
        if let Some(step) = layer.history_index() {
            for empty in &image.history()[printed_steps..step] {
                rows.push(empty_step_row(empty));
            }
            printed_steps = step + 1;
        }
        let created: String =
            layer.history_index().and_then(|h| image.history().get(h)).and_then(|h| h.created_by.clone()).unwrap_or_default();
        rows.push(vec![
            layer.index().to_string(),
            index.blob_digest.short(),
            layer.diff_id().short(),
            human(layer.size()),
            human(index.uncompressed_size),
            format!("{} ({})", layer.compression(), layer.media_type().rsplit('.').next().unwrap_or_default()),
            created.chars().take(70).collect(),
        ]);
    }
    for empty in image.history().iter().skip(printed_steps) {
        rows.push(empty_step_row(empty));
    }
    print!("{}", render::table(&rows));
    Ok(ExitCode::SUCCESS)
}

/// An `inspect` row for a history step that made no layer.
fn empty_step_row(step: &squash::HistoryStep) -> Vec<String> {
    let mut row = vec!["-".to_string(), String::new(), String::new(), String::new(), String::new(), "(no layer)".into()];
    row.push(step.created_by.clone().unwrap_or_default());
    row
}

fn report(args: crate::args::ReportArgs) -> Result<ExitCode> {
    let image = open(&args.image)?;
    let (selector, bases) = selector(&args.select)?;
    let mut options = SquashOptions::default().with_selector(selector);
    options.bases = bases;
    let report = image.report(&options, args.top)?;
    if let Some(path) = &args.svg {
        std::fs::write(path, report_svg(&report)).with_context(|| format!("writing `{}`", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render::report(&report));
    }
    let gates = Gates {
        max_wasted_bytes: args
            .fail_if_wasted_over
            .as_deref()
            .map(parse_size)
            .transpose()
            .map_err(|e| anyhow!("--fail-if-wasted-over {e}"))?,
        max_wasted_percent: args.fail_if_wasted_percent_over,
        min_efficiency: args.min_efficiency,
    };
    let failed = report.failed_gates(&gates);
    for f in &failed {
        eprintln!("squash: gate failed: {f}");
    }
    Ok(if failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
