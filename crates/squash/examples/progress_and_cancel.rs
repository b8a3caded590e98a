//! Embedding: progress reported through the `Progress` trait, and a run cancelled cleanly, which
//! leaves nothing at its destination.
//!
//! `cargo run -p squash --example progress_and_cancel [IMAGE]`; without an argument it builds
//! a small example image first.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use squash::{
    Context, Error, Event, Image, LayerSelector, Output, OutputFormat, Progress, SquashOptions,
};

#[path = "common/mod.rs"]
mod common;

/// Prints each step with the share of the work done, and asks to stop once `stop_after` bytes
/// of work are done.
struct Watch {
    total: AtomicU64,
    done: AtomicU64,
    stop_after: Option<u64>,
    stopped: AtomicBool,
}

impl Watch {
    fn new(stop_after: Option<u64>) -> Watch {
        Watch {
            total: AtomicU64::new(0),
            done: AtomicU64::new(0),
            stop_after,
            stopped: AtomicBool::new(false),
        }
    }
}

impl Progress for Watch {
    fn event(&self, event: &Event) {
        match event {
            Event::Indexing { layers, bytes } => println!(
                "indexing {layers} layer{} ({bytes} bytes)",
                if *layers == 1 { "" } else { "s" }
            ),
            Event::Writing { total } => self.total.store(*total, Ordering::Relaxed),
            Event::Step { description } => {
                let (done, total) =
                    (self.done.load(Ordering::Relaxed), self.total.load(Ordering::Relaxed).max(1));
                println!("{:3}% {description}", 100 * done / total);
            }
            Event::Advanced { bytes } => {
                self.done.fetch_add(*bytes, Ordering::Relaxed);
            }
            Event::Notice { message } => println!("notice: {message}"),
            _ => {}
        }
    }
    fn cancelled(&self) -> bool {
        let stop = self.stop_after.is_some_and(|limit| self.done.load(Ordering::Relaxed) >= limit);
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
    let watch = Watch::new(None);
    let plan = image.plan_in(
        &SquashOptions::default().with_selector(LayerSelector::Top(3)),
        &Context::new().with_progress(&watch),
    )?;

    // A run to the end.
    let done = scratch.path().join("done");
    let watch = Watch::new(None);
    plan.execute_in(
        &image,
        &Output::new(done.clone(), OutputFormat::OciLayout),
        &Context::new().with_progress(&watch),
    )?;
    let (work, total) = (watch.done.load(Ordering::Relaxed), watch.total.load(Ordering::Relaxed));
    println!("did {work} of {total} bytes of work; wrote {}", done.display());
    assert_eq!(work, total, "the work done adds up to the total announced");

    // A run cancelled after its first bytes: the error says so and nothing is left behind.
    let cancelled = scratch.path().join("cancelled");
    let watch = Watch::new(Some(1));
    match plan.execute_in(
        &image,
        &Output::new(cancelled.clone(), OutputFormat::OciLayout),
        &Context::new().with_progress(&watch),
    ) {
        Err(Error::Cancelled) => {
            println!("cancelled; {} exists: {}", cancelled.display(), cancelled.exists())
        }
        Err(other) => return Err(other.into()),
        Ok(_) => println!("finished before the cancellation was seen"),
    }
    assert!(!cancelled.exists(), "a cancelled run leaves nothing");
    Ok(())
}
