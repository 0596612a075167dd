//! Why a registry could not start, or could not reload its certificate or accounts: problems
//! of files and settings, reported before the first request (or on SIGHUP), each naming the
//! file and, for a line-based file, the line.

use std::{io, path::PathBuf};

/// A problem with the registry's files or settings, at startup or on reload.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A file could not be read or written.
    #[error("{op} {}", path.display())]
    Io {
        /// What was being done (`reading`, `creating`).
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A line of the htpasswd file is not `name:bcrypt-hash`.
    #[error("{}:{line}: {what}", path.display())]
    Htpasswd {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What is wrong with it.
        what: String,
    },
    /// An access rule that cannot be used (a malformed repository pattern).
    #[error("access rule {rule}: {what}")]
    Rule {
        /// The rule's position, from 1.
        rule: usize,
        /// What is wrong with it.
        what: String,
    },
    /// The certificate or key does not load, or they do not belong together.
    #[error("TLS: {}: {what}", path.display())]
    Tls {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// The token signing key file is unusable.
    #[error("token key {}: {what}", path.display())]
    TokenKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
}
