//! A bounded on-disk cache of materialized blobs: gzip layers rebuilt once, then served from a
//! plain file.
//!
//! `<root>/cache/<algorithm>-<hex>` holds a blob's exact bytes. A file is written under a
//! temporary name (`.tmp-<pid>-<n>`) and published (fsync, rename, directory sync) only when
//! the digest of what was written matched. The store's [`Materialize`] policy says when files
//! are written: as a blob is stored (the rebuild that checks a described blob's digest at
//! import writes the file in the same pass; a gzip put renames its spool file, which holds the
//! exact bytes already), and at the first read of a blob not cached (`inflight` shares that
//! rebuild among concurrent reads). Only `Deflate` blobs are cached: every other blob is read
//! from its chunks as fast as from a file.
//!
//! Files found at open are re-hashed on their first use in this process (one hash per file,
//! however many readers ask) and dropped if they do not match; `verify` re-hashes them all.
//! Eviction is least recently used (a use sets the file's modification time) down to
//! `StoreOptions::blob_cache_size`. The cache is never a source of truth: losing it, or a fill
//! failing, costs CPU only. A read-only store reads and fills it too (read-only is about the
//! store's content); on read-only media fills fail and reads rebuild.

use std::{
    collections::HashSet,
    fs::{self, File},
    io,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use crate::{Access, Digest, Error, Hasher, Result, pack::sync_dir};

const CACHE_DIR: &str = "cache";
const TMP_PREFIX: &str = ".tmp-";
/// After a fill fails (a full disk, read-only media), no fill is tried for this long.
const FILL_PAUSE: Duration = Duration::from_secs(60);
/// Bytes hashed at a time when checking a file.
const HASH_BYTES: usize = 1024 * 1024;
/// Locks that keep two readers from hashing one file at once (a digest picks one by its hex).
const GATES: usize = 16;

static FILL_SEQ: AtomicU64 = AtomicU64::new(0);

/// When the blob cache is filled with rebuilt gzip blobs (`cache.materialize`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Materialize {
    /// When a blob is stored (bundle import, push, add): the pass that checks its digest
    /// writes the file. A read of a blob not cached (evicted, or stored before) fills it too.
    #[default]
    Import,
    /// At the first read of each blob.
    Pull,
    /// Never: no cache files are read or written; every read of a gzip layer rebuilds it.
    Never,
}

/// What the blob cache of an open store did since it was opened (a process's counters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    /// Whole-blob rebuilds started to fill the cache: one per blob at a time, however many
    /// readers want it.
    pub materializations: u64,
    /// Reads that followed a materialization (the one that started it included).
    pub followers: u64,
    /// Reads of a rebuilt blob that rebuilt on their own: the cache could not hold the blob
    /// (too large, policy `never`), or a range started far ahead of its materialization.
    pub direct_rebuilds: u64,
    /// Reads served from a cache file.
    pub hits: u64,
    /// Cache files written as blobs were stored (policy `import`).
    pub filled_at_store: u64,
    /// Materializations that failed (their followers got an error).
    pub failures: u64,
    /// Time spent by materializations that ended (failed ones included), from the start of
    /// their rebuild to its end.
    pub materialize_time: Duration,
    /// Time spent inside the reads of direct rebuilds (`direct_rebuilds`), summed over the
    /// readers: what rebuilding cost the pulls that could not use the cache.
    pub direct_rebuild_time: Duration,
}

#[derive(Debug, Default)]
struct Counters {
    materializations: AtomicU64,
    followers: AtomicU64,
    direct_rebuilds: AtomicU64,
    hits: AtomicU64,
    filled_at_store: AtomicU64,
    failures: AtomicU64,
    materialize_nanos: AtomicU64,
    direct_rebuild_nanos: AtomicU64,
}

fn add_nanos(counter: &AtomicU64, spent: Duration) {
    let nanos = u64::try_from(spent.as_nanos()).unwrap_or(u64::MAX);
    counter.fetch_add(nanos, Ordering::Relaxed);
}

/// A cache file `verify` removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheDrop {
    /// The file.
    pub path: PathBuf,
    /// Why: what its bytes hash to, or that no stored blob has its digest.
    pub why: String,
}

impl std::fmt::Display for CacheDrop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cache file {} dropped: {}",
            self.path.display(),
            self.why
        )
    }
}

/// What `verify` found in the blob cache.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheCheck {
    /// Cache files checked.
    pub files: u64,
    /// Their bytes, hashed.
    pub bytes: u64,
    /// Files removed: they did not match their digest, or no stored blob has it.
    pub dropped: Vec<CacheDrop>,
}

/// The cache of one open store.
#[derive(Debug)]
pub(crate) struct BlobCache {
    dir: PathBuf,
    limit: u64,
    policy: Materialize,
    /// Digests whose cache file was checked (or written) by this process.
    verified: Mutex<HashSet<Digest>>,
    gates: [Mutex<()>; GATES],
    paused_until: Mutex<Option<Instant>>,
    counters: Counters,
}

impl BlobCache {
    /// The cache under `root`, holding at most `limit` bytes (0: none). Temporary files of a
    /// fill a crash interrupted are removed: all of them when the store is open for writing
    /// (no other process has it), those of processes no longer running when it is read-only.
    pub(crate) fn new(root: &Path, limit: u64, policy: Materialize, access: Access) -> BlobCache {
        let dir = root.join(CACHE_DIR);
        if let Ok(entries) = fs::read_dir(&dir) {
            for e in entries.flatten() {
                let name = e.file_name();
                let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(TMP_PREFIX)) else {
                    continue;
                };
                let owner_gone = rest
                    .split('-')
                    .next()
                    .is_none_or(|pid| !Path::new("/proc").join(pid).exists());
                if access == Access::ReadWrite || owner_gone {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        BlobCache {
            dir,
            limit,
            policy,
            verified: Mutex::new(HashSet::new()),
            gates: Default::default(),
            paused_until: Mutex::new(None),
            counters: Counters::default(),
        }
    }

    /// Whether reads use the cache at all.
    fn serves(&self) -> bool {
        self.limit > 0 && self.policy != Materialize::Never
    }

    /// Whether the cache takes a blob of `size` bytes (when read).
    pub(crate) fn holds(&self, size: u64) -> bool {
        self.serves() && size <= self.limit
    }

    /// Whether storing a blob of `size` bytes writes its cache file.
    pub(crate) fn fills_at_store(&self, size: u64) -> bool {
        self.policy == Materialize::Import && self.holds(size)
    }

    fn path(&self, digest: &Digest) -> PathBuf {
        self.dir
            .join(format!("{}-{}", digest.algorithm().name(), digest.hex()))
    }

    /// Whether a published file exists for `digest` (unchecked).
    pub(crate) fn contains(&self, digest: &Digest) -> bool {
        self.serves() && self.path(digest).exists()
    }

    /// The cached bytes of a blob, if present and sound (hashed on first use).
    pub(crate) fn open(&self, digest: &Digest) -> Option<File> {
        if !self.serves() {
            return None;
        }
        let path = self.path(digest);
        let file = File::open(&path).ok()?;
        if !self.is_verified(digest) {
            let gate = usize::from(digest.hex().as_bytes().first().copied().unwrap_or(0));
            let _one = lock(&self.gates[gate % GATES]);
            if !self.is_verified(digest) {
                let actual = hash_file(&file, digest).ok()?;
                if actual != *digest {
                    tracing::warn!(%digest, %actual, "dropping a cached blob that does not match its digest");
                    let _ = fs::remove_file(&path);
                    return None;
                }
                lock(&self.verified).insert(digest.clone());
            }
        }
        // Recently used: evicted last.
        if let Ok(f) = File::options().write(true).open(&path) {
            let _ = f.set_modified(SystemTime::now());
        }
        self.counters.hits.fetch_add(1, Ordering::Relaxed);
        Some(file)
    }

    fn is_verified(&self, digest: &Digest) -> bool {
        lock(&self.verified).contains(digest)
    }

    /// A new temporary file to fill with a blob's bytes; `None` when the cache is off or fills
    /// are paused after a failure.
    pub(crate) fn fill(&self, digest: &Digest) -> Option<CacheFill> {
        if !self.serves() || lock(&self.paused_until).is_some_and(|t| Instant::now() < t) {
            return None;
        }
        let seq = FILL_SEQ.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .dir
            .join(format!("{TMP_PREFIX}{}-{seq}", std::process::id()));
        let created = fs::create_dir_all(&self.dir).and_then(|()| {
            File::options()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&tmp)
        });
        match created {
            Ok(file) => Some(CacheFill {
                tmp: Some(tmp),
                file,
                written: 0,
            }),
            Err(e) => {
                tracing::debug!(%digest, "not caching: {e}");
                self.pause_fills(&e);
                None
            }
        }
    }

    /// Stops fills for a while after one failed (the disk is full, the media read-only).
    pub(crate) fn pause_fills(&self, e: &io::Error) {
        let mut until = lock(&self.paused_until);
        if until.is_none_or(|t| Instant::now() >= t) {
            tracing::warn!(
                "blob cache {}: {e}; not filling it for {}s (reads rebuild instead)",
                self.dir.display(),
                FILL_PAUSE.as_secs()
            );
        }
        *until = Some(Instant::now() + FILL_PAUSE);
    }

    /// Publishes a complete fill whose bytes hash to `actual`, if that is `digest`; then
    /// evicts down to the limit. Returns whether the file was kept.
    pub(crate) fn publish(&self, digest: &Digest, mut fill: CacheFill, actual: &Digest) -> bool {
        let Some(tmp) = fill.tmp.take() else {
            return false;
        };
        if actual != digest {
            let _ = fs::remove_file(&tmp);
            return false;
        }
        self.keep(digest, &tmp, &fill.file)
    }

    /// Makes `path`, a file holding exactly the bytes of blob `digest` (checked by the caller:
    /// a put's spool file, a staged blob the ingest just stored as chunks), the blob's cache
    /// file by renaming it, as recently used. Returns whether it was kept; if not, the file is
    /// the caller's to remove.
    pub(crate) fn adopt(&self, digest: &Digest, path: &Path, file: &File) -> bool {
        if fs::create_dir_all(&self.dir).is_err() {
            return false;
        }
        let kept = self.keep(digest, path, file);
        if kept {
            self.counters
                .filled_at_store
                .fetch_add(1, Ordering::Relaxed);
        }
        kept
    }

    /// fsync, rename, directory sync, then evict.
    fn keep(&self, digest: &Digest, tmp: &Path, file: &File) -> bool {
        let path = self.path(digest);
        let done = file
            .sync_all()
            .and_then(|()| fs::rename(tmp, &path))
            .map_err(|e| Error::Io {
                op: "publishing cache file",
                path: path.clone(),
                source: e,
            })
            .and_then(|()| sync_dir(&self.dir));
        if let Err(e) = done {
            tracing::warn!(%digest, "not caching: {e}");
            let _ = fs::remove_file(tmp);
            return false;
        }
        lock(&self.verified).insert(digest.clone());
        self.evict();
        true
    }

    /// Counts a cache file written as its blob was stored.
    pub(crate) fn count_filled_at_store(&self) {
        self.counters
            .filled_at_store
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_materialization(&self) {
        self.counters
            .materializations
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_follower(&self) {
        self.counters.followers.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_direct(&self) {
        self.counters
            .direct_rebuilds
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_failure(&self) {
        self.counters.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds the time a materialization took.
    pub(crate) fn count_materialize_time(&self, spent: Duration) {
        add_nanos(&self.counters.materialize_nanos, spent);
    }

    /// Adds time a direct rebuild's reads took.
    pub(crate) fn count_direct_time(&self, spent: Duration) {
        add_nanos(&self.counters.direct_rebuild_nanos, spent);
    }

    pub(crate) fn stats(&self) -> CacheStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CacheStats {
            materializations: get(&c.materializations),
            followers: get(&c.followers),
            direct_rebuilds: get(&c.direct_rebuilds),
            hits: get(&c.hits),
            filled_at_store: get(&c.filled_at_store),
            failures: get(&c.failures),
            materialize_time: Duration::from_nanos(get(&c.materialize_nanos)),
            direct_rebuild_time: Duration::from_nanos(get(&c.direct_rebuild_nanos)),
        }
    }

    /// Drops a blob's cached bytes (the blob was deleted).
    pub(crate) fn forget(&self, digest: &Digest) {
        let _ = fs::remove_file(self.path(digest));
        lock(&self.verified).remove(digest);
    }

    /// Removes least recently used files until the cache fits its limit.
    fn evict(&self) {
        let mut files = self.files();
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        files.sort();
        for (_, len, path) in files {
            if total <= self.limit {
                break;
            }
            if fs::remove_file(&path).is_ok() {
                total -= len;
            }
        }
    }

    /// Published files: (last use, length, path).
    fn files(&self) -> Vec<(SystemTime, u64, PathBuf)> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with(TMP_PREFIX))
            .filter_map(|e| {
                let m = e.metadata().ok().filter(|m| m.is_file())?;
                Some((m.modified().ok()?, m.len(), e.path()))
            })
            .collect()
    }

    /// Files the cache holds and their bytes (fills in progress not counted).
    pub(crate) fn usage(&self) -> (u64, u64) {
        let files = self.files();
        (files.len() as u64, files.iter().map(|f| f.1).sum())
    }

    /// Re-hashes every cache file, removing those that do not match their name's digest or
    /// whose blob `stored` says is not stored.
    pub(crate) fn check(&self, stored: impl Fn(&Digest) -> Result<bool>) -> Result<CacheCheck> {
        let mut out = CacheCheck::default();
        for (_, len, path) in self.files() {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let digest = name
                .split_once('-')
                .and_then(|(alg, hex)| format!("{alg}:{hex}").parse::<Digest>().ok());
            let why = match digest {
                None => Some("its name is not a digest".to_owned()),
                Some(d) if !stored(&d)? => Some(format!("blob {d} is not stored")),
                Some(d) => {
                    let file = File::open(&path).map_err(Error::io("opening", &path))?;
                    let actual = hash_file(&file, &d).map_err(Error::io("reading", &path))?;
                    out.files += 1;
                    out.bytes += len;
                    if actual == d {
                        lock(&self.verified).insert(d);
                        None
                    } else {
                        lock(&self.verified).remove(&d);
                        Some(format!("its bytes hash to {actual}, not {d}"))
                    }
                }
            };
            if let Some(why) = why {
                fs::remove_file(&path).map_err(Error::io("removing", &path))?;
                out.dropped.push(CacheDrop { path, why });
            }
        }
        Ok(out)
    }
}

/// A cache file being written; its temporary file is removed unless published.
#[derive(Debug)]
pub(crate) struct CacheFill {
    tmp: Option<PathBuf>,
    file: File,
    written: u64,
}

impl CacheFill {
    /// Appends the blob's next bytes.
    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.file
            .write_all_at(bytes, self.written)
            .map_err(|e| Error::Io {
                op: "writing cache file",
                path: self.tmp.clone().unwrap_or_default(),
                source: e,
            })?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Another handle on the file, for reading what was written (also after it is published).
    pub(crate) fn reader(&self) -> io::Result<File> {
        self.file.try_clone()
    }
}

impl Drop for CacheFill {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = fs::remove_file(tmp);
        }
    }
}

/// The digest of a file's bytes, read from its start whatever its offset.
fn hash_file(file: &File, digest: &Digest) -> io::Result<Digest> {
    let mut h = Hasher::new(digest.algorithm());
    let mut buf = vec![0u8; HASH_BYTES];
    let mut at = 0u64;
    loop {
        match file.read_at(&mut buf, at) {
            Ok(0) => return Ok(h.finish()),
            Ok(n) => {
                h.update(&buf[..n]);
                at += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
