//! `airlock ls`: repositories, their tags and the manifests they point at.

use std::process::ExitCode;

use airlock_store::Access;
use anyhow::Result;
use serde_json::json;

use crate::context::Context;

/// Arguments of `airlock ls`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only repositories whose name starts with this
    #[arg(value_name = "PREFIX")]
    prefix: Option<String>,
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    let store = ctx.open_store(Access::ReadOnly)?;
    let mut repos = Vec::new();
    for repo in store.repositories()? {
        if args.prefix.as_deref().is_some_and(|p| !repo.starts_with(p)) {
            continue;
        }
        let mut tags = Vec::new();
        for (tag, digest) in store.tags(&repo)? {
            let media_type = store.manifest_media_type(&digest)?;
            tags.push((tag, digest, media_type));
        }
        repos.push((repo, tags));
    }
    if ctx.json {
        let v: Vec<_> = repos
            .iter()
            .map(|(repo, tags)| {
                json!({
                    "repository": repo,
                    "tags": tags.iter().map(|(t, d, m)| json!({
                        "tag": t, "digest": d, "media_type": m,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        crate::output::outln!("{}", json!({ "repositories": v }));
        return Ok(ExitCode::SUCCESS);
    }
    for (repo, tags) in &repos {
        if tags.is_empty() {
            crate::output::outln!("{repo}  (no tags)");
        }
        for (tag, digest, media_type) in tags {
            crate::output::outln!(
                "{repo}:{tag}  {digest}  {}",
                media_type.as_deref().map_or("", kind)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A short name for a manifest media type.
fn kind(media_type: &str) -> &str {
    match media_type {
        airlock_oci::OCI_MANIFEST => "oci-manifest",
        airlock_oci::OCI_INDEX => "oci-index",
        airlock_oci::DOCKER_MANIFEST => "docker-manifest",
        airlock_oci::DOCKER_MANIFEST_LIST => "docker-manifest-list",
        other => other,
    }
}
