//! Reading and rewriting one exchange for a mutant: what a request addresses, requests of the
//! mutant's own, headers, statuses, whole bodies, JSON bodies, spec error bodies and query
//! parameters.

use axum::{
    Router,
    body::{Body, Bytes},
    extract::Request,
    http::{HeaderValue, Method, StatusCode, Uri, header, response::Parts},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use tower::ServiceExt;

/// What a request addresses, from its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Base,
    Blob,
    Upload,
    Manifest,
    Tags,
    Referrers,
    Other,
}

impl Kind {
    pub(super) fn of(path: &str) -> Kind {
        if path == "/v2/" || path == "/v2" {
            Kind::Base
        } else if path.contains("/blobs/uploads") {
            Kind::Upload
        } else if path.contains("/blobs/") {
            Kind::Blob
        } else if path.contains("/manifests/") {
            Kind::Manifest
        } else if path.ends_with("/tags/list") {
            Kind::Tags
        } else if path.contains("/referrers/") {
            Kind::Referrers
        } else {
            Kind::Other
        }
    }
}

/// Sends a request of the mutant's own, without a body, to airlock unmutated.
pub(super) async fn dispatch(
    inner: &Router,
    method: Method,
    uri: Uri,
    headers: &[(&str, String)],
) -> Response {
    let mut req = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    let req = req
        .body(Body::empty())
        .expect("a request of the mutant's own");
    match inner.clone().oneshot(req).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    }
}

/// Every manifest media type, as a client's `Accept`.
pub(super) fn accept_manifests() -> [(&'static str, String); 1] {
    let all = [
        airlock_conformance::OCI_MANIFEST,
        airlock_conformance::OCI_INDEX,
        airlock_conformance::DOCKER_MANIFEST,
        airlock_conformance::DOCKER_MANIFEST_LIST,
    ];
    [("accept", all.join(", "))]
}

/// Whether the path's last segment is a digest (`algorithm:hex`) rather than a tag.
pub(super) fn is_digest(path: &str) -> bool {
    path.rsplit('/').next().is_some_and(|r| r.contains(':'))
}

pub(super) fn header_text<'a>(resp: &'a Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

pub(super) fn set_header(resp: &mut Response, name: &'static str, value: &str) {
    let value = HeaderValue::from_str(value).expect("a header value");
    resp.headers_mut().insert(name, value);
}

pub(super) fn drop_header(mut resp: Response, name: &str) -> Response {
    resp.headers_mut().remove(name);
    resp
}

/// Sets a header of a 2xx response.
pub(super) fn replace_ok_header(mut resp: Response, name: &'static str, value: &str) -> Response {
    if resp.status().is_success() {
        set_header(&mut resp, name, value);
    }
    resp
}

/// The response with status `to` where it had `from`.
pub(super) fn status_from_to(mut resp: Response, from: u16, to: u16) -> Response {
    if resp.status().as_u16() == from {
        *resp.status_mut() = StatusCode::from_u16(to).expect("a status code");
    }
    resp
}

/// A spec error body with `code`.
pub(super) fn error(status: StatusCode, code: &str) -> Response {
    let body = json!({ "errors": [{ "code": code, "message": "mutant", "detail": null }] });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The codes of a spec error body.
pub(super) fn codes(body: &[u8]) -> Vec<String> {
    let value: Value = serde_json::from_slice(body).unwrap_or_default();
    value["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["code"].as_str().map(str::to_owned))
        .collect()
}

/// The whole response body.
pub(super) async fn read(resp: Response) -> (Parts, Bytes) {
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .expect("read airlock's response");
    (parts, bytes)
}

/// A response with a new body; hyper computes its `Content-Length`.
pub(super) fn rebuild(mut parts: Parts, bytes: Bytes) -> Response {
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(bytes))
}

/// Edits a JSON response body; other bodies pass unchanged.
pub(super) async fn edit_json(resp: Response, edit: impl FnOnce(&mut Value)) -> Response {
    let (parts, bytes) = read(resp).await;
    let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else {
        return rebuild(parts, bytes);
    };
    edit(&mut value);
    rebuild(parts, Bytes::from(value.to_string()))
}

/// Removes `field` from every descriptor of a referrers list.
pub(super) async fn edit_referrers(resp: Response, field: &str) -> Response {
    edit_json(resp, |index| {
        for entry in index["manifests"].as_array_mut().into_iter().flatten() {
            if let Some(entry) = entry.as_object_mut() {
                entry.remove(field);
            }
        }
    })
    .await
}

pub(super) fn with_uri(mut req: Request, change: impl FnOnce(&Uri) -> Uri) -> Request {
    *req.uri_mut() = change(req.uri());
    req
}

pub(super) fn params(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

pub(super) fn has_param(query: &str, key: &str) -> bool {
    params(query).any(|(k, _)| k == key)
}

pub(super) fn param(query: &str, key: &str) -> Option<String> {
    params(query)
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_owned())
}

/// `uri` without the query parameters named in `keys`.
pub(super) fn without_params(uri: &Uri, keys: &[&str]) -> Uri {
    let kept: Vec<String> = params(uri.query().unwrap_or(""))
        .filter(|(k, _)| !keys.contains(k))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let target = if kept.is_empty() {
        uri.path().to_owned()
    } else {
        format!("{}?{}", uri.path(), kept.join("&"))
    };
    target.parse().expect("a request target")
}

/// `uri` with its repository name lowercased (`/v2/<name>/blobs/uploads/...`, `/manifests/...`).
pub(super) fn lowercase_name(uri: &Uri) -> Uri {
    let path = uri.path();
    let end = ["/blobs/uploads", "/manifests/"]
        .iter()
        .find_map(|marker| path.find(marker))
        .unwrap_or(path.len());
    let mut target = format!("{}{}", path[..end].to_lowercase(), &path[end..]);
    if let Some(query) = uri.query() {
        target = format!("{target}?{query}");
    }
    target.parse().expect("a request target")
}
