//! GC as plan then apply: roots, grace, the tag-history window, repacking, and GC running
//! while other threads keep putting, linking and reading.

use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use airlock_store::{Digest, Error, GcOptions, RepoChange, Store, Verify};
use rand::Rng;

use crate::common::*;

/// A blob's digest and content.
type Blob = (Digest, Vec<u8>);

const NO_WINDOWS: GcOptions = GcOptions {
    keep_tag_history: Duration::ZERO,
    upload_grace: Duration::ZERO,
    keep_app_versions: 3,
};

fn link_manifest(repo: &str, digest: &Digest, children: &[Digest]) -> RepoChange {
    RepoChange::LinkManifest {
        repo: repo.into(),
        digest: digest.clone(),
        children: children.to_vec(),
        subject: None,
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
    }
}

fn set_tag(repo: &str, tag: &str, digest: &Digest) -> RepoChange {
    RepoChange::SetTag {
        repo: repo.into(),
        tag: tag.into(),
        digest: digest.clone(),
    }
}

fn assert_clean(store: &Store) {
    let report = store.verify(Verify::Full).unwrap();
    assert!(report.is_clean(), "{:?}", report.defects);
}

#[test]
fn unreferenced_blobs_go_tagged_ones_stay() {
    let (dir, store) = store_with(small_opts(256 * 1024));
    let l1 = seeded(100, 300_000);
    let (dl1, _) = put(&store, &l1);
    let (dl2, _) = put(&store, &seeded(101, 300_000));
    let (garbage, _) = put(&store, &seeded(102, 200_000));
    let m1 = format!("{{\"layers\":[\"{dl1}\"]}}").into_bytes();
    let (dm1, _) = put(&store, &m1);
    store
        .apply_repo_changes(&[
            link_manifest("app", &dm1, std::slice::from_ref(&dl1)),
            set_tag("app", "v1", &dm1),
            RepoChange::LinkBlob {
                repo: "app".into(),
                digest: garbage.clone(),
            },
        ])
        .unwrap();
    // Inside the upload grace period nothing goes.
    assert!(
        store
            .plan_gc(GcOptions::default())
            .unwrap()
            .blobs
            .is_empty()
    );

    let packs_before = pack_files(dir.path());
    let du_before = store.du().unwrap();
    let plan = store.plan_gc(NO_WINDOWS).unwrap();
    let planned: HashSet<_> = plan.blobs.iter().cloned().collect();
    assert_eq!(
        planned,
        HashSet::from([(dl2.clone(), 300_000), (garbage.clone(), 200_000)])
    );
    assert!(plan.chunks > 0);
    assert!(
        plan.chunk_bytes >= 450_000 && plan.chunk_bytes <= 500_000,
        "{plan:?}"
    );
    assert!(!plan.delete_packs.is_empty(), "{plan:?}");
    // Planning is a dry run: nothing changed.
    assert_eq!(pack_files(dir.path()), packs_before);
    assert_eq!(store.du().unwrap(), du_before);
    for d in [&dl1, &dl2, &garbage, &dm1] {
        assert!(store.has_blob(d).unwrap());
    }
    assert_eq!(store.plan_gc(NO_WINDOWS).unwrap(), plan);

    let report = store.apply_gc(&plan).unwrap();
    assert_eq!(report.blobs, 2);
    assert_eq!(report.chunks, plan.chunks);
    assert!(
        report.packs_deleted > 0 && report.bytes_freed > 0,
        "{report:?}"
    );
    assert!(!store.has_blob(&dl2).unwrap());
    assert!(!store.has_blob(&garbage).unwrap());
    assert_eq!(
        store.link("app", &garbage).unwrap(),
        None,
        "its link went too"
    );
    assert_eq!(store.tag("app", "v1").unwrap(), Some(dm1.clone()));
    assert_reads(&store, &dl1, &l1);
    assert_reads(&store, &dm1, &m1);
    let du_after = store.du().unwrap();
    assert!(
        du_after.pack_bytes + 400_000 < du_before.pack_bytes,
        "{du_before:?} -> {du_after:?}"
    );
    assert_eq!(du_after.blobs, 2);
    assert_clean(&store);
    assert!(store.plan_gc(NO_WINDOWS).unwrap().is_empty());
    // And after a restart.
    drop(store);
    let store = Store::open(dir.path(), small_opts(256 * 1024)).unwrap();
    assert_reads(&store, &dl1, &l1);
    assert_clean(&store);
}

#[test]
fn tag_history_window_keeps_a_previous_target() {
    let (_dir, store) = store_with(small_opts(256 * 1024));
    let (l1, _) = put(&store, &seeded(110, 100_000));
    let (l2, _) = put(&store, &seeded(111, 100_000));
    let (m1, _) = put(&store, b"manifest one");
    let (m2, _) = put(&store, b"manifest two");
    store
        .apply_repo_changes(&[
            link_manifest("app", &m1, std::slice::from_ref(&l1)),
            set_tag("app", "latest", &m1),
        ])
        .unwrap();
    store
        .apply_repo_changes(&[
            link_manifest("app", &m2, std::slice::from_ref(&l2)),
            set_tag("app", "latest", &m2),
            RepoChange::UnlinkManifest {
                repo: "app".into(),
                digest: m1.clone(),
            },
        ])
        .unwrap();
    // Only the tag's history still reaches m1 (and through it l1).
    let window = GcOptions {
        keep_tag_history: Duration::from_secs(3600),
        upload_grace: Duration::ZERO,
        keep_app_versions: 3,
    };
    let plan = store.plan_gc(window).unwrap();
    assert!(plan.blobs.is_empty(), "{plan:?}");
    let report = store.apply_gc(&plan).unwrap();
    assert_eq!(report.blobs, 0);
    assert_eq!(report.history_pruned, 0);
    assert!(store.has_blob(&m1).unwrap() && store.has_blob(&l1).unwrap());

    let plan = store.plan_gc(NO_WINDOWS).unwrap();
    let planned: HashSet<_> = plan.blobs.iter().map(|b| b.0.clone()).collect();
    assert_eq!(planned, HashSet::from([m1.clone(), l1.clone()]));
    let report = store.apply_gc(&plan).unwrap();
    assert_eq!(report.blobs, 2);
    assert_eq!(report.history_pruned, 1);
    assert_eq!(store.tag_history("app", "latest").unwrap().len(), 1);
    assert!(store.has_blob(&m2).unwrap() && store.has_blob(&l2).unwrap());
    assert_clean(&store);
}

/// A blob put again or linked as a blob gets a new grace period: the manifest that will
/// reference it may be on its way, as for a blob just uploaded.
#[test]
fn re_put_or_blob_link_restarts_the_grace_period() {
    let (_dir, store) = store_with(small_opts(256 * 1024));
    let a = seeded(130, 20_000);
    let (da, _) = put(&store, &a);
    let (db, _) = put(&store, &seeded(131, 20_000));
    let (dc, _) = put(&store, &seeded(132, 20_000));
    let grace = GcOptions {
        keep_tag_history: Duration::ZERO,
        upload_grace: Duration::from_secs(1),
        keep_app_versions: 3,
    };
    assert!(store.plan_gc(grace).unwrap().blobs.is_empty());
    // Times are kept in whole seconds: past two, all three are older than the grace period.
    std::thread::sleep(Duration::from_millis(2050));
    assert_eq!(store.plan_gc(grace).unwrap().blobs.len(), 3);
    assert!(
        store
            .put_blob(&da, &a[..], Default::default())
            .unwrap()
            .existed
    );
    store.link_blob("app", &db).unwrap();
    let plan = store.plan_gc(grace).unwrap();
    assert_eq!(plan.blobs, vec![(dc.clone(), 20_000)]);
    store.apply_gc(&plan).unwrap();
    assert!(store.has_blob(&da).unwrap() && store.has_blob(&db).unwrap());
    assert!(!store.has_blob(&dc).unwrap());
    assert_reads(&store, &da, &a);
    assert_clean(&store);
}

#[test]
fn repack_keeps_survivors_byte_exact() {
    let (dir, store) = store_with(small_opts(1024 * 1024));
    let mut blobs = Vec::new();
    for i in 0..24 {
        let data = seeded(120 + i, 50_000);
        blobs.push((put(&store, &data).0, data));
    }
    // Every sixth blob is a root; the others are garbage.
    let keep: Vec<_> = blobs.iter().step_by(6).cloned().collect();
    let changes: Vec<_> = keep
        .iter()
        .map(|(d, _)| link_manifest("app", d, &[]))
        .collect();
    store.apply_repo_changes(&changes).unwrap();
    let before = store.du().unwrap();
    let plan = store.plan_gc(NO_WINDOWS).unwrap();
    assert_eq!(plan.blobs.len(), 20);
    assert!(!plan.repack_packs.is_empty(), "{plan:?}");
    let report = store.apply_gc(&plan).unwrap();
    assert!(report.packs_rewritten > 0, "{report:?}");
    let after = store.du().unwrap();
    assert!(
        after.pack_bytes < before.pack_bytes / 3,
        "{before:?} -> {after:?}"
    );
    for (d, data) in &keep {
        assert_reads(&store, d, data);
    }
    assert_clean(&store);
    // The rewritten packs take new puts and survive a restart.
    let extra = seeded(150, 70_000);
    let (de, _) = put(&store, &extra);
    drop(store);
    let store = Store::open(dir.path(), small_opts(1024 * 1024)).unwrap();
    for (d, data) in keep.iter().chain([&(de, extra)]) {
        assert_reads(&store, d, data);
    }
    assert_clean(&store);
}

/// GC plans and applies in a loop while one thread puts layers and manifests (sharing chunks
/// with garbage GC is deleting) and links them, and another reads what was linked.
#[test]
fn gc_while_writes_continue() {
    let (_dir, store) = store_with(small_opts(256 * 1024));
    let common = Arc::new(seeded(160, 200_000));
    let acked: Arc<Mutex<Vec<Blob>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, common, acked) = (store.clone(), common.clone(), acked.clone());
        std::thread::spawn(move || {
            let mut lost = 0;
            for i in 0..150u64 {
                let mut layer = common[..(i as usize * 7919) % common.len()].to_vec();
                layer.extend(seeded(1600 + i, 30_000));
                let (dl, _) = put(&store, &layer);
                // Garbage that shares chunks with the next layer.
                let mut garbage = seeded(1601 + i, 30_000);
                garbage.extend(seeded(9000 + i, 10_000));
                put(&store, &garbage);
                let manifest = format!("{{\"layer\":\"{dl}\",\"n\":{i}}}").into_bytes();
                let (dm, _) = put(&store, &manifest);
                // The layer must still be there when the manifest is linked.
                let linked = store.apply_repo_changes(&[
                    RepoChange::RequireBlob { digest: dl.clone() },
                    link_manifest("app", &dm, std::slice::from_ref(&dl)),
                    set_tag("app", &format!("t{}", i % 5), &dm),
                ]);
                match linked {
                    Ok(()) => {
                        let mut a = acked.lock().unwrap();
                        a.push((dl, layer));
                        a.push((dm, manifest));
                    }
                    // GC took a blob between its put and the link (no grace period).
                    Err(Error::BlobNotFound { .. }) => lost += 1,
                    Err(e) => panic!("{e}"),
                }
            }
            lost
        })
    };
    let reader = {
        let (store, acked, done) = (store.clone(), acked.clone(), done.clone());
        std::thread::spawn(move || {
            let mut r = rng(161);
            let mut reads = 0;
            while !done.load(Ordering::Relaxed) {
                let pick = {
                    let a = acked.lock().unwrap();
                    (!a.is_empty()).then(|| a[r.gen_range(0..a.len())].clone())
                };
                match pick {
                    Some((d, data)) => {
                        assert_reads(&store, &d, &data);
                        reads += 1;
                    }
                    None => std::thread::sleep(Duration::from_millis(2)),
                }
            }
            reads
        })
    };
    let mut rounds = 0;
    let mut freed = 0;
    while !writer.is_finished() {
        let plan = store.plan_gc(NO_WINDOWS).unwrap();
        let report = store.apply_gc(&plan).unwrap();
        freed += report.bytes_freed;
        rounds += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    let lost = writer.join().unwrap();
    done.store(true, Ordering::Relaxed);
    let reads = reader.join().unwrap();
    assert!(rounds > 3 && freed > 0, "{rounds} GC rounds freed {freed}");
    assert!(reads > 0);
    let acked = acked.lock().unwrap().clone();
    eprintln!(
        "{rounds} GC rounds, {} acknowledged, {lost} puts lost to GC",
        acked.len()
    );
    assert!(
        acked.len() >= 60,
        "{} acknowledged, {lost} lost to GC",
        acked.len()
    );
    assert_clean(&store);
    for (d, data) in &acked {
        assert_reads(&store, d, data);
    }
    // A last GC with nothing running removes the remaining garbage and keeps the rest.
    store.apply_gc(&store.plan_gc(NO_WINDOWS).unwrap()).unwrap();
    assert_eq!(store.du().unwrap().blobs, acked.len() as u64);
    assert_clean(&store);
    for (d, data) in &acked {
        assert_reads(&store, d, data);
    }
}
