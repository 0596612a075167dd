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
