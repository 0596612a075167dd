//! Garbage collection as plan, then apply.
//!
//! Live blobs are marked from every manifest linked in a repository, every tag, and every
//! tag-history event inside the rollback window, following the references recorded with each
//! manifest. Blobs stored, put again or linked as a blob within the upload grace period are
//! kept too: their manifest may still be on its way. Staged blobs (issue 14) follow the same
//! rules; one collected loses its record, then its file. [`Store::plan_gc`] only reads and says what would go; [`Store::apply_gc`]
//! waits for transfers in progress ([`Store::hold_chunks`]: an import's chunks are stored
//! before the blobs that reference them), then
//! marks again under the store's GC lock (puts wait meanwhile, they never fail), deletes what
//! is still unreachable, drops chunks no recipe uses, and deletes or rewrites packs.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    time::Duration,
};

use airlock_chunker::ChunkId;

use crate::{
    Digest, Error, PackId, Result, Store,
    index::{ChunkRecord, LinkKind},
    pack::{self, CompressedFrame},
    put::Writers,
    staged::for_each_staged,
    store::now,
    verify::{for_each_blob, for_each_chunk},
};

/// A pack whose live bytes fall below this share of its chunk bytes is rewritten.
const REPACK_BELOW_LIVE_SHARE: f64 = 0.5;

/// How long GC keeps things that look unreachable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GcOptions {
    /// Manifests a tag pointed to within this window stay (rollback).
    pub keep_tag_history: Duration,
    /// Blobs stored within this window stay (a push whose manifest has not arrived yet).
    pub upload_grace: Duration,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            keep_tag_history: Duration::from_secs(7 * 24 * 3600),
            upload_grace: Duration::from_secs(3600),
        }
    }
}

/// What GC would do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcPlan {
    /// Unreachable blobs with their sizes.
    pub blobs: Vec<(Digest, u64)>,
    /// Chunks no remaining recipe would use.
    pub chunks: u64,
    /// Raw bytes of those chunks.
    pub chunk_bytes: u64,
    /// Packs that would be deleted whole.
    pub delete_packs: Vec<PackId>,
    /// Packs that would be rewritten without their dead chunks.
    pub repack_packs: Vec<PackId>,
    /// The options the plan was made with.
    pub options: GcOptions,
}

impl GcPlan {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
            && self.chunks == 0
            && self.delete_packs.is_empty()
            && self.repack_packs.is_empty()
    }
}

/// What GC did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Blobs deleted.
    pub blobs: u64,
    /// Chunks dropped.
    pub chunks: u64,
    /// Packs deleted (including the old copies of rewritten ones).
    pub packs_deleted: u64,
    /// Packs rewritten.
    pub packs_rewritten: u64,
    /// Bytes of pack files freed, net of rewritten copies.
    pub bytes_freed: u64,
    /// Tag-history events pruned.
    pub history_pruned: u64,
}

impl Store {
    /// Works out what GC would remove, without changing anything.
    pub fn plan_gc(&self, options: GcOptions) -> Result<GcPlan> {
        let dead = self.unreachable_blobs(options)?;
        let rtx = self.inner.index.read()?;
        let mut drops: HashMap<ChunkId, u32> = HashMap::new();
        let mut blobs = Vec::new();
        for (digest, size) in &dead {
            blobs.push((digest.clone(), *size));
            let distinct = match rtx.blob(digest)? {
                Some(rec) => rtx.blob_chunk_ids(digest, &rec)?,
                None => Err(String::new()),
            };
            if let Ok(distinct) = distinct {
                for id in distinct {
                    *drops.entry(id).or_default() += 1;
                }
            }
        }
        let mut dead_chunks = HashSet::new();
        let mut chunk_bytes = 0;
        let mut per_pack: HashMap<PackId, (u64, u64)> = HashMap::new();
        for_each_chunk(&rtx, |id, rec| {
            let gone = rec.refs <= drops.get(id).copied().unwrap_or(0);
            let e = per_pack.entry(rec.loc.pack).or_default();
            e.0 += u64::from(rec.loc.raw_len);
            if gone {
                dead_chunks.insert(*id);
                chunk_bytes += u64::from(rec.loc.raw_len);
            } else {
                e.1 += u64::from(rec.loc.raw_len);
            }
            Ok(())
        })?;
        let (mut delete_packs, repack_packs) = classify_packs(&per_pack);
        // As apply will: packs no chunk lives in (frames of raced puts only).
        for (id, _) in rtx.packs()? {
            if !per_pack.contains_key(&id) {
                delete_packs.push(id);
            }
        }
        delete_packs.sort();
        Ok(GcPlan {
            blobs,
            chunks: dead_chunks.len() as u64,
            chunk_bytes,
            delete_packs,
            repack_packs,
            options,
        })
    }

    /// Carries out a plan. Reachability is checked again first: a blob linked since the plan
    /// was made is kept.
    pub fn apply_gc(&self, plan: &GcPlan) -> Result<GcReport> {
        self.check_writable()?;
        // After every transfer in progress: their chunks are not referenced yet.
        let _transfers = self
            .inner
            .chunks_lock
            .write()
            .unwrap_or_else(|p| p.into_inner());
        let _exclusive = self
            .inner
            .gc_lock
            .write()
            .unwrap_or_else(|p| p.into_inner());
        let still_dead: HashMap<Digest, u64> =
            self.unreachable_blobs(plan.options)?.into_iter().collect();
        let mut report = GcReport::default();
        let cutoff = cutoff(now(), plan.options.keep_tag_history);

        // 1. Blobs and chunk references, in one transaction.
        let mut tx = self.inner.index.write()?;
        let mut removed = HashSet::new();
        let mut staged_files = Vec::new();
        for (digest, _) in &plan.blobs {
            if !still_dead.contains_key(digest) {
                continue;
            }
            let distinct = match tx.blob(digest)? {
                Some(rec) => tx.blob_chunk_ids(digest, &rec)?,
                None => Err(String::new()),
            };
            if let Ok(distinct) = distinct {
                for id in distinct {
                    if let Some(mut rec) = tx.chunk(&id)? {
                        rec.refs = rec.refs.saturating_sub(1);
                        tx.put_chunk(&id, &rec)?;
                    }
                }
            }
            tx.remove_blob(digest)?;
            if tx.remove_staged(digest)? {
                staged_files.push(digest.clone());
            }
            removed.insert(digest.clone());
            report.blobs += 1;
        }
        // Blob links (uploads, mounts) are not roots: drop the ones whose blob went.
        for (repo, digest, _) in tx.all_links()? {
            if removed.contains(&digest) {
                tx.remove_link(&repo, &digest, LinkKind::ALL)?;
            }
        }
        report.history_pruned = tx.prune_tag_history(cutoff)?;
        tx.commit()?;
        for digest in &removed {
            self.inner.cache.forget(digest);
        }
        self.remove_staged_files(&staged_files)?;

        // 2. Chunks no recipe uses, and what that leaves in each pack.
        let mut dead_chunks = Vec::new();
        let mut per_pack: HashMap<PackId, (u64, u64)> = HashMap::new();
        let mut live_by_pack: HashMap<PackId, Vec<(ChunkId, ChunkRecord)>> = HashMap::new();
        let rtx = self.inner.index.read()?;
        for_each_chunk(&rtx, |id, rec| {
            let e = per_pack.entry(rec.loc.pack).or_default();
            e.0 += u64::from(rec.loc.raw_len);
            if rec.refs == 0 {
                dead_chunks.push(*id);
            } else {
                e.1 += u64::from(rec.loc.raw_len);
                live_by_pack
                    .entry(rec.loc.pack)
                    .or_default()
                    .push((*id, *rec));
            }
            Ok(())
        })?;
        drop(rtx);
        let mut tx = self.inner.index.write()?;
        for id in &dead_chunks {
            tx.remove_chunk(id)?;
        }
        tx.commit()?;
        report.chunks = dead_chunks.len() as u64;

        // 3. Packs: delete the empty ones, rewrite the mostly dead ones. Open packs are taken
        // out of the pool meanwhile (no put runs while the lock is held).
        let (mut delete, repack) = classify_packs(&per_pack);
        // Packs the index knows but no chunk lives in (only frames of failed or raced puts).
        for (id, _) in self.inner.index.read()?.packs()? {
            if !per_pack.contains_key(&id) {
                delete.push(id);
            }
        }
        let mut rewritten_bytes = 0;
        let mut pool =
            std::mem::take(&mut *self.inner.pool.lock().unwrap_or_else(|p| p.into_inner()));
        let doomed: HashSet<PackId> = delete.iter().chain(&repack).copied().collect();
        pool.retain(|w| !doomed.contains(&w.id()));
        let result = self
            .rewrite_packs(&repack, &live_by_pack, &mut report, &mut rewritten_bytes)
            .and_then(|()| {
                let all: Vec<PackId> = delete.iter().chain(&repack).copied().collect();
                self.delete_packs(&all, &mut report)
            });
        self.inner
            .pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(pool);
        result?;
        report.bytes_freed = report.bytes_freed.saturating_sub(rewritten_bytes);
        Ok(report)
    }

    /// Copies the live chunks of `packs` into new packs (sealed at the size limit like any
    /// other) and points the index at the copies.
    fn rewrite_packs(
        &self,
        packs: &[PackId],
        live: &HashMap<PackId, Vec<(ChunkId, ChunkRecord)>>,
        report: &mut GcReport,
        rewritten_bytes: &mut u64,
    ) -> Result<()> {
        if packs.is_empty() {
            return Ok(());
        }
        let mut writers = Writers::new(self);
        match self.copy_live_chunks(packs, live, &mut writers) {
            Ok(written) => {
                writers.release(true);
                report.packs_rewritten += packs.len() as u64;
                *rewritten_bytes += written;
                Ok(())
            }
            Err(e) => {
                writers.rollback();
                Err(e)
            }
        }
    }

    /// The body of [`Store::rewrite_packs`]: returns the bytes written.
    fn copy_live_chunks<'a>(
        &'a self,
        packs: &[PackId],
        live: &HashMap<PackId, Vec<(ChunkId, ChunkRecord)>>,
        writers: &mut Writers<'a>,
    ) -> Result<u64> {
        let mut moved = Vec::new();
        let mut batch: Vec<(ChunkId, Vec<u8>)> = Vec::new();
        let mut batch_bytes = 0;
        let mut written = 0u64;
        let level = self.inner.opts.zstd_level;
        let frame_size = self.frame_size();
        let mut flush = |batch: &mut Vec<(ChunkId, Vec<u8>)>| -> Result<()> {
            if batch.is_empty() {
                return Ok(());
            }
            let refs: Vec<(ChunkId, &[u8])> =
                batch.iter().map(|(i, d)| (*i, d.as_slice())).collect();
            let frame = CompressedFrame::compress(&refs, level)
                .map_err(Error::io("compressing frame for", &self.inner.packs_dir))?;
            written += frame.len() as u64;
            moved.extend(writers.append(&frame)?);
            batch.clear();
            Ok(())
        };
        for pack_id in packs {
            let mut chunks = live.get(pack_id).cloned().unwrap_or_default();
            chunks.sort_by_key(|(_, r)| (r.loc.frame_offset, r.loc.raw_offset));
            let mut cache = None;
            for (id, rec) in chunks {
                let data = self.read_chunk_cached(&id, &rec.loc, &mut cache)?;
                batch_bytes += data.len();
                batch.push((id, data));
                if batch_bytes >= frame_size {
                    flush(&mut batch)?;
                    batch_bytes = 0;
                }
            }
        }
        flush(&mut batch)?;
        writers.all().try_for_each(|(w, _)| w.sync())?;
        let mut tx = self.inner.index.write()?;
        let old: HashSet<PackId> = packs.iter().copied().collect();
        for (id, loc) in &moved {
            if let Some(mut rec) = tx.chunk(id)?
                && old.contains(&rec.loc.pack)
            {
                rec.loc = *loc;
                tx.put_chunk(id, &rec)?;
            }
        }
        writers.register_packs(&mut tx)?;
        tx.commit()?;
        Ok(written)
    }

    /// Forgets packs in the index, then removes their files.
    fn delete_packs(&self, packs: &[PackId], report: &mut GcReport) -> Result<()> {
        if packs.is_empty() {
            return Ok(());
        }
        let mut tx = self.inner.index.write()?;
        for id in packs {
            tx.remove_pack(*id)?;
        }
        tx.commit()?;
        for id in packs {
            let path = pack::pack_path(&self.inner.packs_dir, *id);
            let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Error::Io {
                        op: "removing pack",
                        path,
                        source: e,
                    });
                }
            }
            self.inner.forget_pack_file(*id);
            report.bytes_freed += len;
            report.packs_deleted += 1;
        }
        // Packs live in several directories: sync each one that lost a file.
        let dirs: HashSet<_> = packs
            .iter()
            .filter_map(|id| {
                pack::pack_path(&self.inner.packs_dir, *id)
                    .parent()
                    .map(|d| d.to_owned())
            })
            .collect();
        for dir in dirs {
            pack::sync_dir(&dir)?;
        }
        Ok(())
    }

    /// Blobs not reachable from any root, with their sizes.
    fn unreachable_blobs(&self, options: GcOptions) -> Result<Vec<(Digest, u64)>> {
        let rtx = self.inner.index.read()?;
        let now = now();
        let history_cutoff = cutoff(now, options.keep_tag_history);
        let mut live: HashSet<Digest> = HashSet::new();
        let mut queue: VecDeque<Digest> = VecDeque::new();
        for (_, digest, kind) in rtx.all_links()? {
            if kind.contains(LinkKind::MANIFEST) {
                queue.push_back(digest);
            }
        }
        for (_, _, digest) in rtx.all_tags()? {
            queue.push_back(digest);
        }
        for (_, _, event) in rtx.all_tag_history()? {
            if event.time >= history_cutoff
                && let Some(d) = event.digest
            {
                queue.push_back(d);
            }
        }
        while let Some(d) = queue.pop_front() {
            if live.insert(d.clone()) {
                queue.extend(rtx.edges(&d)?);
            }
        }
        let grace_cutoff = cutoff(now, options.upload_grace);
        let mut dead = Vec::new();
        for_each_blob(&rtx, |digest, rec| {
            if !live.contains(digest) && rec.last_touched() < grace_cutoff {
                dead.push((digest.clone(), rec.size));
            }
            Ok(())
        })?;
        for_each_staged(&rtx, |digest, rec| {
            if !live.contains(digest) && rec.last_touched() < grace_cutoff {
                dead.push((digest.clone(), rec.size));
            }
            Ok(())
        })?;
        Ok(dead)
    }
}

/// Unix seconds before which a time (stored in whole seconds) is surely older than `window`:
/// a window of zero keeps nothing (times of the current second included), any other is
/// rounded up to whole seconds so nothing younger than it is ever taken.
fn cutoff(now: u64, window: Duration) -> u64 {
    if window.is_zero() {
        return u64::MAX;
    }
    let secs = window.as_secs() + u64::from(window.subsec_nanos() > 0);
    now.saturating_sub(secs)
}

/// Splits packs by live share: none live -> delete; below the threshold -> rewrite.
fn classify_packs(per_pack: &HashMap<PackId, (u64, u64)>) -> (Vec<PackId>, Vec<PackId>) {
    let mut delete = Vec::new();
    let mut repack = Vec::new();
    for (&id, &(total, live)) in per_pack {
        if live == 0 {
            delete.push(id);
        } else if (live as f64) < (total as f64) * REPACK_BELOW_LIVE_SHARE {
            repack.push(id);
        }
    }
    delete.sort();
    repack.sort();
    (delete, repack)
}
