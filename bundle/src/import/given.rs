//! What the paths given to `airlock import` are: volumes, bundle index files, or anything else
//! on the disc (`README.txt`, `SHA256SUMS`, `lost+found`), told apart by their first bytes, not
//! their names alone.
//!
//! A file is a volume when it starts with the volume magic or is named `NAME.NNN.airlock`:
//! opening it then says what is wrong with a damaged or truncated one, which stays an error. A
//! file that starts with the index magic is a bundle's index (`NAME.index.airlock`), which the
//! import can use when no volume of its bundle carries an intact copy. A file named
//! `NAME.parity.NN.airlock` or starting with the parity magic is a parity volume. Anything else
//! is named and ignored. A directory gives its volume and parity files; one without any is
//! named and ignored.

use std::{
    fs::File,
    io::Read,
    path::{Path, PathBuf},
};

use crate::{
    codec::{INDEX_MAGIC, index_check},
    error::Result,
    index::{BundleId, BundleIndex},
    inventory::INVENTORY_MAGIC,
    names::{list_parity_files, list_volume_files, parse_parity_file_name, parse_volume_file_name},
    parity::PARITY_MAGIC,
    sign::{MAX_SIGNATURE_BYTES, SIGNATURE_SUFFIX},
    volume::{VOLUME_MAGIC, VolumeReader},
};

/// A bundle index file met among the paths.
#[derive(Debug)]
pub(super) struct IndexFile {
    pub(super) path: PathBuf,
    pub(super) index: BundleIndex,
    /// BLAKE3 of its bytes, as every volume header of its bundle names it.
    pub(super) check: [u8; 32],
}

impl IndexFile {
    /// What a bundle index file given among the volumes is to the import, in words, and whether
    /// the import reads it: only when no volume of its bundle carries an intact copy and it is the
    /// very index their headers name.
    pub(super) fn role(&self, groups: &[(BundleId, Vec<VolumeReader>)]) -> (String, bool) {
        let ix = &self.index;
        let Some((_, volumes)) = groups.iter().find(|(id, _)| *id == ix.bundle_id) else {
            return (
                format!(
                    "the index of bundle {} ({}), none of whose volumes were given; nothing to \
                     import from it",
                    ix.name, ix.bundle_id
                ),
                false,
            );
        };
        if volumes.iter().any(|v| v.index().is_some()) {
            return (
                format!(
                    "the index of bundle {}; not needed, each volume carries a copy",
                    ix.name
                ),
                false,
            );
        }
        if volumes.iter().any(|v| v.header().index_check == self.check) {
            return (
                format!(
                    "the index of bundle {}, read because the volumes' own copies are damaged",
                    ix.name
                ),
                true,
            );
        }
        (
            format!(
                "an index of bundle {} other than the one its volumes name; not used",
                ix.name
            ),
            false,
        )
    }
}

/// The paths given, sorted.
#[derive(Debug, Default)]
pub(super) struct Given {
    /// Files to open as volumes.
    pub(super) volumes: Vec<PathBuf>,
    /// Files to open as parity volumes.
    pub(super) parity: Vec<PathBuf>,
    /// Readable bundle index files.
    pub(super) indexes: Vec<IndexFile>,
    /// Signature files (`NAME.index.airlock.minisig`) and their bytes, used when no volume
    /// of their bundle carries an intact signature.
    pub(super) signatures: Vec<(PathBuf, Vec<u8>)>,
    /// Paths that are no volume, and why.
    pub(super) ignored: Vec<(PathBuf, String)>,
}

impl Given {
    /// Sorts `paths`: directories by their volume files, files by their first bytes.
    pub(super) fn sort(paths: &[PathBuf]) -> Given {
        let mut given = Given::default();
        for p in paths {
            if p.is_dir() {
                // `lost+found` is often unreadable to whoever imports.
                let found = list_volume_files(p).and_then(|v| Ok((v, list_parity_files(p)?)));
                match found {
                    Ok((found, _)) if found.is_empty() => given.ignored.push((
                        p.clone(),
                        "a directory without volume files (NAME.NNN.airlock)".into(),
                    )),
                    Ok((found, parity)) => {
                        given.volumes.extend(found.into_iter().map(|f| f.path));
                        given.parity.extend(parity.into_iter().map(|f| f.path));
                    }
                    Err(e) => given
                        .ignored
                        .push((p.clone(), format!("a directory that cannot be read: {e}"))),
                }
            } else {
                given.sort_file(p);
            }
        }
        given
    }

    fn sort_file(&mut self, path: &Path) {
        let named_volume = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| parse_volume_file_name(n).is_some());
        let named_parity = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| parse_parity_file_name(n).is_some());
        // A FIFO or a device is never read (it could block for ever).
        if path.exists() && !path.is_file() {
            self.ignored
                .push((path.to_owned(), "not a regular file".into()));
            return;
        }
        let head = match read_head(path) {
            Ok(head) => head,
            // Unreadable: opening it as a volume names the error.
            Err(_) if named_parity => {
                self.parity.push(path.to_owned());
                return;
            }
            Err(_) => {
                self.volumes.push(path.to_owned());
                return;
            }
        };
        let minisig = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().ends_with(SIGNATURE_SUFFIX));
        if minisig && !named_volume && head != *VOLUME_MAGIC {
            match read_signature(path) {
                Ok(bytes) => self.signatures.push((path.to_owned(), bytes)),
                Err(why) => self.ignored.push((path.to_owned(), why)),
            }
            return;
        }
        if named_parity || head == *PARITY_MAGIC {
            self.parity.push(path.to_owned());
        } else if named_volume || head == *VOLUME_MAGIC {
            self.volumes.push(path.to_owned());
        } else if head == *INDEX_MAGIC {
            match read_index(path) {
                Ok(file) => self.indexes.push(file),
                Err(e) => self.ignored.push((
                    path.to_owned(),
                    format!("a damaged bundle index file ({e}); import does not need it"),
                )),
            }
        } else if head == *INVENTORY_MAGIC {
            self.ignored.push((
                path.to_owned(),
                "a store inventory (`airlock inventory`), not a volume".into(),
            ));
        } else {
            self.ignored
                .push((path.to_owned(), "not an airlock volume".into()));
        }
    }
}

/// The first 8 bytes of a file (fewer when it is shorter).
fn read_head(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(8);
    File::open(path)?.take(8).read_to_end(&mut head)?;
    Ok(head)
}

/// A signature file's bytes, bounded.
fn read_signature(path: &Path) -> std::result::Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|f| f.take(MAX_SIGNATURE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("a signature file that cannot be read ({e})"))?;
    if bytes.len() as u64 > MAX_SIGNATURE_BYTES {
        return Err("a .minisig file too large to be a bundle's signature".into());
    }
    Ok(bytes)
}

fn read_index(path: &Path) -> Result<IndexFile> {
    let index = BundleIndex::read_file(path)?;
    // Read once more for the check: an index file is small next to a volume.
    let bytes = std::fs::read(path).map_err(crate::error::io_error(path))?;
    Ok(IndexFile {
        path: path.to_owned(),
        index,
        check: index_check(&bytes),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn files_are_told_apart_by_their_first_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        };
        let mut volume_like = VOLUME_MAGIC.to_vec();
        volume_like.extend([0u8; 20]);
        let paths = vec![
            write("README.txt", b"Insert disc 2 next.\n"),
            write("SHA256SUMS", b""),
            write("renamed.bin", &volume_like),
            // Named as a volume, empty: still a volume, whose opening fails.
            write("x.001.airlock", b""),
            write("site.inventory", INVENTORY_MAGIC),
            write("bad.index.airlock", INDEX_MAGIC),
            write("x.parity.01.airlock", b""),
            write("renamed.par", PARITY_MAGIC),
        ];
        let lost = dir.path().join("lost+found");
        std::fs::create_dir(&lost).unwrap();
        let mut all = paths.clone();
        all.push(lost.clone());
        let given = Given::sort(&all);
        assert_eq!(given.volumes, vec![paths[2].clone(), paths[3].clone()]);
        assert!(given.indexes.is_empty());
        assert_eq!(given.parity, vec![paths[6].clone(), paths[7].clone()]);
        let ignored: Vec<(&Path, &str)> = given
            .ignored
            .iter()
            .map(|(p, why)| (p.as_path(), why.as_str()))
            .collect();
        assert_eq!(ignored[0], (paths[0].as_path(), "not an airlock volume"));
        assert_eq!(ignored[1], (paths[1].as_path(), "not an airlock volume"));
        assert!(ignored[2].1.contains("inventory"), "{ignored:?}");
        assert!(
            ignored[3].1.starts_with("a damaged bundle index"),
            "{ignored:?}"
        );
        assert_eq!(ignored[4].0, lost.as_path());
        assert_eq!(ignored.len(), 5);
    }
}
