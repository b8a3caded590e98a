//! Registry references as skopeo and crane spell them: `docker://HOST[:PORT]/REPO[:TAG|@DIGEST]`,
//! with Docker Hub's short names expanded as Docker expands them (`alpine` is
//! `docker.io/library/alpine:latest`, served by `registry-1.docker.io`).

use std::fmt;

use crate::digest::Digest;
use crate::error::ParseError;

/// The scheme of a registry reference.
pub(crate) const SCHEME: &str = "docker://";

/// Docker Hub's name in references, and the host that serves its API.
const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// An image in a registry: where (`registry`, `repository`) and which (a tag, a digest, both or
/// neither).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct RegistryReference {
    /// The registry as named: `HOST[:PORT]` (`docker.io` for Docker Hub).
    pub registry: String,
    /// The repository: `library/alpine`, `team/app`.
    pub repository: String,
    /// The tag, when named.
    pub tag: Option<String>,
    /// The manifest digest, when named (`@sha256:…`).
    pub digest: Option<Digest>,
}

impl RegistryReference {
    /// Parses `docker://HOST[:PORT]/REPO[:TAG|@DIGEST]` (or the same without `docker://`).
    /// A name without a registry (`alpine`, `team/app:1`) is on Docker Hub, as in Docker.
    ///
    /// ```
    /// use squash::RegistryReference;
    ///
    /// let r = RegistryReference::parse("docker://alpine")?;
    /// assert_eq!((r.registry.as_str(), r.repository.as_str()), ("docker.io", "library/alpine"));
    /// let r = RegistryReference::parse("docker://127.0.0.1:5000/team/app:1")?;
    /// assert_eq!((r.repository.as_str(), r.tag.as_deref()), ("team/app", Some("1")));
    /// # Ok::<(), squash::ParseError>(())
    /// ```
    pub fn parse(s: &str) -> Result<RegistryReference, ParseError> {
        parse(s).map_err(|message| ParseError::new("registry reference", s, message))
    }

    /// The host (and port) whose API serves the registry.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// What to fetch: the digest when named, else the tag (`latest` when neither is).
    pub fn reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => digest.to_string(),
            (None, Some(tag)) => tag.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// This reference in another repository of the same registry, untagged.
    pub(crate) fn with_repository(&self, repository: &str) -> RegistryReference {
        RegistryReference {
            registry: self.registry.clone(),
            repository: repository.to_string(),
            tag: None,
            digest: None,
        }
    }

    /// This reference by `digest`, the tag dropped: how a pushed image is named.
    pub fn by_digest(&self, digest: &Digest) -> RegistryReference {
        RegistryReference { digest: Some(digest.clone()), tag: None, ..self.clone() }
    }
}

impl fmt::Display for RegistryReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

fn parse(s: &str) -> Result<RegistryReference, String> {
    let rest = s.strip_prefix(SCHEME).unwrap_or(s);
    if rest.is_empty() {
        return Err("names no image (expected docker://HOST[:PORT]/REPO[:TAG|@DIGEST])".into());
    }
    let (name, digest) = match rest.split_once('@') {
        Some((name, digest)) => {
            let digest = digest.parse::<Digest>().map_err(|e| e.to_string())?;
            (name, Some(digest))
        }
        None => (rest, None),
    };
    // A tag follows the last `:` after the last `/` (a `:` before it is the registry's port).
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], Some(name[last_slash + i + 1..].to_string())),
        None => (name, None),
    };
    if let Some(tag) = &tag {
        let valid = !tag.is_empty()
            && tag.len() <= 128
            && tag.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            && !tag.starts_with(['.', '-']);
        if !valid {
            return Err(format!(
                "`{tag}` is not a tag (letters, digits, `_`, `.` and `-`; 128 at most)"
            ));
        }
    }
    // The first component is a registry when it looks like a host: it has a `.` or a `:`, or it
    // is `localhost` (Docker's rule).
    let (registry, repository) = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            (first.to_string(), rest.to_string())
        }
        _ => (DOCKER_HUB.to_string(), name.to_string()),
    };
    let registry = if registry == "index.docker.io" || registry == DOCKER_HUB_API {
        DOCKER_HUB.to_string()
    } else {
        registry
    };
    let repository = if registry == DOCKER_HUB && !repository.contains('/') {
        format!("library/{repository}")
    } else {
        repository
    };
    let valid_component = |c: &str| {
        !c.is_empty()
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
    };
    if repository.is_empty() || !repository.split('/').all(valid_component) {
        return Err(format!(
            "`{repository}` is not a repository name (lowercase letters, digits, `.`, `_` and \
                `-`, in \
             components separated by `/`)"
        ));
    }
    Ok(RegistryReference { registry, repository, tag, digest })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(s: &str) -> (String, String, Option<String>, Option<String>) {
        let r = RegistryReference::parse(s).expect(s);
        (r.registry, r.repository, r.tag, r.digest.map(|d| d.to_string()))
    }

    #[test]
    fn references_expand_as_docker_expands_them() {
        let own = |a: &str, b: &str, c: Option<&str>| {
            (a.to_string(), b.to_string(), c.map(str::to_string), None)
        };
        assert_eq!(parsed("docker://alpine"), own("docker.io", "library/alpine", None));
        assert_eq!(
            parsed("docker://alpine:3.20"),
            own("docker.io", "library/alpine", Some("3.20"))
        );
        assert_eq!(parsed("docker://team/app:1"), own("docker.io", "team/app", Some("1")));
        assert_eq!(
            parsed("docker://index.docker.io/library/debian"),
            own("docker.io", "library/debian", None)
        );
        assert_eq!(parsed("docker://localhost/app"), own("localhost", "app", None));
        assert_eq!(
            parsed("docker://127.0.0.1:5000/a/b/c:v-1"),
            own("127.0.0.1:5000", "a/b/c", Some("v-1"))
        );
        assert_eq!(parsed("ghcr.io/org/app:latest"), own("ghcr.io", "org/app", Some("latest")));
        let digest = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
        let (_, repo, tag, d) = parsed(&format!("docker://reg.example:443/app:1@{digest}"));
        assert_eq!((repo.as_str(), tag.as_deref(), d.as_deref()), ("app", Some("1"), Some(digest)));
        for bad in [
            "docker://",
            "docker://App",
            "docker://reg.example/app:",
            "docker://reg.example/app@sha256:1",
            "docker://a//b",
        ] {
            assert!(RegistryReference::parse(bad).is_err(), "{bad}");
        }
        let r = RegistryReference::parse("docker://127.0.0.1:5000/app:1").expect("parse");
        assert_eq!(r.to_string(), "docker://127.0.0.1:5000/app:1");
        assert_eq!(r.api_host(), "127.0.0.1:5000");
        assert_eq!(
            RegistryReference::parse("docker://alpine").expect("hub").api_host(),
            "registry-1.docker.io"
        );
    }
}
