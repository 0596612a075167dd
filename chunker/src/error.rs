use std::io;

/// Everything that can go wrong while chunking.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The source reader failed; `offset` is how many bytes had been read before.
    #[error("reading input at byte {offset}")]
    Read {
        /// Bytes successfully read before the failure.
        offset: u64,
        /// The reader's error.
        #[source]
        source: io::Error,
    },
    /// Chunk size parameters outside what FastCDC supports, or not ordered min <= avg <= max.
    #[error("invalid chunker parameters: {reason}")]
    InvalidParams {
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// A chunk id that is not 64 hex digits.
    #[error("invalid chunk id {text:?}: expected 64 lowercase hex digits")]
    InvalidChunkId {
        /// The text that failed to parse.
        text: String,
    },
    /// [`crate::Chunker::next_batch`] was called again after it returned an error: the bytes
    /// of the failed read are lost, so the input cannot be resumed.
    #[error("chunker used again after a read error at byte {offset}")]
    Poisoned {
        /// Bytes read before the failure.
        offset: u64,
    },
}
