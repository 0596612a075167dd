//! A bounded on-disk cache of materialized blobs: gzip layers rebuilt once and then served
//! from a plain file, for hot pulls and for bundles alike.
//!
//! `<root>/cache/<algorithm>-<hex>` holds a blob's exact bytes. A file is written under a
//! temporary name as a full read of the blob rebuilds it, hashed on the way, and published
//! (fsync, rename, directory sync) only when its digest matched. Files found at open are
//! re-hashed on their first use in this process and dropped if they do not match. Eviction is
//! least recently used (a use sets the file's modification time) down to
//! `StoreOptions::blob_cache_size`. The cache is never a source of truth: losing it costs CPU
//! only, and a read-only store neither reads nor fills it.

use std::{
    collections::HashSet,
    fs::{self, File},
    io::{self, Read, Write},
    path::{Path, PathBuf},
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::SystemTime,
};

use crate::{Access, Digest, Hasher, pack::sync_dir};

const CACHE_DIR: &str = "cache";
const TMP_PREFIX: &str = ".tmp-";

static FILL_SEQ: AtomicU64 = AtomicU64::new(0);

/// The cache of one open store.
#[derive(Debug)]
pub(crate) struct BlobCache {
    dir: PathBuf,
    limit: u64,
    /// Digests whose cache file was checked (or written) by this process.
    verified: Mutex<HashSet<Digest>>,
}

impl BlobCache {
    /// The cache under `root`; disabled when `limit` is 0 or the store is read-only. Leftover
    /// temporary files (a crash mid-fill) are removed.
    pub(crate) fn new(root: &Path, limit: u64, access: Access) -> BlobCache {
        let limit = if access == Access::ReadOnly { 0 } else { limit };
        let dir = root.join(CACHE_DIR);
        if limit > 0
            && let Ok(entries) = fs::read_dir(&dir)
        {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        BlobCache {
            dir,
            limit,
            verified: Mutex::new(HashSet::new()),
        }
    }

    fn path(&self, digest: &Digest) -> PathBuf {
        self.dir
            .join(format!("{}-{}", digest.algorithm().name(), digest.hex()))
    }

    /// The cached bytes of a blob, if present and sound.
    pub(crate) fn open(&self, digest: &Digest) -> Option<File> {
        if self.limit == 0 {
            return None;
        }
        let path = self.path(digest);
        let mut file = File::open(&path).ok()?;
        let known = self
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(digest);
        if !known {
            let mut h = Hasher::new(digest.algorithm());
            let mut buf = vec![0u8; 1024 * 1024];
            loop {
                match file.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => h.update(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return None,
                }
            }
            if h.finish() != *digest {
                tracing::warn!(%digest, "dropping a cached blob that does not match its digest");
                let _ = fs::remove_file(&path);
                return None;
            }
            self.verified
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(digest.clone());
            file = File::open(&path).ok()?;
        }
        // Recently used: evicted last.
        if let Ok(f) = File::options().write(true).open(&path) {
            let _ = f.set_modified(SystemTime::now());
        }
        Some(file)
    }

    /// A writer that fills the cache with a blob of `size` bytes as it is read, if it fits.
    pub(crate) fn fill(&self, digest: &Digest, size: u64) -> Option<CacheFill> {
        if self.limit == 0 || size > self.limit {
            return None;
        }
        fs::create_dir_all(&self.dir).ok()?;
        let seq = FILL_SEQ.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .dir
            .join(format!("{TMP_PREFIX}{}-{seq}", std::process::id()));
        let file = File::create(&tmp).ok()?;
        Some(CacheFill {
            tmp,
            file: Some(io::BufWriter::with_capacity(1024 * 1024, file)),
            hasher: Some(Hasher::new(digest.algorithm())),
        })
    }

    /// Publishes a complete fill if its bytes hash to `digest`, then evicts down to the limit.
    pub(crate) fn publish(&self, digest: &Digest, mut fill: CacheFill) {
        let (Some(file), Some(hasher)) = (fill.file.take(), fill.hasher.take()) else {
            return;
        };
        if hasher.finish() != *digest {
            return;
        }
        let done = file
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|f| f.sync_all());
        if done.is_err() || fs::rename(&fill.tmp, self.path(digest)).is_err() {
            return;
        }
        let _ = sync_dir(&self.dir);
        self.verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(digest.clone());
        self.evict();
    }

    /// Adopts a file that holds a blob's exact, verified bytes (a staged blob the ingest just
    /// stored as chunks): renamed into the cache if it fits, as recently used. Returns whether
    /// it did; if not, the file is the caller's to remove.
    pub(crate) fn adopt(&self, digest: &Digest, file: &Path, size: u64) -> bool {
        if self.limit == 0 || size > self.limit || fs::create_dir_all(&self.dir).is_err() {
            return false;
        }
        let path = self.path(digest);
        if fs::rename(file, &path).is_err() {
            return false;
        }
        if let Ok(f) = File::options().write(true).open(&path) {
            let _ = f.set_modified(SystemTime::now());
        }
        let _ = sync_dir(&self.dir);
        self.verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(digest.clone());
        self.evict();
        true
    }

    /// Drops a blob's cached bytes (the blob was deleted).
    pub(crate) fn forget(&self, digest: &Digest) {
        if self.limit > 0 {
            let _ = fs::remove_file(self.path(digest));
        }
        self.verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(digest);
    }

    /// Removes least recently used files until the cache fits its limit.
    fn evict(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        let mut files: Vec<(SystemTime, u64, PathBuf)> = entries
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with(TMP_PREFIX))
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                Some((m.modified().ok()?, m.len(), e.path()))
            })
            .collect();
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

    /// Bytes the cache holds.
    pub(crate) fn bytes(&self) -> u64 {
        fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }
}

/// A cache file being written as a blob is rebuilt; removed unless published.
#[derive(Debug)]
pub(crate) struct CacheFill {
    tmp: PathBuf,
    file: Option<io::BufWriter<File>>,
    hasher: Option<Hasher>,
}

impl CacheFill {
    /// Appends the blob's next bytes; a failed write abandons the fill.
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        if let (Some(f), Some(h)) = (self.file.as_mut(), self.hasher.as_mut()) {
            if f.write_all(bytes).is_err() {
                self.file = None;
                return;
            }
            h.update(bytes);
        }
    }
}

impl Drop for CacheFill {
    fn drop(&mut self) {
        // A published fill was renamed away: removing the old name then fails harmlessly.
        let _ = fs::remove_file(&self.tmp);
    }
}
