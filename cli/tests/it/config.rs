use std::fs;

use crate::common::{airlock, stderr};

#[test]
fn unknown_key_is_refused_with_line_and_exit_two() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(
        tmp.path().join("airlock.toml"),
        "[store]\nzstd_level = 3\npack_sise = \"64MiB\"\n",
    )
    .unwrap();
    let o = airlock(tmp.path(), &["du"]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("airlock.toml:3"), "{e}");
    assert!(e.contains("store.pack_sise"), "{e}");
}

#[test]
fn data_flag_wins_over_env_and_file() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(
        tmp.path().join("airlock.toml"),
        "[store]\ndata = \"from-file\"\n",
    )
    .unwrap();
    crate::common::filled_store(&tmp.path().join("from-flag"), 1);
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["--data", "from-flag", "--json", "du"])
        .current_dir(tmp.path())
        .env("AIRLOCK_DATA", "from-env")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn explicit_conflicting_chunker_setting_is_reported_not_applied() {
    let tmp = tempfile::tempdir().unwrap();
    crate::common::filled_store(&tmp.path().join("data"), 1);
    fs::write(
        tmp.path().join("airlock.toml"),
        "[chunker]\navg_size = \"32KiB\"\n",
    )
    .unwrap();
    let o = airlock(tmp.path(), &["--data", "data", "du"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("chunker.avg_size") && e.contains("ignored"),
        "{e}"
    );
}
