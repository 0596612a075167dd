//! Progress of an import, kept in the store directory under `imports/<bundle id>/`: a copy of
//! the bundle index (so a volume whose own copy is damaged can still be read) and the numbers
//! of the volumes fully imported. Both files are replaced atomically; the directory goes when
//! the import completes.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use crate::{
    error::{Error, Result, io_error},
    index::{BundleId, BundleIndex},
    wire::write_atomically,
};

const INDEX_FILE: &str = "index.airlock";
const DONE_FILE: &str = "volumes-done";

/// What an earlier run of the import of one bundle left.
#[derive(Debug)]
pub(crate) struct ImportState {
    dir: PathBuf,
    done: BTreeSet<u32>,
    dry_run: bool,
}

impl ImportState {
    /// Opens (or, unless `dry_run`, starts) the state of bundle `id`, and returns the index to
    /// use: the one read from a volume, else the copy an earlier run saved.
    pub(crate) fn open(
        dir: &Path,
        id: BundleId,
        from_volume: Option<BundleIndex>,
        dry_run: bool,
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
            None => return Err(Error::NoIndex { bundle_id: id }),
        };
        if index.bundle_id != id {
            return Err(Error::IndexCorrupt {
                what: format!("the index of bundle {id} names bundle {}", index.bundle_id),
            });
        }
        let done_path = dir.join(DONE_FILE);
        let done = match std::fs::read_to_string(&done_path) {
            Ok(text) => text
                .lines()
                .filter_map(|l| l.trim().parse::<u32>().ok())
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
            Err(e) => return Err(io_error(&done_path)(e)),
        };
        Ok((
            ImportState {
                dir: dir.to_owned(),
                done,
                dry_run,
            },
            index,
        ))
    }

    /// Whether volume `n` was fully imported by an earlier run.
    pub(crate) fn is_done(&self, n: u32) -> bool {
        self.done.contains(&n)
    }

    /// Records volume `n` as fully imported (durably).
    pub(crate) fn mark_done(&mut self, n: u32) -> Result<()> {
        self.done.insert(n);
        if self.dry_run {
            return Ok(());
        }
        let text: String = self.done.iter().map(|n| format!("{n}\n")).collect();
        write_atomically(&self.dir.join(DONE_FILE), text.as_bytes())
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
