//! What every handler shares: the store, the registry's settings and the open upload sessions.
//!
//! The store is synchronous; handlers reach it only through [`AppState::blocking`], which runs a
//! closure on tokio's blocking pool so no store call ever stalls the async workers.

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use airlock_oci::MAX_MANIFEST_BYTES;
use airlock_store::Store;

use crate::{
    auth::Auth,
    error::RegistryError,
    limits::{Limits, SessionQuota},
    metrics::Metrics,
    uploads::Uploads,
};

/// How the registry serves: what the CLI's `airlock serve` fills in from flags and `airlock.toml`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Refuse every write (pushes, deletes, upload sessions) with 405 UNSUPPORTED: a site that
    /// receives content only by bundle import.
    pub read_only: bool,
    /// Largest manifest body accepted; larger pushes get 413.
    pub max_manifest_bytes: u64,
    /// An upload session idle for longer than this is forgotten and its data deleted.
    pub upload_expiry: Duration,
    /// What one client or request may take.
    pub limits: Limits,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            read_only: false,
            max_manifest_bytes: MAX_MANIFEST_BYTES,
            upload_expiry: DEFAULT_UPLOAD_EXPIRY,
            limits: Limits::default(),
        }
    }
}

/// Default [`RegistryConfig::upload_expiry`]: a day, long enough for a slow link to finish a
/// large layer and short enough that abandoned sessions do not pile up.
pub const DEFAULT_UPLOAD_EXPIRY: Duration = Duration::from_secs(24 * 3600);

const MIN_SWEEP_PERIOD: Duration = Duration::from_secs(1);
const MAX_SWEEP_PERIOD: Duration = Duration::from_secs(600);

/// The registry's shared state: cheap to clone, one per server. Holds a [`Store`] clone, so the
/// store's lock is released only when every clone (and every in-flight response) is gone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) store: Store,
    config: RegistryConfig,
    pub(crate) uploads: Uploads,
    auth: Auth,
    quota: SessionQuota,
    metrics: Metrics,
    /// Whether [`serve`](crate::serve) accepts requests: readiness.
    serving: AtomicBool,
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("store", &self.inner.store.root())
            .field("config", &self.inner.config)
            .field("uploads", &self.inner.uploads.len())
            .field("auth", &self.inner.auth.mode())
            .finish()
    }
}

impl AppState {
    /// Builds the state over an open store, recovering the upload sessions of a previous run
    /// (their data lives in `<store root>/uploads/<id>`) and dropping those idle for longer than
    /// [`RegistryConfig::upload_expiry`]. A read-only registry or store leaves sessions alone.
    /// Everyone may do everything ([`Auth::open`]); [`AppState::with_auth`] says otherwise.
    pub fn new(store: Store, config: RegistryConfig) -> Result<AppState, airlock_store::Error> {
        AppState::with_auth(store, config, Auth::open())
    }

    /// [`AppState::new`] with the accounts and access decisions of `auth`.
    pub fn with_auth(
        store: Store,
        config: RegistryConfig,
        auth: Auth,
    ) -> Result<AppState, airlock_store::Error> {
        let writable = !config.read_only && store.access() == airlock_store::Access::ReadWrite;
        let uploads = if writable {
            Uploads::recover(&store, config.upload_expiry)?
        } else {
            Uploads::disabled()
        };
        // The metrics read the state at each scrape through a weak reference: they never keep
        // the store open.
        let inner = Arc::new_cyclic(|me| Shared {
            store,
            config,
            uploads,
            auth,
            quota: SessionQuota::default(),
            metrics: Metrics::new(me.clone()),
            serving: AtomicBool::new(false),
        });
        Ok(AppState { inner })
    }

    /// The store served.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The settings served with.
    pub fn config(&self) -> &RegistryConfig {
        &self.inner.config
    }

    pub(crate) fn uploads(&self) -> &Uploads {
        &self.inner.uploads
    }

    /// Who may do what.
    pub fn auth(&self) -> &Auth {
        &self.inner.auth
    }

    pub(crate) fn quota(&self) -> &SessionQuota {
        &self.inner.quota
    }

    /// The registry's metrics: serve them with [`serve_metrics`](crate::serve_metrics); an
    /// import run inside the server reports its progress to them.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Whether the registry accepts requests (readiness).
    pub(crate) fn serving(&self) -> bool {
        self.inner.serving.load(Ordering::Relaxed)
    }

    pub(crate) fn set_serving(&self, serving: bool) {
        self.inner.serving.store(serving, Ordering::Relaxed);
    }

    /// Forgets expired upload sessions every quarter of the expiry (at least every 10 minutes),
    /// forever; [`serve`](crate::serve) runs it beside the server so that abandoned sessions go
    /// even when no new upload starts.
    pub(crate) async fn expire_uploads(self) {
        if !self.uploads().enabled() {
            return;
        }
        let period = (self.uploads().expiry() / 4).clamp(MIN_SWEEP_PERIOD, MAX_SWEEP_PERIOD);
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let swept = self.blocking(|s| {
                s.uploads().sweep(s.store());
                Ok(())
            });
            if let Err(e) = swept.await {
                tracing::warn!("expiring upload sessions: {e}");
            }
        }
    }

    /// Runs `work` on the blocking pool with the store and state; a panic in it becomes a 500.
    pub(crate) async fn blocking<T, F>(&self, work: F) -> Result<T, RegistryError>
    where
        T: Send + 'static,
        F: FnOnce(&AppState) -> Result<T, RegistryError> + Send + 'static,
    {
        let state = self.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(|| work(&state)))
            .await
            .map_err(RegistryError::internal)?
    }
}
