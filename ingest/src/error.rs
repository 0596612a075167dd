//! Every way an add can fail, named by what is at fault: the source's files, its content, a name,
//! an upstream registry, credentials, an app file, or the store. [`Error::In`] says which source,
//! image or entry an inner error is about, so a printed chain reads
//! `docker://ghcr.io/a/b:1: in index sha256:..: manifest sha256:.. is 12 bytes, ...`.

use std::{io, path::PathBuf};

/// Why an add failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or directory could not be read.
    #[error("{what}")]
    Io {
        /// What was being done, naming the file (`opening archive /x.tar`).
        what: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A SOURCE argument or an option that contradicts the source (`--as` with one tag for
    /// several images).
    #[error("{what}")]
    Usage {
        /// What is wrong.
        what: String,
    },
    /// An archive or directory refused or damaged: an entry escaping it, a duplicated entry, a
    /// compressed archive, a missing or oversized file.
    #[error("{what}")]
    Archive {
        /// What is wrong, naming the entry.
        what: String,
    },
    /// Content refused before anything is stored: a manifest that does not match its digest or
    /// size, a missing blob or config, an image without a name.
    #[error("{what}")]
    Content {
        /// What is wrong, naming the manifest, blob or image.
        what: String,
    },
    /// A name, reference, tag, digest or manifest that is not valid OCI.
    #[error("{what}")]
    Oci {
        /// Where it was found.
        what: String,
        /// What is wrong with it.
        #[source]
        source: airlock_oci::Error,
    },
    /// An upstream registry failed or refused: a status, a timeout, too many redirects.
    #[error("{what}")]
    Upstream {
        /// What was asked and what came back.
        what: String,
    },
    /// Credentials could not be read, or a registry's authentication could not be answered.
    #[error("{what}")]
    Auth {
        /// What is wrong.
        what: String,
    },
    /// An app file that cannot be read as one.
    #[error("{}: {what}", path.display())]
    App {
        /// The app file.
        path: PathBuf,
        /// What is wrong, naming the field.
        what: String,
    },
    /// The store failed.
    #[error("{what}")]
    Store {
        /// What was being done.
        what: String,
        /// The store's error.
        #[source]
        source: airlock_store::Error,
    },
    /// An error about one source, image, index or entry.
    #[error("{what}")]
    In {
        /// The source, image or entry.
        what: String,
        /// The error.
        #[source]
        source: Box<Error>,
    },
}

/// Returns an [`Error`] variant with a `what` made by `format!`.
macro_rules! fail {
    ($variant:ident, $($arg:tt)*) => {
        return Err($crate::error::Error::$variant { what: format!($($arg)*) })
    };
}

/// An [`Error`] variant with a `what` made by `format!`.
macro_rules! err {
    ($variant:ident, $($arg:tt)*) => {
        $crate::error::Error::$variant { what: format!($($arg)*) }
    };
}

pub(crate) use {err, fail};

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors that can be put in context: ours nest, OCI's and the store's are wrapped with it.
pub(crate) trait Contextual {
    fn within(self, what: String) -> Error;
}

impl Contextual for Error {
    fn within(self, what: String) -> Error {
        Error::In {
            what,
            source: Box::new(self),
        }
    }
}

impl Contextual for io::Error {
    fn within(self, what: String) -> Error {
        Error::Io { what, source: self }
    }
}

/// JSON is read from sources (app indexes) and written for manifests: either way the content.
impl Contextual for serde_json::Error {
    fn within(self, what: String) -> Error {
        Error::Content {
            what: format!("{what}: {self}"),
        }
    }
}

impl Contextual for hyper::http::Error {
    fn within(self, what: String) -> Error {
        Error::Upstream {
            what: format!("{what}: {self}"),
        }
    }
}

impl Contextual for hyper::http::uri::InvalidUri {
    fn within(self, what: String) -> Error {
        Error::Upstream {
            what: format!("{what}: {self}"),
        }
    }
}

impl Contextual for airlock_oci::Error {
    fn within(self, what: String) -> Error {
        Error::Oci { what, source: self }
    }
}

impl Contextual for airlock_store::Error {
    fn within(self, what: String) -> Error {
        Error::Store { what, source: self }
    }
}

/// What OCI's walk reports of a graph (nested too deep) reaches an add this way.
impl From<airlock_oci::Error> for Error {
    fn from(source: airlock_oci::Error) -> Error {
        Error::Oci {
            what: "walking the manifests".into(),
            source,
        }
    }
}

/// `.context(..)` for results whose error can be put in context.
pub(crate) trait Context<T> {
    /// Says what the failing operation was about.
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: Contextual> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| e.within(what()))
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn context_nests_and_keeps_the_cause() {
        let inner: Result<()> = Err(Error::Content {
            what: "manifest x is 3 bytes".into(),
        });
        let e = inner
            .context(|| "docker://a/b:1".into())
            .expect_err("error");
        assert_eq!(e.to_string(), "docker://a/b:1");
        assert_eq!(
            e.source().map(ToString::to_string).as_deref(),
            Some("manifest x is 3 bytes")
        );
        let oci = "A"
            .parse::<airlock_oci::RepoName>()
            .context(|| "--as A".into());
        assert!(matches!(oci, Err(Error::Oci { .. })));
        let io = std::fs::read("/nonexistent/x").context(|| "reading /nonexistent/x".into());
        let io = io.expect_err("missing");
        assert_eq!(io.to_string(), "reading /nonexistent/x");
        assert!(io.source().is_some(), "the io error is kept");
    }
}
