//! zstd compression with a context and an input buffer kept per thread. Creating a context
//! for every frame costs its allocation and table setup each time, and fresh buffers of a few
//! MiB cost page faults; a put compresses many frames on the same few pool threads.

use std::{cell::RefCell, io};

thread_local! {
    static CONTEXT: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(None) };
    static INPUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The input buffer is given back to the allocator when a frame made it larger than this.
const KEEP_INPUT_BYTES: usize = 8 * 1024 * 1024;

/// Compresses the concatenation of `parts` at `level` as one zstd frame, appended to `out`;
/// returns the compressed length.
pub(crate) fn compress_parts<'a>(
    parts: impl IntoIterator<Item = &'a [u8]>,
    level: i32,
    out: &mut Vec<u8>,
) -> io::Result<usize> {
    INPUT.with_borrow_mut(|input| {
        input.clear();
        for p in parts {
            input.extend_from_slice(p);
        }
        let n = compress(input, level, out);
        if input.capacity() > KEEP_INPUT_BYTES {
            *input = Vec::new();
        }
        n
    })
}

/// Compresses `input` at `level` as one zstd frame, appended to `out`; returns the compressed
/// length.
pub(crate) fn compress(input: &[u8], level: i32, out: &mut Vec<u8>) -> io::Result<usize> {
    CONTEXT.with_borrow_mut(|slot| {
        let ctx = match slot {
            Some((l, c)) if *l == level => c,
            _ => &mut slot.insert((level, zstd::bulk::Compressor::new(level)?)).1,
        };
        let start = out.len();
        out.reserve(zstd::zstd_safe::compress_bound(input.len()));
        let mut at = io::Cursor::new(&mut *out);
        at.set_position(start as u64);
        ctx.compress_to_buffer(input, &mut at)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn frames_decode_to_their_input_after_what_out_held() {
        let mut out = b"head".to_vec();
        let a: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let n = compress_parts([&a[..1000], &a[1000..]], 3, &mut out).unwrap();
        assert_eq!(&out[..4], b"head");
        assert_eq!(out.len(), 4 + n);
        assert_eq!(zstd::bulk::decompress(&out[4..], a.len()).unwrap(), a);
        // Another level on the same thread, and the context reused.
        for level in [19, 3, 3] {
            let mut out = Vec::new();
            compress(&a, level, &mut out).unwrap();
            assert_eq!(zstd::stream::decode_all(&out[..]).unwrap(), a);
        }
        let mut empty = Vec::new();
        compress(&[], 3, &mut empty).unwrap();
        assert_eq!(
            zstd::stream::decode_all(&empty[..]).unwrap(),
            Vec::<u8>::new()
        );
    }
}
