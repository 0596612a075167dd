//! Putting a blob: chunk, dedup, compress, append, verify the digest, then commit.
//!
//! The chunker runs on its own thread (it also feeds the digest), while this thread looks up
//! chunks and compresses new ones in parallel frames. Pack bytes are synced before the index
//! transaction that references them commits; a digest mismatch rolls the packs back, so a
//! failed put leaves nothing behind.

use std::{
    collections::HashSet,
    io::{self, Read},
    sync::mpsc,
};

use airlock_chunker::{Chunk, ChunkId, Chunker, Mode, Piece};
use rayon::prelude::*;

use crate::{
    Digest, Error, Result, Store,
    digest::HashingReader,
    index::{BlobRecord, ChunkRecord, CutLayout, PackRecord, RecipeKind},
    pack::{ChunkLoc, CompressedFrame, PackWriter},
    recipe::RecipeBuilder,
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
    /// Whether the blob was already stored (nothing was written).
    pub existed: bool,
    /// Chunks this put added to the store.
    pub new_chunks: u64,
    /// Raw bytes of those chunks.
    pub new_bytes: u64,
    /// Bytes this put appended to packs (compressed, with frame overhead).
    pub stored_bytes: u64,
}

/// The packs a put appends to, with where each started so a failure can roll them back.
struct Writers<'a> {
    store: &'a Store,
    current: Option<(PackWriter, u64)>,
    done: Vec<(PackWriter, u64)>,
}

impl Writers<'_> {
    fn append(&mut self, frame: &CompressedFrame) -> Result<Vec<(ChunkId, ChunkLoc)>> {
        let pack_size = self.store.inner.opts.pack_size;
        if let Some((w, _)) = &self.current {
            if !w.is_empty() && w.len() + frame.len() as u64 > pack_size {
                if let Some(full) = self.current.take() {
                    self.done.push(full);
                }
            }
        }
        if self.current.is_none() {
            let w = self.store.inner.take_writer()?;
            let start = w.len();
            self.current = Some((w, start));
        }
        match &mut self.current {
            Some((w, _)) => w.append(frame),
            None => unreachable_writer(),
        }
    }

    fn all(&mut self) -> impl Iterator<Item = &mut (PackWriter, u64)> {
        self.done.iter_mut().chain(self.current.iter_mut())
    }

    fn rollback(mut self) {
        for (w, start) in self.all() {
            if let Err(e) = w.rollback(*start) {
                tracing::warn!("rolling back pack {}: {e}", w.id());
            }
        }
        self.release();
    }

    /// Hands packs back to the pool, sealing the ones that reached the size limit.
    fn release(self) {
        let pack_size = self.store.inner.opts.pack_size;
        for (w, _) in self.done.into_iter().chain(self.current) {
            if w.len() >= pack_size {
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

fn unreachable_writer() -> Result<Vec<(ChunkId, ChunkLoc)>> {
    Err(Error::Io {
        op: "appending to pack",
        path: "packs".into(),
        source: io::Error::other("no pack writer"),
    })
}

/// A reader that refuses to go past a size limit.
struct Limited<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            // Probe one byte: content of exactly the limit is fine, more is not.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::new(
                    io::ErrorKind::FileTooLarge,
                    "content exceeds the size limit",
                )),
            };
        }
        let max = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        self.left -= n as u64;
        Ok(n)
    }
}

type Batch = std::result::Result<Vec<Piece>, airlock_chunker::Error>;

impl Store {
    /// Stores the content read from `src` as blob `expected`, verifying its digest while
    /// streaming. On a mismatch nothing is stored and the error names both digests. Putting a
    /// blob that is already stored verifies the content and writes nothing.
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
        if self.inner.index.read()?.blob(expected)?.is_some() {
            return self.verify_existing(expected, src, opts);
        }
        let _gc = self.inner.gc_lock.read().unwrap_or_else(|p| p.into_inner());
        let mut hashing = HashingReader::new(src, expected.algorithm());
        let params = self.inner.chunker;
        let (tx, rx) = mpsc::sync_channel::<Batch>(2);
        let mut outcome = None;
        let read_result = std::thread::scope(|s| {
            let producer = s.spawn(move || {
                let mut chunker = Chunker::new(&mut hashing, params, Mode::Auto);
                loop {
                    match chunker.next_batch() {
                        Ok(Some(b)) => {
                            if tx.send(Ok(b)).is_err() {
                                break;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            break;
                        }
                    }
                }
                let layout = chunker.layout();
                drop(chunker);
                (layout, hashing.finish())
            });
            let consumed = self.consume(expected, rx);
            let (layout, (actual, size)) = producer.join().map_err(|_| Error::Io {
                op: "chunking",
                path: self.inner.root.clone(),
                source: io::Error::other("chunker thread panicked"),
            })?;
            outcome = Some((consumed, layout, actual, size));
            Ok::<(), Error>(())
        });
        read_result?;
        let Some((consumed, layout, actual, size)) = outcome else {
            return Err(Error::BlobNotFound {
                digest: expected.clone(),
            });
        };
        let (mut writers, recipe, new_locs, distinct, stats) = match consumed {
            Ok(v) => v,
            Err((writers, e)) => {
                writers.rollback();
                return Err(self.source_error(expected, e));
            }
        };
        if actual != *expected {
            writers.rollback();
            return Err(Error::DigestMismatch {
                expected: expected.clone(),
                actual,
            });
        }
        if let Some(e) = opts.expected_size.filter(|&e| e != size) {
            writers.rollback();
            return Err(Error::SizeMismatch {
                digest: expected.clone(),
                expected: e,
                actual: size,
            });
        }
        let synced = writers.all().try_for_each(|(w, _)| w.sync());
        if let Err(e) = synced {
            writers.rollback();
            return Err(e);
        }
        let record = BlobRecord {
            size,
            kind: RecipeKind::Plain,
            layout: match layout {
                airlock_chunker::Layout::Tar { .. } => CutLayout::Tar,
                airlock_chunker::Layout::TarThenPlain { .. } => CutLayout::TarThenPlain,
                airlock_chunker::Layout::Plain => CutLayout::Plain,
            },
            chunks: recipe.chunk_count(),
            inline_bytes: recipe.inline_bytes(),
            created: now(),
        };
        let committed = self.commit_put(
            expected,
            &record,
            recipe.finish(),
            &new_locs,
            &distinct,
            &mut writers,
        );
        match committed {
            Ok(existed) => {
                writers.release();
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

    /// Receives batches from the chunker: builds the recipe, finds new chunks, compresses them
    /// into frames in parallel and appends them.
    #[allow(clippy::type_complexity)]
    fn consume(
        &self,
        digest: &Digest,
        rx: mpsc::Receiver<Batch>,
    ) -> std::result::Result<
        (
            Writers<'_>,
            RecipeBuilder,
            Vec<(ChunkId, ChunkLoc)>,
            HashSet<ChunkId>,
            (u64, u64, u64),
        ),
        (Writers<'_>, Error),
    > {
        let mut writers = Writers {
            store: self,
            current: None,
            done: Vec::new(),
        };
        let mut recipe = RecipeBuilder::default();
        let mut new_ids = HashSet::new();
        let mut distinct = HashSet::new();
        let mut pending: Vec<Chunk> = Vec::new();
        let mut pending_bytes = 0usize;
        let mut new_locs = Vec::new();
        let mut stats = (0u64, 0u64, 0u64);
        let frame_size = self.inner.opts.frame_size;
        let flush_at = frame_size * rayon::current_num_threads().max(1);
        let run = |writers: &mut Writers<'_>,
                   pending: &mut Vec<Chunk>,
                   new_locs: &mut Vec<(ChunkId, ChunkLoc)>,
                   stats: &mut (u64, u64, u64)|
         -> Result<()> {
            let frames = self.compress_frames(pending)?;
            pending.clear();
            for f in &frames {
                stats.2 += f.len() as u64;
                new_locs.extend(writers.append(f)?);
            }
            Ok(())
        };
        for batch in rx {
            let batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    return Err((
                        writers,
                        Error::Chunker {
                            digest: digest.clone(),
                            source: e,
                        },
                    ));
                }
            };
            let rtx = match self.inner.index.read() {
                Ok(t) => t,
                Err(e) => return Err((writers, e)),
            };
            for piece in batch {
                match piece {
                    Piece::Inline(bytes) => recipe.inline(&bytes),
                    Piece::Chunk(chunk) => {
                        recipe.chunk(&chunk.id, chunk.data.len() as u32);
                        distinct.insert(chunk.id);
                        if new_ids.contains(&chunk.id) {
                            continue;
                        }
                        match rtx.chunk(&chunk.id) {
                            Ok(Some(_)) => continue,
                            Ok(None) => {}
                            Err(e) => return Err((writers, e)),
                        }
                        new_ids.insert(chunk.id);
                        stats.0 += 1;
                        stats.1 += chunk.data.len() as u64;
                        pending_bytes += chunk.data.len();
                        pending.push(chunk);
                    }
                }
            }
            drop(rtx);
            if pending_bytes >= flush_at {
                if let Err(e) = run(&mut writers, &mut pending, &mut new_locs, &mut stats) {
                    return Err((writers, e));
                }
                pending_bytes = 0;
            }
        }
        if !pending.is_empty() {
            if let Err(e) = run(&mut writers, &mut pending, &mut new_locs, &mut stats) {
                return Err((writers, e));
            }
        }
        Ok((writers, recipe, new_locs, distinct, stats))
    }

    /// Groups chunks into frames of about `frame_size` raw bytes and compresses them in parallel.
    fn compress_frames(&self, chunks: &[Chunk]) -> Result<Vec<CompressedFrame>> {
        let frame_size = self.inner.opts.frame_size;
        let mut groups: Vec<&[Chunk]> = Vec::new();
        let mut start = 0;
        let mut acc = 0;
        for (i, c) in chunks.iter().enumerate() {
            acc += c.data.len();
            if acc >= frame_size {
                groups.push(&chunks[start..=i]);
                start = i + 1;
                acc = 0;
            }
        }
        if start < chunks.len() {
            groups.push(&chunks[start..]);
        }
        let level = self.inner.opts.zstd_level;
        groups
            .into_par_iter()
            .map(|g| {
                let refs: Vec<(ChunkId, &[u8])> =
                    g.iter().map(|c| (c.id, c.data.as_slice())).collect();
                CompressedFrame::compress(&refs, level).map_err(|e| Error::Io {
                    op: "compressing frame for",
                    path: self.inner.packs_dir.clone(),
                    source: e,
                })
            })
            .collect()
    }

    /// One index transaction: new chunk locations, reference counts, the blob and its recipe,
    /// pack lengths. Returns whether the blob turned out to exist already (a concurrent put).
    fn commit_put(
        &self,
        digest: &Digest,
        record: &BlobRecord,
        segments: Vec<(u64, Vec<u8>)>,
        new_locs: &[(ChunkId, ChunkLoc)],
        distinct: &HashSet<ChunkId>,
        writers: &mut Writers<'_>,
    ) -> Result<bool> {
        let mut tx = self.inner.index.write()?;
        for (id, loc) in new_locs {
            if tx.chunk(id)?.is_none() {
                tx.put_chunk(id, &ChunkRecord { loc: *loc, refs: 0 })?;
            }
        }
        let existed = tx.blob(digest)?.is_some();
        if !existed {
            for id in distinct {
                let Some(mut rec) = tx.chunk(id)? else {
                    return Err(Error::ChunkMissing {
                        digest: digest.clone(),
                        chunk: id.to_hex(),
                    });
                };
                rec.refs = rec.refs.saturating_add(1);
                tx.put_chunk(id, &rec)?;
            }
            tx.put_blob(digest, record, &segments)?;
        }
        let mut max_id = 0;
        for (w, _) in writers.all() {
            max_id = max_id.max(w.id().0);
            tx.put_pack(
                w.id(),
                &PackRecord {
                    len: w.len(),
                    sealed: false,
                },
            )?;
        }
        let next = tx
            .next_pack_id()?
            .max(max_id + 1)
            .max(self.inner.next_pack_id());
        tx.set_next_pack_id(next)?;
        tx.commit()?;
        Ok(existed)
    }

    /// Marks a pack sealed in the index once its seal record is durable.
    pub(crate) fn record_sealed(&self, id: crate::PackId, len: u64) -> Result<()> {
        let mut tx = self.inner.index.write()?;
        tx.put_pack(id, &PackRecord { len, sealed: true })?;
        tx.commit()
    }

    /// The content of a blob that is already stored: hash it to check the caller's promise.
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
    fn source_error(&self, digest: &Digest, e: Error) -> Error {
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
