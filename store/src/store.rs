//! Opening a store: its directory layout, format header, lock, and shared state.
//!
//! ```text
//! DATA/
//!   store.json     format header: format version, chunker parameters, chunk hash (written at
//!                  creation; its versions are raised when the store starts using a newer format)
//!   lock           held (flock) by the process that has the store open
//!   index.redb     the index
//!   packs/NN/ID.pack
//!   cache/         materialized gzip blobs (produced once, served many times), bounded LRU
//!   staged/        blobs received whole, awaiting ingest (format 3; see `staged`)
//!   tmp/           spool files of puts in progress (emptied at each read-write open)
//! ```
//!
//! A read-write open removes what a crash left: spool files, files of `staged/` that no record
//! names, pack tails no commit references. The background ingest of staged blobs runs only
//! when a caller starts it ([`Store::start_ingest`], what `airlock serve` does).

use std::{
    collections::HashMap,
    fs::{self, File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock, atomic::AtomicU32},
    time::{SystemTime, UNIX_EPOCH},
};

use airlock_chunker::{CHUNKER_VERSION, ChunkerParams};
use airlock_regzip::PREFLATE_VERSION;
use serde::{Deserialize, Serialize};

use crate::{
    Error, PackId, Result,
    cache::{BlobCache, Materialize},
    index::Index,
    inflight::Inflight,
    ingest::IngestState,
    pack::{self, PACK_FORMAT_VERSION, PackWriter, sync_dir},
    put_gzip::TMP_DIR,
    recipe::RECIPE_FORMAT_VERSION,
    script::SCRIPT_FORMAT_VERSION,
    staged::sweep_staged,
};

/// Version of the store's directory layout and format header (2: `cache/`, `tmp/`, the
/// script format and preflate-rs version in the header; 3: staged blobs, `staged/` and the
/// index's `staged` table; 4: the index's `absent` table, children a manifest is linked
/// without on purpose, and application versions' history and current pointer, the index's
/// `app_events` table). New stores are created at this version; an older store is raised to 3
/// when it first stages a blob and to 4 when it first records an absent child or an
/// application event, so that an airlock that does not know them refuses it from then on, and
/// reads it until then.
pub const STORE_FORMAT_VERSION: u32 = 4;

/// The store format that may hold application events.
pub(crate) const APPS_FORMAT_VERSION: u32 = 4;

/// The store format that may hold children absent on purpose.
pub(crate) const ABSENT_FORMAT_VERSION: u32 = 4;

/// The store format that may hold staged blobs.
pub(crate) const STAGED_FORMAT_VERSION: u32 = 3;

/// The oldest store format this airlock opens.
const OLDEST_STORE_FORMAT_VERSION: u32 = 2;

/// Pack files kept open for reads at most; a large store has more packs than a process may
/// have open files.
pub(crate) const MAX_CACHED_PACK_FILES: usize = 128;

const FORMAT_FILE: &str = "store.json";
const LOCK_FILE: &str = "lock";
/// How long an open waits for another holder of the store lock to let go.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
const INDEX_FILE: &str = "index.redb";
const PACKS_DIR: &str = "packs";

/// Whether the store may be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Reads only; a shared lock lets other readers in. Nothing is created or written, but
    /// for the repair redb makes to an index its writer left open (a crash).
    ReadOnly,
    /// Reads and writes; an exclusive lock keeps other processes out.
    ReadWrite,
}

/// Runtime settings for opening a store. Format parameters (`chunker`) apply only when the
/// store is created; an existing store keeps its own and reports a difference.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Read-only or read-write.
    pub access: Access,
    /// Chunker parameters for a new store.
    pub chunker: ChunkerParams,
    /// zstd level for new packs (1..=22).
    pub zstd_level: i32,
    /// Packs are sealed once they reach this many bytes.
    pub pack_size: u64,
    /// Target raw bytes per compressed frame.
    pub frame_size: usize,
    /// Most bytes of materialized gzip blobs kept in `cache/` (0: no cache).
    pub blob_cache_size: u64,
    /// When `cache/` is filled (within `blob_cache_size`).
    pub materialize: Materialize,
    /// A compressed layer expanding to more than this many bytes per compressed byte is kept
    /// as its compressed bytes.
    pub max_decompressed_ratio: u32,
    /// A compressed layer expanding to more than this many bytes is kept as its compressed
    /// bytes.
    pub max_decompressed_size: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            access: Access::ReadWrite,
            chunker: ChunkerParams::default(),
            zstd_level: 3,
            pack_size: 64 * 1024 * 1024,
            frame_size: 2 * 1024 * 1024,
            blob_cache_size: 10 * 1024 * 1024 * 1024,
            materialize: Materialize::Import,
            max_decompressed_ratio: 100,
            max_decompressed_size: 64 * 1024 * 1024 * 1024,
        }
    }
}

/// The format parameters a store was created with, from its `store.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreFormat {
    /// Always "airlock-store".
    pub format: String,
    /// [`STORE_FORMAT_VERSION`] at creation.
    pub version: u32,
    /// Chunker algorithm version ([`CHUNKER_VERSION`]).
    pub chunker_version: u32,
    /// Minimum chunk size.
    pub chunk_min: u32,
    /// Average chunk size.
    pub chunk_avg: u32,
    /// Maximum chunk size.
    pub chunk_max: u32,
    /// Hash naming chunks.
    pub chunk_hash: String,
    /// Pack byte layout version.
    pub pack_format: u32,
    /// Recipe byte layout version.
    pub recipe_format: u32,
    /// Script byte layout version (`rebuild_format` in `store.json`).
    #[serde(rename = "rebuild_format")]
    pub script_format: u32,
    /// The preflate-rs version of the airlock that created the store: the version of the
    /// correction data of every blob whose record names none (records name their own since
    /// issue 13). A store written with another version opens all the same; a blob whose data
    /// this airlock cannot rebuild fails to read with [`Error::RebuildUnsupported`], and
    /// `verify` names it.
    pub preflate: String,
}

impl StoreFormat {
    fn new(params: ChunkerParams) -> StoreFormat {
        StoreFormat {
            format: "airlock-store".into(),
            version: STORE_FORMAT_VERSION,
            chunker_version: CHUNKER_VERSION,
            chunk_min: params.min_size(),
            chunk_avg: params.avg_size(),
            chunk_max: params.max_size(),
            chunk_hash: "blake3-256".into(),
            pack_format: PACK_FORMAT_VERSION,
            recipe_format: RECIPE_FORMAT_VERSION,
            script_format: SCRIPT_FORMAT_VERSION,
            preflate: PREFLATE_VERSION.into(),
        }
    }

    /// The chunker parameters recorded in the store.
    pub fn chunker(&self) -> Result<ChunkerParams> {
        ChunkerParams::new(self.chunk_min, self.chunk_avg, self.chunk_max).map_err(|e| {
            Error::Format {
                path: PathBuf::from(FORMAT_FILE),
                what: e.to_string(),
            }
        })
    }
}

/// A setting that differs from what the store was created with; the store's value wins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatConflict {
    /// The setting.
    pub key: &'static str,
    /// What the store uses.
    pub stored: String,
    /// What was asked for.
    pub requested: String,
}

/// A content-addressed chunk store. Cheap to clone; every clone shares one open store.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) root: PathBuf,
    pub(crate) packs_dir: PathBuf,
    pub(crate) access: Access,
    pub(crate) format: StoreFormat,
    pub(crate) chunker: ChunkerParams,
    pub(crate) opts: StoreOptions,
    pub(crate) conflicts: Vec<FormatConflict>,
    pub(crate) index: Index,
    /// Open, unsealed packs not in use by a put.
    pub(crate) pool: Mutex<Vec<PackWriter>>,
    pub(crate) next_pack: Mutex<u64>,
    /// Read handles of pack files, at most [`MAX_CACHED_PACK_FILES`].
    pub(crate) files: Mutex<HashMap<PackId, Arc<File>>>,
    /// Puts hold it shared from their first dedup lookup to their commit; GC's deletion takes
    /// it exclusively, so no put can count on a chunk that is being deleted.
    pub(crate) gc_lock: RwLock<()>,
    /// Held shared by a transfer in progress ([`Store::hold_chunks`]: a bundle import stores
    /// chunks before the blobs that use them); GC takes it exclusively first, so it waits for
    /// the transfer to end instead of dropping chunks it is about to reference.
    pub(crate) chunks_lock: RwLock<()>,
    /// Materialized gzip blobs.
    pub(crate) cache: BlobCache,
    /// Materializations into `cache` running now.
    pub(crate) inflight: Inflight,
    /// Held by a staging from its lookup to its commit (see `staged`).
    pub(crate) stage_lock: Mutex<()>,
    /// The format version `store.json` says now (raised from the one it was opened with).
    pub(crate) format_version: AtomicU32,
    /// Orders raises of `store.json`'s format version.
    pub(crate) format_lock: Mutex<()>,
    /// The ingest's queue and wake-ups (see `ingest`).
    pub(crate) ingest: IngestState,
    _lock: File,
}

impl Store {
    /// Opens the store in `root`, creating it if it does not exist (read-write only).
    pub fn open(root: &Path, opts: StoreOptions) -> Result<Store> {
        let format_path = root.join(FORMAT_FILE);
        let exists = format_path.exists();
        if !exists && opts.access == Access::ReadOnly {
            return Err(Error::Format {
                path: root.to_owned(),
                what: "no store here (store.json is missing) and it cannot be created read-only"
                    .into(),
            });
        }
        let lock_path = root.join(LOCK_FILE);
        let lock = match opts.access {
            Access::ReadWrite => {
                fs::create_dir_all(root).map_err(Error::io("creating store directory", root))?;
                OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&lock_path)
            }
            // A store on read-only media: nothing is created, the lock is taken on a read
            // handle.
            Access::ReadOnly => File::open(&lock_path),
        }
        .map_err(Error::io("opening lock file", &lock_path))?;
        // A process that just closed the store (or a forked child that has not yet exec'd and
        // still shares the lock's file description) lets go within moments: wait that long
        // before calling the store busy.
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        let locked = loop {
            let tried = match opts.access {
                Access::ReadWrite => lock.try_lock(),
                Access::ReadOnly => lock.try_lock_shared(),
            };
            match tried {
                Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(25));
                }
                other => break other,
            }
        };
        match locked {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::Locked {
                    path: root.to_owned(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::Io {
                    op: "locking",
                    path: lock_path,
                    source: e,
                });
            }
        }
        let format = if exists {
            let mut f = read_format(&format_path)?;
            // Scripts of an older version are still read (op 0x04 came with 2); a
            // store opened for writing may get scripts of the current version, so it says so.
            if (1..SCRIPT_FORMAT_VERSION).contains(&f.script_format)
                && opts.access == Access::ReadWrite
            {
                f.script_format = SCRIPT_FORMAT_VERSION;
                write_format(root, &f)?;
            }
            f
        } else {
            let f = StoreFormat::new(opts.chunker);
            write_format(root, &f)?;
            f
        };
        if !(OLDEST_STORE_FORMAT_VERSION..=STORE_FORMAT_VERSION).contains(&format.version)
            || format.pack_format != PACK_FORMAT_VERSION
            || format.recipe_format != RECIPE_FORMAT_VERSION
            || format.chunker_version != CHUNKER_VERSION
            || !(1..=SCRIPT_FORMAT_VERSION).contains(&format.script_format)
        {
            return Err(Error::Format {
                path: format_path,
                what: format!(
                    "store format {} (packs {}, recipes {}, chunker {}, scripts {}) is not \
                     supported by this airlock, which reads formats \
                     {OLDEST_STORE_FORMAT_VERSION} to {STORE_FORMAT_VERSION} (packs {PACK_FORMAT_VERSION}, recipes {RECIPE_FORMAT_VERSION}, chunker \
                     {CHUNKER_VERSION}, scripts 1 to {SCRIPT_FORMAT_VERSION})",
                    format.version,
                    format.pack_format,
                    format.recipe_format,
                    format.chunker_version,
                    format.script_format,
                ),
            });
        }
        if format.preflate != PREFLATE_VERSION {
            // Never a reason to refuse: blobs record their own version, goflate data and every
            // other blob need no preflate-rs, and what cannot be rebuilt is named when read.
            tracing::info!(
                "store {} was created with {}; this airlock rebuilds {PREFLATE_VERSION} \
                 correction data",
                root.display(),
                format.preflate
            );
        }
        let chunker = format.chunker()?;
        let mut conflicts = Vec::new();
        for (key, stored, requested) in [
            (
                "chunker.min_size",
                chunker.min_size(),
                opts.chunker.min_size(),
            ),
            (
                "chunker.avg_size",
                chunker.avg_size(),
                opts.chunker.avg_size(),
            ),
            (
                "chunker.max_size",
                chunker.max_size(),
                opts.chunker.max_size(),
            ),
        ] {
            if stored != requested {
                conflicts.push(FormatConflict {
                    key,
                    stored: stored.to_string(),
                    requested: requested.to_string(),
                });
            }
        }
        let packs_dir = root.join(PACKS_DIR);
        let index_path = root.join(INDEX_FILE);
        let created = !packs_dir.is_dir() || !index_path.exists();
        if !index_path.exists() && holds_packs(&packs_dir)? {
            // A fresh index would make every pack look like debris of a failed put.
            return Err(Error::Index {
                path: index_path,
                what: "the index is missing but packs/ holds pack files; refusing to open \
                       (nothing was deleted)"
                    .into(),
            });
        }
        if opts.access == Access::ReadWrite {
            fs::create_dir_all(&packs_dir).map_err(Error::io("creating directory", &packs_dir))?;
            // Spool files of puts a crash interrupted.
            let tmp = root.join(TMP_DIR);
            if tmp.is_dir() {
                fs::remove_dir_all(&tmp).map_err(Error::io("emptying", &tmp))?;
            }
        }
        let index = Index::open(&index_path, opts.access)?;
        if opts.access == Access::ReadWrite {
            sweep_staged(root, &index)?;
        }
        if created && opts.access == Access::ReadWrite {
            // New entries in the store directory must outlive a crash like the data in them.
            sync_dir(root)?;
        }
        let (pool, next) = recover_packs(&index, &packs_dir, opts.access)?;
        let version = format.version;
        Ok(Store {
            inner: Arc::new(Inner {
                root: root.to_owned(),
                packs_dir,
                access: opts.access,
                format,
                chunker,
                opts: opts.clone(),
                conflicts,
                index,
                pool: Mutex::new(pool),
                next_pack: Mutex::new(next),
                files: Mutex::new(HashMap::new()),
                gc_lock: RwLock::new(()),
                chunks_lock: RwLock::new(()),
                cache: BlobCache::new(root, opts.blob_cache_size, opts.materialize, opts.access),
                inflight: Inflight::new(Inflight::max_producers()),
                stage_lock: Mutex::new(()),
                format_version: AtomicU32::new(version),
                format_lock: Mutex::new(()),
                ingest: IngestState::default(),
                _lock: lock,
            }),
        })
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The format parameters the store was created with.
    pub fn format(&self) -> &StoreFormat {
        &self.inner.format
    }

    /// Settings asked for at open that differ from the store's own and were not applied.
    pub fn format_conflicts(&self) -> &[FormatConflict] {
        &self.inner.conflicts
    }

    /// Whether writes are allowed.
    pub fn access(&self) -> Access {
        self.inner.access
    }

    pub(crate) fn check_writable(&self) -> Result<()> {
        match self.inner.access {
            Access::ReadWrite => Ok(()),
            Access::ReadOnly => Err(Error::ReadOnly {
                path: self.inner.root.clone(),
            }),
        }
    }
}

impl Inner {
    /// A shared read handle on a pack file.
    pub(crate) fn pack_file(&self, id: PackId) -> Result<Arc<File>> {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = files.get(&id) {
            return Ok(f.clone());
        }
        let path = pack::pack_path(&self.packs_dir, id);
        let f = File::open(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::PackCorrupt {
                    pack: id,
                    offset: 0,
                    what: format!("pack file {} is missing", path.display()),
                }
            } else {
                Error::Io {
                    op: "opening pack",
                    path: path.clone(),
                    source: e,
                }
            }
        })?;
        let f = Arc::new(f);
        if files.len() >= MAX_CACHED_PACK_FILES {
            // Any one: a reader holding it keeps its handle, the next use reopens the file.
            if let Some(&old) = files.keys().next() {
                files.remove(&old);
            }
        }
        files.insert(id, f.clone());
        Ok(f)
    }

    /// Drops a cached pack handle (after the pack was deleted or rewritten).
    pub(crate) fn forget_pack_file(&self, id: PackId) {
        self.files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    /// An open pack for a put: from the pool, or a new one.
    pub(crate) fn take_writer(&self) -> Result<PackWriter> {
        if let Some(w) = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(w);
        }
        let id = {
            let mut next = self.next_pack.lock().unwrap_or_else(|p| p.into_inner());
            let id = *next;
            *next += 1;
            id
        };
        PackWriter::create(&self.packs_dir, PackId(id))
    }

    /// Returns a writer to the pool after a put.
    pub(crate) fn return_writer(&self, w: PackWriter) {
        self.pool.lock().unwrap_or_else(|p| p.into_inner()).push(w);
    }

    pub(crate) fn next_pack_id(&self) -> u64 {
        *self.next_pack.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn read_format(path: &Path) -> Result<StoreFormat> {
    let bytes = fs::read(path).map_err(Error::io("reading", path))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Format {
        path: path.to_owned(),
        what: format!("unreadable format header: {e}"),
    })
}

pub(crate) fn write_format(root: &Path, f: &StoreFormat) -> Result<()> {
    let tmp = root.join(format!("{FORMAT_FILE}.tmp"));
    let bytes = serde_json::to_vec_pretty(f).unwrap_or_default();
    let mut file = File::create(&tmp).map_err(Error::io("creating", &tmp))?;
    file.write_all(&bytes).map_err(Error::io("writing", &tmp))?;
    file.sync_all().map_err(Error::io("syncing", &tmp))?;
    fs::rename(&tmp, root.join(FORMAT_FILE)).map_err(Error::io("renaming", &tmp))?;
    sync_dir(root)
}

/// Brings packs in line with the index after a restart: unsealed packs are reopened with any
/// uncommitted tail cut off, and pack files the index never referenced (a put that crashed
/// before its commit) are removed. Returns the pool of open packs and the next pack id.
fn recover_packs(
    index: &Index,
    packs_dir: &Path,
    access: Access,
) -> Result<(Vec<PackWriter>, u64)> {
    let rtx = index.read()?;
    let known: HashMap<PackId, _> = rtx.packs()?.into_iter().collect();
    let mut next = rtx.next_pack_id()?;
    drop(rtx);
    let mut max_seen = 0;
    let mut pool = Vec::new();
    for sub in read_dir_sorted(packs_dir)? {
        if !sub.is_dir() {
            continue;
        }
        for path in read_dir_sorted(&sub)? {
            let Some(id) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".pack"))
                .and_then(|n| u64::from_str_radix(n, 16).ok())
            else {
                continue;
            };
            max_seen = max_seen.max(id);
            match known.get(&PackId(id)) {
                None if access == Access::ReadWrite => {
                    tracing::info!(pack = %PackId(id), "removing pack that no commit referenced");
                    fs::remove_file(&path).map_err(Error::io("removing", &path))?;
                }
                Some(rec) if !rec.sealed && access == Access::ReadWrite => {
                    match PackWriter::reopen(packs_dir, PackId(id), rec.len) {
                        Ok(w) => pool.push(w),
                        // A damaged pack takes no more writes; verify names it.
                        Err(e) => tracing::warn!("not appending to pack {}: {e}", PackId(id)),
                    }
                }
                _ => {}
            }
        }
    }
    next = next.max(max_seen + 1);
    Ok((pool, next))
}

/// Whether any pack file lies under `packs_dir`.
fn holds_packs(packs_dir: &Path) -> Result<bool> {
    if !packs_dir.is_dir() {
        return Ok(false);
    }
    for sub in read_dir_sorted(packs_dir)? {
        if sub.is_dir()
            && read_dir_sorted(&sub)?
                .iter()
                .any(|p| p.extension().is_some_and(|e| e == "pack"))
        {
            return Ok(true);
        }
    }
    Ok(false)
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v = Vec::new();
    for e in fs::read_dir(dir).map_err(Error::io("listing", dir))? {
        v.push(e.map_err(Error::io("listing", dir))?.path());
    }
    v.sort();
    Ok(v)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::{Digest, PutOptions, Verify};

    /// More packs than handles kept open: reads and verify still work, the cache stays bounded.
    #[test]
    fn pack_handles_stay_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions {
            pack_size: 1,
            ..StoreOptions::default()
        };
        let store = Store::open(dir.path(), opts).unwrap();
        let blobs: Vec<_> = (0..MAX_CACHED_PACK_FILES as u32 + 20)
            .map(|i| {
                let data = format!("blob {i} ").repeat(50).into_bytes();
                let d = Digest::sha256(&data);
                store
                    .put_blob(&d, &data[..], PutOptions::default())
                    .unwrap();
                (d, data)
            })
            .collect();
        for (d, data) in &blobs {
            assert_eq!(&store.read_blob(d).unwrap(), data);
        }
        let report = store.verify(Verify::Full).unwrap();
        assert!(report.is_clean(), "{:?}", report.defects);
        assert!(report.packs > MAX_CACHED_PACK_FILES as u64);
        let cached = store.inner.files.lock().unwrap().len();
        assert!(cached <= MAX_CACHED_PACK_FILES, "{cached}");
    }
}
