//! What one client or request may take: the sizes, counts and times of [`Limits`], the
//! request-body wrapper that fails a stalled upload, and the count of upload sessions per
//! client address.
//!
//! A slow client must never hold a blocking thread or a session lock for long: a request body
//! that delivers less than [`BODY_PROGRESS_BYTES`] within [`Limits::body_timeout`] fails with
//! an error, which the body pump forwards to the blocking work reading it, which ends and
//! releases the session. The connection side (header timeout, stalled writes, the connection
//! cap) is `accept`'s.

use std::{
    collections::HashMap,
    fmt,
    future::Future,
    net::IpAddr,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use axum::http::{HeaderValue, header};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

use crate::{
    error::{ErrorCode, RegistryError},
    upload_id::UploadId,
};

/// Default [`Limits::max_blob_bytes`]: 32 GiB. The largest real layers (CUDA and ML framework
/// images) reach 10-20 GiB; twice that still stops a runaway client long before a disk fills.
pub const DEFAULT_MAX_BLOB_BYTES: u64 = 32 << 30;

/// Bytes a request body must deliver within each [`Limits::body_timeout`] (about 270 B/s at
/// the default 60 s); less is a stall, not a slow link.
pub const BODY_PROGRESS_BYTES: u64 = 16 * 1024;

/// Seconds a client told TOOMANYREQUESTS is asked to wait (`Retry-After`).
const RETRY_AFTER_SECS: &str = "10";

/// What one client or request may take; [`Default`] is what a site can live with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest blob accepted on push; larger is SIZE_INVALID with nothing stored.
    pub max_blob_bytes: u64,
    /// Upload sessions open at once, all clients together; more get 429 TOOMANYREQUESTS.
    pub max_upload_sessions: usize,
    /// Upload sessions open at once from one client address.
    pub max_upload_sessions_per_client: usize,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Time to send a request's headers or finish a TLS handshake; an idle keep-alive
    /// connection is closed after it too.
    pub header_timeout: Duration,
    /// A request body delivering less than [`BODY_PROGRESS_BYTES`] in this time, or a
    /// response the client does not take for this long, is dropped.
    pub body_timeout: Duration,
    /// How long a stopping server waits for requests in flight.
    pub shutdown_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_blob_bytes: DEFAULT_MAX_BLOB_BYTES,
            max_upload_sessions: 256,
            max_upload_sessions_per_client: 16,
            max_connections: 1024,
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The error a stalled request body ends with.
#[derive(Debug)]
pub(crate) struct BodyStalled {
    timeout: Duration,
}

impl fmt::Display for BodyStalled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the request body delivered less than {BODY_PROGRESS_BYTES} bytes in {:?}",
            self.timeout
        )
    }
}

impl std::error::Error for BodyStalled {}

/// A request body that fails once it has delivered less than [`BODY_PROGRESS_BYTES`] for
/// `timeout` while its reader waits. Time spent before the first read, or while nobody reads,
/// does not count: the handler may wait for a session lock with the body's bytes buffered.
#[derive(Debug)]
pub(crate) struct IdleBody<B> {
    inner: B,
    timeout: Duration,
    deadline: Option<Pin<Box<Sleep>>>,
    progress: u64,
}

impl<B> IdleBody<B> {
    pub(crate) fn new(inner: B, timeout: Duration) -> Self {
        IdleBody {
            inner,
            timeout,
            deadline: None,
            progress: 0,
        }
    }
}

impl<B> Body for IdleBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.progress += data.len() as u64;
                    if this.progress >= BODY_PROGRESS_BYTES {
                        this.progress = 0;
                        this.deadline = None;
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let timeout = this.timeout;
                let deadline = this
                    .deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        tracing::info!("request body stalled for {timeout:?}: dropping it");
                        Poll::Ready(Some(Err(Box::new(BodyStalled { timeout }))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Upload sessions per client address, so one client cannot take every session. Sessions
/// started by a request count from the moment it is admitted (a reservation) until the session
/// closes, expires or the request fails to open one.
#[derive(Debug, Default)]
pub(crate) struct SessionQuota {
    inner: Arc<Mutex<Counts>>,
}

#[derive(Debug, Default)]
struct Counts {
    pending: usize,
    clients: HashMap<IpAddr, Client>,
}

#[derive(Debug, Default)]
struct Client {
    open: Vec<UploadId>,
    pending: usize,
}

/// A session slot held while a request opens a session; released when dropped.
#[derive(Debug)]
pub(crate) struct Reservation {
    counts: Arc<Mutex<Counts>>,
    client: Option<IpAddr>,
}

impl SessionQuota {
    /// Admits one more session for `client`, or answers TOOMANYREQUESTS. `open` is the number
    /// of sessions open now; `is_open` tells whether a session counted for a client still is.
    pub(crate) fn reserve(
        &self,
        client: Option<IpAddr>,
        limits: &Limits,
        open: usize,
        is_open: impl Fn(&UploadId) -> bool,
    ) -> Result<Reservation, RegistryError> {
        let mut counts = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if open + counts.pending >= limits.max_upload_sessions {
            return Err(too_many(format!(
                "{} upload sessions are open, the most this registry allows; finish or cancel \
                 some, or wait for idle ones to expire",
                limits.max_upload_sessions
            )));
        }
        if let Some(ip) = client {
            let mine = counts.clients.entry(ip).or_default();
            mine.open.retain(|id| is_open(id));
            if mine.open.len() + mine.pending >= limits.max_upload_sessions_per_client {
                return Err(too_many(format!(
                    "{ip} has {} upload sessions open, the most one client may have",
                    limits.max_upload_sessions_per_client
                )));
            }
            mine.pending += 1;
        }
        counts.pending += 1;
        Ok(Reservation {
            counts: self.inner.clone(),
            client,
        })
    }
}

impl Reservation {
    /// The request opened session `id`: it counts for the client until it closes.
    pub(crate) fn opened(self, id: UploadId) {
        if let Some(ip) = self.client {
            let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
            counts.clients.entry(ip).or_default().open.push(id);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.pending = counts.pending.saturating_sub(1);
        if let Some(ip) = self.client
            && let Some(mine) = counts.clients.get_mut(&ip)
        {
            mine.pending = mine.pending.saturating_sub(1);
            if mine.pending == 0 && mine.open.is_empty() {
                counts.clients.remove(&ip);
            }
        }
    }
}

fn too_many(message: String) -> RegistryError {
    RegistryError::new(ErrorCode::TooManyRequests, message).with_header(
        header::RETRY_AFTER,
        HeaderValue::from_static(RETRY_AFTER_SECS),
    )
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use http_body_util::{BodyExt, StreamBody};

    use super::*;

    fn limits(total: usize, per_client: usize) -> Limits {
        Limits {
            max_upload_sessions: total,
            max_upload_sessions_per_client: per_client,
            ..Limits::default()
        }
    }

    #[test]
    fn sessions_are_capped_in_all_and_per_client() {
        let quota = SessionQuota::default();
        let l = limits(3, 2);
        let a = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        let b = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
        let ids: Vec<UploadId> = (0..3).map(|_| UploadId::random()).collect();
        let open = |n: usize| {
            let first: Vec<UploadId> = ids[..n].to_vec();
            move |id: &UploadId| first.contains(id)
        };
        quota
            .reserve(a, &l, 0, open(0))
            .unwrap()
            .opened(ids[0].clone());
        let held = quota.reserve(a, &l, 1, open(1)).unwrap();
        let err = quota.reserve(a, &l, 1, open(1)).unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::TooManyRequests));
        assert!(err.message().contains("10.0.0.1"), "{}", err.message());
        assert!(err.headers().contains_key(header::RETRY_AFTER));
        held.opened(ids[1].clone());
        quota
            .reserve(b, &l, 2, open(2))
            .unwrap()
            .opened(ids[2].clone());
        let err = quota.reserve(b, &l, 3, open(3)).unwrap_err();
        assert!(
            err.message().contains("3 upload sessions are open"),
            "{err}"
        );
        // Closed sessions stop counting for their client.
        quota.reserve(a, &l, 1, open(0)).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_fails_and_a_flowing_one_does_not() {
        let piece = |n: usize| Ok::<_, std::io::Error>(Frame::data(Bytes::from(vec![0u8; n])));
        // Flowing: 20 KiB pieces a second apart.
        let flowing = futures_util::stream::unfold(0, move |i| async move {
            (i < 5).then_some(())?;
            tokio::time::sleep(Duration::from_secs(1)).await;
            Some((piece(20 * 1024), i + 1))
        });
        let body = IdleBody::new(Box::pin(StreamBody::new(flowing)), Duration::from_secs(2));
        assert_eq!(body.collect().await.unwrap().to_bytes().len(), 100 * 1024);
        // Trickling: one byte a second never adds up to progress.
        let trickle = futures_util::stream::unfold((), move |()| async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Some((piece(1), ()))
        });
        let body = IdleBody::new(Box::pin(StreamBody::new(trickle)), Duration::from_secs(5));
        let err = body.collect().await.unwrap_err();
        assert!(err.is::<BodyStalled>(), "{err}");
    }
}
