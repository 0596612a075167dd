//! Push of manifests (end-7a, end-7b): by tag and digest, exact bytes, indexes, large manifests
//! and tag parameters.

use hyper::Method;
use serde_json::{Value, json};

use super::{expect_body, expect_manifest, expect_optional_digest_header};
use crate::{
    check::{Conformance, Optional},
    content::{Blob, Format, ImageBuilder, OCI_MANIFEST, index_of},
    error::{Error, ensure},
};

/// The manifest size the spec says registries should accept ("at least 4 megabytes").
const LARGE_MANIFEST_BYTES: usize = 4_000_000;

/// end-7a.
pub(crate) async fn put_manifest(c: &Conformance) -> Result<(), Error> {
    let repo = c.repo("put-manifest");
    let tag = c.tag("v1");
    let image = ImageBuilder::new().build();
    for blob in image.blobs() {
        c.registry.push_blob(&repo, blob).await?;
    }
    let put = c
        .registry
        .push_manifest(&repo, &tag, &image.manifest)
        .await?;
    expect_optional_digest_header(&put, &image.manifest.digest)?;
    let location = c.registry.url(put.require_header("location")?);
    let got = c
        .registry
        .request(Method::GET, &location)
        .header("accept", OCI_MANIFEST)
        .send()
        .await?
        .expect(&[200])?;
    expect_body(&got, &image.manifest.bytes)?;
    expect_manifest(c, &repo, &tag, &image.manifest).await?;

    // Pretty-printed with a trailing newline, pushed by digest: the bytes must survive as sent.
    let other = ImageBuilder::new().build();
    for blob in other.blobs() {
        c.registry.push_blob(&repo, blob).await?;
    }
    let parsed: Value = serde_json::from_slice(&other.manifest.bytes)
        .map_err(|e| Error::check(format!("generated manifest: {e}")))?;
    let mut pretty = serde_json::to_vec_pretty(&parsed)
        .map_err(|e| Error::check(format!("generated manifest: {e}")))?;
    pretty.extend_from_slice(b"\n  \n");
    let pretty = Blob::new(OCI_MANIFEST, pretty);
    let put = c
        .registry
        .push_manifest(&repo, &pretty.digest, &pretty)
        .await?;
    expect_optional_digest_header(&put, &pretty.digest)?;
    expect_manifest(c, &repo, &pretty.digest, &pretty).await?;

    // An image manifest without layers, and an index over both images.
    let bare = ImageBuilder::new().layers(0).build();
    c.registry.push_image(&repo, &c.tag("bare"), &bare).await?;
    let index = index_of(&[&image.manifest, &pretty], Format::Oci);
    let index_tag = c.tag("index");
    c.registry.push_manifest(&repo, &index_tag, &index).await?;
    expect_manifest(c, &repo, &index_tag, &index).await?;
    expect_manifest(c, &repo, &index.digest, &index).await?;

    // Moving a tag: it now names the bare manifest, and the first one is still there by digest.
    c.registry
        .push_manifest(&repo, &tag, &bare.manifest)
        .await?;
    expect_manifest(c, &repo, &tag, &bare.manifest).await?;
    expect_manifest(c, &repo, &image.manifest.digest, &image.manifest).await
}

/// end-7a with a manifest of [`LARGE_MANIFEST_BYTES`].
pub(crate) async fn large_manifest(c: &Conformance) -> Result<(), Error> {
    let repo = c.repo("large-manifest");
    let image = ImageBuilder::new().build();
    for blob in image.blobs() {
        c.registry.push_blob(&repo, blob).await?;
    }
    let mut manifest: Value = serde_json::from_slice(&image.manifest.bytes)
        .map_err(|e| Error::check(format!("generated manifest: {e}")))?;
    manifest["annotations"] = json!({ "org.example.padding": "" });
    let padding = LARGE_MANIFEST_BYTES.saturating_sub(manifest.to_string().len());
    manifest["annotations"]["org.example.padding"] = json!("A".repeat(padding));
    let large = Blob::json(OCI_MANIFEST, &manifest);
    ensure!(
        large.bytes.len() == LARGE_MANIFEST_BYTES,
        "built {} bytes",
        large.bytes.len()
    );
    let tag = c.tag("large");
    let resp = c
        .registry
        .request(Method::PUT, &format!("/v2/{repo}/manifests/{tag}"))
        .header("content-type", &large.media_type)
        .body(large.bytes.clone())
        .send()
        .await?;
    if c.optional == Optional::Allow && resp.status == 413 {
        // Accepting 4 MB is a SHOULD; 413 is how a registry refuses.
        return Ok(());
    }
    resp.expect(&[201])?;
    expect_manifest(c, &repo, &tag, &large).await
}

/// end-7b.
pub(crate) async fn put_manifest_tags(c: &Conformance) -> Result<(), Error> {
    let repo = c.repo("tag-params");
    let image = ImageBuilder::new().build();
    for blob in image.blobs() {
        c.registry.push_blob(&repo, blob).await?;
    }
    let tags = [c.tag("a"), c.tag("b"), c.tag("c")];
    let query = tags
        .iter()
        .map(|t| format!("tag={t}"))
        .collect::<Vec<_>>()
        .join("&");
    let path = format!("/v2/{repo}/manifests/{}?{query}", image.manifest.digest);
    let resp = c
        .registry
        .request(Method::PUT, &path)
        .header("content-type", &image.manifest.media_type)
        .body(image.manifest.bytes.clone())
        .send()
        .await?
        .expect(&[201])?;
    let announced: Vec<String> = resp
        .header_all("oci-tag")
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_owned())
        .collect();
    if announced.is_empty() && c.optional == Optional::Allow {
        return expect_manifest(c, &repo, &image.manifest.digest, &image.manifest).await;
    }
    for tag in &tags {
        ensure!(
            announced.contains(tag),
            "PUT {path}: OCI-Tag headers {announced:?} do not name tag {tag}"
        );
        expect_manifest(c, &repo, tag, &image.manifest).await?;
    }
    Ok(())
}
