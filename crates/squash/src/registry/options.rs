//! How registries are reached: credentials and TLS, as skopeo's flags set them
//! (`--creds`, `--authfile`, `--cert-dir`, `--tls-verify`), and how hard a request is retried.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A user name and password. Never printed: `Debug` shows the user only.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub(crate) user: String,
    pub(crate) password: String,
}

impl Credentials {
    /// `USER[:PASSWORD]`, as `--creds` takes it (an empty password without the colon).
    pub fn parse(text: &str) -> Credentials {
        let (user, password) = text.split_once(':').unwrap_or((text, ""));
        Credentials { user: user.to_string(), password: password.to_string() }
    }

    /// The user name.
    pub fn user(&self) -> &str {
        &self.user
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials {{ user: {:?}, password: <hidden> }}", self.user)
    }
}

/// How to reach registries. The default reads credentials from the Docker configuration
/// (`DOCKER_CONFIG`, `~/.docker/config.json`: `auths`, `credsStore`, `credHelpers`) and podman's
/// `auth.json` (`REGISTRY_AUTH_FILE`, `XDG_RUNTIME_DIR/containers/auth.json`), verifies TLS with
/// the system's roots, and allows plain HTTP only to loopback addresses, as Docker does.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegistryOptions {
    /// Credentials for every registry, before any configuration file (`--creds`).
    pub creds: Option<Credentials>,
    /// A configuration file read first for credentials (`--authfile`), in the Docker format.
    pub authfile: Option<PathBuf>,
    /// A directory of certificates (`--cert-dir`): `*.crt` are trusted beside the system's
    /// roots; a `*.cert` with its `*.key` is the client certificate.
    pub cert_dir: Option<PathBuf>,
    /// Whether TLS certificates are verified and HTTPS required (`--tls-verify`); when off,
    /// plain HTTP is allowed and certificates are not verified.
    pub tls_verify: bool,
    /// Times a request is tried again after a 429, a 5xx or a dropped connection.
    pub retries: u32,
    /// Longest wait for a connection, or for the next bytes of a response.
    pub timeout: Duration,
}

impl Default for RegistryOptions {
    fn default() -> RegistryOptions {
        RegistryOptions {
            creds: None,
            authfile: None,
            cert_dir: None,
            tls_verify: true,
            retries: 5,
            timeout: Duration::from_secs(60),
        }
    }
}

impl RegistryOptions {
    /// Uses `creds` for every registry.
    pub fn with_creds(mut self, creds: Credentials) -> RegistryOptions {
        self.creds = Some(creds);
        self
    }
    /// Reads credentials from `path` first.
    pub fn with_authfile(mut self, path: impl Into<PathBuf>) -> RegistryOptions {
        self.authfile = Some(path.into());
        self
    }
    /// Trusts the certificates of `dir` too.
    pub fn with_cert_dir(mut self, dir: impl Into<PathBuf>) -> RegistryOptions {
        self.cert_dir = Some(dir.into());
        self
    }
    /// Verifies TLS (true, the default) or allows plain HTTP and any certificate (false).
    pub fn with_tls_verify(mut self, verify: bool) -> RegistryOptions {
        self.tls_verify = verify;
        self
    }
    /// Tries a failed request this many times again.
    pub fn with_retries(mut self, retries: u32) -> RegistryOptions {
        self.retries = retries;
        self
    }
    /// Waits at most `timeout` for a connection or the next bytes of a response.
    pub fn with_timeout(mut self, timeout: Duration) -> RegistryOptions {
        self.timeout = timeout;
        self
    }
}
