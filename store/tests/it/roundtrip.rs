//! Put then read back: edge sizes, tar streams, sha512, range reads, concurrent puts.

use std::{collections::HashMap, io::Read, sync::Arc};

use airlock_store::{
    Algorithm, ChunkerParams, Digest, Layout, PutOptions, Store, StoreOptions, Verify, unwrap_io,
};
use rand::Rng;

use crate::common::*;

#[test]
fn edge_sizes_read_back_exactly() {
    let (_dir, store) = store_with(StoreOptions::default());
    let p = ChunkerParams::default();
    let (min, avg, max) = (
        p.min_size() as usize,
        p.avg_size() as usize,
        p.max_size() as usize,
    );
    let frame = StoreOptions::default().frame_size;
    let sizes = [
        0,
        1,
        2,
        min - 1,
        min,
        min + 1,
        avg,
        max - 1,
        max,
        max + 1,
        2 * max,
        frame - 1,
        frame,
        frame + 1,
        3 * 1024 * 1024 + 17,
    ];
    let mut stored = Vec::new();
    for (i, &len) in sizes.iter().enumerate() {
        let data = seeded(i as u64, len);
        let (d, out) = put(&store, &data);
        assert_eq!(out.size, len as u64);
        assert!(!out.existed);
        let stat = store.stat_blob(&d).unwrap().unwrap();
        assert_eq!(stat.size, len as u64);
        assert_eq!(stat.layout, Layout::Plain);
        stored.push((d, data));
    }
    for (d, data) in &stored {
        assert_reads(&store, d, data);
        assert_eq!(&store.read_blob(d).unwrap(), data);
        assert!(store.has_blob(d).unwrap());
    }
    let empty = Digest::sha256(b"");
    assert_eq!(store.open_blob(&empty).unwrap().len(), 0);
    let report = store.verify(Verify::Full).unwrap();
    assert!(report.is_clean(), "{:?}", report.defects);
    assert_eq!(report.blobs, sizes.len() as u64);
}

#[test]
fn multi_mib_random_and_compressible_blobs() {
    let (_dir, store) = store_with(StoreOptions::default());
    let random = seeded(77, 9 * 1024 * 1024 + 123);
    let words = text(78, 6 * 1024 * 1024);
    let (dr, _) = put(&store, &random);
    let (dw, ow) = put(&store, &words);
    assert!(
        ow.stored_bytes < ow.size / 3,
        "text compresses: {} stored for {}",
        ow.stored_bytes,
        ow.size
    );
    assert_reads(&store, &dr, &random);
    assert_reads(&store, &dw, &words);
}

#[test]
fn tar_streams_keep_headers_inline() {
    let (_dir, store) = store_with(StoreOptions::default());
    let files = tar_files(5, 40, 300 * 1024);
    let t = tar_of(&files);
    let (d, out) = put(&store, &t);
    assert_eq!(out.size, t.len() as u64);
    let stat = store.stat_blob(&d).unwrap().unwrap();
    assert_eq!(stat.layout, Layout::Tar);
    assert!(
        stat.inline_bytes >= 40 * 512,
        "headers inline: {}",
        stat.inline_bytes
    );
    assert_reads(&store, &d, &t);
    // A tar of nothing but headers and the end marker.
    let empty_files: Vec<TarFile> = (0..3)
        .map(|i| TarFile {
            path: format!("empty-{i}"),
            data: vec![],
            mtime: 1,
        })
        .collect();
    let t2 = tar_of(&empty_files);
    let (d2, _) = put(&store, &t2);
    assert!(store.stat_blob(&d2).unwrap().unwrap().inline_bytes >= 3 * 512);
    assert_reads(&store, &d2, &t2);
    // Something that starts like a tar and then is not one.
    let mut broken = t.clone();
    broken.truncate(t.len() / 2);
    broken.extend(seeded(6, 100_000));
    let (d3, _) = put(&store, &broken);
    assert_reads(&store, &d3, &broken);
    assert!(store.verify(Verify::Full).unwrap().is_clean());
}

#[test]
fn sha512_digests_are_verified_and_stored() {
    let (_dir, store) = store_with(StoreOptions::default());
    let data = seeded(9, 700_000);
    let d = Digest::of(Algorithm::Sha512, &data);
    assert_eq!(d.algorithm(), Algorithm::Sha512);
    store
        .put_blob(&d, &data[..], PutOptions::default())
        .unwrap();
    assert_reads(&store, &d, &data);
    // The same bytes under their sha256 are another blob sharing every chunk.
    let (d256, out) = put(&store, &data);
    assert_ne!(d, d256);
    assert_eq!(out.new_chunks, 0);
    // A wrong sha512 is refused.
    let other = Digest::of(Algorithm::Sha512, b"other");
    let err = store
        .put_blob(&other, &data[..], PutOptions::default())
        .unwrap_err();
    assert!(
        matches!(&err, airlock_store::Error::DigestMismatch { expected, actual }
            if *expected == other && *actual == d),
        "{err}"
    );
    let report = store.verify(Verify::Full).unwrap();
    assert!(report.is_clean(), "{:?}", report.defects);
}

/// Range reads at random offsets, compared with slices, over blobs whose recipes have many
/// segments (tiny chunks) and inline pieces (tar headers).
#[test]
fn range_reads_match_slices() {
    let (_dir, store) = store_with(StoreOptions {
        chunker: tiny_chunks(),
        frame_size: 8 * 1024,
        ..StoreOptions::default()
    });
    let random = seeded(11, 2 * 1024 * 1024 + 5);
    let t = tar_of(&tar_files(12, 60, 40_000));
    let (dr, out) = put(&store, &random);
    assert!(
        out.new_chunks > 4096,
        "several recipe segments: {}",
        out.new_chunks
    );
    let (dt, _) = put(&store, &t);
    let mut r = rng(13);
    for (d, data) in [(&dr, &random), (&dt, &t)] {
        let len = data.len() as u64;
        let mut ranges = vec![(0, 0), (0, 1), (len - 1, len), (len, len), (0, len)];
        for _ in 0..150 {
            let a = r.gen_range(0..=len);
            let span = r.gen_range(0..200_000);
            let b = r.gen_range(a..=len.min(a + span));
            ranges.push((a, b));
        }
        for (a, b) in ranges {
            let mut reader = store.open_blob_range(d, a..b).unwrap();
            assert_eq!(reader.len(), b - a);
            let mut got = Vec::new();
            reader
                .read_to_end(&mut got)
                .map_err(|e| unwrap_io(d, e))
                .unwrap();
            assert!(
                got == data[a as usize..b as usize],
                "range {a}..{b} of {d} differs"
            );
            assert!(reader.is_empty());
        }
    }
}

/// Threads put many blobs at once, some the same digest at the same time, some sharing chunks.
#[test]
fn concurrent_puts_from_threads() {
    let (_dir, store) = store_with(StoreOptions {
        pack_size: 512 * 1024,
        ..small_opts(512 * 1024)
    });
    let shared = Arc::new(seeded(20, 400_000));
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let store = store.clone();
            let shared = shared.clone();
            std::thread::spawn(move || {
                let mut mine = HashMap::new();
                for i in 0..12u64 {
                    let data = match i % 4 {
                        // The same blob in every thread.
                        0 => seeded(1000 + i, 150_000),
                        // Distinct blobs sharing a long common part.
                        1 => {
                            let mut v = shared.to_vec();
                            v.extend(seeded(t * 100 + i, 30_000));
                            v
                        }
                        _ => seeded(t * 100 + i, 20_000 + (i as usize) * 9_000),
                    };
                    let (d, out) = put(&store, &data);
                    assert_eq!(out.size, data.len() as u64);
                    mine.insert(d, data);
                }
                mine
            })
        })
        .collect();
    let mut all = HashMap::new();
    for t in threads {
        all.extend(t.join().unwrap());
    }
    for (d, data) in &all {
        assert_reads(&store, d, data);
    }
    let report = store.verify(Verify::Full).unwrap();
    assert!(report.is_clean(), "{:?}", report.defects);
    assert_eq!(report.blobs, all.len() as u64);
    assert_eq!(store.du().unwrap().blobs, all.len() as u64);
    // The store reopens with the same content.
    let root = store.root().to_owned();
    drop(store);
    let store = Store::open(&root, small_opts(512 * 1024)).unwrap();
    for (d, data) in &all {
        assert_reads(&store, d, data);
    }
}
