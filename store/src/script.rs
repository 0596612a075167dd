//! Scripts: how a `Deflate` blob's exact compressed bytes are made again from its decompressed
//! content.
//!
//! A `Deflate` blob has two recipes. Its content recipe (see `recipe`) holds the decompressed
//! payload (the tar) as chunks and inline pieces, so it dedups like an uncompressed layer. Its
//! script is a list of ops that turn that payload back into the original gzip stream: gzip
//! member headers, trailers and any bytes after the last member are copied verbatim, and each
//! deflate stream is rebuilt one step at a time by `airlock_regzip`, from the next `plain`
//! bytes of the payload and the step's reconstruction data. A step that follows a raw op (or
//! comes first) starts a new deflate stream; consecutive steps continue one stream.
//!
//! The script is split into segments keyed in the index by the blob offset where their output
//! starts (every op but a checkpoint outputs at least one byte, and a checkpoint is followed in
//! its segment by one that does, so keys strictly increase). Segment byte layout,
//! [`SCRIPT_FORMAT_VERSION`] 3: a zstd frame holding a sequence of ops (integers little-endian):
//!
//! ```text
//! op := 0x01 len:u32 bytes{len}                              raw bytes, copied to the output
//!     | 0x02 plain:u32 out:u32 len:u32 bytes{len}            deflate step, corrections inline
//!     | 0x03 plain:u32 out:u32 chunk_id:[u8;32] len:u32      deflate step, corrections in a chunk
//!     | 0x04 plain:u32 out:u32 len:u32 bytes{len}            goflate step, corrections inline
//!     | 0x05 payload_offset:u64 len:u32 state{len}           checkpoint (version 3)
//! ```
//!
//! A checkpoint (issue 14) is regzip's: a place where the rebuild may start without the ops
//! before it, from its `state` (an `airlock_regzip::Checkpoint`) and the payload before
//! `payload_offset`, the payload offset of the op after it. Every checkpoint starts a segment,
//! so the segment covering an offset says with one lookup whether a rebuild may start there,
//! and the segments from one checkpoint to the next rebuild on their own, in parallel.
//! Segments also close at a size limit, so one may start without a checkpoint (always so in
//! scripts of version 2 and before, which have none: they rebuild from the blob's start). A
//! checkpoint with no state precedes the raw header of a gzip member: a new deflate stream.
//!
//! The reconstruction data ("corrections") is regzip's and says what it is: data that starts
//! with `GOF` is goflate's, whose next byte is its model version (regzip's `MODEL_VERSION`,
//! layout in `regzip/src/goflate/mod.rs`); any other is preflate-rs correction data, whose
//! encoding is tied to preflate-rs's minor version, recorded per blob (`BlobRecord::preflate`,
//! and in blob descriptions; `store.json` names it for blobs recorded before). regzip never
//! emits preflate-rs data that starts with `GOF`, so a step in a chunk (0x03) is told apart by
//! its bytes. Version 1 had no op 0x04 and no goflate data; version 2 no op 0x05.

use airlock_chunker::ChunkId;
use airlock_regzip::is_goflate;

use crate::recipe::{SegmentError, field, field_u32, inflate_segment};

/// Version of the script byte layout above.
pub const SCRIPT_FORMAT_VERSION: u32 = 3;

/// A deflate step never consumes more payload bytes than this: a reader holds a step's
/// payload whole, so a script (from a bundle) claiming more is refused as it is decoded.
/// regzip's steps hold at most 64 MiB (preflate-rs over slices of at most 64 MiB of stored
/// blocks, 16 MiB of Huffman ones; goflate 8 MiB plus a block of at most 8 MiB).
pub const MAX_STEP_PLAIN_BYTES: u32 = 128 * 1024 * 1024;

/// A segment closes after this many ops...
const SEGMENT_OPS: usize = 1024;
/// ...or this many inline bytes.
const SEGMENT_INLINE_BYTES: usize = 1024 * 1024;

const TAG_RAW: u8 = 1;
const TAG_STEP_INLINE: u8 = 2;
const TAG_STEP_CHUNK: u8 = 3;
const TAG_GOFLATE_INLINE: u8 = 4;
const TAG_CHECKPOINT: u8 = 5;

/// Where a step's reconstruction data is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Corrections {
    /// Kept in the script.
    Inline(Vec<u8>),
    /// In a stored chunk.
    Chunk {
        /// The chunk.
        id: ChunkId,
        /// Its length.
        len: u32,
    },
}

/// One op of a script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Bytes copied to the output as they are.
    Raw(Vec<u8>),
    /// Rebuild `out` bytes of deflate stream from the next `plain` payload bytes.
    Step {
        /// Payload bytes this step consumes.
        plain: u32,
        /// Compressed bytes it produces.
        out: u32,
        /// Its reconstruction data (goflate's or preflate-rs's).
        corrections: Corrections,
    },
    /// A rebuild may start here, from `state` and the payload before `plain_offset` (the
    /// payload offset of the next op); one passing through restarts as the split did.
    Checkpoint {
        /// Payload offset where the next step's payload starts.
        plain_offset: u64,
        /// regzip's checkpoint bytes (empty: a gzip member starts).
        state: Vec<u8>,
    },
}

impl Op {
    /// Bytes of blob output this op produces.
    pub fn out_len(&self) -> u64 {
        match self {
            Op::Raw(b) => b.len() as u64,
            Op::Step { out, .. } => u64::from(*out),
            Op::Checkpoint { .. } => 0,
        }
    }

    /// Payload bytes this op consumes.
    pub fn plain_len(&self) -> u64 {
        match self {
            Op::Raw(_) | Op::Checkpoint { .. } => 0,
            Op::Step { plain, .. } => u64::from(*plain),
        }
    }
}

/// Builds a script's segments as ops arrive.
#[derive(Debug, Default)]
pub struct ScriptBuilder {
    segments: Vec<(u64, Vec<u8>)>,
    current: Vec<u8>,
    current_start: u64,
    current_ops: usize,
    current_inline: usize,
    /// Output of the current segment so far.
    current_out: u64,
    out: u64,
    plain: u64,
    /// Bytes of reconstruction data and raw bytes: the cost of rebuilding.
    overhead: u64,
}

impl ScriptBuilder {
    /// Appends raw bytes (ignored if empty).
    pub fn raw(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.current.push(TAG_RAW);
        self.current
            .extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        self.current.extend_from_slice(bytes);
        self.overhead += bytes.len() as u64;
        self.advance(bytes.len() as u64, 0, bytes.len());
    }

    /// Appends a deflate step; `out` must be at least 1.
    pub fn step(&mut self, plain: u32, out: u32, corrections: &Corrections) {
        match corrections {
            Corrections::Inline(bytes) => {
                self.current.push(if is_goflate(bytes) {
                    TAG_GOFLATE_INLINE
                } else {
                    TAG_STEP_INLINE
                });
                self.current.extend_from_slice(&plain.to_le_bytes());
                self.current.extend_from_slice(&out.to_le_bytes());
                self.current
                    .extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                self.current.extend_from_slice(bytes);
                self.overhead += bytes.len() as u64;
                self.advance(u64::from(out), u64::from(plain), bytes.len());
            }
            Corrections::Chunk { id, len } => {
                self.current.push(TAG_STEP_CHUNK);
                self.current.extend_from_slice(&plain.to_le_bytes());
                self.current.extend_from_slice(&out.to_le_bytes());
                self.current.extend_from_slice(id.as_bytes());
                self.current.extend_from_slice(&len.to_le_bytes());
                self.overhead += u64::from(*len);
                self.advance(u64::from(out), u64::from(plain), 0);
            }
        }
    }

    /// Starts a segment with a checkpoint at the current payload offset; the next op must
    /// produce output (regzip emits a checkpoint right before a step or a member's header).
    pub fn checkpoint(&mut self, state: &[u8]) {
        if self.current_out > 0 {
            self.close();
        } else {
            // Two checkpoints with nothing between: the later one stands.
            self.current.clear();
            self.current_ops = 0;
            self.current_inline = 0;
        }
        self.current.push(TAG_CHECKPOINT);
        self.current.extend_from_slice(&self.plain.to_le_bytes());
        self.current
            .extend_from_slice(&(state.len() as u32).to_le_bytes());
        self.current.extend_from_slice(state);
        self.overhead += state.len() as u64;
        self.current_ops += 1;
        self.current_inline += state.len();
    }

    fn advance(&mut self, out: u64, plain: u64, inline: usize) {
        self.out += out;
        self.current_out += out;
        self.plain += plain;
        self.current_ops += 1;
        self.current_inline += inline;
        if self.current_ops >= SEGMENT_OPS || self.current_inline >= SEGMENT_INLINE_BYTES {
            self.close();
        }
    }

    fn close(&mut self) {
        // A segment that outputs nothing (a checkpoint the script ends with) would share its
        // key with the next: there is none, and nothing to rebuild after it.
        if self.current_out == 0 {
            self.current.clear();
            return;
        }
        let encoded = crate::recipe::encode_segment(std::mem::take(&mut self.current));
        self.segments.push((self.current_start, encoded));
        self.current_start = self.out;
        self.current_ops = 0;
        self.current_inline = 0;
        self.current_out = 0;
    }

    /// Output bytes so far (the blob size once complete).
    pub fn out_len(&self) -> u64 {
        self.out
    }

    /// Payload bytes consumed so far.
    pub fn plain_len(&self) -> u64 {
        self.plain
    }

    /// Correction and raw bytes so far.
    pub fn overhead(&self) -> u64 {
        self.overhead
    }

    /// The finished segments as (output offset, encoded bytes).
    pub fn finish(mut self) -> Vec<(u64, Vec<u8>)> {
        self.close();
        self.segments
    }
}

/// Decodes a script segment (bounded like a recipe segment, and every step by
/// [`MAX_STEP_PLAIN_BYTES`]).
pub fn decode_script_segment(bytes: &[u8]) -> Result<Vec<Op>, SegmentError> {
    let raw = inflate_segment(bytes)?;
    let mut out = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        let at = i;
        let tag = raw[i];
        i += 1;
        let malformed = |what| SegmentError::Malformed { at, what };
        match tag {
            TAG_RAW => {
                let len = field_u32(&raw, i)? as usize;
                i += 4;
                out.push(Op::Raw(field(&raw, i, len)?.to_vec()));
                i += len;
            }
            TAG_STEP_INLINE | TAG_GOFLATE_INLINE => {
                let (plain, o, len) = (
                    field_u32(&raw, i)?,
                    field_u32(&raw, i + 4)?,
                    field_u32(&raw, i + 8)?,
                );
                i += 12;
                let bytes = field(&raw, i, len as usize)?.to_vec();
                i += len as usize;
                if (tag == TAG_GOFLATE_INLINE) != is_goflate(&bytes) {
                    return Err(malformed("a step whose data is not of its kind"));
                }
                if plain > MAX_STEP_PLAIN_BYTES {
                    return Err(malformed("a step over the payload limit"));
                }
                out.push(Op::Step {
                    plain,
                    out: o,
                    corrections: Corrections::Inline(bytes),
                });
            }
            TAG_CHECKPOINT => {
                let mut offset = [0u8; 8];
                offset.copy_from_slice(field(&raw, i, 8)?);
                let plain_offset = u64::from_le_bytes(offset);
                let len = field_u32(&raw, i + 8)? as usize;
                i += 12;
                let state = field(&raw, i, len)?.to_vec();
                i += len;
                out.push(Op::Checkpoint {
                    plain_offset,
                    state,
                });
            }
            TAG_STEP_CHUNK => {
                let (plain, o) = (field_u32(&raw, i)?, field_u32(&raw, i + 4)?);
                let mut id = [0u8; 32];
                id.copy_from_slice(field(&raw, i + 8, 32)?);
                let len = field_u32(&raw, i + 40)?;
                i += 44;
                if plain > MAX_STEP_PLAIN_BYTES {
                    return Err(malformed("a step over the payload limit"));
                }
                out.push(Op::Step {
                    plain,
                    out: o,
                    corrections: Corrections::Chunk {
                        id: ChunkId::from_bytes(id),
                        len,
                    },
                });
            }
            _ => return Err(malformed("an op of unknown kind")),
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn script_segments_round_trip_keyed_by_output() {
        let mut b = ScriptBuilder::default();
        let mut expect = Vec::new();
        for i in 0..3000u32 {
            if i % 97 == 5 {
                let state = vec![i as u8; (i % 3) as usize * 7];
                b.checkpoint(&state);
                expect.push(Op::Checkpoint {
                    plain_offset: b.plain_len(),
                    state,
                });
            }
            let op = match i % 4 {
                0 => Op::Raw(vec![i as u8; (i % 50) as usize + 1]),
                3 => Op::Step {
                    plain: i,
                    out: 2,
                    corrections: Corrections::Inline([&b"GOF"[..], &[1, 2, 3]].concat()),
                },
                1 => Op::Step {
                    plain: i * 7,
                    out: i + 1,
                    corrections: Corrections::Inline(vec![1; (i % 900) as usize]),
                },
                _ => Op::Step {
                    plain: i,
                    out: 3,
                    corrections: Corrections::Chunk {
                        id: ChunkId::of(&i.to_le_bytes()),
                        len: i,
                    },
                },
            };
            match &op {
                Op::Raw(bytes) => b.raw(bytes),
                Op::Step {
                    plain,
                    out,
                    corrections,
                } => b.step(*plain, *out, corrections),
                Op::Checkpoint { .. } => unreachable!(),
            }
            expect.push(op);
        }
        // A checkpoint the script ends with starts nothing: it is dropped.
        b.checkpoint(b"end");
        let total = b.out_len();
        let segs = b.finish();
        assert!(segs.len() > 1);
        let (mut got, mut offset) = (Vec::new(), 0);
        for (start, bytes) in &segs {
            assert_eq!(*start, offset);
            for (k, op) in decode_script_segment(bytes)
                .unwrap()
                .into_iter()
                .enumerate()
            {
                if matches!(op, Op::Checkpoint { .. }) {
                    assert_eq!(k, 0, "a checkpoint starts its segment");
                }
                offset += op.out_len();
                got.push(op);
            }
        }
        assert_eq!(offset, total);
        assert_eq!(got, expect);
    }

    #[test]
    fn back_to_back_checkpoints_keep_the_later_one() {
        let mut b = ScriptBuilder::default();
        b.raw(b"head");
        b.checkpoint(b"first");
        b.checkpoint(b"second");
        b.raw(b"tail");
        let segs = b.finish();
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[1].0, 4);
        let ops = decode_script_segment(&segs[1].1).unwrap();
        assert_eq!(
            ops[0],
            Op::Checkpoint {
                plain_offset: 0,
                state: b"second".to_vec()
            }
        );
    }

    #[test]
    fn damaged_script_is_refused() {
        assert!(decode_script_segment(b"junk").is_err());
        let bad = zstd::bulk::compress(&[TAG_STEP_CHUNK, 1, 0, 0, 0], 3).unwrap();
        assert!(decode_script_segment(&bad).is_err());
        let bad = zstd::bulk::compress(&[9], 3).unwrap();
        assert!(decode_script_segment(&bad).is_err());
        // A checkpoint claiming more state than there is.
        let bad = zstd::bulk::compress(&[TAG_CHECKPOINT, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 1], 3)
            .unwrap();
        assert!(decode_script_segment(&bad).is_err());
        // A goflate op must hold goflate data.
        let mut op = vec![TAG_GOFLATE_INLINE, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 7, 7];
        let bad = zstd::bulk::compress(&op, 3).unwrap();
        let err = decode_script_segment(&bad).unwrap_err();
        assert!(err.to_string().contains("not of its kind"), "{err}");
        op.truncate(9);
        op.extend([3, 0, 0, 0, b'G', b'O', b'F']);
        let good = zstd::bulk::compress(&op, 3).unwrap();
        assert!(decode_script_segment(&good).is_ok());
    }

    #[test]
    fn issue_16_a_step_claiming_more_payload_than_any_step_holds_is_refused() {
        let mut b = ScriptBuilder::default();
        let id = ChunkId::of(b"corrections");
        b.step(MAX_STEP_PLAIN_BYTES, 10, &Corrections::Chunk { id, len: 9 });
        let segs = b.finish();
        assert!(decode_script_segment(&segs[0].1).is_ok());
        for corrections in [
            Corrections::Chunk { id, len: 9 },
            Corrections::Inline(vec![1]),
        ] {
            let mut b = ScriptBuilder::default();
            b.raw(b"gzip header");
            b.step(MAX_STEP_PLAIN_BYTES + 1, 10, &corrections);
            let segs = b.finish();
            let err = decode_script_segment(&segs[0].1).unwrap_err();
            assert_eq!(
                err,
                SegmentError::Malformed {
                    at: 16,
                    what: "a step over the payload limit"
                }
            );
        }
    }
}
