//! Running the programs a benchmark compares: the `airlock` binary (built on demand) and tools
//! found on `PATH`, each of which must succeed.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

/// The `airlock` binary: `$AIRLOCK_BIN`, else built in release into this bench's target dir.
pub fn airlock_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("AIRLOCK_BIN") {
        return p.into();
    }
    // A bench runs as TARGET/release/deps/NAME-HASH.
    let exe = std::env::current_exe().expect("current exe");
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("TARGET/release/deps");
    let target = profile.parent().expect("TARGET");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("building the airlock binary: cargo build --release -p airlock");
    let status = Command::new(cargo)
        .args(["build", "--release", "-q", "-p", "airlock", "--target-dir"])
        .arg(target)
        .current_dir(workspace)
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build --release -p airlock failed");
    profile.join("airlock")
}

/// Runs `c` to completion; panics with its output unless it succeeded.
pub fn must(c: &mut Command, what: &str) -> Output {
    let o = c.output().unwrap_or_else(|e| panic!("running {what}: {e}"));
    assert!(
        o.status.success(),
        "{what} {:?} failed: {:?}\n{}\n{}",
        c.get_args().collect::<Vec<_>>(),
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// The first file called `name` in a directory of `$PATH`.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A command running the `airlock` binary `bin` (through `wrapper`'s arguments first when
/// given, e.g. `taskset -c 0`), with stdin closed and none of this process's `AIRLOCK_*`
/// variables (a benchmark's own settings must not configure the program measured).
pub fn airlock_command(bin: &Path, wrapper: &[&str]) -> Command {
    let mut c = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    c.stdin(std::process::Stdio::null());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AIRLOCK_") {
            c.env_remove(k);
        }
    }
    c
}
