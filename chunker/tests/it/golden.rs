//! Exact pieces of two seeded inputs. Cut points are part of the store format: a store holds
//! chunks cut by one version of this algorithm, and a blob cut differently dedups against
//! nothing. If this test fails, the change moves cut points: bump `CHUNKER_VERSION`, and only
//! then update the tables (the failure message prints the new ones).
//!
//! The inputs use only `RngCore` of ChaCha8 (value-stable across `rand` versions) and a
//! hand-written tar header, so a dependency update cannot change them.

use airlock_chunker::{CHUNKER_VERSION, ChunkerParams, Layout, Mode, Piece};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::common::{assert_exact, cut, spans};

/// One row: inline or chunk, offset, length, the first 16 hex digits of BLAKE3 of its bytes.
type Row = (char, u64, u64, &'static str);

/// 4 MiB alternating random bytes and repeated text, in [`Mode::Plain`].
const PLAIN_ROWS: &[Row] = &[
    ('C', 0, 85614, "f5b0096c051f2526"),
    ('C', 85614, 103036, "d3a4b36c106889d6"),
    ('C', 188650, 48828, "140a8dc0c5a8a651"),
    ('C', 237478, 130570, "d1db72409d1035fa"),
    ('C', 368048, 103635, "7f40975eb9afea9a"),
    ('C', 471683, 26137, "b1e39a3b494fbf8a"),
    ('C', 497820, 81062, "1ede957e8b007242"),
    ('C', 578882, 79557, "969b66678c72f471"),
    ('C', 658439, 32075, "b164edef412bbd87"),
    ('C', 690514, 91008, "709b31e8abca4deb"),
    ('C', 781522, 106142, "cc229bf3265b9518"),
    ('C', 887664, 53515, "06cd91557414a7e7"),
    ('C', 941179, 118625, "5908440af301f864"),
    ('C', 1059804, 134813, "3bcaf45164ae11b9"),
    ('C', 1194617, 66002, "498bf4b58e70352d"),
    ('C', 1260619, 29605, "1d689c0025a8b305"),
    ('C', 1290224, 144918, "47db0bf36f30308a"),
    ('C', 1435142, 72928, "aad668d519ab9af3"),
    ('C', 1508070, 151460, "f11d2b01d9c51573"),
    ('C', 1659530, 67340, "51ac2574d30711ed"),
];
const PLAIN_COUNT: usize = 44;

/// A seeded tar of 30 entries (PAX and GNU long-name records included), in [`Mode::Auto`].
const TAR_ROWS: &[Row] = &[
    ('I', 0, 1024, "d1d8e1d2a337e231"),
    ('C', 1024, 1, "fed2517a06cb9732"),
    ('I', 1025, 1023, "e349269d2f3c490a"),
    ('C', 2048, 511, "e7bb46b81607eb28"),
    ('I', 2559, 1537, "59d61f28acabb507"),
    ('C', 4096, 512, "e658404af24e3b93"),
    ('I', 4608, 512, "be41613db8427e18"),
    ('C', 5120, 513, "81b56418cc2b252c"),
    ('I', 5633, 2047, "ae95611cba890953"),
    ('C', 7680, 4096, "7914c293ed560f43"),
    ('I', 11776, 512, "dcc160db926c2642"),
    ('C', 12288, 70000, "06e7db20dc53aaf7"),
    ('I', 82288, 656, "1a3d194f5d75eb27"),
    ('C', 82944, 80486, "47430f127ac47c12"),
    ('C', 163430, 103036, "d3a4b36c106889d6"),
    ('C', 266466, 48828, "140a8dc0c5a8a651"),
    ('C', 315294, 30214, "ef34bfd297d9fc9f"),
    ('C', 345508, 37436, "847e1cd644434ccb"),
    ('I', 382944, 544, "861a6f9040654a3e"),
    ('C', 383488, 20000, "54ce86e48c733b22"),
];
const TAR_COUNT: usize = 85;
const TAR_MEMBERS: u64 = 38;

const SEGMENT: usize = 256 * 1024;

fn plain_input() -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let mut data = Vec::with_capacity(16 * SEGMENT);
    for segment in 0..16 {
        if segment % 2 == 0 {
            let start = data.len();
            data.resize(start + SEGMENT, 0);
            rng.fill_bytes(&mut data[start..]);
        } else {
            let end = data.len() + SEGMENT;
            let mut line = 0u64;
            while data.len() < end {
                let word = rng.next_u64() % 1000;
                let text = format!("{line}: the quick brown fox jumps over the lazy dog {word}\n");
                data.extend_from_slice(text.as_bytes());
                line += 1;
            }
            data.truncate(end);
        }
    }
    data
}

fn put_octal(field: &mut [u8], value: u64) {
    let text = format!("{value:0width$o}\0", width = field.len() - 1);
    field.copy_from_slice(text.as_bytes());
}

/// A POSIX ustar header, written by hand.
fn header(name: &str, size: u64, typeflag: u8) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    put_octal(&mut h[100..108], 0o644);
    put_octal(&mut h[108..116], 0);
    put_octal(&mut h[116..124], 0);
    put_octal(&mut h[124..136], size);
    put_octal(&mut h[136..148], 1_700_000_000);
    h[156] = typeflag;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].fill(b' ');
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

fn append(tar: &mut Vec<u8>, name: &str, typeflag: u8, data: &[u8]) {
    tar.extend_from_slice(&header(name, data.len() as u64, typeflag));
    tar.extend_from_slice(data);
    tar.resize(tar.len().next_multiple_of(512), 0);
}

fn tar_input() -> Vec<u8> {
    const SIZES: [usize; 10] = [0, 1, 511, 512, 513, 4096, 70_000, 300_000, 20_000, 900_000];
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let mut tar = Vec::new();
    for i in 0..30 {
        let size = SIZES[i % SIZES.len()];
        let mut data = vec![0u8; size];
        if i % 3 == 0 {
            // Text-like: digits and letters of a repeated sentence.
            for (j, b) in data.iter_mut().enumerate() {
                *b = b"airlock carries containers across an air gap\n"[j % 45];
            }
        } else {
            rng.fill_bytes(&mut data);
        }
        let name = format!("file{i:02}");
        match i % 7 {
            3 => {
                let record = format!(" path={}/{name}\n", "p".repeat(17));
                let record = format!("{}{record}", record.len() + 2);
                append(&mut tar, "PaxHeaders/x", b'x', record.as_bytes());
            }
            5 => {
                let long = format!("{}/{name}\0", "g".repeat(120));
                append(&mut tar, "././@LongLink", b'L', long.as_bytes());
            }
            _ => {}
        }
        append(&mut tar, &name, b'0', &data);
    }
    tar.resize(tar.len() + 1024, 0);
    tar
}

fn rows(pieces: &[Piece]) -> Vec<(char, u64, u64, String)> {
    pieces
        .iter()
        .zip(spans(pieces))
        .take(20)
        .map(|(p, s)| {
            let (kind, bytes) = match p {
                Piece::Inline(b) => ('I', &b[..]),
                Piece::Chunk(c) => ('C', &c.data[..]),
            };
            (
                kind,
                s.offset,
                s.len,
                blake3::hash(bytes).to_hex()[..16].to_owned(),
            )
        })
        .collect()
}

fn check(name: &str, pieces: &[Piece], want_rows: &[Row], want_count: usize) {
    let got = rows(pieces);
    let want: Vec<_> = want_rows
        .iter()
        .map(|&(k, o, l, h)| (k, o, l, h.to_owned()))
        .collect();
    if got != want || pieces.len() != want_count {
        let table: String = got
            .iter()
            .map(|(k, o, l, h)| format!("    ('{k}', {o}, {l}, \"{h}\"),\n"))
            .collect();
        panic!(
            "{name}: cut points moved (CHUNKER_VERSION {CHUNKER_VERSION}); new table, {} pieces:\n{table}",
            pieces.len()
        );
    }
}

#[test]
fn golden_plain() {
    let data = plain_input();
    assert_eq!(data.len(), 4 * 1024 * 1024);
    let params = ChunkerParams::default();
    let (pieces, layout) = cut(&data, params, Mode::Plain);
    assert_exact(&data, &pieces, params);
    assert_eq!(layout, Layout::Plain);
    check("plain", &pieces, PLAIN_ROWS, PLAIN_COUNT);
}

#[test]
fn golden_tar() {
    let data = tar_input();
    let params = ChunkerParams::default();
    let (pieces, layout) = cut(&data, params, Mode::Auto);
    assert_exact(&data, &pieces, params);
    assert_eq!(
        layout,
        Layout::Tar {
            members: TAR_MEMBERS
        }
    );
    check("tar", &pieces, TAR_ROWS, TAR_COUNT);
}

#[test]
fn golden_version() {
    // The tables above were recorded with this version.
    assert_eq!(CHUNKER_VERSION, 1);
}
