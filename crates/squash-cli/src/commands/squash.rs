//! `squash IMAGE …`: plan, print the plan, write (one image, or every platform of an index),
//! print what was written, and with `--verify` read it back and compare.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use squash::document::{IndexOutcomeDocument, IndexPlanDocument, OutcomeDocument, PlanDocument};
use squash::{
    diff_trees, Attribute, Context, Destination, Image, ImageIndex, IndexOptions, IndexPlan,
    OpenOptions, Opened, Output, OutputFormat, SquashOptions, SquashPlan, StagedOutput,
};

use super::json_line;
use crate::args::{SquashArgs, Verbosity};
use crate::exit::{self, note, out};
use crate::{input, options, render};

pub fn run(mut args: SquashArgs, verbosity: Verbosity) -> Result<ExitCode> {
    if let Some(listed) = input::from_list(&mut args.image)? {
        match (listed, &args.output) {
            (Some(_), Some(_)) => bail!("the --from-file line names an output, and so does -o"),
            (Some(out), None) => args.output = Some(out),
            (None, _) => {}
        }
    }
    // The output reference is checked before the image is read: a usage error costs nothing.
    let output = options::output(&args)?;
    let to_stdout = output.as_ref().is_some_and(Output::is_stdout);
    if output.is_none() && !args.dry_run {
        bail!("no output given: use -o OUT (or --dry-run)");
    }
    if to_stdout && !args.dry_run && std::io::stdout().is_terminal() {
        bail!(
            "-o -: standard output is a terminal; redirect it (`> app.tar`) or pipe it (`| \
            docker load`)"
        );
    }
    let scratch = input::scratch_for(&args.image, to_stdout)?;
    let scratch_path = scratch.as_ref().map(|d| d.path());
    let platforms = input::platforms(&args.image)?;
    let progress = render::ProgressLine::on_stderr(args.json, verbosity);
    progress.opening(input::is_stream(args.image.image.as_deref()));
    let subject = match input::open_any(&args.image, scratch_path)? {
        Opened::Image(image) => {
            if let [wanted, ..] = platforms.as_slice() {
                let actual = image
                    .platform()
                    .map(ToString::to_string)
                    .unwrap_or_else(|| "an unknown platform".into());
                if platforms.len() > 1
                    || !image.platform().is_some_and(|p| platforms.iter().any(|w| w.matches(p)))
                {
                    bail!("no manifest for platform {wanted}: the image is for {actual} only");
                }
            }
            Subject::Image(image)
        }
        Opened::Index(index) => {
            // A docker-archive holds one platform: that image alone.
            let docker = output
                .as_ref()
                .is_some_and(|o| o.format_for(index.format()) == OutputFormat::DockerArchive);
            if !docker {
                Subject::Index(index)
            } else {
                if platforms.len() > 1 || platforms.is_empty() && index.images().len() > 1 {
                    let listed: Vec<String> =
                        index.platforms().iter().map(ToString::to_string).collect();
                    bail!(
                        "a docker-archive holds one platform and the index has {}: choose one \
                            with --platform, \
                         or write oci or oci-archive, which hold every platform",
                        listed.join(", ")
                    );
                }
                Subject::Image(Box::new(index.select(platforms.first())?))
            }
        }
    };
    // The output checked against what was opened, before anything is planned.
    if let Some(output) = output.as_ref().filter(|_| !args.dry_run) {
        match &subject {
            Subject::Image(image) => output.check_against(image)?,
            Subject::Index(index) => output.check_against_index(index)?,
        }
    }
    let context =
        options::context(args.threads, &progress, scratch_path.or(args.image.tmp_dir.as_deref()));
    let selector = options::selector(&args.select)?;
    let (planned, options) = match &subject {
        Subject::Image(image) => {
            let bases = input::base_images(&args.select, &args.image.registry)?;
            let mut options = options::squash_options(&args, selector)?;
            options.bases = bases;
            (Planned::Image(image, image.plan_in(&options, &context)?), options)
        }
        Subject::Index(index) => {
            let options = options::squash_options(&args, selector)?;
            let bases = input::bases(&args.select, &args.image.registry)?;
            let index_options = IndexOptions::default()
                .with_platforms(platforms)
                .with_keep_attestations(args.keep_attestations)
                .with_bases(bases);
            (Planned::Index(index, index.plan_in(&options, &index_options, &context)?), options)
        }
    };
    progress.clear();
    // The plan is a dry run's result (stdout), and a note on the way otherwise (stderr).
    if !verbosity.quiet && !args.json {
        if args.dry_run {
            out(&format!("dry run: nothing is written\n{}", planned.text()))?;
        } else {
            note(planned.text().trim_end());
        }
    }
    if let Planned::Image(image, _) = &planned {
        if !verbosity.quiet && !image.other_platforms().is_empty() {
            note(&render::platforms_left_out(image));
        }
    }
    let output = match output {
        Some(output) if !args.dry_run => output,
        _ => {
            if args.json {
                out(&planned.json()?)?;
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    if to_stdout {
        exit::stdout_is_image();
    }
    // --verify on a stream: the image is written into the scratch directory, read back and
    // compared, and only then copied to standard output, which gets nothing unverified.
    let verified_spool = match scratch_path {
        Some(dir) if to_stdout && args.verify => {
            let format = output.format_for(SubjectRef::from(&subject).format());
            let spool = Output::new(dir.join("verified"), format);
            Some(match output.tag() {
                Some(tag) => spool.with_tag(tag),
                None => spool,
            })
        }
        _ => None,
    };
    let shown = if args.json {
        Shown::Json
    } else if verbosity.quiet {
        Shown::Nothing
    } else {
        Shown::Text
    };
    // --verify to a path: the image is written into a stage beside its destination, read back
    // and compared there, and put in place only then; until then the destination (an existing
    // layout, or a file to replace) is left as it was. To a registry: pushed by digest, read
    // back from there, and tagged only then.
    let staged = match output.destination() {
        Destination::Path(_) | Destination::Registry(_) if args.verify => {
            Some(StagedOutput::beside(&output, options.lock_timeout, &context)?)
        }
        _ => None,
    };
    let left = match (output.destination(), &staged) {
        (Destination::Path(dest), Some(_)) if dest.exists() => {
            format!("`{}` was left as it was", dest.display())
        }
        (Destination::Path(dest), _) => format!("nothing was written at `{}`", dest.display()),
        (Destination::Registry(reference), _) => format!(
            "the tag `{}` of `{reference}` was left where it was (what was pushed is referenced \
            by no tag)",
            output.tag().unwrap_or("latest")
        ),
        _ => "nothing was written to standard output".to_string(),
    };
    let written =
        verified_spool.as_ref().or(staged.as_ref().map(StagedOutput::output)).unwrap_or(&output);
    let executed = exit::writing(|| planned.execute(written, &output, &context, shown));
    progress.finish();
    // The summary is made before a verification, which needs the memory the plan holds.
    let Executed { mut text, digest, pushed } = executed?;
    if let (Some(summary), Some(packed)) = (text.as_mut(), output.archive_compression()) {
        summary.push_str(&format!("  archive compressed with {packed}, as its name asks\n"));
    }
    let subject = planned.into_subject();
    if args.verify {
        // Read back from the stage or spool, or from the registry by the digest pushed.
        let reference = match written.path() {
            Some(path) => written_reference(path, written.format_for(subject.format())),
            None => pushed.context("--verify: the push names no image to read back")?,
        };
        let reading = OpenOptions::default().with_registry(output.registry_options().clone());
        let back = (reference.as_str(), &reading);
        let verified = match &subject {
            SubjectRef::Image(image) => {
                verify_output(image, back, &options, &context, &left)?;
                "verified: the written image's root filesystem equals the input's".to_string()
            }
            SubjectRef::Index(index) => {
                let images = verify_index_output(index, back, &options, &context, &left)?;
                format!(
                    "verified: the root filesystem of each of the {images} written images \
                    equals the input's"
                )
            }
        };
        if !verbosity.quiet {
            note(&verified);
        }
        if let (Some(path), Some(_)) = (written.path(), &verified_spool) {
            exit::copy_to_stdout(path)?;
        }
        if let Some(staged) = staged {
            staged.put_in_place(&digest, options.lock_timeout, &context)?;
        }
    }
    if to_stdout {
        exit::end_image_on_stdout()?;
    }
    summary(text, to_stdout);
    Ok(ExitCode::SUCCESS)
}

/// What a squash reads: one image, or an image index whose every platform it writes.
enum Subject {
    Image(Box<Image>),
    Index(Box<ImageIndex>),
}

/// What was read, with its plan.
enum Planned<'a> {
    Image(&'a Image, SquashPlan),
    Index(&'a ImageIndex, IndexPlan),
}

/// What a run wrote: its summary (as shown), the digest of its manifest or index, and the
/// image a push names by digest.
struct Executed {
    text: Option<String>,
    digest: squash::Digest,
    pushed: Option<String>,
}

/// How a run's summary is shown.
#[derive(Clone, Copy)]
enum Shown {
    Json,
    Text,
    Nothing,
}

impl<'a> Planned<'a> {
    /// The plan as text.
    fn text(&self) -> String {
        match self {
            Planned::Image(image, plan) => {
                render::plan(image, plan)
                    + &render::excludes_unmatched(&plan.options.excludes, &plan.excluded())
            }
            Planned::Index(index, plan) => render::index_plan(index, plan),
        }
    }

    /// The plan as JSON.
    fn json(&self) -> Result<String> {
        match self {
            Planned::Image(image, plan) => json_line(&PlanDocument::new(image, plan)),
            Planned::Index(index, plan) => json_line(&IndexPlanDocument::new(index, plan)),
        }
    }

    /// Writes to `written`: the summary of what was written, shown as asked and naming
    /// `output` (standard output, for an image spooled there once verified), with the digest
    /// of the manifest or index written and the image a push names by digest.
    fn execute(
        &self,
        written: &Output,
        output: &Output,
        context: &Context<'_>,
        shown: Shown,
    ) -> Result<Executed> {
        // Written to a spool or a stage, the image is named by where it goes.
        let named = if output.is_stdout() {
            Some("-".to_string())
        } else {
            output.path().filter(|_| written != output).map(|p| p.display().to_string())
        };
        Ok(match self {
            Planned::Image(image, plan) => {
                let mut outcome = plan.execute_in(image, written, context)?;
                outcome.output = named.unwrap_or(outcome.output);
                let (digest, pushed) = (outcome.manifest_digest.clone(), outcome.pushed.clone());
                let text = match shown {
                    Shown::Json => Some(json_line(&OutcomeDocument::new(image, outcome))?),
                    Shown::Text => Some(render::outcome(image, plan, &outcome)),
                    Shown::Nothing => None,
                };
                Executed { text, digest, pushed }
            }
            Planned::Index(index, plan) => {
                let mut outcome = plan.execute_in(index, written, context)?;
                outcome.output = named.unwrap_or(outcome.output);
                let (digest, pushed) = (outcome.index_digest.clone(), outcome.pushed.clone());
                let text = match shown {
                    Shown::Json => Some(json_line(&IndexOutcomeDocument::new(index, outcome))?),
                    Shown::Text => Some(render::index_outcome(&outcome)),
                    Shown::Nothing => None,
                };
                Executed { text, digest, pushed }
            }
        })
    }

    /// What was read, the plan dropped (its memory is needed to verify the output).
    fn into_subject(self) -> SubjectRef<'a> {
        match self {
            Planned::Image(image, _) => SubjectRef::Image(image),
            Planned::Index(index, _) => SubjectRef::Index(index),
        }
    }
}

/// What was read, once the plan is gone.
enum SubjectRef<'a> {
    Image(&'a Image),
    Index(&'a ImageIndex),
}

impl SubjectRef<'_> {
    fn format(&self) -> squash::InputFormat {
        match self {
            SubjectRef::Image(image) => image.format(),
            SubjectRef::Index(index) => index.format(),
        }
    }
}

impl<'a> From<&'a Subject> for SubjectRef<'a> {
    fn from(subject: &'a Subject) -> SubjectRef<'a> {
        match subject {
            Subject::Image(image) => SubjectRef::Image(image),
            Subject::Index(index) => SubjectRef::Index(index),
        }
    }
}

/// Prints a run's summary, if any: on stdout, or on stderr when the image went to stdout.
fn summary(text: Option<String>, image_on_stdout: bool) {
    match text {
        Some(text) if image_on_stdout => note(text.trim_end()),
        Some(text) => out(&text).unwrap_or(()),
        None => {}
    }
}

/// The reference that reads back what was written at `path` in `format`.
fn written_reference(path: &Path, format: OutputFormat) -> String {
    format!("{format}:{}", path.display())
}

/// `--verify`: reads the image just written (staged, or spooled for a stream) and compares its
/// filesystem with the input's; on a difference, fails saying what was `left` at the output.
fn verify_output(
    image: &Image,
    (reference, reading): (&str, &OpenOptions),
    options: &SquashOptions,
    context: &Context<'_>,
    left: &str,
) -> Result<()> {
    let written = Image::open_with(reference, reading)
        .with_context(|| format!("--verify: reading back `{reference}`; {left}"))?;
    match compare_written(image, &written, options, true, context)? {
        None => Ok(()),
        Some(shown) => fail_verification(
            left,
            "the written image's filesystem differs from the input's",
            &shown,
        ),
    }
}

/// `--verify` of an index: every image written is read back and compared with the input's
/// image at the same place in the index (squashed or copied, the same platform); on a
/// difference, the run fails naming the platform and saying what was `left` at the output.
fn verify_index_output(
    index: &ImageIndex,
    (reference, reading): (&str, &OpenOptions),
    options: &SquashOptions,
    context: &Context<'_>,
    left: &str,
) -> Result<usize> {
    let written = match Opened::open_with(reference, reading)
        .with_context(|| format!("--verify: reading back `{reference}`; {left}"))?
    {
        Opened::Index(written) => written,
        Opened::Image(_) => {
            return fail_verification(
                left,
                "the output holds one image where the input is an index",
                "",
            )
        }
    };
    let (inputs, outputs) = (index.images(), written.images());
    let count = inputs.len();
    if inputs.len() != outputs.len() {
        let what = format!(
            "the output holds {} images where the input's index holds {}",
            outputs.len(),
            inputs.len()
        );
        return fail_verification(left, &what, "");
    }
    for (input, out) in inputs.into_iter().zip(outputs) {
        let platform = |i: &Image| {
            i.platform()
                .map(ToString::to_string)
                .unwrap_or_else(|| "an image without a platform".into())
        };
        if input.platform() != out.platform() {
            let what = format!(
                "the output lists {} where the input lists {}",
                platform(out),
                platform(input)
            );
            return fail_verification(left, &what, "");
        }
        // An image copied as it was (the same manifest) kept what --exclude names.
        let squashed = input.manifest_digest() != out.manifest_digest();
        if let Some(shown) = compare_written(input, out, options, squashed, context)? {
            let what = format!(
                "{}: the written image's filesystem differs from the input's",
                platform(input)
            );
            return fail_verification(left, &what, &shown);
        }
    }
    Ok(count)
}

/// The first lines of what differs between `image`'s filesystem and `written`'s (less what
/// `--exclude` removed when it was `squashed`; mtimes left out with `--rewrite-timestamp`), or
/// `None` when equal.
fn compare_written(
    image: &Image,
    written: &Image,
    options: &SquashOptions,
    squashed: bool,
    context: &Context<'_>,
) -> Result<Option<String>> {
    let ignore: Vec<Attribute> =
        if options.rewrite_timestamp { vec![Attribute::Mtime] } else { Vec::new() };
    let mut expected = image.tree_in(context)?;
    if squashed {
        // What --exclude removed is not expected back.
        let excludes = squash::Excludes::new(&options.excludes)?;
        expected.entries.retain(|path, entry| {
            excludes.covering(path, entry.kind == squash::EntryKind::Dir).is_none()
        });
    }
    let diff = diff_trees(&expected, &written.tree_in(context)?, &ignore);
    if diff.is_empty() {
        return Ok(None);
    }
    let text = render::diff(&diff, &ignore);
    Ok(Some(text.lines().take(20).collect::<Vec<_>>().join("\n")))
}

/// Fails with `what`, what was `left` at the output (the image read back is in a stage or a
/// spool, which go when the run ends), and the lines `shown`.
fn fail_verification<T>(left: &str, what: &str, shown: &str) -> Result<T> {
    bail!("--verify: {what}; {left}{}{shown}", if shown.is_empty() { "" } else { ":\n" })
}
