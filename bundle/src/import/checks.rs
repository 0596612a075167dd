//! Blob checks overlapped with reading: a blob the store lacks waits for the chunks it lacks,
//! and once the frame holding the last of them is stored it is queued for a checker while the
//! reader goes on with the next frames.
//!
//! A checker is [`Store::put_described`]: it rebuilds the blob from the store's chunks, checks
//! its digest and size, and only then commits its recipe (and, under the store's `import`
//! cache policy, its rebuild writes the blob's cache file in the same pass, so the first pull
//! rebuilds nothing). Checkers run on threads of their own, one per core up to
//! [`MAX_CHECKERS`] (each holds a rebuild's memory); the queue between the reader and them is
//! bounded ([`QUEUE_BLOBS`]), so what waits in memory is a few blob descriptions. A committed
//! blob is linked and tagged by nobody yet: links and tags still move in one transaction once
//! every blob is in, as before. The first failed check stops the import: the reader stops
//! at its next frame and the error is the import's.

use std::{
    collections::HashMap,
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread::{Scope, ScopedJoinHandle},
};

use airlock_store::{ChunkId, Store};

use super::check::description;
use crate::{
    error::{Error, Result},
    index::{BlobEntry, BundleIndex},
    progress::Progress,
};

/// Checkers at most, whatever the number of cores.
pub(super) const MAX_CHECKERS: usize = 4;
/// Ready blobs waiting for a checker, per checker; the reader waits when the queue is full.
const QUEUE_BLOBS: usize = 2;

/// The checks of one import, and the blobs still waiting for chunks.
pub(super) struct Checks<'scope> {
    /// Chunks still lacking, with the blobs (indexes into the bundle's blobs) that need them.
    waiting: HashMap<ChunkId, Vec<usize>>,
    /// Blobs waiting for chunks, with how many they still lack.
    lacking: HashMap<usize, usize>,
    queue: Option<mpsc::SyncSender<BlobEntry>>,
    workers: Vec<ScopedJoinHandle<'scope, ()>>,
    shared: &'scope Shared,
}

/// What the checkers report, read by the reader.
#[derive(Default)]
pub(super) struct Shared {
    tally: Mutex<Tally>,
    failed: AtomicBool,
    /// The checkers' end of the queue, taken by one idle checker at a time.
    queue: Mutex<Option<mpsc::Receiver<BlobEntry>>>,
}

#[derive(Default)]
struct Tally {
    /// Bytes of the blobs queued, and of those checked.
    queued_bytes: u64,
    done_bytes: u64,
    /// Blobs committed by a check (not found committed already).
    new_blobs: u64,
    /// Whether checked blobs advance the caller's progress (the reading is over).
    reporting: bool,
    error: Option<Error>,
}

impl<'scope> Checks<'scope> {
    /// Starts the checkers for the blobs `needed` (indexes into `index.blobs`): those whose
    /// chunks are all stored are queued at once, the others wait for [`Checks::stored`].
    pub(super) fn start<'env>(
        scope: &'scope Scope<'scope, 'env>,
        shared: &'scope Shared,
        (store, index, progress): (&'env Store, &BundleIndex, &'env dyn Progress),
        needed: &[usize],
    ) -> Result<Checks<'scope>> {
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(MAX_CHECKERS);
        let (tx, rx) = mpsc::sync_channel::<BlobEntry>(workers * QUEUE_BLOBS);
        *lock(&shared.queue) = Some(rx);
        let handles = (0..workers)
            .map(|_| scope.spawn(move || check_until_closed(store, progress, shared)))
            .collect();
        let mut checks = Checks {
            waiting: HashMap::new(),
            lacking: HashMap::new(),
            queue: Some(tx),
            workers: handles,
            shared,
        };
        for &i in needed {
            let blob = &index.blobs[i];
            let missing = store
                .missing_chunks(&blob.chunks)
                .map_err(|e| Error::store("looking up chunks".to_owned(), e))?;
            if missing.is_empty() {
                checks.queue_blob(blob);
                continue;
            }
            checks.lacking.insert(i, missing.len());
            for c in missing {
                checks.waiting.entry(c).or_default().push(i);
            }
        }
        Ok(checks)
    }

    /// The chunks of a frame are stored: queues every blob that lacked nothing else.
    pub(super) fn stored(&mut self, index: &BundleIndex, chunks: &[ChunkId]) {
        for c in chunks {
            let Some(blobs) = self.waiting.remove(c) else {
                continue;
            };
            for i in blobs {
                let Some(left) = self.lacking.get_mut(&i) else {
                    continue;
                };
                *left -= 1;
                if *left == 0 {
                    self.lacking.remove(&i);
                    self.queue_blob(&index.blobs[i]);
                }
            }
        }
    }

    fn queue_blob(&mut self, blob: &BlobEntry) {
        lock(&self.shared.tally).queued_bytes += blob.size;
        if let Some(q) = &self.queue {
            // Blocks while every checker is busy and the queue is full. Fails only when every
            // checker is gone, which a failed check explains.
            let _ = q.send(blob.clone());
        }
    }

    /// Whether a check failed (the import stops).
    pub(super) fn failed(&self) -> bool {
        self.shared.failed.load(Ordering::Relaxed)
    }

    /// Waits for the checks queued so far, showing them as `phase` of `progress`; returns the
    /// number of blobs they committed, or the first failure.
    pub(super) fn finish(mut self, progress: &dyn Progress, phase: &str) -> Result<u64> {
        self.queue = None;
        {
            let mut t = lock(&self.shared.tally);
            progress.begin(phase, t.queued_bytes - t.done_bytes);
            t.reporting = true;
        }
        for w in self.workers.drain(..) {
            if w.join().is_err() {
                let mut t = lock(&self.shared.tally);
                t.error.get_or_insert_with(|| Error::IndexCorrupt {
                    what: "a blob check panicked".into(),
                });
            }
        }
        let mut t = lock(&self.shared.tally);
        match t.error.take() {
            Some(e) => Err(e),
            None => Ok(t.new_blobs),
        }
    }
}

/// A checker: takes ready blobs until the queue closes or a check fails.
fn check_until_closed(store: &Store, progress: &dyn Progress, shared: &Shared) {
    loop {
        let next = lock(&shared.queue).as_ref().map(mpsc::Receiver::recv);
        let Some(Ok(blob)) = next else {
            return;
        };
        if shared.failed.load(Ordering::Relaxed) {
            continue;
        }
        let outcome = description(&blob)
            .map_err(|e| Error::store(format!("description of blob {}", blob.digest), e))
            .and_then(|desc| {
                store.put_described(&desc).map_err(|e| Error::BlobRejected {
                    digest: blob.digest.clone(),
                    source: e,
                })
            });
        let mut t = lock(&shared.tally);
        t.done_bytes += blob.size;
        match outcome {
            Ok(out) => {
                t.new_blobs += u64::from(!out.existed);
                if t.reporting {
                    progress.advance(blob.size);
                }
            }
            Err(e) => {
                shared.failed.store(true, Ordering::Relaxed);
                t.error.get_or_insert(e);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
