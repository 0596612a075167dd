//! Reading a blob back: a streaming reader over its recipe, one segment at a time.
//!
//! Every chunk is checked against its BLAKE3 id as it is read, so damage in a pack surfaces as
//! an error naming the pack and offset, never as wrong bytes.

use std::{
    collections::VecDeque,
    io::{self, Read},
    ops::Range,
    sync::Arc,
};

use airlock_chunker::ChunkId;

use crate::{
    Digest, Error, PackId, Result, Store,
    index::{BlobRecord, CutLayout, RecipeKind},
    pack::{self, ChunkLoc, DecodedFrame},
    recipe::{Entry, decode_segment},
};

/// Facts about a stored blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobStat {
    /// The blob's digest.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// How the content was cut into chunks.
    pub layout: Layout,
    /// Number of chunk pieces in its recipe.
    pub chunks: u64,
    /// Bytes kept inline in the recipe.
    pub inline_bytes: u64,
    /// Unix seconds when it was stored.
    pub created: u64,
}

/// How a blob's content was cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// As a tar: headers inline, file data in chunks.
    Tar,
    /// As a tar until a block failed to parse, plain after.
    TarThenPlain,
    /// Plain content-defined chunks.
    Plain,
}

impl From<&BlobRecord> for Layout {
    fn from(r: &BlobRecord) -> Layout {
        match r.layout {
            CutLayout::Tar => Layout::Tar,
            CutLayout::TarThenPlain => Layout::TarThenPlain,
            CutLayout::Plain => Layout::Plain,
        }
    }
}

impl Store {
    /// Whether a blob is stored.
    pub fn has_blob(&self, digest: &Digest) -> Result<bool> {
        Ok(self.inner.index.read()?.blob(digest)?.is_some())
    }

    /// Size and layout of a stored blob, or `None`.
    pub fn stat_blob(&self, digest: &Digest) -> Result<Option<BlobStat>> {
        Ok(self.inner.index.read()?.blob(digest)?.map(|r| BlobStat {
            digest: digest.clone(),
            size: r.size,
            layout: Layout::from(&r),
            chunks: r.chunks,
            inline_bytes: r.inline_bytes,
            created: r.created,
        }))
    }

    /// A streaming reader over a whole blob.
    pub fn open_blob(&self, digest: &Digest) -> Result<BlobReader> {
        let size = self.blob_record(digest)?.size;
        self.open_blob_range(digest, 0..size)
    }

    /// A streaming reader over bytes `range` of a blob.
    pub fn open_blob_range(&self, digest: &Digest, range: Range<u64>) -> Result<BlobReader> {
        let rec = self.blob_record(digest)?;
        if range.start > range.end || range.end > rec.size {
            return Err(Error::RangeNotSatisfiable {
                digest: digest.clone(),
                start: range.start,
                end: range.end,
                size: rec.size,
            });
        }
        let RecipeKind::Plain = rec.kind;
        Ok(BlobReader {
            store: self.clone(),
            digest: digest.clone(),
            pos: range.start,
            end: range.end,
            seg_start: None,
            entries: VecDeque::new(),
            buf: Vec::new(),
            buf_pos: 0,
            frame: None,
        })
    }

    /// Reads a whole blob into memory; for small blobs such as manifests and configs.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut r = self.open_blob(digest)?;
        let mut out = Vec::with_capacity(usize::try_from(r.len()).unwrap_or(0));
        r.read_to_end(&mut out).map_err(|e| unwrap_io(digest, e))?;
        Ok(out)
    }

    fn blob_record(&self, digest: &Digest) -> Result<BlobRecord> {
        self.inner
            .index
            .read()?
            .blob(digest)?
            .ok_or_else(|| Error::BlobNotFound {
                digest: digest.clone(),
            })
    }

    /// Fetches one chunk's bytes, through `cache` for consecutive chunks of one frame.
    pub(crate) fn read_chunk_cached(
        &self,
        id: &ChunkId,
        loc: &ChunkLoc,
        cache: &mut Option<Arc<DecodedFrame>>,
    ) -> Result<Vec<u8>> {
        let hit = cache
            .as_ref()
            .is_some_and(|f| f.pack == loc.pack && f.offset == loc.frame_offset);
        if !hit {
            let file = self.inner.pack_file(loc.pack)?;
            *cache = Some(Arc::new(pack::read_frame(
                &file,
                loc.pack,
                loc.frame_offset,
                loc.frame_len,
            )?));
        }
        match cache {
            Some(f) => pack::chunk_from_frame(f, id, loc),
            None => Err(Error::PackCorrupt {
                pack: loc.pack,
                offset: loc.frame_offset,
                what: "frame could not be read".into(),
            }),
        }
    }
}

/// Recovers the store error carried inside an `io::Error` from a [`BlobReader`].
pub fn unwrap_io(digest: &Digest, e: io::Error) -> Error {
    match e.downcast::<Error>() {
        Ok(inner) => inner,
        Err(e) => Error::Source {
            digest: digest.clone(),
            offset: 0,
            source: e,
        },
    }
}

/// Streams a blob's bytes. Errors come out of `read` as `io::Error`s wrapping the store's
/// [`Error`] (use [`unwrap_io`] to get it back).
#[derive(Debug)]
pub struct BlobReader {
    store: Store,
    digest: Digest,
    /// Logical offset of the next byte to produce.
    pos: u64,
    end: u64,
    /// Start of the last loaded segment.
    seg_start: Option<u64>,
    /// Entries after `pos`, with their resolved chunk locations. The first one may start before
    /// `pos` (only right after a seek into the middle of a segment).
    entries: VecDeque<(u64, Entry, Option<ChunkLoc>)>,
    buf: Vec<u8>,
    buf_pos: usize,
    frame: Option<Arc<DecodedFrame>>,
}

impl BlobReader {
    /// Bytes left to read.
    pub fn len(&self) -> u64 {
        self.end - self.pos
    }

    /// Whether nothing is left to read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.end
    }

    /// The blob being read.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// Loads the next segment's entries (the one covering `pos` on the first call).
    fn load_segment(&mut self) -> Result<()> {
        let rtx = self.store.inner.index.read()?;
        let seg = match self.seg_start {
            None => rtx.recipe_segment_at(&self.digest, self.pos)?,
            Some(s) => rtx.recipe_segment_after(&self.digest, s)?,
        };
        let damaged = |what: &str| Error::Index {
            path: self.store.inner.root.join("index.redb"),
            what: format!("recipe of blob {} {what}", self.digest),
        };
        let (start, bytes) = seg.ok_or_else(|| damaged("ends before the blob's size"))?;
        let entries =
            decode_segment(&bytes).ok_or_else(|| damaged("has an undecodable segment"))?;
        let mut offset = start;
        for e in entries {
            let len = e.len();
            if offset + len > self.pos {
                let loc = match &e {
                    Entry::Chunk { id, .. } => Some(
                        rtx.chunk(id)?
                            .ok_or_else(|| Error::ChunkMissing {
                                digest: self.digest.clone(),
                                chunk: id.to_hex(),
                            })?
                            .loc,
                    ),
                    Entry::Inline(_) => None,
                };
                self.entries.push_back((offset, e, loc));
            }
            offset += len;
        }
        self.seg_start = Some(start);
        Ok(())
    }

    /// Fills `buf` with the next entry's bytes, trimmed to start at `pos`.
    fn next_entry(&mut self) -> Result<()> {
        while self.entries.is_empty() {
            self.load_segment()?;
        }
        let Some((offset, entry, loc)) = self.entries.pop_front() else {
            return Ok(());
        };
        let bytes = match (entry, loc) {
            (Entry::Inline(b), _) => b,
            (Entry::Chunk { id, .. }, Some(loc)) => self.read_chunk(&id, loc)?,
            (Entry::Chunk { id, .. }, None) => {
                return Err(Error::ChunkMissing {
                    digest: self.digest.clone(),
                    chunk: id.to_hex(),
                });
            }
        };
        self.buf = bytes;
        self.buf_pos = usize::try_from(self.pos - offset).unwrap_or(0);
        Ok(())
    }

    /// Reads a chunk; if its pack vanished (GC repacked it meanwhile), looks it up again once.
    fn read_chunk(&mut self, id: &ChunkId, loc: ChunkLoc) -> Result<Vec<u8>> {
        match self.store.read_chunk_cached(id, &loc, &mut self.frame) {
            Err(Error::PackCorrupt { .. }) if !pack_exists(&self.store, loc.pack) => {
                let fresh = self.store.inner.index.read()?.chunk(id)?.ok_or_else(|| {
                    Error::ChunkMissing {
                        digest: self.digest.clone(),
                        chunk: id.to_hex(),
                    }
                })?;
                if fresh.loc == loc {
                    return self.store.read_chunk_cached(id, &loc, &mut self.frame);
                }
                self.store
                    .read_chunk_cached(id, &fresh.loc, &mut self.frame)
            }
            other => other,
        }
    }
}

fn pack_exists(store: &Store, id: PackId) -> bool {
    let exists = pack::pack_path(&store.inner.packs_dir, id).exists();
    if !exists {
        store.inner.forget_pack_file(id);
    }
    exists
}

impl Read for BlobReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.end || out.is_empty() {
            return Ok(0);
        }
        if self.buf_pos >= self.buf.len() {
            self.next_entry().map_err(io::Error::other)?;
            if self.buf_pos >= self.buf.len() {
                return Err(io::Error::other(Error::Index {
                    path: self.store.inner.root.join("index.redb"),
                    what: format!(
                        "recipe of blob {} is inconsistent at byte {}",
                        self.digest, self.pos
                    ),
                }));
            }
        }
        let left = usize::try_from(self.end - self.pos).unwrap_or(usize::MAX);
        let n = out.len().min(self.buf.len() - self.buf_pos).min(left);
        out[..n].copy_from_slice(&self.buf[self.buf_pos..self.buf_pos + n]);
        self.buf_pos += n;
        self.pos += n as u64;
        Ok(n)
    }
}
