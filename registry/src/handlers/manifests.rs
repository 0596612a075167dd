//! Manifests: pull by tag or digest with their exact bytes and media type, push with every
//! reference checked, delete by digest or tag.

use airlock_oci::{OCI_MANIFEST, ParsedManifest, Reference, RepoName, Tag, parse_manifest};
use airlock_store::{Digest, PutOptions, RepoChange, Store};
use axum::{
    body::Body,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures_util::StreamExt;

use super::{
    DOCKER_CONTENT_DIGEST, OCI_SUBJECT, OCI_TAG, Reply, Want, content_length, header_text,
};
use crate::{
    error::RegistryError,
    manifest::{manifest_digest, oci_digest, store_digest},
    state::AppState,
};

/// end-3: `GET`/`HEAD /v2/<name>/manifests/<reference>`, the stored bytes with the media type
/// they were pushed as, `Docker-Content-Digest` and `Content-Length`.
pub(super) async fn get(
    state: &AppState,
    name: RepoName,
    reference: Reference,
    want: Want,
) -> Result<Response, RegistryError> {
    let (digest, bytes, media_type) = state
        .blocking(move |s| {
            let store = s.store();
            let digest = resolve(store, &name, &reference)?;
            let bytes = store.read_blob(&digest)?;
            let media_type = store.manifest_media_type(&digest)?;
            Ok((digest, bytes, media_type))
        })
        .await?;
    let media_type = media_type.unwrap_or_else(|| sniff_media_type(&bytes));
    let reply = Reply::new(StatusCode::OK)
        .header(header::CONTENT_TYPE, media_type)
        .header(DOCKER_CONTENT_DIGEST, &digest)
        .header(header::CONTENT_LENGTH, bytes.len());
    Ok(match want {
        Want::Body => reply.body(bytes),
        Want::Head => reply,
    }
    .into_response())
}

/// The manifest a reference names in `repo`: a tag's target, or a digest linked as a manifest.
fn resolve(store: &Store, repo: &RepoName, reference: &Reference) -> Result<Digest, RegistryError> {
    let found = match reference {
        Reference::Tag(tag) => store.tag(repo.as_str(), tag.as_str())?,
        Reference::Digest(digest) => {
            let digest = store_digest(digest)?;
            store
                .link(repo.as_str(), &digest)?
                .filter(|l| l.manifest)
                .map(|_| digest)
        }
    };
    found.ok_or_else(|| RegistryError::manifest_unknown(reference))
}

/// The type of a manifest stored without one (e.g. by an older importer): what its body says.
fn sniff_media_type(bytes: &[u8]) -> String {
    parse_manifest(None, bytes)
        .map_or(OCI_MANIFEST, |m| m.media_type.as_str())
        .to_owned()
}

/// end-7a, end-7b: `PUT /v2/<name>/manifests/<reference>[?tag=..]`. The body (at most the
/// configured size, else 413) is validated, every blob and child manifest it references must be
/// in the repository (MANIFEST_BLOB_UNKNOWN), then it is stored byte for byte and linked, tagged
/// and recorded as a referrer in one transaction.
pub(super) async fn put(
    state: &AppState,
    name: RepoName,
    reference: Reference,
    tags: Vec<Tag>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, RegistryError> {
    let limit = state.config().max_manifest_bytes;
    let bytes = read_limited(body, content_length(headers)?, limit).await?;
    let push = Push {
        content_type: header_text(headers, &header::CONTENT_TYPE).map(str::to_owned),
        repo: name,
        reference,
        tags,
        bytes,
    };
    let pushed = state.blocking(move |s| push.apply(s.store())).await?;
    Ok(pushed.into_response())
}

/// Reads a manifest body of at most `limit` bytes, refusing more with 413 before storing any.
async fn read_limited(
    body: Body,
    declared: Option<u64>,
    limit: u64,
) -> Result<Vec<u8>, RegistryError> {
    if declared.is_some_and(|n| n > limit) {
        return Err(RegistryError::manifest_too_large(limit));
    }
    let mut bytes = Vec::with_capacity(declared.map_or(0, |n| usize::try_from(n).unwrap_or(0)));
    let mut stream = body.into_data_stream();
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(|_| {
            RegistryError::manifest_invalid("the request body ended before it was complete")
        })?;
        if (bytes.len() + piece.len()) as u64 > limit {
            return Err(RegistryError::manifest_too_large(limit));
        }
        bytes.extend_from_slice(&piece);
    }
    if declared.is_some_and(|n| n != bytes.len() as u64) {
        return Err(RegistryError::new(
            crate::error::ErrorCode::SizeInvalid,
            "the manifest body's length differs from its Content-Length",
        ));
    }
    Ok(bytes)
}

/// A manifest push, as received.
struct Push {
    repo: RepoName,
    reference: Reference,
    /// Extra tags (end-7b).
    tags: Vec<Tag>,
    content_type: Option<String>,
    bytes: Vec<u8>,
}

/// What a manifest push recorded.
struct Pushed {
    repo: RepoName,
    digest: Digest,
    subject: Option<Digest>,
    tags: Vec<Tag>,
}

impl Push {
    /// Checks and stores the manifest (blocking).
    fn apply(self, store: &Store) -> Result<Pushed, RegistryError> {
        let parsed = parse_manifest(self.content_type.as_deref(), &self.bytes)?;
        let digest = manifest_digest(&self.reference, &self.bytes)?;
        check_references(store, &self.repo, &parsed, &digest)?;
        let size = self.bytes.len() as u64;
        let put = PutOptions {
            max_size: None,
            expected_size: Some(size),
        };
        store.put_blob(&digest, &self.bytes[..], put)?;
        let subject = match &parsed.subject {
            Some(s) => {
                let entry = parsed.referrer_descriptor(oci_digest(&digest)?, size);
                let entry = serde_json::to_vec(&entry).map_err(RegistryError::internal)?;
                Some((store_digest(&s.digest)?, entry))
            }
            None => None,
        };
        let children = parsed
            .children()
            .iter()
            .map(store_digest)
            .collect::<Result<Vec<Digest>, _>>()?;
        let repo = self.repo.to_string();
        // The references checked above are checked again inside the linking transaction, so a
        // concurrent delete or GC cannot leave this manifest pointing at nothing.
        let mut changes: Vec<RepoChange> = required_links(&repo, &parsed)?;
        changes.push(RepoChange::LinkManifest {
            repo: repo.clone(),
            digest: digest.clone(),
            children,
            subject: subject.clone(),
            media_type: parsed.media_type.as_str().to_owned(),
        });
        // A registry need not hold non-distributable layers: verify must not miss them.
        let foreign = parsed
            .blobs()
            .filter(|d| d.is_non_distributable())
            .map(|d| store_digest(&d.digest))
            .collect::<Result<Vec<Digest>, _>>()?;
        if !foreign.is_empty() {
            changes.push(RepoChange::MarkAbsent {
                digest: digest.clone(),
                children: foreign,
            });
        }
        let tags = self.reference.tag().into_iter().chain(&self.tags);
        changes.extend(tags.map(|tag| RepoChange::SetTag {
            repo: repo.clone(),
            tag: tag.to_string(),
            digest: digest.clone(),
        }));
        store.apply_repo_changes(&changes).map_err(|e| match e {
            airlock_store::Error::BlobNotFound { digest } => {
                RegistryError::manifest_blob_unknown(&digest)
            }
            other => other.into(),
        })?;
        Ok(Pushed {
            repo: self.repo,
            digest,
            subject: subject.map(|(d, _)| d),
            tags: self.tags,
        })
    }
}

impl IntoResponse for Pushed {
    /// 201 with `Location`, `Docker-Content-Digest`, `OCI-Subject` when the manifest has one, and
    /// an `OCI-Tag` per extra tag.
    fn into_response(self) -> Response {
        let location = format!("/v2/{}/manifests/{}", self.repo, self.digest);
        let mut reply = Reply::new(StatusCode::CREATED)
            .header(header::LOCATION, location)
            .header(DOCKER_CONTENT_DIGEST, &self.digest);
        if let Some(subject) = &self.subject {
            reply = reply.header(OCI_SUBJECT, subject);
        }
        for tag in &self.tags {
            reply = reply.header(OCI_TAG, tag);
        }
        reply.into_response()
    }
}

/// Every blob (but non-distributable layers, which a registry need not hold) and every child
/// manifest must be in `repo`; none may be the manifest itself.
/// One `RequireLink` per distributable reference, as `check_references` checked them.
fn required_links(repo: &str, parsed: &ParsedManifest) -> Result<Vec<RepoChange>, RegistryError> {
    let blobs = parsed.blobs().filter(|d| !d.is_non_distributable());
    blobs
        .map(|d| (d, true))
        .chain(parsed.manifests.iter().map(|d| (d, false)))
        .map(|(d, blob_ok)| {
            Ok(RepoChange::RequireLink {
                repo: repo.to_owned(),
                digest: store_digest(&d.digest)?,
                blob_ok,
            })
        })
        .collect()
}

fn check_references(
    store: &Store,
    repo: &RepoName,
    parsed: &ParsedManifest,
    own: &Digest,
) -> Result<(), RegistryError> {
    let blobs = parsed.blobs().filter(|d| !d.is_non_distributable());
    for (d, must_be_manifest) in blobs
        .map(|d| (d, false))
        .chain(parsed.manifests.iter().map(|d| (d, true)))
    {
        let digest = store_digest(&d.digest)?;
        if &digest == own {
            return Err(RegistryError::manifest_invalid(format!(
                "the manifest references itself ({own})"
            )));
        }
        let link = store.link(repo.as_str(), &digest)?;
        if !link.is_some_and(|l| l.manifest || (l.blob && !must_be_manifest)) {
            return Err(RegistryError::manifest_blob_unknown(&digest));
        }
    }
    Ok(())
}

/// end-9: `DELETE /v2/<name>/manifests/<reference>`. A digest unlinks the manifest with its tags
/// and referrer entry; a tag removes only the tag. 202, or MANIFEST_UNKNOWN.
pub(super) async fn delete(
    state: &AppState,
    name: RepoName,
    reference: Reference,
) -> Result<Response, RegistryError> {
    state
        .blocking(move |s| {
            let store = s.store();
            let digest = resolve(store, &name, &reference)?;
            let repo = name.to_string();
            let change = match reference {
                Reference::Tag(tag) => RepoChange::DeleteTag {
                    repo,
                    tag: tag.to_string(),
                },
                Reference::Digest(_) => RepoChange::UnlinkManifest { repo, digest },
            };
            Ok(store.apply_repo_changes(&[change])?)
        })
        .await?;
    Ok(Reply::new(StatusCode::ACCEPTED).into_response())
}

#[cfg(test)]
mod tests {
    use airlock_store::StoreOptions;

    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn a_manifest_cannot_reference_itself() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), StoreOptions::default()).expect("store");
        let repo: RepoName = "app".parse().expect("name");
        // Claim, as if by collision, that the manifest's own digest is its config's.
        let own = Digest::sha256(b"{}");
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"a/b","digest":"{own}","size":2}},"layers":[]}}"#
        );
        let parsed = parse_manifest(Some(OCI_MANIFEST), body.as_bytes()).expect("valid");
        store
            .put_blob(&own, &b"{}"[..], PutOptions::default())
            .expect("put");
        store.link_blob("app", &own).expect("link");
        let err = check_references(&store, &repo, &parsed, &own).expect_err("self");
        assert_eq!(err.code(), Some(ErrorCode::ManifestInvalid));
        // Linked and distinct, it is fine.
        let other = Digest::sha256(b"other");
        assert!(check_references(&store, &repo, &parsed, &other).is_ok());
    }
}
