//! A registry's HTTP API (the OCI distribution spec), over ureq and rustls: requests sent with
//! the authentication the registry asks for (Basic, or a Bearer token from its realm for the
//! scopes a request needs), tried again after a 429 (its `Retry-After` honoured), a 5xx or a
//! dropped connection when the request can be replayed, and redirects followed without sending
//! credentials to another host. Blob downloads resume where a dropped connection left them
//! (`Range`); a blob is uploaded in one request, or in chunks (`OCI-Chunk-Min-Length`
//! honoured), and completed with its digest, which the registry checks; a blob of another
//! repository of the same registry is mounted. Errors name the registry, the
//! repository, the request and the status, and say what to do for 401, 403 and 404; no secret
//! is ever part of one.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use ureq::http::Response;
use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};
use ureq::{Agent, Body};

use super::auth::{self, Challenge, Credential};
use super::options::RegistryOptions;
use super::reference::RegistryReference;
use super::transfer::Transfer;
use crate::digest::Digest;
use crate::error::{Error, Location, Result};

/// The manifest media types a registry is asked for, most specific first.
const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// Blobs are uploaded in chunks of this size (or the registry's minimum, when larger); a blob
/// smaller than a chunk in one request.
const CHUNK: u64 = 16 << 20;

/// Documents (manifests, indexes) read from a registry are capped as files are.
pub(crate) const DOCUMENT_LIMIT: u64 = 16 << 20;

/// The counters behind a [`Transfer`], shared by the readers and writers of one client.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    downloaded: AtomicU64,
    uploaded: AtomicU64,
    present: AtomicU64,
    mounted: AtomicU64,
    uploaded_blobs: AtomicU64,
}

impl Counters {
    pub(crate) fn transfer(&self) -> Transfer {
        Transfer {
            downloaded_bytes: self.downloaded.load(Ordering::Relaxed),
            uploaded_bytes: self.uploaded.load(Ordering::Relaxed),
            blobs_present: self.present.load(Ordering::Relaxed),
            blobs_mounted: self.mounted.load(Ordering::Relaxed),
            blobs_uploaded: self.uploaded_blobs.load(Ordering::Relaxed),
        }
    }
}

/// The body of a request, which a retry sends again.
pub(crate) enum Payload<'a> {
    Empty,
    Bytes(&'a [u8]),
}

/// HTTP methods the client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Head,
    Put,
    Post,
    Patch,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Put => "PUT",
            Method::Post => "POST",
            Method::Patch => "PATCH",
        }
    }
}

/// One registry, as the run reaches it.
pub(crate) struct Client {
    agent: Agent,
    /// `https://HOST[:PORT]` or `http://…`.
    base: String,
    /// The registry as named (`docker.io`, `HOST[:PORT]`), for messages.
    registry: String,
    credential: Option<Credential>,
    /// What the registry asked for last; `None` until it asked.
    challenge: Mutex<Option<Challenge>>,
    /// `Authorization` values by the scopes they were granted for.
    tokens: Mutex<BTreeMap<String, String>>,
    retries: u32,
    pub(crate) counters: Counters,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("credential", &self.credential)
            .finish_non_exhaustive()
    }
}

/// Whether `host` (`HOST[:PORT]`) is a loopback address, where plain HTTP is allowed.
pub(crate) fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name == "localhost"
        || name == "::1"
        || name.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

/// The `Location` header of `response`, resolved against `base`.
fn location_of(response: &Response<Body>, base: &str) -> Option<String> {
    let location = response.headers().get("location")?.to_str().ok()?;
    Some(if location.starts_with("http://") || location.starts_with("https://") {
        location.to_string()
    } else {
        format!("{base}{location}")
    })
}

fn header(response: &Response<Body>, name: &str) -> Option<String> {
    response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// The scope to read a repository.
pub(crate) fn pull(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

/// The scope to write to a repository.
pub(crate) fn push(repository: &str) -> String {
    format!("repository:{repository}:pull,push")
}

impl Client {
    /// A client of the registry `reference` names: TLS as `options` say (the system's roots
    /// and `--cert-dir`'s certificates, or none verified), credentials looked up, and the
    /// scheme chosen by asking `/v2/`: HTTPS, or plain HTTP where allowed (a loopback address,
    /// or TLS verification off) and HTTPS fails.
    pub(crate) fn connect(
        reference: &RegistryReference,
        options: &RegistryOptions,
    ) -> Result<Arc<Client>> {
        let location = Location::file(format!("docker://{}", reference.registry));
        let fail = |reason: String| Error::Registry { location: location.clone(), reason };
        let host = reference.api_host();
        let loopback = is_loopback(host);
        let tls = tls_config(options).map_err(&fail)?;
        let mut config = Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(10)
            .redirect_auth_headers(ureq::config::RedirectAuthHeaders::SameHost)
            .timeout_connect(Some(options.timeout))
            .timeout_recv_response(Some(options.timeout))
            .timeout_per_read(Some(options.timeout))
            .timeout_per_write(Some(options.timeout))
            .user_agent(format!("squash/{}", env!("CARGO_PKG_VERSION")))
            .tls_config(tls);
        if loopback {
            // A loopback registry is never reached through a proxy.
            config = config.proxy(None);
        }
        let agent: Agent = config.build().into();
        let credential = auth::lookup(&reference.registry, options).map_err(&fail)?;
        let plain_allowed = loopback || !options.tls_verify;
        let mut errors = Vec::new();
        for scheme in if plain_allowed { &["https", "http"][..] } else { &["https"][..] } {
            let base = format!("{scheme}://{host}");
            let response = match agent.get(format!("{base}/v2/")).call() {
                Ok(response) => response,
                Err(e) => {
                    errors.push(format!("{scheme}: {e}"));
                    continue;
                }
            };
            // Plain HTTP is taken only from a server that answers as a registry does (an
            // HTTPS server asked over HTTP answers 400).
            let status = response.status().as_u16();
            if *scheme == "http" && !matches!(status, 200 | 401) {
                errors.push(format!("{scheme}: HTTP {status}, not a registry's answer"));
                continue;
            }
            let challenge = header(&response, "www-authenticate").and_then(|h| auth::preferred(&h));
            return Ok(Arc::new(Client {
                agent,
                base,
                registry: reference.registry.clone(),
                credential,
                challenge: Mutex::new(challenge),
                tokens: Mutex::new(BTreeMap::new()),
                retries: options.retries,
                counters: Counters::default(),
            }));
        }
        let all = errors.join("; ");
        let tls = ["certificate", "tls", "handshake", "not a registry's answer"]
            .iter()
            .any(|w| all.to_ascii_lowercase().contains(w));
        let hint = if tls {
            " (trust its certificate with --cert-dir DIR; --tls-verify=false allows plain HTTP \
             and any certificate)"
        } else {
            ""
        };
        Err(fail(format!("cannot reach the registry at `{host}`: {all}{hint}")))
    }

    /// `https://HOST[:PORT]`: two clients of one base are the same registry.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    fn location(&self, repository: &str, method: Method, path: &str) -> Location {
        // The query string of an upload URL is the registry's state, not for messages.
        let path = path.split('?').next().unwrap_or(path);
        let path = path.strip_prefix(&self.base).unwrap_or(path);
        Location::file(format!("docker://{}/{repository}", self.registry))
            .part(format!("{} {path}", method.name()))
    }

    /// The error for an unexpected `status` of a request.
    pub(crate) fn status_error(
        &self,
        repository: &str,
        method: Method,
        url: &str,
        status: u16,
    ) -> Error {
        let hint = match status {
            401 => {
                ": authentication required: give --creds USER:PASSWORD or --authfile FILE, or \
                log in (`docker login` or `podman login`)"
            }
            403 => {
                ": denied: the credentials given do not allow this (pull, or push to this \
                repository)"
            }
            404 => ": not found: check the repository, tag and digest",
            429 => ": too many requests, still after the retries",
            500..=599 => ": the registry failed, still after the retries",
            _ => "",
        };
        Error::Registry {
            location: self.location(repository, method, url),
            reason: format!("HTTP {status}{hint}"),
        }
    }

    /// Sends a request to `url` (absolute, or a path from the registry's root) with the
    /// authentication `scopes` need, retrying what can be retried; the response, whatever its
    /// status (but 401 once credentials were tried).
    pub(crate) fn send(
        &self,
        repository: &str,
        method: Method,
        url: &str,
        headers: &[(&str, String)],
        mut payload: Payload<'_>,
        scopes: &[String],
    ) -> Result<Response<Body>> {
        let url = if url.starts_with("http://") || url.starts_with("https://") {
            url.to_string()
        } else {
            format!("{}{url}", self.base)
        };
        let mut attempt = 0u32;
        let mut authenticated_again = false;
        loop {
            let authorization = self.authorization(scopes, repository, method, &url)?;
            let result = self.once(method, &url, headers, &mut payload, authorization.as_deref());
            let retryable = attempt < self.retries;
            let response = match result {
                Ok(response) => response,
                Err(e) if retryable && transient(&e) => {
                    attempt += 1;
                    std::thread::sleep(backoff(attempt));
                    continue;
                }
                Err(e) => {
                    return Err(Error::Registry {
                        location: self.location(repository, method, &url),
                        reason: format!(
                            "{e}{}",
                            if attempt > 0 {
                                format!(" (after {attempt} retries)")
                            } else {
                                String::new()
                            }
                        ),
                    })
                }
            };
            let status = response.status().as_u16();
            if status == 401 && !authenticated_again {
                // The registry asks for (other) credentials: learn what, and try once more.
                authenticated_again = true;
                if let Some(h) = header(&response, "www-authenticate") {
                    if let Ok(mut challenge) = self.challenge.lock() {
                        *challenge = auth::preferred(&h);
                    }
                }
                if let Ok(mut tokens) = self.tokens.lock() {
                    tokens.remove(&scopes.join(" "));
                }
                continue;
            }
            if (status == 429 || matches!(status, 500 | 502 | 503 | 504)) && retryable {
                attempt += 1;
                let wait = header(&response, "retry-after")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s.min(60)))
                    .unwrap_or_else(|| backoff(attempt));
                std::thread::sleep(wait);
                continue;
            }
            return Ok(response);
        }
    }

    /// One request, sent as it is.
    fn once(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, String)],
        payload: &mut Payload<'_>,
        authorization: Option<&str>,
    ) -> std::result::Result<Response<Body>, ureq::Error> {
        macro_rules! with_headers {
            ($builder:expr) => {{
                let mut builder = $builder;
                for (name, value) in headers {
                    builder = builder.header(*name, value.as_str());
                }
                if let Some(value) = authorization {
                    builder = builder.header("Authorization", value);
                }
                builder
            }};
        }
        let body = |builder: ureq::RequestBuilder<ureq::typestate::WithBody>,
                    payload: &mut Payload<'_>|
         -> std::result::Result<Response<Body>, ureq::Error> {
            match payload {
                Payload::Empty => builder.header("Content-Length", "0").send(&[][..]),
                Payload::Bytes(bytes) => builder.send(*bytes),
            }
        };
        match method {
            Method::Get => with_headers!(self.agent.get(url)).call(),
            Method::Head => with_headers!(self.agent.head(url)).call(),
            Method::Put => body(with_headers!(self.agent.put(url)), payload),
            Method::Post => body(with_headers!(self.agent.post(url)), payload),
            Method::Patch => body(with_headers!(self.agent.patch(url)), payload),
        }
    }

    /// The `Authorization` value for `scopes`: Basic where the registry asks for it, a Bearer
    /// token from its realm (fetched once per set of scopes), or none (anonymous).
    fn authorization(
        &self,
        scopes: &[String],
        repository: &str,
        method: Method,
        url: &str,
    ) -> Result<Option<String>> {
        let challenge = self.challenge.lock().ok().and_then(|c| c.clone());
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.credential.as_ref().and_then(|c| match c {
                Credential::Basic(creds) => Some(basic(&creds.user, &creds.password)),
                Credential::IdentityToken(_) => None,
            })),
            Some(Challenge::Bearer { realm, service, scope }) => {
                let key = scopes.join(" ");
                if let Some(token) = self.tokens.lock().ok().and_then(|t| t.get(&key).cloned()) {
                    return Ok(Some(token));
                }
                let mut wanted: Vec<String> = scopes.to_vec();
                if let Some(scope) = scope {
                    for asked in scope.split(' ').map(str::to_string) {
                        if !wanted.contains(&asked) {
                            wanted.push(asked);
                        }
                    }
                }
                let token =
                    self.token(&realm, service.as_deref(), &wanted, repository, method, url)?;
                let value = format!("Bearer {token}");
                if let Ok(mut tokens) = self.tokens.lock() {
                    tokens.insert(key, value.clone());
                }
                Ok(Some(value))
            }
        }
    }

    /// A token from `realm` for `scopes`, asked with the credentials when there are some.
    fn token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
        repository: &str,
        method: Method,
        url: &str,
    ) -> Result<String> {
        let fail = |reason: String| Error::Registry {
            location: self.location(repository, method, url),
            reason,
        };
        let mut query: Vec<(String, String)> = Vec::new();
        if let Some(service) = service {
            query.push(("service".into(), service.to_string()));
        }
        for scope in scopes {
            query.push(("scope".into(), scope.clone()));
        }
        let response = match &self.credential {
            Some(Credential::IdentityToken(token)) => {
                let mut form = query.clone();
                form.extend([
                    ("grant_type".to_string(), "refresh_token".to_string()),
                    ("refresh_token".to_string(), token.clone()),
                    ("client_id".to_string(), "squash".to_string()),
                ]);
                let body: String = form
                    .iter()
                    .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                    .collect::<Vec<_>>()
                    .join("&");
                self.agent
                    .post(realm)
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .send(body.as_bytes())
            }
            credential => {
                let mut request = self
                    .agent
                    .get(realm)
                    .query_pairs(query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                if let Some(Credential::Basic(creds)) = credential {
                    request = request.header("Authorization", basic(&creds.user, &creds.password));
                }
                request.call()
            }
        };
        let mut response = response.map_err(|e| {
            fail(format!("asking the token service `{}` failed: {e}", realm_shown(realm)))
        })?;
        let status = response.status().as_u16();
        if status != 200 {
            let what = match status {
                401 | 403 => {
                    "refused the credentials (check --creds, --authfile or `docker login`)"
                }
                _ => "failed",
            };
            return Err(fail(format!(
                "the token service `{}` {what}: HTTP {status}",
                realm_shown(realm)
            )));
        }
        let body = response
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_vec()
            .map_err(|e| fail(format!("reading the token: {e}")))?;
        #[derive(Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
        }
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|_| fail("the token service answered something that is not a token".into()))?;
        parsed
            .token
            .or(parsed.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| fail("the token service answered without a token".into()))
    }

    /// A document (manifest or index) by tag or digest: its bytes, its media type, and the
    /// digest the registry states; `None` when the repository has no such document.
    pub(crate) fn manifest(&self, repository: &str, reference: &str) -> Result<Option<Fetched>> {
        let path = format!("/v2/{repository}/manifests/{reference}");
        let accept = [("Accept", ACCEPT_MANIFESTS.to_string())];
        let mut response = self.send(
            repository,
            Method::Get,
            &path,
            &accept,
            Payload::Empty,
            &[pull(repository)],
        )?;
        match response.status().as_u16() {
            200 => {}
            404 => return Ok(None),
            status => return Err(self.status_error(repository, Method::Get, &path, status)),
        }
        let media_type = header(&response, "content-type")
            .map(|m| m.split(';').next().unwrap_or(&m).trim().to_string());
        let digest = header(&response, "docker-content-digest").and_then(|d| d.parse().ok());
        let bytes = response.body_mut().with_config().limit(DOCUMENT_LIMIT + 1).read_to_vec();
        let bytes = bytes.map_err(|e| Error::Registry {
            location: self.location(repository, Method::Get, &path),
            reason: format!("reading the document: {e}"),
        })?;
        if bytes.len() as u64 > DOCUMENT_LIMIT {
            return Err(Error::Registry {
                location: self.location(repository, Method::Get, &path),
                reason: format!("the document is larger than {DOCUMENT_LIMIT} bytes"),
            });
        }
        self.counters.downloaded.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(Some(Fetched { bytes, media_type, digest }))
    }

    /// Stores a document under `reference` (a digest, or the tag, last).
    pub(crate) fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<()> {
        let path = format!("/v2/{repository}/manifests/{reference}");
        let response = self.send(
            repository,
            Method::Put,
            &path,
            &[("Content-Type", media_type.to_string())],
            Payload::Bytes(bytes),
            &[push(repository)],
        )?;
        let status = response.status().as_u16();
        if status != 201 && status != 200 {
            return Err(self.status_error(repository, Method::Put, &path, status));
        }
        self.counters.uploaded.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// The size of blob `digest` in `repository`, or `None` when it has none (a `HEAD`).
    pub(crate) fn blob_size(
        &self,
        repository: &str,
        digest: &Digest,
        scopes: &[String],
    ) -> Result<Option<u64>> {
        let path = format!("/v2/{repository}/blobs/{digest}");
        let response = self.send(repository, Method::Head, &path, &[], Payload::Empty, scopes)?;
        match response.status().as_u16() {
            200 => Ok(Some(
                header(&response, "content-length").and_then(|l| l.parse().ok()).unwrap_or(0),
            )),
            404 => Ok(None),
            status => Err(self.status_error(repository, Method::Head, &path, status)),
        }
    }

    /// Records a blob found already present in the target.
    pub(crate) fn count_present(&self) {
        self.counters.present.fetch_add(1, Ordering::Relaxed);
    }

    /// Blob `digest` of `repository` as a reader that resumes with a `Range` request where a
    /// connection drops, and the size the registry states; `None` when the registry has no such
    /// blob. `expected` is the size the image states: a download shorter than it is resumed.
    pub(crate) fn blob(
        self: &Arc<Client>,
        repository: &str,
        digest: &Digest,
        expected: Option<u64>,
    ) -> Result<Option<(BlobDownload, Option<u64>)>> {
        let path = format!("/v2/{repository}/blobs/{digest}");
        let response =
            self.send(repository, Method::Get, &path, &[], Payload::Empty, &[pull(repository)])?;
        match response.status().as_u16() {
            200 => {}
            404 => return Ok(None),
            status => return Err(self.status_error(repository, Method::Get, &path, status)),
        }
        let stated = header(&response, "content-length").and_then(|l| l.parse::<u64>().ok());
        let download = BlobDownload {
            client: Arc::clone(self),
            repository: repository.to_string(),
            path,
            size: expected.or(stated),
            received: 0,
            body: Some(Box::new(response.into_body().into_reader())),
            resumes: 0,
        };
        Ok(Some((download, stated)))
    }

    /// Mounts blob `digest` of `from` (a repository of this registry) into `repository`:
    /// `Ok(None)` when mounted, else the upload the registry started instead (it answered 202).
    pub(crate) fn mount(
        &self,
        repository: &str,
        digest: &Digest,
        from: &str,
    ) -> Result<Option<Upload>> {
        let path = format!("/v2/{repository}/blobs/uploads/?mount={digest}&from={from}");
        let scopes = [push(repository), pull(from)];
        let response = self.send(repository, Method::Post, &path, &[], Payload::Empty, &scopes)?;
        match response.status().as_u16() {
            201 => {
                self.counters.mounted.fetch_add(1, Ordering::Relaxed);
                Ok(None)
            }
            202 => Ok(Some(self.upload_at(&response, repository, &path)?)),
            status => Err(self.status_error(repository, Method::Post, &path, status)),
        }
    }

    /// Starts an upload into `repository`.
    pub(crate) fn start_upload(&self, repository: &str) -> Result<Upload> {
        let path = format!("/v2/{repository}/blobs/uploads/");
        let response =
            self.send(repository, Method::Post, &path, &[], Payload::Empty, &[push(repository)])?;
        match response.status().as_u16() {
            202 => self.upload_at(&response, repository, &path),
            status => Err(self.status_error(repository, Method::Post, &path, status)),
        }
    }

    fn upload_at(&self, response: &Response<Body>, repository: &str, path: &str) -> Result<Upload> {
        let location = location_of(response, &self.base).ok_or_else(|| Error::Registry {
            location: self.location(repository, Method::Post, path),
            reason: "the registry started an upload without saying where (no Location)".into(),
        })?;
        let min_chunk = header(response, "oci-chunk-min-length").and_then(|v| v.parse().ok());
        Ok(Upload { location, min_chunk: min_chunk.unwrap_or(0) })
    }

    /// Sends the bytes of `reader` into `upload` of `repository` and completes it as blob
    /// `digest` (which the registry checks): a blob smaller than a chunk in one request (a
    /// monolithic `PUT`), a larger one in chunks of at least the registry's
    /// `OCI-Chunk-Min-Length` (each a replayable `PATCH`), then a `PUT`. `digest` is asked for
    /// once the bytes are out, so it may be learnt while they pass. The bytes sent.
    pub(crate) fn upload(
        &self,
        repository: &str,
        upload: Upload,
        reader: &mut dyn Read,
        digest: &mut dyn FnMut() -> Result<Digest>,
    ) -> Result<u64> {
        let scopes = [push(repository)];
        let chunk = CHUNK.max(upload.min_chunk);
        let mut location = upload.location;
        let mut buffer: Vec<u8> = Vec::new();
        let mut sent = 0u64;
        let octets = ("Content-Type", "application/octet-stream".to_string());
        loop {
            buffer.clear();
            let read = reader.take(chunk).read_to_end(&mut buffer);
            read.map_err(|e| Error::Registry {
                location: self.location(repository, Method::Patch, &location),
                reason: format!("the blob being uploaded could not be read: {e}"),
            })?;
            let full = buffer.len() as u64 == chunk;
            if sent == 0 && !full {
                // Smaller than a chunk: one request with the bytes and the digest.
                let url = with_digest(&location, &digest()?);
                let headers = [octets.clone()];
                let response = self.send(
                    repository,
                    Method::Put,
                    &url,
                    &headers,
                    Payload::Bytes(&buffer),
                    &scopes,
                )?;
                return self.uploaded(repository, &url, response.status().as_u16(), buffer.len());
            }
            if !buffer.is_empty() {
                let end = sent + buffer.len() as u64 - 1;
                let headers = [octets.clone(), ("Content-Range", format!("{sent}-{end}"))];
                let response = self.send(
                    repository,
                    Method::Patch,
                    &location,
                    &headers,
                    Payload::Bytes(&buffer),
                    &scopes,
                )?;
                let status = response.status().as_u16();
                if status != 202 {
                    return Err(self.status_error(repository, Method::Patch, &location, status));
                }
                location = location_of(&response, &self.base).unwrap_or(location);
                sent += buffer.len() as u64;
                self.counters.uploaded.fetch_add(buffer.len() as u64, Ordering::Relaxed);
            }
            if !full {
                let url = with_digest(&location, &digest()?);
                let response =
                    self.send(repository, Method::Put, &url, &[], Payload::Empty, &scopes)?;
                self.uploaded(repository, &url, response.status().as_u16(), 0)?;
                return Ok(sent);
            }
        }
    }

    /// The end of an upload completed by a `PUT` to `url` that answered `status`, carrying
    /// `bytes` bytes of the blob.
    fn uploaded(&self, repository: &str, url: &str, status: u16, bytes: usize) -> Result<u64> {
        if status != 201 {
            return Err(self.status_error(repository, Method::Put, url, status));
        }
        self.counters.uploaded.fetch_add(bytes as u64, Ordering::Relaxed);
        self.counters.uploaded_blobs.fetch_add(1, Ordering::Relaxed);
        Ok(bytes as u64)
    }
}

/// A document as a registry answered it.
pub(crate) struct Fetched {
    pub bytes: Vec<u8>,
    /// The media type it states (`Content-Type`).
    pub media_type: Option<String>,
    /// The digest it states (`Docker-Content-Digest`).
    pub digest: Option<Digest>,
}

/// An upload the registry started: where to send the bytes, and the smallest chunk it takes.
#[derive(Debug, Clone)]
pub(crate) struct Upload {
    location: String,
    min_chunk: u64,
}

/// `url` with the `digest` query parameter that completes an upload.
fn with_digest(url: &str, digest: &Digest) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}digest={}", encode(&digest.to_string()))
}

/// A blob being downloaded: it resumes with a `Range` request where the connection drops,
/// as long as the registry keeps answering.
pub(crate) struct BlobDownload {
    client: Arc<Client>,
    repository: String,
    path: String,
    /// The blob's size, when known: a download that ends before it is resumed.
    size: Option<u64>,
    received: u64,
    body: Option<Box<dyn Read + Send>>,
    resumes: u32,
}

impl BlobDownload {
    /// Whether bytes are still to come.
    fn incomplete(&self) -> bool {
        self.size.is_some_and(|size| self.received < size)
    }

    /// Asks for the rest of the blob from where it stopped.
    fn resume(&mut self, cause: &str) -> io::Result<()> {
        self.body = None;
        if self.resumes >= self.client.retries.max(1) {
            return Err(io::Error::other(format!(
                "the download broke off at byte {} of {} ({cause}); gave up after {} resumptions",
                self.received,
                self.size.unwrap_or(0),
                self.resumes
            )));
        }
        self.resumes += 1;
        std::thread::sleep(backoff(self.resumes));
        let range = [("Range", format!("bytes={}-", self.received))];
        let response = self
            .client
            .send(
                &self.repository,
                Method::Get,
                &self.path,
                &range,
                Payload::Empty,
                &[pull(&self.repository)],
            )
            .map_err(|e| io::Error::other(e.to_string()))?;
        let response_status = response.status().as_u16();
        let mut reader: Box<dyn Read + Send> = Box::new(response.into_body().into_reader());
        match response_status {
            206 => {}
            200 => {
                // The registry ignored the range and sends the whole blob again: skip what
                // arrived before.
                let skipped = io::copy(&mut (&mut reader).take(self.received), &mut io::sink())?;
                if skipped < self.received {
                    return Err(io::Error::other(format!(
                        "the download broke off at byte {} of {} ({cause}), and the registry \
                         answered the resumption with fewer bytes",
                        self.received,
                        self.size.unwrap_or(0)
                    )));
                }
            }
            status => {
                return Err(io::Error::other(format!(
                    "the download broke off at byte {} of {} ({cause}), and the registry \
                     answered the resumption with HTTP {status}",
                    self.received,
                    self.size.unwrap_or(0)
                )))
            }
        }
        self.body = Some(reader);
        Ok(())
    }
}

impl Read for BlobDownload {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(body) = self.body.as_mut() else { return Ok(0) };
            match body.read(buf) {
                Ok(0) if self.incomplete() => self.resume("the connection ended early")?,
                Ok(n) => {
                    self.received += n as u64;
                    self.client.counters.downloaded.fetch_add(n as u64, Ordering::Relaxed);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if self.incomplete() => self.resume(&e.to_string())?,
                Err(e) => return Err(e),
            }
        }
    }
}

/// Whether a failed request may succeed when sent again.
fn transient(error: &ureq::Error) -> bool {
    matches!(
        error,
        ureq::Error::Io(_)
            | ureq::Error::Timeout(_)
            | ureq::Error::Protocol(_)
            | ureq::Error::ConnectionFailed
    )
}

/// How long to wait before the `attempt`-th retry: half a second, doubling, at most ten.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((500u64 << attempt.min(5).saturating_sub(1)).min(10_000))
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// A realm for messages: scheme, host and path, never a query.
fn realm_shown(realm: &str) -> &str {
    realm.split('?').next().unwrap_or(realm)
}

/// Percent-encodes a query value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// The TLS configuration `options` ask for: the system's roots and `--cert-dir`'s `*.crt`, a
/// client certificate from `--cert-dir`, or nothing verified.
fn tls_config(options: &RegistryOptions) -> std::result::Result<TlsConfig, String> {
    let mut builder = TlsConfig::builder();
    if !options.tls_verify {
        return Ok(builder.disable_verification(true).build());
    }
    let mut roots: Vec<Certificate<'static>> = Vec::new();
    let system = rustls_native_certs::load_native_certs();
    roots.extend(system.certs.iter().map(|der| Certificate::from_der(der.as_ref()).to_owned()));
    if let Some(dir) = &options.cert_dir {
        let entries =
            std::fs::read_dir(dir).map_err(|e| format!("--cert-dir `{}`: {e}", dir.display()))?;
        let mut client: (Option<Vec<u8>>, Option<Vec<u8>>) = (None, None);
        let mut paths: Vec<std::path::PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            let read = || std::fs::read(&path).map_err(|e| format!("`{}`: {e}", path.display()));
            match path.extension().and_then(|e| e.to_str()) {
                Some("crt") => {
                    for item in ureq::tls::parse_pem(&read()?) {
                        if let Ok(ureq::tls::PemItem::Certificate(cert)) = item {
                            roots.push(cert);
                        }
                    }
                }
                Some("cert") => client.0 = Some(read()?),
                Some("key") => client.1 = Some(read()?),
                _ => {}
            }
        }
        if let (Some(cert), Some(key)) = client {
            let chain: Vec<Certificate<'static>> = ureq::tls::parse_pem(&cert)
                .filter_map(|i| match i {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            let key = PrivateKey::from_pem(&key)
                .map_err(|e| format!("--cert-dir `{}`: the client key: {e}", dir.display()))?;
            builder = builder.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
        }
    }
    if roots.is_empty() {
        return Ok(builder.build());
    }
    Ok(builder.root_certs(RootCerts::new_with_certs(&roots)).build())
}
