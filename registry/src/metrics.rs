//! Prometheus metrics of one registry, in the Prometheus text format on a listener of their own
//! ([`serve_metrics`]).
//!
//! Requests are counted by the middleware under a [`RouteName`] (never a raw path) and their
//! status; response bytes as the body's frames go out. What the store and the upload sessions
//! know (blob cache, rebuilds, staged blobs, open sessions) is read when scraped, through a
//! weak reference to the state, so metrics never keep a store open. Import progress is set by
//! whoever runs an import in the server ([`Metrics::import_progress`]).

use std::{
    fmt, io,
    pin::Pin,
    sync::{Arc, Weak},
    task::{Context, Poll},
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use prometheus_client::{
    collector::Collector,
    encoding::{
        DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
        prometheus_text,
    },
    metrics::{
        counter::{ConstCounter, Counter},
        family::Family,
        gauge::{ConstGauge, Gauge},
    },
    registry::Registry,
};
use tokio::net::TcpListener;

use crate::{endpoint::RouteName, state::Shared};

/// The path metrics are served at.
pub const METRICS_PATH: &str = "/metrics";

/// Every metric name starts with this and an underscore.
const PREFIX: &str = "airlock";

/// A phase of a running import, the `phase` label of the import gauges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ImportPhase {
    /// Reading volumes: bytes of frames read and checked.
    Read,
    /// Rebuilding blobs from their chunks and checking their digests.
    Verify,
}

impl ImportPhase {
    /// The label value: `read` or `verify`.
    pub fn as_str(self) -> &'static str {
        match self {
            ImportPhase::Read => "read",
            ImportPhase::Verify => "verify",
        }
    }
}

/// The metrics of one registry: cheap to clone, shared by the middleware, the metrics listener
/// and whatever runs imports in the server. Get it from [`AppState::metrics`](crate::AppState::metrics).
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    response_bytes: Family<RouteLabels, Counter>,
    import_running: Gauge,
    import_done: Family<PhaseLabels, Gauge>,
    import_total: Family<PhaseLabels, Gauge>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: RouteName,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    endpoint: RouteName,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: ImportPhase,
}

impl EncodeLabelValue for RouteName {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

impl EncodeLabelValue for ImportPhase {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

impl Metrics {
    /// The metrics of a registry whose state is `state` (read at each scrape while it lives).
    pub(crate) fn new(state: Weak<Shared>) -> Metrics {
        let mut registry = Registry::with_prefix(PREFIX);
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by endpoint and status code",
            requests.clone(),
        );
        let response_bytes = Family::<RouteLabels, Counter>::default();
        registry.register(
            "http_response_bytes",
            "Bytes of response bodies sent, by endpoint",
            response_bytes.clone(),
        );
        let import_running = Gauge::default();
        registry.register(
            "import_running",
            "1 while an import runs in the server",
            import_running.clone(),
        );
        let import_done = Family::<PhaseLabels, Gauge>::default();
        registry.register(
            "import_done_bytes",
            "Bytes done in each phase of the running import",
            import_done.clone(),
        );
        let import_total = Family::<PhaseLabels, Gauge>::default();
        registry.register(
            "import_total_bytes",
            "Bytes to do in each phase of the running import",
            import_total.clone(),
        );
        registry.register_collector(Box::new(StateCollector { state }));
        Metrics {
            inner: Arc::new(Inner {
                registry,
                requests,
                response_bytes,
                import_running,
                import_done,
                import_total,
            }),
        }
    }

    /// Sets the progress of the running import in `phase`: `done` of `total` bytes. Call it as
    /// the import goes (each call replaces the phase's figures); [`Metrics::import_finished`]
    /// when it ends, whatever its outcome.
    pub fn import_progress(&self, phase: ImportPhase, done: u64, total: u64) {
        let labels = PhaseLabels { phase };
        self.inner.import_running.set(1);
        self.inner
            .import_done
            .get_or_create(&labels)
            .set(gauge(done));
        self.inner
            .import_total
            .get_or_create(&labels)
            .set(gauge(total));
    }

    /// The running import ended: its gauges go (no phase is listed) and `import_running` is 0.
    pub fn import_finished(&self) {
        self.inner.import_running.set(0);
        self.inner.import_done.clear();
        self.inner.import_total.clear();
    }

    /// Every metric in the Prometheus text format (version 0.0.4), as a scrape gets it. Reads
    /// the store's index for the staged blobs: call it off the async workers.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_text::encode(&mut out, &self.inner.registry) {
            tracing::warn!("encoding metrics: {e}");
        }
        out
    }

    /// Counts an answered request.
    pub(crate) fn count_request(&self, endpoint: RouteName, status: StatusCode) {
        let labels = RequestLabels {
            endpoint,
            status: status.as_u16(),
        };
        self.inner.requests.get_or_create(&labels).inc();
    }

    /// Wraps a response body so that its bytes are counted as they are sent.
    pub(crate) fn count_body(&self, endpoint: RouteName, body: Body) -> Body {
        let counter = self
            .inner
            .response_bytes
            .get_or_create(&RouteLabels { endpoint })
            .clone();
        Body::new(CountedBody {
            inner: body,
            counter,
        })
    }
}

fn gauge(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A response body that counts its data frames' bytes as they are polled (sent), keeping the
/// inner body's size hint so that Content-Length is what it would have been.
struct CountedBody {
    inner: Body,
    counter: Counter,
}

impl HttpBody for CountedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            this.counter.inc_by(data.len() as u64);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What the state knows, read at each scrape.
struct StateCollector {
    state: Weak<Shared>,
}

impl fmt::Debug for StateCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateCollector").finish_non_exhaustive()
    }
}

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let Some(state) = self.state.upgrade() else {
            return Ok(());
        };
        let store = &state.store;
        let cache = store.cache_stats();
        let counters = [
            (
                "blob_cache_hits",
                "Reads of rebuilt gzip blobs served from a blob cache file.",
                cache.hits,
            ),
            (
                "blob_cache_misses",
                "Reads of rebuilt gzip blobs not served from the cache: they followed a \
                 materialization or rebuilt on their own.",
                cache.followers + cache.direct_rebuilds,
            ),
            (
                "blob_cache_materializations",
                "Whole-blob rebuilds started to fill the blob cache.",
                cache.materializations,
            ),
            (
                "blob_cache_materialization_failures",
                "Materializations that failed.",
                cache.failures,
            ),
            (
                "blob_cache_filled_at_store",
                "Blob cache files written as blobs were stored (push, import).",
                cache.filled_at_store,
            ),
            (
                "blob_direct_rebuilds",
                "Reads of rebuilt gzip blobs that rebuilt on their own (the cache could not \
                 take the blob, or a range was far ahead of its materialization).",
                cache.direct_rebuilds,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        {
            let help = "Seconds spent rebuilding gzip blobs, by kind: materialization (into \
                        the cache) or direct (a read rebuilding on its own).";
            let mut family = encoder.encode_descriptor(
                "blob_rebuild_seconds",
                help,
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?;
            for (kind, time) in [
                ("materialization", cache.materialize_time),
                ("direct", cache.direct_rebuild_time),
            ] {
                let labels = vec![("kind", kind)];
                ConstCounter::new(time.as_secs_f64()).encode(family.encode_family(&labels)?)?;
            }
        }
        let staged = match store.staged_blobs() {
            Ok(blobs) => Some((blobs.len() as u64, blobs.iter().map(|b| b.size).sum())),
            Err(e) => {
                tracing::warn!("listing staged blobs for the metrics: {e}");
                None
            }
        };
        let mut gauges = vec![
            (
                "blob_materializations_running",
                "Materializations into the blob cache running or waiting now.",
                store.materializations_running() as u64,
            ),
            (
                "upload_sessions",
                "Upload sessions open.",
                state.uploads.len() as u64,
            ),
        ];
        if let Some((count, bytes)) = staged {
            gauges.push((
                "staged_blobs",
                "Pushed blobs acknowledged and awaiting the background ingest.",
                count,
            ));
            gauges.push(("staged_bytes", "Bytes of the staged blobs.", bytes));
        }
        for (name, help, value) in gauges {
            let g = ConstGauge::new(gauge(value));
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        Ok(())
    }
}

/// Serves [`METRICS_PATH`] on `listener` until `shutdown` completes: `airlock serve
/// --metrics-listen ADDR`. Anything else is a 404.
pub async fn serve_metrics(
    listener: TcpListener,
    metrics: Metrics,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, path = METRICS_PATH, "metrics listening");
    let app = Router::new()
        .route(METRICS_PATH, get(scrape))
        .with_state(metrics);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn scrape(State(metrics): State<Metrics>) -> Response {
    match tokio::task::spawn_blocking(move || metrics.encode()).await {
        Ok(text) => (
            [(header::CONTENT_TYPE, prometheus_text::CONTENT_TYPE)],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::error!("encoding metrics: {e}");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
