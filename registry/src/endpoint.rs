//! Every request of the API, parsed from method, path and query into one [`Endpoint`].
//!
//! Repository names contain `/`, so routes cannot be written per depth: the path after `/v2/` is
//! matched from the right (`.../manifests/<ref>`, `.../blobs/uploads/<id>`, ...) and everything
//! before the matched tail is the name. The tails are unambiguous: a digest always holds a `:`, which
//! `uploads` does not, and an upload tail is tested before a blob tail.
//!
//! containerd's mirror parameter `ns` (`?ns=docker.io`) scopes the name:
//! `/v2/library/nginx/manifests/x?ns=docker.io` reads repository `docker.io/library/nginx`
//! (see [`RepoName::in_namespace`]). A name without `ns` is the path as asked; which stored
//! repository it means (`acme/gateway` may be `docker.io/acme/gateway`) is decided after parsing,
//! against the store, by `airlock_oci::RepoQuery`.

use airlock_oci::{Namespace, Reference, RepoName, Tag};
use airlock_store::{Algorithm, Digest};
use axum::http::Method;

use crate::{
    error::{ErrorCode, RegistryError},
    manifest::store_digest,
    pagination::Page,
    query::{Query, percent_decode_path},
    upload_id::UploadId,
};

/// Whether an endpoint changes the registry; a read-only registry refuses every [`Access::Write`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Pulls and listings.
    Read,
    /// Pushes, deletes and upload sessions.
    Write,
}

/// One request of the OCI distribution API, its parts validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// end-1: `GET /v2/`, the API version check.
    Base,
    /// end-3: `GET /v2/<name>/manifests/<reference>`.
    GetManifest {
        /// The repository.
        name: RepoName,
        /// Tag or digest.
        reference: Reference,
    },
    /// end-3: `HEAD /v2/<name>/manifests/<reference>`.
    HeadManifest {
        /// The repository.
        name: RepoName,
        /// Tag or digest.
        reference: Reference,
    },
    /// end-7a: `PUT /v2/<name>/manifests/<reference>`; end-7b with `?tag=..&tag=..`.
    PutManifest {
        /// The repository.
        name: RepoName,
        /// Tag or digest pushed to.
        reference: Reference,
        /// Extra tags from `tag` query parameters (end-7b), in order, without duplicates.
        tags: Vec<Tag>,
    },
    /// end-9: `DELETE /v2/<name>/manifests/<reference>` (a tag or a manifest).
    DeleteManifest {
        /// The repository.
        name: RepoName,
        /// Tag or digest.
        reference: Reference,
    },
    /// end-2: `GET /v2/<name>/blobs/<digest>`.
    GetBlob {
        /// The repository.
        name: RepoName,
        /// The blob.
        digest: Digest,
    },
    /// end-2: `HEAD /v2/<name>/blobs/<digest>`.
    HeadBlob {
        /// The repository.
        name: RepoName,
        /// The blob.
        digest: Digest,
    },
    /// end-10: `DELETE /v2/<name>/blobs/<digest>`.
    DeleteBlob {
        /// The repository.
        name: RepoName,
        /// The blob.
        digest: Digest,
    },
    /// end-4a: `POST /v2/<name>/blobs/uploads/`; end-4b with `?digest=` (single POST upload);
    /// end-4c with `?digest-algorithm=`; end-11 with `?mount=<digest>&from=<name>`.
    StartUpload {
        /// The repository uploaded to.
        name: RepoName,
        /// The blob's digest for a monolithic single-POST upload (end-4b).
        digest: Option<Digest>,
        /// The algorithm of a chunked upload's final digest (end-4c).
        algorithm: Option<Algorithm>,
        /// The blob to mount from another repository (end-11).
        mount: Option<Digest>,
        /// The repository to mount from (end-11); the spec lets a registry mount without it.
        from: Option<RepoName>,
    },
    /// end-5: `PATCH <blob-push-location>`, one chunk.
    PatchUpload {
        /// The repository.
        name: RepoName,
        /// The session.
        id: UploadId,
    },
    /// end-6: `PUT <blob-push-location>?digest=<digest>`, closing the session.
    PutUpload {
        /// The repository.
        name: RepoName,
        /// The session.
        id: UploadId,
        /// The whole blob's digest.
        digest: Digest,
    },
    /// end-13: `GET <blob-push-location>`, the session's progress.
    GetUpload {
        /// The repository.
        name: RepoName,
        /// The session.
        id: UploadId,
    },
    /// end-14: `DELETE <blob-push-location>`, cancelling the session.
    DeleteUpload {
        /// The repository.
        name: RepoName,
        /// The session.
        id: UploadId,
    },
    /// end-8a: `GET /v2/<name>/tags/list`; end-8b with `?n=<int>&last=<tag>`.
    Tags {
        /// The repository.
        name: RepoName,
        /// `n` and `last`.
        page: Page,
    },
    /// end-12a: `GET /v2/<name>/referrers/<digest>`; end-12b with `?artifactType=`.
    Referrers {
        /// The repository.
        name: RepoName,
        /// The subject manifest.
        digest: Digest,
        /// Only referrers of this artifact type (end-12b).
        artifact_type: Option<String>,
    },
    /// `GET /v2/_catalog?n=&last=`: the repository list (the Docker registry API; not in the
    /// spec's endpoint table).
    Catalog {
        /// `n` and `last`.
        page: Page,
    },
}

/// A parsed request: the endpoint, and the `ns` source host that scoped its name, if any (to send
/// back in the `OCI-Namespace` response header).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// What is asked.
    pub endpoint: Endpoint,
    /// containerd's `ns` query parameter, when it scoped the repository name.
    pub namespace: Option<Namespace>,
}

const MANIFEST_METHODS: &str = "GET, HEAD, PUT, DELETE";
const BLOB_METHODS: &str = "GET, HEAD, DELETE";
const UPLOAD_METHODS: &str = "GET, PATCH, PUT, DELETE";

/// The shape of a path, before its parts are validated.
enum Shape<'a> {
    Base,
    Catalog,
    Manifest(&'a str),
    Blob(&'a str),
    StartUpload,
    Upload(&'a str),
    Tags,
    Referrers(&'a str),
}

impl Route {
    /// Parses a request. `path` is the raw URI path, `query` the raw query without `?`.
    ///
    /// Errors are the spec's: an unknown path is a 404, a known path with the wrong method a 405
    /// with `Allow`, then NAME_INVALID, DIGEST_INVALID, MANIFEST_INVALID (a bad tag on a push) or
    /// MANIFEST_UNKNOWN (a bad tag on a read, which cannot name anything), BLOB_UPLOAD_UNKNOWN (a
    /// malformed session id).
    pub fn parse(method: &Method, path: &str, query: Option<&str>) -> Result<Route, RegistryError> {
        let query = Query::parse(query);
        let (shape, name) = shape(path).ok_or_else(RegistryError::not_found)?;
        check_method(method, &shape)?;
        let (name, namespace) = match name {
            Some(raw) => {
                let name: RepoName = raw.parse()?;
                match query.non_empty("ns") {
                    Some(ns) => {
                        let ns: Namespace = ns.parse()?;
                        (Some(name.in_namespace(&ns)?), Some(ns))
                    }
                    None => (Some(name), None),
                }
            }
            None => (None, None),
        };
        let endpoint = build(method, shape, name, &query)?;
        Ok(Route {
            endpoint,
            namespace,
        })
    }
}

/// What a request is counted as in the metrics: a small fixed set of routes, never a raw path
/// (paths hold repository names and digests, which would make a series per image).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteName {
    /// `/v2/`.
    Base,
    /// `/v2/<name>/manifests/<reference>`.
    Manifest,
    /// `/v2/<name>/blobs/<digest>`.
    Blob,
    /// `/v2/<name>/blobs/uploads/...`: upload sessions, monolithic pushes and mounts.
    Upload,
    /// `/v2/<name>/tags/list`.
    Tags,
    /// `/v2/<name>/referrers/<digest>`.
    Referrers,
    /// `/v2/_catalog`.
    Catalog,
    /// The token endpoint of registry accounts (issue 16), `/auth/token`.
    Token,
    /// `/healthz` and `/readyz`.
    Health,
    /// Anything else (a 404).
    Other,
}

impl RouteName {
    /// Every route, in the order the metrics list them.
    pub const ALL: [RouteName; 10] = [
        RouteName::Base,
        RouteName::Manifest,
        RouteName::Blob,
        RouteName::Upload,
        RouteName::Tags,
        RouteName::Referrers,
        RouteName::Catalog,
        RouteName::Token,
        RouteName::Health,
        RouteName::Other,
    ];

    /// The route of a request's path, whatever its method and query.
    pub fn of_path(path: &str) -> RouteName {
        match path {
            crate::health::LIVE_PATH | crate::health::READY_PATH => return RouteName::Health,
            "/auth/token" => return RouteName::Token,
            _ => {}
        }
        match shape(path) {
            Some((Shape::Base, _)) => RouteName::Base,
            Some((Shape::Catalog, _)) => RouteName::Catalog,
            Some((Shape::Manifest(_), _)) => RouteName::Manifest,
            Some((Shape::Blob(_), _)) => RouteName::Blob,
            Some((Shape::StartUpload | Shape::Upload(_), _)) => RouteName::Upload,
            Some((Shape::Tags, _)) => RouteName::Tags,
            Some((Shape::Referrers(_), _)) => RouteName::Referrers,
            None => RouteName::Other,
        }
    }

    /// The label value: `base`, `manifest`, `blob`, `upload`, `tags`, `referrers`, `catalog`,
    /// `token`, `health` or `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteName::Base => "base",
            RouteName::Manifest => "manifest",
            RouteName::Blob => "blob",
            RouteName::Upload => "upload",
            RouteName::Tags => "tags",
            RouteName::Referrers => "referrers",
            RouteName::Catalog => "catalog",
            RouteName::Token => "token",
            RouteName::Health => "health",
            RouteName::Other => "other",
        }
    }
}

/// Splits `path` into its shape and the raw name before the tail.
fn shape(path: &str) -> Option<(Shape<'_>, Option<&str>)> {
    let rest = path.strip_prefix("/v2")?;
    if rest.is_empty() || rest == "/" {
        return Some((Shape::Base, None));
    }
    let rest = rest.strip_prefix('/')?;
    if rest == "_catalog" {
        return Some((Shape::Catalog, None));
    }
    let segs: Vec<&str> = rest.split('/').collect();
    let n = segs.len();
    // The name is segs[..n - tail]; its text is the prefix of `rest` up to that point.
    let name_of = |tail: usize| -> Option<&str> {
        let count = n.checked_sub(tail).filter(|&c| c > 0)?;
        let len = segs[..count].iter().map(|s| s.len()).sum::<usize>() + count - 1;
        rest.get(..len).filter(|name| !name.is_empty())
    };
    let at = |i: usize| n.checked_sub(i).map(|j| segs[j]);
    let shape = match (at(3), at(2), at(1)) {
        (Some("blobs"), Some("uploads"), Some("")) => (Shape::StartUpload, name_of(3)?),
        (Some("blobs"), Some("uploads"), Some(id)) => (Shape::Upload(id), name_of(3)?),
        (_, Some("blobs"), Some("uploads")) => (Shape::StartUpload, name_of(2)?),
        (_, Some("tags"), Some("list")) => (Shape::Tags, name_of(2)?),
        (_, Some("manifests"), Some(r)) if !r.is_empty() => (Shape::Manifest(r), name_of(2)?),
        (_, Some("blobs"), Some(d)) if !d.is_empty() => (Shape::Blob(d), name_of(2)?),
        (_, Some("referrers"), Some(d)) if !d.is_empty() => (Shape::Referrers(d), name_of(2)?),
        _ => return None,
    };
    Some((shape.0, Some(shape.1)))
}

fn check_method(method: &Method, shape: &Shape<'_>) -> Result<(), RegistryError> {
    let m = method.clone();
    let (ok, allow) = match shape {
        Shape::Base => (m == Method::GET || m == Method::HEAD, "GET, HEAD"),
        Shape::Catalog | Shape::Tags | Shape::Referrers(_) => (m == Method::GET, "GET"),
        Shape::Manifest(_) => (
            [Method::GET, Method::HEAD, Method::PUT, Method::DELETE].contains(&m),
            MANIFEST_METHODS,
        ),
        Shape::Blob(_) => (
            [Method::GET, Method::HEAD, Method::DELETE].contains(&m),
            BLOB_METHODS,
        ),
        Shape::StartUpload => (m == Method::POST, "POST"),
        Shape::Upload(_) => (
            [Method::GET, Method::PATCH, Method::PUT, Method::DELETE].contains(&m),
            UPLOAD_METHODS,
        ),
    };
    if ok {
        Ok(())
    } else {
        Err(RegistryError::method_not_allowed(allow))
    }
}

fn build(
    method: &Method,
    shape: Shape<'_>,
    name: Option<RepoName>,
    query: &Query,
) -> Result<Endpoint, RegistryError> {
    // Every shape but Base and Catalog has a name: `shape` returns one with them.
    let named = |name: Option<RepoName>| name.ok_or_else(RegistryError::not_found);
    let endpoint = match shape {
        Shape::Base => Endpoint::Base,
        Shape::Catalog => Endpoint::Catalog {
            page: Page::from_query(query.first("n"), query.first("last"))?,
        },
        Shape::Manifest(raw) => {
            let name = named(name)?;
            let reference = parse_reference(raw, method)?;
            match *method {
                Method::GET => Endpoint::GetManifest { name, reference },
                Method::HEAD => Endpoint::HeadManifest { name, reference },
                Method::DELETE => Endpoint::DeleteManifest { name, reference },
                _ => Endpoint::PutManifest {
                    name,
                    reference,
                    tags: parse_tags(query)?,
                },
            }
        }
        Shape::Blob(raw) => {
            let name = named(name)?;
            let digest = parse_digest(&percent_decode_path(raw))?;
            match *method {
                Method::GET => Endpoint::GetBlob { name, digest },
                Method::HEAD => Endpoint::HeadBlob { name, digest },
                _ => Endpoint::DeleteBlob { name, digest },
            }
        }
        Shape::StartUpload => Endpoint::StartUpload {
            name: named(name)?,
            digest: query.non_empty("digest").map(parse_digest).transpose()?,
            algorithm: query
                .non_empty("digest-algorithm")
                .map(parse_algorithm)
                .transpose()?,
            mount: query.non_empty("mount").map(parse_digest).transpose()?,
            from: query.non_empty("from").map(str::parse).transpose()?,
        },
        Shape::Upload(raw) => {
            let name = named(name)?;
            let id: UploadId = percent_decode_path(raw).parse()?;
            match *method {
                Method::GET => Endpoint::GetUpload { name, id },
                Method::PATCH => Endpoint::PatchUpload { name, id },
                Method::DELETE => Endpoint::DeleteUpload { name, id },
                _ => {
                    let digest = query.non_empty("digest").ok_or_else(|| {
                        RegistryError::new(
                            ErrorCode::DigestInvalid,
                            "closing an upload needs the blob's digest: PUT <location>?digest=<digest>",
                        )
                    })?;
                    Endpoint::PutUpload {
                        name,
                        id,
                        digest: parse_digest(digest)?,
                    }
                }
            }
        }
        Shape::Tags => Endpoint::Tags {
            name: named(name)?,
            page: Page::from_query(query.first("n"), query.first("last"))?,
        },
        Shape::Referrers(raw) => Endpoint::Referrers {
            name: named(name)?,
            digest: parse_digest(&percent_decode_path(raw))?,
            artifact_type: query.non_empty("artifactType").map(str::to_owned),
        },
    };
    Ok(endpoint)
}

/// A digest from the path or query: OCI's grammar, as the store's type.
fn parse_digest(text: &str) -> Result<Digest, RegistryError> {
    let digest: airlock_oci::Digest = text.parse()?;
    store_digest(&digest)
}

fn parse_algorithm(text: &str) -> Result<Algorithm, RegistryError> {
    match text {
        "sha256" => Ok(Algorithm::Sha256),
        "sha512" => Ok(Algorithm::Sha512),
        other => Err(RegistryError::new(
            ErrorCode::DigestInvalid,
            format!(
                "unsupported digest algorithm {:?}: use sha256 or sha512",
                other.get(..64).unwrap_or(other)
            ),
        )),
    }
}

/// A manifest reference. A malformed tag cannot name anything, so a read answers MANIFEST_UNKNOWN
/// (404) and a push MANIFEST_INVALID (400); a malformed digest is DIGEST_INVALID either way.
fn parse_reference(raw: &str, method: &Method) -> Result<Reference, RegistryError> {
    let text = percent_decode_path(raw);
    text.parse::<Reference>().map_err(|err| match err {
        airlock_oci::Error::InvalidTag { .. } if *method != Method::PUT => {
            RegistryError::new(ErrorCode::ManifestUnknown, err.to_string())
        }
        other => RegistryError::from_oci(other),
    })
}

/// The `tag` query parameters of end-7b, deduplicated in order.
fn parse_tags(query: &Query) -> Result<Vec<Tag>, RegistryError> {
    let mut tags: Vec<Tag> = Vec::new();
    for text in query.all("tag").filter(|t| !t.is_empty()) {
        let tag: Tag = text.parse()?;
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    Ok(tags)
}

impl Endpoint {
    /// Parses a request and keeps only the endpoint; see [`Route::parse`] for the errors and for
    /// the `ns` source host.
    pub fn parse(
        method: &Method,
        path: &str,
        query: Option<&str>,
    ) -> Result<Endpoint, RegistryError> {
        Route::parse(method, path, query).map(|r| r.endpoint)
    }

    /// The spec's endpoint id (`end-3`, `end-4b`, ...), for spans and conformance reports; the
    /// catalog, which the table lacks, is `catalog`.
    pub fn id(&self) -> &'static str {
        match self {
            Endpoint::Base => "end-1",
            Endpoint::GetBlob { .. } | Endpoint::HeadBlob { .. } => "end-2",
            Endpoint::GetManifest { .. } | Endpoint::HeadManifest { .. } => "end-3",
            Endpoint::StartUpload {
                digest,
                algorithm,
                mount,
                ..
            } => match (mount, digest, algorithm) {
                (Some(_), _, _) => "end-11",
                (None, Some(_), _) => "end-4b",
                (None, None, Some(_)) => "end-4c",
                (None, None, None) => "end-4a",
            },
            Endpoint::PatchUpload { .. } => "end-5",
            Endpoint::PutUpload { .. } => "end-6",
            Endpoint::PutManifest { tags, .. } if tags.is_empty() => "end-7a",
            Endpoint::PutManifest { .. } => "end-7b",
            Endpoint::Tags { page, .. } if *page == Page::default() => "end-8a",
            Endpoint::Tags { .. } => "end-8b",
            Endpoint::DeleteManifest { .. } => "end-9",
            Endpoint::DeleteBlob { .. } => "end-10",
            Endpoint::Referrers {
                artifact_type: None,
                ..
            } => "end-12a",
            Endpoint::Referrers { .. } => "end-12b",
            Endpoint::GetUpload { .. } => "end-13",
            Endpoint::DeleteUpload { .. } => "end-14",
            Endpoint::Catalog { .. } => "catalog",
        }
    }

    /// Whether the endpoint writes; upload sessions count as writes, even their status GET.
    pub fn access(&self) -> Access {
        match self {
            Endpoint::Base
            | Endpoint::GetManifest { .. }
            | Endpoint::HeadManifest { .. }
            | Endpoint::GetBlob { .. }
            | Endpoint::HeadBlob { .. }
            | Endpoint::Tags { .. }
            | Endpoint::Referrers { .. }
            | Endpoint::Catalog { .. } => Access::Read,
            Endpoint::PutManifest { .. }
            | Endpoint::DeleteManifest { .. }
            | Endpoint::DeleteBlob { .. }
            | Endpoint::StartUpload { .. }
            | Endpoint::PatchUpload { .. }
            | Endpoint::PutUpload { .. }
            | Endpoint::GetUpload { .. }
            | Endpoint::DeleteUpload { .. } => Access::Write,
        }
    }

    /// The repository the endpoint is about, if any.
    pub fn name(&self) -> Option<&RepoName> {
        match self {
            Endpoint::Base | Endpoint::Catalog { .. } => None,
            Endpoint::GetManifest { name, .. }
            | Endpoint::HeadManifest { name, .. }
            | Endpoint::PutManifest { name, .. }
            | Endpoint::DeleteManifest { name, .. }
            | Endpoint::GetBlob { name, .. }
            | Endpoint::HeadBlob { name, .. }
            | Endpoint::DeleteBlob { name, .. }
            | Endpoint::StartUpload { name, .. }
            | Endpoint::PatchUpload { name, .. }
            | Endpoint::PutUpload { name, .. }
            | Endpoint::GetUpload { name, .. }
            | Endpoint::DeleteUpload { name, .. }
            | Endpoint::Tags { name, .. }
            | Endpoint::Referrers { name, .. } => Some(name),
        }
    }

    /// The repository the endpoint is about and, for a mount (end-11), the one mounted from,
    /// to name the stored repositories they mean.
    pub(crate) fn names_mut(&mut self) -> (Option<&mut RepoName>, Option<&mut Option<RepoName>>) {
        match self {
            Endpoint::Base | Endpoint::Catalog { .. } => (None, None),
            Endpoint::StartUpload { name, from, .. } => (Some(name), Some(from)),
            Endpoint::GetManifest { name, .. }
            | Endpoint::HeadManifest { name, .. }
            | Endpoint::PutManifest { name, .. }
            | Endpoint::DeleteManifest { name, .. }
            | Endpoint::GetBlob { name, .. }
            | Endpoint::HeadBlob { name, .. }
            | Endpoint::DeleteBlob { name, .. }
            | Endpoint::PatchUpload { name, .. }
            | Endpoint::PutUpload { name, .. }
            | Endpoint::GetUpload { name, .. }
            | Endpoint::DeleteUpload { name, .. }
            | Endpoint::Tags { name, .. }
            | Endpoint::Referrers { name, .. } => (Some(name), None),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use proptest::prelude::*;

    use super::*;

    fn name(s: &str) -> RepoName {
        s.parse().expect("valid name")
    }

    fn digest() -> Digest {
        Digest::sha256(b"hello")
    }

    fn ok(method: Method, path: &str, query: Option<&str>) -> Endpoint {
        Endpoint::parse(&method, path, query).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    fn err(method: Method, path: &str, query: Option<&str>) -> RegistryError {
        Endpoint::parse(&method, path, query).expect_err(path)
    }

    #[test]
    fn route_names_never_carry_the_path() {
        let d = digest();
        let cases = [
            ("/v2/", RouteName::Base),
            ("/v2", RouteName::Base),
            ("/v2/_catalog", RouteName::Catalog),
            ("/v2/a/b/manifests/v1", RouteName::Manifest),
            (&format!("/v2/a/blobs/{d}"), RouteName::Blob),
            ("/v2/a/blobs/uploads/", RouteName::Upload),
            ("/v2/a/blobs/uploads/some-id", RouteName::Upload),
            ("/v2/a/tags/list", RouteName::Tags),
            (&format!("/v2/a/referrers/{d}"), RouteName::Referrers),
            ("/auth/token", RouteName::Token),
            ("/healthz", RouteName::Health),
            ("/readyz", RouteName::Health),
            ("/metrics", RouteName::Other),
            ("/v2/a/nothing", RouteName::Other),
            ("/", RouteName::Other),
        ];
        for (path, want) in cases {
            assert_eq!(RouteName::of_path(path), want, "{path}");
        }
        let words: std::collections::HashSet<&str> =
            RouteName::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(words.len(), RouteName::ALL.len());
    }

    #[test]
    fn base_and_catalog() {
        assert_eq!(ok(Method::GET, "/v2/", None), Endpoint::Base);
        assert_eq!(ok(Method::GET, "/v2", None), Endpoint::Base);
        assert_eq!(ok(Method::HEAD, "/v2/", None), Endpoint::Base);
        assert_eq!(ok(Method::GET, "/v2/", None).id(), "end-1");
        assert_eq!(
            ok(Method::GET, "/v2/_catalog", Some("n=10&last=a%2Fb")),
            Endpoint::Catalog {
                page: Page {
                    n: Some(10),
                    last: Some("a/b".into())
                }
            }
        );
    }

    #[test]
    fn manifests() {
        let d = digest();
        let r = Reference::Tag("latest".parse().expect("tag"));
        assert_eq!(
            ok(Method::GET, "/v2/library/nginx/manifests/latest", None),
            Endpoint::GetManifest {
                name: name("library/nginx"),
                reference: r.clone()
            }
        );
        assert_eq!(
            ok(Method::HEAD, &format!("/v2/a/manifests/{d}"), None),
            Endpoint::HeadManifest {
                name: name("a"),
                reference: Reference::Digest(d.to_string().parse().expect("digest"))
            }
        );
        let put = ok(
            Method::PUT,
            &format!("/v2/a/b/c/manifests/{d}"),
            Some("tag=1.2.3&tag=1.2&tag=1.2.3&tag=latest"),
        );
        assert_eq!(put.id(), "end-7b");
        let Endpoint::PutManifest { tags, .. } = &put else {
            panic!("{put:?}");
        };
        let tags: Vec<&str> = tags.iter().map(Tag::as_str).collect();
        assert_eq!(tags, ["1.2.3", "1.2", "latest"]);
        assert_eq!(ok(Method::PUT, "/v2/a/manifests/v1", None).id(), "end-7a");
        assert_eq!(ok(Method::DELETE, "/v2/a/manifests/v1", None).id(), "end-9");
        // An escaped colon in the digest is tolerated.
        let escaped = d.to_string().replace(':', "%3A");
        assert_eq!(
            ok(Method::GET, &format!("/v2/a/manifests/{escaped}"), None),
            Endpoint::GetManifest {
                name: name("a"),
                reference: Reference::Digest(d.to_string().parse().expect("digest"))
            }
        );
    }

    #[test]
    fn names_that_look_like_tails() {
        // A repository may be called "blobs", "manifests", "tags" or "uploads".
        assert_eq!(
            ok(Method::GET, "/v2/blobs/manifests/manifests/blobs", None),
            Endpoint::GetManifest {
                name: name("blobs/manifests"),
                reference: Reference::Tag("blobs".parse().expect("tag")),
            }
        );
        assert_eq!(
            ok(Method::GET, "/v2/tags/tags/list", None),
            Endpoint::Tags {
                name: name("tags"),
                page: Page::default()
            }
        );
        assert_eq!(
            ok(Method::POST, "/v2/blobs/uploads/blobs/uploads/", None).name(),
            Some(&name("blobs/uploads"))
        );
    }

    #[test]
    fn blobs() {
        let d = digest();
        for (method, id) in [
            (Method::GET, "end-2"),
            (Method::HEAD, "end-2"),
            (Method::DELETE, "end-10"),
        ] {
            let e = ok(method, &format!("/v2/org/app/blobs/{d}"), None);
            assert_eq!(e.id(), id);
            assert_eq!(e.name(), Some(&name("org/app")));
        }
        let e = err(Method::GET, "/v2/a/blobs/sha256:baddigeststring", None);
        assert_eq!(e.code(), Some(ErrorCode::DigestInvalid));
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        let e = err(
            Method::GET,
            "/v2/a/blobs/md5:d41d8cd98f00b204e9800998ecf8427e",
            None,
        );
        assert_eq!(e.code(), Some(ErrorCode::DigestInvalid));
    }

    #[test]
    fn uploads() {
        let d = digest();
        let start = |q: Option<&str>| ok(Method::POST, "/v2/a/blobs/uploads/", q);
        assert_eq!(
            start(None),
            Endpoint::StartUpload {
                name: name("a"),
                digest: None,
                algorithm: None,
                mount: None,
                from: None
            }
        );
        assert_eq!(start(None).id(), "end-4a");
        assert_eq!(ok(Method::POST, "/v2/a/blobs/uploads", None).id(), "end-4a");
        assert_eq!(start(Some(&format!("digest={d}"))).id(), "end-4b");
        let e = start(Some("digest-algorithm=sha512"));
        assert_eq!(e.id(), "end-4c");
        assert!(matches!(
            e,
            Endpoint::StartUpload {
                algorithm: Some(Algorithm::Sha512),
                ..
            }
        ));
        let e = start(Some(&format!("mount={d}&from=other%2Frepo")));
        assert_eq!(e.id(), "end-11");
        assert!(
            matches!(&e, Endpoint::StartUpload { from: Some(f), mount: Some(_), .. } if f.as_str() == "other/repo")
        );

        assert_eq!(
            err(
                Method::POST,
                "/v2/a/blobs/uploads/",
                Some("digest-algorithm=md5")
            )
            .code(),
            Some(ErrorCode::DigestInvalid)
        );
        assert_eq!(
            err(Method::POST, "/v2/a/blobs/uploads/", Some("mount=nope")).code(),
            Some(ErrorCode::DigestInvalid)
        );
        assert_eq!(
            err(
                Method::POST,
                "/v2/a/blobs/uploads/",
                Some("mount=x&from=Bad")
            )
            .code(),
            Some(ErrorCode::DigestInvalid)
        );
        assert_eq!(
            err(
                Method::POST,
                "/v2/a/blobs/uploads/",
                Some(&format!("mount={d}&from=Bad"))
            )
            .code(),
            Some(ErrorCode::NameInvalid)
        );

        let id: UploadId = "3f2a-77".parse().expect("id");
        let path = "/v2/a/b/blobs/uploads/3f2a-77";
        assert_eq!(
            ok(Method::PATCH, path, None),
            Endpoint::PatchUpload {
                name: name("a/b"),
                id: id.clone()
            }
        );
        assert_eq!(ok(Method::GET, path, None).id(), "end-13");
        assert_eq!(ok(Method::DELETE, path, None).id(), "end-14");
        assert_eq!(
            ok(
                Method::PUT,
                path,
                Some(&format!("digest={}", d.to_string().replace(':', "%3A")))
            ),
            Endpoint::PutUpload {
                name: name("a/b"),
                id,
                digest: d
            }
        );
        let e = err(Method::PUT, path, None);
        assert_eq!(e.code(), Some(ErrorCode::DigestInvalid));
        let e = err(Method::PATCH, "/v2/a/blobs/uploads/bad.id", None);
        assert_eq!(e.code(), Some(ErrorCode::BlobUploadUnknown));
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn tags_and_referrers() {
        assert_eq!(ok(Method::GET, "/v2/a/tags/list", None).id(), "end-8a");
        assert_eq!(
            ok(Method::GET, "/v2/a/tags/list", Some("n=2&last=v1")),
            Endpoint::Tags {
                name: name("a"),
                page: Page {
                    n: Some(2),
                    last: Some("v1".into())
                }
            }
        );
        assert_eq!(
            ok(Method::GET, "/v2/a/tags/list", Some("n=0")).id(),
            "end-8b"
        );
        assert_eq!(
            err(Method::GET, "/v2/a/tags/list", Some("n=x")).status(),
            StatusCode::BAD_REQUEST
        );
        let d = digest();
        assert_eq!(
            ok(
                Method::GET,
                &format!("/v2/a/referrers/{d}"),
                Some("artifactType=application%2Fvnd.example.sbom.v1%2Bjson")
            ),
            Endpoint::Referrers {
                name: name("a"),
                digest: d.clone(),
                artifact_type: Some("application/vnd.example.sbom.v1+json".into())
            }
        );
        assert_eq!(
            ok(Method::GET, &format!("/v2/a/referrers/{d}"), None).id(),
            "end-12a"
        );
        assert_eq!(
            err(Method::GET, "/v2/a/referrers/sha256:nope", None).status(),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn containerd_namespace() {
        let route = Route::parse(
            &Method::GET,
            "/v2/library/nginx/manifests/x",
            Some("ns=docker.io"),
        )
        .expect("mirror request");
        assert_eq!(
            route.namespace.as_ref().map(Namespace::as_str),
            Some("docker.io")
        );
        assert_eq!(
            route.endpoint.name(),
            Some(&name("docker.io/library/nginx"))
        );
        let route = Route::parse(
            &Method::GET,
            "/v2/app/tags/list",
            Some("ns=registry.local%3A5000"),
        )
        .expect("with port");
        assert_eq!(
            route.endpoint.name(),
            Some(&name("registry.local_5000/app"))
        );
        // Empty ns: not scoped; ignored on endpoints without a name.
        let route = Route::parse(&Method::GET, "/v2/app/tags/list", Some("ns=")).expect("empty ns");
        assert_eq!(route.namespace, None);
        let route = Route::parse(&Method::GET, "/v2/", Some("ns=docker.io")).expect("base");
        assert_eq!(route.namespace, None);
        assert_eq!(
            err(Method::GET, "/v2/app/tags/list", Some("ns=bad_host")).code(),
            Some(ErrorCode::NameInvalid)
        );
    }

    #[test]
    fn bad_names_and_tags() {
        for path in [
            "/v2/Library/nginx/manifests/x",
            "/v2/a//b/manifests/x",
            "/v2/a/../b/tags/list",
            "/v2/a%2Fb/blobs/uploads/",
        ] {
            let method = if path.ends_with('/') {
                Method::POST
            } else {
                Method::GET
            };
            let e = err(method, path, None);
            assert_eq!(e.code(), Some(ErrorCode::NameInvalid), "{path}");
            assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        }
        let e = err(Method::GET, "/v2/a/manifests/.bad", None);
        assert_eq!(
            (e.code(), e.status()),
            (Some(ErrorCode::ManifestUnknown), StatusCode::NOT_FOUND)
        );
        let e = err(Method::PUT, "/v2/a/manifests/.bad", None);
        assert_eq!(
            (e.code(), e.status()),
            (Some(ErrorCode::ManifestInvalid), StatusCode::BAD_REQUEST)
        );
        let e = err(Method::PUT, "/v2/a/manifests/sha256:baddigeststring", None);
        assert_eq!(
            (e.code(), e.status()),
            (Some(ErrorCode::DigestInvalid), StatusCode::BAD_REQUEST)
        );
        let e = err(Method::PUT, "/v2/a/manifests/v1", Some("tag=ok&tag=-bad"));
        assert_eq!(e.code(), Some(ErrorCode::ManifestInvalid));
    }

    #[test]
    fn unknown_paths_and_methods() {
        for path in [
            "/",
            "/v1/",
            "/v2x",
            "/v2/a",
            "/v2/a/",
            "/v2/a/manifests/",
            "/v2/manifests/x",
            "/v2/a/tags/list/",
            "/v2/a/referrers/",
            "/v2/a/blobs/",
            "/v2//manifests/x",
        ] {
            let e = err(Method::GET, path, None);
            assert_eq!(e.status(), StatusCode::NOT_FOUND, "{path}");
        }
        let e = err(Method::POST, "/v2/a/manifests/x", None);
        assert_eq!(e.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(e.headers()[axum::http::header::ALLOW], MANIFEST_METHODS);
        assert_eq!(
            err(Method::GET, "/v2/a/blobs/uploads/", None).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            err(Method::PUT, "/v2/a/blobs/sha256:x", None).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            err(Method::DELETE, "/v2/_catalog", None).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    #[test]
    fn access() {
        assert_eq!(
            ok(Method::GET, "/v2/a/manifests/x", None).access(),
            Access::Read
        );
        assert_eq!(
            ok(Method::PUT, "/v2/a/manifests/x", None).access(),
            Access::Write
        );
        assert_eq!(
            ok(Method::GET, "/v2/a/blobs/uploads/x", None).access(),
            Access::Write
        );
    }

    fn method() -> impl Strategy<Value = Method> {
        prop::sample::select(vec![
            Method::GET,
            Method::HEAD,
            Method::PUT,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
    }

    /// Paths assembled from the API's own vocabulary, so the parser's deeper branches are reached.
    fn api_path() -> impl Strategy<Value = String> {
        let seg = prop_oneof![
            Just("v2".to_owned()),
            Just("blobs".to_owned()),
            Just("uploads".to_owned()),
            Just("manifests".to_owned()),
            Just("tags".to_owned()),
            Just("list".to_owned()),
            Just("referrers".to_owned()),
            Just("_catalog".to_owned()),
            Just(String::new()),
            Just(Digest::sha256(b"x").to_string()),
            "[a-z0-9._:%-]{1,12}",
            "\\PC{0,8}",
        ];
        prop::collection::vec(seg, 0..8).prop_map(|s| format!("/v2/{}", s.join("/")))
    }

    proptest! {
        #[test]
        fn never_panics_on_random_input(method in method(), path in "\\PC{0,120}", query in proptest::option::of("\\PC{0,80}")) {
            let _ = Route::parse(&method, &path, query.as_deref());
        }

        #[test]
        fn never_panics_on_api_shaped_input(
            method in method(),
            path in api_path(),
            query in proptest::option::of("((ns|n|last|digest|mount|from|tag|artifactType|digest-algorithm)=[a-z0-9.:%/_-]{0,12}&){0,4}"),
        ) {
            if let Ok(route) = Route::parse(&method, &path, query.as_deref()) {
                // Whatever parses names a valid repository and a spec id.
                prop_assert!(route.endpoint.id().starts_with("end-") || route.endpoint.id() == "catalog");
                if let Some(name) = route.endpoint.name() {
                    prop_assert!(name.as_str().parse::<RepoName>().is_ok());
                }
            }
        }
    }
}
