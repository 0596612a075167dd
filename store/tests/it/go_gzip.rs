//! Issue 6: gzip layers made by Go's compress/gzip (levels 1-9) and klauspost/pgzip round-trip
//! byte for byte and are stored as chunks of their tar plus goflate reconstruction data.
//!
//! Committed fixtures (store/tests/fixtures/go/, see its README) always run. CI also builds
//! tools/go-gzip and writes larger fixtures and the `go-gzip` binary into the directory named
//! by `GO_GZIP_FIXTURES`; when it is set, those must be there (a missing one fails), and the
//! rebuilt-base scenario compresses its generated tars with that binary. When it is not set,
//! those tests skip visibly, or fail under `AIRLOCK_REQUIRE_TOOLS` (see `tools`).

use std::path::{Path, PathBuf};

use airlock_store::{OpaqueReason, StoreOptions, StoredAs, Verify};
use rand::Rng;

use crate::{common::*, layers::run_filter, tools};

const ENV: &str = "GO_GZIP_FIXTURES";

pub(crate) fn committed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/go")
}

/// The directory CI filled, if the variable is set (else [`tools::unavailable`] reports
/// `without`); panics if the directory it names holds no fixtures.
pub(crate) fn ci_dir(without: &str) -> Option<PathBuf> {
    let Some(dir) = std::env::var_os(ENV).filter(|d| !d.is_empty()) else {
        tools::unavailable(ENV, "is not set", without);
        return None;
    };
    let dir = PathBuf::from(dir);
    let n = gz_files(&dir).len();
    assert!(n > 0, "{ENV}={} holds no .gz fixtures", dir.display());
    Some(dir)
}

pub(crate) fn gz_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| Some(e.ok()?.path())).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|x| x == "gz"));
    v.sort();
    v
}

/// Whether goflate models the fixture's producer: Go's compress/gzip at every level, pgzip at
/// its default level (klauspost level 5) with any block size. Other pgzip levels must only
/// round-trip.
pub(crate) fn modelled(name: &str) -> bool {
    name.starts_with("gzip_") || name.starts_with("pgzip_-1_")
}

/// Puts each fixture and checks it reads back exactly and, if its producer is modelled, is
/// stored rebuilt; returns (name, compressed bytes, reconstruction bytes) per fixture.
fn round_trip_all(dir: &Path) -> Vec<(String, u64, u64)> {
    let files = gz_files(dir);
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    let mut out = Vec::new();
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let gz = std::fs::read(&f).unwrap();
        let (_d, store) = store_with(StoreOptions::default());
        let (digest, _) = put(&store, &gz);
        let stat = store.stat_blob(&digest).unwrap().unwrap();
        if modelled(&name) {
            assert_eq!(stat.stored_as, StoredAs::Rebuilt, "{name}");
        }
        assert!(read_all(&store, &digest).unwrap() == gz, "{name}");
        let du = store.du().unwrap();
        eprintln!(
            "{name}: {} B, {:?}, reconstruction {} B ({:.3}%)",
            gz.len(),
            stat.stored_as,
            du.rebuild_bytes,
            100.0 * du.rebuild_bytes as f64 / gz.len() as f64
        );
        out.push((name, gz.len() as u64, du.rebuild_bytes));
    }
    out
}

/// Reconstruction data (raw gzip framing included) must stay within 2% of the compressed size.
fn assert_small(all: &[(String, u64, u64)]) {
    for (name, gz, extra) in all {
        if modelled(name) {
            assert!(extra * 50 <= *gz, "{name}: {extra} B of {gz} B is over 2%");
        }
    }
}

#[test]
fn issue_6_committed_go_fixtures_are_rebuilt() {
    assert_small(&round_trip_all(&committed()));
}

#[test]
fn issue_6_ci_go_fixtures_are_rebuilt() {
    let Some(dir) = ci_dir("only the committed Go fixtures ran") else {
        return;
    };
    assert_small(&round_trip_all(&dir));
}

#[test]
fn issue_6_damaged_go_stream_falls_back_and_round_trips() {
    let gz = std::fs::read(committed().join("gzip_6.gz")).unwrap();
    let (_d, store) = store_with(StoreOptions::default());
    // An invalid block type in the first block: nothing can parse it.
    let mut bad = gz.clone();
    bad[10] |= 0b110;
    let (d, _) = put(&store, &bad);
    let stat = store.stat_blob(&d).unwrap().unwrap();
    assert!(
        matches!(stat.stored_as, StoredAs::Opaque(_)),
        "{:?}",
        stat.stored_as
    );
    assert!(read_all(&store, &d).unwrap() == bad);
    // A flipped bit mid-stream: whatever it now decodes to, it reads back as it was.
    let mut flipped = gz.clone();
    let at = flipped.len() / 2;
    flipped[at] ^= 0x10;
    let (d, _) = put(&store, &flipped);
    assert!(read_all(&store, &d).unwrap() == flipped);
    // Truncated: the same.
    let cut = &gz[..gz.len() - 100];
    let (d, _) = put(&store, cut);
    assert_eq!(
        store.stat_blob(&d).unwrap().unwrap().stored_as,
        StoredAs::Opaque(OpaqueReason::GzipMalformed)
    );
    assert!(read_all(&store, &d).unwrap() == cut);
    // A Go header on a zlib-family stream: preflate-rs takes it.
    let mut zlib = flate2_like(&std::fs::read(committed().join("gzip_1.gz")).unwrap());
    zlib[9] = 255;
    let (d, _) = put(&store, &zlib);
    assert_eq!(
        store.stat_blob(&d).unwrap().unwrap().stored_as,
        StoredAs::Rebuilt
    );
    assert!(read_all(&store, &d).unwrap() == zlib);
    assert!(store.verify(Verify::Full).unwrap().is_clean());
}

/// The payload of a Go fixture gzip'd again by flate2 (zlib family).
fn flate2_like(gz: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut plain)
        .unwrap();
    crate::layers::flate2_gzip(&plain, 6)
}

/// A rootfs-like tree: config and text files, libraries and binaries.
fn rootfs(seed: u64) -> Vec<TarFile> {
    let mut r = rng(seed);
    (0..900u64)
        .map(|i| {
            let (dir, len, textual) = match i % 10 {
                0..=5 => ("etc/conf.d", r.gen_range(100..4_000), true),
                6 | 7 => ("usr/share/doc", r.gen_range(1_000..40_000), true),
                8 => ("usr/lib", r.gen_range(20_000..150_000), false),
                _ => ("usr/bin", r.gen_range(10_000..100_000), false),
            };
            let cs = seed * 100_000 + i;
            let data = if textual {
                text(cs, len)
            } else {
                let mut d = seeded(cs, len / 2);
                d.extend(text(cs, len - len / 2));
                d
            };
            TarFile {
                path: format!("{dir}/{i:05}"),
                data,
                mtime: 1_700_000_000,
            }
        })
        .collect()
}

/// The next version: 2% of files edited, every mtime new.
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

#[test]
fn issue_6_rebuilt_base_by_go_stores_little() {
    let Some(dir) = ci_dir("the Go rebuilt-base scenario did not run") else {
        return;
    };
    let tool = dir.join("go-gzip");
    assert!(tool.exists(), "{} is missing", tool.display());
    let tool = tool.to_string_lossy().into_owned();
    let v1 = rootfs(11);
    let v2 = rebuilt(v1.clone(), 12);
    let (t1, t2) = (tar_of(&v1), tar_of(&v2));
    for args in [&["gzip", "-1"][..], &["pgzip", "-1", "0"][..]] {
        let gz1 = run_filter(&tool, args, &t1);
        let gz2 = run_filter(&tool, args, &t2);
        let (_d, store) = store_with(StoreOptions::default());
        let (d1, _) = put(&store, &gz1);
        let before = store.du().unwrap();
        let (d2, _) = put(&store, &gz2);
        let after = store.du().unwrap();
        for (d, gz) in [(&d1, &gz1), (&d2, &gz2)] {
            assert_eq!(
                store.stat_blob(d).unwrap().unwrap().stored_as,
                StoredAs::Rebuilt,
                "{args:?}"
            );
            assert!(read_all(&store, d).unwrap() == *gz);
        }
        let added = after.pack_bytes - before.pack_bytes;
        eprintln!(
            "{args:?}: v1 {} B, v2 {} B: v2 added {added} B ({:.1}%); reconstruction {} B \
             ({:.3}% of compressed)",
            gz1.len(),
            gz2.len(),
            100.0 * added as f64 / gz2.len() as f64,
            after.rebuild_bytes,
            100.0 * after.rebuild_bytes as f64 / (gz1.len() + gz2.len()) as f64
        );
        assert!(
            added <= gz2.len() as u64 / 5,
            "{args:?}: v2 added {added} B"
        );
        assert!(store.verify(Verify::Full).unwrap().is_clean());
    }
}

#[test]
fn issue_6_go_blob_ranges_read_exactly() {
    use std::io::Read;
    for name in ["gzip_2.gz", "pgzip_-1_65536.gz"] {
        let gz = std::fs::read(committed().join(name)).unwrap();
        // No blob cache: every range is rebuilt from the start of the stream.
        let (_d, store) = store_with(StoreOptions {
            blob_cache_size: 0,
            ..StoreOptions::default()
        });
        let (d, _) = put(&store, &gz);
        let n = gz.len() as u64;
        for (start, end) in [(0, 1), (1000, 5000), (n / 2, n), (n - 1, n), (0, n)] {
            let mut got = Vec::new();
            store
                .open_blob_range(&d, start..end)
                .unwrap()
                .read_to_end(&mut got)
                .unwrap();
            assert!(
                got[..] == gz[start as usize..end as usize],
                "{name} {start}..{end}"
            );
        }
    }
}
