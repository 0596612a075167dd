//! Content management (end-9, end-10): deleting tags, manifests and blobs.

use hyper::Method;

use super::{expect_manifest, expect_status, fetch_manifest};
use crate::{
    check::{Conformance, Optional},
    content::{Blob, ImageBuilder},
    error::Error,
};

/// end-9: a tag, then the manifest by digest.
pub(crate) async fn delete_manifest(c: &Conformance) -> Result<(), Error> {
    let repo = c.repo("delete-manifest");
    let image = ImageBuilder::new().build();
    let (kept, deleted) = (c.tag("kept"), c.tag("deleted"));
    c.registry.push_image(&repo, &kept, &image).await?;
    c.registry
        .push_manifest(&repo, &deleted, &image.manifest)
        .await?;

    let tag_path = format!("/v2/{repo}/manifests/{deleted}");
    if !delete(c, &tag_path).await? {
        return Ok(());
    }
    fetch_manifest(c, Method::GET, &repo, &deleted)
        .await?
        .expect(&[404])?;
    expect_manifest(c, &repo, &kept, &image.manifest).await?;
    expect_manifest(c, &repo, &image.manifest.digest, &image.manifest).await?;

    let digest_path = format!("/v2/{repo}/manifests/{}", image.manifest.digest);
    if !delete(c, &digest_path).await? {
        return Ok(());
    }
    for reference in [&image.manifest.digest, &kept] {
        fetch_manifest(c, Method::GET, &repo, reference)
            .await?
            .expect(&[404])?;
        fetch_manifest(c, Method::HEAD, &repo, reference)
            .await?
            .expect(&[404])?;
    }
    expect_status(c, Method::DELETE, &digest_path, &[404]).await?;
    Ok(())
}

/// end-10.
pub(crate) async fn delete_blob(c: &Conformance) -> Result<(), Error> {
    let repo = c.repo("delete-blob");
    let blob = Blob::random(1500);
    c.registry.push_blob(&repo, &blob).await?;
    let path = format!("/v2/{repo}/blobs/{}", blob.digest);
    if !delete(c, &path).await? {
        return Ok(());
    }
    expect_status(c, Method::GET, &path, &[404]).await?;
    expect_status(c, Method::HEAD, &path, &[404]).await?;
    expect_status(c, Method::DELETE, &path, &[404]).await?;
    Ok(())
}

/// DELETEs `path`: true on 202; false when deletion is disabled (400 or 405), which only
/// [`Optional::Allow`] accepts.
async fn delete(c: &Conformance, path: &str) -> Result<bool, Error> {
    let allowed: &[u16] = match c.optional {
        Optional::Require => &[202],
        Optional::Allow => &[202, 400, 405],
    };
    let resp = expect_status(c, Method::DELETE, path, allowed).await?;
    Ok(resp.status == 202)
}
