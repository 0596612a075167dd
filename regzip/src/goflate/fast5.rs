//! The model of klauspost/compress's level 5 (pgzip's default level), written from its
//! published behaviour: input is taken in chunks of 65,535 bytes, each matched against a
//! history of up to five chunks (trimmed to its last 32 KiB when it would overflow) through
//! two tables of 2^15 entries: one keyed by a hash of 4 bytes holding the latest position, one
//! keyed by a hash of 7 bytes holding the latest two. Searching skips ahead faster the longer
//! it goes without a match (1 + gap/64); a found match is checked against the long table's
//! two candidates (and those of the next position), extended without the 258 cap (cut into
//! tokens of at most 258, leaving at least 3 for the last), tried two bytes later against
//! the long table when shorter than 30, and extended backwards. After a match the positions
//! it covered are hashed sparsely (every third). A chunk with no match at all is stored.

use super::{
    deflate::{MAX_DIST, MAX_MATCH, Tok},
    fast1::Copies,
    predict::{Window, zeroed},
    write::Histogram,
};

const TABLE_BITS: u32 = 15;
const TABLE_SIZE: usize = 1 << TABLE_BITS;
/// Table entries are rebased before they reach this.
const REBASE_AT: usize = 1 << 31;
const PRIME4: u32 = 2_654_435_761;
const PRIME7: u64 = 58_295_818_150_454_627;
/// Input per chunk (the encoder's window).
pub(crate) const CHUNK_BYTES: usize = 65535;
/// History the encoder keeps before trimming to the last 32 KiB.
const HISTORY_BYTES: usize = 5 * CHUNK_BYTES;
/// Chunks this short at a flush are written without matching.
const SMALL_CHUNK: usize = 128;
/// Bytes kept clear of the chunk end while searching.
const MARGIN: usize = 11;

fn hash4(x: u64) -> usize {
    ((x as u32).wrapping_mul(PRIME4) >> (32 - TABLE_BITS)) as usize
}

fn hash7(x: u64) -> usize {
    ((x << 8).wrapping_mul(PRIME7) >> (64 - TABLE_BITS)) as usize
}

/// The level-5 model; table entries are positions plus one minus `epoch` (0: empty), 32 bits
/// wide (half the cache of absolute positions), rebased before they overflow.
#[derive(Debug)]
pub(crate) struct Fast5 {
    short: Box<[u32; TABLE_SIZE]>,
    long: Box<[(u32, u32); TABLE_SIZE]>,
    epoch: usize,
    /// Entries before this position predate a reset.
    floor: usize,
    hist_start: usize,
    next_chunk: usize,
    queue: Copies,
    at: usize,
    /// Where the model started (its independent block).
    pub(crate) origin: usize,
}

impl Fast5 {
    pub(crate) fn new(start: usize) -> Fast5 {
        Fast5 {
            short: zeroed(),
            long: zeroed(),
            epoch: start,
            floor: start,
            hist_start: start,
            next_chunk: start,
            queue: Copies::default(),
            at: start,
            origin: start,
        }
    }

    /// A model whose history starts with the dictionary `from..at` (encoded, output unused).
    pub(crate) fn with_dictionary(w: &Window, from: usize, at: usize) -> Fast5 {
        let mut f = Fast5::new(from);
        if at > from && w.holds(from) && at <= w.end {
            f.encode(w, from, at);
        }
        f.queue.clear();
        f.next_chunk = at;
        f.at = at;
        f.origin = at;
        f
    }

    /// The table entry of position `pos`.
    #[inline]
    fn entry(&self, pos: usize) -> u32 {
        (pos + 1 - self.epoch) as u32
    }

    /// The position (plus one) an entry holds, 0 if empty.
    #[inline]
    fn position(&self, v: u32) -> usize {
        if v == 0 { 0 } else { v as usize + self.epoch }
    }

    fn cand(&self, v: u32, s: usize) -> Option<usize> {
        let t = self.position(v).checked_sub(1)?;
        (t >= self.floor && t < s && s - t < MAX_DIST).then_some(t)
    }

    fn push_long(&mut self, h: usize, pos: usize) {
        let v = self.entry(pos);
        let e = &mut self.long[h];
        *e = (v, e.0);
    }

    /// Moves the epoch up to 64 KiB before `cs`; older entries (never candidates again, nor
    /// past the history start a backward extension stops at) empty.
    fn rebase(&mut self, cs: usize) {
        let delta = (cs - 2 * MAX_DIST - self.epoch) as u32;
        let keep = |v: u32| v.saturating_sub(delta);
        for v in self.short.iter_mut() {
            *v = keep(*v);
        }
        for (a, b) in self.long.iter_mut() {
            (*a, *b) = (keep(*a), keep(*b));
        }
        self.epoch += delta as usize;
    }

    #[inline]
    fn load64(w: &Window, pos: usize) -> u64 {
        w.load64(pos)
    }

    #[inline]
    fn load32(w: &Window, pos: usize) -> u32 {
        w.load32(pos)
    }

    /// Cuts a long match into tokens of at most 258, leaving at least 3 for the last.
    fn copy(&mut self, mut pos: usize, mut len: usize, dist: usize) {
        while len > 0 {
            let mut l = len;
            if l > MAX_MATCH {
                l = if l > MAX_MATCH + 3 {
                    MAX_MATCH
                } else {
                    MAX_MATCH - 3
                };
            }
            self.queue.push(pos, Tok::copy(l, dist));
            pos += l;
            len -= l;
        }
    }

    /// Encodes the chunk `cs..ce` into the queue.
    fn encode(&mut self, w: &Window, cs: usize, ce: usize) {
        if cs - self.hist_start + (ce - cs) > HISTORY_BYTES {
            self.hist_start = cs - MAX_DIST;
        }
        let hs = self.hist_start;
        if ce + 1 - self.epoch >= REBASE_AT {
            self.rebase(cs);
        }
        if ce - cs < 2 + MARGIN {
            return;
        }
        let s_limit = ce - MARGIN;
        let mlen = |a: usize, b: usize, cap: usize| w.match_len(a, b, cap.min(ce - b.max(a)));
        let (mut s, mut next_emit) = (cs, cs);
        let mut cv = Self::load64(w, s);
        'outer: loop {
            let mut next_s = s;
            let (mut l, mut t);
            loop {
                let hs4 = hash4(cv);
                let hl7 = hash7(cv);
                s = next_s;
                next_s = s + 1 + ((s - next_emit) >> 6);
                if next_s > s_limit {
                    break 'outer;
                }
                let s_cand = self.short[hs4];
                let l_cand = self.long[hl7];
                let next = Self::load64(w, next_s);
                self.short[hs4] = self.entry(s);
                self.push_long(hl7, s);
                let (nh4, nh7) = (hash4(next), hash7(next));
                let cv32 = cv as u32;
                l = 0;
                if let Some(c) = self.cand(l_cand.0, s) {
                    t = c;
                    if cv32 == Self::load32(w, t) {
                        self.short[nh4] = self.entry(next_s);
                        self.push_long(nh7, next_s);
                        if let Some(t2) = self.cand(l_cand.1, s)
                            && cv32 == Self::load32(w, t2)
                        {
                            l = mlen(t + 4, s + 4, MAX_MATCH - 4) + 4;
                            let ml1 = mlen(t2 + 4, s + 4, MAX_MATCH - 4) + 4;
                            if ml1 > l {
                                t = t2;
                                l = ml1;
                            }
                        }
                        break;
                    }
                    if let Some(t2) = self.cand(l_cand.1, s)
                        && cv32 == Self::load32(w, t2)
                    {
                        t = t2;
                        self.short[nh4] = self.entry(next_s);
                        self.push_long(nh7, next_s);
                        break;
                    }
                }
                if let Some(c) = self.cand(s_cand, s)
                    && cv32 == Self::load32(w, c)
                {
                    t = c;
                    l = mlen(t + 4, s + 4, MAX_MATCH - 4) + 4;
                    let l_cand = self.long[nh7];
                    self.short[nh4] = self.entry(next_s);
                    self.push_long(nh7, next_s);
                    let next32 = next as u32;
                    // The next position's long candidates, the older only if the newer is
                    // within reach.
                    if self.cand(l_cand.0, next_s).is_some() {
                        for v in [l_cand.0, l_cand.1] {
                            if let Some(t2) = self.cand(v, next_s)
                                && Self::load32(w, t2) == next32
                            {
                                let ml = mlen(t2 + 4, next_s + 4, MAX_MATCH - 4) + 4;
                                if ml > l {
                                    t = t2;
                                    s = next_s;
                                    l = ml;
                                    break;
                                }
                            }
                        }
                    }
                    break;
                }
                cv = next;
            }
            if l == 0 {
                l = mlen(t + 4, s + 4, usize::MAX) + 4;
            } else if l == MAX_MATCH {
                l += mlen(t + l, s + l, usize::MAX);
            }
            if l < 30 && s + l < s_limit {
                let h = hash7(Self::load64(w, s + l));
                let v = self.position(self.long[h].0);
                // The candidate shifted back to two bytes after the match start.
                if v > 0 && v - 1 + 2 >= hs + l {
                    let t2 = v - 1 + 2 - l;
                    let s2 = s + 2;
                    if t2 < s2 && s2 - t2 < MAX_DIST {
                        let l2 = mlen(t2, s2, usize::MAX);
                        if l2 > l {
                            t = t2;
                            l = l2;
                            s = s2;
                        }
                    }
                }
            }
            while t > hs && s > next_emit && w.at(t - 1) == w.at(s - 1) {
                s -= 1;
                t -= 1;
                l += 1;
            }
            self.copy(s, l, s - t);
            s += l;
            next_emit = s;
            if next_s >= s {
                s = next_s + 1;
            }
            if s >= s_limit {
                break 'outer;
            }
            let mut i = s - l + 1;
            if i < s - 1 {
                let x = Self::load64(w, i);
                self.short[hash4(x)] = self.entry(i);
                self.push_long(hash7(x), i);
                self.push_long(hash7(x >> 8), i + 1);
                self.short[hash4(x >> 16)] = self.entry(i + 2);
                i += 4;
                while i < s - 1 {
                    let x = Self::load64(w, i);
                    self.push_long(hash7(x), i);
                    self.short[hash4(x >> 8)] = self.entry(i + 1);
                    i += 3;
                }
            }
            let x = Self::load64(w, s - 1);
            self.short[hash4(x)] = self.entry(s - 1);
            self.push_long(hash7(x), s - 1);
            cv = x >> 8;
        }
    }

    pub(crate) fn propose(&mut self, w: &Window) -> Option<Tok> {
        self.prepare(w);
        self.queue.at(w, self.at)
    }

    /// The tokens from `start` up to `end`, as proposed (see [`Copies::fill`]).
    pub(crate) fn fill(
        &mut self,
        w: &Window,
        start: usize,
        end: usize,
        out: (&mut Vec<Tok>, &mut Histogram),
    ) -> Option<()> {
        let (toks, hist) = out;
        let mut at = start;
        while at < end {
            self.at = at;
            self.prepare(w);
            // A chunk that cannot be encoded yet leaves literals to the end.
            let limit = if self.next_chunk > at {
                self.next_chunk.min(end)
            } else {
                end
            };
            at = self
                .queue
                .fill(w, at, limit, end, (&mut *toks, &mut *hist))?;
        }
        self.at = at;
        Some(())
    }

    /// Encodes the chunk the current position is in, once its data is visible.
    fn prepare(&mut self, w: &Window) {
        while self.at >= self.next_chunk {
            let cs = self.next_chunk;
            let len = if w.sync && w.end.saturating_sub(cs) < CHUNK_BYTES {
                w.end.saturating_sub(cs)
            } else {
                CHUNK_BYTES
            };
            if len == 0 || cs + len > w.end {
                break;
            }
            self.queue.clear();
            self.next_chunk = cs + len;
            if len < SMALL_CHUNK && w.sync {
                // Written as it is; the encoder resets after it.
                self.floor = cs + len;
                self.hist_start = cs + len;
                continue;
            }
            self.encode(w, cs, cs + len);
        }
    }

    pub(crate) fn commit(&mut self, pos: usize, actual: Tok) {
        self.at = pos + actual.len();
    }

    pub(crate) fn oldest(&self) -> usize {
        self.hist_start.min(self.at.saturating_sub(MAX_DIST))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rebase_keeps_recent_entries_and_drops_old_ones() {
        let mut f = Fast5::new(0);
        let cs = 3 * MAX_DIST;
        f.short[1] = f.entry(cs - 10);
        f.short[2] = f.entry(10);
        f.push_long(3, cs - 5);
        f.rebase(cs);
        assert!(f.epoch > 0);
        assert_eq!(f.position(f.short[1]), cs - 10 + 1);
        assert_eq!(f.short[2], 0);
        assert_eq!(f.position(f.long[3].0), cs - 5 + 1);
        assert_eq!(f.entry(cs), (cs + 1 - f.epoch) as u32);
    }
}
