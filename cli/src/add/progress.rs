//! What `airlock add` tells the user while it works: indicatif bars per blob and overall
//! (hidden with `-q` and off a terminal), or one JSON object per line with `--json`.

use std::{
    io::{self, Read},
    time::Duration,
};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

use crate::output;

/// How progress and results are shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Errors only.
    Quiet,
    /// Bars on stderr (when it is a terminal) and one result line per image on stdout.
    Human,
    /// JSON lines on stdout, no bars.
    Json,
}

/// Progress of one `airlock add`: an overall bar over the bytes to fetch, one bar per blob in
/// flight, and events.
#[derive(Debug)]
pub struct Progress {
    mode: Mode,
    multi: MultiProgress,
    overall: ProgressBar,
}

impl Progress {
    /// A reporter in `mode`; bars only in human mode.
    pub fn new(mode: Mode) -> Progress {
        let target = match mode {
            Mode::Human => ProgressDrawTarget::stderr(),
            Mode::Quiet | Mode::Json => ProgressDrawTarget::hidden(),
        };
        let multi = MultiProgress::with_draw_target(target);
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template(
                "{msg:12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        overall.set_message("total");
        Progress {
            mode,
            multi,
            overall,
        }
    }

    /// Announces work: `bytes` in `blobs` blobs still to store.
    pub fn plan(&self, blobs: usize, bytes: u64) {
        self.overall.set_length(bytes);
        if self.mode == Mode::Human && blobs > 0 {
            self.overall.enable_steady_tick(Duration::from_millis(200));
        }
        self.event(json!({ "event": "plan", "blobs": blobs, "bytes": bytes }));
    }

    /// A bar for one blob being stored; finish it with [`Progress::blob_done`].
    pub fn blob_bar(&self, digest: &str, size: u64) -> ProgressBar {
        if self.mode != Mode::Human {
            return ProgressBar::hidden();
        }
        let bar = self.multi.add(ProgressBar::new(size));
        bar.set_style(
            ProgressStyle::with_template("{msg:12} [{bar:30}] {bytes}/{total_bytes}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_message(short(digest).to_owned());
        bar
    }

    /// Wraps `src` so that bytes read move `bar` and the overall bar.
    pub fn counting<'a, R: Read>(&'a self, src: R, bar: &'a ProgressBar) -> Counting<'a, R> {
        Counting {
            inner: src,
            bar,
            overall: &self.overall,
        }
    }

    /// One blob is stored (`stored`: its bytes were new to the store or read now; else it was
    /// already there and nothing was read).
    pub fn blob_done(&self, bar: Option<ProgressBar>, digest: &str, size: u64, stored: bool) {
        if let Some(bar) = bar {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        let status = if stored { "stored" } else { "present" };
        self.event(json!({ "event": "blob", "digest": digest, "size": size, "status": status }));
    }

    /// A line for humans (stderr, above the bars); nothing in JSON or quiet mode.
    pub fn note(&self, text: &str) {
        if self.mode == Mode::Human {
            let _ = self.multi.suspend(|| writeln_stderr(text));
        }
    }

    /// A result: one line for humans on stdout, or the JSON event.
    pub fn result(&self, human: &str, event: Value) {
        match self.mode {
            Mode::Quiet => {}
            Mode::Human => self.multi.suspend(|| println!("{human}")),
            Mode::Json => println!("{event}"),
        }
    }

    /// An event for JSON mode only.
    pub fn event(&self, event: Value) {
        if self.mode == Mode::Json {
            println!("{event}");
        }
    }

    /// Clears the bars.
    pub fn finish(&self) {
        self.overall.finish_and_clear();
        let _ = self.multi.clear();
    }

    /// Human byte counts, for messages.
    pub fn bytes(n: u64) -> String {
        output::bytes(n)
    }
}

fn writeln_stderr(text: &str) -> io::Result<()> {
    use io::Write as _;
    writeln!(io::stderr(), "{text}")
}

/// The first hex digits of a digest, for bars.
pub fn short(digest: &str) -> &str {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    hex.get(..12).unwrap_or(hex)
}

/// A reader that moves progress bars.
#[derive(Debug)]
pub struct Counting<'a, R> {
    inner: R,
    bar: &'a ProgressBar,
    overall: &'a ProgressBar,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        self.overall.inc(n as u64);
        Ok(n)
    }
}
