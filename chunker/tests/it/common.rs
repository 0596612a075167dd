use std::{io, ops::Range};

use airlock_chunker::{ChunkId, Chunker, ChunkerParams, Layout, Mode, Piece};

/// Small sizes so that short inputs hold many chunks and hit the maximum often.
pub fn small() -> ChunkerParams {
    ChunkerParams::new(256, 1024, 4096).unwrap()
}

/// Every piece of `data`, and how it was cut.
pub fn cut(data: &[u8], params: ChunkerParams, mode: Mode) -> (Vec<Piece>, Layout) {
    Chunker::new(data, params, mode).collect_all().unwrap()
}

/// Cuts through a reader that returns at most `step` bytes per call.
pub fn cut_trickled(
    data: &[u8],
    step: usize,
    params: ChunkerParams,
    mode: Mode,
) -> (Vec<Piece>, Layout) {
    Chunker::new(Trickle { data, step }, params, mode)
        .collect_all()
        .unwrap()
}

/// A reader handing out at most `step` bytes per call.
pub struct Trickle<'a> {
    pub data: &'a [u8],
    pub step: usize,
}

impl io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.step).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// A piece with its place in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub offset: u64,
    pub len: u64,
    pub chunk: bool,
}

impl Span {
    pub fn end(&self) -> u64 {
        self.offset + self.len
    }
}

pub fn spans(pieces: &[Piece]) -> Vec<Span> {
    let mut offset = 0;
    pieces
        .iter()
        .map(|p| {
            let span = Span {
                offset,
                len: p.len() as u64,
                chunk: matches!(p, Piece::Chunk(_)),
            };
            offset += span.len;
            span
        })
        .collect()
}

/// What must hold for any input: the pieces give the input back byte for byte, none is empty,
/// every chunk id is the BLAKE3 of its bytes, no chunk exceeds the maximum.
pub fn assert_exact(data: &[u8], pieces: &[Piece], params: ChunkerParams) {
    let mut rebuilt = Vec::with_capacity(data.len());
    for (i, piece) in pieces.iter().enumerate() {
        assert!(!piece.is_empty(), "piece {i} is empty");
        match piece {
            Piece::Inline(b) => rebuilt.extend_from_slice(b),
            Piece::Chunk(c) => {
                assert_eq!(c.id, ChunkId::of(&c.data), "chunk {i} id");
                assert_eq!(c.id.as_bytes(), blake3::hash(&c.data).as_bytes());
                assert!(
                    c.data.len() <= params.max_size() as usize,
                    "chunk {i} has {} bytes, max {}",
                    c.data.len(),
                    params.max_size()
                );
                rebuilt.extend_from_slice(&c.data);
            }
        }
    }
    assert_eq!(rebuilt.len(), data.len(), "rebuilt length");
    assert!(rebuilt == data, "rebuilt bytes differ from the input");
}

/// What must hold for a well-formed tar: chunks lie inside file data and cover it exactly,
/// inline pieces hold everything else, and each file's data starts and ends a chunk.
pub fn assert_cuts_at_files(pieces: &[Piece], files: &[Range<u64>]) {
    let mut files = files.iter().filter(|r| !r.is_empty()).peekable();
    for span in spans(pieces) {
        while files.peek().is_some_and(|f| f.end <= span.offset) {
            files.next();
        }
        let file = files.peek();
        if span.chunk {
            let file = file.unwrap_or_else(|| panic!("chunk {span:?} outside file data"));
            assert!(
                file.start <= span.offset && span.end() <= file.end,
                "chunk {span:?} spans beyond file data {file:?}"
            );
        } else if let Some(file) = file {
            assert!(
                span.end() <= file.start,
                "inline {span:?} overlaps file data {file:?}"
            );
        }
    }
}

/// Where each entry's data lies in a well-formed tar, as the `tar` crate reads it (PAX `size`
/// records included).
pub fn file_ranges(tar: &[u8]) -> Vec<Range<u64>> {
    let mut archive = tar::Archive::new(tar);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let start = e.raw_file_position();
            start..start + e.size()
        })
        .collect()
}

/// Header records in a well-formed tar, PAX and long-name records included.
pub fn header_records(tar: &[u8]) -> u64 {
    let mut archive = tar::Archive::new(tar);
    archive.entries().unwrap().raw(true).count() as u64
}

/// Sum of the bytes of inline pieces and of chunk pieces.
pub fn inline_and_chunk_bytes(pieces: &[Piece]) -> (usize, usize) {
    pieces.iter().fold((0, 0), |(i, c), p| match p {
        Piece::Inline(b) => (i + b.len(), c),
        Piece::Chunk(ch) => (i, c + ch.data.len()),
    })
}

/// Appends a regular file with a GNU header (long paths become 'L' records).
pub fn append_file(builder: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(1_700_000_000);
    h.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut h, path, data).unwrap();
}

/// Deterministic incompressible bytes.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    use rand::{RngCore, SeedableRng};
    let mut v = vec![0; len];
    rand_chacha::ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}
