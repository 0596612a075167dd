//! The server loop: accepting connections under a cap, TLS handshakes, HTTP/1.1 or HTTP/2 per
//! connection, and a graceful stop with a deadline.
//!
//! - Connection cap: a connection is accepted only once one of [`Limits::max_connections`]
//!   slots is free; until then new connections wait in the kernel's listen backlog rather than
//!   being refused, so a burst of nodes is served in turn, and the timeouts below guarantee
//!   that slots come free.
//! - Timeouts: a TLS handshake, and each HTTP/1 request head, must arrive within
//!   [`Limits::header_timeout`] (hyper's header read timeout also closes idle keep-alive
//!   connections); an HTTP/2 connection with no request in flight for that long is closed; a
//!   write the client does not take for [`Limits::body_timeout`] fails the connection; request
//!   bodies are wrapped in [`IdleBody`].
//! - TLS: the acceptor is taken from [`TlsFiles`] for each handshake, so a reload (SIGHUP)
//!   reaches new connections only. ALPN `h2` gets HTTP/2, anything else HTTP/1.1; plain TCP is
//!   HTTP/1.1 only (no h2c).
//! - Shutdown: the listener closes, open connections finish their requests (hyper's graceful
//!   shutdown), and after [`Limits::shutdown_timeout`] the loop returns regardless.

use std::{
    convert::Infallible,
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{Router, body::Body, extract::Request};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::graceful::{GracefulShutdown, Watcher},
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
    time::{Instant, Sleep},
};
use tower::ServiceExt;

use crate::{
    limits::{IdleBody, Limits},
    state::AppState,
    tls::{ALPN_H2, TlsFiles},
};

/// Most HTTP/2 streams one connection may have open.
const MAX_H2_STREAMS: u32 = 128;

/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What a request's connection says about it, in its extensions.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ConnInfo {
    /// The client's address; `None` for requests that did not come over a socket (tests).
    pub peer: Option<SocketAddr>,
    /// Whether the connection is TLS.
    pub tls: bool,
}

/// Serves `app` on `listener` until `shutdown`, then drains; see the module docs. SIGHUP
/// reloads `tls` and the accounts.
pub(crate) async fn run(
    listener: TcpListener,
    state: AppState,
    app: Router,
    tls: Option<Arc<TlsFiles>>,
    shutdown: impl Future<Output = ()>,
) {
    let limits = state.config().limits.clone();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| tracing::warn!("SIGHUP will not reload certificates and accounts: {e}"))
        .ok();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (tcp, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(()) = hangup_signal(&mut hangup) => {
                reload(&state, tls.as_deref());
                continue;
            }
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("setting TCP_NODELAY: {e}");
        }
        let conn = Conn {
            app: app.clone(),
            limits: limits.clone(),
            peer,
            watcher: graceful.watcher(),
        };
        let acceptor = tls.as_ref().map(|t| t.acceptor());
        tokio::spawn(async move {
            conn.serve(tcp, acceptor).await;
            drop(permit);
        });
    }
    drop(listener);
    let open = graceful.count();
    if open > 0 {
        tracing::info!(
            connections = open,
            "stopping: letting requests in flight finish"
        );
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.shutdown_timeout) => tracing::warn!(
            "connections still open {:?} after the stop: closing them",
            limits.shutdown_timeout
        ),
    }
}

async fn hangup_signal(hangup: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match hangup {
        Some(signal) => signal.recv().await,
        None => std::future::pending().await,
    }
}

/// SIGHUP: the certificate and the accounts are read again; a file that fails keeps the old.
fn reload(state: &AppState, tls: Option<&TlsFiles>) {
    if let Some(tls) = tls {
        match tls.reload() {
            Ok(()) => {
                tracing::info!(cert = %tls.cert_path().display(), "reloaded the TLS certificate")
            }
            Err(e) => {
                tracing::error!("reloading the TLS certificate failed, keeping the old one: {e}")
            }
        }
    }
    match state.auth().reload() {
        Ok(Some(n)) => tracing::info!(accounts = n, "reloaded the accounts"),
        Ok(None) => {}
        Err(e) => tracing::error!("reloading the accounts failed, keeping the old ones: {e}"),
    }
}

/// One accepted connection.
struct Conn {
    app: Router,
    limits: Limits,
    peer: SocketAddr,
    watcher: Watcher,
}

impl Conn {
    async fn serve(self, tcp: TcpStream, tls: Option<tokio_rustls::TlsAcceptor>) {
        let Some(acceptor) = tls else {
            let io = Guarded::new(tcp, self.limits.body_timeout, None);
            return self.http1(io, false).await;
        };
        let stream = match tokio::time::timeout(self.limits.header_timeout, acceptor.accept(tcp))
            .await
        {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return tracing::debug!(peer = %self.peer, "TLS handshake failed: {e}"),
            Err(_) => return tracing::debug!(peer = %self.peer, "TLS handshake timed out"),
        };
        if stream.get_ref().1.alpn_protocol() == Some(ALPN_H2) {
            let in_flight = Arc::new(AtomicUsize::new(0));
            let idle = Idle::new(self.limits.header_timeout, in_flight.clone());
            let io = Guarded::new(stream, self.limits.body_timeout, Some(idle));
            self.http2(io, in_flight).await;
        } else {
            let io = Guarded::new(stream, self.limits.body_timeout, None);
            self.http1(io, true).await;
        }
    }

    async fn http1<T>(self, io: Guarded<T>, tls: bool)
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let service = self.service(tls, None);
        let Conn {
            watcher,
            peer,
            limits,
            ..
        } = self;
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(TokioIo::new(io), service);
        if let Err(e) = watcher.watch(conn).await {
            tracing::debug!(%peer, "connection ended: {e}");
        }
    }

    async fn http2<T>(self, io: Guarded<T>, in_flight: Arc<AtomicUsize>)
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let service = self.service(true, Some(in_flight));
        let Conn { watcher, peer, .. } = self;
        let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .max_concurrent_streams(MAX_H2_STREAMS)
            .serve_connection(TokioIo::new(io), service);
        if let Err(e) = watcher.watch(conn).await {
            tracing::debug!(%peer, "connection ended: {e}");
        }
    }

    /// The router, with the connection's facts in each request and its body guarded.
    fn service(&self, tls: bool, in_flight: Option<Arc<AtomicUsize>>) -> Service {
        Service {
            app: self.app.clone(),
            info: ConnInfo {
                peer: Some(self.peer),
                tls,
            },
            body_timeout: self.limits.body_timeout,
            in_flight,
        }
    }
}

/// The router as a hyper service for one connection.
#[derive(Clone)]
struct Service {
    app: Router,
    info: ConnInfo,
    body_timeout: Duration,
    in_flight: Option<Arc<AtomicUsize>>,
}

type Responding =
    Pin<Box<dyn Future<Output = Result<axum::response::Response, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for Service {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = Responding;

    fn call(&self, request: Request<Incoming>) -> Responding {
        let flight = self.in_flight.clone().map(InFlight::start);
        let timeout = self.body_timeout;
        let mut request = request.map(|b| Body::new(IdleBody::new(b, timeout)));
        request.extensions_mut().insert(self.info);
        let app = self.app.clone();
        Box::pin(async move {
            let response = app.oneshot(request).await;
            drop(flight);
            response
        })
    }
}

/// A request in flight on an HTTP/2 connection, counted while it is handled.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn start(count: Arc<AtomicUsize>) -> InFlight {
        count.fetch_add(1, Ordering::AcqRel);
        InFlight(count)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Closes an HTTP/2 connection that moved no byte for a while with no request in flight.
struct Idle {
    after: Duration,
    sleep: Pin<Box<Sleep>>,
    in_flight: Arc<AtomicUsize>,
}

impl Idle {
    fn new(after: Duration, in_flight: Arc<AtomicUsize>) -> Idle {
        Idle {
            after,
            sleep: Box::pin(tokio::time::sleep(after)),
            in_flight,
        }
    }

    fn touch(&mut self) {
        self.sleep.as_mut().reset(Instant::now() + self.after);
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0 && self.sleep.as_mut().poll(cx).is_ready()
    }
}

/// A connection's stream with timeouts: a write the peer does not take within `stall` fails,
/// and with `idle`, a connection quiet for too long ends.
struct Guarded<T> {
    io: T,
    stall: Duration,
    write_wait: Option<Pin<Box<Sleep>>>,
    idle: Option<Idle>,
}

impl<T> Guarded<T> {
    fn new(io: T, stall: Duration, idle: Option<Idle>) -> Guarded<T> {
        Guarded {
            io,
            stall,
            write_wait: None,
            idle,
        }
    }

    fn progressed(&mut self) {
        self.write_wait = None;
        if let Some(idle) = &mut self.idle {
            idle.touch();
        }
    }

    /// A pending write: fails once the peer has taken nothing for `stall`.
    fn write_pending<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        let stall = self.stall;
        let wait = self
            .write_wait
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
        match wait.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client took no data for {stall:?}"),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before
                    && let Some(idle) = &mut this.idle
                {
                    idle.touch();
                }
                Poll::Ready(result)
            }
            Poll::Pending => {
                let expired = this.idle.as_mut().is_some_and(|idle| idle.expired(cx));
                match expired {
                    true => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "connection idle",
                    ))),
                    false => Poll::Pending,
                }
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Guarded<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.io).poll_write(cx, buf) {
            Poll::Ready(result) => {
                this.progressed();
                Poll::Ready(result)
            }
            Poll::Pending => this.write_pending(cx),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.io).poll_write_vectored(cx, bufs) {
            Poll::Ready(result) => {
                this.progressed();
                Poll::Ready(result)
            }
            Poll::Pending => this.write_pending(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.io).poll_flush(cx) {
            Poll::Ready(result) => {
                this.write_wait = None;
                Poll::Ready(result)
            }
            Poll::Pending => this.write_pending(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
