//! File names of a bundle: `NAME.NNN.airlock` volumes (NNN from 001, wider past 999),
//! `NAME.parity.NN.airlock` parity volumes (NN from 01 to 99) and `NAME.index.airlock`, the
//! standalone index.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result, io_error};

/// Suffix of every bundle file.
pub const BUNDLE_SUFFIX: &str = ".airlock";

/// A volume file found in a directory.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct VolumeFile {
    /// Bundle name (the `NAME` part).
    pub name: String,
    /// Volume number from the file name.
    pub number: u32,
    /// The file.
    pub path: PathBuf,
}

/// Refuses names that are not a plain file name prefix.
pub fn check_bundle_name(name: &str) -> Result<()> {
    let why = if name.is_empty() {
        Some("empty")
    } else if name.contains(['/', '\\', '\0']) {
        Some("contains a path separator or NUL")
    } else if name.starts_with('.') {
        Some("starts with a dot")
    } else if name.len() > 200 {
        Some("longer than 200 bytes")
    } else {
        None
    };
    match why {
        Some(why) => Err(Error::InvalidName {
            name: name.to_owned(),
            why,
        }),
        None => Ok(()),
    }
}

/// `NAME.NNN.airlock`: the file name of volume `number` (3 digits at least).
pub fn volume_file_name(name: &str, number: u32) -> String {
    format!("{name}.{number:03}{BUNDLE_SUFFIX}")
}

/// `NAME.parity.NN.airlock`: the file name of parity volume `number` (2 digits, 1..=99, so
/// it never reads as a data volume's name).
pub fn parity_file_name(name: &str, number: u32) -> String {
    format!("{name}.parity.{number:02}{BUNDLE_SUFFIX}")
}

/// Splits `NAME.parity.NN.airlock` into its name and number; `None` for anything else.
pub fn parse_parity_file_name(file_name: &str) -> Option<(String, u32)> {
    let stem = file_name.strip_suffix(BUNDLE_SUFFIX)?;
    let (rest, digits) = stem.rsplit_once('.')?;
    let name = rest.strip_suffix(".parity")?;
    if name.is_empty() || digits.len() != 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let number: u32 = digits.parse().ok()?;
    (number > 0).then(|| (name.to_owned(), number))
}

/// The parity volume files in `dir` (not recursive), sorted by name then number.
pub fn list_parity_files(dir: &Path) -> Result<Vec<VolumeFile>> {
    list_named(dir, parse_parity_file_name)
}

/// `NAME.index.airlock`: the file name of a bundle's standalone index.
pub fn index_file_name(name: &str) -> String {
    format!("{name}.index{BUNDLE_SUFFIX}")
}

/// `NAME.index.airlock.minisig`: the file name of the signature of a bundle's index.
pub fn signature_file_name(name: &str) -> String {
    format!("{}{}", index_file_name(name), crate::sign::SIGNATURE_SUFFIX)
}

/// Splits `NAME.NNN.airlock` into its name and number; `None` for anything else (the index
/// file, partial files, numbers with fewer than 3 digits or 0).
pub fn parse_volume_file_name(file_name: &str) -> Option<(String, u32)> {
    let stem = file_name.strip_suffix(BUNDLE_SUFFIX)?;
    let (name, digits) = stem.rsplit_once('.')?;
    if name.is_empty() || digits.len() < 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Exactly as `volume_file_name` writes it: no superfluous leading zero past 3 digits.
    if digits.len() > 3 && digits.starts_with('0') {
        return None;
    }
    let number: u32 = digits.parse().ok()?;
    (number > 0).then(|| (name.to_owned(), number))
}

/// The volume files in `dir` (not recursive), sorted by name then number.
pub fn list_volume_files(dir: &Path) -> Result<Vec<VolumeFile>> {
    list_named(dir, parse_volume_file_name)
}

fn list_named(dir: &Path, parse: fn(&str) -> Option<(String, u32)>) -> Result<Vec<VolumeFile>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let Some(file_name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if let Some((name, number)) = parse(&file_name) {
            let path = entry.path();
            if path.is_file() {
                out.push(VolumeFile { name, number, path });
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn volume_names_round_trip() {
        for n in [1, 9, 10, 999, 1000, 123_456] {
            let f = volume_file_name("app.v2", n);
            assert_eq!(parse_volume_file_name(&f), Some(("app.v2".into(), n)));
        }
        assert_eq!(volume_file_name("a", 7), "a.007.airlock");
        for bad in [
            "a.index.airlock",
            "a.01.airlock",
            "a.000.airlock",
            "a.001.airlock.partial",
            ".001.airlock",
            "a.0001.airlock",
            "a.001",
        ] {
            assert_eq!(parse_volume_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn listing_sorts_and_skips_other_files() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "b.001.airlock",
            "a.010.airlock",
            "a.002.airlock",
            "a.index.airlock",
            "x.txt",
            "a.parity.01.airlock",
        ] {
            std::fs::write(dir.path().join(f), b"").unwrap();
        }
        let got: Vec<(String, u32)> = list_volume_files(dir.path())
            .unwrap()
            .into_iter()
            .map(|v| (v.name, v.number))
            .collect();
        assert_eq!(
            got,
            vec![("a".into(), 2), ("a".into(), 10), ("b".into(), 1)]
        );
        let parity = list_parity_files(dir.path()).unwrap();
        assert_eq!(parity.len(), 1);
        assert_eq!((parity[0].name.as_str(), parity[0].number), ("a", 1));
    }

    #[test]
    fn parity_names_round_trip_and_never_read_as_volumes() {
        for n in [1, 9, 10, 99] {
            let f = parity_file_name("app.v2", n);
            assert_eq!(parse_parity_file_name(&f), Some(("app.v2".into(), n)));
            assert_eq!(parse_volume_file_name(&f), None, "{f}");
        }
        assert_eq!(parity_file_name("a", 2), "a.parity.02.airlock");
        for bad in [
            "a.parity.1.airlock",
            "a.parity.00.airlock",
            ".parity.01.airlock",
            "a.001.airlock",
            "a.parity.001.airlock",
        ] {
            assert_eq!(parse_parity_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn names_with_separators_are_refused() {
        assert!(check_bundle_name("app-1.0").is_ok());
        for bad in ["", "a/b", ".hidden", "a\\b"] {
            assert!(check_bundle_name(bad).is_err(), "{bad}");
        }
    }
}
