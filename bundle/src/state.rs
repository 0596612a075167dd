//! What an import keeps between runs, in the store directory under `imports/<bundle id>/`: a
//! copy of the bundle index (its very bytes) and the signature it was verified with, so a
//! volume whose own copy is damaged can still be read, and checked. (What is
//! already imported needs no record: the store's chunks and blobs say it.) The file is written
//! atomically; the directory goes when the import completes.

use std::{
    fs::File,
    io::{Read, Write},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use crate::{
    error::{Error, Result, io_error},
    index::{BundleId, BundleIndex},
    sign::MAX_SIGNATURE_BYTES,
    wire::{sync_parent, write_atomically},
};

const INDEX_FILE: &str = "index.airlock";
/// The signature the import was checked with, beside the saved index.
const SIGNATURE_FILE: &str = "index.airlock.minisig";

/// What an earlier run of the import of one bundle left.
#[derive(Debug)]
pub(crate) struct ImportState {
    dir: PathBuf,
    dry_run: bool,
}

/// Where an earlier run saved its index copy.
pub(crate) fn saved_index_path(dir: &Path) -> PathBuf {
    dir.join(INDEX_FILE)
}

/// The index copy an earlier run saved in `dir`, for an import none of whose volumes carries
/// an intact one. With none, the error says why no volume's copy was usable (`problems`).
pub(crate) fn read_saved(
    dir: &Path,
    id: BundleId,
    problems: impl FnOnce() -> String,
) -> Result<BundleIndex> {
    let saved = dir.join(INDEX_FILE);
    if !saved.exists() {
        return Err(Error::NoIndex {
            bundle_id: id,
            problems: problems(),
        });
    }
    let index = BundleIndex::read_file(&saved)?;
    if index.bundle_id != id {
        return Err(Error::IndexCorrupt {
            what: format!("the index of bundle {id} names bundle {}", index.bundle_id),
        });
    }
    Ok(index)
}

/// The signature an earlier run saved beside its index copy, if any (bounded).
pub(crate) fn saved_signature(dir: &Path) -> Option<(PathBuf, Vec<u8>)> {
    let path = dir.join(SIGNATURE_FILE);
    let file = File::open(&path).ok()?;
    let mut bytes = Vec::new();
    file.take(MAX_SIGNATURE_BYTES + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    Some((path, bytes))
}

impl ImportState {
    /// Starts (unless `dry_run`) the state of the import in `dir`: keeps a copy of the index
    /// bytes `copy` (a file, offset and length: the very bytes checked and, when signed,
    /// verified) unless one is kept already, and the signature it was verified with.
    pub(crate) fn start(
        dir: &Path,
        dry_run: bool,
        copy: Option<(&Path, u64, u64)>,
        signature: Option<&[u8]>,
    ) -> Result<ImportState> {
        if !dry_run {
            let saved = dir.join(INDEX_FILE);
            if let Some((from, offset, len)) = copy
                && !saved.exists()
            {
                std::fs::create_dir_all(dir).map_err(io_error(dir))?;
                copy_range(from, offset, len, &saved)?;
            }
            if let Some(sig) = signature {
                std::fs::create_dir_all(dir).map_err(io_error(dir))?;
                write_atomically(&dir.join(SIGNATURE_FILE), sig)?;
            }
        }
        Ok(ImportState {
            dir: dir.to_owned(),
            dry_run,
        })
    }

    /// Forgets the import (it completed).
    pub(crate) fn remove(&self) {
        if self.dry_run {
            return;
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!("removing {}: {e}", self.dir.display());
        }
    }
}

/// Copies `len` bytes from `offset` of `from` to `to`, streaming, as `write_atomically` does:
/// a `.partial` file, synced, renamed, the directory synced.
fn copy_range(from: &Path, offset: u64, len: u64, to: &Path) -> Result<()> {
    let src = File::open(from).map_err(io_error(from))?;
    let mut tmp = to.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    let mut out = File::create(&tmp).map_err(io_error(&tmp))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(buf.len() as u64) as usize;
        src.read_exact_at(&mut buf[..n], offset + done)
            .map_err(io_error(from))?;
        out.write_all(&buf[..n]).map_err(io_error(&tmp))?;
        done += n as u64;
    }
    out.sync_all().map_err(io_error(&tmp))?;
    drop(out);
    std::fs::rename(&tmp, to).map_err(io_error(to))?;
    sync_parent(to)
}
