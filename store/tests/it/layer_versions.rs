//! Issue 3: a rebuilt base image. Two versions of a rootfs-like layer, the second with 2% of
//! its files changed and new mtimes on every file, both gzip'd by pigz (gzip -6, then flate2,
//! stand in without it, except under `AIRLOCK_REQUIRE_TOOLS`): the second adds at most a fifth
//! of its compressed size in new stored bytes.

use airlock_store::{StoreOptions, StoredAs, Verify};
use rand::Rng;

use crate::{
    common::*,
    layers::{flate2_gzip, run_filter},
    tools,
};

/// Files of a rootfs: many small config and text files, some libraries, a few binaries.
fn rootfs(seed: u64) -> Vec<TarFile> {
    let mut r = rng(seed);
    let mut files = Vec::new();
    for i in 0..1200 {
        let (dir, len, textual) = match i % 10 {
            0..=5 => ("etc/conf.d", r.gen_range(100..4_000), true),
            6 | 7 => ("usr/share/doc", r.gen_range(1_000..40_000), true),
            8 => (
                "usr/lib/x86_64-linux-gnu",
                r.gen_range(20_000..200_000),
                false,
            ),
            _ => ("usr/bin", r.gen_range(10_000..120_000), false),
        };
        let content_seed = seed * 100_000 + i;
        let data = if textual {
            text(content_seed, len)
        } else {
            // Binaries compress somewhat: half random, half text.
            let mut d = seeded(content_seed, len / 2);
            d.extend(text(content_seed, len - len / 2));
            d
        };
        files.push(TarFile {
            path: format!("{dir}/{i:05}"),
            data,
            mtime: 1_700_000_000,
        });
    }
    files
}

/// The next version: 2% of the files edited (a few bytes each), every mtime new.
fn rebuilt(mut files: Vec<TarFile>, seed: u64) -> Vec<TarFile> {
    let mut r = rng(seed);
    for f in &mut files {
        f.mtime += 86_400;
        if r.gen_bool(0.02) && !f.data.is_empty() {
            let at = r.gen_range(0..f.data.len());
            f.data[at] ^= 0x5a;
            f.data.extend_from_slice(b"\nedited\n");
        }
    }
    files
}

fn compress(tar: &[u8]) -> Vec<u8> {
    if tools::found("pigz", "gzip -6 (or flate2 level 6) stood in for pigz") {
        run_filter("pigz", &["-6", "-c", "-n"], tar)
    } else if tools::found("gzip", "flate2 level 6 stood in for pigz and gzip") {
        run_filter("gzip", &["-6", "-c", "-n"], tar)
    } else {
        flate2_gzip(tar, 6)
    }
}

#[test]
fn issue_3_rebuilt_base_second_version_stores_little() {
    let (_dir, store) = store_with(StoreOptions::default());
    let v1 = rootfs(1);
    let v2 = rebuilt(v1.clone(), 2);
    let (gz1, gz2) = (compress(&tar_of(&v1)), compress(&tar_of(&v2)));
    let (d1, _) = put(&store, &gz1);
    let before = store.du().unwrap();
    let (d2, _) = put(&store, &gz2);
    let after = store.du().unwrap();
    for (d, gz) in [(&d1, &gz1), (&d2, &gz2)] {
        assert_eq!(
            store.stat_blob(d).unwrap().unwrap().stored_as,
            StoredAs::Rebuilt
        );
        assert!(read_all(&store, d).unwrap() == *gz);
    }
    let added = after.pack_bytes - before.pack_bytes;
    eprintln!(
        "v1 {} B gzip, v2 {} B gzip: v2 added {added} B of packs ({:.1}%); reconstruction data \
         {} B for {} B of tar ({:.3}%)",
        gz1.len(),
        gz2.len(),
        100.0 * added as f64 / gz2.len() as f64,
        after.rebuild_bytes,
        after.rebuilt_payload_bytes,
        100.0 * after.rebuild_bytes as f64 / after.rebuilt_payload_bytes as f64
    );
    assert!(
        added <= gz2.len() as u64 / 5,
        "v2 added {added} bytes, more than a fifth of {}",
        gz2.len()
    );
    let report = store.verify(Verify::Full).unwrap();
    assert!(report.is_clean(), "{:?}", report.defects);
}
