use airlock_store::Digest;
use axum::http::StatusCode;
use serde_json::json;

use crate::support::{OCI_MANIFEST, Registry, descriptor};

#[tokio::test]
async fn end_9_delete_tag_keeps_the_manifest() {
    let r = Registry::new();
    let image = r.push_image("app", "v1", 1).await;
    r.put_manifest("app", "v2", OCI_MANIFEST, &image.manifest)
        .await
        .expect(StatusCode::CREATED);
    r.delete("/v2/app/manifests/v1")
        .await
        .expect(StatusCode::ACCEPTED);
    r.get("/v2/app/manifests/v1")
        .await
        .expect_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    r.get("/v2/app/manifests/v2").await.expect(StatusCode::OK);
    r.get(&format!("/v2/app/manifests/{}", image.digest))
        .await
        .expect(StatusCode::OK);
    r.delete("/v2/app/manifests/v1")
        .await
        .expect_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    let tags = r.get("/v2/app/tags/list").await.expect(StatusCode::OK);
    assert_eq!(tags.json()["tags"], json!(["v2"]));
}

#[tokio::test]
async fn end_9_delete_manifest_by_digest() {
    let r = Registry::new();
    let image = r.push_image("app", "v1", 2).await;
    let empty = b"{}";
    r.push_blob("app", empty).await;
    let sig = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.sig",
        "config": descriptor("application/vnd.oci.empty.v1+json", empty), "layers": [],
        "subject": {"mediaType": OCI_MANIFEST, "digest": image.digest.to_string(), "size": image.manifest.len()},
    }))
    .expect("json");
    let sig_digest = Digest::sha256(&sig);
    r.put_manifest("app", &sig_digest.to_string(), OCI_MANIFEST, &sig)
        .await
        .expect(StatusCode::CREATED);

    let uri = format!("/v2/app/manifests/{}", image.digest);
    r.delete(&uri).await.expect(StatusCode::ACCEPTED);
    r.get(&uri)
        .await
        .expect_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    // Tags pointing at it went with it.
    r.get("/v2/app/manifests/v1")
        .await
        .expect(StatusCode::NOT_FOUND);
    r.delete(&uri).await.expect(StatusCode::NOT_FOUND);
    r.delete(&format!("/v2/other/manifests/{}", image.digest))
        .await
        .expect(StatusCode::NOT_FOUND);
    // Deleting the referrer removes it from its subject's list.
    let referrers = format!("/v2/app/referrers/{}", image.digest);
    let list = r.get(&referrers).await.expect(StatusCode::OK);
    assert_eq!(list.json()["manifests"].as_array().map(Vec::len), Some(1));
    r.delete(&format!("/v2/app/manifests/{sig_digest}"))
        .await
        .expect(StatusCode::ACCEPTED);
    let list = r.get(&referrers).await.expect(StatusCode::OK);
    assert_eq!(list.json()["manifests"], json!([]));
}

#[tokio::test]
async fn end_10_delete_blob() {
    let r = Registry::new();
    let digest = r.push_blob("app", b"layer").await;
    r.push_blob("other", b"layer").await;
    let uri = format!("/v2/app/blobs/{digest}");
    r.delete(&uri).await.expect(StatusCode::ACCEPTED);
    r.get(&uri)
        .await
        .expect_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");
    r.delete(&uri)
        .await
        .expect_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");
    // Other repositories keep theirs.
    r.get(&format!("/v2/other/blobs/{digest}"))
        .await
        .expect(StatusCode::OK);
    r.delete(&format!("/v2/app/blobs/{}", Digest::sha256(b"never")))
        .await
        .expect_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");
}
