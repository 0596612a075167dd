use std::collections::HashSet;

use airlock_chunker::{ChunkId, ChunkerParams, Layout, Mode, Piece};

use crate::{
    common::{assert_cuts_at_files, assert_exact, cut, file_ranges},
    rootfs,
};

/// Bytes of `v2` a store holding `v1` must add: chunks it lacks (each once) and every inline
/// byte (the new recipe holds them all).
fn new_bytes(v1: &[Piece], v2: &[Piece]) -> (usize, usize) {
    let known: HashSet<ChunkId> = v1
        .iter()
        .filter_map(|p| match p {
            Piece::Chunk(c) => Some(c.id),
            Piece::Inline(_) => None,
        })
        .collect();
    let mut added = HashSet::new();
    v2.iter().fold((0, 0), |(chunks, inline), p| match p {
        Piece::Chunk(c) if !known.contains(&c.id) && added.insert(c.id) => {
            (chunks + c.data.len(), inline)
        }
        Piece::Chunk(_) => (chunks, inline),
        Piece::Inline(b) => (chunks, inline + b.len()),
    })
}

/// DESIGN.md, tar-aware chunking: on a rebuilt image (2% of files edited, 10% of mtimes
/// changed) keeping headers inline and cutting at file boundaries must store far less than
/// plain CDC of the same tar; the target is at most a quarter of plain CDC's new bytes.
#[test]
fn rootfs_v2_tar_aware_adds_a_quarter_of_plain() {
    let v1 = rootfs::generate(2024, 2000);
    let v2 = rootfs::edit(&v1, 2025, 0.02, 0.10);
    let (t1, t2) = (rootfs::to_tar(&v1), rootfs::to_tar(&v2));
    let params = ChunkerParams::default();

    let (aware1, layout) = cut(&t1, params, Mode::Auto);
    assert!(matches!(layout, Layout::Tar { .. }));
    let (aware2, _) = cut(&t2, params, Mode::Auto);
    assert_exact(&t2, &aware2, params);
    assert_cuts_at_files(&aware2, &file_ranges(&t2));
    let (plain1, _) = cut(&t1, params, Mode::Plain);
    let (plain2, _) = cut(&t2, params, Mode::Plain);

    let (aware_chunks, aware_inline) = new_bytes(&aware1, &aware2);
    let (plain_chunks, _) = new_bytes(&plain1, &plain2);
    let aware = aware_chunks + aware_inline;
    let mb = |b: usize| b as f64 / 1e6;
    let stored = |b: usize| 100.0 * (1.0 - b as f64 / t2.len() as f64);
    eprintln!(
        "rootfs v2: {} entries, {:.1} MB tar\n  plain CDC: {} chunks, new {:.2} MB, already \
         stored {:.1}%\n  tar-aware: {} pieces, new {:.2} MB ({:.2} MB chunks + {:.2} MB \
         inline), already stored {:.1}%\n  tar-aware / plain new bytes: {:.3}",
        v2.len(),
        mb(t2.len()),
        plain2.len(),
        mb(plain_chunks),
        stored(plain_chunks),
        aware2.len(),
        mb(aware),
        mb(aware_chunks),
        mb(aware_inline),
        stored(aware),
        aware as f64 / plain_chunks as f64,
    );
    assert!(
        (15e6..40e6).contains(&(t2.len() as f64)),
        "the generator drifted: {} bytes",
        t2.len()
    );
    assert!(
        aware * 4 <= plain_chunks,
        "tar-aware adds {aware} bytes, plain CDC {plain_chunks}"
    );
}
