//! The one fallback handler: parses a request into a [`Route`], names the stored repositories
//! it means, admits its caller (the one place auth is checked: handlers never see credentials),
//! and dispatches on its [`Endpoint`]
//! to a handler per spec endpoint. Handlers extract, call the store through [`AppState`], and
//! return a typed response; every failure leaves as a [`RegistryError`]. The token endpoint
//! (`token`) is the one route outside `/v2/`.

use std::fmt;

use airlock_oci::{RepoName, RepoQuery};
use airlock_store::Store;
use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::{
    accept::ConnInfo,
    audit::Audit,
    auth::{Caller, Credentials, realm},
    endpoint::{Access, Endpoint, Route},
    error::{ErrorCode, RegistryError},
    state::AppState,
};

mod blobs;
mod listing;
mod manifests;
pub(crate) mod token;
mod uploads;

/// `Docker-Content-Digest`: the digest of the content a response is about.
pub(crate) const DOCKER_CONTENT_DIGEST: HeaderName =
    HeaderName::from_static("docker-content-digest");
/// `Docker-Upload-UUID`: an upload session's id.
pub(crate) const DOCKER_UPLOAD_UUID: HeaderName = HeaderName::from_static("docker-upload-uuid");
/// `Docker-Distribution-API-Version`, sent on every response.
pub(crate) const API_VERSION: HeaderName =
    HeaderName::from_static("docker-distribution-api-version");
/// `OCI-Subject`: the subject a pushed manifest was recorded as referring to.
pub(crate) const OCI_SUBJECT: HeaderName = HeaderName::from_static("oci-subject");
/// `OCI-Tag`: a tag a push by digest created (end-7b).
pub(crate) const OCI_TAG: HeaderName = HeaderName::from_static("oci-tag");
/// `OCI-Filters-Applied`: the filters a referrers response applied (end-12b).
pub(crate) const OCI_FILTERS_APPLIED: HeaderName = HeaderName::from_static("oci-filters-applied");
/// `OCI-Namespace`: the `ns` source host that scoped the request.
pub(crate) const OCI_NAMESPACE: HeaderName = HeaderName::from_static("oci-namespace");

/// Whether a GET or a HEAD asked: the same lookups, with or without the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Want {
    /// GET: headers and body.
    Body,
    /// HEAD: headers only.
    Head,
}

/// Parses the request, enforces read-only mode, names the repositories (`place_names`), admits
/// the caller (auth), caps upload
/// sessions, runs the endpoint's handler and writes the audit line of a write.
pub(crate) async fn dispatch(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let mut route = match Route::parse(&parts.method, parts.uri.path(), parts.uri.query()) {
        Ok(route) => route,
        Err(e) => return e.into_response(),
    };
    tracing::Span::current().record("endpoint", route.endpoint.id());
    if state.config().read_only && route.endpoint.access() == Access::Write {
        return RegistryError::read_only().into_response();
    }
    // Names are placed before the caller is admitted, so access rules and token scopes apply
    // to the repository read, as they do for `ns` requests (and challenges name it). A failed
    // placement leaves the names as asked and is answered only once the caller is admitted to
    // them: who may not pull a name does not learn that it is ambiguous.
    let placed = match route.namespace {
        None => place_names(&state, &mut route.endpoint).await,
        Some(_) => Ok(()),
    };
    let conn = parts
        .extensions
        .get::<ConnInfo>()
        .copied()
        .unwrap_or_default();
    let audit = Audit::of(&route.endpoint);
    let realm = realm(&parts.headers, &parts.uri, conn.tls);
    let admitted = state
        .auth()
        .admit(&parts.headers, &realm, &mut route.endpoint)
        .await;
    let caller = match admitted {
        Ok(caller) => caller,
        Err(e) => {
            if let Some(audit) = &audit {
                audit.log(e.status(), &claimed_user(&parts.headers), conn.peer);
            }
            return e.into_response();
        }
    };
    if let Err(e) = placed {
        if let Some(audit) = &audit {
            audit.log(e.status(), caller.name(), conn.peer);
        }
        return e.into_response();
    }
    let reservation = match opens_session(&route.endpoint) {
        true => {
            let uploads = state.uploads();
            let client = conn.peer.map(|p| p.ip());
            let limits = &state.config().limits;
            match state
                .quota()
                .reserve(client, limits, uploads.len(), |id| uploads.is_open(id))
            {
                Ok(reservation) => Some(reservation),
                Err(e) => return e.into_response(),
            }
        }
        false => None,
    };
    let mut response = handle(&state, route.endpoint, &caller, &parts.headers, body).await;
    if let Some(reservation) = reservation
        && let Some(id) = response
            .headers()
            .get(DOCKER_UPLOAD_UUID)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    {
        reservation.opened(id);
    }
    if let Some(audit) = &audit {
        audit.log(response.status(), caller.name(), conn.peer);
    }
    if let Some(value) = route
        .namespace
        .and_then(|ns| HeaderValue::try_from(ns.as_str()).ok())
    {
        response.headers_mut().insert(OCI_NAMESPACE, value);
    }
    response
}

/// Names the stored repositories a request without `ns` means, by airlock's one naming rule
/// ([`RepoQuery::place`]): the path itself when stored, else docker's normalization of it when
/// stored (a pull of `acme/gateway` reads the added `docker.io/acme/gateway`), else the path
/// itself (a push of a new repository creates it as pushed). A path that means two stored
/// repositories is refused naming both, the names left as asked; a mount from one falls back to
/// an upload, as any mount the registry cannot make does.
async fn place_names(state: &AppState, endpoint: &mut Endpoint) -> Result<(), RegistryError> {
    let (Some(name), from) = endpoint.names_mut() else {
        return Ok(());
    };
    let asked = (name.clone(), from.as_deref().cloned().flatten());
    let (placed, from_placed) = state
        .blocking(move |s| {
            let name = place(s.store(), asked.0)??;
            let from = match asked.1 {
                Some(from) => place(s.store(), from)?.ok(),
                None => None,
            };
            Ok((name, from))
        })
        .await?;
    *name = placed;
    if let Some(from) = from {
        *from = from_placed;
    }
    Ok(())
}

/// [`RepoQuery::place`] against the store: a store failure apart from the rule's answer.
fn place(
    store: &Store,
    asked: RepoName,
) -> Result<Result<RepoName, airlock_oci::Error>, RegistryError> {
    let query = RepoQuery::from(asked);
    let mut held = Vec::with_capacity(2);
    for candidate in query.candidates() {
        if store.has_repository(candidate.as_str())? {
            held.push(candidate.clone());
        }
    }
    Ok(query.place(|c| Ok(held.contains(c))))
}

/// Whether the request may open an upload session (end-4a, or a mount that falls back to one).
fn opens_session(endpoint: &Endpoint) -> bool {
    matches!(endpoint, Endpoint::StartUpload { digest: None, .. })
}

/// The account a refused request claimed, for the audit line.
fn claimed_user(headers: &HeaderMap) -> String {
    match Credentials::of(headers) {
        Ok(Some(Credentials::Basic(user, _))) if !user.is_empty() => user,
        Ok(Some(Credentials::Bearer(_))) => "(token)".to_owned(),
        _ => "-".to_owned(),
    }
}

/// Runs the endpoint's handler.
async fn handle(
    state: &AppState,
    endpoint: Endpoint,
    caller: &Caller,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let result = match endpoint {
        Endpoint::Base => Ok(listing::base()),
        Endpoint::Catalog { page } => {
            let (s, c) = (state.clone(), caller.clone());
            listing::catalog(state, page, move |repo| s.auth().may_pull(&c, repo)).await
        }
        Endpoint::Tags { name, page } => listing::tags(state, name, page).await,
        Endpoint::Referrers {
            name,
            digest,
            artifact_type,
        } => listing::referrers(state, name, digest, artifact_type).await,
        Endpoint::GetManifest { name, reference } => {
            manifests::get(state, name, reference, Want::Body).await
        }
        Endpoint::HeadManifest { name, reference } => {
            manifests::get(state, name, reference, Want::Head).await
        }
        Endpoint::PutManifest {
            name,
            reference,
            tags,
        } => manifests::put(state, name, reference, tags, headers, body).await,
        Endpoint::DeleteManifest { name, reference } => {
            manifests::delete(state, name, reference).await
        }
        Endpoint::GetBlob { name, digest } => {
            blobs::get(state, name, digest, Want::Body, headers).await
        }
        Endpoint::HeadBlob { name, digest } => {
            blobs::get(state, name, digest, Want::Head, headers).await
        }
        Endpoint::DeleteBlob { name, digest } => blobs::delete(state, name, digest).await,
        Endpoint::StartUpload {
            name,
            digest,
            mount,
            from,
            ..
        } => match (mount, digest) {
            (Some(mount), _) => uploads::mount(state, name, mount, from).await,
            (None, Some(digest)) => uploads::post_blob(state, name, digest, headers, body).await,
            (None, None) => uploads::start(state, name).await,
        },
        Endpoint::PatchUpload { name, id } => uploads::patch(state, name, id, headers, body).await,
        Endpoint::PutUpload { name, id, digest } => {
            uploads::put(state, name, id, digest, headers, body).await
        }
        Endpoint::GetUpload { name, id } => uploads::status(state, name, id).await,
        Endpoint::DeleteUpload { name, id } => uploads::cancel(state, name, id).await,
    };
    result.into_response()
}

/// A successful response under construction.
#[derive(Debug)]
pub(crate) struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Body,
}

impl Reply {
    /// An empty response with `status`.
    pub(crate) fn new(status: StatusCode) -> Reply {
        Reply {
            status,
            headers: HeaderMap::new(),
            body: Body::empty(),
        }
    }

    /// Adds a header. Values are built from validated names, digests and numbers, always
    /// visible ASCII; one that is not is left out rather than sent broken.
    pub(crate) fn header(mut self, name: HeaderName, value: impl fmt::Display) -> Reply {
        match HeaderValue::try_from(value.to_string()) {
            Ok(v) => {
                self.headers.append(name, v);
            }
            Err(_) => tracing::warn!(header = %name, "left out a header value that is not ASCII"),
        }
        self
    }

    /// Sets the body.
    pub(crate) fn body(mut self, body: impl Into<Body>) -> Reply {
        self.body = body.into();
        self
    }

    /// Sets a JSON body and its Content-Type.
    pub(crate) fn json(self, value: &impl serde::Serialize) -> Result<Reply, RegistryError> {
        let bytes = serde_json::to_vec(value).map_err(RegistryError::internal)?;
        Ok(self
            .header(header::CONTENT_TYPE, "application/json")
            .body(bytes))
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body).into_response();
        response.headers_mut().extend(self.headers);
        response
    }
}

/// The request's `Content-Length`, if it sent one; a malformed value is a 400.
pub(crate) fn content_length(headers: &HeaderMap) -> Result<Option<u64>, RegistryError> {
    let Some(value) = headers.get(header::CONTENT_LENGTH) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .map(Some)
        .ok_or_else(|| RegistryError::new(ErrorCode::SizeInvalid, "malformed Content-Length"))
}

/// A header's value as text, if it is present and visible ASCII.
pub(crate) fn header_text<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_lengths() {
        let mut headers = HeaderMap::new();
        assert_eq!(content_length(&headers).expect("absent"), None);
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("42"));
        assert_eq!(content_length(&headers).expect("ok"), Some(42));
        for bad in ["-1", "", "1e3", "99999999999999999999999", " 4"] {
            headers.insert(
                header::CONTENT_LENGTH,
                HeaderValue::from_str(bad).expect("value"),
            );
            assert_eq!(
                content_length(&headers).expect_err(bad).code(),
                Some(ErrorCode::SizeInvalid)
            );
        }
    }

    #[test]
    fn reply_headers() {
        let response = Reply::new(StatusCode::CREATED)
            .header(OCI_TAG, "v1")
            .header(OCI_TAG, "v2")
            .header(header::LOCATION, "bad\nvalue")
            .into_response();
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(response.headers().get_all(OCI_TAG).iter().count(), 2);
        assert!(response.headers().get(header::LOCATION).is_none());
    }
}
