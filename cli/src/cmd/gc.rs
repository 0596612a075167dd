//! `airlock gc`: plan, print, and (unless `--dry-run`) apply.

use std::process::ExitCode;

use airlock_store::{Access, GcOptions};
use anyhow::Result;

use crate::{context::Context, output};

/// Arguments of `airlock gc`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print what would be removed, change nothing
    #[arg(long)]
    dry_run: bool,
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    let access = if args.dry_run {
        Access::ReadOnly
    } else {
        Access::ReadWrite
    };
    let store = ctx.open_store(access)?;
    let options = GcOptions {
        keep_tag_history: ctx.config.gc.keep_tag_history,
        upload_grace: ctx.config.gc.upload_grace,
        keep_app_versions: ctx.config.gc.keep_app_versions,
    };
    let plan = store.plan_gc(options)?;
    let blob_bytes: u64 = plan.blobs.iter().map(|(_, s)| s).sum();
    if !ctx.json && !ctx.quiet {
        crate::output::outln!(
            "plan: {} application version(s) to drop, {} unreachable blobs ({}), {} chunks ({}) no longer used, {} packs to delete, {} to rewrite",
            plan.app_versions.len(),
            plan.blobs.len(),
            output::bytes(blob_bytes),
            plan.chunks,
            output::bytes(plan.chunk_bytes),
            plan.delete_packs.len(),
            plan.repack_packs.len()
        );
        for v in &plan.app_versions {
            crate::output::outln!(
                "  drop application version {}:{} ({}): beyond gc.keep_app_versions = {}",
                v.repo,
                v.version,
                v.digest,
                plan.options.keep_app_versions
            );
        }
        if ctx.verbose > 0 {
            for (d, s) in &plan.blobs {
                crate::output::outln!("  remove {d} ({})", output::bytes(*s));
            }
        }
    }
    if args.dry_run {
        if ctx.json {
            crate::output::outln!("{}", plan_json(&plan, None));
        } else if !ctx.quiet {
            crate::output::outln!("dry run: nothing changed");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let pb = output::spinner("collecting garbage", ctx.json || ctx.quiet);
    let report = store.apply_gc(&plan)?;
    pb.finish_and_clear();
    if ctx.json {
        crate::output::outln!("{}", plan_json(&plan, Some(&report)));
    } else if !ctx.quiet {
        crate::output::outln!(
            "dropped {} application version(s); removed {} blobs and {} chunks; deleted {} packs, rewrote {}; freed {}; pruned {} tag-history entries",
            report.app_versions,
            report.blobs,
            report.chunks,
            report.packs_deleted,
            report.packs_rewritten,
            output::bytes(report.bytes_freed),
            report.history_pruned
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn plan_json(
    plan: &airlock_store::GcPlan,
    report: Option<&airlock_store::GcReport>,
) -> serde_json::Value {
    let mut v = serde_json::json!({
        "dry_run": report.is_none(),
        "blobs": plan.blobs.iter().map(|(d, s)| serde_json::json!({"digest": d, "size": s})).collect::<Vec<_>>(),
        "app_versions": plan.app_versions.iter().map(|v| serde_json::json!({"repo": v.repo, "version": v.version, "digest": v.digest})).collect::<Vec<_>>(),
        "chunks": plan.chunks,
        "chunk_bytes": plan.chunk_bytes,
        "delete_packs": plan.delete_packs.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        "repack_packs": plan.repack_packs.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
    });
    if let Some(r) = report {
        v["applied"] = serde_json::json!({
            "blobs": r.blobs,
            "chunks": r.chunks,
            "packs_deleted": r.packs_deleted,
            "packs_rewritten": r.packs_rewritten,
            "bytes_freed": r.bytes_freed,
            "history_pruned": r.history_pruned,
            "app_versions": r.app_versions,
        });
    }
    v
}
