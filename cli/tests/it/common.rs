use std::{
    path::Path,
    process::{Command, Output},
};

use airlock_store::{Digest, PutOptions, RepoChange, Store, StoreOptions};

/// Runs `airlock ARGS` with no config file in reach (cwd is a fresh temp dir).
pub fn airlock(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(args)
        .current_dir(cwd)
        .env_remove("AIRLOCK_DATA")
        .env_remove("AIRLOCK_LISTEN")
        .output()
        .expect("run airlock")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Pseudo-random bytes, different per seed.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A store with `n` blobs of 300 KiB, each linked and tagged as a "manifest" of repo `app`.
pub fn filled_store(dir: &Path, n: u64) -> Vec<(Digest, Vec<u8>)> {
    let store = Store::open(dir, StoreOptions::default()).expect("open store");
    let mut out = Vec::new();
    for i in 0..n {
        let data = bytes(i + 1, 300 * 1024);
        let d = Digest::sha256(&data);
        store
            .put_blob(&d, &data[..], PutOptions::default())
            .expect("put");
        store
            .apply_repo_changes(&[
                RepoChange::LinkManifest {
                    repo: "app".into(),
                    digest: d.clone(),
                    children: vec![],
                    subject: None,
                    media_type: "application/octet-stream".into(),
                },
                RepoChange::SetTag {
                    repo: "app".into(),
                    tag: format!("v{i}"),
                    digest: d.clone(),
                },
            ])
            .expect("link");
        out.push((d, data));
    }
    out
}

/// The variable that turns a missing tool into a test failure (`.ci/run` sets it).
const REQUIRE_TOOLS: &str = "AIRLOCK_REQUIRE_TOOLS";

/// A tool's path when it is on PATH. When it is not, the test fails under [`REQUIRE_TOOLS`]
/// (set to anything but `0`), naming the Debian package; otherwise it skips, with a note
/// written straight to stderr because libtest captures `eprintln!` of passing tests.
pub fn find_tool(name: &str, package: &str) -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let what = format!("`{name}` is not on PATH (Debian: package {package})");
        let required = std::env::var_os(REQUIRE_TOOLS).is_some_and(|v| !v.is_empty() && v != "0");
        assert!(
            !required,
            "{what}, and {REQUIRE_TOOLS} is set: install it (.ci/run does)"
        );
        let test = std::thread::current().name().unwrap_or("a test").to_owned();
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!(
                "\n######## SKIPPED in {test}: {what}, so its steps did not run. Install it, \
                 or set {REQUIRE_TOOLS}=1 to make this a failure ########\n\n"
            )
            .as_bytes(),
        );
    }
    found
}
