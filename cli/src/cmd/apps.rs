//! `airlock apps`: applications (`airlock add -f app.yaml`, or imported in a bundle), their
//! versions and the current one; `history`, `use`, `rollback`.
//!
//! A version becomes current when it is added or imported, or by hand. Making another one
//! current (`use`, `rollback`) moves, in one store transaction, the application's current
//! pointer and every image tag the version names (its index's entries carry each image's
//! `repo:tag` and digest) back to that version's digests, recorded in the history with the
//! user who ran it.

use std::{
    process::ExitCode,
    time::{Duration, UNIX_EPOCH},
};

use airlock_ingest::{APP_REPO_PREFIX, read_app};
use airlock_oci::ImageRef;
use airlock_store::{Access, AppAction, AppEvent, Digest, RepoChange, Store};
use anyhow::{Context as _, Result, bail};
use serde_json::json;

use crate::{context::Context, output::outln};

/// Arguments of `airlock apps`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// When each version was added or imported and made current, and by whom, newest first
    History {
        /// The application (its versions are in airlock/apps/NAME)
        name: String,
    },
    /// Make VERSION current: its image tags move to its digests
    Use {
        /// The application
        name: String,
        /// The version to make current
        version: String,
        /// Print the tag moves, change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Make the version current before the present one current again (or --to VERSION): the
    /// current pointer and every image tag of that version move back, in one transaction
    Rollback {
        /// The application
        name: String,
        /// The version to roll back (or forward) to
        #[arg(long, value_name = "VERSION")]
        to: Option<String>,
        /// Print the tag moves, change nothing
        #[arg(long)]
        dry_run: bool,
    },
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    match args.command {
        None => list(ctx),
        Some(Command::History { name }) => history(ctx, &name),
        Some(Command::Use {
            name,
            version,
            dry_run,
        }) => switch(ctx, &name, Some(version), AppAction::Use, dry_run),
        Some(Command::Rollback { name, to, dry_run }) => {
            switch(ctx, &name, to, AppAction::Rollback, dry_run)
        }
    }
}

/// `2026-12-03T17:47:18Z` for unix seconds.
fn time_text(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

/// Application names: repositories `airlock/apps/NAME` and applications with a history.
fn app_names(store: &Store) -> Result<Vec<String>> {
    let mut names: Vec<String> = store
        .repositories()?
        .into_iter()
        .chain(store.app_repos()?)
        .filter_map(|r| r.strip_prefix(APP_REPO_PREFIX).map(str::to_owned))
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

fn list(ctx: &Context) -> Result<ExitCode> {
    let store = ctx.open_store(Access::ReadOnly)?;
    let mut out = Vec::new();
    let mut rows = Vec::new();
    for name in app_names(&store)? {
        let status = store.app_status(&format!("{APP_REPO_PREFIX}{name}"))?;
        let current = status.current.as_ref().map(|(v, _)| v.clone());
        out.push(json!({
            "name": name,
            "repo": status.repo,
            "current": status.current.as_ref().map(|(v, d)| json!({"version": v, "digest": d})),
            "versions": status.versions.iter().map(|(v, d, added)| json!({
                "version": v,
                "digest": d,
                "added": added,
                "current": current.as_deref() == Some(v.as_str()),
            })).collect::<Vec<_>>(),
        }));
        let versions: Vec<&str> = status.versions.iter().map(|(v, _, _)| v.as_str()).collect();
        rows.push((
            name,
            current.unwrap_or_else(|| "-".into()),
            versions.join(", "),
        ));
    }
    if ctx.json {
        outln!("{}", serde_json::Value::Array(out));
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        if !ctx.quiet {
            outln!("no applications (airlock add -f app.yaml, or import a bundle carrying one)");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(3);
    let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max(7);
    outln!("{:w0$}  {:w1$}  VERSIONS (newest first)", "APP", "CURRENT");
    for (name, current, versions) in rows {
        outln!("{name:w0$}  {current:w1$}  {versions}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The repository of application `name`, which must exist.
fn app_repo(store: &Store, name: &str) -> Result<String> {
    let repo = format!("{APP_REPO_PREFIX}{name}");
    if !store.has_repository(&repo)? && store.app_history(&repo)?.is_empty() {
        let known = app_names(store)?;
        bail!(
            "no application {name:?} in this store (applications: {}); `airlock apps` lists them",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        );
    }
    Ok(repo)
}

fn event_json(e: &AppEvent) -> serde_json::Value {
    json!({
        "time": e.time,
        "at": time_text(e.time),
        "action": e.action.as_str(),
        "version": e.version,
        "digest": e.digest,
        "previous": e.previous,
        "by": e.by,
    })
}

fn history(ctx: &Context, name: &str) -> Result<ExitCode> {
    let store = ctx.open_store(Access::ReadOnly)?;
    let repo = app_repo(&store, name)?;
    let mut events = store.app_history(&repo)?;
    events.reverse();
    if ctx.json {
        let all: Vec<_> = events.iter().map(event_json).collect();
        outln!("{}", serde_json::Value::Array(all));
        return Ok(ExitCode::SUCCESS);
    }
    if events.is_empty() {
        outln!("{name}: no history (its versions were recorded before airlock kept one)");
        return Ok(ExitCode::SUCCESS);
    }
    for e in &events {
        let what = match e.action {
            AppAction::Add => "added, made current",
            AppAction::Import => "imported, made current",
            AppAction::Use => "made current (use)",
            AppAction::Rollback => "made current (rollback)",
            AppAction::Drop => "dropped by gc",
        };
        let was = match (&e.previous, e.action.makes_current()) {
            (Some(p), true) if *p != e.version => format!(" (was {p})"),
            _ => String::new(),
        };
        outln!(
            "{}  {:8}  {}  {what}{was}  by {}",
            time_text(e.time),
            e.action.as_str(),
            e.version,
            e.by
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One image tag a switch moves.
struct Move {
    repo: String,
    tag: String,
    from: Option<Digest>,
    to: Digest,
}

/// `use` and `rollback`: makes a version current with its image tags.
fn switch(
    ctx: &Context,
    name: &str,
    to: Option<String>,
    action: AppAction,
    dry_run: bool,
) -> Result<ExitCode> {
    // A store that is not there is an error, not one created for nothing.
    let mut store = ctx.open_store(Access::ReadOnly)?;
    if !dry_run {
        drop(store);
        store = ctx.open_store(Access::ReadWrite)?;
    }
    let repo = app_repo(&store, name)?;
    let status = store.app_status(&repo)?;
    let current = status.current.as_ref().map(|(v, _)| v.clone());
    let versions: Vec<&str> = status.versions.iter().map(|(v, _, _)| v.as_str()).collect();
    let held = || {
        if versions.is_empty() {
            "none".to_owned()
        } else {
            versions.join(", ")
        }
    };
    let target = match to {
        Some(v) => v,
        None => {
            let Some(cur) = &current else {
                bail!(
                    "application {name} has no current version, so nothing to roll back from; \
                     `airlock apps use {name} VERSION` makes one current (versions: {})",
                    held()
                );
            };
            let history = store.app_history(&repo)?;
            let previous = history
                .iter()
                .rev()
                .find(|e| e.action.makes_current())
                .and_then(|e| e.previous.clone());
            match previous {
                Some(p) if p != *cur => p,
                _ => bail!(
                    "application {name}: no version was current before {cur}, so there is \
                     nothing to roll back to; `--to VERSION` picks one (versions: {})",
                    held()
                ),
            }
        }
    };
    let Some(digest) = status
        .versions
        .iter()
        .find(|(v, _, _)| *v == target)
        .map(|(_, d, _)| d.clone())
    else {
        let dropped = store
            .app_history(&repo)?
            .iter()
            .any(|e| e.action == AppAction::Drop && e.version == target);
        bail!(
            "application {name} has no version {target:?}{} (versions: {})",
            if dropped {
                "; gc dropped it (gc.keep_app_versions), import its bundle again to get it back"
            } else {
                ""
            },
            held()
        );
    };
    let r: ImageRef = format!("{repo}@{digest}")
        .parse()
        .with_context(|| format!("naming {repo}:{target}"))?;
    let entries = read_app(&store, &r)?.with_context(|| {
        format!("{repo}:{target} is not an application version (no airlock application index)")
    })?;
    let mut moves = Vec::new();
    for e in &entries {
        let Some(image) = &e.name else { continue };
        let Some(tag) = &image.tag else { continue };
        let image_repo = image.repo.as_str();
        let linked = store
            .link(image_repo, &e.digest)?
            .is_some_and(|l| l.manifest);
        if !linked {
            bail!(
                "version {target} of {name} names image {image_repo}:{tag} at {}, which this \
                 store no longer holds; import the version's bundle again",
                e.digest
            );
        }
        let from = store.tag(image_repo, tag.as_str())?;
        if from.as_ref() != Some(&e.digest) {
            moves.push(Move {
                repo: image_repo.to_owned(),
                tag: tag.to_string(),
                from,
                to: e.digest.clone(),
            });
        }
    }
    let unchanged = current.as_deref() == Some(target.as_str()) && moves.is_empty();
    let move_json: Vec<_> = moves
        .iter()
        .map(|m| json!({"repo": m.repo, "tag": m.tag, "from": m.from, "to": m.to}))
        .collect();
    let report = |applied: bool| {
        if ctx.json {
            outln!(
                "{}",
                json!({
                    "app": name,
                    "from": current,
                    "to": target,
                    "digest": digest,
                    "dry_run": dry_run,
                    "changed": applied,
                    "moves": move_json,
                })
            );
            return;
        }
        if ctx.quiet {
            return;
        }
        for m in &moves {
            let from = m
                .from
                .as_ref()
                .map_or("(none)".to_owned(), |d| d.to_string());
            outln!("{}:{} {from} -> {}", m.repo, m.tag, m.to);
        }
        let was = current.as_deref().unwrap_or("none");
        if unchanged {
            outln!("{name}: {target} is current already; nothing to change");
        } else if applied {
            outln!(
                "{name}: {target} is current (was {was}); {} image tag(s) moved",
                moves.len()
            );
        } else {
            outln!(
                "dry run: {name} would go from {was} to {target}, moving {} image tag(s); \
                 nothing changed",
                moves.len()
            );
        }
    };
    if dry_run || unchanged {
        report(false);
        return Ok(ExitCode::SUCCESS);
    }
    let mut changes: Vec<RepoChange> = moves
        .iter()
        .map(|m| RepoChange::SetTag {
            repo: m.repo.clone(),
            tag: m.tag.clone(),
            digest: m.to.clone(),
        })
        .collect();
    changes.push(RepoChange::AppEvent {
        repo: repo.clone(),
        version: target.clone(),
        action,
        by: ctx.user.clone(),
    });
    store
        .apply_repo_changes(&changes)
        .with_context(|| format!("making {target} of {name} current"))?;
    report(true);
    Ok(ExitCode::SUCCESS)
}
