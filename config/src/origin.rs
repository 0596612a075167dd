//! Where a setting came from, and a setting with its origin.

use std::{fmt, path::PathBuf};

use crate::{Key, Value};

/// Where a key's value came from: built-in default, the config file, the environment, or a flag.
///
/// `Display` prints what a message needs to point at it: `default`, `airlock.toml:4:14`,
/// `environment variable AIRLOCK_LISTEN`, `command-line flag --listen`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// Nobody set it.
    #[default]
    Default,
    /// Written in a config file, at a 1-based line and column (in characters).
    File {
        /// The file as it was opened.
        path: PathBuf,
        /// Line of the value, from 1.
        line: usize,
        /// Column of the value, from 1.
        column: usize,
    },
    /// Given by an environment variable.
    Env {
        /// The variable's name.
        var: &'static str,
    },
    /// Given on the command line; the CLI passes this to
    /// [`Config::override_value`](crate::Config::override_value).
    CommandLine {
        /// The flag as the user would type it, e.g. `--listen`.
        flag: String,
    },
}

impl Origin {
    /// Whether the value was set by the user rather than left at its default.
    pub fn is_explicit(&self) -> bool {
        !matches!(self, Origin::Default)
    }

    /// The origin of byte `offset` of `text`, the contents of the file at `path`.
    pub(crate) fn in_file(path: &std::path::Path, text: &str, offset: usize) -> Origin {
        let before = text.get(..offset).unwrap_or(text);
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Origin::File {
            path: path.to_owned(),
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File { path, line, column } => {
                write!(f, "{}:{line}:{column}", path.display())
            }
            Origin::Env { var } => write!(f, "environment variable {var}"),
            Origin::CommandLine { flag } => write!(f, "command-line flag {flag}"),
        }
    }
}

/// One key with its effective value and where that value came from.
///
/// [`Config::settings`](crate::Config::settings) lists them for display; `Display` prints
/// `store.zstd_level = 3 (airlock.toml:4:14)`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Setting {
    /// Which key.
    pub key: Key,
    /// Its effective value.
    pub value: Value,
    /// Where the value came from.
    pub origin: Origin,
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {} ({})", self.key, self.value, self.origin)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn file_offsets_become_lines_and_columns() {
        let text = "a = 1\n[é]\nbé = 2\n";
        let p = Path::new("f.toml");
        assert_eq!(Origin::in_file(p, text, 0).to_string(), "f.toml:1:1");
        assert_eq!(Origin::in_file(p, text, 4).to_string(), "f.toml:1:5");
        assert_eq!(Origin::in_file(p, text, 6).to_string(), "f.toml:2:1");
        let offset = text.find("= 2").unwrap();
        assert_eq!(Origin::in_file(p, text, offset).to_string(), "f.toml:3:4");
        assert_eq!(Origin::in_file(p, text, 999).to_string(), "f.toml:4:1");
    }

    #[test]
    fn explicit_means_not_default() {
        assert!(!Origin::Default.is_explicit());
        assert!(
            Origin::Env {
                var: "AIRLOCK_DATA"
            }
            .is_explicit()
        );
    }
}
