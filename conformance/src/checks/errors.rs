//! Error codes (code-1 .. code-8): the spec's JSON error bodies for content that is unknown,
//! invalid, or whose digest does not match.

use bytes::Bytes;
use hyper::Method;

use super::{expect_status, fetch_manifest, push::post_session};
use crate::{
    check::{Conformance, Optional},
    content::{Blob, ImageBuilder, OCI_MANIFEST},
    error::Error,
    http::with_query,
};

/// code-1.
pub(crate) async fn blob_unknown(c: &Conformance) -> Result<(), Error> {
    let repo = c.repo("blob-unknown");
    let pushed = Blob::random(100);
    c.registry.push_blob(&repo, &pushed).await?;
    let never = Blob::random(100);
    let path = format!("/v2/{repo}/blobs/{}", never.digest);
    c.registry
        .request(Method::GET, &path)
        .send()
        .await?
        .expect_error(&[404], "BLOB_UNKNOWN", c.optional)?;
    expect_status(c, Method::HEAD, &path, &[404]).await?;
    Ok(())
}

/// code-4, for each way of pushing a blob and for manifests.
pub(crate) async fn digest_invalid(c: &Conformance) -> Result<(), Error> {
    let repo = c.repo("digest-invalid");
    let blob = Blob::random(3000);
    // The digest of other bytes: well formed, and wrong.
    let wrong = Blob::random(3000).digest;
    let code = "DIGEST_INVALID";

    // POST then PUT with the whole body.
    let session = post_session(c, &repo, "").await?;
    put_with_digest(c, &session.location, &wrong, blob.bytes.clone())
        .await?
        .expect_error(&[400], code, c.optional)?;

    // Chunks, then an empty closing PUT.
    let session = post_session(c, &repo, "").await?;
    let resp = c
        .registry
        .request(Method::PATCH, &session.location)
        .header("content-type", "application/octet-stream")
        .header("content-range", &format!("0-{}", blob.bytes.len() - 1))
        .body(blob.bytes.clone())
        .send()
        .await?
        .expect(&[202])?;
    let location = c.registry.url(resp.require_header("location")?);
    put_with_digest(c, &location, &wrong, Bytes::new())
        .await?
        .expect_error(&[400], code, c.optional)?;

    // A single POST.
    let post = with_query(&format!("/v2/{repo}/blobs/uploads/"), "digest", &wrong);
    let resp = c
        .registry
        .request(Method::POST, &post)
        .header("content-type", "application/octet-stream")
        .body(blob.bytes.clone())
        .send()
        .await?;
    if !(c.optional == Optional::Allow && resp.status == 202) {
        resp.expect_error(&[400], code, c.optional)?;
    }
    let path = format!("/v2/{repo}/blobs/{wrong}");
    expect_status(c, Method::HEAD, &path, &[404]).await?;

    // Digests that are not digests, or of an algorithm nobody supports (400 is a SHOULD).
    if c.optional == Optional::Require {
        for bad in [
            "sha256:baddigeststring",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
        ] {
            let session = post_session(c, &repo, "").await?;
            put_with_digest(c, &session.location, bad, blob.bytes.clone())
                .await?
                .expect(&[400])?;
        }
    }

    // The blob itself still pushes, so the failures above were about the digest.
    c.registry.push_blob(&repo, &blob).await?;
    expect_status(
        c,
        Method::HEAD,
        &format!("/v2/{repo}/blobs/{}", blob.digest),
        &[200],
    )
    .await?;

    // A manifest PUT under a digest that is not its own.
    let image = ImageBuilder::new().layers(0).build();
    for b in image.blobs() {
        c.registry.push_blob(&repo, b).await?;
    }
    let other = ImageBuilder::new().layers(0).build().manifest.digest;
    c.registry
        .request(Method::PUT, &format!("/v2/{repo}/manifests/{other}"))
        .header("content-type", OCI_MANIFEST)
        .body(image.manifest.bytes.clone())
        .send()
        .await?
        .expect_error(&[400], code, c.optional)?;
    fetch_manifest(c, Method::GET, &repo, &other)
        .await?
        .expect(&[404])?;
    c.registry
        .request(
            Method::PUT,
            &format!("/v2/{repo}/manifests/sha256:baddigeststring"),
        )
        .header("content-type", OCI_MANIFEST)
        .body(image.manifest.bytes.clone())
        .send()
        .await?
        .expect(&[400])?;
    Ok(())
}

/// code-5: a missing layer, then a missing config.
pub(crate) async fn manifest_blob_unknown(c: &Conformance) -> Result<(), Error> {
    let repo = c.repo("manifest-blob-unknown");
    let image = ImageBuilder::new().layers(2).build();
    c.registry.push_blob(&repo, &image.config).await?;
    c.registry.push_blob(&repo, &image.layers[0]).await?;
    expect_blob_unknown(c, &repo, &image.manifest).await?;

    let image = ImageBuilder::new().layers(1).build();
    c.registry.push_blob(&repo, &image.layers[0]).await?;
    expect_blob_unknown(c, &repo, &image.manifest).await
}

async fn expect_blob_unknown(c: &Conformance, repo: &str, manifest: &Blob) -> Result<(), Error> {
    let tag = c.tag("sparse");
    let resp = c
        .registry
        .request(Method::PUT, &format!("/v2/{repo}/manifests/{tag}"))
        .header("content-type", &manifest.media_type)
        .body(manifest.bytes.clone())
        .send()
        .await?;
    if c.optional == Optional::Allow && resp.status == 201 {
        // Registries MAY accept such a manifest.
        return Ok(());
    }
    resp.expect_error(&[400, 404], "MANIFEST_BLOB_UNKNOWN", c.optional)?;
    fetch_manifest(c, Method::GET, repo, &tag)
        .await?
        .expect(&[404])?;
    Ok(())
}

/// code-6.
pub(crate) async fn manifest_invalid(c: &Conformance) -> Result<(), Error> {
    let repo = c.repo("manifest-invalid");
    for body in [
        &b"this is not json"[..],
        b"[]",
        br#"{"schemaVersion": 2, "mediaType": 7}"#,
    ] {
        let tag = c.tag("invalid");
        c.registry
            .request(Method::PUT, &format!("/v2/{repo}/manifests/{tag}"))
            .header("content-type", OCI_MANIFEST)
            .body(body.to_vec())
            .send()
            .await?
            .expect_error(&[400], "MANIFEST_INVALID", c.optional)?;
        fetch_manifest(c, Method::GET, &repo, &tag)
            .await?
            .expect(&[404])?;
    }
    Ok(())
}

/// code-7, by tag and digest in a repository that exists; 404 in one that does not.
pub(crate) async fn manifest_unknown(c: &Conformance) -> Result<(), Error> {
    let repo = c.repo("manifest-unknown");
    let image = ImageBuilder::new().layers(0).build();
    c.registry
        .push_image(&repo, &c.tag("present"), &image)
        .await?;
    let never = ImageBuilder::new().layers(0).build().manifest.digest;
    for reference in [c.tag("absent"), never.clone()] {
        fetch_manifest(c, Method::GET, &repo, &reference)
            .await?
            .expect_error(&[404], "MANIFEST_UNKNOWN", c.optional)?;
        fetch_manifest(c, Method::HEAD, &repo, &reference)
            .await?
            .expect(&[404])?;
    }
    let nowhere = c.repo("never-pushed");
    fetch_manifest(c, Method::GET, &nowhere, "latest")
        .await?
        .expect(&[404])?;
    fetch_manifest(c, Method::GET, &nowhere, &never)
        .await?
        .expect(&[404])?;
    Ok(())
}

/// code-8: names outside `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.
pub(crate) async fn name_invalid(c: &Conformance) -> Result<(), Error> {
    let image = ImageBuilder::new().layers(0).build();
    for name in [
        "conformance/UPPER",
        "conformance/-lead",
        "conformance/trail-",
        "conformance/a..b",
        "conformance/a___b",
    ] {
        c.registry
            .request(Method::POST, &format!("/v2/{name}/blobs/uploads/"))
            .send()
            .await?
            .expect_error(&[400, 404], "NAME_INVALID", c.optional)?;
        c.registry
            .request(Method::PUT, &format!("/v2/{name}/manifests/latest"))
            .header("content-type", OCI_MANIFEST)
            .body(image.manifest.bytes.clone())
            .send()
            .await?
            .expect_error(&[400, 404], "NAME_INVALID", c.optional)?;
    }
    Ok(())
}

async fn put_with_digest(
    c: &Conformance,
    location: &str,
    digest: &str,
    body: Bytes,
) -> Result<crate::http::Response, Error> {
    c.registry
        .request(Method::PUT, &with_query(location, "digest", digest))
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
}
