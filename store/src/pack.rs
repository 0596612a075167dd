//! Pack files: append-only files of zstd-compressed frames of chunks.
//!
//! Byte layout (all integers little-endian), [`PACK_FORMAT_VERSION`] 1:
//!
//! ```text
//! pack    := header frame* seal?
//! header  := "AIRLKPCK" version:u32 reserved:u32                       (16 bytes)
//! frame   := "FRAM" n:u32 raw_len:u32 comp_len:u32 check:[u8;16]       (32 bytes)
//!            entry{n} payload
//! entry   := chunk_id:[u8;32] raw_len:u32                              (36 bytes)
//! payload := one zstd frame of comp_len bytes; it decompresses to the n chunks' raw bytes,
//!            concatenated in entry order (raw_len bytes in all)
//! seal    := "SEAL" frames:u32 frames_end:u64 check:[u8;16]            (32 bytes)
//! ```
//!
//! `check` of a frame is the first 16 bytes of BLAKE3 over the frame's first 16 bytes, its
//! entries and its payload; `check` of the seal is BLAKE3 over every frame's check in order.
//! A pack is self-describing: the index can be recreated by scanning packs alone, and `verify`
//! can name the offset of any damaged frame.

use std::{
    fs::File,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use airlock_chunker::ChunkId;

use crate::{Error, PackId, Result, zstd_ctx};

mod writer;

pub use self::writer::{PackWriter, sync_dir};

/// Version of the pack byte layout above.
pub const PACK_FORMAT_VERSION: u32 = 1;

const PACK_MAGIC: &[u8; 8] = b"AIRLKPCK";
const FRAME_MAGIC: &[u8; 4] = b"FRAM";
const SEAL_MAGIC: &[u8; 4] = b"SEAL";

/// Bytes of the pack header.
pub const PACK_HEADER_BYTES: u64 = 16;
/// Bytes of a frame header.
pub const FRAME_HEADER_BYTES: usize = 32;
/// Bytes of one entry of a frame's chunk table.
pub const ENTRY_BYTES: usize = 36;
/// Bytes of the seal record.
pub const SEAL_BYTES: usize = 32;

/// A frame never holds more raw bytes than this, whatever a damaged header claims.
pub const MAX_FRAME_RAW_BYTES: u32 = 64 * 1024 * 1024;

const _: () = assert!(FRAME_HEADER_BYTES == 4 + 4 + 4 + 4 + 16);
const _: () = assert!(ENTRY_BYTES == 32 + 4);
const _: () = assert!(SEAL_BYTES == 4 + 4 + 8 + 16);

/// Where a chunk lives: which pack, which frame, and where in the frame's raw bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkLoc {
    /// The pack file.
    pub pack: PackId,
    /// Offset of the frame header in the pack.
    pub frame_offset: u64,
    /// Total bytes of the frame (header, entries, payload).
    pub frame_len: u32,
    /// Offset of the chunk in the frame's decompressed bytes.
    pub raw_offset: u32,
    /// Length of the chunk.
    pub raw_len: u32,
}

/// A frame compressed and ready to append: its bytes, and each chunk's place in it.
#[derive(Debug)]
pub struct CompressedFrame {
    bytes: Vec<u8>,
    entries: Vec<(ChunkId, u32, u32)>,
}

impl CompressedFrame {
    /// Compresses consecutive chunks into one frame. Call in parallel for several frames.
    pub fn compress(chunks: &[(ChunkId, &[u8])], level: i32) -> std::io::Result<CompressedFrame> {
        let raw_len: usize = chunks.iter().map(|(_, d)| d.len()).sum();
        let mut entries = Vec::with_capacity(chunks.len());
        let mut at = 0u32;
        for (id, data) in chunks {
            entries.push((*id, at, data.len() as u32));
            at += data.len() as u32;
        }
        let n = chunks.len();
        let mut bytes = Vec::with_capacity(FRAME_HEADER_BYTES + n * ENTRY_BYTES + raw_len / 2);
        bytes.extend_from_slice(FRAME_MAGIC);
        bytes.extend_from_slice(&(n as u32).to_le_bytes());
        bytes.extend_from_slice(&(raw_len as u32).to_le_bytes());
        bytes.extend_from_slice(&[0u8; 4]); // payload length, below
        bytes.extend_from_slice(&[0u8; 16]);
        for (id, data) in chunks {
            bytes.extend_from_slice(id.as_bytes());
            bytes.extend_from_slice(&(data.len() as u32).to_le_bytes());
        }
        let payload = zstd_ctx::compress_parts(chunks.iter().map(|(_, d)| *d), level, &mut bytes)?;
        bytes[12..16].copy_from_slice(&(payload as u32).to_le_bytes());
        let check = frame_check(&bytes);
        bytes[16..32].copy_from_slice(&check);
        Ok(CompressedFrame { bytes, entries })
    }

    /// Compressed size of the frame including header and entry table.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// The frame's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// (chunk id, offset in the raw bytes, length) of each chunk.
    pub fn entries(&self) -> &[(ChunkId, u32, u32)] {
        &self.entries
    }

    /// A frame already checked by [`decode_frame`] (its bytes and entries as decoded).
    pub fn from_parts(bytes: Vec<u8>, entries: Vec<(ChunkId, u32, u32)>) -> CompressedFrame {
        CompressedFrame { bytes, entries }
    }
}

fn frame_check(frame: &[u8]) -> [u8; 16] {
    let mut h = blake3::Hasher::new();
    h.update(&frame[..16]);
    h.update(&frame[FRAME_HEADER_BYTES..]);
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize().as_bytes()[..16]);
    out
}

/// Path of pack `id` under the store's `packs/` directory: `packs/<last byte hex>/<id hex>.pack`.
pub fn pack_path(packs_dir: &Path, id: PackId) -> PathBuf {
    packs_dir
        .join(format!("{:02x}", id.0 & 0xff))
        .join(format!("{id}.pack"))
}

/// Reads and decompresses the frame at a chunk's location, then returns the chunk's bytes after
/// checking the frame's checksum and the chunk's BLAKE3.
#[cfg(test)]
pub fn read_chunk(file: &File, id: &ChunkId, loc: &ChunkLoc) -> Result<Vec<u8>> {
    let frame = read_frame(file, loc.pack, loc.frame_offset, loc.frame_len)?;
    chunk_from_frame(&frame, id, loc)
}

/// Takes one chunk out of a decompressed frame, checking its hash.
pub fn chunk_from_frame(frame: &DecodedFrame, id: &ChunkId, loc: &ChunkLoc) -> Result<Vec<u8>> {
    let start = loc.raw_offset as usize;
    let end = start + loc.raw_len as usize;
    let corrupt = |what: String| Error::PackCorrupt {
        pack: loc.pack,
        offset: loc.frame_offset,
        what,
    };
    let data = frame
        .raw
        .get(start..end)
        .ok_or_else(|| corrupt(format!("chunk {id} lies outside its frame")))?;
    if ChunkId::of(data) != *id {
        return Err(corrupt(format!("chunk {id} does not match its hash")));
    }
    Ok(data.to_vec())
}

/// A frame read back and decompressed.
#[derive(Debug)]
pub struct DecodedFrame {
    /// The pack it came from.
    pub pack: PackId,
    /// Offset of the frame in its pack.
    pub offset: u64,
    /// Chunk ids and raw lengths, in order.
    pub entries: Vec<(ChunkId, u32)>,
    /// The decompressed payload.
    pub raw: Vec<u8>,
}

/// Reads the frame at `offset` (of `len` bytes), checks it and decompresses it.
pub fn read_frame(file: &File, pack: PackId, offset: u64, len: u32) -> Result<DecodedFrame> {
    let corrupt = |what: String| Error::PackCorrupt { pack, offset, what };
    let mut bytes = vec![0u8; len as usize];
    file.read_exact_at(&mut bytes, offset).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            corrupt("pack ends inside the frame (truncated)".into())
        } else {
            corrupt(format!("reading frame: {e}"))
        }
    })?;
    decode_frame(&bytes, pack, offset)
}

pub fn decode_frame(bytes: &[u8], pack: PackId, offset: u64) -> Result<DecodedFrame> {
    let corrupt = |what: String| Error::PackCorrupt { pack, offset, what };
    let header = parse_frame_header(bytes, pack, offset)?;
    if bytes.len() != header.total_len() {
        return Err(corrupt("frame length differs from its header".into()));
    }
    if frame_check(bytes) != header.check {
        return Err(corrupt("frame checksum mismatch".into()));
    }
    let mut entries = Vec::with_capacity(header.n as usize);
    let mut sum: u64 = 0;
    for e in bytes[FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + header.n as usize * ENTRY_BYTES]
        .chunks_exact(ENTRY_BYTES)
    {
        let mut id = [0u8; 32];
        id.copy_from_slice(&e[..32]);
        let len = u32::from_le_bytes([e[32], e[33], e[34], e[35]]);
        sum += u64::from(len);
        entries.push((ChunkId::from_bytes(id), len));
    }
    if sum != u64::from(header.raw_len) {
        return Err(corrupt("frame's chunk lengths do not add up".into()));
    }
    let payload = &bytes[header.total_len() - header.comp_len as usize..];
    let raw = zstd::bulk::decompress(payload, header.raw_len as usize)
        .map_err(|e| corrupt(format!("decompressing frame: {e}")))?;
    if raw.len() != header.raw_len as usize {
        return Err(corrupt("frame decompresses to the wrong length".into()));
    }
    Ok(DecodedFrame {
        pack,
        offset,
        entries,
        raw,
    })
}

/// Total length of a frame from its header bytes (at least [`FRAME_HEADER_BYTES`]).
pub fn frame_total_len(header: &[u8]) -> Result<usize> {
    Ok(parse_frame_header(header, PackId(0), 0)?.total_len())
}

struct FrameHeader {
    n: u32,
    raw_len: u32,
    comp_len: u32,
    check: [u8; 16],
}

impl FrameHeader {
    fn total_len(&self) -> usize {
        FRAME_HEADER_BYTES + self.n as usize * ENTRY_BYTES + self.comp_len as usize
    }
}

fn parse_frame_header(bytes: &[u8], pack: PackId, offset: u64) -> Result<FrameHeader> {
    let corrupt = |what: &str| Error::PackCorrupt {
        pack,
        offset,
        what: what.to_owned(),
    };
    if bytes.len() < FRAME_HEADER_BYTES {
        return Err(corrupt("frame header is cut short"));
    }
    if &bytes[..4] != FRAME_MAGIC {
        return Err(corrupt("no frame starts here (bad magic)"));
    }
    let u = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let (n, raw_len, comp_len) = (u(4), u(8), u(12));
    if raw_len > MAX_FRAME_RAW_BYTES || comp_len > MAX_FRAME_RAW_BYTES * 2 || n > raw_len.max(1) {
        return Err(corrupt("frame header holds impossible sizes"));
    }
    let mut check = [0u8; 16];
    check.copy_from_slice(&bytes[16..32]);
    Ok(FrameHeader {
        n,
        raw_len,
        comp_len,
        check,
    })
}

/// One frame found by [`scan_frames`]: where it is and what it says it holds (not decompressed).
#[derive(Debug, Clone)]
pub struct ScannedFrame {
    /// Offset of the frame header.
    pub offset: u64,
    /// Total frame length.
    pub len: u32,
    /// The frame's stored checksum.
    pub check: [u8; 16],
}

/// Walks the frames of a pack up to `end` (its committed length, or the file length), reading
/// only headers. Stops at the seal. Yields an error naming the offset where the structure
/// breaks; decompression and checksums are [`read_frame`]'s job.
pub fn scan_frames(
    file: &File,
    pack: PackId,
    end: u64,
) -> impl Iterator<Item = Result<ScannedFrame>> + '_ {
    let mut offset = PACK_HEADER_BYTES;
    let mut done = false;
    let mut header_checked = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        if !header_checked {
            header_checked = true;
            let mut h = [0u8; PACK_HEADER_BYTES as usize];
            if let Err(e) = file.read_exact_at(&mut h, 0) {
                done = true;
                return Some(Err(Error::PackCorrupt {
                    pack,
                    offset: 0,
                    what: format!("reading pack header: {e}"),
                }));
            }
            if &h[..8] != PACK_MAGIC || h[8..12] != PACK_FORMAT_VERSION.to_le_bytes() {
                done = true;
                return Some(Err(Error::PackCorrupt {
                    pack,
                    offset: 0,
                    what: "not an airlock pack of a supported version (bad header)".into(),
                }));
            }
        }
        if offset >= end {
            done = true;
            return None;
        }
        let mut head = [0u8; FRAME_HEADER_BYTES];
        let result = (|| {
            file.read_exact_at(&mut head, offset)
                .map_err(|_| Error::PackCorrupt {
                    pack,
                    offset,
                    what: "pack ends inside a frame header (truncated)".into(),
                })?;
            if &head[..4] == SEAL_MAGIC {
                return Ok(None);
            }
            let h = parse_frame_header(&head, pack, offset)?;
            let len = h.total_len() as u64;
            if offset + len > end {
                return Err(Error::PackCorrupt {
                    pack,
                    offset,
                    what: format!(
                        "frame of {len} bytes runs past the end of the pack at {end} (truncated)"
                    ),
                });
            }
            Ok(Some(ScannedFrame {
                offset,
                len: len as u32,
                check: h.check,
            }))
        })();
        match result {
            Ok(Some(f)) => {
                offset += u64::from(f.len);
                Some(Ok(f))
            }
            Ok(None) => {
                done = true;
                None
            }
            Err(e) => {
                done = true;
                Some(Err(e))
            }
        }
    })
}

/// Checks the seal record that ends a sealed pack of `len` bytes against the frames before it
/// (as found by [`scan_frames`]).
pub fn check_seal(file: &File, pack: PackId, len: u64, frames: &[ScannedFrame]) -> Result<()> {
    let offset = len.saturating_sub(SEAL_BYTES as u64);
    let corrupt = |what: String| Error::PackCorrupt { pack, offset, what };
    let mut seal = [0u8; SEAL_BYTES];
    if len < PACK_HEADER_BYTES + SEAL_BYTES as u64 {
        return Err(corrupt("sealed pack too short for a seal".into()));
    }
    file.read_exact_at(&mut seal, offset)
        .map_err(|e| corrupt(format!("reading seal: {e}")))?;
    if &seal[..4] != SEAL_MAGIC {
        return Err(corrupt("no seal where the sealed pack should end".into()));
    }
    let count = u32::from_le_bytes([seal[4], seal[5], seal[6], seal[7]]);
    let mut end = [0u8; 8];
    end.copy_from_slice(&seal[8..16]);
    let frames_end = frames
        .last()
        .map_or(PACK_HEADER_BYTES, |f| f.offset + u64::from(f.len));
    if count as usize != frames.len() || u64::from_le_bytes(end) != frames_end {
        return Err(corrupt(format!(
            "seal lists {count} frames ending at {}, the pack holds {} ending at {frames_end}",
            u64::from_le_bytes(end),
            frames.len()
        )));
    }
    let mut h = blake3::Hasher::new();
    for f in frames {
        h.update(&f.check);
    }
    if h.finalize().as_bytes()[..16] != seal[16..32] {
        return Err(corrupt("seal checksum mismatch".into()));
    }
    Ok(())
}

/// Reads the whole remaining file into memory; only for small test fixtures.
#[cfg(test)]
pub(crate) fn read_all(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("read fixture")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use std::fs;

    use super::*;

    fn chunks(n: usize) -> Vec<(ChunkId, Vec<u8>)> {
        (0..n)
            .map(|i| {
                let data: Vec<u8> = (0..1000 + i * 7).map(|j| (j * 31 + i) as u8).collect();
                (ChunkId::of(&data), data)
            })
            .collect()
    }

    #[test]
    fn append_read_scan_seal() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = PackWriter::create(dir.path(), PackId(7)).unwrap();
        let cs = chunks(5);
        let refs: Vec<_> = cs.iter().map(|(i, d)| (*i, d.as_slice())).collect();
        let f1 = CompressedFrame::compress(&refs[..3], 3).unwrap();
        let f2 = CompressedFrame::compress(&refs[3..], 3).unwrap();
        let mut locs = w.append(&f1).unwrap();
        locs.extend(w.append(&f2).unwrap());
        w.sync().unwrap();
        let len = w.seal().unwrap();
        let file = File::open(pack_path(dir.path(), PackId(7))).unwrap();
        for ((id, data), (lid, loc)) in cs.iter().zip(&locs) {
            assert_eq!(id, lid);
            assert_eq!(&read_chunk(&file, id, loc).unwrap(), data);
        }
        let frames: Vec<_> = scan_frames(&file, PackId(7), len)
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[1].offset, locs[3].1.frame_offset);
    }

    #[test]
    fn flipped_byte_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = PackWriter::create(dir.path(), PackId(1)).unwrap();
        let cs = chunks(2);
        let refs: Vec<_> = cs.iter().map(|(i, d)| (*i, d.as_slice())).collect();
        let locs = w
            .append(&CompressedFrame::compress(&refs, 3).unwrap())
            .unwrap();
        w.sync().unwrap();
        let path = pack_path(dir.path(), PackId(1));
        let mut bytes = read_all(&path);
        let last = bytes.len() - 3;
        bytes[last] ^= 0x40;
        fs::write(&path, &bytes).unwrap();
        let file = File::open(&path).unwrap();
        let err = read_chunk(&file, &locs[0].0, &locs[0].1).unwrap_err();
        assert!(
            matches!(err, Error::PackCorrupt { offset: 16, .. }),
            "{err}"
        );
    }

    #[test]
    fn rollback_and_reopen_cut_uncommitted_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = PackWriter::create(dir.path(), PackId(2)).unwrap();
        let cs = chunks(4);
        let refs: Vec<_> = cs.iter().map(|(i, d)| (*i, d.as_slice())).collect();
        w.append(&CompressedFrame::compress(&refs[..2], 3).unwrap())
            .unwrap();
        let committed = w.len();
        w.append(&CompressedFrame::compress(&refs[2..], 3).unwrap())
            .unwrap();
        w.rollback(committed).unwrap();
        assert_eq!(w.len(), committed);
        w.append(&CompressedFrame::compress(&refs[2..], 3).unwrap())
            .unwrap();
        w.sync().unwrap();
        drop(w);
        let w = PackWriter::reopen(dir.path(), PackId(2), committed).unwrap();
        assert_eq!(w.len(), committed);
        assert_eq!(
            fs::metadata(pack_path(dir.path(), PackId(2)))
                .unwrap()
                .len(),
            committed
        );
    }
}
