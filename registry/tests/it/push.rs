use std::io;

use airlock_store::{Algorithm, Digest};
use axum::{
    body::Body,
    http::{Method, StatusCode},
};
use bytes::Bytes;

use crate::support::{Registry, data};

/// A body that yields `pieces` and then fails, as a client that disconnects mid-upload.
fn broken_body(pieces: Vec<Vec<u8>>) -> Body {
    let items: Vec<io::Result<Bytes>> = pieces
        .into_iter()
        .map(|p| Ok(Bytes::from(p)))
        .chain([Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "client went away",
        ))])
        .collect();
    Body::from_stream(futures_util::stream::iter(items))
}

async fn patch(
    r: &Registry,
    location: &str,
    range: Option<&str>,
    chunk: &[u8],
) -> crate::support::Resp {
    let len = chunk.len().to_string();
    let mut headers = vec![
        ("content-type", "application/octet-stream"),
        ("content-length", len.as_str()),
    ];
    if let Some(range) = range {
        headers.push(("content-range", range));
    }
    r.call(Method::PATCH, location, &headers, chunk.to_vec())
        .await
}

#[tokio::test]
async fn end_4a_end_6_post_then_put() {
    let r = Registry::new();
    let resp = r
        .call(
            Method::POST,
            "/v2/org/app/blobs/uploads/",
            &[],
            Body::empty(),
        )
        .await
        .expect(StatusCode::ACCEPTED);
    let location = resp.header("location").to_owned();
    let id = resp.header("docker-upload-uuid").to_owned();
    assert_eq!(location, format!("/v2/org/app/blobs/uploads/{id}"));
    assert_eq!(id.len(), 36, "a UUID");
    assert_eq!(resp.header("range"), "0-0");

    let blob = data(100_000, 10);
    let digest = Digest::sha256(&blob);
    let resp = r
        .call(
            Method::PUT,
            &format!("{location}?digest={digest}"),
            &[("content-length", &blob.len().to_string())],
            blob.clone(),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(
        resp.header("location"),
        format!("/v2/org/app/blobs/{digest}")
    );
    assert_eq!(resp.header("docker-content-digest"), digest.to_string());
    let got = r.get(resp.header("location")).await.expect(StatusCode::OK);
    assert_eq!(&got.body[..], &blob[..]);
    // The session is gone, its file too.
    r.get(&location)
        .await
        .expect_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
    assert_eq!(
        std::fs::read_dir(r.dir().join("uploads"))
            .expect("dir")
            .count(),
        0
    );
}

#[tokio::test]
async fn issue_3_decompression_bomb_is_refused_and_nothing_stored() {
    use std::io::Write;
    let r = Registry::new();
    // 200 MiB of zeros gzip to about 200 KiB: beyond the default 100x ratio limit.
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..200 {
        e.write_all(&zeros).expect("gzip");
    }
    let bomb = e.finish().expect("gzip");
    let digest = Digest::sha256(&bomb);
    let resp = r
        .call(
            Method::POST,
            &format!("/v2/a/blobs/uploads/?digest={digest}"),
            &[],
            bomb,
        )
        .await
        .expect_error(StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID");
    assert!(
        resp.json().to_string().contains("decompression"),
        "{}",
        resp.json()
    );
    assert!(!r.state().store().has_blob(&digest).expect("store"));
    r.head(&format!("/v2/a/blobs/{digest}"))
        .await
        .expect(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn end_4b_single_post_checks_digest_and_length() {
    let r = Registry::new();
    let blob = data(50_000, 11);
    let digest = r.push_blob("a", &blob).await;
    r.head(&format!("/v2/a/blobs/{digest}"))
        .await
        .expect(StatusCode::OK);

    // Wrong digest: nothing stored.
    let other = Digest::sha256(b"something else");
    r.call(
        Method::POST,
        &format!("/v2/a/blobs/uploads/?digest={other}"),
        &[("content-length", "5")],
        "hello",
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
    r.head(&format!("/v2/a/blobs/{other}"))
        .await
        .expect(StatusCode::NOT_FOUND);
    assert!(!r.state().store().has_blob(&other).expect("store"));
    let hello = Digest::sha256(b"hello");
    assert!(!r.state().store().has_blob(&hello).expect("store"));

    // A body shorter or longer than its Content-Length.
    for declared in ["4", "6", "0"] {
        r.call(
            Method::POST,
            &format!("/v2/a/blobs/uploads/?digest={hello}"),
            &[("content-length", declared)],
            "hello",
        )
        .await
        .expect_error(StatusCode::BAD_REQUEST, "SIZE_INVALID");
    }
    assert!(!r.state().store().has_blob(&hello).expect("store"));
    // A malformed Content-Length.
    r.call(
        Method::POST,
        &format!("/v2/a/blobs/uploads/?digest={hello}"),
        &[("content-length", "five")],
        "hello",
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "SIZE_INVALID");
    // A client that disconnects mid-body.
    let resp = r
        .call(
            Method::POST,
            &format!("/v2/a/blobs/uploads/?digest={}", Digest::sha256(&blob)),
            &[],
            broken_body(vec![blob[..1000].to_vec()]),
        )
        .await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);
    // A bad digest in the query.
    r.call(
        Method::POST,
        "/v2/a/blobs/uploads/?digest=sha256:abc",
        &[],
        "x",
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
}

#[tokio::test]
async fn end_5_chunked_upload_in_order() {
    let r = Registry::new();
    let blob = data(1_000_000, 12);
    let digest = Digest::sha256(&blob);
    let location = r.start_upload("org/app").await;
    let cuts = [0, 300_000, 650_000, 999_000];
    for pair in cuts.windows(2) {
        let (start, end) = (pair[0], pair[1]);
        let range = format!("{start}-{}", end - 1);
        let resp = patch(&r, &location, Some(&range), &blob[start..end])
            .await
            .expect(StatusCode::ACCEPTED);
        assert_eq!(resp.header("range"), format!("0-{}", end - 1));
        assert_eq!(resp.header("location"), location);
        // end-13: the status says the same.
        let status = r.get(&location).await.expect(StatusCode::NO_CONTENT);
        assert_eq!(status.header("range"), format!("0-{}", end - 1));
        assert_eq!(status.header("location"), location);
    }
    // Out of order, repeated, and overlapping chunks: 416 with the current Range.
    for (range, chunk) in [
        ("999001-999010", &blob[999_001..999_011]),
        ("650000-998999", &blob[650_000..999_000]),
        ("0-9", &blob[..10]),
    ] {
        let resp = patch(&r, &location, Some(range), chunk)
            .await
            .expect(StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(resp.header("range"), "0-998999", "{range}");
    }
    // A Content-Range that disagrees with the Content-Length.
    patch(
        &r,
        &location,
        Some("999000-999009"),
        &blob[999_000..999_005],
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "SIZE_INVALID");
    // A malformed one.
    patch(&r, &location, Some("bytes"), &blob[999_000..])
        .await
        .expect(StatusCode::RANGE_NOT_SATISFIABLE);
    // The closing PUT carries the last chunk.
    let resp = r
        .call(
            Method::PUT,
            &format!("{location}?digest={digest}"),
            &[
                ("content-range", "999000-999999"),
                ("content-length", "1000"),
            ],
            blob[999_000..].to_vec(),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(resp.header("docker-content-digest"), digest.to_string());
    let got = r
        .get(&format!("/v2/org/app/blobs/{digest}"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(&got.body[..], &blob[..]);
}

#[tokio::test]
async fn end_5_streamed_chunks_without_content_range() {
    let r = Registry::new();
    let blob = data(200_000, 13);
    let location = r.start_upload("a").await;
    for piece in blob.chunks(70_000) {
        r.call(Method::PATCH, &location, &[], piece.to_vec())
            .await
            .expect(StatusCode::ACCEPTED);
    }
    let digest = Digest::sha256(&blob);
    r.call(
        Method::PUT,
        &format!("{location}?digest={digest}"),
        &[],
        Body::empty(),
    )
    .await
    .expect(StatusCode::CREATED);
    let got = r
        .get(&format!("/v2/a/blobs/{digest}"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(&got.body[..], &blob[..]);
}

#[tokio::test]
async fn end_5_truncated_chunk_leaves_the_session_resumable() {
    let r = Registry::new();
    let blob = data(100_000, 14);
    let location = r.start_upload("a").await;
    patch(&r, &location, Some("0-49999"), &blob[..50_000])
        .await
        .expect(StatusCode::ACCEPTED);
    // The client goes away after 10,000 of 50,000 bytes.
    let resp = r
        .call(
            Method::PATCH,
            &location,
            &[
                ("content-range", "50000-99999"),
                ("content-length", "50000"),
            ],
            broken_body(vec![blob[50_000..60_000].to_vec()]),
        )
        .await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);
    // A body shorter than its Content-Length without a transport error.
    patch(&r, &location, None, &blob[50_000..50_010])
        .await
        .expect(StatusCode::ACCEPTED);
    r.call(
        Method::PATCH,
        &location,
        &[
            ("content-range", "50010-99999"),
            ("content-length", "49990"),
        ],
        blob[50_010..60_000].to_vec(),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "SIZE_INVALID");
    let status = r.get(&location).await.expect(StatusCode::NO_CONTENT);
    assert_eq!(status.header("range"), "0-50009");
    patch(&r, &location, Some("50010-99999"), &blob[50_010..])
        .await
        .expect(StatusCode::ACCEPTED);
    let digest = Digest::sha256(&blob);
    r.call(
        Method::PUT,
        &format!("{location}?digest={digest}"),
        &[],
        Body::empty(),
    )
    .await
    .expect(StatusCode::CREATED);
    let got = r
        .get(&format!("/v2/a/blobs/{digest}"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(&got.body[..], &blob[..]);
}

#[tokio::test]
async fn end_6_wrong_digest_keeps_the_session() {
    let r = Registry::new();
    let blob = data(10_000, 15);
    let location = r.start_upload("a").await;
    patch(&r, &location, Some("0-8999"), &blob[..9000])
        .await
        .expect(StatusCode::ACCEPTED);
    let wrong = Digest::sha256(b"not it");
    r.call(
        Method::PUT,
        &format!("{location}?digest={wrong}"),
        &[("content-range", "9000-9999"), ("content-length", "1000")],
        blob[9000..].to_vec(),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
    assert!(!r.state().store().has_blob(&wrong).expect("store"));
    // The final chunk of the refused PUT was undone.
    let status = r.get(&location).await.expect(StatusCode::NO_CONTENT);
    assert_eq!(status.header("range"), "0-8999");
    // An out-of-order final chunk is a 416.
    r.call(
        Method::PUT,
        &format!("{location}?digest={}", Digest::sha256(&blob)),
        &[("content-range", "9500-9999"), ("content-length", "500")],
        blob[9500..].to_vec(),
    )
    .await
    .expect(StatusCode::RANGE_NOT_SATISFIABLE);
    // PUT without a digest is refused by the parser.
    r.call(Method::PUT, &location, &[], Body::empty())
        .await
        .expect_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
    let digest = Digest::sha256(&blob);
    r.call(
        Method::PUT,
        &format!("{location}?digest={digest}"),
        &[("content-length", "1000")],
        blob[9000..].to_vec(),
    )
    .await
    .expect(StatusCode::CREATED);
}

#[tokio::test]
async fn end_4c_sha512_chunked_upload() {
    let r = Registry::new();
    let blob = data(123_457, 16);
    let resp = r
        .call(
            Method::POST,
            "/v2/a/blobs/uploads/?digest-algorithm=sha512",
            &[],
            Body::empty(),
        )
        .await
        .expect(StatusCode::ACCEPTED);
    let location = resp.header("location").to_owned();
    patch(&r, &location, Some("0-123456"), &blob)
        .await
        .expect(StatusCode::ACCEPTED);
    let digest = Digest::of(Algorithm::Sha512, &blob);
    r.call(
        Method::PUT,
        &format!("{location}?digest={digest}"),
        &[],
        Body::empty(),
    )
    .await
    .expect(StatusCode::CREATED);
    let got = r
        .get(&format!("/v2/a/blobs/{digest}"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(got.header("docker-content-digest"), digest.to_string());
    assert_eq!(&got.body[..], &blob[..]);
}

#[tokio::test]
async fn end_14_cancel_upload() {
    let r = Registry::new();
    let location = r.start_upload("a").await;
    patch(&r, &location, Some("0-2"), b"abc")
        .await
        .expect(StatusCode::ACCEPTED);
    r.delete(&location).await.expect(StatusCode::NO_CONTENT);
    r.get(&location)
        .await
        .expect_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
    patch(&r, &location, Some("3-5"), b"def")
        .await
        .expect_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
    r.delete(&location)
        .await
        .expect_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
    assert_eq!(
        std::fs::read_dir(r.dir().join("uploads"))
            .expect("dir")
            .count(),
        0
    );
}

#[tokio::test]
async fn end_13_sessions_are_scoped_and_ids_checked() {
    let r = Registry::new();
    let location = r.start_upload("team-a/app").await;
    let id = location.rsplit('/').next().expect("id");
    r.get(&format!("/v2/team-b/app/blobs/uploads/{id}"))
        .await
        .expect_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
    r.get("/v2/team-a/app/blobs/uploads/00000000-0000-4000-8000-000000000000")
        .await
        .expect_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
    r.get("/v2/team-a/app/blobs/uploads/..%2F..%2Fetc")
        .await
        .expect_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
    r.get(&location).await.expect(StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn end_11_mount_from_another_repository() {
    let r = Registry::new();
    let blob = data(20_000, 17);
    let digest = r.push_blob("source/app", &blob).await;
    let resp = r
        .call(
            Method::POST,
            &format!("/v2/target/app/blobs/uploads/?mount={digest}&from=source/app"),
            &[],
            Body::empty(),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(
        resp.header("location"),
        format!("/v2/target/app/blobs/{digest}")
    );
    assert_eq!(resp.header("docker-content-digest"), digest.to_string());
    let got = r
        .get(&format!("/v2/target/app/blobs/{digest}"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(&got.body[..], &blob[..]);

    // Not in `from`, or no `from`: a session instead.
    for query in [
        format!("mount={digest}&from=elsewhere"),
        format!("mount={}&from=source/app", Digest::sha256(b"unknown")),
        format!("mount={digest}"),
    ] {
        let resp = r
            .call(
                Method::POST,
                &format!("/v2/third/blobs/uploads/?{query}"),
                &[],
                Body::empty(),
            )
            .await
            .expect(StatusCode::ACCEPTED);
        assert!(
            resp.header("location")
                .starts_with("/v2/third/blobs/uploads/")
        );
    }
    r.get(&format!("/v2/third/blobs/{digest}"))
        .await
        .expect(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn server_faults_are_500_without_internals() {
    let r = Registry::new();
    let location = r.start_upload("a").await;
    let id = location.rsplit('/').next().expect("id");
    // Someone removed the session's file behind the registry's back.
    std::fs::remove_file(r.dir().join("uploads").join(id)).expect("remove");
    let resp = patch(&r, &location, Some("0-2"), b"abc")
        .await
        .expect(StatusCode::INTERNAL_SERVER_ERROR);
    let body = String::from_utf8_lossy(&resp.body).into_owned();
    assert_eq!(resp.code(), "UNKNOWN");
    assert!(!body.contains("uploads"), "{body}");
    assert!(!body.contains(id), "{body}");
}
