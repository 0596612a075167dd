//! The site benchmark's steps, each adding its rows to the table.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use airlock_benches::{
    fetch::Wanted,
    gogzip::Producer,
    measure::children_cpu_seconds,
    process::must,
    release::{APP_NAME, Version},
    server::{Access, Airlock, Cores, Distribution, Server, copy_dir},
    table::Table,
};

use crate::report::{head, mb, mib, row};

use super::{
    Bench, Layouts, blob_tail, check_imported, check_served, extract, fan_out_run, get_once,
    range_first_byte, run_sampled, skopeo_copy_all,
};

/// A registry is idle after background work when it used less than this much CPU in a second.
const IDLE_CPU_PER_SECOND: f64 = 0.02;

/// Longest wait for a registry's background work after a push.
const BACKGROUND_LIMIT: Duration = Duration::from_secs(600);

/// Wall and CPU seconds of a step, and a peak RSS where one was taken.
#[derive(Clone, Copy, Debug, Default)]
pub struct Run {
    pub wall: f64,
    pub cpu: f64,
    pub rss: Option<u64>,
}

/// `f` timed, with the CPU seconds and peak RSS `server` spent meanwhile.
pub fn measure<T>(server: &dyn Server, f: impl FnOnce() -> T) -> (T, Run) {
    server.reset_peak_rss();
    let (cpu, t) = (server.cpu_seconds(), Instant::now());
    let out = f();
    let run = Run {
        wall: t.elapsed().as_secs_f64(),
        cpu: server.cpu_seconds() - cpu,
        rss: Some(server.peak_rss_bytes()),
    };
    (out, run)
}

/// Wall and children's CPU seconds since `(start, children_cpu_seconds())`.
pub fn since((t, cpu): (Instant, f64)) -> Run {
    Run {
        wall: t.elapsed().as_secs_f64(),
        cpu: children_cpu_seconds() - cpu,
        rss: None,
    }
}

/// The vendor's runs.
#[derive(Debug)]
pub struct Vendor {
    add: [Run; 2],
    export: [(Run, u64); 2],
}

/// Step 1: add both versions to a vendor store, export v1 full and v2 as a delta.
pub fn vendor(bench: &Bench, v1: &Version, v2: &Version) -> Vendor {
    let data = bench.path("vendor");
    let add = [v1, v2].map(|v| {
        let app = bench.path(&format!("app-{}.yaml", v.version));
        let app = app.to_str().expect("a UTF-8 temp path");
        run_sampled(
            &mut bench.airlock(&data, &["add", "-f", app]),
            "airlock add",
        )
        .1
    });
    let since = bench.path("bundle-1/site-1.0.index.airlock");
    let export = [(v1, None), (v2, Some(&since))].map(|(v, since)| {
        let out = bench.path(&format!("bundle-{}", v.version));
        let app = format!("airlock/apps/{APP_NAME}:{}", v.tag());
        let name = format!("{APP_NAME}-{}", v.tag());
        let mut c = bench.airlock(
            &data,
            &["export", &app, "--no-binary", "--name", &name, "--out"],
        );
        c.arg(&out);
        if let Some(level) = &bench.cfg.level {
            c.args(["--level", level]);
        }
        if let Some(index) = since {
            c.arg("--since").arg(index);
        }
        let run = run_sampled(&mut c, "airlock export").1;
        (run, volume_bytes(&out))
    });
    Vendor { add, export }
}

/// Bytes of the volumes (`*.NNN.airlock`, not the index) in `dir`.
fn volume_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("read the bundle dir")
        .map(|e| e.expect("a bundle dir entry"))
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.ends_with(".airlock") && !n.ends_with(".index.airlock")
        })
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum()
}

/// The site's imports.
#[derive(Debug)]
pub struct Site {
    full: Run,
    delta: Run,
    /// The store right after the full import.
    pub v1_store: PathBuf,
    /// How the store keeps the layers.
    du: String,
}

/// Step 2: `airlock import` of the full bundle into an empty store, then of the delta.
pub fn import(bench: &Bench, v1: &Version, v2: &Version) -> Site {
    let (data, vendor) = (bench.path("site"), bench.path("vendor"));
    let import = |n: u32| {
        let dir = bench.path(&format!("bundle-{n}"));
        let dir = dir.to_str().expect("a UTF-8 temp path");
        run_sampled(
            &mut bench.airlock(&data, &["import", "--no-prompt", "--allow-unsigned", dir]),
            "airlock import",
        )
        .1
    };
    let full = import(1);
    check_imported(bench, &data, &vendor, v1);
    let v1_store = copy_dir(&data, &bench.path("site-v1"));
    let delta = import(2);
    check_imported(bench, &data, &vendor, v2);
    let du = must(
        &mut bench.airlock(&v1_store, &["--json", "du"]),
        "airlock du",
    );
    let du: serde_json::Value = serde_json::from_slice(&du.stdout).expect("du --json");
    let du = format!(
        "site store after v1: {:.1} MB; of {} gzip layers {} kept as chunks + rebuild data, \
         opaque: {}",
        mb(du["stored_bytes"].as_u64().unwrap_or(0)),
        du["compressed"]["blobs"],
        du["rebuilt"]["blobs"],
        du["opaque"]
    );
    Site {
        full,
        delta,
        v1_store,
        du,
    }
}

/// The baseline's imports: extract and push.
#[derive(Debug)]
pub struct BaselineImport {
    full: (Run, Run),
    delta: (Run, Run),
    /// distribution's storage holding v1 only.
    pub v1_root: PathBuf,
}

/// Step 2's baseline: extract each tar.zst and `skopeo copy` its images into distribution.
pub fn distribution_import(
    bench: &Bench,
    layouts: &Layouts,
    v1: &Version,
    v2: &Version,
) -> BaselineImport {
    let dir = bench.path("registry");
    let root = dir.join("root");
    let registry = bench.distribution(&root, &dir);
    let import = |zst: &Path, v: &Version| {
        let to = bench.path(&format!("extracted-{}", v.version));
        let extracted = extract(zst, &to);
        let t = (Instant::now(), children_cpu_seconds());
        let (_, mut push) = measure(&registry, || skopeo_copy_all(&to, &registry, v));
        push.cpu += since(t).cpu;
        check_served(&registry, v);
        let _ = std::fs::remove_dir_all(&to);
        (extracted, push)
    };
    let full = import(&layouts.v1_zst.0, v1);
    let v1_root = copy_dir(&root, &bench.path("registry-v1"));
    let delta = import(&layouts.v2_delta_zst.0, v2);
    registry.stop();
    BaselineImport {
        full,
        delta,
        v1_root,
    }
}

/// Rows of steps 1 and 2.
pub fn print_vendor_and_import(
    t: &mut Table,
    layouts: &Layouts,
    vendor: &Vendor,
    site: &Site,
    base: &BaselineImport,
) {
    let media = [&layouts.v1_zst, &layouts.v2_delta_zst];
    head(t, "vendor (s; media in MB)");
    for (i, add) in vendor.add.iter().enumerate() {
        let what = format!("airlock add -f v{}", i + 1);
        row(
            t,
            &what,
            Some(add.wall),
            None,
            "",
            format!("CPU {:.1} s", add.cpu),
        );
    }
    let labels = [
        "export v1 full | tar | zstd -3 of the layout",
        "export v2 --since v1 | same, new blobs only",
    ];
    for (i, (run, _)) in vendor.export.iter().enumerate() {
        let zst = &media[i].1;
        let notes = format!("CPU {:.1} s / {:.1} s", run.cpu, zst.cpu);
        row(t, labels[i], Some(run.wall), Some(zst.wall), "", notes);
    }
    let labels = ["media, v1 full", "media, v2 delta"];
    for (i, (_, bytes)) in vendor.export.iter().enumerate() {
        let zst = std::fs::metadata(&media[i].0).map_or(0, |m| m.len());
        row(
            t,
            labels[i],
            Some(mb(*bytes)),
            Some(mb(zst)),
            "",
            "MB".to_owned(),
        );
    }
    head(t, "site import (s)");
    let rows = [
        (
            "import v1 full | extract + skopeo copy",
            &site.full,
            &base.full,
        ),
        (
            "import v2 delta | same for v2's images",
            &site.delta,
            &base.delta,
        ),
    ];
    for (what, a, (extracted, push)) in rows {
        let d = extracted.wall + push.wall;
        let notes = format!(
            "airlock CPU {:.1} s, peak RSS {} (goal <= 512 MiB); baseline: extract {:.1} s + \
             skopeo {:.1} s, CPU {:.1} s (skopeo + registry)",
            a.cpu,
            mib(a.rss),
            extracted.wall,
            push.wall,
            extracted.cpu + push.cpu
        );
        row(t, what, Some(a.wall), Some(d), "<= 0.5", notes);
    }
    t.note(site.du.clone());
    t.note(
        "baseline v2: only the blobs v1 lacks are in its tar.zst (the best a blob-level delta \
         does); skopeo finds the others in the registry"
            .to_owned(),
    );
}

/// Step 3: containerd pulls every v1 image, cold then warm.
pub fn pulls(t: &mut Table, bench: &Bench, store: &Path, v1_root: &Path, v1: &Version) {
    let passes = |server: &dyn Server| [bench.pull_all(server, v1), bench.pull_all(server, v1)];
    let ro = passes(&*bench.serve_copy(store, Access::ReadOnly, Cores::All));
    let rw = passes(&*bench.serve_copy(store, Access::ReadWrite, Cores::All));
    let d = passes(&*bench.distribution_copy(v1_root));
    head(t, "containerd pulls every v1 image (s)");
    let runs = [
        ("serve --read-only, cold", &ro[0], &d[0]),
        ("serve --read-only, again", &ro[1], &d[1]),
        ("serve read-write, cold", &rw[0], &d[0]),
        ("serve read-write, warm", &rw[1], &d[1]),
    ];
    for (what, a, d) in runs {
        let notes = format!(
            "server CPU {:.1} s / {:.1} s, peak RSS {} / {}",
            a.cpu,
            d.cpu,
            mib(a.rss),
            mib(d.rss)
        );
        row(t, what, Some(a.wall), Some(d.wall), "<= 1.0", notes);
    }
    t.note(format!(
        "a fresh containerd ({}) per pass pulls the images one after another (`ctr images pull`, \
         fetch and unpack); distribution's two passes are both listed as cold and again",
        bench.cfg.snapshotter
    ));
}

/// Step 4: concurrent fetchers each GET every layer blob of v1.
pub fn fan_outs(t: &mut Table, bench: &Bench, store: &Path, v1_root: &Path, v1: &Version) {
    let wanted = v1.wanted_layers();
    let n = bench.cfg.fetchers;
    let one = fan_out_run(
        &*bench.serve_copy(store, Access::ReadWrite, Cores::All),
        &wanted,
        1,
    );
    let (d_one, d_many) = {
        let d = bench.distribution_copy(v1_root);
        (fan_out_run(&*d, &wanted, 1), fan_out_run(&*d, &wanted, n))
    };
    let ro = fan_out_run(
        &*bench.serve_copy(store, Access::ReadOnly, Cores::All),
        &wanted,
        n,
    );
    let (cold, warm) = {
        let rw = bench.serve_copy(store, Access::ReadWrite, Cores::All);
        (fan_out_run(&*rw, &wanted, n), fan_out_run(&*rw, &wanted, n))
    };
    let total: u64 = wanted.iter().map(|w| w.size).sum();
    head(t, &format!("fan-out: {n} fetchers (s)"));
    let notes = |a: &Run, d: &Run| {
        format!(
            "server CPU {:.1} s / {:.1} s ({:.2}x airlock's 1-fetcher CPU), peak RSS {} / {} \
             (goal <= 200 MiB)",
            a.cpu,
            d.cpu,
            a.cpu / one.cpu.max(0.01),
            mib(a.rss),
            mib(d.rss)
        )
    };
    let one_notes = format!(
        "server CPU {:.1} s / {:.1} s: what rebuilding every blob once costs",
        one.cpu, d_one.cpu
    );
    row(
        t,
        "1 fetcher, serve read-write, cold",
        Some(one.wall),
        Some(d_one.wall),
        "",
        one_notes,
    );
    let rows = [
        (format!("{n} fetchers, serve --read-only, cold"), &ro),
        (format!("{n} fetchers, serve read-write, cold"), &cold),
        (format!("{n} fetchers, serve read-write, warm"), &warm),
    ];
    for (what, a) in rows {
        row(
            t,
            &what,
            Some(a.wall),
            Some(d_many.wall),
            "<= 1.1",
            notes(a, &d_many),
        );
    }
    t.note(format!(
        "each fetcher GETs the {} layer blobs of v1 ({:.1} MB) in full over its own connection, \
         all starting at once in the same order; every body counted and sha256-checked",
        wanted.len(),
        mb(total)
    ));
}

/// The largest layer of `v` (made by `producer` if given), and its producer.
pub fn biggest(v: &Version, producer: Option<Producer>) -> (Wanted, Producer) {
    let layer = v
        .layers()
        .into_iter()
        .filter(|l| producer.is_none_or(|p| l.producer == p))
        .max_by_key(|l| l.blob.size)
        .expect("a layer");
    let wanted = v
        .wanted_layers()
        .into_iter()
        .find(|w| w.digest == layer.blob.digest)
        .expect("every layer is wanted");
    (wanted, layer.producer)
}

/// Step 5: the first byte of a Range GET of the last MiB of an uncached blob.
pub fn range(
    t: &mut Table,
    bench: &Bench,
    store: &Path,
    v1_root: &Path,
    (w, producer): &(Wanted, Producer),
    blobs: &Path,
) {
    let tail = blob_tail(blobs, w);
    let first = |server: &dyn Server| range_first_byte(server, w, &tail);
    let ro = first(&*bench.serve_copy(store, Access::ReadOnly, Cores::All));
    let rw = first(&*bench.serve_copy(store, Access::ReadWrite, Cores::All));
    let d = first(&*bench.distribution_copy(v1_root));
    head(t, "Range GET of the last MiB, uncached (s)");
    for (what, a) in [
        ("first byte, serve --read-only", ro),
        ("first byte, serve read-write", rw),
    ] {
        let notes = format!("last byte at {:.2} s / {:.3} s", a.1, d.1);
        row(t, what, Some(a.0), Some(d.0), "<= 1 s", notes);
    }
    t.note(format!(
        "`Range: bytes=<size - 1 MiB>-` of the largest layer ({:.1} MB, {}) from a fresh server \
         over a fresh copy of the store; the bytes checked",
        mb(w.size),
        producer.name()
    ));
}

/// Step 6: the largest layer of each producer, uncached, served on one core, then on all.
pub fn cores(t: &mut Table, bench: &Bench, store: &Path, v1: &Version) {
    let n = std::thread::available_parallelism().map_or(0, |n| n.get());
    head(t, "one blob rebuilt (x)");
    for producer in [Producer::Pgzip, Producer::Gzip6] {
        let (w, _) = biggest(v1, Some(producer));
        let on = |cores: Cores| get_once(&*bench.serve_copy(store, Access::ReadWrite, cores), &w);
        let (one, all) = (on(Cores::One), on(Cores::All));
        let what = format!("rebuild speedup, {n} cores / 1 core: {}", producer.name());
        let notes = format!(
            "{:.1} MB: 1 core {:.2} s (server CPU {:.1} s), {n} cores {:.2} s (CPU {:.1} s)",
            mb(w.size),
            one.wall,
            one.cpu,
            all.wall,
            all.cpu
        );
        row(t, &what, Some(one.wall / all.wall), None, ">= 1.8", notes);
    }
    t.note(
        "a full GET of the largest layer of each producer from serve read-write over a fresh \
         copy of the store, under `taskset -c 0` and on all cores; the airlock column is the \
         speedup"
            .to_owned(),
    );
}

/// Step 7: `skopeo copy` of every v1 image into an empty registry, then the store's size.
pub fn push(t: &mut Table, bench: &Bench, layout: &Path, v1: &Version) {
    let data = bench.fresh("push-store-");
    let server = Airlock::start(
        &bench.bin,
        &data,
        Access::ReadWrite,
        Cores::All,
        &data.with_extension("log"),
    );
    let (_, a) = measure(&server, || skopeo_copy_all(layout, &server, v1));
    check_served(&server, v1);
    let background = wait_idle(&server);
    server.stop();
    let du = must(&mut bench.airlock(&data, &["--json", "du"]), "airlock du");
    let du: serde_json::Value = serde_json::from_slice(&du.stdout).expect("du --json");
    let a_bytes = du["stored_bytes"].as_u64().unwrap_or(0);
    // Pushed blobs are staged, then ingested in the background (issue 14): none may be left
    // once the server went idle, or the size is not the one after the background work.
    let staged = du["staged"]["blobs"].as_u64().unwrap_or(0);

    let dir = bench.fresh("push-registry-");
    let root = dir.join("root");
    let registry: Distribution = bench.distribution(&root, &dir);
    let (_, d) = measure(&registry, || skopeo_copy_all(layout, &registry, v1));
    check_served(&registry, v1);
    registry.stop();
    let d_bytes = dir_bytes(&root);
    head(t, "push (s)");
    let notes = format!(
        "server CPU {:.1} s / {:.1} s; idle {:.0} s after; then stored {:.1} MB / {:.1} MB{}",
        a.cpu,
        d.cpu,
        background,
        mb(a_bytes),
        mb(d_bytes),
        if staged > 0 {
            format!("; {staged} blobs still staged")
        } else {
            String::new()
        }
    );
    row(
        t,
        "skopeo copy every v1 image",
        Some(a.wall),
        Some(d.wall),
        "<= 1.2",
        notes,
    );
    t.note(
        "skopeo copy --preserve-digests of each image from v1's OCI layout into an empty \
         registry, as a vendor's CI pushes; airlock acknowledges a blob once durable and ingests \
         it in the background; its store measured by `airlock du` once the server is idle \
         (background work done: `idle` is how long that took after the push) and stopped, \
         distribution's by `du -sb`"
            .to_owned(),
    );
}

/// Seconds until `server` used less than [`IDLE_CPU_PER_SECOND`] in each of [`idle_window`]
/// seconds in a row (background work after a push done), at most [`BACKGROUND_LIMIT`].
fn wait_idle(server: &dyn Server) -> f64 {
    let began = Instant::now();
    let window = idle_window();
    let mut idle = 0;
    loop {
        let cpu = server.cpu_seconds();
        std::thread::sleep(Duration::from_secs(1));
        idle = if server.cpu_seconds() - cpu < IDLE_CPU_PER_SECOND {
            idle + 1
        } else {
            0
        };
        if idle >= window || began.elapsed() > BACKGROUND_LIMIT {
            return (began.elapsed().as_secs_f64() - idle as f64).max(0.0);
        }
    }
}

/// Idle seconds in a row that mean the background work is done: airlock's ingest waits for
/// pushes to pause for `INGEST_QUIET` before it starts (issue 14), so one idle second right
/// after a push means nothing.
fn idle_window() -> u64 {
    airlock_store::INGEST_QUIET.as_secs() + 2
}

/// Bytes of the files under `dir` (`du -sb`).
fn dir_bytes(dir: &Path) -> u64 {
    let out = must(Command::new("du").arg("-sb").arg(dir), "du -sb");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}
