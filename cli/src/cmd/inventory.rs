//! `airlock inventory --out FILE`: what this store holds (chunk ids and blob digests), for the
//! vendor's `airlock export --have FILE` to ship only what is missing here.

use std::{path::PathBuf, process::ExitCode};

use airlock_bundle::Inventory;
use airlock_store::Access;
use anyhow::{Context as _, Result};
use serde_json::json;

use crate::{context::Context, output};

/// Arguments of `airlock inventory`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// File to write (replaced atomically)
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

impl Args {
    /// Paths taken from `cwd` (a command run in the server for a client, see `remote`).
    pub fn absolutize(&mut self, cwd: &std::path::Path) {
        self.out = crate::remote::absolute(cwd, &self.out);
    }
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    let store = ctx.open_store(Access::ReadOnly)?;
    let format = serde_json::to_string(store.format()).unwrap_or_default();
    let mut builder = Inventory::builder(format);
    let pb = output::spinner("listing chunks and blobs", ctx.json || ctx.quiet);
    store
        .for_each_chunk_id(|id| {
            builder.add_chunk(*id);
        })
        .context("listing the store's chunks")?;
    for d in store.blob_digests().context("listing the store's blobs")? {
        builder.add_blob(d);
    }
    let inventory = builder.build();
    inventory
        .write(&args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    pb.finish_and_clear();
    let size = std::fs::metadata(&args.out).map_or(0, |m| m.len());
    if ctx.json {
        crate::output::outln!(
            "{}",
            json!({
                "path": args.out,
                "inventory_id": inventory.id().to_string(),
                "chunks": inventory.chunks().len(),
                "blobs": inventory.blobs().len(),
                "bytes": size,
            })
        );
    } else if !ctx.quiet {
        crate::output::outln!(
            "wrote inventory {} ({}): {} chunks, {} blobs, {}; give it to the vendor's \
             `airlock export --have`",
            args.out.display(),
            inventory.id(),
            inventory.chunks().len(),
            inventory.blobs().len(),
            output::bytes(size)
        );
    }
    Ok(ExitCode::SUCCESS)
}
