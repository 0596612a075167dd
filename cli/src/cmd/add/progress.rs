//! What `airlock add` tells the user while it works: indicatif bars per blob and overall
//! (hidden with `-q` and off a terminal), or one JSON object per line with `--json`. The
//! library reports through [`airlock_ingest::Progress`]; this is where it is drawn and printed.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use airlock_ingest::{AppReport, Committed, ImageReport, Summary};
use airlock_oci::Descriptor;
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
    /// The bar of each blob in flight, by digest.
    bars: Mutex<HashMap<String, ProgressBar>>,
    /// The client, when the command runs in the server (callbacks come on other threads).
    remote: Option<output::Remote>,
}

impl Progress {
    /// A reporter in `mode`; bars only in human mode.
    pub fn new(mode: Mode) -> Progress {
        let target = match mode {
            Mode::Human => output::draw_target(),
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
            bars: Mutex::new(HashMap::new()),
            remote: output::remote(),
        }
    }

    /// A result: one line for humans on stdout, or the JSON event.
    fn result(&self, human: &str, event: Value) {
        output::within(self.remote.as_ref(), || self.print_result(human, event));
    }

    fn print_result(&self, human: &str, event: Value) {
        match self.mode {
            Mode::Quiet => {}
            Mode::Human => self.multi.suspend(|| crate::output::outln!("{human}")),
            Mode::Json => crate::output::outln!("{event}"),
        }
    }

    /// An event for JSON mode only.
    fn event(&self, event: Value) {
        output::within(self.remote.as_ref(), || self.print_event(event));
    }

    fn print_event(&self, event: Value) {
        if self.mode == Mode::Json {
            crate::output::outln!("{event}");
        }
    }

    fn blob_event(&self, blob: &Descriptor, status: &str) {
        self.event(json!({
            "event": "blob",
            "digest": blob.digest,
            "size": blob.size,
            "status": status,
        }));
    }
}

fn word(outcome: Committed) -> (&'static str, &'static str) {
    match outcome {
        Committed::Added => ("added", "added"),
        Committed::Present => ("already present", "present"),
    }
}

impl airlock_ingest::Progress for Progress {
    fn plan(&self, blobs: usize, bytes: u64) {
        self.overall.set_length(bytes);
        if self.mode == Mode::Human && blobs > 0 {
            self.overall.enable_steady_tick(Duration::from_millis(200));
        }
        self.event(json!({ "event": "plan", "blobs": blobs, "bytes": bytes }));
    }

    fn blob_present(&self, blob: &Descriptor) {
        self.blob_event(blob, "present");
    }

    fn blob_started(&self, blob: &Descriptor) {
        if self.mode != Mode::Human {
            return;
        }
        let bar = self.multi.add(ProgressBar::new(blob.size));
        bar.set_style(
            ProgressStyle::with_template("{msg:12} [{bar:30}] {bytes}/{total_bytes}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_message(short(blob.digest.as_str()).to_owned());
        if let Ok(mut bars) = self.bars.lock() {
            bars.insert(blob.digest.to_string(), bar);
        }
    }

    fn blob_read(&self, blob: &Descriptor, bytes: u64) {
        if let Some(bar) = self
            .bars
            .lock()
            .ok()
            .and_then(|b| b.get(blob.digest.as_str()).cloned())
        {
            bar.inc(bytes);
        }
        self.overall.inc(bytes);
    }

    fn blob_finished(&self, blob: &Descriptor, stored: bool) {
        let bar = self
            .bars
            .lock()
            .ok()
            .and_then(|mut b| b.remove(blob.digest.as_str()));
        if let Some(bar) = bar {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        // A failed blob is said to have failed; the add then fails (exit 2) naming the cause.
        self.blob_event(blob, if stored { "stored" } else { "failed" });
    }

    fn blobs_done(&self, stored: Option<(usize, u64)>) {
        self.overall.finish_and_clear();
        let _ = self.multi.clear();
        if let Some((blobs, bytes)) = stored.filter(|(blobs, _)| *blobs > 0) {
            self.note(&format!("stored {blobs} blobs ({})", output::bytes(bytes)));
        }
    }

    fn note(&self, text: &str) {
        if self.mode == Mode::Human {
            output::within(self.remote.as_ref(), || {
                self.multi.suspend(|| crate::output::errln!("{text}"));
            });
        }
    }

    fn image(&self, r: &ImageReport) {
        let (word, status) = word(r.outcome);
        let names = if r.tags.is_empty() {
            format!("{}@{}", r.repo, r.root.digest)
        } else {
            r.tags
                .iter()
                .map(|t| format!("{}:{t}", r.repo))
                .collect::<Vec<_>>()
                .join(", ")
        };
        self.result(
            &format!("{word}: {names} {}", r.root.digest),
            json!({
                "event": "image",
                "status": status,
                "source": r.label,
                "repository": r.repo,
                "tags": r.tags,
                "digest": r.root.digest,
                "media_type": r.root.media_type,
                "manifests": r.manifests,
                "blobs": r.blobs,
            }),
        );
    }

    fn app(&self, r: &AppReport) {
        let (word, status) = word(r.outcome);
        self.result(
            &format!(
                "{word}: app {} {} as {}:{} {}",
                r.name, r.version, r.repo, r.version, r.digest
            ),
            json!({
                "event": "app",
                "status": status,
                "name": r.name,
                "version": r.version,
                "repository": r.repo,
                "tag": r.version,
                "digest": r.digest,
                "images": r.images,
            }),
        );
    }

    fn done(&self, s: &Summary) {
        self.event(json!({
            "event": "done",
            "images": s.images,
            "added": s.added,
            "blobs_stored": s.blobs_stored,
            "bytes_stored": s.bytes_stored,
        }));
    }
}

/// The first hex digits of a digest, for bars.
fn short(digest: &str) -> &str {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    hex.get(..12).unwrap_or(hex)
}
