//! The packs a put appends to: frames go to the current pack until it is full, and a failed
//! put cuts every pack back to where it found it. [`FrameQueue`] feeds them: it compresses
//! frames on the rayon pool while the put goes on, and appends them in order.

use std::{
    collections::{HashSet, VecDeque},
    io,
    panic::{self, AssertUnwindSafe},
    sync::mpsc,
};

use airlock_chunker::{Chunk, ChunkId};

use crate::{
    Error, PackId, Result, Store,
    index::{PackRecord, WriteTx},
    pack::{ChunkLoc, CompressedFrame, PackWriter},
};

/// The packs a put appends to, with where each started so a failure can roll them back.
pub(crate) struct Writers<'a> {
    store: &'a Store,
    current: Option<(PackWriter, u64)>,
    /// Packs that refused a frame because it would take them past the size limit: full.
    done: Vec<(PackWriter, u64)>,
}

impl<'a> Writers<'a> {
    pub(crate) fn new(store: &'a Store) -> Writers<'a> {
        Writers {
            store,
            current: None,
            done: Vec::new(),
        }
    }

    /// Appends a frame to the current pack, moving on to another one when the frame would take
    /// the current pack past the size limit (an empty pack takes any frame).
    pub(crate) fn append(&mut self, frame: &CompressedFrame) -> Result<Vec<(ChunkId, ChunkLoc)>> {
        let pack_size = self.store.inner.opts.pack_size;
        loop {
            match &mut self.current {
                None => {
                    let w = self.store.inner.take_writer()?;
                    let start = w.len();
                    self.current = Some((w, start));
                }
                Some((w, _)) if !w.is_empty() && w.len() + frame.len() as u64 > pack_size => {
                    self.done.extend(self.current.take());
                }
                Some((w, _)) => return w.append(frame),
            }
        }
    }

    /// Every pack touched, full ones first.
    pub(crate) fn all(&mut self) -> impl Iterator<Item = &mut (PackWriter, u64)> {
        self.done.iter_mut().chain(self.current.iter_mut())
    }

    /// Registers every pack touched in `tx`, unsealed at its current length, and moves the
    /// index's next pack id past them and past every id handed out since the store opened.
    /// The caller commits `tx` only after the packs are synced.
    pub(crate) fn register_packs(&mut self, tx: &mut WriteTx<'_>) -> Result<()> {
        let mut next = tx.next_pack_id()?.max(self.store.inner.next_pack_id());
        for (w, _) in self.all() {
            let record = PackRecord {
                len: w.len(),
                sealed: false,
            };
            tx.put_pack(w.id(), &record)?;
            next = next.max(w.id().0 + 1);
        }
        tx.set_next_pack_id(next)
    }

    /// Cuts every pack back to where this writer found it and hands them back. A pack created
    /// for this writer and left empty is deleted: a failed put leaves no file behind.
    pub(crate) fn rollback(mut self) {
        for (w, start) in self.all() {
            if let Err(e) = w.rollback(*start) {
                tracing::warn!("rolling back pack {}: {e}", w.id());
            }
        }
        let known: HashSet<PackId> = match self.store.inner.index.read().and_then(|r| r.packs()) {
            Ok(p) => p.into_iter().map(|(id, _)| id).collect(),
            // Without the list, keep every pack: an unreferenced one goes at the next open.
            Err(_) => return self.release(false),
        };
        let mut keep = Vec::new();
        for (w, start) in self.done.drain(..).chain(self.current.take()) {
            if w.is_empty() && !known.contains(&w.id()) {
                w.discard();
            } else {
                keep.push((w, start));
            }
        }
        self.done = keep;
        self.release(false);
    }

    /// Hands packs back to the pool after the index commit that references them, sealing the
    /// full ones (all of them when `committed`; only those at the limit after a rollback).
    pub(crate) fn release(self, committed: bool) {
        let pack_size = self.store.inner.opts.pack_size;
        let done = self.done.into_iter().map(|w| (w, committed));
        let current = self.current.into_iter().map(|w| (w, false));
        for ((w, _), full) in done.chain(current) {
            if full || w.len() >= pack_size {
                let id = w.id();
                match w.seal() {
                    Ok(len) => {
                        if let Err(e) = self.store.record_sealed(id, len) {
                            tracing::warn!("recording seal of pack {id}: {e}");
                        }
                    }
                    Err(e) => tracing::warn!("sealing pack {id}: {e}"),
                }
            } else {
                self.store.inner.return_writer(w);
            }
        }
    }
}

/// A frame being compressed, or compressed and waiting for its turn to be appended.
type InFlight = mpsc::Receiver<io::Result<CompressedFrame>>;

/// New chunks on their way to the packs. Consecutive chunks are grouped into frames of about
/// the store's frame size; each full frame is compressed on the rayon pool while the caller
/// goes on (chunking, hashing and looking up the next batch), and frames are appended through
/// [`Writers`] in the order their chunks were pushed, so the pack bytes never depend on timing.
///
/// Memory is bounded: at most `max_in_flight` frames (twice the pool's threads) are compressing
/// or waiting to be appended, plus the one being filled; each holds at most the frame size plus
/// one chunk of raw bytes, and its compressed copy. Pushing waits for the oldest frame when the
/// bound is reached.
///
/// Dropping the queue abandons the frames in flight: their jobs finish on the pool and their
/// results are thrown away. Nothing reaches a pack that was not appended through the writers,
/// so [`Writers::rollback`] still undoes everything.
pub(crate) struct FrameQueue<'a> {
    store: &'a Store,
    level: i32,
    frame_size: usize,
    max_in_flight: usize,
    filling: Vec<Chunk>,
    filling_bytes: usize,
    in_flight: VecDeque<InFlight>,
    locs: Vec<(ChunkId, ChunkLoc)>,
    stored_bytes: u64,
}

impl<'a> FrameQueue<'a> {
    pub(crate) fn new(store: &'a Store) -> FrameQueue<'a> {
        FrameQueue {
            store,
            level: store.inner.opts.zstd_level,
            frame_size: store.frame_size(),
            max_in_flight: 2 * rayon::current_num_threads().max(1),
            filling: Vec::new(),
            filling_bytes: 0,
            in_flight: VecDeque::new(),
            locs: Vec::new(),
            stored_bytes: 0,
        }
    }

    /// Adds a chunk to the frame being filled, sending the frame off to compress once it
    /// reaches the frame size; appends the frames already compressed, in order.
    pub(crate) fn push(&mut self, chunk: Chunk, writers: &mut Writers<'a>) -> Result<()> {
        self.filling_bytes += chunk.data.len();
        self.filling.push(chunk);
        if self.filling_bytes >= self.frame_size {
            self.send_off(writers)?;
        }
        Ok(())
    }

    /// Compresses and appends everything pushed; returns the location of every chunk appended
    /// and the bytes appended to packs.
    pub(crate) fn finish(
        mut self,
        writers: &mut Writers<'a>,
    ) -> Result<(Vec<(ChunkId, ChunkLoc)>, u64)> {
        if !self.filling.is_empty() {
            self.send_off(writers)?;
        }
        while !self.in_flight.is_empty() {
            self.append_oldest(writers, Wait::Block)?;
        }
        Ok((self.locs, self.stored_bytes))
    }

    fn send_off(&mut self, writers: &mut Writers<'a>) -> Result<()> {
        let chunks = std::mem::take(&mut self.filling);
        self.filling_bytes = 0;
        let level = self.level;
        let (tx, rx) = mpsc::sync_channel(1);
        let job = move || {
            let refs: Vec<(ChunkId, &[u8])> =
                chunks.iter().map(|c| (c.id, c.data.as_slice())).collect();
            let frame =
                panic::catch_unwind(AssertUnwindSafe(|| CompressedFrame::compress(&refs, level)))
                    .unwrap_or_else(|_| Err(io::Error::other("compressing a frame panicked")));
            // The receiver is gone when the put failed meanwhile: nothing to do.
            let _ = tx.send(frame);
        };
        if rayon::current_thread_index().is_some() {
            // On a pool thread, waiting for a job of the same pool could deadlock.
            job();
        } else {
            rayon::spawn(job);
        }
        self.in_flight.push_back(rx);
        while self.in_flight.len() > self.max_in_flight {
            self.append_oldest(writers, Wait::Block)?;
        }
        while !self.in_flight.is_empty() && self.append_oldest(writers, Wait::IfReady)? {}
        Ok(())
    }

    /// Appends the oldest frame in flight if it is compressed (waiting for it with
    /// `Wait::Block`); returns whether it did.
    fn append_oldest(&mut self, writers: &mut Writers<'a>, wait: Wait) -> Result<bool> {
        let Some(oldest) = self.in_flight.front() else {
            return Ok(false);
        };
        let received = match wait {
            Wait::Block => oldest.recv().map_err(|_| ()),
            Wait::IfReady => match oldest.try_recv() {
                Ok(r) => Ok(r),
                Err(mpsc::TryRecvError::Empty) => return Ok(false),
                Err(mpsc::TryRecvError::Disconnected) => Err(()),
            },
        };
        self.in_flight.pop_front();
        let frame = received
            .unwrap_or_else(|()| Err(io::Error::other("a frame compression job vanished")))
            .map_err(|e| Error::Io {
                op: "compressing frame for",
                path: self.store.inner.packs_dir.clone(),
                source: e,
            })?;
        self.stored_bytes += frame.len() as u64;
        self.locs.extend(writers.append(&frame)?);
        Ok(true)
    }
}

#[derive(Clone, Copy)]
enum Wait {
    Block,
    IfReady,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use std::io::{self, Read};

    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::{Digest, PutOptions, StoreOptions, Verify};

    fn small_frames(dir: &std::path::Path) -> Store {
        let opts = StoreOptions {
            frame_size: 64 * 1024,
            pack_size: 1024 * 1024,
            ..StoreOptions::default()
        };
        Store::open(dir, opts).unwrap()
    }

    /// Chunks of mixed sizes and compressibility, so frames take unequal times to compress.
    fn chunks(n: usize) -> Vec<Chunk> {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        (0..n)
            .map(|i| {
                let len = rng.gen_range(1..100_000);
                let data: Vec<u8> = if i % 3 == 0 {
                    (0..len).map(|_| rng.r#gen()).collect()
                } else {
                    vec![i as u8; len]
                };
                Chunk {
                    id: ChunkId::of(&data),
                    data,
                }
            })
            .collect()
    }

    #[test]
    fn frames_in_flight_are_appended_in_push_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = small_frames(dir.path());
        let input = chunks(300);
        let mut writers = Writers::new(&store);
        let mut queue = FrameQueue::new(&store);
        for c in &input {
            let copy = Chunk {
                id: c.id,
                data: c.data.clone(),
            };
            queue.push(copy, &mut writers).unwrap();
        }
        let (locs, stored) = queue.finish(&mut writers).unwrap();
        let ids: Vec<ChunkId> = locs.iter().map(|(id, _)| *id).collect();
        let expected: Vec<ChunkId> = input.iter().map(|c| c.id).collect();
        assert_eq!(ids, expected);
        let places: Vec<(PackId, u64)> =
            locs.iter().map(|(_, l)| (l.pack, l.frame_offset)).collect();
        assert!(places.is_sorted(), "frames out of order: {places:?}");
        assert!(writers.all().count() > 1, "the test should span packs");
        let written: u64 = writers.all().map(|(w, start)| w.len() - *start).sum();
        assert_eq!(written, stored);
        writers.all().try_for_each(|(w, _)| w.sync()).unwrap();
        for ((_, loc), c) in locs.iter().zip(&input) {
            let path = crate::pack::pack_path(&store.inner.packs_dir, loc.pack);
            let file = std::fs::File::open(path).unwrap();
            assert_eq!(crate::pack::read_chunk(&file, &c.id, loc).unwrap(), c.data);
        }
        writers.rollback();
    }

    /// Fails after `ok` bytes.
    struct FailingReader {
        data: Vec<u8>,
        at: usize,
        ok: usize,
    }

    impl Read for FailingReader {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.at >= self.ok {
                return Err(io::Error::new(io::ErrorKind::ConnectionReset, "gone"));
            }
            let n = buf.len().min(self.ok - self.at);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    /// A put that fails after several chunker batches, with frames compressing, compressed
    /// and appended, leaves no pack bytes behind.
    #[test]
    fn put_failing_with_frames_in_flight_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = small_frames(dir.path());
        let kept = b"kept".repeat(1000);
        let kd = Digest::sha256(&kept);
        store
            .put_blob(&kd, &kept[..], PutOptions::default())
            .unwrap();
        let packs = |store: &Store| -> Vec<(PackId, u64)> {
            store
                .inner
                .index
                .read()
                .unwrap()
                .packs()
                .unwrap()
                .into_iter()
                .map(|(id, p)| (id, p.len))
                .collect()
        };
        let before = packs(&store);
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let data: Vec<u8> = (0..3 * airlock_chunker::BATCH_BYTES)
            .map(|i| {
                if i % 7 == 0 {
                    rng.r#gen()
                } else {
                    (i / 4096) as u8
                }
            })
            .collect();
        let d = Digest::sha256(&data);
        let src = FailingReader {
            data,
            at: 0,
            ok: 2 * airlock_chunker::BATCH_BYTES + 12_345,
        };
        let err = store.put_blob(&d, src, PutOptions::default()).unwrap_err();
        assert!(matches!(err, Error::Source { .. }), "{err}");
        assert_eq!(packs(&store), before);
        for (id, len) in &before {
            let path = crate::pack::pack_path(&store.inner.packs_dir, *id);
            assert_eq!(std::fs::metadata(path).unwrap().len(), *len);
        }
        let files = walk_files(&store.inner.packs_dir);
        assert_eq!(files, before.len(), "a pack file was left behind");
        assert!(store.verify(Verify::Full).unwrap().is_clean());
        assert_eq!(store.read_blob(&kd).unwrap(), kept);
    }

    fn walk_files(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let p = e.unwrap().path();
                if p.is_dir() { walk_files(&p) } else { 1 }
            })
            .sum()
    }
}
