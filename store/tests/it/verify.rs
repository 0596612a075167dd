//! Fixtures named by defect: `verify` names the pack, the offset and the blobs affected;
//! reads of affected blobs fail with a clear error, never wrong bytes; other blobs still read.
//! (`with_missing_chunk` and the other index-level defects are unit tests in `verify.rs`.)

use std::{fs, io::Read};

use airlock_store::{Defect, Digest, Error, PackId, Store, StoreOptions, Verify, unwrap_io};

use crate::common::*;

/// A store with two blobs: `a` in the first frames of pack 1, `b` after it in the same pack.
struct TwoBlobs {
    dir: tempfile::TempDir,
    store: Store,
    a: (Digest, Vec<u8>),
    b: (Digest, Vec<u8>),
    /// Length of pack 1 after `a` was put: where `b`'s frames start.
    a_end: u64,
}

fn two_blobs() -> TwoBlobs {
    let (dir, store) = store_with(small_opts(64 * 1024 * 1024));
    let a = seeded(90, 100_000);
    let b = seeded(91, 100_000);
    let (da, _) = put(&store, &a);
    let packs = pack_files(dir.path());
    assert_eq!(packs.len(), 1);
    let a_end = packs[0].1;
    let (db, _) = put(&store, &b);
    assert_eq!(pack_files(dir.path()).len(), 1);
    TwoBlobs {
        dir,
        store,
        a: (da, a),
        b: (db, b),
        a_end,
    }
}

const PACK: PackId = PackId(1);

/// Reading `digest` fails with a pack error naming `pack`, at `offset` if given.
fn assert_read_fails(store: &Store, digest: &Digest, pack: PackId, offset: Option<u64>) {
    let err = read_all(store, digest).expect_err("an affected blob must not read");
    match &err {
        Error::PackCorrupt {
            pack: p, offset: o, ..
        } => {
            assert_eq!(*p, pack, "{err}");
            if let Some(offset) = offset {
                assert_eq!(*o, offset, "{err}");
            }
        }
        other => panic!("expected PackCorrupt, got {other}"),
    }
    assert!(err.to_string().contains(&pack.to_string()), "{err}");
    assert!(store.read_blob(digest).is_err());
}

#[test]
fn clean_store_verifies_clean() {
    let f = two_blobs();
    let report = f.store.verify(Verify::Full).unwrap();
    assert!(report.is_clean(), "{:?}", report.defects);
    assert_eq!(report.blobs, 2);
    assert_eq!(report.packs, 1);
    assert!(report.frames >= 8, "{report:?}");
    assert_eq!(report.bytes_hashed, 200_000);
    let quick = f.store.verify(Verify::Quick).unwrap();
    assert!(quick.is_clean());
    assert_eq!(quick.bytes_hashed, 0);
}

#[test]
fn with_flipped_byte() {
    let f = two_blobs();
    let path = pack_path(f.dir.path(), PACK);
    let (frames, _) = raw_frames(&path);
    // The second frame of `a`, flipped in its compressed payload.
    let frame = frames
        .iter()
        .filter(|fr| fr.offset < f.a_end)
        .nth(1)
        .unwrap()
        .clone();
    flip_byte(&path, frame.payload + 100);
    let report = f.store.verify(Verify::Full).unwrap();
    assert_eq!(report.defects.len(), 1, "{:?}", report.defects);
    match &report.defects[0] {
        Defect::FrameCorrupt {
            pack,
            offset,
            blobs,
            what,
        } => {
            assert_eq!(*pack, PACK);
            assert_eq!(*offset, frame.offset);
            assert_eq!(blobs, &vec![f.a.0.clone()]);
            assert!(what.contains("checksum"), "{what}");
        }
        other => panic!("{other}"),
    }
    let text = report.defects[0].to_string();
    assert!(text.contains(&frame.offset.to_string()) && text.contains(&f.a.0.to_string()));
    assert_read_fails(&f.store, &f.a.0, PACK, Some(frame.offset));
    assert_reads(&f.store, &f.b.0, &f.b.1);
    // A range that stays in the intact first frame still reads, exactly.
    let first_len: u32 = frames[0].entries.iter().map(|e| e.1).sum();
    let mut got = Vec::new();
    f.store
        .open_blob_range(&f.a.0, 0..u64::from(first_len))
        .unwrap()
        .read_to_end(&mut got)
        .unwrap();
    assert_eq!(got, f.a.1[..first_len as usize]);
    // A range reaching into the damaged frame fails.
    let mut r = f
        .store
        .open_blob_range(&f.a.0, 0..f.a.1.len() as u64)
        .unwrap();
    let err = r.read_to_end(&mut Vec::new()).unwrap_err();
    assert!(matches!(unwrap_io(&f.a.0, err), Error::PackCorrupt { .. }));
}

#[test]
fn with_flipped_byte_in_a_frame_header() {
    let f = two_blobs();
    let path = pack_path(f.dir.path(), PACK);
    let (frames, _) = raw_frames(&path);
    let frame = frames
        .iter()
        .find(|fr| fr.offset >= f.a_end)
        .unwrap()
        .clone();
    // One byte of a chunk id in the entry table.
    flip_byte(&path, frame.offset + 32 + 5);
    let report = f.store.verify(Verify::Quick).unwrap();
    assert!(
        report.defects.iter().any(|d| matches!(d,
            Defect::FrameCorrupt { pack, offset, blobs, .. }
                if *pack == PACK && *offset == frame.offset && *blobs == vec![f.b.0.clone()])),
        "{:?}",
        report.defects
    );
    assert_read_fails(&f.store, &f.b.0, PACK, Some(frame.offset));
    assert_reads(&f.store, &f.a.0, &f.a.1);
}

#[test]
fn with_truncated_pack() {
    let f = two_blobs();
    let path = pack_path(f.dir.path(), PACK);
    let full = fs::metadata(&path).unwrap().len();
    // Cut into the middle of `b`'s frames.
    let cut = f.a_end + (full - f.a_end) / 2;
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(cut)
        .unwrap();
    let check = |store: &Store| {
        let report = store.verify(Verify::Full).unwrap();
        let truncated: Vec<_> = report
            .defects
            .iter()
            .filter_map(|d| match d {
                Defect::PackTruncated {
                    pack,
                    actual,
                    expected,
                    blobs,
                } => Some((*pack, *actual, *expected, blobs.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(
            truncated,
            vec![(PACK, cut, full, vec![f.b.0.clone()])],
            "{:?}",
            report.defects
        );
        // Every frame past the cut is named, with `b`.
        for d in &report.defects {
            if let Defect::FrameCorrupt {
                pack,
                offset,
                blobs,
                ..
            } = d
            {
                assert_eq!(*pack, PACK);
                assert!(*offset >= f.a_end, "{d}");
                assert_eq!(*blobs, vec![f.b.0.clone()], "{d}");
            }
        }
        assert!(report.defects[0].to_string().contains("truncated"));
        assert_read_fails(store, &f.b.0, PACK, None);
        assert_reads(store, &f.a.0, &f.a.1);
    };
    check(&f.store);
    // After a restart, which must not make things worse.
    drop(f.store);
    let store = Store::open(f.dir.path(), small_opts(64 * 1024 * 1024)).unwrap();
    check(&store);
    // New content goes elsewhere, and is sound; the damaged pack takes no more writes.
    let (dc, _) = put(&store, &seeded(92, 30_000));
    assert_reads(&store, &dc, &seeded(92, 30_000));
    assert_eq!(fs::metadata(&path).unwrap().len(), cut);
    check(&store);
}

#[test]
fn with_missing_pack() {
    // Packs of one frame each, so `a` and `b` never share a pack.
    let (dir, store) = store_with(small_opts(1));
    let a = seeded(93, 10_000);
    let b = seeded(94, 10_000);
    let (da, _) = put(&store, &a);
    let a_packs = pack_files(dir.path());
    assert_eq!(a_packs.len(), 1);
    let (db, _) = put(&store, &b);
    let gone = a_packs[0].0;
    fs::remove_file(pack_path(dir.path(), gone)).unwrap();
    let report = store.verify(Verify::Full).unwrap();
    assert_eq!(
        report.defects,
        vec![Defect::PackMissing {
            pack: gone,
            blobs: vec![da.clone()]
        }]
    );
    assert!(report.defects[0].to_string().contains("missing"));
    assert_read_fails(&store, &da, gone, None);
    let msg = read_all(&store, &da).unwrap_err().to_string();
    assert!(msg.contains("missing"), "{msg}");
    assert_reads(&store, &db, &b);
    // The same after a restart.
    drop(store);
    let store = Store::open(dir.path(), small_opts(1)).unwrap();
    assert_eq!(store.verify(Verify::Quick).unwrap().defects.len(), 1);
    assert_read_fails(&store, &da, gone, None);
    assert_reads(&store, &db, &b);
}

/// A sealed pack whose seal is damaged: the pack and the seal's offset are named; no blob is
/// affected, every blob still reads.
#[test]
fn with_flipped_seal() {
    let (dir, store) = store_with(small_opts(1));
    let a = seeded(95, 10_000);
    let (da, _) = put(&store, &a);
    let (id, len) = pack_files(dir.path())[0];
    let path = pack_path(dir.path(), id);
    assert!(
        raw_frames(&path).1,
        "a pack of one frame over the limit is sealed"
    );
    flip_byte(&path, len - 3);
    let report = store.verify(Verify::Full).unwrap();
    assert_eq!(report.defects.len(), 1, "{:?}", report.defects);
    assert!(
        matches!(&report.defects[0], Defect::FrameCorrupt { pack, offset, blobs, .. }
            if *pack == id && *offset == len - 32 && blobs.is_empty()),
        "{:?}",
        report.defects
    );
    assert_reads(&store, &da, &a);
}

/// A damaged pack header is named at offset 0; reads, which go straight to frames, still work.
#[test]
fn with_flipped_pack_header() {
    let f = two_blobs();
    flip_byte(&pack_path(f.dir.path(), PACK), 2);
    let report = f.store.verify(Verify::Full).unwrap();
    assert_eq!(report.defects.len(), 1, "{:?}", report.defects);
    assert!(
        matches!(&report.defects[0], Defect::FrameCorrupt { pack, offset: 0, blobs, what }
            if *pack == PACK && blobs.is_empty() && what.contains("header")),
        "{:?}",
        report.defects
    );
    assert_reads(&f.store, &f.a.0, &f.a.1);
    assert_reads(&f.store, &f.b.0, &f.b.1);
}

/// Bytes after a pack's committed length (a put that crashed before its commit) are no
/// defect, and the next read-write open cuts them off.
#[test]
fn with_torn_pack() {
    let (dir, store) = store_with(small_opts(64 * 1024 * 1024));
    let a = seeded(96, 50_000);
    let (da, _) = put(&store, &a);
    drop(store);
    let (id, len) = pack_files(dir.path())[0];
    let path = pack_path(dir.path(), id);
    let mut bytes = fs::read(&path).unwrap();
    bytes.extend_from_slice(b"FRAM");
    bytes.extend(seeded(97, 5000));
    fs::write(&path, &bytes).unwrap();
    let ro = Store::open(
        dir.path(),
        StoreOptions {
            access: airlock_store::Access::ReadOnly,
            ..small_opts(64 * 1024 * 1024)
        },
    )
    .unwrap();
    assert!(ro.verify(Verify::Full).unwrap().is_clean());
    drop(ro);
    let store = Store::open(dir.path(), small_opts(64 * 1024 * 1024)).unwrap();
    assert_eq!(fs::metadata(&path).unwrap().len(), len);
    assert_reads(&store, &da, &a);
    let (db, _) = put(&store, &seeded(98, 20_000));
    assert_reads(&store, &db, &seeded(98, 20_000));
    assert!(store.verify(Verify::Full).unwrap().is_clean());
}
