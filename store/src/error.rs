use std::{io, path::PathBuf};

use crate::{Digest, PackId};

/// Everything the store can fail with. Each variant names the object involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O failure on a file of the store.
    #[error("{op} {path}")]
    Io {
        /// What was being done ("reading", "writing", "syncing", ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The caller's reader failed while a blob was being put.
    #[error("reading blob {digest} at byte {offset}")]
    Source {
        /// The blob being put.
        digest: Digest,
        /// Bytes received before the failure.
        offset: u64,
        /// The reader's error.
        #[source]
        source: io::Error,
    },
    /// An application event names a version its repository has no tag for.
    #[error("application {repo} has no version {version}")]
    AppVersionNotFound {
        /// The application's repository.
        repo: String,
        /// The version asked for.
        version: String,
    },
    /// Text that is not a digest.
    #[error("invalid digest {text:?}")]
    InvalidDigest {
        /// The offending text.
        text: String,
    },
    /// A well-formed digest whose algorithm airlock does not support.
    #[error("unsupported digest algorithm {algorithm:?}: use sha256 or sha512")]
    UnsupportedDigest {
        /// The algorithm named.
        algorithm: String,
    },
    /// The bytes received hash to something else than promised; nothing was stored.
    #[error("digest mismatch: expected {expected}, content hashes to {actual}")]
    DigestMismatch {
        /// The digest the caller promised.
        expected: Digest,
        /// The digest of what was received.
        actual: Digest,
    },
    /// The content is larger than the caller allowed; nothing was stored.
    #[error("blob {digest} is larger than allowed")]
    TooLarge {
        /// The blob being put.
        digest: Digest,
    },
    /// A compressed layer expands beyond the configured decompression limits (a decompression
    /// bomb, or a layer far more compressible than allowed); nothing was stored.
    #[error(
        "blob {digest} expands beyond the decompression limits (at most {max_ratio}x its \
         compressed size and {max_size} bytes; settings layers.max_decompressed_ratio and \
         layers.max_decompressed_size)"
    )]
    DecompressionLimit {
        /// The blob being put.
        digest: Digest,
        /// Allowed decompressed bytes per compressed byte.
        max_ratio: u32,
        /// Allowed decompressed bytes.
        max_size: u64,
    },
    /// The content's length differs from the length promised; nothing was stored.
    #[error("blob {digest} is {actual} bytes long, {expected} were promised")]
    SizeMismatch {
        /// The blob being put.
        digest: Digest,
        /// The promised length.
        expected: u64,
        /// The length received.
        actual: u64,
    },
    /// No blob with this digest is stored.
    #[error("blob {digest} not found")]
    BlobNotFound {
        /// The digest asked for.
        digest: Digest,
    },
    /// A byte range outside the blob.
    #[error("range {start}..{end} is outside blob {digest} of {size} bytes")]
    RangeNotSatisfiable {
        /// The blob.
        digest: Digest,
        /// First byte asked for.
        start: u64,
        /// One past the last byte asked for.
        end: u64,
        /// The blob's size.
        size: u64,
    },
    /// A chunk a recipe needs is not in the index.
    #[error("chunk {chunk} of blob {digest} is missing from the index")]
    ChunkMissing {
        /// The blob being read.
        digest: Digest,
        /// The chunk.
        chunk: String,
    },
    /// A pack file is missing, truncated, or fails its checksum or a chunk's hash.
    #[error("pack {pack} is corrupt at offset {offset}: {what}")]
    PackCorrupt {
        /// The pack.
        pack: PackId,
        /// Byte offset in the pack file of the frame or record at fault.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// A blob description from outside the store (a bundle) is malformed.
    #[error("blob description is corrupt: {what}")]
    DescriptionCorrupt {
        /// What is wrong.
        what: String,
    },
    /// Chunks a described blob needs are not stored (their frames were not inserted).
    #[error("blob {digest} needs {count} chunk(s) the store lacks (first: {first})")]
    ChunksMissing {
        /// The blob.
        digest: Digest,
        /// How many are missing.
        count: u64,
        /// The first missing chunk.
        first: String,
    },
    /// A chunk asked for by id is not stored.
    #[error("chunk {chunk} is not stored")]
    ChunkNotStored {
        /// The chunk.
        chunk: String,
    },
    /// A frame of chunks from outside the store (a bundle volume) fails its checks.
    #[error("frame is corrupt: {what}")]
    FrameCorrupt {
        /// What is wrong.
        what: String,
    },
    /// The index database failed or holds something undecodable.
    #[error("index {path}: {what}")]
    Index {
        /// The index file.
        path: PathBuf,
        /// What failed.
        what: String,
    },
    /// The store's format header is unreadable or from an unsupported version.
    #[error("store {path}: {what}")]
    Format {
        /// The store directory.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// A write on a store opened read-only.
    #[error("the store at {path} is open read-only")]
    ReadOnly {
        /// The store directory.
        path: PathBuf,
    },
    /// Another process holds the store's lock.
    #[error("the store at {path} is in use by another airlock process")]
    Locked {
        /// The store directory.
        path: PathBuf,
    },
    /// A repository name, tag or other identifier failed validation.
    #[error("invalid {what} {text:?}: {why}")]
    InvalidName {
        /// "repository", "tag", ...
        what: &'static str,
        /// The offending text.
        text: String,
        /// The rule it breaks.
        why: &'static str,
    },
    /// An upload session that does not exist (or finished).
    #[error("upload {id} not found")]
    UploadNotFound {
        /// The session id.
        id: String,
    },
    /// A blob's bytes could not be produced: a rebuild failed or differs, or its source ended
    /// early.
    #[error("blob {digest} cannot be produced at byte {offset}: {what}")]
    Rebuild {
        /// The blob being read.
        digest: Digest,
        /// Offset in the blob where it failed.
        offset: u64,
        /// What went wrong.
        what: String,
    },
    /// A blob's bytes cannot be produced by this airlock: its script holds reconstruction data
    /// of a version it does not rebuild (preflate-rs data of another version, goflate data of a
    /// later model). Another airlock may; nothing is damaged.
    #[error("blob {digest} cannot be rebuilt by this airlock: {what}")]
    RebuildUnsupported {
        /// The blob.
        digest: Digest,
        /// Which version it would take.
        what: String,
    },
    /// A staged blob's file is missing or no longer holds its bytes (see `Store::stage_file`).
    #[error("staged blob {digest} is damaged ({path}): {what}")]
    StagedDamaged {
        /// The blob.
        digest: Digest,
        /// Its file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The chunker failed.
    #[error("chunking blob {digest}")]
    Chunker {
        /// The blob being put.
        digest: Digest,
        /// The chunker's error.
        #[source]
        source: airlock_chunker::Error,
    },
}

impl Error {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}

/// The store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
