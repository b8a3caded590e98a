//! How the process ends: writes to stdout that fail quietly when it is closed, SIGINT/SIGTERM
//! turned into a cancellation the library honours, and errors rendered once (as text, or as a
//! JSON object with `--json`) with the documented exit codes.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result};
use signal_hook::consts::{SIGINT, SIGPIPE, SIGTERM};
use squash::document::ErrorDocument;

/// The signal that asked the run to stop, 0 while none has.
static SIGNALLED: AtomicI32 = AtomicI32::new(0);
/// Whether an output is being written, so that a signal must wait for its cleanup.
static WRITING: AtomicBool = AtomicBool::new(false);
/// Whether stdout carries the image (`-o -`), so that nothing else may go there.
static STDOUT_IS_IMAGE: AtomicBool = AtomicBool::new(false);

/// Marks stdout as the image's: from now on documents and errors go to stderr.
pub fn stdout_is_image() {
    STDOUT_IS_IMAGE.store(true, Ordering::SeqCst);
}

/// The run's scratch directory (spools), removed before the process ends on a signal.
static SCRATCH: std::sync::Mutex<Option<std::path::PathBuf>> = std::sync::Mutex::new(None);

/// A scratch directory for spools in `base` (default TMPDIR), removed when dropped and before
/// the process ends on a signal.
pub fn scratch(base: Option<&std::path::Path>) -> Result<tempfile::TempDir> {
    let base = base.map(std::path::Path::to_path_buf).unwrap_or_else(std::env::temp_dir);
    let dir =
        tempfile::Builder::new().prefix(".squash-scratch-").tempdir_in(&base).map_err(|e| {
            anyhow::anyhow!(
                "`{}`: cannot make a scratch directory for spools here (see --tmp-dir): {e}",
                base.display()
            )
        })?;
    if let Ok(mut slot) = SCRATCH.lock() {
        *slot = Some(dir.path().to_path_buf());
    }
    Ok(dir)
}

/// Removes the scratch directory, once; for the ways out that skip destructors.
fn remove_scratch() {
    if let Some(dir) = SCRATCH.lock().ok().and_then(|mut slot| slot.take()) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Ends the process with `code` after removing the scratch directory.
fn end(code: i32) -> ! {
    remove_scratch();
    std::process::exit(code)
}

/// How long a writing run may take to clean up after a signal before the process ends anyway.
const CLEANUP_GRACE: Duration = Duration::from_secs(20);

/// Writes `text` to stdout; a closed stdout ends the process as it ends coreutils.
pub fn out(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => broken_pipe(),
        Err(e) => Err(anyhow::Error::new(e).context("writing to standard output")),
    }
}

/// Copies the file at `path` (an image written and verified) to stdout.
pub fn copy_to_stdout(path: &std::path::Path) -> Result<()> {
    let mut file = std::fs::File::open(path)
        .with_context(|| format!("`{}`: opening the verified image", path.display()))?;
    let mut stdout = std::io::stdout().lock();
    std::io::copy(&mut file, &mut stdout)
        .and_then(|_| stdout.flush())
        .context("writing the verified image to standard output")?;
    Ok(())
}

/// Ends the image on stdout: flushes it and puts `/dev/null` in its place, so that the reader
/// (`docker load`) sees the end of the archive while the run removes its spools, which for a
/// large image takes a while (the system frees their pages). Whatever is written to stdout
/// after this goes nowhere; documents already go to stderr once stdout is the image's.
pub fn end_image_on_stdout() -> Result<()> {
    std::io::stdout().lock().flush().context("writing to standard output")?;
    let null =
        std::fs::OpenOptions::new().write(true).open("/dev/null").context("opening /dev/null")?;
    rustix::stdio::dup2_stdout(&null).context("closing standard output")?;
    Ok(())
}

/// Ends the process by SIGPIPE's default action, as `yes | head -1` ends `yes`.
fn broken_pipe() -> ! {
    remove_scratch();
    let _ = signal_hook::low_level::emulate_default_handler(SIGPIPE);
    std::process::exit(128 + SIGPIPE)
}

/// A line on stderr that never panics (a closed stderr is ignored).
pub fn note(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// Starts the thread that turns SIGINT and SIGTERM into a cancellation. Outside a write the
/// process ends at once (nothing is on disk yet); during one the library is asked to stop and
/// remove what it wrote, and the process ends when it has (or after a grace period, or at a
/// second signal).
pub fn install_signal_handlers() -> Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        for signal in signals.forever() {
            let first =
                SIGNALLED.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst).is_ok();
            if !first || !WRITING.load(Ordering::SeqCst) {
                end(128 + signal);
            }
            // Said at once: the run stops at its next check and removes what it wrote.
            note(
                "\nsquash: interrupting… (removing what was written; a second signal ends at once)",
            );
            std::thread::spawn(move || {
                std::thread::sleep(CLEANUP_GRACE);
                end(128 + signal);
            });
        }
    })?;
    Ok(())
}

/// Whether a signal asked the run to stop.
pub fn cancelled() -> bool {
    SIGNALLED.load(Ordering::SeqCst) != 0
}

/// Runs `write` as an output write: a signal during it cancels it instead of ending the process.
pub fn writing<T>(write: impl FnOnce() -> T) -> T {
    WRITING.store(true, Ordering::SeqCst);
    let result = write();
    WRITING.store(false, Ordering::SeqCst);
    result
}

/// The exit code for a run that ended with `error`, after printing it once.
pub fn fail(error: &anyhow::Error, as_json: bool) -> ExitCode {
    let signal = SIGNALLED.load(Ordering::SeqCst);
    if signal != 0 {
        note(&format!(
            "squash: interrupted by {}; nothing was left at the destination",
            if signal == SIGINT { "SIGINT" } else { "SIGTERM" }
        ));
        return ExitCode::from(128 + signal as u8);
    }
    let message = render(error);
    if as_json {
        let library = error.chain().find_map(|e| e.downcast_ref::<squash::Error>());
        let location = library.and_then(squash::Error::location);
        let document = ErrorDocument::new(
            library.map(squash::Error::kind).unwrap_or("usage"),
            &message,
            location,
            2,
        );
        let text = serde_json::to_string_pretty(&document).unwrap_or_default();
        if STDOUT_IS_IMAGE.load(Ordering::SeqCst) {
            note(&text);
        } else {
            let _ = out(&format!("{text}\n"));
        }
    }
    note(&format!("squash: error: {message}"));
    ExitCode::from(2)
}

/// The error and its causes on one line, leaving out a cause whose text the line already holds
/// (a library error that prints its OS error, and the same OS error as its source).
pub fn render(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}
