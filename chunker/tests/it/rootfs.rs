//! A rootfs-like tree for dedup measurements: file sizes log-normal (median 1.8 KiB, capped at
//! 2 MiB), content 45% text, 35% binary-like, 20% incompressible, plus directories and
//! symlinks; and a second version with some files edited and some mtimes changed.
//!
//! benches/src/data.rs has a fuller generator; this one stays here so the chunker's tests
//! depend on no other airlock crate.

use rand::{Rng, SeedableRng, seq::SliceRandom};
use rand_chacha::ChaCha8Rng;

#[derive(Clone, Debug)]
pub struct Entry {
    pub path: String,
    pub mtime: u64,
    /// `None` for a symlink.
    pub data: Option<Vec<u8>>,
}

pub fn generate(seed: u64, n_entries: usize) -> Vec<Entry> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let words: Vec<Vec<u8>> = (0..2000)
        .map(|_| {
            let n = rng.gen_range(2..12);
            (0..n).map(|_| rng.gen_range(b'a'..=b'z')).collect()
        })
        .collect();
    let patterns: Vec<[u8; 16]> = (0..4096).map(|_| rng.r#gen()).collect();
    let mut entries: Vec<Entry> = (0..n_entries)
        .map(|i| {
            let path = format!("usr/lib/pkg{}/f{i:05}", rng.gen_range(0..60));
            let mtime = 1_700_000_000 + rng.gen_range(0..10_000_000);
            if rng.gen_ratio(1, 25) {
                return Entry {
                    path,
                    mtime,
                    data: None,
                };
            }
            let size = if rng.gen_ratio(1, 25) {
                0
            } else {
                let (u1, u2): (f64, f64) = (rng.gen_range(f64::EPSILON..1.0), rng.r#gen());
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                ((7.5 + 2.0 * z).exp() as usize).min(2 << 20)
            };
            let mut data = Vec::with_capacity(size + 16);
            match rng.gen_range(0..100) {
                0..=44 => {
                    while data.len() < size {
                        let r: f64 = rng.r#gen();
                        data.extend_from_slice(&words[(r * r * 2000.0) as usize]);
                        data.push(if rng.gen_ratio(1, 9) { b'\n' } else { b' ' });
                    }
                }
                45..=79 => {
                    while data.len() < size {
                        match rng.gen_range(0..10) {
                            0..=5 => data.extend_from_slice(&patterns[rng.gen_range(0..4096)]),
                            6..=8 => data.extend_from_slice(&rng.r#gen::<[u8; 16]>()),
                            _ => data.resize(data.len() + rng.gen_range(8..64), 0),
                        }
                    }
                }
                _ => {
                    data.resize(size, 0);
                    rng.fill(&mut data[..]);
                }
            }
            data.truncate(size);
            Entry {
                path,
                mtime,
                data: Some(data),
            }
        })
        .collect();
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    entries
}

/// The next version: `edited` of the non-empty files get 1 to 8 bytes changed in the middle,
/// `touched` of all entries a later mtime.
pub fn edit(v1: &[Entry], seed: u64, edited: f64, touched: f64) -> Vec<Entry> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut v2 = v1.to_vec();
    let mut files: Vec<usize> = (0..v2.len())
        .filter(|&i| v2[i].data.as_ref().is_some_and(|d| !d.is_empty()))
        .collect();
    files.shuffle(&mut rng);
    for &i in &files[..(files.len() as f64 * edited).round() as usize] {
        if let Some(data) = &mut v2[i].data {
            let n = rng.gen_range(1..=8).min(data.len());
            let at = (data.len() - n) / 2;
            for b in &mut data[at..at + n] {
                *b = b.wrapping_add(rng.gen_range(1..=255));
            }
        }
    }
    let mut all: Vec<usize> = (0..v2.len()).collect();
    all.shuffle(&mut rng);
    for &i in &all[..(all.len() as f64 * touched).round() as usize] {
        v2[i].mtime += rng.gen_range(3_600..2_592_000);
    }
    v2
}

pub fn to_tar(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(e.mtime);
        h.set_mode(0o644);
        match &e.data {
            Some(data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, &e.path, &data[..]).unwrap();
            }
            None => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, &e.path, "../target").unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}
