//! What the user typed, turned into the library's options once: the layers to squash, the
//! `--exclude` patterns, the config edits, the squash and report options, the gates, the output
//! (with `--format` and `--tag` folded in, conflicts refused) and the run's context.

use std::path::Path;

use anyhow::{anyhow, bail, Context as _, Result};
use squash::present::parse_size;
use squash::{
    parse_command, parse_layer_range, ClutterRule, Compression, ConfigEdits, Context, Credentials,
    Destination, Gates, HistoryMode, KeyEdit, LayerSelector, Output, OutputFormat, Progress,
    RegistryOptions, ReportOptions, SquashOptions,
};

use crate::args::{RegistryArgs, ReportArgs, SelectArgs, SquashArgs, Verbosity};
use crate::exit::note;

/// The layers to squash: `--from-layer`, `--layers`, `--all`, or nothing.
pub fn selector(args: &SelectArgs) -> Result<LayerSelector> {
    if let Some(value) = &args.from_step {
        if !args.layers.is_empty() {
            bail!("use either -f or --layers, not both");
        }
        return match value.parse::<usize>() {
            Ok(n) => Ok(LayerSelector::Steps(n)),
            Err(_) => value.parse::<LayerSelector>().map_err(|e| anyhow!("-f {e}")),
        };
    }
    let selector = match (&args.from_layer, args.layers.is_empty()) {
        (Some(_), false) => bail!("use either --from-layer or --layers, not both"),
        (Some(value), true) => {
            value.parse::<LayerSelector>().map_err(|e| anyhow!("--from-layer {e}"))?
        }
        (None, false) => LayerSelector::Ranges(
            args.layers
                .iter()
                .map(|r| parse_layer_range(r).map_err(|e| anyhow!("--layers {e}")))
                .collect::<Result<_>>()?,
        ),
        (None, true) if args.all => LayerSelector::All,
        (None, true) => LayerSelector::Nothing,
    };
    Ok(selector)
}

/// The `--exclude` patterns, those of `--exclude-from` files after them.
pub fn excludes(args: &SelectArgs) -> Result<Vec<String>> {
    let mut patterns = args.exclude.clone();
    for file in &args.exclude_from {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("--exclude-from `{}`", file.display()))?;
        patterns.extend(text.lines().map(str::to_string));
    }
    Ok(patterns)
}

/// The context of a run: `--threads`, the progress shown, and the temporary directory (the
/// run's scratch directory when it has one, else `--tmp-dir`).
pub fn context<'p>(
    threads: Option<usize>,
    progress: &'p dyn Progress,
    tmp_dir: Option<&Path>,
) -> Context<'p> {
    let context = Context::new().with_threads(threads.unwrap_or(0)).with_progress(progress);
    match tmp_dir {
        Some(dir) => context.with_tmp_dir(dir),
        None => context,
    }
}

/// How registries are reached: `--creds` (or SQUASH_CREDS), `--authfile`, `--cert-dir`,
/// `--tls-verify`, `--retries`.
pub fn registry(args: &RegistryArgs) -> RegistryOptions {
    let mut options =
        RegistryOptions::default().with_tls_verify(args.tls_verify).with_retries(args.retries);
    if let Some(creds) = args.creds.as_deref().filter(|c| !c.is_empty()) {
        options = options.with_creds(Credentials::parse(creds));
    }
    if let Some(file) = &args.authfile {
        options = options.with_authfile(file);
    }
    if let Some(dir) = &args.cert_dir {
        options = options.with_cert_dir(dir);
    }
    options
}

/// The output `-o` names, with `--format` and `--tag` folded in: `None` without `-o`. Conflicts
/// between them are refused before any image is read.
pub fn output(args: &SquashArgs) -> Result<Option<Output>> {
    let format = args
        .format
        .as_deref()
        .map(|f| f.parse::<OutputFormat>().map_err(|e| anyhow!(e)))
        .transpose()?;
    let Some(raw) = args.output.as_deref() else { return Ok(None) };
    let mut output = Output::parse(raw)
        .map_err(|e| anyhow!("-o {e}"))?
        .with_registry(registry(&args.image.registry));
    if !args.dry_run {
        output.check_destination()?;
    }
    if matches!(output.destination(), Destination::Registry(_)) && format.is_some() {
        bail!("-o `{raw}` is a registry, which holds manifests and blobs: drop --format");
    }
    if let (Some(named), Some(format)) = (output.format(), format) {
        if named != format {
            bail!(
                "-o `{raw}` names the {named} format but --format says {format}; give one of them"
            );
        }
    }
    if let Some(format) = format {
        if output.is_stdout() && format == OutputFormat::OciLayout {
            bail!(
                "-o -: standard output takes an archive: --format docker-archive or \
                oci-archive, not an OCI layout"
            );
        }
        output = output.with_format(format);
    }
    if let Some(tag) = args.tag.as_deref() {
        if tag.is_empty() {
            bail!("--tag is empty");
        }
        let registry = matches!(output.destination(), Destination::Registry(_));
        if let Some(own) = output.tag().filter(|_| !registry || raw_names_tag(raw)) {
            if own != tag {
                bail!(
                    "-o `{raw}` carries the tag `{own}` but --tag says `{tag}`; give one of them"
                );
            }
        }
        output = output.with_tag(tag);
    }
    Ok(Some(output))
}

/// Whether a registry output names its tag (`docker://HOST/REPO:TAG`), rather than taking
/// `latest` by default.
fn raw_names_tag(raw: &str) -> bool {
    squash::RegistryReference::parse(raw).is_ok_and(|r| r.tag.is_some())
}

/// The squash options of the command line, bases aside.
pub fn squash_options(args: &SquashArgs, selector: LayerSelector) -> Result<SquashOptions> {
    let edits = config_edits(args)?;
    if selector == LayerSelector::Nothing && !args.convert && edits.is_empty() {
        bail!(
            "no layers chosen to squash: give --from-layer base (everything above the base image, \
             see --base), --from-layer N (the top N layers), --from-layer DIGEST (everything \
             above that layer), --layers A..B or --all (every layer, the base included); to copy \
             the image without squashing (a format conversion), give --convert"
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
        let epoch: i64 = epoch
            .trim()
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH `{epoch}` is not a number of seconds"))?;
        options = options.with_source_date_epoch(epoch);
    }
    Ok(options)
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

/// The squash options a report describes (its `--from-layer`, `--compression`, `--level`,
/// `--exclude`), bases aside.
pub fn report_squash_options(args: &ReportArgs) -> Result<SquashOptions> {
    let mut options = SquashOptions::default().with_selector(selector(&args.select)?);
    options.excludes = excludes(&args.select)?;
    if let Some(c) = &args.compression {
        options = options.with_compression(c.parse::<Compression>().map_err(|e| anyhow!(e))?);
    }
    if let Some(level) = args.level {
        options = options.with_level(level);
    }
    Ok(options)
}

/// What the report measures beyond the squash: paths listed, exact sizes, clutter rules.
pub fn report_options(args: &ReportArgs) -> ReportOptions {
    let mut how = ReportOptions::default()
        .with_top_paths(args.top)
        .with_exact(args.exact)
        .with_grouping(!args.no_group)
        .with_group_depth(usize::from(args.depth));
    if args.no_default_clutter {
        how.clutter.clear();
    }
    for glob in &args.clutter {
        how = how.with_clutter(ClutterRule::new(glob.clone(), glob.clone()));
    }
    how
}

/// The gates of the command line: a dive `.dive-ci` file's rules, then the gate flags, which
/// win over the file.
pub fn gates(args: &ReportArgs, verbosity: Verbosity) -> Result<Gates> {
    let mut gates = Gates::new();
    if let Some(path) = &args.ci_config {
        let rules = crate::dive_ci::read(path)?;
        for name in &rules.unknown {
            if !verbosity.quiet {
                note(&format!(
                    "squash: `{}`: rules.{name} is not one of dive's rules; ignored",
                    path.display()
                ));
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
        gates.max_wasted_bytes =
            Some(parse_size(size).map_err(|e| anyhow!("--fail-if-wasted-over {e}"))?);
    }
    if let Some(percent) = args.fail_if_wasted_percent_over {
        gates.max_wasted_percent = Some(percent);
    }
    if let Some(ratio) = args.min_efficiency {
        gates.min_efficiency = Some(ratio);
    }
    if let Some(size) = args.fail_if_clutter_over.as_deref() {
        gates.max_clutter_bytes =
            Some(parse_size(size).map_err(|e| anyhow!("--fail-if-clutter-over {e}"))?);
    }
    Ok(gates)
}
