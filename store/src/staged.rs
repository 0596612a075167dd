//! Staged blobs (issue 14): a pushed blob is acknowledged once its bytes and digest are durable;
//! cutting it into chunks (the slow part for a gzip layer) is left to the ingest (`ingest`).
//!
//! ```text
//! DATA/staged/<algorithm>-<hex>   the exact bytes of a staged blob
//! DATA/staged/.tmp-<pid>-<seq>    a blob being received (removed at each read-write open)
//! ```
//!
//! Staging a file: hash it (the digest and size are checked before anything else), sync it,
//! rename it into `staged/`, sync the directory, then commit the blob's `staged` record with the
//! caller's repository changes (the push's link) in one transaction. A crash before the commit
//! leaves a file no record names, removed at the next read-write open; after it, a durable
//! staged blob. A blob stored already (a re-push) or staged already is only linked; one of at
//! most [`DIRECT_PUT_MAX_BYTES`] is put as chunks at once (staging would cost as much).
//!
//! A staged blob is a blob for every caller: [`Store::open_blob_range`] serves it from its file
//! (a whole read is hashed on the way and fails rather than end with bytes that do not match),
//! links and manifest references accept it, GC keeps and collects it by the same rules as any
//! blob, `verify` hashes its file and `du` counts it apart. The first blob staged in a store of
//! format 2 raises its `store.json` to format 3: an airlock that knows nothing of staged blobs
//! must not open a store that holds some.
//!
//! A gzip blob whose trailer declares more decompressed bytes than the `[layers]` limits allow
//! is refused here, as a direct put refuses it; a stream whose trailer understates its size is
//! caught by the ingest and kept as its compressed bytes (it has been acknowledged).

use std::{
    fs::{self, File},
    io::{self, BufReader, Read, Seek, SeekFrom, Write},
    ops::Range,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

mod checks;

pub(crate) use self::checks::{for_each_staged, staged_usage, sweep_staged};
use crate::{
    Digest, Error, Hasher, PutOptions, RepoChange, Result, Store,
    index::StagedRecord,
    layer::{Encoding, SNIFF_BYTES},
    pack::sync_dir,
    read::BlobReader,
    repo::apply_changes_in,
    store::{STAGED_FORMAT_VERSION, now, write_format},
};

/// The store's directory of staged blobs.
pub(crate) const STAGED_DIR: &str = "staged";

/// Name prefix of blobs being received.
const TMP_PREFIX: &str = ".tmp-";

/// Blobs up to this size are put as chunks at once instead of staged: their put costs about
/// what staging does (configs, small layers).
pub const DIRECT_PUT_MAX_BYTES: u64 = 16 * 1024;

/// Bytes read at a time when hashing or copying.
const READ_BYTES: usize = 1024 * 1024;

/// The compressed bytes a ratio limit counts at least, as `airlock_regzip::Limits` does.
const RATIO_FLOOR_BYTES: u64 = 1024 * 1024;

/// Length of a gzip trailer (CRC-32, then ISIZE: the member's size modulo 2^32).
const GZIP_TRAILER_BYTES: u64 = 8;

static SPOOL_SEQ: AtomicU64 = AtomicU64::new(0);

/// What staging a blob did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Staged {
    /// Its bytes moved into `staged/`: the blob awaits ingest.
    Staged,
    /// It was staged already; these bytes were not needed.
    WasStaged,
    /// It was stored as chunks already (a re-push); these bytes were not needed.
    WasStored,
    /// Small enough to be put as chunks at once.
    Put,
}

/// A staged blob: received and durable, not yet cut into chunks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StagedBlob {
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Unix seconds when it was staged.
    pub created: u64,
}

/// The file of a staged blob.
pub(crate) fn staged_path(root: &Path, digest: &Digest) -> PathBuf {
    root.join(STAGED_DIR)
        .join(format!("{}-{}", digest.algorithm().name(), digest.hex()))
}

/// The digest a file of `staged/` is named after, if it is named after one.
fn digest_of_name(name: &str) -> Option<Digest> {
    let (algorithm, hex) = name.split_once('-')?;
    format!("{algorithm}:{hex}").parse().ok()
}

/// A stored blob's record or a reader over a staged one, from one snapshot of the index.
pub(crate) enum Found {
    Stored(crate::index::BlobRecord),
    Staged(Box<BlobReader>),
}

impl Store {
    /// Stages the file at `path` as blob `digest` (see the module documentation) and applies
    /// `changes` in the same transaction. On [`Staged::Staged`] the file has moved into the
    /// store; otherwise it is left where it is, for the caller to remove, and so it is on any
    /// error (nothing changed then). The file must be on the store's filesystem and no longer
    /// written to.
    pub fn stage_file(
        &self,
        digest: &Digest,
        path: &Path,
        opts: PutOptions,
        changes: &[RepoChange],
    ) -> Result<Staged> {
        self.check_writable()?;
        let file = File::open(path).map_err(Error::io("opening", path))?;
        let size = hash_checked(
            digest,
            BufReader::with_capacity(READ_BYTES, file),
            &opts,
            None,
        )?;
        self.stage_checked(digest, path, size, changes)
    }

    /// Stages the content read from `src` as blob `digest`: it is written to `staged/` and
    /// hashed on the way, then staged as [`Store::stage_file`] stages a file. A digest or size
    /// that does not match stores nothing.
    pub fn stage_blob<R: Read>(
        &self,
        digest: &Digest,
        src: R,
        opts: PutOptions,
        changes: &[RepoChange],
    ) -> Result<Staged> {
        self.check_writable()?;
        let dir = self.staged_dir()?;
        let seq = SPOOL_SEQ.fetch_add(1, Ordering::Relaxed);
        let spool = Spool(dir.join(format!("{TMP_PREFIX}{}-{seq}", std::process::id())));
        let file = File::create_new(&spool.0).map_err(Error::io("creating", &spool.0))?;
        let mut out = io::BufWriter::with_capacity(READ_BYTES, file);
        let size = hash_checked(digest, src, &opts, Some((&mut out, &spool.0)))?;
        out.flush().map_err(Error::io("writing", &spool.0))?;
        self.stage_checked(digest, &spool.0, size, changes)
    }

    /// Every staged blob, oldest first.
    pub fn staged_blobs(&self) -> Result<Vec<StagedBlob>> {
        let rtx = self.inner.index.read()?;
        let mut out = Vec::new();
        for_each_staged(&rtx, |digest, rec| {
            out.push(StagedBlob {
                digest: digest.clone(),
                size: rec.size,
                created: rec.created,
            });
            Ok(())
        })?;
        out.sort_by(|a, b| (a.created, &a.digest).cmp(&(b.created, &b.digest)));
        Ok(out)
    }

    /// Stages a file whose digest and size were checked.
    fn stage_checked(
        &self,
        digest: &Digest,
        path: &Path,
        size: u64,
        changes: &[RepoChange],
    ) -> Result<Staged> {
        let gc = self.inner.gc_lock.read().unwrap_or_else(|p| p.into_inner());
        // Held to the commit: no other staging of the digest renames a file meanwhile.
        let staging = self
            .inner
            .stage_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let (stored, staged) = {
            let rtx = self.inner.index.read()?;
            (rtx.blob(digest)?.is_some(), rtx.staged(digest)?.is_some())
        };
        let now = now();
        if stored || staged {
            let mut tx = self.inner.index.write()?;
            tx.touch_blob(digest, now)?;
            apply_changes_in(&mut tx, changes, now)?;
            tx.commit()?;
            return Ok(if stored {
                Staged::WasStored
            } else {
                Staged::WasStaged
            });
        }
        if size <= DIRECT_PUT_MAX_BYTES {
            drop((staging, gc));
            let file = File::open(path).map_err(Error::io("opening", path))?;
            let opts = PutOptions {
                max_size: None,
                expected_size: Some(size),
            };
            self.put_blob(digest, BufReader::new(file), opts)?;
            self.apply_repo_changes(changes)?;
            return Ok(Staged::Put);
        }
        let encoding = self.sniff_staged(digest, path, size)?;
        File::open(path)
            .and_then(|f| f.sync_all())
            .map_err(Error::io("syncing", path))?;
        self.raise_format(STAGED_FORMAT_VERSION)?;
        let dir = self.staged_dir()?;
        let dest = staged_path(&self.inner.root, digest);
        fs::rename(path, &dest).map_err(Error::io("moving into staged/", path))?;
        let committed = sync_dir(&dir).and_then(|()| {
            let mut tx = self.inner.index.write()?;
            let rec = StagedRecord {
                size,
                encoding,
                created: now,
                touched: 0,
            };
            tx.put_staged(digest, &rec)?;
            apply_changes_in(&mut tx, changes, now)?;
            tx.commit()
        });
        if let Err(e) = committed {
            // Nothing was acknowledged: hand the file back as it was.
            if fs::rename(&dest, path).is_err() {
                let _ = fs::remove_file(&dest);
            }
            return Err(e);
        }
        drop((staging, gc));
        self.inner.ingest.wake();
        Ok(Staged::Staged)
    }

    /// `staged/`, created (and made durable) if needed.
    fn staged_dir(&self) -> Result<PathBuf> {
        let dir = self.inner.root.join(STAGED_DIR);
        if !dir.is_dir() {
            fs::create_dir_all(&dir).map_err(Error::io("creating directory", &dir))?;
            sync_dir(&self.inner.root)?;
        }
        Ok(dir)
    }

    /// Raises `store.json` to format `version` (3: staged blobs, 4: application events)
    /// unless it says that one or a newer one already.
    pub(crate) fn raise_format(&self, version: u32) -> Result<()> {
        let _raise = self
            .inner
            .format_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if self.inner.format_version.load(Ordering::Acquire) >= version {
            return Ok(());
        }
        let mut format = self.inner.format.clone();
        format.version = version;
        write_format(&self.inner.root, &format)?;
        self.inner.format_version.store(version, Ordering::Release);
        Ok(())
    }

    /// The encoding of a file to stage. A gzip blob whose last member's trailer declares more
    /// decompressed bytes than the decompression limits allow (an ordinary decompression bomb)
    /// is refused, as a put would refuse it.
    fn sniff_staged(&self, digest: &Digest, path: &Path, size: u64) -> Result<Encoding> {
        let mut file = File::open(path).map_err(Error::io("opening", path))?;
        let mut head = [0u8; SNIFF_BYTES];
        let mut tail = [0u8; 4];
        let read = file
            .read_exact(&mut head)
            .and_then(|()| file.seek(SeekFrom::Start(size - 4)))
            .and_then(|_| file.read_exact(&mut tail));
        read.map_err(Error::io("reading", path))?;
        let encoding = Encoding::sniff(&head);
        if encoding != Encoding::Gzip || size < GZIP_TRAILER_BYTES {
            return Ok(encoding);
        }
        let declared = u64::from(u32::from_le_bytes(tail));
        let opts = &self.inner.opts;
        let ratio = u64::from(opts.max_decompressed_ratio);
        let ratio_base = size.max(RATIO_FLOOR_BYTES);
        if declared > opts.max_decompressed_size || declared > ratio_base.saturating_mul(ratio) {
            return Err(Error::DecompressionLimit {
                digest: digest.clone(),
                max_ratio: opts.max_decompressed_ratio,
                max_size: opts.max_decompressed_size,
            });
        }
        Ok(encoding)
    }

    /// The record of a stored blob, or a reader over `range` of a staged one. A blob the
    /// ingest moves between the lookup and the opening of its file is looked up again.
    pub(crate) fn find_blob(&self, digest: &Digest, range: &Range<u64>) -> Result<Found> {
        let path = staged_path(&self.inner.root, digest);
        for _ in 0..2 {
            let rtx = self.inner.index.read()?;
            if let Some(rec) = rtx.blob(digest)? {
                return Ok(Found::Stored(rec));
            }
            let Some(rec) = rtx.staged(digest)? else {
                return Err(Error::BlobNotFound {
                    digest: digest.clone(),
                });
            };
            drop(rtx);
            if range.start > range.end || range.end > rec.size {
                return Err(Error::RangeNotSatisfiable {
                    digest: digest.clone(),
                    start: range.start,
                    end: range.end,
                    size: rec.size,
                });
            }
            match File::open(&path) {
                Ok(file) => {
                    let whole = *range == (0..rec.size);
                    let reader = StagedReader::new(file, digest, &path, range, whole)?;
                    return Ok(Found::Staged(Box::new(BlobReader::staged(
                        digest, range, rec.size, reader,
                    ))));
                }
                // Ingested or collected since the lookup: look again.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("opening", &path)(e)),
            }
        }
        Err(Error::StagedDamaged {
            digest: digest.clone(),
            path,
            what: "its file is missing".into(),
        })
    }

    /// Size of a stored or staged blob.
    pub(crate) fn blob_size(&self, digest: &Digest) -> Result<u64> {
        let rtx = self.inner.index.read()?;
        if let Some(rec) = rtx.blob(digest)? {
            return Ok(rec.size);
        }
        match rtx.staged(digest)? {
            Some(rec) => Ok(rec.size),
            None => Err(Error::BlobNotFound {
                digest: digest.clone(),
            }),
        }
    }
}

/// Reads `src` to its end, checking it against `digest` and `opts` (writing it to `copy` on
/// the way, synced at the end), and returns its size.
fn hash_checked<R: Read>(
    digest: &Digest,
    mut src: R,
    opts: &PutOptions,
    mut copy: Option<(&mut io::BufWriter<File>, &Path)>,
) -> Result<u64> {
    let limit = match (opts.max_size, opts.expected_size) {
        (Some(m), Some(e)) => m.min(e),
        (m, e) => m.or(e).unwrap_or(u64::MAX),
    };
    let mut hasher = Hasher::new(digest.algorithm());
    let mut buf = vec![0u8; READ_BYTES];
    let mut size = 0u64;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(Error::Source {
                    digest: digest.clone(),
                    offset: size,
                    source,
                });
            }
        };
        size += n as u64;
        if size > limit {
            return Err(match opts.expected_size {
                Some(expected) if expected == limit => Error::SizeMismatch {
                    digest: digest.clone(),
                    expected,
                    actual: size,
                },
                _ => Error::TooLarge {
                    digest: digest.clone(),
                },
            });
        }
        hasher.update(&buf[..n]);
        if let Some((out, path)) = copy.as_mut() {
            out.write_all(&buf[..n])
                .map_err(Error::io("writing", *path))?;
        }
    }
    let actual = hasher.finish();
    if actual != *digest {
        return Err(Error::DigestMismatch {
            expected: digest.clone(),
            actual,
        });
    }
    if let Some(expected) = opts.expected_size.filter(|&e| e != size) {
        return Err(Error::SizeMismatch {
            digest: digest.clone(),
            expected,
            actual: size,
        });
    }
    Ok(size)
}

/// A file under `staged/` being received, removed unless it moved.
struct Spool(PathBuf);

impl Drop for Spool {
    fn drop(&mut self) {
        // Moved into place, the name is gone and this fails harmlessly.
        let _ = fs::remove_file(&self.0);
    }
}

/// Reads a range of a staged blob's file; a read of the whole blob is hashed, and its last
/// bytes are withheld, as an error, if the file no longer matches the digest.
#[derive(Debug)]
pub(crate) struct StagedReader {
    file: File,
    digest: Digest,
    path: PathBuf,
    /// Bytes of the range not yet read.
    left: u64,
    hasher: Option<Hasher>,
}

impl StagedReader {
    fn new(
        mut file: File,
        digest: &Digest,
        path: &Path,
        range: &Range<u64>,
        whole: bool,
    ) -> Result<StagedReader> {
        file.seek(SeekFrom::Start(range.start))
            .map_err(Error::io("reading", path))?;
        Ok(StagedReader {
            file,
            digest: digest.clone(),
            path: path.to_owned(),
            left: range.end - range.start,
            hasher: whole.then(|| Hasher::new(digest.algorithm())),
        })
    }
}

impl Read for StagedReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let max = out
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.file.read(&mut out[..max]).map_err(|e| {
            io::Error::other(Error::Io {
                op: "reading staged blob",
                path: self.path.clone(),
                source: e,
            })
        })?;
        self.left -= n as u64;
        if let Some(h) = self.hasher.as_mut() {
            h.update(&out[..n]);
        }
        if self.left == 0
            && let Some(h) = self.hasher.take()
        {
            let actual = h.finish();
            if actual != self.digest {
                return Err(io::Error::other(Error::StagedDamaged {
                    digest: self.digest.clone(),
                    path: self.path.clone(),
                    what: format!("its file hashes to {actual}"),
                }));
            }
        }
        Ok(n)
    }
}
