//! Content management (end-9, end-10): deleting tags, manifests and blobs.

use hyper::Method;
use serde_json::Value;

use super::{expect_manifest, expect_status, fetch_manifest};
use crate::{
    check::{Conformance, Optional},
    content::{Blob, ImageBuilder},
    error::{Error, ensure},
};

/// end-9: a tag, then the manifest by digest; the tags list follows both.
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
    let tags = listed_tags(c, &repo).await?;
    ensure!(
        tags.as_ref()
            .is_some_and(|t| t.contains(&kept) && !t.contains(&deleted)),
        "after DELETE {tag_path}, the tags list of {repo} is {}, expected {kept} and not \
         {deleted}",
        shown(&tags)
    );

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
    let tags = listed_tags(c, &repo).await?;
    ensure!(
        tags.as_ref().is_none_or(|t| !t.contains(&kept)),
        "after DELETE {digest_path}, the tags list of {repo} is {}, still with {kept}",
        shown(&tags)
    );
    Ok(())
}

fn shown(tags: &Option<Vec<String>>) -> String {
    tags.as_ref()
        .map_or_else(|| "404".to_owned(), |t| format!("{t:?}"))
}

/// The tags list of `repo`; `None` when it is 404, as it may be once nothing is left.
async fn listed_tags(c: &Conformance, repo: &str) -> Result<Option<Vec<String>>, Error> {
    let path = format!("/v2/{repo}/tags/list");
    let resp = expect_status(c, Method::GET, &path, &[200, 404]).await?;
    if resp.status == 404 {
        return Ok(None);
    }
    match &resp.json()?["tags"] {
        Value::Null => Ok(Some(Vec::new())),
        Value::Array(tags) => Ok(Some(
            tags.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        )),
        other => Err(resp.violation(format!("tags is {other}, not a list"))),
    }
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
