//! Every failure the registry answers with, mapped to exactly the OCI distribution spec's error codes
//! (spec "Error Codes", code-1 .. code-14) and the HTTP status each one goes out with.
//!
//! A 4xx body is the spec's JSON: `{"errors":[{"code":..,"message":..,"detail":..}]}`. A 5xx body
//! carries no internals, only `"internal error"`; its cause travels in the response's extensions as an
//! [`ErrorCause`] for the one logging middleware to record in the request span.

use std::{borrow::Cow, error::Error as StdError, fmt, sync::Arc};

use airlock_store::Digest;
use axum::{
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

/// One of the spec's error codes (code-1 .. code-14).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// code-1: blob unknown to registry.
    BlobUnknown,
    /// code-2: blob upload invalid.
    BlobUploadInvalid,
    /// code-3: blob upload unknown to registry.
    BlobUploadUnknown,
    /// code-4: provided digest did not match uploaded content (also: a malformed digest).
    DigestInvalid,
    /// code-5: manifest references a manifest or blob unknown to registry.
    ManifestBlobUnknown,
    /// code-6: manifest invalid.
    ManifestInvalid,
    /// code-7: manifest unknown to registry.
    ManifestUnknown,
    /// code-8: invalid repository name.
    NameInvalid,
    /// code-9: repository name not known to registry.
    NameUnknown,
    /// code-10: provided length did not match content length.
    SizeInvalid,
    /// code-11: authentication required.
    Unauthorized,
    /// code-12: requested access to the resource is denied.
    Denied,
    /// code-13: the operation is unsupported.
    Unsupported,
    /// code-14: too many requests.
    TooManyRequests,
}

impl ErrorCode {
    /// Every code, in the spec's order.
    pub const ALL: [ErrorCode; 14] = [
        ErrorCode::BlobUnknown,
        ErrorCode::BlobUploadInvalid,
        ErrorCode::BlobUploadUnknown,
        ErrorCode::DigestInvalid,
        ErrorCode::ManifestBlobUnknown,
        ErrorCode::ManifestInvalid,
        ErrorCode::ManifestUnknown,
        ErrorCode::NameInvalid,
        ErrorCode::NameUnknown,
        ErrorCode::SizeInvalid,
        ErrorCode::Unauthorized,
        ErrorCode::Denied,
        ErrorCode::Unsupported,
        ErrorCode::TooManyRequests,
    ];

    /// The identifier that goes in the body's `code` field.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BlobUnknown => "BLOB_UNKNOWN",
            ErrorCode::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            ErrorCode::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            ErrorCode::DigestInvalid => "DIGEST_INVALID",
            ErrorCode::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            ErrorCode::ManifestInvalid => "MANIFEST_INVALID",
            ErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            ErrorCode::NameInvalid => "NAME_INVALID",
            ErrorCode::NameUnknown => "NAME_UNKNOWN",
            ErrorCode::SizeInvalid => "SIZE_INVALID",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Denied => "DENIED",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::TooManyRequests => "TOOMANYREQUESTS",
        }
    }

    /// The spec's one-line description, used when there is nothing more specific to say.
    pub const fn description(self) -> &'static str {
        match self {
            ErrorCode::BlobUnknown => "blob unknown to registry",
            ErrorCode::BlobUploadInvalid => "blob upload invalid",
            ErrorCode::BlobUploadUnknown => "blob upload unknown to registry",
            ErrorCode::DigestInvalid => "provided digest did not match uploaded content",
            ErrorCode::ManifestBlobUnknown => {
                "manifest references a manifest or blob unknown to registry"
            }
            ErrorCode::ManifestInvalid => "manifest invalid",
            ErrorCode::ManifestUnknown => "manifest unknown to registry",
            ErrorCode::NameInvalid => "invalid repository name",
            ErrorCode::NameUnknown => "repository name not known to registry",
            ErrorCode::SizeInvalid => "provided length did not match content length",
            ErrorCode::Unauthorized => "authentication required",
            ErrorCode::Denied => "requested access to the resource is denied",
            ErrorCode::Unsupported => "the operation is unsupported",
            ErrorCode::TooManyRequests => "too many requests",
        }
    }

    /// The status a code goes out with unless a constructor says otherwise (the Docker registry's
    /// table, which clients expect: 404 for unknown things, 405 for unsupported operations).
    pub const fn status(self) -> StatusCode {
        match self {
            ErrorCode::BlobUnknown
            | ErrorCode::BlobUploadUnknown
            | ErrorCode::ManifestUnknown
            | ErrorCode::NameUnknown => StatusCode::NOT_FOUND,
            ErrorCode::BlobUploadInvalid
            | ErrorCode::DigestInvalid
            | ErrorCode::ManifestBlobUnknown
            | ErrorCode::ManifestInvalid
            | ErrorCode::NameInvalid
            | ErrorCode::SizeInvalid => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Denied => StatusCode::FORBIDDEN,
            ErrorCode::Unsupported => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The cause of a 5xx, placed in the response's extensions so the logging middleware can record
/// what the body must not show.
#[derive(Clone, Debug)]
pub struct ErrorCause(pub Arc<dyn StdError + Send + Sync>);

type BoxError = Box<dyn StdError + Send + Sync>;

/// A failed request: a spec error code (absent only for a 5xx), the status, a message, an optional
/// JSON `detail`, and any headers the response needs (`Allow`, `Content-Range`, `Range`).
/// Boxed, so that `Result`s stay small on the happy path.
#[derive(Debug)]
pub struct RegistryError(Box<Inner>);

#[derive(Debug)]
struct Inner {
    status: StatusCode,
    code: Option<ErrorCode>,
    message: Cow<'static, str>,
    detail: Option<serde_json::Value>,
    headers: HeaderMap,
    cause: Option<BoxError>,
}

/// The registry's result type.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl StdError for RegistryError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.0
            .cause
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

const INTERNAL_MESSAGE: &str = "internal error";

impl RegistryError {
    /// An error with `code`, its usual status and `message`.
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        RegistryError(Box::new(Inner {
            status: code.status(),
            code: Some(code),
            message: message.into(),
            detail: None,
            headers: HeaderMap::new(),
            cause: None,
        }))
    }

    /// A 500 whose body says only "internal error"; `cause` is kept for the log.
    pub fn internal(cause: impl Into<BoxError>) -> Self {
        RegistryError(Box::new(Inner {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: None,
            message: Cow::Borrowed(INTERNAL_MESSAGE),
            detail: None,
            headers: HeaderMap::new(),
            cause: Some(cause.into()),
        }))
    }

    /// Replaces the status (e.g. 413 for an oversized manifest, 416 for a bad range). A 5xx status
    /// also hides the message and detail from the body.
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.0.status = status;
        self
    }

    /// Attaches the body's `detail`: arbitrary JSON a client can use to resolve the issue.
    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.0.detail = Some(detail);
        self
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.0.headers.append(name, value);
        self
    }

    /// The spec error code; `None` for [`RegistryError::internal`].
    pub fn code(&self) -> Option<ErrorCode> {
        self.0.code
    }

    /// The HTTP status the response goes out with.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// The human-readable message. A 5xx body shows "internal error" instead.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The `detail` JSON, if any.
    pub fn detail(&self) -> Option<&serde_json::Value> {
        self.0.detail.as_ref()
    }

    /// The extra response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.0.headers
    }

    /// BLOB_UNKNOWN (404) for `digest`.
    pub fn blob_unknown(digest: &Digest) -> Self {
        RegistryError::new(ErrorCode::BlobUnknown, format!("blob {digest} unknown"))
            .with_detail(serde_json::json!({ "digest": digest.to_string() }))
    }

    /// MANIFEST_UNKNOWN (404) for a tag or digest.
    pub fn manifest_unknown(reference: impl fmt::Display) -> Self {
        RegistryError::new(
            ErrorCode::ManifestUnknown,
            format!("manifest {reference} unknown"),
        )
    }

    /// NAME_UNKNOWN (404) for a repository.
    pub fn name_unknown(name: impl fmt::Display) -> Self {
        RegistryError::new(ErrorCode::NameUnknown, format!("repository {name} unknown"))
    }

    /// BLOB_UPLOAD_UNKNOWN (404) for an upload session id.
    pub fn upload_unknown(id: impl fmt::Display) -> Self {
        RegistryError::new(ErrorCode::BlobUploadUnknown, format!("upload {id} unknown"))
    }

    /// DIGEST_INVALID (400): `text` is not a usable digest for the reason given.
    pub fn digest_invalid(text: &str, why: impl fmt::Display) -> Self {
        RegistryError::new(
            ErrorCode::DigestInvalid,
            format!("invalid digest {text:?}: {why}"),
        )
    }

    /// MANIFEST_INVALID (400) with the reason.
    pub fn manifest_invalid(why: impl Into<Cow<'static, str>>) -> Self {
        RegistryError::new(ErrorCode::ManifestInvalid, why)
    }

    /// MANIFEST_BLOB_UNKNOWN (400): a manifest references `digest`, which is not stored.
    pub fn manifest_blob_unknown(digest: &Digest) -> Self {
        RegistryError::new(
            ErrorCode::ManifestBlobUnknown,
            format!("manifest references unknown blob {digest}"),
        )
        .with_detail(serde_json::json!({ "digest": digest.to_string() }))
    }

    /// MANIFEST_INVALID with 413 Payload Too Large: a manifest body over `limit` bytes.
    pub fn manifest_too_large(limit: u64) -> Self {
        RegistryError::new(
            ErrorCode::ManifestInvalid,
            format!("manifest exceeds the limit of {limit} bytes"),
        )
        .with_status(StatusCode::PAYLOAD_TOO_LARGE)
    }

    /// 416 on a blob GET: no byte of the `Range` can be served; says the blob's size in
    /// `Content-Range: bytes */size` (RFC 9110 section 15.5.17).
    pub fn range_not_satisfiable(size: u64) -> Self {
        RegistryError::new(
            ErrorCode::SizeInvalid,
            format!("requested range not satisfiable: the blob has {size} bytes"),
        )
        .with_status(StatusCode::RANGE_NOT_SATISFIABLE)
        .with_header(
            header::CONTENT_RANGE,
            header_value(format!("bytes */{size}")),
        )
    }

    /// 416 on an upload PATCH or PUT (end-5, end-6): the chunk does not start at the session's
    /// `offset`; carries `Range: 0-<offset-1>` so the client can resume.
    pub fn upload_range_invalid(offset: u64, why: impl fmt::Display) -> Self {
        RegistryError::new(
            ErrorCode::BlobUploadInvalid,
            format!("upload chunk out of order: {why}"),
        )
        .with_status(StatusCode::RANGE_NOT_SATISFIABLE)
        .with_header(
            header::RANGE,
            header_value(crate::range::upload_range_header(offset)),
        )
    }

    /// UNSUPPORTED with 405: the path exists but not for this method; `allow` lists the methods
    /// that do (`"GET, HEAD"`).
    pub fn method_not_allowed(allow: &'static str) -> Self {
        RegistryError::new(
            ErrorCode::Unsupported,
            format!("method not allowed here; allowed: {allow}"),
        )
        .with_header(header::ALLOW, HeaderValue::from_static(allow))
    }

    /// UNSUPPORTED with 405: a write on a registry serving read-only.
    pub fn read_only() -> Self {
        RegistryError::new(
            ErrorCode::Unsupported,
            "this registry is read-only: content arrives by bundle import",
        )
    }

    /// UNSUPPORTED with 404: no endpoint of the API has this path.
    pub fn not_found() -> Self {
        RegistryError::new(ErrorCode::Unsupported, "no such endpoint")
            .with_status(StatusCode::NOT_FOUND)
    }

    /// Maps a store error to the spec's code; this is the only place that does. Digest errors are
    /// DIGEST_INVALID (400, as the spec asks for "invalid or unsupported" digests), length errors
    /// SIZE_INVALID, missing blobs BLOB_UNKNOWN, a write on a read-only store UNSUPPORTED (405);
    /// everything else is a 500 whose cause is kept for the log and left out of the body.
    pub fn from_store(err: airlock_store::Error) -> Self {
        use airlock_store::Error as E;
        match err {
            E::InvalidDigest { text } => RegistryError::digest_invalid(&text, "malformed"),
            E::UnsupportedDigest { algorithm } => RegistryError::new(
                ErrorCode::DigestInvalid,
                format!("unsupported digest algorithm {algorithm:?}: use sha256 or sha512"),
            ),
            E::DigestMismatch { expected, actual } => RegistryError::new(
                ErrorCode::DigestInvalid,
                format!("digest mismatch: expected {expected}, content hashes to {actual}"),
            )
            .with_detail(serde_json::json!({
                "expected": expected.to_string(),
                "actual": actual.to_string(),
            })),
            E::TooLarge { digest } => RegistryError::new(
                ErrorCode::SizeInvalid,
                format!("blob {digest} is larger than allowed"),
            ),
            e @ E::DecompressionLimit { .. } => {
                RegistryError::new(ErrorCode::BlobUploadInvalid, e.to_string())
            }
            E::SizeMismatch {
                digest,
                expected,
                actual,
            } => RegistryError::new(
                ErrorCode::SizeInvalid,
                format!("blob {digest} is {actual} bytes long, {expected} were declared"),
            )
            .with_detail(serde_json::json!({ "expected": expected, "actual": actual })),
            E::BlobNotFound { digest } => RegistryError::blob_unknown(&digest),
            E::RangeNotSatisfiable { size, .. } => RegistryError::range_not_satisfiable(size),
            E::ReadOnly { .. } => RegistryError::read_only(),
            E::InvalidName { what, text, why } => RegistryError::new(
                ErrorCode::NameInvalid,
                format!(
                    "invalid {what} {:?}: {why}",
                    text.get(..128).unwrap_or(&text)
                ),
            ),
            E::UploadNotFound { id } => RegistryError::upload_unknown(id),
            other => RegistryError::internal(other),
        }
    }
}

impl RegistryError {
    /// Maps an OCI parse error to the spec's code; this is the only place that does. Names and
    /// registry hosts are NAME_INVALID, digests DIGEST_INVALID, tags and manifests
    /// MANIFEST_INVALID (the spec's list has no tag code; a read turns it into MANIFEST_UNKNOWN),
    /// with the offending field or media type in the `detail`.
    pub fn from_oci(err: airlock_oci::Error) -> Self {
        use airlock_oci::Error as E;
        match err {
            e @ (E::InvalidName { .. } | E::InvalidReference { .. }) => {
                RegistryError::new(ErrorCode::NameInvalid, e.to_string())
            }
            // The spec has no code for a name that means two repositories. NAME_UNKNOWN (404)
            // says what is true, that the name does not name one repository the registry
            // knows, and clients show its message: NAME_INVALID would claim the name breaks the
            // grammar, and DENIED would send the user looking at credentials.
            E::AmbiguousName { name, stored } => {
                let message = E::AmbiguousName {
                    name: name.clone(),
                    stored: stored.clone(),
                }
                .to_string();
                RegistryError::new(ErrorCode::NameUnknown, message)
                    .with_detail(serde_json::json!({ "name": name, "repositories": stored }))
            }
            E::InvalidHost { text } => RegistryError::new(
                ErrorCode::NameInvalid,
                format!("invalid ns {text:?}: expected a registry host[:port]"),
            ),
            E::InvalidDigest { text } => RegistryError::digest_invalid(&text, "malformed"),
            e @ E::UnsupportedDigest { .. } => {
                RegistryError::new(ErrorCode::DigestInvalid, e.to_string())
            }
            e @ (E::InvalidTag { .. }
            | E::InvalidPlatform { .. }
            | E::ManifestNotJson { .. }
            | E::TooDeep { .. }) => RegistryError::manifest_invalid(e.to_string()),
            E::ManifestField { field, why } => {
                RegistryError::manifest_invalid(format!("{field}: {why}"))
                    .with_detail(serde_json::json!({ "field": field }))
            }
            E::DescriptorDigest { field, text, why } => {
                RegistryError::manifest_invalid(format!("{field}: {why}"))
                    .with_detail(serde_json::json!({ "field": field, "digest": text }))
            }
            E::UnsupportedMediaType { media_type } => {
                let shown = media_type.get(..128).unwrap_or(&media_type).to_owned();
                let message = E::UnsupportedMediaType { media_type }.to_string();
                RegistryError::manifest_invalid(message)
                    .with_detail(serde_json::json!({ "mediaType": shown }))
            }
            E::UnknownManifestKind => RegistryError::manifest_invalid(
                "cannot tell the manifest's type: send its media type as the Content-Type",
            ),
            other => RegistryError::internal(other),
        }
    }
}

impl From<airlock_oci::Error> for RegistryError {
    fn from(err: airlock_oci::Error) -> Self {
        RegistryError::from_oci(err)
    }
}

impl From<airlock_store::Error> for RegistryError {
    fn from(err: airlock_store::Error) -> Self {
        RegistryError::from_store(err)
    }
}

/// A header value from text this module built; falls back to an empty value rather than panic.
fn header_value(text: String) -> HeaderValue {
    HeaderValue::try_from(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[derive(Serialize)]
struct Body<'a> {
    errors: [Entry<'a>; 1],
}

#[derive(Serialize)]
struct Entry<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a serde_json::Value>,
}

impl RegistryError {
    /// The JSON body exactly as sent.
    pub fn body(&self) -> Vec<u8> {
        let hide = self.0.status.is_server_error();
        let entry = match self.0.code {
            Some(code) if !hide => Entry {
                code: code.as_str(),
                message: &self.0.message,
                detail: self.0.detail.as_ref(),
            },
            // The spec constrains 4xx bodies only; for a 5xx use the Docker registry's "UNKNOWN"
            // and nothing about the cause.
            _ => Entry {
                code: "UNKNOWN",
                message: INTERNAL_MESSAGE,
                detail: None,
            },
        };
        serde_json::to_vec(&Body { errors: [entry] }).unwrap_or_else(|_| {
            br#"{"errors":[{"code":"UNKNOWN","message":"internal error"}]}"#.to_vec()
        })
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let body = self.body();
        let Inner {
            status,
            message,
            headers: extra,
            cause,
            ..
        } = *self.0;
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (name, value) in &extra {
            headers.append(name.clone(), value.clone());
        }
        let cause = match cause {
            Some(cause) => Some(cause),
            // A spec error forced to a 5xx: its message is the cause the body leaves out.
            None if status.is_server_error() => Some(BoxError::from(message.into_owned())),
            None => None,
        };
        if let Some(cause) = cause {
            response
                .extensions_mut()
                .insert(ErrorCause(Arc::from(cause)));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(err: &RegistryError) -> serde_json::Value {
        serde_json::from_slice(&err.body()).expect("body is json")
    }

    #[test]
    fn codes_are_uppercase_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let s = code.as_str();
            assert!(
                s.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'),
                "{s}"
            );
            assert!(seen.insert(s), "{s}");
            assert!(code.status().is_client_error());
        }
    }

    #[test]
    fn body_is_the_spec_shape() {
        let err = RegistryError::new(ErrorCode::NameInvalid, "invalid repository name \"A\"")
            .with_detail(serde_json::json!({"name": "A"}));
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            json(&err),
            serde_json::json!({"errors": [{
                "code": "NAME_INVALID",
                "message": "invalid repository name \"A\"",
                "detail": {"name": "A"},
            }]})
        );
        let err = RegistryError::manifest_unknown("latest");
        assert_eq!(
            json(&err),
            serde_json::json!({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest latest unknown"}]})
        );
    }

    #[test]
    fn response_has_status_headers_and_content_type() {
        let response = RegistryError::method_not_allowed("GET, HEAD").into_response();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[header::ALLOW], "GET, HEAD");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        assert!(response.extensions().get::<ErrorCause>().is_none());

        let response = RegistryError::range_not_satisfiable(2048).into_response();
        assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(response.headers()[header::CONTENT_RANGE], "bytes */2048");

        let response = RegistryError::upload_range_invalid(10, "starts at 3").into_response();
        assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(response.headers()[header::RANGE], "0-9");
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let cause = std::io::Error::other("/secret/path/pack-0001 exploded");
        let err = RegistryError::internal(cause);
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(err.code(), None);
        let body = String::from_utf8(err.body()).expect("utf-8");
        assert!(!body.contains("secret"), "{body}");
        assert_eq!(
            json(&err),
            serde_json::json!({"errors": [{"code": "UNKNOWN", "message": "internal error"}]})
        );
        assert!(err.source().is_some());
        let response = err.into_response();
        let cause = response
            .extensions()
            .get::<ErrorCause>()
            .expect("cause kept for the log");
        assert!(cause.0.to_string().contains("secret"));

        // A spec error forced to a 5xx status hides its message too.
        let err = RegistryError::new(ErrorCode::Denied, "store at /secret is locked")
            .with_status(StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            !String::from_utf8(err.body())
                .expect("utf-8")
                .contains("secret")
        );
    }

    #[test]
    fn oci_errors_map_to_spec_codes() {
        use airlock_oci::{Digest as OciDigest, Namespace, RepoName, Tag, parse_manifest};

        let code = |e: airlock_oci::Error| RegistryError::from(e).code();
        assert_eq!(
            code("A".parse::<RepoName>().expect_err("name")),
            Some(ErrorCode::NameInvalid)
        );
        assert_eq!(
            code("a_b".parse::<Namespace>().expect_err("ns")),
            Some(ErrorCode::NameInvalid)
        );
        assert_eq!(
            code(".x".parse::<Tag>().expect_err("tag")),
            Some(ErrorCode::ManifestInvalid)
        );
        let both = |n: &RepoName| Ok::<_, airlock_oci::Error>(n.as_str() != "other");
        let query: airlock_oci::RepoQuery = "acme/gateway".parse().expect("query");
        let err = RegistryError::from(query.resolve(both).expect_err("ambiguous"));
        assert_eq!(
            (err.code(), err.status()),
            (Some(ErrorCode::NameUnknown), StatusCode::NOT_FOUND)
        );
        assert_eq!(
            err.detail(),
            Some(&serde_json::json!({
                "name": "acme/gateway",
                "repositories": ["acme/gateway", "docker.io/acme/gateway"],
            }))
        );
        for bad in ["sha256:zz", "md5:d41d8cd98f00b204e9800998ecf8427e"] {
            let err = RegistryError::from(bad.parse::<OciDigest>().expect_err(bad));
            assert_eq!(err.code(), Some(ErrorCode::DigestInvalid), "{bad}");
            assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        }
        let manifest = |ct: Option<&str>, body: &str| {
            RegistryError::from(parse_manifest(ct, body.as_bytes()).expect_err(body))
        };
        let err = manifest(None, r#"{"schemaVersion":1}"#);
        assert_eq!(err.code(), Some(ErrorCode::ManifestInvalid));
        assert_eq!(
            err.detail(),
            Some(&serde_json::json!({"field": "schemaVersion"}))
        );
        let err = manifest(
            None,
            r#"{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"sha256:zz","size":1},"layers":[]}"#,
        );
        assert_eq!(
            err.detail(),
            Some(&serde_json::json!({"field": "config.digest", "digest": "sha256:zz"}))
        );
        let err = manifest(Some("text/plain"), "{}");
        assert_eq!(
            err.detail(),
            Some(&serde_json::json!({"mediaType": "text/plain"}))
        );
        for body in ["", r#"{"schemaVersion":2}"#] {
            assert_eq!(
                manifest(None, body).code(),
                Some(ErrorCode::ManifestInvalid)
            );
        }
    }

    #[test]
    fn store_digest_errors_are_digest_invalid() {
        let err = "sha256:zz".parse::<Digest>().expect_err("invalid");
        let err = RegistryError::from_store(err);
        assert_eq!(err.code(), Some(ErrorCode::DigestInvalid));
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);

        let err = "md5:d41d8cd98f00b204e9800998ecf8427e"
            .parse::<Digest>()
            .expect_err("unsupported");
        let err = RegistryError::from_store(err);
        assert_eq!(err.code(), Some(ErrorCode::DigestInvalid));
        assert!(err.message().contains("md5"));

        let err = RegistryError::from_store(airlock_store::Error::DigestMismatch {
            expected: Digest::sha256(b"a"),
            actual: Digest::sha256(b"b"),
        });
        assert_eq!(err.code(), Some(ErrorCode::DigestInvalid));
        assert!(err.detail().is_some());

        let d = Digest::sha256(b"a");
        for (err, code, status) in [
            (
                airlock_store::Error::TooLarge { digest: d.clone() },
                Some(ErrorCode::SizeInvalid),
                StatusCode::BAD_REQUEST,
            ),
            (
                airlock_store::Error::SizeMismatch {
                    digest: d.clone(),
                    expected: 1,
                    actual: 2,
                },
                Some(ErrorCode::SizeInvalid),
                StatusCode::BAD_REQUEST,
            ),
            (
                airlock_store::Error::BlobNotFound { digest: d.clone() },
                Some(ErrorCode::BlobUnknown),
                StatusCode::NOT_FOUND,
            ),
            (
                airlock_store::Error::RangeNotSatisfiable {
                    digest: d.clone(),
                    start: 5,
                    end: 9,
                    size: 3,
                },
                Some(ErrorCode::SizeInvalid),
                StatusCode::RANGE_NOT_SATISFIABLE,
            ),
            (
                airlock_store::Error::ReadOnly {
                    path: "/data".into(),
                },
                Some(ErrorCode::Unsupported),
                StatusCode::METHOD_NOT_ALLOWED,
            ),
            (
                airlock_store::Error::InvalidName {
                    what: "repository",
                    text: String::new(),
                    why: "must not be empty",
                },
                Some(ErrorCode::NameInvalid),
                StatusCode::BAD_REQUEST,
            ),
            (
                airlock_store::Error::Locked {
                    path: "/secret".into(),
                },
                None,
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        ] {
            let err = RegistryError::from(err);
            assert_eq!((err.code(), err.status()), (code, status), "{err}");
        }

        let err = RegistryError::from_store(airlock_store::Error::Index {
            path: "/data/index.redb".into(),
            what: "torn".into(),
        });
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            !String::from_utf8(err.body())
                .expect("utf-8")
                .contains("redb")
        );
    }
}
