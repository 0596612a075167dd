//! A deliberately wrong registry: airlock's router behind a middleware that breaks one rule of
//! the distribution spec at a time ([`Mutant`]), each on its own port of 127.0.0.1 over one
//! shared store. A mutant rewrites the request before airlock sees it, the response after, or
//! answers in airlock's place; every other request passes through untouched.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use airlock_registry::router;
use axum::{
    Router,
    body::{Body, Bytes},
    extract::{Request, State},
    http::{HeaderValue, Method, StatusCode, header},
    middleware::{Next, from_fn_with_state},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::task::JoinHandle;

use self::exchange::{
    Kind, accept_manifests, codes, dispatch, drop_header, edit_json, edit_referrers, error,
    has_param, header_text, is_digest, lowercase_name, param, read, rebuild, replace_ok_header,
    set_header, status_from_to, with_uri, without_params,
};
use crate::server::app_state;

mod exchange;

/// One registry defect. Each names the rule it breaks; [`Mutant::Identity`] breaks none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutant {
    /// Passes everything through: the wrapper alone must not fail a check.
    Identity,
    /// end-1: `GET /v2/` is 404.
    BaseNotFound,
    /// end-2: blob GET and HEAD lack `Docker-Content-Digest`.
    BlobDigestHeaderDropped,
    /// end-2: blob HEAD announces one byte more than the blob has.
    BlobHeadWrongLength,
    /// end-2: blob GET serves its first byte flipped.
    BlobBodyCorrupted,
    /// end-2, code-1: a blob never pushed is 400, not 404.
    UnknownBlobIs400,
    /// end-2: the empty blob and `{}` are never served (404).
    EmptyBlobsNotServed,
    /// end-2: `Range` is ignored; the whole blob comes back with 200.
    RangeIgnored,
    /// end-2: an unsatisfiable `Range` gets the whole blob with 200 instead of 416.
    RangeNot416,
    /// end-2: `Content-Range` of a 206 names the wrong total size.
    ContentRangeWrong,
    /// end-3: manifests are served as `application/json`.
    ManifestAsJson,
    /// end-3: Docker schema 2 manifests and lists are served with the OCI media types.
    DockerTypesAsOci,
    /// end-3: manifest HEAD lacks `Docker-Content-Digest`.
    ManifestHeadDigestDropped,
    /// end-3, code-7: a manifest never pushed is 400, not 404.
    UnknownManifestIs400,
    /// end-4a: every POST in a repository answers the first session's `Location`.
    UploadSessionReused,
    /// end-4b: `POST ?digest=` with a body opens a session (202) and drops the body.
    MonolithicPostIgnored,
    /// end-4c: sha512 digests and `digest-algorithm=sha512` are refused (400 UNSUPPORTED).
    Sha512Refused,
    /// end-5: a PATCH's `Range` is `bytes=0-<end>` rather than `0-<end>`.
    PatchRangeWrong,
    /// end-5: a chunk out of order is accepted (202) instead of 416.
    ChunkOutOfOrderAccepted,
    /// end-5: a PATCH without `Content-Range` (a streamed upload) is refused.
    StreamedPatchRefused,
    /// end-6: a final chunk out of order is accepted (201) instead of 416.
    FinalChunkOutOfOrderAccepted,
    /// end-6: the closing PUT's `Location` is the upload session, not the blob.
    BlobLocationWrong,
    /// end-7: a manifest PUT answers 201 without `Location`.
    ManifestLocationDropped,
    /// end-7: manifests are stored re-serialized (compact JSON), not as the bytes pushed.
    ManifestReformatted,
    /// end-7: a PUT to an existing tag answers 201 and leaves the tag where it was.
    TagNotMoved,
    /// end-7: manifests over 1 MiB are refused with 413.
    LargeManifestRefused,
    /// end-7b: `?tag=` parameters of a manifest PUT are ignored.
    TagParamsIgnored,
    /// end-7b: the tags created by `?tag=` are not named in `OCI-Tag`.
    OciTagDropped,
    /// end-8a: the tags list comes in reverse order.
    TagsUnsorted,
    /// end-8b: `n` is ignored.
    TagsNIgnored,
    /// end-8b: `last` is ignored.
    TagsLastIgnored,
    /// end-8b: a partial page has no `Link` to the next.
    TagsLinkDropped,
    /// end-7: a manifest PUT answers the `Docker-Content-Digest` of other bytes.
    ManifestPutDigestWrong,
    /// end-9: DELETE of a manifest answers 202 and deletes nothing.
    ManifestDeleteNoop,
    /// end-9: DELETE of a tag deletes the manifest it names (and so every tag of it).
    TagDeleteDeletesManifest,
    /// end-9: a deleted tag stays in the tags list.
    DeletedTagListed,
    /// end-10: DELETE of a blob answers 202 and deletes nothing.
    BlobDeleteNoop,
    /// end-11: `mount` and `from` are ignored; a session opens (202).
    MountIgnored,
    /// end-11: a mount answers 201 without linking the blob into the repository.
    MountClaimedNotDone,
    /// end-12a: a manifest PUT with a `subject` answers without `OCI-Subject`.
    OciSubjectDropped,
    /// end-12a: the referrers list is served as `application/json`.
    ReferrersAsJson,
    /// end-12a: referrer descriptors lack `artifactType`.
    ReferrersArtifactTypeDropped,
    /// end-12a: referrer descriptors lack the manifests' annotations.
    ReferrersAnnotationsDropped,
    /// end-12a: referrers of a malformed digest are 404, not 400.
    ReferrersBadDigestIs404,
    /// end-12b: `artifactType` is ignored, and no `OCI-Filters-Applied` says so.
    ReferrersFilterIgnored,
    /// end-12b: `OCI-Filters-Applied: artifactType`, but the list is not filtered.
    ReferrersFilterClaimed,
    /// end-13: upload status is 200, not 204.
    UploadStatusIs200,
    /// end-13: upload status `Range` counts one byte more than received.
    UploadStatusRangeWrong,
    /// end-14: DELETE of an upload session answers 204 and cancels nothing.
    CancelNoop,
    /// code-4: a blob whose bytes do not match its digest is accepted (201).
    DigestNotVerified,
    /// code-5: a manifest naming blobs the repository lacks is accepted (201).
    ManifestBlobsNotChecked,
    /// code-6: an invalid manifest is a 500 with no body.
    InvalidManifestIs500,
    /// code-8: repository names are lowercased instead of refused.
    NamesLowercased,
    /// Every 4xx body is plain text instead of the spec's JSON errors.
    ErrorBodiesNotJson,
    /// One error code is sent as another: `from` becomes `to`.
    Code {
        from: &'static str,
        to: &'static str,
    },
}

/// What each mutant's middleware holds: the defect, airlock's router for requests of its own,
/// and what the mutant remembers between requests.
#[derive(Clone)]
struct Wrapper {
    mutant: Mutant,
    inner: Router,
    remembered: Arc<Mutex<HashMap<String, String>>>,
}

/// Mutants served over one store, each on its own loopback port, on the current runtime.
/// Dropping it stops them.
#[derive(Debug)]
pub struct WrongRegistries {
    tasks: Vec<JoinHandle<()>>,
    _data: TempDir,
}

impl WrongRegistries {
    /// Serves each of `mutants` and returns the base URL of each, in order.
    pub async fn start(mutants: &[Mutant]) -> (WrongRegistries, Vec<String>) {
        let data = tempfile::tempdir().expect("temporary store directory");
        let state = app_state(data.path());
        let mut tasks = Vec::new();
        let mut bases = Vec::new();
        for &mutant in mutants {
            let wrapper = Wrapper {
                mutant,
                inner: router(state.clone()),
                remembered: Arc::default(),
            };
            let app = router(state.clone()).layer(from_fn_with_state(wrapper, mutate));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind 127.0.0.1:0");
            bases.push(format!(
                "http://{}",
                listener.local_addr().expect("listener address")
            ));
            tasks.push(tokio::spawn(async move {
                axum::serve(listener, app).await.expect("serve a mutant");
            }));
        }
        let registries = WrongRegistries { tasks, _data: data };
        (registries, bases)
    }
}

impl Drop for WrongRegistries {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The middleware: applies the wrapper's mutant to one exchange.
async fn mutate(State(w): State<Wrapper>, req: Request, next: Next) -> Response {
    use Mutant::*;
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let kind = Kind::of(&path);
    let (get, head) = (method == Method::GET, method == Method::HEAD);
    match w.mutant {
        BaseNotFound if kind == Kind::Base => StatusCode::NOT_FOUND.into_response(),
        BlobDigestHeaderDropped if kind == Kind::Blob => {
            drop_header(next.run(req).await, "docker-content-digest")
        }
        BlobHeadWrongLength if kind == Kind::Blob && head => {
            let mut resp = next.run(req).await;
            let len = header_text(&resp, "content-length").and_then(|l| l.parse::<u64>().ok());
            if let Some(len) = len {
                set_header(&mut resp, "content-length", &(len + 1).to_string());
            }
            resp
        }
        BlobBodyCorrupted if kind == Kind::Blob && get => {
            let (parts, mut bytes) = read(next.run(req).await).await;
            if parts.status == StatusCode::OK && !bytes.is_empty() {
                let mut flipped = bytes.to_vec();
                flipped[0] ^= 0xff;
                bytes = flipped.into();
            }
            rebuild(parts, bytes)
        }
        UnknownBlobIs400 if kind == Kind::Blob && (get || head) => {
            status_from_to(next.run(req).await, 404, 400)
        }
        EmptyBlobsNotServed if kind == Kind::Blob && (get || head) => {
            const EMPTY: [&str; 2] = [
                "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
            ];
            if EMPTY.iter().any(|d| path.ends_with(d)) {
                return error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");
            }
            next.run(req).await
        }
        RangeIgnored if kind == Kind::Blob => {
            let mut req = req;
            req.headers_mut().remove(header::RANGE);
            next.run(req).await
        }
        RangeNot416 if kind == Kind::Blob && get => {
            let uri = req.uri().clone();
            let resp = next.run(req).await;
            if resp.status() != StatusCode::RANGE_NOT_SATISFIABLE {
                return resp;
            }
            dispatch(&w.inner, Method::GET, uri, &[]).await
        }
        ContentRangeWrong if kind == Kind::Blob && get => {
            let mut resp = next.run(req).await;
            let wrong = header_text(&resp, "content-range").and_then(|range| {
                let (span, total) = range.rsplit_once('/')?;
                Some(format!("{span}/{}", total.parse::<u64>().ok()? + 1))
            });
            if let Some(wrong) = wrong {
                set_header(&mut resp, "content-range", &wrong);
            }
            resp
        }
        ManifestAsJson if kind == Kind::Manifest && (get || head) => {
            replace_ok_header(next.run(req).await, "content-type", "application/json")
        }
        DockerTypesAsOci if kind == Kind::Manifest && (get || head) => {
            let mut resp = next.run(req).await;
            let oci = match header_text(&resp, "content-type") {
                Some(airlock_conformance::DOCKER_MANIFEST) => airlock_conformance::OCI_MANIFEST,
                Some(airlock_conformance::DOCKER_MANIFEST_LIST) => airlock_conformance::OCI_INDEX,
                _ => return resp,
            };
            set_header(&mut resp, "content-type", oci);
            resp
        }
        ManifestHeadDigestDropped if kind == Kind::Manifest && head => {
            drop_header(next.run(req).await, "docker-content-digest")
        }
        UnknownManifestIs400 if kind == Kind::Manifest && (get || head) => {
            status_from_to(next.run(req).await, 404, 400)
        }
        UploadSessionReused if kind == Kind::Upload && method == Method::POST => {
            let mut resp = next.run(req).await;
            let Some(location) = header_text(&resp, "location").map(str::to_owned) else {
                return resp;
            };
            let first = w
                .remembered
                .lock()
                .expect("mutant memory")
                .entry(path)
                .or_insert(location)
                .clone();
            set_header(&mut resp, "location", &first);
            resp
        }
        MonolithicPostIgnored
            if kind == Kind::Upload && method == Method::POST && has_param(&query, "digest") =>
        {
            let (mut parts, _) = req.into_parts();
            parts.uri = without_params(&parts.uri, &["digest"]);
            parts.headers.insert(header::CONTENT_LENGTH, 0.into());
            next.run(Request::from_parts(parts, Body::empty())).await
        }
        Sha512Refused if path.contains("sha512") || query.contains("sha512") => {
            error(StatusCode::BAD_REQUEST, "UNSUPPORTED")
        }
        PatchRangeWrong if kind == Kind::Upload && method == Method::PATCH => {
            let mut resp = next.run(req).await;
            if let Some(range) = header_text(&resp, "range").map(str::to_owned) {
                set_header(&mut resp, "range", &format!("bytes={range}"));
            }
            resp
        }
        ChunkOutOfOrderAccepted if kind == Kind::Upload && method == Method::PATCH => {
            let location = path.clone();
            let mut resp = status_from_to(next.run(req).await, 416, 202);
            if resp.status() == StatusCode::ACCEPTED && header_text(&resp, "location").is_none() {
                set_header(&mut resp, "location", &location);
            }
            resp
        }
        StreamedPatchRefused
            if kind == Kind::Upload
                && method == Method::PATCH
                && !req.headers().contains_key(header::CONTENT_RANGE) =>
        {
            error(StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID")
        }
        FinalChunkOutOfOrderAccepted if kind == Kind::Upload && method == Method::PUT => {
            let mut resp = status_from_to(next.run(req).await, 416, 201);
            if resp.status() == StatusCode::CREATED && header_text(&resp, "location").is_none() {
                set_header(&mut resp, "location", &path);
            }
            resp
        }
        BlobLocationWrong if kind == Kind::Upload && method == Method::PUT => {
            replace_ok_header(next.run(req).await, "location", &path)
        }
        ManifestLocationDropped if kind == Kind::Manifest && method == Method::PUT => {
            drop_header(next.run(req).await, "location")
        }
        ManifestReformatted if kind == Kind::Manifest && get => {
            let (parts, bytes) = read(next.run(req).await).await;
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(value) if parts.status == StatusCode::OK => {
                    rebuild(parts, Bytes::from(value.to_string()))
                }
                _ => rebuild(parts, bytes),
            }
        }
        TagNotMoved if kind == Kind::Manifest && method == Method::PUT && !is_digest(&path) => {
            let uri = req.uri().clone();
            let accept = accept_manifests();
            let existing = dispatch(&w.inner, Method::HEAD, uri, &accept).await;
            if existing.status() == StatusCode::OK {
                return (StatusCode::CREATED, [(header::LOCATION, path)]).into_response();
            }
            next.run(req).await
        }
        LargeManifestRefused if kind == Kind::Manifest && method == Method::PUT => {
            let len = req
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|l| l.to_str().ok()?.parse::<u64>().ok());
            if len.is_some_and(|l| l > 1 << 20) {
                // Read first: a 413 sent before the body is lost to a client still writing it.
                let _ = axum::body::to_bytes(req.into_body(), usize::MAX).await;
                return error(StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID");
            }
            next.run(req).await
        }
        TagParamsIgnored if kind == Kind::Manifest && method == Method::PUT => {
            next.run(with_uri(req, |uri| without_params(uri, &["tag"])))
                .await
        }
        OciTagDropped if kind == Kind::Manifest && method == Method::PUT => {
            drop_header(next.run(req).await, "oci-tag")
        }
        TagsUnsorted if kind == Kind::Tags && get => {
            edit_json(next.run(req).await, |list| {
                if let Some(tags) = list["tags"].as_array_mut() {
                    tags.reverse();
                }
            })
            .await
        }
        TagsNIgnored if kind == Kind::Tags => {
            next.run(with_uri(req, |uri| without_params(uri, &["n"])))
                .await
        }
        TagsLastIgnored if kind == Kind::Tags => {
            next.run(with_uri(req, |uri| without_params(uri, &["last"])))
                .await
        }
        TagsLinkDropped if kind == Kind::Tags => drop_header(next.run(req).await, "link"),
        ManifestPutDigestWrong if kind == Kind::Manifest && method == Method::PUT => {
            let mut resp = next.run(req).await;
            if resp.headers().contains_key("docker-content-digest") {
                let other = airlock_conformance::Algorithm::Sha256.digest(path.as_bytes());
                set_header(&mut resp, "docker-content-digest", &other);
            }
            resp
        }
        DeletedTagListed
            if kind == Kind::Manifest && method == Method::DELETE && !is_digest(&path) =>
        {
            let resp = next.run(req).await;
            if let Some((repo, tag)) = path.rsplit_once("/manifests/") {
                let mut remembered = w.remembered.lock().expect("mutant memory");
                remembered.insert(repo.to_owned(), tag.to_owned());
            }
            resp
        }
        DeletedTagListed if kind == Kind::Tags => {
            let repo = path.trim_end_matches("/tags/list");
            let deleted = w
                .remembered
                .lock()
                .expect("mutant memory")
                .get(repo)
                .cloned();
            let Some(deleted) = deleted else {
                return next.run(req).await;
            };
            edit_json(next.run(req).await, |list| {
                if let Some(tags) = list["tags"].as_array_mut() {
                    tags.push(json!(deleted));
                }
            })
            .await
        }
        ManifestDeleteNoop if kind == Kind::Manifest && method == Method::DELETE => {
            StatusCode::ACCEPTED.into_response()
        }
        TagDeleteDeletesManifest
            if kind == Kind::Manifest && method == Method::DELETE && !is_digest(&path) =>
        {
            let uri = req.uri().clone();
            let head = dispatch(&w.inner, Method::HEAD, uri, &accept_manifests()).await;
            let (Some(digest), Some((repo, _))) = (
                header_text(&head, "docker-content-digest"),
                path.rsplit_once("/manifests/"),
            ) else {
                return next.run(req).await;
            };
            let by_digest = format!("{repo}/manifests/{digest}");
            let uri = by_digest.parse().expect("manifest path");
            dispatch(&w.inner, Method::DELETE, uri, &[]).await
        }
        BlobDeleteNoop if kind == Kind::Blob && method == Method::DELETE => {
            StatusCode::ACCEPTED.into_response()
        }
        MountIgnored if kind == Kind::Upload && method == Method::POST => {
            next.run(with_uri(req, |uri| without_params(uri, &["mount", "from"])))
                .await
        }
        MountClaimedNotDone if kind == Kind::Upload && has_param(&query, "mount") => {
            let digest = param(&query, "mount").unwrap_or_default();
            let repo = path.split("/blobs/uploads").next().unwrap_or_default();
            let location = format!("{repo}/blobs/{digest}");
            (
                StatusCode::CREATED,
                [(
                    header::LOCATION,
                    HeaderValue::from_str(&location).expect("blob path"),
                )],
            )
                .into_response()
        }
        OciSubjectDropped if kind == Kind::Manifest && method == Method::PUT => {
            drop_header(next.run(req).await, "oci-subject")
        }
        ReferrersAsJson if kind == Kind::Referrers => {
            replace_ok_header(next.run(req).await, "content-type", "application/json")
        }
        ReferrersArtifactTypeDropped if kind == Kind::Referrers => {
            edit_referrers(next.run(req).await, "artifactType").await
        }
        ReferrersAnnotationsDropped if kind == Kind::Referrers => {
            edit_referrers(next.run(req).await, "annotations").await
        }
        ReferrersBadDigestIs404 if kind == Kind::Referrers => {
            status_from_to(next.run(req).await, 400, 404)
        }
        ReferrersFilterIgnored if kind == Kind::Referrers => {
            next.run(with_uri(req, |uri| without_params(uri, &["artifactType"])))
                .await
        }
        ReferrersFilterClaimed if kind == Kind::Referrers && has_param(&query, "artifactType") => {
            let req = with_uri(req, |uri| without_params(uri, &["artifactType"]));
            let mut resp = next.run(req).await;
            set_header(&mut resp, "oci-filters-applied", "artifactType");
            resp
        }
        UploadStatusIs200 if kind == Kind::Upload && get => {
            status_from_to(next.run(req).await, 204, 200)
        }
        UploadStatusRangeWrong if kind == Kind::Upload && get => {
            let mut resp = next.run(req).await;
            let wrong = header_text(&resp, "range").and_then(|range| {
                let (start, end) = range.split_once('-')?;
                Some(format!("{start}-{}", end.parse::<u64>().ok()? + 1))
            });
            if let Some(wrong) = wrong {
                set_header(&mut resp, "range", &wrong);
            }
            resp
        }
        CancelNoop if kind == Kind::Upload && method == Method::DELETE => {
            StatusCode::NO_CONTENT.into_response()
        }
        DigestNotVerified if kind == Kind::Upload => {
            let resp = next.run(req).await;
            let (parts, bytes) = read(resp).await;
            if codes(&bytes).iter().any(|c| c == "DIGEST_INVALID") {
                return (StatusCode::CREATED, [(header::LOCATION, path)]).into_response();
            }
            rebuild(parts, bytes)
        }
        ManifestBlobsNotChecked if kind == Kind::Manifest && method == Method::PUT => {
            let (parts, bytes) = read(next.run(req).await).await;
            if codes(&bytes).iter().any(|c| c == "MANIFEST_BLOB_UNKNOWN") {
                return (StatusCode::CREATED, [(header::LOCATION, path)]).into_response();
            }
            rebuild(parts, bytes)
        }
        InvalidManifestIs500 if kind == Kind::Manifest && method == Method::PUT => {
            let (parts, bytes) = read(next.run(req).await).await;
            if codes(&bytes).iter().any(|c| c == "MANIFEST_INVALID") {
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
            rebuild(parts, bytes)
        }
        NamesLowercased if matches!(kind, Kind::Upload | Kind::Manifest) => {
            next.run(with_uri(req, lowercase_name)).await
        }
        ErrorBodiesNotJson => {
            let resp = next.run(req).await;
            if !resp.status().is_client_error() || head {
                return resp;
            }
            let (parts, _) = read(resp).await;
            let mut resp = rebuild(parts, Bytes::from_static(b"something went wrong\n"));
            set_header(&mut resp, "content-type", "text/plain");
            resp
        }
        Code { from, to } => {
            let resp = next.run(req).await;
            if !resp.status().is_client_error() || head {
                return resp;
            }
            edit_json(resp, |body| {
                for error in body["errors"].as_array_mut().into_iter().flatten() {
                    if error["code"] == from {
                        error["code"] = json!(to);
                    }
                }
            })
            .await
        }
        _ => next.run(req).await,
    }
}
