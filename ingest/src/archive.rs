//! Files of a source, read safely: a tar archive indexed in one streaming pass (then read by
//! seeking, so several blobs can be read at once and no layer is held in memory), or a
//! directory. Archives are hostile until proven otherwise: a name that escapes the archive, a
//! link that points outside it, a duplicated entry or a compressed archive are refused with
//! the entry named; a missing file is an error naming it.

use std::{
    collections::HashMap,
    fs::File,
    io::{self, Read, Seek, SeekFrom},
    path::{Path, PathBuf},
};

use crate::error::{Context as _, Result, err, fail};

/// Links followed at most when resolving one name.
const MAX_LINK_HOPS: usize = 16;

/// Read access to the files of a source, by `/`-separated relative name.
pub trait SourceFs: Send + Sync {
    /// A whole small file (at most `limit` bytes, else an error naming it), or `None` if absent.
    fn read_small(&self, name: &str, limit: u64) -> Result<Option<Vec<u8>>>;

    /// A reader over a file and its size, or `None` if absent.
    fn open(&self, name: &str) -> Result<Option<(Box<dyn Read + Send + '_>, u64)>>;

    /// How to name the file in messages.
    fn describe(&self, name: &str) -> String;
}

#[derive(Clone, Debug)]
enum Kind {
    File {
        offset: u64,
        size: u64,
    },
    /// A symbolic or hard link, to this normalized name.
    Link(String),
    Dir,
    /// A device, FIFO or sparse file: never read.
    Other,
}

/// The entries of a tar archive on disk, by normalized name.
#[derive(Debug)]
pub struct TarIndex {
    path: PathBuf,
    entries: HashMap<String, Kind>,
}

impl TarIndex {
    /// Reads every header of the archive at `path` (one streaming pass, data skipped).
    pub fn scan(path: &Path) -> Result<TarIndex> {
        let mut file =
            File::open(path).context(|| format!("opening archive {}", path.display()))?;
        let mut magic = [0u8; 6];
        let n = file
            .read(&mut magic)
            .context(|| format!("reading archive {}", path.display()))?;
        if n >= 2 && magic[..2] == [0x1f, 0x8b] {
            fail!(
                Archive,
                "{} is gzip-compressed: decompress it first (gunzip); airlock reads archives by seeking",
                path.display()
            );
        }
        if n >= 4 && magic[..4] == [0x28, 0xb5, 0x2f, 0xfd] {
            fail!(
                Archive,
                "{} is zstd-compressed: decompress it first (unzstd)",
                path.display()
            );
        }
        file.seek(SeekFrom::Start(0))
            .context(|| format!("reading archive {}", path.display()))?;
        let mut archive = tar::Archive::new(io::BufReader::new(file));
        let mut entries = HashMap::new();
        // Headers only: the data between them is skipped by seeking, not read.
        let iter = archive
            .entries_with_seek()
            .context(|| format!("reading archive {}", path.display()))?;
        for entry in iter {
            let entry = entry.context(|| format!("reading archive {}", path.display()))?;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let ty = entry.header().entry_type();
            if ty.is_pax_global_extensions() {
                continue;
            }
            let name = normalize(&raw)
                .map_err(|why| err!(Archive, "archive entry {raw:?}: {why}"))?
                .unwrap_or_default();
            let kind = if ty.is_dir() {
                Kind::Dir
            } else if ty.is_symlink() || ty.is_hard_link() {
                let target = entry
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .ok_or_else(|| err!(Archive, "archive entry {raw:?}: link without a target"))?;
                let resolved = if ty.is_symlink() {
                    resolve_symlink(&name, &target)
                } else {
                    normalize(&target).and_then(|t| t.ok_or("link to the archive's root"))
                };
                Kind::Link(resolved.map_err(|why| {
                    err!(
                        Archive,
                        "archive entry {raw:?}: link target {target:?} {why}"
                    )
                })?)
            } else if ty.is_file() || ty == tar::EntryType::Continuous {
                Kind::File {
                    offset: entry.raw_file_position(),
                    size: entry.size(),
                }
            } else {
                Kind::Other
            };
            if name.is_empty() {
                if matches!(kind, Kind::Dir) {
                    continue;
                }
                fail!(Archive, "archive entry {raw:?}: a file without a name");
            }
            match entries.get(&name) {
                Some(Kind::Dir) if matches!(kind, Kind::Dir) => {}
                Some(_) => fail!(Archive, "archive entry {raw:?}: duplicated entry {name:?}"),
                None => {
                    entries.insert(name, kind);
                }
            }
        }
        Ok(TarIndex {
            path: path.to_owned(),
            entries,
        })
    }

    /// The data of a regular file, following links inside the archive.
    fn locate(&self, name: &str) -> Result<Option<(u64, u64)>> {
        let mut current = normalize(name)
            .map_err(|why| err!(Archive, "{name:?}: {why}"))?
            .unwrap_or_default();
        for _ in 0..MAX_LINK_HOPS {
            match self.entries.get(&current) {
                None => return Ok(None),
                Some(Kind::File { offset, size }) => return Ok(Some((*offset, *size))),
                Some(Kind::Link(target)) => current = target.clone(),
                Some(Kind::Dir) => fail!(Archive, "archive entry {current:?} is a directory"),
                Some(Kind::Other) => {
                    fail!(Archive, "archive entry {current:?} is not a regular file")
                }
            }
        }
        fail!(
            Archive,
            "archive entry {name:?}: more than {MAX_LINK_HOPS} links"
        )
    }
}

impl SourceFs for TarIndex {
    fn read_small(&self, name: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        let Some((offset, size)) = self.locate(name)? else {
            return Ok(None);
        };
        if size > limit {
            fail!(
                Archive,
                "{}: {size} bytes, more than the {limit} accepted",
                self.describe(name)
            );
        }
        let mut file = File::open(&self.path)
            .context(|| format!("opening archive {}", self.path.display()))?;
        file.seek(SeekFrom::Start(offset))
            .context(|| format!("reading {}", self.describe(name)))?;
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        file.take(size)
            .read_to_end(&mut bytes)
            .context(|| format!("reading {}", self.describe(name)))?;
        if bytes.len() as u64 != size {
            fail!(
                Archive,
                "{}: the archive ends inside it",
                self.describe(name)
            );
        }
        Ok(Some(bytes))
    }

    fn open(&self, name: &str) -> Result<Option<(Box<dyn Read + Send + '_>, u64)>> {
        let Some((offset, size)) = self.locate(name)? else {
            return Ok(None);
        };
        let mut file = File::open(&self.path)
            .context(|| format!("opening archive {}", self.path.display()))?;
        file.seek(SeekFrom::Start(offset))
            .context(|| format!("reading {}", self.describe(name)))?;
        Ok(Some((Box::new(io::BufReader::new(file.take(size))), size)))
    }

    fn describe(&self, name: &str) -> String {
        format!("archive entry {name:?} of {}", self.path.display())
    }
}

/// A directory, whose files must stay inside it (a symlink out of it is refused).
#[derive(Debug)]
pub struct DirFs {
    root: PathBuf,
}

impl DirFs {
    /// The directory at `root`.
    pub fn new(root: &Path) -> Result<DirFs> {
        let root = root
            .canonicalize()
            .context(|| format!("opening directory {}", root.display()))?;
        if !root.is_dir() {
            fail!(Archive, "{} is not a directory", root.display());
        }
        Ok(DirFs { root })
    }

    fn path(&self, name: &str) -> Result<Option<PathBuf>> {
        let rel = normalize(name)
            .map_err(|why| err!(Archive, "{name:?}: {why}"))?
            .unwrap_or_default();
        let path = self.root.join(&rel);
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).context(|| format!("reading {}", path.display())),
            Ok(_) => {}
        }
        let real = path
            .canonicalize()
            .context(|| format!("resolving {}", path.display()))?;
        if !real.starts_with(&self.root) {
            fail!(
                Archive,
                "{} leads outside {} (to {})",
                path.display(),
                self.root.display(),
                real.display()
            );
        }
        if !real.is_file() {
            fail!(Archive, "{} is not a regular file", path.display());
        }
        Ok(Some(real))
    }
}

impl SourceFs for DirFs {
    fn read_small(&self, name: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        let Some(path) = self.path(name)? else {
            return Ok(None);
        };
        let file = File::open(&path).context(|| format!("opening {}", path.display()))?;
        let mut bytes = Vec::new();
        file.take(limit + 1)
            .read_to_end(&mut bytes)
            .context(|| format!("reading {}", path.display()))?;
        if bytes.len() as u64 > limit {
            fail!(
                Archive,
                "{}: more than the {limit} bytes accepted",
                self.describe(name)
            );
        }
        Ok(Some(bytes))
    }

    fn open(&self, name: &str) -> Result<Option<(Box<dyn Read + Send + '_>, u64)>> {
        let Some(path) = self.path(name)? else {
            return Ok(None);
        };
        let file = File::open(&path).context(|| format!("opening {}", path.display()))?;
        let size = file
            .metadata()
            .context(|| format!("reading {}", path.display()))?
            .len();
        Ok(Some((Box::new(io::BufReader::new(file)), size)))
    }

    fn describe(&self, name: &str) -> String {
        self.root.join(name).display().to_string()
    }
}

/// An entry name made relative and canonical (`./a//b` is `a/b`); `None` for the root.
/// Absolute names and `..` are refused: nothing may point outside the archive.
fn normalize(raw: &str) -> Result<Option<String>, &'static str> {
    if raw.starts_with('/') {
        return Err("absolute path");
    }
    if raw.contains('\0') || raw.contains('\\') {
        return Err("NUL or backslash in the name");
    }
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("path escapes the archive (..)"),
            p => parts.push(p),
        }
    }
    Ok((!parts.is_empty()).then(|| parts.join("/")))
}

/// A symbolic link's target resolved against the link's directory; refused if it leaves the
/// archive.
fn resolve_symlink(link: &str, target: &str) -> Result<String, &'static str> {
    if target.starts_with('/') {
        return Err("is absolute");
    }
    let mut parts: Vec<&str> = link.split('/').collect();
    parts.pop();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err("escapes the archive");
                }
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err("points at the archive's root");
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalized_and_escapes_refused() {
        assert_eq!(normalize("./a//b/."), Ok(Some("a/b".to_owned())));
        assert_eq!(normalize("./"), Ok(None));
        assert!(normalize("/etc/passwd").is_err());
        assert!(normalize("a/../../b").is_err());
        assert!(normalize("a/../b").is_err());
    }

    #[test]
    fn symlinks_resolve_inside_the_archive_only() {
        assert_eq!(
            resolve_symlink("abc/layer.tar", "../def.tar"),
            Ok("def.tar".to_owned())
        );
        assert_eq!(resolve_symlink("a/b", "c"), Ok("a/c".to_owned()));
        assert!(resolve_symlink("abc/layer.tar", "../../etc/passwd").is_err());
        assert!(resolve_symlink("abc/layer.tar", "/etc/passwd").is_err());
    }
}
