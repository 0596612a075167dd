//! Volume sizes: the media names (`cd`, `dvd`, `dvd-dl`, `bd`, `bd-dl`) and byte counts with
//! an optional unit (`2GiB`, `700M`, `123456`).

use std::{fmt, str::FromStr};

use crate::error::{Error, Result};

/// Named media and the bytes a volume of that name may hold: the smallest disc of the name
/// (see [`DISCS`]) less at least 2 MiB for the disc's file system (ISO 9660 with Rock Ridge and
/// Joliet takes about 0.5 MiB with xorriso's padding) and the files beside volume 1.
const MEDIA: &[(&str, u64)] = &[
    ("cd", 735_000_000),
    ("dvd", 4_698_000_000),
    ("dvd-dl", 8_500_000_000),
    ("bd", 25_000_000_000),
    ("bd-dl", 50_000_000_000),
];

/// Bytes of the smallest recordable disc of each name: 2048-byte sectors of an 80-minute CD-R
/// (the "700 MB" CD), DVD+R (smaller than DVD-R), DVD-R DL, BD-R and BD-R DL without spare areas.
pub const DISCS: &[(&str, u64)] = &[
    ("cd", 360_000 * 2048),
    ("dvd", 2_295_104 * 2048),
    ("dvd-dl", 4_171_712 * 2048),
    ("bd", 12_219_392 * 2048),
    ("bd-dl", 24_438_784 * 2048),
];

/// Unit suffixes: without `i` powers of 1000, with `i` powers of 1024 (as config's ByteSize).
const UNITS: &[(&str, u64)] = &[
    ("", 1),
    ("B", 1),
    ("K", 1_000),
    ("KB", 1_000),
    ("kB", 1_000),
    ("M", 1_000_000),
    ("MB", 1_000_000),
    ("G", 1_000_000_000),
    ("GB", 1_000_000_000),
    ("T", 1_000_000_000_000),
    ("TB", 1_000_000_000_000),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
];

/// The most bytes one volume may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct VolumeSize(pub u64);

impl VolumeSize {
    /// Parses a media name or a positive whole number of bytes with an optional unit.
    pub fn parse(text: &str) -> Result<VolumeSize> {
        let invalid = || Error::InvalidSize {
            text: text.to_owned(),
        };
        let t = text.trim();
        if let Some(&(_, bytes)) = MEDIA.iter().find(|(name, _)| name.eq_ignore_ascii_case(t)) {
            return Ok(VolumeSize(bytes));
        }
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, unit) = t.split_at(split);
        if digits.is_empty() {
            return Err(invalid());
        }
        let unit = unit.trim_start();
        let &(_, multiplier) = UNITS.iter().find(|(u, _)| *u == unit).ok_or_else(invalid)?;
        let n: u64 = digits.parse().map_err(|_| invalid())?;
        match n.checked_mul(multiplier) {
            Some(bytes) if bytes > 0 => Ok(VolumeSize(bytes)),
            _ => Err(invalid()),
        }
    }

    /// The size in bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl FromStr for VolumeSize {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        VolumeSize::parse(s)
    }
}

impl fmt::Display for VolumeSize {
    /// The media name when the size is one, else the number of bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match MEDIA.iter().find(|(_, b)| *b == self.0) {
            Some((name, _)) => f.write_str(name),
            None => write!(f, "{}", self.0),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn media_names_and_numbers_parse() {
        for (text, bytes) in [
            ("cd", 735_000_000),
            ("DVD", 4_698_000_000),
            ("dvd-dl", 8_500_000_000),
            ("bd", 25_000_000_000),
            ("bd-dl", 50_000_000_000),
            ("123456", 123_456),
            ("700M", 700_000_000),
            ("700MB", 700_000_000),
            ("2GiB", 2 << 30),
            ("64 KiB", 65_536),
            ("1T", 1_000_000_000_000),
            ("3kB", 3_000),
        ] {
            assert_eq!(VolumeSize::parse(text).unwrap().bytes(), bytes, "{text}");
        }
        assert_eq!(VolumeSize::parse("dvd").unwrap().to_string(), "dvd");
        assert_eq!(VolumeSize(5).to_string(), "5");
    }

    #[test]
    fn every_medium_keeps_room_for_its_file_system() {
        for ((name, bytes), (disc, capacity)) in MEDIA.iter().zip(DISCS) {
            assert_eq!(name, disc);
            assert!(capacity - bytes >= 2 << 20, "{name}: {bytes} of {capacity}");
        }
    }

    #[test]
    fn bad_sizes_list_what_is_allowed() {
        for bad in [
            "",
            "0",
            "0GiB",
            "2gib",
            "1.5G",
            "-1",
            "dvd+r",
            "GiB",
            "99999999999TiB",
        ] {
            let err = VolumeSize::parse(bad).unwrap_err().to_string();
            assert!(err.contains("cd, dvd, dvd-dl, bd, bd-dl"), "{bad}: {err}");
            assert!(err.contains("KiB"), "{err}");
        }
    }
}
