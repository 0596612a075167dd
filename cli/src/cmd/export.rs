//! `airlock export REF... --out DIR`: plan, print the plan, and (unless `--dry-run`) write the
//! bundle's volumes.

use std::{path::PathBuf, process::ExitCode, time::Instant};

use airlock_bundle::{
    BundleIndex, DEFAULT_LEVEL, ExportOptions, ExportPlan, ExportReport, Have, Inventory,
    OLDEST_GLIBC, Program, VolumeSize, plan_export, ref_text, write_export,
};
use airlock_ingest::app_images;
use airlock_oci::{ImageRef, platform_list};
use anyhow::{Context as _, Result, bail};
use serde_json::json;

use crate::{
    cmd::{bars::Bars, names},
    context::Context,
    output,
};

/// Arguments of `airlock export`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Images, indexes or application versions to export: REPO:TAG or REPO@DIGEST, as docker
    /// names them (nginx:1.27 is docker.io/library/nginx:1.27; an application added with
    /// `airlock add -f` is `airlock/apps/NAME:VERSION`)
    #[arg(required = true, value_name = "REF")]
    refs: Vec<String>,

    /// Directory to write the volumes to
    #[arg(long, value_name = "DIR")]
    out: PathBuf,

    /// Bundle name: files are NAME.NNN.airlock and NAME.index.airlock [default: from the first REF]
    #[arg(long)]
    name: Option<String>,

    /// Largest volume: cd, dvd, dvd-dl, bd, bd-dl, or a size such as 2GiB or 700M
    #[arg(long, default_value = "dvd", value_name = "SIZE")]
    volume_size: String,

    /// zstd level of the bundle's frames (1-22); higher is smaller and slower to export, import
    /// speed barely changes
    #[arg(long, default_value_t = DEFAULT_LEVEL, value_parser = clap::value_parser!(i32).range(1..=22))]
    level: i32,

    /// Ship only what the site lacks after importing this earlier bundle (its NAME.index.airlock)
    #[arg(long, value_name = "INDEX", conflicts_with = "have")]
    since: Option<PathBuf>,

    /// Ship only what the site lacks, from its inventory (`airlock inventory --out FILE` there)
    #[arg(long, value_name = "INVENTORY")]
    have: Option<PathBuf>,

    /// Leave out referrers (signatures, SBOMs) of the images
    #[arg(long)]
    no_referrers: bool,

    /// The airlock program to put beside volume 1, with README.txt and SHA256SUMS, so the site
    /// can start from the first disc [default: this airlock]; build one that runs on glibc 2.17
    /// (RHEL/CentOS 7) with tools/release/portable.sh, or an aarch64 one for ARM sites
    #[arg(long, value_name = "FILE", conflicts_with = "no_binary")]
    binary: Option<PathBuf>,

    /// Leave the airlock program, README.txt and SHA256SUMS out of volume 1's disc
    #[arg(long)]
    no_binary: bool,
    /// Ship only this platform of multi-platform indexes (repeatable): os/arch[/variant], e.g.
    /// linux/arm64; the indexes travel unchanged, the other platforms' manifests stay behind
    #[arg(long = "platform", value_name = "OS/ARCH")]
    platforms: Vec<String>,

    /// Add N parity volumes (NAME.parity.NN.airlock, each within --volume-size): import rebuilds
    /// any N missing or damaged data volumes from them
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=99))]
    parity: u32,

    /// Print what would be shipped, write nothing
    #[arg(long)]
    dry_run: bool,

    /// Sign the bundle with this minisign secret key (`airlock key generate`, or `minisign
    /// -G`): every volume carries the signature, and NAME.index.airlock.minisig is written
    /// beside the index; an encrypted key's password is asked on the terminal
    #[arg(long, value_name = "SECRET_KEY_FILE")]
    sign: Option<PathBuf>,

    /// Read the --sign key's password from standard input instead of asking on the terminal
    #[arg(long, requires = "sign")]
    password_stdin: bool,
}

impl Args {
    /// Paths taken from `cwd` (a command run in the server for a client, see `remote`).
    pub fn absolutize(&mut self, cwd: &std::path::Path) {
        self.out = crate::remote::absolute(cwd, &self.out);
        for p in [
            &mut self.since,
            &mut self.have,
            &mut self.binary,
            &mut self.sign,
        ]
        .into_iter()
        .flatten()
        {
            *p = crate::remote::absolute(cwd, p);
        }
    }
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    // Recipes are what a bundle ships: staged blobs are ingested first (issue 14).
    let store = ctx.open_store_ingested()?;
    let mut refs = Vec::new();
    for text in &args.refs {
        let r = names::image_ref(&store, text)?;
        let images = app_images(&store, &r)?;
        refs.push(r);
        refs.extend(images);
    }
    let volume_size = VolumeSize::parse(&args.volume_size)
        .with_context(|| format!("--volume-size {}", args.volume_size))?
        .0;
    let have = match (&args.since, &args.have) {
        (Some(p), _) => Have::Bundle(Box::new(
            BundleIndex::read_file(p)
                .with_context(|| format!("reading --since {}", p.display()))?,
        )),
        (None, Some(p)) => Have::Inventory(Box::new(
            Inventory::read(p).with_context(|| format!("reading --have {}", p.display()))?,
        )),
        (None, None) => Have::Nothing,
    };
    // The key first: a wrong password or file fails before any work.
    let signer = match &args.sign {
        Some(path) if !args.dry_run => {
            Some(crate::cmd::key::signing_key(path, args.password_stdin)?)
        }
        Some(path) => {
            airlock_bundle::SecretKeyFile::read(path).context("reading the --sign key")?;
            None
        }
        None => None,
    };
    let name = match &args.name {
        Some(n) => n.clone(),
        None => default_name(&refs[0]),
    };
    let program = if args.no_binary {
        None
    } else {
        let path = match &args.binary {
            Some(p) => p.clone(),
            None => std::env::current_exe().context("finding this airlock program for volume 1")?,
        };
        let program = Program::inspect(&path).context("--binary: the program volume 1 carries")?;
        if !program.runs_on_oldest_glibc() {
            crate::output::errln!(
                "warning: volume 1 carries {} built for {} Linux needing {}: it will not start \
                 on sites with glibc {}.{} (RHEL/CentOS 7, Kylin, openEuler); give one built by \
                 tools/release/portable.sh with --binary, or --no-binary",
                program.path.display(),
                program.arch.as_str(),
                program.needs(),
                OLDEST_GLIBC.0,
                OLDEST_GLIBC.1
            );
        }
        Some(program)
    };
    let platforms = names::platforms(&args.platforms)?;
    let opts = ExportOptions {
        name,
        out_dir: args.out.clone(),
        volume_size,
        level: args.level,
        referrers: !args.no_referrers,
        platforms,
        have,
        tool: format!("airlock {}", env!("CARGO_PKG_VERSION")),
        program,
        signer,
        parity: args.parity,
    };
    let plan = plan_export(&store, &refs, &opts)?;
    for w in &plan.warnings {
        crate::output::errln!("warning: {w}");
    }
    if !ctx.json && !ctx.quiet {
        print_plan(&plan, &opts, ctx.verbose);
    }
    if args.dry_run {
        if ctx.json {
            crate::output::outln!("{}", plan_json(&plan, &opts, None));
        } else if !ctx.quiet {
            crate::output::outln!("dry run: nothing written");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.out.is_file() {
        bail!("--out {} is a file; give a directory", args.out.display());
    }
    let bars = Bars::new(ctx.json || ctx.quiet, ctx.quiet || ctx.json);
    let started = Instant::now();
    let summary = plan_json(&plan, &opts, None);
    let report = write_export(&store, plan, &opts, &bars);
    bars.clear();
    let report = report?;
    if ctx.json {
        let mut v = summary;
        v["written"] = report_json(&report);
        crate::output::outln!("{v}");
    } else if !ctx.quiet {
        crate::output::outln!(
            "wrote bundle {} ({}) in {:.1}s: {} volume(s), {} in all",
            opts.name,
            report.bundle_id,
            started.elapsed().as_secs_f64(),
            report.volumes.len(),
            output::bytes(report.bytes)
        );
        for v in &report.volumes {
            crate::output::outln!("  {}", v.display());
        }
        if !report.parity_volumes.is_empty() {
            let data = report.bytes.max(1);
            crate::output::outln!(
                "{} parity volume(s), {} ({:.1}% of the data volumes): any {} missing or damaged \
                 data volume(s) are rebuilt on import",
                report.parity_volumes.len(),
                output::bytes(report.parity_bytes),
                report.parity_bytes as f64 * 100.0 / data as f64,
                report.parity_volumes.len()
            );
            for v in &report.parity_volumes {
                crate::output::outln!("  {}", v.display());
            }
        }
        crate::output::outln!(
            "  {} (keep it: `airlock export --since` makes the next delta from it)",
            report.index_file.display()
        );
        match &report.signature {
            Some((path, key_id)) => crate::output::outln!(
                "  {} (signed by key {key_id}; every volume carries the signature; check: \
                 minisign -Vm {} -p KEY.pub)",
                path.display(),
                report.index_file.display()
            ),
            None => crate::output::outln!(
                "  not signed: a site that lists trusted keys imports it only with \
                 --allow-unsigned (sign with --sign KEY)"
            ),
        }
        if !report.starter.is_empty() {
            let names: Vec<String> = report
                .starter
                .iter()
                .chain(report.volumes.first())
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect();
            crate::output::outln!(
                "disc 1 holds {} (the program and how to start the site)",
                names.join(", ")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `web-1.2` from `registry.example.com/shop/web:1.2`.
fn default_name(r: &ImageRef) -> String {
    let last = r.repo.as_str().rsplit('/').next().unwrap_or("bundle");
    let version = match (&r.tag, &r.digest) {
        (Some(t), _) => t.to_string(),
        (None, Some(d)) => d.hex().chars().take(12).collect(),
        (None, None) => "bundle".into(),
    };
    format!("{last}-{version}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn print_plan(plan: &ExportPlan, opts: &ExportOptions, verbose: u8) {
    let ix = &plan.index;
    crate::output::outln!(
        "bundle {}: {} reference(s), {} manifest(s), {} blob(s), {}",
        opts.name,
        ix.refs.len(),
        ix.manifests.len(),
        ix.blobs.len(),
        output::bytes(plan.blob_bytes)
    );
    match &opts.have {
        Have::Nothing => {
            crate::output::outln!("full bundle: the site needs nothing it does not get")
        }
        Have::Bundle(b) => crate::output::outln!(
            "delta over bundle {} ({}): the site must have imported it",
            b.name,
            b.bundle_id
        ),
        Have::Inventory(inv) => crate::output::outln!(
            "delta over the site's inventory {} ({} chunks, {} blobs)",
            inv.id(),
            inv.chunks().len(),
            inv.blobs().len()
        ),
    }
    if !opts.platforms.is_empty() {
        crate::output::outln!(
            "platforms: {} of multi-platform indexes ({} manifest(s) of other platforms stay \
             behind; the indexes travel unchanged)",
            platform_list(&opts.platforms),
            left_out(plan)
        );
    }
    for image in &plan.images {
        let new: u64 = image.new_blobs.iter().map(|(_, s)| s).sum();
        crate::output::outln!(
            "  {}: {} blobs, {}; new or changed: {} blobs, {}",
            ref_text(&image.reference),
            image.blobs,
            output::bytes(image.bytes),
            image.new_blobs.len(),
            output::bytes(new)
        );
        if verbose > 0 {
            for (d, s) in &image.new_blobs {
                crate::output::outln!("    {d} {}", output::bytes(*s));
            }
        }
    }
    crate::output::outln!(
        "ships {} chunk(s), {} of new data before compression (of {} in changed blobs); at \
         most {} volume(s) of {}",
        plan.chunks.len(),
        output::bytes(plan.chunk_bytes),
        output::bytes(plan.new_blob_bytes),
        plan.max_volumes,
        output::bytes(opts.volume_size)
    );
    if let Some(p) = &opts.program {
        crate::output::outln!(
            "volume 1 leaves {} for the airlock program ({} Linux, needs {}), README.txt and \
             SHA256SUMS beside it",
            output::bytes(plan.starter),
            p.arch.as_str(),
            p.needs()
        );
    }
    if let Some(p) = &plan.parity {
        crate::output::outln!(
            "plus {} parity volume(s) {}: each at most {}, about as large as the largest data \
             volume (stripes of {}); each data volume keeps {} free so they fit",
            p.count,
            (1..=p.count)
                .map(|n| airlock_bundle::parity_file_name(&opts.name, n))
                .collect::<Vec<_>>()
                .join(", "),
            output::bytes(opts.volume_size),
            output::bytes(u64::from(p.stripe_bytes)),
            output::bytes(p.reserve)
        );
    }
}

fn plan_json(
    plan: &ExportPlan,
    opts: &ExportOptions,
    _r: Option<&ExportReport>,
) -> serde_json::Value {
    json!({
        "name": opts.name,
        "bundle_id": plan.index.bundle_id.to_string(),
        "delta": !matches!(opts.have, Have::Nothing),
        "images": plan.images.iter().map(|i| json!({
            "ref": ref_text(&i.reference),
            "digest": i.reference.digest,
            "blobs": i.blobs,
            "bytes": i.bytes,
            "new_blobs": i.new_blobs.iter().map(|(d, s)| json!({"digest": d, "size": s})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "manifests": plan.index.manifests.len(),
        "blobs": plan.index.blobs.len(),
        "blob_bytes": plan.blob_bytes,
        "new_blob_bytes": plan.new_blob_bytes,
        "chunks": plan.chunks.len(),
        "chunk_bytes": plan.chunk_bytes,
        "volume_size": opts.volume_size,
        "max_volumes": plan.max_volumes,
        "program": opts.program.as_ref().map(|p| json!({
            "path": p.path,
            "bytes": p.len,
            "arch": p.arch.as_str(),
            "glibc": p.glibc.map(|(a, b)| format!("{a}.{b}")),
            "reserved": plan.starter,
        })),
        "platforms": opts.platforms.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "absent_manifests": left_out(plan),
        "warnings": plan.warnings,
        "parity": plan.parity.map(|p| json!({
            "volumes": p.count,
            "files": (1..=p.count).map(|n| airlock_bundle::parity_file_name(&opts.name, n)).collect::<Vec<_>>(),
            "stripe_bytes": p.stripe_bytes,
            "reserve_per_volume": p.reserve,
        })),
    })
}

/// Children of the bundle's manifests that stay behind (other platforms), each once.
fn left_out(plan: &ExportPlan) -> usize {
    let absent: std::collections::BTreeSet<_> = plan
        .index
        .manifests
        .iter()
        .flat_map(|m| &m.absent)
        .collect();
    absent.len()
}

fn report_json(r: &ExportReport) -> serde_json::Value {
    json!({
        "volumes": r.volumes,
        "index_file": r.index_file,
        "starter": r.starter,
        "bytes": r.bytes,
        "frames": r.frames,
        "signature": r.signature.as_ref().map(|(path, key_id)| json!({
            "file": path,
            "key_id": key_id.to_string(),
        })),
        "parity_volumes": r.parity_volumes,
        "parity_bytes": r.parity_bytes,
    })
}
