//! Seeded synthetic inputs: rootfs-like tar streams and edited second versions of them.
//!
//! The same seed always gives the same bytes (ChaCha8), so figures measured on them are
//! comparable between runs and machines.

use rand::{Rng, SeedableRng, seq::SliceRandom};
use rand_chacha::ChaCha8Rng;

/// Median regular-file size is about e^7.5 B (1.8 KiB), as in a Debian rootfs.
const SIZE_LOG_MEDIAN: f64 = 7.5;
/// Spread of file sizes on a log scale; with the median, a mean of about 13 KiB.
const SIZE_LOG_SIGMA: f64 = 2.0;
/// Share of regular files that are empty.
const EMPTY_SHARE: f64 = 0.04;
/// Share of entries that are directories, symlinks and hard links.
const DIR_SHARE: f64 = 0.05;
const SYMLINK_SHARE: f64 = 0.04;
const HARDLINK_SHARE: f64 = 0.01;
/// Share of paths long enough to need a GNU long-name record.
const LONG_PATH_SHARE: f64 = 0.03;

/// What a regular file's bytes look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Content {
    /// Words and lines from a shared vocabulary: config files, scripts, docs.
    Text,
    /// Machine-code-like: recurring short patterns, zero runs, tables of small numbers.
    Binary,
    /// Incompressible: already-compressed archives, images, random data.
    Compressed,
}

/// What an entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file with its bytes.
    File {
        /// How the bytes were generated.
        content: Content,
        /// The file's bytes.
        data: Vec<u8>,
    },
    /// A symbolic link to a path.
    Symlink(String),
    /// A hard link to an earlier entry's path.
    HardLink(String),
}

/// One tar entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the archive, without a leading `/`.
    pub path: String,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
    /// Permission bits.
    pub mode: u32,
    /// What the entry is.
    pub kind: Kind,
}

/// How much a second version differs from the first.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Edit {
    /// Share of non-empty regular files that get a few bytes changed in the middle.
    pub edited_files: f64,
    /// Share of entries whose mtime changes (a header-only change).
    pub touched_mtimes: f64,
}

impl Edit {
    /// A rebuilt image: 2% of files edited, 10% of mtimes changed.
    pub const TYPICAL: Edit = Edit {
        edited_files: 0.02,
        touched_mtimes: 0.10,
    };
}

/// A seeded, rootfs-like tree of entries, in the order they go into the tar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rootfs {
    entries: Vec<Entry>,
}

impl Rootfs {
    /// About `n_entries` entries (directories and links included), regular files log-normally
    /// sized (median 1.8 KiB) up to `max_file_bytes`, content 45% text, 35% binary, 20%
    /// compressed.
    pub fn generate(seed: u64, n_entries: usize, max_file_bytes: usize) -> Rootfs {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let vocabulary = vocabulary(&mut rng);
        let patterns: Vec<[u8; 16]> = (0..4096).map(|_| rng.r#gen()).collect();
        let n_dirs = ((n_entries as f64 * DIR_SHARE) as usize).max(1);
        let dirs: Vec<String> = (0..n_dirs).map(|i| dir_path(&mut rng, i)).collect();
        let mut entries: Vec<Entry> = dirs
            .iter()
            .map(|d| Entry {
                path: format!("{d}/"),
                mtime: base_mtime(&mut rng),
                mode: 0o755,
                kind: Kind::Dir,
            })
            .collect();
        let mut files: Vec<String> = Vec::new();
        for i in entries.len()..n_entries {
            let dir = &dirs[rng.gen_range(0..dirs.len())];
            let path = if rng.gen_bool(LONG_PATH_SHARE) {
                format!("{dir}/{}-{i}.so", "very-long-component-name".repeat(5))
            } else {
                format!(
                    "{dir}/f{i:05}.{}",
                    ["conf", "so", "py", "txt", "bin", "gz"][i % 6]
                )
            };
            let roll: f64 = rng.r#gen();
            let kind = if roll < SYMLINK_SHARE {
                Kind::Symlink(format!("../lib/target{i}"))
            } else if roll < SYMLINK_SHARE + HARDLINK_SHARE && !files.is_empty() {
                Kind::HardLink(files[rng.gen_range(0..files.len())].clone())
            } else {
                let content = match rng.gen_range(0..100) {
                    0..=44 => Content::Text,
                    45..=79 => Content::Binary,
                    _ => Content::Compressed,
                };
                let size = file_size(&mut rng, max_file_bytes);
                let data = match content {
                    Content::Text => text(&mut rng, &vocabulary, size),
                    Content::Binary => binary(&mut rng, &patterns, size),
                    Content::Compressed => random(&mut rng, size),
                };
                files.push(path.clone());
                Kind::File { content, data }
            };
            entries.push(Entry {
                path,
                mtime: base_mtime(&mut rng),
                mode: 0o644,
                kind,
            });
        }
        // Directories first, then in path order, as tar does walking a tree; a hard link must
        // follow its target, so links go last.
        entries.sort_by(|a, b| {
            let rank = |e: &Entry| matches!(e.kind, Kind::HardLink(_));
            (rank(a), &a.path).cmp(&(rank(b), &b.path))
        });
        Rootfs { entries }
    }

    /// The entries in tar order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Total bytes of regular-file data.
    pub fn data_bytes(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| match &e.kind {
                Kind::File { data, .. } => data.len() as u64,
                _ => 0,
            })
            .sum()
    }

    /// The next version: `edit.edited_files` of the non-empty files get 1 to 8 bytes
    /// overwritten near their middle, `edit.touched_mtimes` of all entries a later mtime.
    pub fn edit(&self, seed: u64, edit: Edit) -> Rootfs {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut entries = self.entries.clone();
        let mut files: Vec<usize> = (0..entries.len())
            .filter(|&i| matches!(&entries[i].kind, Kind::File { data, .. } if !data.is_empty()))
            .collect();
        files.shuffle(&mut rng);
        let n_edited = (files.len() as f64 * edit.edited_files).round() as usize;
        for &i in &files[..n_edited] {
            if let Kind::File { data, .. } = &mut entries[i].kind {
                let n = rng.gen_range(1..=8).min(data.len());
                let at = (data.len() - n) / 2;
                for b in &mut data[at..at + n] {
                    *b = b.wrapping_add(rng.gen_range(1..=255));
                }
            }
        }
        let mut all: Vec<usize> = (0..entries.len()).collect();
        all.shuffle(&mut rng);
        let n_touched = (all.len() as f64 * edit.touched_mtimes).round() as usize;
        for &i in &all[..n_touched] {
            entries[i].mtime += rng.gen_range(3_600..86_400 * 30);
        }
        Rootfs { entries }
    }

    /// The tree as a GNU tar stream (long names as 'L' records), ended by two zero blocks.
    pub fn to_tar(&self) -> Vec<u8> {
        let mut tar = Vec::with_capacity(self.tar_size_hint());
        // Writing to a Vec cannot fail, and every path here is valid relative UTF-8.
        self.write_tar(&mut tar)
            .expect("writing a generated tree to a Vec");
        tar
    }

    /// [`Rootfs::to_tar`] written to `out` as it is made (a large layer never sits whole in
    /// memory).
    pub fn write_tar(&self, out: impl std::io::Write) -> std::io::Result<()> {
        let mut builder = tar::Builder::new(out);
        for e in &self.entries {
            let mut h = tar::Header::new_gnu();
            h.set_mtime(e.mtime);
            h.set_mode(e.mode);
            h.set_uid(0);
            h.set_gid(0);
            match &e.kind {
                Kind::Dir => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    builder.append_data(&mut h, &e.path, std::io::empty())
                }
                Kind::File { data, .. } => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(data.len() as u64);
                    builder.append_data(&mut h, &e.path, &data[..])
                }
                Kind::Symlink(target) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    builder.append_link(&mut h, &e.path, target)
                }
                Kind::HardLink(target) => {
                    h.set_entry_type(tar::EntryType::Link);
                    h.set_size(0);
                    builder.append_link(&mut h, &e.path, target)
                }
            }?;
        }
        std::io::Write::flush(&mut builder.into_inner()?)
    }

    fn tar_size_hint(&self) -> usize {
        self.data_bytes() as usize + self.entries.len() * 1024 + 1024
    }
}

/// [`Rootfs::generate`] written as a tar stream.
pub fn rootfs_tar(seed: u64, n_entries: usize, max_file_bytes: usize) -> Vec<u8> {
    Rootfs::generate(seed, n_entries, max_file_bytes).to_tar()
}

/// [`Rootfs::edit`]: the second version of `v1`.
pub fn edit_rootfs(v1: &Rootfs, seed: u64, edit: Edit) -> Rootfs {
    v1.edit(seed, edit)
}

/// Incompressible bytes.
pub fn random(rng: &mut impl Rng, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    rng.fill(&mut v[..]);
    v
}

/// Text-like bytes: lines of words drawn from `vocabulary`, skewed toward its first words.
pub fn text(rng: &mut impl Rng, vocabulary: &[String], len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 16);
    while v.len() < len {
        // Squaring skews the pick toward common words, like Zipf's law in real text.
        let r: f64 = rng.r#gen();
        let word = &vocabulary[((r * r) * vocabulary.len() as f64) as usize];
        v.extend_from_slice(word.as_bytes());
        v.push(if rng.gen_ratio(1, 9) { b'\n' } else { b' ' });
    }
    v.truncate(len);
    v
}

/// Machine-code-like bytes: 16-byte runs picked from `patterns`, some random runs, some zeros.
pub fn binary(rng: &mut impl Rng, patterns: &[[u8; 16]], len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 64);
    while v.len() < len {
        match rng.gen_range(0..10) {
            0..=5 => v.extend_from_slice(&patterns[rng.gen_range(0..patterns.len())]),
            6..=8 => v.extend((0..16).map(|_| rng.r#gen::<u8>())),
            _ => v.resize(v.len() + rng.gen_range(8..64), 0),
        }
    }
    v.truncate(len);
    v
}

/// A vocabulary of 2000 lowercase words of 2 to 11 letters.
pub fn vocabulary(rng: &mut impl Rng) -> Vec<String> {
    (0..2000)
        .map(|_| {
            let n = rng.gen_range(2..12);
            (0..n).map(|_| rng.gen_range(b'a'..=b'z') as char).collect()
        })
        .collect()
}

fn file_size(rng: &mut impl Rng, max: usize) -> usize {
    if rng.gen_bool(EMPTY_SHARE) {
        return 0;
    }
    // Box-Muller: one standard normal sample.
    let (u1, u2): (f64, f64) = (rng.gen_range(f64::EPSILON..1.0), rng.r#gen());
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    ((SIZE_LOG_MEDIAN + SIZE_LOG_SIGMA * z).exp() as usize).min(max)
}

fn dir_path(rng: &mut impl Rng, i: usize) -> String {
    let top = [
        "usr/lib",
        "usr/share",
        "usr/bin",
        "etc",
        "var/lib",
        "opt/app",
    ];
    format!(
        "{}/pkg{}/d{i}",
        top[rng.gen_range(0..top.len())],
        rng.gen_range(0..50)
    )
}

fn base_mtime(rng: &mut impl Rng) -> u64 {
    1_700_000_000 + rng.gen_range(0..10_000_000)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes() {
        assert_eq!(rootfs_tar(3, 200, 100_000), rootfs_tar(3, 200, 100_000));
        assert_ne!(rootfs_tar(3, 200, 100_000), rootfs_tar(4, 200, 100_000));
    }

    #[test]
    fn tar_lists_every_entry_with_its_data() {
        let fs = Rootfs::generate(5, 300, 200_000);
        let tar = fs.to_tar();
        let mut archive = tar::Archive::new(&tar[..]);
        let mut seen = 0;
        for (entry, want) in archive.entries().unwrap().zip(fs.entries()) {
            let mut entry = entry.unwrap();
            assert_eq!(entry.path().unwrap().to_str().unwrap(), want.path);
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
            if let Kind::File { data: d, .. } = &want.kind {
                assert_eq!(&data, d);
            }
            seen += 1;
        }
        assert_eq!(seen, fs.entries().len());
    }

    #[test]
    fn edit_changes_what_it_says() {
        let v1 = Rootfs::generate(9, 1000, 100_000);
        let v2 = v1.edit(10, Edit::TYPICAL);
        let pairs = v1.entries().iter().zip(v2.entries());
        let touched = pairs.clone().filter(|(a, b)| a.mtime != b.mtime).count();
        let edited = pairs.filter(|(a, b)| a.kind != b.kind).count();
        assert_eq!(touched, 100);
        let files = v1
            .entries()
            .iter()
            .filter(|e| matches!(&e.kind, Kind::File { data, .. } if !data.is_empty()))
            .count();
        assert_eq!(edited, (files as f64 * 0.02).round() as usize);
    }
}
