//! Issue 16: limits. A blob over the size limit, an upload-session flood, 200 slowloris
//! connections beside a normal pull, a stalled upload body, the connection cap and the
//! shutdown deadline, on a real server on 127.0.0.x where connections matter.

use std::{
    net::{IpAddr, SocketAddr},
    path::Path,
    time::Duration,
};

use airlock_registry::{AppState, Limits, RegistryConfig, serve};
use airlock_store::{Digest, Store, StoreOptions};
use axum::{
    body::Body,
    http::{Method, StatusCode},
};
use bytes::Bytes;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpSocket, TcpStream},
    sync::oneshot,
    task::JoinHandle,
};

use crate::support::{OCI_MANIFEST, Registry, data};

/// A deadline for things that should take a moment: generous, so a loaded machine passes.
const PATIENCE: Duration = Duration::from_secs(60);

fn config(limits: Limits) -> RegistryConfig {
    RegistryConfig {
        limits,
        ..RegistryConfig::default()
    }
}

#[tokio::test]
async fn issue_16_a_blob_over_the_limit_is_size_invalid_and_nothing_is_stored() {
    let r = Registry::with_config(config(Limits {
        max_blob_bytes: 1000,
        ..Limits::default()
    }));
    let big = data(2000, 1);
    let digest = Digest::sha256(&big);
    // Declared too large: refused before reading.
    r.call(
        Method::POST,
        &format!("/v2/app/blobs/uploads/?digest={digest}"),
        &[("content-length", "2000")],
        big.clone(),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "SIZE_INVALID");
    // Streamed without a length: refused once past the limit.
    let pieces: Vec<Result<Bytes, std::io::Error>> = big
        .chunks(600)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    r.call(
        Method::POST,
        &format!("/v2/app/blobs/uploads/?digest={digest}"),
        &[],
        Body::from_stream(futures_util::stream::iter(pieces)),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "SIZE_INVALID");
    assert!(!r.state().store().has_blob(&digest).unwrap());
    r.head(&format!("/v2/app/blobs/{digest}"))
        .await
        .expect(StatusCode::NOT_FOUND);
    // A session: chunks up to the limit are taken, the one passing it is undone.
    let location = r.start_upload("app").await;
    let first = data(800, 2);
    r.call(
        Method::PATCH,
        &location,
        &[("content-length", "800")],
        first.clone(),
    )
    .await
    .expect(StatusCode::ACCEPTED);
    r.call(
        Method::PATCH,
        &location,
        &[("content-length", "300")],
        data(300, 3),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "SIZE_INVALID");
    let status = r.get(&location).await.expect(StatusCode::NO_CONTENT);
    assert_eq!(status.header("range"), "0-799");
    let id = location.rsplit('/').next().unwrap();
    let file = r.dir().join("uploads").join(id);
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 800);
    r.call(
        Method::PUT,
        &format!("{location}?digest={digest}"),
        &[("content-length", "300")],
        data(300, 3),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "SIZE_INVALID");
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 800);
    let small = Digest::sha256(&first);
    r.call(
        Method::PUT,
        &format!("{location}?digest={small}"),
        &[("content-length", "0")],
        Body::empty(),
    )
    .await
    .expect(StatusCode::CREATED);
    assert!(r.state().store().has_blob(&small).unwrap());
}

/// `serve` on 127.0.0.1:0 over a new store.
struct Live {
    addr: SocketAddr,
    dir: tempfile::TempDir,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

async fn live(config: RegistryConfig) -> Live {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let state = AppState::new(store, config).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, state, async move {
        let _ = stopped.await;
    }));
    Live {
        addr,
        dir,
        stop,
        task,
    }
}

/// A connection to `addr` from `from` (any 127.0.0.0/8 address is this machine).
async fn connect(addr: SocketAddr, from: [u8; 4]) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(IpAddr::from(from), 0)).unwrap();
    socket.connect(addr).await.unwrap()
}

/// One request on a new connection from `from`: status and body.
async fn request(
    addr: SocketAddr,
    from: [u8; 4],
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut tcp = connect(addr, from).await;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(body).await.unwrap();
    let mut out = Vec::new();
    tcp.read_to_end(&mut out).await.unwrap();
    parse(&out)
}

/// Status, head text and body of a whole HTTP/1.1 response.
fn parse(raw: &[u8]) -> (u16, String, Vec<u8>) {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head[9..12].parse().unwrap();
    (status, head, raw[split + 4..].to_vec())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_16_an_upload_session_flood_is_capped_and_expires_leaving_nothing() {
    let server = live(RegistryConfig {
        upload_expiry: Duration::from_secs(1),
        ..config(Limits {
            max_upload_sessions: 6,
            max_upload_sessions_per_client: 3,
            ..Limits::default()
        })
    })
    .await;
    let start = |from: [u8; 4]| request(server.addr, from, "POST", "/v2/flood/blobs/uploads/", b"");
    for _ in 0..3 {
        assert_eq!(start([127, 0, 0, 1]).await.0, 202);
    }
    let (status, head, body) = start([127, 0, 0, 1]).await;
    assert_eq!(status, 429, "{head}");
    assert!(String::from_utf8_lossy(&body).contains("TOOMANYREQUESTS"));
    assert!(header(&head, "retry-after").is_some(), "{head}");
    for _ in 0..3 {
        assert_eq!(start([127, 0, 0, 2]).await.0, 202);
    }
    // Six open in all: a third client is refused too.
    let (status, _, body) = start([127, 0, 0, 3]).await;
    assert_eq!(status, 429);
    assert!(String::from_utf8_lossy(&body).contains("6 upload sessions are open"));
    // Idle sessions expire and their files go.
    let uploads = server.dir.path().join("uploads");
    let waited = tokio::time::timeout(PATIENCE, async {
        while entries(&uploads) > 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "upload files left after expiry: {}",
        entries(&uploads)
    );
    assert_eq!(start([127, 0, 0, 1]).await.0, 202);
    let _ = server.stop.send(());
    server.task.await.unwrap().unwrap();
}

/// Pushes a one-layer image to `repo:v1` over HTTP; returns the manifest and layer.
async fn push(addr: SocketAddr, repo: &str) -> (Vec<u8>, Vec<u8>) {
    let layer = data(300_000, 5);
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    for blob in [&config, &layer] {
        let digest = Digest::sha256(blob);
        let path = format!("/v2/{repo}/blobs/uploads/?digest={digest}");
        assert_eq!(
            request(addr, [127, 0, 0, 1], "POST", &path, blob).await.0,
            201
        );
    }
    let manifest = crate::support::image_manifest(
        Some(OCI_MANIFEST),
        crate::support::descriptor(crate::support::OCI_CONFIG, &config),
        vec![crate::support::descriptor(
            crate::support::OCI_LAYER,
            &layer,
        )],
    );
    let mut tcp = connect(addr, [127, 0, 0, 1]).await;
    let head = format!(
        "PUT /v2/{repo}/manifests/v1 HTTP/1.1\r\nHost: x\r\nContent-Type: {OCI_MANIFEST}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        manifest.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&manifest).await.unwrap();
    let mut out = Vec::new();
    tcp.read_to_end(&mut out).await.unwrap();
    assert_eq!(parse(&out).0, 201);
    (manifest, layer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_16_200_slowloris_connections_do_not_stop_a_pull() {
    let server = live(RegistryConfig::default()).await;
    let (manifest, layer) = push(server.addr, "slow/app").await;
    // 200 connections, each sending one byte of a request head per second.
    let mut slow = Vec::new();
    for _ in 0..200 {
        slow.push(connect(server.addr, [127, 0, 0, 9]).await);
    }
    let (stop_trickle, mut stopped) = oneshot::channel::<()>();
    let trickle = tokio::spawn(async move {
        let head = b"GET /v2/ HTTP/1.1\r\nHost: slowloris\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaa";
        for i in 0..120 {
            for tcp in &mut slow {
                // A connection the server closed is fine: that is what it should do.
                let _ = tcp.write_all(&head[i % head.len()..][..1]).await;
            }
            tokio::select! {
                _ = &mut stopped => break,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        slow.len()
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pull = async {
        let (status, _, body) = request(
            server.addr,
            [127, 0, 0, 1],
            "GET",
            "/v2/slow/app/manifests/v1",
            b"",
        )
        .await;
        assert_eq!((status, body), (200, manifest));
        let path = format!("/v2/slow/app/blobs/{}", Digest::sha256(&layer));
        let (status, _, body) = request(server.addr, [127, 0, 0, 1], "GET", &path, b"").await;
        assert_eq!(status, 200);
        assert!(body == layer, "the layer came back different");
    };
    assert!(
        tokio::time::timeout(PATIENCE, pull).await.is_ok(),
        "the pull did not complete beside 200 slow connections"
    );
    let _ = stop_trickle.send(());
    assert_eq!(trickle.await.unwrap(), 200);
    let _ = server.stop.send(());
    server.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_16_a_stalled_upload_body_releases_its_session() {
    let server = live(config(Limits {
        body_timeout: Duration::from_secs(1),
        ..Limits::default()
    }))
    .await;
    let (status, head, _) = request(
        server.addr,
        [127, 0, 0, 1],
        "POST",
        "/v2/stall/blobs/uploads/",
        b"",
    )
    .await;
    assert_eq!(status, 202);
    let location = header(&head, "location").unwrap().to_owned();
    // A PATCH that declares 1000 bytes, sends 10 and stalls, its connection left open.
    let mut stalled = connect(server.addr, [127, 0, 0, 1]).await;
    let patch =
        format!("PATCH {location} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789");
    stalled.write_all(patch.as_bytes()).await.unwrap();
    // Another PATCH of the same session gets the lock once the stalled body is dropped.
    let chunk = data(1000, 7);
    let (status, head, _) = tokio::time::timeout(
        PATIENCE,
        request(server.addr, [127, 0, 0, 1], "PATCH", &location, &chunk),
    )
    .await
    .expect("the session stayed locked by a stalled body");
    assert_eq!(status, 202, "{head}");
    assert_eq!(header(&head, "range"), Some("0-999"));
    // The stalled request was answered with an error, not left hanging.
    let mut out = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, stalled.read_to_end(&mut out)).await;
    assert!(
        String::from_utf8_lossy(&out).starts_with("HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    let _ = server.stop.send(());
    server.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_16_connections_over_the_cap_wait_and_idle_ones_close() {
    let server = live(config(Limits {
        max_connections: 2,
        header_timeout: Duration::from_secs(1),
        ..Limits::default()
    }))
    .await;
    let mut idle = vec![
        connect(server.addr, [127, 0, 0, 1]).await,
        connect(server.addr, [127, 0, 0, 1]).await,
    ];
    // A third connection waits in the backlog until the idle ones time out, then is served.
    let served = tokio::time::timeout(
        PATIENCE,
        request(server.addr, [127, 0, 0, 1], "GET", "/v2/", b""),
    )
    .await
    .expect("the waiting connection was never served");
    assert_eq!(served.0, 200);
    for tcp in &mut idle {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(PATIENCE, tcp.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "an idle connection stayed open");
    }
    let _ = server.stop.send(());
    server.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_16_shutdown_drains_with_a_deadline() {
    let server = live(config(Limits {
        shutdown_timeout: Duration::from_secs(1),
        ..Limits::default()
    }))
    .await;
    let (_, head, _) = request(
        server.addr,
        [127, 0, 0, 1],
        "POST",
        "/v2/stop/blobs/uploads/",
        b"",
    )
    .await;
    let location = header(&head, "location").unwrap().to_owned();
    // A request in flight that would never finish by itself (its body stalls for a minute).
    let mut busy = connect(server.addr, [127, 0, 0, 1]).await;
    let patch = format!("PATCH {location} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n01");
    busy.write_all(patch.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = server.stop.send(());
    let stopped = tokio::time::timeout(PATIENCE, server.task).await;
    assert!(
        stopped.is_ok(),
        "serve did not return after its shutdown deadline"
    );
}
