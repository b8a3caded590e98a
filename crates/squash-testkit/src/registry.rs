//! Registries for tests, all real and all on loopback: Debian's `docker-registry` (the CNCF
//! distribution registry 2.8) started with a config of the test's own, over plain HTTP, over
//! TLS with `htpasswd -B` users, or with token authentication; the token issuer for the latter
//! (a small test-only HTTP server that signs RS256 JWTs with `openssl`, its certificate sent in
//! `x5c`, which the registry checks against its `rootcertbundle`); certificates made with
//! `openssl`; and a fault proxy that sits before a registry and cuts, corrupts or refuses the
//! requests a test chooses.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A port free on 127.0.0.1 when asked (the listener that found it is closed again).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

/// A self-signed certificate valid for two days, `NAME.crt` with its key `NAME.key` in `dir`.
fn self_signed(dir: &Path, name: &str, common_name: &str) {
    let (key, crt) = (format!("{name}.key"), format!("{name}.crt"));
    run(Command::new("openssl")
        .current_dir(dir)
        .args(["req", "-x509", "-newkey", "rsa:2048"])
        .args([
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &crt,
            "-days",
            "2",
            "-subj",
            &format!("/CN={common_name}"),
        ]));
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// A certificate authority and a server certificate for 127.0.0.1 and localhost, made with
/// `openssl` in `dir`: `ca.crt` (what clients trust), `server.crt`, `server.key`.
pub struct Certificates {
    /// The directory holding them.
    pub dir: PathBuf,
}

impl Certificates {
    /// Makes them in `dir`.
    pub fn make(dir: &Path) -> Certificates {
        std::fs::create_dir_all(dir).expect("certificate dir");
        let openssl = || {
            let mut c = Command::new("openssl");
            c.current_dir(dir);
            c
        };
        self_signed(dir, "ca", "squash test CA");
        run(openssl().args([
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]));
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             extendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n",
        )
        .expect("extensions");
        run(openssl().args([
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ]));
        Certificates { dir: dir.to_path_buf() }
    }

    /// A directory holding only `ca.crt`, as `--cert-dir` and skopeo's `--*-cert-dir` take it.
    pub fn trust_dir(&self) -> PathBuf {
        let dir = self.dir.join("trust");
        std::fs::create_dir_all(&dir).expect("trust dir");
        std::fs::copy(self.dir.join("ca.crt"), dir.join("ca.crt")).expect("copy ca.crt");
        dir
    }
}

/// How a registry authenticates.
pub enum Auth {
    /// Nobody: plain HTTP, anonymous.
    None,
    /// TLS with the certificates given, and Basic authentication of `htpasswd -B` users.
    Htpasswd {
        /// The directory of [`Certificates`].
        certificates: PathBuf,
        /// The one user.
        user: String,
        /// Its password.
        password: String,
    },
    /// Bearer tokens from `issuer`.
    Token {
        /// The issuer the registry trusts.
        issuer: Arc<TokenIssuer>,
    },
}

/// A `docker-registry` of the test's own, stopped when dropped.
pub struct Registry {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
    tls: bool,
}

impl Registry {
    /// Starts one with its storage, config and logs under `dir`, on a free loopback port. A port
    /// found free can be taken before the registry binds it (by another test's server, or an
    /// outgoing connection): then it starts again on another.
    pub fn start(dir: &Path, auth: &Auth) -> Registry {
        let mut attempt = 0;
        loop {
            let mut registry = Registry::configure(dir, auth);
            match registry.try_start() {
                Ok(()) => return registry,
                Err(log) if attempt < 4 && log.contains("address already in use") => attempt += 1,
                Err(log) => panic!("docker-registry did not start:\n{log}"),
            }
        }
    }

    /// Writes the config for a new free port (the log of an earlier try kept).
    fn configure(dir: &Path, auth: &Auth) -> Registry {
        std::fs::create_dir_all(dir.join("data")).expect("registry dir");
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: squash-test-secret\n",
            dir.join("data").display()
        );
        let mut tls = false;
        match auth {
            Auth::None => {}
            Auth::Htpasswd { certificates, user, password } => {
                let htpasswd = run(Command::new("htpasswd").args(["-Bbn", user, password]));
                std::fs::write(dir.join("htpasswd"), htpasswd).expect("htpasswd");
                config.push_str(&format!(
                    "  tls:\n    certificate: {}\n    key: {}\nauth:\n  htpasswd:\n    realm: \
                     squash-test\n    path: {}\n",
                    certificates.join("server.crt").display(),
                    certificates.join("server.key").display(),
                    dir.join("htpasswd").display()
                ));
                tls = true;
            }
            Auth::Token { issuer } => {
                config.push_str(&format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    \
                     rootcertbundle: {}\n",
                    issuer.realm(),
                    TokenIssuer::SERVICE,
                    TokenIssuer::ISSUER,
                    issuer.certificate().display()
                ));
            }
        }
        std::fs::write(dir.join("config.yml"), config).expect("config");
        Registry { dir: dir.to_path_buf(), port, child: None, tls }
    }

    /// Starts it again (after [`Registry::stop`]) on the same port, storage and log.
    pub fn start_again(&mut self) {
        if let Err(log) = self.try_start() {
            panic!("docker-registry did not start again on port {}:\n{log}", self.port);
        }
    }

    /// Starts the server and waits until it listens; if it exits first, or does not listen
    /// within 30 s, its log.
    fn try_start(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("registry log");
        let listening = self.log().matches("listening on").count();
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(self.dir.join("config.yml"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("docker-registry (Debian's docker-registry package)");
        let start = Instant::now();
        loop {
            // Exited: it did not bind (whatever answers on the port is not this registry).
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("{status}\n{}", self.log()));
            }
            // It says it listens (this start, not an earlier one of the same log) and answers.
            if self.log().matches("listening on").count() > listening
                && TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            {
                break;
            }
            if start.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("it did not listen within 30 s\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child = Some(child);
        Ok(())
    }

    /// Stops it (killed at once, as a crash would).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether it serves HTTPS.
    pub fn tls(&self) -> bool {
        self.tls
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("registry.log")
    }

    /// Its log so far, the access log among it.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The requests of the access log so far, as `METHOD PATH STATUS` (the query left out).
    pub fn requests(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter_map(|line| {
                let start = line.find('"')? + 1;
                let rest = &line[start..];
                let end = rest.find('"')?;
                let mut request = rest[..end].split(' ');
                let (method, path) = (request.next()?, request.next()?);
                let status = rest[end + 1..].split_whitespace().next()?;
                if !["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE"].contains(&method) {
                    return None;
                }
                let path = path.split('?').next().unwrap_or(path);
                Some(format!("{method} {path} {status}"))
            })
            .collect()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A token issuer for a registry's `auth: token`: `GET /token?service=…&scope=…` with Basic
/// credentials of its one user answers a JWT granting the scopes asked for, signed RS256 by a
/// key made with `openssl` and carrying its certificate in `x5c`. Other credentials get 401.
pub struct TokenIssuer {
    port: u16,
    dir: PathBuf,
    stop: Arc<AtomicBool>,
    /// Tokens issued, each with the scopes asked.
    pub issued: Arc<Mutex<Vec<String>>>,
}

impl TokenIssuer {
    /// The service name tokens are issued for (the registry's `service`).
    pub const SERVICE: &'static str = "squash-test-registry";
    /// The issuer name (the registry's `issuer`).
    pub const ISSUER: &'static str = "squash-test-issuer";

    /// Starts one with its key under `dir`, for `user` with `password`.
    pub fn start(dir: &Path, user: &str, password: &str) -> Arc<TokenIssuer> {
        std::fs::create_dir_all(dir).expect("issuer dir");
        self_signed(dir, "token", "squash test token issuer");
        let der = run(Command::new("openssl").current_dir(dir).args([
            "x509",
            "-in",
            "token.crt",
            "-outform",
            "DER",
        ]));
        let listener = TcpListener::bind("127.0.0.1:0").expect("issuer port");
        let port = listener.local_addr().expect("address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let issued = Arc::new(Mutex::new(Vec::new()));
        let issuer = Arc::new(TokenIssuer {
            port,
            dir: dir.to_path_buf(),
            stop: Arc::clone(&stop),
            issued: Arc::clone(&issued),
        });
        let expected = format!("Basic {}", base64_std(format!("{user}:{password}").as_bytes()));
        let key = dir.join("token.key");
        let x5c = base64_std(&der);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let _ = answer_token(stream, &expected, &key, &x5c, &issued);
            }
        });
        issuer
    }

    /// `http://127.0.0.1:PORT/token`.
    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    /// The certificate the registry trusts for tokens.
    pub fn certificate(&self) -> PathBuf {
        self.dir.join("token.crt")
    }
}

impl Drop for TokenIssuer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn answer_token(
    stream: TcpStream,
    expected: &str,
    key: &Path,
    x5c: &str,
    issued: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let head = read_head(&mut reader)?;
    let mut stream = stream;
    let target = head.lines().next().and_then(|l| l.split(' ').nth(1)).unwrap_or("").to_string();
    let authorized = head.lines().any(|l| {
        l.split_once(':')
            .is_some_and(|(k, v)| k.eq_ignore_ascii_case("authorization") && v.trim() == expected)
    });
    if !authorized {
        return respond(&mut stream, "401 Unauthorized", "application/json", b"{}");
    }
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let scopes: Vec<String> =
        query.split('&').filter_map(|kv| kv.strip_prefix("scope=")).map(percent_decode).collect();
    let access: Vec<serde_json::Value> = scopes
        .iter()
        .filter_map(|scope| {
            let mut parts = scope.splitn(3, ':');
            let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            Some(serde_json::json!({
                "type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()
            }))
        })
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [x5c]});
    let claims = serde_json::json!({
        "iss": TokenIssuer::ISSUER, "sub": "test", "aud": TokenIssuer::SERVICE,
        "exp": now + 600, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", scopes.len()),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        base64_url(&serde_json::to_vec(&header).unwrap_or_default()),
        base64_url(&serde_json::to_vec(&claims).unwrap_or_default())
    );
    let mut openssl = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    openssl.stdin.take().map(|mut i| i.write_all(signing_input.as_bytes())).transpose()?;
    let signature = openssl.wait_with_output()?.stdout;
    let token = format!("{signing_input}.{}", base64_url(&signature));
    if let Ok(mut issued) = issued.lock() {
        issued.push(scopes.join(" "));
    }
    let body = serde_json::json!({"token": token, "access_token": token, "expires_in": 600});
    respond(&mut stream, "200 OK", "application/json", body.to_string().as_bytes())
}

fn respond(stream: &mut TcpStream, status: &str, kind: &str, body: &[u8]) -> std::io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: \
         close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    stream.flush()?;
    let _ = stream.shutdown(Shutdown::Both);
    Ok(())
}

/// Reads an HTTP message head (through the blank line).
fn read_head(reader: &mut impl BufRead) -> std::io::Result<String> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        let end = line == "\r\n" || line == "\n";
        head.push_str(&line);
        if end {
            break;
        }
    }
    Ok(head)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64, padded.
pub fn base64_std(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_url(bytes: &[u8]) -> String {
    base64_std(bytes).trim_end_matches('=').replace('+', "-").replace('/', "_")
}

/// A request as the fault proxy sees it.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `PUT`, …
    pub method: String,
    /// The path, without the query.
    pub path: String,
}

/// What the fault proxy does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Passes it on, and the answer back.
    Pass,
    /// Answers this status itself (with `Retry-After: 1` for a 429), without asking the registry.
    Status(u16),
    /// Passes it on, and cuts the answer's body after this many bytes (the connection closed).
    CutAfter(u64),
    /// Passes it on, and flips one bit of the answer's body at this offset.
    Corrupt(u64),
    /// Closes the connection without an answer, and calls the proxy's `on_drop`.
    Drop,
}

/// A proxy before a registry: each request (one per connection; `Connection: close` is
/// forced) is given to a chooser that says what to do with it. Requests are recorded.
pub struct FaultProxy {
    port: u16,
    stop: Arc<AtomicBool>,
    /// Every request seen, as `METHOD PATH`.
    pub seen: Arc<Mutex<Vec<String>>>,
}

/// Chooses what the proxy does with a request.
pub type Chooser = dyn Fn(&Request) -> Fault + Send + Sync;

impl FaultProxy {
    /// Starts one before `upstream` (`127.0.0.1:PORT`, plain HTTP).
    pub fn start(upstream: String, choose: Arc<Chooser>) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy port");
        let port = listener.local_addr().expect("address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (thread_stop, thread_seen) = (Arc::clone(&stop), Arc::clone(&seen));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if thread_stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let (upstream, choose, seen) =
                    (upstream.clone(), Arc::clone(&choose), Arc::clone(&thread_seen));
                std::thread::spawn(move || {
                    let _ = relay(stream, &upstream, choose.as_ref(), &seen);
                });
            }
        });
        FaultProxy { port, stop, seen }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// The value of header `name` in `head`.
fn header_value(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_string())
    })
}

/// `head` with `Connection: close` in place of any connection header.
fn closing(head: &str) -> String {
    let mut out = String::new();
    for line in head.split("\r\n") {
        if line.is_empty() {
            continue;
        }
        if line.split_once(':').is_some_and(|(k, _)| {
            k.trim().eq_ignore_ascii_case("connection")
                || k.trim().eq_ignore_ascii_case("keep-alive")
        }) {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    out
}

/// Copies a message body of `head` from `from` to `to`: by its length, chunked (as it is), or
/// to the end.
fn copy_body(
    head: &str,
    from: &mut impl BufRead,
    to: &mut impl Write,
    request: bool,
) -> std::io::Result<()> {
    if let Some(len) = header_value(head, "content-length").and_then(|l| l.parse::<u64>().ok()) {
        std::io::copy(&mut from.take(len), to)?;
        return Ok(());
    }
    if header_value(head, "transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        loop {
            let mut size_line = String::new();
            from.read_line(&mut size_line)?;
            to.write_all(size_line.as_bytes())?;
            let size = u64::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            std::io::copy(&mut from.take(size + 2), to)?;
            if size == 0 {
                return Ok(());
            }
        }
    }
    if !request {
        std::io::copy(from, to)?;
    }
    Ok(())
}

fn relay(
    client: TcpStream,
    upstream: &str,
    choose: &Chooser,
    seen: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut from_client = BufReader::new(client.try_clone()?);
    let mut client = client;
    let head = read_head(&mut from_client)?;
    let mut first = head.lines().next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_string();
    let target = first.next().unwrap_or("").to_string();
    let path = target.split('?').next().unwrap_or("").to_string();
    if let Ok(mut seen) = seen.lock() {
        seen.push(format!("{method} {path}"));
    }
    let fault = choose(&Request { method: method.clone(), path });
    match fault {
        Fault::Drop => {
            let _ = client.shutdown(Shutdown::Both);
            return Ok(());
        }
        Fault::Status(status) => {
            let mut sink = Vec::new();
            copy_body(&head, &mut from_client, &mut sink, true)?;
            let reason = match status {
                429 => "Too Many Requests\r\nRetry-After: 1",
                500 => "Internal Server Error",
                503 => "Service Unavailable",
                401 => "Unauthorized",
                _ => "Refused",
            };
            write!(
                client,
                "HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )?;
            let _ = client.shutdown(Shutdown::Both);
            return Ok(());
        }
        _ => {}
    }
    let server = TcpStream::connect(upstream)?;
    let mut to_server = server.try_clone()?;
    to_server.write_all(closing(&head).as_bytes())?;
    copy_body(&head, &mut from_client, &mut to_server, true)?;
    to_server.flush()?;
    let mut from_server = BufReader::new(server);
    let answer = read_head(&mut from_server)?;
    client.write_all(closing(&answer).as_bytes())?;
    let mut body = Vec::new();
    if method != "HEAD" {
        copy_body(&answer, &mut from_server, &mut body, false)?;
    }
    match fault {
        Fault::CutAfter(n) => {
            let n = usize::try_from(n).unwrap_or(usize::MAX).min(body.len());
            client.write_all(&body[..n])?;
        }
        Fault::Corrupt(at) => {
            if let Some(byte) = usize::try_from(at).ok().and_then(|i| body.get_mut(i)) {
                *byte ^= 1;
            }
            client.write_all(&body)?;
        }
        _ => client.write_all(&body)?,
    }
    client.flush()?;
    let _ = client.shutdown(Shutdown::Both);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_examples() {
        let cases =
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")];
        for (plain, encoded) in cases {
            assert_eq!(base64_std(plain.as_bytes()), encoded);
        }
        assert_eq!(base64_url(&[0xfb, 0xff]), "-_8");
        assert_eq!(percent_decode("repository%3Aa%2Fb%3Apull%2Cpush"), "repository:a/b:pull,push");
    }
}
