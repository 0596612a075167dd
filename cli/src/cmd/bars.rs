//! Progress bars for bundle work (`export`, `import`): one bar per phase over bytes, notes
//! printed above it; hidden with `-q`, `--json`, or off a terminal.

use std::{path::Path, sync::Mutex, time::Duration};

use airlock_bundle::Progress;
use airlock_registry::ImportPhase;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Bars on stderr for one command.
#[derive(Debug)]
pub struct Bars {
    bar: Mutex<Option<ProgressBar>>,
    hidden: bool,
    quiet: bool,
    /// The client, when the command runs in the server (phases begin on other threads).
    remote: Option<crate::output::Remote>,
    /// The server's import gauges, when an import runs in the server.
    gauges: Option<Gauges>,
}

/// An import's progress as the server's metrics show it (issue 15): the phase and its bytes.
struct Gauges {
    metrics: airlock_registry::Metrics,
    at: Mutex<(ImportPhase, u64, u64)>,
}

impl std::fmt::Debug for Gauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gauges")
    }
}

impl Gauges {
    fn set(&self, change: impl FnOnce(&mut (ImportPhase, u64, u64))) {
        let mut at = self.at.lock().unwrap_or_else(|p| p.into_inner());
        change(&mut at);
        self.metrics.import_progress(at.0, at.1, at.2);
    }
}

impl Drop for Gauges {
    fn drop(&mut self) {
        self.metrics.import_finished();
    }
}

impl Bars {
    /// Bars unless `hidden`; notes unless `quiet`.
    pub fn new(hidden: bool, quiet: bool) -> Bars {
        Bars {
            bar: Mutex::new(None),
            hidden,
            quiet,
            remote: crate::output::remote(),
            gauges: None,
        }
    }

    /// Also shows the work in the server's import gauges (an import run in the server); they
    /// are cleared when the bars go.
    pub fn with_import_gauges(mut self, metrics: Option<airlock_registry::Metrics>) -> Bars {
        self.gauges = metrics.map(|metrics| Gauges {
            metrics,
            at: Mutex::new((ImportPhase::Read, 0, 0)),
        });
        self
    }

    /// Clears the current bar.
    pub fn clear(&self) {
        if let Some(b) = self.lock().take() {
            b.finish_and_clear();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<ProgressBar>> {
        self.bar.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Progress for Bars {
    fn begin(&self, phase: &str, total: u64) {
        if let Some(g) = &self.gauges {
            // Volumes read and checked, then blobs rebuilt and checked.
            let kind = if phase.starts_with("volume") || phase.starts_with("check") {
                ImportPhase::Read
            } else {
                ImportPhase::Verify
            };
            g.set(|at| *at = (kind, 0, total));
        }
        let mut slot = self.lock();
        if let Some(b) = slot.take() {
            b.finish_and_clear();
        }
        let target = if self.hidden {
            ProgressDrawTarget::hidden()
        } else {
            crate::output::within(self.remote.as_ref(), crate::output::draw_target)
        };
        let bar = ProgressBar::with_draw_target(Some(total), target);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:18} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message(phase.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        *slot = Some(bar);
    }

    fn advance(&self, bytes: u64) {
        if let Some(g) = &self.gauges {
            g.set(|at| at.1 = at.1.saturating_add(bytes));
        }
        if let Some(b) = self.lock().as_ref() {
            b.inc(bytes);
        }
    }

    fn volume(&self, path: &Path, number: u32, count: u32) {
        self.note(&format!("volume {number}/{count}: {}", path.display()));
    }

    fn note(&self, message: &str) {
        if self.quiet {
            return;
        }
        match self.lock().as_ref() {
            Some(b) if !self.hidden => b.println(message),
            _ => crate::output::within(self.remote.as_ref(), || {
                crate::output::errln!("{message}");
            }),
        }
    }
}
