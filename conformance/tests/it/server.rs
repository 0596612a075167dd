//! airlock's registry on 127.0.0.1:0, on a thread and runtime of its own so that a test's
//! runtime (and a blocking child process) never starves it. Dropping the server shuts it down.

use std::{net::SocketAddr, path::Path, thread::JoinHandle};

use airlock_registry::{AppState, RegistryConfig, serve};
use airlock_store::{Store, StoreOptions};
use tempfile::TempDir;
use tokio::sync::oneshot;

#[derive(Debug)]
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
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

impl TestServer {
    /// A fresh store and a registry serving it with the default configuration.
    pub fn start() -> TestServer {
        let data = tempfile::tempdir().expect("temporary store directory");
        let state = app_state(data.path());
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
                serve(listener, state, stopped)
                    .await
                    .expect("registry serve");
            });
        });
        TestServer {
            base: format!("http://{addr}"),
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
