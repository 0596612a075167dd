//! What an import keeps between runs, in the store directory under `imports/<bundle id>/`: a
//! copy of the bundle index, so a volume whose own copy is damaged can still be read. (What is
//! already imported needs no record: the store's chunks and blobs say it.) The file is written
//! atomically; the directory goes when the import completes.

use std::path::{Path, PathBuf};

use crate::{
    error::{Error, Result, io_error},
    index::{BundleId, BundleIndex},
};

const INDEX_FILE: &str = "index.airlock";

/// What an earlier run of the import of one bundle left.
#[derive(Debug)]
pub(crate) struct ImportState {
    dir: PathBuf,
    dry_run: bool,
}

impl ImportState {
    /// Opens (or, unless `dry_run`, starts) the state of bundle `id`, and returns the index to
    /// use: the one read from a volume (the caller has checked it: it is saved as it is), else
    /// the copy an earlier run saved. With neither, the error says why no volume's copy was
    /// usable (`problems`).
    pub(crate) fn open(
        dir: &Path,
        id: BundleId,
        from_volume: Option<BundleIndex>,
        dry_run: bool,
        problems: impl FnOnce() -> String,
    ) -> Result<(ImportState, BundleIndex)> {
        let saved = dir.join(INDEX_FILE);
        let index = match from_volume {
            Some(ix) => {
                if !dry_run && !saved.exists() {
                    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
                    ix.write_file(&saved)?;
                }
                ix
            }
            None if saved.exists() => BundleIndex::read_file(&saved)?,
            None => {
                return Err(Error::NoIndex {
                    bundle_id: id,
                    problems: problems(),
                });
            }
        };
        if index.bundle_id != id {
            return Err(Error::IndexCorrupt {
                what: format!("the index of bundle {id} names bundle {}", index.bundle_id),
            });
        }
        Ok((
            ImportState {
                dir: dir.to_owned(),
                dry_run,
            },
            index,
        ))
    }

    /// The copy of the index an earlier run saved (or this one will).
    pub(crate) fn saved_index(&self) -> PathBuf {
        self.dir.join(INDEX_FILE)
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
