//! A small blocking HTTP client for one upstream registry, over hyper on a tokio runtime of its
//! own: HTTPS with rustls (system roots, else webpki's), plain HTTP only with `--insecure`;
//! Docker Hub style token auth (`WWW-Authenticate: Bearer realm=..,service=..,scope=..`) and
//! basic auth; redirects (blob downloads usually leave for a CDN, without our credentials); and
//! blob bodies streamed into a synchronous reader through a bounded channel.

use std::{
    collections::HashMap,
    io::{self, Read},
    sync::Mutex,
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{
    HeaderMap, Request, StatusCode, Uri,
    body::Incoming,
    header::{self, HeaderValue},
};
use hyper_util::{
    client::legacy::{Client as HyperClient, connect::HttpConnector},
    rt::TokioExecutor,
};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::auth::{Challenge, Credentials};
use crate::error::{Context as _, Result, err, fail};

/// Redirects followed at most per request.
const MAX_REDIRECTS: usize = 5;
/// A response (or a piece of a body) that takes longer than this is an error.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Body pieces buffered between the network and a blob reader.
const STREAM_BUFFER_PIECES: usize = 16;
/// Largest token response read.
const MAX_TOKEN_BYTES: u64 = 1024 * 1024;
/// What a query value of a token request escapes: everything but RFC 3986's unreserved
/// characters, so `repository:a/b:pull` goes out as `repository%3Aa%2Fb%3Apull`.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A query value, percent-encoded with [`QUERY_VALUE`].
fn percent_encode(value: &str) -> String {
    utf8_percent_encode(value, QUERY_VALUE).to_string()
}

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// A client for one registry host.
#[derive(Debug)]
pub struct Client {
    runtime: tokio::runtime::Runtime,
    http: HyperClient<Connector, Empty<Bytes>>,
    base: String,
    credentials: Option<Credentials>,
    /// Authorization header values by scope, once a challenge was answered.
    auth: Mutex<HashMap<String, String>>,
}

/// A response whose body has not been read.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    body: Incoming,
}

impl Client {
    /// A client for `host` (`registry-1.docker.io`, `localhost:5000`): HTTPS, or HTTP when
    /// `insecure`.
    pub fn new(host: &str, insecure: bool, credentials: Option<Credentials>) -> Result<Client> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context(|| "starting the HTTP runtime".into())?;
        let mut connector = HttpConnector::new();
        connector.enforce_http(false);
        connector.set_connect_timeout(Some(Duration::from_secs(30)));
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = match builder.with_native_roots() {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!("no system TLS roots ({e}); using webpki roots");
                hyper_rustls::HttpsConnectorBuilder::new().with_webpki_roots()
            }
        };
        let https = builder
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let http = HyperClient::builder(TokioExecutor::new()).build(https);
        let scheme = if insecure { "http" } else { "https" };
        Ok(Client {
            runtime,
            http,
            base: format!("{scheme}://{host}"),
            credentials,
            auth: Mutex::new(HashMap::new()),
        })
    }

    /// `GET` of an API path (`/v2/...`) with the given `Accept` types, answering an auth
    /// challenge once and following redirects. `scope` names the token scope to ask for.
    pub fn get(&self, path: &str, accept: &[&str], scope: &str) -> Result<Response> {
        self.runtime.block_on(self.get_async(path, accept, scope))
    }

    async fn get_async(&self, path: &str, accept: &[&str], scope: &str) -> Result<Response> {
        let url = format!("{}{path}", self.base);
        let mut answered = false;
        loop {
            let auth = self.auth.lock().ok().and_then(|a| a.get(scope).cloned());
            let resp = self.follow(&url, accept, auth.as_deref()).await?;
            if resp.status == StatusCode::UNAUTHORIZED && !answered {
                answered = true;
                let challenge = resp
                    .headers
                    .get(header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .map(Challenge::parse)
                    .ok_or_else(|| {
                        err!(
                            Upstream,
                            "GET {url}: 401 without a WWW-Authenticate challenge"
                        )
                    })?;
                let value = self.answer(&challenge, scope).await?;
                if let Ok(mut a) = self.auth.lock() {
                    a.insert(scope.to_owned(), value);
                }
                continue;
            }
            return Ok(resp);
        }
    }

    /// The `Authorization` value that answers a challenge.
    async fn answer(&self, challenge: &Challenge, scope: &str) -> Result<String> {
        match challenge {
            Challenge::Basic => match &self.credentials {
                Some(c) => Ok(c.basic_header()),
                None => fail!(
                    Upstream,
                    "{} asks for a user name and password: use --username and --password-stdin, or `docker login`",
                    self.base
                ),
            },
            Challenge::Bearer { realm, service } => {
                let mut url = realm.clone();
                let mut sep = if url.contains('?') { '&' } else { '?' };
                if let Some(s) = service {
                    url.push_str(&format!("{sep}service={}", percent_encode(s)));
                    sep = '&';
                }
                url.push_str(&format!("{sep}scope={}", percent_encode(scope)));
                let basic = self.credentials.as_ref().map(Credentials::basic_header);
                let resp = self
                    .follow(&url, &["application/json"], basic.as_deref())
                    .await?;
                let status = resp.status;
                let body = read_limited(resp, MAX_TOKEN_BYTES).await?;
                if !status.is_success() {
                    fail!(
                        Upstream,
                        "token request to {realm} failed: {status}: {}",
                        String::from_utf8_lossy(&body)
                            .chars()
                            .take(200)
                            .collect::<String>()
                    );
                }
                let v: serde_json::Value = serde_json::from_slice(&body)
                    .map_err(|e| err!(Upstream, "token response from {realm} is not JSON: {e}"))?;
                let token = v["token"]
                    .as_str()
                    .or_else(|| v["access_token"].as_str())
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| err!(Upstream, "token response from {realm} has no token"))?;
                Ok(format!("Bearer {token}"))
            }
        }
    }

    /// One GET following redirects; credentials go only to the URL's own origin.
    async fn follow(&self, url: &str, accept: &[&str], auth: Option<&str>) -> Result<Response> {
        let mut uri: Uri = url.parse().context(|| format!("invalid URL {url}"))?;
        let origin = |u: &Uri| (u.scheme_str().map(str::to_owned), u.authority().cloned());
        let first = origin(&uri);
        for _ in 0..=MAX_REDIRECTS {
            let mut req = Request::get(uri.clone()).header(header::USER_AGENT, "airlock");
            for a in accept {
                req = req.header(header::ACCEPT, *a);
            }
            if let Some(a) = auth.filter(|_| origin(&uri) == first) {
                req = req.header(header::AUTHORIZATION, a);
            }
            let req = req
                .body(Empty::new())
                .context(|| format!("building a request for {uri}"))?;
            let resp = tokio::time::timeout(IDLE_TIMEOUT, self.http.request(req))
                .await
                .map_err(|_| err!(Upstream, "GET {uri}: no response within {IDLE_TIMEOUT:?}"))?
                .map_err(|e| {
                    let chain = error_chain(&e);
                    let hint = if uri.scheme_str() == Some("https")
                        && chain.contains("InvalidContentType")
                    {
                        " (the server may speak plain HTTP: --insecure uses HTTP)"
                    } else {
                        ""
                    };
                    err!(Upstream, "GET {uri}: {chain}{hint}")
                })?;
            let (parts, body) = resp.into_parts();
            let location = parts
                .headers
                .get(header::LOCATION)
                .and_then(|l| l.to_str().ok());
            if parts.status.is_redirection()
                && let Some(loc) = location
            {
                uri = join(&uri, loc)?;
                continue;
            }
            return Ok(Response {
                status: parts.status,
                headers: parts.headers,
                body,
            });
        }
        fail!(Upstream, "GET {url}: more than {MAX_REDIRECTS} redirects")
    }

    /// Reads a whole body of at most `limit` bytes.
    pub fn read_body(&self, resp: Response, limit: u64) -> Result<Vec<u8>> {
        self.runtime.block_on(read_limited(resp, limit))
    }

    /// A synchronous reader over the body, fed by a task through a bounded channel (memory
    /// stays bounded however large the blob).
    pub fn stream_body(&self, resp: Response) -> BodyReader {
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(STREAM_BUFFER_PIECES);
        let mut body = resp.body;
        self.runtime.spawn(async move {
            loop {
                let frame = match tokio::time::timeout(IDLE_TIMEOUT, body.frame()).await {
                    Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "download stalled")),
                    Ok(None) => break,
                    Ok(Some(Err(e))) => Err(io::Error::other(error_chain(&e))),
                    Ok(Some(Ok(f))) => match f.into_data() {
                        Ok(data) => Ok(data),
                        Err(_) => continue,
                    },
                };
                let failed = frame.is_err();
                if tx.send(frame).await.is_err() || failed {
                    break;
                }
            }
        });
        BodyReader {
            rx,
            current: Bytes::new(),
        }
    }
}

async fn read_limited(resp: Response, limit: u64) -> Result<Vec<u8>> {
    let mut body = resp.body;
    let mut out = Vec::new();
    loop {
        let frame = tokio::time::timeout(IDLE_TIMEOUT, body.frame())
            .await
            .map_err(|_| err!(Upstream, "response body stalled"))?;
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|e| err!(Upstream, "reading a response: {}", error_chain(&e)))?;
        if let Ok(data) = frame.into_data() {
            if (out.len() + data.len()) as u64 > limit {
                fail!(Upstream, "response larger than the {limit} bytes accepted");
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

/// A blob body as a synchronous [`Read`].
#[derive(Debug)]
pub struct BodyReader {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(piece) => self.current = piece?,
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

/// A redirect target relative to the URL that sent it.
fn join(base: &Uri, location: &str) -> Result<Uri> {
    if location.contains("://") {
        return location
            .parse()
            .context(|| format!("invalid redirect {location:?}"));
    }
    let scheme = base.scheme_str().unwrap_or("https");
    let authority = base.authority().map(|a| a.as_str()).unwrap_or_default();
    let path = if location.starts_with('/') {
        location.to_owned()
    } else {
        let dir = base.path().rsplit_once('/').map_or("", |(d, _)| d);
        format!("{dir}/{location}")
    };
    format!("{scheme}://{authority}{path}")
        .parse()
        .context(|| format!("invalid redirect {location:?}"))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A header value as text, for messages.
pub fn header_text<'a>(headers: &'a HeaderMap, name: &header::HeaderName) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v: &HeaderValue| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_escape_all_but_unreserved() {
        assert_eq!(
            percent_encode("repository:a/b:pull"),
            "repository%3Aa%2Fb%3Apull"
        );
        assert_eq!(percent_encode("a-b.c_d~é"), "a-b.c_d~%C3%A9");
    }

    #[test]
    fn redirects_join_their_base() {
        let base: Uri = "https://r.example/v2/a/blobs/sha256:1"
            .parse()
            .expect("uri");
        assert_eq!(
            join(&base, "https://cdn.example/x?sig=1")
                .expect("abs")
                .to_string(),
            "https://cdn.example/x?sig=1"
        );
        assert_eq!(
            join(&base, "/other/y").expect("root").to_string(),
            "https://r.example/other/y"
        );
        assert_eq!(
            join(&base, "z").expect("relative").to_string(),
            "https://r.example/v2/a/blobs/z"
        );
    }
}
