//! DEFLATE (RFC 1951) blocks as data: a parser that turns a stream into blocks of tokens with
//! every bit it needs to write them again (the writer is `write`).
//!
//! A dynamic block keeps its Huffman header as the raw bits it was written with; its codes are
//! the canonical codes of the lengths in that header, so writing the same tokens after the
//! same header gives the same bits. Stored blocks keep their alignment padding. Anything the
//! writer could not reproduce exactly (a length 258 spelled with code 284, symbols outside the
//! alphabet, a distance before the start of the stream) is refused by the parser.

use super::write::len_code;

/// Longest match (RFC 1951 3.2.5).
pub(crate) const MAX_MATCH: usize = 258;
/// Farthest match distance.
pub(crate) const MAX_DIST: usize = 32768;
/// Most payload one block may hold: Go's blocks hold at most 16,384 tokens (4.2 MB) or a
/// 64 KiB chunk; a longer one is not theirs, and would be held whole in memory.
pub(crate) const MAX_BLOCK_PLAIN: usize = 8 * 1024 * 1024;

/// One LZ77 token: a literal byte or a copy (length 3-258, distance 1-32768).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tok(u32);

impl Tok {
    pub(crate) fn lit(b: u8) -> Tok {
        Tok(u32::from(b))
    }
    pub(crate) fn copy(len: usize, dist: usize) -> Tok {
        Tok(1 << 31 | (len as u32) << 16 | dist as u32)
    }
    pub(crate) fn is_copy(self) -> bool {
        self.0 >> 31 != 0
    }
    /// Bytes this token covers.
    pub(crate) fn len(self) -> usize {
        if self.is_copy() {
            ((self.0 >> 16) & 0x1ff) as usize
        } else {
            1
        }
    }
    pub(crate) fn dist(self) -> usize {
        (self.0 & 0xffff) as usize
    }
    pub(crate) fn byte(self) -> u8 {
        self.0 as u8
    }
}

pub(crate) const LEN_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
pub(crate) const LEN_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
pub(crate) const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
pub(crate) const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];
/// Order of the code length code lengths in a dynamic header.
pub(crate) const CL_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// Why a stream cannot be taken apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ParseError {
    /// More input is needed.
    Short,
    /// Not a stream this module can write again (or not valid DEFLATE).
    Invalid,
}

/// Reads bits LSB first from a byte slice.
#[derive(Clone, Debug)]
pub(crate) struct BitIn<'a> {
    data: &'a [u8],
    /// Bit position.
    pub(crate) pos: usize,
}

impl<'a> BitIn<'a> {
    pub(crate) fn new(data: &'a [u8], pos: usize) -> BitIn<'a> {
        BitIn { data, pos }
    }

    /// Up to 32 bits ahead without consuming; missing bytes read as zero.
    fn peek32(&self) -> u64 {
        let i = self.pos / 8;
        let mut v = 0u64;
        for k in 0..5 {
            if let Some(&b) = self.data.get(i + k) {
                v |= u64::from(b) << (8 * k);
            }
        }
        v >> (self.pos % 8)
    }

    fn avail(&self) -> usize {
        (self.data.len() * 8).saturating_sub(self.pos)
    }

    pub(crate) fn bits(&mut self, n: u32) -> Result<u32, ParseError> {
        if (n as usize) > self.avail() {
            return Err(ParseError::Short);
        }
        let v = (self.peek32() & ((1u64 << n) - 1)) as u32;
        self.pos += n as usize;
        Ok(v)
    }
}

/// A Huffman code: canonical codes (bit-reversed for LSB-first writing) from lengths, and a
/// decoder.
#[derive(Clone, Debug)]
pub(crate) struct Code {
    lens: Vec<u8>,
    /// Reversed code per symbol.
    codes: Vec<u16>,
    /// `TABLE_BITS` lookup: symbol << 4 | length, 0 for "longer or invalid".
    table: Vec<u16>,
}

const TABLE_BITS: u32 = 10;

impl Code {
    /// `None` if the lengths are over-subscribed or empty of codes.
    pub(crate) fn new(lens: &[u8]) -> Option<Code> {
        let mut count = [0u16; 16];
        for &l in lens {
            count[usize::from(l)] += 1;
        }
        count[0] = 0;
        let mut left = 1i32;
        for &c in &count[1..] {
            left = left * 2 - i32::from(c);
            if left < 0 {
                return None;
            }
        }
        let mut next = [0u16; 16];
        let mut code = 0u16;
        for bits in 1..16 {
            code = (code + count[bits - 1]) << 1;
            next[bits] = code;
        }
        let mut codes = vec![0u16; lens.len()];
        let mut table = vec![0u16; 1 << TABLE_BITS];
        for (sym, &l) in lens.iter().enumerate() {
            if l == 0 {
                continue;
            }
            let c = next[usize::from(l)];
            next[usize::from(l)] += 1;
            let rev = c.reverse_bits() >> (16 - l);
            codes[sym] = rev;
            if u32::from(l) <= TABLE_BITS {
                let mut i = usize::from(rev);
                while i < table.len() {
                    table[i] = (sym as u16) << 4 | u16::from(l);
                    i += 1 << l;
                }
            }
        }
        Some(Code {
            lens: lens.to_vec(),
            codes,
            table,
        })
    }

    /// Bit length of each symbol's code (0: none).
    pub(crate) fn lens(&self) -> &[u8] {
        &self.lens
    }

    /// Each symbol's code, bit-reversed for LSB-first writing.
    pub(crate) fn codes(&self) -> &[u16] {
        &self.codes
    }

    fn decode(&self, r: &mut BitIn<'_>) -> Result<usize, ParseError> {
        let peek = r.peek32() as u32;
        let e = self.table[(peek & ((1 << TABLE_BITS) - 1)) as usize];
        if e != 0 {
            let l = u32::from(e & 15);
            if l as usize > r.avail() {
                return Err(ParseError::Short);
            }
            r.pos += l as usize;
            return Ok(usize::from(e >> 4));
        }
        // Longer codes: compare with each symbol's code (rare, codes of 11-15 bits).
        for l in TABLE_BITS + 1..16 {
            let want = (peek & ((1 << l) - 1)) as u16;
            for (sym, &sl) in self.lens.iter().enumerate() {
                if u32::from(sl) == l && self.codes[sym] == want {
                    if l as usize > r.avail() {
                        return Err(ParseError::Short);
                    }
                    r.pos += l as usize;
                    return Ok(sym);
                }
            }
        }
        if r.avail() < 15 {
            Err(ParseError::Short)
        } else {
            Err(ParseError::Invalid)
        }
    }
}

/// The fixed codes of block type 1.
pub(crate) fn fixed_codes() -> (Code, Code) {
    let mut lit = [8u8; 288];
    lit[144..256].fill(9);
    lit[256..280].fill(7);
    #[allow(clippy::expect_used)] // constant, well-formed lengths
    let codes = (
        Code::new(&lit).expect("fixed literal code"),
        Code::new(&[5u8; 30]).expect("fixed distance code"),
    );
    codes
}

/// A dynamic block's header exactly as written, and the codes it defines.
#[derive(Clone, Debug)]
pub(crate) struct Header {
    /// The header bits after BTYPE, packed LSB first.
    pub(crate) raw: Vec<u8>,
    pub(crate) bits: usize,
    pub(crate) lit: Code,
    pub(crate) dist: Code,
}

impl Header {
    /// Reads a dynamic header from `r` (positioned after BTYPE).
    pub(crate) fn parse(r: &mut BitIn<'_>) -> Result<Header, ParseError> {
        let start = r.pos;
        let hlit = r.bits(5)? as usize + 257;
        let hdist = r.bits(5)? as usize + 1;
        let hclen = r.bits(4)? as usize + 4;
        if hlit > 286 || hdist > 30 {
            return Err(ParseError::Invalid);
        }
        let mut cl = [0u8; 19];
        for &i in &CL_ORDER[..hclen] {
            cl[i] = r.bits(3)? as u8;
        }
        let clc = Code::new(&cl).ok_or(ParseError::Invalid)?;
        let mut lens = vec![0u8; hlit + hdist];
        let mut i = 0;
        while i < lens.len() {
            let sym = clc.decode(r)?;
            let (val, rep) = match sym {
                0..=15 => (sym as u8, 1),
                16 => {
                    let prev = *lens.get(i.wrapping_sub(1)).ok_or(ParseError::Invalid)?;
                    (prev, 3 + r.bits(2)? as usize)
                }
                17 => (0, 3 + r.bits(3)? as usize),
                _ => (0, 11 + r.bits(7)? as usize),
            };
            if i + rep > lens.len() {
                return Err(ParseError::Invalid);
            }
            lens[i..i + rep].fill(val);
            i += rep;
        }
        if lens[256] == 0 {
            return Err(ParseError::Invalid);
        }
        let lit = Code::new(&lens[..hlit]).ok_or(ParseError::Invalid)?;
        let dist = Code::new(&lens[hlit..]).ok_or(ParseError::Invalid)?;
        let bits = r.pos - start;
        let mut raw = vec![0u8; bits.div_ceil(8)];
        let mut c = BitIn::new(r.data, start);
        for (k, byte) in raw.iter_mut().enumerate() {
            let n = (bits - k * 8).min(8) as u32;
            *byte = c.bits(n)? as u8;
        }
        Ok(Header {
            raw,
            bits,
            lit,
            dist,
        })
    }

    /// Rebuilds a header from its recorded bits.
    pub(crate) fn from_raw(raw: &[u8], bits: usize) -> Option<Header> {
        if raw.len() != bits.div_ceil(8) {
            return None;
        }
        let mut r = BitIn::new(raw, 0);
        let h = Header::parse(&mut r).ok()?;
        (h.bits == bits).then_some(h)
    }
}

/// How a block is written.
#[derive(Clone, Debug)]
pub(crate) enum Kind {
    /// Stored: the padding bits before LEN (their count follows from the bit position).
    Stored {
        pad: u8,
    },
    Fixed,
    Dynamic(Box<Header>),
}

/// A parsed block: everything needed to write it again, given its plain bytes.
#[derive(Clone, Debug)]
pub(crate) struct Block {
    pub(crate) last: bool,
    pub(crate) kind: Kind,
    /// Decompressed bytes it covers.
    pub(crate) plain: usize,
    /// Its tokens (empty for stored blocks).
    pub(crate) toks: Vec<Tok>,
}

/// Parses one block at `r`, appending its decompressed bytes to `hist` (which holds at least
/// the previous 32 KiB of the stream, or all of it; `hist_base` is the stream offset of
/// `hist[0]`, and a distance reaching before the stream start is refused).
pub(crate) fn parse_block(
    r: &mut BitIn<'_>,
    hist: &mut Vec<u8>,
    hist_base: u64,
) -> Result<Block, ParseError> {
    let last = r.bits(1)? == 1;
    let btype = r.bits(2)?;
    let start_len = hist.len();
    let (kind, toks) = match btype {
        0 => {
            let pad = r.bits(((8 - r.pos % 8) % 8) as u32)? as u8;
            let len = r.bits(16)?;
            let nlen = r.bits(16)?;
            if len != !nlen & 0xffff {
                return Err(ParseError::Invalid);
            }
            let at = r.pos / 8;
            let bytes = r.data.get(at..at + len as usize).ok_or(ParseError::Short)?;
            hist.extend_from_slice(bytes);
            r.pos += len as usize * 8;
            (Kind::Stored { pad }, Vec::new())
        }
        1 | 2 => {
            let (kind, lit, dist) = if btype == 1 {
                let (l, d) = fixed_codes();
                (Kind::Fixed, l, d)
            } else {
                let h = Header::parse(r)?;
                let (l, d) = (h.lit.clone(), h.dist.clone());
                (Kind::Dynamic(Box::new(h)), l, d)
            };
            let mut toks = Vec::new();
            loop {
                if hist.len() - start_len > MAX_BLOCK_PLAIN {
                    return Err(ParseError::Invalid);
                }
                let sym = lit.decode(r)?;
                if sym < 256 {
                    hist.push(sym as u8);
                    toks.push(Tok::lit(sym as u8));
                    continue;
                }
                if sym == 256 {
                    break;
                }
                let lc = sym - 257;
                if lc >= 29 {
                    return Err(ParseError::Invalid);
                }
                let len = usize::from(LEN_BASE[lc]) + r.bits(u32::from(LEN_EXTRA[lc]))? as usize;
                let dsym = dist.decode(r)?;
                if dsym >= 30 {
                    return Err(ParseError::Invalid);
                }
                let d =
                    usize::from(DIST_BASE[dsym]) + r.bits(u32::from(DIST_EXTRA[dsym]))? as usize;
                // Only the canonical spelling of a length can be written again.
                let reach = (hist_base + hist.len() as u64).min(MAX_DIST as u64);
                if len > MAX_MATCH || len_code(len) != lc || d as u64 > reach || d > hist.len() {
                    return Err(ParseError::Invalid);
                }
                let from = hist.len() - d;
                for k in 0..len {
                    let b = hist[from + k];
                    hist.push(b);
                }
                toks.push(Tok::copy(len, d));
            }
            (kind, toks)
        }
        _ => return Err(ParseError::Invalid),
    };
    Ok(Block {
        last,
        kind,
        plain: hist.len() - start_len,
        toks,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use std::io::Write;

    use super::{
        super::write::{BitOut, write_block},
        *,
    };

    /// Parses a whole raw deflate stream and writes it again.
    pub(crate) fn reparse(stream: &[u8]) -> Result<(Vec<u8>, Vec<u8>), ParseError> {
        let mut r = BitIn::new(stream, 0);
        let mut hist = Vec::new();
        let mut o = BitOut::default();
        loop {
            let before = hist.len();
            let b = parse_block(&mut r, &mut hist, 0)?;
            write_block(&mut o, &b, &hist[before..]);
            if b.last {
                break;
            }
        }
        let (pad_n, _) = ((8 - r.pos % 8) % 8, 0);
        let pad = r.bits(pad_n as u32)?;
        o.put(pad, pad_n as u32);
        Ok((hist, o.into_bytes()))
    }

    #[test]
    fn flate2_streams_parse_and_write_back_exactly() {
        let mut data = Vec::new();
        for i in 0..200_000u32 {
            data.extend_from_slice(format!("{} ", i % 977 * (i % 13)).as_bytes());
        }
        for level in [0, 1, 6, 9] {
            let mut e =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(level));
            e.write_all(&data).unwrap();
            e.write_all(&[7u8; 1000]).unwrap();
            e.flush().unwrap();
            e.write_all(b"tail").unwrap();
            let z = e.finish().unwrap();
            let (plain, back) = reparse(&z).unwrap();
            assert_eq!(plain.len(), data.len() + 1004);
            assert!(back == z, "level {level}");
        }
    }

    #[test]
    fn truncated_and_junk_streams_are_refused() {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(&b"abcabcabd".repeat(1000)).unwrap();
        let z = e.finish().unwrap();
        assert_eq!(reparse(&z[..z.len() / 2]).err(), Some(ParseError::Short));
        assert!(reparse(&[0xff; 64]).is_err());
        assert!(reparse(&[]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_parse_or_fail_without_panic(bytes in proptest::collection::vec(0u8..=255, 0..400)) {
            if let Ok((_, back)) = reparse(&bytes) {
                proptest::prop_assert!(bytes.starts_with(&back));
            }
        }
    }
}
