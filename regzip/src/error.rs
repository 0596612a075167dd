//! [`Error`]: why a stream is not split, or a step not rebuilt.

/// Why a split stopped or a step did not rebuild. A split that stops for any reason but
/// [`Error::Stopped`] means the stream is to be kept as its compressed bytes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The stream's deflate encoder is not one preflate-rs or goflate predicts.
    #[error("deflate encoder not supported")]
    EncoderUnsupported,
    /// The gzip header is pgzip's (a Go encoder), but neither goflate's models nor preflate-rs
    /// predict the stream (an unmodelled level or encoder version).
    #[error("Go encoder not matched")]
    GoEncoderUnmatched,
    /// A step rebuilt from the payload and reconstruction data a split emitted differs from the
    /// bytes it was split from.
    #[error("rebuilt step differs from the original bytes")]
    RebuildMismatch,
    /// One gzip member decompresses to more than preflate-rs can address.
    #[error("gzip member too large for preflate-rs")]
    MemberTooLarge,
    /// The gzip members are damaged, truncated or unusual (a bad header, a huge header or block,
    /// a long run of bytes after the last member).
    #[error("malformed gzip member")]
    MemberMalformed,
    /// The payload grew beyond the split's [`crate::Limits`].
    #[error("payload beyond the decompression limits")]
    DecompressionLimit,
    /// The sink refused an event.
    #[error("split stopped by its sink")]
    Stopped,
    /// A splitter or a rebuild panicked (a bug in preflate-rs or goflate); the panic was caught.
    #[error("{what} panicked")]
    Panicked {
        /// What panicked.
        what: &'static str,
    },
    /// Reconstruction data that does not rebuild with the payload given (damaged, or not the
    /// step's).
    #[error("reconstruction data does not rebuild: {what}")]
    Damaged {
        /// What is wrong with it.
        what: String,
    },
    /// goflate reconstruction data of a model version this build does not know (written by a
    /// later one).
    #[error("goflate model version {found} is unknown to this build (it knows 1 to {known})")]
    ModelUnknown {
        /// The data's model version.
        found: u8,
        /// The latest version this build rebuilds.
        known: u8,
    },
    /// The rebuild thread could not be started, or ended.
    #[error("rebuild thread {what}")]
    Thread {
        /// What happened to it.
        what: &'static str,
    },
}

impl Error {
    pub(crate) fn damaged(what: impl Into<String>) -> Error {
        Error::Damaged { what: what.into() }
    }
}
