//! Output conventions: human text or JSON, logging, progress, errors and exit codes.

use std::{process::ExitCode, time::Duration};

use indicatif::{ProgressBar, ProgressStyle};

/// Exit code when a check found problems.
pub const EXIT_PROBLEMS: u8 = 1;
/// Exit code on error.
pub const EXIT_ERROR: u8 = 2;

/// Logs go to stderr: warnings, `airlock serve`'s audit log and what its accept loop did on
/// SIGHUP or stop; `-v` shows info, `-vv` debug; `RUST_LOG` overrides.
pub fn init_logging(quiet: bool, verbose: u8) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        // The registry's audit log (issue 16) is on unless -q, and so is the answer to a SIGHUP
        // (certificate and accounts reloaded) an operator waits for.
        (false, 0) => "warn,airlock::audit=info,airlock_registry::accept=info",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Prints an error with its cause chain and returns exit code 2.
pub fn fail(e: &anyhow::Error, json: bool) -> ExitCode {
    if json {
        let v = serde_json::json!({ "error": format!("{e:#}") });
        println!("{v}");
    }
    eprintln!("error: {e:#}");
    ExitCode::from(EXIT_ERROR)
}

/// A spinner for work whose length is unknown; hidden when quiet, in JSON mode, or off a tty.
pub fn spinner(msg: &str, hidden: bool) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.set_message(msg.to_owned());
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

/// Bytes for humans: 1.5 GiB.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }
}
