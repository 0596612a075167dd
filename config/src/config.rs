//! The `Config` value: sections with their defaults, per-key access, origins and the checks that
//! span several keys.

use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{
    AccessRule, ByteSize, CHALLENGES, Error, Key, Origin, Setting, Value, access,
    trust::TrustConfig, value::parse_checked_text,
};

/// The whole configuration: built-in defaults, overlaid by `airlock.toml`, overlaid by
/// `AIRLOCK_*` environment variables, each value checked against its allowed range.
///
/// Build one with [`Config::load`] (or [`Config::default`] for defaults only), read the section
/// fields directly, and ask [`Config::origin`] where a value came from. Fields are public so the
/// CLI can apply its flags, but [`Config::override_value`] does that with the same checks and
/// records the origin; call [`Config::validate`] after changing fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// `[store]`: where the store lives and how packs are written.
    pub store: StoreConfig,
    /// `[chunker]`: chunk sizes, a store format parameter.
    pub chunker: ChunkerConfig,
    /// `[server]`: the registry endpoint.
    pub server: ServerConfig,
    /// `[cache]`: cache sizes.
    pub cache: CacheConfig,
    /// `[layers]`: limits when expanding compressed layers.
    pub layers: LayersConfig,
    /// `[gc]`: what garbage collection keeps.
    pub gc: GcConfig,
    /// `[tls]`: the registry's certificate.
    pub tls: TlsConfig,
    /// `[auth]`: accounts and how clients log in.
    pub auth: AuthConfig,
    /// `[limits]`: what one client or request may take.
    pub limits: LimitsConfig,
    /// `[groups]`: group name to account names, for access rules.
    pub groups: BTreeMap<String, Vec<String>>,
    /// `[[access]]`: who may pull, push or delete which repositories.
    pub access: Vec<AccessRule>,
    /// `[trust]`: the public keys whose signatures an import accepts.
    pub trust: TrustConfig,
    origins: BTreeMap<Key, Origin>,
    file: Option<PathBuf>,
}

/// `[store]`: the store's location and pack writing.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreConfig {
    /// `data`: the store's directory (default `./airlock-data`). A relative path in a config file
    /// is relative to that file's directory; from the environment, to the working directory.
    pub data: PathBuf,
    /// `pack_size`: a pack is sealed once it reaches this size (default 64MiB, 1MiB to 4GiB).
    pub pack_size: ByteSize,
    /// `frame_size`: uncompressed bytes per zstd frame in a pack, the unit of a random read
    /// (default 2MiB, 256KiB to 8MiB, at most `pack_size`).
    pub frame_size: ByteSize,
    /// `zstd_level`: compression level for new packs (default 3, 1 to 22).
    pub zstd_level: i32,
}

/// `[chunker]`: content-defined chunk sizes, fixed for a store when it is created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChunkerConfig {
    /// `min_size`: smallest chunk (default 16KiB, even, 64B to 1MiB).
    pub min_size: ByteSize,
    /// `avg_size`: target average chunk (default 64KiB, even, 256B to 4MiB).
    pub avg_size: ByteSize,
    /// `max_size`: largest chunk (default 256KiB, even, 1KiB to 16MiB).
    pub max_size: ByteSize,
}

/// `[server]`: the OCI registry endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerConfig {
    /// `listen`: address and port to serve on (default `127.0.0.1:5000`).
    pub listen: SocketAddr,
    /// `read_only`: refuse pushes and deletes, for a site that only imports bundles (default
    /// false).
    pub read_only: bool,
    /// `max_manifest_size`: largest manifest accepted on push (default 4MiB, 1KiB to 64MiB).
    pub max_manifest_size: ByteSize,
    /// `upload_expiry`: an unfinished upload idle this long is abandoned (default 24h, 1m to 30d).
    pub upload_expiry: Duration,
    /// `ingest_jobs`: staged blobs (pushed, acknowledged) cut into chunks at once in the
    /// background (default 1, 1 to 64).
    pub ingest_jobs: u32,
    /// `metrics_listen`: address and port of the Prometheus metrics (`GET /metrics`), a
    /// listener apart from the registry's (default none: no metrics served).
    pub metrics_listen: Option<SocketAddr>,
    /// `log_format`: log lines as text or JSON (default text).
    pub log_format: LogFormat,
}

/// `server.log_format`: how log lines are written to standard error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogFormat {
    /// `"text"`: one line per event for people.
    #[default]
    Text,
    /// `"json"`: one JSON object per line, for a log collector.
    Json,
}

impl LogFormat {
    /// The words of the file, in variant order.
    pub(crate) const WORDS: &'static [&'static str] = &["text", "json"];

    /// The word for this format in `airlock.toml` and `--log-format`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }

    fn from_word(word: &str) -> Option<LogFormat> {
        [LogFormat::Text, LogFormat::Json]
            .into_iter()
            .find(|f| f.as_str() == word)
    }
}

/// `[cache]`: cache sizes, and when the blob cache is filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheConfig {
    /// `blob_cache_size`: on-disk cache of materialized blobs for hot pulls (default 10GiB, 0
    /// disables).
    pub blob_cache_size: ByteSize,
    /// `index_cache_size`: memory the index database may use as cache (default 256MiB, 1MiB to
    /// 64GiB).
    pub index_cache_size: ByteSize,
    /// `materialize`: when rebuilt gzip layers are written to the blob cache (default
    /// `import`).
    pub materialize: Materialize,
}

/// `cache.materialize`: when a gzip layer kept as chunks of its content is rebuilt into the blob
/// cache, within `cache.blob_cache_size`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Materialize {
    /// `"import"`: when the layer is stored (bundle import, push, add), by the same pass that
    /// checks its digest; a pull of a layer not cached fills it too.
    #[default]
    Import,
    /// `"pull"`: at the first pull of each layer.
    Pull,
    /// `"never"`: no cache files; every pull rebuilds.
    Never,
}

impl Materialize {
    /// The words of the file, in variant order.
    pub(crate) const WORDS: &'static [&'static str] = &["import", "pull", "never"];

    /// The word for this policy in `airlock.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Materialize::Import => "import",
            Materialize::Pull => "pull",
            Materialize::Never => "never",
        }
    }

    fn from_word(word: &str) -> Option<Materialize> {
        [Materialize::Import, Materialize::Pull, Materialize::Never]
            .into_iter()
            .find(|m| m.as_str() == word)
    }
}

/// `[layers]`: decompression-bomb limits when expanding a compressed layer for chunking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LayersConfig {
    /// `max_decompressed_ratio`: largest decompressed / compressed size ratio (default 100, 1 to
    /// 100000).
    pub max_decompressed_ratio: u32,
    /// `max_decompressed_size`: largest decompressed size of one layer (default 64GiB, 1MiB to
    /// 16TiB).
    pub max_decompressed_size: ByteSize,
}

/// `[gc]`: what garbage collection keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcConfig {
    /// `keep_tag_history`: a tag's previous targets stay reachable this long, for rollback
    /// (default 7d, 0s to 3650d).
    pub keep_tag_history: Duration,
    /// `upload_grace`: data written this recently is kept even if nothing references it yet, so
    /// GC never breaks a push in progress (default 1h, 1m to 30d).
    pub upload_grace: Duration,
    /// `keep_app_versions`: GC keeps the last this many versions of each application (by when
    /// they were added or imported) and the current one, and everything they reach.
    pub keep_app_versions: u32,
}

/// `[tls]`: HTTPS for the registry; both keys or neither.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsConfig {
    /// `cert`: the certificate chain, PEM, server certificate first (default none: plain HTTP).
    pub cert: Option<PathBuf>,
    /// `key`: the certificate's private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
}

/// `[auth]`: accounts and how clients log in.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthConfig {
    /// `htpasswd`: accounts, one `name:bcrypt-hash` per line (default none: no accounts).
    pub htpasswd: Option<PathBuf>,
    /// `anonymous_pull`: with accounts, anyone may pull without logging in (default false).
    pub anonymous_pull: bool,
    /// `anonymous_write`: without accounts on a non-loopback address, anyone may push and
    /// delete (default false: such a registry serves pulls only).
    pub anonymous_write: bool,
    /// `challenge`: `bearer` (the token flow, default) or `basic`.
    pub challenge: String,
    /// `token_lifetime`: validity of a bearer token (default 5m, 1m to 24h).
    pub token_lifetime: Duration,
}

/// `[limits]`: what one client or request may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LimitsConfig {
    /// `max_blob_size`: largest blob accepted on push (default 32GiB, 1MiB to 16TiB).
    pub max_blob_size: ByteSize,
    /// `max_upload_sessions`: upload sessions open at once (default 256).
    pub max_upload_sessions: u32,
    /// `max_upload_sessions_per_client`: sessions open at once per client address (default 16).
    pub max_upload_sessions_per_client: u32,
    /// `max_connections`: connections served at once; more wait in the listen backlog
    /// (default 1024).
    pub max_connections: u32,
    /// `header_timeout`: time to send a request's headers or finish a TLS handshake; also how
    /// long an idle keep-alive connection stays open (default 30s).
    pub header_timeout: Duration,
    /// `body_timeout`: a request body or response that moves no data this long is dropped
    /// (default 60s).
    pub body_timeout: Duration,
    /// `shutdown_timeout`: how long a stopping server waits for requests in flight (default
    /// 30s).
    pub shutdown_timeout: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            htpasswd: None,
            anonymous_pull: false,
            anonymous_write: false,
            challenge: "bearer".to_owned(),
            token_lifetime: Duration::from_secs(300),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_blob_size: ByteSize::gib(32),
            max_upload_sessions: 256,
            max_upload_sessions_per_client: 16,
            max_connections: 1024,
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            data: PathBuf::from("./airlock-data"),
            pack_size: ByteSize::mib(64),
            frame_size: ByteSize::mib(2),
            zstd_level: 3,
        }
    }
}

impl Default for ChunkerConfig {
    fn default() -> Self {
        ChunkerConfig {
            min_size: ByteSize::kib(16),
            avg_size: ByteSize::kib(64),
            max_size: ByteSize::kib(256),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 5000)),
            read_only: false,
            max_manifest_size: ByteSize::mib(4),
            upload_expiry: Duration::from_secs(24 * 3600),
            ingest_jobs: 1,
            metrics_listen: None,
            log_format: LogFormat::Text,
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            blob_cache_size: ByteSize::gib(10),
            index_cache_size: ByteSize::mib(256),
            materialize: Materialize::Import,
        }
    }
}

impl Default for LayersConfig {
    fn default() -> Self {
        LayersConfig {
            max_decompressed_ratio: 100,
            max_decompressed_size: ByteSize::gib(64),
        }
    }
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            keep_tag_history: Duration::from_secs(7 * 24 * 3600),
            upload_grace: Duration::from_secs(3600),
            keep_app_versions: 3,
        }
    }
}

impl Config {
    /// The value of `key`, for generic display.
    pub fn value(&self, key: Key) -> Value {
        match key {
            Key::StoreData => Value::Path(self.store.data.clone()),
            Key::StorePackSize => Value::Bytes(self.store.pack_size),
            Key::StoreFrameSize => Value::Bytes(self.store.frame_size),
            Key::StoreZstdLevel => Value::Integer(self.store.zstd_level.into()),
            Key::ChunkerMinSize => Value::Bytes(self.chunker.min_size),
            Key::ChunkerAvgSize => Value::Bytes(self.chunker.avg_size),
            Key::ChunkerMaxSize => Value::Bytes(self.chunker.max_size),
            Key::ServerListen => Value::SocketAddr(self.server.listen),
            Key::ServerReadOnly => Value::Bool(self.server.read_only),
            Key::ServerMaxManifestSize => Value::Bytes(self.server.max_manifest_size),
            Key::ServerUploadExpiry => Value::Duration(self.server.upload_expiry),
            Key::ServerIngestJobs => Value::Integer(self.server.ingest_jobs.into()),
            Key::ServerMetricsListen => Value::OptionalSocketAddr(self.server.metrics_listen),
            Key::ServerLogFormat => Value::Word(self.server.log_format.as_str()),
            Key::CacheBlobCacheSize => Value::Bytes(self.cache.blob_cache_size),
            Key::CacheIndexCacheSize => Value::Bytes(self.cache.index_cache_size),
            Key::CacheMaterialize => Value::Word(self.cache.materialize.as_str()),
            Key::LayersMaxDecompressedRatio => {
                Value::Integer(self.layers.max_decompressed_ratio.into())
            }
            Key::LayersMaxDecompressedSize => Value::Bytes(self.layers.max_decompressed_size),
            Key::GcKeepTagHistory => Value::Duration(self.gc.keep_tag_history),
            Key::GcUploadGrace => Value::Duration(self.gc.upload_grace),
            Key::GcKeepAppVersions => Value::Integer(self.gc.keep_app_versions.into()),
            Key::TlsCert => optional_path(&self.tls.cert),
            Key::TlsKey => optional_path(&self.tls.key),
            Key::AuthHtpasswd => optional_path(&self.auth.htpasswd),
            Key::AuthAnonymousPull => Value::Bool(self.auth.anonymous_pull),
            Key::AuthAnonymousWrite => Value::Bool(self.auth.anonymous_write),
            Key::AuthChallenge => Value::Word(
                CHALLENGES
                    .iter()
                    .copied()
                    .find(|w| *w == self.auth.challenge)
                    .unwrap_or("bearer"),
            ),
            Key::AuthTokenLifetime => Value::Duration(self.auth.token_lifetime),
            Key::LimitsMaxBlobSize => Value::Bytes(self.limits.max_blob_size),
            Key::LimitsMaxUploadSessions => Value::Integer(self.limits.max_upload_sessions.into()),
            Key::LimitsMaxUploadSessionsPerClient => {
                Value::Integer(self.limits.max_upload_sessions_per_client.into())
            }
            Key::LimitsMaxConnections => Value::Integer(self.limits.max_connections.into()),
            Key::LimitsHeaderTimeout => Value::Duration(self.limits.header_timeout),
            Key::LimitsBodyTimeout => Value::Duration(self.limits.body_timeout),
            Key::LimitsShutdownTimeout => Value::Duration(self.limits.shutdown_timeout),
        }
    }

    /// Where the value of `key` came from.
    pub fn origin(&self, key: Key) -> &Origin {
        static DEFAULT: Origin = Origin::Default;
        self.origins.get(&key).unwrap_or(&DEFAULT)
    }

    /// Whether the user set `key` (file, environment or flag) rather than leaving its default;
    /// the CLI reports a conflict when an explicit [format key](Key::is_format) disagrees with
    /// what the store recorded.
    pub fn is_explicit(&self, key: Key) -> bool {
        self.origin(key).is_explicit()
    }

    /// Every key with its value and origin, in [`Key::ALL`] order, for `airlock config`.
    pub fn settings(&self) -> Vec<Setting> {
        Key::ALL.into_iter().map(|key| self.setting(key)).collect()
    }

    /// The config file that was read, if any.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Sets `key` from text, as an environment variable or a command-line flag gives it, with
    /// the same checks as the file; `origin` is recorded and names the source in errors. Checks
    /// that span keys wait for [`Config::validate`].
    pub fn override_value(&mut self, key: Key, text: &str, origin: Origin) -> Result<(), Error> {
        match parse_checked_text(key, text) {
            Ok(value) => {
                self.set(key, value, origin);
                Ok(())
            }
            Err(reason) => Err(Error::InvalidValue {
                origin,
                key,
                value: format!("{text:?}"),
                reason,
            }),
        }
    }

    /// Checks every value against its range and the rules that span keys: chunker sizes
    /// ordered `min_size <= avg_size <= max_size`, `frame_size <= pack_size`.
    /// [`Config::load`] already calls this; call it again after changing fields.
    pub fn validate(&self) -> Result<(), Error> {
        for key in Key::ALL {
            let value = self.value(key);
            if let Err(reason) = key.kind().check(&value) {
                return Err(Error::InvalidValue {
                    origin: self.origin(key).clone(),
                    key,
                    value: value.to_string(),
                    reason,
                });
            }
        }
        let c = &self.chunker;
        if !(c.min_size <= c.avg_size && c.avg_size <= c.max_size) {
            return Err(self.conflict(
                "chunker sizes must satisfy min_size <= avg_size <= max_size",
                &[
                    Key::ChunkerMinSize,
                    Key::ChunkerAvgSize,
                    Key::ChunkerMaxSize,
                ],
            ));
        }
        if self.store.frame_size > self.store.pack_size {
            return Err(self.conflict(
                "store.frame_size must not exceed store.pack_size",
                &[Key::StoreFrameSize, Key::StorePackSize],
            ));
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return Err(self.conflict(
                "tls.cert and tls.key are set together or not at all",
                &[Key::TlsCert, Key::TlsKey],
            ));
        }
        let l = &self.limits;
        if l.max_upload_sessions_per_client > l.max_upload_sessions {
            return Err(self.conflict(
                "limits.max_upload_sessions_per_client must not exceed limits.max_upload_sessions",
                &[
                    Key::LimitsMaxUploadSessionsPerClient,
                    Key::LimitsMaxUploadSessions,
                ],
            ));
        }
        access::validate(&self.groups, &self.access)
    }

    /// Stores a value that has passed its key's checks.
    pub(crate) fn set(&mut self, key: Key, value: Value, origin: Origin) {
        // Integer ranges are checked before this point and all fit the field types; the
        // fallbacks below are never taken.
        let int = |n: i64| i32::try_from(n).unwrap_or(i32::MAX);
        let count = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
        let path = |p: PathBuf| (!p.as_os_str().is_empty()).then_some(p);
        match (key, value) {
            (Key::StoreData, Value::Path(p)) => self.store.data = p,
            (Key::StorePackSize, Value::Bytes(b)) => self.store.pack_size = b,
            (Key::StoreFrameSize, Value::Bytes(b)) => self.store.frame_size = b,
            (Key::StoreZstdLevel, Value::Integer(n)) => self.store.zstd_level = int(n),
            (Key::ChunkerMinSize, Value::Bytes(b)) => self.chunker.min_size = b,
            (Key::ChunkerAvgSize, Value::Bytes(b)) => self.chunker.avg_size = b,
            (Key::ChunkerMaxSize, Value::Bytes(b)) => self.chunker.max_size = b,
            (Key::ServerListen, Value::SocketAddr(a)) => self.server.listen = a,
            (Key::ServerReadOnly, Value::Bool(b)) => self.server.read_only = b,
            (Key::ServerMaxManifestSize, Value::Bytes(b)) => self.server.max_manifest_size = b,
            (Key::ServerUploadExpiry, Value::Duration(d)) => self.server.upload_expiry = d,
            (Key::ServerIngestJobs, Value::Integer(n)) => {
                self.server.ingest_jobs = u32::try_from(n).unwrap_or(u32::MAX)
            }
            (Key::ServerMetricsListen, Value::OptionalSocketAddr(a)) => {
                self.server.metrics_listen = a
            }
            (Key::ServerLogFormat, Value::Word(w)) => {
                self.server.log_format = LogFormat::from_word(w).unwrap_or_default()
            }
            (Key::CacheBlobCacheSize, Value::Bytes(b)) => self.cache.blob_cache_size = b,
            (Key::CacheIndexCacheSize, Value::Bytes(b)) => self.cache.index_cache_size = b,
            (Key::CacheMaterialize, Value::Word(w)) => {
                self.cache.materialize = Materialize::from_word(w).unwrap_or_default()
            }
            (Key::LayersMaxDecompressedRatio, Value::Integer(n)) => {
                self.layers.max_decompressed_ratio = u32::try_from(n).unwrap_or(u32::MAX)
            }
            (Key::LayersMaxDecompressedSize, Value::Bytes(b)) => {
                self.layers.max_decompressed_size = b
            }
            (Key::GcKeepTagHistory, Value::Duration(d)) => self.gc.keep_tag_history = d,
            (Key::GcUploadGrace, Value::Duration(d)) => self.gc.upload_grace = d,
            (Key::GcKeepAppVersions, Value::Integer(n)) => {
                self.gc.keep_app_versions = u32::try_from(n).unwrap_or(u32::MAX)
            }
            (Key::TlsCert, Value::Path(p)) => self.tls.cert = path(p),
            (Key::TlsKey, Value::Path(p)) => self.tls.key = path(p),
            (Key::AuthHtpasswd, Value::Path(p)) => self.auth.htpasswd = path(p),
            (Key::AuthAnonymousPull, Value::Bool(b)) => self.auth.anonymous_pull = b,
            (Key::AuthAnonymousWrite, Value::Bool(b)) => self.auth.anonymous_write = b,
            (Key::AuthChallenge, Value::Word(w)) => self.auth.challenge = w.to_owned(),
            (Key::AuthTokenLifetime, Value::Duration(d)) => self.auth.token_lifetime = d,
            (Key::LimitsMaxBlobSize, Value::Bytes(b)) => self.limits.max_blob_size = b,
            (Key::LimitsMaxUploadSessions, Value::Integer(n)) => {
                self.limits.max_upload_sessions = count(n)
            }
            (Key::LimitsMaxUploadSessionsPerClient, Value::Integer(n)) => {
                self.limits.max_upload_sessions_per_client = count(n)
            }
            (Key::LimitsMaxConnections, Value::Integer(n)) => {
                self.limits.max_connections = count(n)
            }
            (Key::LimitsHeaderTimeout, Value::Duration(d)) => self.limits.header_timeout = d,
            (Key::LimitsBodyTimeout, Value::Duration(d)) => self.limits.body_timeout = d,
            (Key::LimitsShutdownTimeout, Value::Duration(d)) => self.limits.shutdown_timeout = d,
            (key, value) => unreachable!("{key} was parsed as {value:?}, not its own kind"),
        }
        self.origins.insert(key, origin);
    }

    pub(crate) fn set_file(&mut self, path: &Path) {
        self.file = Some(path.to_owned());
    }

    fn setting(&self, key: Key) -> Setting {
        Setting {
            key,
            value: self.value(key),
            origin: self.origin(key).clone(),
        }
    }

    fn conflict(&self, rule: &str, keys: &[Key]) -> Error {
        Error::Conflict {
            rule: rule.to_owned(),
            settings: keys.iter().map(|&key| self.setting(key)).collect(),
        }
    }
}

/// An optional path as a value: the empty path stands for none.
fn optional_path(path: &Option<PathBuf>) -> Value {
    Value::Path(path.clone().unwrap_or_default())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_unset() {
        let config = Config::default();
        config.validate().unwrap();
        for key in Key::ALL {
            assert_eq!(config.origin(key), &Origin::Default);
            assert!(!config.is_explicit(key));
        }
        assert_eq!(config.file(), None);
        assert_eq!(config.store.data, PathBuf::from("./airlock-data"));
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:5000");
    }

    #[test]
    fn value_and_set_round_trip_every_key() {
        let defaults = Config::default();
        let mut config = Config::default();
        for key in Key::ALL {
            let origin = Origin::CommandLine {
                flag: format!("--{key}"),
            };
            config.set(key, defaults.value(key), origin.clone());
            assert_eq!(config.origin(key), &origin);
            assert!(config.is_explicit(key));
        }
        assert_eq!(config.settings().len(), Key::ALL.len());
        assert_eq!(config.store, defaults.store);
        assert_eq!(config.gc, defaults.gc);
    }

    #[test]
    fn override_value_checks_and_records() {
        let mut config = Config::default();
        let flag = Origin::CommandLine {
            flag: "--listen".to_owned(),
        };
        config
            .override_value(Key::ServerListen, "0.0.0.0:80", flag.clone())
            .unwrap();
        assert_eq!(config.server.listen.port(), 80);
        assert_eq!(config.origin(Key::ServerListen), &flag);
        let err = config
            .override_value(Key::StoreZstdLevel, "99", flag)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "command-line flag --listen: invalid value \"99\" for `store.zstd_level`: \
             out of range; allowed: an integer from 1 to 22"
        );
        assert_eq!(config.store.zstd_level, 3);
    }

    #[test]
    fn validate_catches_fields_set_directly() {
        let mut config = Config::default();
        config.store.zstd_level = 0;
        assert!(matches!(
            config.validate(),
            Err(Error::InvalidValue {
                key: Key::StoreZstdLevel,
                ..
            })
        ));
        let mut config = Config::default();
        config.store.pack_size = ByteSize::mib(1);
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("frame_size must not exceed"), "{err}");
    }
}
