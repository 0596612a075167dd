//! The checks themselves, by area of the spec; each takes the [`Conformance`] it runs for and
//! returns the first way the registry broke the spec. Helpers here state expectations shared by
//! several areas.

use hyper::Method;

use crate::{
    check::Conformance,
    content::{Blob, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST},
    error::Error,
    http::Response,
};

pub(crate) mod discovery;
pub(crate) mod errors;
pub(crate) mod management;
pub(crate) mod manifests;
pub(crate) mod pull;
pub(crate) mod push;

/// Every manifest type the checks push, as an `Accept` header.
fn accept_manifests() -> String {
    [
        OCI_MANIFEST,
        OCI_INDEX,
        DOCKER_MANIFEST,
        DOCKER_MANIFEST_LIST,
    ]
    .join(", ")
}

/// A manifest request (GET or HEAD) with the `Accept` header a client sends.
async fn fetch_manifest(
    c: &Conformance,
    method: Method,
    repo: &str,
    reference: &str,
) -> Result<Response, Error> {
    c.registry
        .request(method, &format!("/v2/{repo}/manifests/{reference}"))
        .header("accept", &accept_manifests())
        .send()
        .await
}

/// GETs a manifest and checks it is `manifest`: 200, the exact bytes, its media type as
/// `Content-Type` and its digest in `Docker-Content-Digest`.
async fn expect_manifest(
    c: &Conformance,
    repo: &str,
    reference: &str,
    manifest: &Blob,
) -> Result<(), Error> {
    let got = fetch_manifest(c, Method::GET, repo, reference)
        .await?
        .expect(&[200])?;
    expect_body(&got, &manifest.bytes)?;
    expect_media_type(&got, &manifest.media_type)?;
    expect_digest_header(&got, &manifest.digest)?;
    let head = fetch_manifest(c, Method::HEAD, repo, reference)
        .await?
        .expect(&[200])?;
    expect_digest_header(&head, &manifest.digest)?;
    expect_content_length(&head, manifest.size())?;
    expect_media_type(&head, &manifest.media_type)
}

/// The response body is exactly `bytes`.
fn expect_body(resp: &Response, bytes: &[u8]) -> Result<(), Error> {
    if resp.body[..] == *bytes {
        return Ok(());
    }
    let first_difference = resp.body.iter().zip(bytes).position(|(a, b)| a != b);
    Err(resp.violation(format!(
        "body of {} bytes is not the {} bytes expected (first difference at {})",
        resp.body.len(),
        bytes.len(),
        first_difference.map_or_else(|| "the shorter one's end".to_owned(), |i| i.to_string()),
    )))
}

/// `Docker-Content-Digest` is present and equals `digest`.
fn expect_digest_header(resp: &Response, digest: &str) -> Result<(), Error> {
    let got = resp.require_header("docker-content-digest")?;
    if got != digest {
        return Err(resp.violation(format!("Docker-Content-Digest is {got}, expected {digest}")));
    }
    Ok(())
}

/// `Docker-Content-Digest`, when the registry sends it, equals `digest`.
fn expect_optional_digest_header(resp: &Response, digest: &str) -> Result<(), Error> {
    match resp.header("docker-content-digest") {
        Some(got) if got != digest => {
            Err(resp.violation(format!("Docker-Content-Digest is {got}, expected {digest}")))
        }
        _ => Ok(()),
    }
}

/// `Content-Length` equals `len`.
fn expect_content_length(resp: &Response, len: u64) -> Result<(), Error> {
    let got = resp.require_header("content-length")?;
    if got.parse::<u64>().ok() != Some(len) {
        return Err(resp.violation(format!("Content-Length is {got}, expected {len}")));
    }
    Ok(())
}

/// `Content-Type`, without parameters, equals `media_type`.
fn expect_media_type(resp: &Response, media_type: &str) -> Result<(), Error> {
    match resp.media_type() {
        Some(got) if got == media_type => Ok(()),
        got => Err(resp.violation(format!(
            "Content-Type is {}, expected {media_type}",
            got.unwrap_or("absent")
        ))),
    }
}

/// Requests `path` and expects one of `statuses`.
async fn expect_status(
    c: &Conformance,
    method: Method,
    path: &str,
    statuses: &[u16],
) -> Result<Response, Error> {
    c.registry
        .request(method, path)
        .send()
        .await?
        .expect(statuses)
}
