//! What an import does with parity volumes (see `rebuild`): which volumes not given to rebuild,
//! frames of a damaged volume read again through the parity, a volume rebuilt whole checked as
//! a volume (its header names it), and the report of what was rebuilt from what.

use std::path::{Path, PathBuf};

use super::{
    Damage, ImportReport, Importer, ParityProblem, Rebuilt, decode_frame, read_frame,
    rebuild::Rebuilder,
};
use crate::{
    index::FrameEntry,
    names::{parse_volume_file_name, volume_file_name},
    parity::ParityReader,
    progress::Progress,
    volume::{VOLUME_HEADER_LEN, VolumeReader, parse_header},
};

/// A volume file that could not even be opened, of a bundle whose volume of that number was
/// rebuilt from parity and imported, no longer makes the import incomplete.
pub(super) fn replace_unreadable(report: &mut ImportReport, progress: &dyn Progress) {
    let unreadable = std::mem::take(&mut report.unreadable);
    for (path, why) in unreadable {
        let named = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(parse_volume_file_name);
        let replaced = named.as_ref().and_then(|(name, number)| {
            report.bundles.iter().find(|b| {
                b.complete
                    && &b.name == name
                    && b.rebuilt.iter().any(|r| !r.given && r.volume == *number)
            })
        });
        match replaced {
            Some(b) => {
                let why = format!(
                    "unreadable ({why}); volume {} of bundle {} was rebuilt from parity instead",
                    named.map_or(0, |n| n.1),
                    b.name
                );
                progress.note(&format!("{}: {why}", path.display()));
                report.ignored.push((path, why));
            }
            None => report.unreadable.push((path, why)),
        }
    }
}

impl Importer<'_> {
    /// Uses parity volumes of the bundle (given at the start, or later at a prompt).
    pub(super) fn add_parity(&mut self, readers: Vec<ParityReader>) {
        if readers.is_empty() {
            return;
        }
        let Some(check) = self.index_check else {
            return;
        };
        let mut refused = Vec::new();
        match self.rebuilder.as_mut() {
            Some(r) => {
                for p in readers {
                    refused.extend(r.add_parity(p).err());
                }
            }
            None => {
                let (kept, no) = Rebuilder::new(check, self.index.volume_count, readers);
                refused = no;
                self.rebuilder = kept;
                if let Some(r) = self.rebuilder.as_mut() {
                    for (&n, path) in &self.given_paths {
                        r.add_data(n, path);
                    }
                }
            }
        }
        for (path, what) in refused {
            self.progress
                .note(&format!("not using {}: {what}", path.display()));
            self.outcome
                .parity_problems
                .push(ParityProblem { path, what });
        }
        self.rebuild_tried.clear();
    }

    /// The file of volume `number`: the one given, or where it would lie beside the parity.
    pub(super) fn volume_path(&self, v: Option<&VolumeReader>, number: u32) -> PathBuf {
        match v {
            Some(v) => v.path().to_owned(),
            None => {
                let dir = self.rebuilder.as_ref().and_then(|r| r.parity_dir());
                let file = volume_file_name(&self.index.name, number);
                dir.map_or_else(|| PathBuf::from(&file), |d| d.join(&file))
            }
        }
    }

    /// A volume given: its index copy's damage is recorded. A volume rebuilt: its header,
    /// rebuilt too, must be that volume's of this bundle.
    pub(super) fn check_source(
        &mut self,
        v: Option<&VolumeReader>,
        number: u32,
    ) -> std::result::Result<(), String> {
        if let Some(v) = v {
            self.outcome.damaged.extend(Damage::of_index_copy(v));
            return Ok(());
        }
        let r = self
            .rebuilder
            .as_mut()
            .ok_or_else(|| "not given, and no parity volume to rebuild it".to_owned())?;
        let head = r
            .read(number, 0, VOLUME_HEADER_LEN)
            .map_err(|why| format!("not given, and cannot be rebuilt from parity: {why}"))?;
        let path = self.volume_path(None, number);
        let h = parse_header(&path, &head, VOLUME_HEADER_LEN)
            .map_err(|e| format!("rebuilt from parity, its header is refused: {e}"))?;
        if h.bundle_id != self.index.bundle_id || h.number != number {
            return Err(format!(
                "rebuilt from parity, its header says volume {} of bundle {}",
                h.number, h.bundle_id
            ));
        }
        Ok(())
    }

    /// Reads one frame from the volume given, else (damaged there, or not given) through the
    /// parity volumes; either way checked whole and holding the chunks the index says.
    pub(super) fn fetch(
        &mut self,
        v: Option<&VolumeReader>,
        number: u32,
        f: &FrameEntry,
    ) -> std::result::Result<airlock_store::DecodedChunks, String> {
        let direct = match v {
            Some(v) => read_frame(v, f.offset, f.len, &f.chunks),
            None => Err("not given".to_owned()),
        };
        let what = match direct {
            Ok(decoded) => return Ok(decoded),
            Err(what) => what,
        };
        let Some(r) = self.rebuilder.as_mut() else {
            return Err(what);
        };
        r.read(number, f.offset, u64::from(f.len))
            .and_then(|bytes| decode_frame(bytes, &f.chunks))
            .map_err(|why| match v {
                Some(_) => format!("{what}; not repaired from parity: {why}"),
                None => format!("not given, and cannot be rebuilt from parity: {why}"),
            })
    }

    /// Volumes among `missing` that are not given and that the parity volumes can rebuild,
    /// not tried yet since the last volume was admitted; notes why when they cannot.
    pub(super) fn rebuildable(&mut self, missing: &[u32]) -> Vec<u32> {
        let Some(r) = self.rebuilder.as_ref() else {
            return Vec::new();
        };
        let todo: Vec<u32> = missing
            .iter()
            .copied()
            .filter(|&n| !r.given(n) && !self.rebuild_tried.contains(&n))
            .collect();
        if todo.is_empty() {
            return todo;
        }
        self.rebuild_tried.extend(&todo);
        self.outcome.parity_short = None;
        let absent = r.absent();
        let parity = r.parity_numbers();
        if absent.len() > parity.len() {
            let list: Vec<String> = absent.iter().map(u32::to_string).collect();
            let why = format!(
                "volume(s) {} not given: the {} parity volume(s) given rebuild at most {}; \
                 give {} more volume(s) (data or parity)",
                list.join(", "),
                parity.len(),
                parity.len(),
                absent.len() - parity.len()
            );
            self.progress.note(&why);
            self.outcome.parity_short = Some(why);
            return Vec::new();
        }
        todo
    }

    /// Copies what the parity volumes rebuilt and what failed their checks into the outcome.
    pub(super) fn finish_parity_report(&mut self) {
        let Some(r) = self.rebuilder.as_ref() else {
            return;
        };
        self.outcome.parity_volumes = r
            .parity_numbers()
            .into_iter()
            .filter_map(|n| r.parity_path(n).map(Path::to_owned))
            .collect();
        let rebuilt: Vec<Rebuilt> = r
            .log
            .iter()
            .map(|(&volume, log)| {
                let given = r.given(volume);
                Rebuilt {
                    volume,
                    path: r
                        .data_path(volume)
                        .map(Path::to_owned)
                        .unwrap_or_else(|| self.volume_path(None, volume)),
                    given,
                    stripes: log.stripes.iter().copied().collect(),
                    stripe_bytes: r.stripe_bytes(),
                    from_volumes: log.from_data.iter().copied().collect(),
                    from_parity: log.from_parity.iter().copied().collect(),
                }
            })
            .collect();
        for (&n, stripes) in &r.parity_damage {
            let list: Vec<String> = stripes.iter().map(u64::to_string).collect();
            if let Some(path) = r.parity_path(n) {
                self.outcome.parity_problems.push(ParityProblem {
                    path: path.to_owned(),
                    what: format!(
                        "stripe(s) {} fail their checks; not used there",
                        list.join(", ")
                    ),
                });
            }
        }
        self.outcome.rebuilt = rebuilt;
    }
}
