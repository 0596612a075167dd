//! Space accounting: logical bytes against stored bytes, how blobs were cut, and how
//! compressed layers are kept (as chunks of their content, or opaque and why); the blob cache
//! apart from the store, and what it did.

use std::collections::BTreeMap;

use crate::{
    CacheStats, Error, OpaqueReason, Result, Store, StoredAs,
    index::CutLayout,
    layer::Encoding,
    pack,
    read::stored_as,
    verify::{for_each_blob, for_each_chunk},
};

/// Space used by the store.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DiskUsage {
    /// Stored blobs.
    pub blobs: u64,
    /// Sum of blob sizes: what the content would take stored blob by blob.
    pub logical_bytes: u64,
    /// Distinct chunks in the index.
    pub chunks: u64,
    /// Raw bytes of those chunks (before compression).
    pub chunk_bytes: u64,
    /// Bytes kept inline in recipes (tar headers and padding).
    pub inline_bytes: u64,
    /// Pack files.
    pub packs: u64,
    /// Bytes of pack files on disk.
    pub pack_bytes: u64,
    /// Bytes of the index file.
    pub index_bytes: u64,
    /// Bytes of materialized blobs in the blob cache (not counted as stored: the cache is
    /// never a source of truth).
    pub cache_bytes: u64,
    /// Files in the blob cache.
    pub cache_files: u64,
    /// Staged blobs, awaiting ingest: received and durable as files, not cut into chunks yet
    /// (counted apart from `blobs`; their files count as stored bytes).
    pub staged: LayerUsage,
    /// Blobs cut as tar streams (headers inline, file data chunked).
    pub tar_blobs: u64,
    /// Blobs cut as tar streams until a block failed to parse.
    pub tar_then_plain_blobs: u64,
    /// Blobs cut as plain bytes.
    pub plain_blobs: u64,
    /// Compressed layers (gzip, zstd) as a whole.
    pub compressed: LayerUsage,
    /// gzip layers kept as chunks of their decompressed content plus a script.
    pub rebuilt: LayerUsage,
    /// Bytes of decompressed payload of the rebuilt layers.
    pub rebuilt_payload_bytes: u64,
    /// Bytes it takes to rebuild them: their scripts' reconstruction data and gzip member
    /// headers and trailers.
    pub rebuild_bytes: u64,
    /// Compressed layers kept as their compressed bytes, by reason.
    pub opaque: BTreeMap<OpaqueReason, LayerUsage>,
}

/// A count of blobs and their logical bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LayerUsage {
    /// Blobs.
    pub blobs: u64,
    /// Their sizes added up.
    pub bytes: u64,
}

impl LayerUsage {
    fn add(&mut self, bytes: u64) {
        self.blobs += 1;
        self.bytes += bytes;
    }
}

impl DiskUsage {
    /// Bytes on disk: packs, index and staged files.
    pub fn stored_bytes(&self) -> u64 {
        self.pack_bytes + self.index_bytes + self.staged.bytes
    }

    /// Compressed layers kept opaque, all reasons together.
    pub fn opaque_total(&self) -> LayerUsage {
        self.opaque
            .values()
            .fold(LayerUsage::default(), |a, u| LayerUsage {
                blobs: a.blobs + u.blobs,
                bytes: a.bytes + u.bytes,
            })
    }
}

impl Store {
    /// Logical bytes against stored bytes, how blobs were cut and how compressed layers are
    /// kept.
    pub fn du(&self) -> Result<DiskUsage> {
        let mut du = DiskUsage::default();
        let rtx = self.inner.index.read()?;
        for_each_blob(&rtx, |_, r| {
            du.blobs += 1;
            du.logical_bytes += r.size;
            du.inline_bytes += r.inline_bytes;
            match r.layout {
                CutLayout::Tar => du.tar_blobs += 1,
                CutLayout::TarThenPlain => du.tar_then_plain_blobs += 1,
                CutLayout::Plain => du.plain_blobs += 1,
            }
            if r.encoding != Encoding::Raw {
                du.compressed.add(r.size);
            }
            match stored_as(r) {
                StoredAs::Rebuilt => {
                    du.rebuilt.add(r.size);
                    du.rebuild_bytes += r.script_bytes;
                    if let crate::index::RecipeKind::Deflate { plain_size } = r.kind {
                        du.rebuilt_payload_bytes += plain_size;
                    }
                }
                StoredAs::Opaque(reason) => du.opaque.entry(reason).or_default().add(r.size),
                StoredAs::Chunks | StoredAs::Staged => {}
            }
            Ok(())
        })?;
        for_each_chunk(&rtx, |_, r| {
            du.chunks += 1;
            du.chunk_bytes += u64::from(r.loc.raw_len);
            Ok(())
        })?;
        for (id, _) in rtx.packs()? {
            du.packs += 1;
            let path = pack::pack_path(&self.inner.packs_dir, id);
            du.pack_bytes += std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        }
        let index = self.inner.root.join("index.redb");
        du.index_bytes = std::fs::metadata(&index)
            .map_err(Error::io("reading metadata of", &index))?
            .len();
        (du.cache_files, du.cache_bytes) = self.inner.cache.usage();
        du.staged = crate::staged::staged_usage(&rtx)?;
        Ok(du)
    }

    /// What the blob cache did since the store was opened: materializations, reads that
    /// followed one, reads that rebuilt on their own, hits, files written as blobs were stored,
    /// and the time the rebuilds took.
    pub fn cache_stats(&self) -> CacheStats {
        self.inner.cache.stats()
    }

    /// Materializations into the blob cache running or waiting now (they go on after their
    /// readers are gone; each holds a clone of the store).
    pub fn materializations_running(&self) -> usize {
        self.inner.inflight.len()
    }
}
