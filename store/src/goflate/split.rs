//! [`GoSplitter`]: a push parser that splits a gzip stream into payload, raw framing and
//! goflate steps, verifying each step by rebuilding it.

use std::collections::VecDeque;

use super::{
    Producer, STEP_OUT_BYTES,
    deflate::{BitIn, Block, Kind, MAX_DIST, ParseError, parse_block},
    huffman::go_header,
    predict::{Model, Window},
    step::{Recorded, StepData, is_sync, set_visible, walk, walk_unheard},
    verify::Verifier,
    write::Histogram,
};
use crate::{
    gzip::{Event, Halt, Limits},
    gzip_frame::{MAX_HEADER_BYTES, State, emit, header_len, step_between_members},
    layer::OpaqueReason,
};

/// A step also ends once its blocks hold this much payload (highly compressible data).
const STEP_PLAIN_BYTES: usize = 8 * 1024 * 1024;
/// Compressed bytes buffered without completing a block: not a Go stream.
const MAX_PENDING_BYTES: usize = 16 * 1024 * 1024;
/// Input gathered before parsing is retried after a short read.
const RETRY_BYTES: usize = 256 * 1024;
/// The ratio limit applies to the compressed bytes seen, counted as at least this many.
const RATIO_FLOOR_BYTES: u64 = 1024 * 1024;

struct Parsed {
    block: Block,
    start: usize,
    /// Bit position in `pending` after the block.
    end_bit: usize,
}

/// One deflate stream being split.
struct Stream {
    win: Window,
    model: Model,
    /// Parse position, in bits of `pending`.
    ppos: usize,
    parsed: VecDeque<Parsed>,
    plain_parsed: usize,
    plain_emitted: usize,
    /// Payload position of the next block to predict.
    pos: usize,
    /// The last block has been parsed; its padding bits.
    ended: Option<u8>,
    /// Where the model's independent block started.
    origin: usize,
}

/// The push parser; see the module documentation.
pub(crate) struct GoSplitter {
    producer: Producer,
    limits: Limits,
    step_out: usize,
    state: State,
    pending: Vec<u8>,
    need: usize,
    fed: u64,
    plain_total: u64,
    tail: u64,
    stream: Option<Stream>,
    verifier: Verifier,
    /// Reconstruction bytes emitted (for the trial and the tests).
    pub(crate) overhead: u64,
    /// Tokens the model did not predict.
    pub(crate) diffs: u64,
    /// Stop at the first difference (a trial that only accepts an exact model).
    exact: bool,
}

impl std::fmt::Debug for GoSplitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoSplitter")
            .field("producer", &self.producer)
            .field("fed", &self.fed)
            .finish()
    }
}

impl GoSplitter {
    pub(crate) fn new(producer: Producer, limits: Limits) -> GoSplitter {
        GoSplitter::with_step(producer, limits, STEP_OUT_BYTES)
    }

    pub(crate) fn with_step(producer: Producer, limits: Limits, step_out: usize) -> GoSplitter {
        GoSplitter {
            producer,
            limits,
            step_out,
            state: State::Header,
            pending: Vec::new(),
            need: 0,
            fed: 0,
            plain_total: 0,
            tail: 0,
            stream: None,
            verifier: Verifier::new(true),
            overhead: 0,
            diffs: 0,
            exact: false,
        }
    }

    /// A splitter that only measures (nothing is rebuilt); an `exact` one stops at the first
    /// difference from its model.
    pub(super) fn trial(producer: Producer, step_out: usize, exact: bool) -> GoSplitter {
        let limits = Limits {
            max_plain: u64::MAX,
            max_ratio: u32::MAX,
        };
        GoSplitter {
            verifier: Verifier::new(false),
            exact,
            ..GoSplitter::with_step(producer, limits, step_out)
        }
    }

    pub(crate) fn feed(
        &mut self,
        data: &[u8],
        sink: &mut impl FnMut(Event<'_>) -> bool,
    ) -> Result<(), Halt> {
        self.fed += data.len() as u64;
        self.pending.extend_from_slice(data);
        self.run(false, sink)
    }

    pub(crate) fn finish(&mut self, sink: &mut impl FnMut(Event<'_>) -> bool) -> Result<(), Halt> {
        self.run(true, sink)?;
        self.verifier.check_all()?;
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
                        emit(sink, Event::Raw(&self.pending[..n]))?;
                        self.pending.drain(..n);
                        self.verifier.reset()?;
                        self.stream = Some(Stream {
                            win: Window::default(),
                            model: self.producer.model(0),
                            ppos: 0,
                            parsed: VecDeque::new(),
                            plain_parsed: 0,
                            plain_emitted: 0,
                            pos: 0,
                            ended: None,
                            origin: 0,
                        });
                        self.need = 0;
                        self.state = State::Deflate;
                    }
                    Ok(None) if !eof && self.pending.len() < MAX_HEADER_BYTES => return Ok(()),
                    _ => return Err(malformed),
                },
                State::Deflate => {
                    if !eof && self.pending.len() < self.need {
                        return Ok(());
                    }
                    self.parse(eof)?;
                    while self.next_step(eof, sink)? {}
                    if self.stream.is_some() {
                        if eof {
                            return Err(malformed);
                        }
                        if self.pending.len() > MAX_PENDING_BYTES {
                            return Err(Halt::Opaque(OpaqueReason::EncoderUnsupported));
                        }
                        self.need = self.pending.len() + RETRY_BYTES;
                        return Ok(());
                    }
                    self.state = State::Trailer;
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

    /// Parses every complete block in `pending`.
    fn parse(&mut self, eof: bool) -> Result<(), Halt> {
        let Some(s) = self.stream.as_mut() else {
            return Ok(());
        };
        while s.ended.is_none() {
            let mut r = BitIn::new(&self.pending, s.ppos);
            let (buf, base) = s.win.parts();
            let before = buf.len();
            let start = base + before;
            match parse_block(&mut r, buf, base as u64) {
                Ok(block) => {
                    if block.last {
                        let n = ((8 - r.pos % 8) % 8) as u32;
                        match r.bits(n) {
                            Ok(pad) => s.ended = Some(pad as u8),
                            Err(_) => {
                                buf.truncate(before);
                                break;
                            }
                        }
                    }
                    s.ppos = r.pos;
                    s.plain_parsed = start + block.plain;
                    self.plain_total += block.plain as u64;
                    let ratio_base = self.fed.max(RATIO_FLOOR_BYTES);
                    if self.plain_total > self.limits.max_plain
                        || self.plain_total
                            > ratio_base.saturating_mul(u64::from(self.limits.max_ratio))
                    {
                        return Err(Halt::Opaque(OpaqueReason::DecompressionLimit));
                    }
                    s.parsed.push_back(Parsed {
                        block,
                        start,
                        end_bit: r.pos,
                    });
                }
                Err(ParseError::Short) => {
                    buf.truncate(before);
                    if eof {
                        return Err(Halt::Opaque(OpaqueReason::GzipMalformed));
                    }
                    break;
                }
                Err(ParseError::Invalid) => {
                    return Err(Halt::Opaque(OpaqueReason::EncoderUnsupported));
                }
            }
        }
        Ok(())
    }

    /// Emits the next step if enough is parsed; `true` if it did.
    fn next_step(
        &mut self,
        eof: bool,
        sink: &mut impl FnMut(Event<'_>) -> bool,
    ) -> Result<bool, Halt> {
        let unsupported = Halt::Opaque(OpaqueReason::EncoderUnsupported);
        let Some(s) = self.stream.as_mut() else {
            return Ok(false);
        };
        // The step's blocks: whole blocks up to about `step_out` bytes, or the last one.
        let mut m = 0;
        for (k, p) in s.parsed.iter().enumerate() {
            m = k + 1;
            let plain = (p.start + p.block.plain).saturating_sub(s.plain_emitted);
            if p.block.last || p.end_bit / 8 >= self.step_out || plain >= STEP_PLAIN_BYTES {
                break;
            }
            if k + 1 == s.parsed.len() {
                m = 0;
            }
        }
        if m == 0 {
            let _ = eof;
            return Ok(false);
        }
        let Some(last) = s.parsed.get(m - 1) else {
            return Ok(false);
        };
        let e_last = last.start + last.block.plain;
        let lookahead = self.producer.lookahead();
        // How far the producer saw: LOOKAHEAD past the step, or to the next flush point.
        let mut sync_at = None;
        for p in s.parsed.iter().skip(m - 1) {
            if p.block.last || is_sync(&p.block.kind, p.block.plain) {
                sync_at = Some(p.start + p.block.plain);
                break;
            }
            if p.start >= e_last + lookahead {
                break;
            }
        }
        let (step_end, ends_at_sync) = match sync_at {
            Some(at) if at <= e_last + lookahead => (at, true),
            _ if s.plain_parsed >= e_last + lookahead => (e_last + lookahead, false),
            _ => return Ok(false),
        };
        let shape: Vec<(usize, bool)> = s
            .parsed
            .iter()
            .take(m)
            .map(|p| {
                (
                    p.block.plain,
                    p.block.last || is_sync(&p.block.kind, p.block.plain),
                )
            })
            .collect();
        let mut blocks = Vec::with_capacity(m);
        for (j, p) in s.parsed.iter().take(m).enumerate() {
            set_visible(&mut s.win, &shape, j, p.start, step_end, ends_at_sync);
            let b = &p.block;
            let stored = matches!(b.kind, Kind::Stored { .. });
            let mut diffs = Vec::new();
            let mut skip = false;
            if stored {
                walk_unheard(&mut s.model, &s.win, p.start, b.plain).ok_or(unsupported)?;
            } else {
                let mut toks = b.toks.iter();
                walk(&mut s.model, &s.win, p.start, b.plain, |i, proposal, _| {
                    let t = *toks.next()?;
                    if t != proposal {
                        diffs.push((i, t));
                    }
                    Some(t)
                })
                .ok_or(unsupported)?;
                // A literal-only block the model would have matched: level 1 wrote it so.
                if !diffs.is_empty() && s.model.chunked() && b.toks.iter().all(|t| !t.is_copy()) {
                    diffs.clear();
                    skip = true;
                }
            }
            if self.producer.resets_after(&b.kind, b.plain, b.last) {
                let at = p.start + b.plain;
                s.model = self.producer.model_after_flush(&s.win, s.origin, at);
                s.origin = at;
            }
            let derived = match (&b.kind, self.producer) {
                (Kind::Dynamic(h), Producer::Go(_)) => {
                    go_header(&Histogram::of(&b.toks)) == (h.raw.clone(), h.bits)
                }
                _ => false,
            };
            self.diffs += diffs.len() as u64;
            if self.exact && self.diffs > 0 {
                return Err(unsupported);
            }
            blocks.push(Recorded {
                last: b.last,
                kind: b.kind.clone(),
                plain: b.plain,
                skip,
                diffs,
                derived,
            });
        }
        let final_pad = if last.block.last {
            s.ended.unwrap_or(0)
        } else {
            0
        };
        let data = StepData {
            producer: self.producer,
            ends_at_sync,
            blocks,
            final_pad,
        }
        .encode();
        let end_bit = last.end_bit;
        let out_bytes = if last.block.last {
            end_bit.div_ceil(8)
        } else {
            end_bit / 8
        };
        if out_bytes == 0 {
            return Err(unsupported);
        }
        let plain = s.win.slice(s.plain_emitted, step_end).to_vec();
        self.verifier
            .submit(&plain, &data, &self.pending[..out_bytes])?;
        let (plain_len, out_len) = match (u32::try_from(plain.len()), u32::try_from(out_bytes)) {
            (Ok(p), Ok(o)) => (p, o),
            _ => return Err(unsupported),
        };
        self.overhead += data.len() as u64;
        if !plain.is_empty() {
            emit(sink, Event::Plain(plain))?;
        }
        emit(
            sink,
            Event::Step {
                plain: plain_len,
                out: out_len,
                corrections: data,
            },
        )?;
        s.plain_emitted = step_end;
        s.pos = e_last;
        s.parsed.drain(..m);
        self.pending.drain(..out_bytes);
        let shift = out_bytes * 8;
        s.ppos -= shift.min(s.ppos);
        for p in &mut s.parsed {
            p.end_bit -= shift;
        }
        let oldest = s.model.oldest().min(s.pos.saturating_sub(MAX_DIST));
        s.win.trim(oldest);
        if s.ended.is_some() && s.parsed.is_empty() {
            self.stream = None;
        }
        Ok(true)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
pub(crate) mod tests {
    use super::{super::step::StepRebuilder, *};

    pub(crate) const NO_LIMITS: Limits = Limits {
        max_plain: u64::MAX,
        max_ratio: u32::MAX,
    };

    /// Splits `gz` in `slice`-byte pieces and rebuilds it; returns payload, rebuilt bytes and
    /// reconstruction bytes.
    pub(crate) fn split_and_rebuild(
        gz: &[u8],
        producer: Producer,
        slice: usize,
    ) -> Result<(Vec<u8>, Vec<u8>, u64, u64), Halt> {
        let mut sp = GoSplitter::new(producer, NO_LIMITS);
        let (mut payload, mut pending, mut rebuilt) = (Vec::new(), Vec::new(), Vec::new());
        let mut rb = StepRebuilder::default();
        let mut sink = |e: Event<'_>| {
            match e {
                Event::Raw(b) => {
                    rb.reset();
                    rebuilt.extend_from_slice(b);
                }
                Event::Plain(p) => {
                    payload.extend_from_slice(&p);
                    pending.extend_from_slice(&p);
                }
                Event::Step {
                    plain,
                    out,
                    corrections,
                } => {
                    assert_eq!(plain as usize, pending.len());
                    let bytes = rb
                        .step(&std::mem::take(&mut pending), &corrections)
                        .unwrap();
                    assert_eq!(bytes.len(), out as usize);
                    rebuilt.extend_from_slice(&bytes);
                }
            }
            true
        };
        for piece in gz.chunks(slice) {
            sp.feed(piece, &mut sink)?;
        }
        sp.finish(&mut sink)?;
        Ok((payload, rebuilt, sp.overhead, sp.diffs))
    }

    pub(crate) fn fixture(name: &str) -> Vec<u8> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/go");
        std::fs::read(dir.join(name)).unwrap()
    }

    fn plain_of(gz: &[u8]) -> Vec<u8> {
        use std::io::Read;
        let mut v = Vec::new();
        flate2::read::MultiGzDecoder::new(gz)
            .read_to_end(&mut v)
            .unwrap();
        v
    }

    #[test]
    fn go_levels_are_predicted_without_differences() {
        for level in 1..=9u8 {
            let gz = fixture(&format!("gzip_{level}.gz"));
            for slice in [1000, 1 << 20] {
                let (payload, rebuilt, over, diffs) =
                    split_and_rebuild(&gz, Producer::Go(level), slice).unwrap();
                assert!(payload == plain_of(&gz), "level {level}");
                assert!(rebuilt == gz, "level {level}");
                assert_eq!(diffs, 0, "level {level}");
                // Every Huffman header is the one Go derives: a few bytes per block.
                assert!(over < 64, "level {level}: {over} B");
            }
        }
    }

    #[test]
    fn flushed_go_streams_are_predicted_without_differences() {
        for level in [1u8, 2, 6] {
            let gz = fixture(&format!("gzip_{level}_flush10000.gz"));
            let (_, rebuilt, _, diffs) = split_and_rebuild(&gz, Producer::Go(level), 3000).unwrap();
            assert!(rebuilt == gz, "level {level}");
            assert_eq!(diffs, 0, "level {level}");
        }
    }

    #[test]
    fn pgzip_default_level_is_predicted_without_differences() {
        for name in ["pgzip_-1_0.gz", "pgzip_-1_65536.gz"] {
            let gz = fixture(name);
            let (payload, rebuilt, _, diffs) =
                split_and_rebuild(&gz, Producer::Pgzip(5), 5000).unwrap();
            assert!(payload == plain_of(&gz), "{name}");
            assert!(rebuilt == gz, "{name}");
            assert_eq!(diffs, 0, "{name}");
        }
    }

    #[test]
    fn a_wrong_model_still_rebuilds_exactly() {
        let gz = fixture("gzip_6.gz");
        for producer in [Producer::Go(1), Producer::Go(2), Producer::Go(9)] {
            let (_, rebuilt, over, diffs) = split_and_rebuild(&gz, producer, 4096).unwrap();
            assert!(rebuilt == gz, "{producer:?}");
            assert!(diffs > 0 && over > 0, "{producer:?}");
        }
    }

    #[test]
    fn multi_member_streams_and_tails_are_kept() {
        let mut gz = fixture("gzip_1.gz");
        gz.extend(fixture("gzip_1.gz"));
        gz.extend([0u8; 100]);
        let (payload, rebuilt, _, diffs) = split_and_rebuild(&gz, Producer::Go(1), 7777).unwrap();
        assert!(rebuilt == gz);
        assert_eq!(payload.len(), 2 * 150_000);
        assert_eq!(diffs, 0);
    }

    #[test]
    fn highly_compressible_streams_take_bounded_steps() {
        // 40 MB of zeros in about 40 KB: steps end by payload, not by output.
        let gz = {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
            e.write_all(&vec![0u8; 40 << 20]).unwrap();
            e.finish().unwrap()
        };
        let mut sp = GoSplitter::new(Producer::Go(6), NO_LIMITS);
        let mut most = 0;
        let mut sink = |e: Event<'_>| {
            if let Event::Step { plain, .. } = e {
                most = most.max(plain as usize);
            }
            true
        };
        sp.feed(&gz, &mut sink).unwrap();
        sp.finish(&mut sink).unwrap();
        assert!(
            most <= STEP_PLAIN_BYTES + super::super::deflate::MAX_BLOCK_PLAIN,
            "{most}"
        );
    }

    #[test]
    fn damaged_streams_halt() {
        let gz = fixture("gzip_6.gz");
        let malformed = Err(Halt::Opaque(OpaqueReason::GzipMalformed));
        assert_eq!(
            split_and_rebuild(&gz[..gz.len() - 20], Producer::Go(6), 1 << 20).map(|_| ()),
            malformed
        );
        let mut bad = gz.clone();
        bad[10] |= 0b110; // BTYPE 3
        assert_eq!(
            split_and_rebuild(&bad, Producer::Go(6), 1 << 20).map(|_| ()),
            Err(Halt::Opaque(OpaqueReason::EncoderUnsupported))
        );
    }

    proptest::proptest! {
        #[test]
        fn hostile_bytes_never_panic(
            at in 10usize..37_000,
            junk in proptest::collection::vec(0u8..=255, 1..64),
        ) {
            let mut gz = fixture("gzip_5.gz");
            let end = (at + junk.len()).min(gz.len());
            gz[at..end].copy_from_slice(&junk[..end - at]);
            if let Ok((_, rebuilt, _, _)) = split_and_rebuild(&gz, Producer::Go(5), 1 << 16) {
                proptest::prop_assert!(rebuilt == gz);
            }
        }
    }
}
