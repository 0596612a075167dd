//! Writing DEFLATE blocks again: a bit writer, the symbol counts of a block's tokens (which
//! decide whether its header has a code for each and which header Go derives), and the
//! writer of a parsed or rebuilt [`Block`]. Per block, each copy length's code and extra bits
//! are joined into one table entry, so a token costs two table lookups and one or two writes.

use std::sync::OnceLock;

use super::deflate::{
    Block, Code, DIST_BASE, DIST_EXTRA, Kind, LEN_BASE, LEN_EXTRA, MAX_DIST, MAX_MATCH, Tok,
    fixed_codes,
};

/// Literal/length symbols (0-255 literals, 256 end of block, 257-285 lengths).
pub(crate) const LIT_SYMS: usize = 286;
/// Distance symbols.
pub(crate) const DIST_SYMS: usize = 30;
const END_OF_BLOCK: usize = 256;

/// Length code (0-28) of each copy length 0-258 (0-2 unused).
const LEN_SYM: [u8; MAX_MATCH + 1] = {
    let mut t = [0u8; MAX_MATCH + 1];
    let (mut len, mut code) = (3, 0);
    while len <= MAX_MATCH {
        while code + 1 < LEN_BASE.len() && LEN_BASE[code + 1] as usize <= len {
            code += 1;
        }
        t[len] = code as u8;
        len += 1;
    }
    t
};

/// Distance code of `d - 1` for distances up to 256...
const DIST_SYM_LO: [u8; 256] = dist_table(0);
/// ...and of `(d - 1) >> 7` beyond (the codes there cover multiples of 128).
const DIST_SYM_HI: [u8; 256] = dist_table(7);

const fn dist_table(shift: u32) -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut code = 0;
    let mut k = 0;
    while k < 256 {
        let d = (k << shift) + 1;
        while code + 1 < DIST_BASE.len() && DIST_BASE[code + 1] as usize <= d {
            code += 1;
        }
        t[k] = code as u8;
        k += 1;
    }
    t
}

/// The length code (0-28) of a copy length 3-258.
#[inline]
pub(crate) fn len_code(len: usize) -> usize {
    usize::from(LEN_SYM[len.min(MAX_MATCH)])
}

/// The distance code (0-29) of a distance 1-32768.
#[inline]
pub(crate) fn dist_code(dist: usize) -> usize {
    let d = dist.clamp(1, MAX_DIST) - 1;
    usize::from(if d < 256 {
        DIST_SYM_LO[d]
    } else {
        DIST_SYM_HI[(d >> 7) & 0xff]
    })
}

/// Writes bits LSB first, 32 at a time.
#[derive(Debug, Default)]
pub(crate) struct BitOut {
    acc: u64,
    n: u32,
    out: Vec<u8>,
}

impl BitOut {
    /// Writes the low `n` bits of `bits` (`n` at most 32).
    #[inline]
    pub(crate) fn put(&mut self, bits: u32, n: u32) {
        self.acc |= u64::from(bits) << self.n;
        self.n += n;
        if self.n >= 32 {
            self.out.extend_from_slice(&(self.acc as u32).to_le_bytes());
            self.acc >>= 32;
            self.n -= 32;
        }
    }
    /// Moves whole bytes from the accumulator to the output.
    fn settle(&mut self) {
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }
    /// Bits written past the last whole byte.
    pub(crate) fn pending_bits(&self) -> u32 {
        self.n % 8
    }
    /// Bits written so far.
    pub(crate) fn bit_len(&self) -> usize {
        self.out.len() * 8 + self.n as usize
    }
    /// Appends bytes at a byte boundary (stored blocks).
    fn extend_aligned(&mut self, data: &[u8]) {
        self.settle();
        self.out.extend_from_slice(data);
    }
    /// The partial byte and its bit count, kept across steps.
    pub(crate) fn partial(&mut self) -> (u8, u32) {
        self.settle();
        (self.acc as u8, self.n)
    }
    /// The whole bytes written (a partial byte is left out).
    pub(crate) fn into_bytes(mut self) -> Vec<u8> {
        self.settle();
        self.out
    }
    /// A writer whose first `n` bits are those of `bits`, with room for `capacity` bytes.
    pub(crate) fn with_partial(bits: u8, n: u32, capacity: usize) -> BitOut {
        BitOut {
            acc: u64::from(bits) & ((1 << n) - 1),
            n,
            out: Vec::with_capacity(capacity),
        }
    }
}

/// How often each symbol occurs in a block's tokens (its end of block included).
#[derive(Clone, Debug)]
pub(crate) struct Histogram {
    pub(crate) lit: [u32; LIT_SYMS],
    pub(crate) dist: [u32; DIST_SYMS],
}

impl Default for Histogram {
    fn default() -> Histogram {
        let mut lit = [0; LIT_SYMS];
        lit[END_OF_BLOCK] = 1;
        Histogram {
            lit,
            dist: [0; DIST_SYMS],
        }
    }
}

impl Histogram {
    /// The counts of `toks`.
    pub(crate) fn of(toks: &[Tok]) -> Histogram {
        let mut h = Histogram::default();
        for &t in toks {
            h.add(t);
        }
        h
    }

    #[inline]
    pub(crate) fn add(&mut self, t: Tok) {
        if t.is_copy() {
            self.lit[257 + len_code(t.len())] += 1;
            self.dist[dist_code(t.dist())] += 1;
        } else {
            self.lit[usize::from(t.byte())] += 1;
        }
    }
}

/// Whether a block of tokens counted by `hist` can be written with `kind`'s codes.
pub(crate) fn writable(kind: &Kind, hist: &Histogram) -> bool {
    let (lit, dist) = match kind {
        Kind::Stored { .. } => return hist.lit[..END_OF_BLOCK].iter().all(|&c| c == 0),
        Kind::Fixed => return true,
        Kind::Dynamic(h) => (h.lit.lens(), h.dist.lens()),
    };
    let has = |lens: &[u8], counts: &[u32]| {
        counts
            .iter()
            .enumerate()
            .all(|(sym, &c)| c == 0 || lens.get(sym).is_some_and(|&l| l != 0))
    };
    has(lit, &hist.lit) && has(dist, &hist.dist)
}

/// One block's codes as the writer uses them.
struct Encoder {
    /// Literal code and its length.
    lit: [(u32, u32); 256],
    end: (u32, u32),
    /// Per copy length: its length code and extra bits, and their bit count.
    len: [(u32, u32); MAX_MATCH + 1],
    /// Per distance code: its code and its length.
    dist: [(u32, u32); DIST_SYMS],
}

impl Encoder {
    fn new(lit: &Code, dist: &Code) -> Encoder {
        let code = |c: &Code, sym: usize| match (c.codes().get(sym), c.lens().get(sym)) {
            (Some(&bits), Some(&n)) => (u32::from(bits), u32::from(n)),
            _ => (0, 0),
        };
        let mut e = Encoder {
            lit: [(0, 0); 256],
            end: code(lit, END_OF_BLOCK),
            len: [(0, 0); MAX_MATCH + 1],
            dist: [(0, 0); DIST_SYMS],
        };
        for (sym, slot) in e.lit.iter_mut().enumerate() {
            *slot = code(lit, sym);
        }
        for (len, slot) in e.len.iter_mut().enumerate().skip(3) {
            let lc = len_code(len);
            let (bits, n) = code(lit, 257 + lc);
            let extra = (len - usize::from(LEN_BASE[lc])) as u32;
            *slot = (bits | extra << n, n + u32::from(LEN_EXTRA[lc]));
        }
        for (sym, slot) in e.dist.iter_mut().enumerate() {
            *slot = code(dist, sym);
        }
        e
    }

    fn write(&self, o: &mut BitOut, toks: &[Tok]) {
        // Whole bytes leave the accumulator after every token, as one unconditional 8-byte
        // store into room made up front: a token adds at most 48 bits to the fewer than 8
        // left over, and no branch depends on where the bytes end.
        o.settle();
        let start = o.out.len();
        o.out.resize(start + toks.len() * 6 + 8, 0);
        let (mut acc, mut n, mut at) = (o.acc, o.n, start);
        let out = o.out.as_mut_slice();
        for &t in toks {
            if t.is_copy() {
                let (bits, len) = self.len[t.len()];
                acc |= u64::from(bits) << n;
                n += len;
                let d = t.dist();
                let dc = dist_code(d);
                let (bits, len) = self.dist[dc];
                let extra = (d - usize::from(DIST_BASE[dc])) as u64;
                acc |= (u64::from(bits) | extra << len) << n;
                n += len + u32::from(DIST_EXTRA[dc]);
            } else {
                let (bits, len) = self.lit[usize::from(t.byte())];
                acc |= u64::from(bits) << n;
                n += len;
            }
            if let Some(dst) = out.get_mut(at..at + 8) {
                dst.copy_from_slice(&acc.to_le_bytes());
            }
            let whole = n / 8;
            at += whole as usize;
            acc = acc.checked_shr(whole * 8).unwrap_or(0);
            n %= 8;
        }
        o.out.truncate(at);
        (o.acc, o.n) = (acc, n);
        o.put(self.end.0, self.end.1);
    }
}

/// The fixed codes' encoder, made once.
fn fixed_encoder() -> &'static Encoder {
    static FIXED: OnceLock<Encoder> = OnceLock::new();
    FIXED.get_or_init(|| {
        let (lit, dist) = fixed_codes();
        Encoder::new(&lit, &dist)
    })
}

/// Writes a block: its header and tokens (for a stored block, its whole body from `data`).
/// A token without a code in the block (see [`writable`]) is written as no bits.
pub(crate) fn write_block(o: &mut BitOut, b: &Block, data: &[u8]) {
    o.put(u32::from(b.last), 1);
    match &b.kind {
        Kind::Stored { pad } => {
            o.put(0, 2);
            let n = (8 - o.pending_bits() % 8) % 8;
            o.put(u32::from(*pad), n);
            let len = data.len() as u32;
            o.put(len, 16);
            o.put(!len & 0xffff, 16);
            o.extend_aligned(data);
        }
        Kind::Fixed => {
            o.put(1, 2);
            fixed_encoder().write(o, &b.toks);
        }
        Kind::Dynamic(h) => {
            o.put(2, 2);
            for (k, &byte) in h.raw.iter().enumerate() {
                o.put(u32::from(byte), (h.bits - k * 8).min(8) as u32);
            }
            Encoder::new(&h.lit, &h.dist).write(o, &b.toks);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_tables_agree_with_the_bases() {
        for len in 3..=MAX_MATCH {
            let c = len_code(len);
            let base = usize::from(LEN_BASE[c]);
            assert!(base <= len && len - base < 1 << LEN_EXTRA[c], "{len}");
        }
        assert_eq!(len_code(MAX_MATCH), 28);
        for d in 1..=MAX_DIST {
            let c = dist_code(d);
            let base = usize::from(DIST_BASE[c]);
            assert!(base <= d && d - base < 1 << DIST_EXTRA[c], "{d}");
        }
    }
}
