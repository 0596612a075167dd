//! The streaming chunker: a state machine over tar blocks and CDC regions.

use std::io::{self, Read};

use rayon::prelude::*;

use crate::{
    cdc::{fill, Cutter, Window},
    tar::{self, Block, BLOCK},
    ChunkId, ChunkerParams, Error,
};

/// A batch ends once it holds this many bytes of input (plus at most one chunk or record).
pub const BATCH_BYTES: usize = 8 * 1024 * 1024;

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
    /// Bytes kept inline in the recipe: tar headers, metadata records, padding, end marker.
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
    /// Tar-aware all the way; `members` counts header records (PAX and long-name included).
    Tar {
        /// Header records seen.
        members: u64,
    },
    /// Parsed as a tar up to `plain_from`, where a block failed its checksum; plain CDC after.
    TarThenPlain {
        /// Header records seen before the bad block.
        members: u64,
        /// Byte offset of the first block that was not a valid header.
        plain_from: u64,
    },
    /// Plain CDC over the whole stream (not a tar, or [`Mode::Plain`]).
    Plain,
}

#[derive(Debug)]
enum State {
    Start,
    /// Expecting a header block.
    Header,
    /// Inside entry data: CDC over `remaining` bytes, then `padding` bytes inline.
    Data { remaining: u64, padding: u64 },
    /// CDC until EOF.
    Plain,
    Done,
}

enum Draft {
    Inline(Vec<u8>),
    Chunk(Vec<u8>),
}

/// Streams [`Piece`]s out of a reader.
///
/// Memory is bounded by [`BATCH_BYTES`] plus one maximum-size chunk (or one metadata record of
/// at most 1 MiB), whatever the input size.
#[derive(Debug)]
pub struct Chunker<R> {
    src: R,
    cutter: Cutter,
    mode: Mode,
    state: State,
    window: Window,
    inline: Vec<u8>,
    /// Bytes pulled from `src` so far.
    read: u64,
    members: u64,
    plain_from: Option<u64>,
    tar: bool,
}

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
            plain_from: None,
            tar: false,
        }
    }

    /// The next pieces of the input, about [`BATCH_BYTES`] at a time, with chunk ids computed
    /// in parallel; `None` once the input is exhausted.
    pub fn next_batch(&mut self) -> Result<Option<Vec<Piece>>, Error> {
        let mut drafts = Vec::new();
        let mut bytes = 0usize;
        while bytes < BATCH_BYTES {
            match self.step().map_err(|source| Error::Read {
                offset: self.read,
                source,
            })? {
                Some(draft) => {
                    bytes += match &draft {
                        Draft::Inline(b) | Draft::Chunk(b) => b.len(),
                    };
                    drafts.push(draft);
                }
                None => break,
            }
        }
        if drafts.is_empty() {
            return Ok(None);
        }
        let pieces = drafts
            .into_par_iter()
            .map(|d| match d {
                Draft::Inline(b) => Piece::Inline(b),
                Draft::Chunk(data) => Piece::Chunk(Chunk {
                    id: ChunkId::of(&data),
                    data,
                }),
            })
            .collect();
        Ok(Some(pieces))
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

    /// Advances the state machine until it has a piece to emit or the input ends.
    fn step(&mut self) -> io::Result<Option<Draft>> {
        loop {
            match self.state {
                State::Start => {
                    if self.mode == Mode::Plain {
                        self.state = State::Plain;
                        continue;
                    }
                    let block = self.read_block()?;
                    match block.as_ref().map(tar::classify) {
                        Some(Block::Header(h)) => {
                            self.tar = true;
                            self.take_header(block.unwrap_or([0; BLOCK]), h)?;
                        }
                        _ => {
                            if let Some(b) = block {
                                self.window.unread(&b);
                            } else {
                                let partial = std::mem::take(&mut self.inline);
                                self.window.unread(&partial);
                            }
                            self.state = State::Plain;
                        }
                    }
                }
                State::Header => {
                    let Some(block) = self.read_block()? else {
                        // EOF, possibly after a partial block already put inline.
                        self.state = State::Done;
                        continue;
                    };
                    match tar::classify(&block) {
                        Block::Header(h) => self.take_header(block, h)?,
                        Block::Zero => {
                            // End of archive: keep the marker inline, cut whatever follows.
                            self.inline.extend_from_slice(&block);
                            self.state = State::Plain;
                        }
                        Block::Invalid => {
                            self.plain_from = Some(self.read - BLOCK as u64);
                            self.window.unread(&block);
                            self.state = State::Plain;
                        }
                    }
                }
                State::Data {
                    ref mut remaining,
                    padding,
                } => {
                    let mut region = Some(*remaining);
                    let chunk =
                        self.window
                            .next_chunk(&mut self.src, &self.cutter, &mut region, &mut self.read)?;
                    *remaining = region.unwrap_or(0);
                    match chunk {
                        Some(data) => return Ok(Some(self.flush_then(Draft::Chunk(data)))),
                        None => {
                            let pad = self.read_inline(padding)?;
                            self.state = if pad < padding {
                                State::Done
                            } else {
                                State::Header
                            };
                        }
                    }
                }
                State::Plain => {
                    let mut region = None;
                    match self
                        .window
                        .next_chunk(&mut self.src, &self.cutter, &mut region, &mut self.read)?
                    {
                        Some(data) => return Ok(Some(self.flush_then(Draft::Chunk(data)))),
                        None => self.state = State::Done,
                    }
                }
                State::Done => {
                    return Ok(if self.inline.is_empty() {
                        None
                    } else {
                        Some(Draft::Inline(std::mem::take(&mut self.inline)))
                    });
                }
            }
            // Keep inline runs from growing without bound (many empty entries in a row).
            if self.inline.len() >= BATCH_BYTES {
                return Ok(Some(Draft::Inline(std::mem::take(&mut self.inline))));
            }
        }
    }

    /// Emits pending inline bytes first; `next` is returned on the following call.
    fn flush_then(&mut self, next: Draft) -> Draft {
        if self.inline.is_empty() {
            return next;
        }
        // Chunks are only emitted from Data or Plain states, whose window already holds the
        // chunk's bytes; stash the chunk back and emit the inline run now.
        if let Draft::Chunk(data) = next {
            self.window.unread(&data);
        }
        Draft::Inline(std::mem::take(&mut self.inline))
    }

    /// Handles a valid header block: inline it, its extension blocks and metadata records, and
    /// set up the data region that follows.
    fn take_header(&mut self, block: [u8; BLOCK], h: tar::Header) -> io::Result<()> {
        self.members += 1;
        self.inline.extend_from_slice(&block);
        let mut extended = h.gnu_extended;
        while extended {
            let Some(ext) = self.read_block()? else {
                self.state = State::Done;
                return Ok(());
            };
            self.inline.extend_from_slice(&ext);
            extended = tar::extension_continues(&ext);
        }
        let padding = tar::padding(h.size);
        if h.is_metadata {
            let want = h.size + padding;
            let got = self.read_inline(want)?;
            self.state = if got < want {
                State::Done
            } else {
                State::Header
            };
        } else if h.size == 0 {
            self.state = State::Header;
        } else {
            self.state = State::Data {
                remaining: h.size,
                padding,
            };
        }
        Ok(())
    }

    /// Reads one block. A short block at EOF is put inline and reported as `None`.
    fn read_block(&mut self) -> io::Result<Option<[u8; BLOCK]>> {
        let mut buf = Vec::with_capacity(BLOCK);
        let got = fill(&mut self.src, &mut buf, BLOCK)?;
        self.read += got as u64;
        if got < BLOCK {
            self.inline.extend_from_slice(&buf);
            return Ok(None);
        }
        let mut block = [0u8; BLOCK];
        block.copy_from_slice(&buf);
        Ok(Some(block))
    }

    /// Reads up to `n` bytes (small: padding or a metadata record) onto the inline run.
    fn read_inline(&mut self, n: u64) -> io::Result<u64> {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        let got = fill(&mut self.src, &mut self.inline, n)?;
        self.read += got as u64;
        Ok(got as u64)
    }
}

impl<R: Read> Chunker<R> {
    /// Convenience for small inputs and tests: every piece of the input at once.
    pub fn collect_all(mut self) -> Result<(Vec<Piece>, Layout), Error> {
        let mut out = Vec::new();
        while let Some(batch) = self.next_batch()? {
            out.extend(batch);
        }
        Ok((out, self.layout()))
    }
}
