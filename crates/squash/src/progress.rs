//! Progress and cancellation: the events a run reports as it works, the [`Progress`] trait a
//! front end implements to show them and to stop a run, and [`Counting`], the writer that turns
//! bytes into progress and polls for cancellation. Every stage reports through these.

use std::io;

use crate::error::Error;

/// What a run is doing, for a [`Progress`] to show. Bytes are units of work, known ahead: a
/// layer indexed or copied as it is counts its stored bytes, a new layer its uncompressed bytes
/// (exactly as planned).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Layers are about to be indexed (read in full, their headers recorded and every digest
    /// checked): `layers` of them, `bytes` stored bytes in all.
    Indexing {
        /// How many layers.
        layers: usize,
        /// Their stored bytes.
        bytes: u64,
    },
    /// One of them is done.
    Indexed {
        /// The image layer.
        layer: usize,
        /// Its stored bytes.
        bytes: u64,
    },
    /// Writing begins: of an image, or for an index of each image in turn and once for the
    /// ranges merged ahead of writing. `total` bytes of work follow in [`Event::Advanced`].
    Writing {
        /// The bytes of work.
        total: u64,
    },
    /// `squash report` begins to measure its ranges' new layers, which it streams as a squash
    /// writes them but writes nowhere. `total` bytes of work follow in [`Event::Advanced`].
    Measuring {
        /// The bytes of work: the new layers' uncompressed bytes.
        total: u64,
    },
    /// A step of the writing or measuring begins (`copying layer 3`, `merging layers 1..4`).
    Step {
        /// What it does.
        description: String,
    },
    /// `bytes` more bytes of work are done.
    Advanced {
        /// How many.
        bytes: u64,
    },
    /// Something a person waiting should know (`waiting for the lock on …`).
    Notice {
        /// The message.
        message: String,
    },
}

/// Receives progress while an image is planned, reported on or written, and can cancel a
/// write. The library never prints; a front end decides what a person sees. Events may come
/// from several threads at once (layers are indexed in parallel).
pub trait Progress: Sync {
    /// Something happened.
    fn event(&self, event: &Event) {
        let _ = event;
    }
    /// Whether the run should stop. Polled while writing; when it returns true the run fails
    /// with [`Error::Cancelled`] and removes everything it wrote.
    fn cancelled(&self) -> bool {
        false
    }
}

impl dyn Progress + '_ {
    pub(crate) fn step(&self, description: String) {
        self.event(&Event::Step { description });
    }
}

/// Progress that goes nowhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// Reports bytes to a [`Progress`] as work done as they pass, in steps of at least 1 MiB
/// (unless `report` is off), and stops the write when the run is cancelled. A kept layer is
/// counted as it is copied, a new layer as its uncompressed tar enters the encoder.
pub(crate) struct Counting<'a, W> {
    inner: W,
    progress: &'a dyn Progress,
    unreported: u64,
    report: bool,
}

impl<'a, W> Counting<'a, W> {
    /// `inner`, its bytes reported to `progress` when `report`.
    pub(crate) fn new(inner: W, progress: &'a dyn Progress, report: bool) -> Self {
        Counting { inner, progress, unreported: 0, report }
    }

    /// The writer.
    pub(crate) fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// Reports what is left and returns the writer, without flushing it.
    pub(crate) fn into_inner(mut self) -> W {
        self.report();
        self.inner
    }
}

impl<W: io::Write> io::Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.progress.cancelled() {
            return Err(Error::Cancelled.into_io());
        }
        let n = self.inner.write(buf)?;
        self.unreported += n as u64;
        if self.unreported >= 1 << 20 {
            self.report();
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.report();
        self.inner.flush()
    }
}

impl<W> Counting<'_, W> {
    fn report(&mut self) {
        let bytes = std::mem::take(&mut self.unreported);
        if self.report && bytes > 0 {
            self.progress.event(&Event::Advanced { bytes });
        }
    }
}
