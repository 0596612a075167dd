//! Streaming FastCDC over a bounded region of a reader, with one reusable buffer.

use std::io::{self, Read};

use fastcdc::v2020 as fcdc;

use crate::ChunkerParams;

/// Masks and sizes for `fastcdc::v2020::cut`, computed once per chunker.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cutter {
    min: usize,
    avg: usize,
    max: usize,
    mask_s: u64,
    mask_l: u64,
}

impl Cutter {
    pub(crate) fn new(params: ChunkerParams) -> Cutter {
        let avg = params.avg_size() as usize;
        let (mask_s, mask_l) = fcdc::select_masks(avg, fcdc::Normalization::Level1);
        Cutter {
            min: params.min_size() as usize,
            avg,
            max: params.max_size() as usize,
            mask_s,
            mask_l,
        }
    }

    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Length of the next chunk at the start of `data`. `data` must hold at least `max` bytes
    /// unless it is the end of the region.
    fn cut(&self, data: &[u8]) -> usize {
        let (_, len) = fcdc::cut(
            data,
            self.min,
            self.avg,
            self.max,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
        );
        len.clamp(1, data.len())
    }
}

/// A buffer of bytes read ahead from the source but not yet cut, for the current region.
#[derive(Debug, Default)]
pub(crate) struct Window {
    buf: Vec<u8>,
    start: usize,
}

impl Window {
    /// Bytes read but not yet emitted.
    pub(crate) fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Puts bytes that were read for another purpose (a block that turned out not to be a tar
    /// header) back in front of the window.
    pub(crate) fn unread(&mut self, bytes: &[u8]) {
        self.compact();
        let mut v = Vec::with_capacity(bytes.len() + self.buf.len());
        v.extend_from_slice(bytes);
        v.extend_from_slice(&self.buf);
        self.buf = v;
    }

    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }

    /// Cuts the next chunk of a region. `remaining` is how many bytes of the region are still
    /// unread in the source (`None`: until EOF). Returns `None` at the end of the region.
    /// `read` reports the number of bytes pulled from the source.
    pub(crate) fn next_chunk<R: Read>(
        &mut self,
        src: &mut R,
        cutter: &Cutter,
        remaining: &mut Option<u64>,
        read: &mut u64,
    ) -> io::Result<Option<Vec<u8>>> {
        let max = cutter.max();
        if self.pending() < max {
            self.compact();
            let want = max - self.buf.len();
            let want = match remaining {
                Some(r) => want.min(usize::try_from(*r).unwrap_or(usize::MAX)),
                None => want,
            };
            let got = fill(src, &mut self.buf, want)?;
            *read += got as u64;
            if let Some(r) = remaining {
                *r -= got as u64;
                if got < want {
                    // The source ended inside the region: nothing more will come.
                    *r = 0;
                }
            } else if got < want {
                *remaining = Some(0);
            }
        }
        if self.pending() == 0 {
            return Ok(None);
        }
        let at_end = *remaining == Some(0);
        let data = &self.buf[self.start..];
        let len = if at_end && data.len() <= cutter.min {
            data.len()
        } else {
            cutter.cut(data)
        };
        let chunk = data[..len].to_vec();
        self.start += len;
        Ok(Some(chunk))
    }
}

/// Reads up to `want` bytes onto the end of `buf`, stopping early only at EOF.
pub(crate) fn fill<R: Read>(src: &mut R, buf: &mut Vec<u8>, want: usize) -> io::Result<usize> {
    let old = buf.len();
    buf.resize(old + want, 0);
    let mut got = 0;
    while got < want {
        match src.read(&mut buf[old + got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                buf.truncate(old + got);
                return Err(e);
            }
        }
    }
    buf.truncate(old + got);
    Ok(got)
}
