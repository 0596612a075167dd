//! The dynamic Huffman header Go's compress/flate writes for a block, derived from its tokens,
//! written from the published behaviour of its encoder: code lengths limited to 15 bits (7
//! for the code length code) by a level-by-level leaf count over the symbols sorted by
//! frequency then value, every symbol used getting a code (all of length 1 when there are at
//! most two), at least one distance code, and the lengths run-length coded with 16 (3-6
//! copies), 17 (3-10 zeros) and 18 (11-138 zeros) the way Go groups them. When the derived
//! header equals the one in the stream, the reconstruction data needs no header bytes.

use super::{
    deflate::{CL_ORDER, Code},
    write::{BitOut, Histogram},
};

const MAX_BITS_LIMIT: usize = 16;

/// Code lengths for `freq` limited to `max_bits`, as Go computes them.
fn lengths(freq: &[u32], max_bits: usize) -> Vec<u8> {
    let mut lens = vec![0u8; freq.len()];
    // (value, frequency) of the symbols used, by frequency then value.
    let mut list: Vec<(u16, u32)> = freq
        .iter()
        .enumerate()
        .filter(|(_, f)| **f != 0)
        .map(|(i, f)| (i as u16, *f))
        .collect();
    if list.len() <= 2 {
        for &(sym, _) in &list {
            lens[usize::from(sym)] = 1;
        }
        return lens;
    }
    list.sort_by_key(|&(sym, f)| (f, sym));
    let counts = bit_counts(&list, max_bits);
    let mut rest = list.len();
    for (bits, &count) in counts.iter().enumerate().skip(1) {
        let count = count as usize;
        for &(sym, _) in &list[rest - count..rest] {
            lens[usize::from(sym)] = bits as u8;
        }
        rest -= count;
    }
    lens
}

#[derive(Clone, Copy, Default)]
struct Level {
    last_freq: u64,
    next_char_freq: u64,
    next_pair_freq: u64,
    needed: i64,
}

/// How many symbols get each code length (index = length).
fn bit_counts(list: &[(u16, u32)], max_bits: usize) -> Vec<u32> {
    const NONE: u64 = i32::MAX as u64;
    let n = list.len();
    let freq = |i: usize| list.get(i).map_or(NONE, |&(_, f)| u64::from(f));
    let max_bits = max_bits.min(n - 1);
    let mut levels = [Level::default(); MAX_BITS_LIMIT + 1];
    let mut leaf = [[0u32; MAX_BITS_LIMIT + 1]; MAX_BITS_LIMIT + 1];
    for level in 1..=max_bits {
        levels[level] = Level {
            last_freq: freq(1),
            next_char_freq: freq(2),
            next_pair_freq: if level == 1 { NONE } else { freq(0) + freq(1) },
            needed: 0,
        };
        leaf[level][level] = 2;
    }
    levels[max_bits].needed = 2 * n as i64 - 4;
    let mut level = max_bits;
    loop {
        if levels[level].next_pair_freq == NONE && levels[level].next_char_freq == NONE {
            levels[level].needed = 0;
            if level < MAX_BITS_LIMIT {
                levels[level + 1].next_pair_freq = NONE;
            }
            level += 1;
            if level > max_bits {
                break;
            }
            continue;
        }
        let prev_freq = levels[level].last_freq;
        if levels[level].next_char_freq < levels[level].next_pair_freq {
            let k = leaf[level][level] + 1;
            levels[level].last_freq = levels[level].next_char_freq;
            leaf[level][level] = k;
            levels[level].next_char_freq = freq(k as usize);
        } else {
            levels[level].last_freq = levels[level].next_pair_freq;
            let (lower, upper) = leaf.split_at_mut(level);
            upper[0][..level].copy_from_slice(&lower[level - 1][..level]);
            levels[level - 1].needed = 2;
        }
        levels[level].needed -= 1;
        if levels[level].needed == 0 {
            if level == max_bits {
                break;
            }
            levels[level + 1].next_pair_freq = prev_freq + levels[level].last_freq;
            level += 1;
        } else {
            while level > 1 && levels[level - 1].needed > 0 {
                level -= 1;
            }
        }
    }
    let mut counts = vec![0u32; max_bits + 1];
    let top = &leaf[max_bits];
    for (bits, level) in (1..=max_bits).rev().enumerate() {
        counts[bits + 1] = top[level].saturating_sub(top[level - 1]);
    }
    counts
}

/// The header bits after BTYPE that Go writes for a dynamic block whose tokens `hist` counts.
pub(crate) fn go_header(hist: &Histogram) -> (Vec<u8>, usize) {
    let lit = &hist.lit;
    let mut dist = hist.dist;
    let nlit = lit.iter().rposition(|&f| f != 0).map_or(257, |i| i + 1);
    let mut ndist = dist.iter().rposition(|&f| f != 0).map_or(0, |i| i + 1);
    if ndist == 0 {
        dist[0] = 1;
        ndist = 1;
    }
    let lit_lens = lengths(lit, 15);
    let dist_lens = lengths(&dist, 15);
    let all: Vec<u8> = lit_lens[..nlit]
        .iter()
        .chain(&dist_lens[..ndist])
        .copied()
        .collect();
    // Run-length coding of the lengths: (symbol, extra bits value).
    let mut cg: Vec<(u8, u8)> = Vec::new();
    let mut cg_freq = [0u32; 19];
    let mut i = 0;
    while i < all.len() {
        let size = all[i];
        let mut count = all[i..].iter().take_while(|&&v| v == size).count();
        i += count;
        if size != 0 {
            cg.push((size, 0));
            cg_freq[usize::from(size)] += 1;
            count -= 1;
            while count >= 3 {
                let n = count.min(6);
                cg.push((16, (n - 3) as u8));
                cg_freq[16] += 1;
                count -= n;
            }
        } else {
            while count >= 11 {
                let n = count.min(138);
                cg.push((18, (n - 11) as u8));
                cg_freq[18] += 1;
                count -= n;
            }
            if count >= 3 {
                cg.push((17, (count - 3) as u8));
                cg_freq[17] += 1;
                count = 0;
            }
        }
        for _ in 0..count {
            cg.push((size, 0));
            cg_freq[usize::from(size)] += 1;
        }
    }
    let cl_lens = lengths(&cg_freq, 7);
    let mut ncl = 19;
    while ncl > 4 && cl_lens[CL_ORDER[ncl - 1]] == 0 {
        ncl -= 1;
    }
    let mut o = BitOut::default();
    o.put((nlit - 257) as u32, 5);
    o.put((ndist - 1) as u32, 5);
    o.put((ncl - 4) as u32, 4);
    for &k in &CL_ORDER[..ncl] {
        o.put(u32::from(cl_lens[k]), 3);
    }
    if let Some(code) = Code::new(&cl_lens) {
        for &(sym, extra) in &cg {
            let sym = usize::from(sym);
            o.put(u32::from(code.codes()[sym]), u32::from(code.lens()[sym]));
            match sym {
                16 => o.put(u32::from(extra), 2),
                17 => o.put(u32::from(extra), 3),
                18 => o.put(u32::from(extra), 7),
                _ => {}
            }
        }
    }
    let bits = o.bit_len();
    let (partial, n) = o.partial();
    let mut raw = o.into_bytes();
    if n > 0 {
        raw.push(partial);
    }
    (raw, bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn lengths_are_complete_prefix_codes_within_the_limit(
            // As Go uses it: literal/length and distance codes of at most 286 symbols limited
            // to 15 bits, the code length code of 19 to 7.
            (freq, max_bits) in proptest::prop_oneof![
                (proptest::collection::vec(0u32..5000, 3..=286), proptest::strategy::Just(15usize)),
                (proptest::collection::vec(0u32..300, 3..=19), proptest::strategy::Just(7usize)),
            ],
        ) {
            let lens = lengths(&freq, max_bits);
            let used = freq.iter().filter(|&&f| f != 0).count();
            for (f, l) in freq.iter().zip(&lens) {
                proptest::prop_assert_eq!(*f != 0, *l != 0);
                proptest::prop_assert!(usize::from(*l) <= max_bits);
            }
            if used >= 2 {
                // Kraft: a complete code uses the whole space.
                let kraft: u64 = lens
                    .iter()
                    .filter(|&&l| l != 0)
                    .map(|&l| 1u64 << (15 - u32::from(l)))
                    .sum();
                proptest::prop_assert_eq!(kraft, 1 << 15);
            }
        }
    }

    #[test]
    fn skewed_frequencies_are_limited_to_15_bits() {
        // Fibonacci frequencies would want a code 29 bits long.
        let mut freq = vec![1u32, 1];
        while freq.len() < 30 {
            let n = freq.len();
            freq.push(freq[n - 1] + freq[n - 2]);
        }
        let lens = lengths(&freq, 15);
        assert_eq!(lens.iter().copied().max(), Some(15));
        let kraft: u64 = lens.iter().map(|&l| 1u64 << (15 - u32::from(l))).sum();
        assert_eq!(kraft, 1 << 15);
    }

    #[test]
    fn a_lone_block_of_literals_has_a_decodable_header() {
        let toks: Vec<_> = b"hello, hello"
            .iter()
            .map(|&b| super::super::deflate::Tok::lit(b))
            .collect();
        let (raw, bits) = go_header(&Histogram::of(&toks));
        assert!(super::super::deflate::Header::from_raw(&raw, bits).is_some());
    }
}
