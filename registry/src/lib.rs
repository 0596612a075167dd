//! The OCI Distribution v1.1 HTTP surface of airlock: every endpoint of the spec (pull, push,
//! chunked and mounted uploads, tags, referrers, deletes) plus the catalog and containerd's `ns`
//! mirror parameter, with the spec's error codes, manifest validation, Range requests and
//! pagination. Docker schema 2 manifests and lists are served with their own media types and
//! exact bytes.
//!
//! It must not know how content is stored: no pack, chunk or index details. Handlers reach the
//! store only through [`AppState`] (on tokio's blocking pool: the store is synchronous) and
//! stream blob bytes through bounded channels, never whole. Requests are parsed once at the edge
//! into validated types ([`Endpoint`], [`RepoName`], [`Reference`], `Digest`), and every failure
//! leaves as exactly one [`RegistryError`], whose 5xx body carries no internals; only `error`
//! maps store errors to spec codes.
//!
//! # Overview
//!
//! - [`router`] / [`serve`]: the HTTP API over an [`AppState`] (a store and a [`RegistryConfig`]);
//!   `airlock serve` calls [`serve`], tests call [`router`] with `oneshot`.
//! - [`Route`] / [`Endpoint`]: method, path and query parsed into one enum; each variant names its
//!   spec endpoint id (end-1 .. end-14).
//! - [`RepoName`], [`Tag`], [`Reference`], [`UploadId`], [`Namespace`]: validated identifiers.
//! - [`RegistryError`] and [`ErrorCode`]: the spec's error codes and statuses, as axum responses.
//! - [`parse_manifest`] -> [`ParsedManifest`]: a pushed manifest checked and its references listed;
//!   [`referrers_index`] builds the referrers response.
//! - [`parse_range`] / [`parse_upload_range`]: blob GET ranges and upload chunk ranges.
//! - [`paginate`] / [`Page`]: `n`/`last` and the `Link` header for tags and the catalog.
//!
//! ```
//! use airlock_registry::{Endpoint, Reference, Route};
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
    endpoint::{Access, Endpoint, Route},
    error::{ErrorCause, ErrorCode, RegistryError, Result},
    manifest::{
        DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, Descriptor, MAX_MANIFEST_BYTES, ManifestMediaType,
        OCI_INDEX, OCI_MANIFEST, ParsedManifest, manifest_digest, parse_manifest, referrers_index,
    },
    names::{
        MAX_NAME_BYTES, MAX_TAG_BYTES, MAX_UPLOAD_ID_BYTES, Namespace, Reference, RepoName, Tag,
        UploadId,
    },
    pagination::{MAX_PAGE_ENTRIES, Page, Paginated, paginate},
    range::{ByteRange, parse_range, parse_upload_range, upload_range_header},
    server::{MAX_HEADER_BYTES, MAX_HEADER_COUNT, MAX_URI_BYTES, router, serve},
    state::{AppState, DEFAULT_UPLOAD_EXPIRY, RegistryConfig},
};

mod body;
mod endpoint;
mod error;
mod handlers;
mod manifest;
mod names;
mod pagination;
mod query;
mod range;
mod server;
mod state;
mod uploads;
