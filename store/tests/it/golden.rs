//! issue 13: stores written by an earlier airlock (tests/golden/, never regenerated) open,
//! verify clean and rebuild every blob exactly, read-only and after being opened for writing.

use std::{
    fs,
    io::Read,
    path::{Path, PathBuf},
};

use airlock_store::{Access, Digest, Store, StoreOptions, StoredAs, Verify};

/// Copies a golden store to a temporary directory (opening may write a lock or upgrade it).
fn copy_golden(name: &str) -> (tempfile::TempDir, PathBuf) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&src, tmp.path());
    let listed = tmp.path().join("blobs.sha256");
    (tmp, listed)
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// The digests `blobs.sha256` lists (`sha256sum` lines: hex, two spaces, file name = hex).
fn listed_digests(path: &Path) -> Vec<Digest> {
    let text = fs::read_to_string(path).unwrap();
    let digests: Vec<Digest> = text
        .lines()
        .map(|l| {
            let (hex, name) = l.split_once("  ").unwrap();
            assert_eq!(hex, name, "{l}");
            format!("sha256:{hex}").parse().unwrap()
        })
        .collect();
    assert!(!digests.is_empty());
    digests
}

/// Every listed blob reads back with its digest; returns how many are kept `Rebuilt`.
fn check_every_blob(store: &Store, digests: &[Digest]) -> usize {
    let mut rebuilt = 0;
    for d in digests {
        let stat = store
            .stat_blob(d)
            .unwrap()
            .unwrap_or_else(|| panic!("{d} missing"));
        let mut bytes = Vec::new();
        store.open_blob(d).unwrap().read_to_end(&mut bytes).unwrap();
        assert_eq!(bytes.len() as u64, stat.size, "{d}");
        assert_eq!(&Digest::sha256(&bytes), d, "{d} rebuilt to other bytes");
        if stat.stored_as == StoredAs::Rebuilt {
            rebuilt += 1;
        }
    }
    rebuilt
}

#[test]
fn issue_13_golden_store_v2_rebuilds_exactly() {
    let (tmp, listed) = copy_golden("store-v2");
    let digests = listed_digests(&listed);
    let du: serde_json::Value =
        serde_json::from_slice(&fs::read(tmp.path().join("du.json")).unwrap()).unwrap();
    let rebuilt_then = du["rebuilt"]["blobs"].as_u64().unwrap() as usize;
    assert_eq!(
        rebuilt_then, 7,
        "the fixture holds seven rebuilt gzip layers"
    );

    // Read-only first: nothing may be upgraded before the data is proven readable as written.
    let ro = StoreOptions {
        access: Access::ReadOnly,
        blob_cache_size: 0,
        ..StoreOptions::default()
    };
    let store = Store::open(tmp.path(), ro).unwrap();
    let report = store.verify(Verify::Full).unwrap();
    assert!(report.is_clean(), "{:?}", report.defects);
    assert_eq!(report.blobs as usize, digests.len());
    assert_eq!(check_every_blob(&store, &digests), rebuilt_then);
    let tags = store.tags("golden/app").unwrap();
    assert_eq!(tags.len(), 2, "{tags:?}");
    drop(store);

    // Then for writing, with the blob cache off so every gzip layer is rebuilt from its data.
    let rw = StoreOptions {
        blob_cache_size: 0,
        ..StoreOptions::default()
    };
    let store = Store::open(tmp.path(), rw).unwrap();
    assert_eq!(check_every_blob(&store, &digests), rebuilt_then);
    let report = store.verify(Verify::Full).unwrap();
    assert!(report.is_clean(), "{:?}", report.defects);
}
