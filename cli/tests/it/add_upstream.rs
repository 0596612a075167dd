//! An upstream registry in this process: airlock's own registry behind a layer that wants a
//! Bearer token for every pull, issued anonymously by a token endpoint (Docker Hub's flow), on
//! plain HTTP over loopback (`--insecure`). Blob downloads are redirected to another origin
//! (`localhost` instead of `127.0.0.1`) that refuses requests carrying credentials, as a CDN
//! with signed URLs does.

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::Path,
    sync::{Arc, Mutex},
    thread::JoinHandle,
};

use airlock_conformance::{Blob, ImageBuilder, OCI_EMPTY, OCI_INDEX, Registry};
use airlock_registry::{AppState, RegistryConfig, router};
use airlock_store::{Access, Store, StoreOptions};
use axum::{
    Json, Router,
    extract::{Query, Request, State},
    http::{Method, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::json;
use tempfile::TempDir;

use crate::{
    common::{airlock, stderr, stdout},
    content::{add, ls, read_blob, tag_digest},
};

const TOKEN: &str = "let-me-in";

/// `user:pass`, as basic auth sends it.
const BASIC: &str = "Basic dXNlcjpwYXNz";

/// How the upstream guards pulls.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Auth {
    /// Anonymous Bearer tokens from `/token`.
    Token,
    /// Basic auth as `user:pass`.
    Basic,
}

#[derive(Clone)]
struct Guard {
    auth: Auth,
    realm: String,
    scopes: Arc<Mutex<Vec<String>>>,
    /// Answer 404 to the referrers API, as registries without it do.
    no_referrers: bool,
    /// Blob downloads are redirected here (another origin, as registries send them to a CDN).
    cdn: String,
    store: Store,
}

async fn guard(State(g): State<Guard>, req: Request, next: Next) -> Response {
    let pull = req.method() == Method::GET || req.method() == Method::HEAD;
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let wanted = match g.auth {
        Auth::Token => format!("Bearer {TOKEN}"),
        Auth::Basic => BASIC.to_owned(),
    };
    if !pull || auth == Some(wanted.as_str()) {
        let path = req.uri().path().to_owned();
        if g.no_referrers && path.contains("/referrers/") {
            return StatusCode::NOT_FOUND.into_response();
        }
        if pull && let Some((_, digest)) = path.split_once("/blobs/") {
            let location = format!("{}/cdn/{digest}?signature=abc", g.cdn);
            return (
                StatusCode::TEMPORARY_REDIRECT,
                [(header::LOCATION, location)],
            )
                .into_response();
        }
        return next.run(req).await;
    }
    if g.auth == Auth::Basic {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, r#"Basic realm="upstream-test""#)],
        )
            .into_response();
    }
    let challenge = format!(
        r#"Bearer realm="{}",service="upstream-test",scope="repository:team/app:pull""#,
        g.realm
    );
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, challenge)],
    )
        .into_response()
}

/// The "CDN": serves blobs by digest to requests that carry no credentials.
async fn cdn(
    State(g): State<Guard>,
    axum::extract::Path(digest): axum::extract::Path<String>,
    req: Request,
) -> Response {
    if req.headers().contains_key(header::AUTHORIZATION) {
        return (StatusCode::BAD_REQUEST, "credentials leaked to the CDN").into_response();
    }
    let Ok(d) = digest.parse() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match g.store.read_blob(&d) {
        Ok(bytes) => bytes.into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn token(State(g): State<Guard>, Query(q): Query<HashMap<String, String>>) -> Response {
    if q.get("service").map(String::as_str) != Some("upstream-test") {
        return StatusCode::BAD_REQUEST.into_response();
    }
    if let Ok(mut s) = g.scopes.lock() {
        s.push(q.get("scope").cloned().unwrap_or_default());
    }
    Json(json!({ "token": TOKEN })).into_response()
}

/// The upstream: a registry over its own store, pulls guarded by tokens.
pub(crate) struct Upstream {
    pub(crate) addr: SocketAddr,
    scopes: Arc<Mutex<Vec<String>>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    _data: TempDir,
}

impl Upstream {
    fn start() -> Upstream {
        Upstream::start_with(Auth::Token, false)
    }

    pub(crate) fn start_with(auth: Auth, no_referrers: bool) -> Upstream {
        let data = tempfile::tempdir().unwrap();
        let store = Store::open(data.path(), StoreOptions::default()).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let scopes = Arc::new(Mutex::new(Vec::new()));
        let g = Guard {
            auth,
            no_referrers,
            realm: format!("http://{addr}/token"),
            scopes: scopes.clone(),
            // localhost and 127.0.0.1 are different origins for the client.
            cdn: format!("http://localhost:{}", addr.port()),
            store: store.clone(),
        };
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let state = AppState::new(store, RegistryConfig::default()).unwrap();
                let registry =
                    router(state).layer(middleware::from_fn_with_state(g.clone(), guard));
                let app = Router::new()
                    .route("/token", get(token))
                    .route("/cdn/{digest}", get(cdn))
                    .with_state(g)
                    .merge(registry);
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stop.await;
                    })
                    .await
                    .unwrap();
            });
        });
        Upstream {
            addr,
            scopes,
            shutdown: Some(shutdown),
            thread: Some(thread),
            _data: data,
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A two-platform index (pushed as `team/app:v1`) and an SBOM referring to it.
pub(crate) struct Pushed {
    index: Blob,
    amd64: airlock_conformance::Image,
    pub(crate) arm64: airlock_conformance::Image,
    sbom: airlock_conformance::Image,
}

pub(crate) async fn push(base: &str) -> Pushed {
    let r = Registry::new(base);
    let amd64 = ImageBuilder::new().layers(2).layer_bytes(200_000).build();
    let arm64 = ImageBuilder::new().build();
    for (tag, img) in [("amd64", &amd64), ("arm64", &arm64)] {
        r.push_image("team/app", tag, img).await.unwrap();
    }
    let entry = |img: &airlock_conformance::Image, arch: &str| {
        let mut d = img.manifest.descriptor();
        d["platform"] = json!({"os": "linux", "architecture": arch});
        d
    };
    let index = Blob::json(
        OCI_INDEX,
        &json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry(&amd64, "amd64"), entry(&arm64, "arm64")]}),
    );
    r.push_manifest("team/app", "v1", &index).await.unwrap();
    let sbom = ImageBuilder::new()
        .artifact_type("application/vnd.example.sbom.v1")
        .config(Blob::new(OCI_EMPTY, b"{}".to_vec()))
        .subject(&index)
        .build();
    for b in sbom.blobs() {
        r.push_blob("team/app", b).await.unwrap();
    }
    r.push_manifest("team/app", &sbom.manifest.digest, &sbom.manifest)
        .await
        .unwrap();
    Pushed {
        index,
        amd64,
        arm64,
        sbom,
    }
}

fn open(data: &Path) -> Store {
    Store::open(
        data,
        StoreOptions {
            access: Access::ReadOnly,
            ..Default::default()
        },
    )
    .unwrap()
}

#[tokio::test]
async fn pull_with_anonymous_token_all_platforms_and_referrers() {
    let upstream = Upstream::start();
    let base = format!("http://{}", upstream.addr);
    let pushed = push(&base).await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let src = format!("docker://{}/team/app:v1", upstream.addr);
    let o = add(tmp.path(), &data, &["add", "--insecure", &src]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        upstream
            .scopes
            .lock()
            .unwrap()
            .iter()
            .any(|s| s == "repository:team/app:pull"),
        "a token was asked for the pull scope"
    );
    let repo = format!("127.0.0.1_{}/team/app", upstream.addr.port());
    let listed = ls(tmp.path(), &data);
    assert_eq!(
        tag_digest(&listed, &repo, "v1").as_deref(),
        Some(pushed.index.digest.as_str()),
        "{listed}"
    );
    for b in pushed
        .amd64
        .blobs()
        .chain(pushed.arm64.blobs())
        .chain(pushed.sbom.blobs())
        .chain([
            &pushed.amd64.manifest,
            &pushed.arm64.manifest,
            &pushed.index,
            &pushed.sbom.manifest,
        ])
    {
        assert_eq!(
            read_blob(&data, &b.digest),
            b.bytes,
            "{} byte-exact",
            b.digest
        );
    }
    {
        let store = open(&data);
        let refs = store
            .referrers(&repo, &pushed.index.digest.parse().unwrap())
            .unwrap();
        assert_eq!(refs.len(), 1, "the SBOM is a referrer of the index");
        assert_eq!(refs[0].0.to_string(), pushed.sbom.manifest.digest);
    }

    // Again: nothing to fetch, nothing changes.
    let o = add(tmp.path(), &data, &["add", "--insecure", &src]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("already present"), "{}", stdout(&o));

    // Served as a mirror: containerd asks for team/app with ns=<upstream host>.
    let store = Store::open(&data, StoreOptions::default()).unwrap();
    let state = AppState::new(store, RegistryConfig::default()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mirror = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, router(state)).await });
    let got = Registry::new(&format!("http://{mirror}"))
        .request(
            Method::GET,
            &format!("/v2/team/app/manifests/v1?ns={}", upstream.addr),
        )
        .header("accept", OCI_INDEX)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status, 200);
    assert_eq!(got.body, pushed.index.bytes);
    server.abort();
}

#[tokio::test]
/// Issue 17 changed `--platform`: the index is kept and tagged as published, with only the
/// chosen platform's manifest (earlier, that manifest alone was tagged).
async fn pull_one_platform_keeps_the_index_exact_with_that_platform_only() {
    let upstream = Upstream::start();
    let pushed = push(&format!("http://{}", upstream.addr)).await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let src = format!("docker://{}/team/app:v1", upstream.addr);
    let o = add(
        tmp.path(),
        &data,
        &[
            "add",
            "--insecure",
            "--platform",
            "linux/arm64",
            &src,
            "--as",
            "mirror/app:arm",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let listed = ls(tmp.path(), &data);
    assert_eq!(
        tag_digest(&listed, "mirror/app", "arm").as_deref(),
        Some(pushed.index.digest.as_str())
    );
    let store = open(&data);
    for l in &pushed.amd64.layers {
        assert!(
            !store.has_blob(&l.digest.parse().unwrap()).unwrap(),
            "other platforms are not fetched"
        );
    }
    for b in [&pushed.index, &pushed.arm64.manifest, &pushed.arm64.config] {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut store.open_blob(&b.digest.parse().unwrap()).unwrap(),
            &mut bytes,
        )
        .unwrap();
        assert_eq!(bytes, b.bytes, "{} exact", b.digest);
    }
    assert!(
        store
            .verify(airlock_store::Verify::Quick)
            .unwrap()
            .is_clean()
    );
    drop(store);
    let text = stdout(&airlock(
        tmp.path(),
        &["--data", data.to_str().unwrap(), "ls"],
    ));
    assert!(text.contains("linux/arm64 of 2 platforms"), "{text}");
    let o = add(
        tmp.path(),
        &data,
        &[
            "add",
            "--insecure",
            "--platform",
            "linux/s390x",
            &src,
            "--as",
            "mirror/app:z",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("linux/arm64"),
        "lists what there is: {}",
        stderr(&o)
    );
}

#[tokio::test]
async fn pull_by_digest_needs_a_tag_and_unknown_images_are_named() {
    let upstream = Upstream::start();
    let pushed = push(&format!("http://{}", upstream.addr)).await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let by_digest = format!(
        "docker://{}/team/app@{}",
        upstream.addr, pushed.arm64.manifest.digest
    );
    let o = add(tmp.path(), &data, &["add", "--insecure", &by_digest]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("needs a tag"), "{}", stderr(&o));
    let o = add(
        tmp.path(),
        &data,
        &["add", "--insecure", &by_digest, "--as", "pinned/app:1"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let missing = format!("docker://{}/team/app:nope", upstream.addr);
    let o = add(tmp.path(), &data, &["add", "--insecure", &missing]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not found"), "{}", stderr(&o));
}

#[tokio::test]
async fn basic_auth_from_flags_or_docker_config() {
    let upstream = Upstream::start_with(Auth::Basic, false);
    let pushed = push(&format!("http://{}", upstream.addr)).await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let src = format!("docker://{}/team/app:arm64", upstream.addr);
    let run = |extra: &[&str], docker_config: Option<&Path>, stdin: &[u8]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_airlock"));
        cmd.args(["--data", data.to_str().unwrap(), "add", "--insecure", &src])
            .args(extra)
            .current_dir(tmp.path())
            .env_remove("AIRLOCK_DATA")
            .env("HOME", tmp.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        match docker_config {
            Some(d) => cmd.env("DOCKER_CONFIG", d),
            None => cmd.env_remove("DOCKER_CONFIG"),
        };
        let mut child = cmd.spawn().unwrap();
        use std::io::Write as _;
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    };
    let o = run(&[], None, b"");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--password-stdin"), "{}", stderr(&o));
    let o = run(
        &["--username", "user", "--password-stdin"],
        None,
        b"wrong\n",
    );
    assert_eq!(o.status.code(), Some(2), "a wrong password fails");
    let o = run(&["--username", "user", "--password-stdin"], None, b"pass\n");
    assert!(o.status.success(), "{}", stderr(&o));
    let repo = format!("127.0.0.1_{}/team/app", upstream.addr.port());
    assert_eq!(
        tag_digest(&ls(tmp.path(), &data), &repo, "arm64").as_deref(),
        Some(pushed.arm64.manifest.digest.as_str())
    );
    let config = tmp.path().join("docker");
    crate::content::write(
        &config.join("config.json"),
        json!({"auths": {upstream.addr.to_string(): {"auth": "dXNlcjpwYXNz"}}})
            .to_string()
            .as_bytes(),
    );
    let o = run(&["--as", "from/config:1"], Some(&config), b"");
    assert!(o.status.success(), "{}", stderr(&o));
}

#[tokio::test]
async fn without_a_referrers_api_cosign_signature_tags_come_along() {
    let upstream = Upstream::start_with(Auth::Token, true);
    let base = format!("http://{}", upstream.addr);
    let r = Registry::new(&base);
    let image = ImageBuilder::new().build();
    r.push_image("team/app", "v1", &image).await.unwrap();
    let sig = ImageBuilder::new()
        .config(Blob::new(OCI_EMPTY, b"{}".to_vec()))
        .annotation("dev.cosignproject.cosign/signature", "MEUCIQ...")
        .build();
    let sig_tag = format!("{}.sig", image.manifest.digest.replacen(':', "-", 1));
    r.push_image("team/app", &sig_tag, &sig).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let src = format!("docker://{}/team/app:v1", upstream.addr);
    let o = add(
        tmp.path(),
        &data,
        &["add", "--insecure", &src, "--as", "signed/app"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let listed = ls(tmp.path(), &data);
    assert_eq!(
        tag_digest(&listed, "signed/app", "v1").as_deref(),
        Some(image.manifest.digest.as_str())
    );
    assert_eq!(
        tag_digest(&listed, "signed/app", &sig_tag).as_deref(),
        Some(sig.manifest.digest.as_str()),
        "{listed}"
    );
    assert_eq!(read_blob(&data, &sig.manifest.digest), sig.manifest.bytes);
}
