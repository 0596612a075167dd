//! Typed values of config keys: parsing from TOML and from environment text, range checks, and
//! printing back as TOML.
//!
//! Parsers return the reason alone; the caller knows the key, the origin and the raw text, and
//! builds [`Error::InvalidValue`](crate::Error::InvalidValue) from them.

use std::{fmt, net::SocketAddr, path::PathBuf, time::Duration};

use toml::de::DeValue;

use crate::{ByteSize, Key, key::Kind, size::parse_bytes};

/// The value of one key, whatever its type.
///
/// Use it to show a configuration generically (`airlock config`); `Display` prints it as a TOML
/// value that parses back to the same setting, e.g. `"64MiB"`, `3`, `false`, `"24h"`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Value {
    /// A filesystem path.
    Path(PathBuf),
    /// A size in bytes.
    Bytes(ByteSize),
    /// A plain integer such as a compression level.
    Integer(i64),
    /// A switch.
    Bool(bool),
    /// An IP address and port.
    SocketAddr(SocketAddr),
    /// An IP address and port, or none (`""`).
    OptionalSocketAddr(Option<SocketAddr>),
    /// A length of time.
    Duration(Duration),
    /// One of the words a key allows, such as `"import"`.
    Word(&'static str),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let quoted = |s: String| toml::Value::String(s).to_string();
        match self {
            Value::Path(path) => f.write_str(&quoted(path.to_string_lossy().into_owned())),
            Value::Bytes(size) => f.write_str(&quoted(size.to_string())),
            Value::Integer(n) => write!(f, "{n}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::SocketAddr(addr) => f.write_str(&quoted(addr.to_string())),
            Value::OptionalSocketAddr(addr) => {
                f.write_str(&quoted(addr.map(|a| a.to_string()).unwrap_or_default()))
            }
            Value::Duration(d) => f.write_str(&quoted(format_duration(*d))),
            Value::Word(w) => f.write_str(&quoted((*w).to_owned())),
        }
    }
}

/// Prints `d` in the largest of d, h, m, s that divides it exactly (`"7d"`, `"90m"`, but
/// `"24h"`), so that the text parses back with humantime; sub-second durations fall back to
/// humantime's own form.
pub(crate) fn format_duration(d: Duration) -> String {
    if d.subsec_nanos() != 0 {
        return humantime::format_duration(d).to_string().replace(' ', "");
    }
    let secs = d.as_secs();
    let unit = [(86_400, "d"), (3_600, "h"), (60, "m")]
        .into_iter()
        // "24h" reads better than "1d".
        .filter(|&(len, _)| !(len == 86_400 && secs == 86_400))
        .find(|(len, _)| secs != 0 && secs.is_multiple_of(*len));
    match unit {
        Some((len, name)) => format!("{}{name}", secs / len),
        None => format!("{secs}s"),
    }
}

impl Kind {
    /// Reads a value written in `airlock.toml`; `Path` values come back as written.
    pub(crate) fn parse_toml(self, value: &DeValue<'_>) -> Result<Value, String> {
        let found = || format!("found {}", article(value.type_str()));
        match (self, value) {
            (Kind::Path, DeValue::String(s)) => Ok(Value::Path(PathBuf::from(s.as_ref()))),
            (Kind::OptionalPath, DeValue::String(s)) => Ok(Value::Path(PathBuf::from(s.as_ref()))),
            (Kind::Path | Kind::OptionalPath, _) => Err(format!("expected a string, {}", found())),
            (Kind::Bytes { .. }, DeValue::Integer(n)) => {
                let n = i64::from_str_radix(n.as_str(), n.radix())
                    .map_err(|_| "integer out of range".to_owned())?;
                u64::try_from(n)
                    .map(|n| Value::Bytes(ByteSize::new(n)))
                    .map_err(|_| "a size cannot be negative".to_owned())
            }
            (Kind::Bytes { .. }, DeValue::String(s)) => {
                parse_bytes(s).map(|n| Value::Bytes(ByteSize::new(n)))
            }
            (Kind::Bytes { .. }, _) => Err(format!("expected an integer or a string, {}", found())),
            (Kind::Integer { .. }, DeValue::Integer(n)) => {
                i64::from_str_radix(n.as_str(), n.radix())
                    .map(Value::Integer)
                    .map_err(|_| "integer out of range".to_owned())
            }
            (Kind::Integer { .. }, _) => Err(format!("expected an integer, {}", found())),
            (Kind::Bool, DeValue::Boolean(b)) => Ok(Value::Bool(*b)),
            (Kind::Bool, _) => Err(format!("expected a boolean, {}", found())),
            (
                Kind::SocketAddr
                | Kind::OptionalSocketAddr
                | Kind::Duration { .. }
                | Kind::Choice(_),
                DeValue::String(s),
            ) => self.parse_text(s),
            (
                Kind::SocketAddr
                | Kind::OptionalSocketAddr
                | Kind::Duration { .. }
                | Kind::Choice(_),
                _,
            ) => Err(format!("expected a string, {}", found())),
        }
    }

    /// Reads a value given as text: an environment variable or a command-line flag.
    pub(crate) fn parse_text(self, text: &str) -> Result<Value, String> {
        match self {
            Kind::Path if text.is_empty() => Err("empty path".to_owned()),
            Kind::Path | Kind::OptionalPath => Ok(Value::Path(PathBuf::from(text))),
            Kind::Bytes { .. } => parse_bytes(text).map(|n| Value::Bytes(ByteSize::new(n))),
            Kind::Integer { .. } => text
                .trim()
                .parse()
                .map(Value::Integer)
                .map_err(|_| "not an integer".to_owned()),
            Kind::Bool => match text.trim() {
                "true" | "1" => Ok(Value::Bool(true)),
                "false" | "0" => Ok(Value::Bool(false)),
                _ => Err("expected true, false, 1 or 0".to_owned()),
            },
            Kind::SocketAddr => text
                .trim()
                .parse()
                .map(Value::SocketAddr)
                .map_err(|_| "not an IP address and port".to_owned()),
            Kind::OptionalSocketAddr if text.trim().is_empty() => {
                Ok(Value::OptionalSocketAddr(None))
            }
            Kind::OptionalSocketAddr => text
                .trim()
                .parse()
                .map(|a| Value::OptionalSocketAddr(Some(a)))
                .map_err(|_| "not an IP address and port".to_owned()),
            Kind::Duration { .. } => humantime::parse_duration(text.trim())
                .map(Value::Duration)
                .map_err(|e| format!("not a duration: {e}")),
            Kind::Choice(words) => words
                .iter()
                .find(|w| **w == text.trim())
                .map(|w| Value::Word(w))
                .ok_or_else(|| "not one of the allowed words".to_owned()),
        }
    }

    /// Checks a parsed value against the key's range.
    pub(crate) fn check(self, value: &Value) -> Result<(), String> {
        let out_of_range = || Err("out of range".to_owned());
        match (self, value) {
            (Kind::Path, Value::Path(p)) if p.as_os_str().is_empty() => {
                Err("empty path".to_owned())
            }
            (Kind::Bytes { min, max, even }, Value::Bytes(size)) => {
                let n = size.as_u64();
                if n < min || n > max {
                    out_of_range()
                } else if even && n % 2 != 0 {
                    Err("not an even number of bytes".to_owned())
                } else {
                    Ok(())
                }
            }
            (Kind::Integer { min, max }, Value::Integer(n)) if *n < min || *n > max => {
                out_of_range()
            }
            (Kind::Duration { min, max }, Value::Duration(d)) if *d < min || *d > max => {
                out_of_range()
            }
            (Kind::Choice(words), Value::Word(w)) if !words.contains(w) => {
                Err("not one of the allowed words".to_owned())
            }
            _ => Ok(()),
        }
    }
}

/// `type_name` with "a" or "an" before it.
pub(crate) fn article(type_name: &str) -> String {
    match type_name.as_bytes().first() {
        Some(b'a' | b'e' | b'i' | b'o' | b'u') => format!("an {type_name}"),
        _ => format!("a {type_name}"),
    }
}

/// Parses and range-checks `text` for `key`; the error is the reason.
pub(crate) fn parse_checked_text(key: Key, text: &str) -> Result<Value, String> {
    let value = key.kind().parse_text(text)?;
    key.kind().check(&value)?;
    Ok(value)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn durations_print_in_the_largest_exact_unit() {
        let cases = [
            (0, "0s"),
            (59, "59s"),
            (60, "1m"),
            (5_400, "90m"),
            (86_400, "24h"),
            (2 * 86_400, "2d"),
            (7 * 86_400, "7d"),
            (3_601, "3601s"),
        ];
        for (secs, text) in cases {
            let d = Duration::from_secs(secs);
            assert_eq!(format_duration(d), text);
            assert_eq!(humantime::parse_duration(text).unwrap(), d);
        }
        let d = Duration::from_millis(1500);
        assert_eq!(humantime::parse_duration(&format_duration(d)).unwrap(), d);
    }

    #[test]
    fn values_print_as_toml() {
        assert_eq!(Value::Bytes(ByteSize::mib(64)).to_string(), "\"64MiB\"");
        assert_eq!(Value::Integer(3).to_string(), "3");
        assert_eq!(Value::Bool(false).to_string(), "false");
        assert_eq!(
            Value::Duration(Duration::from_secs(86_400)).to_string(),
            "\"24h\""
        );
        assert_eq!(Value::Path(PathBuf::from("a\"b")).to_string(), r#"'a"b'"#);
        let addr: SocketAddr = "[::1]:5000".parse().unwrap();
        assert_eq!(Value::SocketAddr(addr).to_string(), "\"[::1]:5000\"");
    }

    #[test]
    fn text_parsing_and_ranges() {
        assert_eq!(
            parse_checked_text(Key::ServerReadOnly, "1"),
            Ok(Value::Bool(true))
        );
        assert!(parse_checked_text(Key::ServerReadOnly, "yes").is_err());
        assert_eq!(
            parse_checked_text(Key::StoreZstdLevel, "23"),
            Err("out of range".to_owned())
        );
        assert_eq!(
            parse_checked_text(Key::ChunkerMinSize, "1025"),
            Err("not an even number of bytes".to_owned())
        );
        assert!(parse_checked_text(Key::ServerListen, "localhost:5000").is_err());
        assert!(parse_checked_text(Key::GcUploadGrace, "5").is_err());
        assert_eq!(
            parse_checked_text(Key::GcUploadGrace, "2h"),
            Ok(Value::Duration(Duration::from_secs(7200)))
        );
        assert_eq!(
            parse_checked_text(Key::CacheBlobCacheSize, "0"),
            Ok(Value::Bytes(ByteSize::new(0)))
        );
        assert_eq!(
            parse_checked_text(Key::CacheMaterialize, "pull"),
            Ok(Value::Word("pull"))
        );
        assert_eq!(
            parse_checked_text(Key::CacheMaterialize, "always"),
            Err("not one of the allowed words".to_owned())
        );
        assert_eq!(Value::Word("never").to_string(), "\"never\"");
        assert_eq!(
            parse_checked_text(Key::ServerMetricsListen, ""),
            Ok(Value::OptionalSocketAddr(None))
        );
        let addr: SocketAddr = "127.0.0.1:9100".parse().unwrap();
        assert_eq!(
            parse_checked_text(Key::ServerMetricsListen, "127.0.0.1:9100"),
            Ok(Value::OptionalSocketAddr(Some(addr)))
        );
        assert!(parse_checked_text(Key::ServerMetricsListen, "localhost:9100").is_err());
        assert_eq!(Value::OptionalSocketAddr(None).to_string(), "\"\"");
        assert_eq!(
            parse_checked_text(Key::ServerLogFormat, "json"),
            Ok(Value::Word("json"))
        );
        assert!(parse_checked_text(Key::ServerLogFormat, "yaml").is_err());
    }
}
