//! Writeback started early: while a put appends to a pack, the bytes already appended are
//! flushed to disk on a background thread, so the sync before the put's commit waits only for
//! the last few megabytes instead of the whole put.
//!
//! A background flush is only a head start: the pack's own sync still runs before every
//! commit. Its error is kept and reported by that sync, because the kernel reports a failed
//! writeback once per open file, and a sync after a failed background flush could succeed
//! without the lost bytes being on disk.

use std::{fs::File, io, thread::JoinHandle};

/// Bytes appended after which a background flush starts (if none is running).
const WRITEBACK_BYTES: u64 = 4 * 1024 * 1024;

/// The background flushes of one pack file.
#[derive(Debug, Default)]
pub(crate) struct Writeback {
    /// Bytes appended since the last flush started.
    since: u64,
    running: Option<JoinHandle<io::Result<()>>>,
    /// The first error a background flush met, until a sync reports it.
    failed: Option<io::Error>,
}

impl Writeback {
    /// Notes `n` bytes appended to `file`; starts a flush of everything so far when enough has
    /// piled up and the previous flush is done. Never blocks.
    pub(crate) fn appended(&mut self, file: &File, n: u64) {
        self.since += n;
        if self.since < WRITEBACK_BYTES {
            return;
        }
        if self.running.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        self.reap();
        let Ok(clone) = file.try_clone() else {
            // No handle for the thread: the sync before the commit does all the work.
            return;
        };
        let spawned = std::thread::Builder::new()
            .name("airlock-writeback".into())
            .spawn(move || clone.sync_data());
        if let Ok(h) = spawned {
            self.running = Some(h);
            self.since = 0;
        }
    }

    /// Waits for the running flush, if any, and returns the first error any flush met (once).
    pub(crate) fn finish(&mut self) -> io::Result<()> {
        self.reap();
        match self.failed.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Joins the running flush and keeps its error.
    fn reap(&mut self) {
        if let Some(h) = self.running.take() {
            let result = h
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a writeback thread panicked")));
            if let Err(e) = result {
                self.failed.get_or_insert(e);
            }
        }
    }
}

impl Drop for Writeback {
    fn drop(&mut self) {
        // A flush outliving its pack writer is harmless, but do not leave it detached.
        self.reap();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn flushes_start_after_enough_bytes_and_finish_reports_success() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = File::create(dir.path().join("p")).unwrap();
        let mut wb = Writeback::default();
        let block = vec![7u8; 1024 * 1024];
        for _ in 0..3 {
            f.write_all(&block).unwrap();
            wb.appended(&f, block.len() as u64);
        }
        assert!(
            wb.running.is_none(),
            "no flush before {WRITEBACK_BYTES} bytes"
        );
        for _ in 0..6 {
            f.write_all(&block).unwrap();
            wb.appended(&f, block.len() as u64);
        }
        assert!(wb.running.is_some() || wb.since < WRITEBACK_BYTES);
        wb.finish().unwrap();
        assert!(wb.running.is_none());
    }

    #[test]
    fn an_error_of_a_background_flush_is_reported_once_by_finish() {
        let mut wb = Writeback::default();
        wb.failed = Some(io::Error::other("disk gone"));
        assert_eq!(wb.finish().unwrap_err().to_string(), "disk gone");
        wb.finish().unwrap();
    }
}
