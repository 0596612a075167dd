//! [`Pipeline`]: a blob's script cut into units at its checkpoints (issue 14), the first
//! streamed on the reading thread, the next ones rebuilt whole on the rayon pool ahead of the
//! reader (once the first has reached the first byte asked for, which nothing slows down) and
//! handed out in order.
//!
//! A unit is the script from one start (a checkpoint, or the blob's start) to the next: the
//! pipeline finds where each begins by reading the script's segments ahead (a checkpoint starts
//! its segment), and checks that every unit ends at the output and payload offsets where the
//! next begins. At most four units per pool thread are in flight. A unit the reader needs before
//! any pool thread took it is rebuilt by the reader itself, so a reader on a pool thread (a
//! bundle import verifying blobs in parallel) never waits for work queued behind it: it only
//! waits for a unit a thread is rebuilding. Units dropped with the reader are skipped.

use std::{
    collections::VecDeque,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{Arc, Mutex, mpsc},
};

use super::{Ctx, Run, Start};
use crate::{Result, index::SegmentAt, script::Op};

/// Whole units in flight per pool thread: a unit that costs more than the others (data that
/// is slow to match) does not stall the threads behind it.
const UNITS_PER_THREAD: usize = 4;

/// A unit longer than this is streamed on the reading thread rather than held whole in memory.
pub(crate) const MAX_UNIT_OUT_BYTES: u64 = 16 * 1024 * 1024;

/// The script from one start to the next.
#[derive(Debug)]
struct Unit {
    start: Start,
    ops: Vec<Op>,
    /// Output and payload offsets where the next unit starts.
    out_end: u64,
    plain_end: u64,
}

/// A unit waiting for whichever thread takes it first.
#[derive(Debug)]
struct Task(Mutex<Option<Unit>>);

impl Task {
    fn take(&self) -> Option<Unit> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// A unit in flight.
#[derive(Debug)]
enum Slot {
    /// Streamed op by op on the reading thread.
    Stream {
        run: Box<Run>,
        out_end: u64,
        plain_end: u64,
    },
    /// Rebuilt whole on the pool.
    Whole {
        task: Arc<Task>,
        done: mpsc::Receiver<Result<Vec<u8>>>,
        out: u64,
        plain_end: u64,
    },
}

/// Units of one read in flight, in order.
#[derive(Debug)]
pub(crate) struct Pipeline {
    slots: VecDeque<Slot>,
    /// Where the next unit starts, once the ones in flight are formed (`None`: no more).
    next: Option<Start>,
    /// Units starting here or later are not needed.
    end: Option<u64>,
    /// Whole units in flight at most.
    depth: usize,
    /// Nothing is rebuilt ahead until the streamed unit passes this offset (the first byte
    /// asked for comes first: a range's first byte is not slowed down by units after it).
    hold: Option<u64>,
    /// Payload offset after the units handed out.
    plain_at: u64,
}

impl Pipeline {
    /// A pipeline from `start`, whose unit streams; units up to `end` are rebuilt ahead once
    /// the output reaches `first`, the first byte asked for.
    pub(super) fn new(
        ctx: &Arc<Ctx>,
        start: Start,
        first: u64,
        end: Option<u64>,
    ) -> Result<Pipeline> {
        let mut p = Pipeline {
            slots: VecDeque::new(),
            next: None,
            end,
            depth: UNITS_PER_THREAD * rayon::current_num_threads().max(1),
            hold: (first > start.out).then_some(first),
            plain_at: start.plain,
        };
        let unit = p.form(ctx, start)?;
        p.slots.push_back(Slot::stream(ctx, unit)?);
        p.top_up(ctx)?;
        Ok(p)
    }

    /// Payload offset after everything handed out.
    pub(super) fn plain_at(&self) -> u64 {
        self.plain_at
    }

    /// The next op's or unit's output (possibly empty), `None` at the end of the script.
    pub(super) fn next(&mut self, ctx: &Arc<Ctx>) -> Result<Option<Vec<u8>>> {
        loop {
            match self.slots.front_mut() {
                None => return Ok(None),
                Some(Slot::Stream {
                    run,
                    out_end,
                    plain_end,
                }) => {
                    if let Some(bytes) = run.next(ctx)? {
                        if self.hold.is_some_and(|first| run.out > first) {
                            self.hold = None;
                            self.top_up(ctx)?;
                        }
                        return Ok(Some(bytes));
                    }
                    self.hold = None;
                    if run.out != *out_end || run.plain_at != *plain_end {
                        return Err(ctx.failed(run.out, "its script does not add up"));
                    }
                    self.plain_at = *plain_end;
                    self.slots.pop_front();
                    self.top_up(ctx)?;
                }
                Some(Slot::Whole { .. }) => {
                    let Some(Slot::Whole {
                        task,
                        done,
                        out,
                        plain_end,
                    }) = self.slots.pop_front()
                    else {
                        continue;
                    };
                    let bytes = match task.take() {
                        // No pool thread took it: the reader does the work.
                        Some(unit) => rebuild_unit(ctx, unit)?,
                        None => done
                            .recv()
                            .map_err(|_| ctx.failed(out, "a rebuild thread ended"))??,
                    };
                    self.plain_at = plain_end;
                    self.top_up(ctx)?;
                    return Ok(Some(bytes));
                }
            }
        }
    }

    /// Forms the unit that begins at `start`, reading the script's segments up to the next
    /// start, which becomes `next`.
    fn form(&mut self, ctx: &Ctx, mut start: Start) -> Result<Unit> {
        let mut ops = std::mem::take(&mut start.ops);
        let mut segment = start.segment;
        let mut out_end = start.out + ops.iter().map(Op::out_len).sum::<u64>();
        let mut plain_end = start.plain + ops.iter().map(Op::plain_len).sum::<u64>();
        self.next = None;
        while let Some((out, seg_ops)) = ctx.segment(SegmentAt::After(Some(segment)))? {
            if out != out_end {
                return Err(
                    ctx.failed(out, format!("its script segment should start at {out_end}"))
                );
            }
            if matches!(seg_ops.first(), Some(Op::Checkpoint { .. })) {
                let next = Start::of_segment(out, seg_ops)
                    .ok_or_else(|| ctx.failed(out, "its script does not decode"))?;
                if next.plain != plain_end {
                    return Err(ctx.failed(out, "a checkpoint is not where its payload is"));
                }
                self.next = Some(next);
                break;
            }
            out_end += seg_ops.iter().map(Op::out_len).sum::<u64>();
            plain_end += seg_ops.iter().map(Op::plain_len).sum::<u64>();
            ops.extend(seg_ops);
            segment = out;
        }
        Ok(Unit {
            start,
            ops,
            out_end,
            plain_end,
        })
    }

    /// Starts the units after those in flight, up to the depth.
    fn top_up(&mut self, ctx: &Arc<Ctx>) -> Result<()> {
        while self.hold.is_none() && self.slots.len() <= self.depth {
            let Some(start) = self.next.take() else {
                break;
            };
            if self.end.is_some_and(|end| start.out >= end) {
                break;
            }
            let unit = self.form(ctx, start)?;
            if unit.out_end - unit.start.out > MAX_UNIT_OUT_BYTES {
                self.slots.push_back(Slot::stream(ctx, unit)?);
                continue;
            }
            let (out, plain_end) = (unit.start.out, unit.plain_end);
            let task = Arc::new(Task(Mutex::new(Some(unit))));
            let (tx, done) = mpsc::sync_channel(1);
            let (t, c) = (task.clone(), ctx.clone());
            rayon::spawn(move || {
                let Some(unit) = t.take() else {
                    return;
                };
                let r = catch_unwind(AssertUnwindSafe(|| rebuild_unit(&c, unit)))
                    .unwrap_or_else(|_| Err(c.failed(out, "rebuilding it panicked")));
                let _ = tx.send(r);
            });
            self.slots.push_back(Slot::Whole {
                task,
                done,
                out,
                plain_end,
            });
        }
        Ok(())
    }
}

impl Drop for Pipeline {
    /// Units no thread has taken yet are not rebuilt for nothing.
    fn drop(&mut self) {
        for slot in &self.slots {
            if let Slot::Whole { task, .. } = slot {
                task.take();
            }
        }
    }
}

impl Slot {
    fn stream(ctx: &Ctx, unit: Unit) -> Result<Slot> {
        Ok(Slot::Stream {
            run: Box::new(Run::new(ctx, &unit.start, unit.ops)?),
            out_end: unit.out_end,
            plain_end: unit.plain_end,
        })
    }
}

/// Rebuilds a unit whole, checking that it ends where the next begins.
fn rebuild_unit(ctx: &Ctx, unit: Unit) -> Result<Vec<u8>> {
    let len = usize::try_from(unit.out_end - unit.start.out).unwrap_or(0);
    let mut run = Run::new(ctx, &unit.start, unit.ops)?;
    let mut out = Vec::with_capacity(len);
    while let Some(bytes) = run.next(ctx)? {
        out.extend_from_slice(&bytes);
    }
    if run.out != unit.out_end || run.plain_at != unit.plain_end {
        return Err(ctx.failed(run.out, "its script does not add up"));
    }
    Ok(out)
}
