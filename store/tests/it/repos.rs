//! Repositories: links, tags with history, manifest edges, referrers, upload sessions, and
//! changes applied all or nothing.

use airlock_store::{Digest, Error, Link, RepoChange, Store, StoreOptions, TagChange, Verify};

use crate::common::*;

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

fn three_blobs(store: &Store) -> (Digest, Digest, Digest) {
    let layer = put(store, &seeded(80, 50_000)).0;
    let m1 = put(store, br#"{"manifest":1}"#).0;
    let m2 = put(store, br#"{"manifest":2}"#).0;
    (layer, m1, m2)
}

#[test]
fn links_tags_and_history() {
    let (_dir, store) = store_with(StoreOptions::default());
    let (layer, m1, m2) = three_blobs(&store);
    store.link_blob("library/app", &layer).unwrap();
    assert_eq!(
        store.link("library/app", &layer).unwrap(),
        Some(Link {
            blob: true,
            manifest: false
        })
    );
    assert_eq!(store.link("other", &layer).unwrap(), None);
    store
        .apply_repo_changes(&[
            link_manifest("library/app", &m1, std::slice::from_ref(&layer)),
            set_tag("library/app", "v1", &m1),
            set_tag("library/app", "latest", &m1),
        ])
        .unwrap();
    assert_eq!(store.tag("library/app", "v1").unwrap(), Some(m1.clone()));
    assert_eq!(store.manifest_children(&m1).unwrap(), vec![layer.clone()]);
    assert_eq!(
        store.manifest_media_type(&m1).unwrap().as_deref(),
        Some("application/vnd.oci.image.manifest.v1+json")
    );
    store
        .apply_repo_changes(&[
            link_manifest("library/app", &m2, std::slice::from_ref(&layer)),
            set_tag("library/app", "latest", &m2),
            // Setting a tag to what it already holds is not a change.
            set_tag("library/app", "v1", &m1),
        ])
        .unwrap();
    assert_eq!(
        store.tags("library/app").unwrap(),
        vec![("latest".into(), m2.clone()), ("v1".into(), m1.clone())]
    );
    store
        .apply_repo_changes(&[RepoChange::DeleteTag {
            repo: "library/app".into(),
            tag: "latest".into(),
        }])
        .unwrap();
    let history: Vec<Option<Digest>> = store
        .tag_history("library/app", "latest")
        .unwrap()
        .into_iter()
        .map(|TagChange { digest, .. }| digest)
        .collect();
    assert_eq!(history, vec![Some(m1.clone()), Some(m2.clone()), None]);
    assert_eq!(store.tag_history("library/app", "v1").unwrap().len(), 1);
    assert_eq!(store.tag("library/app", "latest").unwrap(), None);
    // Deleting an absent tag is no error and no history.
    store
        .apply_repo_changes(&[RepoChange::DeleteTag {
            repo: "library/app".into(),
            tag: "latest".into(),
        }])
        .unwrap();
    assert_eq!(store.tag_history("library/app", "latest").unwrap().len(), 3);
    store.link_blob("a/b/c", &layer).unwrap();
    assert_eq!(
        store.repositories().unwrap(),
        vec!["a/b/c".to_owned(), "library/app".to_owned()]
    );
    assert!(store.has_repository("a/b/c").unwrap());
    assert!(
        !store.has_repository("a/b").unwrap(),
        "a prefix is not a repository"
    );
    // A blob link and a manifest link of the same digest are independent bits.
    store
        .apply_repo_changes(&[
            RepoChange::UnlinkBlob {
                repo: "library/app".into(),
                digest: layer.clone(),
            },
            link_manifest("a/b/c", &layer, &[]),
        ])
        .unwrap();
    assert_eq!(store.link("library/app", &layer).unwrap(), None);
    assert_eq!(
        store.link("a/b/c", &layer).unwrap(),
        Some(Link {
            blob: true,
            manifest: true
        })
    );
    assert!(store.verify(Verify::Full).unwrap().is_clean());
}

#[test]
fn tags_need_a_linked_manifest() {
    let (_dir, store) = store_with(StoreOptions::default());
    let (layer, m1, _) = three_blobs(&store);
    // Stored, but not linked as a manifest in this repository.
    store.link_blob("app", &m1).unwrap();
    let err = store
        .apply_repo_changes(&[set_tag("app", "v1", &m1)])
        .unwrap_err();
    assert!(
        matches!(&err, Error::BlobNotFound { digest } if *digest == m1),
        "{err}"
    );
    store
        .apply_repo_changes(&[link_manifest("other", &m1, &[layer])])
        .unwrap();
    let err = store
        .apply_repo_changes(&[set_tag("app", "v1", &m1)])
        .unwrap_err();
    assert!(matches!(err, Error::BlobNotFound { .. }), "{err}");
    let err = store
        .apply_repo_changes(&[link_manifest("app", &m1, &[]), set_tag("app", "", &m1)])
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidName { what: "tag", .. }),
        "{err}"
    );
    assert_eq!(store.tags("app").unwrap(), vec![]);
}

#[test]
fn referrers_and_unlink_manifest() {
    let (_dir, store) = store_with(StoreOptions::default());
    let (layer, subject, _) = three_blobs(&store);
    let sig = put(&store, br#"{"signature":true}"#).0;
    let sbom = put(&store, br#"{"sbom":true}"#).0;
    store
        .apply_repo_changes(&[
            link_manifest("app", &subject, std::slice::from_ref(&layer)),
            set_tag("app", "v1", &subject),
            RepoChange::LinkManifest {
                repo: "app".into(),
                digest: sig.clone(),
                children: vec![subject.clone()],
                subject: Some((subject.clone(), b"sig-descriptor".to_vec())),
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            },
            RepoChange::LinkManifest {
                repo: "app".into(),
                digest: sbom.clone(),
                children: vec![subject.clone()],
                subject: Some((subject.clone(), b"sbom-descriptor".to_vec())),
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            },
            set_tag("app", "sig", &sig),
            set_tag("app", "sig-too", &sig),
        ])
        .unwrap();
    let mut expected = vec![
        (sig.clone(), b"sig-descriptor".to_vec()),
        (sbom.clone(), b"sbom-descriptor".to_vec()),
    ];
    expected.sort();
    assert_eq!(store.referrers("app", &subject).unwrap(), expected);
    assert_eq!(store.referrers("other", &subject).unwrap(), vec![]);
    // Unlinking the signature removes its tags and its referrer entry, nothing else.
    store
        .apply_repo_changes(&[RepoChange::UnlinkManifest {
            repo: "app".into(),
            digest: sig.clone(),
        }])
        .unwrap();
    assert_eq!(
        store.referrers("app", &subject).unwrap(),
        vec![(sbom.clone(), b"sbom-descriptor".to_vec())]
    );
    assert_eq!(
        store.tags("app").unwrap(),
        vec![("v1".into(), subject.clone())]
    );
    assert_eq!(store.link("app", &sig).unwrap(), None);
    assert_eq!(
        store
            .tag_history("app", "sig")
            .unwrap()
            .last()
            .unwrap()
            .digest,
        None
    );
    assert!(store.has_blob(&sig).unwrap(), "unlinking deletes nothing");
    assert!(store.verify(Verify::Full).unwrap().is_clean());
}

#[test]
fn changes_apply_all_or_nothing() {
    let (_dir, store) = store_with(StoreOptions::default());
    let (layer, m1, _) = three_blobs(&store);
    let missing = Digest::sha256(b"not stored");
    let err = store
        .apply_repo_changes(&[
            RepoChange::LinkBlob {
                repo: "app".into(),
                digest: layer.clone(),
            },
            link_manifest("app", &m1, std::slice::from_ref(&layer)),
            set_tag("app", "v1", &m1),
            RepoChange::LinkBlob {
                repo: "app".into(),
                digest: missing.clone(),
            },
        ])
        .unwrap_err();
    assert!(
        matches!(&err, Error::BlobNotFound { digest } if *digest == missing),
        "{err}"
    );
    assert_eq!(store.repositories().unwrap(), Vec::<String>::new());
    assert!(!store.has_repository("app").unwrap());
    assert_eq!(store.link("app", &layer).unwrap(), None);
    assert_eq!(store.link("app", &m1).unwrap(), None);
    assert_eq!(store.tag("app", "v1").unwrap(), None);
    assert_eq!(store.tag_history("app", "v1").unwrap(), vec![]);
    assert_eq!(store.manifest_children(&m1).unwrap(), vec![]);
    assert_eq!(store.manifest_media_type(&m1).unwrap(), None);
    // A required blob that is not stored fails the list the same way.
    let err = store
        .apply_repo_changes(&[
            link_manifest("app", &m1, &[layer.clone(), missing.clone()]),
            RepoChange::RequireBlob {
                digest: missing.clone(),
            },
        ])
        .unwrap_err();
    assert!(
        matches!(&err, Error::BlobNotFound { digest } if *digest == missing),
        "{err}"
    );
    assert_eq!(store.link("app", &m1).unwrap(), None);
    store
        .apply_repo_changes(&[
            RepoChange::RequireBlob {
                digest: layer.clone(),
            },
            link_manifest("app", &m1, &[layer.clone(), missing]),
        ])
        .unwrap();
    assert!(store.link("app", &m1).unwrap().is_some());
}

#[test]
fn require_link_fails_the_list_unless_the_repo_links_the_digest() {
    let (_dir, store) = store_with(StoreOptions::default());
    let (layer, m1, m2) = three_blobs(&store);
    let require = |repo: &str, digest: &Digest, blob_ok: bool| RepoChange::RequireLink {
        repo: repo.into(),
        digest: digest.clone(),
        blob_ok,
    };
    // Stored but linked nowhere: refused, and the manifest is not linked.
    let err = store
        .apply_repo_changes(&[
            require("app", &layer, true),
            link_manifest("app", &m1, std::slice::from_ref(&layer)),
        ])
        .unwrap_err();
    assert!(
        matches!(&err, Error::BlobNotFound { digest } if *digest == layer),
        "{err}"
    );
    assert_eq!(store.link("app", &m1).unwrap(), None);
    store.link_blob("other", &layer).unwrap();
    assert!(
        store
            .apply_repo_changes(&[require("app", &layer, true)])
            .is_err(),
        "linked elsewhere only"
    );
    store.link_blob("app", &layer).unwrap();
    store
        .apply_repo_changes(&[
            require("app", &layer, true),
            link_manifest("app", &m1, std::slice::from_ref(&layer)),
        ])
        .unwrap();
    // A blob link does not stand in for a child manifest.
    assert!(
        store
            .apply_repo_changes(&[require("app", &layer, false)])
            .is_err()
    );
    store
        .apply_repo_changes(&[
            require("app", &m1, false),
            link_manifest("app", &m2, std::slice::from_ref(&m1)),
        ])
        .unwrap();
}

#[test]
fn upload_sessions_survive_reopen() {
    let (dir, store) = store_with(StoreOptions::default());
    store.put_upload("u1", b"state one").unwrap();
    store.put_upload("u2", b"state two").unwrap();
    store.put_upload("u1", b"state one, later").unwrap();
    drop(store);
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(
        store.upload("u1").unwrap().as_deref(),
        Some(&b"state one, later"[..])
    );
    assert_eq!(
        store.uploads().unwrap(),
        vec![
            ("u1".to_owned(), b"state one, later".to_vec()),
            ("u2".to_owned(), b"state two".to_vec())
        ]
    );
    assert!(store.remove_upload("u1").unwrap());
    assert!(!store.remove_upload("u1").unwrap());
    assert_eq!(store.upload("u1").unwrap(), None);
}

/// Issue 17: an index linked without some children on purpose (`--platform`) verifies clean;
/// a child that should be there and is not is named; a later link with every child forgets
/// what was absent; the first absent record raises the store to the current format.
#[test]
fn issue_17_children_absent_on_purpose_are_not_missing() {
    let (dir, store) = store_with(StoreOptions::default());
    let (layer, arm, _) = three_blobs(&store);
    let index = put(&store, br#"{"index":1}"#).0;
    let amd = Digest::sha256(br#"{"manifest":"amd64"}"#);
    let gone = Digest::sha256(b"a layer that should be there");
    store
        .apply_repo_changes(&[
            link_manifest("multi", &arm, std::slice::from_ref(&layer)),
            link_manifest("multi", &index, &[arm.clone(), amd.clone()]),
            RepoChange::MarkAbsent {
                digest: index.clone(),
                // A stored child is never recorded absent.
                children: vec![amd.clone(), arm.clone()],
            },
            set_tag("multi", "1", &index),
        ])
        .unwrap();
    assert_eq!(store.absent_children(&index).unwrap(), vec![amd.clone()]);
    let report = store.verify(Verify::Quick).unwrap();
    assert!(report.is_clean(), "{:?}", report.defects);
    let header: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("store.json")).unwrap()).unwrap();
    assert_eq!(
        header["version"].as_u64(),
        Some(u64::from(airlock_store::STORE_FORMAT_VERSION))
    );

    // A manifest whose layer is missing, not on purpose.
    let broken = put(&store, br#"{"manifest":"broken"}"#).0;
    store
        .apply_repo_changes(&[link_manifest("multi", &broken, std::slice::from_ref(&gone))])
        .unwrap();
    let report = store.verify(Verify::Quick).unwrap();
    let defects: Vec<String> = report.defects.iter().map(ToString::to_string).collect();
    assert_eq!(
        defects,
        [format!(
            "manifest {broken} of multi references {gone}, which is not stored"
        )]
    );

    // A link with every child (the amd64 manifest arrived) forgets the absent record.
    let amd_stored = put(&store, br#"{"manifest":"amd64"}"#).0;
    assert_eq!(amd_stored, amd);
    store
        .apply_repo_changes(&[
            link_manifest("multi", &amd, &[]),
            link_manifest("multi", &index, &[arm.clone(), amd.clone()]),
        ])
        .unwrap();
    assert!(store.absent_children(&index).unwrap().is_empty());
}
