//! Splitting a gzip stream, as it streams in, into its decompressed payload plus the raw
//! framing and preflate-rs correction data that rebuild it byte for byte.
//!
//! [`GzipSplitter`] is a push parser: feed it the compressed bytes in any slices, and it emits
//! [`Event`]s in order: `Raw` for gzip headers, trailers and bytes after the last member,
//! `Plain` for decompressed payload, and `Step` for each preflate-rs step (the payload bytes it
//! covered and the compressed bytes it rebuilds). Each deflate stream is handed to preflate-rs
//! in slices of [`SLICE_BYTES`] with its plain-text limit at [`PLAIN_LIMIT_BYTES`], so memory
//! stays bounded (tens of MB) whatever the layer's size. Every step is verified: a
//! [`Rebuilder`] on its own thread (in parallel with the split, at most [`VERIFY_DEPTH`] steps
//! behind) recompresses it from the emitted payload and correction data, and the result must
//! equal the input bytes the step consumed. Raw events are the input bytes themselves, so a
//! splitter that finishes has proven that its events rebuild the input exactly.
//!
//! Anything preflate-rs cannot predict, a rebuild that differs, damaged framing, a member too
//! large for preflate-rs's 32-bit positions, or a decompression bomb stops the split with an
//! [`OpaqueReason`]; the caller then keeps the compressed bytes as they are. preflate-rs is
//! also kept from panicking the process: a panic inside it counts as an unsupported encoder.
//! (preflate-rs 0.7.6 `println!`s when a match is missing from the hash chain it models, as
//! when an encoder changes parameters mid-stream: a `tried to match` line, the hash, and one
//! ` dist = N` line per chain entry walked; then it returns MatchNotFound, here an unsupported
//! encoder, or panics on its dictionary assertion. Stable Rust cannot silence a library's
//! stdout short of redirecting fd 1: a CLI's stdout may get these lines until preflate-rs
//! drops them.)

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    sync::mpsc,
};

use preflate_rs::{ExitCode, PreflateConfig, PreflateStreamProcessor, RecreateStreamProcessor};

use crate::{
    gzip_frame::{MAX_HEADER_BYTES, State, emit, header_len, step_between_members},
    layer::OpaqueReason,
};

/// Compressed bytes handed to preflate-rs per step.
pub(crate) const SLICE_BYTES: usize = 2 * 1024 * 1024;
/// Steps the verifying rebuild may lag behind the split.
const VERIFY_DEPTH: usize = 2;
/// Most payload bytes one step may produce (a step ends early when it reaches this).
const PLAIN_LIMIT_BYTES: usize = 16 * 1024 * 1024;
/// A single deflate block larger than this, still undecoded, is not something to buffer.
const MAX_PENDING_BYTES: usize = 64 * 1024 * 1024;
/// preflate-rs counts positions in an i32 (wrapping to u32): stay clear of 2 GiB per member.
const MAX_MEMBER_PLAIN_BYTES: u64 = (i32::MAX as u64) - 2 * PLAIN_LIMIT_BYTES as u64;
/// The ratio limit applies to the compressed bytes seen, counted as at least this many.
const RATIO_FLOOR_BYTES: u64 = 1024 * 1024;

/// Limits on the decompressed payload (decompression bombs).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Most payload bytes.
    pub max_plain: u64,
    /// Most payload bytes per compressed byte.
    pub max_ratio: u32,
}

/// What the splitter found, in stream order.
#[derive(Debug)]
pub(crate) enum Event<'a> {
    /// Bytes kept as they are.
    Raw(&'a [u8]),
    /// Decompressed payload.
    Plain(Vec<u8>),
    /// A preflate-rs step: `plain` payload bytes (just emitted) rebuild `out` compressed bytes
    /// with `corrections`. The first step after a `Raw` starts a new deflate stream.
    Step {
        plain: u32,
        out: u32,
        corrections: Vec<u8>,
    },
}

/// Why splitting stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Halt {
    /// The stream cannot be kept as payload plus script.
    Opaque(OpaqueReason),
    /// The sink refused an event (its receiver went away).
    Stopped,
}

/// The push parser; see the module documentation.
pub(crate) struct GzipSplitter {
    state: State,
    pending: Vec<u8>,
    /// Retry preflate-rs only once `pending` holds this much (after a short read).
    need: usize,
    fed: u64,
    plain_total: u64,
    member_plain: u64,
    members: u64,
    tail: u64,
    proc: Option<PreflateStreamProcessor>,
    limits: Limits,
    verifier: Rebuilder,
    /// Input bytes of the steps submitted to `verifier` and not yet checked.
    unverified: std::collections::VecDeque<Vec<u8>>,
}

impl std::fmt::Debug for GzipSplitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GzipSplitter")
            .field("fed", &self.fed)
            .field("plain_total", &self.plain_total)
            .field("members", &self.members)
            .finish()
    }
}

impl GzipSplitter {
    /// A splitter expecting a gzip header first.
    pub(crate) fn new(limits: Limits) -> GzipSplitter {
        GzipSplitter {
            state: State::Header,
            pending: Vec::new(),
            need: 0,
            fed: 0,
            plain_total: 0,
            member_plain: 0,
            members: 0,
            tail: 0,
            proc: None,
            limits,
            verifier: Rebuilder::default(),
            unverified: std::collections::VecDeque::new(),
        }
    }

    /// Checks the oldest submitted step against the input bytes it consumed.
    fn check_oldest(&mut self) -> Result<(), Halt> {
        let Some(want) = self.unverified.pop_front() else {
            return Ok(());
        };
        match self.verifier.collect() {
            Ok(got) if got == want => Ok(()),
            _ => Err(Halt::Opaque(OpaqueReason::RebuildMismatch)),
        }
    }

    /// Checks every submitted step.
    fn check_all(&mut self) -> Result<(), Halt> {
        while !self.unverified.is_empty() {
            self.check_oldest()?;
        }
        Ok(())
    }

    /// Takes the next compressed bytes.
    pub(crate) fn feed(
        &mut self,
        data: &[u8],
        sink: &mut impl FnMut(Event<'_>) -> bool,
    ) -> Result<(), Halt> {
        self.fed += data.len() as u64;
        self.pending.extend_from_slice(data);
        self.run(false, sink)
    }

    /// The input ended: emits what is left, and fails unless the stream ended cleanly.
    pub(crate) fn finish(&mut self, sink: &mut impl FnMut(Event<'_>) -> bool) -> Result<(), Halt> {
        self.run(true, sink)?;
        self.check_all()?;
        match self.state {
            State::Between | State::Tail if self.pending.is_empty() => Ok(()),
            _ => Err(Halt::Opaque(OpaqueReason::GzipMalformed)),
        }
    }

    fn run(&mut self, eof: bool, sink: &mut impl FnMut(Event<'_>) -> bool) -> Result<(), Halt> {
        let malformed = Halt::Opaque(OpaqueReason::GzipMalformed);
        loop {
            match self.state {
                State::Header => match header_len(&self.pending) {
                    Ok(Some(n)) => {
                        // A new deflate stream: the verifier starts afresh too.
                        self.check_all()?;
                        self.verifier.reset();
                        emit(sink, Event::Raw(&self.pending[..n]))?;
                        self.pending.drain(..n);
                        self.state = State::Deflate;
                        self.member_plain = 0;
                        self.need = 0;
                        self.members += 1;
                        self.proc = Some(PreflateStreamProcessor::new(&PreflateConfig {
                            plain_text_limit: PLAIN_LIMIT_BYTES,
                            verify_compression: false,
                            ..PreflateConfig::default()
                        }));
                    }
                    Ok(None) if !eof && self.pending.len() < MAX_HEADER_BYTES => {
                        return Ok(());
                    }
                    _ => return Err(malformed),
                },
                State::Deflate => {
                    let enough = self.pending.len() >= SLICE_BYTES.max(self.need);
                    if !eof && !enough {
                        return Ok(());
                    }
                    if !self.step(eof, sink)? {
                        return Ok(());
                    }
                }
                State::Trailer | State::Between | State::Tail => {
                    let (state, pending, tail) =
                        (&mut self.state, &mut self.pending, &mut self.tail);
                    if !step_between_members(state, pending, tail, eof, sink)? {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// One preflate-rs step over `pending`. Returns whether it made progress.
    fn step(&mut self, eof: bool, sink: &mut impl FnMut(Event<'_>) -> bool) -> Result<bool, Halt> {
        let unsupported = Halt::Opaque(OpaqueReason::EncoderUnsupported);
        if self.member_plain + PLAIN_LIMIT_BYTES as u64 > MAX_MEMBER_PLAIN_BYTES {
            return Err(Halt::Opaque(OpaqueReason::MemberTooLarge));
        }
        let Some(proc) = self.proc.as_mut() else {
            return Err(unsupported);
        };
        let input = &self.pending[..self.pending.len().min(MAX_PENDING_BYTES)];
        let result = catch_unwind(AssertUnwindSafe(|| {
            let r = proc.decompress(input)?;
            let plain = proc.plain_text().text().to_vec();
            proc.shrink_to_dictionary();
            Ok::<_, preflate_rs::PreflateError>((
                r.compressed_size,
                r.corrections,
                plain,
                proc.is_done(),
            ))
        }));
        let (used, corrections, plain, done) = match result {
            Err(_panic) => {
                tracing::debug!("preflate-rs panicked on a deflate stream");
                return Err(unsupported);
            }
            Ok(Err(e)) if e.exit_code() == ExitCode::ShortRead => {
                if eof || self.pending.len() >= MAX_PENDING_BYTES {
                    return Err(Halt::Opaque(OpaqueReason::GzipMalformed));
                }
                self.need = self.pending.len() + SLICE_BYTES;
                return Ok(false);
            }
            Ok(Err(e)) if e.exit_code() == ExitCode::RoundtripMismatch => {
                return Err(Halt::Opaque(OpaqueReason::RebuildMismatch));
            }
            Ok(Err(e)) => {
                tracing::debug!("preflate-rs refused a deflate stream: {e:?}");
                return Err(unsupported);
            }
            Ok(Ok(r)) => r,
        };
        if used == 0 || used > input.len() {
            // No progress on what was given: at the end of the input, nothing more will come.
            if eof || self.pending.len() >= MAX_PENDING_BYTES {
                return Err(Halt::Opaque(OpaqueReason::GzipMalformed));
            }
            self.need = self.pending.len() + SLICE_BYTES;
            return Ok(false);
        }
        let plain_len = plain.len() as u64;
        self.member_plain += plain_len;
        self.plain_total += plain_len;
        let ratio_base = self.fed.max(RATIO_FLOOR_BYTES);
        if self.plain_total > self.limits.max_plain
            || self.plain_total > ratio_base.saturating_mul(u64::from(self.limits.max_ratio))
        {
            return Err(Halt::Opaque(OpaqueReason::DecompressionLimit));
        }
        let (plain32, out32) = match (u32::try_from(plain.len()), u32::try_from(used)) {
            (Ok(p), Ok(o)) => (p, o),
            _ => return Err(unsupported),
        };
        while self.unverified.len() >= VERIFY_DEPTH {
            self.check_oldest()?;
        }
        let submitted = self.verifier.submit(plain.clone(), corrections.clone());
        if submitted.is_err() {
            return Err(Halt::Opaque(OpaqueReason::RebuildMismatch));
        }
        self.unverified.push_back(self.pending[..used].to_vec());
        if !plain.is_empty() {
            emit(sink, Event::Plain(plain))?;
        }
        emit(
            sink,
            Event::Step {
                plain: plain32,
                out: out32,
                corrections,
            },
        )?;
        self.pending.drain(..used);
        self.need = 0;
        if done {
            self.proc = None;
            self.state = State::Trailer;
        }
        Ok(true)
    }
}

/// Rebuilds deflate streams step by step from payload and correction data, on a thread of
/// its own: preflate-rs's recompressor is not `Send`, and a blob reader must be (the registry
/// moves it between threads). The thread ends when the rebuilder is dropped.
#[derive(Debug, Default)]
pub(crate) struct Rebuilder {
    worker: Option<Worker>,
}

#[derive(Debug)]
struct Worker {
    jobs: mpsc::SyncSender<Job>,
    results: mpsc::Receiver<Result<Vec<u8>, String>>,
}

enum Job {
    Reset,
    Step(Vec<u8>, Vec<u8>),
}

impl Rebuilder {
    /// The next step starts a new deflate stream (after a raw op).
    pub(crate) fn reset(&mut self) {
        if let Some(w) = &self.worker {
            let _ = w.jobs.send(Job::Reset);
        }
    }

    /// Recompresses one step; the error says what preflate-rs refused.
    pub(crate) fn step(&mut self, plain: Vec<u8>, corrections: Vec<u8>) -> Result<Vec<u8>, String> {
        self.submit(plain, corrections)?;
        self.collect()
    }

    /// Hands a step to the rebuild thread; [`Rebuilder::collect`] returns results in order.
    /// The caller collects before it has more than two steps outstanding.
    pub(crate) fn submit(&mut self, plain: Vec<u8>, corrections: Vec<u8>) -> Result<(), String> {
        if self.worker.is_none() {
            let (jobs, job_rx) = mpsc::sync_channel::<Job>(2);
            let (result_tx, results) = mpsc::sync_channel(1);
            std::thread::Builder::new()
                .name("airlock-rebuild".into())
                .spawn(move || rebuild_jobs(job_rx, result_tx))
                .map_err(|e| format!("starting a rebuild thread: {e}"))?;
            self.worker = Some(Worker { jobs, results });
        }
        let Some(w) = &self.worker else {
            return Err("no rebuild thread".into());
        };
        w.jobs
            .send(Job::Step(plain, corrections))
            .map_err(|_| "the rebuild thread ended".to_string())
    }

    /// The output of the oldest step submitted and not yet collected.
    pub(crate) fn collect(&mut self) -> Result<Vec<u8>, String> {
        let Some(w) = &self.worker else {
            return Err("no rebuild thread".into());
        };
        w.results
            .recv()
            .map_err(|_| "the rebuild thread ended".to_string())?
    }
}

fn rebuild_jobs(jobs: mpsc::Receiver<Job>, results: mpsc::SyncSender<Result<Vec<u8>, String>>) {
    let mut proc: Option<RecreateStreamProcessor> = None;
    for job in jobs {
        let (plain, corrections) = match job {
            Job::Reset => {
                proc = None;
                continue;
            }
            Job::Step(p, c) => (p, c),
        };
        let p = proc.get_or_insert_with(RecreateStreamProcessor::new);
        let result = catch_unwind(AssertUnwindSafe(|| {
            p.recompress(&mut std::io::Cursor::new(&plain), &corrections)
        }));
        let sent = match result {
            Ok(Ok((out, _blocks))) => results.send(Ok(out)),
            Ok(Err(e)) => results.send(Err(format!("preflate-rs: {e:?}"))),
            Err(_panic) => {
                proc = None;
                results.send(Err("preflate-rs panicked on the correction data".into()))
            }
        };
        if sent.is_err() {
            return;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use std::io::Write;

    use super::*;

    const NO_LIMITS: Limits = Limits {
        max_plain: u64::MAX,
        max_ratio: u32::MAX,
    };

    /// Splits `gz` fed in `slice`-byte pieces; returns the payload and the rebuilt bytes.
    pub(crate) fn split_and_rebuild(
        gz: &[u8],
        slice: usize,
        limits: Limits,
    ) -> Result<(Vec<u8>, Vec<u8>), Halt> {
        let mut s = GzipSplitter::new(limits);
        let mut payload = Vec::new();
        let mut pending_plain = Vec::new();
        let mut rebuilt = Vec::new();
        let mut rb = Rebuilder::default();
        let mut sink = |e: Event<'_>| {
            match e {
                Event::Raw(b) => {
                    rb.reset();
                    rebuilt.extend_from_slice(b);
                }
                Event::Plain(p) => {
                    payload.extend_from_slice(&p);
                    pending_plain.extend_from_slice(&p);
                }
                Event::Step {
                    plain,
                    out,
                    corrections,
                } => {
                    assert_eq!(plain as usize, pending_plain.len());
                    let bytes = rb
                        .step(std::mem::take(&mut pending_plain), corrections)
                        .unwrap();
                    assert_eq!(bytes.len(), out as usize);
                    rebuilt.extend_from_slice(&bytes);
                }
            }
            true
        };
        for piece in gz.chunks(slice) {
            s.feed(piece, &mut sink)?;
        }
        s.finish(&mut sink)?;
        Ok((payload, rebuilt))
    }

    fn text(n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n);
        let mut x = 1u64;
        while v.len() < n {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let word = ["alpha ", "beta ", "gamma\n", "delta ", "epsilon "][(x >> 60) as usize % 5];
            v.extend_from_slice(word.as_bytes());
            v.extend_from_slice(&(x >> 40).to_le_bytes()[..(x >> 62) as usize]);
        }
        v.truncate(n);
        v
    }

    fn gzip(data: &[u8], level: u32) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn flate2_streams_split_and_rebuild_exactly_in_any_slices() {
        let data = text(5_000_000);
        for level in [1, 6, 9] {
            let gz = gzip(&data, level);
            for slice in [1000, 777_777, 1 << 22] {
                let (payload, rebuilt) = split_and_rebuild(&gz, slice, NO_LIMITS).unwrap();
                assert!(payload == data, "level {level} slice {slice}");
                assert!(rebuilt == gz, "level {level} slice {slice}");
            }
        }
    }

    #[test]
    fn members_headers_and_tail_are_kept() {
        let mut gz = gzip(b"first member", 6);
        gz.extend(gzip(&text(300_000), 6));
        // A header with FNAME, FCOMMENT and FEXTRA.
        let mut e = flate2::GzBuilder::new()
            .filename("layer.tar")
            .comment("made here")
            .extra(vec![1, 2, 3])
            .write(Vec::new(), flate2::Compression::new(3));
        e.write_all(b"third").unwrap();
        gz.extend(e.finish().unwrap());
        gz.extend([0u8; 512]);
        let (payload, rebuilt) = split_and_rebuild(&gz, 4096, NO_LIMITS).unwrap();
        assert!(rebuilt == gz);
        assert_eq!(payload.len(), 12 + 300_000 + 5);
    }

    #[test]
    fn damaged_and_truncated_streams_halt() {
        let gz = gzip(&text(100_000), 6);
        let malformed = Err(Halt::Opaque(OpaqueReason::GzipMalformed));
        assert_eq!(
            split_and_rebuild(&gz[..gz.len() - 3], 1 << 20, NO_LIMITS).map(|_| ()),
            malformed
        );
        assert_eq!(
            split_and_rebuild(&gz[..5], 1 << 20, NO_LIMITS).map(|_| ()),
            malformed
        );
        let mut bad = gz.clone();
        bad[3] = 0xff;
        assert_eq!(
            split_and_rebuild(&bad, 1 << 20, NO_LIMITS).map(|_| ()),
            malformed
        );
        let mut junk = gz.clone();
        junk.extend(vec![7u8; 2 * 1024 * 1024]);
        assert_eq!(
            split_and_rebuild(&junk, 1 << 20, NO_LIMITS).map(|_| ()),
            malformed
        );
    }

    #[test]
    fn bombs_halt_on_ratio_or_size() {
        let big = gzip(&text(8 << 20), 6);
        let ratio = Limits {
            max_plain: u64::MAX,
            max_ratio: 2,
        };
        let size = Limits {
            max_plain: 1 << 20,
            max_ratio: u32::MAX,
        };
        for limits in [ratio, size] {
            assert_eq!(
                split_and_rebuild(&big, 1 << 20, limits).map(|_| ()),
                Err(Halt::Opaque(OpaqueReason::DecompressionLimit))
            );
        }
        assert!(split_and_rebuild(&big, 1 << 20, NO_LIMITS).is_ok());
    }
}
