//! Issue 16: HTTPS. HTTP/2 and HTTP/1.1 by ALPN, TLS 1.2 and 1.3, and a certificate reload
//! that new handshakes see while an open connection keeps working.

use std::{net::SocketAddr, path::Path, sync::Arc};

use airlock_registry::{AppState, RegistryConfig, TlsFiles, serve_tls};
use airlock_store::{Store, StoreOptions};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::{ClientConfig, RootCertStore, pki_types::ServerName};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tokio_rustls::{TlsConnector, client::TlsStream};

/// A CA and a way to issue server certificates for 127.0.0.1 and localhost.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl TestCa {
    pub fn new() -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "airlock test CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        TestCa { cert, key }
    }

    /// Writes a server certificate (`name`.crt, `name`.key) signed by this CA.
    pub fn issue(&self, dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let (c, k) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    fn client(&self, alpn: &[&[u8]], tls12_only: bool) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: &[&rustls::SupportedProtocolVersion] = if tls12_only {
            &[&rustls::version::TLS12]
        } else {
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        };
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        TlsConnector::from(Arc::new(config))
    }
}

async fn connect(connector: &TlsConnector, addr: SocketAddr) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap().to_owned();
    connector.connect(name, tcp).await.unwrap()
}

fn peer_cert(stream: &TlsStream<TcpStream>) -> Vec<u8> {
    stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

async fn h2_get(
    sender: &mut hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    addr: SocketAddr,
    path: &str,
) -> (u16, Bytes) {
    let request = hyper::Request::builder()
        .uri(format!("https://{addr}{path}"))
        .body(Empty::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    (
        status,
        response.into_body().collect().await.unwrap().to_bytes(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_16_https_h2_and_http1_and_a_reload_without_dropping_connections() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (cert, key) = ca.issue(dir.path(), "server");
    let tls = Arc::new(TlsFiles::load(&cert, &key).unwrap());
    let store = Store::open(&dir.path().join("data"), StoreOptions::default()).unwrap();
    let state = AppState::new(store, RegistryConfig::default()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve_tls(listener, state, tls.clone(), async move {
        let _ = stopped.await;
    }));

    // HTTP/2 by ALPN.
    let h2 = ca.client(&[b"h2", b"http/1.1"], false);
    let stream = connect(&h2, addr).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let first_cert = peer_cert(&stream);
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    assert_eq!(
        h2_get(&mut sender, addr, "/v2/").await,
        (200, Bytes::from("{}"))
    );

    // HTTP/1.1 over TLS 1.2, without ALPN.
    let h1 = ca.client(&[], true);
    let mut stream = connect(&h1, addr).await;
    assert_eq!(
        stream.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    stream
        .write_all(b"GET /v2/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out).await;
    assert!(
        out.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&out)
    );

    // A new certificate: new handshakes get it, the open HTTP/2 connection keeps working.
    let (cert2, key2) = ca.issue(dir.path(), "renewed");
    std::fs::copy(&cert2, &cert).unwrap();
    std::fs::copy(&key2, &key).unwrap();
    tls.reload().unwrap();
    let renewed = connect(&h2, addr).await;
    assert_ne!(
        peer_cert(&renewed),
        first_cert,
        "the reload did not reach new handshakes"
    );
    assert_eq!(h2_get(&mut sender, addr, "/v2/").await.0, 200);
    // A broken file on reload keeps the current certificate.
    std::fs::write(&key, "garbage").unwrap();
    assert!(tls.reload().is_err());
    assert_eq!(peer_cert(&connect(&h2, addr).await), peer_cert(&renewed));

    drop((sender, renewed));
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}
