//! Embedding: progress reported through the `Progress` trait, and a run cancelled cleanly, which
//! leaves nothing at its destination.
//!
//! `cargo run -p squash --example progress_and_cancel [IMAGE]`; without an argument it builds
//! a small example image first.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use squash::{Error, Image, LayerSelector, Output, OutputFormat, Progress, SquashOptions};

#[path = "common/mod.rs"]
mod common;

/// Prints each step, counts bytes, and asks to stop once `stop_after` bytes were written.
struct Watch {
    written: AtomicU64,
    stop_after: Option<u64>,
    stopped: AtomicBool,
}

impl Progress for Watch {
    fn step(&self, description: &str) {
        println!("step: {description}");
    }
    fn written(&self, bytes: u64) {
        self.written.fetch_add(bytes, Ordering::Relaxed);
    }
    fn notice(&self, message: &str) {
        println!("notice: {message}");
    }
    fn cancelled(&self) -> bool {
        let stop = self.stop_after.is_some_and(|limit| self.written.load(Ordering::Relaxed) >= limit);
        if stop {
            self.stopped.store(true, Ordering::Relaxed);
        }
        stop
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scratch = tempfile::tempdir()?;
    let image = common::image_argument(scratch.path());
    let image = Image::open(&image)?;
    let plan = image.plan(&SquashOptions::default().with_selector(LayerSelector::Top(3)))?;

    // A run to the end.
    let done = scratch.path().join("done");
    let watch = Watch { written: AtomicU64::new(0), stop_after: None, stopped: AtomicBool::new(false) };
    plan.execute_with_progress(&image, &Output::new(done.clone(), OutputFormat::OciLayout), &watch)?;
    println!("wrote {} bytes to {}", watch.written.load(Ordering::Relaxed), done.display());

    // A run cancelled after its first bytes: the error says so and nothing is left behind.
    let cancelled = scratch.path().join("cancelled");
    let watch = Watch { written: AtomicU64::new(0), stop_after: Some(1), stopped: AtomicBool::new(false) };
    match plan.execute_with_progress(&image, &Output::new(cancelled.clone(), OutputFormat::OciLayout), &watch) {
        Err(Error::Cancelled) => println!("cancelled; {} exists: {}", cancelled.display(), cancelled.exists()),
        Err(other) => return Err(other.into()),
        Ok(_) => println!("finished before the cancellation was seen"),
    }
    assert!(!cancelled.exists(), "a cancelled run leaves nothing");
    Ok(())
}
