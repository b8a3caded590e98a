//! Opening what the user named: one image, an image index, or every image of an index one after
//! the other; the `--base` images; and the scratch directory a command needs when it reads or
//! writes a stream.

use std::path::Path;

use anyhow::{anyhow, bail, Context as _, Result};
use squash::{Image, ImageIndex, ImageReference, OpenOptions, Opened, Platform};

use crate::args::{ImageArgs, RegistryArgs, SelectArgs};
use crate::{exit, options};

/// The entries of a list file (`--from-file`): one per line, its words, blank lines and `#`
/// comments skipped.
pub fn list_entries(file: &Path) -> Result<Vec<Vec<String>>> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("--from-file `{}`", file.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect())
}

/// With `--from-file LIST --index N`, the image of line N of the list (and its output, the
/// line's second word), set into `args` as if typed; `None` without `--from-file`.
pub fn from_list(args: &mut ImageArgs) -> Result<Option<Option<String>>> {
    let (Some(file), Some(index)) = (&args.from_file, args.index) else { return Ok(None) };
    let entries = list_entries(file)?;
    let entry = entries.get(index).ok_or_else(|| {
        anyhow!(
            "--index {index}: `{}` lists {} images (numbered from 0)",
            file.display(),
            entries.len()
        )
    })?;
    if entry.len() > 2 {
        bail!(
            "`{}`, image {index}: a line is `IMAGE [OUTPUT]`, not {} words",
            file.display(),
            entry.len()
        );
    }
    args.image = entry.first().cloned();
    Ok(Some(entry.get(1).cloned()))
}

/// The `--platform`s given.
pub fn platforms(args: &ImageArgs) -> Result<Vec<Platform>> {
    args.platform.iter().map(|p| p.parse::<Platform>().map_err(|e| anyhow!(e))).collect()
}

/// The one `--platform` a command that reads one image takes, if given.
pub fn one_platform(args: &ImageArgs, what: &str) -> Result<Option<Platform>> {
    let mut platforms = platforms(args)?;
    if platforms.len() > 1 {
        bail!("{what} takes one --platform, not {}", platforms.len());
    }
    Ok(platforms.pop())
}

/// How to open an input: cancellable while spooling, spooled into `scratch` when given, its
/// registry reached as `registry` says.
pub fn open_options(scratch: Option<&Path>, registry: &RegistryArgs) -> OpenOptions {
    let options = OpenOptions::default()
        .with_cancel(exit::cancelled)
        .with_registry(options::registry(registry));
    match scratch {
        Some(dir) => options.with_tmp_dir(dir),
        None => options,
    }
}

/// Opens the image; one on standard input or a pipe is spooled into `scratch`.
pub fn open(args: &ImageArgs, scratch: Option<&Path>) -> Result<Image> {
    let reference = args.image.as_deref().ok_or_else(|| anyhow!("no image given (see --help)"))?;
    let mut options = open_options(scratch, &args.registry);
    if let Some(p) = one_platform(args, "this command")? {
        options = options.with_platform(p);
    }
    // A signal meanwhile ends the process at once: the spool is in the scratch directory, which
    // goes with it.
    Ok(Image::open_with(reference, &options)?)
}

/// Opens the image or, when the reference names one, the whole image index.
pub fn open_any(args: &ImageArgs, scratch: Option<&Path>) -> Result<Opened> {
    let reference = args.image.as_deref().ok_or_else(|| anyhow!("no image given (see --help)"))?;
    Ok(Opened::open_with(reference, &open_options(scratch, &args.registry))?)
}

/// The `--base` images, each an image or an index (the image of each platform is taken from
/// it).
pub fn bases(args: &SelectArgs, registry: &RegistryArgs) -> Result<Vec<Opened>> {
    let options = open_options(None, registry);
    args.base
        .iter()
        .map(|b| {
            Opened::open_with(b, &options).with_context(|| format!("opening base image `{b}`"))
        })
        .collect()
}

/// The `--base` images of a squash of one image.
pub fn base_images(args: &SelectArgs, registry: &RegistryArgs) -> Result<Vec<Image>> {
    let options = open_options(None, registry);
    args.base
        .iter()
        .map(|b| Image::open_with(b, &options).with_context(|| format!("opening base image `{b}`")))
        .collect()
}

/// Whether `reference` names standard input or a pipe, which are spooled.
pub fn is_stream(reference: Option<&str>) -> bool {
    reference.and_then(|r| r.parse::<ImageReference>().ok()).is_some_and(|r| r.is_stream())
}

/// The scratch directory a command needs when it reads or writes a stream.
pub fn scratch_for(args: &ImageArgs, writes_stream: bool) -> Result<Option<tempfile::TempDir>> {
    if writes_stream || is_stream(args.image.as_deref()) {
        return exit::scratch(args.tmp_dir.as_deref()).map(Some);
    }
    Ok(None)
}

/// The images a command that reads one image at a time works on: the one image, or without
/// `--platform` every image of an index (with the index).
pub fn images_to_read(
    args: &ImageArgs,
    scratch: Option<&Path>,
) -> Result<(Option<ImageIndex>, Vec<Image>)> {
    if one_platform(args, "this command")?.is_some() {
        return Ok((None, vec![open(args, scratch)?]));
    }
    match open_any(args, scratch)? {
        Opened::Image(image) => Ok((None, vec![*image])),
        Opened::Index(index) => {
            let images = index
                .images()
                .into_iter()
                .map(|i| index.select(i.platform()))
                .collect::<squash::Result<Vec<_>>>()?;
            Ok((Some(*index), images))
        }
    }
}
