//! Just enough of the tar format (POSIX ustar and PAX, GNU, v7) to know where headers end and
//! file data starts, read the way Go's `archive/tar` reads it (containerd and docker unpack
//! layers with it):
//! - numeric fields are octal, blanks and NULs around them ignored, an empty field is 0; or
//!   base-256 when the first byte has its high bit set;
//! - the checksum may be the unsigned or the signed byte sum;
//! - links, symlinks, devices, directories and FIFOs have no data, whatever their size field;
//! - a PAX 'x' record's `size` overrides the next entry's size field;
//! - an old-GNU sparse ('S') header is followed by extension blocks while `isextended` is set.
//!
//! Where readers disagree or the archive is damaged, nothing is lost: the chunker only decides
//! where cuts go, and every byte is in some piece whatever this module says.

use std::ops::Range;

/// Size of a tar block.
pub(crate) const BLOCK: usize = 512;

/// Metadata records larger than this are cut as data rather than kept inline.
pub(crate) const MAX_INLINE_RECORD_BYTES: u64 = 1024 * 1024;

/// Consecutive zero blocks kept inline where a header is expected: the two-block end marker
/// and padding up to the end of a 10 KiB record (GNU tar's and bsdtar's default), which takes
/// at most 21 blocks in all. Zeros beyond are cut as data, so a recipe never holds a long run
/// of them inline.
pub(crate) const MAX_ZERO_BLOCKS: u32 = 21;

/// Header fields, as byte ranges of the block.
const SIZE: Range<usize> = 124..136;
const CHKSUM: Range<usize> = 148..156;
const TYPEFLAG: usize = 156;
/// The old-GNU `isextended` byte of an 'S' (sparse) header.
const GNU_IS_EXTENDED: usize = 482;
/// The `isextended` byte of a GNU sparse extension block.
const EXT_IS_EXTENDED: usize = 504;

/// What a 512-byte block that should be a header turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Block {
    /// All zeros: the end-of-archive marker.
    Zero,
    /// A header with a valid checksum and size.
    Header(Header),
    /// Anything else: the stream is not (or no longer) a tar.
    Invalid,
}

/// A valid header block.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Header {
    /// Bytes that follow the header (and its extension blocks), from the size field; 0 for
    /// types that have no data. A preceding PAX `size` record may override it.
    pub(crate) size: u64,
    pub(crate) kind: Kind,
}

/// What follows a header.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A PAX extended header ('x') of at most [`MAX_INLINE_RECORD_BYTES`]: records that apply
    /// to the next entry, kept inline.
    Pax,
    /// Other metadata of at most [`MAX_INLINE_RECORD_BYTES`], kept inline: PAX global ('g'),
    /// GNU long name and link name ('L', 'K'), Solaris extended ('X').
    Metadata,
    /// An entry with no data whatever its size field: hard link, symlink, character or block
    /// device, directory, FIFO.
    NoData,
    /// An old-GNU sparse header followed by extension blocks.
    SparseExtended,
    /// An entry whose data (if any) is content: regular files, and anything unknown.
    Data,
}

/// Reads a block where a header is expected.
pub(crate) fn classify(block: &[u8; BLOCK]) -> Block {
    if block.iter().all(|&b| b == 0) {
        return Block::Zero;
    }
    if !checksum_matches(block) {
        return Block::Invalid;
    }
    let Some(size) = parse_numeric(&block[SIZE]) else {
        return Block::Invalid;
    };
    let kind = match block[TYPEFLAG] {
        b'x' if size <= MAX_INLINE_RECORD_BYTES => Kind::Pax,
        b'g' | b'L' | b'K' | b'X' if size <= MAX_INLINE_RECORD_BYTES => Kind::Metadata,
        b'1'..=b'6' => Kind::NoData,
        // As GNU tar and Go do, trust the old-GNU `isextended` byte whatever the magic says.
        b'S' if block[GNU_IS_EXTENDED] != 0 => Kind::SparseExtended,
        _ => Kind::Data,
    };
    let size = if kind == Kind::NoData { 0 } else { size };
    Block::Header(Header { size, kind })
}

/// Whether the checksum field matches the block's byte sum, counted unsigned (POSIX) or
/// signed (some historic writers), with the field itself counted as eight spaces.
fn checksum_matches(block: &[u8; BLOCK]) -> bool {
    let Some(stored) = parse_numeric(&block[CHKSUM]) else {
        return false;
    };
    let (mut unsigned, mut signed) = (0u64, 0i64);
    for (i, &b) in block.iter().enumerate() {
        let b = if CHKSUM.contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    stored == unsigned || i64::try_from(stored).is_ok_and(|s| s == signed)
}

/// A numeric header field: base-256 if the high bit of its first byte is set (negative values
/// rejected), octal otherwise, with leading and trailing NULs and spaces ignored and an empty
/// field read as 0.
fn parse_numeric(field: &[u8]) -> Option<u64> {
    match field.first() {
        Some(0x80) => {
            // Positive base-256: big-endian in the remaining bytes; must fit in 64 bits.
            let (high, low) = field[1..].split_at(field.len().saturating_sub(9));
            if high.iter().any(|&b| b != 0) {
                return None;
            }
            Some(low.iter().fold(0u64, |n, &b| (n << 8) | u64::from(b)))
        }
        Some(b) if b & 0x80 != 0 => None,
        _ => {
            let text = trim_blanks(field);
            if text.is_empty() {
                return Some(0);
            }
            if !text.iter().all(|b| (b'0'..=b'7').contains(b)) {
                return None;
            }
            // At most 12 octal digits in any field: no overflow.
            Some(
                text.iter()
                    .fold(0u64, |n, &b| (n << 3) | u64::from(b - b'0')),
            )
        }
    }
}

/// A field without the NULs and spaces around its text.
fn trim_blanks(field: &[u8]) -> &[u8] {
    let blank = |b: &u8| *b == 0 || *b == b' ';
    let start = field.iter().position(|b| !blank(b)).unwrap_or(field.len());
    let end = field
        .iter()
        .rposition(|b| !blank(b))
        .map_or(start, |i| i + 1);
    &field[start..end]
}

/// The `size` of a PAX extended header's records (`"<len> <key>=<value>\n"` each), the last
/// one winning; `None` if there is none or the records are malformed.
pub(crate) fn pax_size(mut records: &[u8]) -> Option<u64> {
    let mut size = None;
    while !records.is_empty() {
        let space = records.iter().position(|&b| b == b' ')?;
        let len: usize = std::str::from_utf8(&records[..space]).ok()?.parse().ok()?;
        if len <= space + 1 || len > records.len() || records[len - 1] != b'\n' {
            return None;
        }
        let record = &records[space + 1..len - 1];
        if let Some(value) = record.strip_prefix(b"size=") {
            size = Some(std::str::from_utf8(value).ok()?.parse::<u64>().ok()?);
        }
        records = &records[len..];
    }
    size
}

/// Whether a GNU sparse extension block says another one follows.
pub(crate) fn extension_continues(block: &[u8; BLOCK]) -> bool {
    block[EXT_IS_EXTENDED] != 0
}

/// Zero padding after `size` bytes of entry data, up to the next block boundary.
pub(crate) fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
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

    fn with_checksum(mut block: [u8; BLOCK]) -> [u8; BLOCK] {
        block[CHKSUM].fill(b' ');
        let sum: u64 = block.iter().map(|&b| u64::from(b)).sum();
        block[CHKSUM].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        block
    }

    #[test]
    fn classifies_headers() {
        let b = header_block(tar::EntryType::Regular, 1000);
        assert_eq!(
            classify(&b),
            Block::Header(Header {
                size: 1000,
                kind: Kind::Data
            })
        );
        let b = header_block(tar::EntryType::XHeader, 100);
        assert_eq!(
            classify(&b),
            Block::Header(Header {
                size: 100,
                kind: Kind::Pax
            })
        );
        let b = header_block(tar::EntryType::GNULongName, 2 << 20);
        assert_eq!(
            classify(&b),
            Block::Header(Header {
                size: 2 << 20,
                kind: Kind::Data
            })
        );
        assert_eq!(classify(&[0; BLOCK]), Block::Zero);
        let mut bad = header_block(tar::EntryType::Regular, 10);
        bad[0] ^= 1;
        assert_eq!(classify(&bad), Block::Invalid);
        assert_eq!(classify(&[0x41; BLOCK]), Block::Invalid);
    }

    #[test]
    fn links_and_directories_have_no_data() {
        for kind in [
            tar::EntryType::Link,
            tar::EntryType::Symlink,
            tar::EntryType::Char,
            tar::EntryType::Block,
            tar::EntryType::Directory,
            tar::EntryType::Fifo,
        ] {
            let b = header_block(kind, 4096);
            assert_eq!(
                classify(&b),
                Block::Header(Header {
                    size: 0,
                    kind: Kind::NoData
                }),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn empty_size_field_is_zero() {
        // `tar::Builder::append_link` with a fresh header leaves the size field all NULs.
        let mut h = tar::Header::new_gnu();
        h.set_path("a").unwrap();
        h.as_mut_bytes()[SIZE].fill(0);
        h.set_cksum();
        assert_eq!(
            classify(h.as_bytes()),
            Block::Header(Header {
                size: 0,
                kind: Kind::Data
            })
        );
    }

    #[test]
    fn sparse_extended_flag_is_read_whatever_the_magic() {
        let mut b = header_block(tar::EntryType::GNUSparse, 100);
        assert!(matches!(
            classify(&b),
            Block::Header(Header {
                kind: Kind::Data,
                ..
            })
        ));
        b[GNU_IS_EXTENDED] = 1;
        b[257..265].copy_from_slice(b"ustar\x0000");
        let b = with_checksum(b);
        assert_eq!(
            classify(&b),
            Block::Header(Header {
                size: 100,
                kind: Kind::SparseExtended
            })
        );
    }

    #[test]
    fn numeric_fields() {
        assert_eq!(parse_numeric(b"00000001750\0"), Some(1000));
        assert_eq!(parse_numeric(b"  1750 \0\0\0\0\0"), Some(1000));
        assert_eq!(parse_numeric(b"\x001750\0\0\0\0\0\0\0"), Some(1000));
        assert_eq!(parse_numeric(&[0; 12]), Some(0));
        assert_eq!(parse_numeric(b"            "), Some(0));
        assert_eq!(parse_numeric(b"17 50\0\0\0\0\0\0\0"), None);
        assert_eq!(parse_numeric(b"0000000175x\0"), None);
        assert_eq!(parse_numeric(b"777777777777"), Some(0o777_777_777_777));
        let mut big = [0u8; 12];
        big[0] = 0x80;
        big[4..].copy_from_slice(&(1u64 << 40).to_be_bytes());
        assert_eq!(parse_numeric(&big), Some(1 << 40));
        big[3] = 1; // beyond 64 bits
        assert_eq!(parse_numeric(&big), None);
        let mut negative = [0xffu8; 12];
        negative[11] = 0xfe;
        assert_eq!(parse_numeric(&negative), None);
        // The `tar` crate's own base-256 writer agrees.
        let mut h = tar::Header::new_gnu();
        h.set_size(1 << 40);
        assert_eq!(parse_numeric(&h.as_bytes()[SIZE]), Some(1 << 40));
    }

    #[test]
    fn signed_and_unsigned_checksums() {
        let mut b = header_block(tar::EntryType::Regular, 10);
        b[0..2].copy_from_slice(&[0xc3, 0xa9]);
        let b = with_checksum(b);
        assert!(checksum_matches(&b));
        let mut signed = b;
        signed[CHKSUM].fill(b' ');
        let sum: i64 = signed.iter().map(|&x| i64::from(x as i8)).sum();
        signed[CHKSUM].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        assert!(checksum_matches(&signed));
        signed[CHKSUM].copy_from_slice(format!("{:06o}\0 ", sum + 1).as_bytes());
        assert!(!checksum_matches(&signed));
    }

    #[test]
    fn pax_size_records() {
        assert_eq!(pax_size(b"16 size=1234567\n"), Some(1_234_567));
        let two = b"30 mtime=1700000000.123456789\n12 size=100\n11 size=99\n";
        assert_eq!(pax_size(two), Some(99));
        assert_eq!(pax_size(b"19 path=some/where\n"), None);
        assert_eq!(pax_size(b"99 size=1\n"), None);
        assert_eq!(pax_size(b"11 size=-1\n"), None);
        assert_eq!(pax_size(b"garbage"), None);
        assert_eq!(pax_size(b""), None);
    }

    #[test]
    fn padding_rounds_to_blocks() {
        assert_eq!(padding(0), 0);
        assert_eq!(padding(1), 511);
        assert_eq!(padding(512), 0);
        assert_eq!(padding(513), 511);
    }
}
