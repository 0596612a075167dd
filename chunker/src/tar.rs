//! Just enough of the tar format (POSIX ustar, PAX, GNU) to know where headers end and file data
//! starts. Field parsing is the `tar` crate's; this module only classifies blocks.

/// Size of a tar block.
pub(crate) const BLOCK: usize = 512;

/// Metadata records larger than this are cut as data rather than kept inline.
pub(crate) const MAX_INLINE_RECORD_BYTES: u64 = 1024 * 1024;

/// What a 512-byte block that should be a header turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Block {
    /// All zeros: the end-of-archive marker.
    Zero,
    /// A header with a valid checksum.
    Header(Header),
    /// Anything else: the stream is not (or no longer) a tar.
    Invalid,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Header {
    /// Bytes of entry data that follow the header (and its extension blocks).
    pub(crate) size: u64,
    /// PAX extended headers and GNU long names: their data is metadata, kept inline.
    pub(crate) is_metadata: bool,
    /// A GNU sparse header that says an extension block follows.
    pub(crate) gnu_extended: bool,
}

pub(crate) fn classify(block: &[u8; BLOCK]) -> Block {
    if block.iter().all(|&b| b == 0) {
        return Block::Zero;
    }
    let header = tar::Header::from_byte_slice(block);
    let Ok(stored) = header.cksum() else {
        return Block::Invalid;
    };
    let unsigned: u32 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| if (148..156).contains(&i) { 32 } else { u32::from(b) })
        .sum();
    let signed: i32 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| if (148..156).contains(&i) { 32 } else { i32::from(b as i8) })
        .sum();
    if stored != unsigned && i64::from(stored) != i64::from(signed) {
        return Block::Invalid;
    }
    let Ok(size) = header.entry_size() else {
        return Block::Invalid;
    };
    let kind = block[156];
    let is_metadata = matches!(kind, b'x' | b'g' | b'L' | b'K' | b'X') && size <= MAX_INLINE_RECORD_BYTES;
    let gnu_extended = kind == b'S' && header.as_gnu().is_some_and(|g| g.is_extended());
    Block::Header(Header {
        size,
        is_metadata,
        gnu_extended,
    })
}

/// Whether a GNU sparse extension block says another one follows.
pub(crate) fn extension_continues(block: &[u8; BLOCK]) -> bool {
    block[504] != 0
}

/// Zero padding after `size` bytes of entry data, up to the next block boundary.
pub(crate) fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_block(kind: tar::EntryType, size: u64) -> [u8; BLOCK] {
        let mut h = tar::Header::new_gnu();
        h.set_path("a/b.txt").unwrap();
        h.set_size(size);
        h.set_entry_type(kind);
        h.set_cksum();
        *h.as_bytes()
    }

    #[test]
    fn classifies_headers() {
        let b = header_block(tar::EntryType::Regular, 1000);
        assert_eq!(
            classify(&b),
            Block::Header(Header {
                size: 1000,
                is_metadata: false,
                gnu_extended: false
            })
        );
        let b = header_block(tar::EntryType::XHeader, 100);
        assert!(matches!(classify(&b), Block::Header(Header { is_metadata: true, .. })));
        assert_eq!(classify(&[0; BLOCK]), Block::Zero);
        let mut bad = header_block(tar::EntryType::Regular, 10);
        bad[0] ^= 1;
        assert_eq!(classify(&bad), Block::Invalid);
        assert_eq!(classify(&[0x41; BLOCK]), Block::Invalid);
    }

    #[test]
    fn padding_rounds_to_blocks() {
        assert_eq!(padding(0), 0);
        assert_eq!(padding(1), 511);
        assert_eq!(padding(512), 0);
        assert_eq!(padding(513), 511);
    }
}
