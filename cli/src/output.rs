//! Output conventions: human text or JSON, logging, progress, errors and exit codes.

use std::{process::ExitCode, sync::OnceLock, time::Duration};

use indicatif::{ProgressBar, ProgressStyle};

/// Exit code when a check found problems.
pub const EXIT_PROBLEMS: u8 = 1;
/// Exit code on error.
pub const EXIT_ERROR: u8 = 2;

/// How log lines are written (`--log-format`, `server.log_format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line per event for people.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message` and the event's
    /// fields, and `span` with the fields of the request it belongs to.
    Json,
}

impl LogFormat {
    /// The format `airlock.toml` (or `AIRLOCK_LOG_FORMAT`) asks for.
    pub fn from_config(format: airlock_config::LogFormat) -> LogFormat {
        match format {
            airlock_config::LogFormat::Json => LogFormat::Json,
            _ => LogFormat::Text,
        }
    }
}

/// The format logging was started with.
static LOG_FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Logs go to stderr, as text or JSON lines; `-v` shows info, `-vv` debug; `RUST_LOG` overrides.
pub fn init_logging(quiet: bool, verbose: u8, format: LogFormat) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    let _ = LOG_FORMAT.set(format);
}

/// Prints an error with its cause chain and returns exit code 2. With JSON logs the error is a
/// log line too, so that stderr holds nothing but JSON.
pub fn fail(e: &anyhow::Error, json: bool) -> ExitCode {
    if json {
        let v = serde_json::json!({ "error": format!("{e:#}") });
        println!("{v}");
    }
    match LOG_FORMAT.get() {
        Some(LogFormat::Json) => tracing::error!(error = %format!("{e:#}"), "command failed"),
        _ => eprintln!("error: {e:#}"),
    }
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

/// A bar over `total` bytes of work; hidden when quiet, in JSON mode, or off a tty.
pub fn byte_bar(msg: &str, total: u64, hidden: bool) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template("{msg} {wide_bar} {bytes}/{total_bytes} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_message(msg.to_owned());
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
