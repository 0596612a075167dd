//! Checkpoints (issue 14): step starts where a rebuild may begin without the steps before
//! them, so that one deflate stream rebuilds on several cores and a range read starts near
//! its first byte.
//!
//! A checkpoint sits at a step's start, a block boundary at payload position `pos`. There the
//! splitter and every rebuild replace the model by a canonical one, made only from the payload
//! before `pos` and the few values the checkpoint records; the split then records, as for any
//! step, the tokens where the canonical model's proposals differ from the stream. So the
//! rebuild is exact whatever the canonical state is (and the verifier proves it, rebuilding
//! through the same reset); the closer it is to the encoder's real state, the fewer
//! differences it costs:
//! - Go's levels 2-9 (`Chains`): every position of the last 32 KiB hashed into the chains up
//!   to the next one Go would hash, Go's window start, and, when a block ends in the middle of
//!   a lazy evaluation, the match found at `pos`. Levels 4-9 hash every position, so that is
//!   Go's own state (but for the three positions before a flush, which Go never hashes);
//!   levels 2-3 skip the inside of long matches, which the canonical state hashes, at the cost
//!   of a few differences.
//! - Go's level 1 (`Fast`): a fresh model run over the blocks right before `pos` (those that
//!   fit in 128 KiB and that the splitter still holds, their lengths recorded: see
//!   [`FAST_WARM_BLOCKS`]), which rebuilds its table and previous chunk from them.
//! - pgzip: its blocks are independent, so checkpoints sit only right after a flush, where
//!   the model restarts anyway with the previous block's tail as its dictionary (whose length
//!   is recorded): no difference is added.
//!
//! The bits of the byte the step shares with the previous one are recorded too, so that its
//! output starts exactly where the previous step's ended.
//!
//! Byte layout (model version 2; varints are LEB128):
//!
//! ```text
//! checkpoint := "GOC" model:u8 producer:u8 pos:varint ahead:varint bits:u8 partial:u8 state
//! state      := wstart:varint insert:varint lazy:u8 [length:varint offset:varint]  Go 2-9
//!             | n:u8 len:varint{n}                                               Go 1
//!             | dict:varint                                                      pgzip
//! ```
//!
//! `pos` is the payload position of the step's first block in its deflate stream, `ahead` the
//! payload the steps before it emitted past `pos` (the step's own payload starts at
//! `pos + ahead`), `bits` (0-7) and `partial` the bits of the shared byte. Go 2-9: `pos`
//! minus Go's window start, `pos + 1` minus the next position to hash, whether a literal is
//! pending (then the length and offset of the match at `pos`, 3 and 0 for none). Go 1: the
//! lengths of the blocks right before `pos`, oldest first. pgzip: the bytes of dictionary
//! before `pos` (0 or 16 KiB). A rebuild starting here needs the payload from
//! `pos - back` to `pos + ahead` ([`GoCheckpoint::history`]): `back` is 32 KiB (less at the
//! stream's start: what the model reads for Go 2-9, and what a block's copies reach), or the
//! blocks' lengths for Go 1 when longer.

use super::{
    MODEL_VERSION, PGZIP_DICT_BYTES, Producer,
    deflate::{MAX_BLOCK_PLAIN, MAX_DIST, MAX_MATCH},
    fast1::Fast,
    predict::{Chains, Model, Window, params},
    step::{Cursor, put_varint},
};
use crate::Error;

/// First bytes of every goflate checkpoint.
pub(crate) const CHECKPOINT_MAGIC: [u8; 3] = *b"GOC";

/// Blocks before a level-1 checkpoint its model is run over: the last ones that fit in
/// [`FAST_WARM_BYTES`] (two chunks; more, shorter ones after flushes: Go matches the four bytes
/// of any table entry within 32 KiB, whichever block it came from, and the table converges to
/// Go's only over the blocks before), at most this many, and only those the splitter's window
/// still holds. That window keeps at least 100 KiB behind `pos` (the 32 KiB the model reads
/// and 68 KiB more), not always 128 KiB: after flushes every 10,000 bytes, a warm-up over
/// 13 blocks was refused at every step after which the window dropped history, so such
/// streams got no checkpoint; one over the 10 blocks it holds costs no more differences there
/// (issue 14). A rebuild passing the checkpoint trims its window by the same rule.
pub(crate) const FAST_WARM_BLOCKS: usize = 64;
const FAST_WARM_BYTES: usize = 2 * 65535;

/// What a checkpoint records of its model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ModelState {
    /// Go 2-9: `pos` minus Go's window start, `pos + 1` minus the next position to hash, and
    /// the match at `pos` (length, offset) when a literal is pending.
    Chains {
        wstart: usize,
        insert: usize,
        lazy: Option<(usize, usize)>,
    },
    /// Go 1: the lengths of the blocks before `pos`, oldest first.
    Fast(Vec<usize>),
    /// pgzip, right after a flush: bytes of dictionary before `pos`.
    Flush(usize),
}

/// A checkpoint of a goflate stream (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GoCheckpoint {
    pub(crate) producer: Producer,
    /// Payload position of the step's first block.
    pub(crate) pos: usize,
    /// Payload the steps before emitted past `pos`.
    pub(crate) ahead: usize,
    /// The bits of the byte shared with the previous step, and how many (0-7).
    pub(crate) partial: (u8, u32),
    pub(crate) state: ModelState,
}

/// Where a splitter is when it considers a checkpoint.
pub(crate) struct At<'a> {
    /// Payload position of the step's first block.
    pub(crate) pos: usize,
    /// Payload already emitted past it.
    pub(crate) ahead: usize,
    pub(crate) partial: (u8, u32),
    /// Lengths of the last non-empty blocks before `pos`, oldest first.
    pub(crate) recent: &'a [usize],
    /// The dictionary the model restarted with at `pos`, after a flush.
    pub(crate) flushed: Option<usize>,
    /// The oldest payload position the splitter still holds.
    pub(crate) held: usize,
}

impl GoCheckpoint {
    /// A checkpoint of `model` at a step start, or `None` where it cannot restart (pgzip away
    /// from a flush, a model not where the step starts).
    pub(crate) fn capture(producer: Producer, model: &Model, at: &At<'_>) -> Option<GoCheckpoint> {
        let state = match (producer, model) {
            (Producer::Pgzip(_), _) => ModelState::Flush(at.flushed?),
            (Producer::Go(1), Model::Fast(_)) => {
                let (mut n, mut sum) = (0, 0);
                for &len in at.recent.iter().rev() {
                    if n == FAST_WARM_BLOCKS
                        || sum + len > FAST_WARM_BYTES
                        || at.pos < at.held + sum + len
                    {
                        break;
                    }
                    (n, sum) = (n + 1, sum + len);
                }
                ModelState::Fast(at.recent[at.recent.len() - n..].to_vec())
            }
            (Producer::Go(_), Model::Chains(c)) => {
                let lazy = c.byte_available.then_some((c.length, c.offset));
                let index = at.pos + usize::from(lazy.is_some());
                if c.pending.is_some() || c.index != index || c.wstart > at.pos {
                    return None;
                }
                ModelState::Chains {
                    wstart: at.pos - c.wstart,
                    insert: (at.pos + 1).checked_sub(c.next_insert)?,
                    lazy,
                }
            }
            _ => return None,
        };
        let cp = GoCheckpoint {
            producer,
            pos: at.pos,
            ahead: at.ahead,
            partial: at.partial,
            state,
        };
        cp.valid().then_some(cp)
    }

    /// Where the payload the model is made from starts.
    fn model_start(&self) -> usize {
        match &self.state {
            ModelState::Chains { .. } if self.greedy() => self.pos - self.pos.min(3 * MAX_DIST),
            ModelState::Chains { .. } => self.pos - self.pos.min(MAX_DIST),
            ModelState::Fast(lens) => self.pos - lens.iter().sum::<usize>(),
            ModelState::Flush(dict) => self.pos - dict,
        }
    }

    /// Whether the model is of a greedy Go level (2-3), which skips hashing inside long
    /// matches.
    fn greedy(&self) -> bool {
        params(self.producer.level()).is_some_and(|p| !Chains::new(p, 0).lazy())
    }

    /// Payload before `pos` a rebuild holds: what the model is made from, and at least the
    /// 32 KiB a block's copies may reach back (which the walk over a block checks).
    fn back(&self) -> usize {
        (self.pos - self.model_start()).max(self.pos.min(MAX_DIST))
    }

    /// Payload position where the history a rebuild starting here needs begins.
    pub(crate) fn history_start(&self) -> usize {
        self.pos - self.back()
    }

    /// Payload bytes before the step that a rebuild starting here needs.
    pub(crate) fn history(&self) -> usize {
        self.back() + self.ahead
    }

    /// The canonical model at the checkpoint, from a window holding the history; the window's
    /// visible end moves to the step's payload start, where the history ends.
    pub(crate) fn model(&self, w: &mut Window) -> Model {
        let hist = self.model_start();
        w.end = self.pos + self.ahead;
        w.sync = false;
        match &self.state {
            ModelState::Chains {
                wstart,
                insert,
                lazy,
            } => {
                let level = self.producer.level();
                // `valid` keeps Go 2-9 with this state.
                let p = params(level).unwrap_or_else(|| unreachable!("level {level}"));
                let mut c = Chains::new(p, hist);
                let next_insert = self.pos + 1 - insert;
                if c.lazy() {
                    c.insert_range(w, hist, next_insert);
                    c.next_insert = next_insert;
                } else {
                    // Go's window start when the warm-up starts: it slides by 32 KiB at
                    // the same places as Go's did.
                    let w_at = self.pos - wstart;
                    c.wstart = w_at - w_at.saturating_sub(hist).div_ceil(MAX_DIST) * MAX_DIST;
                    warm_up(&mut c, w, self.pos);
                    c.insert_range(w, c.next_insert, next_insert);
                    c.next_insert = c.next_insert.max(next_insert);
                }
                c.wstart = self.pos - wstart;
                c.index = self.pos;
                if let Some((length, offset)) = *lazy {
                    c.index += 1;
                    c.byte_available = true;
                    c.length = length;
                    c.offset = offset;
                }
                Model::Chains(Box::new(c))
            }
            ModelState::Fast(lens) => {
                let mut f = Fast::new(hist);
                let mut at = hist;
                for &len in lens {
                    f.begin_block(w, at, len);
                    at += len;
                }
                f.queue.clear();
                f.at = at;
                Model::Fast(Box::new(f))
            }
            ModelState::Flush(_) => self.producer.model_with_dictionary(w, hist, self.pos),
        }
    }

    /// Whether the values are in range and the state is the producer's.
    fn valid(&self) -> bool {
        let (bits, n) = self.partial;
        let state = match (&self.state, self.producer) {
            (
                ModelState::Chains {
                    wstart,
                    insert,
                    lazy,
                },
                Producer::Go(2..=9),
            ) => {
                *wstart <= self.pos.min(2 * MAX_DIST)
                    && *insert <= self.pos + 1
                    && lazy.is_none_or(|(l, o)| (3..=MAX_MATCH).contains(&l) && o <= MAX_DIST)
            }
            (ModelState::Fast(lens), Producer::Go(1)) => {
                let sum = lens.iter().map(|&l| l.min(MAX_BLOCK_PLAIN)).sum::<usize>();
                lens.len() <= FAST_WARM_BLOCKS && sum <= FAST_WARM_BYTES.min(self.pos)
            }
            (ModelState::Flush(dict), Producer::Pgzip(_)) => {
                *dict <= PGZIP_DICT_BYTES && *dict <= self.pos
            }
            _ => false,
        };
        state
            && self.ahead <= self.producer.lookahead()
            && n <= 7
            && u32::from(bits) < 1 << n
            && self.pos.checked_add(self.ahead).is_some()
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = CHECKPOINT_MAGIC.to_vec();
        out.push(MODEL_VERSION);
        out.push(self.producer.code());
        put_varint(&mut out, self.pos as u64);
        put_varint(&mut out, self.ahead as u64);
        out.push(self.partial.1 as u8);
        out.push(self.partial.0);
        match &self.state {
            ModelState::Chains {
                wstart,
                insert,
                lazy,
            } => {
                put_varint(&mut out, *wstart as u64);
                put_varint(&mut out, *insert as u64);
                out.push(u8::from(lazy.is_some()));
                if let Some((length, offset)) = lazy {
                    put_varint(&mut out, *length as u64);
                    put_varint(&mut out, *offset as u64);
                }
            }
            ModelState::Fast(lens) => {
                out.push(lens.len() as u8);
                for &l in lens {
                    put_varint(&mut out, l as u64);
                }
            }
            ModelState::Flush(dict) => put_varint(&mut out, *dict as u64),
        }
        out
    }

    /// Decodes a checkpoint, telling one of a later model version from a damaged one.
    pub(crate) fn decode(bytes: &[u8]) -> Result<GoCheckpoint, Error> {
        match bytes
            .strip_prefix(&CHECKPOINT_MAGIC)
            .and_then(|b| b.first())
        {
            Some(&v) if (2..=MODEL_VERSION).contains(&v) => {}
            Some(&found) if found > MODEL_VERSION => {
                return Err(Error::ModelUnknown {
                    found,
                    known: MODEL_VERSION,
                });
            }
            _ => return Err(Error::damaged("a checkpoint without its magic and version")),
        }
        GoCheckpoint::decode_layout(&bytes[CHECKPOINT_MAGIC.len() + 1..])
            .filter(GoCheckpoint::valid)
            .ok_or_else(|| Error::damaged("a checkpoint does not decode"))
    }

    fn decode_layout(bytes: &[u8]) -> Option<GoCheckpoint> {
        let mut c = Cursor(bytes);
        let size = |v: u64| usize::try_from(v).ok();
        let producer = Producer::from_code(c.byte()?)?;
        let pos = size(c.varint()?)?;
        let ahead = size(c.varint()?)?;
        let n = u32::from(c.byte()?);
        let bits = c.byte()?;
        let state = match producer {
            Producer::Go(1) => {
                let k = c.byte()?;
                let lens = (0..k)
                    .map(|_| size(c.varint()?))
                    .collect::<Option<Vec<usize>>>()?;
                ModelState::Fast(lens)
            }
            Producer::Go(_) => {
                let wstart = size(c.varint()?)?;
                let insert = size(c.varint()?)?;
                let lazy = match c.byte()? {
                    0 => None,
                    1 => Some((size(c.varint()?)?, size(c.varint()?)?)),
                    _ => return None,
                };
                ModelState::Chains {
                    wstart,
                    insert,
                    lazy,
                }
            }
            Producer::Pgzip(_) => ModelState::Flush(size(c.varint()?)?),
        };
        c.0.is_empty().then_some(GoCheckpoint {
            producer,
            pos,
            ahead,
            partial: (bits, n),
            state,
        })
    }
}

/// Runs a greedy model over the payload from its start to `pos` as if the input ended there,
/// taking its own proposals: its chains then skip what Go's skipped wherever the two parses
/// agree, which they soon do (a fresh start hashes every position and costs hundreds of
/// differences per checkpoint at level 2). Leaves the window's end at `pos`.
fn warm_up(c: &mut Chains, w: &mut Window, pos: usize) {
    while c.index < pos && c.propose(w).is_some() {
        let Some((at, t, _)) = c.pending else {
            break;
        };
        if at + t.len() > pos {
            c.pending = None;
            break;
        }
        c.commit(w, at, t);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn examples() -> Vec<GoCheckpoint> {
        let cp = |producer, pos, ahead, state| GoCheckpoint {
            producer,
            pos,
            ahead,
            partial: (0b101, 3),
            state,
        };
        vec![
            cp(
                Producer::Go(6),
                5_000_000,
                262,
                ModelState::Chains {
                    wstart: 40_000,
                    insert: 0,
                    lazy: Some((17, 4000)),
                },
            ),
            cp(
                Producer::Go(2),
                100,
                262,
                ModelState::Chains {
                    wstart: 100,
                    insert: 101,
                    lazy: None,
                },
            ),
            cp(
                Producer::Go(1),
                3 << 20,
                262,
                ModelState::Fast(vec![65535, 1000]),
            ),
            cp(Producer::Pgzip(5), 1 << 20, 0, ModelState::Flush(16384)),
        ]
    }

    #[test]
    fn checkpoints_round_trip() {
        for cp in examples() {
            assert!(cp.valid(), "{cp:?}");
            let bytes = cp.encode();
            assert_eq!(GoCheckpoint::decode(&bytes).unwrap(), cp);
        }
        assert_eq!(examples()[0].history(), MAX_DIST + 262);
        assert_eq!(examples()[2].history(), 65535 + 1000 + 262);
        assert_eq!(examples()[3].history(), MAX_DIST);
    }

    #[test]
    fn checkpoints_out_of_range_are_refused() {
        let mut bad = examples();
        bad[0].partial = (8, 3);
        bad[1].state = ModelState::Fast(vec![1]);
        bad[2].state = ModelState::Fast(vec![65535, 65535, 3]);
        bad[3].state = ModelState::Flush(16385);
        for cp in bad {
            assert!(!cp.valid(), "{cp:?}");
            assert!(GoCheckpoint::decode(&cp.encode()).is_err(), "{cp:?}");
        }
        let mut later = examples()[0].encode();
        later[3] = MODEL_VERSION + 1;
        assert!(matches!(
            GoCheckpoint::decode(&later),
            Err(Error::ModelUnknown { .. })
        ));
        later[3] = 1;
        assert!(matches!(
            GoCheckpoint::decode(&later),
            Err(Error::Damaged { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn hostile_checkpoint_bytes_never_panic(
            which in 0usize..4,
            at in 0usize..24,
            byte in 0u8..=255,
            cut in proptest::option::of(0usize..24),
        ) {
            let mut bytes = examples()[which].encode();
            let i = at.min(bytes.len() - 1);
            bytes[i] ^= byte;
            if let Some(c) = cut {
                bytes.truncate(c.min(bytes.len()));
            }
            if let Ok(cp) = GoCheckpoint::decode(&bytes) {
                proptest::prop_assert!(cp.valid());
                proptest::prop_assert!(cp.history_start() <= cp.pos);
            }
        }
    }
}
