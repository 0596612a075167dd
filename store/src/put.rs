//! Putting a blob: chunk, dedup, compress, append, verify the digest, then commit.
//!
//! A pipeline: the source is hashed (its digest) on a thread of its own, cut into chunks and
//! the chunks identified (BLAKE3) on another, while this thread looks up chunks and hands new
//! ones to a `FrameQueue`, which compresses frames on the rayon pool and appends them in
//! order. Pack bytes are synced before the index transaction that references them commits; a
//! digest mismatch rolls the packs back, so a failed put leaves nothing behind.

use std::{
    collections::HashMap,
    io::{self, Read},
    sync::mpsc,
};

use airlock_chunker::{Chunk, ChunkId, Chunker, CutBatch, Mode, Piece};

use crate::writers::FrameQueue;
pub(crate) use crate::writers::Writers;

mod commit;
use crate::{
    Digest, Error, Result, Store,
    digest::HashingReader,
    index::{BlobRecord, ChunkRecord, CutLayout, RecipeKind},
    layer::{Encoding, OpaqueReason},
    pack::{ChunkLoc, MAX_FRAME_RAW_BYTES},
    put_input::{Limited, Sniffed, hash_pipe},
    recipe::RecipeBuilder,
    script::{Corrections, ScriptBuilder},
    store::now,
};

/// Limits a caller puts on content it streams in.
#[derive(Clone, Copy, Debug, Default)]
pub struct PutOptions {
    /// Refuse content longer than this.
    pub max_size: Option<u64>,
    /// The content must be exactly this long (e.g. a manifest's descriptor size).
    pub expected_size: Option<u64>,
}

/// What a put did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutOutcome {
    /// The blob's digest (as promised and verified).
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// Whether the blob was already stored: found at the start (no pack bytes were written),
    /// or committed by a concurrent put of the same digest first (this put's copies of its
    /// chunks stay unused in their packs).
    pub existed: bool,
    /// Chunks this put added to the store.
    pub new_chunks: u64,
    /// Raw bytes of those chunks.
    pub new_bytes: u64,
    /// Bytes this put appended to packs (compressed, with frame overhead).
    pub stored_bytes: u64,
}

type Batch = std::result::Result<Vec<Piece>, airlock_chunker::Error>;

/// Encoded recipe or script segments with their start offsets.
type Segments = Vec<(u64, Vec<u8>)>;

/// Reconstruction data at least this long is stored as a chunk, shorter inline in the script.
const CORRECTIONS_CHUNK_BYTES: usize = 4096;

/// What a put's producers send its consumer.
#[derive(Debug)]
pub(crate) enum Msg {
    /// The chunker's next batch.
    Pieces(Batch),
    /// Raw bytes of the script.
    Raw(Vec<u8>),
    /// A deflate step of the script.
    Step {
        plain: u32,
        out: u32,
        corrections: Vec<u8>,
    },
    /// A checkpoint of the script (regzip's bytes), before the op it starts.
    Checkpoint(Vec<u8>),
    /// The compressed stream will be kept as it is, for this reason.
    Opaque(OpaqueReason),
}

/// Sends a chunker's batches until it is exhausted or fails, or the consumer is gone. The
/// chunk ids are computed here, on the chunker's thread: handed to the rayon pool they would
/// wait behind the frames it compresses, and the chunker with them (measured slower on both
/// new and stored data).
pub(crate) fn send_batches<R: Read>(chunker: &mut Chunker<R>, tx: &mpsc::SyncSender<Msg>) {
    loop {
        match chunker.next_cut().map(|b| b.map(CutBatch::identify)) {
            Ok(Some(b)) => {
                if tx.send(Msg::Pieces(Ok(b))).is_err() {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                let _ = tx.send(Msg::Pieces(Err(e)));
                break;
            }
        }
    }
}

pub(crate) fn cut_layout(layout: airlock_chunker::Layout) -> CutLayout {
    match layout {
        airlock_chunker::Layout::Tar { .. } => CutLayout::Tar,
        airlock_chunker::Layout::TarThenPlain { .. } => CutLayout::TarThenPlain,
        airlock_chunker::Layout::Plain => CutLayout::Plain,
    }
}

pub(crate) fn thread_panicked(store: &Store, what: &'static str) -> Error {
    Error::Io {
        op: what,
        path: store.inner.root.clone(),
        source: io::Error::other("a put thread panicked"),
    }
}

/// What a put's consumer built from its producers' messages.
pub(crate) struct Consumed {
    pub(crate) recipe: RecipeBuilder,
    pub(crate) script: ScriptBuilder,
    /// Locations of the chunks this put appended.
    pub(crate) new_locs: Vec<(ChunkId, ChunkLoc)>,
    /// Every chunk the recipe names, once, with its record as the lookup found it (`None`:
    /// not stored then).
    distinct: HashMap<ChunkId, Option<ChunkRecord>>,
    /// New chunks, their raw bytes, bytes appended to packs.
    stats: (u64, u64, u64),
    /// Set when a producer gave up on splitting: nothing after it was stored.
    pub(crate) opaque: Option<OpaqueReason>,
}

impl Store {
    /// Stores the content read from `src` as blob `expected`, verifying its digest while
    /// streaming. On a mismatch nothing is stored and the error names both digests. Putting a
    /// blob that is already stored verifies the content and writes no pack bytes. Content
    /// longer than `max_size` or `expected_size` fails with [`Error::TooLarge`].
    ///
    /// The encoding is recognised from the first bytes: gzip is stored as chunks of its
    /// decompressed payload plus a script when preflate-rs rebuilds it exactly (see
    /// `put_gzip`), anything else as chunks of its own bytes (tar-aware when it parses as a
    /// tar).
    pub fn put_blob<R: Read + Send>(
        &self,
        expected: &Digest,
        src: R,
        opts: PutOptions,
    ) -> Result<PutOutcome> {
        self.check_writable()?;
        let limit = match (opts.max_size, opts.expected_size) {
            (Some(m), Some(e)) => m.min(e),
            (m, e) => m.or(e).unwrap_or(u64::MAX),
        };
        let src = Limited {
            inner: src,
            left: limit,
        };
        // Held from the first lookup to the commit: GC cannot take a blob or chunk this put
        // counts on.
        let _gc = self.inner.gc_lock.read().unwrap_or_else(|p| p.into_inner());
        if self.inner.index.read()?.blob(expected)?.is_some() {
            return self.verify_existing(expected, src, opts);
        }
        let (encoding, src) = Sniffed::new(src).map_err(|e| {
            self.source_error(
                expected,
                Error::Source {
                    digest: expected.clone(),
                    offset: 0,
                    source: e,
                },
            )
        })?;
        match encoding {
            Encoding::Gzip => self.put_gzip(expected, src, opts),
            Encoding::Zstd => self.put_plain(
                expected,
                src,
                opts,
                encoding,
                Some(OpaqueReason::ZstdNotRebuilt),
            ),
            Encoding::Raw => self.put_plain(expected, src, opts, encoding, None),
        }
    }

    /// Stores `src` as chunks of its own bytes (the caller holds the GC lock).
    pub(crate) fn put_plain<R: Read + Send>(
        &self,
        expected: &Digest,
        src: R,
        opts: PutOptions,
        encoding: Encoding,
        opaque: Option<OpaqueReason>,
    ) -> Result<PutOutcome> {
        let params = self.inner.chunker;
        let (tx, rx) = mpsc::sync_channel::<Msg>(2);
        let mut writers = Writers::new(self);
        let (consumed, produced) = std::thread::scope(|s| {
            // Three stages: hashing, chunking, then compressing and appending here.
            let (pipe, hashing) = hash_pipe(s, src, expected.algorithm());
            let producer = s.spawn(move || {
                let mut pipe = pipe;
                let mut chunker = Chunker::new(&mut pipe, params, Mode::Auto);
                send_batches(&mut chunker, &tx);
                chunker.layout()
            });
            let consumed = self.consume(expected, rx, &mut writers);
            let layout = producer.join();
            (consumed, layout.ok().zip(hashing.join().ok()))
        });
        let Some((layout, (actual, size))) = produced else {
            writers.rollback();
            return Err(thread_panicked(self, "chunking"));
        };
        let consumed = match consumed {
            Ok(c) => c,
            Err(e) => {
                writers.rollback();
                return Err(self.source_error(expected, e));
            }
        };
        self.check_received(expected, &opts, actual, size, &mut writers)?;
        let record = BlobRecord {
            size,
            kind: RecipeKind::Plain,
            layout: cut_layout(layout),
            encoding,
            opaque,
            script_bytes: 0,
            chunks: consumed.recipe.chunk_count(),
            inline_bytes: consumed.recipe.inline_bytes(),
            created: now(),
            touched: 0,
            preflate: None,
        };
        self.finish_put(expected, record, consumed, writers)
    }

    /// Checks what was received against the promise; rolls back on a mismatch. The packs are
    /// synced by [`Store::finish_put`], before its index commit.
    pub(crate) fn check_received<'a>(
        &'a self,
        expected: &Digest,
        opts: &PutOptions,
        actual: Digest,
        size: u64,
        writers: &mut Writers<'a>,
    ) -> Result<()> {
        let failure = if actual != *expected {
            Some(Error::DigestMismatch {
                expected: expected.clone(),
                actual,
            })
        } else {
            opts.expected_size
                .filter(|&e| e != size)
                .map(|e| Error::SizeMismatch {
                    digest: expected.clone(),
                    expected: e,
                    actual: size,
                })
        };
        if let Some(e) = failure {
            std::mem::replace(writers, Writers::new(self)).rollback();
            return Err(e);
        }
        Ok(())
    }

    /// Syncs the packs and commits the put, and reports it. The index transaction is prepared
    /// while the packs sync on another thread, and commits only once they are durable.
    pub(crate) fn finish_put(
        &self,
        expected: &Digest,
        record: BlobRecord,
        consumed: Consumed,
        mut writers: Writers<'_>,
    ) -> Result<PutOutcome> {
        let Consumed {
            recipe,
            script,
            new_locs,
            distinct,
            stats,
            ..
        } = consumed;
        let size = record.size;
        let script = match record.kind {
            RecipeKind::Deflate { .. } => script.finish(),
            RecipeKind::Plain => Vec::new(),
        };
        let committed = self.commit_put(
            expected,
            &record,
            (recipe.finish(), script),
            &new_locs,
            &distinct,
            &mut writers,
        );
        match committed {
            Ok(existed) => {
                writers.release(true);
                Ok(PutOutcome {
                    digest: expected.clone(),
                    size,
                    existed,
                    new_chunks: stats.0,
                    new_bytes: stats.1,
                    stored_bytes: stats.2,
                })
            }
            Err(e) => {
                writers.rollback();
                Err(e)
            }
        }
    }

    /// Receives batches from the chunker: builds the recipe, finds new chunks, and hands them to
    /// a [`FrameQueue`] that compresses frames on the rayon pool while the next batches arrive
    /// and appends them, in order, through `writers`.
    pub(crate) fn consume<'a>(
        &'a self,
        digest: &Digest,
        rx: mpsc::Receiver<Msg>,
        writers: &mut Writers<'a>,
    ) -> Result<Consumed> {
        let mut c = Consumed {
            recipe: RecipeBuilder::default(),
            script: ScriptBuilder::default(),
            new_locs: Vec::new(),
            distinct: HashMap::new(),
            stats: (0, 0, 0),
            opaque: None,
        };
        let mut frames = FrameQueue::new(self);
        for msg in rx {
            if c.opaque.is_some() {
                // Kept as compressed bytes: drain the senders, store nothing more.
                continue;
            }
            let mut chunks = Vec::new();
            match msg {
                Msg::Pieces(batch) => {
                    let batch = batch.map_err(|e| Error::Chunker {
                        digest: digest.clone(),
                        source: e,
                    })?;
                    for piece in batch {
                        match piece {
                            Piece::Inline(bytes) => c.recipe.inline(&bytes),
                            Piece::Chunk(chunk) => {
                                c.recipe.chunk(&chunk.id, chunk.data.len() as u32);
                                chunks.push(chunk);
                            }
                        }
                    }
                }
                Msg::Raw(bytes) => c.script.raw(&bytes),
                Msg::Checkpoint(state) => c.script.checkpoint(&state),
                Msg::Step {
                    plain,
                    out,
                    corrections,
                } => {
                    if corrections.len() >= CORRECTIONS_CHUNK_BYTES {
                        let chunk = Chunk {
                            id: ChunkId::of(&corrections),
                            data: corrections,
                        };
                        let len = chunk.data.len() as u32;
                        c.script
                            .step(plain, out, &Corrections::Chunk { id: chunk.id, len });
                        chunks.push(chunk);
                    } else {
                        c.script.step(plain, out, &Corrections::Inline(corrections));
                    }
                }
                Msg::Opaque(reason) => {
                    c.opaque = Some(reason);
                    continue;
                }
            }
            let mut new = Vec::new();
            let rtx = self.inner.index.read()?;
            let table = rtx.chunk_table()?;
            for chunk in chunks {
                if c.distinct.contains_key(&chunk.id) {
                    continue;
                }
                let found = table.get(&chunk.id)?;
                c.distinct.insert(chunk.id, found);
                if found.is_some() {
                    continue;
                }
                c.stats.0 += 1;
                c.stats.1 += chunk.data.len() as u64;
                new.push(chunk);
            }
            drop(table);
            drop(rtx);
            for chunk in new {
                frames.push(chunk, writers)?;
            }
        }
        if c.opaque.is_none() {
            let (locs, stored) = frames.finish(writers)?;
            c.new_locs = locs;
            c.stats.2 = stored;
        }
        Ok(c)
    }

    /// Raw bytes per frame: the configured size, kept well under what a frame may hold (a
    /// frame closes after the chunk that reaches it, and a chunk may be 16 MiB).
    pub(crate) fn frame_size(&self) -> usize {
        self.inner
            .opts
            .frame_size
            .clamp(1, MAX_FRAME_RAW_BYTES as usize / 2)
    }

    /// The content of a blob that is already stored: hash it to check the caller's promise,
    /// then restart its GC grace period (its manifest may be on its way, as for a new blob).
    fn verify_existing<R: Read>(
        &self,
        expected: &Digest,
        src: R,
        opts: PutOptions,
    ) -> Result<PutOutcome> {
        let mut h = HashingReader::new(src, expected.algorithm());
        let copied = io::copy(&mut h, &mut io::sink());
        copied.map_err(|e| {
            let offset = h.bytes_read();
            self.source_error(
                expected,
                Error::Source {
                    digest: expected.clone(),
                    offset,
                    source: e,
                },
            )
        })?;
        let (actual, size) = h.finish();
        if actual != *expected {
            return Err(Error::DigestMismatch {
                expected: expected.clone(),
                actual,
            });
        }
        if let Some(e) = opts.expected_size.filter(|&e| e != size) {
            return Err(Error::SizeMismatch {
                digest: expected.clone(),
                expected: e,
                actual: size,
            });
        }
        let mut tx = self.inner.index.write()?;
        tx.touch_blob(expected, now())?;
        tx.commit()?;
        Ok(PutOutcome {
            digest: expected.clone(),
            size,
            existed: true,
            new_chunks: 0,
            new_bytes: 0,
            stored_bytes: 0,
        })
    }

    /// Turns a reader failure into the error a caller expects: `TooLarge` for the size limit.
    pub(crate) fn source_error(&self, digest: &Digest, e: Error) -> Error {
        let too_large = |src: &io::Error| src.kind() == io::ErrorKind::FileTooLarge;
        match e {
            Error::Chunker {
                source: airlock_chunker::Error::Read { ref source, .. },
                ..
            }
            | Error::Source { ref source, .. }
                if too_large(source) =>
            {
                Error::TooLarge {
                    digest: digest.clone(),
                }
            }
            Error::Chunker {
                source: airlock_chunker::Error::Read { offset, source },
                ..
            } => Error::Source {
                digest: digest.clone(),
                offset,
                source,
            },
            other => other,
        }
    }
}
