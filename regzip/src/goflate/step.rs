//! One step of a deflate stream: its blocks as reconstruction data (see the module
//! documentation for the byte layout), the walk that turns predictions plus differences into
//! tokens, and [`GoRebuilder`], which writes a stream again step by step.

use super::{
    MAGIC, MODEL_VERSION, Producer,
    checkpoint::GoCheckpoint,
    deflate::{Block, Header, Kind, MAX_DIST, Tok},
    huffman::go_header,
    predict::{Model, Window},
    write::{BitOut, Histogram, writable, write_block},
};
use crate::{Error, verify::StepRebuild};

/// A block as recorded: everything but its tokens, plus the differences that give them.
#[derive(Clone, Debug)]
pub(crate) struct Recorded {
    pub(crate) last: bool,
    pub(crate) kind: Kind,
    pub(crate) plain: usize,
    /// Tokens are the block's bytes as literals; the model runs over them unheard (Go's level
    /// 1 writes a chunk it could not shrink as literals after matching it).
    pub(crate) skip: bool,
    /// (token index, actual token) where the prediction was wrong.
    pub(crate) diffs: Vec<(u32, Tok)>,
    /// A dynamic block whose header is the one Go derives from its tokens (not recorded;
    /// `kind` is then a placeholder).
    pub(crate) derived: bool,
}

/// A step's reconstruction data.
#[derive(Clone, Debug)]
pub(crate) struct StepData {
    pub(crate) producer: Producer,
    /// The step's payload ends where the encoder's input ended (a flush or the close).
    pub(crate) ends_at_sync: bool,
    pub(crate) blocks: Vec<Recorded>,
    /// Padding bits after the last block of the stream (only when it is in this step).
    pub(crate) final_pad: u8,
}

pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(super) struct Cursor<'a>(pub(super) &'a [u8]);

impl Cursor<'_> {
    pub(super) fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    pub(super) fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    fn bytes(&mut self, n: usize) -> Option<&[u8]> {
        if n > self.0.len() {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
}

fn tok_code(t: Tok) -> u64 {
    if t.is_copy() {
        1 + ((t.dist() as u64 - 1) << 9 | (t.len() as u64 - 3))
    } else {
        0
    }
}

impl StepData {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.push(MODEL_VERSION);
        out.push(self.producer.code());
        out.push(u8::from(self.ends_at_sync));
        put_varint(&mut out, self.blocks.len() as u64);
        for b in &self.blocks {
            let btype = match b.kind {
                Kind::Stored { .. } => 0,
                Kind::Fixed => 1,
                Kind::Dynamic(_) => 2,
            };
            let btype = if b.derived { 2 } else { btype };
            out.push(
                u8::from(b.last) | btype << 1 | u8::from(b.skip) << 3 | u8::from(b.derived) << 4,
            );
            put_varint(&mut out, b.plain as u64);
            match &b.kind {
                _ if b.derived => {}
                Kind::Stored { pad } => out.push(*pad),
                Kind::Fixed => {}
                Kind::Dynamic(h) => {
                    put_varint(&mut out, h.bits as u64);
                    out.extend_from_slice(&h.raw);
                }
            }
            if !matches!(b.kind, Kind::Stored { .. }) && !b.skip {
                put_varint(&mut out, b.diffs.len() as u64);
                let mut last = 0u32;
                for &(i, t) in &b.diffs {
                    put_varint(&mut out, u64::from(i - last));
                    put_varint(&mut out, tok_code(t));
                    last = i;
                }
            }
        }
        out.push(self.final_pad);
        out
    }

    /// Decodes reconstruction data, telling data of a later model version from damaged data.
    pub(crate) fn decode(bytes: &[u8]) -> Result<StepData, Error> {
        let version = bytes.strip_prefix(&MAGIC).and_then(|b| b.first().copied());
        match version {
            // Version 2 kept version 1's layout (it added checkpoints between steps).
            Some(1..=MODEL_VERSION) => {}
            Some(found) if found > MODEL_VERSION => {
                return Err(Error::ModelUnknown {
                    found,
                    known: MODEL_VERSION,
                });
            }
            _ => return Err(Error::damaged("goflate data without its magic and version")),
        }
        StepData::decode_layout(&bytes[MAGIC.len() + 1..])
            .ok_or_else(|| Error::damaged("goflate data does not decode"))
    }

    /// Decodes what follows the magic and version.
    fn decode_layout(bytes: &[u8]) -> Option<StepData> {
        let mut c = Cursor(bytes);
        let producer = Producer::from_code(c.byte()?)?;
        let ends_at_sync = match c.byte()? {
            0 => false,
            1 => true,
            _ => return None,
        };
        let n = c.varint()?;
        let mut blocks = Vec::new();
        for _ in 0..n {
            let head = c.byte()?;
            let plain = usize::try_from(c.varint()?).ok()?;
            let derived = head & 16 != 0;
            let kind = match head >> 1 & 3 {
                2 if derived => Kind::Fixed,
                0 => Kind::Stored { pad: c.byte()? },
                1 => Kind::Fixed,
                2 => {
                    let bits = usize::try_from(c.varint()?).ok()?;
                    let raw = c.bytes(bits.div_ceil(8))?;
                    Kind::Dynamic(Box::new(Header::from_raw(raw, bits)?))
                }
                _ => return None,
            };
            let skip = head & 8 != 0;
            let mut diffs = Vec::new();
            if !matches!(kind, Kind::Stored { .. }) && !skip {
                let nd = c.varint()?;
                let mut at = 0u32;
                for _ in 0..nd {
                    at = at.checked_add(u32::try_from(c.varint()?).ok()?)?;
                    let code = c.varint()?;
                    let t = if code == 0 {
                        None
                    } else {
                        let v = code - 1;
                        let (len, dist) = ((v & 0x1ff) as usize + 3, (v >> 9) as usize + 1);
                        if len > 258 || dist > MAX_DIST {
                            return None;
                        }
                        Some(Tok::copy(len, dist))
                    };
                    // A literal difference is marked with a placeholder: its byte is the data's.
                    diffs.push((at, t.unwrap_or(Tok::lit(0))));
                }
            }
            if head & 0xe0 != 0 {
                return None;
            }
            blocks.push(Recorded {
                last: head & 1 != 0,
                kind,
                plain,
                skip,
                diffs,
                derived,
            });
        }
        let final_pad = c.byte()?;
        c.0.is_empty().then_some(StepData {
            producer,
            ends_at_sync,
            blocks,
            final_pad,
        })
    }
}

/// Whether a block is a sync point (an empty stored block: a flush or the close).
pub(crate) fn is_sync(kind: &Kind, plain: usize) -> bool {
    matches!(kind, Kind::Stored { .. }) && plain == 0
}

/// Sets what the model may see for block `j` of a step (`syncs[k]`: block `k` of the step
/// ends where the encoder's input ended): up to the first sync point at or after its end
/// within the step, else the step's payload end.
pub(crate) fn set_visible(
    w: &mut Window,
    blocks: &[(usize, bool)],
    j: usize,
    start: usize,
    step_end: usize,
    ends_at_sync: bool,
) {
    let mut pos = start;
    for &(plain, sync) in blocks.iter().skip(j) {
        pos += plain;
        if sync {
            w.end = pos;
            w.sync = true;
            return;
        }
    }
    w.end = step_end;
    w.sync = ends_at_sync;
}

/// Walks one block: asks the model for each token and `decide` for the actual one.
/// Returns `None` if the actual tokens do not fit the block.
pub(crate) fn walk(
    model: &mut Model,
    w: &Window,
    start: usize,
    len: usize,
    mut decide: impl FnMut(u32, Tok, usize) -> Option<Tok>,
) -> Option<()> {
    let end = start + len;
    if end > w.end || !w.holds(start.saturating_sub(MAX_DIST)) && start >= MAX_DIST {
        return None;
    }
    model.begin_block(w, start, len);
    let mut pos = start;
    let mut i = 0u32;
    while pos < end {
        let proposal = model.propose(w).unwrap_or_else(|| Tok::lit(w.at(pos)));
        let actual = decide(i, proposal, pos)?;
        if pos + actual.len() > end || actual.is_copy() && actual.dist() > pos {
            return None;
        }
        model.commit(w, pos, actual);
        pos += actual.len();
        i += 1;
    }
    Some(())
}

/// Walks a block whose tokens are all as predicted, appending them to `out` and counting them;
/// the chunk models hand over their tokens without a proposal and commit per token.
pub(crate) fn walk_predicted(
    model: &mut Model,
    w: &Window,
    start: usize,
    len: usize,
    (toks, hist): (&mut Vec<Tok>, &mut Histogram),
) -> Option<()> {
    let end = start + len;
    if end > w.end || !w.holds(start.saturating_sub(MAX_DIST)) && start >= MAX_DIST {
        return None;
    }
    model.begin_block(w, start, len);
    match model {
        Model::Fast(f) => f.fill(w, start, end, (toks, hist)),
        Model::Fast5(f) => f.fill(w, start, end, (toks, hist)),
        Model::Chains(_) => walk(model, w, start, len, |_, t, _| {
            toks.push(t);
            hist.add(t);
            Some(t)
        }),
    }
}

/// Walks a block whose tokens are not predicted (stored, or literals): the model runs over
/// its bytes with its own proposals, cut to fit.
pub(crate) fn walk_unheard(model: &mut Model, w: &Window, start: usize, len: usize) -> Option<()> {
    let end = start + len;
    walk(model, w, start, len, |_, t, pos| {
        Some(if pos + t.len() <= end {
            t
        } else {
            Tok::lit(w.at(pos))
        })
    })
}

/// Rebuilds a deflate stream step by step from payload and goflate reconstruction data.
#[derive(Debug, Default)]
pub(crate) struct GoRebuilder {
    state: Option<Stream>,
}

#[derive(Debug)]
struct Stream {
    win: Window,
    model: Model,
    producer: Producer,
    /// Payload position where the next block starts.
    pos: usize,
    partial: (u8, u32),
    done: bool,
    /// Where the model's independent block started.
    origin: usize,
    /// The tokens of the block being written (kept for the next block's).
    toks: Vec<Tok>,
}

impl GoRebuilder {
    /// Restarts the stream at a checkpoint: from `history` (the payload it names, from a
    /// rebuild starting there), or from the payload this rebuilder holds (a rebuild going
    /// through it, which copies the same bytes and so proves the first kind exact).
    pub(crate) fn checkpoint(
        &mut self,
        cp: &GoCheckpoint,
        history: Option<&[u8]>,
    ) -> Result<(), Error> {
        let (from, to) = (cp.history_start(), cp.pos + cp.ahead);
        let bytes = match history {
            Some(h) if h.len() == to - from => h.to_vec(),
            Some(_) => return Err(Error::damaged("a checkpoint with the wrong history")),
            None => {
                let s = self.state.as_ref().filter(|s| {
                    !s.done
                        && s.producer == cp.producer
                        && s.pos == cp.pos
                        && s.win.held() == to
                        && s.win.holds(from)
                });
                let Some(s) = s else {
                    return Err(Error::damaged(
                        "a checkpoint that is not where its stream is",
                    ));
                };
                s.win.slice(from, to).to_vec()
            }
        };
        let mut win = Window::starting_at(from, bytes);
        let model = cp.model(&mut win);
        self.state = Some(Stream {
            win,
            model,
            producer: cp.producer,
            pos: cp.pos,
            partial: cp.partial,
            done: false,
            origin: cp.pos,
            toks: Vec::new(),
        });
        Ok(())
    }
}

impl StepRebuild for GoRebuilder {
    fn reset(&mut self) {
        self.state = None;
    }

    fn checkpoint(&mut self, state: &[u8]) -> Result<(), Error> {
        if state.is_empty() {
            self.state = None;
            return Ok(());
        }
        let cp = GoCheckpoint::decode(state)?;
        GoRebuilder::checkpoint(self, &cp, None)
    }

    /// Rebuilds one step: `plain` is its payload, `data` its reconstruction data.
    fn rebuild_step(&mut self, plain: &[u8], data: &[u8]) -> Result<Vec<u8>, Error> {
        let d = StepData::decode(data)?;
        if self.state.is_none() {
            self.state = Some(Stream {
                win: Window::default(),
                model: d.producer.model(0),
                producer: d.producer,
                pos: 0,
                partial: (0, 0),
                done: false,
                origin: 0,
                toks: Vec::new(),
            });
        }
        let Some(s) = self.state.as_mut() else {
            return Err(Error::damaged("no stream"));
        };
        if s.done || s.producer != d.producer {
            return Err(Error::damaged("goflate step after the end of its stream"));
        }
        s.win.push(plain);
        let step_end = s.win.held();
        let room = plain.len().min(2 * super::STEP_OUT_BYTES) + 64;
        let mut o = BitOut::with_partial(s.partial.0, s.partial.1, room);
        let shape: Vec<(usize, bool)> = d
            .blocks
            .iter()
            .map(|b| (b.plain, b.last || is_sync(&b.kind, b.plain)))
            .collect();
        for (j, b) in d.blocks.iter().enumerate() {
            let start = s.pos;
            let end = start
                .checked_add(b.plain)
                .filter(|&e| e <= step_end)
                .ok_or_else(|| Error::damaged("a block needs more payload than its step has"))?;
            set_visible(&mut s.win, &shape, j, start, step_end, d.ends_at_sync);
            let mut toks = std::mem::take(&mut s.toks);
            toks.clear();
            let mut hist = Histogram::default();
            match &b.kind {
                Kind::Stored { .. } => {
                    if b.plain > 65535 {
                        return Err(Error::damaged("a stored block longer than 65535 bytes"));
                    }
                    walk_unheard(&mut s.model, &s.win, start, b.plain)
                        .ok_or_else(|| Error::damaged("a stored block does not fit"))?;
                }
                _ if b.skip => {
                    walk_unheard(&mut s.model, &s.win, start, b.plain)
                        .ok_or_else(|| Error::damaged("a literal block does not fit"))?;
                    toks.extend(s.win.slice(start, end).iter().map(|&c| Tok::lit(c)));
                    hist = Histogram::of(&toks);
                }
                _ if b.diffs.is_empty() => {
                    walk_predicted(&mut s.model, &s.win, start, b.plain, (&mut toks, &mut hist))
                        .ok_or_else(|| Error::damaged("tokens do not fit their block"))?;
                }
                _ => {
                    let mut diffs = b.diffs.iter().peekable();
                    let win = &s.win;
                    walk(&mut s.model, win, start, b.plain, |i, proposal, pos| {
                        let t = match diffs.peek() {
                            Some(&&(at, t)) if at == i => {
                                diffs.next();
                                if t.is_copy() {
                                    t
                                } else {
                                    Tok::lit(win.at(pos))
                                }
                            }
                            _ => proposal,
                        };
                        toks.push(t);
                        hist.add(t);
                        Some(t)
                    })
                    .ok_or_else(|| Error::damaged("tokens do not fit their block"))?;
                    if diffs.next().is_some() {
                        return Err(Error::damaged("differences past the end of a block"));
                    }
                }
            }
            let kind = if b.derived {
                let (raw, bits) = go_header(&hist);
                let h = Header::from_raw(&raw, bits)
                    .ok_or_else(|| Error::damaged("a derived Huffman header"))?;
                Kind::Dynamic(Box::new(h))
            } else {
                b.kind.clone()
            };
            if !writable(&kind, &hist) {
                return Err(Error::damaged("a token has no code in its block"));
            }
            let block = Block {
                last: b.last,
                kind,
                plain: b.plain,
                toks,
            };
            write_block(&mut o, &block, s.win.slice(start, end));
            s.toks = block.toks;
            s.pos = end;
            if s.producer.resets_after(&b.kind, b.plain, b.last) {
                let dict = Producer::flush_dictionary(s.origin, end);
                s.model = s.producer.model_with_dictionary(&s.win, end - dict, end);
                s.origin = end;
            }
            if b.last {
                s.done = true;
                let n = (8 - o.pending_bits() % 8) % 8;
                o.put(u32::from(d.final_pad), n);
                break;
            }
        }
        // Payload past the last block is the lookahead of the next step, but none may follow
        // the stream's end.
        if s.done && s.pos != step_end {
            return Err(Error::damaged("payload after the end of the stream"));
        }
        s.partial = o.partial();
        let oldest = s.model.oldest().min(s.pos.saturating_sub(MAX_DIST));
        s.win.trim(oldest);
        Ok(o.into_bytes())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::{
        Event, Limits, Splitter,
        goflate::{GoSplitter, Producer, split::tests::fixture},
    };

    /// The (payload, reconstruction data) of every step of a committed fixture.
    fn steps(name: &str, producer: Producer) -> Vec<(Vec<u8>, Vec<u8>)> {
        let gz = fixture(name);
        // Small steps: a fixture makes several.
        let mut sp =
            GoSplitter::with_step(producer, Limits::UNLIMITED, 8 * 1024).with_checkpoints(0);
        let (mut out, mut plain) = (Vec::new(), Vec::new());
        let mut sink = |e: Event<'_>| {
            match e {
                Event::Plain(p) => plain.extend(p),
                Event::Step { data, .. } => out.push((std::mem::take(&mut plain), data)),
                Event::Raw(_) | Event::Checkpoint(_) => {}
            }
            true
        };
        sp.feed(&gz, &mut sink).unwrap();
        sp.finish(&mut sink).unwrap();
        out
    }

    #[test]
    fn step_data_round_trips() {
        let all = steps("gzip_1_flush10000.gz", Producer::Go(1));
        assert!(all.len() > 3);
        for (_, data) in all {
            let d = StepData::decode(&data).unwrap();
            assert_eq!(d.encode(), data);
        }
    }

    #[test]
    fn data_of_a_later_model_version_is_named_not_misread() {
        let (plain, mut data) = steps("gzip_1.gz", Producer::Go(1)).remove(0);
        data[MAGIC.len()] = MODEL_VERSION + 1;
        let got = GoRebuilder::default().rebuild_step(&plain, &data);
        assert_eq!(
            got,
            Err(Error::ModelUnknown {
                found: MODEL_VERSION + 1,
                known: MODEL_VERSION
            })
        );
        data[MAGIC.len()] = 0;
        assert!(matches!(
            GoRebuilder::default().rebuild_step(&plain, &data),
            Err(Error::Damaged { .. })
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn damaged_reconstruction_data_never_panics(
            which in 0usize..3,
            damaged in 0usize..4,
            at in 0usize..4000,
            byte in 0u8..=255,
            cut in proptest::option::of(0usize..4000),
        ) {
            let (name, producer) = [
                ("gzip_6.gz", Producer::Go(6)),
                ("gzip_1.gz", Producer::Go(1)),
                ("pgzip_-1_65536.gz", Producer::Pgzip(5)),
            ][which];
            let mut rb = GoRebuilder::default();
            let all = steps(name, producer);
            let damaged = damaged % all.len();
            for (k, (plain, mut data)) in all.into_iter().enumerate() {
                if k == damaged {
                    if let Some(i) = data.len().checked_sub(1).map(|n| at.min(n)) {
                        data[i] ^= byte;
                    }
                    if let Some(c) = cut {
                        data.truncate(c.min(data.len()));
                    }
                }
                // Anything but a panic: wrong bytes are caught by the digest.
                if rb.rebuild_step(&plain, &data).is_err() {
                    break;
                }
            }
        }
    }
}
