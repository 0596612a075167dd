//! A put's commit: the index transaction that counts its chunks and records its blob, made
//! durable only after the pack bytes it references.

use std::collections::HashMap;

use airlock_chunker::ChunkId;

use super::{Segments, thread_panicked};
use crate::{
    Digest, Error, Result, Store,
    index::{BlobRecord, ChunkRecord, PackRecord, WriteTx},
    pack::ChunkLoc,
    writers::Writers,
};

impl Store {
    /// One index transaction: new chunk locations, reference counts, the blob and its recipe,
    /// pack lengths; it commits after the packs are synced (on another thread, while the
    /// transaction is prepared). Returns whether the blob turned out to exist already (a
    /// concurrent put).
    pub(super) fn commit_put(
        &self,
        digest: &Digest,
        record: &BlobRecord,
        (segments, script): (Segments, Segments),
        new_locs: &[(ChunkId, ChunkLoc)],
        distinct: &HashMap<ChunkId, Option<ChunkRecord>>,
        writers: &mut Writers<'_>,
    ) -> Result<bool> {
        let (prepared, synced) = std::thread::scope(|s| {
            let syncing = s.spawn(|| writers.all().try_for_each(|(w, _)| w.sync()));
            let prepared =
                self.prepare_commit(digest, record, (segments, script), new_locs, distinct);
            let synced = syncing
                .join()
                .unwrap_or_else(|_| Err(thread_panicked(self, "syncing packs")));
            (prepared, synced)
        });
        let (mut tx, existed) = prepared?;
        synced?;
        writers.register_packs(&mut tx)?;
        tx.commit()?;
        Ok(existed)
    }

    /// The chunk and blob records of a put, in a transaction not yet committed. A new chunk
    /// is written once, with its reference from this blob counted.
    ///
    /// Each chunk's count is written from the record its lookup found, in one B-tree pass:
    /// the insert hands back the record it replaced, and only when a concurrent put changed it
    /// meanwhile (GC cannot: this put holds it off) is the count written again from that.
    fn prepare_commit(
        &self,
        digest: &Digest,
        record: &BlobRecord,
        (segments, script): (Segments, Segments),
        new_locs: &[(ChunkId, ChunkLoc)],
        distinct: &HashMap<ChunkId, Option<ChunkRecord>>,
    ) -> Result<(WriteTx<'_>, bool)> {
        let mut tx = self.inner.index.write()?;
        let existed = tx.blob(digest)?.is_some();
        let new: HashMap<ChunkId, ChunkLoc> = new_locs.iter().copied().collect();
        let mut chunks = tx.chunk_table_mut()?;
        if !existed {
            // In key order: neighbouring updates share B-tree pages.
            let mut ids: Vec<(&ChunkId, &Option<ChunkRecord>)> = distinct.iter().collect();
            ids.sort_unstable_by_key(|(id, _)| *id);
            let missing = |id: &ChunkId| Error::ChunkMissing {
                digest: digest.clone(),
                chunk: id.to_hex(),
            };
            for (id, found) in ids {
                let proposed = match (found, new.get(id)) {
                    (Some(rec), _) => ChunkRecord {
                        refs: rec.refs.saturating_add(1),
                        ..*rec
                    },
                    (None, Some(&loc)) => ChunkRecord { loc, refs: 1 },
                    (None, None) => return Err(missing(id)),
                };
                let replaced = chunks.replace(id, &proposed)?;
                if replaced == *found {
                    continue;
                }
                match replaced {
                    // Counted by a concurrent put since (or stored by it first: then its
                    // copy is the one used, and this put's stays unreferenced in its pack).
                    Some(now) => chunks.put(
                        id,
                        &ChunkRecord {
                            refs: now.refs.saturating_add(1),
                            ..now
                        },
                    )?,
                    // Gone since the lookup, which the GC lock rules out: write nothing.
                    None => return Err(missing(id)),
                }
            }
        }
        for (id, loc) in new_locs {
            // Appended but referenced by no recipe (the blob exists already): recorded so GC
            // finds the bytes.
            if (existed || !distinct.contains_key(id)) && chunks.get(id)?.is_none() {
                chunks.put(id, &ChunkRecord { loc: *loc, refs: 0 })?;
            }
        }
        drop(chunks);
        if !existed {
            tx.put_blob(digest, record, &segments, &script)?;
        }
        Ok((tx, existed))
    }

    /// Marks a pack sealed in the index once its seal record is durable.
    pub(crate) fn record_sealed(&self, id: crate::PackId, len: u64) -> Result<()> {
        let mut tx = self.inner.index.write()?;
        tx.put_pack(id, &PackRecord { len, sealed: true })?;
        tx.commit()
    }
}
