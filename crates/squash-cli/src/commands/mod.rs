//! One function per command: map arguments to library options, call, render.

mod demo;

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use squash::document::{
    DiffDocument, IndexInspectDocument, IndexOutcomeDocument, IndexPlanDocument, IndexReportDocument, InspectDocument, MultiReportDocument,
    OutcomeDocument, PlanDocument, ReportDocument,
};
use squash::present::{human, parse_size};
use squash::{
    diff_trees, parse_command, parse_layer_range, Attribute, Audit, ClutterRule, Compression, ConfigEdits, Gates, HistoryMode, Image,
    ImageIndex, IndexOptions, InputFormat, KeyEdit, LayerSelector, OpenOptions, Opened, Output, OutputFormat, Platform, ReportOptions,
    SquashOptions,
};

use crate::args::{Cli, Command, DiffArgs, ImageArgs, SelectArgs, SquashArgs, Verbosity};
use crate::exit::{self, note, out};
use crate::render;

pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Some(Command::Inspect(args)) => inspect(&args.image, args.json, args.verify, cli.verbosity),
        Some(Command::Report(args)) => report(*args, cli.verbosity),
        Some(Command::Diff(args)) => diff(&args),
        Some(Command::Demo(args)) => demo::run(args.keep),
        Some(Command::Completions(args)) => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(args.shell, &mut command, "squash", &mut script);
            out(&String::from_utf8_lossy(&script))?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Manpage) => {
            let mut page = Vec::new();
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).render(&mut page)?;
            out(&String::from_utf8_lossy(&page))?;
            Ok(ExitCode::SUCCESS)
        }
        None => squash(cli.squash, cli.verbosity),
    }
}

/// Whether the command line asks for JSON, errors included.
pub fn wants_json(cli: &Cli) -> bool {
    match &cli.command {
        Some(Command::Inspect(args)) => args.json,
        Some(Command::Report(args)) => args.json || args.format.as_deref() == Some("json"),
        Some(Command::Diff(args)) => args.json,
        Some(Command::Demo(_)) | Some(Command::Completions(_)) | Some(Command::Manpage) => false,
        None => cli.squash.json,
    }
}

/// `squash diff A B`: exit 0 when the filesystems are equal, 1 when they differ.
fn diff(args: &DiffArgs) -> Result<ExitCode> {
    let ignore: Vec<Attribute> =
        args.ignore.iter().map(|a| a.trim().parse::<Attribute>().map_err(|e| anyhow!("--ignore {e}"))).collect::<Result<_>>()?;
    let open = |reference: &str| -> Result<Image> {
        let mut options = OpenOptions::default().with_cancel(exit::cancelled);
        if let Some(p) = &args.platform {
            options = options.with_platform(p.parse::<Platform>().map_err(|e| anyhow!("--platform {e}"))?);
        }
        if let Some(dir) = &args.tmp_dir {
            options = options.with_tmp_dir(dir);
        }
        Image::open_with(reference, &options).with_context(|| format!("opening `{reference}`"))
    };
    let (a, b) = (open(&args.a)?, open(&args.b)?);
    let threads = args.threads.unwrap_or(0);
    let diff = diff_trees(&a.tree(threads)?, &b.tree(threads)?, &ignore);
    let equal = diff.is_empty();
    if args.json {
        out(&json_line(&DiffDocument::new(&a, &b, ignore, diff))?)?;
    } else {
        out(&render::diff(&diff, &ignore))?;
    }
    Ok(if equal { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// A JSON document as printed: pretty, one trailing newline.
fn json_line(value: &impl serde::Serialize) -> Result<String> {
    Ok(format!("{}\n", serde_json::to_string_pretty(value)?))
}

/// The `--platform`s given.
fn platforms(args: &ImageArgs) -> Result<Vec<Platform>> {
    args.platform.iter().map(|p| p.parse::<Platform>().map_err(|e| anyhow!(e))).collect()
}

/// The one `--platform` a command that reads one image takes, if given.
fn one_platform(args: &ImageArgs, what: &str) -> Result<Option<Platform>> {
    let mut platforms = platforms(args)?;
    if platforms.len() > 1 {
        bail!("{what} takes one --platform, not {}", platforms.len());
    }
    Ok(platforms.pop())
}

/// Opens the image; one on standard input or a pipe is spooled into `scratch`.
fn open(args: &ImageArgs, scratch: Option<&std::path::Path>) -> Result<Image> {
    let reference = args.image.as_deref().ok_or_else(|| anyhow!("no image given (see --help)"))?;
    let mut options = OpenOptions::default().with_cancel(exit::cancelled);
    if let Some(p) = one_platform(args, "this command")? {
        options = options.with_platform(p);
    }
    if let Some(dir) = scratch {
        options = options.with_tmp_dir(dir);
    }
    // A signal meanwhile ends the process at once: the spool is in the scratch directory, which
    // goes with it.
    Ok(Image::open_with(reference, &options)?)
}

/// Opens the image or, when the reference names one, the whole image index.
fn open_any(args: &ImageArgs, scratch: Option<&std::path::Path>) -> Result<Opened> {
    let reference = args.image.as_deref().ok_or_else(|| anyhow!("no image given (see --help)"))?;
    let mut options = OpenOptions::default().with_cancel(exit::cancelled);
    if let Some(dir) = scratch {
        options = options.with_tmp_dir(dir);
    }
    Ok(Opened::open_with(reference, &options)?)
}

/// The `--base` images, each an image or an index (the image of each platform is taken from
/// it).
fn open_bases(args: &SelectArgs) -> Result<Vec<Opened>> {
    args.base.iter().map(|b| Opened::open_with(b, &OpenOptions::default()).with_context(|| format!("opening base image `{b}`"))).collect()
}

/// Whether `reference` names standard input or a pipe, which are spooled.
fn is_stream(reference: Option<&str>) -> bool {
    reference.and_then(|r| r.parse::<squash::ImageReference>().ok()).is_some_and(|r| r.is_stream())
}

/// The scratch directory a command needs when it reads or writes a stream.
fn scratch_for(args: &ImageArgs, writes_stream: bool) -> Result<Option<tempfile::TempDir>> {
    if writes_stream || is_stream(args.image.as_deref()) {
        return exit::scratch(args.tmp_dir.as_deref()).map(Some);
    }
    Ok(None)
}

fn selector(args: &SelectArgs) -> Result<(LayerSelector, Vec<Image>)> {
    let selector = selector_only(args)?;
    let bases =
        args.base.iter().map(|b| Image::open(b).with_context(|| format!("opening base image `{b}`"))).collect::<Result<Vec<_>>>()?;
    Ok((selector, bases))
}

/// The `--exclude` patterns, those of `--exclude-from` files after them.
fn excludes(args: &SelectArgs) -> Result<Vec<String>> {
    let mut patterns = args.exclude.clone();
    for file in &args.exclude_from {
        let text = std::fs::read_to_string(file).with_context(|| format!("--exclude-from `{}`", file.display()))?;
        patterns.extend(text.lines().map(str::to_string));
    }
    Ok(patterns)
}

fn selector_only(args: &SelectArgs) -> Result<LayerSelector> {
    let selector = match (&args.from_layer, args.layers.is_empty()) {
        (Some(_), false) => bail!("use either --from-layer or --layers, not both"),
        (Some(value), true) => value.parse::<LayerSelector>().map_err(|e| anyhow!("--from-layer {e}"))?,
        (None, false) => LayerSelector::Ranges(
            args.layers.iter().map(|r| parse_layer_range(r).map_err(|e| anyhow!("--layers {e}"))).collect::<Result<_>>()?,
        ),
        (None, true) if args.all => LayerSelector::All,
        (None, true) => LayerSelector::Nothing,
    };
    Ok(selector)
}

fn squash(args: SquashArgs, verbosity: Verbosity) -> Result<ExitCode> {
    // The output reference is checked before the image is read: a usage error costs nothing.
    let format = args.format.as_deref().map(|f| f.parse::<OutputFormat>().map_err(|e| anyhow!(e))).transpose()?;
    let stream = args.output.as_deref().map(|o| stream_spec(o, format, args.tag.as_deref())).transpose()?.flatten();
    let output_spec = match (&stream, args.output.as_deref()) {
        (None, Some(o)) => Some(output_spec(o, format, args.tag.as_deref())?),
        _ => None,
    };
    if output_spec.is_none() && stream.is_none() && !args.dry_run {
        bail!("no output given: use -o OUT (or --dry-run)");
    }
    if args.verify && !args.dry_run {
        if stream.is_some() {
            bail!("--verify reads the written image back, and a stream cannot be read back: write to a file or an OCI layout");
        }
        if let Some(path) = output_spec.as_ref().and_then(|spec| Output::parse(&spec.raw, OutputFormat::OciLayout).ok()).map(|o| o.path) {
            if path.exists() {
                bail!(
                    "--verify removes the output if it differs, so it needs an output that does not exist yet; `{}` exists",
                    path.display()
                );
            }
        }
    }
    if stream.is_some() && !args.dry_run && std::io::stdout().is_terminal() {
        bail!("-o -: standard output is a terminal; redirect it (`> app.tar`) or pipe it (`| docker load`)");
    }
    let scratch = scratch_for(&args.image, stream.is_some())?;
    let scratch_path = scratch.as_ref().map(|d| d.path().to_path_buf());
    let platforms = platforms(&args.image)?;
    let image = match open_any(&args.image, scratch_path.as_deref())? {
        Opened::Image(image) => {
            if let [wanted, ..] = platforms.as_slice() {
                let actual = image.platform().map(ToString::to_string).unwrap_or_else(|| "an unknown platform".into());
                if platforms.len() > 1 || !image.platform().is_some_and(|p| platforms.iter().any(|w| w.matches(p))) {
                    bail!("no manifest for platform {wanted}: the image is for {actual} only");
                }
            }
            *image
        }
        Opened::Index(index) => {
            // A docker-archive holds one platform: that image alone.
            let docker = match (&stream, &output_spec) {
                (Some(stream), _) => stream.format_for(index.format()) == OutputFormat::DockerArchive,
                (None, Some(spec)) => spec.format_for(default_format(index.format())) == OutputFormat::DockerArchive,
                (None, None) => false,
            };
            if !docker {
                return squash_index(&args, verbosity, &index, platforms, output_spec, stream, scratch_path);
            }
            if platforms.len() > 1 || platforms.is_empty() && index.images().len() > 1 {
                let listed: Vec<String> = index.platforms().iter().map(ToString::to_string).collect();
                bail!(
                    "a docker-archive holds one platform and the index has {}: choose one with --platform, \
                     or write oci or oci-archive, which hold every platform",
                    listed.join(", ")
                );
            }
            index.select(platforms.first())?
        }
    };
    let (selector, bases) = selector(&args.select)?;
    let mut options = squash_options(&args, selector, scratch_path.as_deref())?;
    options.bases = bases;
    let output = output_spec.map(|spec| spec.resolve(default_format(image.format())));
    let progress = render::ProgressLine::on_stderr(args.json, verbosity);
    let plan = image.plan_with_progress(&options, &progress)?;
    progress.clear();
    // The plan is a dry run's result (stdout), and a note on the way otherwise (stderr).
    if !verbosity.quiet && !args.json {
        if args.dry_run {
            out(&render::plan(&image, &plan))?;
        } else {
            note(render::plan(&image, &plan).trim_end());
        }
    }
    if !verbosity.quiet && !image.other_platforms().is_empty() {
        note(&render::platforms_left_out(&image));
    }
    if args.dry_run || (output.is_none() && stream.is_none()) {
        if args.json {
            out(&json_line(&PlanDocument::new(&image, &plan))?)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let outcome = match (&output, &stream) {
        (Some(output), _) => exit::writing(|| plan.execute_with_progress(&image, output, &progress)),
        (None, Some(stream)) => {
            let format = stream.format_for(image.format());
            exit::stdout_is_image();
            let mut stdout = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            exit::writing(|| plan.execute_to_writer(&image, format, stream.tag.clone(), &mut stdout, &progress))
        }
        (None, None) => bail!("no output given: use -o OUT (or --dry-run)"),
    };
    progress.finish();
    let outcome = outcome?;
    // The summary is made before a verification, which needs the memory the plan holds.
    let text = if args.json {
        Some(json_line(&OutcomeDocument::new(&image, outcome))?)
    } else {
        (!verbosity.quiet).then(|| render::outcome(&image, &plan, &outcome))
    };
    drop(plan);
    if args.verify {
        if let Some(output) = &output {
            verify_output(&image, output, &options)?;
            if !verbosity.quiet {
                note("verified: the written image's root filesystem equals the input's");
            }
        }
    }
    summary(text, stream.is_some());
    Ok(ExitCode::SUCCESS)
}

/// `-o -`, `-o docker-archive:-[:TAG]` or `-o oci-archive:-[:TAG]`: the archive goes to stdout.
struct StreamSpec {
    format: Option<OutputFormat>,
    tag: Option<String>,
}

impl StreamSpec {
    /// The archive written to stdout for an input of format `input`: docker-archive unless the
    /// input is an OCI archive or --format says otherwise.
    fn format_for(&self, input: InputFormat) -> OutputFormat {
        self.format.unwrap_or(if input == InputFormat::OciArchive { OutputFormat::OciArchive } else { OutputFormat::DockerArchive })
    }
}

fn stream_spec(raw: &str, format: Option<OutputFormat>, tag: Option<&str>) -> Result<Option<StreamSpec>> {
    let (named, own_tag) = if raw == "-" {
        (None, None)
    } else {
        let mut found = None;
        for (prefix, f) in [("docker-archive:", OutputFormat::DockerArchive), ("oci-archive:", OutputFormat::OciArchive)] {
            if let Some(rest) = raw.strip_prefix(prefix) {
                let (path, t) = rest.split_once(':').map(|(p, t)| (p, Some(t.to_string()))).unwrap_or((rest, None));
                if path == "-" {
                    found = Some((Some(f), t));
                }
            }
        }
        match found {
            Some(f) => f,
            None => return Ok(None),
        }
    };
    if let (Some(named), Some(format)) = (named, format) {
        if named != format {
            bail!("-o `{raw}` names the {named} format but --format says {format}; give one of them");
        }
    }
    let format = named.or(format);
    if format == Some(OutputFormat::OciLayout) {
        bail!("-o -: standard output takes an archive: --format docker-archive or oci-archive, not an OCI layout");
    }
    if let (Some(own), Some(tag)) = (&own_tag, tag) {
        if own != tag {
            bail!("-o `{raw}` carries the tag `{own}` but --tag says `{tag}`; give one of them");
        }
    }
    if own_tag.as_deref() == Some("") || tag == Some("") {
        bail!("-o `{raw}`: the tag is empty");
    }
    Ok(Some(StreamSpec { format, tag: own_tag.or(tag.map(str::to_string)) }))
}

/// The `-o` value with `--format` and `--tag` folded in, conflicts refused.
struct OutputSpec {
    raw: String,
    format: Option<OutputFormat>,
    tag: Option<String>,
}

impl OutputSpec {
    /// The format it will be written in.
    fn format_for(&self, default: OutputFormat) -> OutputFormat {
        Output::parse(&self.raw, self.format.unwrap_or(default)).map(|o| o.format).unwrap_or(default)
    }

    fn resolve(self, default: OutputFormat) -> Output {
        let mut output =
            Output::parse(&self.raw, self.format.unwrap_or(default)).unwrap_or_else(|_| Output::new(self.raw.clone(), default));
        if self.tag.is_some() {
            output.tag = self.tag;
        }
        output
    }
}

fn output_spec(raw: &str, format: Option<OutputFormat>, tag: Option<&str>) -> Result<OutputSpec> {
    // Parsed once with a placeholder default to learn what the reference itself says.
    let parsed = Output::parse(raw, OutputFormat::OciLayout).map_err(|e| anyhow!("-o {e}"))?;
    let prefixed = ["oci:", "oci-archive:", "docker-archive:"].iter().any(|p| raw.starts_with(p));
    if let (true, Some(format)) = (prefixed, format) {
        if parsed.format != format {
            bail!("-o `{raw}` names the {} format but --format says {}; give one of them", parsed.format, format);
        }
    }
    if let (Some(own), Some(tag)) = (&parsed.tag, tag) {
        if own != tag {
            bail!("-o `{raw}` carries the tag `{own}` but --tag says `{tag}`; give one of them");
        }
    }
    if let Some(tag) = tag {
        if tag.is_empty() {
            bail!("--tag is empty");
        }
    }
    Ok(OutputSpec { raw: raw.to_string(), format, tag: tag.map(str::to_string) })
}

/// The output format when the output names none: the input's.
fn default_format(input: InputFormat) -> OutputFormat {
    match input {
        InputFormat::DockerArchive => OutputFormat::DockerArchive,
        InputFormat::OciArchive => OutputFormat::OciArchive,
        InputFormat::OciLayout | InputFormat::Dir => OutputFormat::OciLayout,
    }
}

/// The squash options of the command line, bases aside.
fn squash_options(args: &SquashArgs, selector: LayerSelector, scratch: Option<&std::path::Path>) -> Result<SquashOptions> {
    let edits = config_edits(args)?;
    if selector == LayerSelector::Nothing && !args.convert && edits.is_empty() {
        bail!(
            "no layers chosen to squash: give --from-layer base (everything above the base image, see --base), \
             --from-layer N (the top N layers), --from-layer DIGEST (everything above that layer), --layers A..B or --all (every layer, the base included); \
             to copy the image without squashing (a format conversion), give --convert"
        );
    }
    let mut options = SquashOptions::default().with_selector(selector);
    options.excludes = excludes(&args.select)?;
    if let Some(c) = &args.compression {
        options = options.with_compression(c.parse::<Compression>().map_err(|e| anyhow!(e))?);
    }
    if let Some(level) = args.level {
        options = options.with_level(level);
    }
    options = options
        .with_threads(args.threads.unwrap_or(0))
        .with_verify_all(args.verify_all)
        // A dry run writes nothing, not even the copies a single read of each layer keeps.
        .with_read_once(!args.dry_run)
        .with_lock_timeout(std::time::Duration::from_secs(args.lock_timeout));
    if let Some(message) = &args.message {
        options = options.with_message(message.clone());
    }
    if args.drop_history {
        options = options.with_history(HistoryMode::Drop);
    }
    options = options.with_rewrite_timestamp(args.rewrite_timestamp).with_edits(edits);
    if let Some(epoch) = args.source_date_epoch {
        options = options.with_source_date_epoch(epoch);
    } else if let Ok(epoch) = std::env::var("SOURCE_DATE_EPOCH") {
        let epoch: i64 = epoch.trim().parse().with_context(|| format!("SOURCE_DATE_EPOCH `{epoch}` is not a number of seconds"))?;
        options = options.with_source_date_epoch(epoch);
    }
    if let Some(dir) = scratch {
        options = options.with_tmp_dir(dir);
    }
    Ok(options)
}

/// Prints a run's summary, if any: on stdout, or on stderr when the image went to stdout.
fn summary(text: Option<String>, image_on_stdout: bool) {
    match text {
        Some(text) if image_on_stdout => note(text.trim_end()),
        Some(text) => out(&text).unwrap_or(()),
        None => {}
    }
}

/// The reference that reads `output` back.
fn written_reference(output: &Output) -> String {
    match output.format {
        OutputFormat::OciLayout => format!("oci:{}", output.path.display()),
        OutputFormat::OciArchive => format!("oci-archive:{}", output.path.display()),
        OutputFormat::DockerArchive => format!("docker-archive:{}", output.path.display()),
    }
}

/// `--verify`: reads the image just written and compares its filesystem with the input's; on a
/// difference, removes what was written (a path that did not exist before the run) and fails.
fn verify_output(image: &Image, output: &Output, options: &SquashOptions) -> Result<()> {
    let reference = written_reference(output);
    let written = Image::open(&reference).with_context(|| format!("--verify: reading back `{reference}`"))?;
    match compare_written(image, &written, options, true)? {
        None => Ok(()),
        Some(shown) => fail_verification(output, "the written image's filesystem differs from the input's", &shown),
    }
}

/// `--verify` of an index: every image written is read back and compared with the input's
/// image at the same place in the index (squashed or copied, the same platform); on a
/// difference, what was written is removed and the run fails, naming the platform.
fn verify_index_output(index: &ImageIndex, output: &Output, options: &SquashOptions) -> Result<usize> {
    let reference = written_reference(output);
    let written = match Opened::open_with(&reference, &squash::OpenOptions::default())
        .with_context(|| format!("--verify: reading back `{reference}`"))?
    {
        Opened::Index(written) => written,
        Opened::Image(_) => return fail_verification(output, "the output holds one image where the input is an index", ""),
    };
    let (inputs, outputs) = (index.images(), written.images());
    let count = inputs.len();
    if inputs.len() != outputs.len() {
        let what = format!("the output holds {} images where the input's index holds {}", outputs.len(), inputs.len());
        return fail_verification(output, &what, "");
    }
    for (input, out) in inputs.into_iter().zip(outputs) {
        let platform = |i: &Image| i.platform().map(ToString::to_string).unwrap_or_else(|| "an image without a platform".into());
        if input.platform() != out.platform() {
            let what = format!("the output lists {} where the input lists {}", platform(out), platform(input));
            return fail_verification(output, &what, "");
        }
        // An image copied as it was (the same manifest) kept what --exclude names.
        let squashed = input.manifest_digest() != out.manifest_digest();
        if let Some(shown) = compare_written(input, out, options, squashed)? {
            let what = format!("{}: the written image's filesystem differs from the input's", platform(input));
            return fail_verification(output, &what, &shown);
        }
    }
    Ok(count)
}

/// The first lines of what differs between `image`'s filesystem and `written`'s (less what
/// `--exclude` removed when it was `squashed`; mtimes left out with `--rewrite-timestamp`), or
/// `None` when equal.
fn compare_written(image: &Image, written: &Image, options: &SquashOptions, squashed: bool) -> Result<Option<String>> {
    let ignore: Vec<Attribute> = if options.rewrite_timestamp { vec![Attribute::Mtime] } else { Vec::new() };
    let threads = options.threads;
    let mut expected = image.tree(threads)?;
    if squashed {
        // What --exclude removed is not expected back.
        let excludes = squash::Excludes::new(&options.excludes)?;
        expected.entries.retain(|path, entry| excludes.covering(path, entry.kind == squash::EntryKind::Dir).is_none());
    }
    let diff = diff_trees(&expected, &written.tree(threads)?, &ignore);
    if diff.is_empty() {
        return Ok(None);
    }
    let text = render::diff(&diff, &ignore);
    Ok(Some(text.lines().take(20).collect::<Vec<_>>().join("\n")))
}

/// Removes what a run wrote at `output` (a path that did not exist before it) and fails with
/// `what` and the lines `shown`.
fn fail_verification<T>(output: &Output, what: &str, shown: &str) -> Result<T> {
    let removed = if output.path.is_dir() { std::fs::remove_dir_all(&output.path) } else { std::fs::remove_file(&output.path) };
    bail!(
        "--verify: {what}{}{}{shown}",
        match removed {
            Ok(()) => format!("; `{}` was removed", output.path.display()),
            Err(e) => format!("; `{}` could not be removed: {e}", output.path.display()),
        },
        if shown.is_empty() { "" } else { ":\n" },
    )
}

/// The config and manifest edits of the command line.
fn config_edits(args: &SquashArgs) -> Result<ConfigEdits> {
    let keyed = |flag: &str, values: &[String]| -> Result<Vec<KeyEdit>> {
        values.iter().map(|v| v.parse::<KeyEdit>().map_err(|e| anyhow!("--{flag} {e}"))).collect()
    };
    let command = |flag: &str, value: &Option<String>| -> Result<Option<Option<Vec<String>>>> {
        value.as_deref().map(|v| parse_command(v).map_err(|e| anyhow!("--{flag} {e}"))).transpose()
    };
    let mut edits = ConfigEdits::default();
    edits.labels = keyed("label", &args.label)?;
    edits.env = keyed("env", &args.env)?;
    edits.annotations = keyed("annotation", &args.annotation)?;
    edits.entrypoint = command("entrypoint", &args.entrypoint)?;
    edits.cmd = command("cmd", &args.cmd)?;
    edits.workdir = args.workdir.clone();
    edits.user = args.user.clone();
    Ok(edits)
}

/// Squashes every platform of an index (those of `platforms`, when given) into an OCI layout
/// or archive.
fn squash_index(
    args: &SquashArgs,
    verbosity: Verbosity,
    index: &ImageIndex,
    platforms: Vec<Platform>,
    output_spec: Option<OutputSpec>,
    stream: Option<StreamSpec>,
    scratch: Option<std::path::PathBuf>,
) -> Result<ExitCode> {
    let selector = selector_only(&args.select)?;
    let options = squash_options(args, selector, scratch.as_deref())?;
    let bases = open_bases(&args.select)?;
    let index_options = IndexOptions::default().with_platforms(platforms).with_keep_attestations(args.keep_attestations).with_bases(bases);
    let progress = render::ProgressLine::on_stderr(args.json, verbosity);
    let plan = index.plan_with_progress(&options, &index_options, &progress)?;
    progress.clear();
    if !verbosity.quiet && !args.json {
        if args.dry_run {
            out(&render::index_plan(index, &plan))?;
        } else {
            note(render::index_plan(index, &plan).trim_end());
        }
    }
    let output = output_spec.map(|spec| spec.resolve(default_format(index.format())));
    if args.dry_run || (output.is_none() && stream.is_none()) {
        if args.json {
            out(&json_line(&IndexPlanDocument::new(index, &plan))?)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let outcome = match (&output, &stream) {
        (Some(output), _) => exit::writing(|| plan.execute_with_progress(index, output, &progress)),
        (None, Some(stream)) => {
            exit::stdout_is_image();
            let mut stdout = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            exit::writing(|| plan.execute_to_writer(index, stream.tag.clone(), &mut stdout, &progress))
        }
        (None, None) => bail!("no output given: use -o OUT (or --dry-run)"),
    };
    progress.finish();
    let outcome = outcome?;
    // The summary is made before a verification, which needs the memory the plan holds.
    let text = if args.json {
        Some(json_line(&IndexOutcomeDocument::new(index, outcome))?)
    } else {
        (!verbosity.quiet).then(|| render::index_outcome(&outcome))
    };
    drop(plan);
    if args.verify {
        if let Some(output) = &output {
            let images = verify_index_output(index, output, &options)?;
            if !verbosity.quiet {
                note(&format!("verified: the root filesystem of each of the {images} written images equals the input's"));
            }
        }
    }
    summary(text, stream.is_some());
    Ok(ExitCode::SUCCESS)
}

/// The images a command that reads one image at a time works on: the one image, or without
/// `--platform` every image of an index (with the index).
fn images_to_read(args: &ImageArgs, scratch: Option<&std::path::Path>) -> Result<(Option<ImageIndex>, Vec<Image>)> {
    if one_platform(args, "this command")?.is_some() {
        return Ok((None, vec![open(args, scratch)?]));
    }
    match open_any(args, scratch)? {
        Opened::Image(image) => Ok((None, vec![*image])),
        Opened::Index(index) => {
            let images = index.images().into_iter().map(|i| index.select(i.platform())).collect::<squash::Result<Vec<_>>>()?;
            Ok((Some(*index), images))
        }
    }
}

fn inspect(args: &ImageArgs, as_json: bool, verify: bool, verbosity: Verbosity) -> Result<ExitCode> {
    let started = std::time::Instant::now();
    let scratch = scratch_for(args, false)?;
    let (index, images) = images_to_read(args, scratch.as_ref().map(|d| d.path()))?;
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
    let mut text =
        format!("image: {} ({}){}\n", image.source().display(), image.format(), image.name().map(|n| format!(", {n}")).unwrap_or_default());
    if let Some(p) = image.platform() {
        let others: Vec<String> = image.other_platforms().iter().map(ToString::to_string).collect();
        let others = if others.is_empty() { String::new() } else { format!(" (the index also holds {})", others.join(", ")) };
        text.push_str(&format!("platform: {p}{others}\n"));
    }
    if let Some(d) = image.manifest_digest() {
        text.push_str(&format!("manifest: {d}\n"));
    }
    text.push_str(&format!("config:   {}\n", image.config_digest()));
    let mut rows = vec![["#", "DIGEST", "DIFF_ID", "SIZE", "UNCOMPRESSED", "COMPRESSION", "CREATED BY"].map(String::from).to_vec()];
    let mut printed_steps = 0usize;
    for (layer, index) in image.layers().iter().zip(indexes) {
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
            render::truncated(&created, 70),
        ]);
    }
    for empty in image.history().iter().skip(printed_steps) {
        rows.push(empty_step_row(empty));
    }
    text.push_str(&render::table(&rows));
    if verify {
        text.push_str(&format!(
            "verified: {}the config's sha256; {n} layer blobs (size and sha256); {n} diff_ids (every layer decoded)\n",
            if image.manifest_digest().is_some() { "the manifest's size and sha256; " } else { "" },
            n = image.layers().len()
        ));
    }
    text
}

/// An `inspect` row for a history step that made no layer.
fn empty_step_row(step: &squash::HistoryStep) -> Vec<String> {
    let mut row = vec!["-".to_string(), String::new(), String::new(), String::new(), String::new(), "(no layer)".into()];
    row.push(step.created_by.clone().unwrap_or_default());
    row
}

fn report(args: crate::args::ReportArgs, verbosity: Verbosity) -> Result<ExitCode> {
    let started = std::time::Instant::now();
    #[cfg(not(feature = "svg"))]
    if args.svg.is_some() || args.html.is_some() {
        bail!("--svg and --html need squash built with its `svg` cargo feature");
    }
    let format = match (args.json, args.format.as_deref()) {
        (true, Some(f)) if f != "json" => bail!("--json and --format {f} ask for different outputs"),
        (true, _) => "json",
        (false, Some(f)) => f,
        (false, None) => "text",
    };
    let mut inputs = args.images.clone();
    if let Some(file) = &args.from_file {
        let text = std::fs::read_to_string(file).with_context(|| format!("--from-file `{}`", file.display()))?;
        inputs.extend(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string));
    }
    if inputs.is_empty() {
        bail!("no image given (the --from-file list is empty)");
    }
    if inputs.iter().filter(|i| is_stream(Some(i))).count() > 1 {
        bail!("standard input can be read only once: give `-` at most once");
    }
    let selector = selector_only(&args.select)?;
    let bases = open_bases(&args.select)?;
    let mut gates = Gates::new();
    if let Some(path) = &args.ci_config {
        let rules = crate::dive_ci::read(path)?;
        for name in &rules.unknown {
            if !verbosity.quiet {
                note(&format!("squash: `{}`: rules.{name} is not one of dive's rules; ignored", path.display()));
            }
        }
        if verbosity.verbose > 0 {
            for (rule, flag) in &rules.mapped {
                note(&format!("squash: `{}`: rules.{rule} read as {flag}", path.display()));
            }
        }
        gates = rules.gates;
    }
    if let Some(size) = args.fail_if_wasted_over.as_deref() {
        gates.max_wasted_bytes = Some(parse_size(size).map_err(|e| anyhow!("--fail-if-wasted-over {e}"))?);
    }
    if let Some(percent) = args.fail_if_wasted_percent_over {
        gates.max_wasted_percent = Some(percent);
    }
    if let Some(ratio) = args.min_efficiency {
        gates.min_efficiency = Some(ratio);
    }
    if let Some(size) = args.fail_if_clutter_over.as_deref() {
        gates.max_clutter_bytes = Some(parse_size(size).map_err(|e| anyhow!("--fail-if-clutter-over {e}"))?);
    }
    let mut how = ReportOptions::default().with_top_paths(args.top).with_exact(args.exact);
    if args.no_default_clutter {
        how.clutter.clear();
    }
    for glob in &args.clutter {
        how = how.with_clutter(ClutterRule::new(glob.clone(), glob.clone()));
    }
    let mut template = SquashOptions::default().with_selector(selector).with_threads(args.threads.unwrap_or(0));
    template.excludes = excludes(&args.select)?;
    template.tmp_dir = args.tmp_dir.clone();
    if let Some(c) = &args.compression {
        template = template.with_compression(c.parse::<Compression>().map_err(|e| anyhow!(e))?);
    }
    if let Some(level) = args.level {
        template = template.with_level(level);
    }
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
        let image_args = ImageArgs { image: Some(reference.clone()), platform: args.platform.clone(), tmp_dir: args.tmp_dir.clone() };
        let scratch = scratch_for(&image_args, false)?;
        let (index, images) =
            images_to_read(&image_args, scratch.as_ref().map(|d| d.path())).with_context(|| format!("reading `{reference}`"))?;
        let mut documents = Vec::new();
        for image in &images {
            let mut options = template.clone();
            options.bases = bases.iter().filter_map(|b| b.for_platform_of(image)).collect();
            let progress = render::ProgressLine::on_stderr(format == "json", verbosity);
            let report = image.report_with(&options, &how, &progress)?;
            progress.clear();
            log_read(verbosity, image, started);
            audit.add(image, &report);
            let platform = image.platform().map(ToString::to_string).unwrap_or_else(|| "(no platform)".into());
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
                let path = if suffix.is_empty() { path.clone() } else { svg_path_for(path, &suffix.join("-")) };
                std::fs::write(&path, squash::present::report_svg(&report)).with_context(|| format!("writing `{}`", path.display()))?;
            }
            let results = report.gate_results(&gates);
            let prefix = if label.is_empty() { String::new() } else { format!("{}: ", label.join(" ")) };
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
            None => out(&json_line(&MultiReportDocument::new(all, summary.unwrap_or_else(|| audit.summary())))?)?,
        },
        "markdown" => out(&squash::present::report_markdown(&all, summary.as_ref(), args.top))?,
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

/// With `--verbose`: that `image` was read, and when.
fn log_read(verbosity: Verbosity, image: &Image, started: std::time::Instant) {
    if verbosity.verbose > 0 {
        let platform = image.platform().map(|p| format!(" ({p})")).unwrap_or_default();
        note(&format!(
            "squash: [{:6.2} s] read {}{platform}: every blob's size and sha256 and every layer's diff_id checked",
            started.elapsed().as_secs_f64(),
            render::count(image.layers().len(), "layer", "layers")
        ));
    }
}

#[cfg(feature = "svg")]
/// `chart.svg` for platform `linux/arm64`: `chart-linux-arm64.svg`.
fn svg_path_for(path: &std::path::Path, platform: &str) -> std::path::PathBuf {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "report".into());
    let ext = path.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
    path.with_file_name(format!("{stem}-{}{ext}", platform.replace('/', "-")))
}
