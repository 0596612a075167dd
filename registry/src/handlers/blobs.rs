//! Blobs: pull (whole or a `Range`, streamed) and delete. A blob is served only from a
//! repository that links it: the spec's repositories are namespaces, so a digest stored for
//! another repository is BLOB_UNKNOWN here (end-11 mounts it in first).

use airlock_oci::RepoName;
use airlock_store::{Digest, RepoChange};
use axum::{
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};

use super::{DOCKER_CONTENT_DIGEST, Reply, Want, header_text};
use crate::{
    body::blob_body,
    error::RegistryError,
    range::{ByteRange, parse_range},
    state::AppState,
};

/// end-2: `GET`/`HEAD /v2/<name>/blobs/<digest>`. GET streams the bytes; a `Range` gets 206 with
/// `Content-Range`, or 416 with `Content-Range: bytes */<size>` when no byte of it exists.
pub(super) async fn get(
    state: &AppState,
    name: RepoName,
    digest: Digest,
    want: Want,
    headers: &HeaderMap,
) -> Result<Response, RegistryError> {
    let range = header_text(headers, &header::RANGE).map(str::to_owned);
    let d = digest.clone();
    let (size, range, reader) = state
        .blocking(move |s| {
            let store = s.store();
            let unknown = || RegistryError::blob_unknown(&d);
            store.link(name.as_str(), &d)?.ok_or_else(unknown)?;
            let size = store.stat_blob(&d)?.ok_or_else(unknown)?.size;
            if want == Want::Head {
                return Ok((size, None, None));
            }
            let range = range.map_or(Ok(None), |r| parse_range(&r, size))?;
            let bounds = range.map_or(0..size, |r: ByteRange| r.start()..r.end() + 1);
            Ok((size, range, Some(store.open_blob_range(&d, bounds)?)))
        })
        .await?;
    let reply = match range {
        Some(r) => Reply::new(StatusCode::PARTIAL_CONTENT)
            .header(header::CONTENT_RANGE, r.content_range(size))
            .header(header::CONTENT_LENGTH, r.len()),
        None => Reply::new(StatusCode::OK).header(header::CONTENT_LENGTH, size),
    }
    .header(header::CONTENT_TYPE, "application/octet-stream")
    .header(header::ACCEPT_RANGES, "bytes")
    .header(DOCKER_CONTENT_DIGEST, &digest);
    Ok(match reader {
        Some(reader) => reply.body(blob_body(reader, state.config().limits.body_timeout)),
        None => reply,
    }
    .into_response())
}

/// end-10: `DELETE /v2/<name>/blobs/<digest>` unlinks the blob from the repository (GC frees
/// it once nothing holds it): 202, or BLOB_UNKNOWN when the repository does not link it.
pub(super) async fn delete(
    state: &AppState,
    name: RepoName,
    digest: Digest,
) -> Result<Response, RegistryError> {
    state
        .blocking(move |s| {
            let store = s.store();
            let linked = store.link(name.as_str(), &digest)?.is_some_and(|l| l.blob);
            if !linked {
                return Err(RegistryError::blob_unknown(&digest));
            }
            let repo = name.to_string();
            Ok(store.apply_repo_changes(&[RepoChange::UnlinkBlob { repo, digest }])?)
        })
        .await?;
    Ok(Reply::new(StatusCode::ACCEPTED).into_response())
}
