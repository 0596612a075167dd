//! The packs a put appends to: frames go to the current pack until it is full, and a failed
//! put cuts every pack back to where it found it.

use std::collections::HashSet;

use airlock_chunker::ChunkId;

use crate::{
    PackId, Result, Store,
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
