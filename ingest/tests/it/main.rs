//! Integration tests of airlock-ingest through its public API: sources built on disk, a
//! temporary store, progress recorded.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

/// Shared helpers: a store, a recording `Progress`, blobs and manifests.
mod support;

/// OCI image layouts: nested indexes kept byte for byte, tags, re-adds, damaged layouts.
mod layout;

/// `docker save` archives: manifests made deterministically, gzip'd layers, hostile entries.
mod docker_archive;
