//! Recipes: how a blob's bytes are put together from chunks and inline bytes.
//!
//! A recipe is split into segments, each keyed in the index by the logical offset where it
//! starts, so a range read finds its first segment with one lookup and memory stays bounded by
//! one segment whatever the blob's size. A `Deflate` blob's recipe holds its decompressed
//! payload (offsets are payload offsets); its script is in `script`. Segment byte
//! layout, [`RECIPE_FORMAT_VERSION`] 2 (2 added the blob record's encoding, opaque reason and
//! `Deflate` kind; segments are unchanged since 1): a zstd frame holding a sequence of entries:
//!
//! ```text
//! entry := 0x01 chunk_id:[u8;32] len:u32      a chunk of len bytes
//!        | 0x02 len:u32 bytes{len}            bytes kept inline
//! ```
//!
//! A segment decompresses to at most [`MAX_SEGMENT_RAW_BYTES`], whatever its zstd frame
//! claims or holds: segments come from bundles too ([`crate::BlobDescription`]).

use airlock_chunker::ChunkId;

use crate::zstd_ctx::{Capped, decompress_capped};

/// Version of the segment byte layout above.
pub const RECIPE_FORMAT_VERSION: u32 = 2;

/// A recipe or script segment that would decompress to more bytes than this is refused
/// before they are produced. The builders close a segment at 2048 entries (1024 ops) or once
/// it holds 1 MiB of inline bytes, and no inline piece exceeds about 1 MiB (the chunker's
/// inline runs, 2 MiB before issue 3's store; regzip's raw pieces are at most 64 KiB), so a
/// segment any airlock wrote is under 4 MiB.
pub const MAX_SEGMENT_RAW_BYTES: usize = 16 * 1024 * 1024;

/// A segment closes after this many entries...
const SEGMENT_ENTRIES: usize = 2048;
/// ...or this many inline bytes.
const SEGMENT_INLINE_BYTES: usize = 1024 * 1024;

/// zstd level of encoded segments.
const SEGMENT_LEVEL: i32 = 1;

const TAG_CHUNK: u8 = 1;
const TAG_INLINE: u8 = 2;

/// One step of a recipe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// Bytes of a stored chunk.
    Chunk {
        /// The chunk.
        id: ChunkId,
        /// Its length.
        len: u32,
    },
    /// Bytes kept in the recipe itself.
    Inline(Vec<u8>),
}

impl Entry {
    /// Bytes of blob content this entry stands for.
    pub fn len(&self) -> u64 {
        match self {
            Entry::Chunk { len, .. } => u64::from(*len),
            Entry::Inline(b) => b.len() as u64,
        }
    }
}

/// Builds a recipe's segments as pieces arrive.
#[derive(Debug, Default)]
pub struct RecipeBuilder {
    segments: Vec<(u64, Vec<u8>)>,
    current: Vec<u8>,
    current_start: u64,
    current_entries: usize,
    current_inline: usize,
    offset: u64,
    chunks: u64,
    inline_bytes: u64,
}

impl RecipeBuilder {
    /// Appends a chunk entry.
    pub fn chunk(&mut self, id: &ChunkId, len: u32) {
        self.current.push(TAG_CHUNK);
        self.current.extend_from_slice(id.as_bytes());
        self.current.extend_from_slice(&len.to_le_bytes());
        self.chunks += 1;
        self.advance(u64::from(len), 0);
    }

    /// Appends inline bytes.
    pub fn inline(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.current.push(TAG_INLINE);
        self.current
            .extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        self.current.extend_from_slice(bytes);
        self.inline_bytes += bytes.len() as u64;
        self.advance(bytes.len() as u64, bytes.len());
    }

    fn advance(&mut self, len: u64, inline: usize) {
        self.offset += len;
        self.current_entries += 1;
        self.current_inline += inline;
        if self.current_entries >= SEGMENT_ENTRIES || self.current_inline >= SEGMENT_INLINE_BYTES {
            self.close();
        }
    }

    fn close(&mut self) {
        if self.current.is_empty() {
            return;
        }
        let encoded = encode_segment(std::mem::take(&mut self.current));
        self.segments.push((self.current_start, encoded));
        self.current_start = self.offset;
        self.current_entries = 0;
        self.current_inline = 0;
    }

    /// Content bytes so far.
    pub fn len(&self) -> u64 {
        self.offset
    }

    /// Number of chunk entries.
    pub fn chunk_count(&self) -> u64 {
        self.chunks
    }

    /// Inline bytes so far.
    pub fn inline_bytes(&self) -> u64 {
        self.inline_bytes
    }

    /// The finished segments as (start offset, encoded bytes).
    pub fn finish(mut self) -> Vec<(u64, Vec<u8>)> {
        self.close();
        self.segments
    }
}

/// Compresses a closed segment (recipes and scripts alike). zstd over a buffer in
/// memory fails only when allocation fails; the raw bytes kept then do not decode, so `verify`
/// would name the segment rather than anything reading wrong bytes.
pub(crate) fn encode_segment(raw: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::new();
    // Level 1: on recipes of tar headers and chunk ids it is a third faster than 3 and no
    // larger (1.66 MB of a generated rootfs's recipe: 169.8 kB at 1, 172.0 kB at 3).
    match crate::zstd_ctx::compress(&raw, SEGMENT_LEVEL, &mut out) {
        Ok(_) => out,
        Err(_) => raw,
    }
}

/// Why a recipe or script segment does not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentError {
    /// It would decompress to more than [`MAX_SEGMENT_RAW_BYTES`]; `claimed` is what its zstd
    /// frame header says, when it says.
    TooLarge {
        /// The size its frame header claims.
        claimed: Option<u64>,
    },
    /// It is not a zstd frame, or damaged.
    Undecodable {
        /// zstd's complaint.
        why: String,
    },
    /// Its decompressed bytes hold an entry or op that is cut short, unknown, or out of bounds.
    Malformed {
        /// Offset of the entry in the decompressed segment.
        at: usize,
        /// What is wrong with it.
        what: &'static str,
    },
}

impl std::fmt::Display for SegmentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SegmentError::TooLarge { claimed: Some(n) } => write!(
                f,
                "its zstd frame claims {n} bytes, over the limit of {MAX_SEGMENT_RAW_BYTES}"
            ),
            SegmentError::TooLarge { claimed: None } => write!(
                f,
                "it expands past the limit of {MAX_SEGMENT_RAW_BYTES} bytes"
            ),
            SegmentError::Undecodable { why } => write!(f, "it does not decompress: {why}"),
            SegmentError::Malformed { at, what } => write!(f, "{what} at byte {at}"),
        }
    }
}

impl std::error::Error for SegmentError {}

/// Decompresses a recipe or script segment, bounded by [`MAX_SEGMENT_RAW_BYTES`].
pub(crate) fn inflate_segment(bytes: &[u8]) -> Result<Vec<u8>, SegmentError> {
    decompress_capped(bytes, MAX_SEGMENT_RAW_BYTES).map_err(|e| match e {
        Capped::Over { claimed } => SegmentError::TooLarge { claimed },
        Capped::Damaged(why) => SegmentError::Undecodable { why },
    })
}

/// `n` bytes of `raw` at `at`, or the entry is cut short.
pub(crate) fn field(raw: &[u8], at: usize, n: usize) -> Result<&[u8], SegmentError> {
    at.checked_add(n)
        .and_then(|end| raw.get(at..end))
        .ok_or(SegmentError::Malformed {
            at,
            what: "an entry cut short",
        })
}

/// A little-endian u32 of `raw` at `at`.
pub(crate) fn field_u32(raw: &[u8], at: usize) -> Result<u32, SegmentError> {
    let b = field(raw, at, 4)?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Decodes a segment.
pub fn decode_segment(bytes: &[u8]) -> Result<Vec<Entry>, SegmentError> {
    let raw = inflate_segment(bytes)?;
    let mut out = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        let at = i;
        let tag = raw[i];
        i += 1;
        match tag {
            TAG_CHUNK => {
                let mut id = [0u8; 32];
                id.copy_from_slice(field(&raw, i, 32)?);
                let len = field_u32(&raw, i + 32)?;
                i += 36;
                out.push(Entry::Chunk {
                    id: ChunkId::from_bytes(id),
                    len,
                });
            }
            TAG_INLINE => {
                let len = field_u32(&raw, i)? as usize;
                i += 4;
                out.push(Entry::Inline(field(&raw, i, len)?.to_vec()));
                i += len;
            }
            _ => {
                return Err(SegmentError::Malformed {
                    at,
                    what: "an entry of unknown kind",
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn segments_round_trip_with_offsets() {
        let mut b = RecipeBuilder::default();
        let mut expect = Vec::new();
        for i in 0..5000u32 {
            if i % 3 == 0 {
                let bytes = vec![i as u8; (i % 700) as usize + 1];
                b.inline(&bytes);
                expect.push(Entry::Inline(bytes));
            } else {
                let id = ChunkId::of(&i.to_le_bytes());
                b.chunk(&id, i + 1);
                expect.push(Entry::Chunk { id, len: i + 1 });
            }
        }
        let size = b.offset;
        let segs = b.finish();
        assert!(segs.len() > 1);
        let mut got = Vec::new();
        let mut offset = 0;
        for (start, bytes) in &segs {
            assert_eq!(*start, offset);
            for e in decode_segment(bytes).unwrap() {
                offset += e.len();
                got.push(e);
            }
        }
        assert_eq!(offset, size);
        assert_eq!(got, expect);
    }

    #[test]
    fn damaged_segment_is_refused() {
        assert!(matches!(
            decode_segment(b"not zstd"),
            Err(SegmentError::Undecodable { .. })
        ));
        let bad = zstd::bulk::compress(&[TAG_CHUNK, 1, 2], 3).unwrap();
        assert!(matches!(
            decode_segment(&bad),
            Err(SegmentError::Malformed { at: 1, .. })
        ));
        let bad = zstd::bulk::compress(&[TAG_INLINE, 0xff, 0xff, 0xff, 0xff, 1], 3).unwrap();
        assert!(matches!(
            decode_segment(&bad),
            Err(SegmentError::Malformed { at: 5, .. })
        ));
        let bad = zstd::bulk::compress(&[9], 3).unwrap();
        assert!(matches!(
            decode_segment(&bad),
            Err(SegmentError::Malformed { at: 0, .. })
        ));
    }

    #[test]
    fn issue_16_a_segment_expanding_past_the_limit_is_refused() {
        // Inline entries of 1 MiB each, more of them than the limit holds: a zstd bomb.
        let mut raw = Vec::new();
        while raw.len() <= MAX_SEGMENT_RAW_BYTES {
            raw.push(TAG_INLINE);
            raw.extend_from_slice(&(1u32 << 20).to_le_bytes());
            raw.resize(raw.len() + (1 << 20), 0);
        }
        let sized = zstd::bulk::compress(&raw, 1).unwrap();
        assert!(sized.len() < 10_000, "{} bytes", sized.len());
        let err = decode_segment(&sized).unwrap_err();
        assert_eq!(
            err,
            SegmentError::TooLarge {
                claimed: Some(raw.len() as u64)
            }
        );
        assert!(
            err.to_string().contains("over the limit of 16777216"),
            "{err}"
        );
        let streamed = zstd::stream::encode_all(&raw[..], 1).unwrap();
        let err = decode_segment(&streamed).unwrap_err();
        assert_eq!(err, SegmentError::TooLarge { claimed: None });
        assert!(err.to_string().contains("expands past"), "{err}");
        // Just under the limit decodes.
        raw.truncate(MAX_SEGMENT_RAW_BYTES - (MAX_SEGMENT_RAW_BYTES % ((1 << 20) + 5)));
        assert!(decode_segment(&zstd::stream::encode_all(&raw[..], 1).unwrap()).is_ok());
    }
}
