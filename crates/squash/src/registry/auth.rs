//! Authentication to registries: which credentials apply (`--creds`, `--authfile`, podman's
//! `auth.json`, the Docker configuration and its credential helpers, through `docker_credential`),
//! and what a registry asks for in its `WWW-Authenticate` challenge (Basic, or a Bearer token
//! from a realm, for a service and scopes). The token request itself is the client's.

use std::fs::File;
use std::io::BufReader;

use docker_credential::{CredentialRetrievalError, DockerCredential};

use super::options::{Credentials, RegistryOptions};

/// What a registry is shown to prove who asks.
#[derive(Clone)]
pub(crate) enum Credential {
    /// A user and password: Basic authentication, or the Basic-authenticated token request.
    Basic(Credentials),
    /// A refresh token (Docker's identity token), exchanged at the token realm.
    IdentityToken(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Basic(credentials) => write!(f, "{credentials:?}"),
            Credential::IdentityToken(_) => f.write_str("IdentityToken(<hidden>)"),
        }
    }
}

/// The names a registry goes by in credential files: Docker Hub's keys, or `HOST[:PORT]` with
/// or without a scheme.
fn keys(registry: &str) -> Vec<String> {
    if registry == "docker.io" {
        return [
            "https://index.docker.io/v1/",
            "index.docker.io",
            "docker.io",
            "registry-1.docker.io",
        ]
        .map(str::to_string)
        .to_vec();
    }
    vec![registry.to_string(), format!("https://{registry}"), format!("http://{registry}")]
}

/// The credential for `registry`: `--creds`, else the first configuration that has one
/// (`--authfile`, podman's `auth.json`, the Docker configuration). `Err` names the file or the
/// helper that failed, never a secret.
pub(crate) fn lookup(
    registry: &str,
    options: &RegistryOptions,
) -> Result<Option<Credential>, String> {
    if let Some(creds) = &options.creds {
        return Ok(Some(Credential::Basic(creds.clone())));
    }
    let found =
        |result: Result<DockerCredential, CredentialRetrievalError>, source: &str| match result {
            Ok(DockerCredential::UsernamePassword(user, password)) => {
                Ok(Some(Credential::Basic(Credentials { user, password })))
            }
            Ok(DockerCredential::IdentityToken(token)) => {
                Ok(Some(Credential::IdentityToken(token)))
            }
            Err(CredentialRetrievalError::NoCredentialConfigured)
            | Err(CredentialRetrievalError::ConfigNotFound)
            | Err(CredentialRetrievalError::ConfigReadError) => Ok(None),
            Err(CredentialRetrievalError::HelperFailure { helper, .. }) => Err(format!(
                "the credential helper `docker-credential-{helper}` failed for \
                `{registry}` ({source})"
            )),
            Err(other) => {
                Err(format!("reading the credentials for `{registry}` ({source}): {other}"))
            }
        };
    for key in keys(registry) {
        if let Some(path) = &options.authfile {
            let file =
                File::open(path).map_err(|e| format!("--authfile `{}`: {e}", path.display()))?;
            let shown = format!("--authfile `{}`", path.display());
            if let Some(credential) = found(
                docker_credential::get_credential_from_reader(BufReader::new(file), &key),
                &shown,
            )? {
                return Ok(Some(credential));
            }
            continue;
        }
        if let Some(credential) =
            found(docker_credential::get_podman_credential(&key), "podman's auth.json")?
        {
            return Ok(Some(credential));
        }
        if let Some(credential) =
            found(docker_credential::get_credential(&key), "the Docker configuration")?
        {
            return Ok(Some(credential));
        }
    }
    Ok(None)
}

/// What a `WWW-Authenticate` header asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// Basic authentication.
    Basic,
    /// A token from `realm`, for `service` and `scope` (space-separated scopes).
    Bearer { realm: String, service: Option<String>, scope: Option<String> },
}

/// The challenge of a `WWW-Authenticate` header to answer: a Bearer one when offered (tokens
/// scope what they allow), else the first.
pub(crate) fn preferred(header: &str) -> Option<Challenge> {
    let found = challenges(header);
    let bearer = found.iter().position(|c| matches!(c, Challenge::Bearer { .. }));
    found.into_iter().nth(bearer.unwrap_or(0))
}

/// The challenges of a `WWW-Authenticate` header, in order: `Scheme k="v", k="v", Scheme …`.
pub(crate) fn challenges(header: &str) -> Vec<Challenge> {
    let mut out = Vec::new();
    let mut rest = header.trim();
    while !rest.is_empty() {
        let scheme_end = rest.find([' ', ',']).unwrap_or(rest.len());
        let scheme = rest[..scheme_end].to_ascii_lowercase();
        rest = rest[scheme_end..].trim_start_matches([' ', ',']);
        let mut params: Vec<(String, String)> = Vec::new();
        // Parameters: key=value or key="quoted, value", until the next scheme (a word without `=`).
        while let Some(eq) = rest.find('=') {
            let key = rest[..eq].trim();
            if key.is_empty() || key.contains([' ', ',']) {
                break;
            }
            let after = &rest[eq + 1..];
            let (value, consumed) = if let Some(quoted) = after.strip_prefix('"') {
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let mut end = quoted.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, escaped)) = chars.next() {
                                value.push(escaped);
                            }
                        }
                        '"' => {
                            end = i + 1;
                            break;
                        }
                        other => value.push(other),
                    }
                }
                (value, eq + 2 + end)
            } else {
                let end = after.find(',').unwrap_or(after.len());
                (after[..end].trim().to_string(), eq + 1 + end)
            };
            params.push((key.to_ascii_lowercase(), value));
            rest = rest[consumed.min(rest.len())..].trim_start_matches([' ', ',']);
        }
        let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        match scheme.as_str() {
            "basic" => out.push(Challenge::Basic),
            "bearer" => {
                if let Some(realm) = param("realm") {
                    out.push(Challenge::Bearer {
                        realm,
                        service: param("service"),
                        scope: param("scope"),
                    });
                }
            }
            _ => {}
        }
        if scheme.is_empty() {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_are_parsed() {
        let header = concat!(
            r#"Bearer realm="https://auth.example/token",service="registry.example","#,
            r#"scope="repository:app:pull,push""#
        );
        assert_eq!(
            challenges(header),
            [Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:app:pull,push".into()),
            }]
        );
        assert_eq!(challenges(r#"Basic realm="Registry Realm""#), [Challenge::Basic]);
        assert_eq!(
            challenges(r#"Basic realm="x", Bearer realm="https://t/\"q\"",service=s"#),
            [
                Challenge::Basic,
                Challenge::Bearer {
                    realm: "https://t/\"q\"".into(),
                    service: Some("s".into()),
                    scope: None
                }
            ]
        );
        assert!(matches!(
            preferred(r#"Basic realm="x", Bearer realm="https://t",service=s"#),
            Some(Challenge::Bearer { .. })
        ));
        assert_eq!(preferred(r#"Basic realm="x""#), Some(Challenge::Basic));
        assert!(challenges("").is_empty());
        assert!(
            challenges("Bearer").is_empty(),
            "a Bearer challenge without a realm asks for nothing usable"
        );
    }

    #[test]
    fn credentials_never_show_the_password() {
        let shown = format!("{:?}", Credential::Basic(Credentials::parse("me:s3cret")));
        assert!(shown.contains("me") && !shown.contains("s3cret"), "{shown}");
        assert!(!format!("{:?}", Credential::IdentityToken("t0ken".into())).contains("t0ken"));
    }
}
