//! airlock's registry on 127.0.0.1:0, on a thread and runtime of its own so that a test's
//! runtime (and a blocking child process) never starves it. Dropping the server shuts it down.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    thread::JoinHandle,
};

use airlock_registry::{AppState, Auth, AuthSettings, RegistryConfig, TlsFiles, serve, serve_tls};
use airlock_store::{Store, StoreOptions};
use tempfile::TempDir;
use tokio::sync::oneshot;

#[derive(Debug)]
pub struct TestServer {
    /// `http://127.0.0.1:PORT`, or `https://` with TLS.
    pub base: String,
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    _data: TempDir,
}

/// A registry's state over a new store in `dir`, with the default configuration.
pub fn app_state(dir: &Path) -> AppState {
    let store = Store::open(dir, StoreOptions::default()).expect("open the store");
    AppState::new(store, RegistryConfig::default()).expect("registry state")
}

/// How a secured test server runs (issue 16).
#[derive(Debug, Default)]
pub struct Secured {
    /// Accounts and access rules.
    pub auth: Option<AuthSettings>,
    /// The server's certificate and key, PEM.
    pub tls: Option<(PathBuf, PathBuf)>,
}

impl TestServer {
    /// A fresh store and a registry serving it with the default configuration.
    pub fn start() -> TestServer {
        TestServer::start_secured(Secured::default())
    }

    /// A fresh store and a registry with accounts and/or TLS.
    pub fn start_secured(secured: Secured) -> TestServer {
        let data = tempfile::tempdir().expect("temporary store directory");
        let state = match &secured.auth {
            None => app_state(data.path()),
            Some(settings) => {
                let store = Store::open(data.path(), StoreOptions::default()).expect("store");
                let listen = "127.0.0.1:5000".parse().expect("address");
                let auth = Auth::load(settings, listen, data.path()).expect("auth settings");
                AppState::with_auth(store, RegistryConfig::default(), auth).expect("state")
            }
        };
        let tls = secured
            .tls
            .as_ref()
            .map(|(cert, key)| Arc::new(TlsFiles::load(cert, key).expect("test certificate")));
        let scheme = if tls.is_some() { "https" } else { "http" };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("listener address");
        let (shutdown, stop) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("server runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                let stopped = async move {
                    let _ = stop.await;
                };
                let served = match tls {
                    Some(tls) => serve_tls(listener, state, tls, stopped).await,
                    None => serve(listener, state, stopped).await,
                };
                served.expect("registry serve");
            });
        });
        TestServer {
            base: format!("{scheme}://{addr}"),
            addr,
            shutdown: Some(shutdown),
            thread: Some(thread),
            _data: data,
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        // A panicking server thread already printed its panic; the test's own result stands.
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A test CA that issues server certificates for 127.0.0.1 and localhost.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl TestCa {
    pub fn new() -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "airlock conformance CA");
        let key = rcgen::KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        TestCa { cert, key }
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// Writes `ca.crt`, and `server.crt` and `server.key` signed by the CA, into `dir`;
    /// returns the server's pair.
    pub fn write(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("params");
        let key = rcgen::KeyPair::generate().expect("server key");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("server certificate");
        std::fs::write(dir.join("ca.crt"), self.pem()).expect("write ca.crt");
        let (c, k) = (dir.join("server.crt"), dir.join("server.key"));
        std::fs::write(&c, cert.pem()).expect("write server.crt");
        std::fs::write(&k, key.serialize_pem()).expect("write server.key");
        (c, k)
    }
}
