//! What a put reads: its input under a size limit, and the first bytes that tell its
//! encoding.

use std::io::{self, Read};

use crate::layer::{Encoding, SNIFF_BYTES};

/// A reader that refuses to go past a size limit.
pub(crate) struct Limited<R> {
    pub(crate) inner: R,
    pub(crate) left: u64,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            // Probe one byte: content of exactly the limit is fine, more is not.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::new(
                    io::ErrorKind::FileTooLarge,
                    "content exceeds the size limit",
                )),
            };
        }
        let max = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// A reader that hands back its first bytes after looking at them.
pub(crate) struct Sniffed<R> {
    head: [u8; SNIFF_BYTES],
    len: usize,
    pos: usize,
    inner: R,
}

impl<R: Read> Sniffed<R> {
    /// Reads the first bytes (fewer at the end of the input) and recognises the encoding.
    pub(crate) fn new(mut inner: R) -> io::Result<(Encoding, Sniffed<R>)> {
        let mut head = [0u8; SNIFF_BYTES];
        let mut len = 0;
        while len < SNIFF_BYTES {
            match inner.read(&mut head[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let encoding = Encoding::sniff(&head[..len]);
        Ok((
            encoding,
            Sniffed {
                head,
                len,
                pos: 0,
                inner,
            },
        ))
    }
}

impl<R: Read> Read for Sniffed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos < self.len {
            let n = buf.len().min(self.len - self.pos);
            buf[..n].copy_from_slice(&self.head[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        self.inner.read(buf)
    }
}
