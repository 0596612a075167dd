//! issue 13: stores written by an earlier airlock (tests/golden/, never regenerated) open,
//! verify clean and rebuild every blob exactly, read-only and after being opened for writing.

use std::{
    fs,
    io::Read,
    path::{Path, PathBuf},
};

use airlock_store::{Access, Defect, Digest, Error, Store, StoreOptions, StoredAs, Verify};

/// Copies a golden store to a temporary directory (opening may write a lock or upgrade it).
pub(crate) fn copy_golden(name: &str) -> (tempfile::TempDir, PathBuf) {
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
    rebuilds_exactly("store-v2");
}

/// Issue 17: the store as the airlock before issue 17's format 4 wrote it (format 3: rebuild
/// scripts with checkpoints, the staged table).
#[test]
fn issue_17_golden_store_v3_rebuilds_exactly() {
    rebuilds_exactly("store-v3");
}

fn rebuilds_exactly(golden: &str) {
    let (tmp, listed) = copy_golden(golden);
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

/// The golden store as if created with another preflate-rs: it opens, every blob without
/// preflate-rs data (the Go layers goflate models among them) still rebuilds exactly, and the
/// layers whose correction data is preflate-rs's (flate2's, and pgzip level 1's, which no
/// goflate model matches) are named, by read and by verify, as ones this airlock cannot rebuild
/// (their records predate per-blob versions: `store.json` speaks for them).
#[test]
fn issue_13_golden_store_of_another_preflate_version_opens_and_names_what_it_cannot_rebuild() {
    let (tmp, listed) = copy_golden("store-v2");
    let digests = listed_digests(&listed);
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut by_preflate: Vec<Digest> = ["flate2/zlib-rs-l6.tar.gz", "go/pgzip_1_65536.gz"]
        .iter()
        .map(|f| Digest::sha256(&fs::read(fixtures.join(f)).unwrap()))
        .collect();
    by_preflate.sort_by_key(|d| d.to_string());
    let header = tmp.path().join("store.json");
    let original = fs::read_to_string(&header).unwrap();
    let other = original.replace("preflate-rs 0.7", "preflate-rs 0.1");
    assert_ne!(other, original);
    fs::write(&header, &other).unwrap();
    for access in [Access::ReadOnly, Access::ReadWrite] {
        let opts = StoreOptions {
            access,
            blob_cache_size: 0,
            ..StoreOptions::default()
        };
        let store = Store::open(tmp.path(), opts).unwrap();
        let mut refused = Vec::new();
        for d in &digests {
            let mut bytes = Vec::new();
            let read = store.open_blob(d).and_then(|mut r| {
                r.read_to_end(&mut bytes)
                    .map_err(|e| airlock_store::unwrap_io(d, e))
            });
            match read {
                Ok(_) => assert_eq!(&Digest::sha256(&bytes), d, "{d} rebuilt to other bytes"),
                Err(e) => {
                    assert!(matches!(e, Error::RebuildUnsupported { .. }), "{d}: {e}");
                    assert!(e.to_string().contains("preflate-rs 0.1"), "{e}");
                    refused.push(d.clone());
                }
            }
        }
        refused.sort_by_key(|d| d.to_string());
        assert_eq!(refused, by_preflate);
        let report = store.verify(Verify::Full).unwrap();
        let what = format!(
            "its script holds correction data of preflate-rs 0.1; this airlock rebuilds {}'s",
            airlock_regzip::PREFLATE_VERSION
        );
        let mut named: Vec<Defect> = by_preflate
            .iter()
            .map(|d| Defect::RebuildUnsupported {
                digest: d.clone(),
                what: what.clone(),
            })
            .collect();
        let mut found = report.defects.clone();
        found.sort_by_key(|d| d.to_string());
        named.sort_by_key(|d| d.to_string());
        assert_eq!(found, named);
    }
    // The header keeps its preflate-rs version; opened for writing, it says that scripts of
    // the current version may follow (issue 14's checkpoints came with version 3).
    let fresh = tempfile::tempdir().unwrap();
    let latest = Store::open(fresh.path(), StoreOptions::default())
        .unwrap()
        .format()
        .script_format;
    let upgraded = other.replace(
        "\"rebuild_format\": 2",
        &format!("\"rebuild_format\": {latest}"),
    );
    assert_eq!(
        fs::read_to_string(&header).unwrap(),
        upgraded,
        "the header is kept"
    );
}

/// Issue 14: a store of format 2 opens read-only without the index's `staged` table, and
/// read-write keeps its header until it stages a blob, which raises it to format 3 (an airlock
/// that knows nothing of staged blobs must refuse it from then on; 4 comes with the first
/// application event or child absent on purpose). A header from the future is refused.
#[test]
fn issue_14_golden_store_v2_is_raised_to_format_3_by_its_first_staged_blob() {
    let (tmp, listed) = copy_golden("store-v2");
    let digests = listed_digests(&listed);
    let header = tmp.path().join("store.json");
    let version = || -> u64 {
        let v: serde_json::Value = serde_json::from_slice(&fs::read(&header).unwrap()).unwrap();
        v["version"].as_u64().unwrap()
    };
    let ro = StoreOptions {
        access: Access::ReadOnly,
        ..StoreOptions::default()
    };
    let store = Store::open(tmp.path(), ro.clone()).unwrap();
    assert!(store.staged_blobs().unwrap().is_empty());
    assert_eq!(store.du().unwrap().staged.blobs, 0);
    drop(store);
    let store = Store::open(tmp.path(), StoreOptions::default()).unwrap();
    assert_eq!(version(), 2);
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    let d = Digest::sha256(&data);
    let staged = store
        .stage_blob(&d, &data[..], airlock_store::PutOptions::default(), &[])
        .unwrap();
    assert_eq!(staged, airlock_store::Staged::Staged);
    assert_eq!(version(), 3);
    drop(store);
    let store = Store::open(tmp.path(), ro).unwrap();
    assert_eq!(check_every_blob(&store, &digests), 7);
    assert_eq!(store.read_blob(&d).unwrap(), data);
    assert!(store.verify(Verify::Full).unwrap().is_clean());
    drop(store);

    let newest = airlock_store::STORE_FORMAT_VERSION;
    let future = fs::read_to_string(&header)
        .unwrap()
        .replace("\"version\": 3", &format!("\"version\": {}", newest + 1));
    fs::write(&header, future).unwrap();
    let err = Store::open(tmp.path(), StoreOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains(&format!("formats 2 to {newest}")),
        "{err}"
    );
}
