//! The schema: every key of `airlock.toml`, its section, environment variable and allowed values.
//!
//! This table is the one place a key is declared; the file walker, the environment overrides,
//! error messages and the example-file test all read it.

use std::{fmt, str::FromStr, time::Duration};

use crate::{ByteSize, Error, LogFormat, Materialize, value::format_duration};

/// One setting of `airlock.toml`, named by its dotted path such as `store.zstd_level`.
///
/// Use it to ask a [`Config`](crate::Config) for a value and where it came from, or to override
/// one (command-line flags). [`Key::ALL`] lists every key in the order of the example file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Key {
    /// `store.data`: the store's directory.
    StoreData,
    /// `store.pack_size`: size at which a pack file is sealed.
    StorePackSize,
    /// `store.frame_size`: uncompressed bytes per zstd frame inside a pack.
    StoreFrameSize,
    /// `store.zstd_level`: zstd compression level for packs.
    StoreZstdLevel,
    /// `chunker.min_size`: smallest chunk (a format parameter).
    ChunkerMinSize,
    /// `chunker.avg_size`: target average chunk (a format parameter).
    ChunkerAvgSize,
    /// `chunker.max_size`: largest chunk (a format parameter).
    ChunkerMaxSize,
    /// `server.listen`: the registry's socket address.
    ServerListen,
    /// `server.read_only`: refuse pushes and deletes.
    ServerReadOnly,
    /// `server.max_manifest_size`: largest manifest accepted on push.
    ServerMaxManifestSize,
    /// `server.upload_expiry`: idle time after which an unfinished upload is abandoned.
    ServerUploadExpiry,
    /// `server.ingest_jobs`: staged blobs cut into chunks at once, in the background.
    ServerIngestJobs,
    /// `server.metrics_listen`: the socket address of the Prometheus metrics, off when empty.
    ServerMetricsListen,
    /// `server.log_format`: log lines as text or JSON.
    ServerLogFormat,
    /// `cache.blob_cache_size`: on-disk cache of materialized blobs, 0 disables.
    CacheBlobCacheSize,
    /// `cache.index_cache_size`: memory the index database may use as cache.
    CacheIndexCacheSize,
    /// `cache.materialize`: when rebuilt blobs are written to the blob cache.
    CacheMaterialize,
    /// `layers.max_decompressed_ratio`: decompressed / compressed limit when expanding a layer.
    LayersMaxDecompressedRatio,
    /// `layers.max_decompressed_size`: decompressed size limit when expanding a layer.
    LayersMaxDecompressedSize,
    /// `gc.keep_tag_history`: how long replaced tag targets stay reachable for rollback.
    GcKeepTagHistory,
    /// `gc.upload_grace`: how long unreferenced new data is safe from GC.
    GcUploadGrace,
    /// `gc.keep_app_versions`: versions of each application GC keeps.
    GcKeepAppVersions,
    /// `tls.cert`: the server's certificate chain (PEM); empty serves plain HTTP.
    TlsCert,
    /// `tls.key`: the private key of `tls.cert` (PEM).
    TlsKey,
    /// `auth.htpasswd`: the accounts file (bcrypt hashes); empty means no accounts.
    AuthHtpasswd,
    /// `auth.anonymous_pull`: with accounts, whether anyone may pull without logging in.
    AuthAnonymousPull,
    /// `auth.anonymous_write`: without accounts on a non-loopback address, let anyone write.
    AuthAnonymousWrite,
    /// `auth.challenge`: the scheme clients are asked for, `bearer` (tokens) or `basic`.
    AuthChallenge,
    /// `auth.token_lifetime`: how long a bearer token from the token endpoint is valid.
    AuthTokenLifetime,
    /// `limits.max_blob_size`: largest blob accepted on push.
    LimitsMaxBlobSize,
    /// `limits.max_upload_sessions`: upload sessions open at once, all clients together.
    LimitsMaxUploadSessions,
    /// `limits.max_upload_sessions_per_client`: upload sessions open at once per client address.
    LimitsMaxUploadSessionsPerClient,
    /// `limits.max_connections`: client connections served at once.
    LimitsMaxConnections,
    /// `limits.header_timeout`: time to send a request's headers (and finish a TLS handshake).
    LimitsHeaderTimeout,
    /// `limits.body_timeout`: a request body or response that moves no data this long is dropped.
    LimitsBodyTimeout,
    /// `limits.shutdown_timeout`: how long a stopping server waits for requests in flight.
    LimitsShutdownTimeout,
}

/// The sections of `airlock.toml`, in file order.
pub(crate) const SECTIONS: &[&str] = &[
    "store", "chunker", "server", "cache", "layers", "gc", "tls", "auth", "limits",
];

/// The sections that hold lists rather than keys: `[groups]` (group name = member list) and
/// `[[access]]` (one table per access rule), see `access`; and `[trust]` (a list of keys),
/// see `trust`.
pub(crate) const LIST_SECTIONS: &[&str] = &["groups", "access", "trust"];

/// The values `auth.challenge` takes.
pub const CHALLENGES: &[&str] = &["bearer", "basic"];

/// What values a key takes; ranges are inclusive.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    Path,
    /// A path, or the empty string for none.
    OptionalPath,
    Bytes {
        min: u64,
        max: u64,
        even: bool,
    },
    Integer {
        min: i64,
        max: i64,
    },
    Bool,
    SocketAddr,
    /// A socket address, or `""` for none.
    OptionalSocketAddr,
    Duration {
        min: Duration,
        max: Duration,
    },
    /// One of a few words.
    Choice(&'static [&'static str]),
}

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

const fn bytes(min: ByteSize, max: ByteSize) -> Kind {
    Kind::Bytes {
        min: min.as_u64(),
        max: max.as_u64(),
        even: false,
    }
}

const fn chunk_bytes(min: ByteSize, max: ByteSize) -> Kind {
    Kind::Bytes {
        min: min.as_u64(),
        max: max.as_u64(),
        even: true,
    }
}

impl Key {
    /// Every key, in the order of the example file.
    pub const ALL: [Key; 36] = [
        Key::StoreData,
        Key::StorePackSize,
        Key::StoreFrameSize,
        Key::StoreZstdLevel,
        Key::ChunkerMinSize,
        Key::ChunkerAvgSize,
        Key::ChunkerMaxSize,
        Key::ServerListen,
        Key::ServerReadOnly,
        Key::ServerMaxManifestSize,
        Key::ServerUploadExpiry,
        Key::ServerIngestJobs,
        Key::ServerMetricsListen,
        Key::ServerLogFormat,
        Key::CacheBlobCacheSize,
        Key::CacheIndexCacheSize,
        Key::CacheMaterialize,
        Key::LayersMaxDecompressedRatio,
        Key::LayersMaxDecompressedSize,
        Key::GcKeepTagHistory,
        Key::GcUploadGrace,
        Key::GcKeepAppVersions,
        Key::TlsCert,
        Key::TlsKey,
        Key::AuthHtpasswd,
        Key::AuthAnonymousPull,
        Key::AuthAnonymousWrite,
        Key::AuthChallenge,
        Key::AuthTokenLifetime,
        Key::LimitsMaxBlobSize,
        Key::LimitsMaxUploadSessions,
        Key::LimitsMaxUploadSessionsPerClient,
        Key::LimitsMaxConnections,
        Key::LimitsHeaderTimeout,
        Key::LimitsBodyTimeout,
        Key::LimitsShutdownTimeout,
    ];

    /// The section and the field name within it, e.g. `("store", "zstd_level")`.
    pub const fn path(self) -> (&'static str, &'static str) {
        match self {
            Key::StoreData => ("store", "data"),
            Key::StorePackSize => ("store", "pack_size"),
            Key::StoreFrameSize => ("store", "frame_size"),
            Key::StoreZstdLevel => ("store", "zstd_level"),
            Key::ChunkerMinSize => ("chunker", "min_size"),
            Key::ChunkerAvgSize => ("chunker", "avg_size"),
            Key::ChunkerMaxSize => ("chunker", "max_size"),
            Key::ServerListen => ("server", "listen"),
            Key::ServerReadOnly => ("server", "read_only"),
            Key::ServerMaxManifestSize => ("server", "max_manifest_size"),
            Key::ServerUploadExpiry => ("server", "upload_expiry"),
            Key::ServerIngestJobs => ("server", "ingest_jobs"),
            Key::ServerMetricsListen => ("server", "metrics_listen"),
            Key::ServerLogFormat => ("server", "log_format"),
            Key::CacheBlobCacheSize => ("cache", "blob_cache_size"),
            Key::CacheIndexCacheSize => ("cache", "index_cache_size"),
            Key::CacheMaterialize => ("cache", "materialize"),
            Key::LayersMaxDecompressedRatio => ("layers", "max_decompressed_ratio"),
            Key::LayersMaxDecompressedSize => ("layers", "max_decompressed_size"),
            Key::GcKeepTagHistory => ("gc", "keep_tag_history"),
            Key::GcUploadGrace => ("gc", "upload_grace"),
            Key::GcKeepAppVersions => ("gc", "keep_app_versions"),
            Key::TlsCert => ("tls", "cert"),
            Key::TlsKey => ("tls", "key"),
            Key::AuthHtpasswd => ("auth", "htpasswd"),
            Key::AuthAnonymousPull => ("auth", "anonymous_pull"),
            Key::AuthAnonymousWrite => ("auth", "anonymous_write"),
            Key::AuthChallenge => ("auth", "challenge"),
            Key::AuthTokenLifetime => ("auth", "token_lifetime"),
            Key::LimitsMaxBlobSize => ("limits", "max_blob_size"),
            Key::LimitsMaxUploadSessions => ("limits", "max_upload_sessions"),
            Key::LimitsMaxUploadSessionsPerClient => ("limits", "max_upload_sessions_per_client"),
            Key::LimitsMaxConnections => ("limits", "max_connections"),
            Key::LimitsHeaderTimeout => ("limits", "header_timeout"),
            Key::LimitsBodyTimeout => ("limits", "body_timeout"),
            Key::LimitsShutdownTimeout => ("limits", "shutdown_timeout"),
        }
    }

    /// The dotted name used in the file and in messages, e.g. `store.zstd_level`.
    pub const fn name(self) -> &'static str {
        match self {
            Key::StoreData => "store.data",
            Key::StorePackSize => "store.pack_size",
            Key::StoreFrameSize => "store.frame_size",
            Key::StoreZstdLevel => "store.zstd_level",
            Key::ChunkerMinSize => "chunker.min_size",
            Key::ChunkerAvgSize => "chunker.avg_size",
            Key::ChunkerMaxSize => "chunker.max_size",
            Key::ServerListen => "server.listen",
            Key::ServerReadOnly => "server.read_only",
            Key::ServerMaxManifestSize => "server.max_manifest_size",
            Key::ServerUploadExpiry => "server.upload_expiry",
            Key::ServerIngestJobs => "server.ingest_jobs",
            Key::ServerMetricsListen => "server.metrics_listen",
            Key::ServerLogFormat => "server.log_format",
            Key::CacheBlobCacheSize => "cache.blob_cache_size",
            Key::CacheIndexCacheSize => "cache.index_cache_size",
            Key::CacheMaterialize => "cache.materialize",
            Key::LayersMaxDecompressedRatio => "layers.max_decompressed_ratio",
            Key::LayersMaxDecompressedSize => "layers.max_decompressed_size",
            Key::GcKeepTagHistory => "gc.keep_tag_history",
            Key::GcUploadGrace => "gc.upload_grace",
            Key::GcKeepAppVersions => "gc.keep_app_versions",
            Key::TlsCert => "tls.cert",
            Key::TlsKey => "tls.key",
            Key::AuthHtpasswd => "auth.htpasswd",
            Key::AuthAnonymousPull => "auth.anonymous_pull",
            Key::AuthAnonymousWrite => "auth.anonymous_write",
            Key::AuthChallenge => "auth.challenge",
            Key::AuthTokenLifetime => "auth.token_lifetime",
            Key::LimitsMaxBlobSize => "limits.max_blob_size",
            Key::LimitsMaxUploadSessions => "limits.max_upload_sessions",
            Key::LimitsMaxUploadSessionsPerClient => "limits.max_upload_sessions_per_client",
            Key::LimitsMaxConnections => "limits.max_connections",
            Key::LimitsHeaderTimeout => "limits.header_timeout",
            Key::LimitsBodyTimeout => "limits.body_timeout",
            Key::LimitsShutdownTimeout => "limits.shutdown_timeout",
        }
    }

    /// The environment variable that overrides this key, e.g. `AIRLOCK_ZSTD_LEVEL`.
    pub const fn env_var(self) -> &'static str {
        match self {
            Key::StoreData => "AIRLOCK_DATA",
            Key::StorePackSize => "AIRLOCK_PACK_SIZE",
            Key::StoreFrameSize => "AIRLOCK_FRAME_SIZE",
            Key::StoreZstdLevel => "AIRLOCK_ZSTD_LEVEL",
            Key::ChunkerMinSize => "AIRLOCK_CHUNKER_MIN_SIZE",
            Key::ChunkerAvgSize => "AIRLOCK_CHUNKER_AVG_SIZE",
            Key::ChunkerMaxSize => "AIRLOCK_CHUNKER_MAX_SIZE",
            Key::ServerListen => "AIRLOCK_LISTEN",
            Key::ServerReadOnly => "AIRLOCK_READ_ONLY",
            Key::ServerMaxManifestSize => "AIRLOCK_MAX_MANIFEST_SIZE",
            Key::ServerUploadExpiry => "AIRLOCK_UPLOAD_EXPIRY",
            Key::ServerIngestJobs => "AIRLOCK_INGEST_JOBS",
            Key::ServerMetricsListen => "AIRLOCK_METRICS_LISTEN",
            Key::ServerLogFormat => "AIRLOCK_LOG_FORMAT",
            Key::CacheBlobCacheSize => "AIRLOCK_BLOB_CACHE_SIZE",
            Key::CacheIndexCacheSize => "AIRLOCK_INDEX_CACHE_SIZE",
            Key::CacheMaterialize => "AIRLOCK_CACHE_MATERIALIZE",
            Key::LayersMaxDecompressedRatio => "AIRLOCK_MAX_DECOMPRESSED_RATIO",
            Key::LayersMaxDecompressedSize => "AIRLOCK_MAX_DECOMPRESSED_SIZE",
            Key::GcKeepTagHistory => "AIRLOCK_KEEP_TAG_HISTORY",
            Key::GcUploadGrace => "AIRLOCK_UPLOAD_GRACE",
            Key::GcKeepAppVersions => "AIRLOCK_KEEP_APP_VERSIONS",
            Key::TlsCert => "AIRLOCK_TLS_CERT",
            Key::TlsKey => "AIRLOCK_TLS_KEY",
            Key::AuthHtpasswd => "AIRLOCK_HTPASSWD",
            Key::AuthAnonymousPull => "AIRLOCK_ANONYMOUS_PULL",
            Key::AuthAnonymousWrite => "AIRLOCK_ANONYMOUS_WRITE",
            Key::AuthChallenge => "AIRLOCK_AUTH_CHALLENGE",
            Key::AuthTokenLifetime => "AIRLOCK_TOKEN_LIFETIME",
            Key::LimitsMaxBlobSize => "AIRLOCK_MAX_BLOB_SIZE",
            Key::LimitsMaxUploadSessions => "AIRLOCK_MAX_UPLOAD_SESSIONS",
            Key::LimitsMaxUploadSessionsPerClient => "AIRLOCK_MAX_UPLOAD_SESSIONS_PER_CLIENT",
            Key::LimitsMaxConnections => "AIRLOCK_MAX_CONNECTIONS",
            Key::LimitsHeaderTimeout => "AIRLOCK_HEADER_TIMEOUT",
            Key::LimitsBodyTimeout => "AIRLOCK_BODY_TIMEOUT",
            Key::LimitsShutdownTimeout => "AIRLOCK_SHUTDOWN_TIMEOUT",
        }
    }

    /// Whether the key is a store format parameter: recorded in a store when it is created and
    /// taking precedence over the config on later opens, so an explicit conflicting setting must
    /// be reported rather than applied.
    pub const fn is_format(self) -> bool {
        matches!(
            self,
            Key::ChunkerMinSize | Key::ChunkerAvgSize | Key::ChunkerMaxSize
        )
    }

    /// The key named `name` (dotted, e.g. `server.listen`), if there is one.
    pub fn from_name(name: &str) -> Option<Key> {
        Key::ALL.into_iter().find(|key| key.name() == name)
    }

    /// What values the key accepts, in words, as error messages quote it.
    pub fn allowed(self) -> String {
        match self.kind() {
            Kind::Path => "a path, as a string".to_owned(),
            Kind::OptionalPath => "a path, as a string, or \"\" for none".to_owned(),
            Kind::Bytes { min, max, even } => {
                let range = if max == u64::MAX {
                    "any size".to_owned()
                } else {
                    format!(
                        "a size from {} to {}",
                        ByteSize::new(min),
                        ByteSize::new(max)
                    )
                };
                let even = if even {
                    ", an even number of bytes"
                } else {
                    ""
                };
                format!("{range}{even}, as a number of bytes or a string such as \"64MiB\"")
            }
            Kind::Integer { min, max } => format!("an integer from {min} to {max}"),
            Kind::Bool => "true or false".to_owned(),
            Kind::SocketAddr => {
                "an IP address and port such as \"127.0.0.1:5000\" or \"[::]:5000\"".to_owned()
            }
            Kind::OptionalSocketAddr => {
                "an IP address and port such as \"127.0.0.1:9100\", or \"\" \
                                         for none"
                    .to_owned()
            }
            Kind::Duration { min, max } => format!(
                "a duration from {} to {}, as a string such as \"90s\", \"30m\", \"24h\" or \"7d\"",
                format_duration(min),
                format_duration(max)
            ),
            Kind::Choice(words) => {
                let quoted: Vec<String> = words.iter().map(|w| format!("\"{w}\"")).collect();
                format!("one of {}", quoted.join(", "))
            }
        }
    }

    pub(crate) const fn kind(self) -> Kind {
        match self {
            Key::StoreData => Kind::Path,
            Key::StorePackSize => bytes(ByteSize::mib(1), ByteSize::gib(4)),
            Key::StoreFrameSize => bytes(ByteSize::kib(256), ByteSize::mib(8)),
            Key::StoreZstdLevel => Kind::Integer { min: 1, max: 22 },
            // FastCDC v2020's bounds, as airlock-chunker's `ChunkerParams::new` enforces them.
            Key::ChunkerMinSize => chunk_bytes(ByteSize::new(64), ByteSize::mib(1)),
            Key::ChunkerAvgSize => chunk_bytes(ByteSize::new(256), ByteSize::mib(4)),
            Key::ChunkerMaxSize => chunk_bytes(ByteSize::kib(1), ByteSize::mib(16)),
            Key::ServerListen => Kind::SocketAddr,
            Key::ServerReadOnly => Kind::Bool,
            Key::ServerMaxManifestSize => bytes(ByteSize::kib(1), ByteSize::mib(64)),
            Key::ServerUploadExpiry => Kind::Duration {
                min: secs(MINUTE),
                max: secs(30 * DAY),
            },
            Key::ServerIngestJobs => Kind::Integer { min: 1, max: 64 },
            Key::ServerMetricsListen => Kind::OptionalSocketAddr,
            Key::ServerLogFormat => Kind::Choice(LogFormat::WORDS),
            Key::CacheBlobCacheSize => bytes(ByteSize::new(0), ByteSize::new(u64::MAX)),
            Key::CacheIndexCacheSize => bytes(ByteSize::mib(1), ByteSize::gib(64)),
            Key::CacheMaterialize => Kind::Choice(Materialize::WORDS),
            Key::LayersMaxDecompressedRatio => Kind::Integer {
                min: 1,
                max: 100_000,
            },
            Key::LayersMaxDecompressedSize => bytes(ByteSize::mib(1), ByteSize::tib(16)),
            Key::GcKeepTagHistory => Kind::Duration {
                min: secs(0),
                max: secs(3650 * DAY),
            },
            Key::GcUploadGrace => Kind::Duration {
                min: secs(MINUTE),
                max: secs(30 * DAY),
            },
            Key::GcKeepAppVersions => Kind::Integer {
                min: 1,
                max: 100_000,
            },
            Key::TlsCert | Key::TlsKey | Key::AuthHtpasswd => Kind::OptionalPath,
            Key::AuthAnonymousPull | Key::AuthAnonymousWrite => Kind::Bool,
            Key::AuthChallenge => Kind::Choice(CHALLENGES),
            Key::AuthTokenLifetime => Kind::Duration {
                min: secs(MINUTE),
                max: secs(DAY),
            },
            Key::LimitsMaxBlobSize => bytes(ByteSize::mib(1), ByteSize::tib(16)),
            Key::LimitsMaxUploadSessions | Key::LimitsMaxUploadSessionsPerClient => Kind::Integer {
                min: 1,
                max: 100_000,
            },
            Key::LimitsMaxConnections => Kind::Integer {
                min: 1,
                max: 1_000_000,
            },
            Key::LimitsHeaderTimeout => Kind::Duration {
                min: secs(1),
                max: secs(10 * MINUTE),
            },
            Key::LimitsBodyTimeout => Kind::Duration {
                min: secs(1),
                max: secs(HOUR),
            },
            Key::LimitsShutdownTimeout => Kind::Duration {
                min: secs(0),
                max: secs(HOUR),
            },
        }
    }

    /// The fields of `section` in file order; empty for an unknown section.
    pub(crate) fn fields_of(section: &str) -> Vec<&'static str> {
        Key::ALL
            .into_iter()
            .filter(|key| key.path().0 == section)
            .map(|key| key.path().1)
            .collect()
    }

    /// The key for `field` in `section`.
    pub(crate) fn find(section: &str, field: &str) -> Option<Key> {
        Key::ALL
            .into_iter()
            .find(|key| key.path() == (section, field))
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Key {
    type Err = Error;

    fn from_str(name: &str) -> Result<Key, Error> {
        Key::from_name(name).ok_or_else(|| Error::UnknownKeyName {
            name: name.to_owned(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_variant_once_in_declaration_order() {
        for (i, key) in Key::ALL.into_iter().enumerate() {
            assert_eq!(key as usize, i, "{key}");
        }
        assert_eq!(Key::ALL.len(), Key::LimitsShutdownTimeout as usize + 1);
    }

    #[test]
    fn names_paths_and_env_vars_agree() {
        let mut envs = std::collections::BTreeSet::new();
        for key in Key::ALL {
            let (section, field) = key.path();
            assert_eq!(key.name(), format!("{section}.{field}"));
            assert!(SECTIONS.contains(&section), "{key}");
            assert_eq!(Key::find(section, field), Some(key));
            assert_eq!(key.name().parse::<Key>().unwrap(), key);
            assert!(key.env_var().starts_with("AIRLOCK_"));
            assert!(envs.insert(key.env_var()), "duplicate {}", key.env_var());
        }
        for section in SECTIONS {
            assert!(!Key::fields_of(section).is_empty(), "{section} has no keys");
        }
        assert!(Key::fields_of("nope").is_empty());
        assert!("store.nope".parse::<Key>().is_err());
    }

    #[test]
    fn allowed_names_ranges() {
        assert_eq!(Key::StoreZstdLevel.allowed(), "an integer from 1 to 22");
        assert!(
            Key::StorePackSize
                .allowed()
                .starts_with("a size from 1MiB to 4GiB,")
        );
        assert!(Key::ChunkerMinSize.allowed().contains("even"));
        assert!(
            Key::GcUploadGrace
                .allowed()
                .starts_with("a duration from 1m to 30d")
        );
        assert_eq!(
            Key::CacheMaterialize.allowed(),
            "one of \"import\", \"pull\", \"never\""
        );
    }
}
