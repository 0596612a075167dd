//! Rebuilding steps on a thread of their own: the [`Worker`] both the verifier (which checks
//! every step a splitter emits against the input it consumed) and the [`crate::Rebuilder`]
//! (preflate-rs steps, whose recompressor is not `Send` while a blob reader must be) run.
//!
//! A panic inside a rebuild is caught on the worker's thread: the step fails, the worker starts
//! afresh, and a verifier counts the step as a mismatch (the split ends and the stream is kept
//! as it is), whichever kind of splitter submitted it.

use std::{
    collections::VecDeque,
    marker::PhantomData,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::mpsc,
};

use crate::Error;

/// Steps a verifier may have submitted and not yet checked: the rebuild lags at most this far
/// behind the split.
const VERIFY_DEPTH: usize = 2;

/// Rebuilds one deflate stream step by step (one kind of reconstruction data).
pub(crate) trait StepRebuild {
    /// The next step starts a new deflate stream.
    fn reset(&mut self);

    /// Rebuilds one step's compressed bytes from its payload and reconstruction data.
    fn rebuild_step(&mut self, plain: &[u8], data: &[u8]) -> Result<Vec<u8>, Error>;

    /// The next step starts at a checkpoint (see [`crate::Checkpoint`]), from the payload this
    /// rebuilder holds.
    fn checkpoint(&mut self, state: &[u8]) -> Result<(), Error>;
}

enum Job {
    Reset,
    Checkpoint(Vec<u8>),
    Step { plain: Vec<u8>, data: Vec<u8> },
}

/// A step's rebuild, with its payload buffer handed back for reuse.
pub(crate) struct Done {
    pub(crate) out: Result<Vec<u8>, Error>,
    pub(crate) plain: Vec<u8>,
}

/// A thread rebuilding submitted steps in order; it ends when the worker is dropped.
pub(crate) struct Worker {
    jobs: mpsc::SyncSender<Job>,
    done: mpsc::Receiver<Done>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Worker")
    }
}

const ENDED: Error = Error::Thread { what: "ended" };

impl Worker {
    /// Starts a thread rebuilding with an `R` of its own; `depth` steps may be outstanding
    /// without blocking either side.
    pub(crate) fn spawn<R: StepRebuild + Default + 'static>(depth: usize) -> Result<Worker, Error> {
        let (jobs, job_rx) = mpsc::sync_channel::<Job>(depth);
        let (done_tx, done) = mpsc::sync_channel(depth);
        std::thread::Builder::new()
            .name("regzip-rebuild".into())
            .spawn(move || run::<R>(job_rx, done_tx))
            .map_err(|_| Error::Thread {
                what: "could not be started",
            })?;
        Ok(Worker { jobs, done })
    }

    /// The next step starts a new deflate stream.
    pub(crate) fn reset(&self) -> Result<(), Error> {
        self.jobs.send(Job::Reset).map_err(|_| ENDED)
    }

    /// The next step starts at a checkpoint; a checkpoint that fails fails that step.
    pub(crate) fn checkpoint(&self, state: Vec<u8>) -> Result<(), Error> {
        self.jobs.send(Job::Checkpoint(state)).map_err(|_| ENDED)
    }

    /// Hands a step over; [`Worker::collect`] returns the results in order.
    pub(crate) fn submit(&self, plain: Vec<u8>, data: Vec<u8>) -> Result<(), Error> {
        self.jobs.send(Job::Step { plain, data }).map_err(|_| ENDED)
    }

    /// The rebuild of the oldest step submitted and not yet collected.
    pub(crate) fn collect(&self) -> Result<Done, Error> {
        self.done.recv().map_err(|_| ENDED)
    }
}

fn run<R: StepRebuild + Default>(jobs: mpsc::Receiver<Job>, done: mpsc::SyncSender<Done>) {
    let mut rb = R::default();
    // A checkpoint that failed, reported by the next step.
    let mut failed: Option<Error> = None;
    for job in jobs {
        let (plain, data) = match job {
            Job::Reset => {
                rb.reset();
                failed = None;
                continue;
            }
            Job::Checkpoint(state) => {
                match catch_unwind(AssertUnwindSafe(|| rb.checkpoint(&state))) {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => failed = Some(e),
                    Err(_panic) => {
                        rb = R::default();
                        failed = Some(Error::Panicked {
                            what: "a checkpoint",
                        });
                    }
                }
                continue;
            }
            Job::Step { plain, data } => (plain, data),
        };
        let out = match failed.take() {
            Some(e) => Err(e),
            None => match catch_unwind(AssertUnwindSafe(|| rb.rebuild_step(&plain, &data))) {
                Ok(out) => out,
                Err(_panic) => {
                    rb = R::default();
                    Err(Error::Panicked { what: "a rebuild" })
                }
            },
        };
        if done.send(Done { out, plain }).is_err() {
            return;
        }
    }
}

/// Checks every step of a split: rebuilds it from the payload and reconstruction data emitted
/// for it, on a [`Worker`] (at most [`VERIFY_DEPTH`] steps behind), and compares the result
/// with the input bytes the step consumed. Any difference, failure or panic is
/// [`Error::RebuildMismatch`].
pub(crate) struct Verifier<R> {
    worker: Option<Worker>,
    /// Input bytes of the steps submitted and not yet checked.
    unverified: VecDeque<Vec<u8>>,
    /// Trials only measure: nothing is rebuilt.
    enabled: bool,
    rebuild: PhantomData<fn() -> R>,
}

impl<R> std::fmt::Debug for Verifier<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("unverified", &self.unverified.len())
            .field("enabled", &self.enabled)
            .finish()
    }
}

const MISMATCH: Error = Error::RebuildMismatch;

impl<R: StepRebuild + Default + 'static> Verifier<R> {
    pub(crate) fn new(enabled: bool) -> Verifier<R> {
        Verifier {
            worker: None,
            unverified: VecDeque::new(),
            enabled,
            rebuild: PhantomData,
        }
    }

    /// The next step starts a new deflate stream; every step so far must check out.
    pub(crate) fn reset(&mut self) -> Result<(), Error> {
        self.check_all()?;
        if let Some(w) = &self.worker {
            w.reset().map_err(|_| MISMATCH)?;
        }
        Ok(())
    }

    /// Hands a copy of a step over (none when disabled); `want` is the input it must rebuild.
    pub(crate) fn submit(&mut self, plain: &[u8], data: &[u8], want: &[u8]) -> Result<(), Error> {
        if !self.enabled {
            return Ok(());
        }
        while self.unverified.len() >= VERIFY_DEPTH {
            self.check_oldest()?;
        }
        if self.worker.is_none() {
            self.worker = Some(Worker::spawn::<R>(VERIFY_DEPTH)?);
        }
        let Some(w) = &self.worker else {
            return Err(MISMATCH);
        };
        w.submit(plain.to_vec(), data.to_vec())
            .map_err(|_| MISMATCH)?;
        self.unverified.push_back(want.to_vec());
        Ok(())
    }

    /// The next step submitted starts at a checkpoint (`state`); the worker restarts there.
    pub(crate) fn checkpoint(&mut self, state: &[u8]) -> Result<(), Error> {
        if !self.enabled {
            return Ok(());
        }
        if self.worker.is_none() {
            self.worker = Some(Worker::spawn::<R>(VERIFY_DEPTH)?);
        }
        match &self.worker {
            Some(w) => w.checkpoint(state.to_vec()).map_err(|_| MISMATCH),
            None => Err(MISMATCH),
        }
    }

    fn check_oldest(&mut self) -> Result<(), Error> {
        let (Some(want), Some(w)) = (self.unverified.pop_front(), &self.worker) else {
            return Ok(());
        };
        match w.collect() {
            Ok(Done { out: Ok(got), .. }) if got == want => Ok(()),
            _ => Err(MISMATCH),
        }
    }

    /// Waits for every submitted step.
    pub(crate) fn check_all(&mut self) -> Result<(), Error> {
        while !self.unverified.is_empty() {
            self.check_oldest()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rebuilds "steps" by reversing them; panics on a step that says so.
    #[derive(Default)]
    struct Reverse;

    impl StepRebuild for Reverse {
        fn reset(&mut self) {}
        fn rebuild_step(&mut self, plain: &[u8], data: &[u8]) -> Result<Vec<u8>, Error> {
            if data == b"panic" {
                panic!("a rebuild that panics");
            }
            if data == b"fail" {
                return Err(Error::damaged("refused"));
            }
            Ok(plain.iter().rev().copied().collect())
        }
        fn checkpoint(&mut self, state: &[u8]) -> Result<(), Error> {
            if state == b"panic" {
                panic!("a checkpoint that panics");
            }
            if state.is_empty() {
                Ok(())
            } else {
                Err(Error::damaged("refused"))
            }
        }
    }

    fn submit(
        v: &mut Verifier<Reverse>,
        plain: &[u8],
        data: &[u8],
        want: &[u8],
    ) -> Result<(), Error> {
        v.submit(plain, data, want)
    }

    #[test]
    fn matching_steps_pass_and_others_are_mismatches() {
        let mut v = Verifier::<Reverse>::new(true);
        for _ in 0..5 {
            assert_eq!(submit(&mut v, b"abc", b"", b"cba"), Ok(()));
        }
        assert_eq!(v.reset(), Ok(()));
        assert_eq!(submit(&mut v, b"abc", b"", b"abc"), Ok(()));
        assert_eq!(v.check_all(), Err(MISMATCH));
        let mut v = Verifier::<Reverse>::new(true);
        assert_eq!(submit(&mut v, b"abc", b"fail", b"cba"), Ok(()));
        assert_eq!(v.check_all(), Err(MISMATCH));
        let mut off = Verifier::<Reverse>::new(false);
        assert_eq!(submit(&mut off, b"abc", b"fail", b"x"), Ok(()));
        assert_eq!(off.check_all(), Ok(()));
    }

    #[test]
    fn a_failed_checkpoint_fails_the_next_step_only() {
        for state in [&b"bad"[..], b"panic"] {
            let mut v = Verifier::<Reverse>::new(true);
            assert_eq!(v.checkpoint(b""), Ok(()));
            assert_eq!(submit(&mut v, b"abc", b"", b"cba"), Ok(()));
            assert_eq!(v.check_all(), Ok(()));
            assert_eq!(v.checkpoint(state), Ok(()));
            assert_eq!(submit(&mut v, b"abc", b"", b"cba"), Ok(()));
            assert_eq!(v.check_all(), Err(MISMATCH));
            assert_eq!(submit(&mut v, b"abc", b"", b"cba"), Ok(()));
            assert_eq!(v.check_all(), Ok(()));
        }
    }

    #[test]
    fn a_panicking_rebuild_is_a_mismatch_and_the_worker_goes_on() {
        let mut v = Verifier::<Reverse>::new(true);
        assert_eq!(submit(&mut v, b"abc", b"panic", b"cba"), Ok(()));
        assert_eq!(v.check_all(), Err(MISMATCH));
        assert_eq!(submit(&mut v, b"abc", b"", b"cba"), Ok(()));
        assert_eq!(v.check_all(), Ok(()));
    }
}
