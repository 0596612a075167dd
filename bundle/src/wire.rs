//! Little-endian field encoding shared by the codecs, and a reader that never trusts a count:
//! every length is checked against the bytes that remain before anything is allocated.
//! Also the one place files are written atomically (temp file, fsync, rename, fsync dir).

use std::{
    fs::File,
    io::Write,
    path::{Path, PathBuf},
};

use crate::error::{Result, io_error};

/// First 16 bytes of the BLAKE3 of `bytes`: the check of headers and trailers.
pub(crate) fn check16(bytes: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out.copy_from_slice(&blake3::hash(bytes).as_bytes()[..16]);
    out
}

/// Appends fields to a byte buffer.
#[derive(Debug, Default)]
pub(crate) struct Put(pub Vec<u8>);

impl Put {
    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn raw(&mut self, v: &[u8]) {
        self.0.extend_from_slice(v);
    }
    /// A byte string: u32 length, then the bytes. The caller has checked the length fits.
    pub fn bytes(&mut self, v: &[u8]) {
        self.u32(v.len() as u32);
        self.raw(v);
    }
}

/// Reads fields from a byte slice; each error says what was being read and where.
#[derive(Debug)]
pub(crate) struct Take<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// Why a [`Take`] read failed, with the offset; callers turn it into their own error variant.
pub(crate) type TakeResult<T> = std::result::Result<T, String>;

impl<'a> Take<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Take { buf, pos: 0 }
    }
    pub fn pos(&self) -> usize {
        self.pos
    }
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub fn raw(&mut self, n: usize, what: &str) -> TakeResult<&'a [u8]> {
        if n > self.remaining() {
            return Err(format!(
                "{what} at offset {} needs {n} bytes, {} remain",
                self.pos,
                self.remaining()
            ));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }
    pub fn array<const N: usize>(&mut self, what: &str) -> TakeResult<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.raw(N, what)?);
        Ok(out)
    }
    pub fn u8(&mut self, what: &str) -> TakeResult<u8> {
        Ok(self.array::<1>(what)?[0])
    }
    pub fn u32(&mut self, what: &str) -> TakeResult<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    pub fn u64(&mut self, what: &str) -> TakeResult<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    pub fn bytes(&mut self, what: &str) -> TakeResult<&'a [u8]> {
        let n = self.u32(what)? as usize;
        self.raw(n, what)
    }
    pub fn string(&mut self, what: &str) -> TakeResult<String> {
        let at = self.pos;
        let b = self.bytes(what)?;
        String::from_utf8(b.to_vec()).map_err(|_| format!("{what} at offset {at} is not UTF-8"))
    }
    /// A count of items each at least `min_bytes` long: refused when the remaining bytes
    /// cannot hold that many, so a forged count never drives an allocation.
    pub fn count(&mut self, min_bytes: usize, what: &str) -> TakeResult<usize> {
        let at = self.pos;
        let n = self.u32(what)? as usize;
        if n.saturating_mul(min_bytes.max(1)) > self.remaining() {
            return Err(format!(
                "{what} at offset {at} claims {n} entries, more than the {} bytes left can hold",
                self.remaining()
            ));
        }
        Ok(n)
    }
    pub fn finish(&self, what: &str) -> TakeResult<()> {
        if self.remaining() != 0 {
            return Err(format!(
                "{} bytes left over after {what} at offset {}",
                self.remaining(),
                self.pos
            ));
        }
        Ok(())
    }
}

/// Writes `bytes` to `path` so that no reader ever sees half of it: a temp file beside it,
/// fsync, rename, fsync of the directory.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    let mut file = File::create(&tmp).map_err(io_error(&tmp))?;
    file.write_all(bytes).map_err(io_error(&tmp))?;
    file.sync_all().map_err(io_error(&tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io_error(path))?;
    sync_parent(path)
}

/// Fsyncs the directory holding `path`, so a rename into it survives a crash.
pub(crate) fn sync_parent(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn a_forged_count_is_refused_before_allocating() {
        let mut p = Put::default();
        p.u32(u32::MAX);
        p.raw(&[0; 10]);
        let mut t = Take::new(&p.0);
        assert!(t.count(32, "chunks").unwrap_err().contains("claims"));
    }

    #[test]
    fn fields_round_trip_and_leftovers_are_reported() {
        let mut p = Put::default();
        p.u8(7);
        p.u64(1 << 40);
        p.bytes(b"hi");
        p.u8(0);
        let mut t = Take::new(&p.0);
        assert_eq!(t.u8("a").unwrap(), 7);
        assert_eq!(t.u64("b").unwrap(), 1 << 40);
        assert_eq!(t.string("c").unwrap(), "hi");
        assert!(t.finish("all").is_err());
        assert!(t.u64("d").is_err());
    }
}
