//! Liveness and readiness, for a service manager or a load balancer: `GET /healthz` and
//! `GET /readyz`.
//!
//! They sit beside the `/v2/` API, outside [`dispatch`](crate::handlers), so no access rule or
//! account ever applies to them, and they answer with plain text. Liveness says only that the
//! process answers HTTP; readiness says that the registry serves: its listener accepts (set by
//! [`serve`](crate::serve), cleared as soon as a stop begins, so a balancer drains it) and its
//! store answers an index lookup on the blocking pool within [`READY_TIMEOUT`].

use std::time::Duration;

use airlock_store::Digest;
use axum::{
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::{error::RegistryError, state::AppState};

/// Liveness: 200 while the process answers HTTP.
pub const LIVE_PATH: &str = "/healthz";

/// Readiness: 200 once the store is open and the listener serves; 503 while starting, stopping,
/// or when the store does not answer.
pub const READY_PATH: &str = "/readyz";

/// How long readiness waits for the store's answer before it says 503.
pub const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// `GET /healthz`.
pub(crate) async fn live() -> Response {
    text(StatusCode::OK, "ok")
}

/// `GET /readyz`.
pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    if !state.serving() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "not ready: not serving");
    }
    // One lookup in the index through the blocking pool: the store opens its read
    // transactions, and the pool that serves every store call has room.
    let probe = state.blocking(|s| {
        s.store()
            .has_blob(&Digest::sha256(b""))
            .map_err(RegistryError::from)
    });
    match tokio::time::timeout(READY_TIMEOUT, probe).await {
        Ok(Ok(_)) => text(StatusCode::OK, "ready"),
        Ok(Err(e)) => {
            tracing::warn!(cause = %e, "not ready: the store failed a lookup");
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: the store failed a lookup",
            )
        }
        Err(_) => {
            tracing::warn!("not ready: the store did not answer within {READY_TIMEOUT:?}");
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: the store does not answer",
            )
        }
    }
}

fn text(status: StatusCode, line: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{line}\n"),
    )
        .into_response()
}
