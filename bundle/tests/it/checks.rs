//! Issue 14: an import checks each blob as soon as its chunks are in, while later volumes are
//! still to come, and the check fills the blob cache: the first pull after an import rebuilds
//! nothing.

use std::{
    collections::HashSet,
    fs,
    io::Read,
    path::{Path, PathBuf},
};

use airlock_bundle::{NoProgress, VolumeReader, import};
use airlock_store::{ChunkId, Digest, Materialize, Store, StoreOptions, StoredAs, Verify};

fn golden_volumes(bundle: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/bundle-v1");
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with(&format!("{bundle}.")) && !name.contains(".index.")
        })
        .collect();
    v.sort();
    v
}

fn read(store: &Store, d: &Digest) -> Vec<u8> {
    let mut out = Vec::new();
    store.open_blob(d).unwrap().read_to_end(&mut out).unwrap();
    out
}

/// Volumes 1 and 2 of 3 imported: every blob whose chunks they hold is checked and committed
/// already (before, none was until every volume was in), and no tag has moved.
#[test]
fn issue_14_blobs_are_checked_as_soon_as_their_chunks_are_in() {
    let vols = golden_volumes("golden-1.0");
    assert_eq!(vols.len(), 3);
    let index = VolumeReader::open(&vols[0])
        .unwrap()
        .index()
        .cloned()
        .unwrap();
    let in_first_two: HashSet<ChunkId> = index
        .volumes
        .iter()
        .filter(|v| v.number <= 2)
        .flat_map(|v| v.frames.iter().flat_map(|f| f.chunks.iter().copied()))
        .collect();
    let ready: Vec<&Digest> = index
        .blobs
        .iter()
        .filter(|b| b.chunks.iter().all(|c| in_first_two.contains(c)))
        .map(|b| &b.digest)
        .collect();
    let waiting: Vec<&Digest> = index
        .blobs
        .iter()
        .filter(|b| !b.chunks.iter().all(|c| in_first_two.contains(c)))
        .map(|b| &b.digest)
        .collect();
    assert!(
        !ready.is_empty() && !waiting.is_empty(),
        "the fixture spans volumes"
    );

    let dir = tempfile::tempdir().unwrap();
    let site = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let report = import(&site, &vols[..2], &crate::common::unsigned(), &NoProgress).unwrap();
    assert!(!report.is_complete());
    assert_eq!(report.bundles[0].missing_volumes, vec![3]);
    assert_eq!(report.bundles[0].new_blobs, ready.len() as u64);
    for d in &ready {
        assert!(site.has_blob(d).unwrap(), "{d} was not checked yet");
    }
    for d in &waiting {
        assert!(!site.has_blob(d).unwrap(), "{d} lacks chunks");
    }
    for r in &index.refs {
        if let Some(tag) = &r.tag {
            assert_eq!(site.tag(&r.repo, tag).unwrap(), None, "no tag moves early");
        }
    }
    // The rest comes with the last volume.
    let report = import(&site, &vols[2..], &crate::common::unsigned(), &NoProgress).unwrap();
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(report.bundles[0].new_blobs, waiting.len() as u64);
    assert!(site.verify(Verify::Full).unwrap().is_clean());
}

/// Under the cache policy `import`, every rebuilt gzip blob of the bundle is in the cache when
/// the import ends, and reading it back rebuilds nothing; under `pull`, the first read does.
#[test]
fn issue_14_an_import_fills_the_cache_and_the_first_pull_rebuilds_nothing() {
    let vols = golden_volumes("golden-1.0");
    for policy in [Materialize::Import, Materialize::Pull] {
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions {
            materialize: policy,
            ..StoreOptions::default()
        };
        let site = Store::open(dir.path(), opts.clone()).unwrap();
        let report = import(&site, &vols, &crate::common::unsigned(), &NoProgress).unwrap();
        assert!(report.is_complete(), "{report:?}");
        let index = VolumeReader::open(&vols[0])
            .unwrap()
            .index()
            .cloned()
            .unwrap();
        let rebuilt: Vec<&Digest> = index
            .blobs
            .iter()
            .map(|b| &b.digest)
            .filter(|d| site.stat_blob(d).unwrap().unwrap().stored_as == StoredAs::Rebuilt)
            .collect();
        assert!(!rebuilt.is_empty(), "the golden bundle holds gzip layers");
        let cached = if policy == Materialize::Import {
            rebuilt.len() as u64
        } else {
            0
        };
        assert_eq!(site.du().unwrap().cache_files, cached, "{policy:?}");
        assert_eq!(site.cache_stats().filled_at_store, cached, "{policy:?}");
        drop(site);
        // A server started after the import (another process, as `airlock serve`).
        let site = Store::open(dir.path(), opts).unwrap();
        for d in &rebuilt {
            assert_eq!(Digest::sha256(&read(&site, d)), **d);
        }
        let stats = site.cache_stats();
        let rebuilds = stats.materializations + stats.direct_rebuilds;
        match policy {
            Materialize::Import => assert_eq!(rebuilds, 0, "{stats:?}"),
            _ => assert_eq!(rebuilds, rebuilt.len() as u64, "{stats:?}"),
        }
    }
}
