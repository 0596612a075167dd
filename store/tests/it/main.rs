//! Integration tests of airlock-store through its public API (and, where a defect has to be
//! made, the documented on-disk layout).
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod apps; // issue 18: application histories, the current pointer, GC keeping versions, format 4
mod cache; // issue 14: shared rebuilds, the cache policies, read-only fills, verify, the limit
mod checkpoints; // issue 14: ranges rebuild from the checkpoint before them, whole blobs in parallel, exactly
mod common; // fixtures: seeded content, tar streams, small-pack stores, pack-file walkers
mod crash; // SIGKILL a writer process at random points; reopen, verify, read back ACKed blobs
mod dedup; // chunk-level dedup across blobs and tar versions; PutOutcome and du accounting
mod errors; // failed puts store nothing; unknown blobs, bad ranges, failing readers
mod flate2_backends; // issue 3: gzip fixtures by flate2 zlib-ng and zlib-rs round-trip as recorded
mod format; // format parameters recorded at creation win; read-only access; the store lock
mod gc; // plan then apply: roots, grace, tag-history window, repack, GC during writes
mod go_gzip; // issue 6: Go compress/gzip and pgzip layers are rebuilt; fallbacks; rebuilt base
mod golden; // issue 13: stores written by an earlier airlock open, verify and rebuild exactly
mod layer_versions; // issue 3: a rebuilt base's second version stores little new
mod layers; // issue 3: gzip encoders round-trip, fallbacks and reasons, ranges, cache, GC
mod packs; // packs seal at the size limit, blobs span packs, packs describe themselves
mod repos; // links, tags and history, referrers, uploads, all-or-nothing changes
mod roundtrip; // put then read back: edge sizes, tars, sha512, ranges, concurrent puts
mod staged; // issue 14: staged blobs read, link, GC, verify and ingest as blobs; leftovers
mod tools; // issue 13: a missing gzip, pigz, python3, tar or Go fixture skips visibly, or fails in CI
mod transfer; // issue 5: blobs move between stores as described recipes and frames of chunks
mod verify; // fixtures named by defect: verify names pack, offset, blobs; reads fail cleanly
