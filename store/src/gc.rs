//! Garbage collection as plan, then apply.
//!
//! Live blobs are marked from every manifest linked in a repository, every tag, and every
//! tag-history event inside the rollback window, following the references recorded with each
//! manifest. Application versions beyond [`GcOptions::keep_app_versions`] are dropped first:
//! their tags are no roots, and what they reach stays only when a tag reaches it (a plain
//! tag, or a kept version's), not by its manifest links or tag history (see `mark`). Blobs stored, put again or linked as a blob within the upload grace period are
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
    AppAction, Digest, Error, PackId, Result, Store,
    apps::{current_of, order_versions, record_event},
    index::{ChunkRecord, LinkKind, ReadTx},
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
    /// Versions of each application kept: the last this many by when they were added or
    /// imported, and the current one whatever its age. Older ones are dropped: their tag is
    /// deleted, and what only they reach is no longer kept by the manifest links and tag
    /// history that hold it otherwise (a plain tag, or another kept version, still keeps it).
    pub keep_app_versions: u32,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            keep_tag_history: Duration::from_secs(7 * 24 * 3600),
            upload_grace: Duration::from_secs(3600),
            keep_app_versions: 3,
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
    /// Application versions that would be dropped (beyond `keep_app_versions`).
    pub app_versions: Vec<DroppedVersion>,
    /// The options the plan was made with.
    pub options: GcOptions,
}

/// An application version GC drops.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DroppedVersion {
    /// The application's repository.
    pub repo: String,
    /// The version (its tag).
    pub version: String,
    /// Its index.
    pub digest: Digest,
}

impl GcPlan {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
            && self.app_versions.is_empty()
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
    /// Application versions dropped.
    pub app_versions: u64,
}

impl Store {
    /// Works out what GC would remove, without changing anything.
    pub fn plan_gc(&self, options: GcOptions) -> Result<GcPlan> {
        let rtx = self.inner.index.read()?;
        let marked = mark(&rtx, options, None)?;
        let dead = marked.dead;
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
            app_versions: marked.dropped,
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
        // Only versions the plan named: one added since is not dropped unseen.
        let marked = mark(
            &self.inner.index.read()?,
            plan.options,
            Some(&plan.app_versions),
        )?;
        let still_dead: HashMap<Digest, u64> = marked.dead.into_iter().collect();
        let mut report = GcReport::default();
        let now = now();
        let cutoff = cutoff(now, plan.options.keep_tag_history);

        // 1. Dropped versions, blobs and chunk references, in one transaction.
        if !marked.dropped.is_empty() {
            self.raise_format(crate::store::APPS_FORMAT_VERSION)?;
        }
        let mut tx = self.inner.index.write()?;
        for v in &marked.dropped {
            record_event(&mut tx, &v.repo, &v.version, AppAction::Drop, "gc", now)?;
            tx.set_tag(&v.repo, &v.version, None, now)?;
            report.app_versions += 1;
        }
        // What only dropped versions reached is no longer held by its manifest links (kept
        // for now only by the upload grace, it goes at a later GC).
        for (repo, digest, kind) in tx.all_links()? {
            if kind.contains(LinkKind::MANIFEST)
                && marked.dropped_reach.contains(&digest)
                && !marked.live.contains(&digest)
            {
                tx.remove_link(&repo, &digest, LinkKind::MANIFEST)?;
                tx.remove_referrer_everywhere(&repo, &digest)?;
            }
        }
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
}

/// What marking found.
struct Marked {
    /// Blobs reachable from a root.
    live: HashSet<Digest>,
    /// Blobs not reachable (and out of the upload grace), with their sizes.
    dead: Vec<(Digest, u64)>,
    /// Application versions dropped.
    dropped: Vec<DroppedVersion>,
    /// Everything the dropped versions reach.
    dropped_reach: HashSet<Digest>,
}

/// Marks what is reachable. Roots: every tag but those of dropped application versions, every
/// manifest link and tag-history event inside the window except of what dropped versions reach
/// (those stay only when a root of the other kinds reaches them). With `only`, no version
/// outside it is dropped.
fn mark(rtx: &ReadTx<'_>, options: GcOptions, only: Option<&[DroppedVersion]>) -> Result<Marked> {
    let now = now();
    let history_cutoff = cutoff(now, options.keep_tag_history);
    let mut dropped = dropped_versions(rtx, options.keep_app_versions)?;
    if let Some(only) = only {
        dropped.retain(|v| only.contains(v));
    }
    let dropped_tags: HashSet<(&str, &str)> = dropped
        .iter()
        .map(|v| (v.repo.as_str(), v.version.as_str()))
        .collect();
    let mut dropped_reach: HashSet<Digest> = HashSet::new();
    let mut queue: VecDeque<Digest> = dropped.iter().map(|v| v.digest.clone()).collect();
    while let Some(d) = queue.pop_front() {
        if dropped_reach.insert(d.clone()) {
            queue.extend(rtx.edges(&d)?);
        }
    }
    let mut live: HashSet<Digest> = HashSet::new();
    for (_, digest, kind) in rtx.all_links()? {
        if kind.contains(LinkKind::MANIFEST) && !dropped_reach.contains(&digest) {
            queue.push_back(digest);
        }
    }
    for (repo, tag, digest) in rtx.all_tags()? {
        if !dropped_tags.contains(&(repo.as_str(), tag.as_str())) {
            queue.push_back(digest);
        }
    }
    for (_, _, event) in rtx.all_tag_history()? {
        if event.time >= history_cutoff
            && let Some(d) = event.digest
            && !dropped_reach.contains(&d)
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
    for_each_blob(rtx, |digest, rec| {
        if !live.contains(digest) && rec.last_touched() < grace_cutoff {
            dead.push((digest.clone(), rec.size));
        }
        Ok(())
    })?;
    for_each_staged(rtx, |digest, rec| {
        if !live.contains(digest) && rec.last_touched() < grace_cutoff {
            dead.push((digest.clone(), rec.size));
        }
        Ok(())
    })?;
    Ok(Marked {
        live,
        dead,
        dropped,
        dropped_reach,
    })
}

/// The application versions beyond the last `keep` of each application by arrival, never the
/// current one.
fn dropped_versions(rtx: &ReadTx<'_>, keep: u32) -> Result<Vec<DroppedVersion>> {
    let mut out = Vec::new();
    for repo in rtx.app_repos()? {
        let events = rtx.app_events(&repo)?;
        let current = current_of(&events).map(|(v, _)| v);
        let versions = order_versions(&events, &rtx.tags(&repo)?);
        let mut kept = 0u32;
        for (version, digest, _) in versions {
            if current.as_deref() == Some(version.as_str()) {
                continue;
            }
            // The current version counts among the kept ones.
            let room = keep.saturating_sub(u32::from(current.is_some()));
            if kept < room {
                kept += 1;
                continue;
            }
            out.push(DroppedVersion {
                repo: repo.clone(),
                version,
                digest,
            });
        }
    }
    Ok(out)
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
