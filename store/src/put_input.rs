//! What a put reads: its input under a size limit, and the first bytes that tell its
//! encoding.

use std::{
    io::{self, Read},
    sync::mpsc,
};

use airlock_chunker::read_full;

use crate::{
    Algorithm, Digest, Hasher,
    layer::{Encoding, SNIFF_BYTES},
};

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
        let len = read_full(&mut inner, &mut head)?;
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

/// Bytes per block a [`HashPipe`] hands on.
const PIPE_BLOCK_BYTES: usize = 1024 * 1024;
/// Blocks in flight between the hashing thread and the chunker: memory is bounded by
/// `(PIPE_DEPTH + 3) * PIPE_BLOCK_BYTES` (the channel, one block at each end, and one on its
/// way back to be filled again).
const PIPE_DEPTH: usize = 4;

/// The reading end of a source hashed on a thread of its own (see [`hash_pipe`]).
pub(crate) struct HashPipe {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    /// Blocks read to the end go back to the hashing thread to be filled again.
    back: mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
}

/// Reads `src` on a scoped thread that computes its digest while the bytes go on through a
/// bounded channel, so hashing (sha256 runs at about the chunker's speed) costs the chunker's
/// thread nothing. The thread's result is the digest and size of everything it read; it
/// stops at the end of `src`, at its first error (handed on to the reader), or when the
/// reading end is dropped.
pub(crate) fn hash_pipe<'scope, R: Read + Send + 'scope>(
    s: &'scope std::thread::Scope<'scope, '_>,
    src: R,
    algorithm: Algorithm,
) -> (
    HashPipe,
    std::thread::ScopedJoinHandle<'scope, (Digest, u64)>,
) {
    let (tx, rx) = mpsc::sync_channel(PIPE_DEPTH);
    let (back, recycled) = mpsc::channel::<Vec<u8>>();
    let hashing = s.spawn(move || {
        let mut src = src;
        let mut hasher = Hasher::new(algorithm);
        let mut total = 0u64;
        loop {
            let mut block = recycled.try_recv().unwrap_or_default();
            block.resize(PIPE_BLOCK_BYTES, 0);
            let n = match read_full(&mut src, &mut block) {
                Ok(n) => n,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    break;
                }
            };
            if n == 0 {
                break;
            }
            block.truncate(n);
            hasher.update(&block);
            total += n as u64;
            if tx.send(Ok(block)).is_err() {
                break;
            }
        }
        (hasher.finish(), total)
    });
    let pipe = HashPipe {
        rx,
        back,
        buf: Vec::new(),
        pos: 0,
    };
    (pipe, hashing)
}

impl Read for HashPipe {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        while self.pos >= self.buf.len() {
            match self.rx.recv() {
                Ok(Ok(block)) => {
                    let used = std::mem::replace(&mut self.buf, block);
                    // The hashing thread may be gone (the source ended): then the block drops.
                    let _ = self.back.send(used);
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                // The hashing thread is done: the end of the source.
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod pipe_tests {
    use super::*;

    #[test]
    fn a_hash_pipe_hands_on_every_byte_and_hashes_them() {
        let data: Vec<u8> = (0..3_500_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let (back, (digest, size)) = std::thread::scope(|s| {
            let (mut pipe, hashing) = hash_pipe(s, &data[..], Algorithm::Sha256);
            let mut back = Vec::new();
            pipe.read_to_end(&mut back).unwrap();
            (back, hashing.join().unwrap())
        });
        assert_eq!(back, data);
        assert_eq!((digest, size), (Digest::sha256(&data), data.len() as u64));
    }

    #[test]
    fn a_source_error_reaches_the_reader() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("disk gone"));
                }
                let n = buf.len().min(self.0);
                self.0 -= n;
                Ok(n)
            }
        }
        let err = std::thread::scope(|s| {
            let (mut pipe, _hashing) = hash_pipe(s, Failing(2_000_000), Algorithm::Sha256);
            let mut back = Vec::new();
            pipe.read_to_end(&mut back).unwrap_err()
        });
        assert_eq!(err.to_string(), "disk gone");
    }
}
