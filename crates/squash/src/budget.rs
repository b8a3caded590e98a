//! The thread budget: how many threads reading, decoding, indexing and compressing may use
//! (`--threads`). Output bytes never depend on it.

use std::io;

use crate::error::{Error, Location, Result};

/// How reading and compressing may use threads, from a budget of `threads` (`--threads`; 0:
/// all cores, with no cap). Output bytes never depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Budget {
    threads: usize,
}

impl Budget {
    /// A budget of `threads` threads in all; 0 for all cores.
    pub(crate) fn new(threads: usize) -> Budget {
        Budget { threads }
    }

    /// This machine's cores.
    pub(crate) fn cores() -> usize {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    }

    /// Whether a layer stream reads and decodes on threads of its own (two, besides its
    /// consumer), or on the consumer's thread (with a budget of one or two threads).
    pub(crate) fn pipelined(self) -> bool {
        self.threads == 0 || self.threads >= 3
    }

    /// Whether a long stream's sha256 (a new layer's tar and blob, a blob written to the output)
    /// is computed on a thread of its own, beside the thread that produces the bytes.
    pub(crate) fn hash_apart(self) -> bool {
        self.pipelined()
    }

    /// How many layers are indexed at once.
    pub(crate) fn parallel_layers(self) -> usize {
        match self.threads {
            0 => Self::cores(),
            n if n >= 3 => n / 3,
            n => n,
        }
    }

    /// Compression workers beside one layer stream (0: all cores).
    pub(crate) fn compressors(self) -> usize {
        match self.threads {
            0 => 0,
            n if n >= 3 => n - 2,
            n => n,
        }
    }

    /// Runs `work` on at most [`Budget::parallel_layers`] threads.
    pub(crate) fn run<T: Send>(self, work: impl FnOnce() -> T + Send) -> Result<T> {
        if self.threads == 0 {
            return Ok(work());
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.parallel_layers())
            .thread_name(|i| format!("index {i}"))
            .build()
            .map_err(|e| Error::io(Location::default(), io::Error::other(e)))?;
        Ok(pool.install(work))
    }
}
