//! The on-disk store: packs of zstd-compressed chunks, a redb index, blob recipes, repositories
//! and tags, integrity checks and garbage collection.
//!
//! A blob is anything with an OCI digest. It is cut by `airlock-chunker` into content-defined
//! chunks (tar-aware for layers) that are stored once however many blobs hold them, and a
//! recipe that gives back the exact bytes. A gzip layer is recognised from its bytes, split by
//! `airlock-regzip` and stored as chunks of its decompressed tar plus a script of its member
//! headers and trailers and the reconstruction data of its deflate steps, so two versions of an
//! image share their unchanged files even when every layer digest changed; a stream regzip
//! cannot split (and zstd) is kept as its compressed bytes, with the reason recorded. Pack bytes
//! are synced before the index transaction that references them commits, so a crash at any
//! instant leaves a store that opens, verifies clean and has lost nothing acknowledged.
//!
//! This crate knows nothing of HTTP, manifests, media types or bundle volumes (callers tell it
//! what a manifest references), nor of deflate (`airlock-regzip` splits and rebuilds streams;
//! the store keeps the script format, its segments and the versions of their data). Only the
//! `index` module imports redb; only `pack` knows the pack byte layout; only `put_gzip` splits
//! and `read_gzip` rebuilds gzip streams.
//!
//! # Overview
//! - [`Store`]: open with [`StoreOptions`]; [`Store::put_blob`], [`Store::open_blob_range`],
//!   [`Store::apply_repo_changes`] for links and tags, [`Store::verify`], [`Store::du`],
//!   [`Store::plan_gc`] then [`Store::apply_gc`].
//! - Staged blobs (issue 14): [`Store::stage_file`] and [`Store::stage_blob`] acknowledge a
//!   blob once its bytes and digest are durable; [`Store::start_ingest`] (an [`Ingest`]) or
//!   [`Store::ingest_blob`] cut it into chunks later.
//! - Applications: [`RepoChange::AppEvent`] records a version added, imported or made
//!   current with the tag moves it goes with; [`Store::app_status`], [`Store::app_history`];
//!   GC keeps the last [`GcOptions::keep_app_versions`] of each.
//! - [`Digest`]: a validated `sha256:`/`sha512:` digest; [`HashingReader`] computes one.
//! - [`Encoding`], [`StoredAs`], [`OpaqueReason`]: what a blob's bytes are and how they are
//!   kept ([`Store::stat_blob`], [`DiskUsage`]).
//! - [`Materialize`]: when rebuilt gzip blobs are written to the blob cache, whose work
//!   [`Store::cache_stats`] counts ([`CacheStats`]); [`Store::verify`] re-hashes its files.
//! - [`Error`]: every failure, naming the blob, pack, offset or path at fault.
//!
//! ```
//! use airlock_store::{Digest, PutOptions, Store, StoreOptions};
//! use std::io::Read;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
//! let data = b"hello, air gap".repeat(1000);
//! let digest = Digest::sha256(&data);
//! store.put_blob(&digest, &data[..], PutOptions::default()).unwrap();
//! let mut back = Vec::new();
//! store.open_blob(&digest).unwrap().read_to_end(&mut back).unwrap();
//! assert_eq!(back, data);
//! ```

mod apps;
mod cache;
mod digest;
mod du;
mod error;
mod frame;
mod gc;
mod index;
mod inflight;
mod ingest;
mod layer;
mod pack;
mod put;
mod put_gzip;
mod put_input;
mod read;
mod read_gzip;
mod recipe;
mod repo;
mod script;
mod staged;
mod store;
mod transfer;
mod verify;
mod writeback;
mod writers;
mod zstd_ctx;

/// A chunk's identity: the BLAKE3 of its bytes.
pub use airlock_chunker::ChunkId;
/// Chunk size parameters, fixed when a store is created.
pub use airlock_chunker::ChunkerParams;

pub use crate::{
    apps::{AppAction, AppEvent, AppStatus},
    cache::{CacheCheck, CacheDrop, CacheStats, Materialize},
    digest::{Algorithm, Digest, Hasher, HashingReader},
    du::{DiskUsage, LayerUsage},
    error::{Error, Result},
    frame::{DecodedChunks, FRAME_HEADER_LEN, Frame, frame_len},
    gc::{DroppedVersion, GcOptions, GcPlan, GcReport},
    ingest::{INGEST_MAX_DEFER, INGEST_QUIET, Ingest, IngestOutcome},
    layer::{Encoding, OpaqueReason, StoredAs},
    put::{PutOptions, PutOutcome},
    read::{BlobReader, BlobStat, Layout, unwrap_io},
    recipe::MAX_SEGMENT_RAW_BYTES,
    repo::{Link, RepoChange, TagChange},
    script::MAX_STEP_PLAIN_BYTES,
    staged::{DIRECT_PUT_MAX_BYTES, Staged, StagedBlob},
    store::{Access, FormatConflict, STORE_FORMAT_VERSION, Store, StoreFormat, StoreOptions},
    transfer::{BlobDescription, ChunkHold, DESCRIPTION_FORMAT_VERSION, InsertOutcome},
    verify::{Defect, Verify, VerifyReport},
};

/// Identifier of a pack file (printed as 16 hex digits, its file name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PackId(pub u64);

impl std::fmt::Display for PackId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}
