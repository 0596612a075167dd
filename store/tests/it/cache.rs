//! Issue 14: the blob cache. Concurrent reads of an uncached gzip blob share one rebuild; a
//! range far ahead of that rebuild is served on its own; a read-only store reads and fills the
//! cache; the policies `import`, `pull` and `never` do what they say; a described blob's check
//! fills the cache; verify re-hashes cache files, drops bad ones and the blob is still served;
//! the size limit holds.

use std::{
    io::Read,
    path::{Path, PathBuf},
    time::Duration,
};

use airlock_store::{
    Access, BlobDescription, Digest, Frame, Materialize, Store, StoreOptions, StoredAs, Verify,
};

use crate::{common::*, layers::flate2_gzip};

/// A layer-like tar of about 3 MB: half text, half random bytes.
fn layer(seed: u64) -> Vec<u8> {
    let mut files = tar_files(seed, 30, 200_000);
    for (i, f) in files.iter_mut().enumerate() {
        if i % 2 == 0 {
            f.data = text(seed + i as u64, f.data.len());
        }
    }
    tar_of(&files)
}

/// A pgzip layer (rebuilt by goflate): the large CI fixture when `GO_GZIP_FIXTURES` names
/// one, else the committed one.
fn pgzip_layer() -> Vec<u8> {
    let large = std::env::var_os("GO_GZIP_FIXTURES")
        .filter(|d| !d.is_empty())
        .map(|d| PathBuf::from(d).join("pgzip_-1_262144.gz"))
        .filter(|p| p.exists());
    let path = large.unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/go/pgzip_-1_65536.gz")
    });
    std::fs::read(path).unwrap()
}

fn opts(materialize: Materialize, limit: u64) -> StoreOptions {
    StoreOptions {
        blob_cache_size: limit,
        materialize,
        ..StoreOptions::default()
    }
}

/// Puts a gzip layer and checks the store keeps it rebuilt.
fn put_rebuilt(store: &Store, gz: &[u8]) -> Digest {
    let (d, _) = put(store, gz);
    let stat = store.stat_blob(&d).unwrap().unwrap();
    assert_eq!(stat.stored_as, StoredAs::Rebuilt);
    d
}

fn cache_files(store: &Store) -> u64 {
    store.du().unwrap().cache_files
}

/// Waits until no materialization runs (they go on after their readers are gone).
fn settle(store: &Store) {
    while store.materializations_running() > 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn issue_14_concurrent_readers_share_one_rebuild() {
    const READERS: u64 = 8;
    for gz in [pgzip_layer(), flate2_gzip(&layer(1), 6)] {
        let (_dir, store) = store_with(opts(Materialize::Pull, 1 << 30));
        let d = put_rebuilt(&store, &gz);
        // Every reader is open before any reads: the first starts the rebuild, the others
        // follow it (or, if it finished already, read its file).
        let readers: Vec<_> = (0..READERS).map(|_| store.open_blob(&d).unwrap()).collect();
        let bodies: Vec<Vec<u8>> = std::thread::scope(|s| {
            let running: Vec<_> = readers
                .into_iter()
                .map(|mut r| {
                    s.spawn(move || {
                        let mut out = Vec::new();
                        r.read_to_end(&mut out).unwrap();
                        out
                    })
                })
                .collect();
            running.into_iter().map(|t| t.join().unwrap()).collect()
        });
        for body in &bodies {
            assert!(*body == gz, "a reader got other bytes");
        }
        let stats = store.cache_stats();
        assert_eq!(stats.materializations, 1, "{stats:?}");
        assert_eq!(stats.followers + stats.hits, READERS, "{stats:?}");
        assert_eq!((stats.direct_rebuilds, stats.failures), (0, 0), "{stats:?}");
        settle(&store);
        assert_eq!(cache_files(&store), 1);
        // Later reads come from the file.
        assert!(read_all(&store, &d).unwrap() == gz);
        assert_eq!(store.cache_stats().materializations, 1);
        assert!(store.verify(Verify::Full).unwrap().is_clean());
    }
}

#[test]
fn issue_14_a_range_far_ahead_of_the_rebuild_is_served_on_its_own() {
    // Random file data: the gzip stream is as large as the tar (about 4.5 MB).
    let gz = flate2_gzip(&tar_of(&tar_files(2, 30, 300_000)), 6);
    let n = gz.len() as u64;
    assert!(
        n > 2 << 20,
        "the fixture must be well past what a reader follows: {n}"
    );
    let (_dir, store) = store_with(opts(Materialize::Pull, 1 << 30));
    let d = put_rebuilt(&store, &gz);
    // The first read starts the blob's materialization and, far ahead of it, rebuilds its
    // range itself.
    let mut r = store.open_blob_range(&d, n - 1000..n).unwrap();
    let mut tail = Vec::new();
    r.read_to_end(&mut tail).unwrap();
    assert!(tail == gz[(n - 1000) as usize..]);
    let stats = store.cache_stats();
    assert_eq!(
        (stats.materializations, stats.direct_rebuilds),
        (1, 1),
        "{stats:?}"
    );
    // The materialization went on to fill the cache.
    settle(&store);
    assert_eq!(cache_files(&store), 1);
    let mut r = store.open_blob_range(&d, 5..n / 2).unwrap();
    let mut mid = Vec::new();
    r.read_to_end(&mut mid).unwrap();
    assert!(mid == gz[5..(n / 2) as usize]);
    let stats = store.cache_stats();
    assert_eq!((stats.materializations, stats.hits), (1, 1), "{stats:?}");
}

#[test]
fn issue_14_a_read_only_store_reads_and_fills_the_cache() {
    let gz = pgzip_layer();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), opts(Materialize::Pull, 1 << 30)).unwrap();
    let d = put_rebuilt(&store, &gz);
    drop(store);
    let read_only = StoreOptions {
        access: Access::ReadOnly,
        ..opts(Materialize::Pull, 1 << 30)
    };
    let store = Store::open(dir.path(), read_only.clone()).unwrap();
    assert!(read_all(&store, &d).unwrap() == gz);
    assert_eq!(store.cache_stats().materializations, 1);
    settle(&store);
    assert_eq!(cache_files(&store), 1);
    drop(store);
    // The next read-only process finds the file: nothing is rebuilt.
    let store = Store::open(dir.path(), read_only).unwrap();
    assert!(read_all(&store, &d).unwrap() == gz);
    let stats = store.cache_stats();
    assert_eq!((stats.materializations, stats.hits), (0, 1), "{stats:?}");
}

#[test]
fn issue_14_policies_import_pull_and_never() {
    let gz = pgzip_layer();
    let tar = layer(3);
    for policy in [Materialize::Import, Materialize::Pull, Materialize::Never] {
        let (_dir, store) = store_with(opts(policy, 1 << 30));
        let d = put_rebuilt(&store, &gz);
        let at_put = u64::from(policy == Materialize::Import);
        assert_eq!(cache_files(&store), at_put, "{policy:?} after the put");
        assert_eq!(store.cache_stats().filled_at_store, at_put, "{policy:?}");
        assert!(read_all(&store, &d).unwrap() == gz);
        assert!(read_all(&store, &d).unwrap() == gz);
        settle(&store);
        let stats = store.cache_stats();
        match policy {
            // Stored with its cache file: no read rebuilds.
            Materialize::Import => {
                assert_eq!((stats.materializations, stats.hits), (0, 2), "{stats:?}");
                assert_eq!(stats.direct_rebuilds, 0);
            }
            // The first read rebuilds, once, into the cache; the second reads the file.
            Materialize::Pull => {
                assert_eq!((stats.materializations, stats.hits), (1, 1), "{stats:?}");
                assert_eq!(stats.direct_rebuilds, 0);
                // The rebuild's time is counted once it ended (issue 15's metrics).
                assert!(stats.materialize_time > Duration::ZERO, "{stats:?}");
                assert_eq!(stats.direct_rebuild_time, Duration::ZERO);
            }
            Materialize::Never => {
                assert_eq!((stats.materializations, stats.hits), (0, 0), "{stats:?}");
                assert_eq!(stats.direct_rebuilds, 2);
                assert!(stats.direct_rebuild_time > Duration::ZERO, "{stats:?}");
                assert_eq!(stats.materialize_time, Duration::ZERO);
            }
        }
        let expected = u64::from(policy != Materialize::Never);
        assert_eq!(cache_files(&store), expected, "{policy:?} after the reads");
        // A blob kept as chunks of its own bytes is read from them, never cached.
        let (t, _) = put(&store, &tar);
        assert!(read_all(&store, &t).unwrap() == tar);
        assert_eq!(
            cache_files(&store),
            expected,
            "{policy:?}: a tar is not cached"
        );
        assert!(store.verify(Verify::Full).unwrap().is_clean());
    }
}

#[test]
fn issue_14_a_described_blobs_check_fills_the_cache() {
    let gz = flate2_gzip(&layer(4), 6);
    let (_from_dir, from) = store_with(opts(Materialize::Never, 0));
    let d = put_rebuilt(&from, &gz);
    for policy in [Materialize::Import, Materialize::Pull] {
        let (_dir, to) = store_with(opts(policy, 1 << 30));
        let desc =
            BlobDescription::from_bytes(&from.describe_blob(&d).unwrap().to_bytes()).unwrap();
        let ids = desc.chunk_ids().unwrap();
        let mut chunks: Vec<(airlock_store::ChunkId, Vec<u8>)> = Vec::new();
        from.read_chunks(&ids, |id, data| {
            chunks.push((*id, data.to_vec()));
            Ok(())
        })
        .unwrap();
        let refs: Vec<_> = chunks.iter().map(|(i, b)| (*i, &b[..])).collect();
        let frame = Frame::compress(&refs, 3).unwrap().as_bytes().to_vec();
        to.insert_frame(Frame::decode(frame).unwrap()).unwrap();
        assert!(!to.put_described(&desc).unwrap().existed);
        let filled = u64::from(policy == Materialize::Import);
        assert_eq!(cache_files(&to), filled, "{policy:?}");
        assert_eq!(to.cache_stats().filled_at_store, filled, "{policy:?}");
        assert!(read_all(&to, &d).unwrap() == gz);
        settle(&to);
        // Produced once at this store either way: by the check, or by the first read.
        let stats = to.cache_stats();
        assert_eq!(stats.materializations, 1 - filled, "{policy:?}: {stats:?}");
        assert!(to.verify(Verify::Full).unwrap().is_clean());
    }
}

#[test]
fn issue_14_verify_drops_bad_cache_files_and_the_blob_is_still_served() {
    let gz = flate2_gzip(&layer(5), 6);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), opts(Materialize::Import, 1 << 30)).unwrap();
    let d = put_rebuilt(&store, &gz);
    drop(store);
    let cache = dir.path().join("cache");
    let file = cache.join(format!("sha256-{}", d.hex()));
    flip_byte(&file, 1000);
    // A file for a blob the store does not hold.
    let stray = Digest::sha256(b"not stored");
    let stray_file = cache.join(format!("sha256-{}", stray.hex()));
    std::fs::write(&stray_file, b"not stored").unwrap();
    let store = Store::open(dir.path(), opts(Materialize::Import, 1 << 30)).unwrap();
    let report = store.verify(Verify::Full).unwrap();
    // Not a defect of the store: the cache is a copy.
    assert!(report.is_clean(), "{:?}", report.defects);
    assert_eq!(report.cache.files, 1);
    let mut dropped: Vec<_> = report
        .cache
        .dropped
        .iter()
        .map(|c| c.path.clone())
        .collect();
    dropped.sort();
    let mut expected = vec![file.clone(), stray_file.clone()];
    expected.sort();
    assert_eq!(dropped, expected);
    let why = |p: &Path| {
        &report
            .cache
            .dropped
            .iter()
            .find(|c| c.path == p)
            .unwrap()
            .why
    };
    assert!(why(&file).contains("hash to"), "{}", why(&file));
    assert!(
        why(&stray_file).contains("not stored"),
        "{}",
        why(&stray_file)
    );
    assert!(!file.exists() && !stray_file.exists());
    // Rebuilt from the store on the next read, and cached again.
    assert!(read_all(&store, &d).unwrap() == gz);
    assert_eq!(store.cache_stats().materializations, 1);
    settle(&store);
    assert_eq!(cache_files(&store), 1);
    let report = store.verify(Verify::Full).unwrap();
    assert!(
        report.is_clean() && report.cache.dropped.is_empty(),
        "{report:?}"
    );
}

#[test]
fn issue_14_the_cache_size_limit_holds() {
    let gzs: Vec<Vec<u8>> = (10..13).map(|s| flate2_gzip(&layer(s), 6)).collect();
    let largest = gzs.iter().map(Vec::len).max().unwrap() as u64;
    let limit = largest * 3 / 2;
    let (_dir, store) = store_with(opts(Materialize::Import, limit));
    let digests: Vec<Digest> = gzs.iter().map(|gz| put_rebuilt(&store, gz)).collect();
    let du = store.du().unwrap();
    assert!(du.cache_bytes <= limit, "{} > {limit}", du.cache_bytes);
    assert_eq!(
        du.cache_files, 1,
        "only the last one put fits with the others evicted"
    );
    for (d, gz) in digests.iter().zip(&gzs) {
        assert!(read_all(&store, d).unwrap() == *gz);
        settle(&store);
        assert!(store.du().unwrap().cache_bytes <= limit);
    }
    // A blob larger than the whole cache is rebuilt for each read, never cached.
    let (_dir, small) = store_with(opts(Materialize::Import, largest / 2));
    let d = put_rebuilt(&small, &gzs[0]);
    assert!(read_all(&small, &d).unwrap() == gzs[0]);
    assert_eq!(cache_files(&small), 0);
    let stats = small.cache_stats();
    assert_eq!(
        (stats.direct_rebuilds, stats.materializations),
        (1, 0),
        "{stats:?}"
    );
}
