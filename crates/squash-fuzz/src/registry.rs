//! The fuzzer's registry mode: a case's OCI layout served on loopback by a registry of the
//! fuzzer's own (the distribution API's reads: `/v2/`, manifests by tag or digest, blobs, with
//! `Range`), which is itself unfaithful at times: a body cut short, a bit flipped in transit, a
//! `Content-Length` or `Docker-Content-Digest` that lies, a wrong `Content-Type`, a 5xx, a 404
//! or a 429. The image is then read, reported on and squashed from `docker://` as from a file.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// How unfaithful the server is: the chance, in percent, that a request meets a fault, and the
/// seed that picks which.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    /// Percent of requests that meet one.
    pub percent: u64,
    /// Picks the requests and the faults.
    pub seed: u64,
}

/// A registry serving one case as `fuzz/case:latest`, stopped when dropped.
pub struct Served {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl Served {
    /// `docker://127.0.0.1:PORT/fuzz/case:latest`.
    pub fn reference(&self) -> String {
        format!("docker://127.0.0.1:{}/fuzz/case:latest", self.port)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Serves the members of an OCI layout (`index.json` as the tag, `blobs/sha256/…` by digest).
pub fn serve(members: &[(String, Vec<u8>)], faults: Faults) -> std::io::Result<Served> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let stop = Arc::new(AtomicBool::new(false));
    let mut blobs: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut tag = Vec::new();
    for (name, bytes) in members {
        if let Some(hex) = name.strip_prefix("blobs/sha256/") {
            blobs.insert(format!("sha256:{hex}"), bytes.clone());
        } else if name == "index.json" {
            tag = bytes.clone();
        }
    }
    let content = Arc::new(Content { blobs, tag });
    let thread_stop = Arc::clone(&stop);
    let requests = Arc::new(AtomicU64::new(0));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            if thread_stop.load(Ordering::SeqCst) {
                return;
            }
            let Ok(stream) = stream else { continue };
            let n = requests.fetch_add(1, Ordering::SeqCst);
            let content = Arc::clone(&content);
            std::thread::spawn(move || {
                let _ = answer(stream, &content, faults, n);
            });
        }
    });
    Ok(Served { port, stop })
}

struct Content {
    blobs: BTreeMap<String, Vec<u8>>,
    tag: Vec<u8>,
}

/// What a faulty answer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    Cut,
    Flip,
    LongLength,
    WrongDigest,
    WrongType,
    Status(u16),
}

/// The fault request `n` meets (a hash of the seed and `n`).
fn fault(faults: Faults, n: u64) -> Fault {
    let mut x = faults.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    if x % 100 >= faults.percent {
        return Fault::None;
    }
    match (x >> 8) % 9 {
        0 => Fault::Cut,
        1 => Fault::Flip,
        2 => Fault::LongLength,
        3 => Fault::WrongDigest,
        4 => Fault::WrongType,
        5 => Fault::Status(500),
        6 => Fault::Status(404),
        7 => Fault::Status(429),
        _ => Fault::Status(503),
    }
}

fn answer(stream: TcpStream, content: &Content, faults: Faults, n: u64) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
        head.push_str(&line);
    }
    let mut stream = stream;
    let mut words = head.lines().next().unwrap_or("").split(' ');
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let range_start = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        if !k.eq_ignore_ascii_case("range") {
            return None;
        }
        v.trim().strip_prefix("bytes=")?.trim_end_matches('-').parse::<usize>().ok()
    });
    let path = target.split('?').next().unwrap_or("");
    let fault = if path == "/v2/" { Fault::None } else { fault(faults, n) };
    if let Fault::Status(status) = fault {
        let extra = if status == 429 { "Retry-After: 0\r\n" } else { "" };
        write!(
            stream,
            "HTTP/1.1 {status} Fault\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
        )?;
        return Ok(());
    }
    let found: Option<(Vec<u8>, String)> = if path == "/v2/" {
        Some((b"{}".to_vec(), "application/json".into()))
    } else if let Some(reference) = path.strip_prefix("/v2/fuzz/case/manifests/") {
        let bytes = if reference == "latest" {
            Some(content.tag.clone())
        } else {
            content.blobs.get(reference).cloned()
        };
        bytes.map(|b| {
            let stated = serde_json::from_slice::<Value>(&b)
                .ok()
                .and_then(|v| v.get("mediaType").and_then(Value::as_str).map(str::to_string));
            (b, stated.unwrap_or_else(|| "application/vnd.oci.image.manifest.v1+json".into()))
        })
    } else if let Some(digest) = path.strip_prefix("/v2/fuzz/case/blobs/") {
        content.blobs.get(digest).cloned().map(|b| (b, "application/octet-stream".into()))
    } else {
        None
    };
    let Some((mut body, mut kind)) = found else {
        write!(stream, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
        return Ok(());
    };
    let mut digest = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
    let mut status = "200 OK";
    if let Some(start) = range_start.filter(|s| *s <= body.len()) {
        body.drain(..start);
        status = "206 Partial Content";
    }
    let mut length = body.len();
    match fault {
        Fault::Flip if !body.is_empty() => {
            let at = (n as usize * 7919) % body.len();
            body[at] ^= 0x20;
        }
        Fault::Cut => body.truncate(body.len() / 2),
        Fault::LongLength => length += 100,
        Fault::WrongDigest => digest = format!("sha256:{}", "0".repeat(64)),
        Fault::WrongType => kind = "text/html".into(),
        _ => {}
    }
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {length}\r\n\
         Docker-Content-Digest: {digest}\r\nConnection: close\r\n\r\n"
    )?;
    if method != "HEAD" {
        stream.write_all(&body)?;
    }
    stream.flush()?;
    let _ = stream.shutdown(Shutdown::Both);
    Ok(())
}
