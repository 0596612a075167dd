//! Issue 14: finished uploads are staged. The 201 comes once the blob's bytes and digest are
//! durable and it is linked; every endpoint treats a staged blob as the blob it is.

use std::time::Duration;

use airlock_registry::RegistryConfig;
use airlock_store::{Digest, GcOptions, IngestOutcome, StoredAs};
use axum::http::{Method, StatusCode};

use crate::support::{Registry, data};

fn staged_files(r: &Registry) -> usize {
    std::fs::read_dir(r.dir().join("staged")).map_or(0, |d| d.count())
}

fn stored_as(r: &Registry, d: &Digest) -> StoredAs {
    let stat = r.state().store().stat_blob(d).expect("stat");
    stat.expect("blob").stored_as
}

#[tokio::test]
async fn issue_14_single_post_is_staged_and_a_re_push_only_links() {
    let mut r = Registry::new();
    let blob = data(200_000, 14);
    let digest = r.push_blob("a", &blob).await;
    assert_eq!(stored_as(&r, &digest), StoredAs::Staged);
    assert_eq!(staged_files(&r), 1);
    let path = format!("/v2/a/blobs/{digest}");
    assert_eq!(r.get(&path).await.expect(StatusCode::OK).body, blob);
    let resp = r
        .call(Method::GET, &path, &[("range", "bytes=5-9")], "")
        .await
        .expect(StatusCode::PARTIAL_CONTENT);
    assert_eq!(resp.body, blob[5..10]);

    // Pushed again to another repository while staged: linked, nothing more kept.
    r.push_blob("b", &blob).await;
    assert_eq!(staged_files(&r), 1);
    // Still there after a restart, and mountable.
    r.restart(RegistryConfig::default());
    r.call(
        Method::POST,
        &format!("/v2/c/blobs/uploads/?mount={digest}&from=b"),
        &[],
        "",
    )
    .await
    .expect(StatusCode::CREATED);
    assert_eq!(r.get(&format!("/v2/c/blobs/{digest}")).await.body, blob);

    let store = r.state().store().clone();
    let d = digest.clone();
    let outcome = tokio::task::spawn_blocking(move || store.ingest_blob(&d))
        .await
        .expect("join")
        .expect("ingest");
    assert!(matches!(outcome, IngestOutcome::Ingested(_)), "{outcome:?}");
    assert_eq!(stored_as(&r, &digest), StoredAs::Chunks);
    assert_eq!(staged_files(&r), 0);
    // A re-push of a stored blob: 201, linked, nothing staged.
    r.push_blob("d", &blob).await;
    assert_eq!(staged_files(&r), 0);
    assert_eq!(r.get(&format!("/v2/d/blobs/{digest}")).await.body, blob);
}

/// A final chunk whose digest is wrong is refused and undone; the session goes on and its
/// closing PUT with the right digest stages the blob.
#[tokio::test]
async fn issue_14_refused_final_chunk_leaves_the_session_to_finish() {
    let r = Registry::new();
    let blob = data(100_000, 15);
    let digest = Digest::sha256(&blob);
    let location = r.start_upload("a").await;
    let (head, tail) = blob.split_at(60_000);
    let resp = r
        .call(Method::PATCH, &location, &[], head.to_vec())
        .await
        .expect(StatusCode::ACCEPTED);
    let location = resp.header("location").to_owned();
    let wrong = Digest::sha256(b"not it");
    r.call(
        Method::PUT,
        &format!("{location}?digest={wrong}"),
        &[],
        tail.to_vec(),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
    assert_eq!(staged_files(&r), 0);
    r.call(
        Method::PUT,
        &format!("{location}?digest={digest}"),
        &[],
        tail.to_vec(),
    )
    .await
    .expect(StatusCode::CREATED);
    assert_eq!(stored_as(&r, &digest), StoredAs::Staged);
    assert_eq!(r.get(&format!("/v2/a/blobs/{digest}")).await.body, blob);
    let uploads = std::fs::read_dir(r.dir().join("uploads"))
        .expect("dir")
        .count();
    assert_eq!(uploads, 0);
}

/// end-10 on a staged blob unlinks it; GC then removes its record and file.
#[tokio::test]
async fn issue_14_deleted_staged_blob_is_collected() {
    let r = Registry::new();
    let blob = data(50_000, 16);
    let digest = r.push_blob("a", &blob).await;
    let path = format!("/v2/a/blobs/{digest}");
    r.delete(&path).await.expect(StatusCode::ACCEPTED);
    r.head(&path).await.expect(StatusCode::NOT_FOUND);
    let store = r.state().store().clone();
    let no_grace = GcOptions {
        upload_grace: Duration::ZERO,
        ..GcOptions::default()
    };
    let report = tokio::task::spawn_blocking(move || {
        let plan = store.plan_gc(no_grace)?;
        store.apply_gc(&plan)
    })
    .await
    .expect("join")
    .expect("gc");
    assert_eq!(report.blobs, 1);
    assert_eq!(staged_files(&r), 0);
    assert!(!r.state().store().has_blob(&digest).expect("has"));
}
