//! Volume files: a header, store pack frames verbatim, a copy of the bundle index, a trailer.
//!
//! ```text
//! volume  := header frame* index signature trailer        (format 1: no signature)
//! header  (VOLUME_HEADER_LEN = 88 bytes, at offset 0)
//!   0  8 magic "AIRLKVOL"
//!   8  4 format u32 = VOLUME_FORMAT_VERSION (2; 1 is still read)
//!  12  4 volume u32         this volume's number, from 1
//!  16  4 count u32          volumes in the bundle
//!  20  4 flags u32          bit 0 (FLAG_SIGNED): the volume carries a signature; others 0
//!  24 16 bundle_id
//!  40 32 index_check        BLAKE3 of the index bytes (same in every volume of a bundle)
//!  72 16 check              BLAKE3(bytes 0..72)[..16]
//! frame   a store pack frame ("FRAM" header of 32 bytes, chunk table, zstd payload)
//! index   the bundle index bytes (see `codec`)
//! signature  the minisign signature of the index bytes (a `.minisig` file's text; see
//!         `sign`), signature_len bytes, none when unsigned
//! trailer (VOLUME_TRAILER_LEN = 96 bytes, the file's last bytes; 72 in format 1)
//!   0  8 magic "AIRLKEND"
//!   8  8 index_offset u64
//!  16  8 index_len u64      index_offset + index_len + signature_len + 96 = file length
//!  24 32 index_check        BLAKE3 of the index bytes
//!  56  8 signature_len u64  0: unsigned                       (format 2 only)
//!  64 16 signature_check    BLAKE3(signature)[..16], zeros when unsigned (format 2 only)
//!  80 16 check              BLAKE3(trailer bytes 0..80)[..16]  (format 1: at 56, of 0..56)
//! ```
//! A volume is written as `NAME.NNN.airlock.partial` and renamed once complete and synced, so
//! a file with the final name is whole unless something damaged it afterwards. The volume's
//! own checks find damage, not tampering: whoever rewrites a volume can recompute them. The
//! signature, verified against a key the site trusts, is what finds tampering.

use std::{
    fs::{File, OpenOptions},
    io::{BufWriter, Read, Write},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use airlock_store::{FRAME_HEADER_LEN, frame_len};

use crate::{
    codec::{MAX_INDEX_BYTES, index_check},
    error::{Error, Result, io_error},
    index::{BundleId, BundleIndex},
    names::{check_bundle_name, volume_file_name},
    sign::MAX_SIGNATURE_BYTES,
    wire::{Put, Take, check16, sync_parent},
};

/// Version of the volume layout this build writes; it reads it and version 1 (no signature).
pub const VOLUME_FORMAT_VERSION: u32 = 2;
/// Header flag: the volume carries a signature of the index.
pub const FLAG_SIGNED: u32 = 1;
/// Magic at the start of every volume.
pub const VOLUME_MAGIC: &[u8; 8] = b"AIRLKVOL";
/// Magic at the start of a volume's trailer.
pub const TRAILER_MAGIC: &[u8; 8] = b"AIRLKEND";
/// Bytes of the volume header.
pub const VOLUME_HEADER_LEN: u64 = 88;
/// Bytes of the volume trailer.
pub const VOLUME_TRAILER_LEN: u64 = 96;
/// Bytes of the trailer of a version 1 volume.
pub const VOLUME_TRAILER_LEN_V1: u64 = 72;

const _: () = assert!(VOLUME_HEADER_LEN == 8 + 4 + 4 + 4 + 4 + 16 + 32 + 16);
const _: () = assert!(VOLUME_TRAILER_LEN == 8 + 8 + 8 + 32 + 8 + 16 + 16);
const _: () = assert!(VOLUME_TRAILER_LEN_V1 == 8 + 8 + 8 + 32 + 16);

/// What a volume header says: which bundle, which volume of how many, which index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VolumeHeader {
    /// Format version of the volume.
    pub format: u32,
    /// This volume's number, from 1.
    pub number: u32,
    /// Volumes in the bundle.
    pub count: u32,
    /// [`FLAG_SIGNED`] or 0.
    pub flags: u32,
    /// The bundle it belongs to.
    pub bundle_id: BundleId,
    /// BLAKE3 of the bundle index bytes; equal in every volume of a bundle.
    pub index_check: [u8; 32],
}

impl VolumeHeader {
    fn encode(&self) -> Vec<u8> {
        let mut p = Put::default();
        p.raw(VOLUME_MAGIC);
        p.u32(self.format);
        p.u32(self.number);
        p.u32(self.count);
        p.u32(self.flags);
        p.raw(&self.bundle_id.0);
        p.raw(&self.index_check);
        let check = check16(&p.0);
        p.raw(&check);
        p.0
    }
}

/// Writes one volume; never lets it grow past its capacity.
#[derive(Debug)]
pub struct VolumeWriter {
    partial: PathBuf,
    path: PathBuf,
    file: BufWriter<File>,
    len: u64,
    capacity: u64,
    reserved: u64,
    number: u32,
    bundle_id: BundleId,
}

impl VolumeWriter {
    /// Creates `dir/NAME.NNN.airlock.partial` (replacing a leftover one) with a placeholder
    /// header; `capacity_bytes` is the most the finished file may hold.
    pub fn create(
        dir: &Path,
        name: &str,
        number: u32,
        bundle_id: BundleId,
        capacity_bytes: u64,
    ) -> Result<VolumeWriter> {
        check_bundle_name(name)?;
        if number == 0 {
            return Err(Error::InvalidVolumeNumber {
                number,
                why: "volumes are numbered from 1",
            });
        }
        let path = dir.join(volume_file_name(name, number));
        let minimum = VOLUME_HEADER_LEN + VOLUME_TRAILER_LEN;
        if capacity_bytes < minimum {
            return Err(Error::CapacityExceeded {
                path,
                len: minimum,
                capacity: capacity_bytes,
            });
        }
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let file = File::create(&partial).map_err(io_error(&partial))?;
        let mut file = BufWriter::with_capacity(1 << 20, file);
        file.write_all(&[0u8; VOLUME_HEADER_LEN as usize])
            .map_err(io_error(&partial))?;
        Ok(VolumeWriter {
            partial,
            path,
            file,
            len: VOLUME_HEADER_LEN,
            capacity: capacity_bytes,
            reserved: 0,
            number,
            bundle_id,
        })
    }

    /// Sets the bytes kept free for the index copy (see `BundleIndex::encoded_len_bound`).
    pub fn reserve_index(&mut self, bytes: u64) {
        self.reserved = bytes;
    }

    /// Bytes still available for frames: capacity minus what is written, the trailer and the
    /// index reservation.
    pub fn room(&self) -> u64 {
        self.capacity
            .saturating_sub(self.len)
            .saturating_sub(VOLUME_TRAILER_LEN)
            .saturating_sub(self.reserved)
    }

    /// Bytes written so far (header included).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no frame was written yet.
    pub fn is_empty(&self) -> bool {
        self.len == VOLUME_HEADER_LEN
    }

    /// The file name the volume will have once finished.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one whole store frame and returns its offset in the volume; refused with
    /// [`Error::VolumeFull`] when it does not fit in [`VolumeWriter::room`].
    pub fn append_frame(&mut self, frame: &[u8]) -> Result<u64> {
        let header = frame
            .get(..FRAME_HEADER_LEN)
            .ok_or_else(|| Error::NotAFrame {
                what: format!("{} bytes, shorter than a frame header", frame.len()),
            })?;
        let expected = frame_len(header).map_err(|e| Error::NotAFrame {
            what: e.to_string(),
        })?;
        if expected != frame.len() {
            return Err(Error::NotAFrame {
                what: format!("{} bytes, the frame header says {expected}", frame.len()),
            });
        }
        let needed = frame.len() as u64;
        if needed > self.room() {
            return Err(Error::VolumeFull {
                path: self.path.clone(),
                needed,
                room: self.room(),
            });
        }
        self.file
            .write_all(frame)
            .map_err(io_error(&self.partial))?;
        let offset = self.len;
        self.len += needed;
        Ok(offset)
    }

    /// Appends the index copy and the trailer, writes the real header (`count` volumes, the
    /// index's check), syncs, and renames the file to its final name, which it returns.
    /// Refused, with nothing renamed, when the file would exceed its capacity.
    pub fn finish(self, count: u32, index: &[u8]) -> Result<PathBuf> {
        self.close_frames()?.finish(count, index)
    }

    /// Ends the frames and closes the file, for an exporter that writes every volume's frames
    /// before it knows the final index: finish each later with [`PendingVolume::finish`].
    pub fn close_frames(mut self) -> Result<PendingVolume> {
        self.file.flush().map_err(io_error(&self.partial))?;
        Ok(PendingVolume {
            partial: self.partial,
            path: self.path,
            len: self.len,
            capacity: self.capacity,
            number: self.number,
            bundle_id: self.bundle_id,
        })
    }

    /// Gives up on the volume and removes its partial file.
    pub fn abandon(self) -> Result<()> {
        let VolumeWriter { partial, file, .. } = self;
        drop(file);
        std::fs::remove_file(&partial).map_err(io_error(&partial))
    }
}

/// A volume whose frames are written and whose file is closed, waiting for the bundle index.
#[derive(Debug)]
pub struct PendingVolume {
    partial: PathBuf,
    path: PathBuf,
    len: u64,
    capacity: u64,
    number: u32,
    bundle_id: BundleId,
}

impl PendingVolume {
    /// The file name the volume will have once finished.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of header and frames.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it holds no frame.
    pub fn is_empty(&self) -> bool {
        self.len == VOLUME_HEADER_LEN
    }

    /// As [`VolumeWriter::finish`].
    pub fn finish(self, count: u32, index: &[u8]) -> Result<PathBuf> {
        self.finish_signed(count, index, &[])
    }

    /// As [`PendingVolume::finish`], with the signature of the index (a `.minisig` file's
    /// bytes, at most `sign::MAX_SIGNATURE_BYTES`) after it; empty for none.
    pub fn finish_signed(self, count: u32, index: &[u8], signature: &[u8]) -> Result<PathBuf> {
        if signature.len() as u64 > MAX_SIGNATURE_BYTES {
            return Err(Error::Signing {
                what: format!("a signature of {} bytes is too large", signature.len()),
            });
        }
        if self.number > count {
            return Err(Error::InvalidVolumeNumber {
                number: self.number,
                why: "greater than the volume count",
            });
        }
        let tail = index.len() as u64 + signature.len() as u64;
        let total = self.len + tail + VOLUME_TRAILER_LEN;
        if total > self.capacity {
            return Err(Error::CapacityExceeded {
                path: self.path,
                len: total,
                capacity: self.capacity,
            });
        }
        let check = index_check(index);
        let mut t = Put::default();
        t.raw(TRAILER_MAGIC);
        t.u64(self.len);
        t.u64(index.len() as u64);
        t.raw(&check);
        t.u64(signature.len() as u64);
        t.raw(&if signature.is_empty() {
            [0; 16]
        } else {
            check16(signature)
        });
        let c = check16(&t.0);
        t.raw(&c);
        let header = VolumeHeader {
            format: VOLUME_FORMAT_VERSION,
            number: self.number,
            count,
            flags: if signature.is_empty() { 0 } else { FLAG_SIGNED },
            bundle_id: self.bundle_id,
            index_check: check,
        };
        let result = (|| {
            let file = OpenOptions::new().write(true).open(&self.partial)?;
            // Anything past the frames (an earlier failed finish) is replaced.
            file.set_len(self.len)?;
            file.write_all_at(index, self.len)?;
            file.write_all_at(signature, self.len + index.len() as u64)?;
            file.write_all_at(&t.0, self.len + tail)?;
            file.write_all_at(&header.encode(), 0)?;
            file.sync_all()
        })();
        result.map_err(io_error(&self.partial))?;
        std::fs::rename(&self.partial, &self.path).map_err(io_error(&self.path))?;
        sync_parent(&self.path)?;
        Ok(self.path)
    }

    /// Gives up on the volume and removes its partial file.
    pub fn abandon(self) -> Result<()> {
        std::fs::remove_file(&self.partial).map_err(io_error(&self.partial))
    }
}

/// An open volume: its header always, its index copy when intact, and its frames by offset.
#[derive(Debug)]
pub struct VolumeReader {
    path: PathBuf,
    file: File,
    len: u64,
    header: VolumeHeader,
    /// Where frames end: the index offset, or the file's end when the trailer is unusable.
    frames_end: u64,
    index_len: u64,
    index: std::result::Result<BundleIndex, Error>,
    signature: SignatureCopy,
}

/// What a volume says of its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureCopy {
    /// None: a version 1 volume, or one written unsigned.
    Unsigned,
    /// The signature's bytes (a `.minisig` file's text), intact by its check: what the exporter
    /// wrote, or what someone who rewrote the volume put there.
    Present(Vec<u8>),
    /// The header says signed, but the signature section cannot be read (damaged, or the
    /// trailer is).
    Damaged(String),
}

impl VolumeReader {
    /// Opens a volume and checks its header, trailer and index copy. Fails only when the
    /// header itself is unusable; a damaged or missing trailer or index leaves the header
    /// readable and the index unavailable ([`VolumeReader::index_problem`] says why).
    pub fn open(path: &Path) -> Result<VolumeReader> {
        let mut file = File::open(path).map_err(io_error(path))?;
        let len = file.metadata().map_err(io_error(path))?.len();
        let mut head = Vec::with_capacity(VOLUME_HEADER_LEN as usize);
        (&mut file)
            .take(VOLUME_HEADER_LEN)
            .read_to_end(&mut head)
            .map_err(io_error(path))?;
        let header = parse_header(path, &head, len)?;
        let mut reader = VolumeReader {
            path: path.to_owned(),
            file,
            len,
            header,
            frames_end: len,
            index_len: 0,
            index: Err(Error::VolumeTruncated {
                path: path.to_owned(),
                len,
            }),
            signature: SignatureCopy::Unsigned,
        };
        reader.index = reader.read_index();
        let signed = header.flags & FLAG_SIGNED != 0;
        if let (Err(e), true, SignatureCopy::Unsigned) = (&reader.index, signed, &reader.signature)
        {
            reader.signature = SignatureCopy::Damaged(format!("the trailer is unusable: {e}"));
        }
        Ok(reader)
    }

    fn corrupt(&self, offset: u64, what: impl Into<String>) -> Error {
        Error::VolumeCorrupt {
            path: self.path.clone(),
            offset,
            what: what.into(),
        }
    }

    fn read_at(&self, offset: u64, len: u64) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len as usize];
        self.file
            .read_exact_at(&mut buf, offset)
            .map_err(io_error(&self.path))?;
        Ok(buf)
    }

    fn read_index(&mut self) -> Result<BundleIndex> {
        let truncated = || Error::VolumeTruncated {
            path: self.path.clone(),
            len: self.len,
        };
        let v1 = self.header.format == 1;
        let trailer_len = if v1 {
            VOLUME_TRAILER_LEN_V1
        } else {
            VOLUME_TRAILER_LEN
        };
        if self.len < VOLUME_HEADER_LEN + trailer_len {
            return Err(truncated());
        }
        let at = self.len - trailer_len;
        let trailer = self.read_at(at, trailer_len)?;
        if &trailer[..8] != TRAILER_MAGIC {
            return Err(truncated());
        }
        let end = trailer_len as usize - 16;
        if trailer[end..] != check16(&trailer[..end]) {
            return Err(self.corrupt(at, "trailer check mismatch"));
        }
        let mut t = Take::new(&trailer[8..end]);
        let fields = (|| -> std::result::Result<_, String> {
            let offset = t.u64("index offset")?;
            let index_len = t.u64("index length")?;
            let check = t.array::<32>("index check")?;
            let signature = if v1 {
                (0, [0; 16])
            } else {
                (
                    t.u64("signature length")?,
                    t.array::<16>("signature check")?,
                )
            };
            Ok((offset, index_len, check, signature))
        })();
        let (offset, index_len, check, (sig_len, sig_check)) =
            fields.map_err(|w| self.corrupt(at, w))?;
        let sig_at = offset.checked_add(index_len);
        if offset < VOLUME_HEADER_LEN || sig_at.and_then(|s| s.checked_add(sig_len)) != Some(at) {
            return Err(self.corrupt(
                at,
                format!(
                    "trailer places the index at {offset}+{index_len} and a signature of \
                     {sig_len} bytes, not just before it"
                ),
            ));
        }
        self.frames_end = offset;
        let sig_at = offset + index_len;
        let signed = self.header.flags & FLAG_SIGNED != 0;
        self.signature = if sig_len == 0 && !signed {
            SignatureCopy::Unsigned
        } else if sig_len == 0 {
            SignatureCopy::Damaged("the header says signed, the trailer names no signature".into())
        } else if sig_len > MAX_SIGNATURE_BYTES {
            SignatureCopy::Damaged(format!("a signature of {sig_len} bytes at offset {sig_at}"))
        } else {
            let bytes = self.read_at(sig_at, sig_len)?;
            if check16(&bytes) == sig_check && signed {
                SignatureCopy::Present(bytes)
            } else {
                SignatureCopy::Damaged(format!("signature check mismatch at offset {sig_at}"))
            }
        };
        if index_len > MAX_INDEX_BYTES {
            return Err(self.corrupt(offset, format!("index of {index_len} bytes is too large")));
        }
        if check != self.header.index_check {
            return Err(self.corrupt(at, "trailer and header name different indexes"));
        }
        let bytes = self.read_at(offset, index_len)?;
        if index_check(&bytes) != check {
            return Err(self.corrupt(offset, "index copy check mismatch"));
        }
        let index = BundleIndex::decode(&bytes).map_err(|e| self.corrupt(offset, e.to_string()))?;
        if index.bundle_id != self.header.bundle_id || index.volume_count != self.header.count {
            return Err(self.corrupt(offset, "index copy is of another bundle than the header"));
        }
        self.index_len = index_len;
        Ok(index)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the volume holds no frame.
    pub fn is_empty(&self) -> bool {
        self.frames_end <= VOLUME_HEADER_LEN
    }

    /// The volume header (bundle id, number, count, index check).
    pub fn header(&self) -> &VolumeHeader {
        &self.header
    }

    /// The index copy, when the trailer and index are intact.
    pub fn index(&self) -> Option<&BundleIndex> {
        self.index.as_ref().ok()
    }

    /// Why the index copy is unavailable, when it is.
    pub fn index_problem(&self) -> Option<&Error> {
        self.index.as_ref().err()
    }

    /// Where the index copy starts in the file, when it is intact.
    pub fn index_offset(&self) -> Option<u64> {
        self.index.is_ok().then_some(self.frames_end)
    }

    /// What the volume carries of a signature of its index.
    pub fn signature(&self) -> &SignatureCopy {
        &self.signature
    }

    /// Where the index copy lies in the file (offset, length), when it is intact.
    pub(crate) fn index_range(&self) -> Option<(u64, u64)> {
        self.index
            .is_ok()
            .then_some((self.frames_end, self.index_len))
    }

    /// Reads the frame of `len` bytes at `offset` (from the index), checking it lies among the
    /// frames and that its header agrees on its length before reading the rest. Check its
    /// content with `airlock_store::Frame::decode`.
    pub fn read_frame(&self, offset: u64, len: u32) -> Result<Vec<u8>> {
        let corrupt = |what: String| Error::FrameCorrupt {
            path: self.path.clone(),
            offset,
            what,
        };
        let end = offset.checked_add(u64::from(len));
        if offset < VOLUME_HEADER_LEN || end.is_none_or(|e| e > self.frames_end) {
            let beyond = if self.index.is_err() && end.is_some_and(|e| e > self.len) {
                format!(" (the volume is {} bytes: truncated?)", self.len)
            } else {
                String::new()
            };
            return Err(corrupt(format!(
                "{len} bytes do not lie within the frames ({VOLUME_HEADER_LEN}..{}){beyond}",
                self.frames_end
            )));
        }
        if (len as usize) < FRAME_HEADER_LEN {
            return Err(corrupt(format!("{len} bytes cannot hold a frame header")));
        }
        let header = self.read_at(offset, FRAME_HEADER_LEN as u64)?;
        let expected = frame_len(&header).map_err(|e| corrupt(e.to_string()))?;
        if expected != len as usize {
            return Err(corrupt(format!(
                "the index says {len} bytes, the frame header says {expected}"
            )));
        }
        self.read_at(offset, u64::from(len))
    }
}

/// Parses and checks a volume header (`head`, the file's first bytes; `len`, its length).
pub(crate) fn parse_header(path: &Path, head: &[u8], len: u64) -> Result<VolumeHeader> {
    let magic_len = head.len().min(8);
    if head[..magic_len] != VOLUME_MAGIC[..magic_len] {
        return Err(Error::NotAVolume {
            path: path.to_owned(),
        });
    }
    if (head.len() as u64) < VOLUME_HEADER_LEN {
        return Err(Error::VolumeTruncated {
            path: path.to_owned(),
            len,
        });
    }
    let corrupt = |what: String| Error::VolumeCorrupt {
        path: path.to_owned(),
        offset: 0,
        what,
    };
    if head[72..88] != check16(&head[..72]) {
        return Err(corrupt("header check mismatch".into()));
    }
    let mut t = Take::new(&head[8..72]);
    let header = (|| -> std::result::Result<VolumeHeader, String> {
        Ok(VolumeHeader {
            format: t.u32("format")?,
            number: t.u32("volume number")?,
            count: t.u32("volume count")?,
            flags: t.u32("flags")?,
            bundle_id: BundleId(t.array("bundle id")?),
            index_check: t.array("index check")?,
        })
    })()
    .map_err(corrupt)?;
    if header.format != VOLUME_FORMAT_VERSION && header.format != 1 {
        return Err(Error::UnsupportedVersion {
            path: path.to_owned(),
            kind: "volume",
            version: header.format,
            supported: VOLUME_FORMAT_VERSION,
        });
    }
    if header.number == 0 || header.number > header.count {
        return Err(corrupt(format!(
            "header says volume {} of {}",
            header.number, header.count
        )));
    }
    Ok(header)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::index::{FrameEntry, VolumeEntry};
    use airlock_store::{ChunkId, Frame};

    fn frame(seed: u32, chunks: u32) -> (Vec<u8>, Vec<ChunkId>) {
        let data: Vec<Vec<u8>> = (0..chunks)
            .map(|i| {
                let mut h = blake3::Hasher::new();
                h.update(&seed.to_le_bytes());
                h.update(&i.to_le_bytes());
                let mut out = vec![0u8; 3000];
                h.finalize_xof().fill(&mut out);
                out
            })
            .collect();
        let refs: Vec<(ChunkId, &[u8])> = data.iter().map(|d| (ChunkId::of(d), &d[..])).collect();
        let f = Frame::compress(&refs, 3).unwrap();
        (f.as_bytes().to_vec(), refs.iter().map(|r| r.0).collect())
    }

    fn index(bundle_id: BundleId, frames: Vec<FrameEntry>) -> BundleIndex {
        BundleIndex {
            bundle_id,
            name: "app".into(),
            created: 0,
            tool: "airlock test".into(),
            base: None,
            refs: vec![],
            manifests: vec![],
            blobs: vec![],
            volume_count: 1,
            volumes: vec![VolumeEntry { number: 1, frames }],
        }
    }

    /// A finished one-volume bundle of three frames, and its index.
    fn write_volume(dir: &Path) -> (PathBuf, BundleIndex, Vec<Vec<u8>>) {
        let id = BundleId([5; 16]);
        let mut w = VolumeWriter::create(dir, "app", 1, id, 1 << 20).unwrap();
        let mut entries = Vec::new();
        let mut bytes = Vec::new();
        for seed in 0..3 {
            let (f, chunks) = frame(seed, 2);
            let offset = w.append_frame(&f).unwrap();
            entries.push(FrameEntry {
                offset,
                len: f.len() as u32,
                chunks,
            });
            bytes.push(f);
        }
        let ix = index(id, entries);
        let path = w.finish(1, &ix.encode().unwrap()).unwrap();
        (path, ix, bytes)
    }

    #[test]
    fn a_volume_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let (path, ix, frames) = write_volume(dir.path());
        assert_eq!(path, dir.path().join("app.001.airlock"));
        assert!(!dir.path().join("app.001.airlock.partial").exists());
        let r = VolumeReader::open(&path).unwrap();
        assert_eq!(r.header().number, 1);
        assert_eq!(r.header().count, 1);
        assert_eq!(r.header().bundle_id, ix.bundle_id);
        assert_eq!(r.index(), Some(&ix));
        for (f, bytes) in ix.volumes[0].frames.iter().zip(&frames) {
            let got = r.read_frame(f.offset, f.len).unwrap();
            assert_eq!(&got, bytes);
            let decoded = Frame::decode(got).unwrap();
            let ids: Vec<ChunkId> = decoded.chunks().map(|c| c.0).collect();
            assert_eq!(ids, f.chunks);
        }
        let f = &ix.volumes[0].frames[1];
        assert!(r.read_frame(f.offset, f.len + 1).is_err());
        assert!(r.read_frame(f.offset + 1, f.len).is_err());
        assert!(r.read_frame(0, f.len).is_err());
        assert!(r.read_frame(u64::MAX - 3, f.len).is_err());
    }

    #[test]
    fn capacity_is_never_exceeded() {
        let dir = tempfile::tempdir().unwrap();
        let id = BundleId([1; 16]);
        for capacity in [20_000u64, 33_333, 50_000] {
            let mut w = VolumeWriter::create(dir.path(), "cap", 1, id, capacity).unwrap();
            let probe = index(id, vec![]);
            w.reserve_index(probe.encoded_len_bound(40).unwrap());
            let mut entries = Vec::new();
            for seed in 0..20 {
                let (f, chunks) = frame(seed, 2);
                match w.append_frame(&f) {
                    Ok(offset) => entries.push(FrameEntry {
                        offset,
                        len: f.len() as u32,
                        chunks,
                    }),
                    Err(Error::VolumeFull { needed, room, .. }) => {
                        assert!(needed > room);
                        break;
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            assert!(!entries.is_empty());
            let path = w.finish(1, &index(id, entries).encode().unwrap()).unwrap();
            assert!(std::fs::metadata(&path).unwrap().len() <= capacity);
        }
        // An index larger than what is left is refused and nothing gets the final name.
        let mut w = VolumeWriter::create(dir.path(), "over", 1, id, 1000).unwrap();
        assert!(w.append_frame(&frame(0, 1).0).is_err());
        let err = w.finish(1, &[0u8; 900]).unwrap_err();
        assert!(
            matches!(
                err,
                Error::CapacityExceeded {
                    len: 1084,
                    capacity: 1000,
                    ..
                }
            ),
            "{err}"
        );
        assert!(!dir.path().join("over.001.airlock").exists());
        assert!(VolumeWriter::create(dir.path(), "tiny", 1, id, 100).is_err());
        assert!(VolumeWriter::create(dir.path(), "zero", 0, id, 1000).is_err());
    }

    #[test]
    fn a_cut_volume_still_gives_its_header() {
        let dir = tempfile::tempdir().unwrap();
        let (path, ix, _) = write_volume(dir.path());
        let full = std::fs::read(&path).unwrap();
        for cut in [1, 10, VOLUME_TRAILER_LEN as usize, 500, full.len() - 89] {
            let len = full.len() - cut;
            std::fs::write(&path, &full[..len]).unwrap();
            let r = VolumeReader::open(&path).unwrap();
            assert_eq!(r.header().bundle_id, ix.bundle_id);
            assert!(r.index().is_none());
            let problem = r.index_problem().unwrap().to_string();
            assert!(
                problem.contains(&format!("truncated at {len} bytes")),
                "{problem}"
            );
        }
        // Frames before the cut can still be read.
        std::fs::write(&path, &full[..full.len() - 200]).unwrap();
        let r = VolumeReader::open(&path).unwrap();
        let f = &ix.volumes[0].frames[0];
        assert!(r.read_frame(f.offset, f.len).is_ok());
        // Shorter than a header: truncated; other bytes: not a volume.
        std::fs::write(&path, &full[..40]).unwrap();
        assert!(matches!(
            VolumeReader::open(&path),
            Err(Error::VolumeTruncated { len: 40, .. })
        ));
        std::fs::write(&path, b"GIF89a and then some more bytes").unwrap();
        let err = VolumeReader::open(&path).unwrap_err();
        assert!(err.to_string().ends_with("not an airlock volume"), "{err}");
    }

    #[test]
    fn a_flipped_byte_is_found_in_every_region() {
        let dir = tempfile::tempdir().unwrap();
        let (path, ix, _) = write_volume(dir.path());
        let full = std::fs::read(&path).unwrap();
        let index_offset =
            full.len() as u64 - VOLUME_TRAILER_LEN - ix.encode().unwrap().len() as u64;
        for i in (0..full.len()).step_by(7).chain([full.len() - 1]) {
            let mut b = full.clone();
            b[i] ^= 0x01;
            std::fs::write(&path, &b).unwrap();
            let i = i as u64;
            let opened = VolumeReader::open(&path);
            if i < VOLUME_HEADER_LEN {
                assert!(opened.is_err(), "header flip at {i}");
                continue;
            }
            let r = opened.unwrap();
            if i >= index_offset {
                assert!(r.index().is_none(), "index or trailer flip at {i}");
                continue;
            }
            let ok = ix.volumes[0].frames.iter().all(|f| {
                r.read_frame(f.offset, f.len)
                    .map_err(|e| e.to_string())
                    .and_then(|bytes| Frame::decode(bytes).map_err(|e| e.to_string()))
                    .is_ok()
            });
            assert!(!ok, "frame flip at {i} unnoticed");
        }
    }

    #[test]
    fn volumes_closed_early_are_finished_with_the_final_index() {
        let dir = tempfile::tempdir().unwrap();
        let id = BundleId([2; 16]);
        let mut pending = Vec::new();
        let mut volumes = Vec::new();
        for number in 1..=2u32 {
            let mut w = VolumeWriter::create(dir.path(), "two", number, id, 1 << 20).unwrap();
            let (f, chunks) = frame(number, 3);
            let offset = w.append_frame(&f).unwrap();
            volumes.push(VolumeEntry {
                number,
                frames: vec![FrameEntry {
                    offset,
                    len: f.len() as u32,
                    chunks,
                }],
            });
            pending.push(w.close_frames().unwrap());
        }
        let mut ix = index(id, vec![]);
        ix.volume_count = 2;
        ix.volumes = volumes;
        let bytes = ix.encode().unwrap();
        let paths: Vec<PathBuf> = pending
            .into_iter()
            .map(|p| p.finish(2, &bytes).unwrap())
            .collect();
        let checks: Vec<[u8; 32]> = paths
            .iter()
            .map(|p| {
                let r = VolumeReader::open(p).unwrap();
                assert_eq!(r.index(), Some(&ix));
                let f = &ix.volumes[r.header().number as usize - 1].frames[0];
                Frame::decode(r.read_frame(f.offset, f.len).unwrap()).unwrap();
                r.header().index_check
            })
            .collect();
        assert_eq!(checks[0], checks[1]);
    }
}
