//! A small HTTP/1.1 client for registries over hyper-util's legacy client, over HTTP or HTTPS
//! (rustls, the system's and webpki's roots plus any CA given), logging in as `login` says:
//! whole bodies in and out, `Location` and `Link` resolution against the base URL, and push
//! helpers that follow the spec's simplest workflows (POST then PUT for blobs, PUT for
//! manifests).

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Method, Request, header::HeaderValue};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, pem::PemObject},
};

use crate::{
    check::Optional,
    content::{Blob, Image},
    error::Error,
    login::{Login, basic, parse_bearer},
};

/// How long one request may take before the check gives up on the registry.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// How much of an unexpected response body goes into an error message.
const BODY_EXCERPT_BYTES: usize = 300;

/// A registry at a base URL (`http://host:port`, no trailing `/v2`), and the client that talks
/// to it. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Registry {
    base: String,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    login: Login,
}

/// A whole response, with the request it answers (`"PUT http://..."`) for messages.
#[derive(Clone, Debug)]
pub struct Response {
    pub request: String,
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A request being built by [`Registry::request`].
#[derive(Debug)]
pub struct RequestBuilder<'a> {
    registry: &'a Registry,
    method: Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Bytes,
}

impl Registry {
    /// A client for the registry at `base`, e.g. `http://127.0.0.1:5000` or
    /// `https://registry.example:443` (trusting webpki's roots), anonymous.
    pub fn new(base: &str) -> Registry {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        Registry {
            base: base.trim_end_matches('/').to_owned(),
            client: client(roots),
            login: Login::Anonymous,
        }
    }

    /// Trusts the CA certificates in `pem` (PEM) for HTTPS, beside webpki's roots.
    pub fn with_ca(mut self, pem: &[u8]) -> Result<Registry, Error> {
        let bad = |reason: String| Error::Transport {
            request: format!("trusting a CA for {}", self.base),
            reason,
        };
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| bad(format!("not PEM: {e}")))?;
            roots.add(cert).map_err(|e| bad(e.to_string()))?;
        }
        self.client = client(roots);
        Ok(self)
    }

    /// Sends Basic credentials with every request (distribution's htpasswd mode).
    pub fn with_basic(mut self, user: &str, password: &str) -> Registry {
        self.login = Login::Basic {
            user: user.to_owned(),
            password: password.to_owned(),
        };
        self
    }

    /// Answers `Bearer` challenges with tokens from their realm, fetched with these credentials
    /// (anonymously when `None`): the token flow.
    pub fn with_token_flow(mut self, credentials: Option<(&str, &str)>) -> Registry {
        self.login = Login::Token {
            credentials: credentials.map(|(u, p)| (u.to_owned(), p.to_owned())),
            tokens: Arc::default(),
        };
        self
    }

    /// The base URL, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `host:port` of the base URL, as clients such as skopeo spell a registry.
    pub fn authority(&self) -> &str {
        let rest = self
            .base
            .split_once("://")
            .map_or(self.base.as_str(), |(_, rest)| rest);
        rest.split('/').next().unwrap_or(rest)
    }

    /// The absolute URL of a path (`/v2/...`) or of a `Location`/`Link` target, which the spec
    /// allows to be absolute or relative.
    pub fn url(&self, target: &str) -> String {
        if target.starts_with("http://") || target.starts_with("https://") {
            target.to_owned()
        } else if target.starts_with('/') {
            let origin_end = self
                .base
                .find("://")
                .and_then(|scheme| self.base[scheme + 3..].find('/').map(|p| p + scheme + 3))
                .unwrap_or(self.base.len());
            format!("{}{target}", &self.base[..origin_end])
        } else {
            format!("{}/{target}", self.base)
        }
    }

    /// Starts a request to a path or URL.
    pub fn request(&self, method: Method, target: &str) -> RequestBuilder<'_> {
        RequestBuilder {
            registry: self,
            url: self.url(target),
            method,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// Uploads a blob with POST then PUT (end-4a, end-6) and returns the absolute blob URL the
    /// registry answered in `Location`.
    pub async fn push_blob(&self, repo: &str, blob: &Blob) -> Result<String, Error> {
        let session = self.start_upload(repo, "").await?;
        let put = self
            .request(Method::PUT, &with_query(&session, "digest", &blob.digest))
            .header("content-type", "application/octet-stream")
            .body(blob.bytes.clone())
            .send()
            .await?
            .expect(&[201])?;
        Ok(self.url(put.require_header("location")?))
    }

    /// Opens an upload session (end-4a, or end-4c with `query` such as
    /// `digest-algorithm=sha512`) and returns its absolute `Location`.
    pub async fn start_upload(&self, repo: &str, query: &str) -> Result<String, Error> {
        let path = if query.is_empty() {
            format!("/v2/{repo}/blobs/uploads/")
        } else {
            format!("/v2/{repo}/blobs/uploads/?{query}")
        };
        let post = self
            .request(Method::POST, &path)
            .send()
            .await?
            .expect(&[202])?;
        Ok(self.url(post.require_header("location")?))
    }

    /// Pushes a manifest with its own media type as `Content-Type` (end-7) under a tag or
    /// digest and returns the 201 response.
    pub async fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        manifest: &Blob,
    ) -> Result<Response, Error> {
        self.request(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
            .header("content-type", &manifest.media_type)
            .body(manifest.bytes.clone())
            .send()
            .await?
            .expect(&[201])
    }

    /// Pushes an image's blobs, then its manifest under `tag`.
    pub async fn push_image(&self, repo: &str, tag: &str, image: &Image) -> Result<(), Error> {
        for blob in image.blobs() {
            self.push_blob(repo, blob).await?;
        }
        self.push_manifest(repo, tag, &image.manifest).await?;
        Ok(())
    }

    /// GETs a blob and returns its bytes after checking their digest.
    pub async fn pull_blob(&self, repo: &str, blob: &Blob) -> Result<Bytes, Error> {
        let got = self
            .request(Method::GET, &format!("/v2/{repo}/blobs/{}", blob.digest))
            .send()
            .await?
            .expect(&[200])?;
        if got.body != blob.bytes {
            return Err(got.violation(format!(
                "body of {} bytes differs from the {} bytes pushed",
                got.body.len(),
                blob.bytes.len()
            )));
        }
        Ok(got.body)
    }
}

impl RequestBuilder<'_> {
    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the body; `Content-Length` is always sent for POST, PUT and PATCH.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Sends the request and reads the whole response. Under the token flow a 401 with a
    /// `Bearer` challenge is answered with a token for its scope and the request sent again.
    pub async fn send(self) -> Result<Response, Error> {
        let login = self.registry.login.clone();
        let response = self.exchange(login.preemptive()).await?;
        let challenge = response
            .header("www-authenticate")
            .and_then(parse_bearer)
            .filter(|_| response.status == 401 && matches!(login, Login::Token { .. }));
        let Some(challenge) = challenge else {
            return Ok(response);
        };
        let scope = challenge.scope.clone().unwrap_or_default();
        let token = match login.cached(&scope) {
            Some(token) => token,
            None => {
                let token = self.registry.fetch_token(&login, &challenge).await?;
                login.remember(&scope, &token);
                token
            }
        };
        self.exchange(Some(format!("Bearer {token}"))).await
    }

    /// One request with `authorization`, its whole response read.
    async fn exchange(&self, authorization: Option<String>) -> Result<Response, Error> {
        let request = format!("{} {}", self.method, self.url);
        let transport = |reason: String| Error::Transport {
            request: request.clone(),
            reason,
        };
        let mut builder = Request::builder()
            .method(self.method.clone())
            .uri(&self.url);
        let sets_length = self
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-length"));
        if !sets_length && matches!(self.method, Method::POST | Method::PUT | Method::PATCH) {
            builder = builder.header("content-length", self.body.len());
        }
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        if let Some(value) = authorization {
            builder = builder.header("authorization", value);
        }
        let req = builder
            .body(Full::new(self.body.clone()))
            .map_err(|e| transport(e.to_string()))?;
        let exchange = async {
            let resp = self
                .registry
                .client
                .request(req)
                .await
                .map_err(|e| format!("{e:?}"))?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
            Ok::<_, String>((parts, body))
        };
        let (parts, body) = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| transport(format!("no answer within {REQUEST_TIMEOUT:?}")))?
            .map_err(transport)?;
        Ok(Response {
            request,
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    }
}

impl Registry {
    /// A token from the challenge's realm for its service and scope.
    async fn fetch_token(
        &self,
        login: &Login,
        challenge: &crate::login::Challenge,
    ) -> Result<String, Error> {
        let mut url = challenge.realm.clone();
        for (key, value) in [("service", &challenge.service), ("scope", &challenge.scope)] {
            if let Some(value) = value {
                url = with_query(&url, key, value);
            }
        }
        let mut request = RequestBuilder {
            registry: self,
            method: Method::GET,
            url,
            headers: Vec::new(),
            body: Bytes::new(),
        };
        if let Login::Token {
            credentials: Some((user, password)),
            ..
        } = login
        {
            request = request.header("authorization", &basic(user, password));
        }
        let response = request.exchange(None).await?.expect(&[200])?;
        let json = response.json()?;
        json["token"]
            .as_str()
            .or_else(|| json["access_token"].as_str())
            .map(str::to_owned)
            .ok_or_else(|| response.violation("the token endpoint's answer holds no token"))
    }
}

/// An HTTP client that speaks HTTPS with `roots` (ring, like the rest of airlock) or HTTP.
fn client(roots: RootCertStore) -> Client<HttpsConnector<HttpConnector>, Full<Bytes>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
        // ring supports the default versions; an empty config would fail every handshake.
        .unwrap_or_else(|_| unreachable!("ring supports TLS 1.2 and 1.3"));
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new()).build(connector)
}

impl Response {
    /// The response when its status is one of `allowed`, else [`Error::Status`].
    pub fn expect(self, allowed: &[u16]) -> Result<Response, Error> {
        if allowed.contains(&self.status) {
            return Ok(self);
        }
        let expected = allowed
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(" or ");
        Err(Error::Status {
            expected,
            status: self.status,
            body: match self.body_excerpt() {
                excerpt if excerpt.is_empty() => excerpt,
                excerpt => format!(": {excerpt}"),
            },
            request: self.request,
        })
    }

    /// A header's value as text; `None` when absent or not visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    }

    /// Every value of a header, as text.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    }

    /// A header the spec requires on this response.
    pub fn require_header(&self, name: &str) -> Result<&str, Error> {
        self.header(name).filter(|v| !v.is_empty()).ok_or_else(|| {
            self.violation(format!(
                "status {} without the required {name} header",
                self.status
            ))
        })
    }

    /// `Content-Type` without parameters, which the spec tells clients to ignore.
    pub fn media_type(&self) -> Option<&str> {
        self.header("content-type")
            .map(|v| v.split(';').next().unwrap_or(v).trim())
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Result<serde_json::Value, Error> {
        serde_json::from_slice(&self.body)
            .map_err(|e| self.violation(format!("body is not JSON ({e}): {}", self.body_excerpt())))
    }

    /// The `code`s of a spec error body (`{"errors": [{"code": ...}]}`); empty when the body is
    /// not one.
    pub fn error_codes(&self) -> Vec<String> {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(&self.body) else {
            return Vec::new();
        };
        value["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .filter_map(|e| e["code"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The response when its status is allowed and its error body carries `code`. Under
    /// [`Optional::Allow`] a body that is not a spec error body passes too (the spec lets a 4xx
    /// body be in any format, but a JSON one must carry the right code).
    pub fn expect_error(
        self,
        allowed: &[u16],
        code: &str,
        optional: Optional,
    ) -> Result<Response, Error> {
        let resp = self.expect(allowed)?;
        let codes = resp.error_codes();
        if codes.iter().any(|c| c == code) || (codes.is_empty() && optional == Optional::Allow) {
            return Ok(resp);
        }
        let body = match resp.body_excerpt() {
            excerpt if excerpt.is_empty() => "an empty body".to_owned(),
            excerpt => format!("the body: {excerpt}"),
        };
        Err(resp.violation(format!(
            "status {} without error code {code} in {body}",
            resp.status
        )))
    }

    /// The target of a `Link: <...>; rel="next"` header, if any.
    pub fn next_link(&self) -> Option<String> {
        self.header_all("link")
            .into_iter()
            .flat_map(|v| v.split(','))
            .find_map(|link| {
                let (target, params) = link.trim().strip_prefix('<')?.split_once('>')?;
                let next = params.split(';').any(|p| {
                    let p = p.trim().replace(' ', "");
                    p == "rel=\"next\"" || p == "rel=next"
                });
                next.then(|| target.to_owned())
            })
    }

    /// An [`Error::Violation`] about this response.
    pub fn violation(&self, what: impl Into<String>) -> Error {
        Error::Violation {
            request: self.request.clone(),
            what: what.into(),
        }
    }

    /// The start of the body for a message: text as it is, anything else by its length.
    fn body_excerpt(&self) -> String {
        let head = &self.body[..self.body.len().min(BODY_EXCERPT_BYTES)];
        let text = match std::str::from_utf8(head) {
            Ok(text) => text,
            // A cut through a character is still text.
            Err(e) if e.error_len().is_none() => {
                std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default()
            }
            Err(_) => return format!("<{} bytes, not text>", self.body.len()),
        };
        if text.chars().any(|c| c.is_control() && !c.is_whitespace()) {
            return format!("<{} bytes, not text>", self.body.len());
        }
        text.to_owned()
    }
}

/// `url` with `key=value` added to its query, the value percent-encoded (`+` in a media type
/// must not turn into a space).
pub(crate) fn with_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={}", percent_encode(value))
}

/// What a query value of a check escapes: everything but RFC 3986's unreserved characters and
/// `:`, which digests hold and Go clients leave as it is.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b':');

/// Percent-encodes a query value with [`QUERY_VALUE`].
pub(crate) fn percent_encode(value: &str) -> String {
    utf8_percent_encode(value, QUERY_VALUE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_locations_against_the_base() {
        let r = Registry::new("http://127.0.0.1:5000/");
        assert_eq!(
            r.url("/v2/a/blobs/uploads/x"),
            "http://127.0.0.1:5000/v2/a/blobs/uploads/x"
        );
        assert_eq!(r.url("https://cdn.example/x"), "https://cdn.example/x");
        assert_eq!(r.authority(), "127.0.0.1:5000");
    }

    #[test]
    fn adds_query_parameters() {
        assert_eq!(
            with_query("/u/1", "digest", "sha256:ab"),
            "/u/1?digest=sha256:ab"
        );
        assert_eq!(
            with_query("/u/1?s=2", "digest", "sha256:ab"),
            "/u/1?s=2&digest=sha256:ab"
        );
        assert_eq!(
            percent_encode("application/vnd.a+json"),
            "application%2Fvnd.a%2Bjson"
        );
    }

    #[test]
    fn shows_text_bodies_and_measures_binary_ones() {
        let resp = |body: &'static [u8], status| Response {
            request: "GET http://127.0.0.1:5000/v2/".to_owned(),
            status,
            headers: HeaderMap::new(),
            body: Bytes::from_static(body),
        };
        let text = resp(br#"{"errors":[]}"#, 404).expect(&[200]).unwrap_err();
        assert!(
            text.to_string()
                .ends_with(r#"expected status 200, got 404: {"errors":[]}"#),
            "{text}"
        );
        let binary = resp(b"\x1f\x8b\x08\x00\xff\xfe", 200)
            .expect(&[206])
            .unwrap_err();
        assert!(
            binary.to_string().ends_with("got 200: <6 bytes, not text>"),
            "{binary}"
        );
        let empty = resp(b"", 404)
            .expect_error(&[404], "BLOB_UNKNOWN", Optional::Require)
            .unwrap_err();
        assert!(
            empty
                .to_string()
                .ends_with("without error code BLOB_UNKNOWN in an empty body"),
            "{empty}"
        );
    }

    #[test]
    fn finds_the_next_link() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "link",
            HeaderValue::from_static("</v2/a/tags/list?n=2&last=b>; rel=\"next\""),
        );
        let resp = Response {
            request: String::new(),
            status: 200,
            headers,
            body: Bytes::new(),
        };
        assert_eq!(
            resp.next_link().as_deref(),
            Some("/v2/a/tags/list?n=2&last=b")
        );
    }
}
