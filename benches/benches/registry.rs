//! Registry push and pull throughput over loopback HTTP, against a baseline server run in the
//! same process: a blob-per-file server (what a registry that stores whole blobs does) that
//! streams a pushed body to a file while hashing it, and streams a file back on GET.
//!
//! Workload: four distinct rootfs-like tars of about 34 MB each. Push: each blob in one
//! monolithic upload (POST, then PUT with the body), one after another. Pull: 8 concurrent
//! GETs, each of a whole blob, 32 in all. Figures are printed as MB/s and ratios to the
//! baseline; criterion then times one pull and one push of a single blob.

use std::{
    convert::Infallible,
    net::SocketAddr,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use airlock_benches::data::Rootfs;
use airlock_registry::{AppState, RegistryConfig};
use airlock_store::{Digest, Store, StoreOptions};
use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::{Request, StatusCode};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use sha2::Digest as _;
use tokio::io::AsyncWriteExt;

type Body = BoxBody<Bytes, Infallible>;
type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Body>;

const BLOBS: usize = 4;
const PULLS: usize = 32;
const CONCURRENCY: usize = 8;

fn full(b: Bytes) -> Body {
    Full::new(b).boxed()
}

/// Sends a request and drains the response body, returning status, Location and body length.
async fn send(client: &HttpClient, req: Request<Body>) -> (StatusCode, Option<String>, u64) {
    let resp = client.request(req).await.expect("request");
    let status = resp.status();
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut body = resp.into_body();
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("body").into_data() {
            n += data.len() as u64;
        }
    }
    (status, location, n)
}

/// A monolithic push to airlock: POST for a session, PUT the body with the digest.
async fn push_airlock(client: &HttpClient, base: &str, blob: &Bytes, digest: &Digest) {
    let req = Request::post(format!("{base}/v2/bench/blobs/uploads/"))
        .body(full(Bytes::new()))
        .expect("request");
    let (status, location, _) = send(client, req).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let location = location.expect("Location");
    let url = if location.starts_with("http") {
        location
    } else {
        format!("{base}{location}")
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let req = Request::put(format!("{url}{sep}digest={digest}"))
        .header("content-type", "application/octet-stream")
        .body(full(blob.clone()))
        .expect("request");
    let (status, _, _) = send(client, req).await;
    assert_eq!(status, StatusCode::CREATED);
}

async fn push_baseline(client: &HttpClient, base: &str, i: usize, blob: &Bytes) {
    let req = Request::put(format!("{base}/blob/{i}"))
        .body(full(blob.clone()))
        .expect("request");
    let (status, _, _) = send(client, req).await;
    assert_eq!(status, StatusCode::CREATED);
}

async fn pull(client: &HttpClient, url: String, expect: u64) {
    let req = Request::get(url).body(full(Bytes::new())).expect("request");
    let (status, _, n) = send(client, req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(n, expect);
}

/// The baseline: PUT /blob/N streams to a file (hashing, then fsync); GET /blob/N streams it.
async fn baseline_server(dir: PathBuf) -> SocketAddr {
    use axum::{
        Router,
        body::Body as AxBody,
        extract::{Path, State},
        routing::put,
    };
    async fn put_blob(
        State(dir): State<Arc<PathBuf>>,
        Path(i): Path<usize>,
        body: AxBody,
    ) -> StatusCode {
        let mut f = tokio::fs::File::create(dir.join(i.to_string()))
            .await
            .expect("create");
        let mut h = sha2::Sha256::new();
        let mut s = body.into_data_stream();
        while let Some(chunk) = s.next().await {
            let chunk = chunk.expect("body");
            h.update(&chunk);
            f.write_all(&chunk).await.expect("write");
        }
        f.sync_all().await.expect("sync");
        std::hint::black_box(h.finalize());
        StatusCode::CREATED
    }
    async fn get_blob(State(dir): State<Arc<PathBuf>>, Path(i): Path<usize>) -> AxBody {
        let f = tokio::fs::File::open(dir.join(i.to_string()))
            .await
            .expect("open");
        let stream = tokio_util::io::ReaderStream::with_capacity(f, 256 * 1024);
        AxBody::from_stream(stream)
    }
    let app = Router::new()
        .route("/blob/{i}", put(put_blob).get(get_blob))
        .with_state(Arc::new(dir));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn airlock_server(dir: PathBuf) -> SocketAddr {
    let store = Store::open(&dir, StoreOptions::default()).expect("store");
    let state = AppState::new(store, RegistryConfig::default()).expect("state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(airlock_registry::serve(
        listener,
        state,
        std::future::pending(),
    ));
    addr
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

fn registry(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let blobs: Vec<Bytes> = (0..BLOBS)
        .map(|i| Bytes::from(Rootfs::generate(10 + i as u64, 3000, 2 * 1024 * 1024).to_tar()))
        .collect();
    let digests: Vec<Digest> = blobs.iter().map(|b| Digest::sha256(b)).collect();
    let total: u64 = blobs.iter().map(|b| b.len() as u64).sum();
    let dir = tempfile::tempdir().expect("tempdir");
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let (air, base) = rt.block_on(async {
        (
            airlock_server(dir.path().join("airlock")).await,
            baseline_server({
                let d = dir.path().join("files");
                std::fs::create_dir_all(&d).expect("mkdir");
                d
            })
            .await,
        )
    });
    let (air, base) = (format!("http://{air}"), format!("http://{base}"));

    let (push_air, push_base) = rt.block_on(async {
        let t = Instant::now();
        for (b, d) in blobs.iter().zip(&digests) {
            push_airlock(&client, &air, b, d).await;
        }
        let a = t.elapsed();
        let t = Instant::now();
        for (i, b) in blobs.iter().enumerate() {
            push_baseline(&client, &base, i, b).await;
        }
        (a, t.elapsed())
    });
    // A blob GET needs the blob linked in the repository; the pushes above linked them.
    let pull_all = |target: &str| {
        let urls: Vec<(String, u64)> = (0..PULLS)
            .map(|k| {
                let i = k % BLOBS;
                let url = if target == "airlock" {
                    format!("{air}/v2/bench/blobs/{}", digests[i])
                } else {
                    format!("{base}/blob/{i}")
                };
                (url, blobs[i].len() as u64)
            })
            .collect();
        rt.block_on(async {
            let t = Instant::now();
            futures_util::stream::iter(urls)
                .for_each_concurrent(CONCURRENCY, |(url, n)| {
                    let client = client.clone();
                    async move { pull(&client, url, n).await }
                })
                .await;
            t.elapsed()
        })
    };
    let pull_air = pull_all("airlock");
    let pull_base = pull_all("baseline");
    let pulled = total * (PULLS / BLOBS) as u64;
    println!(
        "registry over loopback: {BLOBS} blobs, {:.1} MB in all; pull {PULLS} GETs, {CONCURRENCY} at a time",
        total as f64 / 1e6
    );
    println!(
        "  push  airlock {:7.0} MB/s   baseline file server {:7.0} MB/s   ratio {:.2}",
        mbps(total, push_air),
        mbps(total, push_base),
        push_base.as_secs_f64() / push_air.as_secs_f64()
    );
    println!(
        "  pull  airlock {:7.0} MB/s   baseline file server {:7.0} MB/s   ratio {:.2}",
        mbps(pulled, pull_air),
        mbps(pulled, pull_base),
        pull_base.as_secs_f64() / pull_air.as_secs_f64()
    );

    let mut g = c.benchmark_group("registry");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(6));
    g.throughput(Throughput::Bytes(blobs[0].len() as u64));
    g.bench_function("pull_one_blob", |b| {
        b.iter(|| {
            rt.block_on(pull(
                &client,
                format!("{air}/v2/bench/blobs/{}", digests[0]),
                blobs[0].len() as u64,
            ))
        })
    });
    g.bench_function("pull_one_blob_baseline", |b| {
        b.iter(|| {
            rt.block_on(pull(
                &client,
                format!("{base}/blob/0"),
                blobs[0].len() as u64,
            ))
        })
    });
    g.finish();
}

criterion_group!(benches, registry);
criterion_main!(benches);
