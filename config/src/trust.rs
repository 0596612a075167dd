//! `[trust]`: the public keys whose signatures `airlock import` accepts (signed bundles, issue
//! 17). Each entry of `keys` is a minisign public key file, or a key written inline as
//! `minisign -G` and `airlock key generate` print it (`RW` and 54 more base64 characters):
//!
//! ```toml
//! [trust]
//! keys = [
//!   "/etc/airlock/vendor.pub",
//!   "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3",
//! ]
//! ```
//!
//! A relative file is taken from the config file's directory. This module checks what the file
//! can say alone (a list of non-empty strings, an inline key's alphabet and length); the CLI
//! reads the key files and decodes the keys, naming the entry's place on failure. There is no
//! environment variable.

use std::path::PathBuf;

use toml::{Spanned, de::DeValue};

use crate::{Config, Error, Origin, load::FileText, value::article};

/// The fields of `[trust]`.
const TRUST_FIELDS: &[&str] = &["keys"];

/// Characters of a minisign public key in base64 (2 bytes of algorithm, 8 of key id, 32 of key).
pub const PUBLIC_KEY_CHARS: usize = 56;

/// `[trust]`: keys whose signatures an import accepts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrustConfig {
    /// The keys, as listed.
    pub keys: Vec<TrustedKeyEntry>,
}

/// Where one trusted key is.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeySource {
    /// A minisign public key file (`key.pub`).
    File(PathBuf),
    /// The key itself, `RW...`.
    Inline(String),
}

/// One entry of `[trust] keys`, and where it is written.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrustedKeyEntry {
    /// The key file or the key.
    pub source: KeySource,
    /// Where it is written.
    pub origin: Origin,
}

impl TrustedKeyEntry {
    /// An entry as the CLI or a test builds it, from the text a config file would hold.
    pub fn parse(text: &str, origin: Origin) -> Result<TrustedKeyEntry, String> {
        Ok(TrustedKeyEntry {
            source: classify(text)?,
            origin,
        })
    }
}

/// An inline key or a path.
fn classify(text: &str) -> Result<KeySource, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("an empty string".into());
    }
    if t.starts_with("untrusted comment:") || t.contains('\n') {
        return Err(
            "a whole key file pasted: write only its key line (RW...), or the file's path".into(),
        );
    }
    let base64 = |c: char| c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '=';
    let key_like = t.starts_with("RW") && t.chars().all(base64);
    if key_like && t.len() == PUBLIC_KEY_CHARS {
        return Ok(KeySource::Inline(t.to_owned()));
    }
    // No file is named like a key (`RW`, base64, no dot): a key cut or padded by a paste.
    if key_like && !t.contains('.') && t.len() > 20 {
        return Err(format!(
            "not a minisign public key: {PUBLIC_KEY_CHARS} base64 characters starting with RW \
             expected, found {} characters",
            t.chars().count()
        ));
    }
    Ok(KeySource::File(PathBuf::from(text)))
}

/// Reads `[trust]` into `config`; relative files are made relative to the config file.
pub(crate) fn read_section(
    config: &mut Config,
    value: &Spanned<DeValue<'_>>,
    file: &FileText<'_>,
) -> Result<(), Error> {
    let invalid = |at: usize, what: String| Error::InvalidTrust {
        origin: file.origin(at),
        what,
    };
    let DeValue::Table(table) = value.get_ref() else {
        return Err(invalid(
            value.span().start,
            format!(
                "`trust` must be a table ([trust]), found {}",
                article(value.get_ref().type_str())
            ),
        ));
    };
    for (field, v) in table.iter() {
        let name: &str = field.get_ref();
        if !TRUST_FIELDS.contains(&name) {
            return Err(invalid(
                field.span().start,
                format!("unknown key `trust.{name}`; allowed keys in [trust]: keys"),
            ));
        }
        let DeValue::Array(items) = v.get_ref() else {
            return Err(invalid(
                v.span().start,
                format!(
                    "`trust.keys` must be an array of strings (key files or RW... keys), found {}",
                    article(v.get_ref().type_str())
                ),
            ));
        };
        for item in items.iter() {
            let at = item.span().start;
            let DeValue::String(s) = item.get_ref() else {
                return Err(invalid(
                    at,
                    format!(
                        "`trust.keys`: expected a string, found {}",
                        article(item.get_ref().type_str())
                    ),
                ));
            };
            let source = classify(s).map_err(|why| invalid(at, format!("`trust.keys`: {why}")))?;
            let source = match source {
                KeySource::File(p) => KeySource::File(crate::load::relative_to_file(file.path, p)),
                inline => inline,
            };
            config.trust.keys.push(TrustedKeyEntry {
                source,
                origin: file.origin(at),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use std::path::Path;

    use super::*;

    const KEY: &str = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvW/cNSCh1CBM0QTaLn73Y7GFO3";

    #[test]
    fn keys_are_files_or_inline_keys() {
        let text = format!("[trust]\nkeys = [\"vendor.pub\", \"{KEY}\"]\n");
        let config = Config::parse(&text, Path::new("/etc/airlock/airlock.toml")).unwrap();
        assert_eq!(
            config.trust.keys[0].source,
            KeySource::File("/etc/airlock/vendor.pub".into())
        );
        assert_eq!(config.trust.keys[1].source, KeySource::Inline(KEY.into()));
        assert_eq!(
            config.trust.keys[1].origin.to_string(),
            "/etc/airlock/airlock.toml:2:23"
        );
    }

    #[test]
    fn bad_entries_are_named_with_their_place() {
        for (text, wanted) in [
            (
                "[trust]\nkeys = [\"RWQf6LRCGA9i53mlYecO4IzT51TGPpvW/ucNSCh1CBM0Q\"]\n",
                "airlock.toml:2:9: `trust.keys`: not a minisign public key",
            ),
            (
                "[trust]\nkeys = [\"\"]\n",
                "airlock.toml:2:9: `trust.keys`: an empty string",
            ),
            (
                "[trust]\nkeys = [1]\n",
                "expected a string, found an integer",
            ),
            ("[trust]\nkeys = \"x.pub\"\n", "must be an array of strings"),
            ("[trust]\nkey = []\n", "unknown key `trust.key`"),
            (
                "[trust]\nkeys = [\"\"\"untrusted comment: minisign public key 1\nRWQ\"\"\"]\n",
                "a whole key file pasted",
            ),
        ] {
            let err = Config::parse(text, Path::new("airlock.toml")).unwrap_err();
            assert!(err.to_string().contains(wanted), "{text}: {err}");
        }
    }
}
