use std::io;

use airlock_chunker::{Chunker, ChunkerParams, Error, Layout, Mode, Piece};

use crate::common::{
    append_file, assert_cuts_at_files, assert_exact, cut, file_ranges, header_records,
    inline_and_chunk_bytes, noise, small, spans,
};

const BLOCK: usize = 512;

fn finish(b: tar::Builder<Vec<u8>>) -> Vec<u8> {
    b.into_inner().unwrap()
}

/// Cuts a well-formed tar and checks everything a well-formed tar promises.
fn check_tar(tar: &[u8]) -> Vec<Piece> {
    let params = small();
    let (pieces, layout) = cut(tar, params, Mode::Auto);
    assert_exact(tar, &pieces, params);
    assert_cuts_at_files(&pieces, &file_ranges(tar));
    assert_eq!(
        layout,
        Layout::Tar {
            members: header_records(tar)
        }
    );
    pieces
}

#[test]
fn pax_long_names_stay_inline() {
    let mut b = tar::Builder::new(Vec::new());
    let long = format!("{}/file", "x".repeat(300));
    b.append_pax_extensions([("path", long.as_bytes()), ("uname", b"someone")])
        .unwrap();
    let data = noise(1, 20_000);
    append_file(&mut b, "short", &data);
    let tar = finish(b);
    let pieces = check_tar(&tar);
    // The PAX record, its header and the file header come first, in one inline run.
    let Piece::Inline(head) = &pieces[0] else {
        panic!("expected inline first")
    };
    assert_eq!(head.len(), 3 * BLOCK); // x header, one block of records, file header
    let (_, chunk_bytes) = inline_and_chunk_bytes(&pieces);
    assert_eq!(chunk_bytes, data.len());
}

#[test]
fn big_pax_record_is_cut_as_data() {
    // Records over 1 MiB are not kept inline: a recipe never holds megabytes of metadata.
    let mut b = tar::Builder::new(Vec::new());
    let value = noise(2, 1_200_000)
        .into_iter()
        .map(|c| b'a' + c % 26)
        .collect::<Vec<_>>();
    b.append_pax_extensions([("SCHILY.xattr.user.big", &value[..])])
        .unwrap();
    append_file(&mut b, "f", b"hello");
    let tar = finish(b);
    let params = small();
    let (pieces, layout) = cut(&tar, params, Mode::Auto);
    assert_exact(&tar, &pieces, params);
    assert_eq!(layout, Layout::Tar { members: 2 });
    let (inline, chunks) = inline_and_chunk_bytes(&pieces);
    assert!(chunks > 1_200_000, "{chunks}");
    assert!(inline < 6 * BLOCK, "{inline}");
}

#[test]
fn gnu_long_names_and_link_names_stay_inline() {
    let mut b = tar::Builder::new(Vec::new());
    let long = format!("{}/bin", "deep/".repeat(40));
    append_file(&mut b, &long, &noise(3, 9000));
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "short-link", "t/".repeat(120))
        .unwrap();
    append_file(&mut b, "after", &noise(4, 700));
    let tar = finish(b);
    let pieces = check_tar(&tar);
    assert_eq!(header_records(&tar), 5); // L + file, K + symlink, file
    let (_, chunk_bytes) = inline_and_chunk_bytes(&pieces);
    assert_eq!(chunk_bytes, 9000 + 700);
}

#[test]
fn hard_links_and_symlinks_have_no_chunks() {
    let mut b = tar::Builder::new(Vec::new());
    append_file(&mut b, "a", &noise(5, 5000));
    for (kind, name) in [
        (tar::EntryType::Link, "hard"),
        (tar::EntryType::Symlink, "soft"),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(0);
        b.append_link(&mut h, name, "a").unwrap();
    }
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_size(0);
    b.append_data(&mut h, "d/", io::empty()).unwrap();
    append_file(&mut b, "b", &noise(6, 100));
    let tar = finish(b);
    let pieces = check_tar(&tar);
    let (inline, chunks) = inline_and_chunk_bytes(&pieces);
    assert_eq!(chunks, 5100);
    assert_eq!(inline, tar.len() - 5100);
}

/// A GNU sparse ('S') entry whose map needs `ext_blocks` extension blocks, followed by a
/// regular file; returns the tar and the data range of each entry.
fn sparse_tar(ext_blocks: usize) -> (Vec<u8>, Vec<std::ops::Range<u64>>) {
    let segments = 4 + 21 * ext_blocks;
    let seg_len = 1024;
    let stored = seg_len * segments;
    let mut h = tar::Header::new_gnu();
    h.set_path("sparse.img").unwrap();
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::GNUSparse);
    h.set_size(stored as u64);
    let at = |i: usize| (i * 2 * seg_len) as u64; // a hole after every segment
    let gnu = h.as_gnu_mut().unwrap();
    for (i, s) in gnu.sparse.iter_mut().enumerate() {
        s.set_offset(at(i));
        s.set_length(seg_len as u64);
    }
    gnu.set_real_size(at(segments - 1) + seg_len as u64);
    gnu.set_is_extended(ext_blocks > 0);
    h.set_cksum();
    let mut tar = h.as_bytes().to_vec();
    for e in 0..ext_blocks {
        let mut ext = tar::GnuExtSparseHeader::new();
        for (j, s) in ext.sparse_mut().iter_mut().enumerate() {
            s.set_offset(at(4 + 21 * e + j));
            s.set_length(seg_len as u64);
        }
        ext.set_is_extended(e + 1 < ext_blocks);
        tar.extend_from_slice(ext.as_bytes());
    }
    let data_start = tar.len() as u64;
    tar.extend(noise(7, stored));
    tar.resize(tar.len().next_multiple_of(BLOCK), 0);
    let mut b = tar::Builder::new(tar);
    append_file(&mut b, "plain.txt", &noise(8, 3000));
    let tar = finish(b);
    let next = tar.len() as u64 - 2 * BLOCK as u64 - 3072;
    (
        tar,
        vec![data_start..data_start + stored as u64, next..next + 3000],
    )
}

#[test]
fn gnu_sparse_extension_blocks_stay_inline() {
    for ext_blocks in [0, 1, 3] {
        let (tar, files) = sparse_tar(ext_blocks);
        // The hand-built archive is one the `tar` crate reads back, holes and all.
        let mut archive = tar::Archive::new(&tar[..]);
        let entries: Vec<_> = archive.entries().unwrap().map(|e| e.unwrap()).collect();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].raw_file_position(), files[1].start);
        let params = small();
        let (pieces, layout) = cut(&tar, params, Mode::Auto);
        assert_exact(&tar, &pieces, params);
        assert_cuts_at_files(&pieces, &files);
        assert_eq!(
            layout,
            Layout::Tar { members: 2 },
            "{ext_blocks} ext blocks"
        );
        let Piece::Inline(head) = &pieces[0] else {
            panic!("expected inline first")
        };
        assert_eq!(head.len(), (1 + ext_blocks) * BLOCK);
    }
}

#[test]
fn sparse_tar_cut_short_in_its_extension_blocks() {
    let (tar, _) = sparse_tar(3);
    for end in [BLOCK + 100, 2 * BLOCK, 3 * BLOCK + 1] {
        let data = &tar[..end];
        let (pieces, layout) = cut(data, small(), Mode::Auto);
        assert_exact(data, &pieces, small());
        assert_eq!(layout, Layout::Tar { members: 1 });
        assert!(pieces.iter().all(|p| matches!(p, Piece::Inline(_))));
    }
}

#[test]
fn link_size_fields_are_ignored_as_go_reads_them() {
    // Go's archive/tar (containerd, docker) reads no data after a link, symlink, device,
    // directory or FIFO header whatever its size field says; the `tar` crate writes an empty
    // size field for links made from a fresh header.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    b.append_link(&mut h, "empty-size", "a").unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_path("d/").unwrap();
    h.set_size(5000);
    h.set_cksum();
    b.get_mut().extend_from_slice(h.as_bytes());
    append_file(&mut b, "after", &noise(30, 3000));
    let tar = finish(b);
    let params = small();
    let (pieces, layout) = cut(&tar, params, Mode::Auto);
    assert_exact(&tar, &pieces, params);
    assert_eq!(layout, Layout::Tar { members: 3 });
    assert_cuts_at_files(&pieces, std::slice::from_ref(&(1536..4536)));
}

#[test]
fn pax_size_overrides_the_header_size() {
    // Go writes files of 8 GiB and more with a PAX `size` record and 0 in the header.
    let data = noise(31, 20_000);
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([("size", b"20000".as_slice())])
        .unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_path("big").unwrap();
    h.set_size(0);
    h.set_cksum();
    let start = b.get_ref().len() + BLOCK;
    b.get_mut().extend_from_slice(h.as_bytes());
    b.get_mut().extend_from_slice(&data);
    b.get_mut().resize(start + 20_480, 0);
    append_file(&mut b, "after", &noise(32, 100));
    let tar = finish(b);
    assert_eq!(file_ranges(&tar)[0], start as u64..start as u64 + 20_000);
    check_tar(&tar);
}

#[test]
fn truncated_tar_round_trips_at_every_kind_of_place() {
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([("path", "p".repeat(400).as_bytes())])
        .unwrap();
    append_file(&mut b, "a", &noise(9, 10_000));
    append_file(&mut b, "b", &noise(10, 700));
    let tar = finish(b);
    // Inside a header, inside the PAX records, inside data, inside padding, at block edges.
    for end in [
        0, 1, 100, 511, 512, 600, 1024, 1536, 1600, 2048, 2100, 6000, 12_000, 12_300, 12_800,
        13_000, 13_400, 13_824, 14_000,
    ] {
        let data = &tar[..end.min(tar.len())];
        let params = small();
        let (pieces, layout) = cut(data, params, Mode::Auto);
        assert_exact(data, &pieces, params);
        let expect_tar = end >= BLOCK;
        assert_eq!(
            matches!(layout, Layout::Tar { .. }),
            expect_tar,
            "cut at {end}: {layout:?}"
        );
    }
}

#[test]
fn header_whose_size_runs_past_eof() {
    let mut h = tar::Header::new_gnu();
    h.set_path("huge").unwrap();
    h.set_size(1 << 40);
    h.set_cksum();
    let mut data = h.as_bytes().to_vec();
    data.extend(noise(11, 30_000));
    let params = small();
    let (pieces, layout) = cut(&data, params, Mode::Auto);
    assert_exact(&data, &pieces, params);
    assert_eq!(layout, Layout::Tar { members: 1 });
    assert_eq!(pieces[0], Piece::Inline(h.as_bytes().to_vec()));
    assert!(pieces[1..].iter().all(|p| matches!(p, Piece::Chunk(_))));
}

#[test]
fn garbage_after_a_valid_header() {
    let mut b = tar::Builder::new(Vec::new());
    append_file(&mut b, "a", &noise(12, 1000));
    let mut data = b.get_ref().clone();
    let plain_from = data.len() as u64;
    data.extend(noise(13, 40_000));
    let params = small();
    let (pieces, layout) = cut(&data, params, Mode::Auto);
    assert_exact(&data, &pieces, params);
    assert_eq!(
        layout,
        Layout::TarThenPlain {
            members: 1,
            plain_from
        }
    );
}

#[test]
fn corrupted_header_mid_stream_falls_back_to_plain() {
    let mut b = tar::Builder::new(Vec::new());
    append_file(&mut b, "one", &noise(14, 3000));
    let second = b.get_ref().len();
    append_file(&mut b, "two", &noise(15, 30_000));
    append_file(&mut b, "three", &noise(16, 30_000));
    let mut tar = finish(b);
    tar[second + 1] ^= 0x20; // a bit of the name: the checksum no longer matches
    let params = small();
    let (pieces, layout) = cut(&tar, params, Mode::Auto);
    assert_exact(&tar, &pieces, params);
    assert_eq!(
        layout,
        Layout::TarThenPlain {
            members: 1,
            plain_from: second as u64
        }
    );
    // Before: tar-aware. From the bad header on: exactly plain CDC of the rest.
    let spans = spans(&pieces);
    let split = spans
        .iter()
        .position(|s| s.offset == second as u64)
        .unwrap();
    assert_eq!(
        pieces[split..].to_vec(),
        cut(&tar[second..], params, Mode::Plain).0
    );
    assert_cuts_at_files(&pieces[..split], std::slice::from_ref(&(512..3512)));
}

#[test]
fn signed_checksum_headers_are_accepted() {
    // Some historic writers summed the header as signed bytes; a name with high bytes makes
    // the two sums differ.
    let mut h = tar::Header::new_ustar();
    h.as_mut_bytes()[0..4].copy_from_slice(&[0xc3, 0xa9, 0xc3, 0xa9]);
    h.set_size(600);
    h.set_entry_type(tar::EntryType::Regular);
    let signed: i64 = h
        .as_bytes()
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                i64::from(b as i8)
            }
        })
        .sum();
    h.as_mut_bytes()[148..156].copy_from_slice(format!("{signed:06o}\0 ").as_bytes());
    let mut data = h.as_bytes().to_vec();
    data.extend(noise(17, 600));
    data.resize(2048, 0);
    let (pieces, layout) = cut(&data, small(), Mode::Auto);
    assert_exact(&data, &pieces, small());
    assert_eq!(layout, Layout::Tar { members: 1 });
    assert_cuts_at_files(&pieces, std::slice::from_ref(&(512..1112)));
}

#[test]
fn end_of_archive_followed_by_junk() {
    let mut b = tar::Builder::new(Vec::new());
    append_file(&mut b, "a", &noise(18, 5000));
    let mut data = finish(b);
    let plain_from = data.len() as u64;
    data.extend(noise(19, 20_000));
    let params = small();
    let (pieces, layout) = cut(&data, params, Mode::Auto);
    assert_exact(&data, &pieces, params);
    assert_eq!(
        layout,
        Layout::TarThenPlain {
            members: 1,
            plain_from
        }
    );
    // The end marker stays inline, with the file's padding.
    let at_marker = spans(&pieces)
        .into_iter()
        .find(|s| s.end() == plain_from)
        .unwrap();
    assert!(!at_marker.chunk);
}

#[test]
fn end_of_archive_padded_to_a_record_stays_inline() {
    let mut b = tar::Builder::new(Vec::new());
    append_file(&mut b, "a", &noise(20, 5000));
    let mut tar = finish(b);
    tar.resize(10240, 0);
    let pieces = check_tar(&tar);
    assert!(matches!(pieces.last(), Some(Piece::Inline(b)) if b.len() > 4096));
}

#[test]
fn long_zero_run_after_end_of_archive_is_cut_as_data() {
    let mut b = tar::Builder::new(Vec::new());
    append_file(&mut b, "a", &noise(21, 5000));
    let mut tar = finish(b);
    let marker = tar.len() - 2 * BLOCK;
    tar.resize(marker + 1024 * 1024, 0);
    let params = small();
    let (pieces, layout) = cut(&tar, params, Mode::Auto);
    assert_exact(&tar, &pieces, params);
    assert_eq!(
        layout,
        Layout::TarThenPlain {
            members: 1,
            plain_from: (marker + 21 * BLOCK) as u64
        }
    );
}

#[test]
fn concatenated_archives_stay_tar_aware() {
    let mut one = tar::Builder::new(Vec::new());
    append_file(&mut one, "a", &noise(22, 5000));
    let mut two = tar::Builder::new(finish(one));
    append_file(&mut two, "b", &noise(23, 5000));
    let tar = finish(two);
    let params = small();
    let (pieces, layout) = cut(&tar, params, Mode::Auto);
    assert_exact(&tar, &pieces, params);
    assert_eq!(layout, Layout::Tar { members: 2 });
    assert_cuts_at_files(&pieces, &[512..5512, 7168..12168]);
}

#[test]
fn not_a_tar_is_cut_plain() {
    let data = noise(24, 100_000);
    let params = small();
    let (auto, layout) = cut(&data, params, Mode::Auto);
    assert_exact(&data, &auto, params);
    assert_eq!(layout, Layout::Plain);
    assert_eq!(auto, cut(&data, params, Mode::Plain).0);
    // Starting with zeros (an empty archive) is not a tar either.
    let zeros = vec![0u8; 10240];
    let (pieces, layout) = cut(&zeros, params, Mode::Auto);
    assert_exact(&zeros, &pieces, params);
    assert_eq!(layout, Layout::Plain);
}

#[test]
fn mode_plain_ignores_tar_structure() {
    let mut b = tar::Builder::new(Vec::new());
    append_file(&mut b, "a", &noise(25, 50_000));
    let tar = finish(b);
    let params = small();
    let (pieces, layout) = cut(&tar, params, Mode::Plain);
    assert_exact(&tar, &pieces, params);
    assert_eq!(layout, Layout::Plain);
    assert!(pieces.iter().all(|p| matches!(p, Piece::Chunk(_))));
}

#[test]
fn empty_and_tiny_inputs() {
    for mode in [Mode::Auto, Mode::Plain] {
        let (pieces, layout) = cut(&[], small(), mode);
        assert!(pieces.is_empty());
        assert_eq!(layout, Layout::Plain);
        for len in [1, 100, 511] {
            let data = noise(26, len);
            let (pieces, layout) = cut(&data, small(), mode);
            assert_exact(&data, &pieces, small());
            assert_eq!(pieces.len(), 1);
            assert!(matches!(pieces[0], Piece::Chunk(_)));
            assert_eq!(layout, Layout::Plain);
        }
    }
    let mut chunker = Chunker::new(&[][..], small(), Mode::Auto);
    assert!(chunker.next_batch().unwrap().is_none());
    assert!(chunker.next_batch().unwrap().is_none());
}

/// Serves `good` bytes, then fails.
struct Failing {
    good: Vec<u8>,
}

impl io::Read for Failing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.good.is_empty() {
            return Err(io::Error::other("disk on fire"));
        }
        let n = buf.len().min(self.good.len()).min(1000);
        buf[..n].copy_from_slice(&self.good[..n]);
        self.good.drain(..n);
        Ok(n)
    }
}

#[test]
fn read_error_names_its_offset_and_poisons_the_chunker() {
    for good in [0, 300, 700, 5000] {
        let mut b = tar::Builder::new(Vec::new());
        append_file(&mut b, "a", &noise(27, 50_000));
        let tar = finish(b);
        let src = Failing {
            good: tar[..good].to_vec(),
        };
        let mut chunker = Chunker::new(src, ChunkerParams::default(), Mode::Auto);
        match chunker.next_batch() {
            Err(Error::Read { offset, source }) => {
                assert_eq!(offset, good as u64);
                assert_eq!(source.to_string(), "disk on fire");
            }
            other => panic!("expected a read error, got {other:?}"),
        }
        assert!(matches!(
            chunker.next_batch(),
            Err(Error::Poisoned { offset }) if offset == good as u64
        ));
    }
}

#[test]
fn into_inner_and_bytes_read() {
    let data = noise(28, 70_000);
    let mut chunker = Chunker::new(io::Cursor::new(&data), small(), Mode::Auto);
    while chunker.next_batch().unwrap().is_some() {}
    assert_eq!(chunker.bytes_read(), 70_000);
    assert_eq!(chunker.into_inner().position(), 70_000);
}
