//! `ByteSize`: a count of bytes written as `67108864`, `"64MiB"`, `"700M"` or `"4.7GB"`.
//!
//! Units are case-sensitive. A unit with `i` is binary (`KiB` = 1024), one without is decimal
//! (`kB`, `KB` and `K` = 1000), so `700M` is 700,000,000 bytes, as `700MB` is.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use crate::Error;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;

/// Every unit suffix [`ByteSize`] accepts, with its multiplier; the empty suffix means bytes.
const UNITS: &[(&str, u64)] = &[
    ("", 1),
    ("B", 1),
    ("kB", 1_000),
    ("KB", 1_000),
    ("K", 1_000),
    ("MB", 1_000_000),
    ("M", 1_000_000),
    ("GB", 1_000_000_000),
    ("G", 1_000_000_000),
    ("TB", 1_000_000_000_000),
    ("T", 1_000_000_000_000),
    ("KiB", KIB),
    ("MiB", MIB),
    ("GiB", GIB),
    ("TiB", TIB),
];

/// The unit list quoted in error messages.
pub(crate) const UNIT_LIST: &str = "B, kB, KB, K, MB, M, GB, G, TB, T, KiB, MiB, GiB, TiB";

/// Units [`ByteSize`]'s `Display` picks from, binary first so that ties go to them.
const DISPLAY_UNITS: &[(&str, u64)] = &[
    ("TiB", TIB),
    ("GiB", GIB),
    ("MiB", MIB),
    ("KiB", KIB),
    ("TB", 1_000_000_000_000),
    ("GB", 1_000_000_000),
    ("MB", 1_000_000),
    ("kB", 1_000),
];

/// A number of bytes, parsed from an integer or from a string with a unit.
///
/// Use it for every size a user types: config values, `--volume-size`. `FromStr` accepts an
/// optional decimal fraction (`"4.7GB"`, `"1.5KiB"`) as long as the result is a whole number of
/// bytes; `Display` prints the shortest exact form (`"64MiB"`, `"4700MB"`, `"1001B"`), which
/// parses back to the same value. Serde reads an integer or such a string and writes the integer.
///
/// ```
/// use airlock_config::ByteSize;
///
/// assert_eq!("700M".parse::<ByteSize>().unwrap().as_u64(), 700_000_000);
/// assert_eq!("2GiB".parse::<ByteSize>().unwrap(), ByteSize::gib(2));
/// assert_eq!(ByteSize::new(4_700_000_000).to_string(), "4700MB");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(u64);

impl ByteSize {
    /// A size of exactly `bytes` bytes.
    pub const fn new(bytes: u64) -> ByteSize {
        ByteSize(bytes)
    }

    /// `n` KiB (`n * 1024` bytes).
    pub const fn kib(n: u64) -> ByteSize {
        ByteSize(n * KIB)
    }

    /// `n` MiB.
    pub const fn mib(n: u64) -> ByteSize {
        ByteSize(n * MIB)
    }

    /// `n` GiB.
    pub const fn gib(n: u64) -> ByteSize {
        ByteSize(n * GIB)
    }

    /// `n` TiB.
    pub const fn tib(n: u64) -> ByteSize {
        ByteSize(n * TIB)
    }

    /// The number of bytes.
    pub const fn as_u64(self) -> u64 {
        self.0
    }
}

impl From<u64> for ByteSize {
    fn from(bytes: u64) -> ByteSize {
        ByteSize(bytes)
    }
}

impl From<ByteSize> for u64 {
    fn from(size: ByteSize) -> u64 {
        size.0
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let best = DISPLAY_UNITS
            .iter()
            .filter(|(_, mult)| self.0 != 0 && self.0.is_multiple_of(*mult))
            .min_by_key(|(_, mult)| self.0 / mult);
        match best {
            Some((unit, mult)) => write!(f, "{}{unit}", self.0 / mult),
            None => write!(f, "{}B", self.0),
        }
    }
}

impl FromStr for ByteSize {
    type Err = Error;

    fn from_str(text: &str) -> Result<ByteSize, Error> {
        parse_bytes(text)
            .map(ByteSize)
            .map_err(|reason| Error::InvalidSize {
                text: text.to_owned(),
                reason,
            })
    }
}

/// Parses `text` as a size; the error is the reason alone, for callers that name the value.
pub(crate) fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty size".to_owned());
    }
    if text.starts_with('-') {
        return Err("a size cannot be negative".to_owned());
    }
    let number_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(number_end);
    let unit = unit.trim_start();
    let (whole, fraction) = match number.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (number, ""),
    };
    let digits_ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits_ok(whole) || (number.contains('.') && !digits_ok(fraction)) {
        return Err(format!(
            "expected a number of bytes, optionally followed by a unit ({UNIT_LIST})"
        ));
    }
    let Some(&(_, multiplier)) = UNITS.iter().find(|(name, _)| *name == unit) else {
        return Err(format!("unknown unit {unit:?}; allowed units: {UNIT_LIST}"));
    };
    let too_large = || "too large: sizes stop at 18446744073709551615 bytes".to_owned();
    // u128 holds any 20-digit integer times any multiplier; longer inputs overflow anyway.
    if whole.len() > 20 || fraction.len() > 20 {
        return Err(too_large());
    }
    let whole: u128 = whole.parse().map_err(|_| too_large())?;
    let mut bytes = whole * u128::from(multiplier);
    if !fraction.is_empty() {
        let scale = 10u128.pow(fraction.len() as u32);
        let numerator = fraction.parse::<u128>().map_err(|_| too_large())? * u128::from(multiplier);
        if numerator % scale != 0 {
            return Err("not a whole number of bytes".to_owned());
        }
        bytes += numerator / scale;
    }
    u64::try_from(bytes).map_err(|_| too_large())
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ByteSize, D::Error> {
        deserializer.deserialize_any(ByteSizeVisitor)
    }
}

struct ByteSizeVisitor;

impl de::Visitor<'_> for ByteSizeVisitor {
    type Value = ByteSize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a number of bytes, or a string with a unit such as \"64MiB\" ({UNIT_LIST})"
        )
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
        Ok(ByteSize(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
        u64::try_from(v)
            .map(ByteSize)
            .map_err(|_| E::custom(format!("invalid size {v}: a size cannot be negative")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
        v.parse().map_err(E::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<u64, String> {
        parse_bytes(s)
    }

    #[test]
    fn parses_units() {
        assert_eq!(parse("0"), Ok(0));
        assert_eq!(parse("123"), Ok(123));
        assert_eq!(parse("123B"), Ok(123));
        assert_eq!(parse("16KiB"), Ok(16 * 1024));
        assert_eq!(parse("64MiB"), Ok(64 << 20));
        assert_eq!(parse("2GiB"), Ok(2 << 30));
        assert_eq!(parse("1TiB"), Ok(1 << 40));
        assert_eq!(parse("700M"), Ok(700_000_000));
        assert_eq!(parse("700MB"), Ok(700_000_000));
        assert_eq!(parse("4.7GB"), Ok(4_700_000_000));
        assert_eq!(parse("1.5KiB"), Ok(1536));
        assert_eq!(parse("2kB"), Ok(2000));
        assert_eq!(parse("2K"), Ok(2000));
        assert_eq!(parse(" 64 MiB "), Ok(64 << 20));
        assert_eq!(parse("18446744073709551615"), Ok(u64::MAX));
    }

    #[test]
    fn refuses_bad_sizes() {
        for bad in [
            "", "-1", "12XB", "MiB", "1.5", "1.B", ".5K", "1..5K", "64mib", "64 m", "+1",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
        assert!(parse("12XB").unwrap_err().contains("unknown unit \"XB\""));
        assert!(parse("-1").unwrap_err().contains("negative"));
        assert!(parse("1.1B").unwrap_err().contains("whole number"));
        assert!(
            parse("18446744073709551616")
                .unwrap_err()
                .contains("too large")
        );
        assert!(parse("17EiB").is_err());
        assert!(parse("20000000TiB").unwrap_err().contains("too large"));
    }

    #[test]
    fn display_is_shortest_exact_form_and_round_trips() {
        let cases = [
            (0, "0B"),
            (1, "1B"),
            (1000, "1kB"),
            (1024, "1KiB"),
            (1001, "1001B"),
            (64 << 20, "64MiB"),
            (4_700_000_000, "4700MB"),
            (10 << 30, "10GiB"),
            (1_024_000, "1000KiB"),
            (2_048_000, "2000KiB"),
        ];
        for (bytes, text) in cases {
            assert_eq!(ByteSize(bytes).to_string(), text);
            assert_eq!(text.parse::<ByteSize>().unwrap(), ByteSize(bytes));
        }
        for bytes in [3, 999, 12_345_678, u64::MAX, u64::MAX - 1, 1 << 63] {
            assert_eq!(
                ByteSize(bytes).to_string().parse::<ByteSize>().unwrap(),
                ByteSize(bytes)
            );
        }
    }

    #[test]
    fn from_str_error_names_the_text() {
        let err = "12XB".parse::<ByteSize>().unwrap_err().to_string();
        assert!(
            err.starts_with("invalid size \"12XB\": unknown unit"),
            "{err}"
        );
    }

    #[test]
    fn serde_accepts_integers_and_strings() {
        #[derive(Deserialize)]
        struct T {
            a: ByteSize,
            b: ByteSize,
        }
        let t: T = toml::from_str("a = 1024\nb = \"2GiB\"").unwrap();
        assert_eq!((t.a, t.b), (ByteSize::kib(1), ByteSize::gib(2)));
        let err = toml::from_str::<T>("a = -1\nb = 1")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("negative"), "{err}");
        let err = toml::from_str::<T>("a = \"12XB\"\nb = 1")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("unknown unit"), "{err}");
    }
}
