//! [`Verifier`]: rebuilds each split step from the payload and reconstruction data emitted for
//! it, on a thread of its own (at most [`VERIFY_DEPTH`] steps behind the split), and compares
//! the result with the input bytes the step consumed.

use std::{collections::VecDeque, sync::mpsc};

use super::step::StepRebuilder;
use crate::{gzip::Halt, layer::OpaqueReason};

/// Steps the verifying rebuild may lag behind the split.
const VERIFY_DEPTH: usize = 2;

enum Job {
    Reset,
    Step(Vec<u8>, Vec<u8>),
}

struct Worker {
    jobs: mpsc::SyncSender<Job>,
    results: mpsc::Receiver<Result<Vec<u8>, String>>,
}

/// See the module documentation.
pub(crate) struct Verifier {
    worker: Option<Worker>,
    /// Used when no thread could be started.
    inline: StepRebuilder,
    /// Input bytes of the steps submitted and not yet checked.
    unverified: VecDeque<Vec<u8>>,
    /// Trials only measure: nothing is rebuilt.
    enabled: bool,
}

const MISMATCH: Halt = Halt::Opaque(OpaqueReason::RebuildMismatch);

impl Verifier {
    pub(crate) fn new(enabled: bool) -> Verifier {
        Verifier {
            worker: None,
            inline: StepRebuilder::default(),
            unverified: VecDeque::new(),
            enabled,
        }
    }

    fn start(&mut self) {
        let (jobs, job_rx) = mpsc::sync_channel::<Job>(VERIFY_DEPTH);
        let (result_tx, results) = mpsc::sync_channel(VERIFY_DEPTH);
        let spawned = std::thread::Builder::new()
            .name("airlock-goflate-verify".into())
            .spawn(move || {
                let mut rb = StepRebuilder::default();
                for job in job_rx {
                    match job {
                        Job::Reset => rb.reset(),
                        Job::Step(plain, data) => {
                            if result_tx.send(rb.step(&plain, &data)).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        if spawned.is_ok() {
            self.worker = Some(Worker { jobs, results });
        }
    }

    /// The next step starts a new deflate stream; every step so far must check out.
    pub(crate) fn reset(&mut self) -> Result<(), Halt> {
        self.check_all()?;
        self.inline.reset();
        if let Some(w) = &self.worker {
            w.jobs.send(Job::Reset).map_err(|_| MISMATCH)?;
        }
        Ok(())
    }

    /// Hands a step over; `want` is the input it must rebuild.
    pub(crate) fn submit(&mut self, plain: &[u8], data: &[u8], want: &[u8]) -> Result<(), Halt> {
        if !self.enabled {
            return Ok(());
        }
        if self.worker.is_none() {
            self.start();
        }
        let Some(w) = &self.worker else {
            let got = self.inline.step(plain, data).map_err(|_| MISMATCH)?;
            return if got == want { Ok(()) } else { Err(MISMATCH) };
        };
        w.jobs
            .send(Job::Step(plain.to_vec(), data.to_vec()))
            .map_err(|_| MISMATCH)?;
        self.unverified.push_back(want.to_vec());
        while self.unverified.len() > VERIFY_DEPTH {
            self.check_oldest()?;
        }
        Ok(())
    }

    fn check_oldest(&mut self) -> Result<(), Halt> {
        let (Some(want), Some(w)) = (self.unverified.pop_front(), &self.worker) else {
            return Ok(());
        };
        match w.results.recv() {
            Ok(Ok(got)) if got == want => Ok(()),
            _ => Err(MISMATCH),
        }
    }

    /// Waits for every submitted step.
    pub(crate) fn check_all(&mut self) -> Result<(), Halt> {
        while !self.unverified.is_empty() {
            self.check_oldest()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_data_or_other_bytes_are_mismatches() {
        let mut v = Verifier::new(true);
        assert_eq!(v.submit(b"abc", b"junk", b"x"), Ok(()));
        assert_eq!(v.check_all(), Err(MISMATCH));
        let mut off = Verifier::new(false);
        assert_eq!(off.submit(b"abc", b"junk", b"x"), Ok(()));
        assert_eq!(off.check_all(), Ok(()));
    }
}
