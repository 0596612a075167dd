//! Finding and reading `airlock.toml`, walking its tables against the key schema, and applying
//! `AIRLOCK_*` environment overrides.
//!
//! The file is parsed into toml's spanned `DeTable` rather than deserialized with serde, so that
//! every error can name the dotted key, its line and column, and what is allowed there.

use std::{
    ffi::OsString,
    fs, io,
    ops::Range,
    path::{Component, Path, PathBuf},
};

use toml::{
    Spanned,
    de::{DeString, DeTable, DeValue},
};

use crate::{
    Config, Error, Key, Origin, Value, access,
    key::{Kind, LIST_SECTIONS, SECTIONS},
    trust,
    value::article,
};

/// The config file's path and text, for locating what a list section says.
pub(crate) struct FileText<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl FileText<'_> {
    /// Where byte `at` of the file is.
    pub fn origin(&self, at: usize) -> Origin {
        Origin::in_file(self.path, self.text, at)
    }
}

/// The file [`Config::load`] looks for in the working directory when no path is given.
pub const CONFIG_FILE_NAME: &str = "airlock.toml";

impl Config {
    /// Loads the configuration for this process: the file at `explicit` (which must exist), else
    /// `./airlock.toml` if there is one, else built-in defaults; then the `AIRLOCK_*` environment
    /// variables (see [`Key::env_var`]), which win over the file; then [`Config::validate`].
    pub fn load(explicit: Option<&Path>) -> Result<Config, Error> {
        Config::load_with(explicit, Path::new("."), |name| std::env::var_os(name))
    }

    /// [`Config::load`] with the directory searched for `airlock.toml` and the environment
    /// given by the caller, for tests and embedding. An environment variable set to the empty
    /// string counts as unset.
    pub fn load_with(
        explicit: Option<&Path>,
        dir: &Path,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Config, Error> {
        let mut config = match explicit {
            Some(path) => match read_file(path)? {
                Some(text) => Config::parse_unvalidated(&text, path)?,
                None => {
                    return Err(Error::NotFound {
                        path: path.to_owned(),
                    });
                }
            },
            None => {
                let path = dir.join(CONFIG_FILE_NAME);
                match read_file(&path)? {
                    Some(text) => Config::parse_unvalidated(&text, &path)?,
                    None => Config::default(),
                }
            }
        };
        config.apply_env(env)?;
        config.validate()?;
        Ok(config)
    }

    /// Parses `text` as the contents of the config file at `path`, over the defaults and without
    /// looking at the environment. `path` names the file in errors, and relative paths in the
    /// file are taken relative to its directory.
    pub fn parse(text: &str, path: &Path) -> Result<Config, Error> {
        let config = Config::parse_unvalidated(text, path)?;
        config.validate()?;
        Ok(config)
    }

    fn parse_unvalidated(text: &str, path: &Path) -> Result<Config, Error> {
        let doc = DeTable::parse(text).map_err(|e| Error::Syntax {
            origin: Origin::in_file(path, text, e.span().map_or(0, |span| span.start)),
            message: e.message().to_owned(),
        })?;
        let mut config = Config::default();
        config.set_file(path);
        let at = |span: Range<usize>| Origin::in_file(path, text, span.start);
        for (name, value) in in_file_order(doc.get_ref()) {
            let name_text: &str = name.get_ref();
            if name_text == "trust" {
                let file = FileText { path, text };
                trust::read_section(&mut config, value, &file)?;
                continue;
            }
            if LIST_SECTIONS.contains(&name_text) {
                let file = FileText { path, text };
                access::read_list_section(&mut config, name_text, value, &file)?;
                continue;
            }
            let Some(section) = SECTIONS.iter().copied().find(|s| *s == name_text) else {
                return Err(Error::UnknownKey {
                    origin: at(name.span()),
                    key: name_text.to_owned(),
                    section: None,
                    allowed: SECTIONS.iter().chain(LIST_SECTIONS).copied().collect(),
                    suggestion: suggest_top_level(name_text),
                });
            };
            let fields = Key::fields_of(section);
            let DeValue::Table(table) = value.get_ref() else {
                return Err(Error::NotATable {
                    origin: at(value.span()),
                    section: section.to_owned(),
                    found: article(value.get_ref().type_str()),
                });
            };
            for (field, value) in in_file_order(table) {
                let field_name = field.get_ref().as_ref();
                let Some(key) = Key::find(section, field_name) else {
                    return Err(Error::UnknownKey {
                        origin: at(field.span()),
                        key: format!("{section}.{field_name}"),
                        section: Some(section),
                        suggestion: suggest_in_section(section, field_name, &fields),
                        allowed: fields,
                    });
                };
                let kind = key.kind();
                let parsed = kind
                    .parse_toml(value.get_ref())
                    .and_then(|v| kind.check(&v).map(|()| v))
                    .map_err(|reason| Error::InvalidValue {
                        origin: at(value.span()),
                        key,
                        value: excerpt(text, value.span()),
                        reason,
                    })?;
                let parsed = match parsed {
                    Value::Path(p) if !p.as_os_str().is_empty() => {
                        Value::Path(relative_to_file(path, p))
                    }
                    other => other,
                };
                config.set(key, parsed, at(field.span()));
            }
        }
        Ok(config)
    }

    fn apply_env(&mut self, env: impl Fn(&str) -> Option<OsString>) -> Result<(), Error> {
        for key in Key::ALL {
            let var = key.env_var();
            let Some(raw) = env(var).filter(|raw| !raw.is_empty()) else {
                continue;
            };
            let origin = Origin::Env { var };
            if let Kind::Path | Kind::OptionalPath = key.kind() {
                // Paths need not be UTF-8; take them as they are.
                self.set(key, Value::Path(PathBuf::from(raw)), origin);
                continue;
            }
            let Some(text) = raw.to_str() else {
                return Err(Error::InvalidValue {
                    origin,
                    key,
                    value: format!("{:?}", raw.to_string_lossy()),
                    reason: "not valid UTF-8".to_owned(),
                });
            };
            self.override_value(key, text, origin)?;
        }
        Ok(())
    }
}

/// Reads the file at `path`; `None` if it does not exist.
fn read_file(path: &Path) -> Result<Option<String>, Error> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

type Entry<'a, 'i> = (&'a Spanned<DeString<'i>>, &'a Spanned<DeValue<'i>>);

/// A table's entries in the order they appear in the file, so the first error reported is the
/// first one written.
fn in_file_order<'a, 'i>(table: &'a DeTable<'i>) -> Vec<Entry<'a, 'i>> {
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(key, _)| key.span().start);
    entries
}

/// `p`, read from the config file at `file`, made relative to the file's directory.
pub(crate) fn relative_to_file(file: &Path, p: PathBuf) -> PathBuf {
    let base = file.parent().unwrap_or(Path::new(""));
    if p.is_absolute() || base.as_os_str().is_empty() || base == Path::new(".") {
        return p;
    }
    let rest: PathBuf = p
        .components()
        .skip_while(|c| matches!(c, Component::CurDir))
        .collect();
    base.join(rest)
}

/// The source text of a value, shortened for a message.
pub(crate) fn excerpt(text: &str, span: Range<usize>) -> String {
    const MAX_CHARS: usize = 60;
    let source = text.get(span).unwrap_or("").trim();
    match source.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}...", &source[..cut]),
        None => source.to_owned(),
    }
}

/// For an unknown top-level name: the key it belongs under (`data` -> `store.data`) or a section
/// it misspells.
fn suggest_top_level(name: &str) -> Option<&'static str> {
    if let Some(key) = Key::ALL.into_iter().find(|key| key.path().1 == name) {
        return Some(key.name());
    }
    closest(name, SECTIONS.iter().chain(LIST_SECTIONS).copied())
}

/// For an unknown field of `section`: the key it misspells, or the key of that name in another
/// section.
fn suggest_in_section(section: &str, field: &str, fields: &[&'static str]) -> Option<&'static str> {
    closest(field, fields.iter().copied())
        .and_then(|near| Key::find(section, near))
        .or_else(|| Key::ALL.into_iter().find(|key| key.path().1 == field))
        .map(Key::name)
}

/// The candidate within edit distance 2 of `word`, nearest first.
fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("listen", "listen"), 0);
        assert_eq!(edit_distance("lisen", "listen"), 1);
        assert_eq!(edit_distance("stor", "store"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest_top_level("data"), Some("store.data"));
        assert_eq!(suggest_top_level("chunkr"), Some("chunker"));
        assert_eq!(suggest_top_level("zzzzzzzz"), None);
        let fields = Key::fields_of("server");
        assert_eq!(
            suggest_in_section("server", "lisen", &fields),
            Some("server.listen")
        );
        assert_eq!(
            suggest_in_section("server", "zstd_level", &fields),
            Some("store.zstd_level")
        );
    }

    #[test]
    fn relative_paths_follow_the_file() {
        let p = PathBuf::from;
        assert_eq!(
            relative_to_file(Path::new("airlock.toml"), p("./d")),
            p("./d")
        );
        assert_eq!(
            relative_to_file(Path::new("./airlock.toml"), p("d")),
            p("d")
        );
        assert_eq!(
            relative_to_file(Path::new("/etc/airlock/airlock.toml"), p("./d")),
            p("/etc/airlock/d")
        );
        assert_eq!(
            relative_to_file(Path::new("/etc/airlock.toml"), p("/srv/d")),
            p("/srv/d")
        );
    }

    #[test]
    fn excerpts_are_bounded() {
        let long = format!("x = \"{}\"", "a".repeat(100));
        let e = excerpt(&long, 4..long.len());
        assert!(e.ends_with("...") && e.chars().count() == 63, "{e}");
    }
}
