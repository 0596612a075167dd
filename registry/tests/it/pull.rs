use airlock_store::{Algorithm, Digest};
use axum::http::{Method, StatusCode};

use crate::support::{Registry, data};

#[tokio::test]
async fn end_1_api_version() {
    let r = Registry::new();
    for uri in ["/v2/", "/v2"] {
        let resp = r.get(uri).await.expect(StatusCode::OK);
        assert_eq!(
            resp.header("docker-distribution-api-version"),
            "registry/2.0"
        );
    }
    // Every response carries the version header, errors included.
    let resp = r.get("/v3/").await.expect(StatusCode::NOT_FOUND);
    assert_eq!(
        resp.header("docker-distribution-api-version"),
        "registry/2.0"
    );
}

#[tokio::test]
async fn end_2_get_and_head_blob() {
    let r = Registry::new();
    let blob = data(300_000, 1);
    let digest = r.push_blob("org/app", &blob).await;
    let uri = format!("/v2/org/app/blobs/{digest}");

    let resp = r.get(&uri).await.expect(StatusCode::OK);
    assert_eq!(&resp.body[..], &blob[..]);
    assert_eq!(resp.header("docker-content-digest"), digest.to_string());
    assert_eq!(resp.header("content-length"), blob.len().to_string());
    assert_eq!(resp.header("content-type"), "application/octet-stream");
    assert_eq!(resp.header("accept-ranges"), "bytes");

    let resp = r.head(&uri).await.expect(StatusCode::OK);
    assert!(resp.body.is_empty());
    assert_eq!(resp.header("content-length"), blob.len().to_string());
    assert_eq!(resp.header("docker-content-digest"), digest.to_string());

    // The empty blob.
    let empty = r.push_blob("org/app", b"").await;
    let resp = r
        .get(&format!("/v2/org/app/blobs/{empty}"))
        .await
        .expect(StatusCode::OK);
    assert!(resp.body.is_empty());
}

#[tokio::test]
async fn end_2_range_requests() {
    let r = Registry::new();
    let blob = data(2048, 2);
    let digest = r.push_blob("a", &blob).await;
    let uri = format!("/v2/a/blobs/{digest}");
    let get = |range: &'static str| {
        let uri = uri.clone();
        let r = &r;
        async move { r.call(Method::GET, &uri, &[("range", range)], "").await }
    };
    for (range, start, end) in [
        ("bytes=500-1499", 500, 1499),
        ("bytes=500-", 500, 2047),
        ("bytes=-500", 1548, 2047),
        ("bytes=2000-5000", 2000, 2047),
        ("bytes=0-0", 0, 0),
    ] {
        let resp = get(range).await.expect(StatusCode::PARTIAL_CONTENT);
        assert_eq!(&resp.body[..], &blob[start..=end], "{range}");
        assert_eq!(
            resp.header("content-range"),
            format!("bytes {start}-{end}/2048")
        );
        assert_eq!(resp.header("content-length"), (end - start + 1).to_string());
    }
    for range in [
        "bytes=500-0",
        "bytes=5000-10000",
        "bytes=2048-",
        "bytes=-0",
        "bytes=x-y",
        "bytes=99999999999999999999999999-",
    ] {
        let resp = get(range).await.expect(StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(resp.header("content-range"), "bytes */2048", "{range}");
    }
    // Several ranges, another unit, or absurd text: the whole blob.
    for range in ["bytes=0-1,5-6", "items=0-1", "nonsense"] {
        let resp = get(range).await.expect(StatusCode::OK);
        assert_eq!(resp.body.len(), 2048);
    }
}

#[tokio::test]
async fn end_2_large_range_crosses_chunks() {
    let r = Registry::new();
    let blob = data(3 << 20, 3);
    let digest = r.push_blob("a", &blob).await;
    let resp = r
        .call(
            Method::GET,
            &format!("/v2/a/blobs/{digest}"),
            &[("range", "bytes=1000000-2999999")],
            "",
        )
        .await
        .expect(StatusCode::PARTIAL_CONTENT);
    assert_eq!(&resp.body[..], &blob[1_000_000..3_000_000]);
}

#[tokio::test]
async fn end_2_sha512_blobs() {
    let r = Registry::new();
    let blob = data(70_000, 4);
    let digest = r.push_blob_as("a", &blob, Algorithm::Sha512).await;
    assert!(digest.to_string().starts_with("sha512:"));
    let resp = r
        .get(&format!("/v2/a/blobs/{digest}"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(&resp.body[..], &blob[..]);
    assert_eq!(resp.header("docker-content-digest"), digest.to_string());
    // The sha256 of the same bytes is a different, unknown blob.
    r.get(&format!("/v2/a/blobs/{}", Digest::sha256(&blob)))
        .await
        .expect_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");
}

#[tokio::test]
async fn end_2_blobs_are_scoped_to_their_repository() {
    let r = Registry::new();
    let digest = r.push_blob("team-a/app", b"secret layer").await;
    r.get(&format!("/v2/team-b/app/blobs/{digest}"))
        .await
        .expect_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");
    r.head(&format!("/v2/team-b/app/blobs/{digest}"))
        .await
        .expect(StatusCode::NOT_FOUND);
    r.get(&format!("/v2/team-a/app/blobs/{}", Digest::sha256(b"nope")))
        .await
        .expect_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");
    r.get("/v2/team-a/app/blobs/sha256:short")
        .await
        .expect_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
}

#[tokio::test]
async fn end_3_unknown_manifests() {
    let r = Registry::new();
    r.push_image("a", "v1", 1).await;
    r.get("/v2/a/manifests/v2")
        .await
        .expect_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    r.get("/v2/nothing/here/manifests/v1")
        .await
        .expect_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    r.get(&format!("/v2/a/manifests/{}", Digest::sha256(b"x")))
        .await
        .expect_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    r.head("/v2/a/manifests/v2")
        .await
        .expect(StatusCode::NOT_FOUND);
    // A layer is not a manifest.
    let layer = r.push_blob("a", b"layer").await;
    r.get(&format!("/v2/a/manifests/{layer}"))
        .await
        .expect_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
}
