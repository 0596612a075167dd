//! Blob upload sessions (end-4a, end-5, end-6, end-13, end-14) and their life across restarts.
//!
//! A session's bytes go to a file `<store root>/uploads/<id>`, one chunk after another, synced
//! before the chunk is acknowledged. Its state (repository, creation time) is saved in the store
//! under the key `registry/<id>` (other users of the store's upload table keep their own keys),
//! so a restarted registry finds it again; the file's length is then the session's offset. A
//! session idle for longer than the configured expiry is forgotten and its file deleted: at
//! startup (idle time measured from the file's modification time) and whenever a new session
//! starts. Files that belong to no session are crash leftovers and deleted at startup.
//!
//! Writes to a session are serialized by its lock: a chunk is appended whole or not at all (the
//! file is cut back to the previous offset on any failure).
//!
//! A finished session's file is staged (issue 14): it moves into the store's `staged/` (the same
//! filesystem, so a rename) and the session is closed; a crash between the two leaves a saved
//! session without its file, which the next start forgets.

use airlock_oci::RepoName;
use std::{
    collections::HashMap,
    fs::{self, File, OpenOptions},
    io::{self, BufWriter, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use airlock_store::Store;
use serde::{Deserialize, Serialize};

use crate::{error::RegistryError, upload_id::UploadId};

/// The directory under the store root that holds session files.
pub(crate) const UPLOADS_DIR: &str = "uploads";

/// Prefix of the registry's keys in the store's upload table.
const KEY_PREFIX: &str = "registry/";

/// Write buffer for appending a chunk: large writes, few syscalls.
const WRITE_BUFFER_BYTES: usize = 256 * 1024;

/// The open sessions of one registry.
pub(crate) struct Uploads {
    /// `None` when the registry or store is read-only: no session can start.
    dir: Option<PathBuf>,
    expiry: Duration,
    sessions: Mutex<HashMap<UploadId, Arc<Session>>>,
}

/// What the store keeps of a session.
#[derive(Serialize, Deserialize)]
struct Saved {
    repo: RepoName,
    created: u64,
}

/// One upload session.
#[derive(Debug)]
pub(crate) struct Session {
    id: UploadId,
    repo: RepoName,
    path: PathBuf,
    /// Bytes acknowledged so far.
    offset: AtomicU64,
    /// Unix seconds of the last request that used the session.
    last_active: AtomicU64,
    /// Set once the session is finished or cancelled; a writer that waited for the lock sees it.
    closed: AtomicBool,
    io: Arc<tokio::sync::Mutex<()>>,
}

/// Permission to write to a session. Shared with the blocking work a request starts, so the
/// session stays locked until that work is done even if the request itself is dropped.
pub(crate) type Writing = Arc<tokio::sync::OwnedMutexGuard<()>>;

fn key(id: &UploadId) -> String {
    format!("{KEY_PREFIX}{id}")
}

fn now_secs() -> u64 {
    secs(SystemTime::now())
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn io_error(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> airlock_store::Error {
    let path = path.to_owned();
    move |source| airlock_store::Error::Io { op, path, source }
}

impl Uploads {
    /// Opens `<root>/uploads/`, restores the sessions saved in the store that still have their
    /// file and are not expired, and removes everything else of earlier runs.
    pub(crate) fn recover(store: &Store, expiry: Duration) -> airlock_store::Result<Uploads> {
        let dir = store.root().join(UPLOADS_DIR);
        fs::create_dir_all(&dir).map_err(io_error("creating directory", &dir))?;
        let now = now_secs();
        let mut sessions = HashMap::new();
        for (k, saved) in store.uploads()? {
            let Some(id) = k.strip_prefix(KEY_PREFIX) else {
                continue;
            };
            match restore(&dir, id, &saved, now, expiry) {
                Some(s) => {
                    sessions.insert(s.id.clone(), Arc::new(s));
                }
                None => {
                    store.remove_upload(&k)?;
                    remove_quietly(&dir.join(id));
                }
            }
        }
        for entry in fs::read_dir(&dir).map_err(io_error("listing", &dir))? {
            let entry = entry.map_err(io_error("listing", &dir))?;
            let known = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<UploadId>().ok())
                .is_some_and(|id| sessions.contains_key(&id));
            if !known {
                remove_quietly(&entry.path());
            }
        }
        if !sessions.is_empty() {
            tracing::info!(sessions = sessions.len(), "resuming upload sessions");
        }
        Ok(Uploads {
            dir: Some(dir),
            expiry,
            sessions: Mutex::new(sessions),
        })
    }

    /// No sessions and none can start (a read-only registry).
    pub(crate) fn disabled() -> Uploads {
        Uploads {
            dir: None,
            expiry: Duration::ZERO,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// Number of open sessions.
    pub(crate) fn len(&self) -> usize {
        self.map().len()
    }

    /// Whether session `id` is open (issue 16: per-client session counts).
    pub(crate) fn is_open(&self, id: &UploadId) -> bool {
        self.map().contains_key(id)
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<UploadId, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a session for `repo` (blocking: creates its file and saves it in the store), after
    /// forgetting expired ones.
    pub(crate) fn start(
        &self,
        store: &Store,
        repo: &RepoName,
    ) -> Result<Arc<Session>, RegistryError> {
        let dir = self.dir.as_ref().ok_or_else(RegistryError::read_only)?;
        self.sweep(store);
        let id = UploadId::random();
        let path = dir.join(id.as_str());
        let created = File::create_new(&path)
            .and_then(|_| File::open(dir)?.sync_all())
            .map_err(io_error("creating upload file", &path));
        created.map_err(RegistryError::internal)?;
        let now = now_secs();
        let saved = serde_json::to_vec(&Saved {
            repo: repo.clone(),
            created: now,
        })
        .map_err(RegistryError::internal)?;
        if let Err(e) = store.put_upload(&key(&id), &saved) {
            remove_quietly(&path);
            return Err(e.into());
        }
        let session = Arc::new(Session::new(id.clone(), repo.clone(), path, 0, now));
        self.map().insert(id, session.clone());
        Ok(session)
    }

    /// The open session `id` of `repo`; BLOB_UPLOAD_UNKNOWN if there is none, it belongs to
    /// another repository, or it expired.
    pub(crate) fn get(
        &self,
        id: &UploadId,
        repo: &RepoName,
    ) -> Result<Arc<Session>, RegistryError> {
        let now = now_secs();
        let session = self
            .map()
            .get(id)
            .filter(|s| &s.repo == repo && !self.expired(s, now))
            .cloned()
            .ok_or_else(|| RegistryError::upload_unknown(id))?;
        session.last_active.store(now, Ordering::Relaxed);
        Ok(session)
    }

    /// Ends a session (blocking): forgets it, then deletes its state and file. Failures to
    /// clean up are logged, not returned: the session is gone for clients either way, and a
    /// leftover is removed at the next start.
    pub(crate) fn close(&self, store: &Store, session: &Session) {
        session.closed.store(true, Ordering::Release);
        self.map().remove(&session.id);
        if let Err(e) = store.remove_upload(&key(&session.id)) {
            tracing::warn!(upload = %session.id, "forgetting upload session: {e}");
        }
        remove_quietly(&session.path);
    }

    fn expired(&self, session: &Session, now: u64) -> bool {
        now.saturating_sub(session.last_active.load(Ordering::Relaxed)) > self.expiry.as_secs()
    }

    /// Whether sessions can start here (the registry and store are writable).
    pub(crate) fn enabled(&self) -> bool {
        self.dir.is_some()
    }

    /// How long a session may stay idle.
    pub(crate) fn expiry(&self) -> Duration {
        self.expiry
    }

    /// Closes every expired session no request is writing to (blocking).
    pub(crate) fn sweep(&self, store: &Store) {
        let now = now_secs();
        let expired: Vec<Arc<Session>> = self
            .map()
            .values()
            .filter(|s| self.expired(s, now))
            .cloned()
            .collect();
        for session in expired {
            if let Ok(_busy) = session.io.try_lock() {
                tracing::info!(upload = %session.id, "upload session expired");
                self.close(store, &session);
            }
        }
    }
}

/// A saved session, if its state decodes, its file exists and it is not expired.
fn restore(dir: &Path, id: &str, saved: &[u8], now: u64, expiry: Duration) -> Option<Session> {
    let id: UploadId = id.parse().ok()?;
    let saved: Saved = serde_json::from_slice(saved).ok()?;
    let path = dir.join(id.as_str());
    let meta = fs::metadata(&path).ok().filter(|m| m.is_file())?;
    let modified = meta.modified().map_or(0, secs);
    let last_active = modified.max(saved.created);
    if now.saturating_sub(last_active) > expiry.as_secs() {
        return None;
    }
    Some(Session::new(id, saved.repo, path, meta.len(), last_active))
}

fn remove_quietly(path: &Path) {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %path.display(), "removing upload file: {e}"),
    }
}

impl Session {
    fn new(id: UploadId, repo: RepoName, path: PathBuf, offset: u64, last_active: u64) -> Session {
        Session {
            id,
            repo,
            path,
            offset: AtomicU64::new(offset),
            last_active: AtomicU64::new(last_active),
            closed: AtomicBool::new(false),
            io: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// The session id.
    pub(crate) fn id(&self) -> &UploadId {
        &self.id
    }

    /// Bytes received and acknowledged so far.
    pub(crate) fn offset(&self) -> u64 {
        self.offset.load(Ordering::Acquire)
    }

    /// The `<blob-push-location>` of the session: a path relative to the server.
    pub(crate) fn location(&self) -> String {
        format!("/v2/{}/blobs/uploads/{}", self.repo, self.id)
    }

    /// The file holding the session's bytes.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Waits until no other request writes to the session; BLOB_UPLOAD_UNKNOWN if it ended
    /// meanwhile.
    pub(crate) async fn lock(&self) -> Result<Writing, RegistryError> {
        let guard = self.io.clone().lock_owned().await;
        if self.closed.load(Ordering::Acquire) {
            return Err(RegistryError::upload_unknown(&self.id));
        }
        Ok(Arc::new(guard))
    }

    /// Appends everything `src` yields at the current offset, syncs, and returns the new offset
    /// (blocking; `_writing` proves the lock is held). On any failure the file is cut back and
    /// the offset stays.
    pub(crate) fn append(&self, _writing: &Writing, mut src: impl Read) -> io::Result<u64> {
        let offset = self.offset();
        let file = OpenOptions::new().write(true).open(&self.path)?;
        let written = (|| {
            // Anything past the acknowledged offset is from a chunk that never completed.
            file.set_len(offset)?;
            let mut w = BufWriter::with_capacity(WRITE_BUFFER_BYTES, &file);
            w.seek(SeekFrom::Start(offset))?;
            let n = io::copy(&mut src, &mut w)?;
            w.flush()?;
            drop(w);
            file.sync_data()?;
            Ok(n)
        })();
        match written {
            Ok(n) => {
                let end = offset + n;
                self.offset.store(end, Ordering::Release);
                // A long chunk counts as activity until its end, not only its start.
                self.last_active.store(now_secs(), Ordering::Relaxed);
                Ok(end)
            }
            Err(e) => {
                let _ = file.set_len(offset);
                Err(e)
            }
        }
    }

    /// Cuts the session back to `offset` bytes (blocking, under the lock), undoing a final chunk
    /// whose blob was refused.
    pub(crate) fn truncate(&self, _writing: &Writing, offset: u64) -> io::Result<()> {
        OpenOptions::new()
            .write(true)
            .open(&self.path)?
            .set_len(offset)?;
        self.offset.store(offset, Ordering::Release);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use airlock_store::StoreOptions;

    use super::*;

    fn repo() -> RepoName {
        "org/app".parse().expect("name")
    }

    fn lock(session: &Session) -> Writing {
        Arc::new(
            session
                .io
                .clone()
                .try_lock_owned()
                .expect("no other writer"),
        )
    }

    #[test]
    fn sessions_survive_recovery_and_leftovers_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), StoreOptions::default()).expect("store");
        let uploads = Uploads::recover(&store, Duration::from_secs(60)).expect("recover");
        let session = uploads.start(&store, &repo()).expect("start");
        let w = lock(&session);
        assert_eq!(session.append(&w, &b"hello"[..]).expect("append"), 5);
        assert_eq!(session.append(&w, &b" world"[..]).expect("append"), 11);
        drop(w);
        let gone = uploads.start(&store, &repo()).expect("start");
        uploads.close(&store, &gone);
        assert!(!gone.path().exists());
        // Leftovers: a stray file, a foreign key in the store's table, a session without file.
        fs::write(dir.path().join(UPLOADS_DIR).join("stray"), b"x").expect("stray");
        store.put_upload("bundle/import-1", b"{}").expect("foreign");
        let orphan = uploads.start(&store, &repo()).expect("start");
        fs::remove_file(orphan.path()).expect("remove");

        let again = Uploads::recover(&store, Duration::from_secs(60)).expect("recover");
        assert_eq!(again.len(), 1);
        let back = again.get(session.id(), &repo()).expect("resumed");
        assert_eq!(back.offset(), 11);
        assert!(again.get(gone.id(), &repo()).is_err());
        assert!(again.get(orphan.id(), &repo()).is_err());
        assert!(!dir.path().join(UPLOADS_DIR).join("stray").exists());
        assert!(store.upload("bundle/import-1").expect("read").is_some());
        // Another repository cannot use the session.
        let other: RepoName = "other".parse().expect("name");
        assert!(again.get(session.id(), &other).is_err());
    }

    #[test]
    fn expired_sessions_are_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), StoreOptions::default()).expect("store");
        let uploads = Uploads::recover(&store, Duration::ZERO).expect("recover");
        let session = uploads.start(&store, &repo()).expect("start");
        // Idle for more than zero seconds.
        session.last_active.store(0, Ordering::Relaxed);
        assert!(uploads.get(session.id(), &repo()).is_err());
        let _next = uploads.start(&store, &repo()).expect("start sweeps");
        assert!(!session.path().exists());
        assert_eq!(uploads.len(), 1);
    }

    #[test]
    fn failed_appends_leave_the_offset() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("client went away"));
                }
                let n = self.0.min(buf.len());
                buf[..n].fill(b'x');
                self.0 -= n;
                Ok(n)
            }
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), StoreOptions::default()).expect("store");
        let uploads = Uploads::recover(&store, Duration::from_secs(60)).expect("recover");
        let session = uploads.start(&store, &repo()).expect("start");
        let w = lock(&session);
        session.append(&w, &b"abc"[..]).expect("append");
        assert!(session.append(&w, Failing(1 << 20)).is_err());
        assert_eq!(session.offset(), 3);
        assert_eq!(fs::read(session.path()).expect("read"), b"abc");
        session.truncate(&w, 1).expect("truncate");
        assert_eq!(session.offset(), 1);
        assert_eq!(fs::read(session.path()).expect("read"), b"a");
    }

    #[test]
    fn disabled_refuses_sessions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), StoreOptions::default()).expect("store");
        let err = Uploads::disabled()
            .start(&store, &repo())
            .expect_err("read-only");
        assert_eq!(err.status(), axum::http::StatusCode::METHOD_NOT_ALLOWED);
    }
}
