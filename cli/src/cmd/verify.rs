//! `airlock verify`: every pack, chunk, recipe and digest; exit 1 if anything is wrong.

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
        });
        println!("{v}");
        return Ok(code);
    }
    for d in &report.defects {
        println!("problem: {d}");
    }
    if !ctx.quiet {
        println!(
            "checked {} packs, {} frames, {} chunks, {} blobs ({} rebuilt and hashed): {}",
            report.packs,
            report.frames,
            report.chunks,
            report.blobs,
            output::bytes(report.bytes_hashed),
            if report.is_clean() {
                "clean".to_owned()
            } else {
                format!("{} problems", report.defects.len())
            }
        );
    }
    Ok(code)
}
