//! `airlock ls`: repositories, their tags and the manifests they point at, each repository by
//! the name a pull reads it by directly (`acme/gateway` for the stored
//! `docker.io/acme/gateway`, by `airlock_oci::direct_name`), and by its stored name. An index
//! the store holds only some platforms of (`export --platform`, `add --platform`) says which:
//! `linux/arm64 of 3 platforms`.

use std::{collections::BTreeSet, process::ExitCode};

use airlock_oci::{Platform, RepoName, RepoQuery, direct_name, parse_manifest, platform_list};
use airlock_store::{Access, Digest, Store};
use anyhow::{Context as _, Result};
use serde_json::json;

use crate::context::Context;

/// Arguments of `airlock ls`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only repositories whose stored or direct name starts with this
    #[arg(value_name = "PREFIX")]
    prefix: Option<String>,
}

/// One repository as listed.
struct Listed {
    stored: String,
    /// The shortest name a direct pull reads it by; `None` when every name is ambiguous.
    direct: Option<RepoName>,
    /// The other repositories its stored name also means, when it has no direct name.
    shadowed_by: Vec<String>,
    tags: Vec<(String, Digest, Option<String>, Option<Partial>)>,
}

/// The platforms of an index the store holds, when it holds only some.
struct Partial {
    present: Vec<Platform>,
    of: usize,
}

/// The platforms a tagged index holds, when children are absent on purpose; `None` for a
/// manifest, or an index held whole.
fn partial(store: &Store, digest: &Digest, media_type: Option<&str>) -> Result<Option<Partial>> {
    let absent = store.absent_children(digest)?;
    if absent.is_empty() {
        return Ok(None);
    }
    let bytes = store.read_blob(digest)?;
    let Ok(parsed) = parse_manifest(media_type, &bytes) else {
        return Ok(None);
    };
    let mut present = Vec::new();
    let mut of = 0;
    for e in &parsed.manifests {
        let Some(p) = e.platform.clone().filter(|p| p.os != "unknown") else {
            continue;
        };
        of += 1;
        let held = e
            .digest
            .as_str()
            .parse::<Digest>()
            .is_ok_and(|d| !absent.contains(&d));
        if held {
            present.push(p);
        }
    }
    Ok(Some(Partial { present, of }))
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    let store = ctx.open_store(Access::ReadOnly)?;
    let all = store.repositories()?;
    let held: BTreeSet<&str> = all.iter().map(String::as_str).collect();
    let is_stored = |name: &RepoName| Ok::<_, anyhow::Error>(held.contains(name.as_str()));
    let mut repos = Vec::new();
    for repo in &all {
        // Names written by earlier versions are valid names; one that is not has no other.
        let (direct, shadowed_by) = match repo.parse::<RepoName>() {
            Ok(name) => {
                let direct = direct_name(&name, is_stored)?;
                let others = match direct {
                    Some(_) => Vec::new(),
                    None => RepoQuery::from(name.clone())
                        .candidates()
                        .filter(|c| *c != &name && held.contains(c.as_str()))
                        .map(ToString::to_string)
                        .collect(),
                };
                (direct, others)
            }
            Err(_) => (None, Vec::new()),
        };
        let shown = direct.as_ref().map_or(repo.as_str(), RepoName::as_str);
        if let Some(p) = args.prefix.as_deref()
            && !repo.starts_with(p)
            && !shown.starts_with(p)
        {
            continue;
        }
        let mut tags = Vec::new();
        for (tag, digest) in store.tags(repo)? {
            let media_type = store
                .manifest_media_type(&digest)
                .with_context(|| format!("reading {repo}:{tag}"))?;
            let part = partial(&store, &digest, media_type.as_deref())
                .with_context(|| format!("reading the platforms of {repo}:{tag}"))?;
            tags.push((tag, digest, media_type, part));
        }
        repos.push(Listed {
            stored: repo.clone(),
            direct,
            shadowed_by,
            tags,
        });
    }
    if ctx.json {
        let v: Vec<_> = repos
            .iter()
            .map(|r| {
                json!({
                    "repository": r.stored,
                    "direct": r.direct,
                    "tags": r.tags.iter().map(|(t, d, m, p)| {
                        let mut v = json!({"tag": t, "digest": d, "media_type": m});
                        if let Some(p) = p {
                            v["platforms"] = json!({
                                "present": p.present.iter().map(ToString::to_string).collect::<Vec<_>>(),
                                "of": p.of,
                            });
                        }
                        v
                    }).collect::<Vec<_>>(),
                })
            })
            .collect();
        crate::output::outln!("{}", json!({ "repositories": v }));
        return Ok(ExitCode::SUCCESS);
    }
    for r in &repos {
        let (name, note) = shown(r);
        if r.tags.is_empty() {
            crate::output::outln!("{name}  (no tags){note}");
        }
        for (tag, digest, media_type, part) in &r.tags {
            let platforms = match part {
                Some(p) => format!(
                    "  {} of {} platforms",
                    if p.present.is_empty() {
                        "none".to_owned()
                    } else {
                        platform_list(&p.present)
                    },
                    p.of
                ),
                None => String::new(),
            };
            crate::output::outln!(
                "{name}:{tag}  {digest}  {}{platforms}{note}",
                media_type.as_deref().map_or("", kind)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The name a line starts with and what follows it: the stored name when it differs (the name
/// to pull by through a mirror), or why there is no direct name.
fn shown(r: &Listed) -> (&str, String) {
    match &r.direct {
        Some(direct) if direct.as_str() == r.stored => (&r.stored, String::new()),
        Some(direct) => (direct.as_str(), format!("  (stored as {})", r.stored)),
        None if r.shadowed_by.is_empty() => (&r.stored, String::new()),
        None => (
            &r.stored,
            format!(
                "  (no direct pull: {} also means {})",
                r.stored,
                r.shadowed_by.join(", ")
            ),
        ),
    }
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
