use airlock_registry::{AccessRule, Action, AuthSettings};
use airlock_store::Digest;
use axum::{
    body::Body,
    http::{Method, StatusCode},
};
use base64::{Engine, engine::general_purpose::STANDARD};

use crate::support::{OCI_CONFIG, OCI_MANIFEST, Registry, Resp, descriptor, image_manifest};

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

/// ops pushes everything; dave may pull `docker.io/acme/**`, eve `acme/**`.
fn access(dir: &std::path::Path) -> AuthSettings {
    let hash = |p: &str| bcrypt::hash(p, 4).unwrap();
    let htpasswd = dir.join("htpasswd");
    std::fs::write(
        &htpasswd,
        format!(
            "ops:{}\ndave:{}\neve:{}\n",
            hash("ops-pw"),
            hash("dave-pw"),
            hash("eve-pw")
        ),
    )
    .unwrap();
    let rule = |repositories: &str, user: &str, action: Action| AccessRule {
        repositories: vec![repositories.into()],
        users: vec![user.into()],
        actions: vec![action],
        ..AccessRule::default()
    };
    AuthSettings {
        htpasswd: Some(htpasswd),
        rules: vec![
            rule("**", "ops", Action::Push),
            rule("docker.io/acme/**", "dave", Action::Pull),
            rule("acme/**", "eve", Action::Pull),
        ],
        ..AuthSettings::default()
    }
}

fn basic(user: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{user}-pw")))
}

/// `GET` as `user` (anonymous without one).
async fn get_as(r: &Registry, uri: &str, user: Option<&str>) -> Resp {
    let authorization = user.map(basic);
    let mut headers = vec![("host", "registry.test:5000")];
    if let Some(a) = &authorization {
        headers.push(("authorization", a));
    }
    r.call(Method::GET, uri, &headers, Body::empty()).await
}

/// Pushes a config-only image as ops.
async fn push_as_ops(r: &Registry, repo: &str, tag: &str, seed: u64) -> Vec<u8> {
    let ops = basic("ops");
    let config = format!(r#"{{"os":"linux","seed":{seed}}}"#).into_bytes();
    let digest = Digest::sha256(&config);
    let len = config.len().to_string();
    r.call(
        Method::POST,
        &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
        &[("authorization", &ops), ("content-length", &len)],
        config.clone(),
    )
    .await
    .expect(StatusCode::CREATED);
    let manifest = image_manifest(Some(OCI_MANIFEST), descriptor(OCI_CONFIG, &config), vec![]);
    let len = manifest.len().to_string();
    r.call(
        Method::PUT,
        &format!("/v2/{repo}/manifests/{tag}"),
        &[
            ("authorization", &ops),
            ("content-type", OCI_MANIFEST),
            ("content-length", &len),
        ],
        manifest.clone(),
    )
    .await
    .expect(StatusCode::CREATED);
    manifest
}

#[tokio::test]
async fn issue_15_access_rules_apply_to_the_repository_read() {
    let files = tempfile::tempdir().unwrap();
    let r = Registry::with_auth(access(files.path()), "0.0.0.0:5000");
    let added = push_as_ops(&r, "docker.io/acme/gateway", "1", 1).await;
    // The short path reads docker.io/acme/gateway, and is checked and challenged as it.
    let resp = get_as(&r, "/v2/acme/gateway/manifests/1", Some("dave"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(&resp.body[..], &added[..]);
    get_as(&r, "/v2/acme/gateway/manifests/1", Some("eve"))
        .await
        .expect_error(StatusCode::FORBIDDEN, "DENIED");
    let resp = get_as(&r, "/v2/acme/gateway/manifests/1", None)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    assert!(
        resp.header("www-authenticate")
            .contains("scope=\"repository:docker.io/acme/gateway:pull\""),
        "{resp:?}"
    );
    // A name nothing is stored under is challenged as asked.
    let resp = get_as(&r, "/v2/other/app/manifests/1", None)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    assert!(
        resp.header("www-authenticate")
            .contains("scope=\"repository:other/app:pull\""),
        "{resp:?}"
    );

    // Ambiguous only to who may pull the name asked: dave is refused it, eve told both names.
    let files = tempfile::tempdir().unwrap();
    let r = Registry::with_auth(access(files.path()), "0.0.0.0:5000");
    push_as_ops(&r, "acme/gateway", "0", 2).await;
    push_as_ops(&r, "docker.io/acme/gateway", "1", 1).await;
    get_as(&r, "/v2/acme/gateway/manifests/1", Some("dave"))
        .await
        .expect_error(StatusCode::FORBIDDEN, "DENIED");
    get_as(&r, "/v2/acme/gateway/manifests/1", None)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    let resp = get_as(&r, "/v2/acme/gateway/manifests/1", Some("eve"))
        .await
        .expect_error(StatusCode::NOT_FOUND, "NAME_UNKNOWN");
    assert!(
        resp.json()["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("acme/gateway and docker.io/acme/gateway")),
        "{resp:?}"
    );
    get_as(&r, "/v2/docker.io/acme/gateway/manifests/1", Some("dave"))
        .await
        .expect(StatusCode::OK);
}
