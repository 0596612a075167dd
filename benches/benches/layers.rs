//! gzip layers (issue 3): put and get throughput of gzip'd rootfs-like layers, stored as
//! chunks of their tar plus a preflate-rs rebuild script, and stored bytes for a rebuilt
//! second version against blob-level storage.
//!
//! Layers are compressed by pigz -6 (gzip -6 without it, flate2 level 6 without either).
//! Printed: MB/s of compressed input, per core (process CPU time from /proc/self/stat), for a
//! put into a fresh store, a get that rebuilds (no cache), a get that rebuilds and fills the
//! blob cache, and a get served from the cache; the reconstruction data's share; and what
//! version 2 adds to the store against what a blob-per-file registry adds (its gzip size).

use std::{
    hint::black_box,
    io::{Read, Write},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use airlock_benches::{
    data::{Edit, Rootfs},
    measure::cpu_seconds,
};
use airlock_store::{Digest, PutOptions, Store, StoreOptions, StoredAs};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// About 50 MB of tar for the printed scenario, a smaller layer for criterion's samples.
const ENTRIES: usize = 3000;
const SMALL_ENTRIES: usize = 600;
const MAX_FILE_BYTES: usize = 2 * 1024 * 1024;

/// Compresses with pigz -6, else gzip -6, else flate2 level 6; names what it used.
fn gzip(tar: &[u8]) -> (Vec<u8>, &'static str) {
    for (program, name) in [("pigz", "pigz -6"), ("gzip", "gzip -6")] {
        let child = Command::new(program)
            .args(["-6", "-c", "-n"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn();
        let Ok(mut child) = child else {
            continue;
        };
        let Some(mut stdin) = child.stdin.take() else {
            continue;
        };
        let input = tar.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let mut out = Vec::new();
        if let Some(mut stdout) = child.stdout.take() {
            stdout
                .read_to_end(&mut out)
                .expect("read compressor output");
        }
        writer
            .join()
            .expect("writer thread")
            .expect("write to compressor");
        if child.wait().is_ok_and(|s| s.success()) {
            return (out, name);
        }
    }
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(tar).expect("compress");
    (e.finish().expect("compress"), "flate2 6")
}

/// Resets the process's peak resident set size (Linux: `5` to /proc/self/clear_refs).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident set size in MB since the last reset (VmHWM), 0 if unknown.
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1e3)
        .unwrap_or(0.0)
}

/// Wall time and CPU time of `f`.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration, f64) {
    let (c, t) = (cpu_seconds(), Instant::now());
    let out = f();
    (out, t.elapsed(), cpu_seconds() - c)
}

fn opts(cache: u64) -> StoreOptions {
    StoreOptions {
        blob_cache_size: cache,
        ..StoreOptions::default()
    }
}

fn read(store: &Store, d: &Digest) -> usize {
    let mut r = store.open_blob(d).expect("open");
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0;
    loop {
        match r.read(&mut buf).expect("read") {
            0 => return n,
            k => n += k,
        }
    }
}

fn line(what: &str, bytes: usize, wall: Duration, cpu: f64) {
    let mb = bytes as f64 / 1e6;
    println!(
        "layers: {what:<34} {:7.1} MB/s wall, {:7.1} MB/s per core of CPU ({:.2} s wall, {:.2} s CPU)",
        mb / wall.as_secs_f64(),
        mb / cpu.max(1e-3),
        wall.as_secs_f64(),
        cpu
    );
}

/// The printed scenario: one pass of each operation on the large layer, then version 2.
fn scenario() {
    let fs = Rootfs::generate(1, ENTRIES, MAX_FILE_BYTES);
    let (tar1, tar2) = (fs.to_tar(), fs.edit(2, Edit::TYPICAL).to_tar());
    let ((gz1, how), (gz2, _)) = (gzip(&tar1), gzip(&tar2));
    let (d1, d2) = (Digest::sha256(&gz1), Digest::sha256(&gz2));
    println!(
        "layers: v1 tar {} B, {how} {} B; v2 tar {} B, gzip {} B",
        tar1.len(),
        gz1.len(),
        tar2.len(),
        gz2.len()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), opts(0)).expect("open");
    let inputs_mb = peak_rss_mb();
    reset_peak_rss();
    let (_, wall, cpu) = timed(|| store.put_blob(&d1, &gz1[..], PutOptions::default()));
    line("put v1 (new store)", gz1.len(), wall, cpu);
    println!(
        "layers: peak RSS during the put {:.0} MB, {:.0} MB over the benchmark's inputs",
        peak_rss_mb(),
        peak_rss_mb() - inputs_mb
    );
    let stat = store.stat_blob(&d1).expect("stat").expect("stored");
    assert_eq!(stat.stored_as, StoredAs::Rebuilt, "v1 was not rebuilt");
    reset_peak_rss();
    let (n, wall, cpu) = timed(|| read(&store, &d1));
    assert_eq!(n, gz1.len());
    line("get v1 (rebuild, no cache)", n, wall, cpu);
    println!(
        "layers: peak RSS during the get {:.0} MB, {:.0} MB over the benchmark's inputs",
        peak_rss_mb(),
        peak_rss_mb() - inputs_mb
    );
    let du1 = store.du().expect("du");
    println!(
        "layers: reconstruction data {} B for {} B of tar: {:.3}% of the tar, {:.3}% of the gzip",
        du1.rebuild_bytes,
        du1.rebuilt_payload_bytes,
        100.0 * du1.rebuild_bytes as f64 / du1.rebuilt_payload_bytes as f64,
        100.0 * du1.rebuild_bytes as f64 / gz1.len() as f64
    );
    let (_, wall, cpu) = timed(|| store.put_blob(&d2, &gz2[..], PutOptions::default()));
    line("put v2 (v1 stored)", gz2.len(), wall, cpu);
    let du2 = store.du().expect("du");
    let added = du2.pack_bytes - du1.pack_bytes;
    println!(
        "layers: v2 adds {added} B of packs ({:.2}% of its gzip); blob-level storage adds {} B; \
         both versions: {} B stored (packs {} + index {}) vs {} B as gzip blobs ({:.1}%)",
        100.0 * added as f64 / gz2.len() as f64,
        gz2.len(),
        du2.stored_bytes(),
        du2.pack_bytes,
        du2.index_bytes,
        gz1.len() + gz2.len(),
        100.0 * du2.stored_bytes() as f64 / (gz1.len() + gz2.len()) as f64
    );
    drop(store);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), opts(1 << 30)).expect("open");
    store
        .put_blob(&d1, &gz1[..], PutOptions::default())
        .expect("put");
    let (n, wall, cpu) = timed(|| read(&store, &d1));
    line("get v1 (rebuild, fills cache)", n, wall, cpu);
    let (n, wall, cpu) = timed(|| read(&store, &d1));
    line("get v1 (from cache)", n, wall, cpu);
}

fn layers(c: &mut Criterion) {
    scenario();
    let fs = Rootfs::generate(3, SMALL_ENTRIES, MAX_FILE_BYTES);
    let (gz, _) = gzip(&fs.to_tar());
    let d = Digest::sha256(&gz);
    let mut g = c.benchmark_group("layers");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(gz.len() as u64));
    g.bench_function("put_gzip", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().expect("tempdir");
                let store = Store::open(dir.path(), opts(0)).expect("open");
                let t = Instant::now();
                black_box(store.put_blob(&d, &gz[..], PutOptions::default())).expect("put");
                total += t.elapsed();
            }
            total
        })
    });
    for (name, cache) in [("get_gzip_rebuild", 0), ("get_gzip_cached", 1 << 30)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), opts(cache)).expect("open");
        store
            .put_blob(&d, &gz[..], PutOptions::default())
            .expect("put");
        g.bench_function(name, |b| b.iter(|| black_box(read(&store, &d))));
    }
    g.finish();
}

criterion_group!(benches, layers);
criterion_main!(benches);
