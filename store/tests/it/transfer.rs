//! Issue 5: moving blobs between stores as chunks (what bundles do): describe, read chunks,
//! insert frames, commit a described blob only after its digest checks out.

use std::io::Write;

use airlock_store::{BlobDescription, ChunkId, Digest, Error, Frame, Store, StoredAs, Verify};

use crate::common::*;

fn gzip(data: &[u8], level: u32) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Frames of `ids` read from `from`, compressed at `level`, `per_frame` chunks each.
fn frames_of(from: &Store, ids: &[ChunkId], per_frame: usize, level: i32) -> Vec<Vec<u8>> {
    let mut owned: Vec<(ChunkId, Vec<u8>)> = Vec::new();
    from.read_chunks(ids, |id, data| {
        owned.push((*id, data.to_vec()));
        Ok(())
    })
    .unwrap();
    owned
        .chunks(per_frame)
        .map(|group| {
            let refs: Vec<(ChunkId, &[u8])> = group.iter().map(|(i, d)| (*i, &d[..])).collect();
            Frame::compress(&refs, level).unwrap().as_bytes().to_vec()
        })
        .collect()
}

/// Moves `digests` from one store to another through descriptions and frames.
fn transfer(from: &Store, to: &Store, digests: &[Digest]) {
    for d in digests {
        let desc = BlobDescription::from_bytes(&from.describe_blob(d).unwrap().to_bytes()).unwrap();
        let ids = desc.chunk_ids().unwrap();
        let missing = to.missing_chunks(&ids).unwrap();
        for frame in frames_of(from, &missing, 7, 19) {
            to.insert_frame(Frame::decode(frame).unwrap()).unwrap();
        }
        let out = to.put_described(&desc).unwrap();
        assert!(!out.existed);
    }
}

fn layers() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let tar = tar_of(&tar_files(51, 40, 60_000));
    let gz = gzip(&tar, 6);
    let other = seeded(52, 300_000);
    (tar, gz, other)
}

#[test]
fn issue_5_blobs_move_between_stores_as_chunks() {
    let (_a, from) = store_with(small_opts(1 << 20));
    let (_b, to) = store_with(small_opts(1 << 20));
    let (tar, gz, other) = layers();
    let digests: Vec<Digest> = [&tar, &gz, &other, &Vec::new()]
        .iter()
        .map(|d| put(&from, d).0)
        .collect();
    assert_eq!(
        from.stat_blob(&digests[1]).unwrap().unwrap().stored_as,
        StoredAs::Rebuilt,
        "the gzip layer is stored as chunks of its tar"
    );
    transfer(&from, &to, &digests);
    for (d, data) in digests.iter().zip([&tar, &gz, &other, &Vec::new()]) {
        assert_reads(&to, d, data);
        assert_eq!(
            to.stat_blob(d).unwrap().unwrap().stored_as,
            from.stat_blob(d).unwrap().unwrap().stored_as
        );
    }
    let report = to.verify(Verify::Full).unwrap();
    assert!(report.is_clean(), "{report:?}");
    // Putting a described blob again changes nothing.
    let desc = from.describe_blob(&digests[0]).unwrap();
    assert!(to.put_described(&desc).unwrap().existed);
}

#[test]
fn issue_5_a_frame_partly_stored_adds_only_what_is_missing() {
    let (_a, from) = store_with(small_opts(1 << 20));
    let (_b, to) = store_with(small_opts(1 << 20));
    let data = seeded(53, 400_000);
    let (d, _) = put(&from, &data);
    let ids = from.describe_blob(&d).unwrap().chunk_ids().unwrap();
    assert!(ids.len() > 4, "{} chunks", ids.len());
    // The first half arrives in one frame, then a frame of everything.
    let half = frames_of(&from, &ids[..ids.len() / 2], ids.len(), 3);
    let first = to
        .insert_frame(Frame::decode(half[0].clone()).unwrap())
        .unwrap();
    assert_eq!(first.new_chunks as usize, ids.len() / 2);
    let all = frames_of(&from, &ids, ids.len(), 3);
    let second = to
        .insert_frame(Frame::decode(all[0].clone()).unwrap())
        .unwrap();
    assert_eq!(second.new_chunks as usize, ids.len() - ids.len() / 2);
    let again = to
        .insert_frame(Frame::decode(all[0].clone()).unwrap())
        .unwrap();
    assert_eq!(again.new_chunks, 0);
    assert_eq!(again.stored_bytes, 0);
    to.put_described(&from.describe_blob(&d).unwrap()).unwrap();
    assert_reads(&to, &d, &data);
    assert!(to.verify(Verify::Full).unwrap().is_clean());
}

#[test]
fn issue_5_a_blob_without_its_chunks_is_refused() {
    let (_a, from) = store_with(small_opts(1 << 20));
    let (_b, to) = store_with(small_opts(1 << 20));
    let data = seeded(54, 200_000);
    let (d, _) = put(&from, &data);
    let err = to
        .put_described(&from.describe_blob(&d).unwrap())
        .unwrap_err();
    assert!(matches!(err, Error::ChunksMissing { .. }), "{err}");
    assert!(err.to_string().contains(&d.to_string()), "{err}");
    assert!(!to.has_blob(&d).unwrap());
}

#[test]
fn issue_5_a_description_that_builds_other_bytes_is_refused() {
    let (_a, from) = store_with(small_opts(1 << 20));
    let (_b, to) = store_with(small_opts(1 << 20));
    // A tar's headers are inline in its recipe: change one byte of one and the recipe still
    // decodes, covers the same length, and builds different bytes.
    let tar = tar_of(&tar_files(55, 10, 30_000));
    let (d, _) = put(&from, &tar);
    let desc = from.describe_blob(&d).unwrap();
    let ids = desc.chunk_ids().unwrap();
    for frame in frames_of(&from, &ids, 5, 3) {
        to.insert_frame(Frame::decode(frame).unwrap()).unwrap();
    }
    let mut bytes = desc.to_bytes();
    let evil = flip_in_inline_header(&mut bytes);
    assert!(evil, "found an inline tar header to alter");
    let forged = BlobDescription::from_bytes(&bytes).unwrap();
    let err = to.put_described(&forged).unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert!(!to.has_blob(&d).unwrap(), "nothing is committed");
    // The honest description then goes in.
    to.put_described(&desc).unwrap();
    assert_reads(&to, &d, &tar);
}

/// Re-encodes the first recipe segment of a description with one inline byte changed.
fn flip_in_inline_header(bytes: &mut Vec<u8>) -> bool {
    // Layout: "ABLD" version meta_len meta n_recipe (start len bytes)...
    let meta_len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
    let mut at = 12 + meta_len + 4;
    let len = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
    at += 12;
    let seg = zstd::stream::decode_all(&bytes[at..at + len]).unwrap();
    // The first entry of a tar recipe is its first header, inline: tag 2, len, bytes.
    if seg.first() != Some(&2) {
        return false;
    }
    let mut seg = seg;
    seg[5] ^= 0x01; // first byte of the file name
    let enc = zstd::bulk::compress(&seg, 3).unwrap();
    let mut out = bytes[..at - 4].to_vec();
    out.extend_from_slice(&(enc.len() as u32).to_le_bytes());
    out.extend_from_slice(&enc);
    out.extend_from_slice(&bytes[at + len..]);
    *bytes = out;
    true
}

#[test]
fn issue_5_hostile_descriptions_fail_cleanly() {
    let (_a, from) = store_with(small_opts(1 << 20));
    let (d, _) = put(&from, &tar_of(&tar_files(56, 5, 10_000)));
    let bytes = from.describe_blob(&d).unwrap().to_bytes();
    for cut in [0, 3, 10, bytes.len() / 2, bytes.len() - 1] {
        let err = BlobDescription::from_bytes(&bytes[..cut]).unwrap_err();
        assert!(matches!(err, Error::DescriptionCorrupt { .. }), "{err}");
    }
    let mut forged = bytes.clone();
    let meta_len = u32::from_le_bytes(forged[8..12].try_into().unwrap()) as usize;
    forged[12 + meta_len..16 + meta_len].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(BlobDescription::from_bytes(&forged).is_err());
    let mut trailing = bytes;
    trailing.push(0);
    assert!(BlobDescription::from_bytes(&trailing).is_err());
}

#[test]
fn issue_5_every_stored_chunk_is_listed() {
    let (_a, store) = store_with(small_opts(1 << 20));
    let (d, _) = put(&store, &seeded(57, 500_000));
    let (e, _) = put(&store, &seeded(58, 100_000));
    let mut listed = Vec::new();
    let n = store.for_each_chunk_id(|id| listed.push(*id)).unwrap();
    assert_eq!(n as usize, listed.len());
    let mut want: Vec<ChunkId> = [&d, &e]
        .iter()
        .flat_map(|x| store.describe_blob(x).unwrap().chunk_ids().unwrap())
        .collect();
    want.sort();
    want.dedup();
    listed.sort();
    assert_eq!(listed, want);
    let mut blobs = store.blob_digests().unwrap();
    blobs.sort();
    let mut expect = vec![d, e];
    expect.sort();
    assert_eq!(blobs, expect);
}

/// Issue 13: a description names the preflate-rs version of its script's correction data. One
/// of another version is refused by name when it is put (nothing is stored; the same blob
/// described with this airlock's version imports).
#[test]
fn issue_13_a_described_blob_of_another_preflate_version_is_named() {
    let (_a, from) = store_with(small_opts(1 << 20));
    let (_b, to) = store_with(small_opts(1 << 20));
    let (_, gz, _) = layers();
    let (d, _) = put(&from, &gz);
    assert_eq!(
        from.stat_blob(&d).unwrap().unwrap().stored_as,
        StoredAs::Rebuilt
    );
    let bytes = from.describe_blob(&d).unwrap().to_bytes();
    let ours = b"\"preflate\":\"preflate-rs 0.7\"";
    let at = bytes.windows(ours.len()).position(|w| w == ours).unwrap();
    let mut other = bytes.clone();
    other[at..at + ours.len()].copy_from_slice(b"\"preflate\":\"preflate-rs 0.1\"");
    let desc = BlobDescription::from_bytes(&other).unwrap();
    let ids = desc.chunk_ids().unwrap();
    for frame in frames_of(&from, &to.missing_chunks(&ids).unwrap(), 7, 3) {
        to.insert_frame(Frame::decode(frame).unwrap()).unwrap();
    }
    let err = to.put_described(&desc).unwrap_err();
    assert!(matches!(err, Error::RebuildUnsupported { .. }), "{err}");
    assert!(err.to_string().contains("preflate-rs 0.1"), "{err}");
    assert!(!to.has_blob(&d).unwrap());
    let desc = BlobDescription::from_bytes(&bytes).unwrap();
    assert!(!to.put_described(&desc).unwrap().existed);
    assert_reads(&to, &d, &gz);
}

/// Issue 15: a GC that starts while a transfer holds its chunks (a bundle import against a
/// live server) waits for it; the chunks stored ahead of their blob are not dropped under it.
#[test]
fn issue_15_gc_waits_for_a_transfer_holding_its_chunks() {
    let (_a, from) = store_with(small_opts(1 << 20));
    let (_b, to) = store_with(small_opts(1 << 20));
    let (_, gz, _) = layers();
    let d = Digest::sha256(&gz);
    from.put_blob(&d, &gz[..], Default::default()).unwrap();
    let desc = from.describe_blob(&d).unwrap();
    let ids = desc.chunk_ids().unwrap();

    let hold = to.hold_chunks();
    for frame in frames_of(&from, &ids, 7, 3) {
        to.insert_frame(Frame::decode(frame).unwrap()).unwrap();
    }
    // Nothing references the chunks yet: a GC keeping nothing would drop every one.
    let options = airlock_store::GcOptions {
        keep_tag_history: std::time::Duration::ZERO,
        upload_grace: std::time::Duration::ZERO,
        keep_app_versions: 3,
    };
    let gc = {
        let to = to.clone();
        std::thread::spawn(move || {
            let plan = to.plan_gc(options).unwrap();
            to.apply_gc(&plan).unwrap()
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!gc.is_finished(), "GC ran while a transfer held its chunks");
    assert!(!to.put_described(&desc).unwrap().existed);
    let mut back = Vec::new();
    std::io::Read::read_to_end(&mut to.open_blob(&d).unwrap(), &mut back).unwrap();
    assert!(back == gz, "the blob rebuilt from the held chunks");
    drop(hold);
    gc.join().unwrap();
    assert!(to.verify(Verify::Full).unwrap().defects.is_empty());
}
