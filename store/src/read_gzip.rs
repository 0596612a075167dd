//! Rebuilding a `Deflate` blob's exact gzip bytes as a stream.
//!
//! A [`DeflateReader`] runs the script (see `script`) from a start point: raw ops are copied,
//! each deflate step reads its payload bytes from the content recipe (a `PlainReader`, every
//! chunk checked against its id) and its reconstruction data, and an `airlock_regzip`
//! [`Rebuilder`] rebuilds its compressed bytes (goflate's or preflate-rs's, told apart by the
//! data). A step whose output differs in length from what the script recorded is an error naming
//! the blob and offset; the bytes themselves are checked by the digest (verify, the cache fill).
//! Reconstruction data of a version this airlock does not rebuild (preflate-rs data of the
//! version the blob's record names, goflate data or checkpoints of a later model) is never fed to
//! a rebuilder of another: the read fails with [`Error::RebuildUnsupported`], naming the version.
//!
//! Where the rebuild starts (issue 14): at the last checkpoint at or before the first byte asked
//! for, found from the script segment covering it (a checkpoint starts its segment; a segment
//! without one sends the search to the segment before), from the payload the checkpoint names;
//! output before the first byte is discarded. A script without checkpoints (version 2 and
//! before, preflate-rs streams of one member, blobs under a megabyte) rebuilds from its start.
//!
//! How (`parallel`): the script from one checkpoint to the next is a unit that rebuilds on its
//! own. The unit holding the first byte streams on the reading thread, op by op; once it has
//! reached that byte, the units after it are rebuilt whole on the rayon pool, at most four per
//! pool thread ahead of the reader, and handed out in order. Memory is bounded by those units (a unit longer than
//! [`parallel::MAX_UNIT_OUT_BYTES`] streams on the reading thread instead), one step's payload
//! per thread, and one script segment.

use std::{
    collections::VecDeque,
    io::{self, Read},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use airlock_regzip::{Checkpoint, PREFLATE_VERSION, Rebuilder, is_goflate};

use crate::{
    Digest, Error, Result, Store,
    index::{SegmentAt, SegmentList},
    read::{PlainReader, Segments},
    script::{Corrections, Op, decode_script_segment},
};

mod parallel;

use parallel::Pipeline;

/// What every thread rebuilding one blob shares.
#[derive(Debug)]
pub(crate) struct Ctx {
    store: Store,
    digest: Digest,
    segments: Segments,
    plain_size: u64,
    /// The preflate-rs version of the script's correction data, when this build cannot
    /// rebuild it.
    other_preflate: Option<String>,
    /// Deflate steps rebuilt so far, on every thread.
    steps: AtomicU64,
}

impl Ctx {
    fn failed(&self, offset: u64, what: impl Into<String>) -> Error {
        Error::Rebuild {
            digest: self.digest.clone(),
            offset,
            what: what.into(),
        }
    }

    /// The data is of a version this build does not rebuild: the blob needs another airlock
    /// (or the layer put again), not a repair.
    fn unsupported(&self, what: impl Into<String>) -> Error {
        Error::RebuildUnsupported {
            digest: self.digest.clone(),
            what: what.into(),
        }
    }

    fn regzip_error(&self, offset: u64, e: airlock_regzip::Error) -> Error {
        match e {
            airlock_regzip::Error::ModelUnknown { .. } => self.unsupported(e.to_string()),
            e => self.failed(offset, e.to_string()),
        }
    }

    /// A script segment, decoded: (output offset where it starts, ops).
    fn segment(&self, at: SegmentAt) -> Result<Option<(u64, Vec<Op>)>> {
        let seg = self
            .segments
            .segment(&self.store, &self.digest, SegmentList::Script, at)?;
        let Some((start, bytes)) = seg else {
            return Ok(None);
        };
        let ops = decode_script_segment(&bytes).map_err(|e| {
            self.failed(
                start,
                format!("its script segment at {start} does not decode: {e}"),
            )
        })?;
        Ok(Some((start, ops)))
    }

    /// Where a rebuild that must produce byte `at` starts: the last checkpoint at or before
    /// it, else the blob's start.
    fn locate(&self, at: u64) -> Result<Start> {
        let mut covering = at;
        loop {
            let Some((out, ops)) = self.segment(SegmentAt::Covering(covering))? else {
                return Err(self.failed(at, "its script has no segment there"));
            };
            if let Some(start) = Start::of_segment(out, ops) {
                return Ok(start);
            }
            // A segment without a checkpoint (closed at its size limit): the one before.
            covering = out - 1;
        }
    }
}

/// A place a rebuild may start: a segment that starts with a checkpoint, or the blob's start.
#[derive(Debug)]
pub(crate) struct Start {
    /// Output offset.
    out: u64,
    /// Payload offset of its first step.
    plain: u64,
    /// The checkpoint's bytes (`None`: the blob's start).
    checkpoint: Option<Vec<u8>>,
    /// Output offset of the segment its ops come from.
    segment: u64,
    /// The rest of the segment's ops.
    ops: Vec<Op>,
}

impl Start {
    /// The start a segment is, if it is one.
    fn of_segment(out: u64, mut ops: Vec<Op>) -> Option<Start> {
        match ops.first() {
            Some(Op::Checkpoint { plain_offset, .. }) => {
                let plain = *plain_offset;
                let Op::Checkpoint { state, .. } = ops.remove(0) else {
                    return None;
                };
                Some(Start {
                    out,
                    plain,
                    checkpoint: Some(state),
                    segment: out,
                    ops,
                })
            }
            _ if out == 0 => Some(Start {
                out,
                plain: 0,
                checkpoint: None,
                segment: out,
                ops,
            }),
            _ => None,
        }
    }
}

/// Runs a script's ops from a start, one op at a time, on the calling thread.
#[derive(Debug)]
pub(crate) struct Run {
    plain: PlainReader,
    rebuilder: Rebuilder,
    ops: VecDeque<Op>,
    /// Output offset of the next op, payload offset of the next step.
    out: u64,
    plain_at: u64,
    /// The payload of the last step, kept to be filled again (no allocation per step).
    payload: Vec<u8>,
}

impl Run {
    /// A run from `start` over `ops` (the start's own are not included): its checkpoint is
    /// restarted from the payload it names.
    fn new(ctx: &Ctx, start: &Start, ops: Vec<Op>) -> Result<Run> {
        let mut rebuilder = Rebuilder::default();
        let mut history = Vec::new();
        let cp = match &start.checkpoint {
            Some(state) => {
                let cp = Checkpoint::decode(state).map_err(|e| ctx.regzip_error(start.out, e))?;
                let len = usize::try_from(cp.history()).unwrap_or(usize::MAX);
                if cp.history() > start.plain || len > MAX_HISTORY_BYTES {
                    return Err(ctx.failed(start.out, "a checkpoint reaches before the payload"));
                }
                history.resize(len, 0);
                Some(cp)
            }
            None => None,
        };
        let from = start.plain - history.len() as u64;
        let mut plain =
            PlainReader::with_segments(&ctx.store, &ctx.digest, from, ctx.segments.clone());
        if let Some(cp) = cp {
            plain
                .read_exact(&mut history)
                .map_err(|e| crate::unwrap_io(&ctx.digest, e))?;
            rebuilder
                .resume(&cp, &history)
                .map_err(|e| ctx.regzip_error(start.out, e))?;
        }
        Ok(Run {
            plain,
            rebuilder,
            ops: ops.into(),
            out: start.out,
            plain_at: start.plain,
            payload: history,
        })
    }

    /// The next op's output (empty for a checkpoint), `None` when the ops are done.
    fn next(&mut self, ctx: &Ctx) -> Result<Option<Vec<u8>>> {
        let Some(op) = self.ops.pop_front() else {
            return Ok(None);
        };
        let bytes = match op {
            Op::Raw(bytes) => {
                self.rebuilder.reset();
                bytes
            }
            Op::Checkpoint {
                plain_offset,
                state,
            } => {
                if plain_offset != self.plain_at {
                    return Err(ctx.failed(self.out, "a checkpoint is not where its payload is"));
                }
                let cp = Checkpoint::decode(&state).map_err(|e| ctx.regzip_error(self.out, e))?;
                (self.rebuilder.checkpoint(&cp)).map_err(|e| ctx.regzip_error(self.out, e))?;
                Vec::new()
            }
            Op::Step {
                plain,
                out,
                corrections,
            } => self.step(ctx, plain, out, corrections)?,
        };
        self.out += bytes.len() as u64;
        Ok(Some(bytes))
    }

    fn step(
        &mut self,
        ctx: &Ctx,
        plain: u32,
        out: u32,
        corrections: Corrections,
    ) -> Result<Vec<u8>> {
        if self.plain_at + u64::from(plain) > ctx.plain_size {
            return Err(ctx.failed(self.out, "its script needs more payload than stored"));
        }
        self.plain_at += u64::from(plain);
        let mut payload = std::mem::take(&mut self.payload);
        // Zeroed only where it grows: read_exact overwrites all of it.
        payload.resize(plain as usize, 0);
        self.plain
            .read_exact(&mut payload)
            .map_err(|e| crate::unwrap_io(&ctx.digest, e))?;
        let corrections = match corrections {
            Corrections::Inline(bytes) => bytes,
            Corrections::Chunk { id, .. } => self.plain.read_other_chunk(&id)?,
        };
        if let Some(version) = &ctx.other_preflate
            && !is_goflate(&corrections)
        {
            return Err(ctx.unsupported(format!(
                "its script holds correction data of {version}; this airlock rebuilds \
                 {PREFLATE_VERSION}'s"
            )));
        }
        let bytes = self.rebuilder.rebuild_step(&mut payload, corrections);
        self.payload = payload;
        let bytes = bytes.map_err(|e| ctx.regzip_error(self.out, e))?;
        ctx.steps.fetch_add(1, Ordering::Relaxed);
        if bytes.len() != out as usize {
            return Err(ctx.failed(
                self.out,
                format!(
                    "a deflate step rebuilt {} bytes, {out} were recorded",
                    bytes.len()
                ),
            ));
        }
        Ok(bytes)
    }
}

/// A checkpoint never needs more payload before it than this (regzip's are about 130 KiB at
/// most): damaged bytes claiming more are refused before anything is read.
const MAX_HISTORY_BYTES: usize = 16 * 1024 * 1024;

/// Streams a rebuilt gzip blob from an offset to its end.
#[derive(Debug)]
pub(crate) struct DeflateReader {
    ctx: Arc<Ctx>,
    /// Offset of the next byte to hand out (earlier output is discarded).
    pos: u64,
    /// Where the caller stops reading (a range's end): nothing past it is rebuilt ahead.
    end: Option<u64>,
    /// Output offset of `buf[0]`.
    buf_offset: u64,
    buf: Vec<u8>,
    /// Not started until the first read.
    pipeline: Option<Pipeline>,
    done: bool,
}

impl DeflateReader {
    /// A reader of the blob from `pos`; `plain_size` and `preflate` (the version of its
    /// preflate-rs correction data) are what its record or description says. Its script is read
    /// from where `plain`'s segments come from.
    pub(crate) fn new(
        store: &Store,
        digest: &Digest,
        plain: PlainReader,
        (plain_size, preflate): (u64, &str),
        pos: u64,
    ) -> DeflateReader {
        DeflateReader {
            ctx: Arc::new(Ctx {
                store: store.clone(),
                digest: digest.clone(),
                segments: plain.segments().clone(),
                plain_size,
                other_preflate: (preflate != PREFLATE_VERSION).then(|| preflate.to_owned()),
                steps: AtomicU64::new(0),
            }),
            pos,
            end: None,
            buf_offset: pos,
            buf: Vec::new(),
            pipeline: None,
            done: false,
        }
    }

    /// The caller reads only up to `end` (a range): nothing past it is rebuilt ahead, and
    /// the script after it is not run.
    pub(crate) fn until(mut self, end: u64) -> DeflateReader {
        self.end = Some(end);
        self
    }

    /// Deflate steps rebuilt so far (on every thread).
    pub(crate) fn steps_rebuilt(&self) -> u64 {
        self.ctx.steps.load(Ordering::Relaxed)
    }

    /// Produces the next output into `buf`; `false` at the end of the script.
    fn next_output(&mut self) -> Result<bool> {
        if self.done {
            return Ok(false);
        }
        let pipeline = match &mut self.pipeline {
            Some(p) => p,
            None => {
                let start = self.ctx.locate(self.pos)?;
                self.buf_offset = start.out;
                let first = self.pos;
                self.pipeline
                    .insert(Pipeline::new(&self.ctx, start, first, self.end)?)
            }
        };
        let Some(bytes) = pipeline.next(&self.ctx)? else {
            self.done = true;
            // A range's pipeline stops at its end; a whole script must use all the payload.
            if self.end.is_none() && pipeline.plain_at() != self.ctx.plain_size {
                return Err(self
                    .ctx
                    .failed(self.buf_offset, "its script ends before its payload"));
            }
            return Ok(false);
        };
        self.buf_offset += self.buf.len() as u64;
        self.buf = bytes;
        Ok(true)
    }

    /// Runs the script to its end (it produces nothing past the blob's size) and checks that
    /// it used the whole payload; a range read has nothing to finish. Filling the blob cache
    /// is the callers' business (`inflight`, `transfer`).
    pub(crate) fn finish(&mut self) -> Result<()> {
        if self.end.is_some() {
            return Ok(());
        }
        while self.next_output()? {}
        Ok(())
    }
}

impl Read for DeflateReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            let buf_end = self.buf_offset + self.buf.len() as u64;
            if self.pos < buf_end && self.pos >= self.buf_offset {
                let start = (self.pos - self.buf_offset) as usize;
                let n = out.len().min(self.buf.len() - start);
                out[..n].copy_from_slice(&self.buf[start..start + n]);
                self.pos += n as u64;
                return Ok(n);
            }
            if !self.next_output().map_err(io::Error::other)? {
                self.finish().map_err(io::Error::other)?;
                return Ok(0);
            }
        }
    }
}
