//! [`GoSplitter`]: splits a gzip stream a Go program wrote into payload, raw member headers and
//! trailers, and goflate steps, each verified by rebuilding it.

use std::collections::VecDeque;

use super::{
    Producer, STEP_OUT_BYTES,
    checkpoint::{At, FAST_WARM_BLOCKS, GoCheckpoint},
    deflate::{BitIn, Block, Kind, MAX_DIST, ParseError, parse_block},
    huffman::go_header,
    predict::{Model, Window},
    step::{GoRebuilder, Recorded, StepData, is_sync, set_visible, walk, walk_unheard},
    write::Histogram,
};
use crate::{
    Error,
    member::{DeflateSplit, Input, Members, Progress, emit},
    split::{Event, Limits, Sink, Splitter},
    verify::Verifier,
};

/// A step also ends once its blocks hold this much payload (highly compressible data: a
/// step's cost is its payload's, and checkpoints come at step starts, so that a stretch of
/// zeros does not make one long unit of rebuilding).
const STEP_PLAIN_BYTES: usize = 2 * 1024 * 1024;
/// Compressed bytes buffered without completing a block: not a Go stream.
const MAX_PENDING_BYTES: usize = 16 * 1024 * 1024;
/// Input gathered before parsing is retried after a short read.
const RETRY_BYTES: usize = 256 * 1024;
/// A pgzip step that waits for a flush (a checkpoint is due) ends anyway after this many
/// times its usual output.
const FLUSH_STEP_OUT: usize = 4;

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
    /// Where the model's independent block started, and the dictionary it started with.
    origin: usize,
    dict: usize,
    /// Bits of the first pending byte that the last step emitted (the byte they share).
    carry: u32,
    /// Lengths of the last non-empty blocks, oldest first (a level-1 checkpoint's warm-up).
    recent: VecDeque<usize>,
}

/// Splits gzip streams made by Go's compress/gzip or klauspost/pgzip with goflate's model of
/// their [`Producer`]; see the module documentation of `goflate`.
#[derive(Debug)]
pub struct GoSplitter(Members<GoStage>);

impl GoSplitter {
    /// A splitter for streams `producer` wrote, expecting a gzip header first.
    pub fn new(producer: Producer, limits: Limits) -> GoSplitter {
        GoSplitter::with_step(producer, limits, STEP_OUT_BYTES)
    }

    /// As [`GoSplitter::new`], with steps of about `step_out` compressed bytes instead of
    /// 256 KiB (smaller steps carry more bits across step boundaries: tests use them).
    pub fn with_step(producer: Producer, limits: Limits, step_out: usize) -> GoSplitter {
        GoSplitter(Members::new(
            GoStage::new(producer, step_out, false),
            limits,
            true,
        ))
    }

    /// Emits checkpoints about every `every` compressed bytes (0: none) instead of every
    /// [`crate::CHECKPOINT_OUT_BYTES`] (tests use small ones).
    pub fn with_checkpoints(mut self, every: u64) -> GoSplitter {
        self.0.set_checkpoints(every);
        self
    }

    /// A splitter that only measures (nothing is rebuilt, no checkpoint is made); an `exact`
    /// one stops at the first difference from its model.
    pub(super) fn trial(producer: Producer, step_out: usize, exact: bool) -> GoSplitter {
        let stage = GoStage::new(producer, step_out, exact);
        let mut m = Members::new(stage, Limits::UNLIMITED, false);
        m.set_checkpoints(0);
        GoSplitter(m)
    }

    /// Reconstruction bytes emitted, and tokens the model did not predict.
    pub(crate) fn cost(&self) -> (u64, u64) {
        (self.0.deflate.overhead, self.0.deflate.diffs)
    }
}

impl Splitter for GoSplitter {
    fn feed(&mut self, data: &[u8], sink: &mut Sink<'_>) -> Result<(), Error> {
        self.0.feed(data, sink)
    }

    fn finish(&mut self, sink: &mut Sink<'_>) -> Result<(), Error> {
        self.0.finish(sink)
    }
}

/// One member's deflate stream through a Go model.
pub(crate) struct GoStage {
    producer: Producer,
    step_out: usize,
    need: usize,
    stream: Option<Stream>,
    /// Reconstruction bytes emitted (for the trial and the tests).
    overhead: u64,
    /// Tokens the model did not predict.
    diffs: u64,
    /// Stop at the first difference (a trial that only accepts an exact model).
    exact: bool,
}

impl std::fmt::Debug for GoStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoStage")
            .field("producer", &self.producer)
            .field("diffs", &self.diffs)
            .finish()
    }
}

impl DeflateSplit for GoStage {
    type Rebuild = GoRebuilder;
    const NAME: &'static str = "the goflate splitter";

    fn begin(&mut self) {
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
            dict: 0,
            carry: 0,
            recent: VecDeque::new(),
        });
        self.need = 0;
    }

    fn split(
        &mut self,
        input: &mut Input,
        verifier: &mut Verifier<GoRebuilder>,
        eof: bool,
        sink: &mut Sink<'_>,
    ) -> Result<Progress, Error> {
        if !eof && input.pending.len() < self.need {
            return Ok(Progress::Wait);
        }
        input.checkpoint_plain = self.producer.checkpoint_plain();
        self.parse(input, eof)?;
        while self.next_step(input, verifier, sink)? {}
        if self.stream.is_none() {
            return Ok(Progress::Ended);
        }
        if eof {
            return Err(Error::MemberMalformed);
        }
        if input.pending.len() > MAX_PENDING_BYTES {
            return Err(Error::EncoderUnsupported);
        }
        self.need = input.pending.len() + RETRY_BYTES;
        Ok(Progress::Wait)
    }
}

impl GoStage {
    fn new(producer: Producer, step_out: usize, exact: bool) -> GoStage {
        GoStage {
            producer,
            step_out,
            need: 0,
            stream: None,
            overhead: 0,
            diffs: 0,
            exact,
        }
    }

    /// Parses every complete block in the input.
    fn parse(&mut self, input: &mut Input, eof: bool) -> Result<(), Error> {
        let Some(s) = self.stream.as_mut() else {
            return Ok(());
        };
        while s.ended.is_none() {
            let mut r = BitIn::new(&input.pending, s.ppos);
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
                    let end_bit = r.pos;
                    s.ppos = end_bit;
                    s.plain_parsed = start + block.plain;
                    input.count_plain(block.plain as u64)?;
                    s.parsed.push_back(Parsed {
                        block,
                        start,
                        end_bit,
                    });
                }
                Err(ParseError::Short) => {
                    buf.truncate(before);
                    if eof {
                        return Err(Error::MemberMalformed);
                    }
                    break;
                }
                Err(ParseError::Invalid) => return Err(Error::EncoderUnsupported),
            }
        }
        Ok(())
    }

    /// Emits the next step if enough is parsed; `true` if it did.
    fn next_step(
        &mut self,
        input: &mut Input,
        verifier: &mut Verifier<GoRebuilder>,
        sink: &mut Sink<'_>,
    ) -> Result<bool, Error> {
        let Some(s) = self.stream.as_mut() else {
            return Ok(false);
        };
        // The step's blocks: whole blocks up to about `step_out` bytes, or the last one. pgzip
        // restarts only after a flush: when a checkpoint is due, the step ends at the next
        // one, so that the step after it starts with the checkpoint.
        let to_flush = matches!(self.producer, Producer::Pgzip(_)) && input.checkpoint_due();
        let step_out = if to_flush {
            FLUSH_STEP_OUT * self.step_out
        } else {
            self.step_out
        };
        let mut m = 0;
        for (k, p) in s.parsed.iter().enumerate() {
            m = k + 1;
            let plain = (p.start + p.block.plain).saturating_sub(s.plain_emitted);
            let flush = to_flush && is_sync(&p.block.kind, p.block.plain);
            if p.block.last || flush || p.end_bit / 8 >= step_out || plain >= STEP_PLAIN_BYTES {
                break;
            }
            if k + 1 == s.parsed.len() {
                m = 0;
            }
        }
        if m == 0 {
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
        let checkpoint = if s.pos > 0 && input.checkpoint_due() {
            let first = input.pending.first().map_or(0, |&b| u32::from(b));
            let at = At {
                pos: s.pos,
                ahead: s.plain_emitted - s.pos,
                partial: ((first & ((1 << s.carry) - 1)) as u8, s.carry),
                recent: s.recent.make_contiguous(),
                flushed: (s.origin == s.pos).then_some(s.dict),
                held: s.win.first(),
            };
            // The window keeps what the model may still read (a level-1 warm-up takes only the
            // blocks it holds): a restart that would read more (a model far from its producer,
            // with long blocks) waits for a later step.
            GoCheckpoint::capture(self.producer, &s.model, &at)
                .filter(|cp| s.win.holds(cp.history_start()))
        } else {
            None
        };
        if let Some(cp) = &checkpoint {
            // What every rebuild does there, from the same payload.
            s.model = cp.model(&mut s.win);
            s.origin = s.pos;
        }
        let mut blocks = Vec::with_capacity(m);
        for (j, p) in s.parsed.iter().take(m).enumerate() {
            set_visible(&mut s.win, &shape, j, p.start, step_end, ends_at_sync);
            let b = &p.block;
            let stored = matches!(b.kind, Kind::Stored { .. });
            let mut diffs = Vec::new();
            let mut skip = false;
            if stored {
                walk_unheard(&mut s.model, &s.win, p.start, b.plain)
                    .ok_or(Error::EncoderUnsupported)?;
            } else {
                let mut toks = b.toks.iter();
                walk(&mut s.model, &s.win, p.start, b.plain, |i, proposal, _| {
                    let t = *toks.next()?;
                    if t != proposal {
                        diffs.push((i, t));
                    }
                    Some(t)
                })
                .ok_or(Error::EncoderUnsupported)?;
                // A literal-only block the model would have matched: level 1 wrote it so.
                if !diffs.is_empty() && s.model.chunked() && b.toks.iter().all(|t| !t.is_copy()) {
                    diffs.clear();
                    skip = true;
                }
            }
            if self.producer.resets_after(&b.kind, b.plain, b.last) {
                let at = p.start + b.plain;
                s.dict = Producer::flush_dictionary(s.origin, at);
                s.model = self.producer.model_with_dictionary(&s.win, at - s.dict, at);
                s.origin = at;
            }
            if b.plain > 0 {
                if s.recent.len() == FAST_WARM_BLOCKS {
                    s.recent.pop_front();
                }
                s.recent.push_back(b.plain);
            }
            let derived = match (&b.kind, self.producer) {
                (Kind::Dynamic(h), Producer::Go(_)) => {
                    go_header(&Histogram::of(&b.toks)) == (h.raw.clone(), h.bits)
                }
                _ => false,
            };
            self.diffs += diffs.len() as u64;
            if self.exact && self.diffs > 0 {
                return Err(Error::EncoderUnsupported);
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
            return Err(Error::EncoderUnsupported);
        }
        let plain = s.win.slice(s.plain_emitted, step_end).to_vec();
        let (Ok(plain_len), Ok(out_len)) = (u32::try_from(plain.len()), u32::try_from(out_bytes))
        else {
            return Err(Error::EncoderUnsupported);
        };
        let checkpoint = checkpoint.map(|cp| cp.encode());
        if let Some(cp) = &checkpoint {
            verifier.checkpoint(cp)?;
            self.overhead += cp.len() as u64;
        }
        verifier.submit(&plain, &data, &input.pending[..out_bytes])?;
        self.overhead += data.len() as u64;
        if let Some(cp) = checkpoint {
            emit(sink, Event::Checkpoint(cp))?;
            input.checkpoint_made();
        }
        if !plain.is_empty() {
            input.emit_plain(sink, plain)?;
        }
        emit(
            sink,
            Event::Step {
                plain: plain_len,
                out: out_len,
                data,
            },
        )?;
        s.plain_emitted = step_end;
        s.pos = e_last;
        s.carry = (end_bit % 8) as u32;
        s.parsed.drain(..m);
        input.pending.drain(..out_bytes);
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
    use super::*;
    use crate::verify::StepRebuild;

    pub(crate) const NO_LIMITS: Limits = Limits::UNLIMITED;

    /// Splits `gz` in `slice`-byte pieces and rebuilds it; returns payload, rebuilt bytes and
    /// reconstruction bytes.
    pub(crate) fn split_and_rebuild(
        gz: &[u8],
        producer: Producer,
        slice: usize,
    ) -> Result<(Vec<u8>, Vec<u8>, u64, u64), Error> {
        let mut sp = GoSplitter::new(producer, NO_LIMITS);
        let (mut payload, mut pending, mut rebuilt) = (Vec::new(), Vec::new(), Vec::new());
        let mut rb = GoRebuilder::default();
        let mut sink = |e: Event<'_>| {
            match e {
                Event::Raw(b) => {
                    rb.reset();
                    rebuilt.extend_from_slice(b);
                }
                Event::Checkpoint(c) => StepRebuild::checkpoint(&mut rb, &c).unwrap(),
                Event::Plain(p) => {
                    payload.extend_from_slice(&p);
                    pending.extend_from_slice(&p);
                }
                Event::Step { plain, out, data } => {
                    assert_eq!(plain as usize, pending.len());
                    let bytes = rb
                        .rebuild_step(&std::mem::take(&mut pending), &data)
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
        let (overhead, diffs) = sp.cost();
        Ok((payload, rebuilt, overhead, diffs))
    }

    pub(crate) fn fixture(name: &str) -> Vec<u8> {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../store/tests/fixtures/go");
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
    fn issue_14_level_1_streams_flushed_often_get_checkpoints() {
        // A level-1 checkpoint warms its model over the blocks before it; after flushes every
        // 10,000 bytes those reach further back than the model reads, so the warm-up takes
        // only the blocks the splitter still holds (else steps long enough for the window to
        // drop what it no longer reads started at no checkpoint). zlib wrote this stream: the
        // model records differences, and the rebuild is exact through every checkpoint.
        let plain = plain_of(&fixture("gzip_1.gz")).repeat(20);
        let gz = {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(1));
            for piece in plain.chunks(10_000) {
                e.write_all(piece).unwrap();
                e.flush().unwrap();
            }
            e.finish().unwrap()
        };
        let step = 96 * 1024;
        let mut sp =
            GoSplitter::with_step(Producer::Go(1), NO_LIMITS, step).with_checkpoints(step as u64);
        // Each step's payload offset, data and bytes, and the checkpoint before it.
        let mut events = Vec::new();
        let (mut plain_at, mut pending, mut cp) = (0, 0, None);
        let mut sink = |e: Event<'_>| {
            match e {
                Event::Raw(_) => {}
                Event::Checkpoint(c) => cp = Some(GoCheckpoint::decode(&c).unwrap()),
                Event::Plain(p) => pending += p.len(),
                Event::Step { data, .. } => {
                    events.push((plain_at, pending, data, cp.take()));
                    plain_at += std::mem::take(&mut pending);
                }
            }
            true
        };
        sp.feed(&gz, &mut sink).unwrap();
        sp.finish(&mut sink).unwrap();
        let mut rb = GoRebuilder::default();
        let mut deflate = Vec::new();
        for (at, len, data, cp) in &events {
            if let Some(cp) = cp {
                rb.checkpoint(cp, None).unwrap();
            }
            let bytes = rb.rebuild_step(&plain[*at..at + len], data).unwrap();
            if let Some(cp) = cp {
                // The same step, from the checkpoint and the history it names alone.
                let mut alone = GoRebuilder::default();
                let h = &plain[at - cp.history()..*at];
                alone.checkpoint(cp, Some(h)).unwrap();
                assert!(alone.rebuild_step(&plain[*at..at + len], data).unwrap() == bytes);
            }
            deflate.extend(bytes);
        }
        let header = 10;
        assert!(deflate[..] == gz[header..gz.len() - 8]);
        // Every step but the first starts at a checkpoint.
        let n = events.iter().filter(|e| e.3.is_some()).count();
        assert!(
            events.len() > 8 && n + 1 == events.len(),
            "{n} of {}",
            events.len()
        );
    }

    #[test]
    fn damaged_streams_halt() {
        let gz = fixture("gzip_6.gz");
        let malformed = Err(Error::MemberMalformed);
        assert_eq!(
            split_and_rebuild(&gz[..gz.len() - 20], Producer::Go(6), 1 << 20).map(|_| ()),
            malformed
        );
        let mut bad = gz.clone();
        bad[10] |= 0b110; // BTYPE 3
        assert_eq!(
            split_and_rebuild(&bad, Producer::Go(6), 1 << 20).map(|_| ()),
            Err(Error::EncoderUnsupported)
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
