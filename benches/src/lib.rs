//! Benchmarks for airlock: criterion micro-benchmarks (`benches/`) and the seeded inputs they
//! share.
//!
//! This library holds the input generators and the measuring tools the bench targets share;
//! what is measured lives in the bench targets, one file each (`chunking` for the chunker).
//! Nothing here is used by airlock itself, and the generators know nothing of airlock: they
//! produce plain bytes and tar streams.
//!
//! # Overview
//! - [`data::Rootfs`]: a seeded, rootfs-like tree of files (text, binaries, already-compressed
//!   data, directories, links) that writes itself as a tar stream, and
//!   [`data::Rootfs::edit`] to derive the next version of it.
//! - [`data::rootfs_tar`], [`data::edit_rootfs`]: the same as one-call shortcuts.
//! - [`measure`]: CPU seconds of this process, its children or another process (/proc).
//! - [`process`]: the `airlock` binary and tools on `PATH`, run to success.
//! - [`table::Table`]: figures printed as an aligned table.
//! - [`measure::PeakSampler`], [`measure::peak_rss_bytes`]: peak resident memory (/proc).
//! - [`fetch::fan_out`]: concurrent blob fetchers over [`http::Client`], bodies digest-checked.
//! - [`server::Airlock`], [`server::Distribution`]: registry processes on loopback;
//!   [`containerd::Containerd`]: a containerd daemon of its own.
//! - [`release`]: the site benchmark's N images of Go-gzip'd layers (through
//!   [`gogzip::GoGzip`]) written as OCI layouts.
//!
//! ```
//! use airlock_benches::data::{self, Edit};
//!
//! let v1 = data::Rootfs::generate(7, 50, 64 * 1024);
//! let v2 = data::edit_rootfs(&v1, 8, Edit::TYPICAL);
//! assert_eq!(v1.entries().len(), v2.entries().len());
//! assert_eq!(v1.to_tar().len() % 512, 0);
//! ```

pub mod app;
pub mod containerd;
pub mod data;
pub mod fetch;
pub mod gogzip;
pub mod http;
pub mod measure;
pub mod process;
pub mod release;
pub mod server;
pub mod table;
