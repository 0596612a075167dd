//! Cut points and chunk identity over byte streams.
//!
//! airlock stores every blob as a sequence of pieces: content-defined chunks, identified by the
//! BLAKE3-256 hash of their raw bytes, and short runs of bytes kept inline in the blob's recipe.
//! This crate decides where those pieces start and end. On a tar stream it keeps each tar header
//! (PAX and GNU long-name records included) and the padding after file data inline, and cuts
//! chunks only inside file data, with cuts forced at each file's start and end, so an unchanged
//! file dedups even when its header (mtime, owner) changed. Headers are read as Go's
//! `archive/tar` reads them, since that is how containerd and docker unpack layers. When the
//! stream is not a tar, or stops parsing as one, the rest is cut by plain FastCDC (v2020).
//! Whatever the input (truncated, corrupt, junk after the end marker), concatenating the
//! pieces gives it back byte for byte.
//!
//! This crate knows nothing of files, compression, packs or OCI: it reads an [`std::io::Read`]
//! and yields pieces. Cut points are part of the store format: [`CHUNKER_VERSION`] names the
//! algorithm, and a golden table test pins it.
//!
//! # Overview
//! - [`ChunkerParams`]: minimum, average and maximum chunk size, validated.
//! - [`Chunker`]: streams pieces out of a reader in bounded batches, hashing chunks in parallel.
//! - [`Piece`], [`Chunk`], [`ChunkId`]: what comes out.
//! - [`Layout`]: whether the stream was cut as a tar or as plain bytes, and why.
//! - [`Error`]: a failed read, invalid parameters, an invalid chunk id.
//! - [`read_full`]: fills a buffer from a reader, short only at the end (shared by the store).
//!
//! ```
//! use airlock_chunker::{Chunker, ChunkerParams, Mode, Piece};
//!
//! let data = vec![7u8; 300_000];
//! let mut chunker = Chunker::new(&data[..], ChunkerParams::default(), Mode::Auto);
//! let mut total = 0;
//! while let Some(batch) = chunker.next_batch().unwrap() {
//!     for piece in batch {
//!         total += piece.len();
//!     }
//! }
//! assert_eq!(total, data.len());
//! ```

mod cdc;
mod chunker;
mod error;
mod id;
mod params;
mod tar;

pub use crate::{
    cdc::read_full,
    chunker::{BATCH_BYTES, Chunk, Chunker, CutBatch, Layout, MAX_INLINE_RUN_BYTES, Mode, Piece},
    error::Error,
    id::ChunkId,
    params::{CHUNKER_VERSION, ChunkerParams},
};
