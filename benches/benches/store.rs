//! Store throughput against baselines run in the same process: put of new data (bounded by
//! zstd), put of data whose chunks are already stored, re-put of a stored blob, and get, on a
//! rootfs-like tar; plus stored bytes for a second version against blob-level storage.
//!
//! Baselines: writing the same bytes to a file and syncing it (what a blob-per-file registry
//! does on push); zstd level 3 over the same bytes on one core (the store's compression at its
//! default level), whole and in frames of the store's frame size, and those frames on every
//! core (the ceiling for a put of new data); sha256 with the chunker (cut points and BLAKE3
//! ids), the rest of a put's CPU; and reading the file back (what such a registry does on
//! pull). Figures are printed as MB/s, MB/s per core, and ratios to the baselines. Store opens
//! are never timed: each put of new data goes into a fresh store opened beforehand.
//!
//! Set `AIRLOCK_BENCH_ENTRIES` (default 3000, about 34 MB) for a larger generated tar, where a
//! put's fixed costs (fsync, index commit, pipeline start and drain) weigh less.
//! Set `AIRLOCK_BENCH_TREE=/usr` to measure a tar of a real tree as well: an even sample of its
//! files and symlinks (every k-th in sorted order) of about
//! `AIRLOCK_BENCH_TREE_MB` (default 128) MB, owners and mtimes zeroed, so the same tree always
//! gives the same bytes.

use std::{
    hint::black_box,
    io::{Read, Write},
    path::Path,
    time::{Duration, Instant},
};

use airlock_benches::data::{Edit, Rootfs};
use airlock_chunker::{Chunker, ChunkerParams, Mode};
use airlock_store::{Digest, HashingReader, PutOptions, Store, StoreOptions};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// About 34 MB of tar.
const ENTRIES: usize = 3000;
const MAX_FILE_BYTES: usize = 2 * 1024 * 1024;
/// Runs of each one-shot figure; the fastest is reported (the machine is shared).
const RUNS: usize = 5;

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn mbps(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

fn fastest(runs: usize, mut f: impl FnMut() -> Duration) -> Duration {
    (0..runs).map(|_| f()).min().unwrap_or_default()
}

/// Time of one put of `data` into a fresh store (opened before the clock starts).
fn put_fresh(data: &[u8], digest: &Digest) -> Duration {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), StoreOptions::default()).expect("open");
    let t = Instant::now();
    store
        .put_blob(digest, data, PutOptions::default())
        .expect("put");
    t.elapsed()
}

/// Baseline: write the bytes to a file and sync it.
fn file_write(data: &[u8]) -> Duration {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = Instant::now();
    let mut f = std::fs::File::create(dir.path().join("blob")).expect("create");
    f.write_all(data).expect("write");
    f.sync_all().expect("sync");
    t.elapsed()
}

/// Baseline: zstd-3 over frames of the store's frame size, on `threads` threads.
fn zstd_frames(data: &[u8], threads: usize) -> Duration {
    let frame = StoreOptions::default().frame_size;
    let frames: Vec<&[u8]> = data.chunks(frame).collect();
    let t = Instant::now();
    std::thread::scope(|s| {
        for i in 0..threads {
            let frames = &frames;
            s.spawn(move || {
                for f in frames.iter().skip(i).step_by(threads) {
                    black_box(zstd::bulk::compress(f, 3).expect("zstd"));
                }
            });
        }
    });
    t.elapsed()
}

/// Baseline: what a put spends besides compression, sha256 of the input and the chunker.
fn chunk_and_hash(data: &[u8]) -> Duration {
    let t = Instant::now();
    let mut hashing = HashingReader::new(data, airlock_store::Algorithm::Sha256);
    let mut chunker = Chunker::new(&mut hashing, ChunkerParams::default(), Mode::Auto);
    while let Some(batch) = chunker.next_batch().expect("chunk") {
        black_box(batch);
    }
    drop(chunker);
    black_box(hashing.finish());
    t.elapsed()
}

/// A tar of the tree at `root` of about `max` bytes: an even sample of its regular files and
/// symlinks (every k-th in sorted order; no directory entries), owners and times zeroed.
fn tree_tar(root: &Path, max: usize) -> Vec<u8> {
    fn walk(dir: &Path, out: &mut Vec<(std::path::PathBuf, std::fs::Metadata)>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        let mut paths: Vec<_> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let is_dir = meta.is_dir();
            out.push((path.clone(), meta));
            if is_dir {
                walk(&path, out);
            }
        }
    }
    let mut entries = Vec::new();
    walk(root, &mut entries);
    let file_bytes: u64 = entries
        .iter()
        .filter(|(_, m)| m.is_file())
        .map(|(_, m)| m.len())
        .sum();
    // Symlinks count as files for the sampling; their bytes are negligible.
    let every = file_bytes.div_ceil(max as u64).max(1);
    let mut out = tar::Builder::new(Vec::new());
    let mut files = 0u64;
    for (path, meta) in entries {
        let Ok(name) = path.strip_prefix(root) else {
            continue;
        };
        let mut h = tar::Header::new_gnu();
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mode(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777);
        h.set_size(0);
        let ft = meta.file_type();
        if ft.is_dir() {
            continue;
        }
        files += 1;
        if !files.is_multiple_of(every) {
            continue;
        }
        if ft.is_symlink() {
            let Ok(target) = std::fs::read_link(&path) else {
                continue;
            };
            h.set_entry_type(tar::EntryType::Symlink);
            let _ = out.append_link(&mut h, name, target);
        } else if ft.is_file() {
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(bytes.len() as u64);
            let _ = out.append_data(&mut h, name, &bytes[..]);
        }
    }
    out.into_inner().expect("tar")
}

/// One-shot figures for `data`, with the baselines, printed.
fn summary(name: &str, data: &[u8]) {
    let n = data.len();
    let d = Digest::sha256(data);
    let k = cores();

    let base_write = fastest(RUNS, || file_write(data));
    let mut compressed = 0;
    let base_zstd = fastest(RUNS, || {
        let t = Instant::now();
        compressed = zstd::bulk::compress(data, 3).expect("zstd").len();
        t.elapsed()
    });
    let zstd_one = fastest(RUNS, || zstd_frames(data, 1));
    let zstd_all = fastest(RUNS, || zstd_frames(data, k));
    let chunking = fastest(RUNS, || chunk_and_hash(data));
    let put_new = fastest(RUNS, || put_fresh(data, &d));

    let dir = tempfile::tempdir().expect("tempdir");
    let s = Store::open(dir.path(), StoreOptions::default()).expect("open");
    s.put_blob(&d, data, PutOptions::default()).expect("put");
    let mut next = 0u64;
    let stored = fastest(RUNS, || {
        next += 1;
        put_stored(&s, data, next)
    });
    let reput = fastest(RUNS, || {
        let t = Instant::now();
        s.put_blob(&d, data, PutOptions::default()).expect("re-put");
        t.elapsed()
    });
    let get = fastest(RUNS, || read_all(&s, &d, n));
    let bdir = tempfile::tempdir().expect("tempdir");
    std::fs::write(bdir.path().join("blob"), data).expect("write");
    let base_read = fastest(RUNS, || {
        let t = Instant::now();
        black_box(std::fs::read(bdir.path().join("blob")).expect("read"));
        t.elapsed()
    });

    println!("store, {name}: {:.1} MB tar, {k} cores", n as f64 / 1e6);
    println!(
        "  baselines: file write+sync {:.0} MB/s | zstd-3 one core {:.0} MB/s ({:.2}x), in {} KiB frames {:.0} MB/s, on {k} cores {:.0} MB/s ({:.0} MB/s/core)",
        mbps(n, base_write),
        mbps(n, base_zstd),
        n as f64 / compressed as f64,
        StoreOptions::default().frame_size / 1024,
        mbps(n, zstd_one),
        mbps(n, zstd_all),
        mbps(n, zstd_all) / k as f64,
    );
    println!(
        "             sha256+chunker {:.0} MB/s | file read {:.0} MB/s",
        mbps(n, chunking),
        mbps(n, base_read)
    );
    let line = |what: &str, d: Duration, base: Duration, base_name: &str| {
        println!(
            "  {what:<26}{:8.0} MB/s  {:6.0} MB/s/core  {:5.2}x {base_name}",
            mbps(n, d),
            mbps(n, d) / k as f64,
            base.as_secs_f64() / d.as_secs_f64()
        );
    };
    line("put new data", put_new, base_zstd, "of zstd-3 on one core");
    line(
        "put, chunks already stored",
        stored,
        base_write,
        "of file write+sync",
    );
    line(
        "re-put of a stored blob",
        reput,
        base_write,
        "of file write+sync",
    );
    // One reader: a get runs on the caller's thread, so its MB/s is per core.
    println!(
        "  {:<26}{:8.0} MB/s  {:6.0} MB/s/core  {:5.2}x of file read (one reader, one core)",
        "get",
        mbps(n, get),
        mbps(n, get),
        base_read.as_secs_f64() / get.as_secs_f64()
    );
}

/// Time of one put of `data` plus a zero block and a counter: a new digest whose chunks (all
/// but the last, tiny one) are already stored.
fn put_stored(s: &Store, data: &[u8], i: u64) -> Duration {
    let mut more = data.to_vec();
    more.extend_from_slice(&[0u8; 512]);
    more.extend_from_slice(&i.to_le_bytes());
    let d = Digest::sha256(&more);
    let t = Instant::now();
    let out = s
        .put_blob(&d, &more[..], PutOptions::default())
        .expect("put, chunks stored");
    let took = t.elapsed();
    assert!(out.new_chunks <= 1, "the chunks are already stored");
    took
}

fn read_all(s: &Store, d: &Digest, n: usize) -> Duration {
    let t = Instant::now();
    let mut r = s.open_blob(d).expect("open blob");
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    loop {
        let k = r.read(&mut buf).expect("read");
        if k == 0 {
            break;
        }
        total += k;
    }
    assert_eq!(total, n);
    t.elapsed()
}

fn store(c: &mut Criterion) {
    let entries = std::env::var("AIRLOCK_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ENTRIES);
    let fs = Rootfs::generate(1, entries, MAX_FILE_BYTES);
    let v1 = fs.to_tar();
    let v2 = fs.edit(2, Edit::TYPICAL).to_tar();
    let d1 = Digest::sha256(&v1);
    let d2 = Digest::sha256(&v2);
    let n = v1.len();

    summary("generated rootfs", &v1);
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Store::open(dir.path(), StoreOptions::default()).expect("open");
    s.put_blob(&d1, &v1[..], PutOptions::default())
        .expect("put v1");
    let after_v1 = s.du().expect("du");
    let out2 = s
        .put_blob(&d2, &v2[..], PutOptions::default())
        .expect("put v2");
    let after_v2 = s.du().expect("du");
    let v2_new = after_v2.pack_bytes - after_v1.pack_bytes;
    println!(
        "  v2 (2% files edited, 10% mtimes): {:.2} MB new pack bytes vs {:.1} MB blob-level ({:.1}%); {} new chunks, {:.2} MB raw",
        v2_new as f64 / 1e6,
        v2.len() as f64 / 1e6,
        100.0 * v2_new as f64 / v2.len() as f64,
        out2.new_chunks,
        out2.new_bytes as f64 / 1e6
    );
    if let Some(root) = std::env::var_os("AIRLOCK_BENCH_TREE") {
        let mb = std::env::var("AIRLOCK_BENCH_TREE_MB")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(128usize);
        let tar = tree_tar(Path::new(&root), mb * 1_000_000);
        summary(&format!("tar of {}", Path::new(&root).display()), &tar);
    }

    let mut g = c.benchmark_group("store");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Bytes(n as u64));
    g.bench_function("put_new", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| put_fresh(&v1, &d1)).sum())
    });
    // Every iteration puts a new digest (criterion calls the routine several times).
    let mut next = 0u64;
    g.bench_function("put_chunks_stored", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    next += 1;
                    put_stored(&s, &v1, next)
                })
                .sum()
        })
    });
    g.bench_function("get", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| read_all(&s, &d1, n)).sum())
    });
    g.finish();
}

criterion_group!(benches, store);
criterion_main!(benches);
