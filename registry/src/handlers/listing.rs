//! The API check, tags, the catalog and referrers: the endpoints that list.

use airlock_oci::{Descriptor, OCI_INDEX, RepoName};
use airlock_store::{Digest, Store};
use axum::{
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use super::{OCI_FILTERS_APPLIED, Reply};
use crate::{
    error::RegistryError,
    manifest::referrers_index,
    pagination::{Page, Paginated, paginate},
    state::AppState,
};

/// end-1: `GET /v2/`, 200 with an empty JSON object (the version header is added to every
/// response by the middleware).
pub(super) fn base() -> Response {
    Reply::new(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body("{}")
        .into_response()
}

#[derive(Serialize)]
struct TagList<'a> {
    name: &'a str,
    tags: &'a [String],
}

/// end-8a, end-8b: `GET /v2/<name>/tags/list[?n=&last=]`, sorted, paginated with a `Link` to the
/// next page; NAME_UNKNOWN for a repository the registry does not hold.
pub(super) async fn tags(
    state: &AppState,
    name: RepoName,
    page: Page,
) -> Result<Response, RegistryError> {
    let repo = name.clone();
    let tags = state
        .blocking(move |s| {
            let store = s.store();
            let tags = store.tags(repo.as_str())?;
            if tags.is_empty() && !repo_exists(store, &repo)? {
                return Err(RegistryError::name_unknown(&repo));
            }
            Ok(tags.into_iter().map(|(tag, _)| tag).collect::<Vec<_>>())
        })
        .await?;
    let page = paginate(tags, &page);
    let body = TagList {
        name: name.as_str(),
        tags: &page.items,
    };
    paged(
        Reply::new(StatusCode::OK),
        &page,
        &format!("/v2/{name}/tags/list"),
    )
    .json(&body)
    .map(IntoResponse::into_response)
}

fn repo_exists(store: &Store, repo: &RepoName) -> Result<bool, RegistryError> {
    let repos = store.repositories()?;
    Ok(repos.iter().any(|r| r == repo.as_str()))
}

#[derive(Serialize)]
struct Catalog<'a> {
    repositories: &'a [String],
}

/// `GET /v2/_catalog[?n=&last=]`: every repository the caller may pull (`visible`), sorted and
/// paginated like the tags list.
pub(super) async fn catalog(
    state: &AppState,
    page: Page,
    visible: impl Fn(&str) -> bool + Send + 'static,
) -> Result<Response, RegistryError> {
    let repos = state
        .blocking(move |s| {
            let mut repos = s.store().repositories()?;
            repos.retain(|r| visible(r));
            Ok(repos)
        })
        .await?;
    let page = paginate(repos, &page);
    let body = Catalog {
        repositories: &page.items,
    };
    paged(Reply::new(StatusCode::OK), &page, "/v2/_catalog")
        .json(&body)
        .map(IntoResponse::into_response)
}

fn paged<T: AsRef<str>>(reply: Reply, page: &Paginated<T>, path: &str) -> Reply {
    match page.link(path) {
        Some(link) => reply.header(header::LINK, link),
        None => reply,
    }
}

/// end-12a, end-12b: `GET /v2/<name>/referrers/<digest>[?artifactType=]`, an image index of the
/// manifests whose `subject` is `digest`; empty, never 404, when there are none.
pub(super) async fn referrers(
    state: &AppState,
    name: RepoName,
    digest: Digest,
    artifact_type: Option<String>,
) -> Result<Response, RegistryError> {
    let entries = state
        .blocking(move |s| Ok(s.store().referrers(name.as_str(), &digest)?))
        .await?;
    let descriptors: Vec<Descriptor> = entries
        .iter()
        .filter_map(|(d, bytes)| match serde_json::from_slice(bytes) {
            Ok(descriptor) => Some(descriptor),
            Err(e) => {
                tracing::warn!(referrer = %d, "skipping an undecodable referrer entry: {e}");
                None
            }
        })
        .collect();
    let body = referrers_index(&descriptors, artifact_type.as_deref())?;
    let reply = Reply::new(StatusCode::OK).header(header::CONTENT_TYPE, OCI_INDEX);
    let reply = match artifact_type {
        Some(_) => reply.header(OCI_FILTERS_APPLIED, "artifactType"),
        None => reply,
    };
    Ok(reply.body(body).into_response())
}
