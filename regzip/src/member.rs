//! gzip members (RFC 1952) and the state machine both splitters share: where a member header
//! ends, the deflate stream after it (handed to the splitter's [`DeflateSplit`]), then the
//! 8-byte trailer, the next member's header, or bytes after the last member. Headers and
//! trailers are emitted as they are.

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::{
    Error,
    split::{CHECKPOINT_OUT_BYTES, CHECKPOINT_PLAIN_BYTES, Event, Limits, Sink},
    verify::{StepRebuild, Verifier},
};

/// Longest gzip header accepted (FEXTRA, FNAME and FCOMMENT included).
pub(crate) const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Most bytes accepted after the last member (zero padding some tools add).
const MAX_TAIL_BYTES: u64 = 1024 * 1024;
/// The ratio limit applies to the compressed bytes seen, counted as at least this many.
const RATIO_FLOOR_BYTES: u64 = 1024 * 1024;

const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;
const FRESERVED: u8 = 0xe0;

/// Where a splitter is in the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Header,
    Deflate,
    Trailer,
    Between,
    Tail,
}

/// Length of a complete gzip member header at the start of `b`; `Ok(None)` if more is
/// needed, `Err(())` if it is not a gzip header.
pub(crate) fn header_len(b: &[u8]) -> Result<Option<usize>, ()> {
    if b.len() < 10 {
        return Ok(None);
    }
    if b[0] != 0x1f || b[1] != 0x8b || b[2] != 8 || b[3] & FRESERVED != 0 {
        return Err(());
    }
    let flags = b[3];
    let mut i = 10;
    if flags & FEXTRA != 0 {
        let Some(x) = b.get(i..i + 2) else {
            return Ok(None);
        };
        i += 2 + usize::from(u16::from_le_bytes([x[0], x[1]]));
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            match b.get(i..).and_then(|r| r.iter().position(|&c| c == 0)) {
                Some(p) => i += p + 1,
                None => return Ok(None),
            }
        }
    }
    if flags & FHCRC != 0 {
        i += 2;
    }
    Ok((b.len() >= i).then_some(i))
}

/// Hands an event to the sink; a sink that refuses stops the split.
pub(crate) fn emit(sink: &mut Sink<'_>, e: Event<'_>) -> Result<(), Error> {
    if sink(e) { Ok(()) } else { Err(Error::Stopped) }
}

/// The compressed bytes received and not yet consumed, with the counts the limits apply to.
pub(crate) struct Input {
    pub(crate) pending: Vec<u8>,
    /// Compressed bytes received.
    fed: u64,
    /// Payload bytes produced.
    plain: u64,
    limits: Limits,
    /// Compressed bytes between checkpoints, about (0: none).
    checkpoint_out: u64,
    /// Payload between checkpoints, at most about (the splitter may lower it).
    pub(crate) checkpoint_plain: u64,
    /// Payload emitted (the parse runs ahead of it).
    emitted: u64,
    /// Input consumed and payload emitted when the last checkpoint was made.
    last_checkpoint: (u64, u64),
}

impl Input {
    /// Compressed bytes consumed: the output offset of what comes next.
    fn consumed(&self) -> u64 {
        self.fed - self.pending.len() as u64
    }

    /// Whether the next step (or member) should start at a checkpoint: after about
    /// `checkpoint_out` compressed bytes, or `checkpoint_plain` of payload (what a rebuild
    /// costs: compressible data would make long units of work).
    pub(crate) fn checkpoint_due(&self) -> bool {
        let (out, plain) = self.last_checkpoint;
        self.checkpoint_out > 0
            && (self.consumed() >= out + self.checkpoint_out
                || self.emitted >= plain + self.checkpoint_plain.max(self.checkpoint_out))
    }

    /// A checkpoint starts what comes next.
    pub(crate) fn checkpoint_made(&mut self) {
        self.last_checkpoint = (self.consumed(), self.emitted);
    }

    /// Emits payload.
    pub(crate) fn emit_plain(&mut self, sink: &mut Sink<'_>, plain: Vec<u8>) -> Result<(), Error> {
        self.emitted += plain.len() as u64;
        emit(sink, Event::Plain(plain))
    }

    /// Counts `n` more payload bytes against the limits.
    pub(crate) fn count_plain(&mut self, n: u64) -> Result<(), Error> {
        self.plain += n;
        let ratio_base = self.fed.max(RATIO_FLOOR_BYTES);
        if self.plain > self.limits.max_plain
            || self.plain > ratio_base.saturating_mul(u64::from(self.limits.max_ratio))
        {
            return Err(Error::DecompressionLimit);
        }
        Ok(())
    }
}

/// What a [`DeflateSplit`] did with the input it was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Progress {
    /// It needs more input (or the end of it).
    Wait,
    /// It emitted something; call it again.
    More,
    /// The deflate stream ended; the member's trailer follows in the input.
    Ended,
}

/// One kind of splitter's half: the deflate stream of each member, cut into verified steps.
pub(crate) trait DeflateSplit {
    /// Rebuilds this kind's steps (on the verifier's thread).
    type Rebuild: StepRebuild + Default + 'static;
    /// What panicked, when this kind's code panics.
    const NAME: &'static str;

    /// A new member's deflate stream starts at the front of the input.
    fn begin(&mut self);

    /// Splits what the input holds of the stream: emits payload and steps, consumes the
    /// compressed bytes of every step emitted, and hands each step to the verifier.
    fn split(
        &mut self,
        input: &mut Input,
        verifier: &mut Verifier<Self::Rebuild>,
        eof: bool,
        sink: &mut Sink<'_>,
    ) -> Result<Progress, Error>;
}

/// A splitter: gzip members around a [`DeflateSplit`]'s deflate streams.
pub(crate) struct Members<D: DeflateSplit> {
    state: State,
    input: Input,
    /// Bytes after the last member so far.
    tail: u64,
    verifier: Verifier<D::Rebuild>,
    pub(crate) deflate: D,
    /// An error ended the split: nothing more is taken.
    failed: Option<Error>,
}

impl<D: DeflateSplit + std::fmt::Debug> std::fmt::Debug for Members<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Members")
            .field("state", &self.state)
            .field("fed", &self.input.fed)
            .field("plain", &self.input.plain)
            .field("deflate", &self.deflate)
            .field("failed", &self.failed)
            .finish()
    }
}

impl<D: DeflateSplit> Members<D> {
    /// A splitter expecting a gzip header first; `verify: false` only measures (trials).
    pub(crate) fn new(deflate: D, limits: Limits, verify: bool) -> Members<D> {
        Members {
            state: State::Header,
            input: Input {
                pending: Vec::new(),
                fed: 0,
                plain: 0,
                limits,
                checkpoint_out: CHECKPOINT_OUT_BYTES,
                checkpoint_plain: CHECKPOINT_PLAIN_BYTES,
                emitted: 0,
                last_checkpoint: (0, 0),
            },
            tail: 0,
            verifier: Verifier::new(verify),
            deflate,
            failed: None,
        }
    }

    /// Checkpoints about every `every` compressed bytes (0: none; a member start is one, and
    /// the deflate splitter places the others).
    pub(crate) fn set_checkpoints(&mut self, every: u64) {
        self.input.checkpoint_out = every;
    }

    pub(crate) fn feed(&mut self, data: &[u8], sink: &mut Sink<'_>) -> Result<(), Error> {
        self.guarded(|m| {
            m.input.fed += data.len() as u64;
            m.input.pending.extend_from_slice(data);
            m.run(false, sink)
        })
    }

    pub(crate) fn finish(&mut self, sink: &mut Sink<'_>) -> Result<(), Error> {
        self.guarded(|m| {
            m.run(true, sink)?;
            m.verifier.check_all()?;
            match m.state {
                State::Between | State::Tail if m.input.pending.is_empty() => Ok(()),
                _ => Err(Error::MemberMalformed),
            }
        })
    }

    /// Runs `f` unless an error ended the split before, catching a panic as an error: one
    /// policy for both kinds of splitter.
    fn guarded(&mut self, f: impl FnOnce(&mut Self) -> Result<(), Error>) -> Result<(), Error> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = match catch_unwind(AssertUnwindSafe(|| f(self))) {
            Ok(r) => r,
            Err(_panic) => {
                tracing::info!("{} panicked; the stream is kept as it is", D::NAME);
                Err(Error::Panicked { what: D::NAME })
            }
        };
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        result
    }

    fn run(&mut self, eof: bool, sink: &mut Sink<'_>) -> Result<(), Error> {
        loop {
            match self.state {
                State::Header => match header_len(&self.input.pending) {
                    Ok(Some(n)) => {
                        // A new deflate stream: every step of the last one must check out,
                        // and the verifier starts afresh.
                        self.verifier.reset()?;
                        if self.input.checkpoint_due() {
                            emit(sink, Event::Checkpoint(Vec::new()))?;
                            self.input.checkpoint_made();
                        }
                        emit(sink, Event::Raw(&self.input.pending[..n]))?;
                        self.input.pending.drain(..n);
                        self.deflate.begin();
                        self.state = State::Deflate;
                    }
                    Ok(None) if !eof && self.input.pending.len() < MAX_HEADER_BYTES => {
                        return Ok(());
                    }
                    _ => return Err(Error::MemberMalformed),
                },
                State::Deflate => {
                    let progress =
                        self.deflate
                            .split(&mut self.input, &mut self.verifier, eof, sink)?;
                    match progress {
                        Progress::Wait => return Ok(()),
                        Progress::More => {}
                        Progress::Ended => self.state = State::Trailer,
                    }
                }
                State::Trailer | State::Between | State::Tail => {
                    if !self.between_members(eof, sink)? {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Advances through what follows a deflate stream (`Trailer`, `Between`, `Tail`),
    /// emitting it. `Ok(true)`: go on with the new state; `Ok(false)`: wait for more input.
    fn between_members(&mut self, eof: bool, sink: &mut Sink<'_>) -> Result<bool, Error> {
        let pending = &mut self.input.pending;
        match self.state {
            State::Trailer => {
                if pending.len() < 8 {
                    return if eof {
                        Err(Error::MemberMalformed)
                    } else {
                        Ok(false)
                    };
                }
                emit(sink, Event::Raw(&pending[..8]))?;
                pending.drain(..8);
                self.state = State::Between;
                Ok(true)
            }
            State::Between => {
                if pending.is_empty() || (!eof && pending.len() < 3) {
                    return Ok(false);
                }
                self.state = if pending.starts_with(&[0x1f, 0x8b, 8]) {
                    State::Header
                } else {
                    State::Tail
                };
                Ok(true)
            }
            State::Tail => {
                self.tail += pending.len() as u64;
                if self.tail > MAX_TAIL_BYTES {
                    return Err(Error::MemberMalformed);
                }
                for piece in pending.chunks(64 * 1024) {
                    emit(sink, Event::Raw(piece))?;
                }
                pending.clear();
                Ok(false)
            }
            State::Header | State::Deflate => Ok(true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_with_every_optional_field() {
        let mut h = vec![
            0x1f,
            0x8b,
            8,
            FEXTRA | FNAME | FCOMMENT | FHCRC,
            0,
            0,
            0,
            0,
            0,
            255,
        ];
        assert_eq!(header_len(&h), Ok(None));
        h.extend_from_slice(&[2, 0, 9, 9]);
        h.extend_from_slice(b"name\0comment\0");
        assert_eq!(header_len(&h), Ok(None), "the header CRC is missing");
        h.extend_from_slice(&[1, 2]);
        assert_eq!(header_len(&h), Ok(Some(h.len())));
        h[3] |= 0x80;
        assert_eq!(header_len(&h), Err(()));
        assert_eq!(header_len(b"not gzip at all"), Err(()));
    }
}
