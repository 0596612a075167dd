//! Accounts from an htpasswd file: one `name:hash` per line, `#` comments and blank lines
//! ignored, bcrypt hashes only (`$2y$`, `$2b$`, `$2a$`, as `htpasswd -B` writes them). Any other
//! kind of hash (`$apr1$`, `{SHA}`, crypt) is refused when the file is read, naming the line.
//!
//! bcrypt is slow on purpose (tens of milliseconds per check at htpasswd's default cost), so a
//! check runs on the blocking pool, at most [`BCRYPT_AT_ONCE`] at a time, and a successful one
//! is remembered for [`REMEMBER`]: a node pulling fifty layers with Basic credentials costs one
//! bcrypt run, not fifty. What is remembered is a SHA-256 of the name, the password and the
//! stored hash, so a changed password or a reloaded file never matches an old entry.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use sha2::{Digest as _, Sha256};
use tokio::sync::Semaphore;

use crate::serve_error::ServeError;

/// bcrypt checks running at once; more wait, so a flood of bad logins cannot take the
/// blocking pool.
pub(crate) const BCRYPT_AT_ONCE: usize = 4;

/// How long a successful check is remembered.
pub(crate) const REMEMBER: Duration = Duration::from_secs(300);

/// Most successful checks remembered; when full, expired ones go, then all.
const REMEMBER_MAX: usize = 4096;

/// The accounts, reloadable, with remembered checks.
#[derive(Debug)]
pub(crate) struct Users {
    path: PathBuf,
    hashes: RwLock<Arc<HashMap<String, String>>>,
    remembered: Mutex<HashMap<[u8; 32], Instant>>,
    slots: Semaphore,
}

impl Users {
    /// Reads `path`.
    pub(crate) fn load(path: &Path) -> Result<Users, ServeError> {
        Ok(Users {
            path: path.to_owned(),
            hashes: RwLock::new(Arc::new(parse(path)?)),
            remembered: Mutex::new(HashMap::new()),
            slots: Semaphore::new(BCRYPT_AT_ONCE),
        })
    }

    /// Reads the file again; on failure the accounts stay as they were.
    pub(crate) fn reload(&self) -> Result<usize, ServeError> {
        let hashes = parse(&self.path)?;
        let n = hashes.len();
        *self.hashes.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(hashes);
        Ok(n)
    }

    /// Number of accounts.
    pub(crate) fn len(&self) -> usize {
        self.current().len()
    }

    /// The file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn current(&self) -> Arc<HashMap<String, String>> {
        self.hashes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether `password` is `user`'s.
    pub(crate) async fn check(&self, user: &str, password: &str) -> bool {
        let Some(hash) = self.current().get(user).cloned() else {
            return false;
        };
        let key: [u8; 32] = Sha256::new()
            .chain_update(user)
            .chain_update([0])
            .chain_update(password)
            .chain_update([0])
            .chain_update(&hash)
            .finalize()
            .into();
        let now = Instant::now();
        if self
            .remembered()
            .get(&key)
            .is_some_and(|&until| now < until)
        {
            return true;
        }
        let Ok(_slot) = self.slots.acquire().await else {
            return false;
        };
        let password = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await
            .is_ok_and(|r| r.unwrap_or(false));
        if ok {
            let mut remembered = self.remembered();
            if remembered.len() >= REMEMBER_MAX {
                remembered.retain(|_, until| now < *until);
                if remembered.len() >= REMEMBER_MAX {
                    remembered.clear();
                }
            }
            remembered.insert(key, now + REMEMBER);
        }
        ok
    }

    fn remembered(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Instant>> {
        self.remembered.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Reads an htpasswd file into name -> hash.
fn parse(path: &Path) -> Result<HashMap<String, String>, ServeError> {
    let text = std::fs::read_to_string(path).map_err(|source| ServeError::Io {
        op: "reading",
        path: path.to_owned(),
        source,
    })?;
    let mut users = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let bad = |what: String| ServeError::Htpasswd {
            path: path.to_owned(),
            line: i + 1,
            what,
        };
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, hash) = line
            .split_once(':')
            .ok_or_else(|| bad("not `name:hash`".into()))?;
        if name.is_empty() {
            return Err(bad("an empty account name".into()));
        }
        let bcrypt = ["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p));
        if !bcrypt {
            let kind = match hash {
                h if h.starts_with("$apr1$") => "an MD5 ($apr1$) hash",
                h if h.starts_with("{SHA}") => "a SHA-1 ({SHA}) hash",
                h if h.starts_with('$') => "a hash airlock does not read",
                _ => "a crypt or plain-text password",
            };
            return Err(bad(format!(
                "account {name:?} has {kind}; only bcrypt is accepted (make it with `htpasswd -B`)"
            )));
        }
        hash.parse::<bcrypt::HashParts>()
            .map_err(|e| bad(format!("account {name:?}: malformed bcrypt hash: {e}")))?;
        if users.insert(name.to_owned(), hash.to_owned()).is_some() {
            return Err(bad(format!("account {name:?} appears twice")));
        }
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("htpasswd");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[tokio::test]
    async fn checks_bcrypt_and_remembers_successes() {
        let dir = tempfile::tempdir().unwrap();
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let path = file(dir.path(), &format!("# accounts\n\nalice:{hash}\n"));
        let users = Users::load(&path).unwrap();
        assert_eq!(users.len(), 1);
        assert!(users.check("alice", "s3cret").await);
        assert_eq!(users.remembered().len(), 1);
        assert!(users.check("alice", "s3cret").await);
        assert!(!users.check("alice", "wrong").await);
        assert!(!users.check("bob", "s3cret").await);
        // A new password in the file: the remembered check no longer matches.
        let hash2 = bcrypt::hash("other", 4).unwrap();
        std::fs::write(&path, format!("alice:{hash2}\n")).unwrap();
        users.reload().unwrap();
        assert!(!users.check("alice", "s3cret").await);
        assert!(users.check("alice", "other").await);
    }

    #[test]
    fn other_hash_kinds_and_bad_lines_are_refused_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                "bob:$apr1$abc$def\n",
                ":1: account \"bob\" has an MD5 ($apr1$) hash",
            ),
            (
                "\nbob:{SHA}xyz=\n",
                ":2: account \"bob\" has a SHA-1 ({SHA}) hash",
            ),
            (
                "bob:plain\n",
                ":1: account \"bob\" has a crypt or plain-text password",
            ),
            ("nocolon\n", ":1: not `name:hash`"),
            (":$2y$05$abc\n", ":1: an empty account name"),
            (
                "bob:$2y$05$short\n",
                ":1: account \"bob\": malformed bcrypt hash",
            ),
        ];
        for (text, expected) in cases {
            let err = Users::load(&file(dir.path(), text))
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
        let hash = bcrypt::hash("x", 4).unwrap();
        let twice = format!("a:{hash}\na:{hash}\n");
        let err = Users::load(&file(dir.path(), &twice))
            .unwrap_err()
            .to_string();
        assert!(err.contains(":2: account \"a\" appears twice"), "{err}");
    }
}
