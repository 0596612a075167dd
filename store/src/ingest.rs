//! The ingest (issue 14): staged blobs cut into chunks after their push was acknowledged.
//!
//! [`Store::ingest_blob`] puts a staged blob's file through the normal put (chunking, dedup,
//! the gzip split and its verification, all or nothing), then drops the blob's staged record in
//! a transaction of its own, then moves the file into the blob cache when the blob is a rebuilt
//! gzip layer the cache can hold (a pull would otherwise rebuild it), or removes it. A crash
//! anywhere leaves the blob staged (ingested again at the next start), or stored with a staged
//! record the next ingest drops, or stored with a file no record names (removed at the next
//! read-write open); never neither. Readers look the blob up in one snapshot and keep the file
//! they opened: a rename or an unlink does not disturb an open file.
//!
//! [`Store::start_ingest`] runs a bounded number of worker threads (what `airlock serve` does):
//! each takes the oldest staged blob no other worker has, ingests it, and sleeps when none is
//! left until a blob is staged. A blob whose ingest fails (its file is damaged, which `verify`
//! names, or the disk is full) is left staged, still served from its file, and not tried again
//! until the ingest is started again. [`Ingest::stop`] abandons a put in progress (it rolls
//! back; the blob stays staged) and joins the workers, so nothing is ever half done.
//!
//! Pushes and pulls are never blocked: the put holds the index's write transaction only for its
//! short commit, as every put does. Pushes come first for the CPU as well: a worker starts its
//! next blob only once no push was under way for [`INGEST_QUIET`] ([`Store::defer_ingest`], which
//! the registry calls on every upload request), or after waiting [`INGEST_MAX_DEFER`], so that a
//! push that never pauses still sees its blobs ingested. A staged blob GC collects while its ingest runs may come back
//! as an unlinked stored blob, which the next GC past the grace period removes.

use std::{
    collections::{HashMap, HashSet},
    fs::{self, File},
    io::{self, BufReader, Read},
    num::NonZeroUsize,
    path::Path,
    sync::{
        Condvar, Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crate::{
    Digest, Error, PutOptions, PutOutcome, Result, Store, StoredAs,
    layer::{Encoding, OpaqueReason},
    staged::staged_path,
};

/// Bytes read from a staged file at a time.
const READ_BYTES: usize = 1024 * 1024;

/// A worker starts its next blob only once pushes paused this long: between the images of a
/// release a CI pushes one after another, they do not.
pub const INGEST_QUIET: Duration = Duration::from_secs(1);

/// The longest a worker defers its next blob to pushes.
pub const INGEST_MAX_DEFER: Duration = Duration::from_secs(10);

/// What [`Store::ingest_blob`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Stored as chunks: the put's outcome.
    Ingested(PutOutcome),
    /// It was stored already (by a put of the same digest, or an ingest a crash interrupted
    /// after its commit); its staged record and file were dropped.
    AlreadyStored,
    /// It is not staged (ingested or collected meanwhile).
    NotStaged,
}

/// The ingest's shared state in an open store: which blobs are being ingested, which failed,
/// and a condition variable that wakes workers and waiters when either or the staged blobs
/// change.
#[derive(Debug, Default)]
pub(crate) struct IngestState {
    queue: Mutex<Queue>,
    changed: Condvar,
    stop: AtomicBool,
}

#[derive(Debug, Default)]
struct Queue {
    /// Moves at every staging and every finished ingest.
    generation: u64,
    running: HashSet<Digest>,
    /// Blobs whose ingest failed since the ingest started, with why.
    failed: HashMap<Digest, String>,
    /// When a push last said it was under way.
    last_push: Option<Instant>,
}

impl IngestState {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tells workers and waiters that staged blobs changed.
    pub(crate) fn wake(&self) {
        let mut q = self.lock();
        q.generation += 1;
        self.changed.notify_all();
    }

    fn wait<'a>(&self, q: MutexGuard<'a, Queue>) -> MutexGuard<'a, Queue> {
        self.changed.wait(q).unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until pushes paused for [`INGEST_QUIET`], at most [`INGEST_MAX_DEFER`], or the
    /// ingest stops.
    fn wait_for_quiet(&self) {
        let began = Instant::now();
        let mut q = self.lock();
        while !self.stop.load(Ordering::Acquire) {
            let quiet_in = q
                .last_push
                .map_or(Duration::ZERO, |t| INGEST_QUIET.saturating_sub(t.elapsed()));
            let defer_left = INGEST_MAX_DEFER.saturating_sub(began.elapsed());
            let wait = quiet_in.min(defer_left);
            if wait.is_zero() {
                return;
            }
            q = self
                .changed
                .wait_timeout(q, wait)
                .map(|(q, _)| q)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }
}

/// The running workers of [`Store::start_ingest`]; stopped by [`Ingest::stop`] or when
/// dropped.
#[derive(Debug)]
pub struct Ingest {
    store: Store,
    threads: Vec<JoinHandle<()>>,
}

impl Store {
    /// Starts `jobs` worker threads that ingest staged blobs, oldest first, until
    /// [`Ingest::stop`]. One [`Ingest`] at a time per open store.
    pub fn start_ingest(&self, jobs: NonZeroUsize) -> Result<Ingest> {
        self.check_writable()?;
        let state = &self.inner.ingest;
        state.stop.store(false, Ordering::Release);
        state.lock().failed.clear();
        let waiting = self.staged_blobs()?.len();
        if waiting > 0 {
            tracing::info!(blobs = waiting, "staged blobs to ingest");
        }
        let mut threads = Vec::new();
        for i in 0..jobs.get() {
            let store = self.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("airlock-ingest-{i}"))
                .spawn(move || store.work());
            match spawned {
                Ok(t) => threads.push(t),
                Err(source) => {
                    let mut started = Ingest {
                        store: self.clone(),
                        threads,
                    };
                    started.halt();
                    return Err(Error::Io {
                        op: "starting ingest thread for",
                        path: self.inner.root.clone(),
                        source,
                    });
                }
            }
        }
        Ok(Ingest {
            store: self.clone(),
            threads,
        })
    }

    /// Ingests a staged blob now, in this thread (waiting for a worker that has it first): what
    /// `airlock export` does with the blobs it needs recipes for.
    pub fn ingest_blob(&self, digest: &Digest) -> Result<IngestOutcome> {
        self.check_writable()?;
        let state = &self.inner.ingest;
        {
            let mut q = state.lock();
            while q.running.contains(digest) {
                q = state.wait(q);
            }
            q.running.insert(digest.clone());
        }
        let never = AtomicBool::new(false);
        let result = self.ingest_claimed(digest, &never);
        self.release(digest, result.as_ref().err(), false);
        result.map(|o| o.unwrap_or(IngestOutcome::NotStaged))
    }

    /// Tells the background ingest that a push is under way: a worker starts its next blob only
    /// once pushes paused for [`INGEST_QUIET`] (see the module documentation). Cheap; the
    /// registry calls it on every upload request.
    pub fn defer_ingest(&self) {
        self.inner.ingest.lock().last_push = Some(Instant::now());
    }

    /// A worker's loop.
    fn work(self) {
        let state = &self.inner.ingest;
        let mut worked = false;
        while !state.stop.load(Ordering::Acquire) {
            let (seen, next) = match self.claim_next() {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!("looking for staged blobs to ingest: {e}");
                    (state.lock().generation, None)
                }
            };
            let Some(digest) = next else {
                if worked {
                    let failed = state.lock().failed.len();
                    tracing::info!(failed, "ingest idle: no staged blob left to ingest");
                    worked = false;
                }
                let mut q = state.lock();
                while q.generation == seen && !state.stop.load(Ordering::Acquire) {
                    q = state.wait(q);
                }
                continue;
            };
            worked = true;
            state.wait_for_quiet();
            let started = Instant::now();
            let result = self.ingest_claimed(&digest, &state.stop);
            match &result {
                Ok(Some(IngestOutcome::Ingested(put))) => tracing::info!(
                    %digest,
                    bytes = put.size,
                    new_bytes = put.new_bytes,
                    secs = started.elapsed().as_secs_f64(),
                    "ingested staged blob"
                ),
                Ok(Some(_)) => tracing::debug!(%digest, "staged blob was stored already"),
                Ok(None) => tracing::info!(%digest, "ingest stopped; the blob stays staged"),
                Err(e) => tracing::error!(
                    %digest,
                    "ingesting staged blob failed; it stays staged: {e}"
                ),
            }
            let stopped = matches!(result, Ok(None));
            self.release(&digest, result.as_ref().err(), stopped);
        }
    }

    /// Takes the oldest staged blob no worker has and no ingest failed on, with the generation
    /// seen when looking.
    fn claim_next(&self) -> Result<(u64, Option<Digest>)> {
        let state = &self.inner.ingest;
        let mut q = state.lock();
        let seen = q.generation;
        let next = pending(self, &q)?.into_iter().next();
        if let Some(d) = &next {
            q.running.insert(d.clone());
        }
        Ok((seen, next))
    }

    /// Ends an ingest: records a failure (unless the ingest was stopped) and wakes waiters.
    fn release(&self, digest: &Digest, failed: Option<&Error>, stopped: bool) {
        let state = &self.inner.ingest;
        let mut q = state.lock();
        q.running.remove(digest);
        if let (Some(e), false) = (failed, stopped) {
            q.failed.insert(digest.clone(), e.to_string());
        }
        q.generation += 1;
        state.changed.notify_all();
    }

    /// Ingests a blob this thread has claimed; `None` when `stop` was raised first.
    fn ingest_claimed(&self, digest: &Digest, stop: &AtomicBool) -> Result<Option<IngestOutcome>> {
        let (stored, staged) = {
            let rtx = self.inner.index.read()?;
            (rtx.blob(digest)?.is_some(), rtx.staged(digest)?)
        };
        let Some(rec) = staged else {
            return Ok(Some(IngestOutcome::NotStaged));
        };
        let path = staged_path(&self.inner.root, digest);
        if stored {
            self.drop_staged(digest, &path, rec.size)?;
            return Ok(Some(IngestOutcome::AlreadyStored));
        }
        let opts = PutOptions {
            max_size: None,
            expected_size: Some(rec.size),
        };
        let open = || open_staged(digest, &path, stop);
        let put = match self.put_blob(digest, open()?, opts) {
            Err(Error::DecompressionLimit { .. }) if !stop.load(Ordering::Acquire) => {
                // Acknowledged already, so kept: as its compressed bytes, never expanded.
                tracing::warn!(
                    %digest,
                    "staged gzip blob expands beyond the decompression limits; keeping it as \
                     its compressed bytes"
                );
                let _gc = self.inner.gc_lock.read().unwrap_or_else(|p| p.into_inner());
                let reason = Some(OpaqueReason::DecompressionLimit);
                self.put_plain(digest, open()?, opts, Encoding::Gzip, reason)
            }
            other => other,
        };
        let put = match put {
            Ok(put) => put,
            Err(_) if stop.load(Ordering::Acquire) => return Ok(None),
            Err(Error::DigestMismatch { actual, .. }) => {
                return Err(damaged(
                    digest,
                    &path,
                    format!("its file hashes to {actual}"),
                ));
            }
            Err(Error::SizeMismatch { actual, .. }) => {
                return Err(damaged(
                    digest,
                    &path,
                    format!("its file holds {actual} bytes, {} were staged", rec.size),
                ));
            }
            Err(e) => return Err(e),
        };
        self.drop_staged(digest, &path, rec.size)?;
        Ok(Some(IngestOutcome::Ingested(put)))
    }

    /// Drops the staged record of a blob now stored, then its file: into the blob cache if
    /// the blob is rebuilt from a script (its exact bytes, verified by the put), else away.
    fn drop_staged(&self, digest: &Digest, path: &Path, size: u64) -> Result<()> {
        let mut tx = self.inner.index.write()?;
        tx.remove_staged(digest)?;
        tx.commit()?;
        let rebuilt = self
            .stat_blob(digest)?
            .is_some_and(|s| s.stored_as == StoredAs::Rebuilt);
        // A staged blob's file holds its exact bytes: kept as its cache file whenever the
        // cache serves (a push, like an import, should not cost a rebuild on the first pull).
        let cache = &self.inner.cache;
        let adopted = rebuilt
            && cache.holds(size)
            && fs::File::open(path).is_ok_and(|f| cache.adopt(digest, path, &f));
        if !adopted {
            match fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                // Removed at the next read-write open: no record names it.
                Err(e) => tracing::warn!(path = %path.display(), "removing ingested file: {e}"),
            }
        }
        self.inner.ingest.wake();
        Ok(())
    }
}

impl Ingest {
    /// Blocks until no staged blob is left to ingest: each one stored, or failed. Returns the
    /// failed ones with why (they stay staged). For tests and tools that need the store quiet.
    pub fn wait_idle(&self) -> Result<Vec<(Digest, String)>> {
        let state = &self.store.inner.ingest;
        let mut q = state.lock();
        loop {
            if q.running.is_empty() && pending(&self.store, &q)?.is_empty() {
                let mut failed: Vec<_> = q.failed.clone().into_iter().collect();
                failed.sort();
                return Ok(failed);
            }
            q = state.wait(q);
        }
    }

    /// Stops the workers: a put in progress is abandoned (rolled back; its blob stays staged
    /// for the next start), then the threads are joined.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.store.inner.ingest.stop.store(true, Ordering::Release);
        self.store.inner.ingest.wake();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Staged blobs, oldest first, that no worker has and no ingest failed on (the caller holds
/// the queue's lock).
fn pending(store: &Store, q: &Queue) -> Result<Vec<Digest>> {
    let rtx = store.inner.index.read()?;
    let mut found = Vec::new();
    let mut after = None;
    loop {
        let page = rtx.staged_page(after.as_ref(), 4096)?;
        let Some((last, _)) = page.last() else {
            break;
        };
        after = Some(last.clone());
        for (d, rec) in page {
            if !q.running.contains(&d) && !q.failed.contains_key(&d) {
                found.push((rec.created, d));
            }
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, d)| d).collect())
}

fn damaged(digest: &Digest, path: &Path, what: String) -> Error {
    Error::StagedDamaged {
        digest: digest.clone(),
        path: path.to_owned(),
        what,
    }
}

/// A staged blob's file, read until `stop` is raised.
fn open_staged<'a>(
    digest: &Digest,
    path: &Path,
    stop: &'a AtomicBool,
) -> Result<Stoppable<'a, BufReader<File>>> {
    let file = File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => damaged(digest, path, "its file is missing".into()),
        _ => Error::io("opening", path)(e),
    })?;
    Ok(Stoppable {
        inner: BufReader::with_capacity(READ_BYTES, file),
        stop,
    })
}

/// A reader that fails once `stop` is raised, so a put in progress rolls back.
struct Stoppable<'a, R> {
    inner: R,
    stop: &'a AtomicBool,
}

impl<R: Read> Read for Stoppable<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(io::Error::other("the ingest is stopping"));
        }
        self.inner.read(buf)
    }
}
