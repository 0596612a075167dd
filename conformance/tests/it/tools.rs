//! Running real clients: find them on PATH, skip loudly when absent (or fail under
//! `AIRLOCK_REQUIRE_TOOLS=1`, which `.ci/run` sets), run them with a deadline and fail with
//! everything they printed.

use std::{
    io::{Read, Write},
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// The variable that turns a missing client into a test failure.
pub const REQUIRE_TOOLS: &str = "AIRLOCK_REQUIRE_TOOLS";

/// What a finished client printed.
#[derive(Debug)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
}

/// The Debian package that provides `binary`.
fn package(binary: &str) -> &'static str {
    match binary {
        "skopeo" => "skopeo",
        "containerd" | "ctr" => "containerd",
        "htpasswd" => "apache2-utils",
        _ => "unknown",
    }
}

/// The binary's path when it is on PATH. When it is not, the interop test fails under
/// [`REQUIRE_TOOLS`] (set to anything but `0`), naming the binary and its package; otherwise it
/// skips, loudly, so that `cargo test` works on a machine without skopeo or containerd.
pub fn find(binary: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(binary))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let what = format!(
            "`{binary}` is not on PATH (Debian: package {})",
            package(binary)
        );
        let required = std::env::var_os(REQUIRE_TOOLS).is_some_and(|v| !v.is_empty() && v != "0");
        assert!(
            !required,
            "{what}, and {REQUIRE_TOOLS} is set: install it (.ci/run does)"
        );
        let test = std::thread::current().name().unwrap_or("a test").to_owned();
        // Straight to the process's stderr: libtest captures eprintln! of passing tests, and a
        // skip must be seen.
        let _ = writeln!(
            std::io::stderr(),
            "\n######## SKIPPED in {test}: {what}, so this interop test did not run. Install \
             it, or set {REQUIRE_TOOLS}=1 to make this a failure ########\n"
        );
    }
    found
}

/// Runs `command` to completion within `deadline`; panics, showing the command and its output,
/// when it fails or overruns.
pub fn run(command: &mut Command, deadline: Duration) -> Output {
    match run_any(command, deadline) {
        (Ok(()), output) => output,
        (Err(why), output) => panic!(
            "{why}\n--- stdout\n{}\n--- stderr\n{}",
            output.stdout, output.stderr
        ),
    }
}

/// Runs `command`, which must fail (a refused login, a denied push); panics when it succeeds
/// or overruns. Returns what it printed.
pub fn run_failing(command: &mut Command, deadline: Duration) -> Output {
    let shown = format!("{command:?}");
    match run_any(command, deadline) {
        (Ok(()), output) => panic!(
            "{shown} succeeded but must fail\n--- stdout\n{}\n--- stderr\n{}",
            output.stdout, output.stderr
        ),
        (Err(why), output) if why.contains("did not finish") => panic!(
            "{why}\n--- stdout\n{}\n--- stderr\n{}",
            output.stdout, output.stderr
        ),
        (Err(_), output) => output,
    }
}

/// Runs `command` within `deadline`: whether it succeeded (else why not) and what it printed.
fn run_any(command: &mut Command, deadline: Duration) -> (Result<(), String>, Output) {
    let shown = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
    // Drain both pipes on threads so a chatty client cannot block on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the client") {
            break Some(status);
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = Output {
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    };
    let result = match status {
        Some(status) if status.success() => Ok(()),
        Some(status) => Err(format!("{shown} failed ({status})")),
        None => Err(format!("{shown} did not finish within {deadline:?}")),
    };
    (result, output)
}

/// An htpasswd file of bcrypt hashes made by apache2-utils' `htpasswd -B`, as a site would
/// make it; `None` (skipped loudly, or a failure under [`REQUIRE_TOOLS`]) without htpasswd.
pub fn htpasswd(dir: &std::path::Path, accounts: &[(&str, &str)]) -> Option<PathBuf> {
    let bin = find("htpasswd")?;
    let file = dir.join("htpasswd");
    for (i, (user, password)) in accounts.iter().enumerate() {
        let mut command = Command::new(&bin);
        command.arg(if i == 0 { "-cbB" } else { "-bB" });
        command.arg(&file).arg(user).arg(password);
        run(&mut command, Duration::from_secs(30));
    }
    Some(file)
}
