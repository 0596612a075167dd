//! Integration tests of the `airlock` binary: real processes, real files, loopback only.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

/// `airlock add -f app.yaml`: the app index, its links, re-adds, bad files.
mod add_app;
/// `airlock add docker-archive:`: both archive layouts, formats, re-adds, hostile archives.
mod add_docker_archive;
/// `airlock add oci:` and `oci-archive:`: tags, full names, nested indexes, damaged layouts.
mod add_oci;
/// skopeo as producer (docker-archive) and consumer (pulls from `airlock serve`); skipped loudly without it.
mod add_skopeo;
/// `airlock add docker://`: token auth, all platforms or one, referrers, mirror naming.
mod add_upstream;
/// Issue 18: application versions: import, rollback and roll forward pulled by containerd,
/// history, GC keeping the last versions.
mod apps;
/// Bundles: export to tiny volumes, shuffled import, deltas, damage, kill -9, skopeo pulls.
mod bundle;
/// Shared helpers: running the binary, filling a store through the library.
mod common;
/// Configuration errors and precedence as the user sees them.
mod config;
/// Test content for `airlock add`: layers, configs, tars written entry by entry, archives.
mod content;
/// `airlock diff`: app versions image by image (changed layers, added, removed), the delta's size.
mod diff;
/// Issue 15: commands handed to a running server; containerd pulls through an import and a GC.
mod live;
/// Issue 15: short names (`acme/gateway:1.0.0`) in ls, export, diff, add --as and a containerd
/// pull; ambiguous names; golden stores list the same.
mod names;
/// Issue 15: health, metrics after a push and a pull, JSON logs, the systemd unit's command line.
mod ops;
/// Issue 17: parity volumes: missing and damaged volumes rebuilt, too many named, bad parity unused.
mod parity;
/// Issue 17: `export --platform` and `add --platform`: one platform of a multi-platform index
/// travels, the site lists, verifies and serves it, containerd pulls it.
mod platforms;
/// `airlock serve`: starts, answers on loopback, stops on SIGTERM.
mod serve;
/// Issue 17: signed bundles: keys, `export --sign`, minisign interop, `[trust]`, refusals.
mod signed;
/// Issue 14: serve killed during pushes and ingests; du, verify and export with staged blobs.
mod staged;
/// Issue 17: volume 1's disc carries the program, README.txt and SHA256SUMS; a cd fits its medium.
mod starter;
/// `airlock du`, `verify` and `gc` over stores built by the library, incl. damaged ones.
mod store_commands;
