use std::{io, path::PathBuf};

use crate::{Key, Origin, Setting};

/// Everything that can be wrong with a configuration: the file, its keys, its values, the
/// environment overrides, or how settings combine.
///
/// Every variant locates the problem: file variants carry an [`Origin::File`] with line and
/// column, environment variants an [`Origin::Env`] naming the variable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A config file given explicitly (`--config`) does not exist.
    #[error("config file {} does not exist", path.display())]
    NotFound {
        /// The path as given.
        path: PathBuf,
    },
    /// The config file exists but could not be read, or is not UTF-8.
    #[error("reading config file {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The reader's error.
        #[source]
        source: io::Error,
    },
    /// The file is not valid TOML.
    #[error("{origin}: invalid TOML: {message}")]
    Syntax {
        /// Where the parser stopped.
        origin: Origin,
        /// The parser's message.
        message: String,
    },
    /// A key or section that airlock does not know; typos are not ignored.
    #[error("{origin}: unknown key `{key}`; {}", allowed_text(*section, allowed, *suggestion))]
    UnknownKey {
        /// Where the key is written.
        origin: Origin,
        /// The dotted key as written, e.g. `server.lisen`.
        key: String,
        /// The section it was found in, `None` at the top level.
        section: Option<&'static str>,
        /// The keys (or, at the top level, the sections) allowed there.
        allowed: Vec<&'static str>,
        /// A known key the user probably meant.
        suggestion: Option<&'static str>,
    },
    /// A section written as something other than a table, e.g. `store = 5`.
    #[error("{origin}: `{section}` must be a table ([{section}]), found {found}")]
    NotATable {
        /// Where the value is written.
        origin: Origin,
        /// The section's name.
        section: String,
        /// The TOML type found instead, with its article ("an integer").
        found: String,
    },
    /// A value of the wrong type or out of range, in the file, the environment or a flag.
    #[error("{origin}: invalid value {value} for `{key}`: {reason}; allowed: {}", key.allowed())]
    InvalidValue {
        /// Where the value was given.
        origin: Origin,
        /// The key it was given for.
        key: Key,
        /// The value as written: TOML source text, or the quoted environment text.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Settings that are each valid but not together, e.g. chunker sizes out of order.
    #[error("conflicting settings: {rule}; got {}", settings_text(settings))]
    Conflict {
        /// The rule they break, in words.
        rule: String,
        /// The settings involved, with their values and origins.
        settings: Vec<Setting>,
    },
    /// Text that does not parse as a [`ByteSize`](crate::ByteSize).
    #[error("invalid size {text:?}: {reason}")]
    InvalidSize {
        /// The text.
        text: String,
        /// What is wrong with it and what is allowed.
        reason: String,
    },
    /// A `[groups]` entry or an `[[access]]` rule that is malformed or names something unknown.
    #[error("{origin}: {what}")]
    InvalidAccess {
        /// Where it is written.
        origin: Origin,
        /// What is wrong, naming the group, rule or field.
        what: String,
    },
    /// A `[trust]` entry that is malformed.
    #[error("{origin}: {what}")]
    InvalidTrust {
        /// Where it is written.
        origin: Origin,
        /// What is wrong.
        what: String,
    },
    /// A dotted key name that is not a [`Key`].
    #[error("unknown config key `{name}`; known keys: {}", known_keys())]
    UnknownKeyName {
        /// The name given.
        name: String,
    },
}

fn allowed_text(section: Option<&str>, allowed: &[&str], suggestion: Option<&str>) -> String {
    let mut text = match section {
        Some(section) => format!("allowed keys in [{section}]: {}", allowed.join(", ")),
        None => format!("allowed at the top level: sections {}", allowed.join(", ")),
    };
    if let Some(suggestion) = suggestion {
        text.push_str(&format!("; did you mean `{suggestion}`?"));
    }
    text
}

fn settings_text(settings: &[Setting]) -> String {
    let parts: Vec<String> = settings.iter().map(Setting::to_string).collect();
    parts.join(", ")
}

fn known_keys() -> String {
    let names: Vec<&str> = Key::ALL.into_iter().map(Key::name).collect();
    names.join(", ")
}
