//! The one error of this crate: a request that could not be made, or a registry answer that
//! breaks the spec.

/// Why a request, a push helper or a check step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request never got an answer (connection refused, timeout, malformed URL).
    #[error("{request}: no response: {reason}")]
    Transport { request: String, reason: String },
    /// The registry answered with a status the spec does not allow here.
    #[error("{request}: expected status {expected}, got {status}{body}")]
    Status {
        request: String,
        expected: String,
        status: u16,
        /// An excerpt of the response body, prefixed with `: ` when not empty.
        body: String,
    },
    /// The registry answered, but a header or body breaks the spec.
    #[error("{request}: {what}")]
    Violation { request: String, what: String },
    /// A step of a check found the registry's state not as the spec requires.
    #[error("{what}")]
    Check { what: String },
    /// Writing or reading a local file (an OCI layout for the interop tests).
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

impl Error {
    /// A failed expectation stated in words.
    pub(crate) fn check(what: impl Into<String>) -> Error {
        Error::Check { what: what.into() }
    }
}

/// `Err(Error::check(format!(...)))` unless the condition holds.
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err($crate::error::Error::check(format!($($fmt)+)));
        }
    };
}

pub(crate) use ensure;
