//! `airlock import PATH...`: volumes or directories of them, in any order; resumable. Whatever
//! else is on a disc (`airlock import /media/cdrom/*`) is told apart by its first bytes: the
//! bundle's index file is used when needed, anything else is named in a note and ignored (issue
//! 15). Exit 0 when every bundle met is complete, 1 when volumes are still missing or damaged
//! (a later run with them completes the import), 2 on error, and when no path given is a
//! volume.

use std::{path::PathBuf, process::ExitCode};

use airlock_bundle::{
    BundleOutcome, ImportOptions, ImportReport, Prompt, Signer, Trust, TrustedKey, TrustedKeys,
    import, ref_text,
};
use airlock_config::KeySource;
use airlock_store::Access;
use anyhow::{Context as _, Result, bail};
use serde_json::json;

use crate::{
    cmd::bars::Bars,
    context::Context,
    output::{self, EXIT_PROBLEMS},
};

/// Arguments of `airlock import`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Volumes (NAME.NNN.airlock), parity volumes (NAME.parity.NN.airlock) or directories
    /// holding them, in any order; other files (the bundle's index, a README) are named and
    /// ignored
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,

    /// Read and check every frame of the volumes given, say what is there, damaged or missing;
    /// import nothing (exit 1 if anything is damaged or missing)
    #[arg(long)]
    dry_run: bool,

    /// Never ask for the next volume, even on a terminal
    #[arg(long)]
    no_prompt: bool,

    /// Import bundles that are unsigned, or signed by a key airlock.toml [trust] does not
    /// list, without verifying them; a signature by a trusted key that does not verify is
    /// refused all the same
    #[arg(long)]
    allow_unsigned: bool,
}

impl Args {
    /// Paths taken from `cwd` (a command run in the server for a client, see `remote`).
    pub fn absolutize(&mut self, cwd: &std::path::Path) {
        for p in &mut self.paths {
            *p = crate::remote::absolute(cwd, p);
        }
    }
}

/// Asks on the terminal for the next disc.
struct AskOnTerminal;

impl Prompt for AskOnTerminal {
    fn next_volume(&self, bundle: &str, missing: &[u32], count: u32) -> Option<PathBuf> {
        let list: Vec<String> = missing.iter().map(u32::to_string).collect();
        crate::output::write_err_str(&format!(
            "bundle {bundle}: volume(s) {} of {count} still needed.\nInsert the next one and \
             type its path or mount directory (empty line or q: stop here): ",
            list.join(", ")
        ));
        let line = crate::output::read_line()?;
        let line = line.trim();
        if line.is_empty() || line == "q" {
            return None;
        }
        Some(PathBuf::from(line))
    }
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    let access = if args.dry_run {
        Access::ReadOnly
    } else {
        Access::ReadWrite
    };
    let store = ctx.open_store(access)?;
    let interactive = !args.no_prompt && !args.dry_run && !ctx.json && crate::output::interactive();
    let opts = ImportOptions {
        prompt: interactive.then_some(&AskOnTerminal as &dyn Prompt),
        dry_run: args.dry_run,
        trust: Trust {
            keys: trusted_keys(&ctx.config)?,
            allow_unsigned: args.allow_unsigned,
        },
    };
    let bars = Bars::new(ctx.json || ctx.quiet, ctx.quiet || ctx.json)
        .with_import_gauges(ctx.metrics.clone());
    let report = import(&store, &args.paths, &opts, &bars);
    bars.clear();
    let report = report?;
    // Rebuilt gzip layers written to the blob cache by their digest checks (`cache.materialize
    // = "import"`): pulls serve them as files.
    let cached = store.cache_stats().filled_at_store;
    if ctx.json {
        let mut v = report_json(&report);
        v["cached_blobs"] = cached.into();
        crate::output::outln!("{v}");
    } else if !ctx.quiet || !report.is_complete() {
        print_report(&report, args.dry_run);
        if cached > 0 && !ctx.quiet {
            crate::output::outln!(
                "cached {cached} rebuilt gzip layer(s) for pulls (`airlock du` shows the cache)"
            );
        }
    }
    let dry_run_clean = args.dry_run
        && report.unreadable.is_empty()
        && report
            .bundles
            .iter()
            .all(|b| b.damaged.is_empty() && b.missing_volumes.is_empty());
    Ok(if report.is_complete() || dry_run_clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_PROBLEMS)
    })
}

/// The keys of `[trust]`, read and decoded; a key that cannot be is an error naming its place.
fn trusted_keys(config: &airlock_config::Config) -> Result<TrustedKeys> {
    let mut keys = Vec::new();
    for entry in &config.trust.keys {
        let key = match &entry.source {
            KeySource::File(path) => TrustedKey::read_file(path)
                .with_context(|| format!("{}: [trust] keys", entry.origin))?,
            KeySource::Inline(text) => {
                TrustedKey::parse(text, format!("inline key at {}", entry.origin))
                    .map_err(|why| anyhow::anyhow!("{}: [trust] keys: {why}", entry.origin))?
            }
            other => bail!(
                "{}: [trust] keys: unsupported entry {other:?}",
                entry.origin
            ),
        };
        keys.push(key);
    }
    Ok(TrustedKeys::new(keys))
}

fn print_report(report: &ImportReport, dry_run: bool) {
    for (path, why) in &report.unreadable {
        crate::output::outln!("unreadable: {}: {why}", path.display());
    }
    for b in &report.bundles {
        print_bundle(b, dry_run);
    }
}

/// Damaged frames shown per volume before the rest are counted.
const DAMAGE_LINES_PER_VOLUME: usize = 3;

/// `1, 2, 4-8`.
fn ranges<T: Copy + Into<u64>>(numbers: &[T]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < numbers.len() {
        let start: u64 = numbers[i].into();
        let mut end = start;
        while i + 1 < numbers.len() && numbers[i + 1].into() == end + 1 {
            end += 1;
            i += 1;
        }
        out.push(if end > start {
            format!("{start}-{end}")
        } else {
            start.to_string()
        });
        i += 1;
    }
    out.join(", ")
}

fn print_parity(b: &BundleOutcome, dry_run: bool) {
    for p in &b.parity_problems {
        crate::output::outln!("parity: {}: {}", p.path.display(), p.what);
    }
    let verb = if dry_run { "can be rebuilt" } else { "rebuilt" };
    for r in &b.rebuilt {
        let what = if r.given {
            format!(
                "volume {} ({}): {} damaged stripe(s) of {} ({}) {verb}",
                r.volume,
                r.path.display(),
                r.stripes.len(),
                output::bytes(u64::from(r.stripe_bytes)),
                ranges(&r.stripes)
            )
        } else {
            format!(
                "volume {} (not given, {}): {verb} whole, {} stripe(s)",
                r.volume,
                r.path.display(),
                r.stripes.len()
            )
        };
        crate::output::outln!(
            "{what} from volume(s) {} and parity volume(s) {}",
            ranges(&r.from_volumes),
            ranges(&r.from_parity)
        );
    }
}

fn print_bundle(b: &BundleOutcome, dry_run: bool) {
    print_parity(b, dry_run);
    let mut shown: std::collections::HashMap<&std::path::Path, usize> = Default::default();
    for d in &b.damaged {
        let n = shown.entry(&d.path).or_default();
        *n += 1;
        if *n <= DAMAGE_LINES_PER_VOLUME {
            crate::output::outln!(
                "damaged: {} (volume {}) at offset {}: {}",
                d.path.display(),
                d.volume,
                d.offset,
                d.what
            );
        }
    }
    for (path, n) in shown {
        if n > DAMAGE_LINES_PER_VOLUME {
            crate::output::outln!(
                "damaged: {} has {} more damaged frames",
                path.display(),
                n - DAMAGE_LINES_PER_VOLUME
            );
        }
    }
    let refs: Vec<String> = b.refs.iter().map(ref_text).collect();
    crate::output::outln!("bundle {} ({}): {}", b.name, b.bundle_id, b.signer);
    if b.complete {
        crate::output::outln!(
            "imported bundle {} ({}): {} reference(s) in {:.1}s; read {}, {} new ({} chunks), \
             {} blob(s) verified and committed",
            b.name,
            b.bundle_id,
            refs.len(),
            b.elapsed.as_secs_f64(),
            output::bytes(b.bytes_read),
            output::bytes(b.new_bytes),
            b.new_chunks,
            b.new_blobs
        );
        for r in refs {
            crate::output::outln!("  {r}");
        }
        return;
    }
    let missing: Vec<String> = b.missing_volumes.iter().map(u32::to_string).collect();
    if dry_run {
        crate::output::outln!(
            "bundle {} ({}): {} volume(s); checked {} of frames; {}",
            b.name,
            b.bundle_id,
            b.volume_count,
            output::bytes(b.bytes_read),
            if missing.is_empty() {
                "every volume needed is here and intact".to_owned()
            } else {
                format!("still needed: volume(s) {}", missing.join(", "))
            }
        );
        for r in refs {
            crate::output::outln!("  {r}");
        }
        return;
    }
    crate::output::outln!(
        "bundle {} ({}) is not complete: volume(s) {} of {} still needed{}",
        b.name,
        b.bundle_id,
        missing.join(", "),
        b.volume_count,
        if b.damaged.is_empty() {
            ""
        } else {
            " (damaged or not given)"
        }
    );
    if let Some(why) = &b.parity_short {
        crate::output::outln!("  parity: {why}");
    }
    if !b.affected.is_empty() {
        crate::output::outln!("  waiting for them: {}", b.affected.join(", "));
    }
    crate::output::outln!(
        "  everything verified so far is kept: run `airlock import` with the missing volume(s) \
         to finish; no tag has moved"
    );
}

fn report_json(report: &ImportReport) -> serde_json::Value {
    json!({
        "complete": report.is_complete(),
        "unreadable": report.unreadable.iter().map(|(p, w)| json!({"path": p, "error": w})).collect::<Vec<_>>(),
        "ignored": report.ignored.iter().map(|(p, w)| json!({"path": p, "why": w})).collect::<Vec<_>>(),
        "bundles": report.bundles.iter().map(|b| json!({
            "name": b.name,
            "bundle_id": b.bundle_id.to_string(),
            "complete": b.complete,
            "volume_count": b.volume_count,
            "missing_volumes": b.missing_volumes,
            "affected": b.affected,
            "damaged": b.damaged.iter().map(|d| json!({
                "path": d.path, "volume": d.volume, "offset": d.offset, "error": d.what,
            })).collect::<Vec<_>>(),
            "refs": b.refs.iter().map(ref_text).collect::<Vec<_>>(),
            "signer": signer_json(&b.signer),
            "parity_volumes": b.parity_volumes,
            "rebuilt": b.rebuilt.iter().map(|r| json!({
                "volume": r.volume,
                "path": r.path,
                "given": r.given,
                "stripes": r.stripes,
                "stripe_bytes": r.stripe_bytes,
                "from_volumes": r.from_volumes,
                "from_parity": r.from_parity,
            })).collect::<Vec<_>>(),
            "parity_short": b.parity_short,
            "parity_problems": b.parity_problems.iter().map(|p| json!({
                "path": p.path, "error": p.what,
            })).collect::<Vec<_>>(),
            "bytes_read": b.bytes_read,
            "new_chunks": b.new_chunks,
            "new_bytes": b.new_bytes,
            "new_blobs": b.new_blobs,
            "seconds": b.elapsed.as_secs_f64(),
        })).collect::<Vec<_>>(),
    })
}

fn signer_json(s: &Signer) -> serde_json::Value {
    match s {
        Signer::Trusted {
            key_id,
            key,
            comment,
        } => {
            json!({"status": "trusted", "key_id": key_id.to_string(), "key": key, "trusted_comment": comment})
        }
        Signer::NotTrusted { key_id, comment } => {
            json!({"status": "not_trusted", "key_id": key_id.to_string(), "trusted_comment": comment})
        }
        Signer::Unsigned => json!({"status": "unsigned"}),
    }
}
