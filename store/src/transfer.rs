//! Moving blobs between stores as chunks (what bundles do): describe a blob, read chunks in
//! bulk, insert frames of verified chunks, and commit a described blob once its digest is
//! verified.
//!
//! A [`BlobDescription`] is everything a store needs to recreate a blob except its chunks: its
//! record, its recipe segments and its script; its byte format is in `description`.
//!
//! Import order: [`Store::insert_frame`] for every frame (chunks are checked against their ids
//! before anything is written; they enter with no blob referencing them), then
//! [`Store::put_described`] for every blob, which rebuilds the blob from those chunks, checks
//! its digest and size, and only then commits its recipe. Nothing unverified is ever committed.
//! The rebuild that checks a gzip blob also writes its cache file when the store's cache policy
//! is `import`: the exact bytes are produced once at the site.

mod description;

use std::{collections::HashSet, io::Read, sync::Arc};

use airlock_chunker::ChunkId;

use self::description::Meta;
pub use self::description::{BlobDescription, DESCRIPTION_FORMAT_VERSION};
use crate::{
    Digest, Error, PutOutcome, Result, Store,
    cache::CacheFill,
    digest::Hasher,
    frame::DecodedChunks,
    index::{BlobRecord, ChunkRecord, RecipeKind, SegmentList},
    pack::{ChunkLoc, CompressedFrame},
    read::{GivenSegments, PlainReader, Segments},
    read_gzip::DeflateReader,
    store::now,
    writers::Writers,
};

/// What [`Store::insert_frame`] added.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InsertOutcome {
    /// Chunks of the frame the store did not have.
    pub new_chunks: u64,
    /// Their raw bytes.
    pub new_bytes: u64,
    /// Bytes appended to packs.
    pub stored_bytes: u64,
}

/// Keeps GC waiting while a transfer stores chunks ahead of the blobs that reference them
/// (see [`Store::hold_chunks`]); dropped when the transfer ends.
#[derive(Debug)]
pub struct ChunkHold<'a> {
    _shared: std::sync::RwLockReadGuard<'a, ()>,
}

impl Store {
    /// Holds off GC for the life of the guard: a transfer (a bundle import) takes it before
    /// its first [`Store::insert_frame`] and drops it after its last [`Store::put_described`]
    /// and tag, so a GC that starts meanwhile waits for it rather than dropping chunks that
    /// no blob references yet. Never take it twice on one thread while a GC may be waiting.
    pub fn hold_chunks(&self) -> ChunkHold<'_> {
        ChunkHold {
            _shared: self
                .inner
                .chunks_lock
                .read()
                .unwrap_or_else(|p| p.into_inner()),
        }
    }

    /// Describes a stored blob for another store (see [`BlobDescription`]).
    pub fn describe_blob(&self, digest: &Digest) -> Result<BlobDescription> {
        let rtx = self.inner.index.read()?;
        let rec = rtx.blob(digest)?.ok_or_else(|| Error::BlobNotFound {
            digest: digest.clone(),
        })?;
        let recipe = rtx.segments(SegmentList::Recipe, digest)?;
        let script = rtx.segments(SegmentList::Script, digest)?;
        Ok(BlobDescription {
            meta: Meta {
                digest: digest.clone(),
                size: rec.size,
                kind: rec.kind,
                layout: rec.layout,
                encoding: rec.encoding,
                opaque: rec.opaque,
                script_bytes: rec.script_bytes,
                chunks: rec.chunks,
                inline_bytes: rec.inline_bytes,
                preflate: match rec.kind {
                    RecipeKind::Deflate { .. } => {
                        Some(rec.preflate_version(&self.inner.format.preflate).to_owned())
                    }
                    RecipeKind::Plain => None,
                },
            },
            recipe,
            script,
        })
    }

    /// Whether a chunk is stored.
    pub fn has_chunk(&self, id: &ChunkId) -> Result<bool> {
        Ok(self.inner.index.read()?.chunk(id)?.is_some())
    }

    /// The chunks of `ids` the store lacks, in the order given.
    pub fn missing_chunks(&self, ids: &[ChunkId]) -> Result<Vec<ChunkId>> {
        let rtx = self.inner.index.read()?;
        let table = rtx.chunk_table()?;
        let mut out = Vec::new();
        for id in ids {
            if table.get(id)?.is_none() {
                out.push(*id);
            }
        }
        Ok(out)
    }

    /// Calls `f` with every stored chunk id, in id order (an inventory of the store).
    pub fn for_each_chunk_id(&self, mut f: impl FnMut(&ChunkId)) -> Result<u64> {
        let mut after: Option<ChunkId> = None;
        let mut n = 0;
        loop {
            let page = self.inner.index.read()?.chunks_page(after.as_ref(), 4096)?;
            let Some(last) = page.last().map(|(id, _)| *id) else {
                return Ok(n);
            };
            for (id, _) in &page {
                f(id);
                n += 1;
            }
            after = Some(last);
        }
    }

    /// Every stored blob's digest.
    pub fn blob_digests(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        let mut after: Option<Digest> = None;
        loop {
            let page = self.inner.index.read()?.blobs_page(after.as_ref(), 4096)?;
            let Some(last) = page.last().map(|(d, _)| d.clone()) else {
                return Ok(out);
            };
            out.extend(page.into_iter().map(|(d, _)| d));
            after = Some(last);
        }
    }

    /// Reads chunks in the order given, each checked against its id, calling `f` with each.
    /// Consecutive chunks of one frame decompress it once.
    pub fn read_chunks(
        &self,
        ids: &[ChunkId],
        mut f: impl FnMut(&ChunkId, &[u8]) -> Result<()>,
    ) -> Result<()> {
        let mut frame = None;
        for id in ids {
            let loc = self
                .inner
                .index
                .read()?
                .chunk(id)?
                .ok_or_else(|| Error::ChunkNotStored { chunk: id.to_hex() })?
                .loc;
            let bytes = self.read_chunk_cached(id, &loc, &mut frame)?;
            f(id, &bytes)?;
        }
        Ok(())
    }

    /// Adds the chunks of a checked frame that the store lacks (see [`crate::Frame::decode`]).
    /// When it lacks all of them the frame goes into a pack as it is (no recompression: a
    /// bundle's strong compression is kept); otherwise the missing ones are compressed again.
    /// The chunks are durable when this returns; no blob references them yet.
    pub fn insert_frame(&self, frame: DecodedChunks) -> Result<InsertOutcome> {
        self.check_writable()?;
        let _gc = self.inner.gc_lock.read().unwrap_or_else(|p| p.into_inner());
        let missing: Vec<bool> = {
            let rtx = self.inner.index.read()?;
            let table = rtx.chunk_table()?;
            let mut seen = HashSet::new();
            let mut v = Vec::with_capacity(frame.len());
            for (id, _) in frame.chunks() {
                v.push(seen.insert(id) && table.get(&id)?.is_none());
            }
            v
        };
        let new_bytes: u64 = frame
            .chunks()
            .zip(&missing)
            .filter(|(_, m)| **m)
            .map(|((_, d), _)| d.len() as u64)
            .sum();
        let new_chunks = missing.iter().filter(|m| **m).count() as u64;
        if new_chunks == 0 {
            return Ok(InsertOutcome::default());
        }
        let compressed = if missing.iter().all(|m| *m) {
            frame.into_compressed()
        } else {
            let chunks: Vec<(ChunkId, &[u8])> = frame
                .chunks()
                .zip(&missing)
                .filter(|(_, m)| **m)
                .map(|(c, _)| c)
                .collect();
            CompressedFrame::compress(&chunks, self.inner.opts.zstd_level)
                .map_err(Error::io("compressing chunks", self.inner.root.clone()))?
        };
        let stored_bytes = compressed.len() as u64;
        let mut writers = Writers::new(self);
        let locs = match writers.append(&compressed) {
            Ok(l) => l,
            Err(e) => {
                writers.rollback();
                return Err(e);
            }
        };
        let synced = writers.all().try_for_each(|(w, _)| w.sync());
        if let Err(e) = synced {
            writers.rollback();
            return Err(e);
        }
        match self.commit_chunks(&locs, &mut writers) {
            Ok(()) => {
                writers.release(true);
                Ok(InsertOutcome {
                    new_chunks,
                    new_bytes,
                    stored_bytes,
                })
            }
            Err(e) => {
                writers.rollback();
                Err(e)
            }
        }
    }

    fn commit_chunks(&self, locs: &[(ChunkId, ChunkLoc)], writers: &mut Writers<'_>) -> Result<()> {
        let mut tx = self.inner.index.write()?;
        let mut chunks = tx.chunk_table_mut()?;
        for (id, loc) in locs {
            if chunks.get(id)?.is_none() {
                chunks.put(id, &ChunkRecord { loc: *loc, refs: 0 })?;
            }
        }
        drop(chunks);
        writers.register_packs(&mut tx)?;
        tx.commit()
    }

    /// Commits a described blob whose chunks are all stored, after rebuilding it from them and
    /// checking its digest and size: on any mismatch nothing is committed and the error names
    /// the blob. A blob already stored is left as it is (`existed`). Under the cache policy
    /// `import`, the rebuild writes the blob's cache file in the same pass, published once the
    /// recipe is committed.
    pub fn put_described(&self, desc: &BlobDescription) -> Result<PutOutcome> {
        self.check_writable()?;
        let digest = desc.digest();
        let _gc = self.inner.gc_lock.read().unwrap_or_else(|p| p.into_inner());
        let outcome = PutOutcome {
            digest: digest.clone(),
            size: desc.size(),
            existed: true,
            new_chunks: 0,
            new_bytes: 0,
            stored_bytes: 0,
        };
        if self.inner.index.read()?.blob(digest)?.is_some() {
            return Ok(outcome);
        }
        desc.check()?;
        let ids = desc.chunk_ids()?;
        let missing = self.missing_chunks(&ids)?;
        if let Some(first) = missing.first() {
            return Err(Error::ChunksMissing {
                digest: digest.clone(),
                count: missing.len() as u64,
                first: first.to_hex(),
            });
        }
        let fill = self.check_described(desc)?;
        let mut tx = self.inner.index.write()?;
        if tx.blob(digest)?.is_some() {
            return Ok(outcome);
        }
        let mut chunks = tx.chunk_table_mut()?;
        for id in &ids {
            let Some(mut rec) = chunks.get(id)? else {
                return Err(Error::ChunksMissing {
                    digest: digest.clone(),
                    count: 1,
                    first: id.to_hex(),
                });
            };
            rec.refs = rec.refs.saturating_add(1);
            chunks.put(id, &rec)?;
        }
        drop(chunks);
        let m = &desc.meta;
        let record = BlobRecord {
            size: m.size,
            kind: m.kind,
            layout: m.layout,
            encoding: m.encoding,
            opaque: m.opaque,
            script_bytes: m.script_bytes,
            chunks: m.chunks,
            inline_bytes: m.inline_bytes,
            created: now(),
            touched: 0,
            preflate: m.preflate.clone(),
        };
        tx.put_blob(digest, &record, &desc.recipe, &desc.script)?;
        tx.commit()?;
        if let Some(fill) = fill {
            let cache = &self.inner.cache;
            if cache.publish(digest, fill, digest) {
                cache.count_filled_at_store();
            }
        }
        Ok(PutOutcome {
            existed: false,
            ..outcome
        })
    }

    /// Rebuilds a described blob from stored chunks and checks its digest and size. A rebuilt
    /// gzip blob the cache policy has cached as it is stored is written to a cache file on the
    /// way, returned complete (its digest checked) for the caller to publish.
    fn check_described(&self, desc: &BlobDescription) -> Result<Option<CacheFill>> {
        let digest = desc.digest();
        let segments = Segments::Given(Arc::new(GivenSegments {
            recipe: desc.recipe.clone(),
            script: desc.script.clone(),
        }));
        let plain = PlainReader::with_segments(self, digest, 0, segments);
        let cache = &self.inner.cache;
        let mut fill = match desc.meta.kind {
            RecipeKind::Deflate { .. } if cache.fills_at_store(desc.size()) => cache.fill(digest),
            _ => None,
        };
        let mut hasher = Hasher::new(digest.algorithm());
        let mut buf = vec![0u8; 256 * 1024];
        let mut left = desc.size();
        let mut feed = |r: &mut dyn Read| -> Result<()> {
            while left > 0 {
                let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                r.read_exact(&mut buf[..want])
                    .map_err(|e| crate::unwrap_io(digest, e))?;
                hasher.update(&buf[..want]);
                if let Some(f) = fill.as_mut()
                    && let Err(e) = f.write(&buf[..want])
                {
                    // The cache is never needed: the check goes on without it.
                    tracing::warn!("not caching blob {digest}: {e}");
                    fill = None;
                }
                left -= want as u64;
            }
            Ok(())
        };
        match desc.meta.kind {
            RecipeKind::Plain => {
                let mut plain = plain;
                feed(&mut plain)?;
            }
            RecipeKind::Deflate { plain_size } => {
                let preflate =
                    (desc.meta.preflate.as_deref()).unwrap_or(&self.inner.format.preflate);
                let script = (plain_size, preflate);
                let mut r = DeflateReader::new(self, digest, plain, script, 0);
                feed(&mut r)?;
                r.finish()?;
            }
        }
        let actual = hasher.finish();
        if actual != *digest {
            return Err(Error::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        Ok(fill)
    }
}
