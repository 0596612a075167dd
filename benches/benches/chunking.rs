//! Chunker throughput (MB/s of input, ids included) on a rootfs-like tar, plain and tar-aware,
//! and the share of a second version each mode finds already stored.

use std::{collections::HashSet, hint::black_box};

use airlock_benches::data::{Edit, Rootfs};
use airlock_chunker::{ChunkId, Chunker, ChunkerParams, Mode, Piece};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// About 40 MB of tar: big enough that per-stream costs vanish, small enough to iterate.
const ENTRIES: usize = 3000;
const MAX_FILE_BYTES: usize = 2 * 1024 * 1024;

/// Chunks `data` and returns (chunk ids, bytes of each chunk, inline bytes).
fn cut(data: &[u8], mode: Mode) -> (Vec<(ChunkId, usize)>, usize) {
    let mut chunker = Chunker::new(data, ChunkerParams::default(), mode);
    let (mut chunks, mut inline) = (Vec::new(), 0);
    while let Some(batch) = chunker.next_batch().expect("reading from a slice") {
        for piece in batch {
            match piece {
                Piece::Chunk(c) => chunks.push((c.id, c.data.len())),
                Piece::Inline(b) => inline += b.len(),
            }
        }
    }
    (chunks, inline)
}

/// Prints how much of v2 is new against v1 for one mode: chunk bytes whose id v1 lacks, plus
/// every inline byte (a new recipe stores them all).
fn report_dedup(name: &str, v1: &[u8], v2: &[u8], mode: Mode) {
    let (old, _) = cut(v1, mode);
    let known: HashSet<ChunkId> = old.iter().map(|(id, _)| *id).collect();
    let (new, inline) = cut(v2, mode);
    let mut seen = HashSet::new();
    let new_chunk_bytes: usize = new
        .iter()
        .filter(|(id, _)| !known.contains(id) && seen.insert(*id))
        .map(|(_, len)| len)
        .sum();
    let new_bytes = new_chunk_bytes + inline;
    println!(
        "{name:>10}: v2 {:.1} MB, {} chunks, new {:.2} MB ({:.2} MB chunks + {:.2} MB inline), \
         already stored {:.1}%",
        v2.len() as f64 / 1e6,
        new.len(),
        new_bytes as f64 / 1e6,
        new_chunk_bytes as f64 / 1e6,
        inline as f64 / 1e6,
        100.0 * (1.0 - new_bytes as f64 / v2.len() as f64),
    );
}

fn chunking(c: &mut Criterion) {
    let fs = Rootfs::generate(1, ENTRIES, MAX_FILE_BYTES);
    let v1 = fs.to_tar();
    let v2 = fs.edit(2, Edit::TYPICAL).to_tar();
    println!(
        "rootfs: {} entries, {:.1} MB tar; v2 edits 2% of files, 10% of mtimes",
        fs.entries().len(),
        v1.len() as f64 / 1e6
    );
    report_dedup("plain", &v1, &v2, Mode::Plain);
    report_dedup("tar-aware", &v1, &v2, Mode::Auto);

    let mut group = c.benchmark_group("chunking");
    group.throughput(Throughput::Bytes(v1.len() as u64));
    group.sample_size(10);
    group.bench_function("plain", |b| b.iter(|| cut(black_box(&v1), Mode::Plain)));
    group.bench_function("tar_aware", |b| b.iter(|| cut(black_box(&v1), Mode::Auto)));
    // Reference: BLAKE3 alone (what a chunk id is) over the same bytes, one core.
    group.bench_function("blake3_one_core", |b| {
        b.iter(|| ChunkId::of(black_box(&v1)))
    });
    group.finish();
}

criterion_group!(benches, chunking);
criterion_main!(benches);
