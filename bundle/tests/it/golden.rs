//! issue 13: bundles written by an earlier airlock (tests/golden/, never regenerated) import
//! into today's store, in any order, and every blob rebuilds to its digest.

use std::{
    fs,
    io::Read,
    path::{Path, PathBuf},
};

use airlock_bundle::{NoProgress, import};
use airlock_store::{Digest, Store, StoreOptions, Verify};

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

fn volumes(dir: &Path, bundle: &str) -> Vec<PathBuf> {
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

#[test]
fn issue_13_golden_bundle_v1_imports_exactly() {
    imports_exactly("bundle-v1");
}

/// Issue 17: volume and index format 1 as the airlock before issue 17's format changes wrote
/// them (blob descriptions of version 3: rebuild scripts with checkpoints).
#[test]
fn issue_17_golden_bundle_v1_of_script_3_imports_exactly() {
    imports_exactly("bundle-v1-script3");
}

fn imports_exactly(golden_dir: &str) {
    let dir = golden(golden_dir);
    let site_dir = tempfile::tempdir().unwrap();
    let site = Store::open(
        site_dir.path(),
        StoreOptions {
            blob_cache_size: 0,
            ..StoreOptions::default()
        },
    )
    .unwrap();

    // The full bundle, last volume first; then the delta made --since it.
    let mut full = volumes(&dir, "golden-1.0");
    assert_eq!(full.len(), 3);
    full.reverse();
    let report = import(&site, &full, &crate::common::unsigned(), &NoProgress).unwrap();
    assert!(report.is_complete(), "{report:?}");
    let delta = volumes(&dir, "golden-1.1");
    assert_eq!(delta.len(), 1);
    let report = import(&site, &delta, &crate::common::unsigned(), &NoProgress).unwrap();
    assert!(report.is_complete(), "{report:?}");

    // Every blob the vendor had, byte for byte.
    let listed = fs::read_to_string(dir.join("blobs.sha256")).unwrap();
    let mut n = 0;
    for line in listed.lines() {
        let (hex, _) = line.split_once("  ").unwrap();
        let d: Digest = format!("sha256:{hex}").parse().unwrap();
        let mut bytes = Vec::new();
        site.open_blob(&d)
            .unwrap_or_else(|e| panic!("{d}: {e}"))
            .read_to_end(&mut bytes)
            .unwrap();
        assert_eq!(Digest::sha256(&bytes), d);
        n += 1;
    }
    assert_eq!(n, 19);

    // The same tags as the vendor's store listed.
    let ls: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("ls.json")).unwrap()).unwrap();
    for repo in ls["repositories"].as_array().unwrap() {
        let name = repo["repository"].as_str().unwrap();
        for t in repo["tags"].as_array().unwrap() {
            let tag = t["tag"].as_str().unwrap();
            let want: Digest = t["digest"].as_str().unwrap().parse().unwrap();
            assert_eq!(site.tag(name, tag).unwrap(), Some(want), "{name}:{tag}");
        }
    }
    let report = site.verify(Verify::Full).unwrap();
    assert!(report.is_clean(), "{:?}", report.defects);
}
