//! Pull (end-1, end-2, end-3): the base endpoint, blobs with Range, manifests by tag and digest.

use hyper::Method;

use super::{
    expect_body, expect_content_length, expect_digest_header, expect_manifest, expect_status,
    fetch_manifest,
};
use crate::{
    check::{Conformance, Optional},
    content::{Blob, Format, ImageBuilder, OCI_EMPTY, index_of},
    error::{Error, ensure},
};

/// end-1.
pub(crate) async fn base(c: &Conformance) -> Result<(), Error> {
    expect_status(c, Method::GET, "/v2/", &[200]).await?;
    Ok(())
}

/// end-2, GET and HEAD.
pub(crate) async fn pull_blob(c: &Conformance) -> Result<(), Error> {
    let repo = c.repo("pull-blob");
    let blob = Blob::random(3000);
    c.registry.push_blob(&repo, &blob).await?;
    expect_blob(c, &repo, &blob).await?;

    let never = Blob::random(64);
    let path = format!("/v2/{repo}/blobs/{}", never.digest);
    expect_status(c, Method::GET, &path, &[404]).await?;
    expect_status(c, Method::HEAD, &path, &[404]).await?;
    Ok(())
}

/// GET and HEAD of a pushed blob: 200, the bytes, its digest and length. Whether HEAD sent a
/// body cannot be seen here: the client reads none after HEAD, so bytes sent anyway would break
/// the next response on the connection, which fails as "no response".
pub(crate) async fn expect_blob(c: &Conformance, repo: &str, blob: &Blob) -> Result<(), Error> {
    let path = format!("/v2/{repo}/blobs/{}", blob.digest);
    let get = expect_status(c, Method::GET, &path, &[200]).await?;
    expect_body(&get, &blob.bytes)?;
    expect_digest_header(&get, &blob.digest)?;
    let head = expect_status(c, Method::HEAD, &path, &[200]).await?;
    expect_digest_header(&head, &blob.digest)?;
    expect_content_length(&head, blob.size())
}

/// end-2 with `Range` (RFC 9110 section 14), the cases of the spec's conformance suite.
pub(crate) async fn range_get(c: &Conformance) -> Result<(), Error> {
    let repo = c.repo("range");
    let blob = Blob::random(2048);
    c.registry.push_blob(&repo, &blob).await?;
    let path = format!("/v2/{repo}/blobs/{}", blob.digest);
    let len = blob.bytes.len();
    // (Range, the bytes served, or None for 416)
    let cases: [(&str, Option<(usize, usize)>); 6] = [
        ("bytes=500-1499", Some((500, 1500))),
        ("bytes=500-", Some((500, len))),
        ("bytes=-500", Some((len - 500, len))),
        ("bytes=2000-5000", Some((2000, len))),
        ("bytes=500-0", None),
        ("bytes=5000-10000", None),
    ];
    for (range, served) in cases {
        let resp = c
            .registry
            .request(Method::GET, &path)
            .header("range", range)
            .send()
            .await?;
        if c.optional == Optional::Allow && resp.status == 200 {
            // Range is a SHOULD: a registry may answer with the whole blob.
            expect_body(&resp, &blob.bytes)?;
            continue;
        }
        let Some((start, end)) = served else {
            resp.expect(&[416])?;
            continue;
        };
        let resp = resp.expect(&[206])?;
        expect_body(&resp, &blob.bytes[start..end])?;
        expect_content_length(&resp, (end - start) as u64)?;
        let content_range = resp.require_header("content-range")?;
        let known = format!("bytes {start}-{}/{len}", end - 1);
        let unknown = format!("bytes {start}-{}/*", end - 1);
        ensure!(
            content_range == known || content_range == unknown,
            "GET {path} with Range {range}: Content-Range is {content_range}, expected {known}"
        );
    }
    Ok(())
}

/// end-2 for the well-known blobs: zero bytes and `{}`.
pub(crate) async fn empty_blobs(c: &Conformance) -> Result<(), Error> {
    let repo = c.repo("empty-blobs");
    for blob in [
        Blob::new("application/octet-stream", ""),
        Blob::new(OCI_EMPTY, "{}"),
    ] {
        c.registry.push_blob(&repo, &blob).await?;
        expect_blob(c, &repo, &blob).await?;
    }
    Ok(())
}

/// end-3, GET and HEAD by tag and by digest.
pub(crate) async fn pull_manifest(c: &Conformance) -> Result<(), Error> {
    let repo = c.repo("pull-manifest");
    let tag = c.tag("v1");
    let image = ImageBuilder::new().layers(2).build();
    c.registry.push_image(&repo, &tag, &image).await?;
    expect_manifest(c, &repo, &tag, &image.manifest).await?;
    expect_manifest(c, &repo, &image.manifest.digest, &image.manifest).await?;

    let never = ImageBuilder::new().layers(0).build().manifest;
    for reference in [c.tag("missing"), never.digest] {
        for method in [Method::GET, Method::HEAD] {
            fetch_manifest(c, method, &repo, &reference)
                .await?
                .expect(&[404])?;
        }
    }
    Ok(())
}

/// end-3 for Docker schema 2 manifests and manifest lists.
pub(crate) async fn docker_media_types(c: &Conformance) -> Result<(), Error> {
    let repo = c.repo("docker");
    let image = ImageBuilder::new().format(Format::Docker).build();
    let tag = c.tag("image");
    c.registry.push_image(&repo, &tag, &image).await?;
    expect_manifest(c, &repo, &tag, &image.manifest).await?;

    let list = index_of(&[&image.manifest], Format::Docker);
    let list_tag = c.tag("list");
    c.registry.push_manifest(&repo, &list_tag, &list).await?;
    expect_manifest(c, &repo, &list_tag, &list).await?;
    expect_manifest(c, &repo, &list.digest, &list).await
}
