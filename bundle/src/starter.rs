//! The files that start a site from volume 1 (issue 17): the airlock program, a short
//! `README.txt` with the import and serve commands, and `SHA256SUMS` of the files of volume 1's
//! disc. They lie next to `NAME.001.airlock` in the export directory and go on the same disc;
//! the room they take (each file rounded up to whole ISO 9660 sectors, and a margin for their
//! directory records) is taken from volume 1's budget, so the disc still fits its medium.
//!
//! Before shipping a program, [`Program::inspect`] reads its ELF header and the glibc symbol
//! versions it needs: a site on RHEL/CentOS 7, Kylin or openEuler has glibc 2.17, so a program
//! built against a newer glibc would not start there (see `tools/release/portable.sh`).

use std::{
    fs::File,
    io::{Read, Write},
    path::{Path, PathBuf},
};

use object::{
    Endianness, ReadCache,
    elf::{EM_AARCH64, EM_X86_64, FileHeader64},
    read::elf::FileHeader,
};
use sha2::{Digest as _, Sha256};

use crate::{
    error::{Error, Result, io_error},
    index::BundleIndex,
    names::volume_file_name,
    progress::Progress,
    sign::{KeyId, SigningKey},
    wire::sync_parent,
};

/// File name of the program on volume 1's disc.
pub const PROGRAM_FILE: &str = "airlock";
/// File name of the instructions on volume 1's disc.
pub const README_FILE: &str = "README.txt";
/// File name of the checksums on volume 1's disc (`sha256sum -c SHA256SUMS`).
pub const SUMS_FILE: &str = "SHA256SUMS";
/// File name of the checksums' minisign signature, when the bundle is signed.
pub const SUMS_SIGNATURE_FILE: &str = "SHA256SUMS.minisig";
/// The glibc of the oldest site airlock is built for (RHEL/CentOS 7).
pub const OLDEST_GLIBC: (u32, u32) = (2, 17);

/// Bytes of an ISO 9660 sector: every file on a disc takes whole sectors.
const SECTOR: u64 = 2048;
/// Most bytes of `README.txt` (its list of references is cut to fit).
const README_MAX: usize = 8 * 1024;
/// Bytes kept for `SHA256SUMS` (three lines) and for its signature.
const SUMS_MAX: u64 = 4 * 1024;
/// Bytes kept for the directory records of the three files (ISO 9660, Rock Ridge, Joliet).
const DIRECTORY_MARGIN: u64 = 32 * 1024;

/// The processor a program is built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// x86_64 (amd64).
    X86_64,
    /// aarch64 (arm64, e.g. Kunpeng).
    Aarch64,
}

impl Arch {
    /// The name `uname -m` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }
}

/// An airlock program to put on volume 1, as read from its ELF headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    /// Where it is read from.
    pub path: PathBuf,
    /// Its size in bytes.
    pub len: u64,
    /// The processor it runs on.
    pub arch: Arch,
    /// The newest glibc symbol version it needs (`None`: it needs no glibc version, e.g. static).
    pub glibc: Option<(u32, u32)>,
}

impl Program {
    /// Reads the ELF header of `path`: a 64-bit little-endian Linux program for x86_64 or
    /// aarch64, and the glibc versions it needs. Only the headers and version tables are read.
    pub fn inspect(path: &Path) -> Result<Program> {
        let file = File::open(path).map_err(io_error(path))?;
        let len = file.metadata().map_err(io_error(path))?.len();
        let not_a_program = |why: String| Error::NotAProgram {
            path: path.to_owned(),
            why,
        };
        let data = ReadCache::new(file);
        let header = FileHeader64::<Endianness>::parse(&data)
            .map_err(|e| not_a_program(format!("not a 64-bit ELF program ({e})")))?;
        let endian = header
            .endian()
            .map_err(|e| not_a_program(format!("ELF header: {e}")))?;
        if endian != Endianness::Little {
            return Err(not_a_program("a big-endian program".into()));
        }
        let arch = match header.e_machine(endian) {
            EM_X86_64 => Arch::X86_64,
            EM_AARCH64 => Arch::Aarch64,
            other => {
                return Err(not_a_program(format!(
                    "built for ELF machine {other}, not x86_64 or aarch64"
                )));
            }
        };
        let sections = header
            .sections(endian, &data)
            .map_err(|e| not_a_program(format!("ELF section table: {e}")))?;
        let mut glibc = None;
        let needs = sections
            .gnu_verneed(endian, &data)
            .map_err(|e| not_a_program(format!("ELF version needs: {e}")))?;
        if let Some((mut needs, link)) = needs {
            let strings = sections
                .strings(endian, &data, link)
                .map_err(|e| not_a_program(format!("ELF version strings: {e}")))?;
            let bad = |e: object::read::Error| not_a_program(format!("ELF version needs: {e}"));
            while let Some((_, mut aux)) = needs.next().map_err(bad)? {
                while let Some(a) = aux.next().map_err(bad)? {
                    let name = a.name(endian, strings).map_err(bad)?;
                    if let Some(v) = glibc_version(name) {
                        glibc = glibc.max(Some(v));
                    }
                }
            }
        }
        Ok(Program {
            path: path.to_owned(),
            len,
            arch,
            glibc,
        })
    }

    /// Whether it starts on the oldest sites (glibc 2.17), as far as glibc goes.
    pub fn runs_on_oldest_glibc(&self) -> bool {
        self.glibc.is_none_or(|v| v <= OLDEST_GLIBC)
    }

    /// What it needs, in words: "glibc 2.17 or later", or "no particular glibc".
    pub fn needs(&self) -> String {
        match self.glibc {
            Some((major, minor)) => format!("glibc {major}.{minor} or later"),
            None => "no particular glibc (static)".into(),
        }
    }

    /// Bytes volume 1 gives up for the starter files on its disc.
    pub fn reserve(&self) -> u64 {
        sectors(self.len) + sectors(README_MAX as u64) + 2 * sectors(SUMS_MAX) + DIRECTORY_MARGIN
    }
}

/// `GLIBC_2.34` -> (2, 34); anything else (GLIBC_PRIVATE, GCC_3.0) -> None.
fn glibc_version(name: &[u8]) -> Option<(u32, u32)> {
    let rest = std::str::from_utf8(name).ok()?.strip_prefix("GLIBC_")?;
    let mut parts = rest.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map_or(Some(0), |m| m.parse().ok())?;
    Some((major, minor))
}

/// `len` rounded up to whole sectors.
fn sectors(len: u64) -> u64 {
    len.div_ceil(SECTOR) * SECTOR
}

/// Copies the program and writes `README.txt` into `dir` (before volume 1 is finished).
pub(crate) fn write_program_and_readme(
    dir: &Path,
    program: &Program,
    index: &BundleIndex,
    signer: Option<&SigningKey>,
) -> Result<Vec<(PathBuf, [u8; 32])>> {
    let target = dir.join(PROGRAM_FILE);
    let sum = publish(&target, |out| {
        let mut input = File::open(&program.path).map_err(io_error(&program.path))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut copied = 0u64;
        loop {
            let n = input.read(&mut buf).map_err(io_error(&program.path))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(io_error(&target))?;
            copied += n as u64;
        }
        if copied != program.len {
            return Err(Error::NotAProgram {
                path: program.path.clone(),
                why: format!(
                    "changed while it was copied ({} bytes, then {copied})",
                    program.len
                ),
            });
        }
        Ok(hasher.finalize().into())
    })?;
    set_executable(&target)?;
    let text = readme(program, index, signer.map(SigningKey::key_id));
    let readme_path = dir.join(README_FILE);
    let readme_sum = publish(&readme_path, |out| {
        out.write_all(text.as_bytes())
            .map_err(io_error(&readme_path))?;
        Ok(Sha256::digest(text.as_bytes()).into())
    })?;
    Ok(vec![(target, sum), (readme_path, readme_sum)])
}

/// Writes `SHA256SUMS` over the starter files and volume 1 (read back from disk), and its
/// minisign signature `SHA256SUMS.minisig` when the bundle is signed, so that the program can
/// be checked with the vendor's public key before it is run. Returns the files written.
pub(crate) fn write_sums(
    dir: &Path,
    name: &str,
    mut sums: Vec<(PathBuf, [u8; 32])>,
    signer: Option<&SigningKey>,
    progress: &dyn Progress,
) -> Result<Vec<PathBuf>> {
    let volume = dir.join(volume_file_name(name, 1));
    let mut input = File::open(&volume).map_err(io_error(&volume))?;
    let len = input.metadata().map_err(io_error(&volume))?.len();
    progress.begin(SUMS_FILE, len);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = input.read(&mut buf).map_err(io_error(&volume))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        progress.advance(n as u64);
    }
    sums.push((volume, hasher.finalize().into()));
    let mut text = String::new();
    for (path, sum) in &sums {
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        text.push_str(&format!("{}  {file}\n", hex::encode(sum)));
    }
    let path = dir.join(SUMS_FILE);
    publish(&path, |out| {
        out.write_all(text.as_bytes()).map_err(io_error(&path))?;
        Ok(())
    })?;
    let mut written = vec![path];
    if let Some(key) = signer {
        let signature = key.sign(
            text.as_bytes(),
            &format!("file:{SUMS_FILE}\tairlock bundle {name}, volume 1's disc"),
        )?;
        let path = dir.join(SUMS_SIGNATURE_FILE);
        publish(&path, |out| {
            out.write_all(&signature).map_err(io_error(&path))?;
            Ok(())
        })?;
        written.push(path);
    }
    Ok(written)
}

/// Writes `path` through `PATH.partial`: filled by `fill`, synced, renamed, parent synced.
fn publish<T>(path: &Path, fill: impl FnOnce(&mut File) -> Result<T>) -> Result<T> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let mut file = File::create(&partial).map_err(io_error(&partial))?;
    let out = fill(&mut file).and_then(|v| {
        file.sync_all().map_err(io_error(&partial))?;
        Ok(v)
    });
    drop(file);
    match out {
        Ok(v) => {
            std::fs::rename(&partial, path).map_err(io_error(path))?;
            sync_parent(path)?;
            Ok(v)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

fn set_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(io_error(path))
}

/// The text of `README.txt`: what the disc is, how to check it, how to start the site.
fn readme(program: &Program, index: &BundleIndex, signed_by: Option<KeyId>) -> String {
    let count = index.volume_count;
    let name = &index.name;
    let (trust, allow) = match signed_by {
        Some(key) => (
            format!(
                "The bundle and SHA256SUMS are signed with minisign key {key}. Get the vendor's\n\
                 public key apart from these discs, check that its id is {key}, and list it in\n\
                 /etc/airlock/airlock.toml before importing:\n\
                 \x20     [trust]\n\
                 \x20     keys = [\"/etc/airlock/vendor.pub\"]\n\
                 With minisign at hand, check the files first: minisign -Vm SHA256SUMS -p vendor.pub\n\
                 \n"
            ),
            "",
        ),
        None => (
            "The bundle is NOT signed: its origin cannot be checked, so the import needs\n\
             --allow-unsigned.\n\
             \n"
            .to_owned(),
            " --allow-unsigned",
        ),
    };
    let mut text = format!(
        "airlock bundle {name} ({id}), volume 1 of {count}, written by {tool}.\n\
         \n\
         This disc also carries the airlock program for {arch} Linux (it needs {needs}).\n\
         \n\
         {trust}\
         1. Check the files of this disc:\n\
         \x20     cd /media/cdrom && sha256sum -c SHA256SUMS\n\
         2. Install the program (a disc mount may hide its executable bit):\n\
         \x20     install -m 0755 /media/cdrom/airlock /usr/local/bin/airlock\n\
         3. Import the bundle into the site's store; airlock asks for each next disc:\n\
         \x20     airlock --config /etc/airlock/airlock.toml --data /var/lib/airlock import{allow} /media/cdrom/*\n\
         \x20  It can be stopped and run again: what was imported stays.\n\
         4. Serve the registry (see `airlock serve --help` for TLS and accounts):\n\
         \x20     airlock --data /var/lib/airlock serve --listen 0.0.0.0:5000\n\
         \n\
         What this bundle carries:\n",
        id = index.bundle_id,
        tool = index.tool,
        arch = program.arch.as_str(),
        needs = program.needs(),
    );
    let mut listed = 0;
    for r in &index.refs {
        let line = match &r.tag {
            Some(tag) => format!("  {}:{tag}  {}\n", r.repo, r.digest),
            None => format!("  {}@{}\n", r.repo, r.digest),
        };
        // Leave room for the line saying how many more there are.
        if text.len() + line.len() + 64 > README_MAX {
            break;
        }
        text.push_str(&line);
        listed += 1;
    }
    if listed < index.refs.len() {
        text.push_str(&format!(
            "  ... and {} more (`airlock import --dry-run /media/cdrom/*` lists all)\n",
            index.refs.len() - listed
        ));
    }
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn glibc_versions_are_read_from_their_names() {
        assert_eq!(glibc_version(b"GLIBC_2.17"), Some((2, 17)));
        assert_eq!(glibc_version(b"GLIBC_2.2.5"), Some((2, 2)));
        assert_eq!(glibc_version(b"GLIBC_2.34"), Some((2, 34)));
        assert_eq!(glibc_version(b"GLIBC_PRIVATE"), None);
        assert_eq!(glibc_version(b"GCC_3.0"), None);
        assert!((2, 9) < (2, 17) && (2, 17) < (2, 34));
    }

    #[test]
    fn the_running_test_is_an_x86_64_or_aarch64_program() {
        let me = std::env::current_exe().unwrap();
        let p = Program::inspect(&me).unwrap();
        assert_eq!(p.len, std::fs::metadata(&me).unwrap().len());
        let expected = if cfg!(target_arch = "x86_64") {
            Arch::X86_64
        } else {
            Arch::Aarch64
        };
        assert_eq!(p.arch, expected);
        // Built with the host's glibc, which is at least 2.17.
        assert!(p.glibc.is_some_and(|v| v >= (2, 17)), "{p:?}");
        assert!(p.reserve() >= p.len + 2 * SECTOR);
        assert!(p.reserve().is_multiple_of(SECTOR));
    }

    #[test]
    fn files_that_are_not_programs_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, b"not a program at all, just words\n").unwrap();
        let e = Program::inspect(&text).unwrap_err().to_string();
        assert!(
            e.contains("notes.txt") && e.contains("not a 64-bit ELF"),
            "{e}"
        );
        // An ELF header cut short.
        let cut = dir.path().join("cut");
        let mut head = Vec::new();
        File::open(std::env::current_exe().unwrap())
            .unwrap()
            .take(40)
            .read_to_end(&mut head)
            .unwrap();
        std::fs::write(&cut, &head).unwrap();
        assert!(Program::inspect(&cut).is_err());
        let e = Program::inspect(&dir.path().join("missing")).unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
    }
}
