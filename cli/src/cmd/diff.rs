//! `airlock diff A B`: an upgrade preview from A to B, both held in this store. Application
//! versions (`airlock add -f`) are compared image by image, matched by repository: images
//! added, removed, changed (another manifest digest) or unchanged; two plain images or indexes
//! are compared as one. For each changed image, the layers B has that A lacks, the layers it
//! dropped and whether the config changed, read from the manifests (all platforms of an index
//! together). Last, what a delta bundle would ship to a site that holds A: the bundle planner's
//! chunks, against the new blobs a blob-level tool would ship.

use std::{
    collections::{BTreeMap, BTreeSet},
    process::ExitCode,
};

use airlock_bundle::{DeltaPlan, plan_delta, resolve};
use airlock_ingest::read_app;
use airlock_oci::{ImageRef, ManifestGraph, RepoName, Walk, parse_manifest};
use airlock_store::{Digest, Store};
use anyhow::{Context as _, Result};
use serde_json::{Value, json};

use crate::{cmd::names, context::Context, output};

/// Arguments of `airlock diff`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What the site has: an image, index or application version, REPO:TAG or REPO@DIGEST as
    /// docker names them (an application added with `airlock add -f` is
    /// `airlock/apps/NAME:VERSION`)
    #[arg(value_name = "REF_A")]
    a: String,

    /// What it would get, as REF_A
    #[arg(value_name = "REF_B")]
    b: String,

    /// Leave referrers (signatures, SBOMs) out of the delta, as `airlock export --no-referrers`
    #[arg(long)]
    no_referrers: bool,

    /// Plan the delta for this platform of multi-platform indexes only, as `airlock export
    /// --platform` ships it to a site that received A the same way (repeatable; the layer
    /// lists still cover every platform)
    #[arg(long = "platform", value_name = "OS/ARCH")]
    platforms: Vec<String>,
}

/// One image of either side.
#[derive(Clone, Debug)]
struct Image {
    /// What images are matched by.
    repo: RepoName,
    /// As the application records it, or as given.
    name: String,
    digest: Digest,
}

/// What an image holds: configs and layers of all its platforms.
#[derive(Debug, Default)]
struct Layers {
    configs: BTreeSet<Digest>,
    layers: BTreeMap<Digest, u64>,
}

impl Layers {
    fn bytes(&self) -> u64 {
        self.layers.values().sum()
    }
}

/// A changed image: layers B has and A lacks, and the reverse.
#[derive(Debug)]
struct Changed {
    a: Image,
    b: Image,
    added: Vec<(Digest, u64)>,
    removed: Vec<(Digest, u64)>,
    unchanged: usize,
    config_changed: bool,
}

/// The comparison of A and B.
#[derive(Debug, Default)]
struct Report {
    changed: Vec<Changed>,
    added: Vec<(Image, Layers)>,
    removed: Vec<(Image, Layers)>,
    unchanged: Vec<Image>,
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    // The delta is planned from recipes: staged blobs are ingested first (issue 14).
    let store = ctx.open_store_ingested()?;
    let (a_ref, a_images, a_app) = side(&store, &args.a)?;
    let (b_ref, b_images, b_app) = side(&store, &args.b)?;
    let report = if !a_app && !b_app {
        pair_plain(&store, &a_images[0], &b_images[0])?
    } else {
        match_images(&store, a_images.clone(), b_images.clone())?
    };
    let platforms = crate::cmd::names::platforms(&args.platforms)?;
    let delta = plan_delta(
        &store,
        &delta_refs(&a_ref, &a_images, a_app)?,
        &delta_refs(&b_ref, &b_images, b_app)?,
        !args.no_referrers,
        &platforms,
    )
    .context("planning the delta")?;
    let changed_layer_bytes = changed_layer_bytes(&report, &delta);
    if ctx.json {
        crate::output::outln!(
            "{}",
            report_json(&args, &report, &delta, changed_layer_bytes)
        );
    } else if !ctx.quiet {
        print_report(&args, &report, &delta, changed_layer_bytes, ctx.verbose);
    }
    Ok(ExitCode::SUCCESS)
}

/// Parses and resolves one side: its reference, its images, and whether it is an application.
fn side(store: &Store, text: &str) -> Result<(ImageRef, Vec<Image>, bool)> {
    let r = names::image_ref(store, text)?;
    let resolved = resolve(store, &r)?;
    let Some(entries) = read_app(store, &r)? else {
        let image = Image {
            repo: r.repo.clone(),
            name: text.to_owned(),
            digest: resolved.digest,
        };
        return Ok((r, vec![image], false));
    };
    let images = entries
        .into_iter()
        .map(|e| match e.name {
            Some(n) => Image {
                repo: n.repo.clone(),
                name: n.to_string(),
                digest: e.digest,
            },
            // Not written by airlock: the image is known only in the application's repository.
            None => Image {
                repo: r.repo.clone(),
                name: format!("{}@{}", r.repo, e.digest),
                digest: e.digest,
            },
        })
        .collect();
    Ok((r, images, true))
}

/// What the delta plan walks: the reference itself, and for an application each image by
/// digest in its own repository, where its referrers are.
fn delta_refs(r: &ImageRef, images: &[Image], app: bool) -> Result<Vec<ImageRef>> {
    let mut out = vec![r.clone()];
    if app {
        for i in images {
            out.push(ImageRef {
                repo: i.repo.clone(),
                tag: None,
                digest: Some(to_oci(&i.digest)?),
            });
        }
    }
    Ok(out)
}

fn pair_plain(store: &Store, a: &Image, b: &Image) -> Result<Report> {
    let mut report = Report::default();
    if a.digest == b.digest {
        report.unchanged.push(b.clone());
    } else {
        report.changed.push(compare(store, a.clone(), b.clone())?);
    }
    Ok(report)
}

/// Matches images by repository: the same digest is unchanged; otherwise images of one
/// repository pair in order as changed, and the rest are added (B only) or removed (A only).
fn match_images(store: &Store, a: Vec<Image>, b: Vec<Image>) -> Result<Report> {
    let mut by_repo: BTreeMap<RepoName, (Vec<Image>, Vec<Image>)> = BTreeMap::new();
    for i in a {
        by_repo.entry(i.repo.clone()).or_default().0.push(i);
    }
    for i in b {
        by_repo.entry(i.repo.clone()).or_default().1.push(i);
    }
    let mut report = Report::default();
    for (_, (mut olds, mut news)) in by_repo {
        news.retain(|n| match olds.iter().position(|o| o.digest == n.digest) {
            Some(at) => {
                olds.remove(at);
                report.unchanged.push(n.clone());
                false
            }
            None => true,
        });
        let mut olds = olds.into_iter();
        for n in news {
            match olds.next() {
                Some(o) => report.changed.push(compare(store, o, n)?),
                None => {
                    let layers = image_layers(store, &n)?;
                    report.added.push((n, layers));
                }
            }
        }
        for o in olds {
            let layers = image_layers(store, &o)?;
            report.removed.push((o, layers));
        }
    }
    Ok(report)
}

fn compare(store: &Store, a: Image, b: Image) -> Result<Changed> {
    let (old, new) = (image_layers(store, &a)?, image_layers(store, &b)?);
    let only = |x: &Layers, y: &Layers| -> Vec<(Digest, u64)> {
        x.layers
            .iter()
            .filter(|(d, _)| !y.layers.contains_key(*d))
            .map(|(d, s)| (d.clone(), *s))
            .collect()
    };
    Ok(Changed {
        added: only(&new, &old),
        removed: only(&old, &new),
        unchanged: new
            .layers
            .keys()
            .filter(|d| old.layers.contains_key(*d))
            .count(),
        config_changed: old.configs != new.configs,
        a,
        b,
    })
}

/// The configs and layers of an image, every stored platform of an index together.
fn image_layers(store: &Store, image: &Image) -> Result<Layers> {
    let mut graph = Stored {
        store,
        layers: Layers::default(),
    };
    Walk::new()
        .visit(&mut graph, image.digest.clone())
        .with_context(|| format!("reading the manifests of {}", image.name))?;
    Ok(graph.layers)
}

/// The manifests stored under their digests, as a graph for OCI's walk.
struct Stored<'a> {
    store: &'a Store,
    layers: Layers,
}

impl ManifestGraph for Stored<'_> {
    type Node = Digest;
    type Key = Digest;
    type Error = anyhow::Error;

    fn key(&self, digest: &Digest) -> Digest {
        digest.clone()
    }

    fn enter(&mut self, digest: &Digest) -> Result<Option<Vec<Digest>>> {
        let Some(media_type) = self.store.manifest_media_type(digest)? else {
            // A platform of an index that was not brought along (`add --platform`).
            return Ok(None);
        };
        let bytes = self.store.read_blob(digest)?;
        let parsed = parse_manifest(Some(&media_type), &bytes)
            .with_context(|| format!("manifest {digest}"))?;
        if let Some(config) = &parsed.config {
            self.layers.configs.insert(to_store(&config.digest)?);
        }
        for layer in &parsed.layers {
            self.layers
                .layers
                .insert(to_store(&layer.digest)?, layer.size);
        }
        parsed
            .manifests
            .iter()
            .map(|m| to_store(&m.digest))
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }
}

/// The store's digest for one a manifest names (both types apply the same rules).
fn to_store(digest: &airlock_oci::Digest) -> Result<Digest> {
    Ok(digest.as_str().parse()?)
}

/// The OCI digest for one the store holds.
fn to_oci(digest: &Digest) -> Result<airlock_oci::Digest> {
    Ok(digest.to_string().parse()?)
}

/// Compressed bytes of the layers of B's changed and added images that A reaches nowhere,
/// each once.
fn changed_layer_bytes(report: &Report, delta: &DeltaPlan) -> u64 {
    let layers: BTreeMap<&Digest, u64> = report
        .changed
        .iter()
        .flat_map(|c| c.added.iter().map(|(d, s)| (d, *s)))
        .chain(
            report
                .added
                .iter()
                .flat_map(|(_, l)| l.layers.iter().map(|(d, s)| (d, *s))),
        )
        .filter(|(d, _)| delta.new_blobs.contains_key(*d))
        .collect();
    layers.values().sum()
}

/// `1.0` from `example.com/shop/web:1.0`, or a short digest.
fn version(image: &Image) -> String {
    match image.name.rsplit_once(':') {
        Some((_, t)) if !t.contains('/') && !image.name.contains('@') => t.to_owned(),
        _ => short(&image.digest),
    }
}

fn short(d: &Digest) -> String {
    let text = d.to_string();
    text.chars()
        .take(text.find(':').map_or(12, |i| i + 13))
        .collect()
}

fn percent(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 * 100.0 / whole as f64)
}

fn print_report(
    args: &Args,
    report: &Report,
    delta: &DeltaPlan,
    changed_layer_bytes: u64,
    verbose: u8,
) {
    crate::output::outln!(
        "{} -> {}: {} changed, {} added, {} removed, {} unchanged",
        args.a,
        args.b,
        report.changed.len(),
        report.added.len(),
        report.removed.len(),
        report.unchanged.len()
    );
    let width = report
        .changed
        .iter()
        .map(|c| c.b.repo.as_str().len())
        .chain(report.added.iter().map(|(i, _)| i.repo.as_str().len()))
        .chain(report.removed.iter().map(|(i, _)| i.repo.as_str().len()))
        .max()
        .unwrap_or(0);
    for c in &report.changed {
        let new: u64 = c.added.iter().map(|(_, s)| s).sum();
        let repo = if c.a.repo == c.b.repo {
            c.b.repo.to_string()
        } else {
            format!("{} -> {}", c.a.repo, c.b.repo)
        };
        crate::output::outln!(
            "  changed  {repo:width$}  {} -> {}  layers: {} new ({}), {} removed, {} unchanged; \
             config {}",
            version(&c.a),
            version(&c.b),
            c.added.len(),
            output::bytes(new),
            c.removed.len(),
            c.unchanged,
            if c.config_changed {
                "changed"
            } else {
                "unchanged"
            }
        );
        for (d, s) in &c.added {
            crate::output::outln!("             + {d}  {}", output::bytes(*s));
        }
        for (d, s) in &c.removed {
            crate::output::outln!("             - {d}  {}", output::bytes(*s));
        }
    }
    for (what, list) in [("added  ", &report.added), ("removed", &report.removed)] {
        for (i, l) in list {
            crate::output::outln!(
                "  {what}  {:width$}  {}  {} layers, {}",
                i.repo,
                version(i),
                l.layers.len(),
                output::bytes(l.bytes())
            );
        }
    }
    if verbose > 0 {
        for i in &report.unchanged {
            crate::output::outln!("  same     {}  {}", i.name, short(&i.digest));
        }
    }
    crate::output::outln!(
        "delta for a site that has {}: {} chunk(s), {} before compression",
        args.a,
        delta.chunks,
        output::bytes(delta.chunk_bytes)
    );
    let ratio = percent(delta.chunk_bytes, delta.new_blob_bytes).map_or(String::new(), |p| {
        format!("; the chunk delta is {p:.1}% of it")
    });
    crate::output::outln!(
        "  a blob-level delta ships {} blob(s), {} (changed layers {}){ratio}",
        delta.new_blobs.len(),
        output::bytes(delta.new_blob_bytes),
        output::bytes(changed_layer_bytes)
    );
}

fn image_json(i: &Image) -> Value {
    json!({"repository": i.repo, "ref": i.name, "digest": i.digest})
}

fn layers_json(list: &[(Digest, u64)]) -> Value {
    list.iter()
        .map(|(d, s)| json!({"digest": d, "size": s}))
        .collect()
}

fn report_json(args: &Args, report: &Report, delta: &DeltaPlan, changed_layer_bytes: u64) -> Value {
    let whole = |(i, l): &(Image, Layers)| {
        let mut v = image_json(i);
        v["layers"] = json!(l.layers.len());
        v["bytes"] = json!(l.bytes());
        v
    };
    json!({
        "from": args.a,
        "to": args.b,
        "images": {
            "changed": report.changed.len(),
            "added": report.added.len(),
            "removed": report.removed.len(),
            "unchanged": report.unchanged.len(),
        },
        "changed": report.changed.iter().map(|c| json!({
            "repository": c.b.repo,
            "from": image_json(&c.a),
            "to": image_json(&c.b),
            "config_changed": c.config_changed,
            "layers_added": layers_json(&c.added),
            "layers_removed": layers_json(&c.removed),
            "layers_unchanged": c.unchanged,
        })).collect::<Vec<_>>(),
        "added": report.added.iter().map(whole).collect::<Vec<_>>(),
        "removed": report.removed.iter().map(whole).collect::<Vec<_>>(),
        "unchanged": report.unchanged.iter().map(image_json).collect::<Vec<_>>(),
        "delta": {
            "chunks": delta.chunks,
            "chunk_bytes": delta.chunk_bytes,
            "new_blobs": delta.new_blobs.len(),
            "new_blob_bytes": delta.new_blob_bytes,
            "changed_layer_bytes": changed_layer_bytes,
            "ratio": percent(delta.chunk_bytes, delta.new_blob_bytes).map(|p| p / 100.0),
            "blobs": delta.blobs,
            "blob_bytes": delta.blob_bytes,
        },
    })
}
