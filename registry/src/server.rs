//! The router, its middleware and the entry points of the server loop (`accept`).
//!
//! One middleware wraps every request: it opens the request's span (method, path, then endpoint
//! id and status), refuses oversized request lines and headers, turns a handler panic into a
//! 500, adds `Docker-Distribution-API-Version`, and is the one place that logs the cause of a
//! 5xx, which the response body never shows.

use std::{any::Any, future::Future, io, panic::AssertUnwindSafe, sync::Arc};

use axum::{
    Router,
    extract::Request,
    extract::State,
    http::{HeaderValue, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use futures_util::FutureExt;
use tokio::net::TcpListener;
use tracing::{Instrument, field::Empty};

use crate::{
    accept,
    auth::TOKEN_PATH,
    endpoint::RouteName,
    error::{ErrorCause, ErrorCode, RegistryError},
    handlers::{API_VERSION, dispatch, token},
    health::{self, LIVE_PATH, READY_PATH},
    state::AppState,
    tls::TlsFiles,
};

/// Longest request target (path and query) accepted; longer gets 414.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Most header bytes (names and values) a request may carry; more gets 431.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Most header fields a request may carry; more gets 431.
pub const MAX_HEADER_COUNT: usize = 100;

/// Characters of the path recorded in a request's span.
const SPAN_PATH_CHARS: usize = 256;

/// The registry's HTTP API: one fallback handler that parses every request into an
/// [`Endpoint`](crate::Endpoint), the token endpoint, and beside them the health endpoints
/// (`/healthz`, `/readyz`, outside `/v2/` and its access rules), under the logging, metrics and
/// limits middleware. Test it with `tower::ServiceExt::oneshot`; serve it with [`serve`].
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(TOKEN_PATH, get(token::get).post(token::post))
        .route(LIVE_PATH, get(health::live))
        .route(READY_PATH, get(health::ready))
        .fallback(dispatch)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Serves the registry over plain HTTP/1.1 on `listener` until `shutdown` completes, then lets
/// in-flight requests finish (up to the configured shutdown timeout); meanwhile expired upload
/// sessions are forgotten periodically. This is what `airlock serve` runs without TLS.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve_with(listener, state, None, shutdown).await
}

/// [`serve`] over HTTPS with the certificate of `tls` (HTTP/2 or HTTP/1.1 by ALPN); SIGHUP
/// reloads the certificate (and the accounts).
pub async fn serve_tls(
    listener: TcpListener,
    state: AppState,
    tls: Arc<TlsFiles>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve_with(listener, state, Some(tls), shutdown).await
}

async fn serve_with(
    listener: TcpListener,
    state: AppState,
    tls: Option<Arc<TlsFiles>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(
        %addr,
        tls = tls.is_some(),
        read_only = state.config().read_only,
        access = %state.auth().summary(),
        "registry listening"
    );
    let sweeper = tokio::spawn(state.clone().expire_uploads());
    // Ready from here until a stop begins: a balancer stops sending before connections drain.
    state.set_serving(true);
    let draining = state.clone();
    let shutdown = async move {
        shutdown.await;
        draining.set_serving(false);
    };
    let app = router(state.clone());
    accept::run(listener, state, app, tls, shutdown).await;
    sweeper.abort();
    // Wait for it to let go of its state, and with it the store.
    let _ = sweeper.await;
    Ok(())
}

async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let route = RouteName::of_path(path);
    let shown = path.get(..SPAN_PATH_CHARS).unwrap_or(path);
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %shown,
        endpoint = Empty,
        status = Empty,
    );
    async move {
        let mut response = match check_limits(&request) {
            Err(e) => e.into_response(),
            Ok(()) => AssertUnwindSafe(next.run(request))
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| {
                    RegistryError::internal(panic_message(&panic)).into_response()
                }),
        };
        let status = response.status();
        tracing::Span::current().record("status", status.as_u16());
        if status.is_server_error() {
            match response.extensions().get::<ErrorCause>() {
                Some(cause) => tracing::error!(cause = %chain(&*cause.0), "request failed"),
                None => tracing::error!("request failed"),
            }
        } else {
            tracing::debug!("request served");
        }
        response
            .headers_mut()
            .insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
        let metrics = state.metrics();
        metrics.count_request(route, status);
        response.map(|body| metrics.count_body(route, body))
    }
    .instrument(span)
    .await
}

fn check_limits(request: &Request) -> Result<(), RegistryError> {
    let uri = request
        .uri()
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len());
    if uri > MAX_URI_BYTES {
        return Err(RegistryError::new(
            ErrorCode::Unsupported,
            format!("request target longer than {MAX_URI_BYTES} bytes"),
        )
        .with_status(StatusCode::URI_TOO_LONG));
    }
    let headers = request.headers();
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers.len() > MAX_HEADER_COUNT || bytes > MAX_HEADER_BYTES {
        return Err(RegistryError::new(
            ErrorCode::Unsupported,
            format!("request headers exceed {MAX_HEADER_COUNT} fields or {MAX_HEADER_BYTES} bytes"),
        )
        .with_status(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE));
    }
    Ok(())
}

/// An error and its sources, `outer: inner: innermost`.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

fn panic_message(panic: &Box<dyn Any + Send>) -> String {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("handler panicked: {what}")
}

#[cfg(test)]
mod tests {
    use axum::{body::Body, http::header};

    use super::*;

    fn request(uri: &str) -> Request {
        Request::builder()
            .uri(uri)
            .body(Body::empty())
            .expect("request")
    }

    #[test]
    fn limits() {
        assert!(check_limits(&request("/v2/")).is_ok());
        let long = format!("/v2/{}", "a".repeat(MAX_URI_BYTES));
        assert_eq!(
            check_limits(&request(&long)).expect_err("long").status(),
            StatusCode::URI_TOO_LONG
        );
        let mut big = request("/v2/");
        big.headers_mut().insert(
            header::USER_AGENT,
            HeaderValue::from_str(&"x".repeat(MAX_HEADER_BYTES)).expect("value"),
        );
        assert_eq!(
            check_limits(&big).expect_err("big").status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
    }

    #[test]
    fn chains_and_panics() {
        let err = RegistryError::internal(io::Error::other("disk on fire"));
        assert_eq!(chain(&err), "internal error: disk on fire");
        let panic: Box<dyn Any + Send> = Box::new("boom");
        assert_eq!(panic_message(&panic), "handler panicked: boom");
    }
}
