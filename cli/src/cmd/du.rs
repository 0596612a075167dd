//! `airlock du`: logical bytes against stored bytes, and how compressed layers are kept.

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
        crate::output::outln!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    let ratio = if du.stored_bytes() > 0 {
        du.logical_bytes as f64 / du.stored_bytes() as f64
    } else {
        0.0
    };
    crate::output::outln!("store      {}", ctx.data.display());
    crate::output::outln!(
        "blobs      {} ({} logical)",
        du.blobs,
        bytes(du.logical_bytes)
    );
    crate::output::outln!(
        "chunks     {} ({} raw, {} inline in recipes)",
        du.chunks,
        bytes(du.chunk_bytes),
        bytes(du.inline_bytes)
    );
    crate::output::outln!(
        "stored     {} ({} in {} packs, {} index)",
        bytes(du.stored_bytes()),
        bytes(du.pack_bytes),
        du.packs,
        bytes(du.index_bytes)
    );
    crate::output::outln!("dedup      {ratio:.2}x logical/stored");
    crate::output::outln!(
        "cut as     {} tar, {} tar then plain, {} plain",
        du.tar_blobs,
        du.tar_then_plain_blobs,
        du.plain_blobs
    );
    let opaque = du.opaque_total();
    crate::output::outln!(
        "layers     {} compressed ({}): {} as chunks of their content ({}), {} as opaque \
         compressed bytes ({})",
        du.compressed.blobs,
        bytes(du.compressed.bytes),
        du.rebuilt.blobs,
        bytes(du.rebuilt.bytes),
        opaque.blobs,
        bytes(opaque.bytes)
    );
    if du.rebuilt.blobs > 0 {
        crate::output::outln!(
            "rebuilt    {} of content rebuilt with {} of reconstruction data ({:.3}%)",
            bytes(du.rebuilt_payload_bytes),
            bytes(du.rebuild_bytes),
            100.0 * du.rebuild_bytes as f64 / du.rebuilt_payload_bytes.max(1) as f64
        );
    }
    for (reason, usage) in &du.opaque {
        crate::output::outln!(
            "opaque     {} ({}): {reason}",
            usage.blobs,
            bytes(usage.bytes)
        );
    }
    if du.staged.blobs > 0 {
        crate::output::outln!(
            "staged     {} ({}) awaiting ingest, kept as received (`airlock serve` cuts them \
             into chunks)",
            du.staged.blobs,
            bytes(du.staged.bytes)
        );
    }
    // Apart from the store: the cache is never a source of truth, and not counted in `stored`.
    crate::output::outln!(
        "cache      {} in {} files of rebuilt gzip layers, outside `stored`",
        bytes(du.cache_bytes),
        du.cache_files
    );
    Ok(ExitCode::SUCCESS)
}
