//! Output conventions: human text or JSON, logging, progress, errors and exit codes.
//!
//! Everything a command prints goes through [`outln!`] and [`errln!`], and every bar draws
//! to [`draw_target`]: on this process's stdout and stderr, or, for a command handed to a
//! running `airlock serve` (`remote`), over the socket to the client's, so the user sees the
//! same output, bars and prompts either way. Which one is a property of the thread running
//! the command ([`Remote::run`]); threads a command starts draw through bars made on it.

use std::{
    cell::RefCell,
    fmt,
    io::{self, BufRead, IsTerminal, Write},
    os::unix::net::UnixStream,
    process::ExitCode,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};

/// Prints a line on the command's stdout (see the module documentation).
macro_rules! outln {
    () => {
        $crate::output::write_out(format_args!(""))
    };
    ($($t:tt)*) => {
        $crate::output::write_out(format_args!($($t)*))
    };
}
pub(crate) use outln;

/// Prints a line on the command's stderr (see the module documentation).
macro_rules! errln {
    () => {
        $crate::output::write_err(format_args!(""))
    };
    ($($t:tt)*) => {
        $crate::output::write_err(format_args!($($t)*))
    };
}
pub(crate) use errln;

/// A frame from the server to the client: bytes for its stdout.
pub(crate) const TAG_STDOUT: u8 = 1;
/// Bytes for its stderr.
pub(crate) const TAG_STDERR: u8 = 2;
/// The command ended: one byte, its exit code.
pub(crate) const TAG_EXIT: u8 = 3;
/// Read a line from standard input and send it back ([`TAG_INPUT`]).
pub(crate) const TAG_READ_LINE: u8 = 4;
/// Read standard input to its end and send it back.
pub(crate) const TAG_READ_ALL: u8 = 5;
/// From the client: what was read (empty at end of input).
pub(crate) const TAG_INPUT: u8 = 6;
/// Read a line from the terminal without echoing it (a password) and send it back.
pub(crate) const TAG_READ_SECRET: u8 = 7;

/// Largest frame either side accepts.
pub(crate) const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// The client of a command running in the server: its socket and its terminal.
#[derive(Clone, Debug)]
pub struct Remote {
    stream: Arc<Mutex<UnixStream>>,
    /// Whether the client's stderr is a terminal (bars are drawn there).
    pub stderr_tty: bool,
    /// Whether the client's stdin is a terminal (prompts are asked there).
    pub stdin_tty: bool,
    /// The client's terminal width.
    pub width: u16,
}

thread_local! {
    static REMOTE: RefCell<Option<Remote>> = const { RefCell::new(None) };
}

impl Remote {
    pub(crate) fn new(stream: UnixStream, stderr_tty: bool, stdin_tty: bool, width: u16) -> Remote {
        Remote {
            stream: Arc::new(Mutex::new(stream)),
            stderr_tty,
            stdin_tty,
            width,
        }
    }

    /// Runs `f` on this thread with its output going to this client.
    pub(crate) fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        REMOTE.with(|r| *r.borrow_mut() = Some(self.clone()));
        let out = f();
        REMOTE.with(|r| *r.borrow_mut() = None);
        out
    }

    /// Sends one frame. A client that went away is not an error for the command: it goes on
    /// (the work is the server's now; its log says how it ended).
    pub(crate) fn send(&self, tag: u8, bytes: &[u8]) -> io::Result<()> {
        let mut s = self.stream.lock().unwrap_or_else(|p| p.into_inner());
        for piece in bytes
            .chunks(MAX_FRAME_BYTES)
            .chain(bytes.is_empty().then_some(&[][..]))
        {
            let len = u32::try_from(piece.len()).unwrap_or(u32::MAX);
            let mut frame = Vec::with_capacity(5 + piece.len());
            frame.push(tag);
            frame.extend_from_slice(&len.to_be_bytes());
            frame.extend_from_slice(piece);
            s.write_all(&frame)?;
        }
        Ok(())
    }

    /// Asks the client for input (`TAG_READ_LINE` or `TAG_READ_ALL`) and waits for it.
    fn input(&self, tag: u8) -> io::Result<Vec<u8>> {
        self.send(tag, &[])?;
        let mut s = self.stream.lock().unwrap_or_else(|p| p.into_inner());
        let (got, bytes) = read_frame(&mut *s)?;
        if got != TAG_INPUT {
            return Err(io::Error::other(format!(
                "the client sent frame {got}, not input"
            )));
        }
        Ok(bytes)
    }
}

/// Reads one frame: its tag and bytes (at most [`MAX_FRAME_BYTES`]).
pub(crate) fn read_frame(r: &mut impl io::Read) -> io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    r.read_exact(&mut head)?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a frame of {len} bytes is over the limit"),
        ));
    }
    let mut bytes = vec![0u8; len];
    r.read_exact(&mut bytes)?;
    Ok((head[0], bytes))
}

/// The client this thread's command runs for, if it runs in the server.
pub(crate) fn remote() -> Option<Remote> {
    REMOTE.with(|r| r.borrow().clone())
}

/// Runs `f` with its output going where `remote` says (as captured by [`remote`] on the
/// command's thread): for reporters called back on threads the command started.
pub(crate) fn within<R>(remote: Option<&Remote>, f: impl FnOnce() -> R) -> R {
    match remote {
        Some(r) if REMOTE.with(|cur| cur.borrow().is_none()) => r.run(f),
        _ => f(),
    }
}

/// Writes a line to the command's stdout ([`outln!`]).
pub(crate) fn write_out(args: fmt::Arguments<'_>) {
    match remote() {
        Some(r) => {
            let _ = r.send(TAG_STDOUT, format!("{args}\n").as_bytes());
        }
        None => println!("{args}"),
    }
}

/// Writes a line to the command's stderr ([`errln!`]).
pub(crate) fn write_err(args: fmt::Arguments<'_>) {
    match remote() {
        Some(r) => {
            let _ = r.send(TAG_STDERR, format!("{args}\n").as_bytes());
        }
        None => eprintln!("{args}"),
    }
}

/// Writes text to the command's stderr without a newline (a prompt).
pub(crate) fn write_err_str(text: &str) {
    match remote() {
        Some(r) => {
            let _ = r.send(TAG_STDERR, text.as_bytes());
        }
        None => {
            eprint!("{text}");
            let _ = io::stderr().flush();
        }
    }
}

/// Reads a line from the command's stdin (`None` at its end or on error).
pub(crate) fn read_line() -> Option<String> {
    match remote() {
        Some(r) => r
            .input(TAG_READ_LINE)
            .ok()
            .filter(|b| !b.is_empty())
            .map(|b| String::from_utf8_lossy(&b).into_owned()),
        None => {
            let mut line = String::new();
            match io::stdin().lock().read_line(&mut line) {
                Ok(0) | Err(_) => None,
                Ok(_) => Some(line),
            }
        }
    }
}

/// Asks for a secret (a password) on the command's terminal, without echo: `prompt` on its
/// stderr, the answer read from its terminal. Ask only when [`interactive`].
pub(crate) fn read_secret(prompt: &str) -> io::Result<String> {
    write_err_str(prompt);
    let line = match remote() {
        Some(r) => String::from_utf8(r.input(TAG_READ_SECRET)?)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?,
        None => console::Term::stderr().read_secure_line()?,
    };
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Reads the command's stdin to its end.
pub(crate) fn read_all() -> io::Result<String> {
    match remote() {
        Some(r) => String::from_utf8(r.input(TAG_READ_ALL)?)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        None => {
            let mut text = String::new();
            io::Read::read_to_string(&mut io::stdin(), &mut text)?;
            Ok(text)
        }
    }
}

/// Whether the command's stdin and stderr are both terminals (a prompt can be answered).
pub(crate) fn interactive() -> bool {
    match remote() {
        Some(r) => r.stdin_tty && r.stderr_tty,
        None => io::stdin().is_terminal() && io::stderr().is_terminal(),
    }
}

/// Where bars draw: this process's stderr, or the client's terminal (hidden when the client's
/// stderr is not one, as indicatif hides a local bar off a terminal).
pub(crate) fn draw_target() -> ProgressDrawTarget {
    match remote() {
        Some(r) if r.stderr_tty => ProgressDrawTarget::term_like(Box::new(RemoteTerm(r))),
        Some(_) => ProgressDrawTarget::hidden(),
        None => ProgressDrawTarget::stderr(),
    }
}

/// The client's terminal as indicatif sees it: what it draws is sent as stderr bytes with
/// the terminal's own control sequences.
#[derive(Debug)]
struct RemoteTerm(Remote);

impl RemoteTerm {
    fn put(&self, s: &str) -> io::Result<()> {
        self.0.send(TAG_STDERR, s.as_bytes())
    }
}

impl TermLike for RemoteTerm {
    fn width(&self) -> u16 {
        self.0.width
    }

    fn move_cursor_up(&self, n: usize) -> io::Result<()> {
        if n == 0 {
            Ok(())
        } else {
            self.put(&format!("\x1b[{n}A"))
        }
    }

    fn move_cursor_down(&self, n: usize) -> io::Result<()> {
        if n == 0 {
            Ok(())
        } else {
            self.put(&format!("\x1b[{n}B"))
        }
    }

    fn move_cursor_right(&self, n: usize) -> io::Result<()> {
        if n == 0 {
            Ok(())
        } else {
            self.put(&format!("\x1b[{n}C"))
        }
    }

    fn move_cursor_left(&self, n: usize) -> io::Result<()> {
        if n == 0 {
            Ok(())
        } else {
            self.put(&format!("\x1b[{n}D"))
        }
    }

    fn write_line(&self, s: &str) -> io::Result<()> {
        self.put(&format!("{s}\n"))
    }

    fn write_str(&self, s: &str) -> io::Result<()> {
        self.put(s)
    }

    fn clear_line(&self) -> io::Result<()> {
        self.put("\r\x1b[2K")
    }

    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
}

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

/// Logs go to stderr, as text or JSON lines: warnings, `airlock serve`'s audit log and what its
/// accept loop did on SIGHUP or stop; `-v` shows info, `-vv` debug; `RUST_LOG` overrides.
pub fn init_logging(quiet: bool, verbose: u8, format: LogFormat) {
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
        outln!("{v}");
    }
    // A command run for a client of the server (`remote`) tells its client, whatever the
    // server's log format.
    let remote = REMOTE.with(|r| r.borrow().is_some());
    match LOG_FORMAT.get() {
        Some(LogFormat::Json) if !remote => {
            tracing::error!(error = %format!("{e:#}"), "command failed")
        }
        _ => errln!("error: {e:#}"),
    }
    ExitCode::from(EXIT_ERROR)
}

/// A spinner for work whose length is unknown; hidden when quiet, in JSON mode, or off a tty.
pub fn spinner(msg: &str, hidden: bool) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(None, draw_target());
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
    let pb = ProgressBar::with_draw_target(Some(total), draw_target());
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
