//! The thread budget: how many threads reading, decoding, indexing and compressing may use
//! (`--threads`), and the thread pools that keep to it. Output bytes never depend on it.

use std::io;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

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
        let pool = Pool::new(self.parallel_layers(), "index")
            .map_err(|e| Error::io(Location::default(), e))?;
        Ok(pool.install(work))
    }
}

/// A rayon thread pool whose threads have ended once it is dropped. Dropping a rayon pool only
/// asks its threads to end: the next pool's threads would start while they are still there, and
/// a budget caps the threads alive at once. Used as the rayon pool it holds.
pub(crate) struct Pool {
    // Dropped first (fields drop in order): the pool asks its threads to end, then they are
    // joined.
    pool: rayon::ThreadPool,
    _threads: Joined,
}

/// The threads of a pool, joined when dropped.
struct Joined(Arc<Mutex<Vec<JoinHandle<()>>>>);

impl Pool {
    /// A pool of `threads` threads named `name` and their number.
    pub(crate) fn new(threads: usize, name: &'static str) -> io::Result<Pool> {
        let joined = Joined(Arc::new(Mutex::new(Vec::with_capacity(threads))));
        let spawned = joined.0.clone();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .spawn_handler(move |thread| {
                let handle = std::thread::Builder::new()
                    .name(format!("{name} {}", thread.index()))
                    .spawn(|| thread.run())?;
                if let Ok(mut handles) = spawned.lock() {
                    handles.push(handle);
                }
                Ok(())
            })
            .build()
            // On an error, rayon ends the threads it started, and `joined` joins them.
            .map_err(io::Error::other)?;
        Ok(Pool { pool, _threads: joined })
    }
}

impl std::ops::Deref for Pool {
    type Target = rayon::ThreadPool;
    fn deref(&self) -> &rayon::ThreadPool {
        &self.pool
    }
}

impl Drop for Joined {
    fn drop(&mut self) {
        let handles = self.0.lock().map(|mut h| std::mem::take(&mut *h)).unwrap_or_default();
        for handle in handles {
            let _ = handle.join();
        }
    }
}
