//! [`Rebuilder`]: turns steps back into compressed bytes, whichever kind of reconstruction data
//! they carry.

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::{
    Checkpoint, Error,
    checkpoint::Kind,
    goflate::{GoRebuilder, MAGIC},
    preflate::PreflateRebuilder,
    verify::{StepRebuild, Worker},
};

/// Whether reconstruction data is goflate's (it starts with `GOF`), else preflate-rs's. A
/// preflate-rs splitter never emits data that starts so, so the bytes tell the kinds apart.
pub fn is_goflate(data: &[u8]) -> bool {
    data.starts_with(&MAGIC)
}

/// Rebuilds the deflate streams of a split, step by step, from the payload and reconstruction
/// data of each step, in the order the splitter emitted them. goflate steps run on the calling
/// thread; preflate-rs steps on a thread of the rebuilder's own (preflate-rs's recompressor is
/// not `Send`, and a rebuilder must be: a blob reader moves between threads), which ends when
/// the rebuilder is dropped. Memory is bounded by one step. A panic inside a rebuild is caught
/// and fails the step ([`Error::Panicked`]).
#[derive(Debug, Default)]
pub struct Rebuilder {
    preflate: Option<Worker>,
    go: GoRebuilder,
}

impl Rebuilder {
    /// The next step starts a new deflate stream (after raw bytes, or the first).
    pub fn reset(&mut self) {
        if let Some(w) = &self.preflate
            && w.reset().is_err()
        {
            self.preflate = None;
        }
        self.go.reset();
    }

    /// Passes a checkpoint while rebuilding steps in order: the next step starts from the
    /// checkpoint's state, as the split's did.
    pub fn checkpoint(&mut self, cp: &Checkpoint) -> Result<(), Error> {
        self.restart(cp, None)
    }

    /// Starts rebuilding at a checkpoint, without the steps before it: `history` holds the
    /// [`Checkpoint::history`] payload bytes right before the next step's own. A damaged
    /// checkpoint or history fails here or in the steps after it, never as a panic.
    pub fn resume(&mut self, cp: &Checkpoint, history: &[u8]) -> Result<(), Error> {
        self.reset();
        self.restart(cp, Some(history))
    }

    fn restart(&mut self, cp: &Checkpoint, history: Option<&[u8]>) -> Result<(), Error> {
        let go = match &cp.0 {
            Kind::Member if history.is_none_or(<[u8]>::is_empty) => {
                self.reset();
                return Ok(());
            }
            Kind::Member => return Err(Error::damaged("history before a member's start")),
            Kind::Go(go) => go,
        };
        let rb = &mut self.go;
        match catch_unwind(AssertUnwindSafe(|| rb.checkpoint(go, history))) {
            Ok(r) => r,
            Err(_panic) => {
                self.go = GoRebuilder::default();
                Err(Error::Panicked {
                    what: "a goflate checkpoint",
                })
            }
        }
    }

    /// Rebuilds one step: the compressed bytes that `plain` (the payload bytes of the step)
    /// and `data` (its reconstruction data) stand for. `plain`'s buffer is handed back for
    /// reuse, its contents unspecified.
    pub fn rebuild_step(&mut self, plain: &mut Vec<u8>, data: Vec<u8>) -> Result<Vec<u8>, Error> {
        if is_goflate(&data) {
            let go = &mut self.go;
            return match catch_unwind(AssertUnwindSafe(|| go.rebuild_step(plain, &data))) {
                Ok(out) => out,
                Err(_panic) => {
                    self.go = GoRebuilder::default();
                    Err(Error::Panicked {
                        what: "a goflate rebuild",
                    })
                }
            };
        }
        if self.preflate.is_none() {
            self.preflate = Some(Worker::spawn::<PreflateRebuilder>(1)?);
        }
        let Some(w) = &self.preflate else {
            return Err(Error::Thread { what: "ended" });
        };
        w.submit(std::mem::take(plain), data)?;
        let done = w.collect()?;
        *plain = done.plain;
        done.out
    }
}
