//! Room for an output: what a plan will write where (the kept layers exactly, the new layers
//! estimated from their exact uncompressed size and the range's own compression ratio),
//! against the space free there, checked before the first byte is written, so that a run that
//! cannot fit fails at once, naming both figures, instead of at the end.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Location, Result};
use crate::units::human;

/// Bytes a run will need in one place, and what for.
pub(crate) struct Need {
    /// A path in the place (an existing directory, or a path whose parent exists).
    pub place: PathBuf,
    /// Bytes.
    pub bytes: u64,
    /// What they are, for the message.
    pub what: String,
}

/// The nearest existing directory at or above `path`.
fn existing(path: &Path) -> Option<PathBuf> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(path)
    };
    absolute.ancestors().find(|p| p.is_dir()).map(Path::to_path_buf)
}

/// Bytes free to an unprivileged writer on the filesystem of `dir`, and its device.
fn free(dir: &Path) -> Option<(u64, u64)> {
    let stat = rustix::fs::statvfs(dir).ok()?;
    let device = std::fs::metadata(dir).ok()?.dev();
    Some((stat.f_bavail.saturating_mul(stat.f_frsize), device))
}

/// Refuses the run when a filesystem lacks room for what `needs` puts on it (needs on one
/// filesystem are added up). A place whose free space cannot be read is not checked.
pub(crate) fn check(needs: &[Need]) -> Result<()> {
    let mut by_device: Vec<(u64, u64, u64, PathBuf, Vec<String>)> = Vec::new();
    for need in needs.iter().filter(|n| n.bytes > 0) {
        let Some(dir) = existing(&need.place) else { continue };
        let Some((available, device)) = free(&dir) else { continue };
        match by_device.iter_mut().find(|d| d.0 == device) {
            Some(entry) => {
                entry.2 = entry.2.saturating_add(need.bytes);
                entry.4.push(format!("{} {}", human(need.bytes), need.what));
            }
            None => by_device.push((
                device,
                available,
                need.bytes,
                dir,
                vec![format!("{} {}", human(need.bytes), need.what)],
            )),
        }
    }
    for (_, available, needed, dir, parts) in by_device {
        if needed > available {
            return Err(Error::Output {
                location: Location::file(&dir),
                reason: format!(
                    "not enough room: the run needs about {} here ({}), and {} is free; free \
                     some, or choose another place (-o, --tmp-dir)",
                    human(needed),
                    parts.join(", "),
                    human(available)
                ),
            });
        }
    }
    Ok(())
}
