//! A run's files and the page cache. A file squash writes once (an output blob) is handed to the
//! system for writing back as it grows, flushed to the disk beside its writer, and its pages are
//! dropped once they are on the disk; a temporary file read back later does the same past the part
//! a shared budget keeps cached; a stretch of an input that was not cached when squash opened it is
//! dropped behind the reader. Either way a file streams through a few MiB of memory instead of its
//! whole size, and the cache is left about as squash found it. On a virtual machine that gives free
//! memory back to its host, memory not touched for a few seconds costs about 2 s of system time per
//! GB to touch again, and pages dropped here are the next ones used (docs/speed.md). The hand-overs
//! and drops are advice (`fadvise`): a system that ignores it keeps the pages; the flushes do early
//! what the `fsync` before a file is put in place would do, and that `fsync` runs beside the run,
//! waited for only before the files are committed. Every byte read or written is the same either
//! way.

use std::fs::File;
use std::io::{self, IoSliceMut, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Bytes between two hand-overs of a file written, or two drops behind a reader.
pub(crate) const BEHIND: u64 = 8 << 20;

/// Bytes handed over between two flushes of a file written once to the disk itself (below its
/// own cache), made beside the writer.
const FLUSH_EVERY: u64 = 32 << 20;

/// Drops the cached pages of `file` in `from..to` that are clean and starts writing back the
/// dirty ones (`fadvise`'s `DONTNEED`; pages only partly in the range stay).
pub(crate) fn drop_cached(file: &File, from: u64, to: u64) {
    if let Some(len) = std::num::NonZeroU64::new(to.saturating_sub(from)) {
        // Advice only: a failure leaves the pages cached.
        let _ = rustix::fs::fadvise(file, from, Some(len), rustix::fs::Advice::DontNeed);
    }
}

/// Asks the system to start reading `from..to` of `file` into the page cache (`fadvise`'s
/// `WILLNEED`), so that a reader reaching it later finds it there.
pub(crate) fn read_ahead(file: &File, from: u64, to: u64) {
    if let Some(len) = std::num::NonZeroU64::new(to.saturating_sub(from)) {
        // Advice only: a failure leaves the reads to the reader.
        let _ = rustix::fs::fadvise(file, from, Some(len), rustix::fs::Advice::WillNeed);
    }
}

/// A file being written once, front to back. Every [`BEHIND`] bytes the newest stretch is
/// handed to the system for writing back, and what was handed over before, on the disk by now,
/// is dropped from the page cache: the disk works while squash computes, the `fsync` before
/// the file is put in place waits for the last stretch only, and the file's next stretches
/// reuse the pages. Pages still being written stay until a later hand-over finds them clean.
/// Every [`FLUSH_EVERY`] bytes a thread beside the writer flushes what was written to the disk
/// itself (`fdatasync`): a disk with a cache of its own, or a virtual machine's disk whose host
/// caches the writes, then has the last stretch only left to flush at the `fsync`, instead of
/// the whole file while nothing else runs.
#[derive(Debug)]
pub(crate) struct WriteBehind {
    /// The file written.
    pub file: File,
    /// Off for a file that is read back whole after writing (an archive compressed at the
    /// commit): its pages should stay cached.
    hand_over: bool,
    /// Bytes the file may keep cached before it is handed over, taken from a budget shared
    /// with other files; none for a file handed over from its start.
    budget: Option<Arc<CacheBudget>>,
    /// Where the handing over started: the bytes before stay cached.
    from: u64,
    written: u64,
    handed: u64,
    /// Where the last flush was asked for.
    flushed: u64,
    /// The thread that flushes a file handed over from its start, once one was asked for.
    flusher: Option<Flusher>,
}

impl WriteBehind {
    /// `file`, written from its start; handed over as it grows if `hand_over`.
    pub(crate) fn new(file: File, hand_over: bool) -> WriteBehind {
        WriteBehind {
            file,
            hand_over,
            budget: None,
            from: 0,
            written: 0,
            handed: 0,
            flushed: 0,
            flusher: None,
        }
    }

    /// `file`, written from its start, whose bytes stay cached while `budget` lasts and are
    /// handed over as the file grows from where it ran out.
    pub(crate) fn within(file: File, budget: Arc<CacheBudget>) -> WriteBehind {
        WriteBehind { budget: Some(budget), ..WriteBehind::new(file, false) }
    }

    /// Waits for the flush in flight, if any, and stops the flushing thread: the error a flush
    /// met, which the writer's own `fsync` might not see again (they share the file's errors).
    pub(crate) fn settle(&mut self) -> io::Result<()> {
        self.flusher.take().map_or(Ok(()), Flusher::settle)
    }

    /// Asks for a flush of what was written, if [`FLUSH_EVERY`] bytes were handed over since the
    /// last one; never for a file kept within a budget, a temporary one nobody waits for.
    fn flush_behind(&mut self) {
        if self.budget.is_some() || self.handed - self.flushed < FLUSH_EVERY {
            return;
        }
        self.flushed = self.handed;
        if self.flusher.is_none() {
            self.flusher = Flusher::start(&self.file);
        }
        if let Some(flusher) = &self.flusher {
            flusher.ask();
        }
    }

    /// Where the bytes handed over start (the file's size, if none was).
    pub(crate) fn cached_until(&self) -> u64 {
        if self.hand_over {
            self.from
        } else {
            self.written
        }
    }
}

/// Bytes of temporary files that may stay in the page cache, shared by the files of one task.
/// Written back and read again from the disk, a file costs the disk's time; kept cached, it
/// costs fresh memory, which on some virtual machines is dearer (docs/speed.md): a few hundred
/// MiB kept cached serve a typical image whole, and larger ones go through a few MiB.
#[derive(Debug)]
pub(crate) struct CacheBudget(AtomicU64);

impl CacheBudget {
    /// A budget of `bytes`.
    pub(crate) const fn new(bytes: u64) -> CacheBudget {
        CacheBudget(AtomicU64::new(bytes))
    }

    /// The budget of one plan's kept copies: 512 MiB, in the order the layers are read (each
    /// range newest first), that stay in the page cache rather than go through the disk.
    /// Measured both ways on two hosts (BENCHMARKS.md, docs/speed.md).
    pub(crate) fn for_kept_copies() -> Arc<CacheBudget> {
        Arc::new(CacheBudget::new(512 << 20))
    }

    /// Takes `n` bytes; whether they were left.
    fn take(&self, n: u64) -> bool {
        self.0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| left.checked_sub(n))
            .is_ok()
    }
}

impl Write for WriteBehind {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if let Some(budget) = self.budget.as_ref().filter(|_| !self.hand_over) {
            if !budget.take(n as u64) {
                (self.hand_over, self.from, self.handed) = (true, self.written, self.written);
            }
        }
        if self.hand_over && self.written - self.handed >= BEHIND {
            // What was handed over before: dropped where clean (pages of earlier stretches
            // still being written then are dropped now).
            drop_cached(&self.file, self.from, self.handed);
            // The newest stretch: its write-back starts.
            drop_cached(&self.file, self.handed, self.written);
            self.handed = self.written;
            self.flush_behind();
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A thread that flushes a file to the disk (`fdatasync`) when asked, one flush at a time; a
/// request made while one runs is dropped, since the flush in flight or the next one covers it.
#[derive(Debug)]
struct Flusher {
    ask: Option<SyncSender<()>>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Flusher {
    /// A flusher of `file`, if its handle can be shared and a thread started.
    fn start(file: &File) -> Option<Flusher> {
        let file = file.try_clone().ok()?;
        let (ask, asked) = sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("flush".into())
            .spawn(move || {
                let mut first_error = Ok(());
                while asked.recv().is_ok() {
                    if let Err(e) = file.sync_data() {
                        first_error = first_error.and(Err(e));
                    }
                }
                first_error
            })
            .ok()?;
        Some(Flusher { ask: Some(ask), thread: Some(thread) })
    }

    fn ask(&self) {
        if let Some(ask) = &self.ask {
            // Full: a flush is queued and will cover what this one would.
            let _ = ask.try_send(());
        }
    }

    /// Stops the thread once its flushes are done; the first error one met.
    fn settle(mut self) -> io::Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> io::Result<()> {
        self.ask = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("the thread flushing the file stopped")),
            None => Ok(()),
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        // Unsettled (the file is abandoned): its flushes' errors no longer matter.
        let _ = self.stop();
    }
}

/// Files made durable (`fsync`) one after another on a thread beside their writer: a blob
/// written early (a kept layer copied before the merge) is flushed while the run goes on, not
/// while it waits. [`SyncBehind::finish`] waits for every file handed over and returns the
/// first failure, with the path it was given; nothing that names those files may be committed
/// before it returns. Without a thread (none could be started) each file is synced at once.
/// Dropped unfinished (the output abandoned), the files still queued are not synced.
#[derive(Debug, Default)]
pub(crate) struct SyncBehind {
    queue: Option<std::sync::mpsc::Sender<(File, PathBuf)>>,
    thread: Option<JoinHandle<Synced>>,
    abandoned: Arc<std::sync::atomic::AtomicBool>,
    /// The last file handed over, to name if the thread itself fails.
    last: PathBuf,
    /// A failure met while syncing in place.
    failed: Option<(PathBuf, io::Error)>,
}

/// What syncing files came to: the first failure, with the path of its file.
type Synced = Result<(), (PathBuf, io::Error)>;

impl SyncBehind {
    /// Hands `file` (known as `path` in errors) over to be synced.
    pub(crate) fn sync(&mut self, file: File, path: PathBuf) {
        if self.queue.is_none() && self.thread.is_none() {
            let (queue, files) = std::sync::mpsc::channel::<(File, PathBuf)>();
            let abandoned = Arc::clone(&self.abandoned);
            let thread = std::thread::Builder::new().name("sync".into()).spawn(move || {
                let mut first: Synced = Ok(());
                for (file, path) in files {
                    if abandoned.load(Ordering::Relaxed) {
                        continue;
                    }
                    if let (Ok(()), Err(e)) = (&first, file.sync_all()) {
                        first = Err((path, e));
                    }
                }
                first
            });
            if let Ok(thread) = thread {
                (self.queue, self.thread) = (Some(queue), Some(thread));
            }
        }
        self.last.clone_from(&path);
        let unsent = match &self.queue {
            Some(queue) => queue.send((file, path)).err().map(|e| e.0),
            None => Some((file, path)),
        };
        if let Some((file, path)) = unsent {
            if let (None, Err(e)) = (&self.failed, file.sync_all()) {
                self.failed = Some((path, e));
            }
        }
    }

    /// Waits until every file handed over is synced; the first failure.
    pub(crate) fn finish(&mut self) -> Synced {
        self.queue = None;
        let threaded = match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => {
                Err((self.last.clone(), io::Error::other("the thread syncing the files stopped")))
            }
            None => Ok(()),
        };
        match self.failed.take() {
            Some(failed) => Err(failed),
            None => threaded,
        }
    }
}

impl Drop for SyncBehind {
    fn drop(&mut self) {
        // Unfinished: the output is abandoned, and what is still queued need not reach the disk.
        self.abandoned.store(true, Ordering::Relaxed);
        let _ = self.finish();
    }
}

/// A reader that drops from the page cache what it has passed: where the stretch not dropped
/// yet starts.
#[derive(Debug)]
pub(crate) struct DropBehind {
    dropped: u64,
}

impl DropBehind {
    /// For a reader starting at `start`.
    pub(crate) fn new(start: u64) -> DropBehind {
        DropBehind { dropped: start }
    }

    /// The reader of `file` has reached `pos`: what lies behind it is dropped once [`BEHIND`]
    /// bytes have gathered, or at once at the reader's `end`. Whether it dropped.
    pub(crate) fn reached(&mut self, file: &File, pos: u64, end: bool) -> bool {
        if pos < self.dropped + BEHIND && !end {
            return false;
        }
        drop_cached(file, self.dropped, pos);
        self.dropped = pos;
        true
    }
}

/// A stretch of an input file read once, front to back (a blob of a layout, a member of an
/// archive). If the stretch was not all cached when it was opened, what the reader has passed
/// is dropped from the cache every [`BEHIND`] bytes and at its end; a stretch that was cached
/// (just written by `docker save`, or read before) is left cached.
#[derive(Debug)]
pub(crate) struct ReadOnce {
    file: File,
    pos: u64,
    end: u64,
    /// Set if the stretch was not all cached: what is read is dropped.
    behind: Option<DropBehind>,
}

impl ReadOnce {
    /// The `len` bytes of `file` from `start`.
    pub(crate) fn new(file: File, start: u64, len: u64) -> ReadOnce {
        let behind = (len >= BEHIND && !cached(&file, start, len)).then(|| DropBehind::new(start));
        ReadOnce { file, pos: start, end: start.saturating_add(len), behind }
    }
}

impl Read for ReadOnce {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min(usize::try_from(self.end - self.pos).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        if let Some(behind) = &mut self.behind {
            behind.reached(&self.file, self.pos, self.pos == self.end || n == 0);
        }
        Ok(n)
    }
}

/// Whether `len` bytes of `file` from `start` look cached: one byte read without waiting for
/// the disk (`RWF_NOWAIT`) at each of 16 places spread over them. A system that cannot tell
/// counts as cached, so its cache is left alone.
fn cached(file: &File, start: u64, len: u64) -> bool {
    const PROBES: u64 = 16;
    let mut byte = [0u8; 1];
    (0..PROBES).all(|i| {
        let at = start + len / PROBES * i;
        let flags = rustix::io::ReadWriteFlags::NOWAIT;
        match rustix::io::preadv2(file, &mut [IoSliceMut::new(&mut byte)], at, flags) {
            Ok(_) => true,
            Err(e) => e != rustix::io::Errno::AGAIN,
        }
    })
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Seek, Write};
    use std::sync::Arc;

    use super::{drop_cached, CacheBudget, ReadOnce, SyncBehind, WriteBehind, BEHIND, FLUSH_EVERY};

    /// Files handed over to be synced beside the writer are all synced when `finish` returns
    /// (the queue is closed and the thread joined, so a second `finish` has nothing left), and
    /// an abandoned queue stops its thread when dropped.
    #[test]
    fn synced_behind_files_are_all_synced_at_the_finish() {
        let dir = tempfile::tempdir().unwrap();
        let mut syncs = SyncBehind::default();
        for i in 0..20 {
            let path = dir.path().join(format!("blob-{i}"));
            let mut file = std::fs::File::create(&path).unwrap();
            file.write_all(&vec![i as u8; 64 << 10]).unwrap();
            syncs.sync(file, path);
        }
        assert!(syncs.thread.is_some());
        syncs.finish().unwrap();
        assert!(syncs.thread.is_none() && syncs.queue.is_none());
        syncs.finish().unwrap();
        for i in 0..20 {
            let data = std::fs::read(dir.path().join(format!("blob-{i}"))).unwrap();
            assert_eq!(data, vec![i as u8; 64 << 10]);
        }
        let mut abandoned = SyncBehind::default();
        let path = dir.path().join("abandoned");
        abandoned.sync(std::fs::File::create(&path).unwrap(), path);
        drop(abandoned);
    }

    /// Handing pages over for writing back, flushing them beside the writer and dropping them
    /// changes nothing in the file: written in odd-sized pieces across several hand-overs and a
    /// flush, the bytes read back are the bytes written, also once every page is dropped and
    /// read from the disk again; and a file that is to be read back is never handed over.
    #[test]
    fn written_back_files_hold_what_was_written() {
        let len = FLUSH_EVERY + 2 * BEHIND + 12_345;
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        for hand_over in [true, false] {
            let mut behind = WriteBehind::new(tempfile::tempfile().unwrap(), hand_over);
            for piece in data.chunks(1_000_003) {
                behind.write_all(piece).unwrap();
            }
            behind.flush().unwrap();
            // A hand-over each time 8 MiB have gathered (after pieces 9, 18, ..., 45 of 51), and
            // a flush asked for once 32 MiB were handed over (after piece 36).
            assert_eq!(behind.handed, if hand_over { 45 * 1_000_003 } else { 0 });
            assert_eq!(behind.flushed, if hand_over { 36 * 1_000_003 } else { 0 });
            assert_eq!(behind.flusher.is_some(), hand_over);
            behind.settle().unwrap();
            assert!(behind.flusher.is_none());
            // Read back as written, then again from the disk once every page is dropped.
            for pass in 0..2 {
                let mut back = Vec::new();
                behind.file.rewind().unwrap();
                behind.file.read_to_end(&mut back).unwrap();
                assert!(back == data, "the file differs from what was written (pass {pass})");
                behind.file.sync_all().unwrap();
                drop_cached(&behind.file, 0, data.len() as u64);
            }
        }
    }

    /// A file kept cached within a budget is never flushed, even once the budget has run out
    /// and it is handed over: it is a temporary file, and nobody waits for it to be on the disk.
    #[test]
    fn files_within_a_budget_are_never_flushed() {
        let mut behind =
            WriteBehind::within(tempfile::tempfile().unwrap(), Arc::new(CacheBudget::new(BEHIND)));
        let piece = vec![5u8; 1 << 20];
        for _ in 0..(BEHIND + 2 * FLUSH_EVERY) >> 20 {
            behind.write_all(&piece).unwrap();
        }
        assert!(behind.hand_over && behind.handed > BEHIND + FLUSH_EVERY);
        assert!(behind.flusher.is_none() && behind.flushed == 0);
    }

    /// A stretch read once holds exactly its bytes, whether it was cached or dropped behind
    /// the reader as it went, and read in odd-sized pieces.
    #[test]
    fn a_stretch_read_once_reads_its_bytes() {
        let data: Vec<u8> = (0..2 * BEHIND + 77_777).map(|i| (i * 13 % 253) as u8).collect();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&data).unwrap();
        file.sync_all().unwrap();
        let (start, len) = (4_099u64, 2 * BEHIND + 1_000);
        let expected = &data[start as usize..(start + len) as usize];
        for cold in [false, true] {
            if cold {
                drop_cached(&file, 0, data.len() as u64);
            }
            let mut once = ReadOnce::new(file.try_clone().unwrap(), start, len);
            let mut back = Vec::new();
            let mut piece = vec![0u8; 999_983];
            loop {
                let n = once.read(&mut piece).unwrap();
                if n == 0 {
                    break;
                }
                back.extend_from_slice(&piece[..n]);
            }
            assert_eq!(back.len() as u64, len);
            assert!(back == expected, "the stretch differs (cold: {cold})");
        }
    }
}
