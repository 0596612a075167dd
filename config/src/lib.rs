//! The `airlock.toml` configuration: its format, built-in defaults, `AIRLOCK_*` environment
//! overrides and validation.
//!
//! A configuration comes from three layers, later ones winning: built-in defaults, the config
//! file (`--config PATH`, else `./airlock.toml` if present), and environment variables. Every key
//! is declared once, in [`Key`], with its section, its environment variable and its allowed
//! values; the file walker, the overrides, the error messages and the tests all read that
//! table. Unknown keys and bad values are refused, never ignored: an error names the file, the
//! dotted key, the line and column, and what is allowed. Each value remembers its [`Origin`],
//! so the CLI can show where a setting came from and tell an explicit setting from a default.
//! `config/airlock.example.toml` lists every key with its default and range; a test keeps it
//! true.
//!
//! This crate knows no runtime objects: no sockets, no store, no chunker. It validates chunker
//! sizes against the bounds the chunker enforces, but the chunker and hash a store was created
//! with are recorded in the store and win over the config; comparing them, and reporting an
//! explicit conflicting setting ([`Key::is_format`], [`Config::is_explicit`]), is the CLI's job.
//! Only `load` touches the filesystem or the process environment.
//!
//! # Overview
//! - [`Config`]: the whole configuration, in sections [`StoreConfig`], [`ChunkerConfig`],
//!   [`ServerConfig`] (with [`LogFormat`]), [`CacheConfig`] (with [`Materialize`]),
//!   [`LayersConfig`], [`GcConfig`], [`TlsConfig`], [`AuthConfig`], [`LimitsConfig`] with public
//!   fields, and the list sections `[groups]`, `[[access]]` ([`AccessRule`]) and `[trust]`
//!   ([`TrustConfig`]: the keys whose signed bundles an import accepts), which have no
//!   environment variables.
//! - [`Config::load`]: file discovery, environment overrides and validation in one call;
//!   [`Config::load_with`] takes the directory and the environment as arguments.
//! - [`Key`]: every key, its dotted name and environment variable; [`Value`], [`Origin`] and
//!   [`Setting`] describe a key's effective value generically.
//! - [`ByteSize`]: a size in bytes parsed from `67108864`, `"64MiB"` or `"700M"` (decimal:
//!   700,000,000), reused by the CLI for `--volume-size`.
//! - [`Error`]: what is wrong and where.
//!
//! ```
//! use std::{ffi::OsString, path::Path};
//! use airlock_config::{ByteSize, Config, Key, Origin};
//!
//! let text = "[store]\nzstd_level = 9\n\n[chunker]\navg_size = \"32KiB\"\n";
//! let config = Config::parse(text, Path::new("airlock.toml")).unwrap();
//! assert_eq!(config.store.zstd_level, 9);
//! assert_eq!(config.chunker.avg_size, ByteSize::kib(32));
//! assert!(config.is_explicit(Key::ChunkerAvgSize));
//! assert!(!config.is_explicit(Key::ChunkerMinSize));
//!
//! let err = Config::parse("[server]\nlisen = \"0.0.0.0:80\"\n", Path::new("airlock.toml"));
//! assert_eq!(
//!     err.unwrap_err().to_string(),
//!     "airlock.toml:2:1: unknown key `server.lisen`; allowed keys in [server]: listen, \
//!      read_only, max_manifest_size, upload_expiry, ingest_jobs, metrics_listen, log_format; \
//!      did you mean `server.listen`?"
//! );
//!
//! // Environment overrides win over the file and defaults.
//! let dir = Path::new("/nonexistent");
//! let env = |name: &str| (name == "AIRLOCK_READ_ONLY").then(|| OsString::from("true"));
//! let config = Config::load_with(None, dir, env).unwrap();
//! assert!(config.server.read_only);
//! assert_eq!(config.origin(Key::ServerReadOnly), &Origin::Env { var: "AIRLOCK_READ_ONLY" });
//! ```

mod access;
mod config;
mod error;
mod key;
mod load;
mod origin;
mod size;
mod trust;
mod value;

pub use crate::{
    access::{ACTIONS, AccessRule},
    config::{
        AuthConfig, CacheConfig, ChunkerConfig, Config, GcConfig, LayersConfig, LimitsConfig,
        LogFormat, Materialize, ServerConfig, StoreConfig, TlsConfig,
    },
    error::Error,
    key::{CHALLENGES, Key},
    load::CONFIG_FILE_NAME,
    origin::{Origin, Setting},
    size::ByteSize,
    trust::{KeySource, PUBLIC_KEY_CHARS, TrustConfig, TrustedKeyEntry},
    value::Value,
};
