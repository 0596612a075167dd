//! Streaming FastCDC over bounded regions of a reader, through one reusable buffer.

use std::io::{self, Read};

use fastcdc::v2020 as fcdc;

use crate::ChunkerParams;

/// The read buffer holds this many maximum-size chunks, so it is compacted (its unread tail
/// moved to the front) at most once per `WINDOW_CHUNKS - 1` maximum chunks consumed.
const WINDOW_CHUNKS: usize = 4;

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

    /// Length of the next chunk at the start of `data`, in `1..=min(max, data.len())` for
    /// non-empty `data`. `data` must hold at least `max` bytes unless it ends the region.
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

/// Bytes read ahead from the source but not yet cut, for the current region.
///
/// A region is a run of the input cut by CDC on its own: one file's data in a tar, or
/// everything up to EOF. The window never reads past the end of its region, so when a region
/// ends the next byte of the source is the first byte after it.
#[derive(Debug, Default)]
pub(crate) struct Window {
    /// Allocated on first use to `WINDOW_CHUNKS * max`; its length is its capacity.
    buf: Vec<u8>,
    /// Unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// Bytes of the region still in the source; `None`: until EOF; `Some(0)`: all read (or
    /// the source ended).
    left: Option<u64>,
}

impl Window {
    /// Bytes read but not yet cut.
    pub(crate) fn pending(&self) -> usize {
        self.end - self.start
    }

    /// Starts a region of `len` bytes of the source (`None`: until EOF). The previous region
    /// must have been cut to its end.
    pub(crate) fn begin_region(&mut self, len: Option<u64>) {
        debug_assert_eq!(
            self.pending(),
            0,
            "region started before the last one ended"
        );
        self.left = len;
    }

    /// Puts bytes that were read for another purpose (a block that turned out not to be a tar
    /// header) in the empty window, as the start of the region just begun. Happens at most
    /// once per stream.
    pub(crate) fn preload(&mut self, bytes: &[u8], cutter: &Cutter) {
        debug_assert_eq!(self.pending(), 0, "preload into a non-empty window");
        self.ensure_capacity(cutter);
        self.buf[..bytes.len()].copy_from_slice(bytes);
        self.start = 0;
        self.end = bytes.len();
    }

    fn ensure_capacity(&mut self, cutter: &Cutter) {
        if self.buf.is_empty() {
            self.buf = vec![0; WINDOW_CHUNKS * cutter.max];
        }
    }

    /// Cuts the next chunk of the region; `None` at its end. `read` counts bytes pulled from
    /// the source.
    pub(crate) fn next_chunk<R: Read>(
        &mut self,
        src: &mut R,
        cutter: &Cutter,
        read: &mut u64,
    ) -> io::Result<Option<Vec<u8>>> {
        if self.pending() < cutter.max && self.left != Some(0) {
            self.refill(src, cutter, read)?;
        }
        if self.pending() == 0 {
            return Ok(None);
        }
        let len = cutter.cut(&self.buf[self.start..self.end]);
        let chunk = self.buf[self.start..self.start + len].to_vec();
        self.start += len;
        Ok(Some(chunk))
    }

    /// Reads as much of the region as fits. Afterwards the window holds at least `max` bytes,
    /// or the whole rest of the region.
    fn refill<R: Read>(&mut self, src: &mut R, cutter: &Cutter, read: &mut u64) -> io::Result<()> {
        self.ensure_capacity(cutter);
        if self.buf.len() - self.start < cutter.max {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let room = self.buf.len() - self.end;
        let want = match self.left {
            Some(left) => room.min(usize::try_from(left).unwrap_or(usize::MAX)),
            None => room,
        };
        let got = read_counted(src, &mut self.buf[self.end..self.end + want], read)?;
        self.end += got;
        self.left = match self.left {
            // The source ended early: nothing more will come, whatever the region said.
            _ if got < want => Some(0),
            Some(left) => Some(left - got as u64),
            None => None,
        };
        Ok(())
    }
}

/// Fills `buf` from `src`, stopping early only at the end of the input (reads the OS
/// interrupted are retried); returns the bytes read. The one read-until-full loop of airlock's
/// crates.
pub fn read_full<R: Read + ?Sized>(src: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    read_counted(src, buf, &mut 0)
}

/// As [`read_full`]; `read` counts every byte as it arrives, so it is exact even when an error
/// cuts the read short.
pub(crate) fn read_counted<R: Read + ?Sized>(
    src: &mut R,
    buf: &mut [u8],
    read: &mut u64,
) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match src.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => {
                got += n;
                *read += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    /// A reader that hands out at most `step` bytes per call, to exercise short reads.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.step).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn small_cutter() -> Cutter {
        Cutter::new(ChunkerParams::new(256, 1024, 4096).unwrap())
    }

    fn pseudo_random(n: usize) -> Vec<u8> {
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn region_stops_at_its_length_and_leaves_the_rest_unread() {
        let cutter = small_cutter();
        let data = pseudo_random(50_000);
        let mut src = Trickle {
            data: &data,
            step: 777,
        };
        let mut window = Window::default();
        let mut read = 0;
        window.begin_region(Some(30_001));
        let mut out = Vec::new();
        while let Some(chunk) = window.next_chunk(&mut src, &cutter, &mut read).unwrap() {
            assert!(chunk.len() <= 4096);
            out.extend_from_slice(&chunk);
        }
        assert_eq!(out, data[..30_001]);
        assert_eq!(read, 30_001);
        window.begin_region(None);
        while let Some(chunk) = window.next_chunk(&mut src, &cutter, &mut read).unwrap() {
            out.extend_from_slice(&chunk);
        }
        assert_eq!(out, data);
        assert_eq!(read, 50_000);
    }

    #[test]
    fn cuts_do_not_depend_on_read_sizes() {
        let cutter = small_cutter();
        let data = pseudo_random(100_000);
        let cut_with = |step: usize| {
            let mut src = Trickle { data: &data, step };
            let mut window = Window::default();
            let mut read = 0;
            window.begin_region(None);
            let mut lens = Vec::new();
            while let Some(chunk) = window.next_chunk(&mut src, &cutter, &mut read).unwrap() {
                lens.push(chunk.len());
            }
            lens
        };
        let whole = cut_with(usize::MAX);
        assert_eq!(whole.iter().sum::<usize>(), data.len());
        assert_eq!(cut_with(1), whole);
        assert_eq!(cut_with(513), whole);
    }

    #[test]
    fn preloaded_bytes_start_the_region() {
        let cutter = small_cutter();
        let data = pseudo_random(10_000);
        let mut window = Window::default();
        window.begin_region(None);
        window.preload(&data[..512], &cutter);
        let mut src = &data[512..];
        let mut read = 0;
        let mut out = Vec::new();
        while let Some(chunk) = window.next_chunk(&mut src, &cutter, &mut read).unwrap() {
            out.extend_from_slice(&chunk);
        }
        assert_eq!(out, data);
        assert_eq!(read, 10_000 - 512);
    }
}
