//! `airlock du`: logical bytes against stored bytes.

use std::process::ExitCode;

use airlock_store::Access;
use anyhow::Result;

use crate::{context::Context, output::bytes};

/// Arguments of `airlock du`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(ctx: &Context, _args: Args) -> Result<ExitCode> {
    let store = ctx.open_store(Access::ReadOnly)?;
    let du = store.du()?;
    if ctx.json {
        let mut v = serde_json::to_value(&du)?;
        v["stored_bytes"] = du.stored_bytes().into();
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    let ratio = if du.stored_bytes() > 0 {
        du.logical_bytes as f64 / du.stored_bytes() as f64
    } else {
        0.0
    };
    println!("store      {}", ctx.data.display());
    println!(
        "blobs      {} ({} logical)",
        du.blobs,
        bytes(du.logical_bytes)
    );
    println!(
        "chunks     {} ({} raw, {} inline in recipes)",
        du.chunks,
        bytes(du.chunk_bytes),
        bytes(du.inline_bytes)
    );
    println!(
        "stored     {} ({} in {} packs, {} index)",
        bytes(du.stored_bytes()),
        bytes(du.pack_bytes),
        du.packs,
        bytes(du.index_bytes)
    );
    println!("dedup      {ratio:.2}x logical/stored");
    println!(
        "cut as     {} tar, {} tar then plain, {} plain",
        du.tar_blobs, du.tar_then_plain_blobs, du.plain_blobs
    );
    Ok(ExitCode::SUCCESS)
}
