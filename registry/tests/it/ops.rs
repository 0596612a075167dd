//! Issue 15: health and readiness endpoints, and the Prometheus metrics scraped from their own
//! listener after pushes and pulls on a real server on 127.0.0.1.

use std::{io::Write, net::SocketAddr, time::Duration};

use airlock_registry::{
    AppState, AuthSettings, ImportPhase, METRICS_PATH, RegistryConfig, serve, serve_metrics,
};
use airlock_store::{Digest, Materialize, PutOptions, RepoChange, Store, StoreOptions};
use axum::http::{Method, Request, StatusCode, header};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use tokio::{net::TcpListener, sync::oneshot};

use crate::support::{Registry, data};

/// The value of the sample `series` (name and labels exactly as printed) in a scrape.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// `sample`, 0 when the series is absent (a labelled counter appears at its first event).
fn value(text: &str, series: &str) -> f64 {
    sample(text, series).unwrap_or(0.0)
}

struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Http {
    fn new() -> Http {
        Http {
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    async fn call(
        &self,
        method: Method,
        url: String,
        body: Vec<u8>,
    ) -> (StatusCode, hyper::HeaderMap, Bytes) {
        let request = Request::builder()
            .method(method)
            .uri(url)
            .body(Full::new(Bytes::from(body)))
            .expect("request");
        let resp = self.client.request(request).await.expect("response");
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        (parts.status, parts.headers, body)
    }

    async fn get(&self, addr: SocketAddr, path: &str) -> (StatusCode, hyper::HeaderMap, Bytes) {
        self.call(Method::GET, format!("http://{addr}{path}"), Vec::new())
            .await
    }

    async fn scrape(&self, addr: SocketAddr) -> String {
        let (status, headers, body) = self.get(addr, METRICS_PATH).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/plain; version=0.0.4"),
            "{headers:?}"
        );
        String::from_utf8(body.to_vec()).expect("utf-8")
    }
}

/// A gzip layer the store keeps as chunks of its content plus a script (rebuilt when read).
fn gzip_layer() -> Vec<u8> {
    let mut plain = Vec::new();
    for i in 0..8u64 {
        plain.extend(data(50_000, i));
        plain.extend(format!("line {i} of a text file\n").repeat(2000).bytes());
    }
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(&plain).expect("gzip");
    e.finish().expect("gzip")
}

#[tokio::test]
async fn issue_15_health_is_outside_v2_and_readiness_waits_for_serve() {
    let r = Registry::new();
    let resp = r.get("/healthz").await.expect(StatusCode::OK);
    assert_eq!(&resp.body[..], b"ok\n");
    assert!(resp.header("content-type").starts_with("text/plain"));
    r.head("/healthz").await.expect(StatusCode::OK);
    // A router that no listener serves is not ready.
    let resp = r
        .get("/readyz")
        .await
        .expect(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(&resp.body[..], b"not ready: not serving\n");
    // Read-only registries answer them too: they are reads of no repository.
    let r = Registry::with_config(RegistryConfig {
        read_only: true,
        ..RegistryConfig::default()
    });
    r.get("/healthz").await.expect(StatusCode::OK);
}

#[tokio::test]
async fn issue_15_health_needs_no_credentials_where_v2_does() {
    let files = tempfile::tempdir().expect("tempdir");
    let htpasswd = files.path().join("htpasswd");
    let hash = bcrypt::hash("alice-pw", 4).expect("bcrypt");
    std::fs::write(&htpasswd, format!("alice:{hash}\n")).expect("htpasswd");
    let settings = AuthSettings {
        htpasswd: Some(htpasswd),
        ..AuthSettings::default()
    };
    let r = Registry::with_auth(settings, "0.0.0.0:5000");
    r.get("/v2/").await.expect(StatusCode::UNAUTHORIZED);
    r.get("/healthz").await.expect(StatusCode::OK);
    // Not ready only because no listener serves this router: never 401.
    r.get("/readyz")
        .await
        .expect(StatusCode::SERVICE_UNAVAILABLE);
    let text = r.state().metrics().encode();
    let series = |endpoint: &str, status: u16| {
        format!("airlock_http_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}}")
    };
    assert_eq!(sample(&text, &series("base", 401)), Some(1.0), "{text}");
    assert_eq!(sample(&text, &series("health", 200)), Some(1.0), "{text}");
    assert_eq!(sample(&text, &series("health", 503)), Some(1.0), "{text}");
}

#[tokio::test]
async fn issue_15_import_progress_gauges() {
    let r = Registry::new();
    let metrics = r.state().metrics().clone();
    let text = metrics.encode();
    assert_eq!(sample(&text, "airlock_import_running"), Some(0.0));
    assert!(!text.contains("phase="), "{text}");
    metrics.import_progress(ImportPhase::Read, 10, 100);
    metrics.import_progress(ImportPhase::Verify, 0, 40);
    metrics.import_progress(ImportPhase::Read, 60, 100);
    let text = metrics.encode();
    assert_eq!(sample(&text, "airlock_import_running"), Some(1.0));
    let done = |phase| format!("airlock_import_done_bytes{{phase=\"{phase}\"}}");
    let total = |phase| format!("airlock_import_total_bytes{{phase=\"{phase}\"}}");
    assert_eq!(sample(&text, &done("read")), Some(60.0), "{text}");
    assert_eq!(sample(&text, &total("read")), Some(100.0));
    assert_eq!(sample(&text, &done("verify")), Some(0.0));
    assert_eq!(sample(&text, &total("verify")), Some(40.0));
    metrics.import_finished();
    let text = metrics.encode();
    assert_eq!(sample(&text, "airlock_import_running"), Some(0.0));
    assert!(!text.contains("phase="), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_15_metrics_count_pushes_pulls_and_the_cache_on_a_live_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The cache is filled by pulls only, so the first pull misses and the second hits.
    let opts = StoreOptions {
        materialize: Materialize::Pull,
        ..StoreOptions::default()
    };
    let store = Store::open(dir.path(), opts).expect("store");
    let gz = gzip_layer();
    let layer = Digest::sha256(&gz);
    store
        .put_blob(&layer, &gz[..], PutOptions::default())
        .expect("put");
    store
        .apply_repo_changes(&[RepoChange::LinkBlob {
            repo: "opsrepo".into(),
            digest: layer.clone(),
        }])
        .expect("link");
    let state = AppState::new(store.clone(), RegistryConfig::default()).expect("state");
    let metrics = state.metrics().clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let metrics_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let metrics_addr = metrics_listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let (stop_metrics, metrics_stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, state, async move {
        let _ = stopped.await;
    }));
    let metrics_server = tokio::spawn(serve_metrics(metrics_listener, metrics, async move {
        let _ = metrics_stopped.await;
    }));
    let http = Http::new();

    let before = http.scrape(metrics_addr).await;
    let (status, _, body) = http.get(addr, "/readyz").await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"ready\n"[..]));
    let (status, _, _) = http.get(addr, "/healthz").await;
    assert_eq!(status, StatusCode::OK);
    // The metrics are not on the registry's listener, nor anything but /metrics on theirs.
    assert_eq!(http.get(addr, "/metrics").await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        http.get(metrics_addr, "/v2/").await.0,
        StatusCode::NOT_FOUND
    );

    // A push: a single POST of a blob large enough to be staged, and an open session.
    let blob = data(100_000, 15);
    let digest = Digest::sha256(&blob);
    let url = format!("http://{addr}/v2/opsrepo/blobs/uploads/?digest={digest}");
    let (status, _, _) = http.call(Method::POST, url, blob.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    let url = format!("http://{addr}/v2/opsrepo/blobs/uploads/");
    let (status, _, _) = http.call(Method::POST, url, Vec::new()).await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // Pulls: the pushed blob, the gzip layer twice (a miss that materializes it, then a hit),
    // and a path that is no endpoint.
    let (status, _, body) = http.get(addr, &format!("/v2/opsrepo/blobs/{digest}")).await;
    assert_eq!((status, body.len()), (StatusCode::OK, blob.len()));
    let layer_path = format!("/v2/opsrepo/blobs/{layer}");
    assert!(http.get(addr, &layer_path).await.2 == gz);
    while store.materializations_running() > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(http.get(addr, &layer_path).await.2 == gz);
    assert_eq!(
        http.get(addr, "/v2/opsrepo/nothing").await.0,
        StatusCode::NOT_FOUND
    );

    let after = http.scrape(metrics_addr).await;
    let moved = |series: &str| value(&after, series) - value(&before, series);
    let requests = |endpoint: &str, status: u16| {
        moved(&format!(
            "airlock_http_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}}"
        ))
    };
    assert_eq!(requests("blob", 200), 3.0, "{after}");
    assert_eq!(requests("upload", 201), 1.0, "{after}");
    assert_eq!(requests("upload", 202), 1.0, "{after}");
    assert_eq!(requests("health", 200), 2.0, "{after}");
    assert_eq!(requests("other", 404), 2.0, "{after}");
    let served = moved("airlock_http_response_bytes_total{endpoint=\"blob\"}");
    assert_eq!(served, (blob.len() + 2 * gz.len()) as f64, "{after}");
    assert_eq!(moved("airlock_blob_cache_hits_total"), 1.0, "{after}");
    assert_eq!(moved("airlock_blob_cache_misses_total"), 1.0, "{after}");
    assert_eq!(moved("airlock_blob_cache_materializations_total"), 1.0);
    assert_eq!(moved("airlock_blob_direct_rebuilds_total"), 0.0);
    let rebuild = "airlock_blob_rebuild_seconds_total{kind=\"materialization\"}";
    assert!(moved(rebuild) > 0.0, "{after}");
    assert_eq!(sample(&after, "airlock_upload_sessions"), Some(1.0));
    assert_eq!(sample(&after, "airlock_staged_blobs"), Some(1.0));
    assert_eq!(sample(&after, "airlock_staged_bytes"), Some(100_000.0));
    assert_eq!(sample(&after, "airlock_import_running"), Some(0.0));
    // Never a raw path: no repository name, no digest.
    assert!(
        !after.contains("opsrepo") && !after.contains(layer.hex()),
        "{after}"
    );

    let _ = stop.send(());
    let _ = stop_metrics.send(());
    server.await.expect("join").expect("serve");
    metrics_server.await.expect("join").expect("metrics");
}
