//! Blob pushes: sessions (open, chunks, close, status, cancel), the single-POST monolithic
//! upload and cross-repository mounts.
//!
//! A finished upload is staged (issue 14): the 201 goes out once the blob's bytes and digest
//! are durable and it is linked; the store cuts it into chunks afterwards, in the background
//! (`airlock_store::Store::stage_file`). A blob stored already is only linked. Every upload
//! request tells the store a push is under way, so the background ingest leaves the CPU to it
//! (`airlock_store::Store::defer_ingest`).

use airlock_oci::RepoName;
use std::sync::Arc;

use airlock_store::{Digest, PutOptions, RepoChange};
use axum::{
    body::Body,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};

use super::{DOCKER_CONTENT_DIGEST, DOCKER_UPLOAD_UUID, Reply, content_length, header_text};
use crate::{
    body::with_body_limited,
    error::RegistryError,
    range::{parse_upload_range, upload_range_header},
    state::AppState,
    upload_id::UploadId,
    uploads::{Session, Writing},
};

/// end-4a, end-4c: `POST /v2/<name>/blobs/uploads/` opens a session: 202 with its `Location`.
/// The final digest's algorithm (end-4c) needs no notice: the closing PUT names the digest.
pub(super) async fn start(state: &AppState, name: RepoName) -> Result<Response, RegistryError> {
    state.store().defer_ingest();
    let session = state
        .blocking(move |s| s.uploads().start(s.store(), &name))
        .await?;
    Ok(session_reply(StatusCode::ACCEPTED, &session, 0))
}

/// end-4b: `POST /v2/<name>/blobs/uploads/?digest=<digest>`, the whole blob in one request,
/// streamed into the store's staging area and verified, then staged and linked: 201, or
/// DIGEST_INVALID / SIZE_INVALID with nothing stored.
pub(super) async fn post_blob(
    state: &AppState,
    name: RepoName,
    digest: Digest,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, RegistryError> {
    state.store().defer_ingest();
    let declared = content_length(headers)?;
    let limit = state.config().limits.max_blob_bytes;
    let (store, repo, d) = (state.store().clone(), name.to_string(), digest.clone());
    with_body_limited(body, declared, limit, move |reader| {
        let put = PutOptions {
            max_size: Some(limit),
            expected_size: declared,
        };
        let link = [RepoChange::LinkBlob {
            repo,
            digest: d.clone(),
        }];
        store.stage_blob(&d, reader, put, &link)?;
        Ok(())
    })
    .await?;
    Ok(blob_created(&name, &digest))
}

/// end-11: `POST /v2/<name>/blobs/uploads/?mount=<digest>&from=<other>`: 201 when `from` links
/// the blob, else 202 with a new session, as the spec asks of a registry that cannot mount.
pub(super) async fn mount(
    state: &AppState,
    name: RepoName,
    digest: Digest,
    from: Option<RepoName>,
) -> Result<Response, RegistryError> {
    let (repo, d) = (name.clone(), digest.clone());
    let mounted = state
        .blocking(move |s| {
            let store = s.store();
            let Some(from) = from else { return Ok(false) };
            if store.link(from.as_str(), &d)?.is_none() || !store.has_blob(&d)? {
                return Ok(false);
            }
            let link = RepoChange::LinkBlob {
                repo: repo.to_string(),
                digest: d,
            };
            store.apply_repo_changes(&[link])?;
            Ok(true)
        })
        .await?;
    match mounted {
        true => Ok(blob_created(&name, &digest)),
        false => start(state, name).await,
    }
}

/// end-5: `PATCH <blob-push-location>`, one chunk appended and synced: 202 with `Range`. A
/// `Content-Range` must start at the session's offset (416 otherwise); without one the chunk
/// simply follows.
pub(super) async fn patch(
    state: &AppState,
    name: RepoName,
    id: UploadId,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, RegistryError> {
    state.store().defer_ingest();
    let session = state.uploads().get(&id, &name)?;
    let writing = session.lock().await?;
    let expected = chunk_length(headers, session.offset())?;
    let room = room(state, &session);
    let end = append(&session, &writing, body, expected, room).await?;
    state.store().defer_ingest();
    Ok(session_reply(StatusCode::ACCEPTED, &session, end))
}

/// end-6: `PUT <blob-push-location>?digest=<digest>` appends the optional final chunk, then
/// stages the session's file as the blob (verifying the digest) and links it: 201. A refused
/// blob leaves the session as it was before this request.
pub(super) async fn put(
    state: &AppState,
    name: RepoName,
    id: UploadId,
    digest: Digest,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, RegistryError> {
    state.store().defer_ingest();
    let session = state.uploads().get(&id, &name)?;
    let writing = session.lock().await?;
    let before = session.offset();
    let expected = chunk_length(headers, before)?;
    let size = append(&session, &writing, body, expected, room(state, &session)).await?;
    state.store().defer_ingest();
    let (s, repo, d) = (session.clone(), name.clone(), digest.clone());
    state
        .blocking(move |state| finish(state, &s, &writing, repo, d, before, size))
        .await?;
    Ok(blob_created(&name, &digest))
}

/// Stages a session's `size` bytes as blob `digest` (its file moves into the store), links it
/// and closes the session; on failure cuts the session back to `before` (blocking).
fn finish(
    state: &AppState,
    session: &Session,
    writing: &Writing,
    repo: RepoName,
    digest: Digest,
    before: u64,
    size: u64,
) -> Result<(), RegistryError> {
    let store = state.store();
    let put = PutOptions {
        max_size: Some(state.config().limits.max_blob_bytes),
        expected_size: Some(size),
    };
    let link = [RepoChange::LinkBlob {
        repo: repo.to_string(),
        digest: digest.clone(),
    }];
    // The file is left in place on failure, and moved (or no longer needed) on success.
    if let Err(e) = store.stage_file(&digest, session.path(), put, &link) {
        if let Err(t) = session.truncate(writing, before) {
            tracing::warn!(upload = %session.id(), "undoing the final chunk: {t}");
        }
        return Err(e.into());
    }
    state.uploads().close(store, session);
    Ok(())
}

/// end-13: `GET <blob-push-location>`: 204 with the session's `Range` and `Location`.
pub(super) async fn status(
    state: &AppState,
    name: RepoName,
    id: UploadId,
) -> Result<Response, RegistryError> {
    let session = state.uploads().get(&id, &name)?;
    Ok(session_reply(
        StatusCode::NO_CONTENT,
        &session,
        session.offset(),
    ))
}

/// end-14: `DELETE <blob-push-location>` cancels the session and deletes its bytes: 204.
pub(super) async fn cancel(
    state: &AppState,
    name: RepoName,
    id: UploadId,
) -> Result<Response, RegistryError> {
    let session = state.uploads().get(&id, &name)?;
    let writing = session.lock().await?;
    let s = session.clone();
    state
        .blocking(move |state| {
            state.uploads().close(state.store(), &s);
            drop(writing);
            Ok(())
        })
        .await?;
    Ok(Reply::new(StatusCode::NO_CONTENT).into_response())
}

/// The length a chunk must have: its `Content-Range`'s (checked against the session's offset
/// and the `Content-Length`), else the `Content-Length`, else unknown.
fn chunk_length(headers: &HeaderMap, offset: u64) -> Result<Option<u64>, RegistryError> {
    let declared = content_length(headers)?;
    match headers.get(header::CONTENT_RANGE) {
        None => Ok(declared),
        Some(_) => {
            let value = header_text(headers, &header::CONTENT_RANGE).unwrap_or("");
            Ok(Some(parse_upload_range(value, offset, declared)?.len()))
        }
    }
}

/// Bytes a session may still grow by under the blob size limit (issue 16).
fn room(state: &AppState, session: &Session) -> u64 {
    let limit = state.config().limits.max_blob_bytes;
    limit.saturating_sub(session.offset())
}

/// Streams the request body onto the session's file; its length must be `expected` if known,
/// and at most `room` (SIZE_INVALID, the chunk undone).
async fn append(
    session: &Arc<Session>,
    writing: &Writing,
    body: Body,
    expected: Option<u64>,
    room: u64,
) -> Result<u64, RegistryError> {
    let (s, writing) = (session.clone(), writing.clone());
    with_body_limited(body, expected, room, move |reader| {
        s.append(&writing, reader).map_err(|source| {
            RegistryError::internal(airlock_store::Error::Io {
                op: "appending to upload file",
                path: s.path().to_owned(),
                source,
            })
        })
    })
    .await
}

/// A session's 202/204: `Location`, `Range: 0-<offset-1>`, `Docker-Upload-UUID`.
fn session_reply(status: StatusCode, session: &Session, offset: u64) -> Response {
    Reply::new(status)
        .header(header::LOCATION, session.location())
        .header(header::RANGE, upload_range_header(offset))
        .header(DOCKER_UPLOAD_UUID, session.id())
        .into_response()
}

/// A stored blob's 201: `Location` of the pullable blob and `Docker-Content-Digest`.
fn blob_created(name: &RepoName, digest: &Digest) -> Response {
    Reply::new(StatusCode::CREATED)
        .header(header::LOCATION, format!("/v2/{name}/blobs/{digest}"))
        .header(DOCKER_CONTENT_DIGEST, digest)
        .into_response()
}
