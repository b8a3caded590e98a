//! Where the new image goes: output references parsed ([`Output`]: a file, a layout directory,
//! standard output or a registry, the container format and the tag), the format an output gets
//! from its input when it names none, and the guard that no output touches a file of an input.

use std::fs;
use std::path::{Component, Path, PathBuf};

use crate::codec::compression::Compression;
use crate::error::{Error, Location, ParseError, Result};
use crate::read::image::{Image, InputFormat};
use crate::read::image_index::ImageIndex;
use crate::read::reference::remote_transport;
use crate::registry::options::RegistryOptions;
use crate::registry::reference::{RegistryReference, SCHEME};

/// The container to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputFormat {
    /// An OCI image-layout directory; an existing layout gets the image added under its tag.
    OciLayout,
    /// A tar of an OCI image layout.
    OciArchive,
    /// A `docker save` tarball that `docker load`, skopeo and podman read.
    DockerArchive,
}

impl std::fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OutputFormat::OciLayout => "oci",
            OutputFormat::OciArchive => "oci-archive",
            OutputFormat::DockerArchive => "docker-archive",
        })
    }
}

impl std::str::FromStr for OutputFormat {
    type Err = ParseError;
    fn from_str(s: &str) -> std::result::Result<OutputFormat, ParseError> {
        parse_format(s).map_err(|message| ParseError::new("output format", s, message))
    }
}

fn parse_format(s: &str) -> std::result::Result<OutputFormat, String> {
    match s {
        "oci" | "oci-layout" => Ok(OutputFormat::OciLayout),
        "oci-archive" => Ok(OutputFormat::OciArchive),
        "docker-archive" | "docker" => Ok(OutputFormat::DockerArchive),
        other => Err(format!(
            "unknown output format `{other}` (expected oci, oci-archive or docker-archive)"
        )),
    }
}

impl OutputFormat {
    /// The format of an output that names none, for an image read from `input`: the input's
    /// own container (a `dir:` input, or an image from a registry, becomes an OCI layout).
    pub fn like(input: InputFormat) -> OutputFormat {
        match input {
            InputFormat::DockerArchive => OutputFormat::DockerArchive,
            InputFormat::OciArchive => OutputFormat::OciArchive,
            InputFormat::OciLayout | InputFormat::Dir | InputFormat::Registry => {
                OutputFormat::OciLayout
            }
        }
    }
}

/// Where the bytes of the new image go.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Destination {
    /// A file (an archive) or a directory (an OCI layout).
    Path(PathBuf),
    /// Standard output: an archive written front to back, as `docker load` and `podman load`
    /// read it.
    Stdout,
    /// A repository of a registry (untagged; the output's tag is the one put).
    Registry(RegistryReference),
}

/// Where and how to write the new image.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Output {
    destination: Destination,
    format: Option<OutputFormat>,
    tag: Option<String>,
    registry: RegistryOptions,
    compression: Option<Compression>,
    /// A push that leaves its tag to be put later ([`crate::StagedOutput`]).
    hold_tag: bool,
}

impl Output {
    /// An output at `path` in `format`, untagged.
    ///
    /// ```
    /// use squash::{Output, OutputFormat};
    ///
    /// let output = Output::new("out", OutputFormat::OciLayout).with_tag("app");
    /// assert_eq!(output.tag(), Some("app"));
    /// ```
    pub fn new(path: impl Into<PathBuf>, format: OutputFormat) -> Output {
        Output {
            destination: Destination::Path(path.into()),
            format: Some(format),
            tag: None,
            registry: RegistryOptions::default(),
            compression: None,
            hold_tag: false,
        }
    }

    /// The same output at another path.
    pub(crate) fn at_path(&self, path: PathBuf) -> Output {
        Output { destination: Destination::Path(path), ..self.clone() }
    }

    /// The same push, its tag left for later: the image is put by digest only.
    #[cfg(feature = "registry")]
    pub(crate) fn holding_tag(&self) -> Output {
        Output { hold_tag: true, ..self.clone() }
    }

    /// Whether a push leaves its tag for later.
    pub(crate) fn holds_tag(&self) -> bool {
        self.hold_tag
    }

    /// A push to the repository `reference` names, under its tag (`latest` when it names
    /// none), reached as [`RegistryOptions::default`] says until [`Output::with_registry`].
    pub fn registry(reference: &RegistryReference) -> Output {
        let tag = reference.tag.clone().unwrap_or_else(|| "latest".to_string());
        Output {
            destination: Destination::Registry(reference.with_repository(&reference.repository)),
            format: None,
            tag: Some(tag),
            registry: RegistryOptions::default(),
            compression: None,
            hold_tag: false,
        }
    }

    /// This output, an archive, compressed with `compression` as a whole (as `docker save |
    /// gzip` makes it, which `docker load` and `podman load` read); `None` for a plain tar.
    pub fn with_archive_compression(mut self, compression: Option<Compression>) -> Output {
        self.compression = compression;
        self
    }

    /// How the archive is compressed as a whole, if it is: [`Output::parse`] takes it from the
    /// name (`.gz`, `.tgz`: gzip; `.zst`, `.tzst`: zstd).
    pub fn archive_compression(&self) -> Option<Compression> {
        self.compression.filter(|_| self.format != Some(OutputFormat::OciLayout))
    }

    /// The compression the file name asks for, and an archive format for a name that ends as
    /// an archive's does.
    fn named_compression(mut self) -> Output {
        let Destination::Path(path) = &self.destination else { return self };
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_ascii_lowercase();
        self.compression = if name.ends_with(".gz") || name.ends_with(".tgz") {
            Some(Compression::Gzip)
        } else if name.ends_with(".zst") || name.ends_with(".tzst") || name.ends_with(".zstd") {
            Some(Compression::Zstd)
        } else {
            None
        };
        self
    }

    /// Whether the destination's name is an archive's (`.tar`, `.tar.gz`, `.tgz`, `.tar.zst`).
    fn named_as_archive(&self) -> bool {
        let Destination::Path(path) = &self.destination else { return false };
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_ascii_lowercase();
        [".tar", ".tar.gz", ".tgz", ".tar.zst", ".tzst", ".tar.zstd"]
            .iter()
            .any(|e| name.ends_with(e))
    }

    /// This output reaching its registry as `options` say.
    pub fn with_registry(mut self, options: RegistryOptions) -> Output {
        self.registry = options;
        self
    }

    /// How the output's registry is reached.
    pub fn registry_options(&self) -> &RegistryOptions {
        &self.registry
    }

    /// An archive of `format` on standard output.
    pub fn stdout(format: OutputFormat) -> Output {
        Output {
            destination: Destination::Stdout,
            format: Some(format),
            tag: None,
            registry: RegistryOptions::default(),
            compression: None,
            hold_tag: false,
        }
    }

    /// This output with `tag`: an OCI `org.opencontainers.image.ref.name`, or `NAME:TAG` for a
    /// docker archive's `RepoTags`.
    pub fn with_tag(mut self, tag: impl Into<String>) -> Output {
        self.tag = Some(tag.into());
        self
    }

    /// Refuses an output whose directory does not exist: what can be checked before any input
    /// is opened.
    pub fn check_destination(&self) -> Result<()> {
        match &self.destination {
            Destination::Path(path) => check_directory(path),
            _ => Ok(()),
        }
    }

    /// Refuses, before anything is read or planned, an output that would touch a file of
    /// `image` (or replace its own tag, or move the tag a registry input was read by), or whose
    /// directory does not exist.
    pub fn check_against(&self, image: &Image) -> Result<()> {
        let format = self.format_for(image.format());
        self.check_inputs(&[Input::image(image)], default_tag(image.name(), format), format)
    }

    /// [`Output::check_against`] for an image index.
    pub fn check_against_index(&self, index: &ImageIndex) -> Result<()> {
        let format = self.format_for(index.format());
        self.check_inputs(&[Input::index(index)], default_tag(index.name(), format), format)
    }

    fn check_inputs(
        &self,
        inputs: &[Input<'_>],
        default: Option<String>,
        format: OutputFormat,
    ) -> Result<()> {
        let tag = self.tag.clone().or(default);
        match &self.destination {
            Destination::Path(path) => {
                check_directory(path)?;
                check_not_inside_inputs(path, format, tag.as_deref(), inputs)
            }
            Destination::Registry(reference) => {
                check_tag_not_moved(reference, tag.as_deref(), inputs)
            }
            Destination::Stdout => Ok(()),
        }
    }

    /// This output with `tag` when it names none.
    pub(crate) fn or_tag(mut self, tag: Option<String>) -> Output {
        if self.tag.is_none() {
            self.tag = tag;
        }
        self
    }

    /// This output in `format`.
    pub fn with_format(mut self, format: OutputFormat) -> Output {
        self.format = Some(format);
        self
    }

    /// Parses `oci:PATH[:TAG]`, `oci-archive:PATH[:TAG]`, `docker-archive:PATH[:NAME:TAG]`,
    /// `docker://HOST/REPO[:TAG]` (a push, see [`Output::registry`]), a bare path, or `-`
    /// (standard output; `docker-archive:-[:NAME:TAG]` and `oci-archive:-[:TAG]` name its
    /// format). Without a format named, the output takes the
    /// input's ([`Output::format_for`]).
    ///
    /// ```
    /// use squash::{InputFormat, Output, OutputFormat};
    ///
    /// let out = Output::parse("docker-archive:-:app:squashed")?;
    /// assert!(out.is_stdout());
    /// assert_eq!(out.format(), Some(OutputFormat::DockerArchive));
    /// assert_eq!(out.tag(), Some("app:squashed"));
    /// let bare = Output::parse("out")?;
    /// assert_eq!(bare.format_for(InputFormat::OciLayout), OutputFormat::OciLayout);
    /// # Ok::<(), squash::ParseError>(())
    /// ```
    pub fn parse(s: &str) -> std::result::Result<Output, ParseError> {
        parse_output(s).map_err(|message| ParseError::new("output", s, message))
    }

    /// Where the bytes go.
    pub fn destination(&self) -> &Destination {
        &self.destination
    }

    /// The file or directory written, unless the output is standard output or a registry.
    pub fn path(&self) -> Option<&Path> {
        match &self.destination {
            Destination::Path(path) => Some(path),
            Destination::Stdout | Destination::Registry(_) => None,
        }
    }

    /// Whether the image goes to standard output.
    pub fn is_stdout(&self) -> bool {
        self.destination == Destination::Stdout
    }

    /// The format the output names, if it names one.
    pub fn format(&self) -> Option<OutputFormat> {
        self.format
    }

    /// The tag it names, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The format written for an image read from `input`: the one named, else the input's own
    /// container (an OCI archive, though, for a layout input written to a name that ends as an
    /// archive's, `.tar` or `.tar.gz`); on standard output a docker archive unless the input is
    /// an OCI archive; to a registry, what an OCI layout holds (manifests and blobs).
    pub fn format_for(&self, input: InputFormat) -> OutputFormat {
        match (self.format, &self.destination) {
            (_, Destination::Registry(_)) => OutputFormat::OciLayout,
            (Some(format), _) => format,
            (None, Destination::Stdout) if input == InputFormat::OciArchive => {
                OutputFormat::OciArchive
            }
            (None, Destination::Stdout) => OutputFormat::DockerArchive,
            // A name that ends as an archive's gets one, whatever the input's container.
            (None, Destination::Path(_))
                if self.named_as_archive()
                    && OutputFormat::like(input) == OutputFormat::OciLayout =>
            {
                OutputFormat::OciArchive
            }
            (None, Destination::Path(_)) => OutputFormat::like(input),
        }
    }

    /// How the output is shown in messages and outcomes: its path, `-`, or the reference.
    pub(crate) fn shown(&self) -> String {
        match &self.destination {
            Destination::Path(path) => path.display().to_string(),
            Destination::Stdout => "-".into(),
            Destination::Registry(reference) => match &self.tag {
                Some(tag) => format!("{reference}:{tag}"),
                None => reference.to_string(),
            },
        }
    }

    /// For a push, the image written as `docker://HOST/REPO@DIGEST`.
    pub(crate) fn pushed(&self, digest: &crate::digest::Digest) -> Option<String> {
        match &self.destination {
            Destination::Registry(reference) => Some(reference.by_digest(digest).to_string()),
            _ => None,
        }
    }

    /// Where errors about the output point.
    pub(crate) fn location(&self) -> Location {
        match &self.destination {
            Destination::Path(path) => Location::file(path),
            Destination::Stdout => Location::file("<standard output>"),
            Destination::Registry(reference) => Location::file(reference.to_string()),
        }
    }
}

fn parse_output(s: &str) -> std::result::Result<Output, String> {
    if s.starts_with(SCHEME) {
        let reference = RegistryReference::parse(s).map_err(|e| e.to_string())?;
        if reference.digest.is_some() {
            return Err(format!(
                "`{s}`: a push is named by a tag; its digest is the new manifest's, not chosen"
            ));
        }
        return Ok(Output::registry(&reference));
    }
    let prefixes = [
        ("oci-archive:", OutputFormat::OciArchive),
        ("oci:", OutputFormat::OciLayout),
        ("docker-archive:", OutputFormat::DockerArchive),
    ];
    for (prefix, format) in prefixes {
        let Some(rest) = s.strip_prefix(prefix) else { continue };
        let (path, tag) = match rest.split_once(':') {
            Some((p, t)) => (p, Some(t.to_string())),
            None => (rest, None),
        };
        if path.is_empty() {
            return Err(format!("`{s}` names no path"));
        }
        if tag.as_deref() == Some("") {
            return Err(format!(
                "`{s}` ends with an empty tag; give one after the colon or drop the colon"
            ));
        }
        if format != OutputFormat::OciLayout {
            unwritten_compression(s, path)?;
        }
        let destination = if path == "-" {
            if format == OutputFormat::OciLayout {
                return Err(format!(
                    "`{s}`: standard output takes an archive: docker-archive or \
                    oci-archive, not an OCI layout"
                ));
            }
            Destination::Stdout
        } else {
            Destination::Path(PathBuf::from(path))
        };
        return Ok(Output {
            destination,
            format: Some(format),
            tag,
            registry: RegistryOptions::default(),
            compression: None,
            hold_tag: false,
        }
        .named_compression());
    }
    if s.is_empty() {
        return Err("empty output path".into());
    }
    if s == "-" {
        return Ok(Output {
            destination: Destination::Stdout,
            format: None,
            tag: None,
            registry: RegistryOptions::default(),
            compression: None,
            hold_tag: false,
        });
    }
    if let Some((name, what)) = remote_transport(s) {
        return Err(format!(
            "`{s}`: the `{name}` transport ({what}) is not written by squash, which writes files, \
             layouts and registries (`docker://HOST/REPO:TAG`): write a file (`-o app.tar`) and \
             load it with `docker load -i app.tar` or `podman load -i app.tar`"
        ));
    }
    unwritten_compression(s, s)?;
    Ok(Output {
        destination: Destination::Path(PathBuf::from(s)),
        format: None,
        tag: None,
        registry: RegistryOptions::default(),
        compression: None,
        hold_tag: false,
    }
    .named_compression())
}

/// Refuses an output `path` (given as `s`) whose name asks for a compression squash reads in an
/// archive but does not write (xz, bzip2), rather than writing a plain tar under that name.
fn unwritten_compression(s: &str, path: &str) -> std::result::Result<(), String> {
    let name = Path::new(path).file_name().and_then(|n| n.to_str()).unwrap_or("");
    let name = name.to_ascii_lowercase();
    let Some(codec) = [(".xz", "xz"), (".txz", "xz"), (".bz2", "bzip2"), (".tbz2", "bzip2")]
        .iter()
        .find_map(|(ext, codec)| name.ends_with(ext).then_some(*codec))
    else {
        return Ok(());
    };
    Err(format!(
        "`{s}`: squash reads {codec}-compressed archives but writes them plain, gzip- or \
         zstd-compressed (`.tar`, `.tar.gz`, `.tar.zst`); for {codec}, write to standard output \
         and compress it: `-o - | {codec} > {path}`"
    ))
}

/// The tag carried over from the input (named `name` there) when none is given: the name as
/// it is (`localhost/app:latest` stays whole, as podman and skopeo write and read it), except
/// that a `docker save` tarball's `RepoTags` need `NAME:TAG`.
pub(crate) fn default_tag(name: Option<&str>, format: OutputFormat) -> Option<String> {
    let name = name.filter(|n| !n.is_empty() && !n.starts_with('@'))?;
    match format {
        OutputFormat::DockerArchive => name.contains(':').then(|| name.to_string()),
        _ => Some(name.to_string()),
    }
}

/// An image read by the run, which its output must not touch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Input<'p> {
    /// Where it is read from.
    pub path: &'p Path,
    /// The path it was given as: `path`, unless it is read through a temporary copy.
    pub source: &'p Path,
    /// The tag the image was chosen by in its layout, if any.
    pub tag: Option<&'p str>,
}

impl<'p> Input<'p> {
    /// The input `image`.
    pub(crate) fn image(image: &'p Image) -> Input<'p> {
        Input { path: image.path(), source: image.source(), tag: image.name() }
    }

    /// The input `index`.
    pub(crate) fn index(index: &'p ImageIndex) -> Input<'p> {
        Input { path: index.path(), source: index.source(), tag: index.name() }
    }
}

/// Refuses a push to the repository `reference` names under `tag` when an input was read by that
/// very tag: the push would move it.
pub(crate) fn check_tag_not_moved(
    reference: &RegistryReference,
    tag: Option<&str>,
    inputs: &[Input<'_>],
) -> Result<()> {
    let shown = PathBuf::from(reference.with_repository(&reference.repository).to_string());
    match (tag, inputs.iter().any(|i| i.path == shown && i.tag == tag)) {
        (Some(tag), true) => Err(Error::Output {
            location: Location::file(&shown),
            reason: format!("would move the input's own tag `{tag}`; push under another tag"),
        }),
        _ => Ok(()),
    }
}

/// Refuses an output whose directory does not exist (or is not a directory).
pub(crate) fn check_directory(dest: &Path) -> Result<()> {
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => return Ok(()),
    };
    match fs::metadata(parent) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::Output {
            location: Location::file(dest),
            reason: format!("`{}` is not a directory", parent.display()),
        }),
        Err(_) => Err(Error::Output {
            location: Location::file(dest),
            reason: format!("the output directory `{}` does not exist", parent.display()),
        }),
    }
}

/// Refuses an output at `dest` (in `format`, tagged `tag`) that would create, replace or rename
/// over a file of an input.
pub(crate) fn check_not_inside_inputs(
    dest: &Path,
    format: OutputFormat,
    tag: Option<&str>,
    inputs: &[Input<'_>],
) -> Result<()> {
    let resolved = resolve(dest);
    // An input read through a temporary copy (a pipe, a compressed archive) is checked under the
    // path it was given as, too.
    for (input, path) in inputs.iter().flat_map(|i| [(i, i.path), (i, i.source)]) {
        let Ok(source) = fs::canonicalize(path) else { continue };
        let location = || Location::file(dest);
        if resolved == source {
            let same_layout = format == OutputFormat::OciLayout
                && source.is_dir()
                && source.join("oci-layout").is_file();
            if !same_layout {
                return Err(Error::Output {
                    location: location(),
                    reason: format!("would overwrite the input `{}`", path.display()),
                });
            }
            if tag.is_some() && tag == input.tag {
                return Err(Error::Output {
                    location: location(),
                    reason: format!(
                        "would replace the input's own tag `{}` in `{}`; write under another tag",
                        input.tag.unwrap_or_default(),
                        path.display()
                    ),
                });
            }
        } else if resolved.starts_with(&source) {
            return Err(Error::Output {
                location: location(),
                reason: format!(
                    "is inside the input `{}`; writing there would change the input",
                    path.display()
                ),
            });
        }
    }
    Ok(())
}

/// `path` with symlinks and `..` resolved, also when its last components do not exist yet.
fn resolve(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(path)).unwrap_or_else(|_| path.to_path_buf())
    };
    let mut existing = absolute.clone();
    let mut missing: Vec<std::ffi::OsString> = Vec::new();
    loop {
        if let Ok(mut resolved) = fs::canonicalize(&existing) {
            for part in missing.iter().rev() {
                match Path::new(part).components().next() {
                    Some(Component::ParentDir) => {
                        resolved.pop();
                    }
                    Some(Component::Normal(name)) => resolved.push(name),
                    _ => {}
                }
            }
            return resolved;
        }
        match existing.file_name() {
            Some(name) => missing.push(name.to_os_string()),
            None if existing.ends_with("..") => missing.push("..".into()),
            None => {}
        }
        if !existing.pop() {
            return absolute;
        }
    }
}
