use std::{ffi::OsString, fs, path::Path};

use airlock_config::{ByteSize, CONFIG_FILE_NAME, Config, Error, Key, Origin};

use crate::env;

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    path
}

#[test]
fn defaults_when_no_file_and_no_env() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::load_with(None, dir.path(), env(&[])).unwrap();
    assert_eq!(config, Config::default());
    assert_eq!(config.file(), None);
}

#[test]
fn airlock_toml_in_the_directory_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), CONFIG_FILE_NAME, "[store]\nzstd_level = 7\n");
    let config = Config::load_with(None, dir.path(), env(&[])).unwrap();
    assert_eq!(config.store.zstd_level, 7);
    assert_eq!(config.file(), Some(path.as_path()));
    // Its relative data path follows the file.
    write(dir.path(), CONFIG_FILE_NAME, "[store]\ndata = \"d\"\n");
    let config = Config::load_with(None, dir.path(), env(&[])).unwrap();
    assert_eq!(config.store.data, dir.path().join("d"));
}

#[test]
fn explicit_path_wins_over_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), CONFIG_FILE_NAME, "[store]\nzstd_level = 7\n");
    let other = write(dir.path(), "other.toml", "[store]\nzstd_level = 9\n");
    let config = Config::load_with(Some(&other), dir.path(), env(&[])).unwrap();
    assert_eq!(config.store.zstd_level, 9);
}

#[test]
fn explicit_missing_path_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), CONFIG_FILE_NAME, "");
    let missing = dir.path().join("missing.toml");
    let err = Config::load_with(Some(&missing), dir.path(), env(&[])).unwrap_err();
    assert!(matches!(&err, Error::NotFound { path } if *path == missing));
    assert_eq!(
        err.to_string(),
        format!("config file {} does not exist", missing.display())
    );
}

#[test]
fn unreadable_file_is_an_io_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the file should be cannot be read as text.
    fs::create_dir(dir.path().join(CONFIG_FILE_NAME)).unwrap();
    let err = Config::load_with(None, dir.path(), env(&[])).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains(CONFIG_FILE_NAME), "{err}");
}

#[test]
fn file_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "a.toml", "\n[server]\nlisten = 5000\n");
    let err = Config::load_with(Some(&path), dir.path(), env(&[])).unwrap_err();
    assert!(
        err.to_string().starts_with(&format!(
            "{}:3:10: invalid value 5000 for `server.listen`",
            path.display()
        )),
        "{err}"
    );
}

#[test]
fn env_overrides_win_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        CONFIG_FILE_NAME,
        "[store]\ndata = \"/from/file\"\nzstd_level = 7\n[server]\nlisten = \"127.0.0.1:1\"\n",
    );
    let vars = [
        ("AIRLOCK_DATA", "/from/env"),
        ("AIRLOCK_LISTEN", "0.0.0.0:5000"),
        ("AIRLOCK_READ_ONLY", "1"),
        ("AIRLOCK_PACK_SIZE", "32MiB"),
        ("AIRLOCK_CHUNKER_AVG_SIZE", "128KiB"),
        ("AIRLOCK_UPLOAD_GRACE", "2h"),
    ];
    let config = Config::load_with(None, dir.path(), env(&vars)).unwrap();
    assert_eq!(config.store.data, Path::new("/from/env"));
    assert_eq!(config.server.listen.to_string(), "0.0.0.0:5000");
    assert!(config.server.read_only);
    assert_eq!(config.store.pack_size, ByteSize::mib(32));
    assert_eq!(config.chunker.avg_size, ByteSize::kib(128));
    assert_eq!(config.gc.upload_grace.as_secs(), 7200);
    // Untouched by the environment, from the file.
    assert_eq!(config.store.zstd_level, 7);
    assert!(matches!(
        config.origin(Key::StoreZstdLevel),
        Origin::File { line: 3, .. }
    ));
    assert_eq!(
        config.origin(Key::StoreData),
        &Origin::Env {
            var: "AIRLOCK_DATA"
        }
    );
    assert!(config.is_explicit(Key::ChunkerAvgSize));
    assert!(!config.is_explicit(Key::ChunkerMinSize));
}

#[test]
fn every_env_var_is_read() {
    let defaults = Config::default();
    let vars: Vec<(&str, String)> = Key::ALL
        .into_iter()
        .map(|key| {
            let text = defaults.value(key).to_string();
            (key.env_var(), text.trim_matches('"').to_owned())
        })
        .collect();
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let dir = tempfile::tempdir().unwrap();
    let config = Config::load_with(None, dir.path(), env(&vars)).unwrap();
    for key in Key::ALL {
        // An empty variable counts as unset, so an optional path or
        // address (no metrics listener) cannot be set to none.
        let unset = defaults.value(key).to_string() == "\"\"";
        let expected = match unset {
            true => Origin::Default,
            false => Origin::Env { var: key.env_var() },
        };
        assert_eq!(config.origin(key), &expected, "{key}");
        assert_eq!(config.value(key), defaults.value(key), "{key}");
    }
    let vars = [("AIRLOCK_METRICS_LISTEN", "[::1]:9100")];
    let config = Config::load_with(None, dir.path(), env(&vars)).unwrap();
    assert_eq!(
        config
            .server
            .metrics_listen
            .map(|a| a.to_string())
            .as_deref(),
        Some("[::1]:9100")
    );
}

#[test]
fn bad_env_value_names_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let err =
        Config::load_with(None, dir.path(), env(&[("AIRLOCK_ZSTD_LEVEL", "fast")])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "environment variable AIRLOCK_ZSTD_LEVEL: invalid value \"fast\" for \
         `store.zstd_level`: not an integer; allowed: an integer from 1 to 22"
    );
    let err = Config::load_with(None, dir.path(), env(&[("AIRLOCK_LISTEN", "5000")])).unwrap_err();
    assert!(matches!(
        err,
        Error::InvalidValue {
            origin: Origin::Env {
                var: "AIRLOCK_LISTEN"
            },
            key: Key::ServerListen,
            ..
        }
    ));
    let err =
        Config::load_with(None, dir.path(), env(&[("AIRLOCK_READ_ONLY", "yes")])).unwrap_err();
    assert!(
        err.to_string().contains("expected true, false, 1 or 0"),
        "{err}"
    );
    let err =
        Config::load_with(None, dir.path(), env(&[("AIRLOCK_PACK_SIZE", "12XB")])).unwrap_err();
    assert!(err.to_string().contains("unknown unit \"XB\""), "{err}");
    let err = Config::load_with(
        None,
        dir.path(),
        env(&[("AIRLOCK_CACHE_MATERIALIZE", "sometimes")]),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("allowed: one of \"import\", \"pull\", \"never\""),
        "{err}"
    );
}

#[test]
fn env_conflicts_name_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let err = Config::load_with(
        None,
        dir.path(),
        env(&[("AIRLOCK_CHUNKER_MIN_SIZE", "512KiB")]),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains(
            "chunker.min_size = \"512KiB\" (environment variable AIRLOCK_CHUNKER_MIN_SIZE)"
        ),
        "{err}"
    );
}

#[test]
fn empty_env_var_counts_as_unset() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::load_with(None, dir.path(), env(&[("AIRLOCK_DATA", "")])).unwrap();
    assert_eq!(config.store.data, Config::default().store.data);
    assert!(!config.is_explicit(Key::StoreData));
}

#[cfg(unix)]
#[test]
fn non_utf8_env_values_are_paths_or_errors() {
    use std::os::unix::ffi::OsStringExt;
    let raw = OsString::from_vec(vec![b'/', 0xff]);
    let dir = tempfile::tempdir().unwrap();
    let data = raw.clone();
    let config = Config::load_with(None, dir.path(), move |name| {
        (name == "AIRLOCK_DATA").then(|| data.clone())
    })
    .unwrap();
    assert_eq!(config.store.data.as_os_str(), raw.as_os_str());
    let err = Config::load_with(None, dir.path(), move |name| {
        (name == "AIRLOCK_ZSTD_LEVEL").then(|| raw.clone())
    })
    .unwrap_err();
    assert!(err.to_string().contains("not valid UTF-8"), "{err}");
}
