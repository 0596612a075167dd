//! Issue 14: staged blobs. A blob is acknowledged once its bytes and digest are durable in
//! `staged/`; it is a blob for every reader from then on, and the ingest later stores it as
//! chunks (a Go gzip layer as a rebuilt one) with the store's size as if it had been put.

use std::{
    fs,
    io::Read,
    num::NonZeroUsize,
    path::{Path, PathBuf},
    time::Duration,
};

use airlock_store::{
    Access, DIRECT_PUT_MAX_BYTES, Defect, Digest, Error, GcOptions, IngestOutcome, Layout,
    OpaqueReason, PutOptions, RepoChange, Staged, Store, StoreOptions, StoredAs, Verify,
};

use crate::common::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/go")
        .join(name);
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn staged_file(root: &Path, d: &Digest) -> PathBuf {
    root.join("staged").join(format!("sha256-{}", d.hex()))
}

fn link(repo: &str, d: &Digest) -> Vec<RepoChange> {
    vec![RepoChange::LinkBlob {
        repo: repo.into(),
        digest: d.clone(),
    }]
}

/// Writes `data` to a file beside the store (as an upload session's file is) and stages it.
fn stage(store: &Store, data: &[u8], repo: &str) -> (Digest, Staged) {
    let d = Digest::sha256(data);
    let upload = store.root().join(format!("upload-{}", &d.hex()[..12]));
    fs::write(&upload, data).unwrap();
    let staged = store
        .stage_file(&d, &upload, PutOptions::default(), &link(repo, &d))
        .unwrap();
    assert_eq!(upload.exists(), staged != Staged::Staged, "{staged:?}");
    let _ = fs::remove_file(&upload);
    (d, staged)
}

fn range(store: &Store, d: &Digest, r: std::ops::Range<u64>) -> Vec<u8> {
    let mut out = Vec::new();
    store
        .open_blob_range(d, r)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn issue_14_staged_gzip_layer_reads_exactly_then_ingests_as_rebuilt() {
    let (dir, store) = store_with(StoreOptions::default());
    let gz = fixture("gzip_6.gz");
    let (d, how) = stage(&store, &gz, "app");
    assert_eq!(how, Staged::Staged);
    assert!(staged_file(dir.path(), &d).is_file());
    let stat = store.stat_blob(&d).unwrap().unwrap();
    assert_eq!(
        (stat.stored_as, stat.layout, stat.size),
        (StoredAs::Staged, Layout::Uncut, gz.len() as u64)
    );
    assert!(store.has_blob(&d).unwrap());
    assert!(store.link("app", &d).unwrap().is_some_and(|l| l.blob));
    assert_reads(&store, &d, &gz);
    assert_eq!(range(&store, &d, 1000..5000), gz[1000..5000]);
    let du = store.du().unwrap();
    assert_eq!((du.staged.blobs, du.staged.bytes), (1, gz.len() as u64));
    assert_eq!(du.blobs, 0);
    assert!(store.verify(Verify::Full).unwrap().is_clean());
    assert_eq!(store.staged_blobs().unwrap().len(), 1);

    // A reader opened before the ingest keeps its file.
    let mut early = store.open_blob(&d).unwrap();
    let outcome = store.ingest_blob(&d).unwrap();
    assert!(matches!(outcome, IngestOutcome::Ingested(ref p) if p.size == gz.len() as u64));
    let mut back = Vec::new();
    early.read_to_end(&mut back).unwrap();
    assert_eq!(back, gz);

    let stat = store.stat_blob(&d).unwrap().unwrap();
    assert_eq!(stat.stored_as, StoredAs::Rebuilt);
    assert!(!staged_file(dir.path(), &d).exists());
    // The verified file went into the blob cache: the first pull needs no rebuild.
    assert!(store.du().unwrap().cache_bytes >= gz.len() as u64);
    assert_reads(&store, &d, &gz);
    assert_eq!(range(&store, &d, 1000..5000), gz[1000..5000]);
    let du = store.du().unwrap();
    assert_eq!((du.staged.blobs, du.rebuilt.blobs), (0, 1));
    assert!(store.verify(Verify::Full).unwrap().is_clean());
    assert!(store.staged_blobs().unwrap().is_empty());
    assert_eq!(store.ingest_blob(&d).unwrap(), IngestOutcome::NotStaged);
}

/// The store after the ingest is the store a direct put makes.
#[test]
fn issue_14_ingest_stores_what_a_put_stores() {
    let blobs: Vec<Vec<u8>> = ["gzip_6.gz", "pgzip_-1_0.gz", "gzip_1.gz"]
        .iter()
        .map(|f| fixture(f))
        .chain([tar_of(&tar_files(3, 20, 30_000))])
        .collect();
    let (_a, staged) = store_with(StoreOptions::default());
    let (_b, direct) = store_with(StoreOptions::default());
    for data in &blobs {
        assert_eq!(stage(&staged, data, "app").1, Staged::Staged);
        put(&direct, data);
    }
    for b in staged.staged_blobs().unwrap() {
        staged.ingest_blob(&b.digest).unwrap();
    }
    let (s, d) = (staged.du().unwrap(), direct.du().unwrap());
    assert_eq!(
        (s.blobs, s.chunks, s.chunk_bytes, s.rebuilt, s.rebuild_bytes),
        (d.blobs, d.chunks, d.chunk_bytes, d.rebuilt, d.rebuild_bytes)
    );
    assert_eq!(s.staged.blobs, 0);
    for data in &blobs {
        assert_reads(&staged, &Digest::sha256(data), data);
    }
}

#[test]
fn issue_14_staging_checks_digest_and_size_and_keeps_the_file_on_refusal() {
    let (dir, store) = store_with(StoreOptions::default());
    let data = seeded(7, 100_000);
    let upload = dir.path().join("upload");
    fs::write(&upload, &data).unwrap();
    let wrong = Digest::sha256(b"other");
    let err = store
        .stage_file(&wrong, &upload, PutOptions::default(), &link("a", &wrong))
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    let d = Digest::sha256(&data);
    let short = PutOptions {
        expected_size: Some(99_999),
        max_size: None,
    };
    let err = store
        .stage_file(&d, &upload, short, &link("a", &d))
        .unwrap_err();
    assert!(matches!(err, Error::SizeMismatch { .. }), "{err}");
    // A change that cannot apply undoes the staging: the file goes back.
    let bad = [RepoChange::LinkBlob {
        repo: String::new(),
        digest: d.clone(),
    }];
    let err = store
        .stage_file(&d, &upload, PutOptions::default(), &bad)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidName { .. }), "{err}");
    assert_eq!(fs::read(&upload).unwrap(), data);
    assert!(!store.has_blob(&d).unwrap());
    assert!(store.staged_blobs().unwrap().is_empty());

    // Streamed: nothing is left behind by a refusal.
    let err = store
        .stage_blob(&wrong, &data[..], PutOptions::default(), &[])
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    let left = fs::read_dir(dir.path().join("staged")).unwrap().count();
    assert_eq!(left, 0);
    let how = store
        .stage_blob(&d, &data[..], PutOptions::default(), &link("a", &d))
        .unwrap();
    assert_eq!(how, Staged::Staged);
    assert_reads(&store, &d, &data);
}

/// A re-push of a stored blob only links it; a second push of a staged one too; small blobs
/// are put at once.
#[test]
fn issue_14_repush_of_a_stored_or_staged_blob_only_links() {
    let (dir, store) = store_with(StoreOptions::default());
    let data = tar_of(&tar_files(5, 10, 20_000));
    let (d, _) = put(&store, &data);
    assert_eq!(stage(&store, &data, "b").1, Staged::WasStored);
    assert!(store.link("b", &d).unwrap().is_some());
    assert!(!staged_file(dir.path(), &d).exists());

    let other = seeded(8, 50_000);
    let (o, how) = stage(&store, &other, "a");
    assert_eq!(how, Staged::Staged);
    assert_eq!(stage(&store, &other, "c").1, Staged::WasStaged);
    assert!(store.link("c", &o).unwrap().is_some());
    assert_reads(&store, &o, &other);

    let small = seeded(9, DIRECT_PUT_MAX_BYTES as usize);
    let (s, how) = stage(&store, &small, "a");
    assert_eq!(how, Staged::Put);
    assert_eq!(
        store.stat_blob(&s).unwrap().unwrap().stored_as,
        StoredAs::Chunks
    );

    // A put of a staged digest stores it; the ingest then only drops the staged copy.
    put(&store, &other);
    assert_eq!(
        store.stat_blob(&o).unwrap().unwrap().stored_as,
        StoredAs::Chunks
    );
    assert_eq!(store.ingest_blob(&o).unwrap(), IngestOutcome::AlreadyStored);
    assert!(!staged_file(dir.path(), &o).exists());
    assert!(store.verify(Verify::Full).unwrap().is_clean());
}

#[test]
fn issue_14_manifest_references_and_mounts_accept_staged_blobs() {
    let (_dir, store) = store_with(StoreOptions::default());
    let layer = fixture("pgzip_-1_0.gz");
    let (l, _) = stage(&store, &layer, "app");
    let manifest = format!("{{\"layers\":[\"{l}\"]}}").into_bytes();
    let (m, _) = put(&store, &manifest);
    store
        .apply_repo_changes(&[
            RepoChange::RequireLink {
                repo: "app".into(),
                digest: l.clone(),
                blob_ok: true,
            },
            RepoChange::RequireBlob { digest: l.clone() },
            RepoChange::LinkManifest {
                repo: "app".into(),
                digest: m.clone(),
                children: vec![l.clone()],
                subject: None,
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            },
            RepoChange::SetTag {
                repo: "app".into(),
                tag: "v1".into(),
                digest: m,
            },
            RepoChange::LinkBlob {
                repo: "mounted".into(),
                digest: l.clone(),
            },
        ])
        .unwrap();
    assert!(store.link("mounted", &l).unwrap().is_some());
}

#[test]
fn issue_14_gc_keeps_reachable_and_recent_staged_blobs_and_collects_the_rest() {
    let (dir, store) = store_with(StoreOptions::default());
    let kept = seeded(1, 40_000);
    let (k, _) = stage(&store, &kept, "app");
    let (m, _) = put(&store, format!("manifest of {k}").as_bytes());
    store
        .apply_repo_changes(&[
            RepoChange::LinkManifest {
                repo: "app".into(),
                digest: m.clone(),
                children: vec![k.clone()],
                subject: None,
                media_type: "x".into(),
            },
            RepoChange::SetTag {
                repo: "app".into(),
                tag: "v1".into(),
                digest: m,
            },
        ])
        .unwrap();
    let loose = seeded(2, 40_000);
    let (g, _) = stage(&store, &loose, "app");

    // Within the grace period: nothing goes.
    let plan = store.plan_gc(GcOptions::default()).unwrap();
    assert!(plan.blobs.is_empty(), "{plan:?}");
    let no_grace = GcOptions {
        upload_grace: Duration::ZERO,
        ..GcOptions::default()
    };
    let plan = store.plan_gc(no_grace).unwrap();
    assert_eq!(plan.blobs, vec![(g.clone(), loose.len() as u64)]);
    let report = store.apply_gc(&plan).unwrap();
    assert_eq!(report.blobs, 1);
    assert!(!store.has_blob(&g).unwrap());
    assert!(store.link("app", &g).unwrap().is_none());
    assert!(!staged_file(dir.path(), &g).exists());
    assert_reads(&store, &k, &kept);
    assert!(store.verify(Verify::Full).unwrap().is_clean());
    assert_eq!(store.ingest_blob(&g).unwrap(), IngestOutcome::NotStaged);
}

#[test]
fn issue_14_with_corrupt_or_missing_staged_file() {
    let (dir, store) = store_with(StoreOptions::default());
    let a = seeded(3, 60_000);
    let (da, _) = stage(&store, &a, "app");
    let b = seeded(4, 60_000);
    let (db, _) = stage(&store, &b, "app");
    let (pa, pb) = (staged_file(dir.path(), &da), staged_file(dir.path(), &db));

    flip_byte(&pa, 30_000);
    fs::remove_file(&pb).unwrap();
    let report = store.verify(Verify::Full).unwrap();
    let mut found = report.defects.clone();
    found.sort_by_key(|d| d.to_string());
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found
            .iter()
            .any(|d| matches!(d, Defect::StagedCorrupt { digest, path, what }
            if *digest == da && *path == pa && what.contains("hashes to"))),
        "{found:?}"
    );
    assert!(
        found.iter().any(
            |d| matches!(d, Defect::StagedMissing { digest, path } if *digest == db && *path == pb)
        ),
        "{found:?}"
    );
    assert!(found.iter().all(|d| d.to_string().contains("staged blob")));
    // Quick checks lengths only: the flipped byte passes, the missing file does not.
    let quick = store.verify(Verify::Quick).unwrap();
    assert_eq!(quick.defects.len(), 1, "{:?}", quick.defects);

    // A whole read fails rather than end with the wrong bytes; the ingest refuses it too.
    let err = read_all(&store, &da).unwrap_err();
    assert!(matches!(err, Error::StagedDamaged { .. }), "{err}");
    let err = store.ingest_blob(&da).unwrap_err();
    assert!(
        matches!(&err, Error::StagedDamaged { digest, .. } if *digest == da),
        "{err}"
    );
    let err = store.ingest_blob(&db).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
    // Both stay staged, named, and nothing else is touched.
    assert_eq!(store.staged_blobs().unwrap().len(), 2);
    assert_eq!(store.du().unwrap().blobs, 0);

    fs::OpenOptions::new()
        .write(true)
        .open(&pa)
        .unwrap()
        .set_len(100)
        .unwrap();
    let quick = store.verify(Verify::Quick).unwrap();
    assert!(
        quick
            .defects
            .iter()
            .any(|d| matches!(d, Defect::StagedCorrupt { what, .. }
            if what.contains("holds 100 bytes"))),
        "{:?}",
        quick.defects
    );
}

/// What a crash leaves in `staged/` goes at the next read-write open: a file no record names
/// (renamed, not committed) and a blob half received. A read-only open leaves them.
#[test]
fn issue_14_crash_leftovers_are_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let kept = seeded(5, 30_000);
    let (k, _) = stage(&store, &kept, "app");
    drop(store);
    let orphan = staged_file(dir.path(), &Digest::sha256(b"never committed"));
    let receiving = dir.path().join("staged/.tmp-1-1");
    fs::write(&orphan, b"never committed").unwrap();
    fs::write(&receiving, b"half").unwrap();
    let ro = StoreOptions {
        access: Access::ReadOnly,
        ..StoreOptions::default()
    };
    drop(Store::open(dir.path(), ro).unwrap());
    assert!(orphan.exists() && receiving.exists());
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert!(!orphan.exists() && !receiving.exists());
    assert_reads(&store, &k, &kept);
    assert!(store.verify(Verify::Full).unwrap().is_clean());
}

/// The workers ingest what is staged before and after they start, in the background; a stop
/// abandons nothing half done and a restart finishes the work.
#[test]
fn issue_14_background_ingest_resumes_after_a_stop() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let mut blobs: Vec<Vec<u8>> = ["gzip_6.gz", "pgzip_-1_65536.gz", "gzip_9.gz"]
        .iter()
        .map(|f| fixture(f))
        .collect();
    for data in &blobs {
        stage(&store, data, "app");
    }
    let ingest = store.start_ingest(NonZeroUsize::MIN).unwrap();
    ingest.stop();
    // Whatever the stop interrupted is staged still or stored, and reads exactly.
    for data in &blobs {
        assert_reads(&store, &Digest::sha256(data), data);
    }
    assert!(store.verify(Verify::Full).unwrap().is_clean());
    drop(store);

    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let ingest = store.start_ingest(NonZeroUsize::new(2).unwrap()).unwrap();
    let late = fixture("gzip_1.gz");
    stage(&store, &late, "app");
    blobs.push(late);
    assert_eq!(ingest.wait_idle().unwrap(), vec![]);
    for data in &blobs {
        let d = Digest::sha256(data);
        assert_eq!(
            store.stat_blob(&d).unwrap().unwrap().stored_as,
            StoredAs::Rebuilt
        );
        assert_reads(&store, &d, data);
    }
    assert!(store.staged_blobs().unwrap().is_empty());
    ingest.stop();
    assert!(store.verify(Verify::Full).unwrap().is_clean());
}

/// A bomb whose trailer says so is refused before anything is kept; one whose trailer lies is
/// acknowledged, then kept as its compressed bytes, never expanded.
#[test]
fn issue_14_decompression_bombs_are_refused_or_kept_compressed() {
    use std::io::Write;
    let opts = StoreOptions {
        max_decompressed_size: 2 << 20,
        ..StoreOptions::default()
    };
    let (dir, store) = store_with(opts);
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(&vec![0u8; 4 << 20]).unwrap();
    let bomb = e.finish().unwrap();
    let d = Digest::sha256(&bomb);
    let upload = dir.path().join("bomb");
    fs::write(&upload, &bomb).unwrap();
    let err = store
        .stage_file(&d, &upload, PutOptions::default(), &[])
        .unwrap_err();
    assert!(matches!(err, Error::DecompressionLimit { .. }), "{err}");
    assert!(!store.has_blob(&d).unwrap());

    let mut liar = bomb.clone();
    let n = liar.len();
    liar[n - 4..].copy_from_slice(&1000u32.to_le_bytes());
    let (l, how) = stage(&store, &liar, "app");
    assert_eq!(how, Staged::Staged);
    assert!(matches!(
        store.ingest_blob(&l).unwrap(),
        IngestOutcome::Ingested(_)
    ));
    assert_eq!(
        store.stat_blob(&l).unwrap().unwrap().stored_as,
        StoredAs::Opaque(OpaqueReason::DecompressionLimit)
    );
    assert_reads(&store, &l, &liar);
    assert!(store.verify(Verify::Full).unwrap().is_clean());
}
