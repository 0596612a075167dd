use airlock_store::Digest;
use axum::{
    body::Body,
    http::{Method, StatusCode},
};

use crate::support::{Registry, Resp};

async fn catalog(r: &Registry) -> Vec<String> {
    let resp = r.get("/v2/_catalog").await.expect(StatusCode::OK);
    serde_json::from_value(resp.json()["repositories"].clone()).expect("repositories")
}

async fn manifest(r: &Registry, path: &str) -> Resp {
    r.get(&format!("/v2/{path}")).await
}

#[tokio::test]
async fn issue_15_a_direct_pull_by_the_short_path_reads_the_docker_io_repository() {
    let r = Registry::new();
    // What `airlock add` stores for `acme/gateway:1.0.0` and `nginx:1.27`.
    let gateway = r.push_image("docker.io/acme/gateway", "1.0.0", 1).await;
    let nginx = r.push_image("docker.io/library/nginx", "1.27", 2).await;
    for path in [
        "acme/gateway/manifests/1.0.0",
        "docker.io/acme/gateway/manifests/1.0.0",
        "index.docker.io/acme/gateway/manifests/1.0.0",
        "acme/gateway/manifests/1.0.0?ns=docker.io",
    ] {
        let resp = manifest(&r, path).await.expect(StatusCode::OK);
        assert_eq!(&resp.body[..], &gateway.manifest[..], "{path}");
        assert_eq!(
            resp.header("docker-content-digest"),
            gateway.digest.to_string()
        );
    }
    for path in [
        "nginx/manifests/1.27",
        "library/nginx/manifests/1.27",
        "docker.io/library/nginx/manifests/1.27",
    ] {
        let resp = manifest(&r, path).await.expect(StatusCode::OK);
        assert_eq!(&resp.body[..], &nginx.manifest[..], "{path}");
    }
    // Blobs, by digest too, and the tag list.
    let layer = Digest::sha256(&gateway.layer);
    let resp = r
        .get(&format!("/v2/acme/gateway/blobs/{layer}"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(&resp.body[..], &gateway.layer[..]);
    r.head(&format!("/v2/acme/gateway/manifests/{}", gateway.digest))
        .await
        .expect(StatusCode::OK);
    let tags = r
        .get("/v2/acme/gateway/tags/list")
        .await
        .expect(StatusCode::OK);
    assert_eq!(tags.json()["tags"], serde_json::json!(["1.0.0"]));
    // A mirror request names its repository exactly, as before: no rule applies to it.
    let resp = manifest(&r, "acme/gateway/manifests/1.0.0?ns=docker.io")
        .await
        .expect(StatusCode::OK);
    assert_eq!(resp.header("oci-namespace"), "docker.io");
    manifest(&r, "acme/gateway/manifests/1.0.0?ns=quay.io")
        .await
        .expect_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    // Another registry's image is not on Docker Hub.
    r.push_image("ghcr.io/org/app", "1", 3).await;
    manifest(&r, "org/app/manifests/1")
        .await
        .expect_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    manifest(&r, "ghcr.io/org/app/manifests/1")
        .await
        .expect(StatusCode::OK);
    r.get("/v2/org/app/tags/list")
        .await
        .expect_error(StatusCode::NOT_FOUND, "NAME_UNKNOWN");
}

#[tokio::test]
async fn issue_15_a_push_goes_where_a_pull_of_its_path_reads() {
    let r = Registry::new();
    let added = r.push_image("docker.io/acme/gateway", "1.0.0", 1).await;
    // Pushed by its short path: into the added repository, so both versions pull either way.
    let pushed = r.push_image("acme/gateway", "1.0.1", 2).await;
    assert_eq!(catalog(&r).await, ["docker.io/acme/gateway"]);
    for (tag, image) in [("1.0.0", &added), ("1.0.1", &pushed)] {
        for path in [
            format!("acme/gateway/manifests/{tag}"),
            format!("acme/gateway/manifests/{tag}?ns=docker.io"),
        ] {
            let resp = manifest(&r, &path).await.expect(StatusCode::OK);
            assert_eq!(&resp.body[..], &image.manifest[..], "{path}");
        }
    }
    // A new path is stored as pushed, as distribution does, and pulls back by it.
    let app = r.push_image("cli/app", "v1", 3).await;
    assert_eq!(catalog(&r).await, ["cli/app", "docker.io/acme/gateway"]);
    let resp = manifest(&r, "cli/app/manifests/v1")
        .await
        .expect(StatusCode::OK);
    assert_eq!(&resp.body[..], &app.manifest[..]);
    manifest(&r, "docker.io/cli/app/manifests/v1")
        .await
        .expect_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    // A session started under the short path goes on under it.
    let location = r.start_upload("acme/gateway").await;
    assert!(
        location.starts_with("/v2/docker.io/acme/gateway/blobs/uploads/"),
        "{location}"
    );
    let data = b"chunk".to_vec();
    let digest = Digest::sha256(&data);
    r.call(
        Method::PUT,
        &format!("{location}?digest={digest}"),
        &[("content-length", "5")],
        data,
    )
    .await
    .expect(StatusCode::CREATED);
    r.head(&format!("/v2/acme/gateway/blobs/{digest}"))
        .await
        .expect(StatusCode::OK);
}

#[tokio::test]
async fn issue_15_a_path_of_two_repositories_is_refused_naming_both() {
    let r = Registry::new();
    // Pushed as acme/gateway first, then added (or pushed) under its full name.
    let pushed = r.push_image("acme/gateway", "1", 1).await;
    let added = r.push_image("docker.io/acme/gateway", "2", 2).await;
    assert_eq!(
        catalog(&r).await,
        ["acme/gateway", "docker.io/acme/gateway"]
    );
    for path in [
        "acme/gateway/manifests/1",
        "acme/gateway/tags/list",
        &format!("acme/gateway/blobs/{}", Digest::sha256(&pushed.layer)),
    ] {
        let resp = manifest(&r, path)
            .await
            .expect_error(StatusCode::NOT_FOUND, "NAME_UNKNOWN");
        let error = &resp.json()["errors"][0];
        let message = error["message"].as_str().expect("message");
        assert!(
            message.contains("acme/gateway and docker.io/acme/gateway"),
            "{message}"
        );
        assert_eq!(
            error["detail"]["repositories"],
            serde_json::json!(["acme/gateway", "docker.io/acme/gateway"])
        );
    }
    // Writes are refused the same way: neither repository is picked.
    let resp = r
        .put_manifest(
            "acme/gateway",
            "3",
            crate::support::OCI_MANIFEST,
            &pushed.manifest,
        )
        .await
        .expect_error(StatusCode::NOT_FOUND, "NAME_UNKNOWN");
    assert!(
        resp.json()["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("docker.io/acme/gateway"))
    );
    // The full name and the mirror request are not ambiguous.
    for path in [
        "docker.io/acme/gateway/manifests/2",
        "acme/gateway/manifests/2?ns=docker.io",
    ] {
        let resp = manifest(&r, path).await.expect(StatusCode::OK);
        assert_eq!(&resp.body[..], &added.manifest[..], "{path}");
    }
    // A mount from the ambiguous path cannot be made: it falls back to an upload session.
    let layer = Digest::sha256(&pushed.layer);
    r.call(
        Method::POST,
        &format!("/v2/other/app/blobs/uploads/?mount={layer}&from=acme/gateway"),
        &[("content-length", "0")],
        Body::empty(),
    )
    .await
    .expect(StatusCode::ACCEPTED);
    // From the full name it is mounted.
    r.call(
        Method::POST,
        &format!(
            "/v2/other/app/blobs/uploads/?mount={}&from=docker.io/acme/gateway",
            Digest::sha256(&added.layer)
        ),
        &[("content-length", "0")],
        Body::empty(),
    )
    .await
    .expect(StatusCode::CREATED);
}
