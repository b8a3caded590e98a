//! The library's error type: every failure names where it happened (file, blob or layer, entry).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::digest::Digest;

/// Where an error happened: the input or output file, the blob or layer inside it, and the entry
/// inside that layer. Rendered as `app.tar: layer 3 (sha256:ab12…): usr/bin/x`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Location {
    /// The file or directory on disk.
    pub file: Option<PathBuf>,
    /// The blob, layer or member inside the file, already rendered (`layer 3 (sha256:…)`).
    pub part: Option<String>,
    /// The tar entry inside a layer, rendered lossily when it is not UTF-8.
    pub entry: Option<String>,
}

impl Location {
    /// A location that names only a file.
    pub fn file(path: impl AsRef<Path>) -> Location {
        Location { file: Some(path.as_ref().to_path_buf()), ..Location::default() }
    }

    /// The same location, inside `part` (a blob, layer or archive member).
    pub fn part(mut self, part: impl Into<String>) -> Location {
        self.part = Some(part.into());
        self
    }

    /// The same location, narrowed to `detail` inside its part (`layer 3 (…), diff_id`).
    pub fn within(mut self, detail: impl Into<String>) -> Location {
        let detail = detail.into();
        self.part = Some(match self.part.take() {
            Some(part) => format!("{part}, {detail}"),
            None => detail,
        });
        self
    }

    /// The same location, at the tar entry `entry`.
    pub fn entry(mut self, entry: impl Into<String>) -> Location {
        self.entry = Some(entry.into());
        self
    }

    /// The location of the blob with `digest` inside this file.
    pub fn blob(self, digest: &Digest) -> Location {
        self.part(format!("blob {digest}"))
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(file) = &self.file {
            parts.push(format!("`{}`", file.display()));
        }
        if let Some(part) = &self.part {
            parts.push(part.clone());
        }
        if let Some(entry) = &self.entry {
            parts.push(format!("entry `{entry}`"));
        }
        if parts.is_empty() {
            parts.push("<input>".to_string());
        }
        f.write_str(&parts.join(": "))
    }
}

/// Text that does not parse as what it was meant to be (a platform, an image reference, a
/// layer range, a size, …): what was expected, the text, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    what: &'static str,
    input: String,
    message: String,
}

impl ParseError {
    pub(crate) fn new(what: &'static str, input: &str, message: String) -> ParseError {
        ParseError { what, input: input.to_string(), message }
    }

    /// What the text was meant to be (`platform`, `image reference`, `size`, …).
    pub fn what(&self) -> &'static str {
        self.what
    }

    /// The text.
    pub fn input(&self) -> &str {
        &self.input
    }
}

/// Everything that can go wrong while reading, planning, merging or writing an image.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing failed at the operating-system level.
    #[error("{location}: {source}")]
    Io {
        /// Where.
        location: Location,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A blob's sha256 (or a layer's diff_id) is not the one its descriptor or config states.
    #[error("{location}: digest mismatch: expected {expected}, found {actual}")]
    DigestMismatch {
        /// Where.
        location: Location,
        /// The digest the image claims.
        expected: Digest,
        /// The digest of the bytes actually read.
        actual: Digest,
    },
    /// A blob's size is not the one its descriptor states.
    #[error("{location}: size mismatch: descriptor says {expected} bytes, blob has {actual}")]
    SizeMismatch {
        /// Where.
        location: Location,
        /// The size the descriptor claims.
        expected: u64,
        /// The size actually read.
        actual: u64,
    },
    /// A blob that the image refers to is not there.
    #[error("{location}: missing blob {digest}")]
    MissingBlob {
        /// Where.
        location: Location,
        /// The digest that was looked for.
        digest: Digest,
    },
    /// A tar stream (a layer or an outer archive) is not well-formed.
    #[error("{location}: malformed tar: {reason}")]
    MalformedTar {
        /// Where.
        location: Location,
        /// What is wrong.
        reason: String,
    },
    /// A JSON document (index, manifest, config, `manifest.json`) is not valid or lacks a field.
    #[error("{location}: invalid {what}: {reason}")]
    InvalidDocument {
        /// Where.
        location: Location,
        /// Which kind of document (`image manifest`, `image config`...).
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The input is well-formed but of a kind this tool does not handle.
    #[error("{location}: unsupported: {what}")]
    Unsupported {
        /// Where.
        location: Location,
        /// What is unsupported, and what to do instead when there is something.
        what: String,
    },
    /// The input holds several images, platforms or tags and the choice is ambiguous or wrong.
    #[error("{location}: {reason}")]
    Selection {
        /// Where.
        location: Location,
        /// What could not be chosen, with the candidates.
        reason: String,
    },
    /// The requested layer range or option is invalid for this image.
    #[error("invalid squash range: {reason}")]
    InvalidRange {
        /// What is wrong, with the image's layers when that helps.
        reason: String,
    },
    /// An option is impossible for this image or conflicts with another (a compression level
    /// out of range, a platform the image is not for).
    #[error("{reason}")]
    InvalidOption {
        /// What is wrong, naming the option.
        reason: String,
    },
    /// A registry refused or failed a request, or could not be reached: the location names the
    /// registry, the repository and the request (`docker://HOST/REPO: GET /v2/…`).
    #[error("{location}: {reason}")]
    Registry {
        /// The registry, repository and request.
        location: Location,
        /// What went wrong (the status and what to do, or the transport's error); never a
        /// secret.
        reason: String,
    },
    /// The run was cancelled (by [`crate::Progress::cancelled`]); what it wrote was removed.
    #[error("cancelled; nothing was left at the destination")]
    Cancelled,
    /// The output cannot be written where asked.
    #[error("{location}: {reason}")]
    Output {
        /// Where.
        location: Location,
        /// What is wrong.
        reason: String,
    },
}

/// The location of an error, if it has one: a shared or a mutable reference, as `$error` is.
macro_rules! located {
    ($error:expr) => {
        match $error {
            Error::Io { location, .. }
            | Error::DigestMismatch { location, .. }
            | Error::SizeMismatch { location, .. }
            | Error::MissingBlob { location, .. }
            | Error::MalformedTar { location, .. }
            | Error::InvalidDocument { location, .. }
            | Error::Unsupported { location, .. }
            | Error::Selection { location, .. }
            | Error::Output { location, .. }
            | Error::Registry { location, .. } => Some(location),
            Error::InvalidRange { .. } | Error::InvalidOption { .. } | Error::Cancelled => None,
        }
    };
}

impl Error {
    /// A stable, machine-readable name of the variant (`io`, `digest_mismatch`, …), as the CLI's
    /// JSON errors carry it.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Io { .. } => "io",
            Error::DigestMismatch { .. } => "digest_mismatch",
            Error::SizeMismatch { .. } => "size_mismatch",
            Error::MissingBlob { .. } => "missing_blob",
            Error::MalformedTar { .. } => "malformed_tar",
            Error::InvalidDocument { .. } => "invalid_document",
            Error::Unsupported { .. } => "unsupported",
            Error::Selection { .. } => "selection",
            Error::InvalidRange { .. } => "invalid_range",
            Error::InvalidOption { .. } => "invalid_option",
            Error::Registry { .. } => "registry",
            Error::Cancelled => "cancelled",
            Error::Output { .. } => "output",
        }
    }

    /// Where the error happened, when it is tied to a place.
    pub fn location(&self) -> Option<&Location> {
        located!(self)
    }

    /// The same error, naming `to` where it named the file `from` (a temporary copy of an input
    /// named as the input it was given as).
    pub(crate) fn naming(mut self, from: &Path, to: &Path) -> Error {
        if let Some(location) = located!(&mut self) {
            if location.file.as_deref() == Some(from) {
                location.file = Some(to.to_path_buf());
            }
        }
        self
    }

    /// The same error, saying what was being written (`what`) where a write to a file failed
    /// with nothing more said about where: a full disk names the output, and what of it.
    pub(crate) fn writing(mut self, what: impl FnOnce() -> String) -> Error {
        if let Error::Io { location, .. } = &mut self {
            if location.file.is_some() && location.part.is_none() && location.entry.is_none() {
                location.part = Some(what());
            }
        }
        self
    }

    pub(crate) fn io(location: Location, source: io::Error) -> Error {
        // Errors raised inside adapters (verification at EOF, decoders) travel through `io::Error`;
        // unwrap them so the caller sees the real variant.
        if source.get_ref().is_some_and(|e| e.is::<Error>()) {
            if let Some(Ok(err)) = source.into_inner().map(|inner| inner.downcast::<Error>()) {
                return *err;
            }
            return Error::Io { location, source: io::Error::other("error lost while unwrapping") };
        }
        Error::Io { location, source }
    }

    pub(crate) fn malformed_tar(location: Location, reason: impl Into<String>) -> Error {
        Error::MalformedTar { location, reason: reason.into() }
    }

    pub(crate) fn invalid(
        location: Location,
        what: &'static str,
        reason: impl Into<String>,
    ) -> Error {
        Error::InvalidDocument { location, what, reason: reason.into() }
    }

    pub(crate) fn unsupported(location: Location, what: impl Into<String>) -> Error {
        Error::Unsupported { location, what: what.into() }
    }

    /// Wraps this error into an `io::Error` so that it can cross a `Read`/`Write` boundary and be
    /// recovered intact by [`Error::io`].
    pub(crate) fn into_io(self) -> io::Error {
        io::Error::other(self)
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds a location to `io::Result`s at the point of failure.
pub(crate) trait IoContext<T> {
    fn at(self, location: impl FnOnce() -> Location) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, location: impl FnOnce() -> Location) -> Result<T> {
        self.map_err(|e| Error::io(location(), e))
    }
}
