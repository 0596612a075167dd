//! The preflate-rs kind of splitter and rebuild: the only module that imports preflate-rs.
//!
//! [`PreflateSplitter`] hands each member's deflate stream to preflate-rs in slices of
//! [`SLICE_BYTES`] with its plain-text limit at [`PLAIN_LIMIT_BYTES`], so memory stays bounded
//! (tens of MB) whatever the stream's size; each slice preflate-rs takes is one step, with its
//! correction data as the step's reconstruction data. Anything preflate-rs cannot predict, a
//! member too large for its 32-bit positions, or a block too large to buffer ends the split.
//!
//! preflate-rs's correction data is tied to its minor version, [`PREFLATE_VERSION`]: whoever
//! stores the data records the version beside it. (preflate-rs 0.7.6 `println!`s when a match
//! is missing from the hash chain it models, as when an encoder changes parameters mid-stream:
//! a `tried to match` line, the hash, and one ` dist = N` line per chain entry walked; then it
//! returns MatchNotFound, here an unsupported encoder, or panics on its dictionary assertion,
//! caught like any splitter's panic. Stable Rust cannot silence a library's stdout short of
//! redirecting fd 1: a CLI's stdout may get these lines until preflate-rs drops them.)

use preflate_rs::{ExitCode, PreflateConfig, PreflateStreamProcessor, RecreateStreamProcessor};

use crate::{
    Error,
    member::{DeflateSplit, Input, Members, Progress, emit},
    rebuild::is_goflate,
    split::{Event, Limits, Sink, Splitter},
    verify::{StepRebuild, Verifier},
};

/// The preflate-rs version whose correction data this build writes and rebuilds (its minor
/// version: the data's encoding changes with it; the dependency is pinned `=0.7.6`).
pub const PREFLATE_VERSION: &str = "preflate-rs 0.7";

/// Compressed bytes handed to preflate-rs per step.
const SLICE_BYTES: usize = 2 * 1024 * 1024;
/// Most payload bytes one step may produce (a step ends early when it reaches this).
const PLAIN_LIMIT_BYTES: usize = 16 * 1024 * 1024;
/// A single deflate block larger than this, still undecoded, is not something to buffer.
const MAX_PENDING_BYTES: usize = 64 * 1024 * 1024;
/// preflate-rs counts positions in an i32 (wrapping to u32): stay clear of 2 GiB per member.
const MAX_MEMBER_PLAIN_BYTES: u64 = (i32::MAX as u64) - 2 * PLAIN_LIMIT_BYTES as u64;

/// Splits gzip streams of the zlib family (GNU gzip, pigz, zlib, zlib-ng, miniz) with
/// preflate-rs; see the module documentation.
#[derive(Debug)]
pub struct PreflateSplitter {
    members: Members<PreflateStage>,
    /// The header is pgzip's: an unsupported encoder is a Go one goflate did not match.
    go_header: bool,
}

impl PreflateSplitter {
    /// A splitter expecting a gzip header first.
    pub fn new(limits: Limits) -> PreflateSplitter {
        let stage = PreflateStage {
            need: 0,
            member_plain: 0,
            proc: None,
        };
        PreflateSplitter {
            members: Members::new(stage, limits, true),
            go_header: false,
        }
    }

    /// Emits a checkpoint at each member start about every `every` compressed bytes (0:
    /// none) instead of every [`crate::CHECKPOINT_OUT_BYTES`]; preflate-rs has no other.
    pub fn with_checkpoints(mut self, every: u64) -> PreflateSplitter {
        self.members.set_checkpoints(every);
        self
    }

    /// The stream carries a Go encoder's header: what preflate-rs cannot predict is
    /// [`Error::GoEncoderUnmatched`].
    pub(crate) fn go_header(self) -> PreflateSplitter {
        PreflateSplitter {
            go_header: true,
            ..self
        }
    }

    fn relabel(&self, r: Result<(), Error>) -> Result<(), Error> {
        match r {
            Err(Error::EncoderUnsupported | Error::Panicked { .. }) if self.go_header => {
                Err(Error::GoEncoderUnmatched)
            }
            r => r,
        }
    }
}

impl Splitter for PreflateSplitter {
    fn feed(&mut self, data: &[u8], sink: &mut Sink<'_>) -> Result<(), Error> {
        let r = self.members.feed(data, sink);
        self.relabel(r)
    }

    fn finish(&mut self, sink: &mut Sink<'_>) -> Result<(), Error> {
        let r = self.members.finish(sink);
        self.relabel(r)
    }
}

/// One member's deflate stream through preflate-rs.
struct PreflateStage {
    /// Retry preflate-rs only once the input holds this much (after a short read).
    need: usize,
    member_plain: u64,
    proc: Option<PreflateStreamProcessor>,
}

impl std::fmt::Debug for PreflateStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreflateStage")
            .field("member_plain", &self.member_plain)
            .finish()
    }
}

impl DeflateSplit for PreflateStage {
    type Rebuild = PreflateRebuilder;
    const NAME: &'static str = "the preflate-rs splitter";

    fn begin(&mut self) {
        self.member_plain = 0;
        self.need = 0;
        self.proc = Some(PreflateStreamProcessor::new(&PreflateConfig {
            plain_text_limit: PLAIN_LIMIT_BYTES,
            verify_compression: false,
            ..PreflateConfig::default()
        }));
    }

    fn split(
        &mut self,
        input: &mut Input,
        verifier: &mut Verifier<PreflateRebuilder>,
        eof: bool,
        sink: &mut Sink<'_>,
    ) -> Result<Progress, Error> {
        let enough = input.pending.len() >= SLICE_BYTES.max(self.need);
        if !eof && !enough {
            return Ok(Progress::Wait);
        }
        self.step(input, verifier, eof, sink)
    }
}

impl PreflateStage {
    /// One preflate-rs step over the pending input.
    fn step(
        &mut self,
        input: &mut Input,
        verifier: &mut Verifier<PreflateRebuilder>,
        eof: bool,
        sink: &mut Sink<'_>,
    ) -> Result<Progress, Error> {
        if self.member_plain + PLAIN_LIMIT_BYTES as u64 > MAX_MEMBER_PLAIN_BYTES {
            return Err(Error::MemberTooLarge);
        }
        let Some(proc) = self.proc.as_mut() else {
            return Err(Error::EncoderUnsupported);
        };
        let pending = &input.pending;
        let slice = &pending[..pending.len().min(MAX_PENDING_BYTES)];
        let result = proc.decompress(slice).map(|r| {
            let plain = proc.plain_text().text().to_vec();
            proc.shrink_to_dictionary();
            (r.compressed_size, r.corrections, plain, proc.is_done())
        });
        let (used, data, plain, done) = match result {
            Err(e) if e.exit_code() == ExitCode::ShortRead => {
                if eof || pending.len() >= MAX_PENDING_BYTES {
                    return Err(Error::MemberMalformed);
                }
                self.need = pending.len() + SLICE_BYTES;
                return Ok(Progress::Wait);
            }
            Err(e) if e.exit_code() == ExitCode::RoundtripMismatch => {
                return Err(Error::RebuildMismatch);
            }
            Err(e) => {
                tracing::debug!("preflate-rs refused a deflate stream: {e:?}");
                return Err(Error::EncoderUnsupported);
            }
            Ok(r) => r,
        };
        if used == 0 || used > slice.len() {
            // No progress on what was given: at the end of the input, nothing more will come.
            if eof || pending.len() >= MAX_PENDING_BYTES {
                return Err(Error::MemberMalformed);
            }
            self.need = pending.len() + SLICE_BYTES;
            return Ok(Progress::Wait);
        }
        if is_goflate(&data) {
            // Never seen; but a reader would take it for goflate's, so the stream stays as it is.
            return Err(Error::EncoderUnsupported);
        }
        self.member_plain += plain.len() as u64;
        input.count_plain(plain.len() as u64)?;
        let (Ok(plain32), Ok(out32)) = (u32::try_from(plain.len()), u32::try_from(used)) else {
            return Err(Error::EncoderUnsupported);
        };
        verifier.submit(&plain, &data, &input.pending[..used])?;
        if !plain.is_empty() {
            input.emit_plain(sink, plain)?;
        }
        emit(
            sink,
            Event::Step {
                plain: plain32,
                out: out32,
                data,
            },
        )?;
        input.pending.drain(..used);
        self.need = 0;
        if done {
            self.proc = None;
            return Ok(Progress::Ended);
        }
        Ok(Progress::More)
    }
}

/// Rebuilds preflate-rs steps (on a worker's thread: it is not `Send`).
#[derive(Default)]
pub(crate) struct PreflateRebuilder {
    proc: Option<RecreateStreamProcessor>,
}

impl StepRebuild for PreflateRebuilder {
    fn reset(&mut self) {
        self.proc = None;
    }

    fn rebuild_step(&mut self, plain: &[u8], data: &[u8]) -> Result<Vec<u8>, Error> {
        let p = self.proc.get_or_insert_with(RecreateStreamProcessor::new);
        match p.recompress(&mut std::io::Cursor::new(plain), data) {
            Ok((out, _blocks)) => Ok(out),
            Err(e) => Err(Error::damaged(format!("preflate-rs: {e:?}"))),
        }
    }

    /// preflate-rs cannot restart inside a deflate stream: its only checkpoints are member
    /// starts (no state), where the stream starts afresh anyway.
    fn checkpoint(&mut self, state: &[u8]) -> Result<(), Error> {
        if !state.is_empty() {
            return Err(Error::damaged("a checkpoint inside a preflate-rs stream"));
        }
        self.proc = None;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use std::io::Write;

    use super::*;
    use crate::Rebuilder;

    const NO_LIMITS: Limits = Limits::UNLIMITED;

    /// Splits `gz` fed in `slice`-byte pieces; returns the payload and the rebuilt bytes.
    fn split_and_rebuild(
        gz: &[u8],
        slice: usize,
        limits: Limits,
    ) -> Result<(Vec<u8>, Vec<u8>), Error> {
        let mut s = PreflateSplitter::new(limits);
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
                Event::Checkpoint(c) => {
                    let cp = crate::Checkpoint::decode(&c).unwrap();
                    rb.checkpoint(&cp).unwrap();
                }
                Event::Plain(p) => {
                    payload.extend_from_slice(&p);
                    pending_plain.extend_from_slice(&p);
                }
                Event::Step { plain, out, data } => {
                    assert_eq!(plain as usize, pending_plain.len());
                    let bytes = rb.rebuild_step(&mut pending_plain, data).unwrap();
                    pending_plain.clear();
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
        let malformed = Err(Error::MemberMalformed);
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
                Err(Error::DecompressionLimit)
            );
        }
        assert!(split_and_rebuild(&big, 1 << 20, NO_LIMITS).is_ok());
    }
}
