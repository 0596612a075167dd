//! Reading a blob back: a streaming reader over its recipe, one segment at a time.
//!
//! Every chunk is checked against its BLAKE3 id as it is read, so damage in a pack surfaces as
//! an error naming the pack and offset, never as wrong bytes. A `Deflate` blob is served from
//! the blob cache, or by following its materialization into the cache (`inflight`), or rebuilt
//! by `read_gzip` from its payload and script for this read alone. A staged blob (issue 14) is
//! read from its file (`staged`).

use std::{
    collections::VecDeque,
    fs::File,
    io::{self, Read, Seek, SeekFrom},
    ops::Range,
    sync::Arc,
    time::{Duration, Instant},
};

use airlock_chunker::ChunkId;

use crate::{
    Digest, Error, PackId, Result, Store,
    index::{BlobRecord, CutLayout, RecipeKind, SegmentAt, SegmentList},
    inflight::{Follower, Shared},
    layer::{Encoding, StoredAs},
    pack::{self, ChunkLoc, DecodedFrame},
    read_gzip::DeflateReader,
    recipe::{Entry, decode_segment},
    staged::{Found, StagedReader},
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
    /// The encoding recognised from its bytes.
    pub encoding: Encoding,
    /// How its bytes are kept.
    pub stored_as: StoredAs,
    /// Bytes of decompressed payload (rebuilt gzip blobs only).
    pub plain_size: Option<u64>,
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
    /// Not cut yet: the blob is staged, awaiting ingest.
    Uncut,
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
    /// Whether a blob is stored or staged.
    pub fn has_blob(&self, digest: &Digest) -> Result<bool> {
        self.inner.index.read()?.holds_blob(digest)
    }

    /// Size and layout of a stored or staged blob, or `None`.
    pub fn stat_blob(&self, digest: &Digest) -> Result<Option<BlobStat>> {
        let rtx = self.inner.index.read()?;
        let Some(r) = rtx.blob(digest)? else {
            return Ok(rtx.staged(digest)?.map(|r| BlobStat {
                digest: digest.clone(),
                size: r.size,
                layout: Layout::Uncut,
                chunks: 0,
                inline_bytes: 0,
                created: r.created,
                encoding: r.encoding,
                stored_as: StoredAs::Staged,
                plain_size: None,
            }));
        };
        Ok(Some(BlobStat {
            digest: digest.clone(),
            size: r.size,
            layout: Layout::from(&r),
            chunks: r.chunks,
            inline_bytes: r.inline_bytes,
            created: r.created,
            encoding: r.encoding,
            stored_as: stored_as(&r),
            plain_size: match r.kind {
                RecipeKind::Deflate { plain_size } => Some(plain_size),
                RecipeKind::Plain => None,
            },
        }))
    }

    /// A streaming reader over a whole blob.
    pub fn open_blob(&self, digest: &Digest) -> Result<BlobReader> {
        let size = self.blob_size(digest)?;
        self.open_blob_range(digest, 0..size)
    }

    /// A streaming reader over bytes `range` of a blob. A staged blob is read from its file. A
    /// rebuilt gzip blob comes from the
    /// blob cache when it holds it. Otherwise, when the cache can take it, the read follows the
    /// blob's materialization into the cache, started by the first read and shared by every
    /// concurrent one (`inflight`); a range far ahead of that rebuild, or a blob the cache
    /// cannot take, is rebuilt by the read itself from the range's start. Memory stays bounded
    /// either way.
    pub fn open_blob_range(&self, digest: &Digest, range: Range<u64>) -> Result<BlobReader> {
        self.open_range(digest, range, true)
    }

    /// As [`Store::open_blob_range`]; `cached: false` rebuilds from the packs (verify).
    pub(crate) fn open_range(
        &self,
        digest: &Digest,
        range: Range<u64>,
        cached: bool,
    ) -> Result<BlobReader> {
        let rec = match self.find_blob(digest, &range)? {
            Found::Stored(rec) => rec,
            Found::Staged(reader) => return Ok(*reader),
        };
        if range.start > range.end || range.end > rec.size {
            return Err(Error::RangeNotSatisfiable {
                digest: digest.clone(),
                start: range.start,
                end: range.end,
                size: rec.size,
            });
        }
        let mut clock = None;
        let src = match rec.kind {
            RecipeKind::Plain => Source::Plain(PlainReader::new(self, digest, range.start)),
            RecipeKind::Deflate { plain_size } => {
                let script = (
                    plain_size,
                    rec.preflate_version(&self.inner.format.preflate),
                );
                let cache = &self.inner.cache;
                let shared = match cached.then(|| cache.open(digest)).flatten() {
                    Some(file) => Some(Shared::Cached(file)),
                    None if cached => self.read_shared(digest, rec.size, script, range.start),
                    None => None,
                };
                match shared {
                    Some(Shared::Cached(mut file)) => {
                        file.seek(SeekFrom::Start(range.start))
                            .map_err(Error::io("reading cached blob", digest.to_string()))?;
                        Source::File(file)
                    }
                    Some(Shared::Follow(follower)) => Source::Follow(follower),
                    None => {
                        if cached {
                            cache.count_direct();
                            clock = Some(RebuildClock {
                                store: self.clone(),
                                spent: Duration::ZERO,
                            });
                        }
                        let plain = PlainReader::new(self, digest, 0);
                        let mut r = DeflateReader::new(self, digest, plain, script, range.start);
                        if range != (0..rec.size) {
                            r = r.until(range.end);
                        }
                        Source::Deflate(Box::new(r))
                    }
                }
            }
        };
        Ok(BlobReader {
            digest: digest.clone(),
            pos: range.start,
            end: range.end,
            size: rec.size,
            src,
            clock,
        })
    }

    /// Reads a whole blob into memory; for small blobs such as manifests and configs.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut r = self.open_blob(digest)?;
        let mut out = Vec::with_capacity(usize::try_from(r.len()).unwrap_or(0));
        r.read_to_end(&mut out).map_err(|e| unwrap_io(digest, e))?;
        Ok(out)
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
    digest: Digest,
    /// Offset of the next byte to produce.
    pos: u64,
    end: u64,
    /// The blob's size.
    size: u64,
    src: Source,
    /// The time a direct rebuild spends in its reads, added to the cache's counters when the
    /// reader goes.
    clock: Option<RebuildClock>,
}

#[derive(Debug)]
struct RebuildClock {
    store: Store,
    spent: Duration,
}

impl Drop for BlobReader {
    fn drop(&mut self) {
        if let Some(clock) = &self.clock {
            clock.store.inner.cache.count_direct_time(clock.spent);
        }
    }
}

#[derive(Debug)]
enum Source {
    Plain(PlainReader),
    Deflate(Box<DeflateReader>),
    File(File),
    Follow(Follower),
    Staged(StagedReader),
}

impl BlobReader {
    /// A reader over `range` of a staged blob's file.
    pub(crate) fn staged(
        digest: &Digest,
        range: &Range<u64>,
        size: u64,
        file: StagedReader,
    ) -> BlobReader {
        BlobReader {
            digest: digest.clone(),
            pos: range.start,
            end: range.end,
            size,
            src: Source::Staged(file),
            clock: None,
        }
    }

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

    /// Deflate steps this reader has rebuilt so far, on every thread (0 for a blob read from
    /// its chunks or the blob cache, or following a shared materialization that another reader
    /// started): what a read of a rebuilt gzip blob cost this reader.
    pub fn steps_rebuilt(&self) -> u64 {
        match &self.src {
            Source::Deflate(r) => r.steps_rebuilt(),
            Source::Plain(_) | Source::File(_) | Source::Follow(_) | Source::Staged(_) => 0,
        }
    }
}

impl Read for BlobReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let left = usize::try_from(self.end - self.pos).unwrap_or(usize::MAX);
        let max = out.len().min(left);
        if max == 0 {
            return Ok(0);
        }
        let n = match &mut self.src {
            Source::Plain(r) => r.read(&mut out[..max])?,
            Source::Deflate(r) => {
                let started = Instant::now();
                let n = r.read(&mut out[..max]);
                if let Some(clock) = &mut self.clock {
                    clock.spent += started.elapsed();
                }
                n?
            }
            Source::Follow(r) => r.read(&mut out[..max])?,
            Source::Staged(r) => r.read(&mut out[..max])?,
            Source::File(f) => f.read(&mut out[..max]).map_err(|e| {
                io::Error::other(Error::Io {
                    op: "reading cached blob",
                    path: self.digest.to_string().into(),
                    source: e,
                })
            })?,
        };
        if n == 0 {
            return Err(io::Error::other(Error::Rebuild {
                digest: self.digest.clone(),
                offset: self.pos,
                what: format!("its source ended before byte {}", self.end),
            }));
        }
        self.pos += n as u64;
        if self.pos == self.size
            && let Source::Deflate(r) = &mut self.src
            && let Err(e) = r.finish()
        {
            // Every byte of the blob was produced (its digest is checked by whoever needs it);
            // what follows them in its script does not add up.
            tracing::warn!("finishing the rebuild of blob {}: {e}", self.digest);
        }
        Ok(n)
    }
}

/// How a blob's record says its bytes are kept.
pub(crate) fn stored_as(r: &BlobRecord) -> StoredAs {
    match (r.kind, r.opaque) {
        (RecipeKind::Deflate { .. }, _) => StoredAs::Rebuilt,
        (RecipeKind::Plain, Some(reason)) => StoredAs::Opaque(reason),
        (RecipeKind::Plain, None) => StoredAs::Chunks,
    }
}

/// Where a reader finds a blob's recipe and script segments: in the index (a stored
/// blob), or given by the caller (a blob described by a bundle, read to verify its digest
/// before it is committed). Chunks always come from the store.
#[derive(Clone, Debug)]
pub(crate) enum Segments {
    Index,
    Given(Arc<GivenSegments>),
}

/// Segments held in memory: (start offset, encoded bytes), sorted by start.
#[derive(Debug)]
pub(crate) struct GivenSegments {
    pub(crate) recipe: Vec<(u64, Vec<u8>)>,
    pub(crate) script: Vec<(u64, Vec<u8>)>,
}

impl Segments {
    /// A segment of the blob's recipe or script, if there is one where asked.
    pub(crate) fn segment(
        &self,
        store: &Store,
        digest: &Digest,
        list: SegmentList,
        at: SegmentAt,
    ) -> Result<Option<(u64, Vec<u8>)>> {
        let g = match self {
            Segments::Index => return store.inner.index.read()?.segment(list, digest, at),
            Segments::Given(g) => g,
        };
        let segs = match list {
            SegmentList::Recipe => &g.recipe,
            SegmentList::Script => &g.script,
        };
        let found = match at {
            SegmentAt::Covering(offset) => segs.iter().rev().find(|(s, _)| *s <= offset),
            SegmentAt::After(after) => segs.iter().find(|(s, _)| after.is_none_or(|a| *s > a)),
        };
        Ok(found.cloned())
    }
}

/// Streams the bytes a blob's content recipe holds, from an offset to its end.
#[derive(Debug)]
pub(crate) struct PlainReader {
    store: Store,
    digest: Digest,
    segments: Segments,
    /// Logical offset of the next byte to produce.
    pos: u64,
    /// Start of the last loaded segment.
    seg_start: Option<u64>,
    /// Entries after `pos`, with their resolved chunk locations. The first one may start before
    /// `pos` (only right after a seek into the middle of a segment).
    entries: VecDeque<(u64, Entry, Option<ChunkLoc>)>,
    buf: Vec<u8>,
    buf_pos: usize,
    frame: Option<Arc<DecodedFrame>>,
}

impl PlainReader {
    pub(crate) fn new(store: &Store, digest: &Digest, pos: u64) -> PlainReader {
        PlainReader::with_segments(store, digest, pos, Segments::Index)
    }

    /// A reader over segments found in `segments`.
    pub(crate) fn with_segments(
        store: &Store,
        digest: &Digest,
        pos: u64,
        segments: Segments,
    ) -> PlainReader {
        PlainReader {
            store: store.clone(),
            digest: digest.clone(),
            segments,
            pos,
            seg_start: None,
            entries: VecDeque::new(),
            buf: Vec::new(),
            buf_pos: 0,
            frame: None,
        }
    }

    /// Fetches a chunk through this reader's frame cache (reconstruction data of a step).
    pub(crate) fn read_other_chunk(&mut self, id: &ChunkId) -> Result<Vec<u8>> {
        let loc = self
            .store
            .inner
            .index
            .read()?
            .chunk(id)?
            .ok_or_else(|| Error::ChunkMissing {
                digest: self.digest.clone(),
                chunk: id.to_hex(),
            })?
            .loc;
        self.read_chunk(id, loc)
    }

    /// Where its segments come from (a rebuild reads its script from the same place).
    pub(crate) fn segments(&self) -> &Segments {
        &self.segments
    }

    /// Loads the next segment's entries (the one covering `pos` on the first call).
    fn load_segment(&mut self) -> Result<()> {
        let at = match self.seg_start {
            None => SegmentAt::Covering(self.pos),
            Some(s) => SegmentAt::After(Some(s)),
        };
        let seg = (self.segments).segment(&self.store, &self.digest, SegmentList::Recipe, at)?;
        let rtx = self.store.inner.index.read()?;
        let damaged = |what: String| Error::Index {
            path: self.store.inner.root.join("index.redb"),
            what: format!("recipe of blob {} {what}", self.digest),
        };
        let (start, bytes) =
            seg.ok_or_else(|| damaged("ends before the blob's size".to_owned()))?;
        let entries = decode_segment(&bytes)
            .map_err(|e| damaged(format!("has an undecodable segment at {start}: {e}")))?;
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

impl Read for PlainReader {
    /// Reads on to the end of the recipe; the caller bounds the range (a read past the
    /// recipe's end is an error naming the blob).
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
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
        let n = out.len().min(self.buf.len() - self.buf_pos);
        out[..n].copy_from_slice(&self.buf[self.buf_pos..self.buf_pos + n]);
        self.buf_pos += n;
        self.pos += n as u64;
        Ok(n)
    }
}
