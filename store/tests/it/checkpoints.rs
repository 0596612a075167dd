//! Issue 14: a gzip blob's script carries checkpoints, so a range rebuilds from the checkpoint
//! before it (counted in steps rebuilt, not timed) and a whole blob rebuilds in parallel, both
//! exactly; damaged checkpoints fail naming the blob; scripts without checkpoints (stores written
//! before, see `golden`) still rebuild from their start.
//!
//! Checkpoints come every megabyte of compressed output: the committed Go streams are smaller,
//! so the tests that always run put a stream of many gzip members (a member start is a
//! checkpoint); those over Go's single-member streams, where goflate restarts its model, use the
//! larger fixtures of `GO_GZIP_FIXTURES` (see `go_gzip`).

use std::io::Read;

use airlock_store::{BlobDescription, Digest, Frame, Store, StoreOptions, Verify};

use crate::{common::*, go_gzip};

/// `n` copies of a committed Go stream, one gzip member each.
fn members(name: &str, n: usize) -> Vec<u8> {
    let one = std::fs::read(go_gzip::committed().join(name)).unwrap();
    one.repeat(n)
}

fn no_cache() -> StoreOptions {
    StoreOptions {
        blob_cache_size: 0,
        ..StoreOptions::default()
    }
}

/// Reads `range` of a blob; returns the bytes and the deflate steps the read rebuilt.
fn read_range(store: &Store, d: &Digest, start: u64, end: u64) -> (Vec<u8>, u64) {
    let mut r = store.open_blob_range(d, start..end).unwrap();
    let mut got = Vec::new();
    r.read_to_end(&mut got).unwrap();
    (got, r.steps_rebuilt())
}

/// Checks ranges over the whole blob (at offsets growing `by` times) and near its end; returns
/// the steps a whole read and a read of its last bytes rebuilt.
fn check_ranges(store: &Store, d: &Digest, gz: &[u8], what: &str, by: u64) -> (u64, u64) {
    let n = gz.len() as u64;
    let (whole, all_steps) = read_range(store, d, 0, n);
    assert!(whole == gz, "{what}: whole");
    let mut x = 1u64;
    while x < n {
        for (start, end) in [(x - 1, (x + 70_000).min(n)), (x, n)] {
            let (got, _) = read_range(store, d, start, end);
            assert!(
                got[..] == gz[start as usize..end as usize],
                "{what}: {start}..{end}"
            );
        }
        x = x * by + 12_345;
    }
    let (tail, tail_steps) = read_range(store, d, n - 1000, n);
    assert!(tail[..] == gz[(n - 1000) as usize..], "{what}: tail");
    (all_steps, tail_steps)
}

#[test]
fn issue_14_a_range_near_the_end_rebuilds_from_the_checkpoint_before_it() {
    let gz = members("gzip_6.gz", 90);
    let (_d, store) = store_with(no_cache());
    let (d, _) = put(&store, &gz);
    let (all, tail) = check_ranges(&store, &d, &gz, "members", 3);
    // A step per member, a checkpoint every megabyte (about 28 members).
    assert_eq!(all, 90);
    assert!(tail * 2 < all, "the tail rebuilt {tail} of {all} steps");
    // With a blob cache, a range of a blob with checkpoints is rebuilt from its checkpoint too,
    // not materialized whole first.
    let (_c, cached) = store_with(StoreOptions::default());
    let (d, _) = put(&cached, &gz);
    let n = gz.len() as u64;
    let (got, steps) = read_range(&cached, &d, n - 10, n);
    assert!(got[..] == gz[gz.len() - 10..]);
    assert!(steps * 2 < all, "{steps}");
    // A whole read still fills the cache; the next range comes from it.
    assert!(read_all(&cached, &d).unwrap() == gz);
    assert_eq!(read_range(&cached, &d, n - 10, n).1, 0);
    assert!(cached.verify(Verify::Full).unwrap().is_clean());
}

#[test]
fn issue_14_a_blob_without_checkpoints_rebuilds_from_its_start() {
    // Under a megabyte: no checkpoint, and the last byte costs every step.
    let gz = members("gzip_6.gz", 20);
    let (_d, store) = store_with(no_cache());
    let (d, _) = put(&store, &gz);
    let (all, tail) = check_ranges(&store, &d, &gz, "small", 3);
    assert_eq!(tail, all);
}

/// Rewrites the first checkpoint of a description's script with `edit` (on its op's bytes:
/// tag, payload offset, state length, state); `false` if the script has none.
fn forge_checkpoint(bytes: &[u8], edit: &dyn Fn(&mut Vec<u8>)) -> Option<Vec<u8>> {
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap()) as usize;
    let meta_len = u32_at(bytes, 8);
    let mut at = 12 + meta_len;
    let mut out = bytes[..at].to_vec();
    let mut done = false;
    for _list in 0..2 {
        let n = u32_at(bytes, at);
        out.extend_from_slice(&bytes[at..at + 4]);
        at += 4;
        for _ in 0..n {
            let start = &bytes[at..at + 8];
            let len = u32_at(bytes, at + 8);
            let mut seg = bytes[at + 12..at + 12 + len].to_vec();
            at += 12 + len;
            if !done
                && let Ok(mut raw) = zstd::stream::decode_all(&seg[..])
                && raw.first() == Some(&5)
            {
                edit(&mut raw);
                seg = zstd::bulk::compress(&raw, 3).unwrap();
                done = true;
            }
            out.extend_from_slice(start);
            out.extend_from_slice(&(seg.len() as u32).to_le_bytes());
            out.extend_from_slice(&seg);
        }
    }
    done.then_some(out)
}

/// A damage to a checkpoint op, named.
type Edit<'a> = (&'a str, &'a dyn Fn(&mut Vec<u8>));

/// Puts `gz` in one store and, through a forged description, tries it in others holding its
/// chunks: a forgery fails naming the blob, committing nothing, unless it rebuilds the very
/// bytes (a checkpoint's position only has to agree with the stream before it, which a rebuild
/// starting there does not see); `fails` names those that must fail.
fn damaged_checkpoints_fail(gz: &[u8], edits: &[Edit<'_>], fails: usize) {
    let (_a, from) = store_with(StoreOptions::default());
    let (d, _) = put(&from, gz);
    let desc = from.describe_blob(&d).unwrap();
    let mut chunks = Vec::new();
    from.read_chunks(&desc.chunk_ids().unwrap(), |id, data| {
        chunks.push((*id, data.to_vec()));
        Ok(())
    })
    .unwrap();
    let target = || {
        let (dir, to) = store_with(no_cache());
        for group in chunks.chunks(16) {
            let refs: Vec<_> = group.iter().map(|(i, b)| (*i, &b[..])).collect();
            let frame = Frame::compress(&refs, 3).unwrap().as_bytes().to_vec();
            to.insert_frame(Frame::decode(frame).unwrap()).unwrap();
        }
        (dir, to)
    };
    let bytes = desc.to_bytes();
    for (k, (what, edit)) in edits.iter().enumerate() {
        let forged = forge_checkpoint(&bytes, *edit).expect("a checkpoint to damage");
        // A forgery that no longer decodes (an op cut short) is refused as it is parsed
        // (issue 16), naming the blob.
        let forged = match BlobDescription::from_bytes(&forged) {
            Ok(f) => f,
            Err(e) => {
                assert!(k < fails, "{what} was refused, not taken: {e}");
                assert!(e.to_string().contains(&d.to_string()), "{what}: {e}");
                continue;
            }
        };
        let (_dir, to) = target();
        match to.put_described(&forged) {
            Err(e) => {
                assert!(e.to_string().contains(&d.to_string()), "{what}: {e}");
                assert!(!to.has_blob(&d).unwrap(), "{what}");
            }
            Ok(_) => {
                assert!(k >= fails, "{what} was taken");
                assert!(read_all(&to, &d).unwrap() == gz, "{what}");
            }
        }
    }
    let (_dir, to) = target();
    to.put_described(&desc).unwrap();
    assert!(read_all(&to, &d).unwrap() == gz);
}

#[test]
fn issue_14_a_damaged_member_checkpoint_fails_naming_the_blob() {
    let gz = members("gzip_1.gz", 40);
    let offset: &dyn Fn(&mut Vec<u8>) = &|op| op[3] ^= 0x40;
    let state: &dyn Fn(&mut Vec<u8>) = &|op| {
        // A state where a member starts: a goflate checkpoint's magic and nothing else.
        op[9] = 4;
        op.splice(13..13, *b"GOC\x02");
    };
    damaged_checkpoints_fail(&gz, &[("payload offset", offset), ("state", state)], 2);
}

/// The larger Go fixtures: each single-member stream over a megabyte has goflate checkpoints;
/// ranges from each rebuild exactly and only from the one before them, whole reads rebuild in
/// parallel, and damaged checkpoints fail naming the blob.
#[test]
fn issue_14_go_streams_rebuild_from_their_checkpoints() {
    let Some(dir) = go_gzip::ci_dir("issue 14's checkpoints of Go streams") else {
        return;
    };
    for f in go_gzip::gz_files(&dir) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let gz = std::fs::read(&f).unwrap();
        if !go_gzip::modelled(&name) || gz.len() < 1_200_000 {
            continue;
        }
        let (_d, store) = store_with(no_cache());
        let (d, _) = put(&store, &gz);
        let (all, tail) = check_ranges(&store, &d, &gz, &name, 8);
        assert!(tail < all, "{name}: the tail rebuilt {tail} of {all} steps");
        assert!(store.verify(Verify::Full).unwrap().is_clean(), "{name}");
    }
    let gz = std::fs::read(dir.join("gzip_6.gz")).unwrap();
    // The op is tag, payload offset (8), state length (4), then goflate's checkpoint: "GOC",
    // model version, producer, position...
    let edits: Vec<Edit<'_>> = vec![
        ("magic", &|op| op[13] ^= 1),
        ("model version", &|op| op[16] = 9),
        ("producer", &|op| op[17] = 0x40 | 9),
        ("cut short", &|op| {
            op[9] -= 1;
            op.pop();
        }),
        ("position", &|op| op[18] ^= 0x10),
    ];
    damaged_checkpoints_fail(&gz, &edits, 4);
}

#[test]
fn issue_14_parallel_reads_of_many_blobs_at_once() {
    // Readers on the rayon pool itself (as a bundle import verifies blobs) rebuild their units
    // without waiting for work queued behind them.
    use rayon::prelude::*;
    let gz: Vec<Vec<u8>> = ["gzip_1.gz", "gzip_6.gz", "pgzip_-1_65536.gz"]
        .iter()
        .map(|n| members(n, 60))
        .collect();
    let (_d, store) = store_with(no_cache());
    let ds: Vec<Digest> = gz.iter().map(|g| put(&store, g).0).collect();
    let ok = (0..12).into_par_iter().all(|i| {
        let k = i % gz.len();
        read_all(&store, &ds[k]).unwrap() == gz[k]
    });
    assert!(ok);
}
