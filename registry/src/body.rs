//! Bridges between async HTTP bodies and the store's synchronous readers, in both directions,
//! with memory bounded by a few pieces whatever the blob's size.
//!
//! In: [`with_body_limited`] runs blocking work over a [`BodyReader`] while an async pump feeds it the
//! request body, checking its length against what the client declared. A body that fails, runs
//! short or runs long reaches the reader as an error, so the work never mistakes a truncated
//! upload for a complete one; the fault then decides the response (4xx), not the work's error.
//!
//! Out: [`blob_body`] reads a [`BlobReader`] on the blocking pool in [`PIECE_BYTES`] pieces into
//! a small channel that the response body drains; each piece's buffer comes back to be filled
//! again once it is sent.

use std::{
    io::{self, Read},
    sync::{Arc, Mutex},
    time::Duration,
};

use airlock_store::BlobReader;
use axum::body::Body;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::error::{ErrorCode, RegistryError};

/// Bytes per piece of a streamed blob response.
pub(crate) const PIECE_BYTES: usize = 256 * 1024;

/// Pieces buffered between a producer and a consumer, each way.
const CHANNEL_PIECES: usize = 4;

/// What went wrong with a request body, as the client's fault.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Fault {
    /// The body could not be read (the client disconnected mid-body, a broken encoding).
    Broken,
    /// More bytes than declared.
    Long { expected: u64 },
    /// Fewer bytes than declared.
    Short { expected: u64, received: u64 },
    /// More bytes than the blob size limit allows (issue 16).
    TooLarge { limit: u64 },
}

impl Fault {
    fn into_error(self) -> RegistryError {
        match self {
            Fault::Broken => RegistryError::new(
                ErrorCode::BlobUploadInvalid,
                "the request body ended before it was complete",
            ),
            Fault::Long { expected } => RegistryError::new(
                ErrorCode::SizeInvalid,
                format!("the request body is longer than the {expected} bytes declared"),
            ),
            Fault::Short { expected, received } => RegistryError::new(
                ErrorCode::SizeInvalid,
                format!("the request body has {received} bytes, {expected} were declared"),
            ),
            Fault::TooLarge { limit } => too_large(limit),
        }
    }
}

/// What the pump sends the reader. The end is explicit: a channel that closes without [`End`]
/// means the request was dropped mid-body, which must not read as a complete body.
///
/// [`End`]: Piece::End
#[derive(Debug)]
enum Piece {
    Data(Bytes),
    End,
    Fault(io::Error),
}

/// A blocking `Read` over a request body fed by [`with_body_limited`].
#[derive(Debug)]
pub(crate) struct BodyReader {
    rx: mpsc::Receiver<Piece>,
    piece: Bytes,
    ended: bool,
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.piece.is_empty() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Piece::Data(piece)) => self.piece = piece,
                Some(Piece::End) => self.ended = true,
                Some(Piece::Fault(e)) => return Err(e),
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "the request was dropped before its body ended",
                    ));
                }
            }
        }
        let n = buf.len().min(self.piece.len());
        buf[..n].copy_from_slice(&self.piece.split_to(n));
        Ok(n)
    }
}

/// SIZE_INVALID for a blob over the size limit.
fn too_large(limit: u64) -> RegistryError {
    RegistryError::new(
        ErrorCode::SizeInvalid,
        format!("the blob exceeds this registry's limit of {limit} bytes (limits.max_blob_size)"),
    )
}

/// Runs `work` on the blocking pool over the request `body`, which must hold exactly `expected`
/// bytes when that is known, and at most `limit` bytes: SIZE_INVALID before reading when
/// `expected` is larger, and as soon as the bytes received pass it (the work then sees a failed
/// read and stores nothing). A body fault wins over whatever `work` returned.
pub(crate) async fn with_body_limited<T, F>(
    body: Body,
    expected: Option<u64>,
    limit: u64,
    work: F,
) -> Result<T, RegistryError>
where
    T: Send + 'static,
    F: FnOnce(BodyReader) -> Result<T, RegistryError> + Send + 'static,
{
    if expected.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    let (tx, rx) = mpsc::channel(CHANNEL_PIECES);
    let fault = Arc::new(Mutex::new(None));
    let reader = BodyReader {
        rx,
        piece: Bytes::new(),
        ended: false,
    };
    let span = tracing::Span::current();
    let mut worker = tokio::task::spawn_blocking(move || span.in_scope(|| work(reader)));
    let pump = pump(body, expected, limit, tx, fault.clone());
    tokio::pin!(pump);
    let mut pumping = true;
    // Once the work is done the body is not needed: stop reading it.
    let result = loop {
        tokio::select! {
            done = &mut worker => break done,
            () = &mut pump, if pumping => pumping = false,
        }
    };
    let fault = fault.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(fault) = fault {
        return Err(fault.into_error());
    }
    result.map_err(RegistryError::internal)?
}

/// Sends the body's bytes to the reader, then its end; records and forwards any fault instead.
async fn pump(
    body: Body,
    expected: Option<u64>,
    limit: u64,
    tx: mpsc::Sender<Piece>,
    fault: Arc<Mutex<Option<Fault>>>,
) {
    let fail = |f: Fault| {
        let message = format!("request body: {f:?}");
        *fault.lock().unwrap_or_else(|p| p.into_inner()) = Some(f);
        Piece::Fault(io::Error::new(io::ErrorKind::InvalidData, message))
    };
    let mut stream = body.into_data_stream();
    let mut received = 0u64;
    while let Some(piece) = stream.next().await {
        let piece = match piece {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!("request body failed: {e}");
                let _ = tx.send(fail(Fault::Broken)).await;
                return;
            }
        };
        received = received.saturating_add(piece.len() as u64);
        if let Some(expected) = expected.filter(|&e| received > e) {
            let _ = tx.send(fail(Fault::Long { expected })).await;
            return;
        }
        if received > limit {
            let _ = tx.send(fail(Fault::TooLarge { limit })).await;
            return;
        }
        if tx.send(Piece::Data(piece)).await.is_err() {
            // The work stopped reading; its result decides.
            return;
        }
    }
    let last = match expected.filter(|&e| received < e) {
        Some(expected) => fail(Fault::Short { expected, received }),
        None => Piece::End,
    };
    let _ = tx.send(last).await;
}

/// A response body streaming `reader` from the blocking pool. A read failure is logged (in the
/// request's span) and aborts the body, so the client sees a truncated response, never wrong
/// bytes. The reader is this response's alone (a cache file, or a file a shared rebuild is
/// writing, or a rebuild of its own), so a slow client holds up nobody else; a client that
/// takes no piece for `stall` is dropped, so it never holds the blocking thread longer (issue
/// 16).
pub(crate) fn blob_body(reader: BlobReader, stall: Duration) -> Body {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(CHANNEL_PIECES);
    let span = tracing::Span::current();
    let runtime = tokio::runtime::Handle::current();
    let send = move |piece: io::Result<Bytes>| {
        let sent = runtime.block_on(tokio::time::timeout(stall, tx.send(piece)));
        match sent {
            Ok(Ok(())) => true,
            Ok(Err(_)) => false,
            Err(_) => {
                tracing::info!("the client took no data for {stall:?}: dropping the response");
                false
            }
        }
    };
    tokio::task::spawn_blocking(move || span.in_scope(|| produce(reader, send)));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|piece| (piece, rx))
    });
    Body::from_stream(stream)
}

/// A piece of a response, lent to the HTTP stack: its buffer goes back to the response's
/// producer once sent, so a response allocates (and zeroes) a few buffers, not one per piece.
struct Lent {
    buf: Vec<u8>,
    len: usize,
    back: std::sync::mpsc::Sender<Vec<u8>>,
}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        // The producer may be gone (the body ended): then the buffer is freed.
        let _ = self.back.send(std::mem::take(&mut self.buf));
    }
}

fn produce(mut reader: BlobReader, mut send: impl FnMut(io::Result<Bytes>) -> bool) {
    let (back, recycled) = std::sync::mpsc::channel::<Vec<u8>>();
    while !reader.is_empty() {
        let want = usize::try_from(reader.len()).map_or(PIECE_BYTES, |n| n.min(PIECE_BYTES));
        let mut buf = recycled.try_recv().unwrap_or_default();
        if buf.len() < want {
            buf.resize(want, 0);
        }
        let piece = match fill(&mut reader, &mut buf[..want]) {
            Ok(()) => Bytes::from_owner(Lent {
                buf,
                len: want,
                back: back.clone(),
            }),
            Err(e) => {
                let cause = airlock_store::unwrap_io(reader.digest(), e);
                tracing::error!(digest = %reader.digest(), "serving blob: {cause}");
                send(Err(io::Error::other("blob read failed")));
                return;
            }
        };
        if !send(Ok(piece)) {
            // The client went away or stalled.
            return;
        }
    }
}

/// Fills `buf` from `reader` (which holds at least that many bytes), retrying interrupts.
fn fill(reader: &mut BlobReader, buf: &mut [u8]) -> io::Result<()> {
    let mut at = 0;
    while at < buf.len() {
        match reader.read(&mut buf[at..]) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "blob ended early",
                ));
            }
            Ok(n) => at += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    fn chunks(pieces: Vec<io::Result<&'static [u8]>>) -> Body {
        let stream = futures_util::stream::iter(
            pieces
                .into_iter()
                .map(|p| p.map(Bytes::from_static))
                .collect::<Vec<_>>(),
        );
        Body::from_stream(stream)
    }

    async fn read_all(body: Body, expected: Option<u64>) -> Result<Vec<u8>, RegistryError> {
        with_body_limited(body, expected, u64::MAX, |mut r| {
            let mut out = Vec::new();
            r.read_to_end(&mut out).map_err(RegistryError::internal)?;
            Ok(out)
        })
        .await
    }

    #[tokio::test]
    async fn passes_bytes_through() {
        let body = chunks(vec![Ok(b"ab"), Ok(b""), Ok(b"cde")]);
        assert_eq!(read_all(body, Some(5)).await.expect("ok"), b"abcde");
        let body = chunks(vec![Ok(b"ab")]);
        assert_eq!(read_all(body, None).await.expect("ok"), b"ab");
    }

    #[tokio::test]
    async fn faults_are_client_errors() {
        let err = read_all(chunks(vec![Ok(b"abc")]), Some(2))
            .await
            .expect_err("long");
        assert_eq!(err.code(), Some(ErrorCode::SizeInvalid));
        let err = read_all(chunks(vec![Ok(b"abc")]), Some(4))
            .await
            .expect_err("short");
        assert_eq!(err.code(), Some(ErrorCode::SizeInvalid));
        let broken = chunks(vec![Ok(b"abc"), Err(io::Error::other("reset"))]);
        let err = read_all(broken, None).await.expect_err("broken");
        assert_eq!(err.code(), Some(ErrorCode::BlobUploadInvalid));
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn issue_16_bodies_over_the_limit_are_size_invalid() {
        let err = with_body_limited(chunks(vec![Ok(b"abc")]), Some(3), 2, |_| Ok(()))
            .await
            .expect_err("declared too large");
        assert_eq!(err.code(), Some(ErrorCode::SizeInvalid));
        let body = chunks(vec![Ok(b"ab"), Ok(b"cd")]);
        let err = with_body_limited(body, None, 3, |mut r| {
            let mut out = Vec::new();
            r.read_to_end(&mut out).map_err(RegistryError::internal)?;
            Ok(out)
        })
        .await
        .expect_err("streamed past the limit");
        assert_eq!(err.code(), Some(ErrorCode::SizeInvalid));
        assert!(err.message().contains("limit of 3 bytes"), "{err}");
    }

    #[test]
    fn a_dropped_request_is_not_a_complete_body() {
        let (tx, rx) = mpsc::channel(1);
        let mut reader = BodyReader {
            rx,
            piece: Bytes::new(),
            ended: false,
        };
        tx.try_send(Piece::Data(Bytes::from_static(b"ab")))
            .expect("room");
        drop(tx);
        let mut out = Vec::new();
        let err = reader.read_to_end(&mut out).expect_err("no end marker");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
        assert_eq!(out, b"ab");
    }

    #[tokio::test]
    async fn work_may_stop_early() {
        let body = chunks((0..64).map(|_| Ok(&b"abc"[..])).collect());
        let got = with_body_limited(body, None, u64::MAX, |mut r| {
            let mut one = [0u8; 1];
            r.read_exact(&mut one).map_err(RegistryError::internal)?;
            Ok(one[0])
        })
        .await
        .expect("early stop");
        assert_eq!(got, b'a');
    }
}
