//! Opening what a reference names: the transport detected or given, a non-seekable or
//! compressed input spooled first, and the container read as one image or a whole index.

use std::path::Path;
use std::sync::Arc;

use tempfile::TempPath;

use super::archive::{ArchiveIndex, SpooledDigests};
use super::blob::Store;
use super::docker;
use super::image::{Image, InputFormat, OpenOptions};
use super::image_index::Opened;
use super::layout;
use super::reference::{remote_transport, ImageReference, Transport};
#[cfg(feature = "registry")]
use super::remote;
use super::spool;
use crate::codec::compression::{sniff_buffered, Compression, Sniffed};
use crate::error::{Error, IoContext, Location, ParseError, Result};

impl Image {
    /// Opens the image named by `reference`: `oci:PATH[:TAG]`, `oci-archive:PATH[:TAG]`,
    /// `docker-archive:PATH[:NAME:TAG]`, `dir:PATH`, `docker://HOST/REPO[:TAG|@DIGEST]` (a
    /// registry, reached as [`OpenOptions::registry`] says), or a bare path whose format is
    /// detected.
    ///
    /// ```no_run
    /// let image = squash::Image::open("docker-archive:app.tar")?;
    /// for layer in image.layers() {
    ///     println!("{} {} bytes", layer.diff_id(), layer.size());
    /// }
    /// # Ok::<(), squash::Error>(())
    /// ```
    pub fn open(reference: &str) -> Result<Image> {
        Image::open_with(reference, &OpenOptions::default())
    }

    /// Like [`Image::open`], with options for choosing among several images.
    pub fn open_with(reference: &str, options: &OpenOptions) -> Result<Image> {
        Image::open_reference(&parse_reference(reference)?, options)
    }

    /// Opens a parsed reference. A platform asked for in `options` must be the image's, whether
    /// the input is an index or a single image.
    pub fn open_reference(reference: &ImageReference, options: &OpenOptions) -> Result<Image> {
        let image = Image::open_unchecked(reference, options)?;
        if let (Some(wanted), Some(actual)) = (&options.platform, image.platform()) {
            if !wanted.matches(actual) {
                return Err(Error::Selection {
                    location: Location::file(&reference.path),
                    reason: format!(
                        "no manifest for platform {wanted}: the image is for {actual} only"
                    ),
                });
            }
        }
        Ok(image)
    }

    fn open_unchecked(reference: &ImageReference, options: &OpenOptions) -> Result<Image> {
        match open_store(reference, options, false, SpooledDigests::new())? {
            Opened::Image(image) => Ok(*image),
            Opened::Index(index) => Err(Error::Selection {
                location: Location::file(index.path()),
                reason: "an image index where one image was expected".into(),
            }),
        }
    }
}

impl Opened {
    /// Opens `reference`: an image index when the reference names one (an OCI layout or
    /// archive whose tag points at an index, directly or through nested ones), else the image.
    /// `options.platform` is not used to choose here: every platform is read.
    ///
    /// ```no_run
    /// use squash::Opened;
    ///
    /// match Opened::open(&"oci:layout:app".parse()?, &Default::default())? {
    ///     Opened::Index(index) => println!("an index of {} images", index.images().len()),
    ///     Opened::Image(image) => println!("one image of {} layers", image.layers().len()),
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(reference: &ImageReference, options: &OpenOptions) -> Result<Opened> {
        open_store(reference, options, true, SpooledDigests::new())
    }

    /// [`Opened::open`] of a reference given as text, refused as [`Image::open_with`] refuses
    /// it (a remote transport as unsupported, with the command that makes a file of it).
    pub fn open_with(reference: &str, options: &OpenOptions) -> Result<Opened> {
        Opened::open(&parse_reference(reference)?, options)
    }
}

/// `reference` parsed, or the error that names it: unsupported for a remote transport, a
/// selection error otherwise.
fn parse_reference(reference: &str) -> Result<ImageReference> {
    reference.parse().map_err(|e: ParseError| {
        let reason = e.to_string();
        let location = Location::file(reference);
        match remote_transport(reference) {
            Some(_) => Error::Unsupported { location, what: reason },
            None => Error::Selection { location, reason },
        }
    })
}

/// Opens the store `reference` names (spooling a non-seekable input first) and reads from it
/// one image, or with `indexes` an image index when the reference names one. `spooled`: the
/// digests the members of an archive had as it was spooled (the reference then names the spool).
fn open_store(
    reference: &ImageReference,
    options: &OpenOptions,
    indexes: bool,
    spooled: SpooledDigests,
) -> Result<Opened> {
    let path = &reference.path;
    // Read through a temporary copy: a pipe, and an archive that is itself compressed (the copy
    // is decompressed).
    let from_spool = |(spool, digests): (TempPath, SpooledDigests)| -> Result<Opened> {
        let spool: TempPathShared = Arc::new(spool);
        let mut inner = reference.clone();
        inner.path = spool.to_path_buf();
        // Errors name the input as it was given, not its temporary copy.
        let mut opened = open_store(&inner, options, indexes, digests)
            .map_err(|e| e.naming(&inner.path, path))?;
        let spool = Some((spool, path.clone()));
        match &mut opened {
            Opened::Image(image) => image.spool = spool,
            Opened::Index(index) => index.set_spool(spool),
        }
        Ok(opened)
    };
    if let Some(registry) = &reference.registry {
        #[cfg(feature = "registry")]
        return remote::open(registry, options, indexes);
        #[cfg(not(feature = "registry"))]
        return Err(Error::unsupported(
            Location::file(registry.to_string()),
            "registries: this squash was built without its `registry` feature",
        ));
    }
    if spool::wanted(path) {
        return from_spool(spool::spool(path, options)?);
    }
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && looks_like_a_name(path) => {
            let name = path.display();
            return Err(Error::Selection {
                location: Location::file(path),
                reason: format!(
                    "no such file; if `{name}` is an image in Docker or podman, give its archive: \
                     `docker save {name} | squash - …` (or `podman save`), or read it from its \
                     registry: `docker://REGISTRY/{name}`"
                ),
            });
        }
        Err(e) => return Err(Error::io(Location::file(path), e)),
    };
    let transport = match reference.transport {
        Some(t) => t,
        None => detect(path, metadata.is_dir())?,
    };
    match transport {
        Transport::Registry => Err(Error::Selection {
            location: Location::file(path),
            reason: "a registry reference names no registry (expected docker://HOST/REPO:TAG)"
                .into(),
        }),
        Transport::Oci => {
            if !metadata.is_dir() {
                return Err(Error::Selection {
                    location: Location::file(path),
                    reason: "`oci:` needs an OCI layout directory".into(),
                });
            }
            layout::open_any(
                Store::Dir(path.clone()),
                InputFormat::OciLayout,
                reference.name.as_deref(),
                options,
                indexes,
            )
        }
        Transport::Dir => {
            docker::open_dir(Store::Dir(path.clone())).map(|i| Opened::Image(Box::new(i)))
        }
        Transport::OciArchive | Transport::DockerArchive => {
            if metadata.is_dir() {
                return Err(Error::Selection {
                    location: Location::file(path),
                    reason: "an archive transport needs a file, not a directory".into(),
                });
            }
            if !plain_tar(path)? {
                return from_spool(spool::spool(path, options)?);
            }
            if !starts_like_a_tar(path)? {
                return Err(not_an_archive(path));
            }
            let index = Arc::new(ArchiveIndex::open(path)?.with_spooled(spooled));
            let store = Store::Archive(index.clone());
            let has_layout = index.contains("oci-layout") && index.contains("index.json");
            let has_docker = index.contains("manifest.json");
            match transport {
                Transport::DockerArchive if has_docker => {
                    docker::open_archive(store, reference.name.as_deref())
                        .map(|i| Opened::Image(Box::new(i)))
                }
                Transport::OciArchive if has_layout => layout::open_any(
                    store,
                    InputFormat::OciArchive,
                    reference.name.as_deref(),
                    options,
                    indexes,
                ),
                _ if has_layout => layout::open_any(
                    store,
                    if has_docker { InputFormat::DockerArchive } else { InputFormat::OciArchive },
                    reference.name.as_deref(),
                    options,
                    indexes,
                ),
                _ if has_docker => docker::open_archive(store, reference.name.as_deref())
                    .map(|i| Opened::Image(Box::new(i))),
                _ => Err(not_an_image(&index)),
            }
        }
    }
}

/// Guesses the transport of a bare path.
fn detect(path: &Path, is_dir: bool) -> Result<Transport> {
    if is_dir {
        if path.join("oci-layout").is_file() {
            return Ok(Transport::Oci);
        }
        if path.join("manifest.json").is_file() {
            return Ok(Transport::Dir);
        }
        return Err(Error::Selection {
            location: Location::file(path),
            reason: "directory is neither an OCI image layout (no `oci-layout`) nor a `dir:` \
                image (no `manifest.json`)"
                .into(),
        });
    }
    Ok(Transport::DockerArchive)
}

/// Whether the archive at `path` is a plain tar (members are read in place by offset); a
/// compressed one (gzip, zstd, xz, bzip2) is read through a decompressed copy.
fn plain_tar(path: &Path) -> Result<bool> {
    let file = std::fs::File::open(path).at(|| Location::file(path))?;
    let (sniffed, _) = sniff_buffered(file).at(|| Location::file(path))?;
    Ok(sniffed == Sniffed::Known(Compression::None))
}

/// Whether a missing input reads like an image name (`app`, `app:latest`,
/// `registry.example/team/app:1`) rather than a path (`./app.tar`, `/tmp/x`, `out/app.tar`).
fn looks_like_a_name(path: &Path) -> bool {
    let Some(text) = path.to_str() else { return false };
    let (name, tag) = match text.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
        _ => (text, None),
    };
    let archive = [".tar", ".tgz", ".gz", ".zst", ".json"].iter().any(|e| text.ends_with(e));
    !name.is_empty()
        && !archive
        && !text.starts_with(['.', '/', '~'])
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b))
        && tag.is_none_or(|t| {
            !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        })
}

/// Whether the file at `path` begins with a tar header (its checksum right), as every image
/// archive does.
fn starts_like_a_tar(path: &Path) -> Result<bool> {
    use std::io::Read;
    let mut block = [0u8; 512];
    let mut file = std::fs::File::open(path).at(|| Location::file(path))?;
    let mut filled = 0;
    while filled < block.len() {
        match file.read(&mut block[filled..]).at(|| Location::file(path))? {
            0 => break,
            n => filled += n,
        }
    }
    if filled == 0 {
        return Ok(true);
    }
    if filled < block.len() {
        return Ok(false);
    }
    let stated = std::str::from_utf8(&block[148..156])
        .ok()
        .map(|s| s.trim_matches(|c: char| c == '\0' || c == ' '))
        .and_then(|s| u64::from_str_radix(s, 8).ok());
    let actual: u64 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| if (148..156).contains(&i) { u64::from(b' ') } else { u64::from(b) })
        .sum();
    Ok(block.iter().all(|&b| b == 0) || stated == Some(actual))
}

/// The error for a file that is no archive at all (a Dockerfile, a text file).
fn not_an_archive(path: &Path) -> Error {
    Error::unsupported(
        Location::file(path),
        "not an image archive (it does not begin with a tar header); squash reads `docker save` \
         tarballs, OCI archives (`podman save --format oci-archive`), OCI layout directories \
         (`oci:DIR[:TAG]`), `dir:` directories and registries (`docker://HOST/REPO:TAG`), plain \
         or gzip- or zstd-compressed",
    )
}

/// A temporary copy of an input, shared by the image and its clones.
type TempPathShared = Arc<tempfile::TempPath>;

fn not_an_image(index: &ArchiveIndex) -> Error {
    let names: Vec<&str> = index.names().take(5).collect();
    let what = if names.is_empty() {
        "an empty archive: no tar member at all (an empty file or stream, or a tar of nothing)"
            .to_string()
    } else if names.iter().any(|n| n.ends_with("/layer.tar") || n.ends_with("/json")) {
        "a `docker save` tarball without `manifest.json` (pre-Docker-1.10 format, or damaged)"
            .to_string()
    } else {
        format!(
            "neither an OCI archive (no `oci-layout` and `index.json`) nor a `docker save` \
            tarball (no `manifest.json`); it looks like a plain tar (first members: {})",
            names.join(", ")
        )
    };
    Error::unsupported(Location::file(index.path()), what)
}
