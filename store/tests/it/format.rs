//! Format parameters are recorded when a store is created and win over later options; access
//! modes and the store lock.

use std::fs;

use airlock_store::{
    Access, ChunkerParams, Digest, Error, GcOptions, PutOptions, RepoChange, Store, StoreOptions,
    Verify,
};

use crate::common::*;

fn read_only() -> StoreOptions {
    StoreOptions {
        access: Access::ReadOnly,
        ..StoreOptions::default()
    }
}

#[test]
fn conflicting_chunker_params_are_reported_not_applied() {
    let dir = tempfile::tempdir().unwrap();
    let created = StoreOptions {
        chunker: small_chunks(),
        ..StoreOptions::default()
    };
    let store = Store::open(dir.path(), created.clone()).unwrap();
    assert!(store.format_conflicts().is_empty());
    assert_eq!(store.format().chunker().unwrap(), small_chunks());
    let (d1, _) = put(&store, &seeded(170, 1_000_000));
    let chunks_small = store.stat_blob(&d1).unwrap().unwrap().chunks;
    drop(store);

    let json: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.path().join("store.json")).unwrap()).unwrap();
    assert_eq!(json["format"], "airlock-store");
    assert_eq!(json["chunk_avg"], 4096);
    assert_eq!(json["chunk_hash"], "blake3-256");

    // Reopened with the defaults: the recorded parameters win and the difference is named.
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let conflicts = store.format_conflicts();
    let keys: Vec<_> = conflicts.iter().map(|c| c.key).collect();
    assert_eq!(
        keys,
        vec!["chunker.min_size", "chunker.avg_size", "chunker.max_size"]
    );
    let avg = &conflicts[1];
    assert_eq!(avg.stored, "4096");
    assert_eq!(
        avg.requested,
        ChunkerParams::default().avg_size().to_string()
    );
    assert_eq!(store.format().chunker().unwrap(), small_chunks());
    let (d2, _) = put(&store, &seeded(171, 1_000_000));
    let chunks_now = store.stat_blob(&d2).unwrap().unwrap().chunks;
    assert!(
        chunks_now * 2 > chunks_small && chunks_now > 100,
        "still cut with 4 KiB chunks: {chunks_now} chunks vs {chunks_small}"
    );
    drop(store);
    // The same parameters again: no conflict.
    let store = Store::open(dir.path(), created).unwrap();
    assert!(store.format_conflicts().is_empty());
}

#[test]
fn read_only_open_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing to open read-only, and nothing gets created.
    let missing = dir.path().join("nothing-here");
    let err = Store::open(&missing, read_only()).unwrap_err();
    assert!(matches!(err, Error::Format { .. }), "{err}");
    assert!(!missing.exists());

    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let data = seeded(172, 50_000);
    let (d, _) = put(&store, &data);
    store
        .apply_repo_changes(&[RepoChange::LinkManifest {
            repo: "app".into(),
            digest: d.clone(),
            children: vec![],
            subject: None,
            media_type: "x".into(),
        }])
        .unwrap();
    drop(store);
    let ro = Store::open(dir.path(), read_only()).unwrap();
    assert_eq!(ro.access(), Access::ReadOnly);
    let is_read_only = |r: airlock_store::Result<()>| match r {
        Err(Error::ReadOnly { path }) => assert_eq!(path, dir.path()),
        other => panic!("expected ReadOnly, got {other:?}"),
    };
    let other = seeded(173, 10);
    is_read_only(
        ro.put_blob(&Digest::sha256(&other), &other[..], PutOptions::default())
            .map(|_| ()),
    );
    is_read_only(
        ro.put_blob(&d, &data[..], PutOptions::default())
            .map(|_| ()),
    );
    is_read_only(ro.link_blob("app", &d));
    is_read_only(ro.apply_repo_changes(&[RepoChange::DeleteTag {
        repo: "app".into(),
        tag: "x".into(),
    }]));
    is_read_only(ro.put_upload("u", b"s"));
    is_read_only(ro.remove_upload("u").map(|_| ()));
    let plan = ro.plan_gc(GcOptions::default()).unwrap();
    is_read_only(ro.apply_gc(&plan).map(|_| ()));
    // Reads work.
    assert_reads(&ro, &d, &data);
    assert!(ro.verify(Verify::Full).unwrap().is_clean());
    assert_eq!(ro.du().unwrap().blobs, 1);
    // Several readers may share the store.
    let ro2 = Store::open(dir.path(), read_only()).unwrap();
    assert_reads(&ro2, &d, &data);
}

#[test]
fn second_open_is_locked_out() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    for opts in [StoreOptions::default(), read_only()] {
        let err = Store::open(dir.path(), opts).unwrap_err();
        assert!(
            matches!(&err, Error::Locked { path } if path == dir.path()),
            "{err}"
        );
    }
    // Clones share the one open store.
    let clone = store.clone();
    drop(store);
    assert!(matches!(
        Store::open(dir.path(), StoreOptions::default()),
        Err(Error::Locked { .. })
    ));
    drop(clone);
    let ro = Store::open(dir.path(), read_only()).unwrap();
    assert!(matches!(
        Store::open(dir.path(), StoreOptions::default()),
        Err(Error::Locked { .. })
    ));
    drop(ro);
    Store::open(dir.path(), StoreOptions::default()).unwrap();
}

#[test]
fn unsupported_or_damaged_format_header_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path(), StoreOptions::default()).unwrap());
    let path = dir.path().join("store.json");
    let original = fs::read_to_string(&path).unwrap();
    let current = format!("\"version\": {}", airlock_store::STORE_FORMAT_VERSION);
    let newer = original.replace(&current, "\"version\": 99");
    assert_ne!(newer, original);
    fs::write(&path, newer).unwrap();
    let err = Store::open(dir.path(), StoreOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Format { .. }), "{err}");
    assert!(err.to_string().contains("99"), "{err}");
    fs::write(&path, "{ not json").unwrap();
    let err = Store::open(dir.path(), StoreOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Format { .. }), "{err}");
}

/// The preflate-rs version in `store.json` is the one of the blobs whose record names none: a
/// store created with another opens, takes new gzip layers (whose records name this
/// airlock's version) and reads them back; the header keeps what it said.
#[test]
fn issue_13_a_store_created_with_another_preflate_version_opens() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path(), StoreOptions::default()).unwrap());
    let path = dir.path().join("store.json");
    let original = fs::read_to_string(&path).unwrap();
    let other = original.replace("preflate-rs 0.7", "preflate-rs 0.8");
    assert_ne!(other, original);
    fs::write(&path, &other).unwrap();
    let ro = StoreOptions {
        access: airlock_store::Access::ReadOnly,
        ..StoreOptions::default()
    };
    drop(Store::open(dir.path(), ro).unwrap());
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(store.format().preflate, "preflate-rs 0.8");
    let files: Vec<TarFile> = (0..8)
        .map(|i| TarFile {
            path: format!("etc/app/{i}.conf"),
            data: text(176 + i, 30_000),
            mtime: 1_700_000_000,
        })
        .collect();
    let tar = tar_of(&files);
    let gz = crate::layers::flate2_gzip(&tar, 6);
    let (d, _) = put(&store, &gz);
    let stat = store.stat_blob(&d).unwrap().unwrap();
    assert_eq!(stat.stored_as, airlock_store::StoredAs::Rebuilt);
    assert_reads(&store, &d, &gz);
    assert!(
        store
            .verify(airlock_store::Verify::Full)
            .unwrap()
            .is_clean()
    );
    drop(store);
    assert_eq!(fs::read_to_string(&path).unwrap(), other);
}

#[test]
fn a_store_with_older_rebuild_scripts_opens_and_is_upgraded_when_written() {
    let dir = tempfile::tempdir().unwrap();
    let data = seeded(175, 50_000);
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let (d, _) = put(&store, &data);
    let latest = store.format().script_format;
    drop(store);
    let path = dir.path().join("store.json");
    let original = fs::read_to_string(&path).unwrap();
    let current = format!("\"rebuild_format\": {latest}");
    for version in 1..latest {
        let older = original.replace(&current, &format!("\"rebuild_format\": {version}"));
        assert_ne!(older, original, "{original}");
        fs::write(&path, &older).unwrap();
        let ro = StoreOptions {
            access: airlock_store::Access::ReadOnly,
            ..StoreOptions::default()
        };
        let store = Store::open(dir.path(), ro).unwrap();
        assert_reads(&store, &d, &data);
        drop(store);
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            older,
            "read-only writes nothing"
        );
        drop(Store::open(dir.path(), StoreOptions::default()).unwrap());
        assert_eq!(fs::read_to_string(&path).unwrap(), original);
    }
}

#[test]
fn missing_index_does_not_delete_packs() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let data = seeded(174, 100_000);
    let (d, _) = put(&store, &data);
    drop(store);
    let packs = pack_files(dir.path());
    assert!(!packs.is_empty());
    let index = dir.path().join("index.redb");
    let aside = dir.path().join("index.redb.aside");
    fs::rename(&index, &aside).unwrap();
    let err = Store::open(dir.path(), StoreOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Index { .. }), "{err}");
    assert_eq!(pack_files(dir.path()), packs, "no pack was deleted");
    assert!(!index.exists(), "no empty index was created");
    fs::rename(&aside, &index).unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert_reads(&store, &d, &data);
}
