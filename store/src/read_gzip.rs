//! Rebuilding a `Deflate` blob's exact gzip bytes as a stream.
//!
//! [`DeflateReader`] walks the script one segment at a time: raw ops are copied, each deflate
//! step reads its payload bytes from the content recipe (a `PlainReader`, every chunk checked
//! against its id) and its reconstruction data, and an `airlock_regzip` [`Rebuilder`] rebuilds
//! its compressed bytes (goflate's or preflate-rs's, told apart by the data). Memory is bounded
//! by one step (a few MiB of payload) and one script segment. A range that starts
//! inside the blob is served by rebuilding from the start and discarding what comes before it
//! (preflate-rs cannot resume mid-stream); the blob cache makes repeated reads cheap. A step
//! whose output differs in length from what the script recorded is an error naming the blob
//! and offset; the bytes themselves are checked by the digest (verify, the cache fill).
//! Reconstruction data of a version this airlock does not rebuild (preflate-rs data of the
//! version the blob's record names, goflate data of a later model) is never fed to a rebuilder
//! of another: the read fails with [`Error::RebuildUnsupported`], naming the version.

use std::{
    collections::VecDeque,
    io::{self, Read},
};

use airlock_regzip::{PREFLATE_VERSION, Rebuilder, is_goflate};

use crate::{
    Digest, Error, Result, Store,
    cache::CacheFill,
    index::{SegmentAt, SegmentList},
    read::PlainReader,
    script::{Corrections, Op, decode_script_segment},
};

/// Streams a rebuilt gzip blob from an offset to its end.
#[derive(Debug)]
pub(crate) struct DeflateReader {
    store: Store,
    digest: Digest,
    plain: PlainReader,
    plain_left: u64,
    /// Output offset of the last loaded script segment.
    seg_start: Option<u64>,
    ops: VecDeque<Op>,
    rebuilder: Rebuilder,
    /// Output offset of `buf[0]`.
    buf_offset: u64,
    buf: Vec<u8>,
    /// The payload of the last step, kept to be filled again (no allocation per step).
    payload: Vec<u8>,
    /// Offset of the next byte to hand out (earlier output is discarded).
    pos: u64,
    fill: Option<CacheFill>,
    /// The preflate-rs version of the script's correction data, when this build cannot
    /// rebuild it.
    other_preflate: Option<String>,
}

impl DeflateReader {
    /// A reader of the blob from `pos`; `plain_size` and `preflate` (the version of its
    /// preflate-rs correction data) are what its record or description says.
    pub(crate) fn new(
        store: &Store,
        digest: &Digest,
        plain: PlainReader,
        (plain_size, preflate): (u64, &str),
        pos: u64,
        fill: Option<CacheFill>,
    ) -> DeflateReader {
        DeflateReader {
            other_preflate: (preflate != PREFLATE_VERSION).then(|| preflate.to_owned()),
            store: store.clone(),
            digest: digest.clone(),
            plain,
            plain_left: plain_size,
            seg_start: None,
            ops: VecDeque::new(),
            rebuilder: Rebuilder::default(),
            buf_offset: 0,
            buf: Vec::new(),
            payload: Vec::new(),
            pos,
            fill,
        }
    }

    fn failed(&self, what: impl Into<String>) -> Error {
        Error::Rebuild {
            digest: self.digest.clone(),
            offset: self.buf_offset + self.buf.len() as u64,
            what: what.into(),
        }
    }

    /// The step's data is of a version this build does not rebuild: the blob needs another
    /// airlock (or the layer put again), not a repair.
    fn unsupported(&self, what: impl Into<String>) -> Error {
        Error::RebuildUnsupported {
            digest: self.digest.clone(),
            what: what.into(),
        }
    }

    /// Produces the next op's output into `buf`; `false` at the end of the script.
    fn next_op(&mut self) -> Result<bool> {
        if self.ops.is_empty() {
            let at = SegmentAt::After(self.seg_start);
            let seg = (self.plain.segments()).segment(
                &self.store,
                &self.digest,
                SegmentList::Script,
                at,
            )?;
            let Some((start, bytes)) = seg else {
                return Ok(false);
            };
            let ops = decode_script_segment(&bytes).map_err(|e| {
                self.failed(format!(
                    "its script segment at {start} does not decode: {e}"
                ))
            })?;
            self.seg_start = Some(start);
            self.ops.extend(ops);
        }
        let Some(op) = self.ops.pop_front() else {
            return Ok(false);
        };
        self.buf_offset += self.buf.len() as u64;
        self.buf = match op {
            Op::Raw(bytes) => {
                self.rebuilder.reset();
                bytes
            }
            Op::Step {
                plain,
                out,
                corrections,
            } => {
                if u64::from(plain) > self.plain_left {
                    return Err(self.failed("its script needs more payload than stored"));
                }
                self.plain_left -= u64::from(plain);
                let mut payload = std::mem::take(&mut self.payload);
                // Zeroed only where it grows: read_exact overwrites all of it.
                payload.resize(plain as usize, 0);
                self.plain
                    .read_exact(&mut payload)
                    .map_err(|e| crate::unwrap_io(&self.digest, e))?;
                let corrections = match corrections {
                    Corrections::Inline(bytes) => bytes,
                    Corrections::Chunk { id, .. } => self.plain.read_other_chunk(&id)?,
                };
                if let Some(version) = &self.other_preflate
                    && !is_goflate(&corrections)
                {
                    return Err(self.unsupported(format!(
                        "its script holds correction data of {version}; this airlock rebuilds \
                         {PREFLATE_VERSION}'s"
                    )));
                }
                let bytes = self.rebuilder.rebuild_step(&mut payload, corrections);
                self.payload = payload;
                let bytes = bytes.map_err(|e| match e {
                    airlock_regzip::Error::ModelUnknown { .. } => self.unsupported(e.to_string()),
                    e => self.failed(e.to_string()),
                })?;
                if bytes.len() != out as usize {
                    return Err(self.failed(format!(
                        "a deflate step rebuilt {} bytes, {out} were recorded",
                        bytes.len()
                    )));
                }
                bytes
            }
        };
        if let Some(fill) = self.fill.as_mut() {
            fill.write(&self.buf);
        }
        Ok(true)
    }

    /// Runs the script to its end (it produces nothing past the blob's size) and hands a
    /// complete cache fill to the cache, which checks its digest before publishing it.
    pub(crate) fn finish(&mut self) -> Result<()> {
        while self.next_op()? {}
        if self.plain_left != 0 {
            return Err(self.failed("its script ends before its payload"));
        }
        if let Some(fill) = self.fill.take() {
            self.store.inner.cache.publish(&self.digest, fill);
        }
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
            if self.pos < buf_end {
                let start = (self.pos - self.buf_offset) as usize;
                let n = out.len().min(self.buf.len() - start);
                out[..n].copy_from_slice(&self.buf[start..start + n]);
                self.pos += n as u64;
                return Ok(n);
            }
            if !self.next_op().map_err(io::Error::other)? {
                self.finish().map_err(io::Error::other)?;
                return Ok(0);
            }
        }
    }
}
