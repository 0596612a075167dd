//! The site benchmark's table: the machine, the release, and rows of airlock against
//! distribution with their ratio and the goal.

use std::process::Command;

use airlock_benches::{gogzip::Producer, release::Version, table::Table};

use super::Config;

pub fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

pub fn mib(bytes: Option<u64>) -> String {
    bytes.map_or("?".to_owned(), |b| {
        format!("{:.0} MiB", b as f64 / 1048576.0)
    })
}

/// A row: what, airlock's figure, distribution's, their ratio, the goal, notes.
pub fn row(t: &mut Table, what: &str, a: Option<f64>, d: Option<f64>, goal: &str, notes: String) {
    let cell = |x: Option<f64>| x.map_or(String::new(), |x| format!("{x:.2}"));
    let ratio = match (a, d) {
        (Some(a), Some(d)) if d > 0.0 => format!("{:.2}", a / d),
        _ => String::new(),
    };
    t.row(&[
        what.to_owned(),
        cell(a),
        cell(d),
        ratio,
        goal.to_owned(),
        format!("  {notes}"),
    ]);
}

pub fn head(t: &mut Table, section: &str) {
    t.head(&[section, "airlock", "distrib.", "ratio", "goal", "  notes"]);
}

/// The machine and the tools.
pub fn facts(t: &mut Table, cfg: &Config) {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map_or("?", |m| m.trim_start_matches([' ', '\t', ':']));
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem = meminfo
        .lines()
        .next()
        .unwrap_or("?")
        .split_whitespace()
        .nth(1);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let version = |tool: &str, arg: &str| {
        let out = Command::new(tool).arg(arg).output();
        let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
        text.unwrap_or_default()
            .lines()
            .next()
            .unwrap_or("?")
            .to_owned()
    };
    t.note(format!(
        "machine: {cores} cores ({model}), {:.1} GiB RAM; load average {}",
        mem.and_then(|m| m.parse::<f64>().ok()).unwrap_or(0.0) / 1048576.0,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    ));
    t.note(format!(
        "tools: {}; {}; {}; {}",
        version("containerd", "--version"),
        version("docker-registry", "--version"),
        version("skopeo", "--version"),
        version("go", "version")
    ));
    t.note(format!(
        "settings: AIRLOCK_BENCH_SITE_MB={} IMAGES={} FETCHERS={} LEVEL={} SNAPSHOTTER={}",
        cfg.layer_mb,
        cfg.images,
        cfg.fetchers,
        cfg.level.as_deref().unwrap_or("airlock's default"),
        cfg.snapshotter
    ));
}

/// What the release holds.
pub fn describe(t: &mut Table, v1: &Version, v2: &Version) {
    for v in [v1, v2] {
        let layers = v.layers();
        let by = |p: Producer| {
            let of: Vec<_> = layers.iter().filter(|l| l.producer == p).collect();
            let bytes: u64 = of.iter().map(|l| l.blob.size).sum();
            format!("{} {} layers {:.1} MB", of.len(), p.name(), mb(bytes))
        };
        let tar: u64 = layers.iter().map(|l| l.tar_bytes).sum();
        t.note(format!(
            "v{}: {} images, {} distinct layers, {:.1} MB gzip'd ({}, {}), {:.1} MB of tar; \
             base {:.1} MB",
            v.version,
            v.images.len(),
            layers.len(),
            mb(v.layer_bytes()),
            by(Producer::Pgzip),
            by(Producer::Gzip6),
            mb(tar),
            mb(layers[0].blob.size)
        ));
    }
    let old = v1.digests();
    let new: Vec<_> = v2
        .layers()
        .into_iter()
        .filter(|l| !old.contains(&l.blob.digest))
        .collect();
    t.note(format!(
        "v2 changes {} layers ({}): {:.1} MB of new gzip blobs",
        new.len(),
        new.iter()
            .map(|l| l.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        mb(new.iter().map(|l| l.blob.size).sum())
    ));
}
