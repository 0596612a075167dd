//! The model of Go's compress/flate level 1, written from its published behaviour: input is
//! taken in chunks of 65,535 bytes (one block each), matched through a table of 2^14 entries
//! holding the 4-byte value and position last seen under a hash of 4 bytes, reaching into the
//! previous chunk; the search steps ahead faster the longer it finds nothing (snappy's
//! heuristic, one more byte per 32 misses); after a match its last byte and the next are
//! hashed. Chunks under 128 bytes at a flush are written without matching and reset it.

use super::{
    deflate::{MAX_DIST, MAX_MATCH, Tok},
    predict::{HASH_MUL, Window},
    write::Histogram,
};

const FAST_TABLE_BITS: u32 = 14;
const CHUNK_BYTES: usize = 65535;
/// Chunks shorter than this at a flush are written without matching, and reset the model.
const FAST_SMALL: usize = 128;

/// The model of Go's level 1: each chunk (one block) is encoded whole up front.
#[derive(Debug)]
pub(crate) struct Fast {
    table: Vec<(u32, i64)>,
    /// Virtual position of the current chunk's start.
    cur: i64,
    /// Absolute start and length of the previous chunk (matches may reach into it).
    prev: Option<(usize, usize)>,
    pub(super) queue: Copies,
    /// Next position a token is expected at.
    pub(super) at: usize,
}

fn fast_hash(x: u32) -> usize {
    (x.wrapping_mul(HASH_MUL) >> (32 - FAST_TABLE_BITS)) as usize
}

impl Fast {
    pub(crate) fn new(start: usize) -> Fast {
        Fast {
            table: vec![(0, 0); 1 << FAST_TABLE_BITS],
            cur: CHUNK_BYTES as i64,
            prev: None,
            queue: Copies::default(),
            at: start,
        }
    }

    /// A new block of `len` bytes starting at `start` (its data visible in `w`).
    pub(crate) fn begin_block(&mut self, w: &Window, start: usize, len: usize) {
        self.queue.clear();
        self.at = start;
        if len == 0 {
            return;
        }
        if len < FAST_SMALL {
            self.prev = None;
            self.cur += MAX_DIST as i64;
            return;
        }
        self.encode(w, start, len);
    }

    fn match_len(&self, w: &Window, start: usize, s: usize, t: i64, end: usize) -> usize {
        let s1 = (s + MAX_MATCH - 4).min(end);
        if t >= 0 {
            return w.match_len(start + t as usize, s, s1 - s);
        }
        let Some((pstart, plen)) = self.prev else {
            return 0;
        };
        let tp = plen as i64 + t;
        if tp < 0 {
            return 0;
        }
        let tp = tp as usize;
        let room = plen - tp;
        let n = w.match_len(pstart + tp, s, (s1 - s).min(room));
        if n < room.min(s1 - s) || s + n == s1 {
            return n;
        }
        n + w.match_len(start, s + n, s1 - s - n)
    }

    fn encode(&mut self, w: &Window, start: usize, len: usize) {
        let end = start + len;
        if len < 17 {
            self.cur += CHUNK_BYTES as i64;
            self.prev = None;
            return;
        }
        let s_limit = len - 15;
        let rel = |s: usize| w.load32(start + s);
        let mut s = 0usize;
        let mut cv = rel(s);
        let mut next_hash = fast_hash(cv);
        'outer: loop {
            let mut skip = 32usize;
            let mut next_s = s;
            let mut cand;
            loop {
                s = next_s;
                let step = skip >> 5;
                next_s = s + step;
                skip += step;
                if next_s > s_limit {
                    break 'outer;
                }
                cand = self.table[next_hash];
                let now = rel(next_s);
                self.table[next_hash] = (cv, s as i64 + self.cur);
                next_hash = fast_hash(now);
                let off = s as i64 - (cand.1 - self.cur);
                if off > MAX_DIST as i64 || cv != cand.0 {
                    cv = now;
                    continue;
                }
                break;
            }
            loop {
                s += 4;
                let t = cand.1 - self.cur + 4;
                let l = self.match_len(w, start, start + s, t, end);
                let dist = (s as i64 - t) as usize;
                self.queue.push(start + s - 4, Tok::copy(l + 4, dist));
                s += l;
                if s >= s_limit {
                    break 'outer;
                }
                let x = u64::from(rel(s - 1))
                    | u64::from(w.at(start + s + 3)) << 32
                    | u64::from(w.at(start + s + 4)) << 40;
                let prev_hash = fast_hash(x as u32);
                self.table[prev_hash] = (x as u32, self.cur + s as i64 - 1);
                let x = x >> 8;
                let cur_hash = fast_hash(x as u32);
                cand = self.table[cur_hash];
                self.table[cur_hash] = (x as u32, self.cur + s as i64);
                let off = s as i64 - (cand.1 - self.cur);
                if off > MAX_DIST as i64 || x as u32 != cand.0 {
                    cv = (x >> 8) as u32;
                    next_hash = fast_hash(cv);
                    s += 1;
                    break;
                }
            }
        }
        self.cur += len as i64;
        self.prev = Some((start, len));
    }

    pub(crate) fn propose(&mut self, w: &Window) -> Option<Tok> {
        self.queue.at(w, self.at)
    }

    pub(crate) fn commit(&mut self, pos: usize, actual: Tok) {
        self.at = pos + actual.len();
    }

    /// The tokens of the block begun at `start` up to `end`, as proposed (see
    /// [`Copies::fill`]).
    pub(crate) fn fill(
        &mut self,
        w: &Window,
        start: usize,
        end: usize,
        out: (&mut Vec<Tok>, &mut Histogram),
    ) -> Option<()> {
        self.at = self.queue.fill(w, start, end, end, out)?;
        Some(())
    }

    pub(crate) fn oldest(&self) -> usize {
        self.prev.map_or(self.at, |(s, _)| s).min(self.at)
    }
}

/// The copies a chunk model chose, in order; every other position is a literal.
#[derive(Debug, Default)]
pub(crate) struct Copies {
    list: Vec<(usize, Tok)>,
    /// Index of the first copy not behind the position last asked for.
    next: usize,
}

impl Copies {
    pub(crate) fn clear(&mut self) {
        self.list.clear();
        self.next = 0;
    }

    pub(crate) fn push(&mut self, pos: usize, t: Tok) {
        self.list.push((pos, t));
    }

    /// The token the model chose at `pos` (positions only increase between clears), `None`
    /// past the visible data.
    pub(crate) fn at(&mut self, w: &Window, pos: usize) -> Option<Tok> {
        while let Some(&(p, t)) = self.list.get(self.next) {
            if p == pos {
                return Some(t);
            }
            if p > pos {
                break;
            }
            self.next += 1;
        }
        (pos < w.end).then(|| Tok::lit(w.at(pos)))
    }

    /// Appends the tokens from `at` on to `out` and counts them: the copies that start before
    /// `limit`, literals between; returns where they end (`limit`, or past it where a copy
    /// ends), `None` if a copy ends past `end`. Positions only increase between clears.
    pub(crate) fn fill(
        &mut self,
        w: &Window,
        mut at: usize,
        limit: usize,
        end: usize,
        (toks, hist): (&mut Vec<Tok>, &mut Histogram),
    ) -> Option<usize> {
        loop {
            while self.list.get(self.next).is_some_and(|&(p, _)| p < at) {
                self.next += 1;
            }
            let copy = self.list.get(self.next).filter(|&&(p, _)| p < limit);
            let lits_end = copy.map_or(limit, |&(p, _)| p);
            if lits_end > at {
                for &b in w.slice(at, lits_end) {
                    toks.push(Tok::lit(b));
                    hist.lit[usize::from(b)] += 1;
                }
                at = lits_end;
            }
            let Some(&(p, t)) = copy else {
                return Some(at);
            };
            if p + t.len() > end || t.dist() > p {
                return None;
            }
            toks.push(t);
            hist.add(t);
            at = p + t.len();
            self.next += 1;
        }
    }
}
