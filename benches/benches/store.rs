//! Store throughput against baselines run in the same process: put of new data (bounded by
//! zstd), put of data whose chunks are already stored, re-put of a stored blob, and get, on a
//! rootfs-like tar; plus stored bytes for a second version against blob-level storage.
//!
//! Baselines: writing the same bytes to a file and syncing it (what a blob-per-file registry
//! does on push), zstd level 3 over the same bytes on one core (the store's compression at its
//! default level), and reading the file back (what such a registry does on pull). Figures are
//! printed as MB/s, MB/s per core, and ratios to the baselines.

use std::{
    hint::black_box,
    io::{Read, Write},
    time::{Duration, Instant},
};

use airlock_benches::data::{Edit, Rootfs};
use airlock_store::{Digest, PutOptions, Store, StoreOptions};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// About 40 MB of tar.
const ENTRIES: usize = 3000;
const MAX_FILE_BYTES: usize = 2 * 1024 * 1024;

fn cores() -> f64 {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64
}

fn mbps(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

/// Time of one put of `data` into a fresh store.
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

fn store(c: &mut Criterion) {
    let fs = Rootfs::generate(1, ENTRIES, MAX_FILE_BYTES);
    let v1 = fs.to_tar();
    let v2 = fs.edit(2, Edit::TYPICAL).to_tar();
    let d1 = Digest::sha256(&v1);
    let d2 = Digest::sha256(&v2);
    // Same content as v1 plus one more zero block: a new digest whose chunks are all stored.
    let mut v1b = v1.clone();
    v1b.extend_from_slice(&[0u8; 512]);
    let d1b = Digest::sha256(&v1b);
    let n = v1.len();

    // One-shot summary with in-process baselines.
    let base_write = (0..3).map(|_| file_write(&v1)).min().unwrap_or_default();
    let t = Instant::now();
    let compressed = zstd::bulk::compress(&v1, 3).expect("zstd");
    let base_zstd = t.elapsed();
    let put_new = (0..3)
        .map(|_| put_fresh(&v1, &d1))
        .min()
        .unwrap_or_default();

    let dir = tempfile::tempdir().expect("tempdir");
    let s = Store::open(dir.path(), StoreOptions::default()).expect("open");
    s.put_blob(&d1, &v1[..], PutOptions::default())
        .expect("put v1");
    let after_v1 = s.du().expect("du");
    let t = Instant::now();
    let out = s
        .put_blob(&d1b, &v1b[..], PutOptions::default())
        .expect("put v1b");
    let put_dedup = t.elapsed();
    assert_eq!(out.new_chunks, 0, "every chunk of v1b is already stored");
    let t = Instant::now();
    s.put_blob(&d1, &v1[..], PutOptions::default())
        .expect("re-put v1");
    let reput = t.elapsed();
    let out2 = s
        .put_blob(&d2, &v2[..], PutOptions::default())
        .expect("put v2");
    let after_v2 = s.du().expect("du");
    let read_all = |d: &Digest| {
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
    };
    let get = (0..3).map(|_| read_all(&d1)).min().unwrap_or_default();
    let bdir = tempfile::tempdir().expect("tempdir");
    std::fs::write(bdir.path().join("blob"), &v1).expect("write");
    let t = Instant::now();
    let back = std::fs::read(bdir.path().join("blob")).expect("read");
    let base_read = t.elapsed();
    black_box(back);

    let k = cores();
    println!("store: v1 {:.1} MB tar, {} cores", n as f64 / 1e6, k);
    println!(
        "  baseline file write+sync  {:8.0} MB/s | zstd-3 one core {:6.0} MB/s ({:.2}x) | file read {:6.0} MB/s",
        mbps(n, base_write),
        mbps(n, base_zstd),
        n as f64 / compressed.len() as f64,
        mbps(n, base_read)
    );
    let line = |name: &str, d: Duration, base: Duration, base_name: &str| {
        println!(
            "  {name:<26}{:8.0} MB/s  {:6.0} MB/s/core  {:5.2}x {base_name}",
            mbps(n, d),
            mbps(n, d) / k,
            base.as_secs_f64() / d.as_secs_f64()
        );
    };
    line("put new data", put_new, base_zstd, "of zstd-3 on one core");
    line(
        "put, chunks already stored",
        put_dedup,
        base_write,
        "of file write+sync",
    );
    line(
        "re-put of a stored blob",
        reput,
        base_write,
        "of file write+sync",
    );
    line("get", get, base_read, "of file read");
    let v2_new = after_v2.pack_bytes - after_v1.pack_bytes;
    println!(
        "  v2 (2% files edited, 10% mtimes): {:.2} MB new pack bytes vs {:.1} MB blob-level ({:.1}%); {} new chunks, {:.2} MB raw",
        v2_new as f64 / 1e6,
        v2.len() as f64 / 1e6,
        100.0 * v2_new as f64 / v2.len() as f64,
        out2.new_chunks,
        out2.new_bytes as f64 / 1e6
    );

    let mut g = c.benchmark_group("store");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Bytes(n as u64));
    g.bench_function("put_new", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| put_fresh(&v1, &d1)).sum())
    });
    g.bench_function("put_chunks_stored", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|i| {
                    let mut data = v1.clone();
                    data.extend_from_slice(&[0u8; 512]);
                    data.extend_from_slice(&i.to_le_bytes());
                    let d = Digest::sha256(&data);
                    let t = Instant::now();
                    s.put_blob(&d, &data[..], PutOptions::default())
                        .expect("put");
                    t.elapsed()
                })
                .sum()
        })
    });
    g.bench_function("get", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| read_all(&d1)).sum())
    });
    g.finish();
}

criterion_group!(benches, store);
criterion_main!(benches);
