//! Integration tests of airlock-bundle: export from one real store, import into another.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod bounds; // issue 16: hostile lengths and zstd bombs are refused naming file, volume, offset
mod checks; // issue 14: blobs checked while volumes are read; the import fills the blob cache
mod common; // stores filled through the library, exports with small volumes
mod golden; // issue 13: bundles written by an earlier airlock import exactly
mod roundtrip; // referrers travel, shared chunks ship once, asking for discs, damaged index copies
