//! Issue 18: application histories: events recorded with the tag moves they go with, the
//! current pointer, GC keeping the last versions of each application and what they reach,
//! and store format 4 (older stores open, and are raised when they first record one).

use std::{fs, time::Duration};

use airlock_store::{
    Access, AppAction, Digest, Error, GcOptions, RepoChange, STORE_FORMAT_VERSION, Store,
    StoreOptions, Verify,
};

use crate::common::*;

const APP: &str = "airlock/apps/shop";

fn keep(n: u32) -> GcOptions {
    GcOptions {
        keep_tag_history: Duration::from_secs(3600),
        upload_grace: Duration::ZERO,
        keep_app_versions: n,
    }
}

fn link(repo: &str, digest: &Digest, children: &[Digest]) -> RepoChange {
    RepoChange::LinkManifest {
        repo: repo.into(),
        digest: digest.clone(),
        children: children.to_vec(),
        subject: None,
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
    }
}

fn tag(repo: &str, tag: &str, digest: &Digest) -> RepoChange {
    RepoChange::SetTag {
        repo: repo.into(),
        tag: tag.into(),
        digest: digest.clone(),
    }
}

fn event(version: &str, action: AppAction) -> RepoChange {
    RepoChange::AppEvent {
        repo: APP.into(),
        version: version.into(),
        action,
        by: "tester".into(),
    }
}

/// An image (a layer and a manifest over it) linked and tagged `repo:t`; returns the
/// manifest's and the layer's digests.
fn image(store: &Store, seed: u64, repo: &str, t: &str) -> (Digest, Digest) {
    let (layer, _) = put(store, &seeded(seed, 200_000));
    let (m, _) = put(store, format!("{{\"layer\":\"{layer}\"}}").as_bytes());
    store
        .apply_repo_changes(&[
            RepoChange::LinkBlob {
                repo: repo.into(),
                digest: layer.clone(),
            },
            link(repo, &m, std::slice::from_ref(&layer)),
            tag(repo, t, &m),
        ])
        .unwrap();
    (m, layer)
}

/// A version of the shop over `images`, added (tagged and made current in one list).
fn version(store: &Store, v: &str, images: &[&Digest], action: AppAction) -> Digest {
    let children: Vec<Digest> = images.iter().map(|d| (*d).clone()).collect();
    let (index, _) = put(
        store,
        format!("{{\"app\":\"{v}\",\"m\":{children:?}}}").as_bytes(),
    );
    let mut changes: Vec<RepoChange> = images.iter().map(|d| link(APP, d, &[])).collect();
    changes.push(link(APP, &index, &children));
    changes.push(tag(APP, v, &index));
    changes.push(event(v, action));
    store.apply_repo_changes(&changes).unwrap();
    index
}

fn current(store: &Store) -> Option<String> {
    store.app_status(APP).unwrap().current.map(|(v, _)| v)
}

fn format_version(store: &Store) -> u64 {
    let text = fs::read_to_string(store.root().join("store.json")).unwrap();
    serde_json::from_str::<serde_json::Value>(&text).unwrap()["version"]
        .as_u64()
        .unwrap()
}

#[test]
fn issue_18_events_follow_tags_and_name_the_current_version() {
    let (_dir, store) = store_with(small_opts(256 * 1024));
    assert_eq!(format_version(&store), u64::from(STORE_FORMAT_VERSION));
    let (web1, _) = image(&store, 1, "shop/web", "stable");
    let i1 = version(&store, "1.0", &[&web1], AppAction::Add);
    let (web2, _) = image(&store, 2, "shop/web", "stable");
    version(&store, "2.0", &[&web2], AppAction::Import);
    assert_eq!(current(&store).as_deref(), Some("2.0"));

    // Importing again what is current records nothing; an unknown version fails the whole
    // list (the tag move with it).
    store
        .apply_repo_changes(&[event("2.0", AppAction::Import)])
        .unwrap();
    assert_eq!(store.app_history(APP).unwrap().len(), 2);
    let err = store
        .apply_repo_changes(&[
            tag("shop/web", "stable", &web1),
            event("9.9", AppAction::Use),
        ])
        .unwrap_err();
    assert!(
        matches!(&err, Error::AppVersionNotFound { version, .. } if version == "9.9"),
        "{err}"
    );
    assert_eq!(store.tag("shop/web", "stable").unwrap(), Some(web2.clone()));

    // A rollback: the tag and the pointer together.
    store
        .apply_repo_changes(&[
            tag("shop/web", "stable", &web1),
            event("1.0", AppAction::Rollback),
        ])
        .unwrap();
    assert_eq!(current(&store).as_deref(), Some("1.0"));
    let history = store.app_history(APP).unwrap();
    let last = history.last().unwrap();
    assert_eq!(
        (last.action, last.version.as_str(), last.previous.as_deref()),
        (AppAction::Rollback, "1.0", Some("2.0"))
    );
    assert_eq!(last.digest, i1);
    assert_eq!(last.by, "tester");
    // Versions newest arrival first, whatever is current.
    let status = store.app_status(APP).unwrap();
    let versions: Vec<&str> = status.versions.iter().map(|v| v.0.as_str()).collect();
    assert_eq!(versions, ["2.0", "1.0"]);
    assert_eq!(store.app_repos().unwrap(), [APP]);
}

#[test]
fn issue_18_gc_keeps_the_last_versions_the_current_one_and_what_others_still_use() {
    let (_dir, store) = store_with(small_opts(256 * 1024));
    // v1: web (only v1), api (also v2); v2: api; v3: db. A plain tag still names v1's cron.
    let (web1, web1_layer) = image(&store, 11, "shop/web", "stable");
    let (api, api_layer) = image(&store, 12, "shop/api", "1");
    let (cron, cron_layer) = image(&store, 13, "shop/cron", "keep-me");
    let i1 = version(&store, "1.0", &[&web1, &api, &cron], AppAction::Import);
    let (web2, _) = image(&store, 14, "shop/web", "stable");
    version(&store, "2.0", &[&web2, &api], AppAction::Import);
    let (db, _) = image(&store, 15, "shop/db", "3");
    version(&store, "3.0", &[&db], AppAction::Add);

    // Keeping three drops nothing; keeping two drops v1, even inside the tag-history window
    // (web's `stable` pointed at v1's web an instant ago).
    assert!(store.plan_gc(keep(3)).unwrap().app_versions.is_empty());
    let plan = store.plan_gc(keep(2)).unwrap();
    let dropped: Vec<&str> = plan
        .app_versions
        .iter()
        .map(|v| v.version.as_str())
        .collect();
    assert_eq!(dropped, ["1.0"]);
    assert_eq!(plan.app_versions[0].digest, i1);
    let gone: Vec<&Digest> = plan.blobs.iter().map(|(d, _)| d).collect();
    assert!(gone.contains(&&web1) && gone.contains(&&web1_layer) && gone.contains(&&i1));
    for kept in [&api, &api_layer, &cron, &cron_layer] {
        assert!(!gone.contains(&kept), "{kept} is still used");
    }
    assert!(plan.chunks > 0, "{plan:?}");
    let report = store.apply_gc(&plan).unwrap();
    assert_eq!(report.app_versions, 1);
    assert!(report.chunks > 0);
    assert_eq!(store.tag(APP, "1.0").unwrap(), None);
    assert!(store.stat_blob(&web1).unwrap().is_none());
    assert!(store.stat_blob(&api).unwrap().is_some());
    assert!(store.stat_blob(&cron).unwrap().is_some());
    let last = store.app_history(APP).unwrap().pop().unwrap();
    assert_eq!(
        (last.action, last.version.as_str()),
        (AppAction::Drop, "1.0")
    );
    assert_eq!(
        current(&store).as_deref(),
        Some("3.0"),
        "a drop moves nothing"
    );
    let report = store.verify(Verify::Full).unwrap();
    assert!(report.is_clean(), "{:?}", report.defects);

    // The current version is kept whatever its age: rolled back to v2, keeping one keeps v2
    // and drops the newer v3.
    store
        .apply_repo_changes(&[event("2.0", AppAction::Rollback)])
        .unwrap();
    let plan = store.plan_gc(keep(1)).unwrap();
    let dropped: Vec<&str> = plan
        .app_versions
        .iter()
        .map(|v| v.version.as_str())
        .collect();
    assert_eq!(dropped, ["3.0"]);
    // A plain tag on v3's image keeps it: only the version goes.
    assert!(!plan.blobs.iter().any(|(d, _)| *d == db));
    store.apply_gc(&plan).unwrap();
    let status = store.app_status(APP).unwrap();
    let versions: Vec<&str> = status.versions.iter().map(|v| v.0.as_str()).collect();
    assert_eq!(versions, ["2.0"]);
    assert!(store.stat_blob(&db).unwrap().is_some());
    let report = store.verify(Verify::Full).unwrap();
    assert!(report.is_clean(), "{:?}", report.defects);
}

#[test]
fn issue_18_a_format_2_store_opens_and_is_raised_when_it_first_records_an_application() {
    let (tmp, _) = crate::golden::copy_golden("store-v2");
    let ro = StoreOptions {
        access: Access::ReadOnly,
        blob_cache_size: 0,
        ..StoreOptions::default()
    };
    // Read-only: an index without the table has no applications.
    let store = Store::open(tmp.path(), ro).unwrap();
    assert!(store.app_repos().unwrap().is_empty());
    assert!(store.app_history(APP).unwrap().is_empty());
    drop(store);
    let store = Store::open(tmp.path(), StoreOptions::default()).unwrap();
    assert_eq!(format_version(&store), 2, "opening alone raises nothing");
    // A GC that drops no version does not raise it either.
    store.apply_gc(&store.plan_gc(keep(1)).unwrap()).unwrap();
    assert_eq!(format_version(&store), 2);
    let tags = store.tags("golden/app").unwrap();
    let (t, d) = tags[0].clone();
    store
        .apply_repo_changes(&[RepoChange::AppEvent {
            repo: "golden/app".into(),
            version: t.clone(),
            action: AppAction::Use,
            by: "tester".into(),
        }])
        .unwrap();
    assert_eq!(format_version(&store), 4);
    assert_eq!(
        store.app_status("golden/app").unwrap().current,
        Some((t, d))
    );
    let report = store.verify(Verify::Full).unwrap();
    assert!(report.is_clean(), "{:?}", report.defects);
    drop(store);
    let store = Store::open(tmp.path(), StoreOptions::default()).unwrap();
    assert_eq!(store.app_history("golden/app").unwrap().len(), 1);
}
