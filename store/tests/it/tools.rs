//! The external tools some tests run (gzip, pigz, python3, GNU tar) and the Go fixtures CI
//! makes. Without one, a test skips what needs it and says so straight on the process's stderr
//! (libtest captures `eprintln!` of passing tests, so such a note would go unseen); under
//! `AIRLOCK_REQUIRE_TOOLS=1`, which `.ci/run` sets, it fails instead, naming the tool and the
//! Debian package that provides it.

use std::io::Write;

/// The variable that turns a missing tool into a test failure.
pub const REQUIRE_TOOLS: &str = "AIRLOCK_REQUIRE_TOOLS";

/// Whether a missing tool fails the test: [`REQUIRE_TOOLS`] is set to anything but `0`.
pub fn required() -> bool {
    std::env::var_os(REQUIRE_TOOLS).is_some_and(|v| !v.is_empty() && v != "0")
}

/// What provides `tool` on Debian.
fn provider(tool: &str) -> &'static str {
    match tool {
        "gzip" => "package gzip",
        "pigz" => "package pigz",
        "python3" => "package python3",
        "tar" => "package tar",
        "GO_GZIP_FIXTURES" => {
            "packages golang-go and golang-github-klauspost-pgzip-dev, then \
             `tools/go-gzip/make-fixtures.sh DIR large` and GO_GZIP_FIXTURES=DIR"
        }
        _ => "no known package",
    }
}

/// Whether `tool` is on PATH; when it is not, [`unavailable`] reports it with `without`.
pub fn found(tool: &str, without: &str) -> bool {
    let on_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()));
    if !on_path {
        unavailable(tool, "is not on PATH", without);
    }
    on_path
}

/// The test cannot use `tool` (`problem`, e.g. "is not on PATH"), and `without` says what it
/// does instead: a panic under [`REQUIRE_TOOLS`], else a note on stderr that libtest shows.
pub fn unavailable(tool: &str, problem: &str, without: &str) {
    let what = format!("`{tool}` {problem} (Debian: {})", provider(tool));
    assert!(
        !required(),
        "{what}, and {REQUIRE_TOOLS} is set: install it (.ci/run does)"
    );
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let _ = writeln!(
        std::io::stderr(),
        "\n######## SKIPPED in {test}: {what}, so {without}. Install it, or set \
         {REQUIRE_TOOLS}=1 to make this a failure ########\n"
    );
}
