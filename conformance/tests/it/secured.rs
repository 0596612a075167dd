//! Issue 16: every check over HTTPS (a test CA), logged in with Basic credentials and with the
//! token flow, accounts made by apache2-utils' `htpasswd -B`; denied pulls, pushes and deletes;
//! a token for one repository refused on another.

use std::path::Path;

use airlock_conformance::{CHECKS, Conformance, ImageBuilder, Registry};
use airlock_registry::{AccessRule, Action, AuthSettings, Challenge};
use hyper::Method;

use crate::{
    server::{Secured, TestCa, TestServer},
    tools::htpasswd,
};

/// alice may push and delete everything; bob may pull `conformance/**`. `None` without
/// htpasswd (skipped loudly).
pub fn accounts(dir: &Path, challenge: Challenge) -> Option<AuthSettings> {
    let file = htpasswd(dir, &[("alice", "alice-pw"), ("bob", "bob-pw")])?;
    Some(AuthSettings {
        htpasswd: Some(file),
        rules: vec![
            AccessRule {
                repositories: vec!["**".into()],
                users: vec!["alice".into()],
                actions: vec![Action::Push, Action::Delete],
                ..AccessRule::default()
            },
            AccessRule {
                repositories: vec!["conformance/**".into()],
                users: vec!["bob".into()],
                actions: vec![Action::Pull],
                ..AccessRule::default()
            },
        ],
        challenge,
        ..AuthSettings::default()
    })
}

/// A registry with those accounts over HTTPS, and the CA's PEM.
pub fn secured(dir: &Path, challenge: Challenge) -> Option<(TestServer, Vec<u8>)> {
    let auth = accounts(dir, challenge)?;
    let ca = TestCa::new();
    let tls = ca.write(dir);
    let server = TestServer::start_secured(Secured {
        auth: Some(auth),
        tls: Some(tls),
    });
    Some((server, ca.pem().into_bytes()))
}

async fn run_all(checks: Conformance) {
    let results = checks.run_all().await;
    assert_eq!(results.len(), CHECKS.len());
    let failures: Vec<String> = results
        .into_iter()
        .filter_map(|(_, result)| result.err().map(|f| f.to_string()))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn issue_16_every_check_passes_over_tls_with_basic_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let Some((server, ca)) = secured(dir.path(), Challenge::Basic) else {
        return;
    };
    assert!(server.base.starts_with("https://"));
    let registry = Registry::new(&server.base)
        .with_ca(&ca)
        .unwrap()
        .with_basic("alice", "alice-pw");
    run_all(Conformance::new(&server.base).with_registry(registry)).await;
}

#[tokio::test]
async fn issue_16_every_check_passes_over_tls_with_the_token_flow() {
    let dir = tempfile::tempdir().unwrap();
    let Some((server, ca)) = secured(dir.path(), Challenge::Bearer) else {
        return;
    };
    let registry = Registry::new(&server.base)
        .with_ca(&ca)
        .unwrap()
        .with_token_flow(Some(("alice", "alice-pw")));
    run_all(Conformance::new(&server.base).with_registry(registry)).await;
}

/// A token from the registry's token endpoint for `scope`, fetched as `user`.
async fn token(anonymous: &Registry, user: &str, password: &str, scope: &str) -> String {
    let credentials = base64_basic(user, password);
    let resp = anonymous
        .request(
            Method::GET,
            &format!("/auth/token?service=airlock&scope={scope}"),
        )
        .header("authorization", &credentials)
        .send()
        .await
        .unwrap()
        .expect(&[200])
        .unwrap();
    let token = resp.json().unwrap()["token"].as_str().unwrap().to_owned();
    format!("Bearer {token}")
}

fn base64_basic(user: &str, password: &str) -> String {
    // The client's own Basic login is not reachable here: build the header by hand.
    let text = format!("{user}:{password}");
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in text.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}

#[tokio::test]
async fn issue_16_denied_actions_and_a_token_for_another_repository() {
    let dir = tempfile::tempdir().unwrap();
    let Some((server, ca)) = secured(dir.path(), Challenge::Bearer) else {
        return;
    };
    let alice = Registry::new(&server.base)
        .with_ca(&ca)
        .unwrap()
        .with_basic("alice", "alice-pw");
    let image = ImageBuilder::new().layers(1).build();
    for repo in ["conformance/a", "conformance/b", "private/x"] {
        alice.push_image(repo, "v1", &image).await.unwrap();
    }
    let bob = Registry::new(&server.base)
        .with_ca(&ca)
        .unwrap()
        .with_basic("bob", "bob-pw");
    let anonymous = Registry::new(&server.base).with_ca(&ca).unwrap();
    let layer = &image.layers[0];
    // Pull: bob may pull conformance/*, not private/x; nobody anonymously.
    bob.pull_blob("conformance/a", layer).await.unwrap();
    let status = |r: &Registry, method: Method, path: String| {
        let r = r.clone();
        async move { r.request(method, &path).send().await.unwrap() }
    };
    let denied = status(&bob, Method::GET, "/v2/private/x/manifests/v1".into()).await;
    denied
        .expect_error(&[403], "DENIED", airlock_conformance::Optional::Require)
        .unwrap();
    let anon = status(
        &anonymous,
        Method::GET,
        "/v2/conformance/a/manifests/v1".into(),
    )
    .await;
    assert!(
        anon.header("www-authenticate")
            .unwrap()
            .starts_with("Bearer realm=\"https://")
    );
    anon.expect_error(
        &[401],
        "UNAUTHORIZED",
        airlock_conformance::Optional::Require,
    )
    .unwrap();
    // Push and delete: denied to bob.
    let push = status(
        &bob,
        Method::POST,
        "/v2/conformance/a/blobs/uploads/".into(),
    )
    .await;
    push.expect_error(&[403], "DENIED", airlock_conformance::Optional::Require)
        .unwrap();
    let delete = status(
        &bob,
        Method::DELETE,
        "/v2/conformance/a/manifests/v1".into(),
    )
    .await;
    delete
        .expect_error(&[403], "DENIED", airlock_conformance::Optional::Require)
        .unwrap();
    // A token for conformance/a: good there, refused on private/x (403: bob may not) and on
    // conformance/b (401 insufficient_scope: bob may, with a token for it).
    let t = token(&anonymous, "bob", "bob-pw", "repository:conformance/a:pull").await;
    let get = |path: &'static str| {
        let (anonymous, t) = (anonymous.clone(), t.clone());
        async move {
            anonymous
                .request(Method::GET, path)
                .header("authorization", &t)
                .send()
                .await
                .unwrap()
        }
    };
    get("/v2/conformance/a/manifests/v1")
        .await
        .expect(&[200])
        .unwrap();
    get("/v2/private/x/manifests/v1")
        .await
        .expect_error(&[403], "DENIED", airlock_conformance::Optional::Require)
        .unwrap();
    let other = get("/v2/conformance/b/manifests/v1").await;
    assert!(
        other
            .header("www-authenticate")
            .unwrap()
            .contains("error=\"insufficient_scope\"")
    );
    other
        .expect_error(
            &[401],
            "UNAUTHORIZED",
            airlock_conformance::Optional::Require,
        )
        .unwrap();
}
