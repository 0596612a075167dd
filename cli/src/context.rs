//! What every command needs: the effective configuration and a way to open the store.

use std::path::{Path, PathBuf};

use airlock_config::{Config, Key, Origin};
use airlock_store::{Access, Materialize, Store, StoreOptions};
use anyhow::{Context as _, Result};

/// The effective configuration and output mode of one invocation.
#[derive(Debug)]
pub struct Context {
    pub config: Config,
    pub data: PathBuf,
    pub json: bool,
    pub quiet: bool,
    pub verbose: u8,
    /// How log lines are written; set once logging starts.
    pub log_format: crate::output::LogFormat,
    /// The store a running server has open, when the command runs in it (`remote`).
    pub shared: Option<Store>,
    /// The running server's metrics, when the command runs in it.
    pub metrics: Option<airlock_registry::Metrics>,
    /// Who runs the command: the OS user of the process, or of the client that handed it to
    /// the running server (recorded in application histories).
    pub user: String,
}

impl Context {
    /// Loads the config file and environment; `--data` wins over both.
    pub fn new(
        data: Option<PathBuf>,
        config: Option<&Path>,
        json: bool,
        quiet: bool,
        verbose: u8,
    ) -> Result<Context> {
        let mut config = Config::load(config).context("loading configuration")?;
        if let Some(d) = &data {
            config
                .override_value(
                    Key::StoreData,
                    &d.to_string_lossy(),
                    Origin::CommandLine {
                        flag: "--data".into(),
                    },
                )
                .context("applying --data")?;
        }
        let data = config.store.data.clone();
        Ok(Context {
            config,
            data,
            json,
            quiet,
            verbose,
            log_format: crate::output::LogFormat::default(),
            shared: None,
            metrics: None,
            user: os_user(),
        })
    }

    /// The context of a command a client handed to the running server: the server's
    /// configuration and store, the client's output flags.
    pub fn in_server(
        shared: &crate::remote::Shared,
        json: bool,
        quiet: bool,
        verbose: u8,
        user: String,
    ) -> Context {
        Context {
            config: shared.config.clone(),
            data: shared.data.clone(),
            json,
            quiet,
            verbose,
            // Only `serve` reads it, and it never runs for a client.
            log_format: crate::output::LogFormat::default(),
            shared: Some(shared.store.clone()),
            metrics: Some(shared.metrics.clone()),
            user,
        }
    }

    /// Store options from the configuration.
    pub fn store_options(&self, access: Access) -> Result<StoreOptions> {
        let c = &self.config;
        let chunker = airlock_chunker_params(c)?;
        Ok(StoreOptions {
            access,
            chunker,
            zstd_level: c.store.zstd_level,
            pack_size: c.store.pack_size.as_u64(),
            frame_size: usize::try_from(c.store.frame_size.as_u64())
                .context("store.frame_size is too large")?,
            blob_cache_size: c.cache.blob_cache_size.as_u64(),
            materialize: match c.cache.materialize {
                airlock_config::Materialize::Pull => Materialize::Pull,
                airlock_config::Materialize::Never => Materialize::Never,
                _ => Materialize::Import,
            },
            max_decompressed_ratio: c.layers.max_decompressed_ratio,
            max_decompressed_size: c.layers.max_decompressed_size.as_u64(),
        })
    }

    /// Opens the store; a missing store is an error for read-only access. Explicit settings
    /// that conflict with the store's recorded format are reported, not applied.
    pub fn open_store(&self, access: Access) -> Result<Store> {
        if let Some(store) = &self.shared {
            if access == Access::ReadWrite && store.access() == Access::ReadOnly {
                anyhow::bail!(
                    "the running airlock serve has the store open read-only (serve --read-only): \
                     run it read-write, or stop it, to change the store"
                );
            }
            return Ok(store.clone());
        }
        let store = match Store::open(&self.data, self.store_options(access)?) {
            Ok(s) => s,
            Err(e @ airlock_store::Error::Locked { .. }) => {
                return Err(anyhow::Error::new(e).context(
                    "opening the store: one airlock process uses a store at a time; stop                      `airlock serve` (or the other command) on it first, then start it again",
                ));
            }
            Err(e) => return Err(anyhow::Error::new(e).context("opening the store")),
        };
        for conflict in store.format_conflicts() {
            let key = Key::from_name(conflict.key);
            if key.is_some_and(|k| self.config.is_explicit(k)) {
                crate::output::errln!(
                    "warning: {} = {} is ignored: the store at {} was created with {} (format \
                     parameters are fixed when a store is created)",
                    conflict.key,
                    conflict.requested,
                    self.data.display(),
                    conflict.stored
                );
            }
        }
        Ok(store)
    }

    /// Opens the store for a command that needs every blob's recipe (`export`, `diff`): the
    /// blobs `airlock serve` staged and has not ingested yet are all ingested first, with a
    /// progress bar, which takes a read-write open (issue 14); a store with none is opened
    /// read-only. A staged blob that cannot be ingested (its file is damaged) fails the command,
    /// naming it.
    pub fn open_store_ingested(&self) -> Result<Store> {
        let store = self.open_store(Access::ReadOnly)?;
        if store.staged_blobs()?.is_empty() {
            return Ok(store);
        }
        drop(store);
        let store = self.open_store(Access::ReadWrite)?;
        let staged = store.staged_blobs()?;
        let total: u64 = staged.iter().map(|b| b.size).sum();
        let pb = crate::output::byte_bar("ingesting staged blobs", total, self.json || self.quiet);
        for blob in &staged {
            store
                .ingest_blob(&blob.digest)
                .with_context(|| format!("ingesting staged blob {}", blob.digest))?;
            pb.inc(blob.size);
        }
        pb.finish_and_clear();
        if !self.json && !self.quiet {
            crate::output::errln!(
                "ingested {} staged blob(s) ({})",
                staged.len(),
                crate::output::bytes(total)
            );
        }
        Ok(store)
    }
}

/// This process's OS user: `$USER` (else `$LOGNAME`), else the name `/etc/passwd` gives its
/// uid, else `uid N`.
pub fn os_user() -> String {
    for var in ["USER", "LOGNAME"] {
        if let Ok(u) = std::env::var(var)
            && !u.is_empty()
        {
            return u;
        }
    }
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next().map(str::to_owned))
        });
    let Some(uid) = uid else {
        return "unknown user".into();
    };
    let name = std::fs::read_to_string("/etc/passwd").ok().and_then(|p| {
        p.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[2] == uid).then(|| f[0].to_owned())
        })
    });
    name.unwrap_or_else(|| format!("uid {uid}"))
}

fn airlock_chunker_params(c: &Config) -> Result<airlock_store::ChunkerParams> {
    let size = |v: airlock_config::ByteSize, key: &str| -> Result<u32> {
        u32::try_from(v.as_u64()).with_context(|| format!("{key} is too large"))
    };
    airlock_store::ChunkerParams::new(
        size(c.chunker.min_size, "chunker.min_size")?,
        size(c.chunker.avg_size, "chunker.avg_size")?,
        size(c.chunker.max_size, "chunker.max_size")?,
    )
    .context("chunker settings")
}
