//! Push of blobs (end-4a/b/c, end-5, end-6, end-11, end-13, end-14): upload sessions,
//! monolithic and chunked uploads, mounts, status and cancellation.

use bytes::Bytes;
use hyper::Method;

use super::{expect_body, expect_optional_digest_header, pull::expect_blob};
use crate::{
    check::{Conformance, Optional},
    content::{Algorithm, Blob, random_bytes},
    error::{Error, ensure},
    http::{Response, with_query},
};

/// The chunk size of chunked uploads unless the registry asks for more.
const CHUNK_BYTES: usize = 16 * 1024;

/// end-4a.
pub(crate) async fn post_upload(c: &Conformance) -> Result<(), Error> {
    let repo = c.repo("post-upload");
    let first = post_session(c, &repo, "").await?;
    let second = post_session(c, &repo, "").await?;
    ensure!(
        first.location != second.location,
        "two POSTs to /v2/{repo}/blobs/uploads/ answered the same Location {}",
        first.location
    );
    let blob = Blob::random(1000);
    close(c, &first.location, &blob.digest, blob.bytes.clone()).await?;
    expect_blob(c, &repo, &blob).await?;
    // Releasing the other session is a courtesy; end-14 checks it.
    let _ = c
        .registry
        .request(Method::DELETE, &second.location)
        .send()
        .await;
    Ok(())
}

/// end-4b.
pub(crate) async fn monolithic_post(c: &Conformance) -> Result<(), Error> {
    let repo = c.repo("monolithic");
    let blob = Blob::random(5000);
    single_post(c, &repo, &blob).await?;
    expect_blob(c, &repo, &blob).await
}

/// end-4c, then end-4b, with sha512.
pub(crate) async fn sha512_blob(c: &Conformance) -> Result<(), Error> {
    let repo = c.repo("sha512");
    let blob = Blob::with_algorithm(
        Algorithm::Sha512,
        "application/octet-stream",
        random_bytes(3000),
    );
    let session = post_session(c, &repo, "digest-algorithm=sha512").await?;
    close(c, &session.location, &blob.digest, blob.bytes.clone()).await?;
    expect_blob(c, &repo, &blob).await?;

    let single = Blob::with_algorithm(
        Algorithm::Sha512,
        "application/octet-stream",
        random_bytes(3000),
    );
    single_post(c, &repo, &single).await?;
    expect_blob(c, &repo, &single).await
}

/// end-5, including 416 for chunks out of order and a streamed PATCH without `Content-Range`.
pub(crate) async fn patch_chunks(c: &Conformance) -> Result<(), Error> {
    let repo = c.repo("chunks");
    let session = post_session(c, &repo, "").await?;
    let chunk = session.min_chunk.max(CHUNK_BYTES);
    let blob = Blob::random(chunk * 3 - 5);
    let bytes = &blob.bytes[..];
    let mut location = session.location;
    let mut offset = 0;
    while offset < bytes.len() {
        let end = (offset + chunk).min(bytes.len());
        if offset > 0 {
            // Skip a chunk ahead, then go back to the start: both are out of order.
            for bad in [offset + chunk, 0] {
                if bad < bytes.len() {
                    let bad_end = (bad + chunk).min(bytes.len());
                    patch(c, &location, &bytes[bad..bad_end], bad)
                        .await?
                        .expect(&[416])?;
                }
                location = expect_upload_range(c, &location, Some(offset - 1)).await?;
            }
        }
        let resp = patch(c, &location, &bytes[offset..end], offset)
            .await?
            .expect(&[202])?;
        expect_range(&resp, Some(end - 1))?;
        location = c.registry.url(resp.require_header("location")?);
        offset = end;
    }
    close(c, &location, &blob.digest, Bytes::new()).await?;
    expect_blob(c, &repo, &blob).await?;

    // Streamed: one PATCH of the whole blob without Content-Range, as docker and containerd do.
    let streamed = Blob::random(20_000);
    let session = post_session(c, &repo, "").await?;
    let resp = c
        .registry
        .request(Method::PATCH, &session.location)
        .header("content-type", "application/octet-stream")
        .body(streamed.bytes.clone())
        .send()
        .await?
        .expect(&[202])?;
    expect_range(&resp, Some(streamed.bytes.len() - 1))?;
    close(
        c,
        &c.registry.url(resp.require_header("location")?),
        &streamed.digest,
        Bytes::new(),
    )
    .await?;
    expect_blob(c, &repo, &streamed).await
}

/// end-6: the whole body in the PUT, a final chunk in the PUT, and a final chunk out of order.
pub(crate) async fn put_close(c: &Conformance) -> Result<(), Error> {
    let repo = c.repo("put-close");
    let whole = Blob::random(4000);
    let session = post_session(c, &repo, "").await?;
    let put = close(c, &session.location, &whole.digest, whole.bytes.clone()).await?;
    let blob_url = c.registry.url(put.require_header("location")?);
    let got = c
        .registry
        .request(Method::GET, &blob_url)
        .send()
        .await?
        .expect(&[200])?;
    expect_body(&got, &whole.bytes)?;

    let chunked = Blob::random(3000);
    let session = post_session(c, &repo, "").await?;
    let resp = patch(c, &session.location, &chunked.bytes[..1000], 0)
        .await?
        .expect(&[202])?;
    let location = c.registry.url(resp.require_header("location")?);
    // The final chunk out of order: it skips bytes 1000..1500.
    let wrong = final_chunk(c, &location, &chunked, 1500).await?;
    wrong.expect(&[416])?;
    let location = expect_upload_range(c, &location, Some(999)).await?;
    final_chunk(c, &location, &chunked, 1000)
        .await?
        .expect(&[201])?
        .require_header("location")?;
    expect_blob(c, &repo, &chunked).await
}

/// end-11, and a mount of a blob that does not exist.
pub(crate) async fn mount(c: &Conformance) -> Result<(), Error> {
    let from = c.repo("mount-from");
    let to = c.repo("mount-to");
    let blob = Blob::random(2500);
    c.registry.push_blob(&from, &blob).await?;
    let query = format!("mount={}&from={from}", blob.digest);
    let resp = c
        .registry
        .request(Method::POST, &format!("/v2/{to}/blobs/uploads/?{query}"))
        .send()
        .await?
        .expect(&[201, 202])?;
    let location = c.registry.url(resp.require_header("location")?);
    if resp.status == 202 {
        ensure!(
            c.optional == Optional::Allow,
            "POST /v2/{to}/blobs/uploads/?{query}: 202 (no mount) for a blob that {from} holds"
        );
        close(c, &location, &blob.digest, blob.bytes.clone()).await?;
    } else {
        expect_optional_digest_header(&resp, &blob.digest)?;
        let got = c
            .registry
            .request(Method::GET, &location)
            .send()
            .await?
            .expect(&[200])?;
        expect_body(&got, &blob.bytes)?;
    }
    expect_blob(c, &to, &blob).await?;

    // Mounting what does not exist must not create it: 202 and an upload session instead (a
    // SHOULD; the endpoint table also lists 404).
    let never = Blob::random(100);
    let query = format!("mount={}&from={from}", never.digest);
    let resp = c
        .registry
        .request(Method::POST, &format!("/v2/{to}/blobs/uploads/?{query}"))
        .send()
        .await?;
    if c.optional == Optional::Allow && resp.status == 404 {
        return Ok(());
    }
    let resp = resp.expect(&[202])?;
    let location = c.registry.url(resp.require_header("location")?);
    close(c, &location, &never.digest, never.bytes.clone()).await?;
    expect_blob(c, &to, &never).await
}

/// end-13.
pub(crate) async fn upload_status(c: &Conformance) -> Result<(), Error> {
    let repo = c.repo("status");
    let blob = Blob::random(3000);
    let session = post_session(c, &repo, "").await?;
    let location = expect_upload_range(c, &session.location, None).await?;
    let resp = patch(c, &location, &blob.bytes[..1000], 0)
        .await?
        .expect(&[202])?;
    let location = c.registry.url(resp.require_header("location")?);
    let location = expect_upload_range(c, &location, Some(999)).await?;
    let resp = patch(c, &location, &blob.bytes[1000..], 1000)
        .await?
        .expect(&[202])?;
    let location = c.registry.url(resp.require_header("location")?);
    let location = expect_upload_range(c, &location, Some(2999)).await?;
    close(c, &location, &blob.digest, Bytes::new()).await?;
    expect_blob(c, &repo, &blob).await
}

/// end-14, and code-3 (BLOB_UPLOAD_UNKNOWN) for the cancelled session.
pub(crate) async fn cancel_upload(c: &Conformance) -> Result<(), Error> {
    let repo = c.repo("cancel");
    let blob = Blob::random(2000);
    let session = post_session(c, &repo, "").await?;
    let resp = patch(c, &session.location, &blob.bytes[..1000], 0)
        .await?
        .expect(&[202])?;
    let location = c.registry.url(resp.require_header("location")?);
    let allowed: &[u16] = match c.optional {
        Optional::Require => &[204],
        Optional::Allow => &[200, 202, 204],
    };
    c.registry
        .request(Method::DELETE, &location)
        .send()
        .await?
        .expect(allowed)?;
    let unknown = "BLOB_UPLOAD_UNKNOWN";
    c.registry
        .request(Method::GET, &location)
        .send()
        .await?
        .expect_error(&[404], unknown, c.optional)?;
    patch(c, &location, &blob.bytes[1000..], 1000)
        .await?
        .expect_error(&[404], unknown, c.optional)?;
    let put = with_query(&location, "digest", &blob.digest);
    c.registry
        .request(Method::PUT, &put)
        .send()
        .await?
        .expect_error(&[404], unknown, c.optional)?;
    let head = format!("/v2/{repo}/blobs/{}", blob.digest);
    c.registry
        .request(Method::HEAD, &head)
        .send()
        .await?
        .expect(&[404])?;
    Ok(())
}

/// An open upload session: where to send the bytes, and the registry's minimum chunk.
pub(crate) struct Session {
    pub(crate) location: String,
    min_chunk: usize,
}

/// POST `/v2/<repo>/blobs/uploads/[?query]` with `Content-Length: 0`: 202 and a `Location`.
pub(crate) async fn post_session(
    c: &Conformance,
    repo: &str,
    query: &str,
) -> Result<Session, Error> {
    let path = match query {
        "" => format!("/v2/{repo}/blobs/uploads/"),
        q => format!("/v2/{repo}/blobs/uploads/?{q}"),
    };
    let resp = c
        .registry
        .request(Method::POST, &path)
        .send()
        .await?
        .expect(&[202])?;
    let location = c.registry.url(resp.require_header("location")?);
    let min_chunk = match resp.header("oci-chunk-min-length") {
        None => 0,
        Some(min) => min.parse().map_err(|_| {
            resp.violation(format!(
                "OCI-Chunk-Min-Length {min:?} is not a number of bytes"
            ))
        })?,
    };
    Ok(Session {
        location,
        min_chunk,
    })
}

/// A single POST with `?digest=` and the body (end-4b); under [`Optional::Allow`] a 202 is
/// followed by the PUT the spec prescribes as fallback.
pub(crate) async fn single_post(c: &Conformance, repo: &str, blob: &Blob) -> Result<(), Error> {
    let path = with_query(
        &format!("/v2/{repo}/blobs/uploads/"),
        "digest",
        &blob.digest,
    );
    let resp = c
        .registry
        .request(Method::POST, &path)
        .header("content-type", "application/octet-stream")
        .body(blob.bytes.clone())
        .send()
        .await?;
    let resp = match c.optional {
        Optional::Require => resp.expect(&[201])?,
        Optional::Allow => resp.expect(&[201, 202])?,
    };
    let location = c.registry.url(resp.require_header("location")?);
    if resp.status == 202 {
        close(c, &location, &blob.digest, blob.bytes.clone()).await?;
        return Ok(());
    }
    expect_optional_digest_header(&resp, &blob.digest)?;
    let got = c
        .registry
        .request(Method::GET, &location)
        .send()
        .await?
        .expect(&[200])?;
    expect_body(&got, &blob.bytes)
}

/// The closing PUT with `?digest=` and `body` (the whole blob, or nothing after PATCHes):
/// 201 and a `Location`.
pub(crate) async fn close(
    c: &Conformance,
    location: &str,
    digest: &str,
    body: Bytes,
) -> Result<Response, Error> {
    let resp = c
        .registry
        .request(Method::PUT, &with_query(location, "digest", digest))
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await?
        .expect(&[201])?;
    resp.require_header("location")?;
    Ok(resp)
}

/// A PATCH of `bytes` as the chunk starting at `start` (`Content-Range: start-end`).
async fn patch(
    c: &Conformance,
    location: &str,
    bytes: &[u8],
    start: usize,
) -> Result<Response, Error> {
    let range = format!("{start}-{}", start + bytes.len() - 1);
    c.registry
        .request(Method::PATCH, location)
        .header("content-type", "application/octet-stream")
        .header("content-range", &range)
        .body(bytes.to_vec())
        .send()
        .await
}

/// The closing PUT carrying the blob's bytes from `start` as its final chunk.
async fn final_chunk(
    c: &Conformance,
    location: &str,
    blob: &Blob,
    start: usize,
) -> Result<Response, Error> {
    let range = format!("{start}-{}", blob.bytes.len() - 1);
    c.registry
        .request(Method::PUT, &with_query(location, "digest", &blob.digest))
        .header("content-type", "application/octet-stream")
        .header("content-range", &range)
        .body(blob.bytes.slice(start..))
        .send()
        .await
}

/// GETs an upload session (end-13): 204, a `Location`, and `Range: 0-<last>` when bytes were
/// received. Returns the `Location` to continue with.
async fn expect_upload_range(
    c: &Conformance,
    location: &str,
    last: Option<usize>,
) -> Result<String, Error> {
    let resp = c
        .registry
        .request(Method::GET, location)
        .send()
        .await?
        .expect(&[204])?;
    expect_range(&resp, last)?;
    Ok(c.registry.url(resp.require_header("location")?))
}

/// `Range: 0-<last>` on an upload response; nothing is required before the first byte.
fn expect_range(resp: &Response, last: Option<usize>) -> Result<(), Error> {
    let Some(last) = last else { return Ok(()) };
    let got = resp.require_header("range")?;
    let expected = format!("0-{last}");
    if got != expected {
        return Err(resp.violation(format!("Range is {got:?}, expected {expected:?}")));
    }
    Ok(())
}
