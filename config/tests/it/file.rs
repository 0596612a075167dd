use std::{path::Path, time::Duration};

use airlock_config::{ByteSize, Config, Error, Key, LogFormat, Materialize, Origin};

use crate::{parse_err, parse_error};

#[test]
fn every_key_is_read() {
    let text = r#"
[store]
data = "/srv/airlock"
pack_size = "128MiB"
frame_size = 1_048_576
zstd_level = 19

[chunker]
min_size = "8KiB"
avg_size = "32KiB"
max_size = "128KiB"

[server]
listen = "[::]:5001"
read_only = true
max_manifest_size = "8MiB"
upload_expiry = "2h"
ingest_jobs = 3
metrics_listen = "127.0.0.1:9100"
log_format = "json"

[cache]
blob_cache_size = 0
index_cache_size = "1GiB"
materialize = "pull"

[layers]
max_decompressed_ratio = 1000
max_decompressed_size = "1TiB"

[gc]
keep_tag_history = "30d"
upload_grace = "90m"
keep_app_versions = 5

[tls]
cert = "/etc/airlock/tls.crt"
key = "tls.key"

[auth]
htpasswd = "/etc/airlock/htpasswd"
anonymous_pull = true
anonymous_write = true
challenge = "basic"
token_lifetime = "10m"

[limits]
max_blob_size = "8GiB"
max_upload_sessions = 64
max_upload_sessions_per_client = 4
max_connections = 100
header_timeout = "10s"
body_timeout = "2m"
shutdown_timeout = "5s"

[groups]
ops = ["alice", "bob"]

[[access]]
repositories = ["apps/**"]
groups = ["ops"]
actions = ["pull", "push"]

[[access]]
repositories = ["*"]
users = ["*"]
actions = ["pull"]
"#;
    let c = Config::parse(text, Path::new("airlock.toml")).unwrap();
    assert_eq!(c.store.data, Path::new("/srv/airlock"));
    assert_eq!(c.store.pack_size, ByteSize::mib(128));
    assert_eq!(c.store.frame_size, ByteSize::mib(1));
    assert_eq!(c.store.zstd_level, 19);
    assert_eq!(c.chunker.min_size, ByteSize::kib(8));
    assert_eq!(c.chunker.avg_size, ByteSize::kib(32));
    assert_eq!(c.chunker.max_size, ByteSize::kib(128));
    assert_eq!(c.server.listen.to_string(), "[::]:5001");
    assert!(c.server.read_only);
    assert_eq!(c.server.max_manifest_size, ByteSize::mib(8));
    assert_eq!(c.server.upload_expiry, Duration::from_secs(7200));
    assert_eq!(c.server.ingest_jobs, 3);
    assert_eq!(
        c.server.metrics_listen.map(|a| a.to_string()).as_deref(),
        Some("127.0.0.1:9100")
    );
    assert_eq!(c.server.log_format, LogFormat::Json);
    assert_eq!(c.cache.blob_cache_size, ByteSize::new(0));
    assert_eq!(c.cache.index_cache_size, ByteSize::gib(1));
    assert_eq!(c.cache.materialize, Materialize::Pull);
    assert_eq!(c.layers.max_decompressed_ratio, 1000);
    assert_eq!(c.layers.max_decompressed_size, ByteSize::tib(1));
    assert_eq!(c.gc.keep_tag_history, Duration::from_secs(30 * 86_400));
    assert_eq!(c.gc.upload_grace, Duration::from_secs(5400));
    assert_eq!(c.gc.keep_app_versions, 5);
    assert_eq!(
        c.tls.cert.as_deref(),
        Some(Path::new("/etc/airlock/tls.crt"))
    );
    assert_eq!(c.tls.key.as_deref(), Some(Path::new("tls.key")));
    assert_eq!(
        c.auth.htpasswd.as_deref(),
        Some(Path::new("/etc/airlock/htpasswd"))
    );
    assert!(c.auth.anonymous_pull && c.auth.anonymous_write);
    assert_eq!(c.auth.challenge, "basic");
    assert_eq!(c.auth.token_lifetime, Duration::from_secs(600));
    assert_eq!(c.limits.max_blob_size, ByteSize::gib(8));
    assert_eq!(c.limits.max_upload_sessions, 64);
    assert_eq!(c.limits.max_upload_sessions_per_client, 4);
    assert_eq!(c.limits.max_connections, 100);
    assert_eq!(c.limits.header_timeout, Duration::from_secs(10));
    assert_eq!(c.limits.body_timeout, Duration::from_secs(120));
    assert_eq!(c.limits.shutdown_timeout, Duration::from_secs(5));
    assert_eq!(c.groups["ops"], ["alice", "bob"]);
    assert_eq!(c.access.len(), 2);
    assert_eq!(c.access[0].repositories, ["apps/**"]);
    assert_eq!(c.access[0].groups, ["ops"]);
    assert_eq!(c.access[0].actions, ["pull", "push"]);
    assert_eq!(c.access[1].users, ["*"]);
    for key in Key::ALL {
        assert!(c.is_explicit(key), "{key}");
    }
    assert_eq!(c.file(), Some(Path::new("airlock.toml")));
    assert_eq!(
        c.origin(Key::StoreZstdLevel),
        &Origin::File {
            path: "airlock.toml".into(),
            line: 6,
            column: 1
        }
    );
}

#[test]
fn dotted_keys_and_inline_tables_are_the_same_keys() {
    let c = Config::parse(
        "store.zstd_level = 5\nserver = { read_only = true }\n",
        Path::new("airlock.toml"),
    )
    .unwrap();
    assert_eq!(c.store.zstd_level, 5);
    assert!(c.server.read_only);
}

#[test]
fn unknown_top_level_key_names_key_line_and_sections() {
    assert_eq!(
        parse_err("# comment\n\n[stor]\ndata = \"x\"\n"),
        "airlock.toml:3:2: unknown key `stor`; allowed at the top level: sections store, \
         chunker, server, cache, layers, gc, tls, auth, limits, groups, access, trust; did you mean \
         `store`?"
    );
    assert_eq!(
        parse_err("data = \"x\"\n"),
        "airlock.toml:1:1: unknown key `data`; allowed at the top level: sections store, \
         chunker, server, cache, layers, gc, tls, auth, limits, groups, access, trust; did you mean \
         `store.data`?"
    );
}

#[test]
fn unknown_nested_key_names_dotted_key_line_and_allowed_keys() {
    let err = parse_error("[store]\nzstd_level = 3\n\n[gc]\nkeep_tag_history = \"1d\"\nkeep = 1\n");
    match &err {
        Error::UnknownKey {
            origin: Origin::File { line, column, .. },
            key,
            section,
            allowed,
            ..
        } => {
            assert_eq!((*line, *column), (6, 1));
            assert_eq!(key, "gc.keep");
            assert_eq!(*section, Some("gc"));
            assert_eq!(
                allowed,
                &["keep_tag_history", "upload_grace", "keep_app_versions"]
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "airlock.toml:6:1: unknown key `gc.keep`; allowed keys in [gc]: keep_tag_history, \
         upload_grace, keep_app_versions"
    );
    let err = parse_err("[server]\nzstd_level = 3\n");
    assert!(err.ends_with("did you mean `store.zstd_level`?"), "{err}");
    let err = parse_err("[store.extra]\nx = 1\n");
    assert!(
        err.starts_with("airlock.toml:1:8: unknown key `store.extra`;"),
        "{err}"
    );
}

#[test]
fn first_error_in_the_file_is_reported() {
    let err = parse_err("[store]\nzzz = 1\naaa = 2\n");
    assert!(err.contains("`store.zzz`"), "{err}");
}

#[test]
fn bad_value_types_name_key_line_type_and_allowed() {
    assert_eq!(
        parse_err("[store]\nzstd_level = \"3\"\n"),
        "airlock.toml:2:14: invalid value \"3\" for `store.zstd_level`: expected an integer, \
         found a string; allowed: an integer from 1 to 22"
    );
    let err = parse_err("[server]\nread_only = \"yes\"\n");
    assert!(
        err.starts_with(
            "airlock.toml:2:13: invalid value \"yes\" for `server.read_only`: expected a \
             boolean, found a string; allowed: true or false"
        ),
        "{err}"
    );
    let err = parse_err("[store]\npack_size = 1.5\n");
    assert!(
        err.contains("expected an integer or a string, found a float"),
        "{err}"
    );
    let err = parse_err("[gc]\nupload_grace = 3600\n");
    assert!(err.contains("expected a string, found an integer"), "{err}");
    let err = parse_err("[store]\ndata = [\"a\"]\n");
    assert!(err.contains("expected a string, found an array"), "{err}");
    let err = parse_err("[server]\nlisten = \"localhost:5000\"\n");
    assert!(err.contains("not an IP address and port"), "{err}");
    assert_eq!(
        parse_err("store = 5\n"),
        "airlock.toml:1:9: `store` must be a table ([store]), found an integer"
    );
}

#[test]
fn out_of_range_values_name_the_range() {
    assert_eq!(
        parse_err("[store]\nzstd_level = 30\n"),
        "airlock.toml:2:14: invalid value 30 for `store.zstd_level`: out of range; allowed: an \
         integer from 1 to 22"
    );
    let err = parse_err("[store]\npack_size = \"8GiB\"\n");
    assert!(
        err.contains(
            "invalid value \"8GiB\" for `store.pack_size`: out of range; allowed: a size \
             from 1MiB to 4GiB"
        ),
        "{err}"
    );
    let err = parse_err("[chunker]\nmin_size = 1001\n");
    assert!(err.contains("not an even number of bytes"), "{err}");
    let err = parse_err("[gc]\nupload_grace = \"10s\"\n");
    assert!(
        err.contains("out of range; allowed: a duration from 1m to 30d"),
        "{err}"
    );
    let err = parse_err("[layers]\nmax_decompressed_ratio = 0\n");
    assert!(err.contains("an integer from 1 to 100000"), "{err}");
}

#[test]
fn bad_sizes_are_refused() {
    let err = parse_err("[store]\npack_size = \"12XB\"\n");
    assert!(
        err.starts_with(
            "airlock.toml:2:13: invalid value \"12XB\" for `store.pack_size`: unknown unit \
             \"XB\"; allowed units: B, kB"
        ),
        "{err}"
    );
    let err = parse_err("[store]\npack_size = -1\n");
    assert!(
        err.starts_with(
            "airlock.toml:2:13: invalid value -1 for `store.pack_size`: a size cannot be negative"
        ),
        "{err}"
    );
    let err = parse_err("[store]\npack_size = \"-1\"\n");
    assert!(err.contains("a size cannot be negative"), "{err}");
    for bad in ["\"\"", "\"MiB\"", "\"64mib\"", "\"1.5\""] {
        let err = parse_err(&format!("[cache]\nblob_cache_size = {bad}\n"));
        assert!(err.contains("`cache.blob_cache_size`"), "{bad}: {err}");
    }
}

#[test]
fn unordered_chunker_sizes_are_a_conflict_naming_each_origin() {
    let err = parse_error("[chunker]\nmin_size = \"64KiB\"\navg_size = \"32KiB\"\n");
    match &err {
        Error::Conflict { settings, .. } => {
            let keys: Vec<Key> = settings.iter().map(|s| s.key).collect();
            assert_eq!(
                keys,
                [
                    Key::ChunkerMinSize,
                    Key::ChunkerAvgSize,
                    Key::ChunkerMaxSize
                ]
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "conflicting settings: chunker sizes must satisfy min_size <= avg_size <= max_size; \
         got chunker.min_size = \"64KiB\" (airlock.toml:2:1), chunker.avg_size = \"32KiB\" \
         (airlock.toml:3:1), chunker.max_size = \"256KiB\" (default)"
    );
}

#[test]
fn frame_larger_than_pack_is_a_conflict() {
    let err = parse_err("[store]\npack_size = \"1MiB\"\n");
    assert!(
        err.contains("store.frame_size must not exceed store.pack_size"),
        "{err}"
    );
}

#[test]
fn syntax_errors_name_line_and_column() {
    let err = parse_err("[store]\nzstd_level = \n");
    assert!(err.starts_with("airlock.toml:2:"), "{err}");
    assert!(err.contains("invalid TOML"), "{err}");
    let err = parse_err("[store]\nzstd_level = 1\nzstd_level = 2\n");
    assert!(
        err.starts_with("airlock.toml:3:1: invalid TOML: duplicate key"),
        "{err}"
    );
}

#[test]
fn relative_data_paths_are_relative_to_the_file() {
    let c = Config::parse(
        "[store]\ndata = \"./data\"\n",
        Path::new("/etc/airlock/airlock.toml"),
    )
    .unwrap();
    assert_eq!(c.store.data, Path::new("/etc/airlock/data"));
    let c = Config::parse("[store]\ndata = \"data\"\n", Path::new("airlock.toml")).unwrap();
    assert_eq!(c.store.data, Path::new("data"));
}

/// Issue 14: `cache.materialize` takes one of its words, and says which when it gets another.
#[test]
fn issue_14_materialize_takes_its_words() {
    for (word, policy) in [
        ("import", Materialize::Import),
        ("pull", Materialize::Pull),
        ("never", Materialize::Never),
    ] {
        let text = format!("[cache]\nmaterialize = \"{word}\"\n");
        let c = Config::parse(&text, Path::new("airlock.toml")).unwrap();
        assert_eq!(c.cache.materialize, policy);
    }
    assert_eq!(
        parse_err("[cache]\nmaterialize = \"always\"\n"),
        "airlock.toml:2:15: invalid value \"always\" for `cache.materialize`: not one of the \
         allowed words; allowed: one of \"import\", \"pull\", \"never\""
    );
    let err = parse_err("[cache]\nmaterialize = true\n");
    assert!(err.contains("expected a string, found a boolean"), "{err}");
}

#[test]
fn issue_16_access_rules_are_checked_with_their_line() {
    let rule = |body: &str| format!("[groups]\nops = [\"a\"]\n\n[[access]]\n{body}\n");
    let cases = [
        (
            rule("repositories = [\"x\"]\nusers = [\"a\"]\nactions = [\"pull\", \"fly\"]"),
            "airlock.toml:4:1: access rule 1: unknown action \"fly\"; allowed: pull, push, delete",
        ),
        (
            rule("repositories = [\"x\"]\nactions = [\"pull\"]"),
            "airlock.toml:4:1: access rule 1: names no `users` and no `groups`",
        ),
        (
            rule("repositories = [\"x\"]\ngroups = [\"dev\"]\nactions = [\"pull\"]"),
            "airlock.toml:4:1: access rule 1: group \"dev\" is not defined in [groups]",
        ),
        (
            rule("repos = [\"x\"]"),
            "airlock.toml:5:1: unknown field `repos` in access rule 1; allowed: repositories, \
             users, groups, actions",
        ),
        (
            rule("repositories = \"x\""),
            "airlock.toml:5:16: `repositories` of access rule 1: expected an array of strings, \
             found a string",
        ),
        (
            "[groups]\nops = [\"a\", 3]\n".to_owned(),
            "airlock.toml:2:13: group `ops`: expected a string, found an integer",
        ),
        (
            "access = 3\n".to_owned(),
            "airlock.toml:1:10: `access` must be an array of tables ([[access]]), found an \
             integer",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(parse_err(&text), expected, "{text}");
    }
}

#[test]
fn issue_16_tls_needs_both_files() {
    let err = parse_err("[tls]\ncert = \"c.pem\"\n");
    assert!(
        err.starts_with("conflicting settings: tls.cert and tls.key are set together"),
        "{err}"
    );
    let err = parse_err("[auth]\nchallenge = \"digest\"\n");
    assert!(
        err.contains("not one of the allowed words; allowed: one of \"bearer\", \"basic\""),
        "{err}"
    );
}
