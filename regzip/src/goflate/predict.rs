//! The token predictors: LZ77 models parameterised like Go's compress/flate, run over the
//! decompressed data, proposing one token at a time.
//!
//! Written from the DEFLATE specification and the encoders' published parameters (levels 2-9:
//! a 17-bit hash of 4 bytes, hash chains over a 32 KiB ring, the {good, lazy, nice, chain}
//! table, greedy matching with skipped hashing at levels 2-3, lazy matching above, matches of
//! length 4 only within 4 KiB, a 64 KiB window that slides by 32 KiB; level 1 is `fast1`,
//! pgzip's default level `fast5`). The driver asks for
//! a proposal, then commits the token the stream actually holds; a mismatch resynchronises the
//! model on the actual token, the same way at split and at rebuild.

use super::{
    deflate::{MAX_DIST, MAX_MATCH, Tok},
    fast1::Fast,
    fast5::Fast5,
};

/// Decompressed bytes of one deflate stream with absolute positions, as far as visible.
#[derive(Debug, Default)]
pub(crate) struct Window {
    buf: Vec<u8>,
    /// Absolute position of `buf[0]`.
    base: usize,
    /// Visible end (at most `base + buf.len()`).
    pub(crate) end: usize,
    /// Whether `end` is where the encoder's input ended (a flush or the close).
    pub(crate) sync: bool,
}

/// History kept behind the oldest position a predictor may still read.
const KEEP_BYTES: usize = 2 * MAX_DIST + 4096;

impl Window {
    /// A window holding `bytes` from position `base` on, nothing visible yet (a rebuild
    /// starting at a checkpoint).
    pub(crate) fn starting_at(base: usize, bytes: Vec<u8>) -> Window {
        Window {
            buf: bytes,
            base,
            end: base,
            sync: false,
        }
    }
    pub(crate) fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }
    /// Absolute position after the last byte held.
    pub(crate) fn held(&self) -> usize {
        self.base + self.buf.len()
    }
    pub(crate) fn at(&self, pos: usize) -> u8 {
        self.buf[pos - self.base]
    }
    pub(crate) fn slice(&self, from: usize, to: usize) -> &[u8] {
        &self.buf[from - self.base..to - self.base]
    }
    /// The oldest position still held.
    pub(crate) fn first(&self) -> usize {
        self.base
    }
    /// Whether `pos` is still held.
    pub(crate) fn holds(&self, pos: usize) -> bool {
        pos >= self.base
    }
    /// Drops history well behind `pos`.
    pub(crate) fn trim(&mut self, pos: usize) {
        if pos > self.base + 4 * KEEP_BYTES {
            let cut = pos - KEEP_BYTES - self.base;
            self.buf.drain(..cut);
            self.base += cut;
        }
    }
    /// The vector the parser appends to, and the absolute position of its first byte.
    pub(crate) fn parts(&mut self) -> (&mut Vec<u8>, usize) {
        (&mut self.buf, self.base)
    }
    #[inline]
    pub(crate) fn load32(&self, pos: usize) -> u32 {
        let i = pos - self.base;
        u32::from_le_bytes(self.buf[i..i + 4].try_into().unwrap_or_default())
    }

    #[inline]
    pub(crate) fn load64(&self, pos: usize) -> u64 {
        let i = pos - self.base;
        u64::from_le_bytes(self.buf[i..i + 8].try_into().unwrap_or_default())
    }
    /// Equal bytes at `a` and `b`, at most `max`.
    pub(crate) fn match_len(&self, a: usize, b: usize, max: usize) -> usize {
        let a = &self.buf[a - self.base..];
        common_prefix(&a[..max.min(a.len())], &self.buf[b - self.base..])
    }
}

/// Bytes `a` and `b` have in common at their start.
#[inline]
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let max = a.len().min(b.len());
    let mut n = 0;
    while n + 8 <= max {
        let x = u64::from_le_bytes(a[n..n + 8].try_into().unwrap_or_default());
        let y = u64::from_le_bytes(b[n..n + 8].try_into().unwrap_or_default());
        if x != y {
            return n + ((x ^ y).trailing_zeros() / 8) as usize;
        }
        n += 8;
    }
    while n < max && a[n] == b[n] {
        n += 1;
    }
    n
}

/// Parameters of a table-based Go level (2-9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Params {
    good: usize,
    lazy: usize,
    nice: usize,
    chain: usize,
    /// Greedy levels insert the positions of matches up to this long (`usize::MAX`: lazy).
    fast_skip: usize,
}

/// Go's compress/flate parameters by level (2-9).
pub(crate) fn params(level: u8) -> Option<Params> {
    let (good, lazy, nice, chain, fast_skip) = match level {
        2 => (4, 0, 16, 8, 5),
        3 => (4, 0, 32, 32, 6),
        4 => (4, 4, 16, 16, usize::MAX),
        5 => (8, 16, 32, 32, usize::MAX),
        6 => (8, 16, 128, 128, usize::MAX),
        7 => (8, 32, 128, 256, usize::MAX),
        8 => (32, 128, 258, 1024, usize::MAX),
        9 => (32, 258, 258, 4096, usize::MAX),
        _ => return None,
    };
    Some(Params {
        good,
        lazy,
        nice,
        chain,
        fast_skip,
    })
}

const HASH_BITS: u32 = 17;
const HASH_SIZE: usize = 1 << HASH_BITS;
/// Ring index mask of `Chains::prev`.
const RING_MASK: usize = MAX_DIST - 1;
/// Table entries are rebased before they reach this.
const REBASE_AT: usize = 1 << 31;
/// Go's hash multiplier (both its hash of 4 bytes and level 1's table hash).
pub(crate) const HASH_MUL: u32 = 0x1e35a7bd;
const MIN_MATCH: usize = 4;
/// Lookahead below which a table-based Go level stops and waits for input (4 + 258).
pub(crate) const LOOKAHEAD: usize = MIN_MATCH + MAX_MATCH;
/// A shift of the 64 KiB window happens when the position passes this far into it.
const SHIFT_AT: usize = 2 * MAX_DIST - LOOKAHEAD;

/// Go's hash of the 4 bytes at a position, `x` loaded little-endian.
#[inline]
fn hash4(x: u32) -> usize {
    (x.swap_bytes().wrapping_mul(HASH_MUL) >> (32 - HASH_BITS)) as usize & (HASH_SIZE - 1)
}

/// A zeroed table on the heap (no large array on the stack).
pub(crate) fn zeroed<T: Copy + Default, const N: usize>() -> Box<[T; N]> {
    match vec![T::default(); N].into_boxed_slice().try_into() {
        Ok(b) => b,
        Err(_) => unreachable!("a vector of N elements"),
    }
}

/// The ring entry of the position whose table entry is `me` (a position plus one minus the
/// epoch), whose chain continues at table entry `prev` (0: empty).
#[inline]
fn back(me: usize, prev: u32) -> u16 {
    match me - prev as usize {
        d if prev != 0 && d <= MAX_DIST => d as u16,
        _ => 0,
    }
}

/// A hash chain over the window, in buffer offsets.
struct Chain<'a> {
    prev: &'a [u16; MAX_DIST],
    /// The window up to the end of the data a match may cover.
    buf: &'a [u8],
    /// Ring slot of `buf[0]`.
    ring: usize,
    /// Lowest candidate offset.
    low: usize,
}

/// What one search looks for: matches at `at` longer than `length`, up to `buf`'s end.
struct Search {
    at: usize,
    nice: usize,
    tries: usize,
    length: usize,
}

impl Chain<'_> {
    /// The longest match (length, candidate offset) found walking from candidate `ci`; the
    /// first of equal length wins, one of `nice` ends the walk, and a match of 4 must lie
    /// within 4 KiB.
    #[inline]
    fn search(&self, mut ci: usize, s: Search) -> Option<(usize, usize)> {
        let Search {
            at,
            nice,
            mut tries,
            mut length,
        } = s;
        let buf = self.buf;
        let cur = buf.get(at..)?;
        // The 4 bytes ending at the byte a longer match needs first: a candidate that differs
        // there is no longer (Go checks only that byte; the others filter out more).
        let tail = |b: &[u8], at: usize, length: usize| {
            b.get(at + length - 3..at + length + 1)
                .map(|t| u32::from_le_bytes([t[0], t[1], t[2], t[3]]))
        };
        let mut wend = tail(buf, at, length)?;
        let mut found = None;
        loop {
            if tail(buf, ci, length) == Some(wend) {
                let n = common_prefix(&buf[ci..], cur);
                if n > length && (n > MIN_MATCH || at - ci <= 4096) {
                    length = n;
                    found = Some((n, ci));
                    match tail(buf, at, length) {
                        Some(t) if n < nice => wend = t,
                        _ => break,
                    }
                }
            }
            tries -= 1;
            let back = usize::from(self.prev[(ci + self.ring) & RING_MASK]);
            if tries == 0 || back == 0 || ci < self.low + back {
                break;
            }
            ci -= back;
        }
        found
    }
}

/// What a proposal's commit does when the stream agrees.
#[derive(Clone, Copy, Debug)]
pub(super) enum After {
    LazyMatch,
    GreedyMatch(usize),
    Lit,
    LastLit,
}

/// The model of Go's levels 2-9.
#[derive(Debug)]
pub(crate) struct Chains {
    p: Params,
    /// Positions as `pos + 1 - epoch` (0: empty), 32 bits like Go's, rebased before they
    /// overflow.
    head: Box<[u32; HASH_SIZE]>,
    /// How far back the previous entry of each position's chain is (0: none within 32 KiB,
    /// which no search reaches), in a ring of 32 KiB positions.
    prev: Box<[u16; MAX_DIST]>,
    epoch: usize,
    pub(super) index: usize,
    /// Start of Go's 64 KiB window: candidates before it are gone.
    pub(super) wstart: usize,
    pub(super) length: usize,
    pub(super) offset: usize,
    pub(super) byte_available: bool,
    pub(super) next_insert: usize,
    /// The chain head before the current position was inserted (a position plus one).
    chain_head: usize,
    pub(super) pending: Option<(usize, Tok, After)>,
}

impl Chains {
    pub(crate) fn new(p: Params, start: usize) -> Chains {
        Chains {
            p,
            head: zeroed(),
            prev: zeroed(),
            epoch: start,
            index: start,
            wstart: start,
            length: MIN_MATCH - 1,
            offset: 0,
            byte_available: false,
            next_insert: start,
            chain_head: 0,
            pending: None,
        }
    }

    /// A model whose window already holds `from..at` (a preset dictionary), hashed.
    pub(crate) fn with_dictionary(p: Params, w: &Window, from: usize, at: usize) -> Chains {
        let mut c = Chains::new(p, from);
        c.insert_range(w, from, at.saturating_sub(MIN_MATCH - 1));
        c.index = at;
        c.next_insert = at;
        c
    }

    pub(super) fn lazy(&self) -> bool {
        self.p.fast_skip == usize::MAX
    }

    fn insert(&mut self, w: &Window, i: usize) {
        if i < self.next_insert {
            return;
        }
        let h = hash4(w.load32(i));
        if i + 1 - self.epoch >= REBASE_AT {
            self.rebase(i);
        }
        self.prev[i & RING_MASK] = back(i + 1 - self.epoch, self.head[h]);
        self.head[h] = (i + 1 - self.epoch) as u32;
        self.next_insert = i + 1;
    }

    /// Inserts the positions `from..to` that are not yet inserted and have 4 bytes visible
    /// (what `insert` does for each, in one pass).
    pub(super) fn insert_range(&mut self, w: &Window, from: usize, to: usize) {
        let from = from.max(self.next_insert);
        let to = to.min(w.end.saturating_sub(MIN_MATCH - 1));
        if from >= to {
            return;
        }
        if to - self.epoch >= REBASE_AT {
            for i in from..to {
                self.insert(w, i);
            }
            return;
        }
        let first = from + 1 - self.epoch;
        let (head, prev) = (&mut *self.head, &mut *self.prev);
        for (k, b) in w.slice(from, to + MIN_MATCH - 1).windows(4).enumerate() {
            let h = hash4(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            prev[(from + k) & RING_MASK] = back(first + k, head[h]);
            head[h] = (first + k) as u32;
        }
        self.next_insert = to;
    }

    fn insertable(&self, w: &Window, i: usize) -> bool {
        i + MIN_MATCH <= w.end
    }

    /// Moves the epoch up to `i - 64 KiB`; older entries (never candidates again) empty.
    fn rebase(&mut self, i: usize) {
        let delta = i - 2 * MAX_DIST - self.epoch;
        for v in self.head.iter_mut() {
            *v = if (*v as usize) <= delta {
                0
            } else {
                *v - delta as u32
            };
        }
        self.epoch += delta;
    }

    /// Go's search of the chain from `head` for the longest match at `pos`. A match must be
    /// longer than `length` (Go starts at 3; a caller that only needs to know whether a match
    /// beats one of `length` >= 4 may start there: the same candidate wins or none does).
    fn find_match(
        &self,
        w: &Window,
        pos: usize,
        head: usize,
        lookahead: usize,
        length: usize,
    ) -> Option<(usize, usize)> {
        let min_look = lookahead.min(MAX_MATCH);
        let base = w.base;
        // Go stops at the candidate whose ring slot the current position overwrote, 32 KiB
        // back: it is the lowest one the window allows.
        let lowest = pos.saturating_sub(MAX_DIST).max(self.wstart).max(base);
        if head < lowest || head >= pos || length >= min_look {
            return None;
        }
        let chain = Chain {
            prev: &self.prev,
            buf: w.buf.get(..pos - base + min_look)?,
            ring: base & RING_MASK,
            low: lowest - base,
        };
        let s = Search {
            at: pos - base,
            nice: self.p.nice.min(min_look),
            // Go asks with a length of 3, below every level's `good`: the whole chain is tried.
            tries: self.p.chain,
            length,
        };
        chain
            .search(head - base, s)
            .map(|(n, ci)| (n, pos - base - ci))
    }

    /// The next token, or `None` when the visible data is used up.
    pub(crate) fn propose(&mut self, w: &Window) -> Option<Tok> {
        if let Some((_, t, _)) = self.pending {
            return Some(t);
        }
        let lazy = self.lazy();
        loop {
            let lookahead = w.end.checked_sub(self.index)?;
            if lookahead < LOOKAHEAD {
                if !w.sync {
                    return None;
                }
                if lookahead == 0 {
                    if self.byte_available {
                        let t = Tok::lit(w.at(self.index - 1));
                        self.pending = Some((self.index - 1, t, After::LastLit));
                        return Some(t);
                    }
                    return None;
                }
            }
            if self.index > self.wstart + SHIFT_AT
                && (!w.sync || w.end > self.wstart + 2 * MAX_DIST)
            {
                self.wstart += MAX_DIST;
            }
            if self.insertable(w, self.index) {
                self.insert(w, self.index);
                let back = usize::from(self.prev[self.index & RING_MASK]);
                self.chain_head = if back == 0 { 0 } else { self.index - back + 1 };
            }
            let prev_length = self.length;
            let prev_offset = self.offset;
            self.length = MIN_MATCH - 1;
            self.offset = 0;
            let min_index = self.index.saturating_sub(MAX_DIST).max(self.wstart);
            let head = self.chain_head;
            // A lazy search only has to beat the previous match (see `find_match`).
            let from = if lazy {
                prev_length.max(MIN_MATCH - 1)
            } else {
                MIN_MATCH - 1
            };
            let try_match = if lazy {
                lookahead > prev_length && prev_length < self.p.lazy
            } else {
                lookahead > MIN_MATCH - 1
            };
            // `head` is a position plus one (0: empty).
            if head > min_index
                && head <= self.index
                && try_match
                && let Some((l, o)) = self.find_match(w, self.index, head - 1, lookahead, from)
            {
                self.length = l;
                self.offset = o;
            }
            if !lazy && self.length >= MIN_MATCH {
                let t = Tok::copy(self.length, self.offset);
                self.pending = Some((self.index, t, After::GreedyMatch(self.length)));
                return Some(t);
            }
            if lazy && prev_length >= MIN_MATCH && self.length <= prev_length {
                let t = Tok::copy(prev_length, prev_offset);
                self.pending = Some((self.index - 1, t, After::LazyMatch));
                return Some(t);
            }
            if !lazy || self.byte_available {
                let i = if lazy { self.index - 1 } else { self.index };
                let t = Tok::lit(w.at(i));
                self.pending = Some((i, t, After::Lit));
                return Some(t);
            }
            self.index += 1;
            self.byte_available = true;
        }
    }

    /// Takes the token the stream holds at the proposal's position.
    pub(crate) fn commit(&mut self, w: &Window, pos: usize, actual: Tok) {
        let pending = self.pending.take();
        match pending {
            Some((p, t, after)) if p == pos && t == actual => match after {
                After::LazyMatch => {
                    let new_index = pos + actual.len();
                    self.insert_range(w, self.index + 1, new_index);
                    self.index = new_index;
                    self.byte_available = false;
                    self.length = MIN_MATCH - 1;
                }
                After::GreedyMatch(len) => {
                    if len <= self.p.fast_skip {
                        self.insert_range(w, self.index + 1, self.index + len);
                    }
                    self.index += len;
                }
                After::Lit => {
                    self.index += 1;
                    if self.lazy() {
                        self.byte_available = true;
                    }
                }
                After::LastLit => self.byte_available = false,
            },
            _ => self.resync(w, pos + actual.len()),
        }
    }

    /// Continues at `pos` as if a match had just ended there.
    fn resync(&mut self, w: &Window, pos: usize) {
        self.insert_range(w, pos.saturating_sub(MAX_DIST), pos);
        self.index = pos;
        self.byte_available = false;
        self.length = MIN_MATCH - 1;
        self.offset = 0;
    }

    /// Oldest position this model may still read.
    pub(crate) fn oldest(&self) -> usize {
        self.index.saturating_sub(2 * MAX_DIST).min(self.wstart)
    }
}

/// A predictor for one producer.
#[derive(Debug)]
pub(crate) enum Model {
    Chains(Box<Chains>),
    Fast(Box<Fast>),
    Fast5(Box<Fast5>),
}

impl Model {
    /// The model of Go's compress/flate at `level` (1-9), starting at stream offset `start`.
    pub(crate) fn go(level: u8, start: usize) -> Option<Model> {
        if level == 1 {
            return Some(Model::Fast(Box::new(Fast::new(start))));
        }
        Some(Model::Chains(Box::new(Chains::new(params(level)?, start))))
    }

    /// Whether the model's state does not depend on the tokens committed (chunk models): a
    /// block may then be written as literals without telling it.
    pub(crate) fn chunked(&self) -> bool {
        !matches!(self, Model::Chains(_))
    }

    pub(crate) fn begin_block(&mut self, w: &Window, start: usize, len: usize) {
        if let Model::Fast(f) = self {
            f.begin_block(w, start, len);
        }
    }

    pub(crate) fn propose(&mut self, w: &Window) -> Option<Tok> {
        match self {
            Model::Chains(c) => c.propose(w),
            Model::Fast(f) => f.propose(w),
            Model::Fast5(f) => f.propose(w),
        }
    }

    pub(crate) fn commit(&mut self, w: &Window, pos: usize, actual: Tok) {
        match self {
            Model::Chains(c) => c.commit(w, pos, actual),
            Model::Fast(f) => f.commit(pos, actual),
            Model::Fast5(f) => f.commit(pos, actual),
        }
    }

    pub(crate) fn oldest(&self) -> usize {
        match self {
            Model::Chains(c) => c.oldest(),
            Model::Fast(f) => f.oldest(),
            Model::Fast5(f) => f.oldest(),
        }
    }
}
