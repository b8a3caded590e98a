//! Image references in the containers-image transport syntax that skopeo users know: files and
//! layouts, and registries (`docker://`).

use std::path::PathBuf;
use std::str::FromStr;

use crate::registry::reference::{RegistryReference, SCHEME};

/// A transport: how the bytes at a path are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `oci:` an OCI image-layout directory.
    Oci,
    /// `oci-archive:` a tar of an OCI image layout.
    OciArchive,
    /// `docker-archive:` a `docker save` tarball.
    DockerArchive,
    /// `dir:` a containers-image directory.
    Dir,
    /// `docker://` a registry.
    Registry,
}

/// A parsed image reference: transport (or `None` to detect it), path, and the tag or name
/// that selects one image inside.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImageReference {
    /// The transport, when given.
    pub transport: Option<Transport>,
    /// The file or directory.
    pub path: PathBuf,
    /// `TAG` for OCI transports; `NAME:TAG` or `@INDEX` for `docker-archive:`; the tag or
    /// digest for a registry.
    pub name: Option<String>,
    /// The image in a registry, for `docker://`; `path` is then the reference as text.
    pub registry: Option<RegistryReference>,
}

impl ImageReference {
    /// A reference to a bare path with no selector.
    pub fn path(path: impl Into<PathBuf>) -> ImageReference {
        ImageReference { transport: None, path: path.into(), name: None, registry: None }
    }

    /// A reference to an image in a registry.
    pub fn registry(reference: RegistryReference) -> ImageReference {
        ImageReference {
            transport: Some(Transport::Registry),
            path: PathBuf::from(reference.to_string()),
            name: Some(reference.reference()),
            registry: Some(reference),
        }
    }

    /// Whether the image is read from standard input (`-`) or a pipe, and so is spooled to a
    /// temporary file first (see [`crate::OpenOptions::tmp_dir`]).
    pub fn is_stream(&self) -> bool {
        super::spool::wanted(&self.path)
    }
}

impl FromStr for ImageReference {
    type Err = crate::error::ParseError;
    fn from_str(s: &str) -> Result<ImageReference, crate::error::ParseError> {
        parse_reference(s)
            .map_err(|message| crate::error::ParseError::new("image reference", s, message))
    }
}

fn parse_reference(s: &str) -> Result<ImageReference, String> {
    if s.starts_with(SCHEME) {
        return RegistryReference::parse(s)
            .map(ImageReference::registry)
            .map_err(|e| e.to_string());
    }
    let prefixes = [
        ("oci-archive:", Transport::OciArchive),
        ("oci:", Transport::Oci),
        ("docker-archive:", Transport::DockerArchive),
        ("dir:", Transport::Dir),
    ];
    for (prefix, transport) in prefixes {
        if let Some(rest) = s.strip_prefix(prefix) {
            let (path, name) = match (transport, rest.split_once(':')) {
                (Transport::Dir, _) | (_, None) => (rest, None),
                (_, Some((path, name))) => (path, Some(name.to_string())),
            };
            if path.is_empty() {
                return Err(format!("`{s}` names no path"));
            }
            if name.as_deref() == Some("") {
                return Err(format!("`{s}` ends with an empty tag"));
            }
            return Ok(ImageReference {
                transport: Some(transport),
                path: PathBuf::from(path),
                name,
                registry: None,
            });
        }
    }
    if s.is_empty() {
        return Err("empty image reference".into());
    }
    if let Some(hint) = unsupported_transport(s).filter(|_| !std::path::Path::new(s).exists()) {
        return Err(hint);
    }
    Ok(ImageReference::path(s))
}

/// Transports of containers-image and Docker that squash does not read: these get a hint
/// instead of "no such file".
const REMOTE_TRANSPORTS: [(&str, &str); 6] = [
    ("docker-daemon:", "the Docker daemon"),
    ("containers-storage:", "containers-storage (podman, buildah)"),
    ("ostree:", "an ostree repository"),
    ("sif:", "a SIF file"),
    ("registry:", "a registry (spelled `docker://HOST/REPO:TAG`)"),
    ("docker:", "a registry (spelled `docker://HOST/REPO:TAG`)"),
];

/// The transport name and what it names, when `s` starts with a transport that is no file.
pub(crate) fn remote_transport(s: &str) -> Option<(&'static str, &'static str)> {
    let (prefix, what) = REMOTE_TRANSPORTS.iter().find(|(prefix, _)| s.starts_with(prefix))?;
    Some((prefix.trim_end_matches('/').trim_end_matches(':'), what))
}

/// The hint for an input reference whose transport is not a file or layout, if it is one.
fn unsupported_transport(s: &str) -> Option<String> {
    let (name, what) = remote_transport(s)?;
    Some(format!(
        "the `{name}` transport ({what}) is not read by squash, which reads files, layouts and \
         registries (`docker://HOST/REPO:TAG`): export the image first with \
         `docker save IMAGE -o app.tar`, `podman save --format oci-archive IMAGE -o app.tar` or \
         `skopeo copy {s} oci:layout:tag`, then pass that file or `oci:layout:tag`"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_transports() {
        let r: ImageReference = "oci:/tmp/x:latest".parse().unwrap();
        assert_eq!(
            (r.transport, r.path.to_str(), r.name.as_deref()),
            (Some(Transport::Oci), Some("/tmp/x"), Some("latest"))
        );
        let r: ImageReference = "docker-archive:a.tar:repo/app:v1".parse().unwrap();
        assert_eq!(
            (r.transport, r.path.to_str(), r.name.as_deref()),
            (Some(Transport::DockerArchive), Some("a.tar"), Some("repo/app:v1"))
        );
        let r: ImageReference = "oci-archive:a.tar".parse().unwrap();
        assert_eq!((r.transport, r.name), (Some(Transport::OciArchive), None));
        let r: ImageReference = "./some/path.tar".parse().unwrap();
        assert_eq!(r.transport, None);
        assert!("oci:".parse::<ImageReference>().is_err());
        assert!("oci:x:".parse::<ImageReference>().is_err());
        let r: ImageReference = "docker://127.0.0.1:5000/team/app:1".parse().unwrap();
        assert_eq!(
            (r.transport, r.path.to_str(), r.name.as_deref()),
            (Some(Transport::Registry), Some("docker://127.0.0.1:5000/team/app:1"), Some("1"))
        );
        assert!("docker://Bad/Name".parse::<ImageReference>().is_err());
        for remote in ["docker-daemon:app:latest", "containers-storage:app", "docker:alpine"] {
            let error = remote.parse::<ImageReference>().unwrap_err();
            assert_eq!((error.what(), error.input()), ("image reference", remote));
            let message = error.to_string();
            assert!(
                message.contains("docker save") && message.contains("skopeo copy"),
                "{message}"
            );
        }
    }
}
