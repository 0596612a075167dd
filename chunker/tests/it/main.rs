//! Integration tests of airlock-chunker, one binary (see STYLE.md, Tests).

// A failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

/// Shared helpers: cutting, the invariants every cut must keep, tar building and parsing.
mod common;

/// Properties over arbitrary bytes and generated tars (proptest): exact round trip, ids,
/// maximum size, cuts at file boundaries, independence from read sizes.
mod props;

/// Explicit tar corner cases: PAX and GNU long names, links, GNU sparse, truncation,
/// corruption, junk and zeros after the end marker, non-tar input, read errors.
mod cases;

/// The golden table: exact pieces of seeded inputs. A change here is a store format change.
mod golden;

/// A seeded rootfs-like tar generator and its edited second version.
mod rootfs;

/// The measured target: new bytes a second rootfs version adds, tar-aware against plain CDC.
mod dedup;
