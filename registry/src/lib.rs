//! The OCI Distribution v1.1 HTTP surface of airlock: every endpoint of the spec (pull, push,
//! chunked and mounted uploads, tags, referrers, deletes) plus the catalog and containerd's `ns`
//! mirror parameter, with the spec's error codes, manifest validation, Range requests and
//! pagination. A name without `ns` means the stored repository airlock's one naming rule
//! (`airlock_oci::RepoQuery`) finds: `acme/gateway` reads an added `docker.io/acme/gateway`. Docker schema 2 manifests and lists are served with their own media types and
//! exact bytes.
//!
//! It must not know how content is stored: no pack, chunk or index details. Handlers reach the
//! store only through [`AppState`] (on tokio's blocking pool: the store is synchronous) and
//! stream blob bytes through bounded channels, never whole. Requests are parsed once at the edge
//! into validated types ([`Endpoint`] holding `airlock_oci`'s names, tags and references, and
//! the store's digests, which `manifest` bridges from OCI's), and every failure leaves as exactly
//! one [`RegistryError`], whose 5xx body carries no internals; only `error` maps store and OCI
//! errors to spec codes. Manifests are parsed by `airlock_oci` and stored byte for byte.
//!
//! # Overview
//!
//! - [`router`] / [`serve`]: the HTTP API over an [`AppState`] (a store and a [`RegistryConfig`]);
//!   `airlock serve` calls [`serve`], tests call [`router`] with `oneshot`.
//! - [`Route`] / [`Endpoint`]: method, path and query parsed into one enum; each variant names its
//!   spec endpoint id (end-1 .. end-14); [`UploadId`] names an upload session.
//! - [`RegistryError`] and [`ErrorCode`]: the spec's error codes and statuses, as axum responses.
//! - [`manifest_digest`]: the digest a pushed manifest is stored under; [`referrers_index`] builds
//!   the referrers response.
//! - [`parse_range`] / [`parse_upload_range`]: blob GET ranges and upload chunk ranges.
//! - [`paginate`] / [`Page`]: `n`/`last` and the `Link` header for tags and the catalog.
//! - `/healthz` and `/readyz` ([`LIVE_PATH`], [`READY_PATH`]): liveness and readiness, outside
//!   `/v2/`.
//! - [`Metrics`] ([`AppState::metrics`]): Prometheus metrics, requests by [`RouteName`] and
//!   status, bytes served, the blob cache, rebuilds, uploads, staged blobs and import progress
//!   ([`ImportPhase`]), served apart by [`serve_metrics`].
//!
//! ```
//! use airlock_oci::Reference;
//! use airlock_registry::{Endpoint, Route};
//! use axum::http::Method;
//!
//! // A containerd mirror pull of docker.io/library/nginx:1.27.
//! let route = Route::parse(&Method::GET, "/v2/library/nginx/manifests/1.27", Some("ns=docker.io"))?;
//! assert_eq!(route.endpoint.id(), "end-3");
//! let Endpoint::GetManifest { name, reference } = route.endpoint else { unreachable!() };
//! assert_eq!(name.as_str(), "docker.io/library/nginx");
//! assert!(matches!(reference, Reference::Tag(t) if t.as_str() == "1.27"));
//! # Ok::<(), airlock_registry::RegistryError>(())
//! ```

pub use crate::{
    audit::AUDIT_TARGET,
    auth::{AccessRule, Action, Auth, AuthMode, AuthSettings, Challenge, SERVICE, TOKEN_PATH},
    endpoint::{Access, Endpoint, Route, RouteName},
    error::{ErrorCause, ErrorCode, RegistryError, Result},
    health::{LIVE_PATH, READY_PATH, READY_TIMEOUT},
    limits::{BODY_PROGRESS_BYTES, DEFAULT_MAX_BLOB_BYTES, Limits},
    manifest::{manifest_digest, referrers_index},
    metrics::{ImportPhase, METRICS_PATH, Metrics, serve_metrics},
    pagination::{MAX_PAGE_ENTRIES, Page, Paginated, paginate},
    range::{ByteRange, parse_range, parse_upload_range, upload_range_header},
    serve_error::ServeError,
    server::{MAX_HEADER_BYTES, MAX_HEADER_COUNT, MAX_URI_BYTES, router, serve, serve_tls},
    state::{AppState, DEFAULT_UPLOAD_EXPIRY, RegistryConfig},
    tls::TlsFiles,
    upload_id::{MAX_UPLOAD_ID_BYTES, UploadId},
};

mod accept;
mod audit;
mod auth;
mod body;
mod endpoint;
mod error;
mod handlers;
mod health;
mod limits;
mod manifest;
mod metrics;
mod pagination;
mod query;
mod range;
mod serve_error;
mod server;
mod state;
mod tls;
mod upload_id;
mod uploads;
