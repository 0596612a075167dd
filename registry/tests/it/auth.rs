//! Issue 16: accounts and access through the router: the safe default without accounts,
//! Basic credentials against access rules, the token flow, the catalog filtered by access, and
//! the mount fallback. (The audit log is checked on `airlock serve`'s output, in the cli tests:
//! a subscriber set per test thread misses events whose callsites other tests cached.)

use std::{collections::BTreeMap, path::Path};

use airlock_registry::{AccessRule, Action, AuthSettings, Challenge};
use axum::{
    body::Body,
    http::{Method, StatusCode},
};
use base64::{Engine, engine::general_purpose::STANDARD};

use crate::support::{OCI_MANIFEST, Registry, Resp};

/// alice may do everything under `apps/**`; bob (group `readers`) may pull `apps/*`; carol is
/// an account no rule names.
fn settings(dir: &Path, anonymous_pull: bool) -> AuthSettings {
    let hash = |p: &str| bcrypt::hash(p, 4).unwrap();
    let htpasswd = dir.join("htpasswd");
    std::fs::write(
        &htpasswd,
        format!(
            "alice:{}\nbob:{}\ncarol:{}\n",
            hash("alice-pw"),
            hash("bob-pw"),
            hash("carol-pw")
        ),
    )
    .unwrap();
    AuthSettings {
        htpasswd: Some(htpasswd),
        groups: BTreeMap::from([("readers".to_owned(), vec!["bob".to_owned()])]),
        rules: vec![
            AccessRule {
                repositories: vec!["apps/**".into()],
                users: vec!["alice".into()],
                actions: vec![Action::Push, Action::Delete],
                ..AccessRule::default()
            },
            AccessRule {
                repositories: vec!["apps/*".into()],
                groups: vec!["readers".into()],
                actions: vec![Action::Pull],
                ..AccessRule::default()
            },
        ],
        anonymous_pull,
        ..AuthSettings::default()
    }
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

async fn get_as(r: &Registry, uri: &str, authorization: &str) -> Resp {
    r.call(
        Method::GET,
        uri,
        &[
            ("authorization", authorization),
            ("host", "registry.test:5000"),
        ],
        Body::empty(),
    )
    .await
}

async fn call_as(r: &Registry, method: Method, uri: &str, authorization: &str) -> Resp {
    r.call(
        method,
        uri,
        &[("authorization", authorization), ("content-length", "0")],
        Body::empty(),
    )
    .await
}

/// A registry with accounts whose `apps/web:v1` and `apps/a/b:v1` alice pushed.
async fn with_images(anonymous_pull: bool) -> (Registry, tempfile::TempDir) {
    let files = tempfile::tempdir().unwrap();
    let r = Registry::with_auth(settings(files.path(), anonymous_pull), "0.0.0.0:5000");
    let alice = basic("alice", "alice-pw");
    for repo in ["apps/web", "apps/a/b"] {
        let config = br#"{"architecture":"amd64","os":"linux"}"#;
        let digest = airlock_store::Digest::sha256(config);
        r.call(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
            &[("authorization", &alice), ("content-length", "37")],
            config.to_vec(),
        )
        .await
        .expect(StatusCode::CREATED);
        let manifest = crate::support::image_manifest(
            Some(OCI_MANIFEST),
            crate::support::descriptor(crate::support::OCI_CONFIG, config),
            vec![],
        );
        let len = manifest.len().to_string();
        r.call(
            Method::PUT,
            &format!("/v2/{repo}/manifests/v1"),
            &[
                ("authorization", &alice),
                ("content-type", OCI_MANIFEST),
                ("content-length", &len),
            ],
            manifest,
        )
        .await
        .expect(StatusCode::CREATED);
    }
    (r, files)
}

#[tokio::test]
async fn issue_16_without_accounts_a_network_address_serves_pulls_only() {
    let r = Registry::with_auth(AuthSettings::default(), "0.0.0.0:5000");
    r.get("/v2/").await.expect(StatusCode::OK);
    let resp = r
        .call(
            Method::POST,
            "/v2/app/blobs/uploads/",
            &[("content-length", "0")],
            Body::empty(),
        )
        .await
        .expect_error(StatusCode::FORBIDDEN, "DENIED");
    let message = resp.json()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("auth.anonymous_write = true") && message.contains("0.0.0.0:5000"),
        "{message}"
    );
    r.delete("/v2/app/manifests/v1")
        .await
        .expect_error(StatusCode::FORBIDDEN, "DENIED");
    r.get("/v2/app/tags/list")
        .await
        .expect_error(StatusCode::NOT_FOUND, "NAME_UNKNOWN");
    // Opened explicitly, or on loopback, writes work.
    for (settings, listen) in [
        (
            AuthSettings {
                anonymous_write: true,
                ..AuthSettings::default()
            },
            "0.0.0.0:5000",
        ),
        (AuthSettings::default(), "127.0.0.1:5000"),
        (AuthSettings::default(), "[::1]:5000"),
    ] {
        let open = Registry::with_auth(settings, listen);
        open.push_image("app", "v1", 1).await;
    }
}

#[tokio::test]
async fn issue_16_basic_credentials_against_access_rules() {
    let (r, _files) = with_images(false).await;
    // Discovery: /v2/ asks anonymous clients to log in, with the token endpoint's realm.
    let resp = r
        .call(
            Method::GET,
            "/v2/",
            &[("host", "registry.test:5000")],
            Body::empty(),
        )
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    assert_eq!(
        resp.header("www-authenticate"),
        "Bearer realm=\"http://registry.test:5000/auth/token\",service=\"airlock\""
    );
    get_as(&r, "/v2/", &basic("bob", "bob-pw"))
        .await
        .expect(StatusCode::OK);
    get_as(&r, "/v2/", &basic("bob", "wrong"))
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    get_as(&r, "/v2/", "Digest abc")
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    // Pull: bob may pull apps/web, not apps/a/b; carol nothing; anonymous must log in.
    let bob = basic("bob", "bob-pw");
    get_as(&r, "/v2/apps/web/manifests/v1", &bob)
        .await
        .expect(StatusCode::OK);
    get_as(&r, "/v2/apps/a/b/manifests/v1", &bob)
        .await
        .expect_error(StatusCode::FORBIDDEN, "DENIED");
    get_as(&r, "/v2/apps/web/manifests/v1", &basic("carol", "carol-pw"))
        .await
        .expect_error(StatusCode::FORBIDDEN, "DENIED");
    let resp = r
        .get("/v2/apps/web/manifests/v1")
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    assert!(
        resp.header("www-authenticate")
            .ends_with(",scope=\"repository:apps/web:pull\""),
        "{resp:?}"
    );
    assert_eq!(
        resp.json()["errors"][0]["detail"],
        serde_json::json!([{"Type": "repository", "Name": "apps/web", "Action": "pull"}])
    );
    // Push and delete: denied to bob, allowed to alice.
    let upload = "/v2/apps/web/blobs/uploads/";
    let resp = call_as(&r, Method::POST, upload, &bob)
        .await
        .expect_error(StatusCode::FORBIDDEN, "DENIED");
    assert!(
        resp.json()["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("push on repository apps/web")
    );
    call_as(&r, Method::DELETE, "/v2/apps/web/manifests/v1", &bob)
        .await
        .expect_error(StatusCode::FORBIDDEN, "DENIED");
    let resp = r
        .call(
            Method::POST,
            upload,
            &[("content-length", "0")],
            Body::empty(),
        )
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    assert!(
        resp.header("www-authenticate")
            .ends_with(",scope=\"repository:apps/web:pull,push\"")
    );
    let alice = basic("alice", "alice-pw");
    call_as(&r, Method::POST, upload, &alice)
        .await
        .expect(StatusCode::ACCEPTED);
    // The catalog lists what the caller may pull.
    let catalog = |resp: Resp| resp.json()["repositories"].clone();
    assert_eq!(
        catalog(
            get_as(&r, "/v2/_catalog", &alice)
                .await
                .expect(StatusCode::OK)
        ),
        serde_json::json!(["apps/a/b", "apps/web"])
    );
    assert_eq!(
        catalog(
            get_as(&r, "/v2/_catalog", &bob)
                .await
                .expect(StatusCode::OK)
        ),
        serde_json::json!(["apps/web"])
    );
    assert_eq!(
        catalog(
            get_as(&r, "/v2/_catalog", &basic("carol", "carol-pw"))
                .await
                .expect(StatusCode::OK)
        ),
        serde_json::json!([])
    );
    r.get("/v2/_catalog")
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    call_as(&r, Method::DELETE, "/v2/apps/web/manifests/v1", &alice)
        .await
        .expect(StatusCode::ACCEPTED);
}

#[tokio::test]
async fn issue_16_anonymous_pull_when_configured() {
    let (r, _files) = with_images(true).await;
    r.get("/v2/apps/a/b/manifests/v1")
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        r.get("/v2/_catalog").await.expect(StatusCode::OK).json()["repositories"],
        serde_json::json!(["apps/a/b", "apps/web"])
    );
    r.call(
        Method::POST,
        "/v2/apps/web/blobs/uploads/",
        &[("content-length", "0")],
        Body::empty(),
    )
    .await
    .expect_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
}

/// Fetches a token for `scopes` with `authorization` (or none).
async fn token(r: &Registry, authorization: Option<&str>, scopes: &[&str]) -> Resp {
    let query: Vec<String> = scopes.iter().map(|s| format!("scope={s}")).collect();
    let uri = format!("/auth/token?service=airlock&{}", query.join("&"));
    let headers: Vec<(&str, &str)> = authorization
        .map(|a| vec![("authorization", a)])
        .unwrap_or_default();
    r.call(Method::GET, &uri, &headers, Body::empty()).await
}

fn bearer(resp: &Resp) -> String {
    let json = resp.json();
    assert_eq!(json["token"], json["access_token"]);
    assert_eq!(json["expires_in"], 300);
    assert!(json["issued_at"].as_str().unwrap().ends_with('Z'));
    format!("Bearer {}", json["token"].as_str().unwrap())
}

#[tokio::test]
async fn issue_16_token_flow_grants_scopes_and_refuses_other_repositories() {
    let (r, _files) = with_images(false).await;
    let bob = basic("bob", "bob-pw");
    let alice = basic("alice", "alice-pw");
    // bob asks for pull and push on apps/web and gets pull only.
    let t = bearer(
        &token(&r, Some(&bob), &["repository:apps/web:pull,push"])
            .await
            .expect(StatusCode::OK),
    );
    get_as(&r, "/v2/apps/web/manifests/v1", &t)
        .await
        .expect(StatusCode::OK);
    get_as(&r, "/v2/", &t).await.expect(StatusCode::OK);
    call_as(&r, Method::POST, "/v2/apps/web/blobs/uploads/", &t)
        .await
        .expect_error(StatusCode::FORBIDDEN, "DENIED");
    // alice's token for apps/web, used on apps/a/b: she may, so the client is told to fetch a
    // token for that scope; bob's on apps/a/b: he may not, so it is denied.
    let ta = bearer(
        &token(&r, Some(&alice), &["repository:apps/web:pull"])
            .await
            .expect(StatusCode::OK),
    );
    let resp = get_as(&r, "/v2/apps/a/b/manifests/v1", &ta)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    assert!(
        resp.header("www-authenticate")
            .ends_with(",scope=\"repository:apps/a/b:pull\",error=\"insufficient_scope\"")
    );
    get_as(&r, "/v2/apps/a/b/manifests/v1", &t)
        .await
        .expect_error(StatusCode::FORBIDDEN, "DENIED");
    // Push with a token granting it, in two scopes of one parameter (space-separated).
    let tp = bearer(
        &token(
            &r,
            Some(&alice),
            &["repository:apps/web:pull,push%20repository:apps/a/b:delete"],
        )
        .await
        .expect(StatusCode::OK),
    );
    call_as(&r, Method::POST, "/v2/apps/web/blobs/uploads/", &tp)
        .await
        .expect(StatusCode::ACCEPTED);
    call_as(&r, Method::DELETE, "/v2/apps/a/b/manifests/v1", &tp)
        .await
        .expect(StatusCode::ACCEPTED);
    // Anonymous tokens grant nothing without anonymous pull; bad credentials get no token.
    let anon = bearer(
        &token(&r, None, &["repository:apps/web:pull"])
            .await
            .expect(StatusCode::OK),
    );
    get_as(&r, "/v2/apps/web/manifests/v1", &anon)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    token(
        &r,
        Some(&basic("bob", "nope")),
        &["repository:apps/web:pull"],
    )
    .await
    .expect_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    // A forged or foreign token.
    let resp = get_as(&r, "/v2/apps/web/manifests/v1", "Bearer abc.def.ghi")
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    assert!(
        resp.header("www-authenticate")
            .contains("error=\"invalid_token\"")
    );
    // OAuth2's POST form, as containerd sends it.
    let form = "grant_type=password&username=bob&password=bob-pw&service=airlock\
                &scope=repository%3Aapps%2Fweb%3Apull&client_id=containerd";
    let len = form.len().to_string();
    let resp = r
        .call(
            Method::POST,
            "/auth/token",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("content-length", &len),
            ],
            form,
        )
        .await
        .expect(StatusCode::OK);
    get_as(&r, "/v2/apps/web/manifests/v1", &bearer(&resp))
        .await
        .expect(StatusCode::OK);
}

#[tokio::test]
async fn issue_16_basic_challenge_and_no_token_endpoint_without_accounts() {
    let files = tempfile::tempdir().unwrap();
    let settings = AuthSettings {
        challenge: Challenge::Basic,
        ..settings(files.path(), false)
    };
    let r = Registry::with_auth(settings, "0.0.0.0:5000");
    let resp = r
        .get("/v2/")
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    assert_eq!(resp.header("www-authenticate"), "Basic realm=\"airlock\"");
    let open = Registry::new();
    token(&open, None, &["repository:x:pull"])
        .await
        .expect_error(StatusCode::NOT_FOUND, "UNSUPPORTED");
}

#[tokio::test]
async fn issue_16_a_mount_from_an_unpullable_repository_becomes_an_upload() {
    let (r, _files) = with_images(false).await;
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let digest = airlock_store::Digest::sha256(config);
    let alice = basic("alice", "alice-pw");
    // alice may pull apps/web: mounted.
    call_as(
        &r,
        Method::POST,
        &format!("/v2/apps/new/blobs/uploads/?mount={digest}&from=apps/web"),
        &alice,
    )
    .await
    .expect(StatusCode::CREATED);
    // Give bob push on his own repository; he may not pull apps/a/b, so no mount.
    let files = tempfile::tempdir().unwrap();
    let mut s = settings(files.path(), false);
    s.rules.push(AccessRule {
        repositories: vec!["bob/*".into()],
        users: vec!["bob".into()],
        actions: vec![Action::Push],
        ..AccessRule::default()
    });
    s.rules.push(AccessRule {
        repositories: vec!["**".into()],
        users: vec!["alice".into()],
        actions: vec![Action::Push],
        ..AccessRule::default()
    });
    let r = Registry::with_auth(s, "0.0.0.0:5000");
    let alice = basic("alice", "alice-pw");
    r.call(
        Method::POST,
        &format!("/v2/secret/x/blobs/uploads/?digest={digest}"),
        &[("authorization", &alice), ("content-length", "37")],
        config.to_vec(),
    )
    .await
    .expect(StatusCode::CREATED);
    call_as(
        &r,
        Method::POST,
        &format!("/v2/bob/app/blobs/uploads/?mount={digest}&from=secret/x"),
        &basic("bob", "bob-pw"),
    )
    .await
    .expect(StatusCode::ACCEPTED);
}
