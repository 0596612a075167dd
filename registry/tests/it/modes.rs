use std::time::Duration;

use airlock_registry::RegistryConfig;
use airlock_store::Digest;
use axum::{
    body::Body,
    http::{Method, StatusCode},
};

use crate::support::{OCI_MANIFEST, Registry, data};

#[tokio::test]
async fn containerd_ns_reads_the_scoped_repository() {
    let r = Registry::new();
    let image = r.push_image("docker.io/library/nginx", "1.27", 1).await;
    let resp = r
        .get("/v2/library/nginx/manifests/1.27?ns=docker.io")
        .await
        .expect(StatusCode::OK);
    assert_eq!(&resp.body[..], &image.manifest[..]);
    assert_eq!(resp.header("oci-namespace"), "docker.io");
    assert_eq!(resp.header("content-type"), OCI_MANIFEST);
    let layer = Digest::sha256(&image.layer);
    let resp = r
        .get(&format!("/v2/library/nginx/blobs/{layer}?ns=docker.io"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(&resp.body[..], &image.layer[..]);
    // Another source is another repository. (Without ns, docker's normalization of the path
    // finds it: see `names`.)
    r.get("/v2/library/nginx/manifests/1.27?ns=quay.io")
        .await
        .expect(StatusCode::NOT_FOUND);
    // A port maps to `_`.
    let local = r.push_image("registry.local_5000/app", "v1", 2).await;
    let resp = r
        .get("/v2/app/manifests/v1?ns=registry.local:5000")
        .await
        .expect(StatusCode::OK);
    assert_eq!(&resp.body[..], &local.manifest[..]);
    r.get("/v2/app/manifests/v1?ns=not_a_host")
        .await
        .expect_error(StatusCode::BAD_REQUEST, "NAME_INVALID");
}

#[tokio::test]
async fn path_like_names_are_refused() {
    let r = Registry::new();
    for uri in [
        "/v2/../etc/manifests/latest",
        "/v2/a/../b/manifests/latest",
        "/v2/%2e%2e/manifests/latest",
        "/v2/a%2F..%2Fb/manifests/latest",
        "/v2/./manifests/latest",
        "/v2/A/manifests/latest",
    ] {
        let resp = r.get(uri).await;
        assert!(resp.status.is_client_error(), "{uri}: {resp:?}");
    }
}

#[tokio::test]
async fn read_only_serves_pulls_and_refuses_writes() {
    let mut r = Registry::new();
    let image = r.push_image("app", "v1", 3).await;
    let location = r.start_upload("app").await;
    r.restart(RegistryConfig {
        read_only: true,
        ..RegistryConfig::default()
    });
    r.get("/v2/app/manifests/v1").await.expect(StatusCode::OK);
    r.get(&format!("/v2/app/blobs/{}", Digest::sha256(&image.layer)))
        .await
        .expect(StatusCode::OK);
    r.get("/v2/app/tags/list").await.expect(StatusCode::OK);
    r.get("/v2/_catalog").await.expect(StatusCode::OK);
    r.get(&format!("/v2/app/referrers/{}", image.digest))
        .await
        .expect(StatusCode::OK);
    for (method, uri) in [
        (Method::POST, "/v2/app/blobs/uploads/".to_owned()),
        (Method::PUT, "/v2/app/manifests/v2".to_owned()),
        (Method::DELETE, "/v2/app/manifests/v1".to_owned()),
        (
            Method::DELETE,
            format!("/v2/app/blobs/{}", Digest::sha256(&image.layer)),
        ),
        (Method::GET, location.clone()),
        (Method::PATCH, location.clone()),
        (Method::DELETE, location.clone()),
    ] {
        r.call(method, &uri, &[], Body::from("x"))
            .await
            .expect_error(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED");
    }
    r.get("/v2/app/manifests/v1").await.expect(StatusCode::OK);
    // The session of the read-write run is left alone and resumes once writable again.
    r.restart(RegistryConfig::default());
    r.get(&location).await.expect(StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn upload_sessions_survive_a_restart() {
    let mut r = Registry::new();
    let blob = data(500_000, 4);
    let location = r.start_upload("org/app").await;
    r.call(
        Method::PATCH,
        &location,
        &[("content-range", "0-199999")],
        blob[..200_000].to_vec(),
    )
    .await
    .expect(StatusCode::ACCEPTED);
    let doomed = r.start_upload("org/app").await;

    r.restart(RegistryConfig::default());
    let status = r.get(&location).await.expect(StatusCode::NO_CONTENT);
    assert_eq!(status.header("range"), "0-199999");
    r.get(&doomed).await.expect(StatusCode::NO_CONTENT);
    // Out of order after the restart is still a 416.
    r.call(
        Method::PATCH,
        &location,
        &[("content-range", "0-9")],
        blob[..10].to_vec(),
    )
    .await
    .expect(StatusCode::RANGE_NOT_SATISFIABLE);
    r.call(
        Method::PATCH,
        &location,
        &[("content-range", "200000-499999")],
        blob[200_000..].to_vec(),
    )
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
        .get(&format!("/v2/org/app/blobs/{digest}"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(&got.body[..], &blob[..]);

    // A restart with a zero expiry drops the idle session and its file.
    std::thread::sleep(Duration::from_millis(1100));
    r.restart(RegistryConfig {
        upload_expiry: Duration::ZERO,
        ..RegistryConfig::default()
    });
    r.get(&doomed)
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
async fn huge_headers_and_targets_are_refused() {
    let r = Registry::new();
    let big = "x".repeat(70 * 1024);
    r.call(Method::GET, "/v2/", &[("x-big", &big)], Body::empty())
        .await
        .expect(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let many: Vec<(String, String)> = (0..150).map(|i| (format!("x-h{i}"), "v".into())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    r.call(Method::GET, "/v2/", &many, Body::empty())
        .await
        .expect(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let tags: Vec<String> = (0..2000).map(|i| format!("tag=t{i}")).collect();
    let uri = format!(
        "/v2/app/manifests/{}?{}",
        Digest::sha256(b"x"),
        tags.join("&")
    );
    r.call(Method::PUT, &uri, &[], Body::empty())
        .await
        .expect(StatusCode::URI_TOO_LONG);
}
