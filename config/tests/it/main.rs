//! Integration tests for airlock-config, through the public API only.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

/// The example file: every key present with its environment variable, defaults exact.
mod example;
/// Reading `airlock.toml` text: unknown keys, bad types, ranges, sizes, conflicts.
mod file;
/// `Config::load_with`: file discovery, environment overrides, origins.
mod load;

use std::{collections::HashMap, ffi::OsString, path::Path};

use airlock_config::{Config, Error};

/// An environment holding exactly `vars`.
fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
    let vars: HashMap<String, OsString> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), OsString::from(v)))
        .collect();
    move |name| vars.get(name).cloned()
}

/// Parses `text` as `airlock.toml` and returns the error message.
fn parse_err(text: &str) -> String {
    match Config::parse(text, Path::new("airlock.toml")) {
        Ok(config) => panic!("parsed: {config:?}"),
        Err(e) => e.to_string(),
    }
}

/// Parses `text` as `airlock.toml` and returns the error.
fn parse_error(text: &str) -> Error {
    match Config::parse(text, Path::new("airlock.toml")) {
        Ok(config) => panic!("parsed: {config:?}"),
        Err(e) => e,
    }
}
