//! zstd compression with a context and an input buffer kept per thread. Creating a context
//! for every frame costs its allocation and table setup each time, and fresh buffers of a few
//! MiB cost page faults; a put compresses many frames on the same few pool threads.
//!
//! Also the one bounded decompression of bytes that may come from outside (a bundle's
//! recipe and script segments): [`decompress_capped`].

use std::{
    cell::RefCell,
    io::{self, Read},
};

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

/// Why [`decompress_capped`] refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Capped {
    /// The content is larger than the cap; `claimed` is the size its frame header gives, if any.
    Over { claimed: Option<u64> },
    /// Not zstd, or damaged.
    Damaged(String),
}

/// Decompresses zstd `bytes` into at most `cap` bytes. A frame header claiming more is refused
/// before anything is allocated; one claiming less gets a buffer of exactly its claim (and fails
/// if the content does not fit); a frame without a size claim is decoded as a stream cut off at
/// `cap + 1` bytes, so memory follows what it really holds, never more than the cap.
pub(crate) fn decompress_capped(bytes: &[u8], cap: usize) -> Result<Vec<u8>, Capped> {
    let cap64 = cap as u64;
    if let Ok(Some(claimed)) = zstd::zstd_safe::get_frame_content_size(bytes) {
        if claimed > cap64 {
            return Err(Capped::Over {
                claimed: Some(claimed),
            });
        }
        // `claimed <= cap`, a usize.
        return zstd::bulk::decompress(bytes, claimed as usize)
            .map_err(|e| Capped::Damaged(e.to_string()));
    }
    let mut out = Vec::new();
    zstd::stream::Decoder::new(bytes)
        .and_then(|d| d.take(cap64 + 1).read_to_end(&mut out))
        .map_err(|e| Capped::Damaged(e.to_string()))?;
    if out.len() > cap {
        return Err(Capped::Over { claimed: None });
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    /// A zstd frame of one raw block holding `content`, whose header claims `claimed` bytes.
    fn frame_claiming(claimed: u64, content: &[u8]) -> Vec<u8> {
        let mut f = vec![0x28, 0xb5, 0x2f, 0xfd];
        // Frame header descriptor: an 8-byte content size, no single segment, no checksum;
        // then a window descriptor of 1 MiB.
        f.push(0b1100_0000);
        f.push(10 << 3);
        f.extend_from_slice(&claimed.to_le_bytes());
        // One raw block, the last: (size << 3) | (type 0 << 1) | last.
        let header = ((content.len() as u32) << 3) | 1;
        f.extend_from_slice(&header.to_le_bytes()[..3]);
        f.extend_from_slice(content);
        f
    }

    #[test]
    fn capped_decompression_refuses_claims_and_bombs_beyond_the_cap() {
        let data = vec![7u8; 100_000];
        let framed = zstd::bulk::compress(&data, 3).unwrap();
        assert_eq!(decompress_capped(&framed, 100_000).unwrap(), data);
        assert_eq!(
            decompress_capped(&framed, 99_999),
            Err(Capped::Over {
                claimed: Some(100_000)
            })
        );
        // A stream frame says nothing of its size: cut off one byte past the cap.
        let stream = zstd::stream::encode_all(&data[..], 3).unwrap();
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(&stream).unwrap(),
            None
        );
        assert_eq!(decompress_capped(&stream, 100_000).unwrap(), data);
        assert_eq!(
            decompress_capped(&stream, 5000),
            Err(Capped::Over { claimed: None })
        );
        // A header claiming a terabyte over five bytes is refused before allocating; one
        // claiming fewer bytes than it holds fails.
        let liar = frame_claiming(1 << 40, b"hello");
        assert_eq!(
            decompress_capped(&liar, 1 << 20),
            Err(Capped::Over {
                claimed: Some(1 << 40)
            })
        );
        assert!(matches!(
            decompress_capped(&frame_claiming(2, b"hello"), 1 << 20),
            Err(Capped::Damaged(_))
        ));
        assert_eq!(
            decompress_capped(&frame_claiming(5, b"hello"), 1 << 20).unwrap(),
            b"hello"
        );
        assert!(matches!(
            decompress_capped(b"not zstd", 1 << 20),
            Err(Capped::Damaged(_))
        ));
    }

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
