//! The streaming chunker: a state machine over tar blocks and CDC regions.

use std::io::{self, Read};

use rayon::prelude::*;

use crate::{
    ChunkId, ChunkerParams, Error,
    cdc::{Cutter, Window, read_counted},
    tar::{self, BLOCK, Block, Kind},
};

/// A batch ends once it holds this many bytes of input (plus at most one inline run and one
/// chunk).
pub const BATCH_BYTES: usize = 2 * 1024 * 1024;

/// How the chunker treats its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Tar-aware cuts if the stream starts with a valid tar header, plain CDC otherwise.
    Auto,
    /// Plain CDC over the whole stream.
    Plain,
}

/// A content-defined chunk and its id.
#[derive(Clone, PartialEq, Eq)]
pub struct Chunk {
    /// BLAKE3 of `data`.
    pub id: ChunkId,
    /// The raw bytes.
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Chunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunk")
            .field("id", &self.id)
            .field("len", &self.data.len())
            .finish()
    }
}

/// One piece of the input, in order: concatenating every piece's bytes gives the input back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    /// Bytes kept inline in the recipe: tar headers, metadata records, padding, the end marker,
    /// a truncated block at EOF. Never empty.
    Inline(Vec<u8>),
    /// A content-defined chunk, stored once in the store however many blobs hold it.
    Chunk(Chunk),
}

impl Piece {
    /// Number of input bytes this piece stands for.
    pub fn len(&self) -> usize {
        match self {
            Piece::Inline(b) => b.len(),
            Piece::Chunk(c) => c.data.len(),
        }
    }

    /// Whether the piece stands for no bytes (never produced by the chunker).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How the input was cut, known once the chunker is exhausted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Tar-aware all the way (a truncated tar included); `members` counts header records (PAX
    /// and long-name included).
    Tar {
        /// Header records seen.
        members: u64,
    },
    /// Parsed as a tar up to `plain_from`, where a block that should have been a header was
    /// not one (a bad checksum, junk after the end-of-archive marker, or more zero blocks than
    /// a 10 KiB record holds); plain CDC from there to the end.
    TarThenPlain {
        /// Header records seen before `plain_from`.
        members: u64,
        /// Byte offset of the first block not parsed as tar.
        plain_from: u64,
    },
    /// Plain CDC over the whole stream (not a tar, or [`Mode::Plain`]).
    Plain,
}

#[derive(Debug)]
enum State {
    /// Nothing read yet.
    Start,
    /// Expecting a header block.
    Header,
    /// Inside entry data: CDC over the window's region, then `padding` bytes inline.
    Data { padding: u64 },
    /// CDC until EOF.
    Plain,
    /// Input exhausted; only pending inline bytes remain to emit.
    Done,
    /// A read failed: the input cannot be resumed.
    Failed,
}

/// A piece before its chunk id is computed.
enum Draft {
    Inline(Vec<u8>),
    Chunk(Vec<u8>),
}

impl Draft {
    fn identify(self) -> Piece {
        match self {
            Draft::Inline(b) => Piece::Inline(b),
            Draft::Chunk(data) => Piece::Chunk(Chunk {
                id: ChunkId::of(&data),
                data,
            }),
        }
    }
}

/// The drafts of one batch and the input bytes they stand for.
#[derive(Default)]
struct Drafts {
    list: Vec<Draft>,
    bytes: usize,
}

impl Drafts {
    fn push(&mut self, draft: Draft) {
        self.bytes += match &draft {
            Draft::Inline(b) | Draft::Chunk(b) => b.len(),
        };
        self.list.push(draft);
    }
}

/// A batch of the input cut into pieces whose chunk ids are not computed yet (see
/// [`Chunker::next_cut`]).
pub struct CutBatch {
    drafts: Drafts,
}

impl std::fmt::Debug for CutBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CutBatch")
            .field("pieces", &self.drafts.list.len())
            .field("bytes", &self.drafts.bytes)
            .finish()
    }
}

impl CutBatch {
    /// Input bytes the batch stands for.
    pub fn bytes(&self) -> usize {
        self.drafts.bytes
    }

    /// The pieces, with the chunk ids computed on this thread.
    pub fn identify(self) -> Vec<Piece> {
        self.drafts.list.into_iter().map(Draft::identify).collect()
    }

    /// The pieces, with the chunk ids computed in parallel on the rayon pool.
    pub fn identify_par(self) -> Vec<Piece> {
        self.drafts
            .list
            .into_par_iter()
            .map(Draft::identify)
            .collect()
    }
}

/// Streams [`Piece`]s out of a reader.
///
/// Memory is bounded whatever the input size: a batch of about [`BATCH_BYTES`] (plus one chunk
/// and one inline run of at most [`MAX_INLINE_RUN_BYTES`]) and a read buffer of four
/// maximum-size chunks. After [`Chunker::next_batch`] returns an error, the chunker only
/// returns errors.
#[derive(Debug)]
pub struct Chunker<R> {
    src: R,
    cutter: Cutter,
    mode: Mode,
    state: State,
    window: Window,
    /// Inline bytes not yet emitted; they precede the window's bytes in the input.
    inline: Vec<u8>,
    /// Bytes pulled from `src` so far.
    read: u64,
    members: u64,
    /// Consecutive zero blocks seen where a header was expected.
    zero_blocks: u32,
    /// The `size` record of the last PAX extended header, for the next entry.
    pax_size: Option<u64>,
    plain_from: Option<u64>,
    tar: bool,
}

/// An inline run is emitted as soon as it reaches this size, so that many empty entries in a
/// row (or a long chain of sparse extension blocks) cannot grow it without bound.
pub const MAX_INLINE_RUN_BYTES: usize = 1024 * 1024;

impl<R: Read> Chunker<R> {
    /// Prepares to cut `src`; nothing is read until [`Chunker::next_batch`].
    pub fn new(src: R, params: ChunkerParams, mode: Mode) -> Chunker<R> {
        Chunker {
            src,
            cutter: Cutter::new(params),
            mode,
            state: State::Start,
            window: Window::default(),
            inline: Vec::new(),
            read: 0,
            members: 0,
            zero_blocks: 0,
            pax_size: None,
            plain_from: None,
            tar: false,
        }
    }

    /// The next pieces of the input, about [`BATCH_BYTES`] at a time, with chunk ids computed
    /// in parallel (rayon); `None` once the input is exhausted.
    pub fn next_batch(&mut self) -> Result<Option<Vec<Piece>>, Error> {
        Ok(self.next_cut()?.map(CutBatch::identify_par))
    }

    /// As [`Chunker::next_batch`], but the chunk ids are left to the caller
    /// ([`CutBatch::identify`] or [`CutBatch::identify_par`]), e.g. to compute them on a
    /// thread of a pipeline rather than on a pool that is busy compressing.
    pub fn next_cut(&mut self) -> Result<Option<CutBatch>, Error> {
        if let State::Failed = self.state {
            return Err(Error::Poisoned { offset: self.read });
        }
        let mut drafts = Drafts::default();
        while drafts.bytes < BATCH_BYTES && !matches!(self.state, State::Done) {
            if let Err(source) = self.step(&mut drafts) {
                self.state = State::Failed;
                return Err(Error::Read {
                    offset: self.read,
                    source,
                });
            }
        }
        if matches!(self.state, State::Done) && !self.inline.is_empty() {
            drafts.push(Draft::Inline(std::mem::take(&mut self.inline)));
        }
        if drafts.list.is_empty() {
            return Ok(None);
        }
        Ok(Some(CutBatch { drafts }))
    }

    /// How the input was cut; final once [`Chunker::next_batch`] returned `None`.
    pub fn layout(&self) -> Layout {
        match (self.tar, self.plain_from) {
            (false, _) => Layout::Plain,
            (true, None) => Layout::Tar {
                members: self.members,
            },
            (true, Some(plain_from)) => Layout::TarThenPlain {
                members: self.members,
                plain_from,
            },
        }
    }

    /// Bytes read from the source so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// Gives the reader back, e.g. to finish a digest computed while reading.
    pub fn into_inner(self) -> R {
        self.src
    }

    /// Convenience for small inputs and tests: every piece of the input at once.
    pub fn collect_all(mut self) -> Result<(Vec<Piece>, Layout), Error> {
        let mut out = Vec::new();
        while let Some(batch) = self.next_batch()? {
            out.extend(batch);
        }
        Ok((out, self.layout()))
    }

    /// Advances the state machine by one transition, pushing the pieces it completes.
    fn step(&mut self, out: &mut Drafts) -> io::Result<()> {
        match self.state {
            State::Start => {
                if self.mode == Mode::Plain {
                    self.start_plain(&[]);
                    return Ok(());
                }
                let (block, got) = self.read_block()?;
                match (got, tar::classify(&block)) {
                    (BLOCK, Block::Header(h)) => {
                        self.tar = true;
                        self.take_header(&block, h)?;
                    }
                    // Not a tar: the bytes read so far start the plain region.
                    _ => self.start_plain(&block[..got]),
                }
            }
            State::Header => {
                let (block, got) = self.read_block()?;
                if got < BLOCK {
                    // EOF, possibly inside a block: keep the stub inline.
                    self.inline.extend_from_slice(&block[..got]);
                    self.state = State::Done;
                    return Ok(());
                }
                match tar::classify(&block) {
                    Block::Header(h) => {
                        // A header after end-of-archive zeros: concatenated archives.
                        self.zero_blocks = 0;
                        self.take_header(&block, h)?;
                    }
                    Block::Zero if self.zero_blocks < tar::MAX_ZERO_BLOCKS => {
                        self.zero_blocks += 1;
                        self.inline.extend_from_slice(&block);
                    }
                    Block::Zero | Block::Invalid => {
                        self.plain_from = Some(self.read - BLOCK as u64);
                        self.start_plain(&block);
                    }
                }
            }
            State::Data { padding } => {
                match self
                    .window
                    .next_chunk(&mut self.src, &self.cutter, &mut self.read)?
                {
                    Some(data) => self.emit_chunk(out, data),
                    None => {
                        let got = self.read_inline(padding)?;
                        self.state = if got < padding {
                            State::Done
                        } else {
                            State::Header
                        };
                    }
                }
            }
            State::Plain => {
                match self
                    .window
                    .next_chunk(&mut self.src, &self.cutter, &mut self.read)?
                {
                    Some(data) => self.emit_chunk(out, data),
                    None => self.state = State::Done,
                }
            }
            State::Done | State::Failed => {}
        }
        if self.inline.len() >= MAX_INLINE_RUN_BYTES {
            out.push(Draft::Inline(std::mem::take(&mut self.inline)));
        }
        Ok(())
    }

    /// Pushes a chunk after the inline bytes that precede it.
    fn emit_chunk(&mut self, out: &mut Drafts, data: Vec<u8>) {
        if !self.inline.is_empty() {
            out.push(Draft::Inline(std::mem::take(&mut self.inline)));
        }
        out.push(Draft::Chunk(data));
    }

    /// Cuts everything from here to EOF by plain CDC, starting with `carry`, bytes already
    /// read that turned out not to be a tar header.
    fn start_plain(&mut self, carry: &[u8]) {
        self.window.begin_region(None);
        self.window.preload(carry, &self.cutter);
        self.state = State::Plain;
    }

    /// Handles a valid header block: inline it, its extension blocks and metadata records, and
    /// set up the data region that follows.
    fn take_header(&mut self, block: &[u8; BLOCK], h: tar::Header) -> io::Result<()> {
        self.members += 1;
        self.inline.extend_from_slice(block);
        if let Kind::Pax | Kind::Metadata = h.kind {
            let start = self.inline.len();
            let want = h.size + tar::padding(h.size);
            let got = self.read_inline(want)?;
            if got < want {
                self.state = State::Done;
                return Ok(());
            }
            if h.kind == Kind::Pax {
                // Records apply to the next entry that is not itself metadata.
                let end = start + h.size as usize;
                self.pax_size = tar::pax_size(&self.inline[start..end]);
            }
            self.state = State::Header;
            return Ok(());
        }
        let pax_size = self.pax_size.take();
        if h.kind == Kind::SparseExtended {
            loop {
                let (ext, got) = self.read_block()?;
                self.inline.extend_from_slice(&ext[..got]);
                if got < BLOCK {
                    self.state = State::Done;
                    return Ok(());
                }
                if !tar::extension_continues(&ext) {
                    break;
                }
            }
        }
        let size = match h.kind {
            Kind::NoData => 0,
            _ => pax_size.unwrap_or(h.size),
        };
        if size == 0 {
            self.state = State::Header;
        } else {
            self.window.begin_region(Some(size));
            self.state = State::Data {
                padding: tar::padding(size),
            };
        }
        Ok(())
    }

    /// Reads one block; the count is short only at EOF.
    fn read_block(&mut self) -> io::Result<([u8; BLOCK], usize)> {
        let mut block = [0u8; BLOCK];
        let got = read_counted(&mut self.src, &mut block, &mut self.read)?;
        Ok((block, got))
    }

    /// Reads up to `n` bytes (padding or a metadata record, so at most about 1 MiB) onto the
    /// inline run; returns how many arrived.
    fn read_inline(&mut self, n: u64) -> io::Result<u64> {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        let old = self.inline.len();
        self.inline.resize(old + n, 0);
        let got = read_counted(&mut self.src, &mut self.inline[old..], &mut self.read);
        let kept = old + *got.as_ref().unwrap_or(&0);
        self.inline.truncate(kept);
        Ok(got? as u64)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn noise(len: usize) -> Vec<u8> {
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn header(path: &str, kind: u8, size: u64) -> [u8; BLOCK] {
        let mut h = ::tar::Header::new_ustar();
        h.set_path(path).unwrap();
        h.set_entry_type(::tar::EntryType::new(kind));
        h.set_size(size);
        h.set_cksum();
        *h.as_bytes()
    }

    fn push_entry(tar: &mut Vec<u8>, path: &str, kind: u8, size: u64, data: &[u8]) {
        tar.extend_from_slice(&header(path, kind, size));
        tar.extend_from_slice(data);
        tar.resize(tar.len().next_multiple_of(BLOCK), 0);
    }

    /// (offset, len) of every chunk.
    fn chunk_spans(pieces: &[Piece]) -> Vec<(usize, usize)> {
        let mut at = 0;
        let mut out = Vec::new();
        for p in pieces {
            if let Piece::Chunk(c) = p {
                out.push((at, c.data.len()));
            }
            at += p.len();
        }
        out
    }

    fn params() -> ChunkerParams {
        ChunkerParams::new(256, 1024, 4096).unwrap()
    }

    #[test]
    fn pax_size_applies_to_the_next_entry_only() {
        let mut tar = Vec::new();
        push_entry(&mut tar, "pax", b'x', 12, b"12 size=600\n");
        push_entry(&mut tar, "long", b'L', 5, b"name\0"); // metadata: the size waits
        let a = tar.len() + BLOCK;
        push_entry(&mut tar, "a", b'0', 0, &noise(600));
        let b = tar.len() + BLOCK;
        push_entry(&mut tar, "b", b'0', 700, &noise(700));
        tar.resize(tar.len() + 2 * BLOCK, 0);
        let (pieces, layout) = Chunker::new(&tar[..], params(), Mode::Auto)
            .collect_all()
            .unwrap();
        assert_eq!(layout, Layout::Tar { members: 4 });
        assert_eq!(chunk_spans(&pieces), [(a, 600), (b, 700)]);
    }

    #[test]
    fn inline_runs_are_bounded() {
        // Thousands of empty files: nothing but headers.
        let mut tar = Vec::new();
        for i in 0..5000 {
            push_entry(&mut tar, &format!("e{i}"), b'0', 0, &[]);
        }
        let (pieces, layout) = Chunker::new(&tar[..], params(), Mode::Auto)
            .collect_all()
            .unwrap();
        assert_eq!(layout, Layout::Tar { members: 5000 });
        assert!(pieces.len() > 1);
        assert!(pieces.iter().all(|p| matches!(p, Piece::Inline(b)
            if b.len() <= MAX_INLINE_RUN_BYTES + BLOCK)));
        assert_eq!(pieces.iter().map(Piece::len).sum::<usize>(), tar.len());
    }

    #[test]
    fn batches_are_bounded() {
        let data = noise(3 * BATCH_BYTES + 12345);
        let mut chunker = Chunker::new(&data[..], ChunkerParams::default(), Mode::Auto);
        let mut sizes = Vec::new();
        while let Some(batch) = chunker.next_batch().unwrap() {
            sizes.push(batch.iter().map(Piece::len).sum::<usize>());
        }
        assert_eq!(sizes.iter().sum::<usize>(), data.len());
        let max = ChunkerParams::DEFAULT_MAX_BYTES as usize;
        for s in &sizes[..sizes.len() - 1] {
            assert!((BATCH_BYTES..BATCH_BYTES + max).contains(s), "{s}");
        }
        assert!(chunker.next_batch().unwrap().is_none());
    }

    #[test]
    fn end_marker_then_eof_inside_a_block() {
        let mut tar = Vec::new();
        push_entry(&mut tar, "a", b'0', 3, b"abc");
        tar.resize(tar.len() + 2 * BLOCK + 100, 0);
        tar.extend_from_slice(b"stub");
        let (pieces, layout) = Chunker::new(&tar[..], params(), Mode::Auto)
            .collect_all()
            .unwrap();
        assert_eq!(layout, Layout::Tar { members: 1 });
        assert_eq!(chunk_spans(&pieces), [(BLOCK, 3)]);
        assert_eq!(pieces.iter().map(Piece::len).sum::<usize>(), tar.len());
    }
}
