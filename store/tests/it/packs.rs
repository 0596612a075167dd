//! Packs: append-only zstd frames, sealed at the size limit, self-describing and checksummed.

use std::collections::HashSet;

use airlock_store::{Store, Verify};

use crate::common::*;

const PACK_SIZE: u64 = 128 * 1024;

#[test]
fn blob_spans_sealed_packs() {
    let (dir, store) = store_with(small_opts(PACK_SIZE));
    let data = seeded(70, 1_500_000);
    let (d, _) = put(&store, &data);
    let packs = pack_files(dir.path());
    assert!(packs.len() >= 10, "{packs:?}");
    let mut open = 0;
    for (id, len) in &packs {
        let (frames, sealed) = raw_frames(&pack_path(dir.path(), *id));
        assert!(!frames.is_empty());
        if sealed {
            // A pack seals when the next frame would not fit; a single frame larger than
            // the limit is the only way past it.
            assert!(*len <= PACK_SIZE || frames.len() == 1, "pack {id}: {len}");
        } else {
            open += 1;
        }
    }
    assert!(open <= 1, "one pack left open for the next put: {packs:?}");
    assert_reads(&store, &d, &data);
    let report = store.verify(Verify::Full).unwrap();
    assert!(report.is_clean(), "{:?}", report.defects);
    assert_eq!(report.packs, packs.len() as u64);

    // Reopen: sealed packs stay as they are, the open one takes the next put.
    drop(store);
    let store = Store::open(dir.path(), small_opts(PACK_SIZE)).unwrap();
    assert_reads(&store, &d, &data);
    let more = seeded(71, 40_000);
    let (d2, _) = put(&store, &more);
    let after = pack_files(dir.path());
    for (id, len) in &packs {
        let (_, sealed) = raw_frames(&pack_path(dir.path(), *id));
        let now = after.iter().find(|p| p.0 == *id).unwrap().1;
        if sealed {
            assert_eq!(now, *len, "sealed pack {id} is not appended to");
        }
    }
    assert_reads(&store, &d, &data);
    assert_reads(&store, &d2, &more);
    assert!(store.verify(Verify::Full).unwrap().is_clean());
}

/// Many small puts fill packs up to the limit and seal them, rather than leaving a growing
/// number of packs open.
#[test]
fn small_puts_fill_and_seal_packs() {
    let (dir, store) = store_with(small_opts(PACK_SIZE));
    let mut blobs = Vec::new();
    for i in 0..120 {
        let data = seeded(700 + i, 5_000 + (i as usize * 797) % 30_000);
        blobs.push(put(&store, &data).0);
    }
    let packs = pack_files(dir.path());
    let open: Vec<_> = packs
        .iter()
        .filter(|(id, _)| !raw_frames(&pack_path(dir.path(), *id)).1)
        .collect();
    assert!(open.len() <= 1, "open packs: {open:?} of {packs:?}");
    let total: u64 = packs.iter().map(|p| p.1).sum();
    assert!(
        (packs.len() as u64) <= total / (PACK_SIZE / 2) + 1,
        "packs are filled: {packs:?}"
    );
    assert!(store.verify(Verify::Full).unwrap().is_clean());
}

/// The pack files alone say what they hold: walking them by the documented layout finds every
/// chunk, each frame's checksum holds, and each chunk decompresses to bytes matching its id.
#[test]
fn packs_are_self_describing_and_checksummed() {
    let (dir, store) = store_with(small_opts(PACK_SIZE));
    let files = tar_files(72, 30, 50_000);
    put(&store, &tar_of(&files));
    put(&store, &text(73, 400_000));
    let du = store.du().unwrap();
    let mut ids = HashSet::new();
    let mut chunk_bytes = 0u64;
    for (id, _) in pack_files(dir.path()) {
        let path = pack_path(dir.path(), id);
        let bytes = std::fs::read(&path).unwrap();
        let (frames, sealed) = raw_frames(&path);
        let mut checks = blake3::Hasher::new();
        for f in &frames {
            let frame = &bytes[f.offset as usize..(f.offset + f.len) as usize];
            let mut h = blake3::Hasher::new();
            h.update(&frame[..16]);
            h.update(&frame[32..]);
            assert_eq!(
                &h.finalize().as_bytes()[..16],
                &frame[16..32],
                "frame check"
            );
            checks.update(&frame[16..32]);
            let payload = &bytes[f.payload as usize..(f.offset + f.len) as usize];
            let raw = zstd::bulk::decompress(payload, f.raw_len as usize).unwrap();
            let mut at = 0;
            for (cid, len) in &f.entries {
                let chunk = &raw[at..at + *len as usize];
                assert_eq!(blake3::hash(chunk).as_bytes(), cid);
                at += *len as usize;
                if ids.insert(*cid) {
                    chunk_bytes += u64::from(*len);
                }
            }
            assert_eq!(at, raw.len());
        }
        if sealed {
            let seal = &bytes[bytes.len() - 32..];
            assert_eq!(
                u32::from_le_bytes(seal[4..8].try_into().unwrap()) as usize,
                frames.len()
            );
            assert_eq!(
                u64::from_le_bytes(seal[8..16].try_into().unwrap()),
                bytes.len() as u64 - 32
            );
            assert_eq!(&checks.finalize().as_bytes()[..16], &seal[16..32]);
        }
    }
    assert_eq!(ids.len() as u64, du.chunks);
    assert_eq!(chunk_bytes, du.chunk_bytes);
}
