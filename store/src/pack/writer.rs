//! Appending to a pack: frames go on the end, a failed put cuts the file back, and the seal
//! closes it for good.

use std::{
    fs::{self, File, OpenOptions},
    io::{Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

use airlock_chunker::ChunkId;

use super::{
    ChunkLoc, CompressedFrame, PACK_FORMAT_VERSION, PACK_HEADER_BYTES, PACK_MAGIC, SEAL_BYTES,
    SEAL_MAGIC, pack_path, scan_frames,
};
use crate::{Error, PackId, Result, writeback::Writeback};

/// An open pack being appended to. Owned by one writer at a time, so a failed put can roll the
/// file back to where it started.
#[derive(Debug)]
pub struct PackWriter {
    id: PackId,
    path: PathBuf,
    file: File,
    len: u64,
    /// Checks of all frames, for the seal.
    checks: blake3::Hasher,
    frames: u32,
    /// Set when the file was created and its directory entry not yet synced.
    fresh: bool,
    /// Flushes of appended bytes started ahead of the sync.
    writeback: Writeback,
}

impl PackWriter {
    /// Creates a new, empty pack file.
    pub fn create(packs_dir: &Path, id: PackId) -> Result<PackWriter> {
        let path = pack_path(packs_dir, id);
        let dir = path.parent().unwrap_or(packs_dir);
        fs::create_dir_all(dir).map_err(Error::io("creating directory", dir))?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(Error::io("creating pack", &path))?;
        let mut header = Vec::with_capacity(PACK_HEADER_BYTES as usize);
        header.extend_from_slice(PACK_MAGIC);
        header.extend_from_slice(&PACK_FORMAT_VERSION.to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        file.write_all(&header)
            .map_err(Error::io("writing pack", &path))?;
        Ok(PackWriter {
            id,
            path,
            file,
            len: PACK_HEADER_BYTES,
            checks: blake3::Hasher::new(),
            frames: 0,
            fresh: true,
            writeback: Writeback::default(),
        })
    }

    /// Reopens an unsealed pack whose committed length is `committed_len`, cutting off anything
    /// after it (frames of a put that never committed, a seal whose commit was lost).
    pub fn reopen(packs_dir: &Path, id: PackId, committed_len: u64) -> Result<PackWriter> {
        let path = pack_path(packs_dir, id);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(Error::io("opening pack", &path))?;
        let actual = file
            .metadata()
            .map_err(Error::io("reading metadata of", &path))?
            .len();
        if actual < committed_len {
            return Err(Error::PackCorrupt {
                pack: id,
                offset: actual,
                what: format!(
                    "pack is truncated: {actual} bytes, the index expects {committed_len}"
                ),
            });
        }
        if actual > committed_len {
            file.set_len(committed_len)
                .map_err(Error::io("truncating pack", &path))?;
            file.sync_all().map_err(Error::io("syncing pack", &path))?;
        }
        // Recompute the seal hash and frame count from the frames already there.
        let mut checks = blake3::Hasher::new();
        let mut frames = 0;
        for frame in scan_frames(&file, id, committed_len) {
            let frame = frame?;
            checks.update(&frame.check);
            frames += 1;
        }
        file.seek(SeekFrom::Start(committed_len))
            .map_err(Error::io("seeking pack", &path))?;
        Ok(PackWriter {
            id,
            path,
            file,
            len: committed_len,
            checks,
            frames,
            fresh: false,
            writeback: Writeback::default(),
        })
    }

    /// The pack's id.
    pub fn id(&self) -> PackId {
        self.id
    }

    /// Current length of the file.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the pack holds no frame yet.
    pub fn is_empty(&self) -> bool {
        self.frames == 0
    }

    /// Appends a frame and returns the location of each of its chunks. Not durable until
    /// [`PackWriter::sync`].
    pub fn append(&mut self, frame: &CompressedFrame) -> Result<Vec<(ChunkId, ChunkLoc)>> {
        let offset = self.len;
        self.file
            .write_all(&frame.bytes)
            .map_err(Error::io("writing pack", &self.path))?;
        self.len += frame.bytes.len() as u64;
        self.frames += 1;
        self.checks.update(&frame.bytes[16..32]);
        self.writeback
            .appended(&self.file, frame.bytes.len() as u64);
        Ok(frame
            .entries
            .iter()
            .map(|&(id, raw_offset, raw_len)| {
                (
                    id,
                    ChunkLoc {
                        pack: self.id,
                        frame_offset: offset,
                        frame_len: frame.bytes.len() as u32,
                        raw_offset,
                        raw_len,
                    },
                )
            })
            .collect())
    }

    /// Makes everything appended so far durable (and the file's directory entry, once).
    pub fn sync(&mut self) -> Result<()> {
        self.writeback
            .finish()
            .and_then(|()| self.file.sync_data())
            .map_err(Error::io("syncing pack", &self.path))?;
        if self.fresh {
            // The file's entry, and the entry of its directory, which may be new too.
            for dir in self.path.ancestors().skip(1).take(2) {
                sync_dir(dir)?;
            }
            self.fresh = false;
        }
        Ok(())
    }

    /// Cuts the file back to `len` (where a failed put started) and restores the seal state.
    pub fn rollback(&mut self, len: u64) -> Result<()> {
        if len == self.len {
            return Ok(());
        }
        // A rollback goes back to where the last sync left the pack, so whatever a background
        // flush since then wrote, or failed to, is cut off here: its error does not matter.
        let _ = self.writeback.finish();
        self.file
            .set_len(len)
            .map_err(Error::io("truncating pack", &self.path))?;
        self.file
            .seek(SeekFrom::Start(len))
            .map_err(Error::io("seeking pack", &self.path))?;
        self.len = len;
        let mut checks = blake3::Hasher::new();
        let mut frames = 0;
        for frame in scan_frames(&self.file, self.id, len) {
            checks.update(&frame?.check);
            frames += 1;
        }
        self.checks = checks;
        self.frames = frames;
        Ok(())
    }

    /// Deletes the file of a pack that no index commit references (a new pack a failed put
    /// left empty). A file that cannot be removed now goes when the store is next opened.
    pub fn discard(self) {
        if let Err(e) = fs::remove_file(&self.path) {
            tracing::warn!("removing unused pack {}: {e}", self.id);
        }
    }

    /// Writes the seal record and syncs; returns the final length. The pack is read-only after.
    pub fn seal(mut self) -> Result<u64> {
        let mut seal = Vec::with_capacity(SEAL_BYTES);
        seal.extend_from_slice(SEAL_MAGIC);
        seal.extend_from_slice(&self.frames.to_le_bytes());
        seal.extend_from_slice(&self.len.to_le_bytes());
        seal.extend_from_slice(&self.checks.finalize().as_bytes()[..16]);
        self.file
            .write_all(&seal)
            .map_err(Error::io("writing pack", &self.path))?;
        self.len += SEAL_BYTES as u64;
        self.sync()?;
        Ok(self.len)
    }
}

/// Syncs a directory so entries created or removed in it survive a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("syncing directory", dir))
}
