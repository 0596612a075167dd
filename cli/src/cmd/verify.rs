//! `airlock verify`: every pack, chunk, recipe and digest, and the blob cache's files; exit 1
//! if anything in the store is wrong.
//!
//! A cache file that does not match its digest is removed and printed as a warning, but is no
//! problem of the store: exit 0 when the store itself is clean. The cache holds copies made
//! from the store and checked against their digests; a damaged copy loses nothing (the next
//! pull rebuilds the blob from the store) and is already repaired by removing it, while exit 1
//! means something stored needs attention.

use std::process::ExitCode;

use airlock_store::{Access, Verify};
use anyhow::Result;

use crate::{
    context::Context,
    output::{self, EXIT_PROBLEMS},
};

/// Arguments of `airlock verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Skip rebuilding every blob to check its digest (packs, chunks and recipes are still checked)
    #[arg(long)]
    quick: bool,
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    let store = ctx.open_store(Access::ReadOnly)?;
    let depth = if args.quick {
        Verify::Quick
    } else {
        Verify::Full
    };
    let pb = output::spinner("verifying", ctx.json || ctx.quiet);
    let report = store.verify(depth)?;
    pb.finish_and_clear();
    let code = if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_PROBLEMS)
    };
    if ctx.json {
        let v = serde_json::json!({
            "clean": report.is_clean(),
            "packs": report.packs,
            "frames": report.frames,
            "chunks": report.chunks,
            "blobs": report.blobs,
            "bytes_hashed": report.bytes_hashed,
            "defects": report.defects.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            "cache": {
                "files": report.cache.files,
                "bytes": report.cache.bytes,
                "dropped": report.cache.dropped.iter().map(|d| serde_json::json!({
                    "path": d.path, "why": d.why,
                })).collect::<Vec<_>>(),
            },
        });
        crate::output::outln!("{v}");
        return Ok(code);
    }
    for d in &report.defects {
        crate::output::outln!("problem: {d}");
    }
    for d in &report.cache.dropped {
        crate::output::outln!("warning: {d} (a copy, not stored data: the next pull rebuilds it)");
    }
    if !ctx.quiet {
        crate::output::outln!(
            "checked {} packs, {} frames, {} chunks, {} blobs ({} rebuilt and hashed), {} \
             cache files ({}): {}",
            report.packs,
            report.frames,
            report.chunks,
            report.blobs,
            output::bytes(report.bytes_hashed),
            report.cache.files,
            output::bytes(report.cache.bytes),
            if report.is_clean() {
                "clean".to_owned()
            } else {
                format!("{} problems", report.defects.len())
            }
        );
    }
    Ok(code)
}
