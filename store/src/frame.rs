//! Frames of chunks as other crates see them: the unit a pack holds, and the unit a bundle
//! volume carries, in the same byte layout (see `pack`). A frame read from anywhere is checked
//! whole (its checksum, its lengths, every chunk's BLAKE3) before any of its bytes are used.

use airlock_chunker::ChunkId;

use crate::{
    Error, PackId, Result,
    pack::{self, CompressedFrame, FRAME_HEADER_BYTES},
};

/// Bytes of a frame header: read these first, then [`frame_len`] says how many bytes the whole
/// frame has.
pub const FRAME_HEADER_LEN: usize = FRAME_HEADER_BYTES;

/// A frame compressed and ready to write.
#[derive(Debug)]
pub struct Frame {
    pub(crate) inner: CompressedFrame,
}

impl Frame {
    /// Compresses consecutive chunks into one frame at zstd `level` (call in parallel for
    /// several frames). The caller vouches that each id is the BLAKE3 of its bytes.
    pub fn compress(chunks: &[(ChunkId, &[u8])], level: i32) -> Result<Frame> {
        let inner = CompressedFrame::compress(chunks, level).map_err(|e| Error::FrameCorrupt {
            what: format!("compressing a frame of {} chunks: {e}", chunks.len()),
        })?;
        Ok(Frame { inner })
    }

    /// The frame's bytes, header included.
    pub fn as_bytes(&self) -> &[u8] {
        self.inner.as_bytes()
    }

    /// The chunks it holds, with their lengths, in order.
    pub fn chunks(&self) -> impl Iterator<Item = (ChunkId, u32)> + '_ {
        self.inner.entries().iter().map(|&(id, _, len)| (id, len))
    }

    /// Checks a frame read back (checksum, lengths, every chunk's hash) and decompresses it.
    pub fn decode(bytes: Vec<u8>) -> Result<DecodedChunks> {
        let decoded = pack::decode_frame(&bytes, PackId(0), 0).map_err(as_frame_error)?;
        let mut offset = 0usize;
        let mut entries = Vec::with_capacity(decoded.entries.len());
        for &(id, len) in &decoded.entries {
            let end = offset + len as usize;
            let data = decoded
                .raw
                .get(offset..end)
                .ok_or_else(|| Error::FrameCorrupt {
                    what: format!("chunk {id} lies outside its frame"),
                })?;
            if ChunkId::of(data) != id {
                return Err(Error::FrameCorrupt {
                    what: format!("chunk {id} does not match its hash"),
                });
            }
            entries.push((id, offset as u32, len));
            offset = end;
        }
        Ok(DecodedChunks {
            entries,
            raw: decoded.raw,
            bytes,
        })
    }
}

/// Total length of the frame whose header is `header` (its first [`FRAME_HEADER_LEN`] bytes).
pub fn frame_len(header: &[u8]) -> Result<usize> {
    pack::frame_total_len(header).map_err(as_frame_error)
}

fn as_frame_error(e: Error) -> Error {
    match e {
        Error::PackCorrupt { what, .. } => Error::FrameCorrupt { what },
        other => other,
    }
}

/// A frame that passed every check, decompressed.
#[derive(Debug)]
pub struct DecodedChunks {
    /// (id, offset in `raw`, length)
    entries: Vec<(ChunkId, u32, u32)>,
    raw: Vec<u8>,
    /// The frame as it was read, so a store can keep it without compressing again.
    bytes: Vec<u8>,
}

impl DecodedChunks {
    /// Each chunk and its bytes, in order.
    pub fn chunks(&self) -> impl Iterator<Item = (ChunkId, &[u8])> + '_ {
        self.entries.iter().map(|&(id, off, len)| {
            let (start, end) = (off as usize, off as usize + len as usize);
            (id, &self.raw[start..end])
        })
    }

    /// Number of chunks.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the frame holds no chunk.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of the chunks, decompressed.
    pub fn raw_len(&self) -> u64 {
        self.raw.len() as u64
    }

    /// Bytes of the frame as read.
    pub fn frame_len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// The frame as it was read, ready to append to a pack as it is.
    pub(crate) fn into_compressed(self) -> CompressedFrame {
        CompressedFrame::from_parts(self.bytes, self.entries)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn chunks() -> Vec<(ChunkId, Vec<u8>)> {
        (0..5u8)
            .map(|i| {
                let data = vec![i; 1000 + usize::from(i) * 37];
                (ChunkId::of(&data), data)
            })
            .collect()
    }

    #[test]
    fn a_frame_round_trips_and_its_length_is_in_its_header() {
        let owned = chunks();
        let refs: Vec<(ChunkId, &[u8])> = owned.iter().map(|(i, d)| (*i, &d[..])).collect();
        let frame = Frame::compress(&refs, 3).unwrap();
        let bytes = frame.as_bytes().to_vec();
        assert_eq!(frame_len(&bytes[..FRAME_HEADER_LEN]).unwrap(), bytes.len());
        let decoded = Frame::decode(bytes).unwrap();
        let back: Vec<(ChunkId, Vec<u8>)> =
            decoded.chunks().map(|(i, d)| (i, d.to_vec())).collect();
        assert_eq!(back, owned);
    }

    #[test]
    fn a_flipped_byte_or_a_short_frame_is_refused() {
        let owned = chunks();
        let refs: Vec<(ChunkId, &[u8])> = owned.iter().map(|(i, d)| (*i, &d[..])).collect();
        let bytes = Frame::compress(&refs, 3).unwrap().as_bytes().to_vec();
        for at in [0, 5, 20, 40, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 0x40;
            assert!(
                matches!(Frame::decode(bad), Err(Error::FrameCorrupt { .. })),
                "flip at {at}"
            );
        }
        let short = bytes[..bytes.len() - 3].to_vec();
        assert!(matches!(
            Frame::decode(short),
            Err(Error::FrameCorrupt { .. })
        ));
        assert!(frame_len(&bytes[..10]).is_err());
    }
}
