//! Putting a gzip blob as chunks of its decompressed payload plus a script that rebuilds it.
//!
//! Three threads, all streaming, memory bounded by a few channel slots of a few MiB:
//! - the producer reads the compressed input once, hashes it (the digest is over the
//!   compressed bytes), spools it to a temporary file under `<root>/tmp/`, and feeds it to the
//!   `airlock_regzip` splitter chosen from its first [`DETECT_BYTES`] (goflate for a stream a Go
//!   program wrote, preflate-rs for the others), which sends decompressed payload down a pipe
//!   and raw member headers and trailers and deflate steps to the consumer;
//! - the chunker cuts the payload from the pipe, tar-aware, and sends batches to the consumer;
//! - the consumer (the calling thread) builds the content recipe and the script, and
//!   compresses and appends new chunks (reconstruction data of 4 KiB or more is a chunk too).
//!
//! Verification is incremental (the splitter's verifier thread, a fourth, rebuilds every step
//! from the payload and reconstruction data it emitted, in parallel with the split, and
//! compares with the input bytes the step consumed; raw bytes are copied from the input), so a
//! split that reaches the end rebuilds exactly the bytes that were hashed; the put also checks
//! that the script's output adds up to the blob's size and its payload to the content recipe's
//! before committing.
//!
//! When the split stops (an encoder neither kind of splitter predicts, a mismatch, a damaged
//! member, a decompression bomb, a panic inside the splitter), the input has been consumed
//! already: the producer keeps reading and spooling, the consumer stops storing, the put rolls
//! back the packs it appended and stores the spooled compressed bytes as a plain blob,
//! recording why. The spool file is removed when the put ends, unless the cache policy keeps
//! the blob's bytes: then, the put committed, it becomes the blob's cache file (synced and
//! renamed; the bytes are written once, never rebuilt); files left by a crash are removed at
//! the next read-write open.

use std::{
    fs::{self, File},
    io::{self, Read, Seek, Write},
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
};

use airlock_chunker::{Chunker, Mode};
use airlock_regzip::{DETECT_BYTES, Event, Limits, PREFLATE_VERSION, Splitter, choose_splitter};

use crate::{
    Digest, Error, PutOptions, PutOutcome, Result, Store,
    digest::HashingReader,
    index::{BlobRecord, RecipeKind},
    layer::{Encoding, OpaqueReason},
    put::{Msg, Writers, cut_layout, send_batches, thread_panicked},
    store::now,
};

/// The store's directory for spool files.
pub(crate) const TMP_DIR: &str = "tmp";

/// Bytes read from the input at a time.
const READ_BYTES: usize = 1024 * 1024;

static SPOOL_SEQ: AtomicU64 = AtomicU64::new(0);

/// A temporary file under the store root, removed when dropped.
struct Spool {
    path: PathBuf,
    file: File,
}

impl Spool {
    fn create(store: &Store) -> Result<Spool> {
        let dir = store.inner.root.join(TMP_DIR);
        fs::create_dir_all(&dir).map_err(Error::io("creating directory", &dir))?;
        let seq = SPOOL_SEQ.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("put-{}-{seq}", std::process::id()));
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(Error::io("creating spool file", &path))?;
        Ok(Spool { path, file })
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// The read end of the payload pipe.
struct Pipe {
    rx: mpsc::Receiver<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for Pipe {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.buf.len() {
            match self.rx.recv() {
                Ok(b) => {
                    self.buf = b;
                    self.pos = 0;
                }
                // The producer closed the pipe: the payload ends here.
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Store {
    /// Stores a gzip blob; see the module documentation. The caller holds the GC lock.
    pub(crate) fn put_gzip<R: Read + Send>(
        &self,
        expected: &Digest,
        src: R,
        opts: PutOptions,
    ) -> Result<PutOutcome> {
        let mut spool = Spool::create(self)?;
        let limits = Limits {
            max_plain: self.inner.opts.max_decompressed_size,
            max_ratio: self.inner.opts.max_decompressed_ratio,
        };
        let params = self.inner.chunker;
        let (tx, rx) = mpsc::sync_channel::<Msg>(4);
        let (ptx, prx) = mpsc::sync_channel::<Vec<u8>>(1);
        let mut writers = Writers::new(self);
        let spool_file = &mut spool.file;
        let spool_path = &spool.path;
        let (consumed, produced, layout) = std::thread::scope(|s| {
            let chunk_tx = tx.clone();
            let chunker = s.spawn(move || {
                let pipe = Pipe {
                    rx: prx,
                    buf: Vec::new(),
                    pos: 0,
                };
                let mut chunker = Chunker::new(pipe, params, Mode::Auto);
                send_batches(&mut chunker, &chunk_tx);
                chunker.layout()
            });
            let producer =
                s.spawn(move || produce(expected, src, (spool_file, spool_path), limits, ptx, tx));
            let consumed = self.consume(expected, rx, &mut writers);
            (consumed, producer.join(), chunker.join())
        });
        let (Ok(produced), Ok(layout)) = (produced, layout) else {
            writers.rollback();
            return Err(thread_panicked(self, "splitting gzip"));
        };
        let (actual, size) = match produced {
            Ok(p) => p,
            Err(e) => {
                writers.rollback();
                return Err(self.source_error(expected, e));
            }
        };
        let consumed = match consumed {
            Ok(c) => c,
            Err(e) => {
                writers.rollback();
                return Err(self.source_error(expected, e));
            }
        };
        // A damaged script must never be committed: check that it adds up.
        let opaque = consumed.opaque.or_else(|| {
            let adds_up = consumed.script.out_len() == size
                && consumed.script.plain_len() == consumed.recipe.len();
            (!adds_up).then_some(OpaqueReason::RebuildMismatch)
        });
        if let Some(reason) = opaque {
            if actual != *expected {
                writers.rollback();
                return Err(Error::DigestMismatch {
                    expected: expected.clone(),
                    actual,
                });
            }
            writers.rollback();
            if reason == OpaqueReason::DecompressionLimit {
                // Bad input, not a layer to keep: refuse it and store nothing.
                return Err(Error::DecompressionLimit {
                    digest: expected.clone(),
                    max_ratio: limits.max_ratio,
                    max_size: limits.max_plain,
                });
            }
            tracing::info!(digest = %expected, "keeping gzip blob as compressed bytes: {reason}");
            spool
                .file
                .rewind()
                .map_err(Error::io("rewinding spool file", &spool.path))?;
            let src = io::BufReader::with_capacity(READ_BYTES, &spool.file);
            return self.put_plain(expected, src, opts, Encoding::Gzip, Some(reason));
        }
        self.check_received(expected, &opts, actual, size, &mut writers)?;
        let record = BlobRecord {
            size,
            kind: RecipeKind::Deflate {
                plain_size: consumed.recipe.len(),
            },
            layout: cut_layout(layout),
            encoding: Encoding::Gzip,
            opaque: None,
            script_bytes: consumed.script.overhead(),
            chunks: consumed.recipe.chunk_count(),
            inline_bytes: consumed.recipe.inline_bytes(),
            created: now(),
            touched: 0,
            preflate: Some(PREFLATE_VERSION.to_owned()),
        };
        let outcome = self.finish_put(expected, record, consumed, writers)?;
        if self.inner.cache.fills_at_store(size) {
            // The spool holds the exact bytes, their digest checked: a rename caches them.
            self.inner.cache.adopt(expected, &spool.path, &spool.file);
        }
        Ok(outcome)
    }
}

/// The producer: reads, hashes, spools and splits the input; returns its digest and size.
fn produce<R: Read>(
    expected: &Digest,
    src: R,
    (spool, spool_path): (&mut File, &PathBuf),
    limits: Limits,
    ptx: mpsc::SyncSender<Vec<u8>>,
    tx: mpsc::SyncSender<Msg>,
) -> Result<(Digest, u64)> {
    let mut h = HashingReader::new(src, expected.algorithm());
    let mut splitter: Option<Box<dyn Splitter>> = None;
    let mut head = Some(Vec::new());
    let mut ptx = Some(ptx);
    let mut buf = vec![0u8; READ_BYTES];
    let mut stopped = false;
    loop {
        let n = match h.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Error::Source {
                    digest: expected.clone(),
                    offset: h.bytes_read(),
                    source: e,
                });
            }
        };
        spool
            .write_all(&buf[..n])
            .map_err(Error::io("writing spool file", spool_path))?;
        let mut data = &buf[..n];
        let held;
        if let Some(hd) = head.as_mut() {
            hd.extend_from_slice(data);
            if hd.len() < DETECT_BYTES {
                continue;
            }
            held = head.take().unwrap_or_default();
            splitter = Some(choose_splitter(&held, false, limits));
            data = &held;
        }
        if let Some(sp) = splitter.as_mut() {
            let fed = sp.feed(data, &mut |e| forward(e, ptx.as_ref(), &tx));
            if let Err(e) = fed {
                stopped |= e == airlock_regzip::Error::Stopped;
                give_up(&e, &mut splitter, &mut ptx, &tx);
            }
        }
        if stopped {
            // The consumer failed; its error is the put's.
            break;
        }
    }
    if let Some(held) = head.take() {
        // A stream shorter than the detection window: decide on all of it.
        let mut sp = choose_splitter(&held, true, limits);
        match sp.feed(&held, &mut |e| forward(e, ptx.as_ref(), &tx)) {
            Ok(()) => splitter = Some(sp),
            Err(e) => give_up(&e, &mut splitter, &mut ptx, &tx),
        }
    }
    if let Some(sp) = splitter.as_mut() {
        let finished = sp.finish(&mut |e| forward(e, ptx.as_ref(), &tx));
        if let Err(e) = finished {
            give_up(&e, &mut splitter, &mut ptx, &tx);
        }
    }
    Ok(h.finish())
}

/// Stops splitting: the payload pipe closes and the consumer learns why (unless it stopped
/// the split itself).
fn give_up(
    e: &airlock_regzip::Error,
    splitter: &mut Option<Box<dyn Splitter>>,
    ptx: &mut Option<mpsc::SyncSender<Vec<u8>>>,
    tx: &mpsc::SyncSender<Msg>,
) {
    *splitter = None;
    *ptx = None;
    if let Some(reason) = OpaqueReason::of_split(e) {
        let _ = tx.send(Msg::Opaque(reason));
    }
}

fn forward(
    e: Event<'_>,
    ptx: Option<&mpsc::SyncSender<Vec<u8>>>,
    tx: &mpsc::SyncSender<Msg>,
) -> bool {
    match e {
        Event::Raw(b) => tx.send(Msg::Raw(b.to_vec())).is_ok(),
        Event::Checkpoint(state) => tx.send(Msg::Checkpoint(state)).is_ok(),
        Event::Plain(p) => ptx.is_some_and(|ptx| ptx.send(p).is_ok()),
        Event::Step { plain, out, data } => tx
            .send(Msg::Step {
                plain,
                out,
                corrections: data,
            })
            .is_ok(),
    }
}
