//! `squash report IMAGE…`: what each layer wastes and why, what a squash would reclaim, the
//! clutter that stays visible, and gates for CI; in text, Markdown, JSON, an SVG chart or one
//! HTML page; several images summed as a registry stores them.

use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use squash::document::{IndexReportDocument, MultiReportDocument, ReportDocument};
use squash::Audit;

use super::{json_line, log_read};
use crate::args::{ImageArgs, ReportArgs, Verbosity};
use crate::exit::{note, out};
use crate::{input, options, render};

pub fn run(args: ReportArgs, verbosity: Verbosity) -> Result<ExitCode> {
    let started = std::time::Instant::now();
    #[cfg(not(feature = "svg"))]
    if args.svg.is_some() || args.html.is_some() {
        bail!("--svg and --html need squash built with its `svg` cargo feature");
    }
    let format = match (args.json, args.format.as_deref()) {
        (true, Some(f)) if f != "json" => {
            bail!("--json and --format {f} ask for different outputs")
        }
        (true, _) => "json",
        (false, Some(f)) => f,
        (false, None) => "text",
    };
    let mut inputs = args.images.clone();
    if let Some(file) = &args.from_file {
        // A fleet's `IMAGE OUTPUT` lines are reported by their image.
        inputs.extend(input::list_entries(file)?.into_iter().filter_map(|e| e.into_iter().next()));
    }
    if inputs.is_empty() {
        bail!("no image given (the --from-file list is empty)");
    }
    if inputs.iter().filter(|i| input::is_stream(Some(i))).count() > 1 {
        bail!("standard input can be read only once: give `-` at most once");
    }
    options::selector(&args.select)?;
    let bases = input::bases(&args.select, &args.registry)?;
    let gates = options::gates(&args, verbosity)?;
    let template_how = options::report_options(&args);
    let template = options::report_squash_options(&args)?;
    // One report per image (every image of an index, without --platform), one input after
    // the other; gates apply to each.
    let many = inputs.len() > 1;
    let mut audit = Audit::new();
    let mut all = Vec::new();
    let mut single_json = None;
    let mut text = String::new();
    let mut failed = Vec::new();
    for (n, reference) in inputs.iter().enumerate() {
        // (The input's number names its chart when there are several.)
        #[cfg(not(feature = "svg"))]
        let _ = n;
        let image_args = ImageArgs {
            image: Some(reference.clone()),
            platform: args.platform.clone(),
            tmp_dir: args.tmp_dir.clone(),
            registry: args.registry.clone(),
            from_file: None,
            index: None,
        };
        let scratch = input::scratch_for(&image_args, false)?;
        let (index, images) =
            input::images_to_read(&image_args, scratch.as_ref().map(|d| d.path()))
                .with_context(|| format!("reading `{reference}`"))?;
        let mut documents = Vec::new();
        for image in &images {
            let mut how = template_how.clone().with_input(reference.clone());
            if let (Some(_), Some(platform)) = (&index, image.platform()) {
                how = how.with_platform(platform.to_string());
            }
            let mut squash_options = template.clone();
            squash_options.bases = bases.iter().filter_map(|b| b.for_platform_of(image)).collect();
            let progress = render::ProgressLine::on_stderr(format == "json", verbosity);
            let context = options::context(args.threads, &progress, args.tmp_dir.as_deref());
            let report = image.report_in(&squash_options, &how, &context)?;
            progress.clear();
            log_read(verbosity, image, started);
            audit.add(image, &report);
            let platform =
                image.platform().map(ToString::to_string).unwrap_or_else(|| "(no platform)".into());
            let mut label = Vec::new();
            if many {
                label.push(reference.clone());
            }
            if index.is_some() {
                label.push(platform.clone());
            }
            #[cfg(feature = "svg")]
            if let Some(path) = &args.svg {
                let mut suffix = Vec::new();
                if many {
                    suffix.push((n + 1).to_string());
                }
                if index.is_some() {
                    suffix.push(platform.clone());
                }
                let path = if suffix.is_empty() {
                    path.clone()
                } else {
                    svg_path_for(path, &suffix.join("-"))
                };
                std::fs::write(&path, squash::present::report_svg(&report))
                    .with_context(|| format!("writing `{}`", path.display()))?;
            }
            let results = report.gate_results(&gates);
            let prefix =
                if label.is_empty() { String::new() } else { format!("{}: ", label.join(" ")) };
            failed.extend(results.iter().filter(|g| !g.passed).map(|g| format!("{prefix}{g}")));
            if !label.is_empty() {
                text.push_str(&format!("== {}\n", label.join(" ")));
            }
            text.push_str(&render::report(&report));
            if !label.is_empty() {
                text.push('\n');
            }
            documents.push(ReportDocument::new(image, report, results));
        }
        if !many && format == "json" {
            single_json = Some(match &index {
                Some(index) => json_line(&IndexReportDocument::new(index, documents.clone()))?,
                None => json_line(&documents[0])?,
            });
        }
        all.extend(documents);
    }
    let summary = many.then(|| audit.summary());
    #[cfg(feature = "svg")]
    if let Some(path) = &args.html {
        std::fs::write(path, squash::present::report_html(&all, summary.as_ref(), args.top))
            .with_context(|| format!("writing `{}`", path.display()))?;
    }
    match format {
        "json" => match single_json {
            Some(json) => out(&json)?,
            None => out(&json_line(&MultiReportDocument::new(
                all,
                summary.unwrap_or_else(|| audit.summary()),
            ))?)?,
        },
        "markdown" => out(&squash::present::report_markdown(&all, summary.as_ref(), args.top))?,
        // -q with a page or a chart asked for: those are the output, not the text.
        _ if verbosity.quiet && (args.html.is_some() || args.svg.is_some()) => {}
        _ => {
            if let Some(summary) = &summary {
                text.push_str(&render::audit(summary));
            }
            out(&text)?
        }
    }
    for f in &failed {
        note(&format!("squash: gate failed: {f}"));
    }
    Ok(if failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

#[cfg(feature = "svg")]
/// `chart.svg` for platform `linux/arm64`: `chart-linux-arm64.svg`.
fn svg_path_for(path: &std::path::Path, platform: &str) -> std::path::PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".into());
    let ext = path.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
    path.with_file_name(format!("{stem}-{}{ext}", platform.replace('/', "-")))
}
