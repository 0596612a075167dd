use std::path::Path;

use airlock_registry::{AppState, Auth, AuthSettings, RegistryConfig, router};
use airlock_store::{Algorithm, Digest, Store, StoreOptions};
use axum::{
    Router,
    body::Body,
    http::{HeaderMap, Method, Request, StatusCode},
};
use bytes::Bytes;
use serde_json::{Value, json};
use tower::ServiceExt;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// A registry over a store in a temporary directory.
pub struct Registry {
    dir: tempfile::TempDir,
    config: RegistryConfig,
    /// Accounts and access, and the address the registry pretends to listen on.
    auth: Option<(AuthSettings, std::net::SocketAddr)>,
    state: Option<AppState>,
    router: Option<Router>,
}

/// A response with its body read.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    /// A header as text; panics when absent.
    #[track_caller]
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header in {self:?}"))
            .to_str()
            .expect("ascii header")
    }

    /// Whether a header is present.
    pub fn has(&self, name: &str) -> bool {
        self.headers.contains_key(name)
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }

    /// The first error code of an error body.
    pub fn code(&self) -> String {
        self.json()["errors"][0]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code in {self:?}"))
            .to_owned()
    }

    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(self, status: StatusCode) -> Resp {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        self
    }

    /// Asserts a spec error: status and code.
    #[track_caller]
    pub fn expect_error(self, status: StatusCode, code: &str) -> Resp {
        let resp = self.expect(status);
        assert_eq!(resp.code(), code, "{resp:?}");
        resp
    }
}

impl Registry {
    pub fn new() -> Registry {
        Registry::with_config(RegistryConfig::default())
    }

    pub fn with_config(config: RegistryConfig) -> Registry {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut registry = Registry {
            dir,
            config,
            auth: None,
            state: None,
            router: None,
        };
        registry.open();
        registry
    }

    /// A registry deciding access by `settings`, as if it listened on `listen`.
    pub fn with_auth(settings: AuthSettings, listen: &str) -> Registry {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut registry = Registry {
            dir,
            config: RegistryConfig::default(),
            auth: Some((settings, listen.parse().expect("listen address"))),
            state: None,
            router: None,
        };
        registry.open();
        registry
    }

    fn open(&mut self) {
        let store = Store::open(self.dir.path(), StoreOptions::default()).expect("open store");
        let auth = match &self.auth {
            Some((settings, listen)) => {
                Auth::load(settings, *listen, self.dir.path()).expect("auth settings")
            }
            None => Auth::open(),
        };
        let state = AppState::with_auth(store, self.config.clone(), auth).expect("state");
        self.router = Some(router(state.clone()));
        self.state = Some(state);
    }

    /// Drops the state (and with it the store's lock) and builds it again over the same
    /// directory with `config`, as a restarted server would.
    pub fn restart(&mut self, config: RegistryConfig) {
        self.router = None;
        self.state = None;
        self.config = config;
        self.open();
    }

    pub fn state(&self) -> &AppState {
        self.state.as_ref().expect("open")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub async fn send(&self, request: Request<Body>) -> Resp {
        let router = self.router.clone().expect("open");
        let response = router.oneshot(request).await.expect("infallible");
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX)
            .await
            .expect("response body");
        Resp {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: impl Into<Body>,
    ) -> Resp {
        let mut request = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request.body(body.into()).expect("request")).await
    }

    pub async fn get(&self, uri: &str) -> Resp {
        self.call(Method::GET, uri, &[], Body::empty()).await
    }

    pub async fn head(&self, uri: &str) -> Resp {
        self.call(Method::HEAD, uri, &[], Body::empty()).await
    }

    pub async fn delete(&self, uri: &str) -> Resp {
        self.call(Method::DELETE, uri, &[], Body::empty()).await
    }

    /// Pushes a blob with a single POST (end-4b) and asserts 201.
    pub async fn push_blob(&self, repo: &str, data: &[u8]) -> Digest {
        self.push_blob_as(repo, data, Algorithm::Sha256).await
    }

    pub async fn push_blob_as(&self, repo: &str, data: &[u8], algorithm: Algorithm) -> Digest {
        let digest = Digest::of(algorithm, data);
        let len = data.len().to_string();
        self.call(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
            &[
                ("content-length", &len),
                ("content-type", "application/octet-stream"),
            ],
            data.to_vec(),
        )
        .await
        .expect(StatusCode::CREATED);
        digest
    }

    /// Starts an upload session (end-4a) and returns its location.
    pub async fn start_upload(&self, repo: &str) -> String {
        let resp = self
            .call(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/"),
                &[("content-length", "0")],
                Body::empty(),
            )
            .await
            .expect(StatusCode::ACCEPTED);
        resp.header("location").to_owned()
    }

    /// PUTs a manifest (end-7a/7b).
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Resp {
        let len = bytes.len().to_string();
        self.call(
            Method::PUT,
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("content-type", media_type), ("content-length", &len)],
            bytes.to_vec(),
        )
        .await
    }

    /// Pushes a config and one layer, then an OCI image manifest tagged `tag`.
    pub async fn push_image(&self, repo: &str, tag: &str, seed: u64) -> Image {
        let config =
            format!(r#"{{"architecture":"amd64","os":"linux","seed":{seed}}}"#).into_bytes();
        let layer = data(4096 + seed as usize, seed);
        self.push_blob(repo, &config).await;
        self.push_blob(repo, &layer).await;
        let manifest = image_manifest(
            Some(OCI_MANIFEST),
            descriptor(OCI_CONFIG, &config),
            vec![descriptor(OCI_LAYER, &layer)],
        );
        self.put_manifest(repo, tag, OCI_MANIFEST, &manifest)
            .await
            .expect(StatusCode::CREATED);
        Image {
            digest: Digest::sha256(&manifest),
            manifest,
            layer,
        }
    }
}

/// What `push_image` pushed.
#[derive(Debug)]
pub struct Image {
    pub digest: Digest,
    pub manifest: Vec<u8>,
    pub layer: Vec<u8>,
}

/// `len` pseudo-random bytes from `seed` (xorshift64*: fast, incompressible enough).
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A descriptor of `data`.
pub fn descriptor(media_type: &str, data: &[u8]) -> Value {
    json!({
        "mediaType": media_type,
        "digest": Digest::sha256(data).to_string(),
        "size": data.len(),
    })
}

/// An image manifest (OCI or Docker, by `media_type`).
pub fn image_manifest(media_type: Option<&str>, config: Value, layers: Vec<Value>) -> Vec<u8> {
    let mut m = json!({"schemaVersion": 2, "config": config, "layers": layers});
    if let Some(t) = media_type {
        m["mediaType"] = json!(t);
    }
    serde_json::to_vec(&m).expect("json")
}

/// An index or manifest list over `manifests`.
pub fn index(media_type: &str, manifests: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(
        &json!({"schemaVersion": 2, "mediaType": media_type, "manifests": manifests}),
    )
    .expect("json")
}
