//! Issue 14: many clients pulling one uncached gzip layer at once, over a real server on
//! 127.0.0.1: the server rebuilds the layer once and every client gets its exact bytes, from a
//! read-write and from a read-only store alike; then it is served from the cache.

use std::{io::Write, net::SocketAddr};

use airlock_registry::{AppState, RegistryConfig, serve};
use airlock_store::{
    Access, Algorithm, Digest, Hasher, Materialize, PutOptions, RepoChange, Store, StoreOptions,
};
use axum::http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tokio::net::TcpListener;

use crate::support::data;

const CLIENTS: usize = 8;

/// A gzip layer of a few MB that the store keeps as chunks of its content plus a script.
fn gzip_layer() -> Vec<u8> {
    let mut plain = Vec::new();
    for i in 0..24u64 {
        // Half random, half repetitive: a stream with both stored and compressed blocks.
        plain.extend(data(100_000, i));
        plain.extend(format!("line {i} of a text file\n").repeat(4000).bytes());
    }
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(&plain).expect("gzip");
    e.finish().expect("gzip")
}

/// GETs `path` from `addr` and returns the body's digest and length.
async fn pull(addr: SocketAddr, path: String) -> (Digest, u64) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let request = Request::get(format!("http://{addr}{path}"))
        .body(Empty::new())
        .expect("request");
    let resp = client.request(request).await.expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut h = Hasher::new(Algorithm::Sha256);
    let mut len = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("frame").into_data() {
            len += data.len() as u64;
            h.update(&data);
        }
    }
    (h.finish(), len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_14_concurrent_pulls_of_an_uncached_layer_share_one_rebuild() {
    let gz = gzip_layer();
    let digest = Digest::sha256(&gz);
    for access in [Access::ReadWrite, Access::ReadOnly] {
        let dir = tempfile::tempdir().expect("tempdir");
        // The cache is filled by pulls only: the put leaves it empty.
        let opts = StoreOptions {
            materialize: Materialize::Pull,
            ..StoreOptions::default()
        };
        let store = Store::open(dir.path(), opts.clone()).expect("store");
        store
            .put_blob(&digest, &gz[..], PutOptions::default())
            .expect("put");
        store
            .apply_repo_changes(&[RepoChange::LinkBlob {
                repo: "app".into(),
                digest: digest.clone(),
            }])
            .expect("link");
        assert!(
            store
                .stat_blob(&digest)
                .expect("stat")
                .unwrap()
                .plain_size
                .is_some()
        );
        drop(store);
        let store = Store::open(dir.path(), StoreOptions { access, ..opts }).expect("reopen");
        let config = RegistryConfig {
            read_only: access == Access::ReadOnly,
            ..RegistryConfig::default()
        };
        let state = AppState::new(store.clone(), config).expect("state");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, state, async move {
            let _ = stopped.await;
        }));

        let path = format!("/v2/app/blobs/{digest}");
        let pulls: Vec<_> = (0..CLIENTS)
            .map(|_| tokio::spawn(pull(addr, path.clone())))
            .collect();
        for p in pulls {
            assert_eq!(p.await.expect("join"), (digest.clone(), gz.len() as u64));
        }
        let stats = store.cache_stats();
        assert_eq!(stats.materializations, 1, "{access:?}: {stats:?}");
        assert_eq!(stats.direct_rebuilds, 0, "{access:?}: {stats:?}");
        assert_eq!(stats.followers + stats.hits, CLIENTS as u64, "{stats:?}");
        // Then from the cache file.
        assert_eq!(pull(addr, path).await, (digest.clone(), gz.len() as u64));
        let stats = store.cache_stats();
        assert_eq!(stats.materializations, 1, "{access:?}: {stats:?}");
        assert_eq!(store.du().expect("du").cache_files, 1, "{access:?}");

        let _ = stop.send(());
        server.await.expect("join").expect("serve");
    }
}
